/**
 * The Merkle log in the database (PGlite or PostgreSQL; schema in
 * src/db/migrations/0002_ledger.sql, described in docs/ledger.md).
 *
 * Appends cost O(batch + log n): the log head row keeps the *frontier* (the perfect subtrees
 * covering the tree), each append hashes the new leaves into it and writes the perfect subtrees
 * it completes (≤ log n per leaf, one on average). Proofs and old roots are folds of O(log n)
 * stored perfect subtrees: nothing is ever recomputed from all leaves.
 *
 * One writer at a time: an append locks the log head row for its transaction; readers see the
 * last committed tree and never wait. Every function takes the database (or an open
 * transaction, for reads) first, viem style.
 */
import { CopyBinaryWriter } from '../db/copy-binary.ts'
import type { Database, Queryable } from '../db/database.ts'
import { BaseError, type ErrorCode, toBaseError } from '../errors.ts'
import { logger } from '../log.ts'
import { equalBytes, fromHex, type Hex, toBareHex, toHex } from './bytes.ts'
import {
  type Envelope,
  encodeEnvelope,
  GENESIS_PREV,
  odometerKm,
  type Payload,
  parseEnvelopeBytes,
  type VehicleAddress,
} from './envelope.ts'
import {
  consistencyProofPlan,
  EMPTY_ROOT,
  foldNodes,
  HASH_BYTES,
  hashChildren,
  hashLeaf,
  inclusionProofPlan,
  type NodeRef,
  type ProofPlan,
  rangeNodes,
} from './merkle.ts'
import { checkLeafPartition, ensureLeafPartitions, makePartitionsAhead } from './partitions.ts'
import type { TimeSpan } from './payload-access.ts'
import { baseOf, isShardScoped, shardOf, shardOfVehicle, withShard } from './shards.ts'

const log = logger('ledger.store')

/** The most entries `getEntries` returns at once. */
export const MAX_ENTRIES_PAGE = 1000

/** An event handed to the store: its envelope (already validated) and, usually, its payload. */
export type StoredEventInput = {
  envelope: Envelope
  /** The canonical envelope bytes, when the caller has them already (saves re-encoding). */
  leafInput?: Uint8Array | undefined
  /** The leaf hash, when the caller has it already. */
  leafHash?: Uint8Array | undefined
  /** The event id (`0x` + leaf hash), when the caller has it already. */
  id?: Hex | undefined
  payload?: Payload | undefined
  /** The payload data's canonical JSON (JCS), when the caller has it already. */
  payloadJson?: string | undefined
}

export type AppendBatchParameters = {
  vehicle: VehicleAddress
  /** Consecutive events of `vehicle`, oldest first; may start with events already stored. */
  events: readonly StoredEventInput[]
  /** The vehicle's P-256 signature over the newest event's leaf hash (checked by the caller). */
  checkpointSignature: Uint8Array
}

export type AppendBatchReturnType = {
  /** Event ids (`0x` + leaf hash), one per event, in order. */
  ids: Hex[]
  /** Each event's index in the log. */
  leafIndexes: number[]
  /** How many of the events were already stored (a re-sent batch); 0 for a new batch. */
  duplicates: number
  /** The log after the append. */
  treeSize: number
  rootHash: Hex
}

/**
 * Appends one vehicle's batch in one transaction, checking it continues the vehicle's chain as
 * stored (under the log lock, so two batches cannot race):
 * - seq follows the stored head (else EVENT_GAP) and `prev` links to its leaf hash (else EVENT_FORK);
 * - events already stored (same seq) must be byte-identical: they are acknowledged again with
 *   their stored ids (idempotent re-send); a different event at a stored seq is EVENT_FORK;
 * - time never decreases (EVENT_TIME_REGRESSION), nor odometer readings (ODOMETER_ROLLBACK).
 * A fork is kept as evidence (ledger_forks) and, like a rollback, raises a tamper alert
 * (ledger_alerts), both after the refused transaction rolled back. Resolves only after commit.
 */
export async function appendBatch(
  db: Database,
  parameters: AppendBatchParameters,
): Promise<AppendBatchReturnType> {
  const [outcome] = await appendBatches(db, [parameters])
  if (!outcome!.ok) throw outcome!.error
  return outcome!.result
}

/** Each batch's outcome, in the order given. */
export type AppendBatchesReturnType = (
  | { ok: true; result: AppendBatchReturnType }
  | { ok: false; error: BaseError }
)[]

/**
 * Group commit: appends several batches (of one or many vehicles) in ONE transaction and one
 * write statement, with `appendBatch`'s rules applied to each in order. A refused batch does not
 * affect the others; its slot holds the error. A failure of the transaction itself fails all.
 * The node's ingest uses it to turn many small concurrent batches into one commit.
 */
export async function appendBatches(
  db: Database,
  batches: readonly AppendBatchParameters[],
): Promise<AppendBatchesReturnType> {
  const outcomes: AppendBatchesReturnType = new Array(batches.length)
  const prepared: PreparedBatch[] = []
  batches.forEach((batch, slot) => {
    try {
      prepared.push(prepareBatch(batch, slot))
    } catch (error) {
      outcomes[slot] = { ok: false, error: toBaseError(error) }
    }
  })
  if (prepared.length > 0) {
    const base = baseOf(db)
    const append = () => db.transaction((tx) => appendInTransaction(tx, base, prepared))
    try {
      let settled: Awaited<ReturnType<typeof append>>
      try {
        settled = await append()
      } catch (error) {
        if (!(error instanceof BaseError && error.code === 'LEDGER_PARTITION_MISSING')) throw error
        await ensureLeafPartitions(base, Number(error.details.leafIndex))
        settled = await append()
      }
      for (const [slot, outcome] of settled.outcomes) outcomes[slot] = outcome
      await keepPartitionsAhead(base, settled.treeSize)
    } catch (error) {
      const failure = toBaseError(error)
      for (const batch of prepared) outcomes[batch.slot] ??= { ok: false, error: failure }
    }
    const evidence: Evidence[] = []
    for (const batch of prepared) {
      const outcome = outcomes[batch.slot]!
      if (
        !outcome.ok &&
        (outcome.error.code === 'EVENT_FORK' || outcome.error.code === 'ODOMETER_ROLLBACK')
      ) {
        evidence.push(evidenceOf(batch, outcome.error))
      }
    }
    const backlog = unwritten.get(baseOf(db))
    if (evidence.length > 0 || (backlog !== undefined && Date.now() >= backlog.retryAtMs))
      await writeEvidence(db, evidence)
  }
  return outcomes
}

type PreparedEvent = StoredEventInput & { leafInput: Uint8Array; leafHash: Uint8Array; id: Hex }
type PreparedBatch = {
  slot: number
  vehicle: VehicleAddress
  vehicleBytes: Uint8Array
  events: PreparedEvent[]
  checkpointSignature: Uint8Array
}

