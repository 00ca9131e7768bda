/**
 * The batch: how a vehicle's events travel to a node (docs/ledger.md "Batch format"), both sides
 * of it — the vehicle builds one (`createBatch`), the node checks one (`parseBatch`,
 * `verifyBatch`). Pure: no database, no threads, so the node's verification worker
 * (verify-worker.ts) and the ingester (ingest.ts) both build on it without importing each other.
 *
 * ```json
 * {
 *   "vehicle": "0x<40 lowercase hex>",
 *   "events": [{ "envelope": {…}, "payload": { "salt": "0x<16 bytes>", "data": … } }],
 *   "checkpoint": { "leafHash": "0x<32 bytes>", "signature": "0x<64 bytes r‖s>" }
 * }
 * ```
 *
 * Order of checks: the batch's own form (exact keys, envelopes, one vehicle, consecutive seqs,
 * `prev` links, payload commitments, the checkpoint names the newest event), then the
 * checkpoint signature with the vehicle's P-256 key. Continuity with the stored chain, time and
 * odometer are the store's (store.ts), under the log lock.
 */
import { hash, type KeyObject } from 'node:crypto'
import { BaseError } from '../errors.ts'
import { equalBytes, fromHex, type Hex, toBareHex, toHex } from './bytes.ts'
import {
  type BuiltEvent,
  computeCommit,
  type Envelope,
  type EventKind,
  encodeEnvelope,
  eventKinds,
  GENESIS_PREV,
  isVehicleAddress,
  odometerKm,
  type P256Signer,
  type Payload,
  type PayloadJson,
  p256PublicKey,
  parseEnvelope,
  parsePayload,
  payloadToJson,
  SALT_BYTES,
  SIGNATURE_BYTES,
  signCheckpoint,
  type VehicleAddress,
  verifyCheckpointSignature,
} from './envelope.ts'
import { canonicalize, type JsonValue } from './jcs.ts'
import { HASH_BYTES, hashLeaf } from './merkle.ts'

/** The most events one batch may carry. */
export const MAX_BATCH_EVENTS = 5000

/** A batch in its JSON form (what travels over HTTP or MQTT). */
export type BatchJson = {
  vehicle: VehicleAddress
  events: { envelope: Envelope; payload?: PayloadJson }[]
  checkpoint: { leafHash: Hex; signature: Hex }
}

/** A batch after `parseBatch`: every event with its canonical bytes and leaf hash. */
export type ParsedBatch = {
  vehicle: VehicleAddress
  events: {
    envelope: Envelope
    leafInput: Uint8Array
    leafHash: Uint8Array
    /** The event id, `0x` + the leaf hash. */
    id: Hex
    payload?: Payload | undefined
    /** The payload data's canonical JSON (JCS). */
    payloadJson?: string | undefined
  }[]
  checkpoint: { leafHash: Uint8Array; signature: Uint8Array }
}

function malformed(message: string, details: Record<string, unknown> = {}): BaseError {
  return new BaseError('EVENT_MALFORMED', message, { details })
}

function exactKeys(
  value: unknown,
  what: string,
  required: string[],
  optional: string[] = [],
): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw malformed(`${what} must be a JSON object`)
  const record = value as Record<string, unknown>
  for (const key of Object.keys(record)) {
    if (!required.includes(key) && !optional.includes(key))
      throw malformed(`${what} has an unknown key ${key}`, { key })
  }
  for (const key of required) if (!(key in record)) throw malformed(`${what} lacks ${key}`, { key })
  return record
}

/**
 * Checks a batch on its own (no database, no key): exact form, one vehicle, consecutive seqs
 * linked by `prev`, payloads matching their commitments (an `odometer` event must carry its
 * payload `{"km": n}`), and the checkpoint naming the newest event. Throws EVENT_MALFORMED,
 * EVENT_VEHICLE_MISMATCH, EVENT_GAP or EVENT_FORK.
 */
