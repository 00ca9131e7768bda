import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import fc from 'fast-check'
import { engines, freshDatabase } from '../../test/database.ts'
import type { Database } from '../db/database.ts'
import { loadMigrations, migrate } from '../db/migrate.ts'
import { isErrorCode } from '../errors.ts'
import { fromHex, toBareHex, toHex } from './bytes.ts'
import { type BuiltEvent, createEventChain, type EventChain, type VehicleAddress } from './envelope.ts'
import { buildMerkleTree, hashChildren, rangeNodes, verifyConsistency, verifyInclusion } from './merkle.ts'
import {
  appendBatch,
  appendBatches,
  erasePayload,
  eraseVehicle,
  getAlerts,
  getCheckpoint,
  getConsistencyProof,
  getEntries,
  getEvent,
  getInclusionProof,
  getPayload,
  getRootAt,
  getVehicleHead,
} from './store.ts'

const signature = new Uint8Array(64).fill(1)
const vehicleAt = (n: number) => `0x${n.toString(16).padStart(40, '0')}` as VehicleAddress

function events(chain: EventChain, count: number, startTime = 1_000): BuiltEvent[] {
  return Array.from({ length: count }, (_, i) =>
    chain.append({ kind: 'telemetry', time: startTime + i, data: { i } }),
  )
}

/**
 * The stored log's roots, inclusion and consistency proofs equal an in-memory tree's at random
 * sizes, and verify against its roots.
 */
async function assertProofsMatch(
  db: Database,
  tree: ReturnType<typeof buildMerkleTree>,
  all: readonly BuiltEvent[],
  numRuns: number,
): Promise<void> {
  await fc.assert(
    fc.asyncProperty(fc.nat(), fc.nat(), fc.nat(), async (a, b, c) => {
      const second = 1 + (a % tree.size)
      const first = 1 + (b % second)
      const leafIndex = c % second
      assert.equal(await getRootAt(db, second), toHex(tree.rootAt(second)))
      const inclusion = await getInclusionProof(db, all[leafIndex]!.id, second)
      assert.equal(inclusion.leafIndex, leafIndex)
      assert.deepEqual(inclusion.auditPath, tree.inclusionProof(leafIndex, second).map(toHex))
      assert.ok(
        verifyInclusion({
          leafIndex,
          treeSize: second,
          leafHash: all[leafIndex]!.leafHash,
          proof: inclusion.auditPath.map((h) => fromHex(h, 'h')),
          rootHash: tree.rootAt(second),
        }),
      )
      const consistency = await getConsistencyProof(db, first, second)
      assert.deepEqual(consistency.proof, tree.consistencyProof(first, second).map(toHex))
      assert.ok(
        verifyConsistency({
          first,
          second,
          firstHash: tree.rootAt(first),
          secondHash: tree.rootAt(second),
          proof: consistency.proof.map((h) => fromHex(h, 'h')),
        }),
      )
    }),
    { numRuns },
  )
}

const append = (db: Database, vehicle: VehicleAddress, batch: BuiltEvent[]) =>
  appendBatch(db, { vehicle, events: batch, checkpointSignature: signature })

