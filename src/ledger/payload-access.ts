/**
 * Who may read and erase which of a vehicle's payloads at a node (docs/api.md "Payload access").
 *
 * A vehicle's history is cut into *title periods*: from each VehicleRegistry `Transfer` (its
 * block's timestamp) to the next, every event belonging to the period its car-signed `time`
 * falls in. Then:
 * - the title owner and its managers (on chain now) read and erase the owner's periods;
 * - a past owner still reads and erases its own periods, and nothing after them;
 * - a reader admitted with a DataGrant (src/ledger/data-grant.ts) that has not expired reads
 *   the periods of the owner it was granted under, while that owner still holds the title and
 *   the grant's signer still owns or manages the car (a sale ends every reader the seller
 *   admitted); a reader never erases.
 *
 * Tables: `node_readers` (0004_readers.sql), `node_reader_removals` and `node_title_transfers`
 * (0009_payload_access.sql), the latter filled by the node's chain indexer. Title checks on
 * chain are the caller's (`TitleChain`), so this module needs no chain client.
 */
import { createHash } from 'node:crypto'
import { type Address, getAddress } from 'viem'
import type { Database, Queryable } from '../db/database.ts'
import { BaseError } from '../errors.ts'
import { fromHex, type Hex, toHex } from './bytes.ts'

/** Whether `account` is `vehicle`'s title owner or a manager now. */
export type TitleCheck = (vehicle: Address, account: Address) => Promise<boolean>

/** The chain now: the title's owner and managers (`VehicleRegistry`). */
export type TitleChain = {
  isOwnerOrManager: TitleCheck
  /** The title's owner, or null when it has none (not minted, burnt). */
  ownerOf(vehicle: Address): Promise<Address | null>
}

/** The end of an open period (the current owner's): later than any event time. */
export const OPEN_PERIOD_END_MS = Number.MAX_SAFE_INTEGER

/** A span of event time, unix ms, `[fromMs, untilMs)`. */
export type TimeSpan = { fromMs: number; untilMs: number }

/** One owner's hold of a title, in event time. */
export type TitlePeriod = TimeSpan & { owner: Address }

/** One `Transfer` of a title, as the chain indexer saw it. */
export type TitleTransfer = {
  vehicle: Address
  /** The new owner (the zero address when burnt). */
  owner: Address
  blockNumber: bigint
  logIndex: number
  /** The block's timestamp, unix ms. */
  atMs: number
}

/** What an account may do with a vehicle's payloads: the periods it reads and those it erases. */
export type PayloadAccess = { readable: TitlePeriod[]; erasable: TitlePeriod[] }

const ZERO_ADDRESS = getAddress(`0x${'0'.repeat(40)}`)
const NO_ACCESS: PayloadAccess = { readable: [], erasable: [] }

/** Whether an event at `timeMs` lies in one of `spans`. */
export function inPeriods(timeMs: number, spans: readonly TimeSpan[]): boolean {
  return spans.some((span) => timeMs >= span.fromMs && timeMs < span.untilMs)
}

/**
 * Replaces what is recorded of blocks `fromBlock`..`toBlock` with `transfers` (all the Transfer
 * events of those blocks), so a pass over blocks a reorg changed heals them.
 */
export async function recordTitleTransfers(
  db: Database,
  range: { fromBlock: bigint; toBlock: bigint },
  transfers: readonly TitleTransfer[],
): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.query('delete from node_title_transfers where block_number between $1 and $2', [
      range.fromBlock,
      range.toBlock,
    ])
    for (const transfer of transfers)
      await tx.query(
        `insert into node_title_transfers (vehicle, block_number, log_index, owner, at_ms) values ($1, $2, $3, $4, $5)
         on conflict do nothing`,
        [
          fromHex(transfer.vehicle, 'vehicle', 20),
          transfer.blockNumber,
          transfer.logIndex,
          fromHex(transfer.owner, 'owner', 20),
          transfer.atMs,
        ],
      )
  })
}

/**
 * A title's periods, oldest first: each transfer's new owner holds it until the next transfer
 * (the newest until {@link OPEN_PERIOD_END_MS}); the first period reaches back to time 0, so
 * events a car recorded before its title was minted belong to its first owner. A burnt title's
 * period (owner zero) belongs to nobody.
 */
