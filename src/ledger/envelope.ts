/**
 * The event envelope (docs/ledger.md, docs/spec.md "Event envelope and hashing"): what a vehicle signs and the log
 * stores. Its RFC 8785 canonical bytes are the RFC 9162 leaf input; its leaf hash is the event id
 * and the next event's `prev`. The payload (salt + data) lives apart, bound by `commit`.
 *
 * Also the checkpoint signature: ECDSA P-256 / SHA-256, raw r‖s, with the newest event's 32-byte
 * leaf hash as the *message* (so ECDSA hashes it once more: e = SHA-256(leafHash)).
 */
import { createPublicKey, hash, type KeyObject, randomBytes, randomFillSync, verify } from 'node:crypto'
import { BaseError } from '../errors.ts'
import { equalBytes, fromHex, type Hex, toBareHex, toHex } from './bytes.ts'
import { canonicalize, canonicalizeToBytes, type JsonValue } from './jcs.ts'
import { hashLeaf, sha256 } from './merkle.ts'
import { SALT_BYTES, SIGNATURE_BYTES } from './sizes.ts'

export { SALT_BYTES, SIGNATURE_BYTES }

/** The kinds of event a vehicle records (docs/spec.md "Event envelope and hashing"); anything else is refused. */
export const eventKinds = [
  'door.unlocked',
  'door.locked',
  'trunk.opened',
  'trip.started',
  'trip.ended',
  'parking.started',
  'parking.ended',
  'navigation.destination',
  'rental.started',
  'rental.ended',
  'access.used',
  'access.denied',
  'charging.started',
  'charging.ended',
  'payment.sent',
  'telemetry',
  'driving.behavior',
  'odometer',
] as const

export type EventKind = (typeof eventKinds)[number]

const kindSet: ReadonlySet<string> = new Set(eventKinds)

/** A vehicle's address: `0x` + 40 lowercase hex. */
export type VehicleAddress = `0x${string}`

/**
 * `{"v":1,"vehicle","seq","time","kind","prev","commit"}` — `prev` and `commit` are 64 lowercase
 * hex without `0x`; `time` is unix milliseconds.
 */
export type Envelope = {
  readonly v: 1
  readonly vehicle: VehicleAddress
  readonly seq: number
  readonly time: number
  readonly kind: EventKind
  readonly prev: string
  readonly commit: string
}

/** The erasable part of an event: `commit = SHA-256(salt ‖ JCS(data))`. */
export type Payload = { readonly salt: Uint8Array; readonly data: JsonValue }

/** `prev` of a vehicle's first event (seq 0). */
export const GENESIS_PREV = '0'.repeat(64)

const envelopeKeys = ['commit', 'kind', 'prev', 'seq', 'time', 'v', 'vehicle'] as const
const vehiclePattern = /^0x[0-9a-f]{40}$/
const hash64Pattern = /^[0-9a-f]{64}$/

function malformed(message: string, details: Record<string, unknown>): BaseError {
  return new BaseError('EVENT_MALFORMED', message, { details })
}

/** Whether `value` is a vehicle address in the envelope's form (`0x` + 40 lowercase hex). */
export function isVehicleAddress(value: unknown): value is VehicleAddress {
  return typeof value === 'string' && vehiclePattern.test(value)
}

/**
 * Checks a value from the wire is exactly an envelope: the seven keys and no other, their types,
 * lowercase hex, a known kind. Throws EVENT_MALFORMED naming the field.
 */
