/**
 * Batch verification on a worker thread, for the node's ingester (`createBatchIngester`): the
 * CPU-bound part of ingest — parsing, both hashes of every event, the JCS of every payload, the
 * P-256 checkpoint signature — runs beside the thread that writes to the database. With PGlite
 * that thread is also the database's, so the two would otherwise take turns.
 *
 * The worker runs exactly `verifyBatch`. The batch travels by structured clone (as parsed from
 * JSON: plain data); the vehicle's key is resolved on the calling thread and sent with it. The
 * answer carries only what the caller does not have: the events' bytes (leaf inputs, leaf hashes,
 * salts, the signature) in one transferred buffer, their ids and payloads' canonical JSON; the
 * caller rebuilds the `ParsedBatch` from those and the batch it holds (`VerifyWorker.verify`).
 */
import type { KeyObject } from 'node:crypto'
import { isMainThread, parentPort, Worker } from 'node:worker_threads'
import { BaseError, type ErrorCode } from '../errors.ts'
import { type ParsedBatch, verifyBatch } from './batch.ts'
import type { Hex } from './bytes.ts'
import {
  type Envelope,
  type EventKind,
  type Payload,
  p256PublicKey,
  SALT_BYTES,
  SIGNATURE_BYTES,
  type VehicleAddress,
} from './envelope.ts'
import type { JsonValue } from './jcs.ts'
import { HASH_BYTES } from './merkle.ts'

type Request = {
  id: number
  batch: unknown
  authenticatedVehicle: VehicleAddress | undefined
  /** The resolved key; `keyFailed`: resolving it threw (the caller holds that error). */
  key: Uint8Array | KeyObject | undefined
  keyFailed: boolean
  /** The caller verified this checkpoint signature with `key` already (not verified again). */
  checkpointVerified: { leafHash: Uint8Array; signature: Uint8Array } | undefined
}

type Reply =
  | {
      id: number
      ok: true
      vehicle: VehicleAddress
      /** Per event: leaf input, leaf hash, salt (when it has a payload); then the signature. */
      bytes: Uint8Array
      inputLengths: number[]
      ids: Hex[]
      payloadJson: (string | null)[]
    }
  | { id: number; ok: false; keyFailed: true }
  | {
      id: number
      ok: false
      keyFailed: false
      code: ErrorCode
      message: string
      details: Record<string, unknown>
    }

class KeyFailed extends Error {}

// The worker's copy of each vehicle's key, decoded once (a raw key arrives as a new array each time).
const keys = new Map<string, KeyObject | Uint8Array>()

function keyOf(key: Uint8Array | KeyObject | undefined): Uint8Array | KeyObject | undefined {
  if (!(key instanceof Uint8Array)) return key
  const hex = Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('hex')
  let decoded = keys.get(hex)
  if (decoded === undefined) {
    if (keys.size >= 100_000) keys.clear()
    decoded = p256PublicKey(key) ?? key
    keys.set(hex, decoded)
  }
  return decoded
}

async function answer(request: Request): Promise<{ reply: Reply; transfer: ArrayBuffer[] }> {
  const { id } = request
  let parsed: ParsedBatch
  try {
    const key = request.keyFailed ? undefined : keyOf(request.key)
    const vouched = request.checkpointVerified
    parsed = await verifyBatch({
      batch: request.batch,
      authenticatedVehicle: request.authenticatedVehicle,
      resolveVehicleKey: async () => {
        if (request.keyFailed) throw new KeyFailed()
        return key
      },
      verifiedCheckpoint: vouched && key !== undefined ? { publicKey: key, ...vouched } : undefined,
    })
  } catch (error) {
    if (error instanceof KeyFailed) return { reply: { id, ok: false, keyFailed: true }, transfer: [] }
    const failure =
      error instanceof BaseError
        ? error
        : new BaseError('INTERNAL', `verifying a batch failed: ${(error as Error)?.message}`)
    return {
      reply: {
        id,
        ok: false,
        keyFailed: false,
        code: failure.code,
        message: failure.shortMessage,
        details: failure.details,
      },
      transfer: [],
    }
  }
  let size = SIGNATURE_BYTES
  for (const event of parsed.events)
    size += event.leafInput.length + HASH_BYTES + (event.payload ? SALT_BYTES : 0)
  const bytes = new Uint8Array(size)
  let at = 0
  const inputLengths: number[] = []
  const ids: Hex[] = []
  const payloadJson: (string | null)[] = []
  for (const event of parsed.events) {
    bytes.set(event.leafInput, at)
    at += event.leafInput.length
    bytes.set(event.leafHash, at)
    at += HASH_BYTES
    if (event.payload) {
      bytes.set(event.payload.salt, at)
      at += SALT_BYTES
    }
    inputLengths.push(event.leafInput.length)
    ids.push(event.id)
    payloadJson.push(event.payload ? event.payloadJson! : null)
  }
  bytes.set(parsed.checkpoint.signature, at)
  return {
    reply: { id, ok: true, vehicle: parsed.vehicle, bytes, inputLengths, ids, payloadJson },
    transfer: [bytes.buffer],
  }
}

