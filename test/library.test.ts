/**
 * The library for integrators: `npm pack` builds JavaScript and declarations (scripts/build-lib.ts),
 * and every package export loads on plain Node without type stripping.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'

const root = new URL('..', import.meta.url).pathname

test('every package export builds to JavaScript with declarations and loads', () => {
  // Inside the repository, so the build resolves the package's dependencies as a consumer would.
  const out = join(root, 'dist-test')
  try {
    execFileSync(process.execPath, ['scripts/build-lib.ts', '--out', out], { cwd: root, stdio: 'pipe' })
    const exports = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).exports as Record<
      string,
      { types: string; default: string } | string
    >
    const names = Object.keys(exports).filter((key) => key !== './package.json')
    assert.ok(names.length >= 9)
    for (const name of names) {
      const entry = exports[name] as { types: string; default: string }
      const js = join(out, entry.default.replace('./dist/', ''))
      assert.ok(existsSync(js), `${name}: ${js} missing`)
      assert.ok(existsSync(join(out, entry.types.replace('./dist/', ''))), `${name}: declarations missing`)
      // Plain JavaScript: loads with type stripping off.
      const loaded = execFileSync(
        process.execPath,
        [
          '--no-experimental-strip-types',
          '--input-type=module',
          '-e',
          `const m = await import(${JSON.stringify(js)}); console.log(Object.keys(m).length)`,
        ],
        { encoding: 'utf8' },
      )
      assert.ok(Number(loaded) > 0, `${name} exports nothing`)
    }
    assert.ok(existsSync(join(out, 'db/migrations/0001_core.sql')))
  } finally {
    rmSync(out, { recursive: true, force: true })
  }
})