export function parseEnvelope(value: unknown): Envelope {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw malformed('an envelope must be a JSON object', {})
  }
  const record = value as Record<string, unknown>
  const keys = Object.keys(record).sort()
  if (keys.length !== envelopeKeys.length || keys.some((key, i) => key !== envelopeKeys[i])) {
    throw malformed(`an envelope has exactly the keys ${envelopeKeys.join(', ')}`, { keys })
  }
  const { v, vehicle, seq, time, kind, prev, commit } = record
  if (v !== 1) throw malformed('envelope version v must be 1', { field: 'v', value: v })
  if (!isVehicleAddress(vehicle)) {
    throw malformed('vehicle must be 0x + 40 lowercase hex', { field: 'vehicle', value: vehicle })
  }
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) {
    throw malformed('seq must be an integer ≥ 0', { field: 'seq', value: seq })
  }
  if (typeof time !== 'number' || !Number.isSafeInteger(time) || time < 0) {
    throw malformed('time must be unix milliseconds (an integer ≥ 0)', { field: 'time', value: time })
  }
  if (typeof kind !== 'string' || !kindSet.has(kind)) {
    throw malformed(`unknown event kind ${JSON.stringify(kind)}`, { field: 'kind', value: kind })
  }
  if (typeof prev !== 'string' || !hash64Pattern.test(prev)) {
    throw malformed('prev must be 64 lowercase hex', { field: 'prev', value: prev })
  }
  if (typeof commit !== 'string' || !hash64Pattern.test(commit)) {
    throw malformed('commit must be 64 lowercase hex', { field: 'commit', value: commit })
  }
  if (seq === 0 && prev !== GENESIS_PREV) {
    throw malformed('the first event (seq 0) has prev = 64 zeros', { field: 'prev', value: prev })
  }
  return { v: 1, vehicle, seq, time, kind: kind as EventKind, prev, commit }
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * Parses an envelope from its leaf input, refusing any byte form but the canonical one (so one
 * event has exactly one leaf hash).
 */
export function parseEnvelopeBytes(leafInput: Uint8Array): Envelope {
  let value: unknown
  try {
    value = JSON.parse(utf8.decode(leafInput))
  } catch (error) {
    throw new BaseError('EVENT_MALFORMED', 'a leaf input is not UTF-8 JSON', { cause: error })
  }
  const envelope = parseEnvelope(value)
  if (!equalBytes(encodeEnvelope(envelope), leafInput)) {
    throw malformed('a leaf input is not in RFC 8785 canonical form', {})
  }
  return envelope
}

/** The envelope's canonical bytes (RFC 8785): the RFC 9162 leaf input. */
export function encodeEnvelope(envelope: Envelope): Uint8Array {
  // Fast path for a well-formed envelope: its JCS form is this template (keys in code-unit order;
  // the strings are hex, an address and a kind, none needing escapes; the numbers are safe
  // integers, which ES prints as JCS does). Anything else goes through the general algorithm.
  if (isWellFormed(envelope)) {
    const { commit, kind, prev, seq, time, vehicle } = envelope
    return encoder.encode(
      `{"commit":"${commit}","kind":"${kind}","prev":"${prev}","seq":${seq},"time":${time},"v":1,"vehicle":"${vehicle}"}`,
    )
  }
  return canonicalizeToBytes(envelope)
}

const encoder = new TextEncoder()

function isWellFormed(envelope: Envelope): boolean {
  const { v, vehicle, seq, time, kind, prev, commit } = envelope
  return (
    v === 1 &&
    Number.isSafeInteger(seq) &&
    seq >= 0 &&
    Number.isSafeInteger(time) &&
    time >= 0 &&
    kindSet.has(kind) &&
    vehiclePattern.test(vehicle) &&
    hash64Pattern.test(prev) &&
    hash64Pattern.test(commit) &&
    Object.keys(envelope).length === envelopeKeys.length
  )
}

/** The envelope's leaf hash: SHA-256(0x00 ‖ JCS(envelope)). */
export function envelopeLeafHash(envelope: Envelope): Uint8Array {
  return hashLeaf(encodeEnvelope(envelope))
}

/** An event id: `0x` + the leaf hash in hex. */
export function eventId(leafHash: Uint8Array): Hex {
  return toHex(leafHash)
}

/** `commit` for a payload: hex of SHA-256(salt ‖ JCS(data)). */
export function computeCommit(payload: Payload): string {
  if (payload.salt.length !== SALT_BYTES) {
    throw malformed(`a payload salt is ${SALT_BYTES} bytes`, { length: payload.salt.length })
  }
  const data = canonicalizeToBytes(payload.data)
  const input = new Uint8Array(SALT_BYTES + data.length)
  input.set(payload.salt, 0)
  input.set(data, SALT_BYTES)
  return toBareHex(sha256(input))
}

/** Whether `payload` is the one `envelope.commit` commits to. */
export function verifyPayload(envelope: Envelope, payload: Payload): boolean {
  try {
    return computeCommit(payload) === envelope.commit
  } catch {
    return false
  }
}

