/**
 * Log shards (docs/ledger.md "Shards"): a deployment runs N Merkle logs side by side, each a log
 * as the single one was (own tree, checkpoints, proofs, tiles, log id on chain). Every vehicle
 * belongs to exactly one shard by a fixed rule of its address, so its hash chain stays whole in
 * one log; N is fixed when the deployment's log is created and never changes (a vehicle never
 * moves). Shard 0 is the log of a one-shard deployment, row for row and id for id.
 *
 * The store's functions work on one shard: the one a database handle is scoped to with
 * `withShard` (shard 0 when it is not scoped), so every existing caller is a shard-0 caller.
 */
import type { Database, Queryable } from '../db/database.ts'
import { BaseError } from '../errors.ts'
import { fromHex, type Hex, toHex } from './bytes.ts'
import { sha256 } from './merkle.ts'
import { checkShard, checkShardCount, MAX_SHARDS, shardRule } from './shard-rule.ts'

export { MAX_SHARDS }

/** The shard rules (src/ledger/shard-rule.ts, which the dashboard runs too) over node:crypto. */
const rule = shardRule(sha256)

const SHARD = Symbol('carchain.shard')
const BASE = Symbol('carchain.base')

/** A database handle or transaction scoped to one shard (see `withShard`). */
type Scoped = { readonly [SHARD]?: number; readonly [BASE]?: Queryable }

/**
 * The shard of a vehicle among `count`: the first four bytes of SHA-256 over the vehicle's 20
 * address bytes, as a big-endian unsigned integer, modulo `count`. Fixed for a deployment: the
 * count is fixed when its log is created.
 */
export function shardOfVehicle(vehicle: string | Uint8Array, count: number): number {
  checkShardCount(count)
  if (count === 1) return 0
  return rule.shardOfVehicle(typeof vehicle === 'string' ? fromHex(vehicle, 'vehicle', 20) : vehicle, count)
}

/** The same database, scoped to `shard`: the store's functions then read and write that shard. */
export function withShard<T extends Queryable>(db: T, shard: number): T {
  checkShard(shard)
  const base = baseOf(db)
  const scoped: Queryable & Scoped & Partial<Omit<Database, keyof Queryable>> = {
    [SHARD]: shard,
    [BASE]: base,
    query: (sql, params) => base.query(sql, params),
    exec: (sql) => base.exec(sql),
    copyFrom: (target, data) => base.copyFrom(target, data),
  }
  if ('transaction' in base) {
    const database = base as unknown as Database
    Object.assign(scoped, {
      engine: database.engine,
      transaction: <R>(fn: (tx: Queryable) => Promise<R>) =>
        database.transaction((tx) => fn(withShard(tx, shard))),
      close: () => database.close(),
    })
  }
  return scoped as unknown as T
}

/** The shard a handle is scoped to: 0 when it is not. */
export function shardOf(db: Queryable): number {
  return (db as Scoped)[SHARD] ?? 0
}

/** Whether `db` was scoped to a shard with `withShard`. */
export function isShardScoped(db: Queryable): boolean {
  return (db as Scoped)[SHARD] !== undefined
}

/** The handle `withShard` was given (the handle itself when it is not scoped). */
export function baseOf<T extends Queryable>(db: T): T {
  return ((db as Scoped)[BASE] as T | undefined) ?? db
}

/** How many shards the deployment's log has (the rows of `ledger_log`). */
export async function getShardCount(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ count: bigint | number }>('select count(*) as count from ledger_log')
  return Number(rows[0]!.count)
}

/**
 * Fixes the shard count on first use and answers it. `requested` undefined takes what the
 * database holds. A log of one shard that is still empty may become N shards; any other change
 * is refused with SHARDS_MISMATCH, since it would move vehicles between logs. Safe to run from
 * several nodes at once (the first one's count wins, the others must agree).
 */
export async function ensureShards(db: Database, requested?: number): Promise<number> {
  if (requested !== undefined) checkShardCount(requested)
  return db.transaction(async (tx) => {
    const { rows } = await tx.query<{ shard: number; tree_size: bigint }>(
      'select shard, tree_size from ledger_log order by shard for update',
    )
    if (rows.length === 0)
      throw new BaseError('INTERNAL', 'the ledger_log row is missing (migration 0002 not applied?)')
    const count = rows.length
    if (requested === undefined || requested === count) return count
    const fresh = count === 1 && Number(rows[0]!.tree_size) === 0
    if (!fresh)
      throw new BaseError(
        'SHARDS_MISMATCH',
        `the deployment's log has ${count} shard(s), not ${requested}; a shard count is fixed when the log is created`,
        { details: { shards: count, requested } },
      )
    await tx.query(
      `insert into ledger_log (shard, tree_size, root_hash, frontier)
       select s, 0, sha256(''::bytea), ''::bytea from generate_series(1, $1::int - 1) as s`,
      [requested],
    )
    return requested
  })
}

/**
 * The log id of `shard` on LedgerAnchor, from the deployment's log id (which is shard 0's): the
 * same operator address (first 20 bytes, so the same account may claim it), then the first 12
 * bytes of SHA-256(log id ‖ "carchain shard" ‖ shard as 4 bytes big-endian).
 */
export function shardLogId(logId: Hex, shard: number): Hex {
  if (shard === 0) return logId
  return toHex(rule.shardLogId(fromHex(logId, 'logId', 32), shard))
}