function prepareBatch(batch: AppendBatchParameters, slot: number): PreparedBatch {
  const { vehicle } = batch
  if (batch.events.length === 0) {
    throw new BaseError('INVALID_ARGUMENT', 'a batch holds at least one event', { details: { vehicle } })
  }
  const vehicleBytes = fromHex(vehicle, 'vehicle', 20)
  const events = batch.events.map((event, i) => {
    if (event.envelope.vehicle !== vehicle) {
      throw new BaseError(
        'EVENT_VEHICLE_MISMATCH',
        `an event of ${event.envelope.vehicle} in a batch of ${vehicle}`,
        {
          details: { vehicle, eventVehicle: event.envelope.vehicle, seq: event.envelope.seq },
        },
      )
    }
    let prepared: PreparedEvent
    if (event.leafInput !== undefined && event.leafHash !== undefined && event.id !== undefined) {
      prepared = event as PreparedEvent
    } else {
      const leafInput = event.leafInput ?? encodeEnvelope(event.envelope)
      const leafHash = event.leafHash ?? hashLeaf(leafInput)
      prepared = { ...event, leafInput, leafHash, id: toHex(leafHash) }
    }
    // Batch-internal continuity (ingest checks it too; the store does not trust its callers).
    if (i > 0) {
      const first = batch.events[0]!.envelope.seq
      if (event.envelope.seq !== first + i) {
        throw new BaseError(
          'EVENT_GAP',
          `seq ${event.envelope.seq} follows seq ${first + i - 1} in the batch`,
          {
            details: { vehicle, seq: event.envelope.seq, expectedSeq: first + i },
          },
        )
      }
    }
    return prepared
  })
  for (let i = 1; i < events.length; i++) {
    const prev = events[i]!.envelope.prev
    if (typeof prev !== 'string' || prev.length !== 2 * HASH_BYTES || !events[i - 1]!.id.endsWith(prev)) {
      const seq = events[i]!.envelope.seq
      throw new BaseError('EVENT_FORK', `event ${seq} does not link to event ${seq - 1} of the batch`, {
        details: { vehicle, seq },
      })
    }
  }
  return { slot, vehicle, vehicleBytes, events, checkpointSignature: batch.checkpointSignature }
}

type LogRow = { tree_size: bigint; root_hash: Uint8Array; frontier: Uint8Array }
type HeadRow = {
  last_seq: bigint
  last_leaf_hash: Uint8Array
  last_time_ms: bigint
  odometer_km: number | null
}
/** A vehicle's head while a group is being admitted (stored head plus the group's own events). */
type Head = {
  vehicleBytes: Uint8Array
  nextSeq: number
  leafHash: Uint8Array | undefined
  timeMs: number
  odometerKm: number | undefined
  /** First seq appended by this group, if any: events from there on are not in the database yet. */
  pendingFrom: number | undefined
  pending: { leafHash: Uint8Array; index: number }[]
  changed: boolean
}

/**
 * One group's append, in the transaction, as named steps: take the log lock and the vehicles'
 * heads (`lockLogAndHeads`), check each batch against its vehicle's head (`admit`), add the
 * admitted events to the tree in memory (`sequenceBatch`), then write everything at once
 * (`writeAppends`). A refused batch leaves the tree and its head as they were.
 */
async function appendInTransaction(
  tx: Queryable,
  db: Database,
  batches: PreparedBatch[],
): Promise<{ outcomes: [number, AppendBatchesReturnType[number]][]; treeSize: number }> {
  const shard = shardOf(tx)
  const { logRow, heads, shards } = await lockLogAndHeads(tx, shard, batches)
  const treeSizeBefore = Number(logRow.tree_size)
  const group = startGroup(logRow.frontier, treeSizeBefore)
  const outcomes: [number, AppendBatchesReturnType[number]][] = []
  const accepted: { slot: number; result: Omit<AppendBatchReturnType, 'treeSize' | 'rootHash'> }[] = []
  for (const batch of batches) {
    let admitted: Admitted
    let head: Head
    try {
      checkShard(batch, shard, shards)
      head = headOf(heads, batch)
      admitted = await admit(tx, batch, head)
    } catch (error) {
      if (!(error instanceof BaseError)) throw error
      outcomes.push([batch.slot, { ok: false, error }])
      continue
    }
    accepted.push({ slot: batch.slot, result: sequenceBatch(group, batch, head, admitted) })
  }
  const rootHash = foldNodes(group.frontier.map((node) => node.hash))
  if (group.fresh.length > 0) {
    await checkLeafPartition(tx, db, group.size - 1)
    await writeAppends(tx, db.engine, shard, { ...group, heads, rootHash })
  }
  const treeSize = group.size
  const rootHex = toHex(treeSize === treeSizeBefore ? logRow.root_hash : rootHash)
  for (const { slot, result } of accepted)
    outcomes.push([slot, { ok: true, result: { ...result, treeSize, rootHash: rootHex } }])
  return { outcomes, treeSize }
}

/**
 * After a commit: the partitions reach past the shard's new size, so the next appends find theirs
 * (src/ledger/partitions.ts). The append is committed whatever happens here; a failure is logged,
 * and an append that then finds its partition missing makes it (LEDGER_PARTITION_MISSING, retried).
 */
async function keepPartitionsAhead(db: Database, treeSize: number): Promise<void> {
  try {
    await makePartitionsAhead(db, treeSize)
  } catch (error) {
    log.error(
      { err: error, treeSize },
      'could not make the next partition of ledger_leaves; the next append tries again',
    )
  }
}

/** A vehicle's events belong to its shard's log only: SHARDS_MISMATCH otherwise. */
function checkShard(batch: PreparedBatch, shard: number, shards: number): void {
  const own = shardOfVehicle(batch.vehicleBytes, shards)
  if (own !== shard)
    throw new BaseError(
      'SHARDS_MISMATCH',
      `${batch.vehicle} belongs to shard ${own} of ${shards}, not to shard ${shard}`,
      { details: { vehicle: batch.vehicle, shard: own, shards, appendedTo: shard } },
    )
}

/**
 * Takes the shard's one-writer lock (its log head row, held until commit or rollback; other
 * shards append meanwhile) and reads the log head, the deployment's shard count and the group's
 * vehicles' heads, in one round trip.
 */
async function lockLogAndHeads(
  tx: Queryable,
  shard: number,
  batches: PreparedBatch[],
): Promise<{ logRow: LogRow; heads: Map<string, Head>; shards: number }> {
  const vehicles = [...new Set(batches.map((batch) => batch.vehicle))]
  const { rows } = await tx.query<
    LogRow & { shards: number } & { vehicle: Uint8Array | null } & {
      [K in keyof HeadRow]: HeadRow[K] | null
    }
  >(
    `select l.tree_size, l.root_hash, l.frontier, (select count(*)::int from ledger_log) as shards,
            v.vehicle, v.last_seq, v.last_leaf_hash, v.last_time_ms, v.odometer_km
       from ledger_log l
       left join ledger_vehicles v on v.vehicle in (select decode(x, 'hex') from unnest($1::text[]) as x)
      where l.shard = $2 for update of l`,
    [vehicles.map((vehicle) => vehicle.slice(2)), shard],
  )
  const logRow = rows[0]
  if (logRow === undefined) throw missingShard(shard)
  const heads = new Map<string, Head>()
  for (const row of rows) {
    if (row.vehicle === null) continue
    heads.set(toHex(row.vehicle), {
      vehicleBytes: new Uint8Array(row.vehicle),
      nextSeq: Number(row.last_seq) + 1,
      leafHash: new Uint8Array(row.last_leaf_hash!),
      timeMs: Number(row.last_time_ms),
      odometerKm: row.odometer_km ?? undefined,
      pendingFrom: undefined,
      pending: [],
      changed: false,
    })
  }
  return { logRow, heads, shards: Number(logRow.shards) }
}