/** A payload with a fresh random salt. */
export function createPayload(data: JsonValue): Payload {
  // Canonicalize now so bad data fails here, not at commit time.
  canonicalize(data)
  return { salt: new Uint8Array(randomBytes(SALT_BYTES)), data }
}

/** A payload in its JSON form: `{"salt":"0x…16 bytes","data":…}`. */
export type PayloadJson = { salt: Hex; data: JsonValue }

/** The JSON form of a payload. */
export function payloadToJson(payload: Payload): PayloadJson {
  return { salt: toHex(payload.salt), data: payload.data }
}

/**
 * Parses `{"salt":"0x…","data":…}` strictly; throws EVENT_MALFORMED. `canonicalize: false`
 * skips checking `data` is canonicalizable, for callers that compute its commit next (which
 * checks it anyway).
 */
export function parsePayload(value: unknown, options: { canonicalize?: boolean } = {}): Payload {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw malformed('a payload must be a JSON object {salt, data}', {})
  }
  const keys = Object.keys(value).sort()
  if (keys.length !== 2 || keys[0] !== 'data' || keys[1] !== 'salt') {
    throw malformed('a payload has exactly the keys data, salt', { keys })
  }
  const record = value as { salt: unknown; data: unknown }
  const salt = fromHex(record.salt, 'payload.salt', SALT_BYTES, 'EVENT_MALFORMED')
  if (options.canonicalize !== false) canonicalize(record.data)
  return { salt, data: record.data as JsonValue }
}

/** An event as the vehicle builds it: envelope, its bytes and hash, and the payload. */
export type BuiltEvent = {
  envelope: Envelope
  leafInput: Uint8Array
  leafHash: Uint8Array
  id: Hex
  payload: Payload
}

/** BuildEventParameters: one event; `salt` only for deterministic tests. */
export type BuildEventParameters = {
  vehicle: string
  seq: number
  time: number
  kind: EventKind
  /** Previous event's leaf hash (bytes or 64 hex); omitted for seq 0. */
  prev?: Uint8Array | string | undefined
  data: JsonValue
  salt?: Uint8Array | undefined
}

/** Builds one event; validates it as the node will. */
export function buildEvent(parameters: BuildEventParameters): BuiltEvent {
  const payload: Payload =
    parameters.salt === undefined
      ? createPayload(parameters.data)
      : { salt: parameters.salt, data: parameters.data }
  const prev =
    parameters.prev === undefined
      ? GENESIS_PREV
      : typeof parameters.prev === 'string'
        ? parameters.prev.replace(/^0x/, '')
        : toBareHex(parameters.prev)
  const envelope = parseEnvelope({
    v: 1,
    vehicle: parameters.vehicle.toLowerCase(),
    seq: parameters.seq,
    time: parameters.time,
    kind: parameters.kind,
    prev,
    commit: computeCommit(payload),
  })
  const leafInput = encodeEnvelope(envelope)
  const leafHash = hashLeaf(leafInput)
  return { envelope, leafInput, leafHash, id: eventId(leafHash), payload }
}

/** Where a vehicle's chain stands: the next seq and the last leaf hash. */
export type ChainHead = { nextSeq: number; prev: string }

/** A vehicle's event chain builder (the vehicle side). */
export type EventChain = {
  readonly vehicle: VehicleAddress
  /** Builds the next event, linking it to the previous one. */
  append(parameters: { kind: EventKind; time: number; data: JsonValue; salt?: Uint8Array }): BuiltEvent
  /** The current head, to persist and resume from. */
  head(): ChainHead
}

/** CreateEventChainParameters: the vehicle and, when resuming, its head. */
export type CreateEventChainParameters = { vehicle: string; head?: ChainHead | undefined }

const SALTS_PER_FILL = 64

