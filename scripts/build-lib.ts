/**
 * Builds the library for integrators into `dist/` (run by `npm pack`/`npm publish` through
 * `prepack`): Node refuses to strip types from files under node_modules, so a consumer gets
 * JavaScript and declarations. The app itself (`carchain`, `npm start`) runs the TypeScript
 * sources directly on Node 24 and never needs this. `--out DIR` builds elsewhere (tests).
 */
import { spawnSync } from 'node:child_process'
import { cpSync, rmSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const outIndex = process.argv.indexOf('--out')
const out = resolve(outIndex >= 0 ? process.argv[outIndex + 1]! : join(root, 'dist'))
rmSync(out, { recursive: true, force: true })
const tsc = spawnSync(join(root, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.build.json', '--outDir', out], {
  cwd: root,
  stdio: 'inherit',
})
if (tsc.status !== 0) process.exit(tsc.status ?? 1)
// Migrations are read at run time next to migrate.js.
cpSync(join(root, 'src/db/migrations'), join(out, 'db/migrations'), { recursive: true })
console.log(`library built in ${out}`)
