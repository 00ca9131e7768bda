/**
 * Ledger ingest (issue 4 "Performance"): sustained throughput of the node's ingest path — the
 * node's checkpoint authentication (`authenticateCheckpoint`), then `createBatchIngester` (group
 * commit) — fed JSON batches from many vehicles at once, each vehicle sending its next batch when
 * the last was acknowledged. Every event is parsed, its
 * payload commitment and the batch's P-256 checkpoint signature are verified, and it is durable
 * in the database and in the Merkle log when acknowledged.
 *
 * Each round, right after the ingest, the same rows (leaves with their payloads, and the batches'
 * checkpoint signatures) go into copies of their tables (same indexes, the leaves partitioned alike) by raw binary COPY of bytes
 * made ready beforehand, in commits of the ingester's largest group: the database's own floor for
 * those rows. The ratio ingest / raw COPY is taken per round.
 *
 * Runs in a child process (`node bench/ingest.ts --engine pglite|postgres [--quick]`, one JSON
 * line on stdout), so the node's peak memory under ingest is its own, not the bench's.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CopyBinaryWriter } from '../src/db/copy-binary.ts'
import type { Database, Queryable } from '../src/db/database.ts'
import { openDatabase } from '../src/db/database.ts'
import { migrate } from '../src/db/migrate.ts'
import { BaseError } from '../src/errors.ts'
import { createBatch } from '../src/ledger/batch.ts'
import { fromHex } from '../src/ledger/bytes.ts'
import {
  type BuiltEvent,
  createEventChain,
  encodeEnvelope,
  type VehicleAddress,
} from '../src/ledger/envelope.ts'
import { type BatchIngester, createBatchIngester } from '../src/ledger/ingest.ts'
import { PARTITION_LEAVES } from '../src/ledger/partitions.ts'
import { aP256Signer } from '../src/ledger/testing.ts'
import { authenticateCheckpoint } from '../src/node/ingest.ts'
import { freshDatabase } from '../test/database.ts'

export type IngestEngine = 'pglite' | 'postgres'

/** What the child reports. */
export type IngestReport = {
  engine: IngestEngine
  vehicles: number
  eventsPerBatch: number
  eventsPerRound: number
  /** Events per second, one per measured round. */
  ingestPerSecond: number[]
  /** Rows (events) per second loaded by the raw binary COPY. */
  rawCopyPerSecond: number[]
  /** ingest / raw, per round. */
  ratios: number[]
  /** Resident memory of the process: before the first round (batches built) and at its peak. */
  rssBeforeMb: number
  rssPeakMb: number
  /** The JSON batches held in memory by the bench itself (counted in the RSS). */
  batchesMb: number
  /**
   * The ledger's tables with their indexes and TOAST (`pg_total_relation_size`) after every round,
   * and the bytes of what they hold as the vehicles sent it: canonical envelopes, payload salts and
   * payload JSON.
   */
  storage: { databaseBytes: number; eventBytes: number; events: number; tables: Record<string, number> }
}

/** The tables the log writes (the bench's raw copies are not among them). */
export const ledgerTables = [
  'ledger_leaves',
  'ledger_nodes',
  'ledger_checkpoints',
  'ledger_vehicles',
  'ledger_log',
]

export type Workload = { vehicles: number; batchesPerVehicle: number; eventsPerBatch: number; rounds: number }

/**
 * A full round is 102,400 events (~1 s at the targets): long enough that the round's tail — the
 * last group committing while every car waits for its ack — is a few per cent of it, as in
 * sustained ingest, not a quarter as with 25,600-event rounds.
 */
function workload(quick: boolean): Workload {
  return quick
    ? { vehicles: 16, batchesPerVehicle: 2, eventsPerBatch: 100, rounds: 2 }
    : { vehicles: 64, batchesPerVehicle: 16, eventsPerBatch: 100, rounds: 3 }
}

const kinds = [
  'telemetry',
  'telemetry',
  'telemetry',
  'driving.behavior',
  'door.unlocked',
  'door.locked',
] as const