/**
 * Starts (or resumes) a vehicle's chain: seq 0 links to 64 zeros, each next to the last leaf hash.
 *
 * The car builds an event before it answers an unlock (the answer carries the event's id), so
 * this is built for speed, with exactly the events `buildEvent` makes (cross-checked in
 * event-chain.test.ts; the local log and the node re-derive every leaf hash anyway):
 * - the data is canonicalized (RFC 8785) once, not once to check and once to commit;
 * - salts come from a buffer of CSPRNG bytes filled 64 at a time (the same generator, fewer
 *   calls into it), each copied out and zeroed;
 * - the envelope's canonical form is written from its fields directly: the chain made every field
 *   itself (an address checked once, safe integers, a known kind, hashes it computed as
 *   lowercase hex), so `encodeEnvelope`'s template for well-formed envelopes applies.
 */
export function createEventChain(parameters: CreateEventChainParameters): EventChain {
  const vehicle = parameters.vehicle.toLowerCase() as VehicleAddress
  if (!isVehicleAddress(vehicle)) {
    throw new BaseError('INVALID_ARGUMENT', 'vehicle must be 0x + 40 hex', { details: { vehicle } })
  }
  let { nextSeq, prev } = parameters.head ?? { nextSeq: 0, prev: GENESIS_PREV }
  if (
    !Number.isSafeInteger(nextSeq) ||
    nextSeq < 0 ||
    !hash64Pattern.test(prev) ||
    (nextSeq === 0 && prev !== GENESIS_PREV)
  ) {
    throw new BaseError('INVALID_ARGUMENT', 'a chain head is {nextSeq ≥ 0, prev: 64 lowercase hex}', {
      details: { nextSeq, prev },
    })
  }
  const salts = Buffer.allocUnsafeSlow(SALTS_PER_FILL * SALT_BYTES)
  let saltAt = salts.length
  return {
    vehicle,
    append({ kind, time, data, salt }): BuiltEvent {
      if (!kindSet.has(kind)) throw malformed(`unknown event kind ${JSON.stringify(kind)}`, { field: 'kind' })
      if (!Number.isSafeInteger(time) || time < 0) {
        throw malformed('time must be unix milliseconds (an integer ≥ 0)', { field: 'time', value: time })
      }
      if (salt !== undefined && salt.length !== SALT_BYTES) {
        throw malformed(`a payload salt is ${SALT_BYTES} bytes`, { length: salt.length })
      }
      const json = canonicalize(data)
      // commit = SHA-256(salt ‖ JCS(data)), hashed from one scratch buffer
      const committed = Buffer.allocUnsafe(SALT_BYTES + Buffer.byteLength(json))
      if (salt === undefined) {
        if (saltAt === salts.length) {
          randomFillSync(salts)
          saltAt = 0
        }
        salts.copy(committed, 0, saltAt, saltAt + SALT_BYTES)
        salts.fill(0, saltAt, saltAt + SALT_BYTES)
        saltAt += SALT_BYTES
      } else committed.set(salt, 0)
      committed.write(json, SALT_BYTES)
      const commit = hash('sha256', committed, 'hex')
      const seq = nextSeq
      const text = `{"commit":"${commit}","kind":"${kind}","prev":"${prev}","seq":${seq},"time":${time},"v":1,"vehicle":"${vehicle}"}`
      // RFC 9162 leaf hash: SHA-256(0x00 ‖ leaf input); the text is ASCII
      const leaf = Buffer.allocUnsafe(text.length + 1)
      leaf[0] = 0
      leaf.write(text, 1, 'latin1')
      const digest = hash('sha256', leaf, 'buffer')
      const leafHash = new Uint8Array(digest.buffer, digest.byteOffset, digest.byteLength)
      const leafHex = digest.toString('hex')
      const event: BuiltEvent = {
        envelope: { v: 1, vehicle, seq, time, kind: kind as EventKind, prev, commit },
        // plain Uint8Array views and copies: a Buffer's slice would share memory
        leafInput: new Uint8Array(leaf.buffer, leaf.byteOffset + 1, text.length),
        leafHash,
        id: `0x${leafHex}` as Hex,
        payload: { salt: new Uint8Array(committed.subarray(0, SALT_BYTES)), data },
      }
      nextSeq = seq + 1
      prev = leafHex
      return event
    },
    head: () => ({ nextSeq, prev }),
  }
}

/** The odometer reading of an `odometer` event's data `{"km": <number ≥ 0>}`. */
export function odometerKm(data: unknown): number {
  const km = (data as { km?: unknown } | null)?.km
  if (typeof km !== 'number' || !Number.isFinite(km) || km < 0) {
    throw malformed('an odometer event has data {"km": <number ≥ 0>}', { data: data as never })
  }
  return km
}

