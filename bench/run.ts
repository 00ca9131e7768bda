/**
 * Runs every benchmark of issue 8 in one process and returns `{machine, results}`. Cheap,
 * chain-free figures first; then one fresh anvil for every on-chain figure; ingest in child
 * processes; `carchain up` last. A group that fails reports its figures as missed with the error
 * and the run goes on.
 */
import { startTestChain, type TestChain } from '../test/chain.ts'
import { anchorNames, benchAnchorGas } from './anchor.ts'
import { benchChargingGas, benchVouchers, chargingGasNames, voucherNames } from './charging.ts'
import {
  type BenchGroup,
  type BenchOptions,
  type BenchResult,
  benchGroups,
  failed,
  type Machine,
  machine,
  resultOf,
  round3,
  skipped,
  type Target,
} from './harness.ts'
import { type IngestReport, runIngestChild } from './ingest.ts'
import { benchKeys, keyNames } from './keys.ts'
import { benchMerkle, merkleNames } from './merkle.ts'
import { benchNfc, nfcNames } from './nfc.ts'
import { benchScale, scaleNames } from './scale.ts'
import { benchShardAnchorGas, benchTwoNodes, shardNames } from './shards.ts'
import { benchStartup, startupNames } from './startup.ts'
import { benchTiles, tileNames } from './tiles.ts'

export type BenchReport = { machine: Machine; results: BenchResult[] }

/** The order of the report (issue 8's table, then the node's figures). */
export const benchNames = [
  'unlock.e2e_over_floor',
  'unlock.e2e_over_hot_loop',
  'unlock.online_over_offline',
  'ledger.ingest_events_per_s',
  'ledger.ingest_events_per_s_postgres',
  'ledger.ingest_over_raw_copy',
  'ledger.ingest_over_raw_copy_postgres',
  'ledger.bytes_per_event',
  'ledger.ingest_large_over_empty',
  'ledger.proof_large_over_small',
  'ledger.merkle_speedup_vs_openzeppelin',
  'ledger.tile_reads_per_s',
  'ledger.tiles_over_api',
  'ledger.gas_per_event',
  'ledger.gas_per_anchor_per_shard',
  'ledger.two_nodes_over_one',
  'charging.gas_open',
  'charging.gas_open_typical',
  'charging.gas_settle',
  'charging.gas_per_session',
  'charging.naive_over_channel',
  'charging.vouchers_per_s',
  'charging.vouchers_over_verify',
  'keys.gas_revoke',
  'nfc.tap_to_pay_ms',
  'nfc.tap_over_roundtrip',
  'node.peak_memory_ingest_mb',
  'node.startup_s',
] as const

export { type BenchGroup, benchGroups } from './harness.ts'

const ingestTarget: Target = { op: '>=', value: 50_000, source: 'issue 4' }
const postgresTarget: Target = { op: '>=', value: 100_000, source: 'issue 4' }
const rawTarget: Target = { op: '>=', value: 0.5, source: 'issue 18' }

function ingestResults(report: IngestReport): BenchResult[] {
  const postgres = report.engine === 'postgres'
  const workload = {
    vehicles: report.vehicles,
    eventsPerBatch: report.eventsPerBatch,
    eventsPerRound: report.eventsPerRound,
  }
  const results = [
    resultOf(
      postgres ? 'ledger.ingest_events_per_s_postgres' : 'ledger.ingest_events_per_s',
      'events/s',
      report.ingestPerSecond,
      postgres ? postgresTarget : ingestTarget,
      {
        what: `createBatchIngester on ${postgres ? 'PostgreSQL (DATABASE_URL)' : 'PGlite on disk'}: JSON batches parsed, payload commits and P-256 checkpoints verified, appended to the Merkle log, acknowledged after commit`,
        ...workload,
        rawCopyRowsPerSecond: report.rawCopyPerSecond.map(round3),
        tessera: '~10,000 writes/s on NVMe with 7 cores (published)',
      },
    ),
  ]
  results.push(
    resultOf(
      postgres ? 'ledger.ingest_over_raw_copy_postgres' : 'ledger.ingest_over_raw_copy',
      '×',
      report.ratios,
      rawTarget,
      {
        what: `${postgres ? 'PostgreSQL' : 'PGlite'}: ingest throughput / raw binary COPY of the same leaf rows (payloads included) and checkpoint rows into copies of their tables (same indexes), bytes made before the clock, commits of the ingester's largest group (64 batches)`,
        ...workload,
      },
    ),
  )
  if (postgres) {
    const { storage } = report
    results.push(
      resultOf(
        'ledger.bytes_per_event',
        '×',
        [storage.databaseBytes / storage.eventBytes],
        { op: '<=', value: 3, source: 'issue 18' },
        {
          what: 'PostgreSQL: pg_total_relation_size (table, indexes, TOAST) of every ledger table after the ingest rounds / the bytes of the canonical envelopes, payload salts and payload JSON they hold',
          events: storage.events,
          databaseBytesPerEvent: round3(storage.databaseBytes / storage.events),
          eventBytesPerEvent: round3(storage.eventBytes / storage.events),
          tables: storage.tables,
        },
      ),
    )
  } else {
    results.push(
      resultOf('node.peak_memory_ingest_mb', 'MB', [report.rssPeakMb], undefined, {
        what: 'peak RSS of the process ingesting into PGlite (sampled every 50 ms, PGlite WASM heap included)',
        rssBeforeIngestMb: round3(report.rssBeforeMb),
        benchBatchesInMemoryMb: round3(report.batchesMb),
      }),
    )
  }
  return results
}