if (!isMainThread && parentPort !== null) {
  const port = parentPort
  port.on('message', (request: Request) => {
    void answer(request).then(({ reply, transfer }) => port.postMessage(reply, transfer))
  })
}

type Pending = {
  batch: unknown
  keyError: unknown
  resolve: (batch: ParsedBatch) => void
  reject: (error: unknown) => void
}

/** The calling side: one worker thread, batches verified in the order sent. */
export type VerifyWorker = {
  /** False once the worker failed (its pending batches were refused with INTERNAL). */
  readonly usable: boolean
  /**
   * `verifyBatch` of a batch as parsed from JSON, on the worker: same result, same refusals.
   * `key` is what the caller's `resolveVehicleKey` gave for `batch.vehicle` (`keyError` what it
   * threw), looked up before the batch is checked. `checkpointVerified`: the caller has verified
   * the batch's checkpoint signature with `key` itself (`VerifyBatchParameters.verifiedCheckpoint`).
   */
  verify(parameters: {
    batch: unknown
    authenticatedVehicle: VehicleAddress | undefined
    key: Uint8Array | KeyObject | undefined
    keyError?: unknown
    checkpointVerified?: { leafHash: Uint8Array; signature: Uint8Array } | undefined
  }): Promise<ParsedBatch>
}

/** Starts the worker. It does not keep the process alive while idle. */
export function startVerifyWorker(): VerifyWorker {
  // The sources run as TypeScript; the built library as JavaScript.
  const extension = import.meta.url.endsWith('.ts') ? '.ts' : '.js'
  const worker = new Worker(new URL(`./verify-worker${extension}`, import.meta.url))
  worker.unref()
  const pending = new Map<number, Pending>()
  let nextId = 0
  let failure: unknown
  const fail = (error: unknown) => {
    failure = new BaseError('INTERNAL', 'the batch verification worker stopped', { cause: error })
    for (const waiting of pending.values()) waiting.reject(failure)
    pending.clear()
  }
  worker.on('error', fail)
  worker.on('exit', (code) => fail(new Error(`exit ${code}`)))
  worker.on('message', (reply: Reply) => {
    const waiting = pending.get(reply.id)
    if (waiting === undefined) return
    pending.delete(reply.id)
    if (pending.size === 0) worker.unref()
    if (reply.ok) waiting.resolve(rebuild(waiting.batch, reply))
    else if (reply.keyFailed) waiting.reject(waiting.keyError)
    else waiting.reject(new BaseError(reply.code, reply.message, { details: reply.details }))
  })
  return {
    get usable() {
      return failure === undefined
    },
    verify({ batch, authenticatedVehicle, key, keyError, checkpointVerified }) {
      return new Promise<ParsedBatch>((resolve, reject) => {
        if (failure !== undefined) {
          reject(failure)
          return
        }
        const id = nextId++
        const request: Request = {
          id,
          batch,
          authenticatedVehicle,
          key,
          keyFailed: keyError !== undefined,
          checkpointVerified,
        }
        // Throws DataCloneError for what JSON cannot hold (functions, symbols): the caller then
        // verifies on its own thread, which refuses it properly.
        worker.postMessage(request)
        if (pending.size === 0) worker.ref()
        pending.set(id, { batch, keyError, resolve, reject })
      })
    },
  }
}

type RawEvent = { envelope: Envelope; payload?: { data: JsonValue } }

/**
 * The `ParsedBatch` the worker's `verifyBatch` returned, from its bytes and the batch this thread
 * holds: the envelopes' fields and payload data are the batch's own (the worker checked them).
 */
function rebuild(batch: unknown, reply: Extract<Reply, { ok: true }>): ParsedBatch {
  const raw = (batch as { events: RawEvent[] }).events
  const { bytes, inputLengths, ids, payloadJson } = reply
  const view = (from: number, length: number) => new Uint8Array(bytes.buffer, bytes.byteOffset + from, length)
  const events: ParsedBatch['events'] = new Array(raw.length)
  let at = 0
  for (let i = 0; i < raw.length; i++) {
    const { envelope: e, payload: p } = raw[i]!
    const envelope: Envelope = {
      v: 1,
      vehicle: e.vehicle,
      seq: e.seq,
      time: e.time,
      kind: e.kind as EventKind,
      prev: e.prev,
      commit: e.commit,
    }
    const leafInput = view(at, inputLengths[i]!)
    at += inputLengths[i]!
    const leafHash = view(at, HASH_BYTES)
    at += HASH_BYTES
    const json = payloadJson[i]
    let payload: Payload | undefined
    if (json !== null && json !== undefined) {
      payload = { salt: view(at, SALT_BYTES), data: p!.data }
      at += SALT_BYTES
    }
    events[i] = { envelope, leafInput, leafHash, id: ids[i]!, payload, payloadJson: json ?? undefined }
  }
  return {
    vehicle: reply.vehicle,
    events,
    checkpoint: { leafHash: events[events.length - 1]!.leafHash, signature: view(at, SIGNATURE_BYTES) },
  }
}
