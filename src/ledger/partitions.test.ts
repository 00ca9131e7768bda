import assert from 'node:assert/strict'
import { after, before, describe, it, test } from 'node:test'
import { engines, freshDatabase } from '../../test/database.ts'
import { loadConfig } from '../config.ts'
import type { Database } from '../db/database.ts'
import { fromHex, toHex } from './bytes.ts'
import { type BuiltEvent, createEventChain, type VehicleAddress } from './envelope.ts'
import { buildMerkleTree, verifyInclusion } from './merkle.ts'
import {
  ensureLeafPartitions,
  listLeafPartitions,
  MIN_PARTITION_SPAN,
  PARTITION_LEAVES,
  partitionSpan,
} from './partitions.ts'
import { appendBatch, erasePayload, getEvent, getInclusionProof, getPayload } from './store.ts'

const signature = new Uint8Array(64).fill(1)
const vehicleAt = (n: number) => `0x${n.toString(16).padStart(40, '0')}` as VehicleAddress

/** The partition (its lower bound) each leaf sits in, by leaf index. */
async function partitionOfLeaves(db: Database): Promise<Map<number, string>> {
  const { rows } = await db.query<{ leaf_index: bigint; partition: string }>(
    'select leaf_index, tableoid::regclass::text as partition from ledger_leaves',
  )
  return new Map(rows.map((row) => [Number(row.leaf_index), row.partition]))
}

test('a partition holds about 2^22 leaves whatever the shard count, at least 2^16 leaf indexes', () => {
  assert.equal(partitionSpan(1), PARTITION_LEAVES)
  assert.equal(partitionSpan(4), PARTITION_LEAVES / 4)
  assert.equal(partitionSpan(64), 2 ** 16)
  assert.equal(partitionSpan(1024), MIN_PARTITION_SPAN)
  assert.equal(partitionSpan(4, 2 ** 28), 2 ** 26)
})

test('CARCHAIN_LEAF_PARTITION_LEAVES sizes a new log’s partitions; below 2^16 it is refused (CONFIG_INVALID)', () => {
  const config = (value?: string) =>
    loadConfig({ flags: {}, env: value === undefined ? {} : { CARCHAIN_LEAF_PARTITION_LEAVES: value } })
  assert.equal(config().leafPartitionLeaves, PARTITION_LEAVES)
  assert.equal(config(String(2 ** 28)).leafPartitionLeaves, 2 ** 28)
  for (const bad of ['1000', '0', '-5', 'many', '1.5'])
    assert.throws(() => config(bad), { code: 'CONFIG_INVALID' }, bad)
})

for (const engine of engines) {
  describe(`ledger leaf partitions on ${engine}`, () => {
    let db: Database
    before(async () => {
      db = await freshDatabase(engine)
    })
    after(() => db.close())

    it('makes the first partition on the first append, of 2^22 leaf indexes for one shard', async () => {
      assert.deepEqual(await listLeafPartitions(db), [])
      const chain = createEventChain({ vehicle: vehicleAt(1) })
      const batch = [chain.append({ kind: 'telemetry', time: 1, data: { i: 0 } })]
      await appendBatch(db, { vehicle: chain.vehicle, events: batch, checkpointSignature: signature })
      assert.deepEqual(await listLeafPartitions(db), [{ from: 0, to: PARTITION_LEAVES }])
      assert.equal((await getEvent(db, batch[0]!.id)).index, 0)
    })

    it('keeps the span the log was made with: a node started later with another size makes none anew', async () => {
      await ensureLeafPartitions(db, 0, { leaves: 2 ** 28 })
      assert.deepEqual(await listLeafPartitions(db), [{ from: 0, to: PARTITION_LEAVES }])
    })

    it('a new log’s first partition takes the configured size', async () => {
      const fresh = await freshDatabase(engine)
      try {
        await ensureLeafPartitions(fresh, 0, { leaves: 2 ** 17 })
        assert.deepEqual(await listLeafPartitions(fresh), [{ from: 0, to: 2 ** 17 }])
      } finally {
        await fresh.close()
      }
    })
  })

  describe(`ledger leaf partitions on ${engine}, a deployment of small partitions`, () => {
    let db: Database
    const all: BuiltEvent[] = []
    before(async () => {
      db = await freshDatabase(engine)
      // A partition of 64 leaf indexes: every later one takes the span of the one before it.
      await db.exec('create table ledger_leaves_0 partition of ledger_leaves for values from (0) to (64)')
    })
    after(() => db.close())

    it('makes partitions ahead as the log grows, and one an append finds missing (LEDGER_PARTITION_MISSING, retried)', async () => {
      const chains = [1, 2, 3].map((n) => createEventChain({ vehicle: vehicleAt(n) }))
      // 100 events in one append: past the first partition's end before any other was made.
      for (let round = 0; round < 4; round++) {
        for (const chain of chains) {
          const batch = Array.from({ length: round === 0 ? 100 : 30 }, (_, i) =>
            chain.append({ kind: 'telemetry', time: 1_000 * round + i, data: { round, i } }),
          )
          await appendBatch(db, { vehicle: chain.vehicle, events: batch, checkpointSignature: signature })
          all.push(...batch)
        }
      }
      const partitions = await listLeafPartitions(db)
      for (const [i, partition] of partitions.entries()) {
        assert.equal(partition.to - partition.from, 64)
        assert.equal(partition.from, i * 64)
      }
      // A quarter of a partition ahead of the log.
      assert.ok(partitions[partitions.length - 1]!.to > all.length + 16)
      const placed = await partitionOfLeaves(db)
      assert.equal(placed.size, all.length)
      for (const [index, partition] of placed)
        assert.equal(partition, `ledger_leaves_${Math.floor(index / 64) * 64}`)
    })

    it('finds, proves and erases events in every partition', async () => {
      const tree = buildMerkleTree({ leafHashes: all.map((event) => event.leafHash) })
      for (const index of [0, 63, 64, 100, 191, 200, all.length - 1]) {
        const event = all[index]!
        assert.equal((await getEvent(db, event.id)).index, index)
        const proof = await getInclusionProof(db, event.id, all.length)
        assert.deepEqual(proof.auditPath, tree.inclusionProof(index, all.length).map(toHex))
        assert.ok(
          verifyInclusion({
            leafIndex: index,
            treeSize: all.length,
            leafHash: event.leafHash,
            proof: proof.auditPath.map((hash) => fromHex(hash, 'hash')),
            rootHash: tree.rootAt(all.length),
          }),
        )
      }
      const erased = all[130]!
      assert.equal(await erasePayload(db, erased.id), true)
      await assert.rejects(getPayload(db, erased.id), { code: 'PAYLOAD_ERASED' })
      assert.deepEqual((await getPayload(db, all[131]!.id)).data, all[131]!.payload!.data)
    })

    it('keeps each vehicle chain whole across partitions: a replayed seq is refused, a re-send acknowledged', async () => {
      // The first event again (the same bytes) is a re-send, acknowledged with its stored id…
      const first = all[0]!
      const again = await appendBatch(db, {
        vehicle: vehicleAt(1),
        events: [first],
        checkpointSignature: signature,
      })
      assert.deepEqual([again.ids[0], again.duplicates], [first.id, 1])
      // …while a different event at a stored seq is a fork, whichever partition holds the stored one.
      const other = createEventChain({ vehicle: vehicleAt(1) })
      const forked = [other.append({ kind: 'telemetry', time: 0, data: { forked: true } })]
      await assert.rejects(
        appendBatch(db, { vehicle: other.vehicle, events: forked, checkpointSignature: signature }),
        { code: 'EVENT_FORK' },
      )
    })
  })
}