export async function titlePeriods(db: Queryable, vehicle: Address): Promise<TitlePeriod[]> {
  const { rows } = await db.query<{ owner: Uint8Array; at_ms: string }>(
    `select owner, at_ms::text from node_title_transfers where vehicle = $1
      order by block_number, log_index`,
    [fromHex(vehicle, 'vehicle', 20)],
  )
  return rows.map((row, i) => ({
    owner: getAddress(toHex(new Uint8Array(row.owner))),
    fromMs: i === 0 ? 0 : Number(row.at_ms),
    untilMs: i + 1 < rows.length ? Number(rows[i + 1]!.at_ms) : OPEN_PERIOD_END_MS,
  }))
}

const periodsOf = (periods: readonly TitlePeriod[], owner: Address | null) =>
  periods.filter((period) => period.owner === owner && owner !== ZERO_ADDRESS)

/** The periods of the owner `reader`'s live DataGrant was accepted under, or none. */
async function readerPeriods(
  db: Queryable,
  chain: TitleChain,
  vehicle: Address,
  reader: Address,
  owner: Address | null,
  periods: readonly TitlePeriod[],
): Promise<TitlePeriod[]> {
  const { rows } = await db.query<{ granted_by: Uint8Array; title_owner: Uint8Array | null }>(
    `select granted_by, title_owner from node_readers
      where vehicle = $1 and reader = $2 and not_after >= $3`,
    [fromHex(vehicle, 'vehicle', 20), fromHex(reader, 'reader', 20), Math.floor(Date.now() / 1000)],
  )
  const row = rows[0]
  if (!row || owner === null) return []
  // Granted under another owner: that owner's title has moved on, and the grant with it.
  if (row.title_owner && getAddress(toHex(new Uint8Array(row.title_owner))) !== owner) return []
  const grantor = getAddress(toHex(new Uint8Array(row.granted_by)))
  return (await chain.isOwnerOrManager(vehicle, grantor)) ? periodsOf(periods, owner) : []
}

/**
 * The payloads `account` may read and erase (see the module comment). Throws TITLES_BEHIND when
 * the indexed history does not end with the chain's owner yet (a sale not indexed): the caller
 * syncs its indexer and asks again, rather than let the seller read past the sale.
 */
export async function payloadAccess(
  db: Queryable,
  chain: TitleChain,
  vehicle: Address,
  account: Address | undefined,
): Promise<PayloadAccess> {
  if (!account) return NO_ACCESS
  const [owner, periods] = await Promise.all([chain.ownerOf(vehicle), titlePeriods(db, vehicle)])
  const indexedOwner = periods.at(-1)?.owner ?? null
  if ((indexedOwner === ZERO_ADDRESS ? null : indexedOwner) !== owner)
    throw new BaseError(
      'TITLES_BEHIND',
      `the node's title index for ${vehicle} ends with ${indexedOwner ?? 'no owner'}, the chain says ${owner ?? 'no owner'}; try again shortly`,
      { details: { vehicle, indexedOwner, owner } },
    )
  // Periods the account held the title itself (a past owner's; the owner's own come next).
  const past = account === owner ? [] : periodsOf(periods, account)
  if (owner !== null && (await chain.isOwnerOrManager(vehicle, account))) {
    const own = [...periodsOf(periods, owner), ...past]
    return { readable: own, erasable: own }
  }
  const granted = await readerPeriods(db, chain, vehicle, account, owner, periods)
  return { readable: [...past, ...granted], erasable: past }
}

/** How far in the future a DataGrant's `issuedAtMs` may lie (clock skew between signer and node). */
export const MAX_GRANT_CLOCK_SKEW_MS = 5 * 60_000

export type AdmitReaderParameters = {
  vehicle: Address
  reader: Address
  /** The DataGrant's signer, already checked to own or manage the vehicle. */
  grantedBy: Address
  /** The title's owner now: the reader sees this owner's periods, while it holds the title. */
  titleOwner: Address
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
      `insert into node_readers (vehicle, reader, granted_by, not_after, signature, issued_at_ms, title_owner)
       values ($1, $2, $3, $4, $5, $6, $7)
       on conflict (vehicle, reader) do update set granted_by = excluded.granted_by, not_after = excluded.not_after,
         signature = excluded.signature, issued_at_ms = excluded.issued_at_ms, title_owner = excluded.title_owner,
         created_at = now()`,
      [
        vehicleBytes,
        readerBytes,
        fromHex(parameters.grantedBy, 'signer', 20),
        parameters.notAfter,
        fromHex(parameters.signature, 'signature', 65),
        issuedAtMs,
        fromHex(parameters.titleOwner, 'owner', 20),
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