for (const engine of engines) {
  describe(`ledger store on ${engine}`, () => {
    let db: Database
    before(async () => {
      db = await freshDatabase(engine)
    })
    after(async () => {
      await db.close()
    })

    it('starts empty', async () => {
      const checkpoint = await getCheckpoint(db)
      assert.equal(checkpoint.treeSize, 0)
      assert.equal(checkpoint.rootHash, '0xe3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')
    })

    it('appends batches of several vehicles; roots and proofs match the in-memory tree at every size', async () => {
      const chains = [1, 2, 3].map((n) => createEventChain({ vehicle: vehicleAt(n) }))
      const all: BuiltEvent[] = []
      const sizes = [1, 2, 3, 1, 7, 16, 5, 33, 1, 64, 2]
      for (const [i, size] of sizes.entries()) {
        const chain = chains[i % chains.length]!
        const batch = events(chain, size, 1_000 * (i + 1))
        const result = await append(db, chain.vehicle, batch)
        assert.deepEqual(
          result.ids,
          batch.map((event) => event.id),
        )
        assert.deepEqual(
          result.leafIndexes,
          batch.map((_, j) => all.length + j),
        )
        all.push(...batch)
        assert.equal(result.treeSize, all.length)
        assert.equal(result.duplicates, 0)
        assert.equal(
          result.rootHash,
          toHex(buildMerkleTree({ leafHashes: all.map((e) => e.leafHash) }).rootHash),
        )
      }
      const tree = buildMerkleTree({ leafHashes: all.map((event) => event.leafHash) })
      assert.equal((await getCheckpoint(db)).rootHash, toHex(tree.rootHash))
      await assertProofsMatch(db, tree, all, 40)
      assert.equal(await getRootAt(db, 0), toHex(tree.rootAt(0)))
      const page = await getEntries(db, 3, 10)
      assert.deepEqual(
        page.entries.map((entry) => [entry.index, entry.leafHash, Buffer.from(entry.leafInput).toString()]),
        all.slice(3, 10).map((event, i) => [3 + i, event.id, Buffer.from(event.leafInput).toString()]),
      )
      assert.equal((await getEntries(db, tree.size - 2, tree.size + 50)).entries.length, 2)
      assert.equal((await getEntries(db, 0, 5000)).entries.length, tree.size)
      const stored = await getEvent(db, all[5]!.id)
      assert.deepEqual(stored.envelope, all[5]!.envelope)
      assert.equal(stored.index, 5)
    })

    it('refuses out-of-range sizes and unknown leaves', async () => {
      const { treeSize } = await getCheckpoint(db)
      const leaf = (await getEntries(db, treeSize - 1, treeSize)).entries[0]!
      await assert.rejects(getRootAt(db, treeSize + 1), (e) => isErrorCode(e, 'TREE_SIZE_INVALID'))
      await assert.rejects(getInclusionProof(db, leaf.leafHash, treeSize - 1), (e) =>
        isErrorCode(e, 'TREE_SIZE_INVALID'),
      )
      await assert.rejects(getInclusionProof(db, `0x${'00'.repeat(32)}`, treeSize), (e) =>
        isErrorCode(e, 'NOT_FOUND'),
      )
      await assert.rejects(getConsistencyProof(db, 5, 4), (e) => isErrorCode(e, 'TREE_SIZE_INVALID'))
      await assert.rejects(getConsistencyProof(db, 1, treeSize + 1), (e) =>
        isErrorCode(e, 'TREE_SIZE_INVALID'),
      )
      await assert.rejects(getEntries(db, -1, 3), (e) => isErrorCode(e, 'TREE_SIZE_INVALID'))
    })

    it('acknowledges a re-sent batch with the same ids; appends only the new tail of an overlapping one', async () => {
      const vehicle = vehicleAt(10)
      const chain = createEventChain({ vehicle })
      const batch = events(chain, 4)
      const first = await append(db, vehicle, batch)
      const again = await append(db, vehicle, batch)
      assert.deepEqual(again.ids, first.ids)
      assert.deepEqual(again.leafIndexes, first.leafIndexes)
      assert.equal(again.duplicates, 4)
      assert.equal(again.treeSize, first.treeSize)
      const more = events(chain, 3, 5_000)
      const overlapping = await append(db, vehicle, [...batch.slice(2), ...more])
      assert.equal(overlapping.duplicates, 2)
      assert.equal(overlapping.treeSize, first.treeSize + 3)
      assert.deepEqual(
        overlapping.ids,
        [...batch.slice(2), ...more].map((event) => event.id),
      )
      const head = await getVehicleHead(db, vehicle)
      assert.equal(head?.seq, 6)
      assert.equal(head?.leafHash, more[2]!.id)
    })

    it('refuses gaps, forks (kept as evidence), time regressions and odometer rollbacks', async () => {
      const vehicle = vehicleAt(20)
      const chain = createEventChain({ vehicle })
      const accepted = [
        chain.append({ kind: 'odometer', time: 10, data: { km: 100 } }),
        chain.append({ kind: 'trip.started', time: 20, data: {} }),
      ]
      await append(db, vehicle, accepted)
      const before = await getCheckpoint(db)

      // A gap: seq 3 without seq 2.
      const skipping = createEventChain({ vehicle, head: chain.head() })
      skipping.append({ kind: 'trip.ended', time: 30, data: {} })
      await assert.rejects(
        append(db, vehicle, [skipping.append({ kind: 'trip.ended', time: 31, data: {} })]),
        (e) => isErrorCode(e, 'EVENT_GAP'),
      )

      // A fork: another event at the stored seq 1.
      const other = createEventChain({
        vehicle,
        head: { nextSeq: 1, prev: toBareHex(accepted[0]!.leafHash) },
      })
      await assert.rejects(
        append(db, vehicle, [accepted[0]!, other.append({ kind: 'door.locked', time: 20, data: {} })]),
        (e) => isErrorCode(e, 'EVENT_FORK'),
      )
      // A fork at the continuation point: seq 2 linking to something else than seq 1.
      await assert.rejects(
        append(db, vehicle, [
          createEventChain({ vehicle, head: { nextSeq: 2, prev: 'ab'.repeat(32) } }).append({
            kind: 'trip.ended',
            time: 40,
            data: {},
          }),
        ]),
        (e) => isErrorCode(e, 'EVENT_FORK'),
      )
      const forks = await db.query<{ seq: bigint; batch: { envelopes: unknown[] } }>(
        'select seq, batch from ledger_forks where vehicle = $1 order by id',
        [fromHex(vehicle, 'v')],
      )
      assert.equal(forks.rows.length, 2)
      assert.equal(Number(forks.rows[0]!.seq), 1)
      assert.equal(forks.rows[0]!.batch.envelopes.length, 2)

      // Time going back.
      const next = createEventChain({ vehicle, head: chain.head() })
      await assert.rejects(
        append(db, vehicle, [next.append({ kind: 'trip.ended', time: 19, data: {} })]),
        (e) => isErrorCode(e, 'EVENT_TIME_REGRESSION'),
      )
      // Odometer going back: refused and alerted.
      const rolled = createEventChain({ vehicle, head: chain.head() })
      await assert.rejects(
        append(db, vehicle, [rolled.append({ kind: 'odometer', time: 50, data: { km: 99.5 } })]),
        (e) => isErrorCode(e, 'ODOMETER_ROLLBACK'),
      )
      const alerts = await getAlerts(db, { vehicle })
      assert.deepEqual(
        alerts.map((alert) => alert.code),
        ['ODOMETER_ROLLBACK', 'EVENT_FORK', 'EVENT_FORK'],
      )
      assert.deepEqual(await getCheckpoint(db), before)
      // The chain goes on from where it was.
      const ok = await append(db, vehicle, [
        chain.append({ kind: 'odometer', time: 60, data: { km: 100.5 } }),
      ])
      assert.equal(ok.treeSize, before.treeSize + 1)
      assert.equal((await getVehicleHead(db, vehicle))?.odometerKm, 100.5)
    })

    it('erases payloads without touching the log', async () => {
      const vehicle = vehicleAt(30)
      const chain = createEventChain({ vehicle })
      const batch = events(chain, 3)
      await append(db, vehicle, batch)
      const root = await getCheckpoint(db)
      assert.deepEqual(await getPayload(db, batch[0]!.id), batch[0]!.payload)
      assert.equal(await erasePayload(db, batch[0]!.id), true)
      assert.equal(await erasePayload(db, batch[0]!.id), false)
      await assert.rejects(getPayload(db, batch[0]!.id), (e) => isErrorCode(e, 'PAYLOAD_ERASED'))
      assert.equal(await eraseVehicle(db, vehicle), 2)
      await assert.rejects(getPayload(db, batch[2]!.id), (e) => isErrorCode(e, 'PAYLOAD_ERASED'))
      await assert.rejects(getPayload(db, `0x${'11'.repeat(32)}`), (e) => isErrorCode(e, 'NOT_FOUND'))
      assert.deepEqual(await getCheckpoint(db), root)
      const proof = await getInclusionProof(db, batch[1]!.id, root.treeSize)
      assert.equal(proof.leafIndex, root.treeSize - 2)
    })

    it('group-commits batches of many vehicles; a refused batch leaves the others in', async () => {
      const start = await getCheckpoint(db)
      const a = createEventChain({ vehicle: vehicleAt(50) })
      const b = createEventChain({ vehicle: vehicleAt(51) })
      const a1 = events(a, 3)
      const b1 = events(b, 2)
      const a2 = events(a, 2, 5_000)
      const gap = createEventChain({ vehicle: vehicleAt(52), head: { nextSeq: 5, prev: 'cd'.repeat(32) } })
      const outcomes = await appendBatches(db, [
        { vehicle: a.vehicle, events: a1, checkpointSignature: signature },
        { vehicle: b.vehicle, events: b1, checkpointSignature: signature },
        { vehicle: gap.vehicle, events: events(gap, 1), checkpointSignature: signature },
        // The same vehicle again in the group: continuing, and re-sending what the group holds.
        { vehicle: a.vehicle, events: a2, checkpointSignature: signature },
        { vehicle: a.vehicle, events: [...a1.slice(1), ...a2], checkpointSignature: signature },
      ])
      assert.deepEqual(
        outcomes.map((outcome) => (outcome.ok ? 'ok' : outcome.error.code)),
        ['ok', 'ok', 'EVENT_GAP', 'ok', 'ok'],
      )
      const last = outcomes[4]!
      assert.ok(last.ok)
      assert.equal(last.result.duplicates, 4)
      assert.deepEqual(
        last.result.ids,
        [...a1.slice(1), ...a2].map((event) => event.id),
      )
      const end = await getCheckpoint(db)
      assert.equal(end.treeSize, start.treeSize + 7)
      assert.ok(outcomes.every((outcome) => !outcome.ok || outcome.result.treeSize === end.treeSize))
      const { entries } = await getEntries(db, 0, end.treeSize)
      assert.equal(
        toHex(buildMerkleTree({ leafHashes: entries.map((e) => fromHex(e.leafHash, 'h')) }).rootHash),
        end.rootHash,
      )
      assert.deepEqual(
        entries.slice(start.treeSize).map((entry) => entry.leafHash),
        [...a1, ...b1, ...a2].map((event) => event.id),
      )
      assert.equal((await getVehicleHead(db, a.vehicle))?.seq, 4)
      assert.equal((await getVehicleHead(db, b.vehicle))?.seq, 1)
      assert.equal(await getVehicleHead(db, gap.vehicle), undefined)
    })

    it('serializes concurrent appends into one consistent tree', async () => {
      const chains = [41, 42, 43, 44].map((n) => createEventChain({ vehicle: vehicleAt(n) }))
      const start = await getCheckpoint(db)
      const batches = chains.map((chain) => events(chain, 25))
      await Promise.all(chains.map((chain, i) => append(db, chain.vehicle, batches[i]!)))
      const end = await getCheckpoint(db)
      assert.equal(end.treeSize, start.treeSize + 100)
      const { entries } = await getEntries(db, 0, end.treeSize)
      const tree = buildMerkleTree({ leafHashes: entries.map((entry) => fromHex(entry.leafHash, 'h')) })
      assert.equal(toHex(tree.rootHash), end.rootHash)
      const proof = await getConsistencyProof(db, start.treeSize, end.treeSize)
      assert.ok(
        verifyConsistency({
          first: start.treeSize,
          second: end.treeSize,
          firstHash: fromHex(start.rootHash, 'r'),
          secondHash: fromHex(end.rootHash, 'r'),
          proof: proof.proof.map((h) => fromHex(h, 'h')),
        }),
      )
    })
  })

  describe(`ledger store on ${engine}: a data dir from before migrations 6 and 7`, () => {
    let db: Database
    before(async () => {
      db = await freshDatabase(
        engine,
        loadMigrations().filter((migration) => migration.version < 6),
      )
    })
    after(async () => {
      await db.close()
    })

    it('carries the log over: every root and proof past level 8, payloads, erasures, heads', async () => {
      // The log as the writer before migration 6 left it: every perfect subtree in ledger_nodes,
      // payloads in their own table.
      const chains = [51, 52, 53].map((n) => createEventChain({ vehicle: vehicleAt(n) }))
      const all: BuiltEvent[] = []
      for (const [i, size] of [300, 1, 250, 17, 100].entries())
        all.push(...events(chains[i % 3]!, size, 1_000 * (i + 1)))
      const levels: Uint8Array[][] = [all.map((event) => event.leafHash)]
      while (levels.at(-1)!.length > 1) {
        const below = levels.at(-1)!
        levels.push(
          Array.from({ length: below.length >> 1 }, (_, i) => hashChildren(below[2 * i]!, below[2 * i + 1]!)),
        )
      }
      const tree = buildMerkleTree({ leafHashes: all.map((event) => event.leafHash) })
      const nodes = levels.flatMap((hashes, level) =>
        level === 0 ? [] : hashes.map((hash, index) => ({ level, index, hash })),
      )
      const frontier = rangeNodes(0, all.length).map((ref) => levels[ref.level]![ref.index]!)
      await db.query(
        `insert into ledger_leaves (leaf_index, leaf_hash, leaf_input, vehicle, seq, time_ms, kind)
         select * from unnest($1::bigint[], $2::bytea[], $3::bytea[], $4::bytea[], $5::bigint[], $6::bigint[], $7::text[])`,
        [
          all.map((_, i) => i),
          all.map((e) => e.leafHash),
          all.map((e) => e.leafInput),
          all.map((e) => fromHex(e.envelope.vehicle, 'v')),
          all.map((e) => e.envelope.seq),
          all.map((e) => e.envelope.time),
          all.map((e) => e.envelope.kind),
        ],
      )
      // Payloads: one erased, one never stored.
      const stored = all.map((_, i) => i).filter((i) => i !== 7)
      await db.query(
        `insert into ledger_payloads (leaf_index, salt, data, erased_at)
         select i, case when i = 5 then null else s end, case when i = 5 then null else d end,
                case when i = 5 then now() end
           from unnest($1::bigint[], $2::bytea[], $3::jsonb[]) as r(i, s, d)`,
        [
          stored,
          stored.map((i) => all[i]!.payload.salt),
          stored.map((i) => JSON.stringify(all[i]!.payload.data)),
        ],
      )
      await db.query(
        `insert into ledger_nodes (level, node_index, hash)
         select * from unnest($1::smallint[], $2::bigint[], $3::bytea[])`,
        [nodes.map((n) => n.level), nodes.map((n) => n.index), nodes.map((n) => n.hash)],
      )
      await db.query('update ledger_log set tree_size = $1, root_hash = $2, frontier = $3', [
        all.length,
        tree.rootHash,
        Buffer.concat(frontier),
      ])
      for (const chain of chains) {
        const last = all.filter((e) => e.envelope.vehicle === chain.vehicle).at(-1)!
        await db.query(
          `insert into ledger_vehicles (vehicle, last_seq, last_leaf_hash, last_time_ms) values ($1, $2, $3, $4)`,
          [fromHex(chain.vehicle, 'v'), last.envelope.seq, last.leafHash, last.envelope.time],
        )
      }

      await migrate(db)
      const { rows } = await db.query<{ level: number; count: bigint }>(
        'select level::int as level, count(*) as count from ledger_nodes group by level order by level',
      )
      assert.deepEqual(
        rows.map((row) => [row.level, Number(row.count)]),
        [
          [4, tree.size >> 4],
          [8, tree.size >> 8],
        ],
      )
      assert.deepEqual(await getCheckpoint(db), { treeSize: tree.size, rootHash: toHex(tree.rootHash) })
      await assertProofsMatch(db, tree, all, 30)
      assert.deepEqual(await getPayload(db, all[6]!.id), all[6]!.payload)
      await assert.rejects(getPayload(db, all[5]!.id), (e) => isErrorCode(e, 'PAYLOAD_ERASED'))
      await assert.rejects(getPayload(db, all[7]!.id), (e) => isErrorCode(e, 'NOT_FOUND'))
      assert.equal(await erasePayload(db, all[7]!.id), false)
      assert.equal(await erasePayload(db, all[6]!.id), true)
      await assert.rejects(getPayload(db, all[6]!.id), (e) => isErrorCode(e, 'PAYLOAD_ERASED'))
      assert.deepEqual((await getEvent(db, all[600]!.id)).envelope, all[600]!.envelope)
      // Appending goes on from the migrated log and heads.
      const more = events(chains[0]!, 40, 9_000)
      const result = await append(db, chains[0]!.vehicle, more)
      all.push(...more)
      assert.equal(result.leafIndexes[0], tree.size)
      assert.equal(
        result.rootHash,
        toHex(buildMerkleTree({ leafHashes: all.map((event) => event.leafHash) }).rootHash),
      )
      assert.deepEqual(await getPayload(db, more[3]!.id), more[3]!.payload)
    })
  })
}
