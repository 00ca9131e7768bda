/**
 * How the log's cost grows with its size (issue 18 #4), on PostgreSQL (DATABASE_URL):
 *
 * - `ledger.ingest_large_over_empty`: the node's ingest (`authenticateCheckpoint`, then
 *   `createBatchIngester`) into a log that already holds 10 million entries, over the same batches
 *   into an empty log, the two taking turns round by round (target ≥ 0.8).
 * - `ledger.proof_large_over_small`: an inclusion proof's median latency (`getInclusionProof`,
 *   by leaf hash, as the API serves it) at 10 million entries over at 10 thousand (target ≤ 2).
 *
 * Each log lives in a schema of its own, created and dropped by the bench (`freshDatabase`). The
 * large and small logs are filled in SQL on the server (`fillLog`): synthetic but well-formed
 * rows — canonical envelopes of 100,000 vehicles, their leaf hashes, payloads, checkpoints and
 * vehicle heads — and every stored perfect subtree, frontier and root hashed from those leaves,
 * so the filled log is a valid RFC 9162 tree that the ingest extends and proofs verify against.
 * The leaf table's indexes are dropped for the load and built again after it, as the migrations
 * define them (built at once they are packed tighter than grown ones: a little kinder to the
 * large log than years of appends would be).
 */
import { randomInt } from 'node:crypto'
import type { Database } from '../src/db/database.ts'
import { BaseError } from '../src/errors.ts'
import { fromHex, type Hex, toHex } from '../src/ledger/bytes.ts'
import { createBatchIngester } from '../src/ledger/ingest.ts'
import { foldNodes, rangeNodes, verifyInclusion } from '../src/ledger/merkle.ts'
import { makePartitionsAhead } from '../src/ledger/partitions.ts'
import { getInclusionProof } from '../src/ledger/store.ts'
import { freshDatabase } from '../test/database.ts'
import { type BenchOptions, type BenchResult, median, resultOf, round3, skipped } from './harness.ts'
import { buildCars, type Car, sendRound } from './ingest.ts'

export const scaleNames = [
  { name: 'ledger.ingest_large_over_empty', unit: '×' },
  { name: 'ledger.proof_large_over_small', unit: '×' },
] as const

const ingestTarget = { op: '>=', value: 0.8, source: 'issue 18' } as const
const proofTarget = { op: '<=', value: 2, source: 'issue 18' } as const

/** Synthetic vehicles of a filled log (their addresses are `0xaa` + 38 hex digits, apart from the bench cars'). */
const FILL_VEHICLES = 100_000
/** Events per checkpoint in a filled log (a car's batch). */
const FILL_BATCH = 100
/** Rows per INSERT while filling (a progress line each). */
const FILL_CHUNK = 1_000_000

/**
 * Fills an empty, migrated log with `size` entries in SQL (see the file's comment); resolves with
 * the root. Event i is vehicle i mod 100,000's event ⌊i / 100,000⌋, a telemetry reading.
 */