export type Car = {
  vehicle: VehicleAddress
  publicKey: Uint8Array
  /** Per round (warm-up first), its batches: JSON text as received, and the same rows for the raw COPY. */
  rounds: { json: string; rows: RawRows }[][]
}

/** One batch's leaf rows (payloads included) and its checkpoint, as bytes and values ready to COPY. */
type RawRows = {
  events: {
    leafHash: Uint8Array
    leafInput: Uint8Array
    seq: number
    time: number
    kind: string
    salt: Uint8Array
    data: string
  }[]
  vehicle: Uint8Array
  signature: Uint8Array
}

function rawRows(events: readonly BuiltEvent[], vehicle: VehicleAddress, signature: Uint8Array): RawRows {
  return {
    events: events.map((e) => ({
      leafHash: e.leafHash,
      leafInput: encodeEnvelope(e.envelope),
      seq: e.envelope.seq,
      time: e.envelope.time,
      kind: e.envelope.kind,
      salt: e.payload.salt,
      data: JSON.stringify(e.payload.data),
    })),
    vehicle: fromHex(vehicle, 'vehicle', 20),
    signature,
  }
}

/** One commit of the raw path: the binary COPY data of its leaf rows and of its checkpoint rows. */
type RawCommit = { leaves: Uint8Array; checkpoints: Uint8Array; rows: number }

function rawCommit(batches: readonly RawRows[], firstIndex: number): RawCommit {
  const leaves = new CopyBinaryWriter(batches.length * 100 * 512)
  const checkpoints = new CopyBinaryWriter(batches.length * 160)
  let index = firstIndex
  for (const batch of batches) {
    for (const e of batch.events) {
      leaves
        .row(9)
        .int8(index++)
        .bytes(e.leafHash)
        .bytes(e.leafInput)
        .bytes(batch.vehicle)
        .int8(e.seq)
        .int8(e.time)
        .text(e.kind)
        .bytes(e.salt)
        .jsonb(e.data)
    }
    const newest = batch.events[batch.events.length - 1]!
    checkpoints.row(4).bytes(batch.vehicle).int8(newest.seq).bytes(newest.leafHash).bytes(batch.signature)
  }
  return { leaves: leaves.end(), checkpoints: checkpoints.end(), rows: index - firstIndex }
}

export async function buildCars(w: Workload): Promise<Car[]> {
  const cars: Car[] = []
  const startMs = Date.now() - 86_400_000
  for (let c = 0; c < w.vehicles; c++) {
    const { signer, publicKey } = aP256Signer()
    const vehicle = `0x${(c + 1).toString(16).padStart(40, 'b')}` as VehicleAddress
    const chain = createEventChain({ vehicle })
    const rounds: Car['rounds'] = []
    for (let r = 0; r < w.rounds + 1; r++) {
      const batches: Car['rounds'][number] = []
      for (let b = 0; b < w.batchesPerVehicle; b++) {
        const events: BuiltEvent[] = []
        for (let e = 0; e < w.eventsPerBatch; e++) {
          const seq = chain.head().nextSeq
          const kind = kinds[seq % kinds.length]!
          events.push(
            chain.append({
              kind,
              time: startMs + seq * 1000,
              data:
                kind === 'telemetry'
                  ? { speedKmh: seq % 130, socPct: 80 - (seq % 50), lat: 48.137 + seq * 1e-5, lon: 11.575 }
                  : { seq, note: 'bench' },
            }),
          )
        }
        const batch = await createBatch({ events, signer })
        batches.push({
          json: JSON.stringify(batch),
          rows: rawRows(events, vehicle, fromHex(batch.checkpoint.signature, 'signature', 64)),
        })
      }
      rounds.push(batches)
    }
    cars.push({ vehicle, publicKey, rounds })
  }
  return cars
}

