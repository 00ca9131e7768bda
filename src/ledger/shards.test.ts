import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { engines, freshDatabase } from '../../test/database.ts'
import type { Database } from '../db/database.ts'
import { isErrorCode } from '../errors.ts'
import { fromHex, toHex } from './bytes.ts'
import { type BuiltEvent, createEventChain, type VehicleAddress } from './envelope.ts'
import { buildMerkleTree, verifyInclusion } from './merkle.ts'
import { ensureShards, getShardCount, shardLogId, shardOfVehicle, withShard } from './shards.ts'
import {
  appendBatch,
  appendBatches,
  erasePayload,
  getCheckpoint,
  getConsistencyProof,
  getEntries,
  getEvent,
  getInclusionProof,
  getPayload,
} from './store.ts'

const signature = new Uint8Array(64).fill(1)
const vehicleAt = (n: number) => `0x${n.toString(16).padStart(40, '0')}` as VehicleAddress

describe('the shard rule', () => {
  it('is SHA-256 of the 20 address bytes, first four bytes big-endian, modulo the count', () => {
    const vehicle = '0x00000000000000000000000000000000000000aa'
    const digest = createHash('sha256')
      .update(Buffer.from(vehicle.slice(2), 'hex'))
      .digest()
    for (const count of [1, 2, 4, 16, 64, 1024])
      assert.equal(shardOfVehicle(vehicle, count), digest.readUInt32BE(0) % count)
    // A written-down vector: implementations in other languages must agree with it.
    assert.equal(shardOfVehicle(vehicleAt(1), 16), 0xe9ff0e6e % 16)
    assert.equal(
      createHash('sha256')
        .update(fromHex(vehicleAt(1), 'v'))
        .digest()
        .readUInt32BE(0),
      0xe9ff0e6e,
    )
  })

  it('spreads vehicles evenly and never depends on anything but the address and the count', () => {
    const counts = new Array(16).fill(0)
    for (let n = 0; n < 16_000; n++) counts[shardOfVehicle(vehicleAt(n), 16)]++
    for (const count of counts) assert.ok(count > 800 && count < 1200, `uneven: ${counts}`)
    assert.equal(
      shardOfVehicle(vehicleAt(7).toUpperCase().replace('0X', '0x'), 16),
      shardOfVehicle(vehicleAt(7), 16),
    )
  })

  it('attack: refuses shard counts and shards out of range', () => {
    for (const bad of [0, -1, 1.5, 1025, Number.NaN])
      assert.throws(
        () => shardOfVehicle(vehicleAt(1), bad),
        (e) => isErrorCode(e, 'INVALID_ARGUMENT'),
      )
    assert.throws(
      () => withShard({} as Database, 1024),
      (e) => isErrorCode(e, 'INVALID_ARGUMENT'),
    )
    assert.throws(
      () => withShard({} as Database, -1),
      (e) => isErrorCode(e, 'INVALID_ARGUMENT'),
    )
  })

  it('derives each shard’s log id from the deployment’s, keeping its operator', () => {
    const logId = `0x${'ab'.repeat(20)}${'01'.repeat(12)}` as const
    assert.equal(shardLogId(logId, 0), logId)
    const ids = new Set([0, 1, 2, 3].map((shard) => shardLogId(logId, shard)))
    assert.equal(ids.size, 4)
    for (const id of ids) assert.ok(id.startsWith(`0x${'ab'.repeat(20)}`))
  })
})