function missingShard(shard: number): BaseError {
  return shard === 0
    ? new BaseError('INTERNAL', 'the ledger_log row is missing (migration 0002 not applied?)')
    : new BaseError('NOT_FOUND', `the log has no shard ${shard}`, { details: { shard } })
}

/** The batch's vehicle's head: as stored, or a new vehicle's empty head (added to `heads`). */
function headOf(heads: Map<string, Head>, batch: PreparedBatch): Head {
  let head = heads.get(batch.vehicle)
  if (head === undefined) {
    head = {
      vehicleBytes: batch.vehicleBytes,
      nextSeq: 0,
      leafHash: undefined,
      timeMs: 0,
      odometerKm: undefined,
      pendingFrom: undefined,
      pending: [],
      changed: false,
    }
    heads.set(batch.vehicle, head)
  }
  return head
}

/** The tree as the group extends it in memory, and every row it will write. */
type Group = Omit<Writes, 'heads' | 'rootHash'>

function startGroup(frontier: Uint8Array, treeSize: number): Group {
  return {
    size: treeSize,
    frontier: decodeFrontier(frontier, treeSize),
    fresh: [],
    nodeLevels: [],
    nodeIndexes: [],
    nodeHashes: [],
    checkpoints: [],
  }
}

/**
 * Adds an admitted batch's new events to the group's tree and moves its vehicle's head on;
 * answers the batch's ids and leaf indexes (re-sent events first, with their stored ones).
 */
function sequenceBatch(
  group: Group,
  batch: PreparedBatch,
  head: Head,
  admitted: Admitted,
): Omit<AppendBatchReturnType, 'treeSize' | 'rootHash'> {
  const { frontier } = group
  const ids = admitted.stored.map((event) => toHex(event.leafHash))
  const leafIndexes = admitted.stored.map((event) => event.index)
  // Extend the tree from the frontier: merging while the new subtree has a left sibling of
  // its level; each merge completes one perfect subtree.
  for (const event of admitted.fresh) {
    let hash = event.leafHash
    let level = 0
    let index = group.size
    while (frontier.length > 0 && frontier[frontier.length - 1]!.level === level) {
      hash = hashChildren(frontier.pop()!.hash, hash)
      level++
      index = Math.floor(index / 2)
      if (level % NODE_STRIDE === 0) {
        group.nodeLevels.push(level)
        group.nodeIndexes.push(index)
        group.nodeHashes.push(hash)
      }
    }
    frontier.push({ level, hash })
    group.fresh.push({ event, vehicleBytes: batch.vehicleBytes, index: group.size })
    head.pendingFrom ??= event.envelope.seq
    head.pending.push({ leafHash: event.leafHash, index: group.size })
    ids.push(event.id)
    leafIndexes.push(group.size)
    group.size++
  }
  if (admitted.fresh.length > 0) {
    const last = admitted.fresh[admitted.fresh.length - 1]!
    group.checkpoints.push({
      vehicleBytes: batch.vehicleBytes,
      seq: last.envelope.seq,
      leafHash: last.leafHash,
      signature: batch.checkpointSignature,
    })
    head.nextSeq = last.envelope.seq + 1
    head.leafHash = last.leafHash
    head.timeMs = admitted.timeMs
    head.odometerKm = admitted.odometerKm
    head.changed = true
  }
  return { ids, leafIndexes, duplicates: admitted.stored.length }
}

type Admitted = {
  stored: { leafHash: Uint8Array; index: number }[]
  fresh: PreparedEvent[]
  timeMs: number
  odometerKm: number | undefined
}

/** Checks a batch against its vehicle's head; throws the refusal. Does not change `head`. */
async function admit(tx: Queryable, batch: PreparedBatch, head: Head): Promise<Admitted> {
  const { vehicle, events } = batch
  const first = events[0]!.envelope.seq
  if (first > head.nextSeq) {
    throw new BaseError(
      'EVENT_GAP',
      `the batch starts at seq ${first}; the next seq of ${vehicle} is ${head.nextSeq}`,
      {
        details: { vehicle, seq: first, expectedSeq: head.nextSeq },
      },
    )
  }
  // Events already accepted: identical ones are a re-send, different ones a fork.
  const overlap = Math.min(events.length, head.nextSeq - first)
  const stored: Admitted['stored'] = []
  if (overlap > 0) {
    const inDatabaseEnd = Math.min(first + overlap, head.pendingFrom ?? Number.POSITIVE_INFINITY)
    const fromDatabase = new Map<number, { leafHash: Uint8Array; index: number }>()
    if (first < inDatabaseEnd) {
      const { rows } = await tx.query<{ seq: bigint; leaf_hash: Uint8Array; leaf_index: bigint }>(
        `select seq, leaf_hash, leaf_index from ledger_leaves
          where vehicle = $1 and seq >= $2 and seq < $3`,
        [batch.vehicleBytes, first, inDatabaseEnd],
      )
      for (const row of rows) {
        fromDatabase.set(Number(row.seq), {
          leafHash: new Uint8Array(row.leaf_hash),
          index: Number(row.leaf_index),
        })
      }
    }
    for (let i = 0; i < overlap; i++) {
      const seq = first + i
      const known =
        head.pendingFrom !== undefined && seq >= head.pendingFrom
          ? head.pending[seq - head.pendingFrom]
          : fromDatabase.get(seq)
      if (known === undefined)
        throw new BaseError('INTERNAL', `seq ${seq} of ${vehicle} is missing from the log`)
      if (!equalBytes(known.leafHash, events[i]!.leafHash)) {
        throw new BaseError('EVENT_FORK', `seq ${seq} of ${vehicle} is already stored as another event`, {
          details: { vehicle, seq, storedId: toHex(known.leafHash), receivedId: toHex(events[i]!.leafHash) },
        })
      }
      stored.push(known)
    }
  }
  const fresh = events.slice(stored.length)
  let timeMs = head.timeMs
  let lastKm = head.odometerKm
  if (fresh.length === 0) return { stored, fresh, timeMs, odometerKm: lastKm }

  // The first new event continues the head.
  const expectedPrev = head.leafHash === undefined ? GENESIS_PREV : toBareHex(head.leafHash)
  const firstFresh = fresh[0]!.envelope
  if (firstFresh.prev !== expectedPrev) {
    throw new BaseError(
      'EVENT_FORK',
      `seq ${firstFresh.seq} of ${vehicle} does not link to the stored seq ${head.nextSeq - 1}`,
      {
        details: { vehicle, seq: firstFresh.seq, prev: firstFresh.prev, storedPrev: expectedPrev },
      },
    )
  }
  for (const event of fresh) {
    const { envelope, payload } = event
    if (envelope.time < timeMs) {
      throw new BaseError(
        'EVENT_TIME_REGRESSION',
        `seq ${envelope.seq} of ${vehicle} is earlier than the one before`,
        {
          details: { vehicle, seq: envelope.seq, time: envelope.time, previousTime: timeMs },
        },
      )
    }
    timeMs = envelope.time
    if (envelope.kind === 'odometer' && payload !== undefined) {
      const km = odometerKm(payload.data)
      if (lastKm !== undefined && km < lastKm) {
        throw new BaseError(
          'ODOMETER_ROLLBACK',
          `odometer of ${vehicle} went back from ${lastKm} km to ${km} km`,
          {
            details: { vehicle, seq: envelope.seq, km, previousKm: lastKm },
          },
        )
      }
      lastKm = km
    }
    // Canonical JSON writes U+0000 as \u0000: without that text, no string holds one.
    const json = event.payloadJson
    if (payload !== undefined && (json === undefined || json.includes('\\u0000')) && holdsNul(payload.data)) {
      // PostgreSQL's jsonb cannot hold U+0000.
      throw new BaseError('EVENT_MALFORMED', `the payload of seq ${envelope.seq} holds a U+0000 character`, {
        details: { vehicle, seq: envelope.seq },
      })
    }
  }
  return { stored, fresh, timeMs, odometerKm: lastKm }
}

