/**
 * Who may read a vehicle's payloads at a node (docs/api.md "Payload access"): its owner or a
 * manager, or a reader they admitted with a DataGrant (src/ledger/data-grant.ts) that has not
 * expired and whose signer still owns or manages the car (a sale ends every reader the old owner
 * admitted). Readers live in `node_readers` (src/db/migrations/0004_readers.sql), their removals
 * in `node_reader_removals` (0009_payload_access.sql).
 *
 * Title checks are the caller's (`VehicleRegistry.isOwnerOrManager` on chain now), so this module
 * needs no chain client.
 */
import { createHash } from 'node:crypto'
import { type Address, getAddress } from 'viem'
import type { Database, Queryable } from '../db/database.ts'
import { BaseError } from '../errors.ts'
import { fromHex, type Hex, toHex } from './bytes.ts'

/** Whether `account` is `vehicle`'s title owner or a manager now. */
export type TitleCheck = (vehicle: Address, account: Address) => Promise<boolean>

/** Whether `reader` may read `vehicle`'s payloads now. */
export async function mayReadPayloads(
  db: Queryable,
  isOwnerOrManager: TitleCheck,
  vehicle: Address,
  reader: Address | undefined,
): Promise<boolean> {
  if (!reader) return false
  if (await isOwnerOrManager(vehicle, reader)) return true
  const { rows } = await db.query<{ granted_by: Uint8Array }>(
    'select granted_by from node_readers where vehicle = $1 and reader = $2 and not_after >= $3',
    [fromHex(vehicle, 'vehicle', 20), fromHex(reader, 'reader', 20), Math.floor(Date.now() / 1000)],
  )
  const grantor = rows[0] && getAddress(toHex(new Uint8Array(rows[0].granted_by)))
  return grantor !== undefined && (await isOwnerOrManager(vehicle, grantor))
}

/** How far in the future a DataGrant's `issuedAtMs` may lie (clock skew between signer and node). */
export const MAX_GRANT_CLOCK_SKEW_MS = 5 * 60_000

export type AdmitReaderParameters = {
  vehicle: Address
  reader: Address
  /** The DataGrant's signer, already checked to own or manage the vehicle. */
  grantedBy: Address
  /** Unix seconds. */
  notAfter: number
  /** The grant's signing time, unix milliseconds. */
  issuedAtMs: number
  signature: Hex
}

/** One transaction at a time per (vehicle, reader): admissions and removals are serialised. */
async function lockReader(tx: Queryable, vehicle: Address, reader: Address): Promise<void> {
  const key = createHash('sha256')
    .update(fromHex(vehicle, 'vehicle', 20))
    .update(fromHex(reader, 'reader', 20))
    .digest()
    .readBigInt64BE(0)
  await tx.query('select pg_advisory_xact_lock($1)', [key.toString()])
}

/**
 * Stores a verified DataGrant: the reader is admitted, replacing its previous grant — only if
 * the grant is newer than every grant accepted for this reader and than its last removal, so an
 * old grant can be neither replayed after a removal nor put back over a newer one
 * (DATA_GRANT_STALE). A grant dated beyond the clock skew is refused (GRANT_NOT_YET_VALID): it
 * would lock out the owner's own grants until then.
 */
export async function admitReader(db: Database, parameters: AdmitReaderParameters): Promise<void> {
  const { vehicle, reader, issuedAtMs } = parameters
  if (issuedAtMs > Date.now() + MAX_GRANT_CLOCK_SKEW_MS)
    throw new BaseError(
      'GRANT_NOT_YET_VALID',
      `the DataGrant is issued at ${new Date(issuedAtMs).toISOString()}, in the future; sign it with the current time`,
      { details: { issuedAtMs, nowMs: Date.now() } },
    )
  const vehicleBytes = fromHex(vehicle, 'vehicle', 20)
  const readerBytes = fromHex(reader, 'reader', 20)
  await db.transaction(async (tx) => {
    await lockReader(tx, vehicle, reader)
    const { rows } = await tx.query<{ issued_at_ms: string | null; removed_at_ms: string | null }>(
      `select (select issued_at_ms from node_readers where vehicle = $1 and reader = $2)::text as issued_at_ms,
              (select removed_at_ms from node_reader_removals where vehicle = $1 and reader = $2)::text as removed_at_ms`,
      [vehicleBytes, readerBytes],
    )
    const newestMs = Number(rows[0]?.issued_at_ms ?? -1)
    const removedAtMs = Number(rows[0]?.removed_at_ms ?? -1)
    if (issuedAtMs <= newestMs || issuedAtMs <= removedAtMs)
      throw new BaseError(
        'DATA_GRANT_STALE',
        issuedAtMs <= removedAtMs
          ? `${reader} was removed at ${new Date(removedAtMs).toISOString()}; a grant issued before cannot admit it again: sign a new one`
          : `a DataGrant for ${reader} issued at ${new Date(newestMs).toISOString()} is already in force; an older or the same one cannot replace it`,
        { details: { vehicle, reader, issuedAtMs, newestAcceptedMs: newestMs, removedAtMs } },
      )
    await tx.query(
      `insert into node_readers (vehicle, reader, granted_by, not_after, signature, issued_at_ms) values ($1, $2, $3, $4, $5, $6)
       on conflict (vehicle, reader) do update set granted_by = excluded.granted_by, not_after = excluded.not_after,
         signature = excluded.signature, issued_at_ms = excluded.issued_at_ms, created_at = now()`,
      [
        vehicleBytes,
        readerBytes,
        fromHex(parameters.grantedBy, 'signer', 20),
        parameters.notAfter,
        fromHex(parameters.signature, 'signature', 65),
        issuedAtMs,
      ],
    )
  })
}

/**
 * Removes a reader and records the removal, so no grant issued before it (posted or not) admits
 * the reader again; returns how many grants were removed (0 or 1).
 */
export async function removeReader(db: Database, vehicle: Address, reader: Address): Promise<number> {
  const vehicleBytes = fromHex(vehicle, 'vehicle', 20)
  const readerBytes = fromHex(reader, 'reader', 20)
  return db.transaction(async (tx) => {
    await lockReader(tx, vehicle, reader)
    const { rows } = await tx.query<{ issued_at_ms: string }>(
      'delete from node_readers where vehicle = $1 and reader = $2 returning issued_at_ms::text',
      [vehicleBytes, readerBytes],
    )
    // The newer of now and the removed grant's time: a grant dated ahead of the node's clock stays dead.
    const removedAtMs = Math.max(Date.now(), Number(rows[0]?.issued_at_ms ?? 0))
    await tx.query(
      `insert into node_reader_removals (vehicle, reader, removed_at_ms) values ($1, $2, $3)
       on conflict (vehicle, reader) do update set removed_at_ms = greatest(node_reader_removals.removed_at_ms, excluded.removed_at_ms)`,
      [vehicleBytes, readerBytes, removedAtMs],
    )
    return rows.length
  })
}
