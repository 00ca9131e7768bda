/**
 * The CSMS's records (migrations 0010, 0011): stations with their hashed HTTP Basic password,
 * connectors, transactions and meter values. One SQL place for all of them, on PGlite or PostgreSQL.
 */
import { randomBytes, scrypt as scryptCallback, timingSafeEqual } from 'node:crypto'
import { promisify } from 'node:util'
import { getAddress, toHex } from 'viem'
import type { Queryable } from '../db/database.ts'
import { BaseError } from '../errors.ts'

const scrypt = promisify(scryptCallback) as (
  password: Buffer,
  salt: Buffer,
  keylen: number,
) => Promise<Buffer>

/** An OCPP identity: up to 48 URL-unreserved characters (OCPP-J 2.0.1 §3.1.1, no ':'). */
export const STATION_ID = /^[A-Za-z0-9._~*-]{1,48}$/

export function checkStationId(stationId: string): string {
  if (!STATION_ID.test(stationId))
    throw new BaseError('INVALID_ARGUMENT', 'a station id is 1–48 of A–Z a–z 0–9 . _ ~ * -', {
      details: { stationId: stationId.slice(0, 64) },
    })
  return stationId
}

/** scrypt$<salt b64>$<hash b64>; N = 16384, r = 8, p = 1 (node's defaults). */
async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16)
  const hash = await scrypt(Buffer.from(password, 'utf8'), salt, 32)
  return `scrypt$${salt.toString('base64')}$${hash.toString('base64')}`
}

async function passwordMatches(stored: string, password: Buffer): Promise<boolean> {
  const [kind, salt, hash] = stored.split('$')
  if (kind !== 'scrypt' || !salt || !hash) return false
  const expected = Buffer.from(hash, 'base64')
  const actual = await scrypt(password, Buffer.from(salt, 'base64'), expected.length)
  return timingSafeEqual(actual, expected)
}

/**
 * Registers a station (or sets a new password for one, and lifts a revocation). A password, when
 * given, must be 16–40 characters (OCPP's BasicAuthPassword); without one a random one is drawn.
 * Answers the password in clear: the only time it is seen.
 */
export async function registerStation(
  db: Queryable,
  stationId: string,
  password?: string,
): Promise<{ stationId: string; password: string }> {
  checkStationId(stationId)
  const secret = password ?? randomBytes(15).toString('base64url')
  if (secret.length < 16 || secret.length > 40)
    throw new BaseError('INVALID_ARGUMENT', 'a station password is 16–40 characters', {
      details: { length: secret.length },
    })
  await db.query(
    `insert into ocpp_stations (station_id, password_hash) values ($1, $2)
     on conflict (station_id) do update set password_hash = excluded.password_hash, revoked_at = null`,
    [stationId, await hashPassword(secret)],
  )
  return { stationId, password: secret }
}

/** Revokes a station: refused at every later handshake (a connected one is disconnected by the CSMS). */
export async function revokeStation(db: Queryable, stationId: string): Promise<void> {
  const { rows } = await db.query(
    'update ocpp_stations set revoked_at = coalesce(revoked_at, now()) where station_id = $1 returning station_id',
    [stationId],
  )
  if (rows.length === 0)
    throw new BaseError('NOT_FOUND', `no OCPP station ${stationId}`, { details: { stationId } })
}

export type HandshakeVerdict = { ok: true } | { ok: false; status: 401 | 403; reason: string }

/**
 * Whether a station may connect: known, not revoked, and (`password` given) the password matches
 * its hash. `password` undefined means the connection authenticated otherwise (mutual TLS).
 */
export async function checkStationLogin(
  db: Queryable,
  stationId: string,
  password: Buffer | undefined,
  requirePassword: boolean,
): Promise<HandshakeVerdict> {
  const { rows } = await db.query<{ password_hash: string | null; revoked_at: Date | null }>(
    'select password_hash, revoked_at from ocpp_stations where station_id = $1',
    [stationId],
  )
  const station = rows[0]
  if (!station) return { ok: false, status: 401, reason: 'unknown station' }
  if (station.revoked_at) return { ok: false, status: 403, reason: 'station revoked' }
  if (!requirePassword) return { ok: true }
  if (!password || !station.password_hash) return { ok: false, status: 401, reason: 'no password' }
  if (!(await passwordMatches(station.password_hash, password)))
    return { ok: false, status: 401, reason: 'wrong password' }
  return { ok: true }
}

export type StationJson = {
  stationId: string
  connected: boolean
  revoked: boolean
  securityProfile: number | null
  vendorName: string | null
  model: string | null
  serialNumber: string | null
  firmwareVersion: string | null
  bootedAt: string | null
  lastSeenAt: string | null
  connectors: { evseId: number; connectorId: number; status: string; updatedAt: string }[]
}

const iso = (value: Date | string | null) => (value === null ? null : new Date(value).toISOString())

