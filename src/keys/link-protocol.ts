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
 * `grantSignature` is null or absent). A passkey key sends a PasskeyGrant and, instead of
 * `signature`, `"assertion":{"authenticatorData","clientDataJSON","signature"}` (base64url, the
 * WebAuthn assertion, passkey.ts).
 */
import type { Address, Hex } from 'viem'
import { BaseError, type ErrorCode } from '../errors.ts'
import { setBounded } from './bounded-map.ts'
import { type PasskeyAssertion, parseAssertion, type WireAssertion } from './passkey.ts'
import {
  type AnySignedGrant,
  isPasskeyGrant,
  type KeyGrant,
  type PasskeyGrant,
  parseAction,
  parseAddress,
  parseAnyGrant,
  parseBytes32,
  parseSignatureHex,
} from './typed-data.ts'

export type ChallengeMessage = { type: 'challenge'; vehicle: Address; challenge: Hex; time: number }
export type RequestMessage = {
  type: 'request'
  grant: KeyGrant | null
  grantSignature: Hex | null
  action: number
  signature: Hex
}
/** A passkey key's request: a PasskeyGrant and a WebAuthn assertion instead of `signature`. */
export type PasskeyRequestMessage = {
  type: 'request'
  grant: PasskeyGrant
  grantSignature: Hex
  action: number
  assertion: WireAssertion
}
export type ResultMessage = { type: 'result'; ok: boolean; code: 'OK' | ErrorCode; eventId: Hex | null }
export type LinkMessage = ChallengeMessage | RequestMessage | PasskeyRequestMessage | ResultMessage

/** Largest frame either side accepts (a grant with a 256-byte purpose fits many times over). */
export const MAX_LINK_MESSAGE_BYTES = 8 * 1024

/** A request as the car uses it. */
export type ParsedRequest = {
  grant: AnySignedGrant | null
  action: number
  /** The 65-byte AccessRequest signature (empty for a passkey request). */
  signature: Uint8Array
  signatureHex: Hex
  /** A passkey request's WebAuthn assertion. */
  assertion?: PasskeyAssertion
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
  readonly #entries = new Map<string, { raw: Record<string, unknown>; signed: AnySignedGrant }>()
  readonly #maxEntries: number

  constructor(maxEntries = 64) {
    this.#maxEntries = maxEntries
  }

  /** The parsed grant of `raw` with `signature`: from the cache when every field is identical. */
  parse(raw: unknown, signature: unknown): AnySignedGrant {
    const hit = typeof signature === 'string' ? this.#entries.get(signature) : undefined
    if (hit && sameFields(raw, hit.raw)) return hit.signed
    const signed: AnySignedGrant = Object.freeze({
      grant: Object.freeze(parseAnyGrant(raw)),
      signature: parseSignatureHex(signature, 'grantSignature'),
    })
    const checked = { raw: { ...(raw as Record<string, unknown>) }, signed }
    setBounded(this.#entries, signature as string, checked, this.#maxEntries)
    return signed
  }
}

/** Whether `value` is an object with exactly the (already checked) fields of `checked`. */
function sameFields(value: unknown, checked: Record<string, unknown>): boolean {
  if (typeof value !== 'object' || value === null) return false
  const record = value as Record<string, unknown>
  let fields = 0
  for (const key in checked) {
    if (record[key] !== checked[key]) return false
    fields++
  }
  // every checked name present with its value: as many keys means no others
  return Object.keys(record).length === fields
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
  if (record.assertion !== undefined) return parsePasskeyRequest(record, action, cache)
  const signatureHex = parseSignatureHex(record.signature, 'signature')
  const signature = Buffer.from(signatureHex.slice(2), 'hex')
  if (record.grant === null) {
    if (record.grantSignature !== undefined && record.grantSignature !== null)
      throw new BaseError('INVALID_ARGUMENT', 'a rental request (grant null) has no grantSignature', {
        details: { field: 'grantSignature' },
      })
    return { grant: null, action, signature, signatureHex }
  }
  const grant = parseRequestGrant(record, cache)
  if (isPasskeyGrant(grant.grant))
    throw new BaseError(
      'INVALID_ARGUMENT',
      'a passkey grant is answered with an assertion, not a signature',
      {
        details: { field: 'assertion' },
      },
    )
  return { grant, action, signature, signatureHex }
}

function parseRequestGrant(
  record: Record<string, unknown>,
  cache: GrantParseCache | undefined,
): AnySignedGrant {
  return cache
    ? cache.parse(record.grant, record.grantSignature)
    : {
        grant: parseAnyGrant(record.grant),
        signature: parseSignatureHex(record.grantSignature, 'grantSignature'),
      }
}

const NO_SIGNATURE = new Uint8Array(0)

/** A passkey request: a PasskeyGrant, its signature, and the WebAuthn assertion (no `signature`). */
function parsePasskeyRequest(
  record: Record<string, unknown>,
  action: number,
  cache: GrantParseCache | undefined,
): ParsedRequest {
  if (record.signature !== undefined)
    throw new BaseError('INVALID_ARGUMENT', 'a passkey request has an assertion and no signature', {
      details: { field: 'signature' },
    })
  const assertion = parseAssertion(record.assertion)
  const grant = parseRequestGrant(record, cache)
  if (!isPasskeyGrant(grant.grant))
    throw new BaseError('INVALID_ARGUMENT', 'an assertion answers only for a passkey grant', {
      details: { field: 'grant' },
    })
  return { grant, action, signature: NO_SIGNATURE, signatureHex: '0x', assertion }
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
