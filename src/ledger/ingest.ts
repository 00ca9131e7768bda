/**
 * Ingest: how a node accepts a vehicle's batch (batch.ts has the format and its checks): verify
 * it (on a worker thread when a core is spare, verify-worker.ts), then append it to the log
 * (store.ts) with group commit. The answer comes only after commit.
 */
import type { KeyObject } from 'node:crypto'
import { availableParallelism } from 'node:os'
import type { Database } from '../db/database.ts'
import { BaseError } from '../errors.ts'
import {
  type ParsedBatch,
  type ResolveVehicleKey,
  type VerifiedCheckpoint,
  type VerifyBatchParameters,
  verifyBatch,
} from './batch.ts'
import { isVehicleAddress, type VehicleAddress } from './envelope.ts'
import { type AppendBatchReturnType, appendBatch, appendBatches } from './store.ts'
import { startVerifyWorker, type VerifyWorker } from './verify-worker.ts'

export type IngestBatchParameters = VerifyBatchParameters

export type IngestBatchReturnType = AppendBatchReturnType & { vehicle: VehicleAddress }

/**
 * Verifies and stores a vehicle's batch; resolves after commit with the event ids (a re-sent
 * batch gets the ids it got the first time). Throws, besides `parseBatch`'s codes:
 * EVENT_VEHICLE_MISMATCH (not the authenticated vehicle), VEHICLE_NOT_REGISTERED (no key),
 * EVENT_BAD_SIGNATURE, and the store's EVENT_GAP / EVENT_FORK / EVENT_TIME_REGRESSION /
 * ODOMETER_ROLLBACK.
 */
export async function ingestBatch(
  db: Database,
  parameters: IngestBatchParameters,
): Promise<IngestBatchReturnType> {
  const batch = await verifyBatch(parameters)
  const result = await appendBatch(db, {
    vehicle: batch.vehicle,
    events: batch.events,
    checkpointSignature: batch.checkpoint.signature,
  })
  return { vehicle: batch.vehicle, ...result }
}

export type CreateBatchIngesterParameters = {
  resolveVehicleKey: ResolveVehicleKey
  /** The most batches committed together (default 64). */
  maxGroupBatches?: number | undefined
  /**
   * Verify batches on a worker thread, beside the thread that writes (default: when there is a
   * CPU to spare for it — more than one with PGlite, more than two with PostgreSQL, whose server
   * needs one). The batches must be as parsed from JSON (plain data).
   */
  verifyOnWorker?: boolean | undefined
}

/** Ingests batches with group commit: see `createBatchIngester`. */
export type BatchIngester = {
  /**
   * `verifiedCheckpoint`: the caller verified the batch's checkpoint signature already
   * (`VerifyBatchParameters.verifiedCheckpoint`), so it is verified once, not twice.
   */
  ingest(
    batch: unknown,
    authenticatedVehicle?: VehicleAddress,
    verifiedCheckpoint?: VerifiedCheckpoint,
  ): Promise<IngestBatchReturnType>
}

/**
 * `ingestBatch` with group commit, for a node receiving many small batches at once: batches
 * verified while a commit is in flight are appended together by the next one (`appendBatches`:
 * one transaction, one write statement). No timer: an idle node commits a lone batch at once.
 * Each caller gets its own answer, only after its commit.
 */
