/**
 * The deployment's log shards as the dashboard sees them (docs/ledger.md "Shards"): how many there
 * are (from `/v1/chain`), which one holds a vehicle and which log id a shard has on LedgerAnchor —
 * both computed in this browser by the node's own rule (src/ledger/shard-rule.ts over
 * @noble/hashes), not taken from the node — and where a shard's API and tiles are.
 */
import { BaseError } from '../../../src/errors.ts'
import { portableShardRule, shardPath } from '../../../src/ledger/shard-rule.ts'
import type { ChainInfo, Hex } from '../api.ts'
import { fromHex, toHex } from './hex.ts'

/** How many shards the deployment runs: `/v1/chain` lists them when there are several. */
export function shardCountOf(info: ChainInfo | undefined): number {
  return info?.log?.shards?.length || 1
}

/** The pinned origin and verifier key of `shard`'s checkpoints, as `/v1/chain` tells them. */
export function shardLogOf(
  info: ChainInfo | undefined,
  shard: number,
): { origin: string; verifierKey: string } | undefined {
  const log = info?.log
  if (!log) return undefined
  if (shard === 0) return { origin: log.origin, verifierKey: log.verifierKey }
  const entry = log.shards?.find((s) => s.shard === shard)
  return entry && { origin: entry.origin, verifierKey: entry.verifierKey }
}

/** Shard `shard`'s log id on LedgerAnchor, from the deployment's (shard 0's). */
export function shardLogIdOf(logId: Hex, shard: number): Hex {
  const bytes = fromHex(logId)
  if (!bytes) throw new BaseError('INVALID_ARGUMENT', `the log id ${logId} is not hex`)
  return toHex(portableShardRule.shardLogId(bytes, shard))
}

/** The node's routes for `shard`: its log API and its tiles (shard 0 at the unprefixed ones). */
export function shardPaths(shard: number): { api: string; tiles: string } {
  return { api: shardPath('/v1/log', shard), tiles: shardPath('/log', shard) }
}

/**
 * The shard of `vehicle` among `count`, by the rule; when the node also says (`claimed`, the
 * event's `shard` field), it must agree: SHARDS_MISMATCH otherwise, since the node would be
 * pointing at another log than the one the vehicle's events belong to.
 */
export function vehicleShard(vehicle: string, count: number, claimed?: number): number {
  const bytes = fromHex(vehicle.toLowerCase())
  if (bytes?.length !== 20)
    throw new BaseError('INVALID_ARGUMENT', `${vehicle} is not a 20-byte vehicle address`)
  const shard = portableShardRule.shardOfVehicle(bytes, count)
  if (claimed !== undefined && claimed !== shard)
    throw new BaseError(
      'SHARDS_MISMATCH',
      `the node places this event in shard ${claimed}, but vehicle ${vehicle} belongs to shard ${shard} of ${count}`,
      { details: { vehicle, shard, claimed, shards: count } },
    )
  return shard
}