export function parseBatch(value: unknown): ParsedBatch {
  const record = exactKeys(value, 'a batch', ['vehicle', 'events', 'checkpoint'])
  const vehicle = record.vehicle
  if (!isVehicleAddress(vehicle)) throw malformed('batch.vehicle must be 0x + 40 lowercase hex', { vehicle })
  const rawEvents = record.events
  if (!Array.isArray(rawEvents) || rawEvents.length === 0)
    throw malformed('batch.events must be a non-empty array')
  if (rawEvents.length > MAX_BATCH_EVENTS) {
    throw malformed(`a batch holds at most ${MAX_BATCH_EVENTS} events`, { count: rawEvents.length })
  }
  const events: ParsedEvent[] = []
  const arena = new Arena(rawEvents.length * 320)
  let previous: ParsedEvent | undefined
  for (let i = 0; i < rawEvents.length; i++) {
    const event =
      parseEventFast(rawEvents[i], vehicle, previous, arena) ?? parseEvent(rawEvents[i], i, vehicle, previous)
    events.push(event)
    previous = event
  }
  const checkpointRecord = exactKeys(record.checkpoint, 'batch.checkpoint', ['leafHash', 'signature'])
  const checkpoint = {
    leafHash: fromHex(checkpointRecord.leafHash, 'checkpoint.leafHash', HASH_BYTES, 'EVENT_MALFORMED'),
    signature: fromHex(
      checkpointRecord.signature,
      'checkpoint.signature',
      SIGNATURE_BYTES,
      'EVENT_MALFORMED',
    ),
  }
  const newest = events[events.length - 1]!
  if (!equalBytes(checkpoint.leafHash, newest.leafHash)) {
    throw malformed('checkpoint.leafHash is not the leaf hash of the batch’s newest event', {
      leafHash: toHex(checkpoint.leafHash),
      newest: toHex(newest.leafHash),
    })
  }
  return { vehicle, events, checkpoint }
}

type ParsedEvent = ParsedBatch['events'][number]

/** One event of a batch, every check in order; throws the first failure. */
function parseEvent(
  raw: unknown,
  i: number,
  vehicle: VehicleAddress,
  previous: ParsedEvent | undefined,
): ParsedEvent {
  const item = exactKeys(raw, `batch.events[${i}]`, ['envelope'], ['payload'])
  const envelope = parseEnvelope(item.envelope)
  if (envelope.vehicle !== vehicle) {
    throw new BaseError(
      'EVENT_VEHICLE_MISMATCH',
      `event ${i} is of ${envelope.vehicle}, the batch of ${vehicle}`,
      {
        details: { vehicle, eventVehicle: envelope.vehicle, seq: envelope.seq },
      },
    )
  }
  const leafInput = encodeEnvelope(envelope)
  const leafHash = hashLeaf(leafInput)
  if (previous !== undefined) {
    if (envelope.seq !== previous.envelope.seq + 1) {
      throw new BaseError(
        'EVENT_GAP',
        `seq ${envelope.seq} follows seq ${previous.envelope.seq} in the batch`,
        {
          details: { vehicle, seq: envelope.seq, expectedSeq: previous.envelope.seq + 1 },
        },
      )
    }
    if (envelope.prev !== toBareHex(previous.leafHash)) {
      throw new BaseError('EVENT_FORK', `seq ${envelope.seq} does not link to seq ${previous.envelope.seq}`, {
        details: { vehicle, seq: envelope.seq },
      })
    }
  }
  let payload: Payload | undefined
  let payloadJson: string | undefined
  if (item.payload !== undefined) {
    payload = parsePayload(item.payload, { canonicalize: false })
    // computeCommit canonicalizes data, refusing what JSON cannot carry: one pass, not two.
    if (computeCommit(payload) !== envelope.commit) {
      throw malformed(`the payload of seq ${envelope.seq} does not match its commit`, { seq: envelope.seq })
    }
    payloadJson = canonicalize(payload.data)
  }
  if (envelope.kind === 'odometer') {
    if (payload === undefined)
      throw malformed(`odometer event ${envelope.seq} comes without its payload`, { seq: envelope.seq })
    odometerKm(payload.data)
  }
  return { envelope, leafInput, leafHash, id: toHex(leafHash), payload, payloadJson }
}

