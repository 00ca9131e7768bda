/**
 * Read models over the stored log for people: a vehicle's timeline (newest first, with payloads
 * for whoever may read them), the fleet's summary (public: no payload data) and an owner's
 * odometer. Proof-related reads live in store.ts.
 */
import type { Queryable } from '../db/database.ts'
import { fromHex, type Hex, toHex } from './bytes.ts'
import type { Envelope, VehicleAddress } from './envelope.ts'
import { parseEnvelopeBytes } from './envelope.ts'
import type { JsonValue } from './jcs.ts'
import { inPeriods, type TimeSpan } from './payload-access.ts'

export type TimelineEvent = {
  id: Hex
  /** The log shard holding the event (docs/ledger.md "Shards"; 0 in a one-shard deployment). */
  shard: number
  /** The event's leaf index in its shard's log. */
  index: number
  seq: number
  timeMs: number
  kind: string
  envelope: Envelope
  /** `{salt, data}` when the caller may read it and it was not erased; otherwise null. */
  payload: { salt: Hex; data: JsonValue } | null
  erased: boolean
}

export type ListVehicleEventsParameters = {
  vehicle: VehicleAddress
  /** Only events with seq below this (paging backwards); omitted: from the newest. */
  beforeSeq?: number | undefined
  /** At most this many (1–500, default 50). */
  limit?: number | undefined
  /** Include the payloads of events whose time lies in these spans (the reader's right to them). */
  payloadPeriods: readonly TimeSpan[]
}

/** A vehicle's events, newest first. */
export async function listVehicleEvents(
  db: Queryable,
  parameters: ListVehicleEventsParameters,
): Promise<TimelineEvent[]> {
  const limit = Math.min(Math.max(parameters.limit ?? 50, 1), 500)
  const { rows } = await db.query<{
    shard: number
    leaf_index: bigint
    leaf_hash: Uint8Array
    leaf_input: Uint8Array
    seq: bigint
    time_ms: bigint
    kind: string
    salt: Uint8Array | null
    data: JsonValue | null
    erased_at: Date | null
  }>(
    `select shard::int as shard, leaf_index, leaf_hash, leaf_input, seq, time_ms, kind, salt, data, erased_at
       from ledger_leaves
      where vehicle = $1 and ($2::bigint is null or seq < $2)
      order by seq desc limit $3`,
    [fromHex(parameters.vehicle, 'vehicle', 20), parameters.beforeSeq ?? null, limit],
  )
  return rows.map((row) => ({
    id: toHex(row.leaf_hash),
    shard: row.shard,
    index: Number(row.leaf_index),
    seq: Number(row.seq),
    timeMs: Number(row.time_ms),
    kind: row.kind,
    envelope: parseEnvelopeBytes(new Uint8Array(row.leaf_input)),
    payload:
      row.salt && row.erased_at === null && inPeriods(Number(row.time_ms), parameters.payloadPeriods)
        ? { salt: toHex(new Uint8Array(row.salt)), data: row.data as JsonValue }
        : null,
    erased: row.erased_at !== null,
  }))
}

/** What anyone may see of a vehicle: envelope metadata only, never payload data (the odometer). */
export type VehicleSummary = {
  vehicle: VehicleAddress
  events: number
  lastEvent: { kind: string; timeMs: number } | null
}

/** Every vehicle with events in the log: counts and newest event. */
export async function summarizeVehicles(db: Queryable): Promise<VehicleSummary[]> {
  const { rows } = await db.query<{
    vehicle: Uint8Array
    last_seq: bigint
    last_time_ms: bigint
    kind: string
  }>(
    `select v.vehicle, v.last_seq, v.last_time_ms, l.kind
       from ledger_vehicles v join ledger_leaves l on l.leaf_hash = v.last_leaf_hash
      order by v.vehicle`,
  )
  return rows.map((row) => ({
    vehicle: toHex(new Uint8Array(row.vehicle)) as VehicleAddress,
    events: Number(row.last_seq) + 1,
    lastEvent: { kind: row.kind, timeMs: Number(row.last_time_ms) },
  }))
}

/**
 * A vehicle's newest odometer reading (payload data) among events whose time lies in `periods`
 * (the reader's right to them), unless erased; null if there is none.
 */
export async function latestOdometerKm(
  db: Queryable,
  vehicle: VehicleAddress,
  periods: readonly TimeSpan[],
): Promise<number | null> {
  if (periods.length === 0) return null
  const { rows } = await db.query<{ km: number | null }>(
    `select (data->>'km')::float8 as km from ledger_leaves
      where vehicle = $1 and kind = 'odometer' and salt is not null
        and exists (select 1 from unnest($2::bigint[], $3::bigint[]) as p(from_ms, until_ms)
                     where time_ms >= p.from_ms and time_ms < p.until_ms)
      order by seq desc limit 1`,
    [fromHex(vehicle, 'vehicle', 20), periods.map((p) => p.fromMs), periods.map((p) => p.untilMs)],
  )
  return rows[0]?.km ?? null
}