type FreshEvent = { event: PreparedEvent; vehicleBytes: Uint8Array; index: number }

type Writes = {
  fresh: FreshEvent[]
  nodeLevels: number[]
  nodeIndexes: number[]
  nodeHashes: Uint8Array[]
  checkpoints: { vehicleBytes: Uint8Array; seq: number; leafHash: Uint8Array; signature: Uint8Array }[]
  heads: Map<string, Head>
  size: number
  rootHash: Uint8Array
  frontier: FrontierNode[]
}

/**
 * Every write of a group: the leaf rows (payloads included) by binary COPY — no SQL parameters to
 * serialize, no statement to parse per row — then one statement of data-modifying CTEs for the
 * few other rows (perfect subtrees, checkpoints, vehicle heads) and the log head.
 */
async function writeAppends(
  tx: Queryable,
  engine: Database['engine'],
  shard: number,
  writes: Writes,
): Promise<void> {
  const { fresh, checkpoints } = writes
  const leaves = new CopyBinaryWriter(fresh.length * 512)
  for (const { event, vehicleBytes, index } of fresh) {
    const { envelope, payload } = event
    leaves
      .row(10)
      .int2(shard)
      .int8(index)
      .bytes(event.leafHash)
      .bytes(event.leafInput)
      .bytes(vehicleBytes)
      .int8(envelope.seq)
      .int8(envelope.time)
      .text(envelope.kind)
    // jsonb does not keep key order: any JSON text of the data will do (the canonical one is at hand).
    if (payload !== undefined)
      leaves.bytes(payload.salt).jsonb(event.payloadJson ?? JSON.stringify(payload.data))
    else leaves.null().null()
  }
  await tx.copyFrom(
    'ledger_leaves (shard, leaf_index, leaf_hash, leaf_input, vehicle, seq, time_ms, kind, salt, data)',
    leaves.end(),
  )

  // The rest is small (a perfect subtree per 16 leaves, a row per batch and per vehicle): one
  // statement, rather than a round trip more for a COPY of its own.
  const changedHeads = [...writes.heads.values()].filter((head) => head.changed)
  const params: unknown[] = []
  const p = (value: unknown) => {
    params.push(value)
    return `$${params.length}`
  }
  const nodes = rowSource(engine, p, [
    { values: writes.nodeLevels, type: 'smallint' },
    { values: writes.nodeIndexes, type: 'bigint' },
    { bytes: writes.nodeHashes, fixed: HASH_BYTES },
  ])
  const signed = rowSource(engine, p, [
    { bytes: checkpoints.map((checkpoint) => checkpoint.vehicleBytes), fixed: 20 },
    { values: checkpoints.map((checkpoint) => checkpoint.seq), type: 'bigint' },
    { bytes: checkpoints.map((checkpoint) => checkpoint.leafHash), fixed: HASH_BYTES },
    { bytes: checkpoints.map((checkpoint) => checkpoint.signature) },
  ])
  const head = rowSource(engine, p, [
    { bytes: changedHeads.map((h) => h.vehicleBytes), fixed: 20 },
    { values: changedHeads.map((h) => h.nextSeq - 1), type: 'bigint' },
    { bytes: changedHeads.map((h) => h.leafHash!), fixed: HASH_BYTES },
    { values: changedHeads.map((h) => h.timeMs), type: 'bigint' },
    { values: changedHeads.map((h) => h.odometerKm ?? null), type: 'float8' },
  ])
  await tx.query(
    `with nodes as (
       insert into ledger_nodes (shard, level, node_index, hash)
       select ${p(shard)}::smallint, ${nodes.columns.join(', ')} from ${nodes.from}
     ), checkpoints as (
       insert into ledger_checkpoints (vehicle, seq, leaf_hash, signature)
       select ${signed.columns.join(', ')} from ${signed.from}
       on conflict (vehicle, seq) do nothing
     ), heads as (
       insert into ledger_vehicles (vehicle, last_seq, last_leaf_hash, last_time_ms, odometer_km)
       select ${head.columns.join(', ')} from ${head.from}
       on conflict (vehicle) do update set last_seq = excluded.last_seq, last_leaf_hash = excluded.last_leaf_hash,
         last_time_ms = excluded.last_time_ms, odometer_km = excluded.odometer_km, updated_at = now()
     )
     update ledger_log set tree_size = ${p(writes.size)}, root_hash = ${p(writes.rootHash)},
       frontier = ${p(encodeFrontier(writes.frontier))}, updated_at = now() where shard = ${p(shard)}`,
    params,
  )
}

type SourceColumn =
  | { values: readonly unknown[]; type: string }
  | { bytes: readonly Uint8Array[]; fixed?: number }

/**
 * A multi-row source `unnest(…) with ordinality as r(…)` and one SQL expression per column.
 * Bytes travel the way each engine takes them fastest (measured): PGlite serializes bytea[]
 * elements and large binary parameters slowly, so there they go as hex text[] and `decode`;
 * PostgreSQL takes one binary bytea per column (sent in binary by node-pg) cut with `substr`.
 */