const envelopeKeySet: ReadonlySet<string> = new Set(['v', 'vehicle', 'seq', 'time', 'kind', 'prev', 'commit'])
const kindSet: ReadonlySet<string> = new Set(eventKinds)
const hash64Pattern = /^[0-9a-f]{64}$/
// Scratch space for hashing without allocating: SHA-256(0x00 ‖ envelope), SHA-256(salt ‖ data).
let scratch = Buffer.allocUnsafe(16 * 1024)

function scratchFor(bytes: number): Buffer {
  if (scratch.length < bytes) scratch = Buffer.allocUnsafe(Math.max(bytes, scratch.length * 2))
  return scratch
}

function isSafeNatural(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

/**
 * `parseEvent` for the common case, in fewer passes (measured: the ingest's JavaScript was
 * mostly this): each field checked once, the envelope's canonical form printed from a template,
 * both hashes taken from one scratch buffer as hex. Returns undefined whenever anything is not
 * plainly well-formed, and `parseEvent` then decides (and names the refusal): a valid event
 * parses to the same result on both paths.
 */
function parseEventFast(
  raw: unknown,
  vehicle: VehicleAddress,
  previous: ParsedEvent | undefined,
  arena: Arena,
): ParsedEvent | undefined {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return undefined
  const item = raw as { envelope?: unknown; payload?: unknown }
  const itemKeys = Object.keys(item)
  if (itemKeys.length !== (item.payload === undefined ? 1 : 2) || !Object.hasOwn(item, 'envelope'))
    return undefined
  if (itemKeys.length === 2 && !Object.hasOwn(item, 'payload')) return undefined
  const e = item.envelope as Record<string, unknown>
  if (typeof e !== 'object' || e === null || Array.isArray(e)) return undefined
  const keys = Object.keys(e)
  if (keys.length !== 7) return undefined
  for (const key of keys) if (!envelopeKeySet.has(key)) return undefined
  const { v, seq, time, kind, prev, commit } = e
  if (v !== 1 || e.vehicle !== vehicle || !isSafeNatural(seq) || !isSafeNatural(time)) return undefined
  if (
    typeof kind !== 'string' ||
    !kindSet.has(kind) ||
    typeof prev !== 'string' ||
    typeof commit !== 'string'
  ) {
    return undefined
  }
  if (previous === undefined) {
    if (!hash64Pattern.test(prev) || (seq === 0 && prev !== GENESIS_PREV)) return undefined
  } else if (
    seq !== previous.envelope.seq + 1 ||
    prev.length !== 2 * HASH_BYTES ||
    !previous.id.endsWith(prev)
  ) {
    // A valid prev equals the previous event's hash (lowercase hex): no pattern needed.
    return undefined
  }
  let payload: Payload | undefined
  let payloadJson: string | undefined
  if (item.payload !== undefined) {
    const p = item.payload as Record<string, unknown>
    if (typeof p !== 'object' || p === null || Array.isArray(p)) return undefined
    const payloadKeys = Object.keys(p)
    if (payloadKeys.length !== 2 || !Object.hasOwn(p, 'salt') || !Object.hasOwn(p, 'data')) return undefined
    const salt = p.salt
    if (typeof salt !== 'string' || salt.length !== 2 + 2 * SALT_BYTES || !salt.startsWith('0x'))
      return undefined
    let json: string
    try {
      json = canonicalize(p.data)
    } catch {
      return undefined
    }
    const buffer = scratchFor(SALT_BYTES + json.length * 3)
    // Hex decoding stops at the first non-hex digit: 16 bytes written means 32 hex digits.
    if (buffer.write(salt.slice(2), 0, SALT_BYTES, 'hex') !== SALT_BYTES) return undefined
    const length = SALT_BYTES + buffer.write(json, SALT_BYTES, 'utf8')
    // A valid commit equals the computed one (lowercase hex): no pattern needed.
    if (hash('sha256', buffer.subarray(0, length), 'hex') !== commit) return undefined
    payload = { salt: arena.copy(buffer, SALT_BYTES), data: p.data as JsonValue }
    payloadJson = json
  } else if (!hash64Pattern.test(commit)) {
    return undefined
  }
  if (kind === 'odometer') {
    if (payload === undefined) return undefined
    const km = (payload.data as { km?: unknown } | null)?.km
    if (typeof km !== 'number' || !Number.isFinite(km) || km < 0) return undefined
  }
  const envelope: Envelope = { v: 1, vehicle, seq, time, kind: kind as EventKind, prev, commit }
  // The canonical form (as encodeEnvelope prints it): ASCII only, so latin1 writes it byte for byte.
  const text = `{"commit":"${commit}","kind":"${kind}","prev":"${prev}","seq":${seq},"time":${time},"v":1,"vehicle":"${vehicle}"}`
  const buffer = scratchFor(1 + text.length)
  buffer[0] = 0x00
  buffer.write(text, 1, 'latin1')
  const hex = hash('sha256', buffer.subarray(0, 1 + text.length), 'hex')
  const leafInput = arena.copy(buffer.subarray(1), text.length)
  const leafHash = arena.hex(hex, HASH_BYTES)
  return { envelope, leafInput, leafHash, id: `0x${hex}`, payload, payloadJson }
}

/**
 * One batch's bytes (leaf inputs, leaf hashes, salts) as views of a few shared buffers rather than
 * a buffer each: thousands fewer backing stores for the garbage collector to track per group.
 */
class Arena {
  #bytes: Buffer
  #used = 0

  constructor(size: number) {
    this.#bytes = Buffer.allocUnsafeSlow(Math.max(size, 1024))
  }

  #take(length: number): number {
    if (this.#used + length > this.#bytes.length) {
      this.#bytes = Buffer.allocUnsafeSlow(Math.max(this.#bytes.length, length))
      this.#used = 0
    }
    const at = this.#used
    this.#used += length
    return at
  }

  #view(at: number, length: number): Uint8Array {
    return new Uint8Array(this.#bytes.buffer, this.#bytes.byteOffset + at, length)
  }

  /** The first `length` bytes of `source`, copied in. */
  copy(source: Uint8Array, length: number): Uint8Array {
    const at = this.#take(length)
    this.#bytes.set(source.subarray(0, length), at)
    return this.#view(at, length)
  }

  /** `length` bytes from hex digits. */
  hex(digits: string, length: number): Uint8Array {
    const at = this.#take(length)
    this.#bytes.write(digits, at, length, 'hex')
    return this.#view(at, length)
  }
}

