/**
 * The dependency direction the README states: `errors` ← `db`, `chain` ← domain libraries ←
 * `node` ← `sim`, `cli`. Every import in src/ is read (static, dynamic and re-exports) and
 * resolved to the folder it lands in; a file importing against the direction fails this test.
 * Tests (`*.test.ts`) are not library code and may drive the apps; `config.ts` is the entry
 * points' configuration (flags and environment, parsed once for the node and the CLI) and sits
 * with the node.
 */
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { test } from 'node:test'

const src = resolve(new URL('../src', import.meta.url).pathname)

/** The apps on top: nothing below them may import them. */
const APPS = ['node', 'sim', 'cli'] as const
/** What each app must not import (the node runs without the demo fleet or the CLI). */
const appForbids: Record<string, readonly string[]> = {
  node: ['sim', 'cli'],
  'config.ts': ['sim', 'cli'],
  sim: ['cli'],
  cli: [],
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return sourceFiles(path)
    return /\.tsx?$/.test(entry.name) && !entry.name.endsWith('.test.ts') ? [path] : []
  })
}

/** The top folder under src/ of a path (`ledger`, `node`…), or the file name for src/*.ts. */
const area = (path: string) => relative(src, path).split(sep)[0]!

/** The src/ areas a file imports from (relative specifiers only; packages are not areas). */
function importedAreas(file: string): string[] {
  const text = readFileSync(file, 'utf8')
  const specifiers = [
    ...text.matchAll(/(?:^|\s)(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]/g),
    ...text.matchAll(/(?:^|\s)import\s*['"]([^'"]+)['"]/g),
    ...text.matchAll(/import\(\s*['"]([^'"]+)['"]\s*\)/g),
  ].map((match) => match[1]!)
  return specifiers
    .filter((specifier) => specifier.startsWith('.'))
    .map((specifier) => resolve(dirname(file), specifier))
    .filter((target) => target.startsWith(src + sep))
    .map(area)
}

/** Every import against the direction, as `file → area`. */
function violations(): string[] {
  const found: string[] = []
  for (const file of sourceFiles(src)) {
    const from = area(file)
    const forbidden = appForbids[from] ?? APPS
    for (const target of importedAreas(file))
      if (forbidden.includes(target)) found.push(`${relative(src, file)} → ${target}/`)
  }
  return found
}

test('src/node imports neither src/sim nor src/cli, and no domain library imports an app', () => {
  assert.deepEqual(violations(), [])
})

test('the scan sees the imports it checks (a node file importing sim would be caught)', () => {
  const files = sourceFiles(src)
  const upTs = files.find((file) => relative(src, file) === join('cli', 'commands', 'up.ts'))
  assert.ok(upTs, 'src/cli/commands/up.ts exists')
  assert.ok(importedAreas(upTs).includes('sim'), 'the CLI composes the node with the demo fleet')
  const routes = files.find((file) => relative(src, file) === join('node', 'vehicle-routes.ts'))
  assert.ok(routes && importedAreas(routes).includes('ledger'))
})
