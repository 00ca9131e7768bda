/**
 * The shard rule (docs/ledger.md "Shards") as pure code, the same in Node and in the browser (no
 * node:* import, no Buffer), hashing passed in as src/ledger/rfc9162.ts takes it: the node runs it
 * over node:crypto (src/ledger/shards.ts), the dashboard over @noble/hashes (`portableShardRule`).
 * One implementation of each rule; the tests cross-check both hashings.
 *
 *  - A vehicle's shard among `count`: the first four bytes of SHA-256 over its 20 address bytes, as
 *    a big-endian unsigned integer, modulo `count`.
 *  - Shard k's log id on LedgerAnchor: the deployment's log id (shard 0's) for k = 0, else its first
 *    20 bytes (the operator's address) then the first 12 bytes of
 *    SHA-256(log id ‖ "carchain shard" ‖ k as 4 bytes big-endian).
 */
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js'
import { BaseError } from '../errors.ts'
import type { Sha256 } from './rfc9162.ts'

/** The most shards a deployment may have. */
export const MAX_SHARDS = 1024

/** The rules over one SHA-256. Bytes in, bytes out: hex is the caller's form to choose. */
export type ShardRule = {
  /** The shard of the vehicle whose 20 address bytes are `vehicle`, among `count`. */
  shardOfVehicle(vehicle: Uint8Array, count: number): number
  /** The 32-byte log id of `shard`, from the deployment's 32-byte log id. */
  shardLogId(logId: Uint8Array, shard: number): Uint8Array
}

const LOG_ID_LABEL = new TextEncoder().encode('carchain shard')

/** The shard rules computed with `sha256`. */
export function shardRule(sha256: Sha256): ShardRule {
  return {
    shardOfVehicle(vehicle, count) {
      checkShardCount(count)
      checkLength(vehicle, 20, 'vehicle')
      if (count === 1) return 0
      return uint32(sha256(vehicle)) % count
    },
    shardLogId(logId, shard) {
      checkLength(logId, 32, 'logId')
      checkShard(shard)
      if (shard === 0) return logId
      const input = new Uint8Array(32 + LOG_ID_LABEL.length + 4)
      input.set(logId, 0)
      input.set(LOG_ID_LABEL, 32)
      new DataView(input.buffer).setUint32(32 + LOG_ID_LABEL.length, shard)
      const out = new Uint8Array(32)
      out.set(logId.subarray(0, 20), 0)
      out.set(sha256(input).subarray(0, 12), 20)
      return out
    },
  }
}

/** The shard rules over @noble/hashes: for the dashboard and any client without node:crypto. */
export const portableShardRule: ShardRule = shardRule(nobleSha256)

/**
 * Where shard `shard`'s own copy of something lives under `base`: `base` itself for shard 0 (the
 * log of a one-shard deployment, where it always was), `<base>/shards/<shard>` for the others.
 * Origins, API and tile routes and tiles directories all follow it.
 */
export function shardPath(base: string, shard: number): string {
  return shard === 0 ? base : `${base}/shards/${shard}`
}

/** INVALID_ARGUMENT unless `count` is a whole number of shards in [1, MAX_SHARDS]. */
export function checkShardCount(count: number): void {
  if (!Number.isSafeInteger(count) || count < 1 || count > MAX_SHARDS)
    throw new BaseError(
      'INVALID_ARGUMENT',
      `a shard count is an integer in [1, ${MAX_SHARDS}], got ${count}`,
      {
        details: { shards: count },
      },
    )
}

/** INVALID_ARGUMENT unless `shard` is a shard number in [0, MAX_SHARDS). */
export function checkShard(shard: number): void {
  if (!Number.isSafeInteger(shard) || shard < 0 || shard >= MAX_SHARDS)
    throw new BaseError('INVALID_ARGUMENT', `shard must be an integer in [0, ${MAX_SHARDS}), got ${shard}`, {
      details: { shard },
    })
}

function checkLength(bytes: Uint8Array, length: number, field: string): void {
  if (!(bytes instanceof Uint8Array) || bytes.length !== length)
    throw new BaseError('INVALID_ARGUMENT', `${field} must be ${length} bytes`, {
      details: { field, length: bytes?.length ?? null },
    })
}

function uint32(bytes: Uint8Array): number {
  return new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0)
}