/**
 * Finds a vehicle's P-256 public key (raw uncompressed point or KeyObject); undefined when the
 * vehicle is unknown. The node backs it with the certificate registry.
 */
export type ResolveVehicleKey = (vehicle: VehicleAddress) => Promise<Uint8Array | KeyObject | undefined>

export type VerifyBatchParameters = {
  /** The batch as received (parsed JSON). */
  batch: unknown
  resolveVehicleKey: ResolveVehicleKey
  /** The vehicle the transport authenticated (mutual TLS, MQTT client), if any: the batch must be its. */
  authenticatedVehicle?: VehicleAddress | undefined
  /**
   * A checkpoint signature the caller has already verified (the node does, before it counts a
   * batch against the vehicle's budget): it is not verified again when `publicKey` is the very key
   * `resolveVehicleKey` gives (same object) and `leafHash` and `signature` are byte for byte the
   * batch's own. Anything else is verified as usual.
   */
  verifiedCheckpoint?: VerifiedCheckpoint | undefined
}

/** A checkpoint signature verified with `publicKey` (see `VerifyBatchParameters.verifiedCheckpoint`). */
export type VerifiedCheckpoint = {
  publicKey: Uint8Array | KeyObject
  leafHash: Uint8Array
  signature: Uint8Array
}

