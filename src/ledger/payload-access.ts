/**
 * Who may read a vehicle's payloads at a node (docs/api.md "Payload access"): its owner or a
 * manager, or a reader they admitted with a DataGrant (src/ledger/data-grant.ts) that has not
 * expired and whose signer still owns or manages the car (a sale ends every reader the old owner
 * admitted). Readers live in `node_readers` (src/db/migrations/0004_readers.sql).
 *
 * Title checks are the caller's (`VehicleRegistry.isOwnerOrManager` on chain now), so this module
 * needs no chain client.
 */
import { type Address, getAddress } from 'viem'
import type { Queryable } from '../db/database.ts'
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

export type AdmitReaderParameters = {
  vehicle: Address
  reader: Address
  /** The DataGrant's signer, already checked to own or manage the vehicle. */
  grantedBy: Address
  /** Unix seconds. */
  notAfter: number
  signature: Hex
}

/** Stores a verified DataGrant: the reader is admitted (replacing its previous grant). */
export async function admitReader(db: Queryable, parameters: AdmitReaderParameters): Promise<void> {
  await db.query(
    `insert into node_readers (vehicle, reader, granted_by, not_after, signature) values ($1, $2, $3, $4, $5)
     on conflict (vehicle, reader) do update set granted_by = excluded.granted_by, not_after = excluded.not_after,
       signature = excluded.signature, created_at = now()`,
    [
      fromHex(parameters.vehicle, 'vehicle', 20),
      fromHex(parameters.reader, 'reader', 20),
      fromHex(parameters.grantedBy, 'signer', 20),
      parameters.notAfter,
      fromHex(parameters.signature, 'signature', 65),
    ],
  )
}

/** Removes a reader; returns how many grants were removed (0 or 1). */
export async function removeReader(db: Queryable, vehicle: Address, reader: Address): Promise<number> {
  const { rows } = await db.query('delete from node_readers where vehicle = $1 and reader = $2 returning 1', [
    fromHex(vehicle, 'vehicle', 20),
    fromHex(reader, 'reader', 20),
  ])
  return rows.length
}
