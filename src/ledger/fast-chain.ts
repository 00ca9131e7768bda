/**
 * A vehicle's event chain for the car's hot path: the same events as `createEventChain`
 * (envelope.ts), byte for byte, at a fraction of the cost. The car builds an event before it
 * answers an unlock (the answer carries the event's id), so the few microseconds matter there:
 *
 * - the data is canonicalized (RFC 8785) once, not once to check and once to commit;
 * - salts come from a buffer of CSPRNG bytes filled 64 salts at a time (the same generator,
 *   fewer calls into it);
 * - the envelope's canonical form is written from its fields directly: the chain made every
 *   field itself (an address checked once, safe integers, a known kind, hashes it computed as
 *   lowercase hex), so the template `encodeEnvelope` uses for well-formed envelopes applies;
 * - hashes come out as hex where hex is what the envelope holds.
 *
 * Cross-checked against `buildEvent` in fast-chain.test.ts; the local log re-derives every leaf
 * hash on append and the node on ingest, so a difference could not pass unnoticed.
 */
import { hash, randomFillSync } from 'node:crypto'
import { BaseError } from '../errors.ts'
import type { Hex } from './bytes.ts'
import {
  type BuiltEvent,
  type CreateEventChainParameters,
  type EventChain,
  type EventKind,
  eventKinds,
  GENESIS_PREV,
  isVehicleAddress,
  SALT_BYTES,
  type VehicleAddress,
} from './envelope.ts'
import { canonicalize } from './jcs.ts'

const kinds: ReadonlySet<string> = new Set(eventKinds)
const hash64Pattern = /^[0-9a-f]{64}$/
const SALTS_PER_FILL = 64

function malformed(message: string, details: Record<string, unknown>): BaseError {
  return new BaseError('EVENT_MALFORMED', message, { details })
}

/** `createEventChain` with the hot-path construction above; same parameters, same events. */
export function createFastEventChain(parameters: CreateEventChainParameters): EventChain {
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
      if (!kinds.has(kind)) throw malformed(`unknown event kind ${JSON.stringify(kind)}`, { field: 'kind' })
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