function rowSource(
  engine: Database['engine'],
  p: (value: unknown) => string,
  columns: SourceColumn[],
): { from: string; columns: string[] } {
  const args: string[] = []
  const names: string[] = []
  const expressions = columns.map((column, i) => {
    const name = `c${i}`
    if ('values' in column) {
      args.push(`${p(column.values)}::${column.type}[]`)
      names.push(name)
      return `r.${name}`
    }
    if (engine === 'pglite') {
      args.push(`${p(column.bytes.map(toBareHex))}::text[]`)
      names.push(name)
      return `decode(r.${name}, 'hex')`
    }
    const blob = p(Buffer.concat(column.bytes))
    if (column.fixed !== undefined)
      return `substr(${blob}::bytea, (r.n::int4 - 1) * ${column.fixed} + 1, ${column.fixed})`
    const offsets: number[] = []
    let offset = 1
    for (const bytes of column.bytes) {
      offsets.push(offset)
      offset += bytes.length
    }
    args.push(`${p(offsets)}::int4[]`, `${p(column.bytes.map((bytes) => bytes.length))}::int4[]`)
    names.push(`${name}_offset`, `${name}_length`)
    return `substr(${blob}::bytea, r.${name}_offset, r.${name}_length)`
  })
  return {
    from: `unnest(${args.join(', ')}) with ordinality as r(${names.join(', ')}, n)`,
    columns: expressions,
  }
}

function holdsNul(value: unknown): boolean {
  if (typeof value === 'string') return value.includes('\u0000')
  if (typeof value !== 'object' || value === null) return false
  if (Array.isArray(value)) return value.some(holdsNul)
  return Object.entries(value).some(([key, item]) => key.includes('\u0000') || holdsNul(item))
}

type FrontierNode = { level: number; hash: Uint8Array }

function decodeFrontier(bytes: Uint8Array, treeSize: number): FrontierNode[] {
  const refs = rangeNodes(0, treeSize)
  if (bytes.length !== refs.length * HASH_BYTES) {
    throw new BaseError('INTERNAL', `the log frontier holds ${bytes.length} bytes for tree size ${treeSize}`)
  }
  return refs.map((ref, i) => ({ level: ref.level, hash: bytes.slice(i * HASH_BYTES, (i + 1) * HASH_BYTES) }))
}

function encodeFrontier(frontier: FrontierNode[]): Uint8Array {
  const bytes = new Uint8Array(frontier.length * HASH_BYTES)
  frontier.forEach((node, i) => {
    bytes.set(node.hash, i * HASH_BYTES)
  })
  return bytes
}

/** A refused batch's tamper evidence: the conflicting chain (forks only) and the alert. */
type Evidence = {
  vehicleBytes: Uint8Array
  code: ErrorCode
  seq: number
  fork: { storedLeafHash: Uint8Array | null; receivedLeafHash: Uint8Array | null; batch: string } | undefined
  /** The alert's details (JSON). */
  details: string
}

function evidenceOf(prepared: PreparedBatch, error: BaseError): Evidence {
  const { vehicleBytes, events, checkpointSignature } = prepared
  const seq = typeof error.details.seq === 'number' ? error.details.seq : events[0]!.envelope.seq
  const { storedId, receivedId } = error.details
  return {
    vehicleBytes,
    code: error.code,
    seq,
    // The conflicting, vehicle-signed chain is the evidence: envelopes and signature, no payload data.
    fork:
      error.code === 'EVENT_FORK'
        ? {
            storedLeafHash: typeof storedId === 'string' ? fromHex(storedId, 'storedId') : null,
            receivedLeafHash: typeof receivedId === 'string' ? fromHex(receivedId, 'receivedId') : null,
            batch: JSON.stringify({
              envelopes: events.map((event) => event.envelope),
              checkpoint: {
                leafHash: toHex(events[events.length - 1]!.leafHash),
                signature: toHex(checkpointSignature),
              },
            }),
          }
        : undefined,
    details: JSON.stringify({ message: error.shortMessage, ...error.details }),
  }
}

/** The most tamper records kept in memory while the database refuses them (each ≤ a batch's envelopes). */
export const MAX_UNWRITTEN_EVIDENCE = 100
/** The wait before writing unwritten evidence again, with a later append. */
const EVIDENCE_RETRY_MS = 5000

// Evidence whose write failed, per database, oldest first: written before any newer evidence.
const unwritten = new WeakMap<Database, { evidence: Evidence[]; lastError: string; retryAtMs: number }>()

/**
 * Writes `evidence` after whatever evidence is still unwritten, each record (fork and alert) in
 * its own transaction. A failure is never swallowed: it is logged with the evidence itself, the
 * rest is kept in memory (at most MAX_UNWRITTEN_EVIDENCE, the oldest dropped loudly) and written
 * with a later append, and `unwrittenEvidence` reports it (the node's health shows it).
 */
async function writeEvidence(scoped: Database, evidence: Evidence[]): Promise<void> {
  const db = baseOf(scoped)
  const queue = [...(unwritten.get(db)?.evidence ?? []), ...evidence]
  for (let i = 0; i < queue.length; i++) {
    const record = queue[i]!
    try {
      await db.transaction(async (tx) => {
        if (record.fork !== undefined) {
          await tx.query(
            `insert into ledger_forks (vehicle, seq, stored_leaf_hash, received_leaf_hash, batch)
             values ($1, $2, $3, $4, $5::jsonb)`,
            [
              record.vehicleBytes,
              record.seq,
              record.fork.storedLeafHash,
              record.fork.receivedLeafHash,
              record.fork.batch,
            ],
          )
        }
        await tx.query(
          'insert into ledger_alerts (vehicle, code, seq, details) values ($1, $2, $3, $4::jsonb)',
          [record.vehicleBytes, record.code, record.seq, record.details],
        )
      })
    } catch (error) {
      const left = queue.slice(i)
      for (const dropped of left.splice(0, Math.max(0, left.length - MAX_UNWRITTEN_EVIDENCE))) {
        log.error(
          { ...describeEvidence(dropped), batch: dropped.fork?.batch },
          'tamper evidence dropped: the database refused it too long; this log line is its only record',
        )
      }
      log.error(
        { err: error, ...describeEvidence(record), unwritten: left.length },
        'tamper evidence (fork or odometer rollback) could not be stored; kept in memory and written again with a later append',
      )
      unwritten.set(db, {
        evidence: left,
        lastError: (error as Error)?.message ?? String(error),
        retryAtMs: Date.now() + EVIDENCE_RETRY_MS,
      })
      return
    }
  }
  unwritten.delete(db)
}

function describeEvidence(evidence: Evidence): Record<string, unknown> {
  return {
    vehicle: toHex(evidence.vehicleBytes),
    code: evidence.code,
    seq: evidence.seq,
    details: JSON.parse(evidence.details),
  }
}

/**
 * Tamper evidence (forks, odometer rollbacks) that `db` refused and this process still holds:
 * how many records and why the last write failed; `count` 0 when everything is stored.
 */
export function unwrittenEvidence(db: Database): { count: number; lastError: string | undefined } {
  const backlog = unwritten.get(baseOf(db))
  return { count: backlog?.evidence.length ?? 0, lastError: backlog?.lastError }
}