async function openEngine(engine: IngestEngine): Promise<{ db: Database; close: () => Promise<void> }> {
  if (engine === 'postgres') {
    const db = await freshDatabase('postgres')
    return { db, close: () => db.close() }
  }
  // On disk, as `carchain up` keeps it (the data dir), not in memory.
  const dir = mkdtempSync(join(tmpdir(), 'carchain-bench-pglite-'))
  const db = await openDatabase({ engine: 'pglite', dataDir: join(dir, 'db') })
  await migrate(db)
  return {
    db,
    close: async () => {
      await db.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/**
 * The raw path, the database's own floor for these rows: each commit one binary COPY of its leaf
 * rows (payloads included) and one of its checkpoint rows, the bytes made before the clock starts;
 * no checks, no tree, no vehicle heads.
 */
async function rawCopy(db: Database, commits: readonly RawCommit[]): Promise<void> {
  for (const commit of commits) {
    await db.transaction(async (tx) => {
      await tx.copyFrom(
        'bench_raw_leaves (leaf_index, leaf_hash, leaf_input, vehicle, seq, time_ms, kind, salt, data)',
        commit.leaves,
      )
      await tx.copyFrom('bench_raw_checkpoints (vehicle, seq, leaf_hash, signature)', commit.checkpoints)
    })
  }
}

/**
 * One round of the node's ingest: every car sends its round's batches at once with the others, the
 * next when the last was acknowledged, each taken as the node takes it (src/node/ingest.ts): JSON
 * parsed, the checkpoint authenticated before the batch is verified whole and passed on, so it is
 * verified once.
 */
export async function sendRound(ingester: BatchIngester, cars: readonly Car[], round: number): Promise<void> {
  await Promise.all(
    cars.map(async (car) => {
      for (const batch of car.rounds[round]!) {
        const received = JSON.parse(batch.json)
        const checkpoint = authenticateCheckpoint(received, car.vehicle, car.publicKey)
        const result = await ingester.ingest(received, car.vehicle, checkpoint)
        if (result.ids.length !== received.events.length)
          throw new BaseError('INTERNAL', `ingest acknowledged ${result.ids.length} events`)
      }
    }),
  )
}

/**
 * Each table's bytes (`pg_total_relation_size`: table, indexes, TOAST); a partitioned table's are
 * its partitions' (pg_partition_tree lists none for a plain table).
 */
export async function tableBytes(db: Queryable, tables: readonly string[]): Promise<Record<string, number>> {
  const { rows } = await db.query<{ name: string; bytes: string }>(
    `select t as name, (pg_total_relation_size(t::regclass) + coalesce(
       (select sum(pg_total_relation_size(relid)) from pg_partition_tree(t::regclass) where relid <> t::regclass), 0))::text as bytes
       from unnest($1::text[]) as t`,
    [tables],
  )
  return Object.fromEntries(rows.map((row) => [row.name, Number(row.bytes)]))
}

/** Runs the ingest benchmark in this process (the child). */
export async function runIngest(engine: IngestEngine, quick: boolean): Promise<IngestReport> {
  const w = workload(quick)
  const cars = await buildCars(w)
  const batchesMb =
    cars.reduce((sum, car) => sum + car.rounds.flat().reduce((s, b) => s + b.json.length, 0), 0) / 2 ** 20
  const { db, close } = await openEngine(engine)
  try {
    await db.exec(
      // Partitioned as ledger_leaves is (one partition holds every round's rows, as the log's
      // first partition does): the same table shape, the same tuple routing.
      `create table bench_raw_leaves (like ledger_leaves including all) partition by range (leaf_index);
       create table bench_raw_leaves_0 partition of bench_raw_leaves for values from (0) to (${PARTITION_LEAVES});
       create table bench_raw_checkpoints (like ledger_checkpoints including all)`,
    )
    const keys = new Map(cars.map((car) => [car.vehicle, car.publicKey]))
    const ingester = createBatchIngester(db, { resolveVehicleKey: async (vehicle) => keys.get(vehicle) })
    const maxGroupBatches = 64
    const eventsPerRound = w.vehicles * w.batchesPerVehicle * w.eventsPerBatch
    let rssPeak = 0
    const sampler = setInterval(() => {
      rssPeak = Math.max(rssPeak, process.memoryUsage.rss())
    }, 50)
    const rssBefore = process.memoryUsage.rss()
    rssPeak = rssBefore
    const ingestPerSecond: number[] = []
    const rawCopyPerSecond: number[] = []
    const ratios: number[] = []
    let rawIndex = 0
    for (let r = 0; r < w.rounds + 1; r++) {
      const started = performance.now()
      await sendRound(ingester, cars, r)
      const ingestRate = eventsPerRound / ((performance.now() - started) / 1000)
      // The same rows, in commits of the ingester's largest group, vehicles interleaved as they arrived.
      const batches: RawRows[] = []
      for (let b = 0; b < w.batchesPerVehicle; b++)
        for (const car of cars) batches.push(car.rounds[r]![b]!.rows)
      const commits: RawCommit[] = []
      for (let i = 0; i < batches.length; i += maxGroupBatches) {
        const commit = rawCommit(batches.slice(i, i + maxGroupBatches), rawIndex)
        commits.push(commit)
        rawIndex += commit.rows
      }
      const rawStarted = performance.now()
      await rawCopy(db, commits)
      const rawRate = eventsPerRound / ((performance.now() - rawStarted) / 1000)
      if (r > 0) {
        ingestPerSecond.push(ingestRate)
        rawCopyPerSecond.push(rawRate)
        ratios.push(ingestRate / rawRate)
      }
      process.stderr.write(
        `ingest ${engine} round ${r === 0 ? 'warm-up' : r}: ${Math.round(ingestRate)} events/s, raw COPY ${Math.round(rawRate)} rows/s\n`,
      )
    }
    clearInterval(sampler)
    const { rows } = await db.query<{ tree_size: bigint }>('select tree_size from ledger_log')
    if (Number(rows[0]!.tree_size) !== eventsPerRound * (w.rounds + 1))
      throw new BaseError('INTERNAL', `the log holds ${rows[0]!.tree_size} events`)
    const tables = await tableBytes(db, ledgerTables)
    let eventBytes = 0
    for (const car of cars)
      for (const round of car.rounds)
        for (const batch of round)
          for (const e of batch.rows.events)
            eventBytes += e.leafInput.length + e.salt.length + Buffer.byteLength(e.data)
    return {
      engine,
      storage: {
        databaseBytes: Object.values(tables).reduce((sum, bytes) => sum + bytes, 0),
        eventBytes,
        events: Number(rows[0]!.tree_size),
        tables,
      },
      vehicles: w.vehicles,
      eventsPerBatch: w.eventsPerBatch,
      eventsPerRound,
      ingestPerSecond,
      rawCopyPerSecond,
      ratios,
      rssBeforeMb: rssBefore / 2 ** 20,
      rssPeakMb: Math.max(rssPeak, process.memoryUsage.rss()) / 2 ** 20,
      batchesMb,
    }
  } finally {
    await close()
  }
}

/** Runs the ingest benchmark in a child process and resolves with its report. */
export function runIngestChild(
  engine: IngestEngine,
  quick: boolean,
  progress: (line: string) => void,
): Promise<IngestReport> {
  const script = fileURLToPath(import.meta.url)
  const child = spawn(process.execPath, [script, '--engine', engine, ...(quick ? ['--quick'] : [])], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: process.env,
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk) => {
    stdout += chunk
  })
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk
    for (const line of String(chunk).split('\n')) if (line.startsWith('ingest ')) progress(line)
  })
  return new Promise((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code) => {
      if (code !== 0) {
        reject(
          new BaseError(
            'INTERNAL',
            `the ingest bench (${engine}) exited ${code}: ${stderr.trim().split('\n').at(-1)}`,
          ),
        )
        return
      }
      resolve(JSON.parse(stdout.trim().split('\n').at(-1)!) as IngestReport)
    })
  })
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const engineIndex = process.argv.indexOf('--engine')
  const engine = (engineIndex >= 0 ? process.argv[engineIndex + 1] : 'pglite') as IngestEngine
  const report = await runIngest(engine, process.argv.includes('--quick'))
  process.stdout.write(`${JSON.stringify(report)}\n`)
}