for (const engine of engines) {
  describe(`sharded log on ${engine}`, () => {
    let db: Database
    before(async () => {
      db = await freshDatabase(engine)
    })
    after(async () => {
      await db.close()
    })

    it('a fresh log becomes 4 shards once; another count is refused afterwards', async () => {
      assert.equal(await getShardCount(db), 1)
      assert.equal(await ensureShards(db), 1)
      assert.equal(await ensureShards(db, 4), 4)
      assert.equal(await ensureShards(db, 4), 4)
      assert.equal(await ensureShards(db), 4)
      await assert.rejects(ensureShards(db, 2), (e) => isErrorCode(e, 'SHARDS_MISMATCH'))
      await assert.rejects(ensureShards(db, 1), (e) => isErrorCode(e, 'SHARDS_MISMATCH'))
    })

    const vehicles = Array.from({ length: 12 }, (_, n) => vehicleAt(100 + n))
    const chains = new Map(vehicles.map((vehicle) => [vehicle, createEventChain({ vehicle })]))
    const perShard: BuiltEvent[][] = [[], [], [], []]

    it('each shard is its own log: vehicles land in their shard, trees and proofs per shard', async () => {
      for (let round = 0; round < 3; round++) {
        const byShard = new Map<number, { vehicle: VehicleAddress; events: BuiltEvent[] }[]>()
        for (const vehicle of vehicles) {
          const chain = chains.get(vehicle)!
          const events = Array.from({ length: 1 + (round % 2) * 5 }, (_, i) =>
            chain.append({ kind: 'telemetry', time: 1000 + round * 10 + i, data: { round, i } }),
          )
          const shard = shardOfVehicle(vehicle, 4)
          byShard.set(shard, [...(byShard.get(shard) ?? []), { vehicle, events }])
        }
        // The shards append concurrently: each takes only its own lock.
        await Promise.all(
          [...byShard].map(async ([shard, batches]) => {
            const outcomes = await appendBatches(
              withShard(db, shard),
              batches.map(({ vehicle, events }) => ({ vehicle, events, checkpointSignature: signature })),
            )
            for (const outcome of outcomes) assert.ok(outcome.ok)
            for (const { events } of batches) perShard[shard]!.push(...events)
          }),
        )
      }
      for (let shard = 0; shard < 4; shard++) {
        const scoped = withShard(db, shard)
        const all = perShard[shard]!
        const tree = buildMerkleTree({ leafHashes: all.map((event) => event.leafHash) })
        const head = await getCheckpoint(scoped)
        assert.equal(head.treeSize, all.length)
        assert.equal(head.rootHash, toHex(tree.rootHash))
        const { entries } = await getEntries(scoped, 0, all.length)
        assert.deepEqual(
          entries.map((entry) => entry.leafHash),
          all.map((event) => event.id),
        )
        for (const event of entries)
          assert.equal(shardOfVehicle(JSON.parse(Buffer.from(event.leafInput).toString()).vehicle, 4), shard)
        if (all.length === 0) continue
        const last = all.length - 1
        const proof = await getInclusionProof(scoped, all[last]!.id, all.length)
        assert.ok(
          verifyInclusion({
            leafIndex: last,
            treeSize: all.length,
            leafHash: all[last]!.leafHash,
            proof: proof.auditPath.map((h) => fromHex(h, 'h')),
            rootHash: tree.rootHash,
          }),
        )
        if (all.length > 1) {
          const consistency = await getConsistencyProof(scoped, 1, all.length)
          assert.deepEqual(consistency.proof, tree.consistencyProof(1, all.length).map(toHex))
        }
        // Unscoped, an event is found in whichever shard holds it.
        const found = await getEvent(db, all[0]!.id)
        assert.equal(found.shard, shard)
        assert.equal(found.index, 0)
      }
      assert.equal(
        perShard.reduce((sum, events) => sum + events.length, 0),
        vehicles.length * (1 + 6 + 1),
      )
    })

    it('attack: a vehicle’s events sent to another shard are refused, and nothing is written', async () => {
      const vehicle = vehicles[0]!
      const own = shardOfVehicle(vehicle, 4)
      const other = (own + 1) % 4
      const before = await getCheckpoint(withShard(db, other))
      const event = chains.get(vehicle)!.append({ kind: 'telemetry', time: 5000, data: {} })
      await assert.rejects(
        appendBatch(withShard(db, other), { vehicle, events: [event], checkpointSignature: signature }),
        (e) => isErrorCode(e, 'SHARDS_MISMATCH'),
      )
      // Unscoped means shard 0: refused there too unless the vehicle is of shard 0.
      if (own !== 0)
        await assert.rejects(
          appendBatch(db, { vehicle, events: [event], checkpointSignature: signature }),
          (e) => isErrorCode(e, 'SHARDS_MISMATCH'),
        )
      assert.deepEqual(await getCheckpoint(withShard(db, other)), before)
      const ok = await appendBatch(withShard(db, own), {
        vehicle,
        events: [event],
        checkpointSignature: signature,
      })
      assert.equal(ok.duplicates, 0)
      perShard[own]!.push(event)
    })

    it('attack: a shard’s proofs never name another shard’s leaf; a shard beyond the count is NOT_FOUND', async () => {
      const shardA = perShard.findIndex((events) => events.length > 0)
      const shardB = (shardA + 1) % 4
      const event = perShard[shardA]![0]!
      const size = (await getCheckpoint(withShard(db, shardB))).treeSize
      await assert.rejects(getInclusionProof(withShard(db, shardB), event.id, size), (e) =>
        isErrorCode(e, 'NOT_FOUND'),
      )
      await assert.rejects(getEvent(withShard(db, shardB), event.id), (e) => isErrorCode(e, 'NOT_FOUND'))
      await assert.rejects(getCheckpoint(withShard(db, 4)), (e) => isErrorCode(e, 'NOT_FOUND'))
    })

    it('erasure finds the event’s shard by itself', async () => {
      const shard = perShard.findIndex((events) => events.length > 0)
      const event = perShard[shard]![0]!
      const before = await getCheckpoint(withShard(db, shard))
      assert.equal(await erasePayload(db, event.id), true)
      await assert.rejects(getPayload(db, event.id), (e) => isErrorCode(e, 'PAYLOAD_ERASED'))
      assert.deepEqual(await getCheckpoint(withShard(db, shard)), before)
    })
  })
}