/** Writes the evidence `db` refused before now (e.g. once the database is repaired). */
export async function writeUnwrittenEvidence(db: Database): Promise<void> {
  if (unwritten.has(baseOf(db))) await writeEvidence(db, [])
}

// ---------------------------------------------------------------------------------------------
// Reads

export type GetCheckpointReturnType = { treeSize: number; rootHash: Hex }

/** The newest committed tree of the shard `db` is scoped to (shard 0 when it is not): its size and root. */
export async function getCheckpoint(db: Queryable): Promise<GetCheckpointReturnType> {
  const shard = shardOf(db)
  const row = (
    await db.query<LogRow>('select tree_size, root_hash from ledger_log where shard = $1', [shard])
  ).rows[0]
  if (row === undefined) throw missingShard(shard)
  return { treeSize: Number(row.tree_size), rootHash: toHex(row.root_hash) }
}

export type LogEntry = { index: number; leafInput: Uint8Array; leafHash: Hex }
export type GetEntriesReturnType = { entries: LogEntry[] }

/**
 * Leaves [start, end) of the log (end exclusive), at most MAX_ENTRIES_PAGE of them and never
 * beyond the committed tree: fewer than asked means "ask again from where this ended".
 */
export async function getEntries(db: Queryable, start: number, end: number): Promise<GetEntriesReturnType> {
  checkIndex('start', start)
  checkIndex('end', end)
  if (end < start) {
    throw new BaseError('TREE_SIZE_INVALID', `end (${end}) is before start (${start})`, {
      details: { start, end },
    })
  }
  const { treeSize } = await getCheckpoint(db)
  const stop = Math.min(end, start + MAX_ENTRIES_PAGE, treeSize)
  if (stop <= start) return { entries: [] }
  const { rows } = await db.query<{ leaf_index: bigint; leaf_input: Uint8Array; leaf_hash: Uint8Array }>(
    `select leaf_index, leaf_input, leaf_hash from ledger_leaves
      where shard = $3 and leaf_index >= $1 and leaf_index < $2 order by leaf_index`,
    [start, stop, shardOf(db)],
  )
  return {
    entries: rows.map((row) => ({
      index: Number(row.leaf_index),
      leafInput: new Uint8Array(row.leaf_input),
      leafHash: toHex(row.leaf_hash),
    })),
  }
}

export type StoredEvent = {
  /** The shard whose log holds the event; `index` is its place there. */
  shard: number
  index: number
  id: Hex
  leafInput: Uint8Array
  envelope: Envelope
}

/**
 * One event by its id (leaf hash), in the shard `db` is scoped to, or in any shard when it is not
 * (a leaf hash names one event of one vehicle, so of one shard); NOT_FOUND when there is no such leaf.
 */
export async function getEvent(db: Queryable, id: Hex | Uint8Array): Promise<StoredEvent> {
  const leafHash = typeof id === 'string' ? fromHex(id, 'id', HASH_BYTES) : id
  const row = (
    await db.query<{ shard: number; leaf_index: bigint; leaf_input: Uint8Array }>(
      // By leaf_hash alone: a shard in the condition may lead the planner to that shard's whole
      // primary-key range (in a partition it has no statistics for yet). A leaf hash names one
      // event, so the shard is checked on the row.
      'select shard::int as shard, leaf_index, leaf_input from ledger_leaves where leaf_hash = $1',
      [leafHash],
    )
  ).rows.find((found) => !isShardScoped(db) || found.shard === shardOf(db))
  if (row === undefined) {
    throw new BaseError('NOT_FOUND', `no event ${toHex(leafHash)} in the log`, {
      details: { id: toHex(leafHash) },
    })
  }
  const leafInput = new Uint8Array(row.leaf_input)
  return {
    shard: row.shard,
    index: Number(row.leaf_index),
    id: toHex(leafHash),
    leafInput,
    envelope: parseEnvelopeBytes(leafInput),
  }
}

export type VehicleHead = { seq: number; leafHash: Hex; timeMs: number; odometerKm: number | undefined }

/** Where a vehicle's chain stands in the log; undefined before its first event. */
export async function getVehicleHead(
  db: Queryable,
  vehicle: VehicleAddress,
): Promise<VehicleHead | undefined> {
  const row = (
    await db.query<HeadRow>(
      'select last_seq, last_leaf_hash, last_time_ms, odometer_km from ledger_vehicles where vehicle = $1',
      [fromHex(vehicle, 'vehicle', 20)],
    )
  ).rows[0]
  if (row === undefined) return undefined
  return {
    seq: Number(row.last_seq),
    leafHash: toHex(row.last_leaf_hash),
    timeMs: Number(row.last_time_ms),
    odometerKm: row.odometer_km ?? undefined,
  }
}

function checkIndex(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new BaseError('TREE_SIZE_INVALID', `${name} must be an integer ≥ 0, got ${value}`, {
      details: { [name]: value },
    })
  }
}

async function checkTreeSize(
  db: Queryable,
  name: string,
  treeSize: number,
): Promise<GetCheckpointReturnType> {
  checkIndex(name, treeSize)
  const checkpoint = await getCheckpoint(db)
  if (treeSize > checkpoint.treeSize) {
    throw new BaseError(
      'TREE_SIZE_INVALID',
      `${name} ${treeSize} is beyond the log (${checkpoint.treeSize})`,
      {
        details: { [name]: treeSize, logSize: checkpoint.treeSize },
      },
    )
  }
  return checkpoint
}

/**
 * `ledger_nodes` keeps the perfect subtrees of every NODE_STRIDE-th level only (4, 8, 12, …),
 * one row per 2^4 leaves instead of one per leaf; a subtree of any other level is hashed on read
 * from at most 2^(NODE_STRIDE-1) = 8 stored ones below it (level 0: the leaf hashes).
 */
const NODE_STRIDE = 4

/**
 * Fetches perfect subtree hashes in one query — stored ones directly, the others from the
 * stored level below them — and hashes the latter up.
 */
