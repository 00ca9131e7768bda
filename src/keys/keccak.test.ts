import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { it } from 'node:test'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { keccak256 } from './keccak.ts'

it('keccak256 equals @noble/hashes keccak_256 at every length around the block size', () => {
  const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex')
  // the empty string's well-known hash
  assert.equal(
    hex(keccak256(new Uint8Array(0))),
    'c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470',
  )
  for (let length = 0; length <= 3 * 136 + 2; length++) {
    const data = randomBytes(length)
    assert.equal(hex(keccak256(data)), hex(keccak_256(data)), `length ${length}`)
  }
  // a view into a larger buffer
  const backing = randomBytes(300)
  const view = backing.subarray(7, 7 + 200)
  assert.equal(hex(keccak256(view)), hex(keccak_256(view)))
})
