/**
 * The node's one way in for vehicle batches, whatever the transport (HTTP, MQTT): group commit
 * (batches arriving together share one transaction), the certified key of each vehicle checked for
 * expiry and on-chain revocation before each batch (`vehicle-keys.ts`), and every newly stored event published on the live stream.
 */
import type { Database } from '../db/database.ts'
import type { VehicleAddress } from '../ledger/envelope.ts'
import { createBatchIngester, type IngestBatchReturnType } from '../ledger/ingest.ts'
import type { NodeEvents } from './stream.ts'
import { createVehicleKeys, type VehicleKeysParameters } from './vehicle-keys.ts'

export type NodeIngest = {
  /** Verifies and stores a batch from `vehicle`; resolves once it is durable. */
  accept(batch: unknown, vehicle: VehicleAddress): Promise<IngestBatchReturnType>
  /** Drops a cached key (after the vehicle registered a new certificate). */
  forget(vehicle: string): void
}

export function createNodeIngest(
  db: Database,
  events: NodeEvents,
  vehicleKeys: VehicleKeysParameters,
): NodeIngest {
  const keys = createVehicleKeys(db, vehicleKeys)
  const ingester = createBatchIngester(db, { resolveVehicleKey: keys.resolve })
  return {
    async accept(batch, vehicle) {
      const result = await ingester.ingest(batch, vehicle)
      if (result.duplicates < result.ids.length) {
        const envelopes = (batch as { events: { envelope: { seq: number; kind: string; time: number } }[] })
          .events
        for (let i = result.duplicates; i < result.ids.length; i++) {
          const envelope = envelopes[i]!.envelope
          events.publish('event', {
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
    forget: keys.forget,
  }
}
