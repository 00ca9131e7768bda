import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../..', import.meta.url))

test('src/chain/generated matches contracts/src (run `npm run generate` when this fails)', () => {
  const result = spawnSync(process.execPath, ['scripts/generate.ts', '--check'], {
    cwd: root,
    encoding: 'utf8',
    timeout: 280_000,
  })
  assert.equal(result.status, 0, `${result.stdout}${result.stderr}`)
})
