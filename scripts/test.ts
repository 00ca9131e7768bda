/**
 * `npm test`: everything this machine can run, in order of cost — type check, lint, forge tests,
 * then the node test runner over every `*.test.ts`. The node runner's summary comes last, so its
 * closing lines (`# pass`, `# fail`, `# skipped`) are the run's verdict. Under CI a skipped test
 * fails the run (see test/skip.ts): every part must be present there.
 *
 * `npm test -- --only unit` runs one step (typecheck, lint, contracts, unit).
 */
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const bin = (name: string) => `${root}node_modules/.bin/${name}`

type Step = { name: string; command: string; args: string[] }
const steps: Step[] = [
  { name: 'typecheck', command: bin('tsc'), args: ['--noEmit', '-p', '.'] },
  { name: 'lint', command: bin('biome'), args: ['check', '.'] },
  { name: 'contracts', command: process.execPath, args: ['scripts/forge.ts', 'test', '--summary'] },
  {
    name: 'unit',
    command: process.execPath,
    args: [
      '--test',
      '--test-timeout=300000',
      'src/**/*.test.ts',
      'test/**/*.test.ts',
      ...process.argv.slice(2).filter((a) => a.startsWith('--test-')),
    ],
  },
]

const onlyIndex = process.argv.indexOf('--only')
const only = onlyIndex >= 0 ? process.argv[onlyIndex + 1] : undefined
const selected = only ? steps.filter((s) => s.name === only) : steps
if (selected.length === 0) {
  console.error(`npm test: unknown step "${only}"; steps: ${steps.map((s) => s.name).join(', ')}`)
  process.exit(2)
}

for (const step of selected) {
  const started = Date.now()
  console.log(`\n▶ ${step.name}`)
  const result = spawnSync(step.command, step.args, { cwd: root, stdio: 'inherit' })
  const seconds = ((Date.now() - started) / 1000).toFixed(1)
  if (result.status !== 0) {
    console.error(`✖ ${step.name} failed after ${seconds}s`)
    process.exit(result.status ?? 1)
  }
  console.log(`✔ ${step.name} (${seconds}s)`)
}