async function fetchNodes(db: Queryable, refs: readonly NodeRef[]): Promise<(ref: NodeRef) => Uint8Array> {
  // The stored rows each level needs, as runs of consecutive indexes: a proof's siblings within
  // one stride lie side by side, so each run is one index range scan instead of a probe per row.
  const wanted = new Map<number, Set<number>>()
  for (const { level, index } of refs) {
    const base = level - (level % NODE_STRIDE)
    const width = 2 ** (level - base)
    const indexes = wanted.get(base) ?? new Set<number>()
    wanted.set(base, indexes)
    for (let i = index * width; i < (index + 1) * width; i++) indexes.add(i)
  }
  const nodeRuns: { level: number; from: number; to: number }[] = []
  const leafRuns: { from: number; to: number }[] = []
  for (const [level, indexes] of wanted) {
    for (const run of runsOf(indexes)) {
      if (level === 0) leafRuns.push(run)
      else nodeRuns.push({ level, ...run })
    }
  }
  // The LIMIT (the longest run) tells the planner each range is small; without it a range
  // between unknown bounds is estimated at a ninth of the table, and a large log gets a plan
  // (and JIT compilation) for millions of rows.
  const longest = Math.max(1, ...[...nodeRuns, ...leafRuns].map((run) => run.to - run.from + 1))
  const { rows } = await db.query<{ level: number; node_index: bigint; hash: Uint8Array }>(
    `select n.level::int as level, n.node_index, n.hash
       from unnest($1::smallint[], $2::bigint[], $3::bigint[]) as r(level, lo, hi)
       cross join lateral (
         select level, node_index, hash from ledger_nodes
          where shard = $6 and level = r.level and node_index between r.lo and r.hi
          order by node_index limit $7) n
     union all
     select 0, l.leaf_index, l.leaf_hash
       from unnest($4::bigint[], $5::bigint[]) as r(lo, hi)
       cross join lateral (
         select leaf_index, leaf_hash from ledger_leaves
          where shard = $6 and leaf_index between r.lo and r.hi
          order by leaf_index limit $7) l`,
    [
      nodeRuns.map((run) => run.level),
      nodeRuns.map((run) => run.from),
      nodeRuns.map((run) => run.to),
      leafRuns.map((run) => run.from),
      leafRuns.map((run) => run.to),
      shardOf(db),
      longest,
    ],
  )
  const found = new Map<string, Uint8Array>()
  for (const row of rows) found.set(`${row.level}:${row.node_index}`, new Uint8Array(row.hash))
  const stored = (level: number, index: number) => {
    const hash = found.get(`${level}:${index}`)
    if (hash === undefined) {
      throw new BaseError('INTERNAL', `perfect subtree (${level}, ${index}) is missing from the log`, {
        details: { level, index },
      })
    }
    return hash
  }
  const subtree = (level: number, index: number, base: number): Uint8Array =>
    level === base
      ? stored(level, index)
      : hashChildren(subtree(level - 1, 2 * index, base), subtree(level - 1, 2 * index + 1, base))
  return (ref) => subtree(ref.level, ref.index, ref.level - (ref.level % NODE_STRIDE))
}

/**
 * `indexes` as inclusive runs [from, to], a gap of up to RUN_GAP indexes bridged: reading a row
 * or two more in a range scan costs less than another scan.
 */
function runsOf(indexes: ReadonlySet<number>): { from: number; to: number }[] {
  const sorted = [...indexes].sort((a, b) => a - b)
  const runs: { from: number; to: number }[] = []
  for (const index of sorted) {
    const last = runs[runs.length - 1]
    if (last !== undefined && index - last.to <= RUN_GAP + 1) last.to = index
    else runs.push({ from: index, to: index })
  }
  return runs
}

/** The most unneeded rows `runsOf` bridges between two needed ones. */
const RUN_GAP = 2

/**
 * The hashes of the perfect subtrees (level, start) … (level, start + count − 1), in one query:
 * at level 0 the leaf hashes. The caller keeps them within the committed tree.
 */
export async function getSubtreeHashes(
  db: Queryable,
  level: number,
  start: number,
  count: number,
): Promise<Uint8Array[]> {
  const refs = Array.from({ length: count }, (_, i) => ({ level, index: start + i }))
  const node = await fetchNodes(db, refs)
  return refs.map(node)
}

async function resolveStoredPlan(db: Queryable, plan: ProofPlan): Promise<Uint8Array[]> {
  const node = await fetchNodes(db, plan.flat())
  return plan.map((refs) => foldNodes(refs.map(node)))
}

/** MTH of the first `treeSize` leaves (any size up to the log's), from O(log n) stored nodes. */
export async function getRootAt(db: Queryable, treeSize: number): Promise<Hex> {
  const checkpoint = await checkTreeSize(db, 'treeSize', treeSize)
  if (treeSize === checkpoint.treeSize) return checkpoint.rootHash
  if (treeSize === 0) return toHex(EMPTY_ROOT)
  const [root] = await resolveStoredPlan(db, [rangeNodes(0, treeSize)])
  return toHex(root!)
}

export type GetInclusionProofReturnType = { leafIndex: number; treeSize: number; auditPath: Hex[] }

/**
 * The RFC 9162 §2.1.3 inclusion proof of the leaf with `leafHash` in the tree of `treeSize`.
 * NOT_FOUND for an unknown leaf; TREE_SIZE_INVALID when the tree is beyond the log or too small
 * to hold the leaf.
 */
export async function getInclusionProof(
  db: Queryable,
  leafHash: Hex | Uint8Array,
  treeSize: number,
): Promise<GetInclusionProofReturnType> {
  await checkTreeSize(db, 'treeSize', treeSize)
  // The leaf must be in this shard's log, scoped or not.
  const { index } = await getEvent(isShardScoped(db) ? db : withShard(db, 0), leafHash)
  if (index >= treeSize) {
    throw new BaseError('TREE_SIZE_INVALID', `leaf ${index} is not in the tree of size ${treeSize}`, {
      details: { leafIndex: index, treeSize },
    })
  }
  const auditPath = await resolveStoredPlan(db, inclusionProofPlan(index, treeSize))
  return { leafIndex: index, treeSize, auditPath: auditPath.map(toHex) }
}

export type GetConsistencyProofReturnType = { first: number; second: number; proof: Hex[] }

/** The RFC 9162 §2.1.4 consistency proof between the trees of sizes `first` ≤ `second`. */
export async function getConsistencyProof(
  db: Queryable,
  first: number,
  second: number,
): Promise<GetConsistencyProofReturnType> {
  checkIndex('first', first)
  await checkTreeSize(db, 'second', second)
  const proof = await resolveStoredPlan(db, consistencyProofPlan(first, second))
  return { first, second, proof: proof.map(toHex) }
}

// ---------------------------------------------------------------------------------------------
// Payloads and erasure

/** The payload of an event: NOT_FOUND if none was stored, PAYLOAD_ERASED once erased. */
export async function getPayload(db: Queryable, id: Hex | Uint8Array): Promise<Payload> {
  const leafHash = typeof id === 'string' ? fromHex(id, 'id', HASH_BYTES) : id
  const row = (
    await db.query<{ salt: Uint8Array | null; data: unknown; erased_at: Date | null }>(
      'select salt, data, erased_at from ledger_leaves where leaf_hash = $1',
      [leafHash],
    )
  ).rows[0]
  if (row === undefined || (row.salt === null && row.erased_at === null)) {
    throw new BaseError('NOT_FOUND', `no payload for event ${toHex(leafHash)}`, {
      details: { id: toHex(leafHash) },
    })
  }
  if (row.erased_at !== null || row.salt === null) {
    throw new BaseError('PAYLOAD_ERASED', `the payload of event ${toHex(leafHash)} was erased`, {
      details: { id: toHex(leafHash), erasedAt: row.erased_at?.toISOString() },
    })
  }
  return { salt: new Uint8Array(row.salt), data: row.data as Payload['data'] }
}