export async function fillLog(
  db: Database,
  size: number,
  progress: (message: string) => void,
): Promise<Uint8Array> {
  const vehicles = Math.min(FILL_VEHICLES, size)
  const started = performance.now()
  const elapsed = () => `${((performance.now() - started) / 1000).toFixed(0)} s`
  // The leaf table's indexes go for the load and come back after it, as defined now.
  const { rows: constraints } = await db.query<{ name: string; definition: string }>(
    `select conname as name, pg_get_constraintdef(oid) as definition from pg_constraint
      where conrelid = 'ledger_leaves'::regclass and contype in ('p', 'u')`,
  )
  const { rows: indexes } = await db.query<{ name: string; definition: string }>(
    `select indexname as name, indexdef as definition from pg_indexes
      where schemaname = current_schema() and tablename = 'ledger_leaves'
        and indexname <> all($1::text[])`,
    [constraints.map((c) => c.name)],
  )
  await makePartitionsAhead(db, size)
  for (const c of constraints) await db.exec(`alter table ledger_leaves drop constraint ${c.name}`)
  for (const i of indexes) await db.exec(`drop index ${i.name}`)
  for (let from = 0; from < size; from += FILL_CHUNK) {
    const to = Math.min(size, from + FILL_CHUNK)
    await db.query(
      `insert into ledger_leaves (leaf_index, leaf_hash, leaf_input, vehicle, seq, time_ms, kind, salt, data)
       select i, sha256('\\x00'::bytea || input), input, vehicle, seq, time_ms, 'telemetry',
              substr(sha256(int8send(-1 - i)), 1, 16), data
         from (
           select i, vehicle, seq, time_ms, data,
                  convert_to(format('{"commit":"%s","kind":"telemetry","prev":"%s","seq":%s,"time":%s,"v":1,"vehicle":"0x%s"}',
                    encode(sha256(int8send(i)), 'hex'),
                    case when seq = 0 then repeat('0', 64) else encode(sha256(int8send(i - $3)), 'hex') end,
                    seq, time_ms, encode(vehicle, 'hex')), 'UTF8') as input
             from (
               select i, decode('aa' || lpad(to_hex(i % $3 + 1), 38, '0'), 'hex') as vehicle, i / $3 as seq,
                      1700000000000 + i * 10 as time_ms,
                      jsonb_build_object('speedKmh', i % 130, 'socPct', 80 - i % 50,
                        'lat', 48.137 + (i % 1000) * 0.00001, 'lon', 11.575) as data
                 from generate_series($1::bigint, $2::bigint - 1) as i
             ) g
         ) r`,
      [from, to, vehicles],
    )
    progress(
      `scale: filled ${to.toLocaleString('en-US')} of ${size.toLocaleString('en-US')} leaves (${elapsed()})`,
    )
  }
  for (const c of constraints)
    await db.exec(`alter table ledger_leaves add constraint ${c.name} ${c.definition}`)
  // A partitioned table's index reads "ON ONLY" in pg_indexes: built here on every partition.
  for (const i of indexes) await db.exec(i.definition.replace(' ON ONLY ', ' ON '))
  progress(`scale: leaf indexes built (${elapsed()})`)

  // Every level of the tree in scratch tables, level L from level L − 1; the stored levels
  // (multiples of 4) go into ledger_nodes.
  const frontierRefs = rangeNodes(0, size)
  const top = Math.floor(Math.log2(size))
  const frontier = new Map<string, Uint8Array>()
  const pick = async (level: number, table: string, indexColumn: string, hashColumn: string) => {
    for (const ref of frontierRefs.filter((r) => r.level === level)) {
      const { rows } = await db.query<{ hash: Uint8Array }>(
        `select ${hashColumn} as hash from ${table} where ${indexColumn} = $1`,
        [ref.index],
      )
      if (rows[0] === undefined)
        throw new BaseError('INTERNAL', `no node (${level}, ${ref.index}) was filled`)
      frontier.set(`${level}:${ref.index}`, new Uint8Array(rows[0].hash))
    }
  }
  await pick(0, 'ledger_leaves', 'leaf_index', 'leaf_hash')
  let below = 'ledger_leaves'
  let belowIndex = 'leaf_index'
  let belowHash = 'leaf_hash'
  for (let level = 1; level <= top; level++) {
    const table = `bench_fill_level_${level}`
    await db.exec(
      `create unlogged table ${table} as
         select i / 2 as i, h from (
           select ${belowIndex} as i,
                  sha256('\\x01'::bytea || ${belowHash} || lead(${belowHash}) over (order by ${belowIndex})) as h
             from ${below}
         ) p
        where i % 2 = 0 and h is not null;
       create unique index on ${table} (i)`,
    )
    if (level % 4 === 0)
      await db.exec(`insert into ledger_nodes (level, node_index, hash) select ${level}, i, h from ${table}`)
    await pick(level, table, 'i', 'h')
    if (below.startsWith('bench_fill_level_')) await db.exec(`drop table ${below}`)
    below = table
    belowIndex = 'i'
    belowHash = 'h'
  }
  if (below.startsWith('bench_fill_level_')) await db.exec(`drop table ${below}`)
  progress(`scale: tree hashed, ${top} levels (${elapsed()})`)

  const hashes = frontierRefs.map((ref) => frontier.get(`${ref.level}:${ref.index}`)!)
  const root = foldNodes(hashes)
  const frontierBytes = Buffer.concat(hashes)
  await db.query(
    `with heads as (
       insert into ledger_vehicles (vehicle, last_seq, last_leaf_hash, last_time_ms)
       select l.vehicle, l.seq, l.leaf_hash, l.time_ms
         from generate_series(0, $2::bigint - 1) as v
         join ledger_leaves l on l.leaf_index = v + $2 * (($1 - 1 - v) / $2)
     ), checkpoints as (
       insert into ledger_checkpoints (vehicle, seq, leaf_hash, signature)
       select vehicle, seq, leaf_hash, sha512(leaf_hash) from ledger_leaves where seq % $5 = $5 - 1
     )
     update ledger_log set tree_size = $1, root_hash = $3, frontier = $4, updated_at = now()`,
    [size, vehicles, root, frontierBytes, FILL_BATCH],
  )
  await db.exec('vacuum analyze ledger_leaves, ledger_nodes, ledger_checkpoints, ledger_vehicles')
  progress(`scale: log of ${size.toLocaleString('en-US')} ready (${elapsed()})`)
  return root
}

