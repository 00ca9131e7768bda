/**
 * Runs forge in `contracts/` offline, with solc-js behind a shim (no native solc can be
 * downloaded on these machines). Usage: `node scripts/forge.ts <forge args…>`.
 */
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const shim = fileURLToPath(new URL('./solc-shim.cjs', import.meta.url))
const forge = fileURLToPath(new URL('../node_modules/.bin/forge', import.meta.url))

const args = process.argv.slice(2)
const result = spawnSync(forge, [...args, '--offline', '--use', shim], {
  cwd: `${root}contracts`,
  stdio: 'inherit',
  env: { ...process.env, FOUNDRY_DISABLE_NIGHTLY_WARNING: '1' },
})
if (result.error) {
  console.error(`forge: ${result.error.message}`)
  process.exit(1)
}
process.exit(result.status ?? 1)