// ---------------------------------------------------------------------------------------------
// Checkpoint signatures

/** Bytes of a raw uncompressed P-256 public key 0x04 ‖ X ‖ Y (SEC 1 §2.3.3). */
export const P256_PUBLIC_KEY_BYTES = 65

/**
 * Something that signs with a P-256 key: ECDSA over SHA-256(message), returning raw r‖s
 * (64 bytes). The identity key stores (software, PKCS#11) provide these.
 */
export type P256Signer = { sign(message: Uint8Array): Promise<Uint8Array> }

/** Signs a checkpoint: the 32-byte leaf hash of the batch's newest event is the message. */
export async function signCheckpoint(signer: P256Signer, leafHash: Uint8Array): Promise<Uint8Array> {
  if (leafHash.length !== 32) {
    throw new BaseError('INVALID_ARGUMENT', 'a checkpoint signs a 32-byte leaf hash', {
      details: { length: leafHash.length },
    })
  }
  const signature = await signer.sign(leafHash)
  if (signature.length !== SIGNATURE_BYTES) {
    throw new BaseError('INTERNAL', `the signer returned ${signature.length} bytes, not a raw r‖s`, {
      details: { length: signature.length },
    })
  }
  return signature
}

// SubjectPublicKeyInfo DER up to the BIT STRING of a P-256 key (id-ecPublicKey, prime256v1).
const spkiPrefix = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex')

/**
 * A node:crypto public key from a raw uncompressed P-256 point; undefined when it is not a point
 * on the curve.
 */
export function p256PublicKey(raw: Uint8Array): KeyObject | undefined {
  if (raw.length !== P256_PUBLIC_KEY_BYTES || raw[0] !== 0x04) return undefined
  try {
    return createPublicKey({ key: Buffer.concat([spkiPrefix, raw]), format: 'der', type: 'spki' })
  } catch {
    return undefined
  }
}

/** VerifyP256Parameters: a raw public key (65 bytes) or a KeyObject, the message, raw r‖s. */
export type VerifyP256Parameters = {
  publicKey: Uint8Array | KeyObject
  message: Uint8Array
  signature: Uint8Array
}

/** ECDSA P-256 / SHA-256 verification of a raw r‖s signature; false for any malformed input. */
export function verifyP256(parameters: VerifyP256Parameters): boolean {
  const { message, signature } = parameters
  if (signature.length !== SIGNATURE_BYTES) return false
  const key =
    parameters.publicKey instanceof Uint8Array ? p256PublicKey(parameters.publicKey) : parameters.publicKey
  if (key === undefined) return false
  try {
    // The key as is and the signature in DER: node:crypto takes that ~25 % faster than a
    // `{ key, dsaEncoding: 'ieee-p1363' }` options object (measured: 62 against 86 µs).
    return verify('sha256', message, key, p1363ToDer(signature))
  } catch {
    return false
  }
}

/** An ECDSA signature r‖s (two 32-byte big-endian integers) as DER `SEQUENCE { INTEGER r, INTEGER s }`. */
function p1363ToDer(signature: Uint8Array): Uint8Array {
  const integer = (bytes: Uint8Array): number[] => {
    let start = 0
    while (start < bytes.length - 1 && bytes[start] === 0) start++
    const body = [...bytes.subarray(start)]
    if (body[0]! & 0x80) body.unshift(0)
    return [0x02, body.length, ...body]
  }
  const r = integer(signature.subarray(0, 32))
  const s = integer(signature.subarray(32, 64))
  return Uint8Array.from([0x30, r.length + s.length, ...r, ...s])
}

/** Whether `signature` is the vehicle key's checkpoint signature over `leafHash`. */
export function verifyCheckpointSignature(parameters: {
  publicKey: Uint8Array | KeyObject
  leafHash: Uint8Array
  signature: Uint8Array
}): boolean {
  if (parameters.leafHash.length !== 32) return false
  return verifyP256({
    publicKey: parameters.publicKey,
    message: parameters.leafHash,
    signature: parameters.signature,
  })
}
