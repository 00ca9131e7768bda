/**
 * The browser-safe shard rule (shard-rule.ts over @noble/hashes, what the dashboard runs) gives
 * the node's answers (shards.ts, over node:crypto) for the vehicle's shard and a shard's log id,
 * on random addresses and log ids; malformed input is refused with INVALID_ARGUMENT.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { isErrorCode } from '../errors.ts'
import { fromHex, toHex } from './bytes.ts'
import { MAX_SHARDS, portableShardRule } from './shard-rule.ts'
import { shardLogId, shardOfVehicle } from './shards.ts'

const counts = [1, 2, 3, 4, 7, 16, 100, 1000, MAX_SHARDS]

describe('the portable shard rule', () => {
  it('places random vehicles in the shard the node does, for every count', () => {
    const seen = new Set<number>()
    for (let i = 0; i < 2000; i++) {
      const vehicle = randomBytes(20)
      for (const count of counts) {
        const shard = portableShardRule.shardOfVehicle(new Uint8Array(vehicle), count)
        assert.equal(shard, shardOfVehicle(toHex(vehicle), count), `${toHex(vehicle)} among ${count}`)
        assert.equal(shard, shardOfVehicle(vehicle, count))
        if (count === 4) seen.add(shard)
      }
    }
    // Not a constant: 2000 random vehicles reach every one of 4 shards.
    assert.deepEqual([...seen].sort(), [0, 1, 2, 3])
    // The written-down vector of shards.test.ts: SHA-256 of address 0x…01 starts e9ff0e6e.
    assert.equal(
      portableShardRule.shardOfVehicle(fromHex(`0x${'00'.repeat(19)}01`, 'v'), 16),
      0xe9ff0e6e % 16,
    )
  })

  it('derives each shard’s log id as the node does', () => {
    for (let i = 0; i < 50; i++) {
      const logId = toHex(randomBytes(32))
      for (const shard of [0, 1, 2, 3, 17, MAX_SHARDS - 1]) {
        const id = toHex(portableShardRule.shardLogId(fromHex(logId, 'logId'), shard))
        assert.equal(id, shardLogId(logId, shard), `shard ${shard} of ${logId}`)
        assert.equal(id.slice(0, 42), logId.slice(0, 42), 'the operator’s 20 bytes are kept')
        if (shard !== 0) assert.notEqual(id, logId)
      }
    }
  })

  it('refuses malformed input with INVALID_ARGUMENT (attack)', () => {
    const vehicle = new Uint8Array(20)
    const refused = (fn: () => unknown) =>
      assert.throws(fn, (error) => isErrorCode(error, 'INVALID_ARGUMENT'))
    for (const count of [0, -1, 1.5, MAX_SHARDS + 1, Number.NaN])
      refused(() => portableShardRule.shardOfVehicle(vehicle, count))
    // An address of another length would land somewhere: a 21-byte "address" must not.
    refused(() => portableShardRule.shardOfVehicle(new Uint8Array(21), 4))
    refused(() => portableShardRule.shardOfVehicle(new Uint8Array(19), 4))
    refused(() => portableShardRule.shardLogId(new Uint8Array(31), 1))
    for (const shard of [-1, MAX_SHARDS, 0.5])
      refused(() => portableShardRule.shardLogId(new Uint8Array(32), shard))
  })
})
