/**
 * The node's one way in for vehicle batches, whatever the transport (HTTP, MQTT): group commit
 * (batches arriving together share one transaction), the certified key of each vehicle checked for
 * expiry and on-chain revocation before each batch (`vehicle-keys.ts`), and every newly stored
 * event published on the live stream.
 *
 * Cheap checks come before expensive ones: the vehicle must be registered (HTTP asks before the
 * body is read: `requireRegistered`), then the batch's checkpoint must carry that vehicle's
 * signature over the leaf hash it names (one P-256 verification) before a single event is parsed
 * or hashed; only then is a batch counted against the vehicle's own budget (so nobody else can
 * spend it) and verified whole.
 */
import type { KeyObject } from 'node:crypto'
import type { Database } from '../db/database.ts'
import { BaseError } from '../errors.ts'
import { cachedP256Key, type VerifiedCheckpoint } from '../ledger/batch.ts'
import { fromHex } from '../ledger/bytes.ts'
import {
  isVehicleAddress,
  SIGNATURE_BYTES,
  type VehicleAddress,
  verifyCheckpointSignature,
} from '../ledger/envelope.ts'
import { type BatchIngester, createBatchIngester, type IngestBatchReturnType } from '../ledger/ingest.ts'
import { HASH_BYTES } from '../ledger/merkle.ts'
import { shardOfVehicle, withShard } from '../ledger/shards.ts'
import { createRateCounter, type RateLimitConfig } from './rate-limit.ts'
import type { NodeEvents } from './stream.ts'
import { createVehicleKeys, type VehicleKeysParameters } from './vehicle-keys.ts'

export type NodeIngest = {
  /** Verifies and stores a batch from `vehicle`; resolves once it is durable. */
  accept(batch: unknown, vehicle: VehicleAddress): Promise<IngestBatchReturnType>
  /** VEHICLE_NOT_REGISTERED unless `vehicle` has a certified key (before reading a batch). */
  requireRegistered(vehicle: string): Promise<void>
  /** Drops a cached key (after the vehicle registered a new certificate). */
  forget(vehicle: string): void
}

export function createNodeIngest(
  db: Database,
  shards: number,
  events: NodeEvents,
  limits: Pick<RateLimitConfig, 'ingestMax' | 'windowMs'>,
  vehicleKeys: VehicleKeysParameters,
): NodeIngest {
  const keys = createVehicleKeys(db, vehicleKeys)
  const requireKey = async (vehicle: string) => {
    const key = await keys.resolve(vehicle.toLowerCase() as VehicleAddress)
    if (!key)
      throw new BaseError(
        'VEHICLE_NOT_REGISTERED',
        `no identity key is known for ${vehicle}; register it first`,
        {
          details: { vehicle },
        },
      )
    return key
  }
  const budget = createRateCounter({ kind: 'vehicle', max: limits.ingestMax, windowMs: limits.windowMs })
  // One group-commit queue per shard: each shard's appends take only its own lock, so the shards
  // commit side by side (in this process and in the deployment's other nodes).
  const ingesters = new Map<number, BatchIngester>()
  const ingesterOf = (vehicle: VehicleAddress) => {
    const shard = shardOfVehicle(vehicle, shards)
    let ingester = ingesters.get(shard)
    if (ingester === undefined) {
      ingester = createBatchIngester(withShard(db, shard), {
        resolveVehicleKey: keys.resolve,
        // A verify worker per shard would be a thread per shard: several shards verify here.
        verifyOnWorker: shards > 1 ? false : undefined,
      })
      ingesters.set(shard, ingester)
    }
    return ingester
  }
  return {
    async accept(batch, vehicle) {
      const publicKey = await requireKey(vehicle)
      const checkpoint = authenticateCheckpoint(batch, vehicle, publicKey)
      budget.take(vehicle)
      // Verified once: the ingester skips it when its key lookup gives the same key.
      const result = await ingesterOf(vehicle).ingest(batch, vehicle, checkpoint)
      if (result.duplicates < result.ids.length) {
        const envelopes = (batch as { events: { envelope: { seq: number; kind: string; time: number } }[] })
          .events
        for (let i = result.duplicates; i < result.ids.length; i++) {
          const envelope = envelopes[i]!.envelope
          events.publish('event', {
            ...(shards > 1 ? { shard: shardOfVehicle(vehicle, shards) } : {}),
            vehicle,
            id: result.ids[i]!,
            index: result.leafIndexes[i]!,
            seq: envelope.seq,
            kind: envelope.kind,
            timeMs: envelope.time,
          })
        }
      }
      return result
    },
    async requireRegistered(vehicle) {
      await requireKey(vehicle)
    },
    forget: keys.forget,
  }
}

/**
 * The batch names `vehicle` and its checkpoint carries `vehicle`'s signature over the leaf hash it
 * names: EVENT_MALFORMED, EVENT_VEHICLE_MISMATCH or EVENT_BAD_SIGNATURE. Whether that leaf hash is
 * the batch's newest event is checked with the rest of the batch (src/ledger/ingest.ts). Answers
 * the verified checkpoint, for the ingester not to verify it again.
 */
export function authenticateCheckpoint(
  batch: unknown,
  vehicle: VehicleAddress,
  publicKey: Uint8Array | KeyObject,
): VerifiedCheckpoint {
  const claimed = batch as {
    vehicle?: unknown
    checkpoint?: { leafHash?: unknown; signature?: unknown }
  } | null
  if (typeof claimed !== 'object' || claimed === null || !isVehicleAddress(claimed.vehicle))
    throw new BaseError(
      'EVENT_MALFORMED',
      'a batch must be a JSON object naming its vehicle (0x + 40 lowercase hex)',
    )
  if (claimed.vehicle !== vehicle)
    throw new BaseError('EVENT_VEHICLE_MISMATCH', `${vehicle} sent a batch of ${claimed.vehicle}`, {
      details: { vehicle: claimed.vehicle, authenticatedVehicle: vehicle },
    })
  const checkpoint =
    typeof claimed.checkpoint === 'object' && claimed.checkpoint !== null ? claimed.checkpoint : {}
  const leafHash = fromHex(checkpoint.leafHash, 'checkpoint.leafHash', HASH_BYTES, 'EVENT_MALFORMED')
  const signature = fromHex(checkpoint.signature, 'checkpoint.signature', SIGNATURE_BYTES, 'EVENT_MALFORMED')
  // The key decoded once per vehicle, not once per batch (a raw key as resolved).
  const key = publicKey instanceof Uint8Array ? (cachedP256Key(publicKey) ?? publicKey) : publicKey
  if (!verifyCheckpointSignature({ publicKey: key, leafHash, signature }))
    throw new BaseError('EVENT_BAD_SIGNATURE', `the checkpoint signature of ${vehicle} does not verify`, {
      details: { vehicle },
    })
  return { publicKey, leafHash, signature }
}
