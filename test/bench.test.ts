/**
 * A smoke test of the bench harness (bench/): one cheap benchmark in quick mode through the same
 * runner `npm run bench` uses, so `npm test` notices when the bench code breaks — without running
 * the full bench. Lives in test/ because `npm test` runs `src/**` and `test/**` test files.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { formatMarkdown, formatTable, judge, summarize } from '../bench/harness.ts'
import { ledgerTables, tableBytes } from '../bench/ingest.ts'
import { runBench } from '../bench/run.ts'
import { fillLog } from '../bench/scale.ts'
import { createBatch } from '../src/ledger/batch.ts'
import { toHex } from '../src/ledger/bytes.ts'
import { createEventChain, type VehicleAddress } from '../src/ledger/envelope.ts'
import { ingestBatch } from '../src/ledger/ingest.ts'
import { buildMerkleTree } from '../src/ledger/merkle.ts'
import { getCheckpoint, getEvent, getInclusionProof } from '../src/ledger/store.ts'
import { aP256Signer } from '../src/ledger/testing.ts'
import { freshDatabase } from './database.ts'
import { requirePart } from './skip.ts'

test('the harness summarises samples and judges targets', () => {
  assert.deepEqual(summarize([3, 1, 2, 10]), { median: 2.5, min: 1, max: 10, runs: 4 })
  assert.equal(judge(60_000, { op: '>=', value: 50_000, source: 'issue 4' }), 'met')
  assert.equal(judge(52_415, { op: '<=', value: 50_000, source: 'issue 5' }), 'missed')
  assert.equal(judge(8, undefined), 'info')
})

test('a quick run of one cheap benchmark reports it by its exact name, with verdict and spread', async () => {
  const report = await runBench({
    quick: true,
    databaseUrl: undefined,
    progress: () => {},
    groups: ['vouchers', 'postgres'],
  })
  assert.deepEqual(
    report.results.map((r) => r.name),
    ['ledger.ingest_events_per_s_postgres', 'charging.vouchers_per_s', 'charging.vouchers_over_verify'],
  )
  const [postgres, vouchers, overVerify] = report.results
  assert.equal(postgres!.value, null)
  assert.equal(postgres!.detail.status, 'skipped')
  assert.equal(postgres!.detail.reason, 'skipped: no DATABASE_URL')
  assert.ok(typeof vouchers!.value === 'number' && vouchers!.value > 0)
  assert.ok(['met', 'missed'].includes(vouchers!.detail.status))
  assert.equal(vouchers!.detail.target, '>= 3000')
  assert.ok((vouchers!.detail.runs as number) >= 3)
  assert.ok(typeof overVerify!.value === 'number' && overVerify!.value > 0)
  assert.equal(overVerify!.detail.target, '>= 0.8')
  assert.equal(overVerify!.detail.targetSource, 'issue 18')
  assert.equal(report.machine.quick, true)
  assert.ok(report.machine.cores >= 1)
  // The JSON shape of issue 8 and both renderings.
  const json = JSON.parse(JSON.stringify(report))
  assert.deepEqual(Object.keys(json), ['machine', 'results'])
  assert.deepEqual(Object.keys(json.results[0]), ['name', 'value', 'unit', 'detail'])
  assert.match(formatTable(report.results), /charging\.vouchers_per_s/)
  assert.match(formatMarkdown(report.results), /\| `charging\.vouchers_per_s` \|/)
})

test('a quick run of the tiles group reports both tile figures, the ratio judged against issue 17', async () => {
  const report = await runBench({
    quick: true,
    databaseUrl: undefined,
    progress: () => {},
    groups: ['tiles'],
  })
  assert.deepEqual(
    report.results.map((r) => r.name),
    ['ledger.tile_reads_per_s', 'ledger.tiles_over_api'],
  )
  const [reads, ratio] = report.results
  assert.equal(reads!.detail.error, undefined)
  assert.ok(typeof reads!.value === 'number' && reads!.value > 0)
  assert.equal(reads!.unit, 'proofs/s')
  assert.ok(typeof ratio!.value === 'number' && ratio!.value > 0)
  assert.equal(ratio!.detail.target, '>= 3')
  assert.equal(ratio!.detail.targetSource, 'issue 17')
  assert.ok(['met', 'missed'].includes(ratio!.detail.status))
  // Each round starts with an empty client cache, so it fetched tiles over HTTP.
  for (const fetched of ratio!.detail.tilesFetchedPerRound as number[]) assert.ok(fetched > 0)
})

test('the scale group without PostgreSQL reports both figures skipped, with their issue 18 targets', async () => {
  const report = await runBench({
    quick: true,
    databaseUrl: undefined,
    progress: () => {},
    groups: ['scale'],
  })
  assert.deepEqual(
    report.results.map((r) => [r.name, r.value, r.detail.status, r.detail.target]),
    [
      ['ledger.ingest_large_over_empty', null, 'skipped', '>= 0.8'],
      ['ledger.proof_large_over_small', null, 'skipped', '<= 2'],
    ],
  )
})

test('a log filled in SQL for the scale bench is a valid RFC 9162 tree the store extends', async (t) => {
  if (!requirePart(t, process.env.DATABASE_URL !== undefined, 'needs PostgreSQL (DATABASE_URL)')) return
  const db = await freshDatabase('postgres')
  try {
    const size = 1234
    const root = await fillLog(db, size, () => {})
    const { rows } = await db.query<{ leaf_hash: Uint8Array }>(
      'select leaf_hash from ledger_leaves order by leaf_index',
    )
    const leaves = rows.map((row) => new Uint8Array(row.leaf_hash))
    assert.equal(leaves.length, size)
    // The root and stored subtrees agree with the tree built in memory from the same leaves.
    const tree = buildMerkleTree({ leafHashes: leaves })
    assert.deepEqual(root, tree.rootHash)
    assert.equal((await getCheckpoint(db)).rootHash, toHex(tree.rootHash))
    for (const index of [0, 7, 615, size - 1]) {
      const proof = await getInclusionProof(db, leaves[index]!, size)
      assert.deepEqual(proof.auditPath, tree.inclusionProof(index).map(toHex))
    }
    // The ingest extends it: a new vehicle's batch lands at index `size`, the root as in memory.
    const { signer, publicKey } = aP256Signer()
    const vehicle = `0x${'bc'.repeat(20)}` as VehicleAddress
    const events = [createEventChain({ vehicle }).append({ kind: 'door.locked', time: 1, data: {} })]
    const result = await ingestBatch(db, {
      batch: JSON.parse(JSON.stringify(await createBatch({ events, signer }))),
      resolveVehicleKey: async () => publicKey,
    })
    assert.deepEqual(result.leafIndexes, [size])
    assert.equal(
      result.rootHash,
      toHex(buildMerkleTree({ leafHashes: [...leaves, events[0]!.leafHash] }).rootHash),
    )
    // Its rows are well-formed: a synthetic leaf reads back as a canonical envelope.
    const stored = await getEvent(db, leaves[7]!)
    assert.equal(stored.envelope.kind, 'telemetry')
    assert.equal(stored.index, 7)
    // Each vehicle (1,234 synthetic ones, one event each, and the new one) has its head at its newest event.
    const { rows: heads } = await db.query<{ count: string }>(
      `select count(*)::text as count from ledger_vehicles v
         join ledger_leaves l on l.vehicle = v.vehicle and l.seq = v.last_seq and l.leaf_hash = v.last_leaf_hash`,
    )
    assert.equal(Number(heads[0]!.count), size + 1)
  } finally {
    await db.close()
  }
})

test('the bench counts every ledger table’s bytes, a partitioned one’s from its partitions', async () => {
  const db = await freshDatabase('pglite')
  try {
    const { signer, publicKey } = aP256Signer()
    const chain = createEventChain({ vehicle: `0x${'c'.repeat(40)}` as VehicleAddress })
    const events = Array.from({ length: 20 }, (_, i) =>
      chain.append({ kind: 'telemetry', time: i, data: { i } }),
    )
    await ingestBatch(db, {
      batch: JSON.parse(JSON.stringify(await createBatch({ events, signer }))),
      resolveVehicleKey: async () => publicKey,
    })
    const bytes = await tableBytes(db, ledgerTables)
    assert.deepEqual(Object.keys(bytes), ledgerTables)
    for (const table of ledgerTables) assert.ok(bytes[table]! > 0, `${table} counted`)
    const { rows } = await db.query<{ bytes: string }>(
      `select sum(pg_total_relation_size(c.oid))::text as bytes
         from pg_inherits i join pg_class c on c.oid = i.inhrelid where i.inhparent = 'ledger_leaves'::regclass`,
    )
    assert.equal(bytes.ledger_leaves, Number(rows[0]!.bytes))
  } finally {
    await db.close()
  }
})
