/**
 * The short-range link's messages (docs/spec.md "The short-range link"; the link stands for BLE/NFC and is a
 * WebSocket here). One JSON object per text frame:
 *
 * - car → device `{"type":"challenge","vehicle":"0x…","challenge":"0x…32 bytes","time":<unix s>}`
 * - device → car `{"type":"request","grant":{…KeyGrant…}|null,"grantSignature":"0x…65 bytes"|null,"action":<bit>,"signature":"0x…65 bytes"}`
 * - car → device `{"type":"result","ok":<bool>,"code":"OK"|"<ERROR_CODE>","eventId":"0x…"|null}`
 *
 * `signature` is the device's EIP-712 signature of AccessRequest(grant.grantId or zero, action,
 * challenge) over the car's newest challenge. A renter sends `"grant": null` (its
 * `grantSignature` is null or absent).
 */
import type { Address, Hex } from 'viem'
import { BaseError, type ErrorCode } from '../errors.ts'
import { setBounded } from './bounded-map.ts'
import {
  type KeyGrant,
  parseAction,
  parseAddress,
  parseBytes32,
  parseGrant,
  parseSignatureHex,
  type SignedGrant,
} from './typed-data.ts'

export type ChallengeMessage = { type: 'challenge'; vehicle: Address; challenge: Hex; time: number }
export type RequestMessage = {
  type: 'request'
  grant: KeyGrant | null
  grantSignature: Hex | null
  action: number
  signature: Hex
}
export type ResultMessage = { type: 'result'; ok: boolean; code: 'OK' | ErrorCode; eventId: Hex | null }
export type LinkMessage = ChallengeMessage | RequestMessage | ResultMessage

/** Largest frame either side accepts (a grant with a 256-byte purpose fits many times over). */
export const MAX_LINK_MESSAGE_BYTES = 8 * 1024

/** A request as the car uses it. */
export type ParsedRequest = {
  grant: SignedGrant | null
  action: number
  signature: Uint8Array
  signatureHex: Hex
}

function object(text: string): Record<string, unknown> {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    throw new BaseError('INVALID_ARGUMENT', 'a link message must be JSON', {
      details: { field: 'message' },
      cause: error,
    })
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new BaseError('INVALID_ARGUMENT', 'a link message must be a JSON object', {
      details: { field: 'message' },
    })
  return value as Record<string, unknown>
}

/**
 * Grants parsed before, by the JSON text of their signature. A phone sends the same signed grant
 * with every request, so the car checks its nine fields once: a later frame whose grant fields are
 * each identical (`===`) to those already checked reuses the parsed grant. Bounded; the least
 * recently added entry is dropped first.
 */
export class GrantParseCache {
  readonly #entries = new Map<string, { raw: Record<string, unknown>; signed: SignedGrant }>()
  readonly #maxEntries: number

  constructor(maxEntries = 64) {
    this.#maxEntries = maxEntries
  }

  /** The parsed grant of `raw` with `signature`: from the cache when every field is identical. */
  parse(raw: unknown, signature: unknown): SignedGrant {
    const hit = typeof signature === 'string' ? this.#entries.get(signature) : undefined
    if (hit && sameFields(raw, hit.raw)) return hit.signed
    const signed: SignedGrant = Object.freeze({
      grant: Object.freeze(parseGrant(raw)),
      signature: parseSignatureHex(signature, 'grantSignature'),
    })
    const checked = { raw: { ...(raw as Record<string, unknown>) }, signed }
    setBounded(this.#entries, signature as string, checked, this.#maxEntries)
    return signed
  }
}

const GRANT_FIELDS = 9

/** Whether `value` is an object with exactly the (already checked) nine fields of `checked`. */
function sameFields(value: unknown, checked: Record<string, unknown>): boolean {
  if (typeof value !== 'object' || value === null) return false
  const record = value as Record<string, unknown>
  for (const key in checked) if (record[key] !== checked[key]) return false
  // all nine names present with their values: nine keys means no others
  return Object.keys(record).length === GRANT_FIELDS
}

/**
 * Parses a device's request frame; throws INVALID_ARGUMENT naming the field. With a `cache`, a
 * grant seen before is not checked again (the car's link keeps one per server).
 */
export function parseRequestMessage(text: string, cache?: GrantParseCache): ParsedRequest {
  const record = object(text)
  if (record.type !== 'request')
    throw new BaseError('INVALID_ARGUMENT', 'the device sends {"type":"request",…}', {
      details: { field: 'type', value: String(record.type).slice(0, 40) },
    })
  const action = parseAction(record.action)
  const signatureHex = parseSignatureHex(record.signature, 'signature')
  const signature = Buffer.from(signatureHex.slice(2), 'hex')
  if (record.grant === null) {
    if (record.grantSignature !== undefined && record.grantSignature !== null)
      throw new BaseError('INVALID_ARGUMENT', 'a rental request (grant null) has no grantSignature', {
        details: { field: 'grantSignature' },
      })
    return { grant: null, action, signature, signatureHex }
  }
  const grant = cache
    ? cache.parse(record.grant, record.grantSignature)
    : {
        grant: parseGrant(record.grant),
        signature: parseSignatureHex(record.grantSignature, 'grantSignature'),
      }
  return { grant, action, signature, signatureHex }
}

/**
 * The car's answer frame. Its values are an error code (an identifier), a boolean and `0x`-hex or
 * null, none of which JSON escapes, so it is written directly; `parseCarMessage` reads it back.
 */
export function formatResult(result: ResultMessage): string {
  const eventId = result.eventId === null ? 'null' : `"${result.eventId}"`
  return `{"type":"result","ok":${result.ok},"code":"${result.code}","eventId":${eventId}}`
}

/** Parses a car's frame (the device side): a challenge or a result. */
export function parseCarMessage(text: string): ChallengeMessage | ResultMessage {
  const record = object(text)
  if (record.type === 'challenge') {
    const time = record.time
    if (typeof time !== 'number' || !Number.isSafeInteger(time))
      throw new BaseError('INVALID_ARGUMENT', 'challenge.time must be unix seconds', {
        details: { field: 'time' },
      })
    return {
      type: 'challenge',
      vehicle: parseAddress(record.vehicle, 'vehicle'),
      challenge: parseBytes32(record.challenge, 'challenge'),
      time,
    }
  }
  if (record.type === 'result') {
    if (typeof record.ok !== 'boolean' || typeof record.code !== 'string')
      throw new BaseError('INVALID_ARGUMENT', 'a result has ok (boolean) and code (string)', {
        details: { field: 'result' },
      })
    const eventId = record.eventId === null ? null : parseBytes32(record.eventId, 'eventId')
    return { type: 'result', ok: record.ok, code: record.code as ErrorCode, eventId }
  }
  throw new BaseError('INVALID_ARGUMENT', 'the car sends challenge or result messages', {
    details: { field: 'type' },
  })
}