async function guarded(
  names: readonly { name: string; unit: string }[],
  run: () => Promise<BenchResult[]>,
): Promise<BenchResult[]> {
  try {
    return await run()
  } catch (error) {
    return failed(names, error)
  }
}

export async function runBench(
  options: BenchOptions & { groups?: readonly BenchGroup[] | undefined },
): Promise<BenchReport> {
  const groups = new Set(options.groups ?? benchGroups)
  const results: BenchResult[] = []
  const started = performance.now()
  const step = (name: string) =>
    options.progress(`▶ ${name} (${((performance.now() - started) / 1000).toFixed(0)} s)`)

  if (groups.has('merkle')) {
    step('merkle tree vs @openzeppelin/merkle-tree')
    results.push(...(await guarded(merkleNames, () => benchMerkle(options))))
  }
  if (groups.has('tiles')) {
    step('inclusion proofs from tiles vs the JSON API')
    results.push(...(await guarded(tileNames, () => benchTiles(options))))
  }
  if (groups.has('vouchers')) {
    step('voucher verification')
    results.push(...(await guarded(voucherNames, () => benchVouchers(options))))
  }
  if (groups.has('ingest')) {
    step('ingest into PGlite')
    results.push(
      ...(await guarded(
        [
          { name: 'ledger.ingest_events_per_s', unit: 'events/s' },
          { name: 'ledger.ingest_over_raw_copy', unit: '×' },
          { name: 'node.peak_memory_ingest_mb', unit: 'MB' },
        ],
        async () => ingestResults(await runIngestChild('pglite', options.quick, options.progress)),
      )),
    )
  }
  if (groups.has('postgres')) {
    if (options.databaseUrl === undefined) {
      results.push(
        skipped(
          'ledger.ingest_events_per_s_postgres',
          'events/s',
          'skipped: no DATABASE_URL',
          postgresTarget,
        ),
      )
    } else {
      step('ingest into PostgreSQL')
      results.push(
        ...(await guarded(
          [
            { name: 'ledger.ingest_events_per_s_postgres', unit: 'events/s' },
            { name: 'ledger.ingest_over_raw_copy_postgres', unit: '×' },
            { name: 'ledger.bytes_per_event', unit: '×' },
          ],
          async () => ingestResults(await runIngestChild('postgres', options.quick, options.progress)),
        )),
      )
    }
  }
  if (groups.has('nodes')) {
    const twoNodes = shardNames.filter((n) => n.name === 'ledger.two_nodes_over_one')
    if (options.databaseUrl === undefined)
      results.push(skipped('ledger.two_nodes_over_one', '×', 'skipped: no DATABASE_URL'))
    else {
      step('two node processes over one (PostgreSQL)')
      results.push(...(await guarded(twoNodes, () => benchTwoNodes(options))))
    }
  }
  if (groups.has('scale')) {
    step('ingest and proofs at 10 million entries (PostgreSQL)')
    results.push(...(await guarded(scaleNames, () => benchScale(options))))
  }
  if (groups.has('chain')) {
    step('starting anvil with the contracts')
    let chain: TestChain | undefined
    try {
      chain = await startTestChain()
      const onChain = chain
      step('unlock and revoke')
      results.push(...(await guarded(keyNames, () => benchKeys(onChain, options))))
      step('charging gas')
      results.push(...(await guarded(chargingGasNames, () => benchChargingGas(onChain, options))))
      step('anchoring gas')
      results.push(...(await guarded(anchorNames, () => benchAnchorGas(onChain, options))))
      step('anchoring gas per shard')
      const gasNames = shardNames.filter((n) => n.name === 'ledger.gas_per_anchor_per_shard')
      results.push(...(await guarded(gasNames, () => benchShardAnchorGas(onChain, options))))
    } catch (error) {
      results.push(...failed([...keyNames, ...chargingGasNames, ...anchorNames, shardNames[0]], error))
    } finally {
      await chain?.stop()
    }
  }
  if (groups.has('nfc')) {
    step('tap to pay over the virtual contactless reader')
    results.push(...(await guarded(nfcNames, () => benchNfc(options))))
  }
  if (groups.has('startup')) {
    step('carchain up')
    results.push(...(await guarded(startupNames, () => benchStartup(options))))
  }
  step('done')
  const order = new Map<string, number>(benchNames.map((name, i) => [name, i]))
  results.sort((a, b) => (order.get(a.name) ?? 99) - (order.get(b.name) ?? 99))
  return { machine: machine(options.quick), results }
}
