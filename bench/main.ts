/**
 * `npm run bench [-- --quick] [-- --json FILE] [-- --only merkle,tiles,vouchers,ingest,postgres,nodes,scale,chain,nfc,startup]`
 *
 * Prints the table (each figure met / missed against its issue's target) on stdout, progress on
 * stderr, and with `--json FILE` writes `{"machine":{…},"results":[{"name","value","unit","detail"}]}`.
 * The PostgreSQL figures (`postgres`, `scale`) run when DATABASE_URL is set. Exits 0 when the run
 * completed, whatever the verdicts (a missed target is a finding, not a crash).
 */
import { writeFileSync } from 'node:fs'
import { BaseError } from '../src/errors.ts'
import { formatTable } from './harness.ts'
import { type BenchGroup, benchGroups, runBench } from './run.ts'

function flagValue(argv: readonly string[], name: string): string | undefined {
  const i = argv.indexOf(name)
  if (i < 0) return undefined
  const value = argv[i + 1]
  if (value === undefined || value.startsWith('--'))
    throw new BaseError('CLI_USAGE', `${name} needs a value`, { details: { flag: name } })
  return value
}

export async function main(argv: readonly string[]): Promise<number> {
  const quick = argv.includes('--quick')
  const jsonFile = flagValue(argv, '--json')
  const only = flagValue(argv, '--only')
  const groups = only?.split(',').map((g) => g.trim()) as BenchGroup[] | undefined
  const unknown = groups?.filter((g) => !benchGroups.includes(g))
  if (unknown && unknown.length > 0) {
    process.stderr.write(`unknown bench group(s) ${unknown.join(', ')}; groups: ${benchGroups.join(', ')}\n`)
    return 2
  }
  const report = await runBench({
    quick,
    databaseUrl: process.env.DATABASE_URL || undefined,
    progress: (message) => process.stderr.write(`${message}\n`),
    groups,
  })
  const m = report.machine
  process.stdout.write(
    `\nCarchain bench${quick ? ' (quick: indicative only)' : ''} — ${m.cpu}, ${m.cores} cores, ${m.memoryGb} GB, Node ${m.node}, ${m.date}\n\n`,
  )
  process.stdout.write(`${formatTable(report.results)}\n`)
  const missed = report.results.filter((r) => r.detail.status === 'missed').map((r) => r.name)
  process.stdout.write(
    `\n${report.results.filter((r) => r.detail.status === 'met').length} met, ${missed.length} missed${missed.length ? `: ${missed.join(', ')}` : ''}\n`,
  )
  if (jsonFile !== undefined) writeFileSync(jsonFile, `${JSON.stringify(report, null, 2)}\n`)
  return 0
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2))
