/**
 * No module of src/ or web/src imports itself back at run time: a cycle makes what a module sees
 * of another depend on which was loaded first (the verification worker and ingest once imported
 * each other, issue 19 #20). Type-only imports (`import type`) are erased, so they do not count.
 */
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { test } from 'node:test'

const root = resolve(import.meta.dirname, '..')

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && /\.tsx?$/.test(entry.name) && !/\.test\.tsx?$/.test(entry.name))
    .map((entry) => join(entry.parentPath, entry.name))
}

/** Each module's relative imports and re-exports that stay at run time. */
function runtimeImports(files: string[]): Map<string, string[]> {
  const graph = new Map<string, string[]>()
  for (const file of files) {
    const text = readFileSync(file, 'utf8')
    const targets: string[] = []
    for (const match of text.matchAll(/^(?:import|export)\s+(type\s+)?[^'"]*?from\s+'(\.[^']+)'/gm))
      if (match[1] === undefined) targets.push(resolve(dirname(file), match[2]!))
    graph.set(file, targets)
  }
  return graph
}

/** The strongly connected components of more than one module (Tarjan). */
function cycles(graph: Map<string, string[]>): string[][] {
  let next = 0
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const found: string[][] = []
  const visit = (module: string) => {
    index.set(module, next)
    low.set(module, next)
    next++
    stack.push(module)
    onStack.add(module)
    for (const target of graph.get(module) ?? []) {
      if (!graph.has(target)) continue
      if (!index.has(target)) {
        visit(target)
        low.set(module, Math.min(low.get(module)!, low.get(target)!))
      } else if (onStack.has(target)) low.set(module, Math.min(low.get(module)!, index.get(target)!))
    }
    if (low.get(module) !== index.get(module)) return
    const component: string[] = []
    let member: string
    do {
      member = stack.pop()!
      onStack.delete(member)
      component.push(relative(root, member))
    } while (member !== module)
    if (component.length > 1) found.push(component.sort())
  }
  for (const module of graph.keys()) if (!index.has(module)) visit(module)
  return found
}

test('src/ and web/src have no run-time import cycle', () => {
  const graph = runtimeImports([...sources(join(root, 'src')), ...sources(join(root, 'web/src'))])
  assert.ok(graph.size > 100, 'the sources were found')
  assert.deepEqual(cycles(graph), [])
})

test('the check finds a cycle', () => {
  const graph = new Map([
    [join(root, 'a.ts'), [join(root, 'b.ts')]],
    [join(root, 'b.ts'), [join(root, 'a.ts')]],
    [join(root, 'c.ts'), [join(root, 'a.ts')]],
  ])
  assert.deepEqual(cycles(graph), [['a.ts', 'b.ts']])
})