export function createBatchIngester(db: Database, parameters: CreateBatchIngesterParameters): BatchIngester {
  const maxGroup = parameters.maxGroupBatches ?? 64
  type Waiting = {
    batch: ParsedBatch
    resolve: (result: IngestBatchReturnType) => void
    reject: (error: unknown) => void
  }
  let queue: Waiting[] = []
  let flushing = false
  // A worker needs a core of its own: beside this thread with PGlite, beside this thread and the
  // server with PostgreSQL (measured on 2 cores: PGlite ~+20 %, PostgreSQL ~-20 %).
  const useWorker = parameters.verifyOnWorker ?? availableParallelism() > (db.engine === 'pglite' ? 1 : 2)
  let worker: VerifyWorker | undefined
  const verify = async (
    batch: unknown,
    authenticatedVehicle: VehicleAddress | undefined,
    verifiedCheckpoint: VerifiedCheckpoint | undefined,
  ) => {
    if (useWorker && worker === undefined) worker = startVerifyWorker()
    if (worker?.usable) {
      // The key is looked up here (the resolver may use this thread's database and caches).
      const vehicle = (batch as { vehicle?: unknown } | null)?.vehicle
      let key: Uint8Array | KeyObject | undefined
      let keyError: unknown
      if (isVehicleAddress(vehicle)) {
        try {
          key = await parameters.resolveVehicleKey(vehicle)
        } catch (error) {
          keyError = error ?? new BaseError('INTERNAL', 'resolveVehicleKey threw')
        }
      }
      try {
        // The worker is told the checkpoint was verified only when it was with the key it gets.
        const checkpointVerified =
          verifiedCheckpoint !== undefined && key !== undefined && verifiedCheckpoint.publicKey === key
            ? { leafHash: verifiedCheckpoint.leafHash, signature: verifiedCheckpoint.signature }
            : undefined
        return await worker.verify({ batch, authenticatedVehicle, key, keyError, checkpointVerified })
      } catch (error) {
        if (!(error instanceof DOMException && error.name === 'DataCloneError')) throw error
      }
    }
    return verifyBatch({
      batch,
      resolveVehicleKey: parameters.resolveVehicleKey,
      authenticatedVehicle,
      verifiedCheckpoint,
    })
  }
  const flush = async () => {
    while (queue.length > 0) {
      const group = queue.slice(0, maxGroup)
      queue = queue.slice(group.length)
      try {
        const outcomes = await appendBatches(
          db,
          group.map(({ batch }) => ({
            vehicle: batch.vehicle,
            events: batch.events,
            checkpointSignature: batch.checkpoint.signature,
          })),
        )
        outcomes.forEach((outcome, i) => {
          const waiting = group[i]!
          if (outcome.ok) waiting.resolve({ vehicle: waiting.batch.vehicle, ...outcome.result })
          else waiting.reject(outcome.error)
        })
      } catch (error) {
        for (const waiting of group) waiting.reject(error)
      }
    }
    flushing = false
  }
  // Pipelined (PostgreSQL, verifying on this thread): batches that arrive together are verified
  // one by one, yielding to I/O in between, and an idle writer starts on the first few while the
  // rest are verified; the server does its part of the commit meanwhile.
  const pipelined = db.engine === 'postgres' && !useWorker
  type Received = Omit<Waiting, 'batch'> & {
    batch: unknown
    authenticatedVehicle: VehicleAddress | undefined
    verifiedCheckpoint: VerifiedCheckpoint | undefined
  }
  const received: Received[] = []
  let pumping = false
  const pump = async () => {
    let verifiedEvents = 0
    while (received.length > 0) {
      const { batch, authenticatedVehicle, verifiedCheckpoint, resolve, reject } = received.shift()!
      try {
        const parsed = await verify(batch, authenticatedVehicle, verifiedCheckpoint)
        queue.push({ batch: parsed, resolve, reject })
        verifiedEvents += parsed.events.length
      } catch (error) {
        reject(error)
      }
      if (
        !flushing &&
        queue.length > 0 &&
        (verifiedEvents >= PIPELINE_START_EVENTS || received.length === 0)
      ) {
        flushing = true
        verifiedEvents = 0
        void flush()
      }
      if (received.length > 0) await new Promise<void>((resolve) => setImmediate(resolve))
    }
    pumping = false
  }
  return {
    async ingest(batch, authenticatedVehicle, verifiedCheckpoint) {
      if (pipelined) {
        return new Promise<IngestBatchReturnType>((resolve, reject) => {
          received.push({ batch, authenticatedVehicle, verifiedCheckpoint, resolve, reject })
          if (!pumping) {
            pumping = true
            setImmediate(() => void pump())
          }
        })
      }
      const parsed = await verify(batch, authenticatedVehicle, verifiedCheckpoint)
      return new Promise<IngestBatchReturnType>((resolve, reject) => {
        queue.push({ batch: parsed, resolve, reject })
        if (!flushing) {
          flushing = true
          // Start after the current turn: batches verified in the same turn (e.g. every vehicle
          // answering the acknowledgements of the last group) join this commit instead of waiting
          // for the next one. Costs an idle node microseconds.
          setImmediate(() => void flush())
        }
      })
    },
  }
}

/** Events verified before an idle PostgreSQL writer starts on them while the rest are verified. */
const PIPELINE_START_EVENTS = 500