type Workload = { large: number; small: number; proofs: number; proofRounds: number; rounds: number }

function workload(quick: boolean): Workload {
  return quick
    ? { large: 200_000, small: 10_000, proofs: 50, proofRounds: 3, rounds: 2 }
    : { large: 10_000_000, small: 10_000, proofs: 200, proofRounds: 5, rounds: 3 }
}

/** Median latency (ms) of `count` inclusion proofs of random leaves, each checked against `root`. */
async function proofLatency(db: Database, size: number, root: Uint8Array, count: number): Promise<number> {
  const samples: number[] = []
  for (let n = 0; n < count; n++) {
    const index = randomInt(size)
    const { rows } = await db.query<{ leaf_hash: Uint8Array }>(
      // By the whole key (shard, leaf_index): by leaf_index alone the primary key is scanned
      // whole, which at 10 million entries evicts shared buffers and slows the proof timed next.
      'select leaf_hash from ledger_leaves where shard = 0 and leaf_index = $1',
      [index],
    )
    const leafHash = toHex(new Uint8Array(rows[0]!.leaf_hash)) as Hex
    const started = performance.now()
    const proof = await getInclusionProof(db, leafHash, size)
    samples.push(performance.now() - started)
    const valid = verifyInclusion({
      leafHash: new Uint8Array(rows[0]!.leaf_hash),
      leafIndex: proof.leafIndex,
      treeSize: size,
      proof: proof.auditPath.map((hash) => fromHex(hash, 'auditPath')),
      rootHash: root,
    })
    if (!valid || proof.leafIndex !== index)
      throw new BaseError('INTERNAL', `the proof of leaf ${index} in the filled log does not verify`)
  }
  return median(samples)
}

/**
 * One round of the node's ingest: every car sends its round's batches, the next on each ack.
 * Resolves with the rate and the server's WAL bytes per event meanwhile (the whole server's:
 * other work on it counts too).
 */