export async function listStations(db: Queryable): Promise<StationJson[]> {
  const { rows } = await db.query<{
    station_id: string
    connected: boolean
    revoked_at: Date | null
    security_profile: number | null
    vendor_name: string | null
    model: string | null
    serial_number: string | null
    firmware_version: string | null
    booted_at: Date | null
    last_seen_at: Date | null
  }>('select * from ocpp_stations order by station_id')
  const connectors = await db.query<{
    station_id: string
    evse_id: number
    connector_id: number
    status: string
    updated_at: Date
  }>('select * from ocpp_connectors order by station_id, evse_id, connector_id')
  return rows.map((row) => ({
    stationId: row.station_id,
    connected: row.connected,
    revoked: row.revoked_at !== null,
    securityProfile: row.security_profile,
    vendorName: row.vendor_name,
    model: row.model,
    serialNumber: row.serial_number,
    firmwareVersion: row.firmware_version,
    bootedAt: iso(row.booted_at),
    lastSeenAt: iso(row.last_seen_at),
    connectors: connectors.rows
      .filter((c) => c.station_id === row.station_id)
      .map((c) => ({
        evseId: c.evse_id,
        connectorId: c.connector_id,
        status: c.status,
        updatedAt: new Date(c.updated_at).toISOString(),
      })),
  }))
}

export type TransactionJson = {
  stationId: string
  transactionId: string
  evseId: number | null
  connectorId: number | null
  idToken: string | null
  idTokenType: string | null
  vehicle: string | null
  channelId: string | null
  authorizationStatus: string | null
  state: 'active' | 'ended'
  startedAt: string
  updatedAt: string
  endedAt: string | null
  seqNo: number
  triggerReason: string | null
  stoppedReason: string | null
  energyWh: number
  amount: string
  cumulativeAmount: string | null
  vouchers: number
  meterValues?: { sampledAt: string; energyWh: number | null; signed: boolean; meterValue: unknown }[]
}

type TransactionRow = {
  station_id: string
  transaction_id: string
  evse_id: number | null
  connector_id: number | null
  id_token: string | null
  id_token_type: string | null
  vehicle: Uint8Array | null
  channel_id: Uint8Array | null
  authorization_status: string | null
  state: 'active' | 'ended'
  started_at: Date
  updated_at: Date
  ended_at: Date | null
  last_seq_no: number
  trigger_reason: string | null
  stopped_reason: string | null
  energy_wh: string
  amount: string
  cumulative_amount: string | null
  vouchers: number
}

function transactionJson(row: TransactionRow): TransactionJson {
  return {
    stationId: row.station_id,
    transactionId: row.transaction_id,
    evseId: row.evse_id,
    connectorId: row.connector_id,
    idToken: row.id_token,
    idTokenType: row.id_token_type,
    vehicle: row.vehicle ? getAddress(toHex(new Uint8Array(row.vehicle))) : null,
    channelId: row.channel_id ? toHex(new Uint8Array(row.channel_id)) : null,
    authorizationStatus: row.authorization_status,
    state: row.state,
    startedAt: new Date(row.started_at).toISOString(),
    updatedAt: new Date(row.updated_at).toISOString(),
    endedAt: iso(row.ended_at),
    seqNo: row.last_seq_no,
    triggerReason: row.trigger_reason,
    stoppedReason: row.stopped_reason,
    energyWh: Number(row.energy_wh),
    amount: row.amount,
    cumulativeAmount: row.cumulative_amount,
    vouchers: row.vouchers,
  }
}

export async function listTransactions(
  db: Queryable,
  filter: { stationId?: string; state?: 'active' | 'ended'; limit?: number } = {},
): Promise<TransactionJson[]> {
  const { rows } = await db.query<TransactionRow>(
    `select * from ocpp_transactions
     where ($1::text is null or station_id = $1) and ($2::text is null or state = $2)
     order by started_at desc, transaction_id limit $3`,
    [filter.stationId ?? null, filter.state ?? null, filter.limit ?? 100],
  )
  return rows.map(transactionJson)
}

export async function getTransaction(
  db: Queryable,
  stationId: string,
  transactionId: string,
): Promise<TransactionJson> {
  const { rows } = await db.query<TransactionRow>(
    'select * from ocpp_transactions where station_id = $1 and transaction_id = $2',
    [stationId, transactionId],
  )
  if (!rows[0])
    throw new BaseError('NOT_FOUND', `no transaction ${transactionId} at ${stationId}`, {
      details: { stationId, transactionId },
    })
  const values = await db.query<{
    sampled_at: Date
    energy_wh: string | null
    signed: boolean
    meter_value: unknown
  }>(
    'select sampled_at, energy_wh, signed, meter_value from ocpp_meter_values where station_id = $1 and transaction_id = $2 order by id',
    [stationId, transactionId],
  )
  return {
    ...transactionJson(rows[0]),
    meterValues: values.rows.map((v) => ({
      sampledAt: new Date(v.sampled_at).toISOString(),
      energyWh: v.energy_wh === null ? null : Number(v.energy_wh),
      signed: v.signed,
      meterValue: v.meter_value,
    })),
  }
}