/**
 * Erases an event's payload (salt and data) for good; the envelope, its commitment and every
 * proof stay valid. Returns whether there was a payload to erase. An erased odometer reading
 * leaves the vehicle's head too (see {@link eraseVehicle}).
 */
export async function erasePayload(db: Database, id: Hex | Uint8Array): Promise<boolean> {
  const leafHash = typeof id === 'string' ? fromHex(id, 'id', HASH_BYTES) : id
  return db.transaction(async (tx) => {
    const { rows: found } = await tx.query<{ shard: number }>(
      'select shard::int as shard from ledger_leaves where leaf_hash = $1',
      [leafHash],
    )
    if (found[0] === undefined) return false
    await lockLog(tx, found[0].shard)
    const { rows } = await tx.query<{ vehicle: Uint8Array }>(
      `update ledger_leaves set salt = null, data = null, erased_at = now()
        where leaf_hash = $1 and salt is not null
       returning vehicle`,
      [leafHash],
    )
    if (rows[0]) await keepOnlyUnerasedOdometer(tx, rows[0].vehicle)
    return rows.length > 0
  })
}

/**
 * Erases every payload of a vehicle (e.g. a right-to-erasure request), or only those of events
 * whose time lies in `periods` (an owner's title periods); returns how many.
 *
 * The vehicle's head then keeps the newest odometer reading whose payload is still there, or
 * none: the reading is payload data, and erasure must not leave it behind. Rollback detection
 * (ODOMETER_ROLLBACK) goes on from that reading. Both run under the append lock, so an append
 * in flight cannot write the erased reading back with its head.
 */
export async function eraseVehicle(
  db: Database,
  vehicle: VehicleAddress,
  periods?: readonly TimeSpan[],
): Promise<number> {
  const vehicleBytes = fromHex(vehicle, 'vehicle', 20)
  return db.transaction(async (tx) => {
    const { rows: found } = await tx.query<{ shard: number }>(
      'select shard::int as shard from ledger_leaves where vehicle = $1 limit 1',
      [vehicleBytes],
    )
    if (found[0] === undefined) return 0
    await lockLog(tx, found[0].shard)
    const { rows } = await tx.query(
      `update ledger_leaves set salt = null, data = null, erased_at = now()
        where vehicle = $1 and salt is not null
          and ($2::bigint[] is null or exists (
            select 1 from unnest($2::bigint[], $3::bigint[]) as p(from_ms, until_ms)
             where time_ms >= p.from_ms and time_ms < p.until_ms))
       returning 1`,
      [
        vehicleBytes,
        periods ? periods.map((p) => p.fromMs) : null,
        periods ? periods.map((p) => p.untilMs) : null,
      ],
    )
    if (rows.length > 0) await keepOnlyUnerasedOdometer(tx, vehicleBytes)
    return rows.length
  })
}

/** The one-writer lock appends to `shard` take (its log head row), held until the transaction ends. */
async function lockLog(tx: Queryable, shard: number): Promise<void> {
  await tx.query('select 1 from ledger_log where shard = $1 for update', [shard])
}

/** Sets the vehicle head's odometer to its newest reading whose payload is not erased, or null. */
async function keepOnlyUnerasedOdometer(tx: Queryable, vehicleBytes: Uint8Array): Promise<void> {
  await tx.query(
    `update ledger_vehicles set odometer_km = (
       select (data->>'km')::float8 from ledger_leaves
        where vehicle = $1 and kind = 'odometer' and salt is not null
        order by seq desc limit 1)
      where vehicle = $1`,
    [vehicleBytes],
  )
}

export type LedgerAlert = {
  id: number
  vehicle: VehicleAddress
  code: string
  seq: number | undefined
  details: unknown
  createdAt: Date
}

/** Tamper alerts (forks, odometer rollbacks), newest first; optionally for one vehicle. */
export async function getAlerts(
  db: Queryable,
  parameters: { vehicle?: VehicleAddress | undefined; limit?: number | undefined } = {},
): Promise<LedgerAlert[]> {
  const limit = Math.min(Math.max(1, parameters.limit ?? 100), MAX_ENTRIES_PAGE)
  const { rows } = await db.query<{
    id: bigint
    vehicle: Uint8Array
    code: string
    seq: bigint | null
    details: unknown
    created_at: Date
  }>(
    `select id, vehicle, code, seq, details, created_at from ledger_alerts
      where $1::bytea is null or vehicle = $1 order by id desc limit $2`,
    [parameters.vehicle === undefined ? null : fromHex(parameters.vehicle, 'vehicle', 20), limit],
  )
  return rows.map((row) => ({
    id: Number(row.id),
    vehicle: toHex(row.vehicle) as VehicleAddress,
    code: row.code,
    seq: row.seq === null ? undefined : Number(row.seq),
    details: row.details,
    createdAt: row.created_at,
  }))
}

/** A store bound to one database: the same functions without the first argument. */
export type LedgerStore = {
  appendBatch(parameters: AppendBatchParameters): Promise<AppendBatchReturnType>
  getCheckpoint(): Promise<GetCheckpointReturnType>
  getEntries(start: number, end: number): Promise<GetEntriesReturnType>
  getEvent(id: Hex | Uint8Array): Promise<StoredEvent>
  getVehicleHead(vehicle: VehicleAddress): Promise<VehicleHead | undefined>
  getRootAt(treeSize: number): Promise<Hex>
  getInclusionProof(leafHash: Hex | Uint8Array, treeSize: number): Promise<GetInclusionProofReturnType>
  getConsistencyProof(first: number, second: number): Promise<GetConsistencyProofReturnType>
  getPayload(id: Hex | Uint8Array): Promise<Payload>
  erasePayload(id: Hex | Uint8Array): Promise<boolean>
  eraseVehicle(vehicle: VehicleAddress, periods?: readonly TimeSpan[]): Promise<number>
  getAlerts(parameters?: { vehicle?: VehicleAddress; limit?: number }): Promise<LedgerAlert[]>
}

/** Binds the store functions to `db`. */
export function createLedgerStore(db: Database): LedgerStore {
  return {
    appendBatch: (parameters) => appendBatch(db, parameters),
    getCheckpoint: () => getCheckpoint(db),
    getEntries: (start, end) => getEntries(db, start, end),
    getEvent: (id) => getEvent(db, id),
    getVehicleHead: (vehicle) => getVehicleHead(db, vehicle),
    getRootAt: (treeSize) => getRootAt(db, treeSize),
    getInclusionProof: (leafHash, treeSize) => getInclusionProof(db, leafHash, treeSize),
    getConsistencyProof: (first, second) => getConsistencyProof(db, first, second),
    getPayload: (id) => getPayload(db, id),
    erasePayload: (id) => erasePayload(db, id),
    eraseVehicle: (vehicle, periods) => eraseVehicle(db, vehicle, periods),
    getAlerts: (parameters) => getAlerts(db, parameters),
  }
}
