/**
 * The leaf table's partitions (docs/ledger.md "Partitions"): `ledger_leaves` is partitioned by
 * leaf_index range, so a log's appends land in its newest partition, whose indexes stay small
 * and hot however long the log grows (the leaf_hash index takes random keys). Partitions are made
 * ahead of the appends, each in a short transaction of its own: after every commit the store
 * makes sure the partitions reach a quarter of a partition past the shard's new size; an append that
 * finds its partition missing all the same (e.g. a make that failed, logged) is refused with
 * LEDGER_PARTITION_MISSING before anything is written, and the store makes it and tries again.
 *
 * A partition spans L / N leaf indexes (at least 2^16) for a deployment of N shards, so it holds
 * about L leaves whatever N is (every shard's leaf indexes fall in it); L is 2^22 unless the node
 * is told otherwise when the log is made (`CARCHAIN_LEAF_PARTITION_LEAVES`: size it so the newest
 * partition's indexes, ~60 bytes a leaf, fit in the server's memory). Each new partition continues
 * the span of the one before it, so the span is fixed with the first partition: made when the node
 * starts on a new log, or on the first append.
 */
import type { Database, Queryable } from '../db/database.ts'
import { BaseError } from '../errors.ts'
import { getShardCount } from './shards.ts'

/** The leaves a partition holds, about, whatever the shard count, unless configured. */
export const PARTITION_LEAVES = 2 ** 22
/** The fewest leaf indexes a partition spans. */
export const MIN_PARTITION_SPAN = 2 ** 16
/** The advisory lock that serializes making partitions across node processes. */
const PARTITION_LOCK = 0x6c656166 // 'leaf'

type Partitions = { from: number; to: number }[]

/** The leaf table's partitions, in order (read from the catalog). */
export async function listLeafPartitions(db: Queryable): Promise<Partitions> {
  const { rows } = await db.query<{ bound: string }>(
    `select pg_get_expr(c.relpartbound, c.oid) as bound
       from pg_inherits i join pg_class c on c.oid = i.inhrelid
      where i.inhparent = 'ledger_leaves'::regclass`,
  )
  return rows
    .map(({ bound }) => {
      const match = /FROM \('?(\d+)'?\) TO \('?(\d+)'?\)/.exec(bound)
      if (match === null)
        throw new BaseError('INTERNAL', `a partition of ledger_leaves has an unexpected bound: ${bound}`)
      return { from: Number(match[1]), to: Number(match[2]) }
    })
    .sort((a, b) => a.from - b.from)
}

// The partitions as this process last saw them, per database: their end (never more than the
// truth) and the span of the last one.
const known = new WeakMap<object, { end: number; span: number }>()

/** The end and span of the last of `partitions`; undefined when there is none. */
function extentOf(partitions: Partitions): { end: number; span: number } | undefined {
  const last = partitions[partitions.length - 1]
  return last && { end: last.to, span: last.to - last.from }
}

/**
 * Makes partitions until they hold leaf index `upTo`, and with `ahead` a quarter of a partition
 * past it (each in its own transaction, under an advisory lock, so nodes making them at once make
 * each one once). `leaves` sizes the first partition when there is none yet (see the file's
 * comment); later ones continue its span.
 */
export async function ensureLeafPartitions(
  db: Database,
  upTo: number,
  { ahead = false, leaves = PARTITION_LEAVES }: { ahead?: boolean; leaves?: number } = {},
): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.query('select pg_advisory_xact_lock($1)', [PARTITION_LOCK])
    const extent = extentOf(await listLeafPartitions(tx))
    let end = extent?.end ?? 0
    const span = extent?.span ?? partitionSpan(await getShardCount(tx), leaves)
    const target = upTo + (ahead ? Math.floor(span / 4) : 0)
    while (end <= target) {
      // Made on its own and attached: attaching locks ledger_leaves against other DDL only, so
      // appends and reads go on (creating it as a partition would lock them out meanwhile).
      await tx.exec(
        `create table ledger_leaves_${end} (like ledger_leaves including defaults including constraints);
         alter table ledger_leaves attach partition ledger_leaves_${end} for values from (${end}) to (${end + span})`,
      )
      end += span
    }
    known.set(db, { end, span })
  })
}

/**
 * After an append of a shard that now holds `size` leaves: the partitions reach a quarter of a
 * partition past it, so the next appends find theirs (from memory when they are known to).
 */
export async function makePartitionsAhead(db: Database, size: number): Promise<void> {
  const seen = known.get(db)
  if (seen !== undefined && size + seen.span / 4 < seen.end) return
  await ensureLeafPartitions(db, size, { ahead: true })
}

/** Throws LEDGER_PARTITION_MISSING, in the append's transaction, if leaf index `last` has no partition yet. */
export async function checkLeafPartition(tx: Queryable, db: Database, last: number): Promise<void> {
  if (last < (known.get(db)?.end ?? 0)) return
  const extent = extentOf(await listLeafPartitions(tx))
  if (extent !== undefined && last < extent.end) {
    known.set(db, extent)
    return
  }
  throw new BaseError('LEDGER_PARTITION_MISSING', `leaf ${last} has no partition of ledger_leaves yet`, {
    details: { leafIndex: last, partitionsEnd: extent?.end ?? 0 },
  })
}

/** The leaf indexes a partition spans in a deployment of `shards` shards, for about `leaves` leaves each. */
export function partitionSpan(shards: number, leaves: number = PARTITION_LEAVES): number {
  return Math.max(MIN_PARTITION_SPAN, Math.floor(leaves / shards))
}