async function ingestRound(
  db: Database,
  ingest: ReturnType<typeof createBatchIngester>,
  cars: readonly Car[],
  round: number,
  events: number,
): Promise<{ rate: number; walBytesPerEvent: number }> {
  const lsn = async () =>
    (await db.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn')).rows[0]!.lsn
  const walBefore = await lsn()
  const started = performance.now()
  await sendRound(ingest, cars, round)
  const rate = events / ((performance.now() - started) / 1000)
  const { rows } = await db.query<{ bytes: string }>(
    'select pg_wal_lsn_diff(pg_current_wal_lsn(), $1)::text as bytes',
    [walBefore],
  )
  return { rate, walBytesPerEvent: Number(rows[0]!.bytes) / events }
}

export async function benchScale(options: BenchOptions): Promise<BenchResult[]> {
  if (options.databaseUrl === undefined)
    return scaleNames.map(({ name, unit }) =>
      skipped(name, unit, 'skipped: no DATABASE_URL', name.includes('ingest') ? ingestTarget : proofTarget),
    )
  const w = workload(options.quick)
  const ingestWorkload = { vehicles: 64, batchesPerVehicle: 4, eventsPerBatch: 100, rounds: w.rounds }
  const cars = await buildCars(ingestWorkload)
  const eventsPerRound =
    ingestWorkload.vehicles * ingestWorkload.batchesPerVehicle * ingestWorkload.eventsPerBatch
  const empty = await freshDatabase('postgres')
  const small = await freshDatabase('postgres')
  const large = await freshDatabase('postgres')
  try {
    const fillStarted = performance.now()
    const smallRoot = await fillLog(small, w.small, () => {})
    const largeRoot = await fillLog(large, w.large, options.progress)
    const fillSeconds = (performance.now() - fillStarted) / 1000
    const { rows: sizes } = await large.query<{ bytes: string }>(
      `select sum(pg_total_relation_size(relid))::text as bytes
         from (select relid from pg_partition_tree('ledger_leaves') union all select 'ledger_nodes'::regclass) t`,
    )

    // Proofs first, on logs nobody writes to; small and large take turns.
    const proofs: { small: number; large: number }[] = []
    for (let r = -1; r < w.proofRounds; r++) {
      const smallMs = await proofLatency(small, w.small, smallRoot, w.proofs)
      const largeMs = await proofLatency(large, w.large, largeRoot, w.proofs)
      if (r >= 0) proofs.push({ small: smallMs, large: largeMs })
    }
    options.progress(
      `scale: proofs ${proofs.map((p) => `${p.large.toFixed(2)} / ${p.small.toFixed(2)} ms`).join(', ')}`,
    )

    // The same batches into the empty and the large log, the two taking turns (order swapped each round).
    const keys = new Map(cars.map((car) => [car.vehicle, car.publicKey]))
    const resolveVehicleKey = async (vehicle: string) => keys.get(vehicle as Car['vehicle'])
    const intoEmpty = createBatchIngester(empty, { resolveVehicleKey })
    const intoLarge = createBatchIngester(large, { resolveVehicleKey })
    type Round = Awaited<ReturnType<typeof ingestRound>>
    const ingest: { empty: Round; large: Round }[] = []
    for (let r = 0; r < w.rounds + 1; r++) {
      let emptyRound: Round
      let largeRound: Round
      if (r % 2 === 0) {
        emptyRound = await ingestRound(empty, intoEmpty, cars, r, eventsPerRound)
        largeRound = await ingestRound(large, intoLarge, cars, r, eventsPerRound)
      } else {
        largeRound = await ingestRound(large, intoLarge, cars, r, eventsPerRound)
        emptyRound = await ingestRound(empty, intoEmpty, cars, r, eventsPerRound)
      }
      options.progress(
        `scale: ingest round ${r === 0 ? 'warm-up' : r}: large ${Math.round(largeRound.rate)}, empty ${Math.round(emptyRound.rate)} events/s; WAL ${Math.round(largeRound.walBytesPerEvent)} / ${Math.round(emptyRound.walBytesPerEvent)} bytes per event`,
      )
      if (r > 0) ingest.push({ empty: emptyRound, large: largeRound })
    }
    const { rows: logs } = await large.query<{ tree_size: string }>('select tree_size::text from ledger_log')
    if (Number(logs[0]!.tree_size) !== w.large + eventsPerRound * (w.rounds + 1))
      throw new BaseError('INTERNAL', `the large log holds ${logs[0]!.tree_size} entries`)
    const filled = {
      largeEntries: w.large,
      smallEntries: w.small,
      fillSeconds: round3(fillSeconds),
      largeLeavesAndNodesBytes: Number(sizes[0]!.bytes),
    }
    return [
      resultOf(
        'ledger.ingest_large_over_empty',
        '×',
        ingest.map((i) => i.large.rate / i.empty.rate),
        ingestTarget,
        {
          what: `PostgreSQL: the node's ingest (authenticateCheckpoint, createBatchIngester) into a log already holding ${w.large.toLocaleString('en-US')} entries / the same batches into an empty log, taking turns; ${eventsPerRound} events per round (64 cars × 4 batches of 100)`,
          largeEventsPerSecond: ingest.map((i) => round3(i.large.rate)),
          emptyEventsPerSecond: ingest.map((i) => round3(i.empty.rate)),
          largeWalBytesPerEvent: ingest.map((i) => round3(i.large.walBytesPerEvent)),
          emptyWalBytesPerEvent: ingest.map((i) => round3(i.empty.walBytesPerEvent)),
          walNote:
            "the server's WAL written during each round over its events (the whole server's: other work on it counts too)",
          ...filled,
        },
      ),
      resultOf(
        'ledger.proof_large_over_small',
        '×',
        proofs.map((p) => p.large / p.small),
        proofTarget,
        {
          what: `PostgreSQL: median latency of getInclusionProof (by leaf hash, random leaves, each proof verified) at ${w.large.toLocaleString('en-US')} entries / at ${w.small.toLocaleString('en-US')}; ${w.proofs} proofs per log per round`,
          largeMedianMs: proofs.map((p) => round3(p.large)),
          smallMedianMs: proofs.map((p) => round3(p.small)),
          ...filled,
        },
      ),
    ]
  } finally {
    await Promise.all([empty.close(), small.close(), large.close()])
  }
}