/**
 * Everything ingest checks before the store: `parseBatch`, the authenticated vehicle and the
 * checkpoint signature with the vehicle's key. Resolves with the parsed batch. Throws, besides
 * `parseBatch`'s codes: EVENT_VEHICLE_MISMATCH (not the authenticated vehicle),
 * VEHICLE_NOT_REGISTERED (no key), whatever `resolveVehicleKey` throws, EVENT_BAD_SIGNATURE.
 */
export async function verifyBatch(parameters: VerifyBatchParameters): Promise<ParsedBatch> {
  const batch = parseBatch(parameters.batch)
  const { vehicle } = batch
  if (
    parameters.authenticatedVehicle !== undefined &&
    parameters.authenticatedVehicle.toLowerCase() !== vehicle
  ) {
    throw new BaseError(
      'EVENT_VEHICLE_MISMATCH',
      `${parameters.authenticatedVehicle} sent a batch of ${vehicle}`,
      {
        details: { vehicle, authenticatedVehicle: parameters.authenticatedVehicle },
      },
    )
  }
  const publicKey = await parameters.resolveVehicleKey(vehicle)
  if (publicKey === undefined) {
    throw new BaseError('VEHICLE_NOT_REGISTERED', `no identity key is known for ${vehicle}`, {
      details: { vehicle },
    })
  }
  const verified = parameters.verifiedCheckpoint
  const alreadyVerified =
    verified !== undefined &&
    verified.publicKey === publicKey &&
    equalBytes(verified.leafHash, batch.checkpoint.leafHash) &&
    equalBytes(verified.signature, batch.checkpoint.signature)
  if (
    !alreadyVerified &&
    !verifyCheckpointSignature({
      publicKey: publicKey instanceof Uint8Array ? (cachedP256Key(publicKey) ?? publicKey) : publicKey,
      leafHash: batch.checkpoint.leafHash,
      signature: batch.checkpoint.signature,
    })
  ) {
    throw new BaseError('EVENT_BAD_SIGNATURE', `the checkpoint signature of ${vehicle} does not verify`, {
      details: { vehicle, leafHash: toHex(batch.checkpoint.leafHash) },
    })
  }
  return batch
}

// Raw keys as resolved (the node returns the same array per vehicle) → their parsed KeyObject,
// so a vehicle's key is decoded once, not once per batch. The copy guards against a caller
// reusing the array for another key.
const keyObjects = new WeakMap<Uint8Array, { raw: Uint8Array; key: KeyObject | undefined }>()

/**
 * The KeyObject of a raw P-256 key as resolved, decoded once per key array (undefined: not a
 * point on the curve). For callers that verify with a resolved key on the hot path.
 */
export function cachedP256Key(raw: Uint8Array): KeyObject | undefined {
  const cached = keyObjects.get(raw)
  if (cached !== undefined && equalBytes(cached.raw, raw)) return cached.key
  const key = p256PublicKey(raw)
  keyObjects.set(raw, { raw: raw.slice(), key })
  return key
}

export type CreateBatchParameters = {
  /** Consecutive events of one vehicle, oldest first (as `createEventChain` builds them). */
  events: readonly Pick<BuiltEvent, 'envelope' | 'leafHash' | 'payload'>[]
  /** The vehicle's identity key. */
  signer: P256Signer
  /** Leave payloads out (their commitments stay in the envelopes); default false. */
  withoutPayloads?: boolean | undefined
}

/** The vehicle side: signs a checkpoint over the newest event and returns the batch JSON. */
export async function createBatch(parameters: CreateBatchParameters): Promise<BatchJson> {
  const { events, signer } = parameters
  const newest = events[events.length - 1]
  if (newest === undefined) throw new BaseError('INVALID_ARGUMENT', 'a batch holds at least one event')
  const signature = await signCheckpoint(signer, newest.leafHash)
  return {
    vehicle: newest.envelope.vehicle,
    events: events.map((event) =>
      parameters.withoutPayloads
        ? { envelope: event.envelope }
        : { envelope: event.envelope, payload: payloadToJson(event.payload) },
    ),
    checkpoint: { leafHash: toHex(newest.leafHash), signature: toHex(signature) },
  }
}
