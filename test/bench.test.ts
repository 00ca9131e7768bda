/**
 * A smoke test of the bench harness (bench/): one cheap benchmark in quick mode through the same
 * runner `npm run bench` uses, so `npm test` notices when the bench code breaks — without running
 * the full bench. Lives in test/ because `npm test` runs `src/**` and `test/**` test files.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { formatMarkdown, formatTable, judge, summarize } from '../bench/harness.ts'
import { runBench } from '../bench/run.ts'

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
