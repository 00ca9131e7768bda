import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setBounded } from './bounded-map.ts'

test('setBounded keeps the newest entries, a replaced key counting as new and evicting nothing', () => {
  const map = new Map<string, number>()
  for (const [key, value] of [
    ['a', 1],
    ['b', 2],
    ['c', 3],
  ] as const)
    setBounded(map, key, value, 3)
  setBounded(map, 'a', 10, 3)
  assert.deepEqual(
    [...map],
    [
      ['b', 2],
      ['c', 3],
      ['a', 10],
    ],
  )
  setBounded(map, 'd', 4, 3)
  assert.deepEqual(
    [...map],
    [
      ['c', 3],
      ['a', 10],
      ['d', 4],
    ],
  )
})
