/**
 * Passkey phone keys, the car's side (docs/keys.md "Passkey keys"): a PasskeyGrant names a P-256
 * public key instead of a grantee address, and the phone answers the car's challenge with a
 * WebAuthn assertion (`navigator.credentials.get`) instead of an EIP-712 signature. The car
 * checks it offline, with no WebAuthn library:
 *
 * - `clientDataJSON` is JSON with `type` "webauthn.get" (PASSKEY_CLIENT_DATA otherwise);
 * - its `challenge` is base64url of the EIP-712 hash of AccessRequest(grantId, action, challenge)
 *   over the car's fresh challenge, which binds the car's challenge, the grant and the action
 *   (REQUEST_BAD_SIGNATURE otherwise; a used or expired challenge of this session is a replay:
 *   CHALLENGE_UNKNOWN / CHALLENGE_EXPIRED once the signature verifies over it);
 * - `authenticatorData`'s RP ID hash is SHA-256 of the grant's `rpId` (PASSKEY_RP_MISMATCH);
 * - its flags say the user was present (UP) and, unless the car's policy waives it, verified (UV)
 *   (PASSKEY_USER_ABSENT);
 * - the client data's `origin` is allowed for the grant's RP ID, and `crossOrigin` is not true
 *   (PASSKEY_ORIGIN);
 * - the DER ECDSA P-256 signature verifies over `authenticatorData ‖ SHA-256(clientDataJSON)`
 *   with the grant's key (REQUEST_BAD_SIGNATURE);
 * - the signature counter, where the authenticator keeps one (non-zero), is above the last one
 *   the car saw for this key (PASSKEY_COUNTER: a cloned authenticator or a rollback).
 */
import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { p256 } from '@noble/curves/nist.js'
import type { Hex } from 'viem'
import { BaseError } from '../errors.ts'
import { writeFileAtomic } from '../fs-atomic.ts'
import { logger } from '../log.ts'
import { setBounded } from './bounded-map.ts'
import { fromBase64Url, toBase64Url } from './share-link.ts'
import type { PasskeyGrant } from './typed-data.ts'

/** A WebAuthn assertion on the link: each part base64url (no padding), as the browser gives it. */
export type WireAssertion = { authenticatorData: string; clientDataJSON: string; signature: string }

/** An assertion's bytes. */
export type PasskeyAssertion = {
  authenticatorData: Uint8Array
  clientDataJSON: Uint8Array
  /** ASN.1 DER ECDSA signature, as WebAuthn gives it for ES256. */
  signature: Uint8Array
}

/** Longest parts the car reads (bytes): authenticator data with extensions, client data with hints. */
export const MAX_AUTHENTICATOR_DATA_BYTES = 1024
export const MAX_CLIENT_DATA_BYTES = 2048
/** A DER P-256 signature is at most 72 bytes. */
export const MAX_DER_SIGNATURE_BYTES = 72

const FLAG_UP = 0x01
const FLAG_UV = 0x04

function invalid(message: string, field: string): BaseError {
  return new BaseError('INVALID_ARGUMENT', message, { details: { field } })
}

function part(value: unknown, field: string, min: number, max: number): Uint8Array {
  // base64url of `max` bytes is at most ceil(max·4/3) characters
  if (typeof value !== 'string' || value.length > Math.ceil((max * 4) / 3) + 2)
    throw invalid(`${field} must be base64url of at most ${max} bytes`, field)
  let bytes: Uint8Array
  try {
    bytes = fromBase64Url(value)
  } catch (error) {
    throw new BaseError('INVALID_ARGUMENT', `${field} must be base64url`, {
      details: { field },
      cause: error,
    })
  }
  if (bytes.length < min || bytes.length > max)
    throw invalid(`${field} must be ${min} to ${max} bytes`, field)
  return bytes
}

/** An assertion from the link's JSON; INVALID_ARGUMENT naming the field otherwise. */
export function parseAssertion(value: unknown): PasskeyAssertion {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw invalid('assertion must be {authenticatorData, clientDataJSON, signature}', 'assertion')
  const record = value as Record<string, unknown>
  const keys = Object.keys(record)
  if (keys.length !== 3)
    throw invalid('assertion has exactly authenticatorData, clientDataJSON and signature', 'assertion')
  return {
    authenticatorData: part(
      record.authenticatorData,
      'assertion.authenticatorData',
      37,
      MAX_AUTHENTICATOR_DATA_BYTES,
    ),
    clientDataJSON: part(record.clientDataJSON, 'assertion.clientDataJSON', 2, MAX_CLIENT_DATA_BYTES),
    signature: part(record.signature, 'assertion.signature', 8, MAX_DER_SIGNATURE_BYTES),
  }
}

/** The wire form of an assertion's bytes. */
export function wireAssertion(assertion: PasskeyAssertion): WireAssertion {
  return {
    authenticatorData: toBase64Url(assertion.authenticatorData),
    clientDataJSON: toBase64Url(assertion.clientDataJSON),
    signature: toBase64Url(assertion.signature),
  }
}

/**
 * The WebAuthn challenge for a request: base64url of its 32-byte AccessRequest hash (what
 * `accessRequestHasher` / `hashAccessRequest` give for (grantId, action, the car's challenge)).
 */
export function passkeyChallenge(requestHash: Uint8Array): string {
  return toBase64Url(requestHash)
}

/** What the car requires of assertions beyond the grant (its policy). */
export type PasskeyPolicy = {
  /** Refuse assertions without the UV flag (the phone's PIN or biometrics); default true. */
  requireUserVerification?: boolean | undefined
  /**
   * Web origins the car accepts (exact, e.g. `https://keys.example.com`). Default: the grant's
   * RP ID or a subdomain of it over https, and `http://localhost[:port]` for RP ID `localhost`
   * (browsers allow WebAuthn there for development).
   */
  origins?: readonly string[] | undefined
  /** Passkeys whose counter the car keeps (least recent dropped first); default 4096. */
  maxCounters?: number | undefined
  /** Where the counters live; default in memory ({@link FilePasskeyCounters} keeps them on disk). */
  counters?: PasskeyCounters | undefined
}

/** The highest signature counter accepted per passkey. */
export interface PasskeyCounters {
  /** 0 for a passkey never seen (or one whose authenticator keeps no counter). */
  get(passkey: Hex): number
  set(passkey: Hex, counter: number): void
}

/** Counters in memory, bounded (least recently set dropped first). */
export class MemoryPasskeyCounters implements PasskeyCounters {
  protected readonly counters = new Map<string, number>()
  readonly #maxEntries: number
  constructor(maxEntries = 4096) {
    this.#maxEntries = maxEntries
  }
  get(passkey: Hex): number {
    return this.counters.get(passkey) ?? 0
  }
  set(passkey: Hex, counter: number): void {
    setBounded(this.counters, passkey, counter, this.#maxEntries)
  }
}

/** The counters' file inside the vehicle's directory. */
export const PASSKEY_COUNTERS_FILE = 'passkey-counters.json'

const log = logger('keys.passkey')

/**
 * Counters that survive a restart: `<dir>/passkey-counters.json` (`{"0x04…": n}`), read on open
 * and written atomically right after the task that raised a counter (coalesced, off the unlock's
 * path). A crash in between can lose the newest counter, so a cloned authenticator could be
 * accepted once more at that value; replay stays impossible (single-use challenges).
 */
export class FilePasskeyCounters extends MemoryPasskeyCounters {
  readonly #path: string
  #dirty = false

  constructor(dir: string, maxEntries?: number) {
    super(maxEntries)
    this.#path = join(dir, PASSKEY_COUNTERS_FILE)
    if (!existsSync(this.#path)) return
    try {
      const stored = JSON.parse(readFileSync(this.#path, 'utf8')) as Record<string, unknown>
      for (const [passkey, counter] of Object.entries(stored))
        if (/^0x04[0-9a-f]{128}$/.test(passkey) && Number.isSafeInteger(counter) && (counter as number) > 0)
          super.set(passkey as Hex, counter as number)
    } catch (error) {
      throw new BaseError('DATA_DIR_INVALID', `${this.#path} is not a passkey counter file`, {
        details: { path: this.#path },
        cause: error,
      })
    }
  }

  override set(passkey: Hex, counter: number): void {
    super.set(passkey, counter)
    if (this.#dirty) return
    this.#dirty = true
    setImmediate(() => this.flush())
  }

  /** Writes the counters now if they changed (also on the agent's stop). */
  flush(): void {
    if (!this.#dirty) return
    this.#dirty = false
    try {
      writeFileAtomic(this.#path, `${JSON.stringify(Object.fromEntries(this.counters))}\n`)
    } catch (error) {
      log.error({ err: error, path: this.#path }, 'could not write the passkey counters')
    }
  }
}

/** Whether `origin` may carry an assertion for `rpId` under `policy`. */
export function originAllowed(origin: string, rpId: string, policy: PasskeyPolicy): boolean {
  if (policy.origins) return policy.origins.includes(origin)
  let url: URL
  try {
    url = new URL(origin)
  } catch {
    return false
  }
  // an origin is scheme://host[:port] exactly, nothing else
  if (url.origin !== origin) return false
  const host = url.hostname
  if (url.protocol === 'http:') return rpId === 'localhost' && host === 'localhost'
  return url.protocol === 'https:' && (host === rpId || host.endsWith(`.${rpId}`))
}

export type PasskeyCode =
  | 'OK'
  | 'PASSKEY_CLIENT_DATA'
  | 'PASSKEY_RP_MISMATCH'
  | 'PASSKEY_USER_ABSENT'
  | 'PASSKEY_ORIGIN'
  | 'PASSKEY_COUNTER'
  | 'REQUEST_BAD_SIGNATURE'
  | 'CHALLENGE_UNKNOWN'
  | 'CHALLENGE_EXPIRED'

/** The challenges an assertion may answer: the fresh one, and those this session used or let expire. */
export type AssertionChallenges = {
  /** base64url of the request hash over the car's fresh challenge. */
  current: string
  /** The same for this session's earlier challenges (replay detection), computed only when needed. */
  past: () => Iterable<{ challenge: string; status: 'used' | 'expired' }>
}

const sha256 = (bytes: Uint8Array | string): Uint8Array => createHash('sha256').update(bytes).digest()

function equalBytes(a: Uint8Array, b: Uint8Array, length: number): boolean {
  for (let i = 0; i < length; i++) if (a[i] !== b[i]) return false
  return true
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** The client data's fields the car reads, or undefined when it is not a JSON object. */
function readClientData(bytes: Uint8Array): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(utf8.decode(bytes))
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined
  } catch {
    return undefined
  }
}

/**
 * Verifies assertions for one car: keeps the RP ID hashes it has computed and, per passkey, the
 * highest signature counter it has accepted (`policy.counters`).
 */
export class PasskeyVerifier {
  readonly #requireUv: boolean
  readonly #policy: PasskeyPolicy
  readonly #rpIdHashes = new Map<string, Uint8Array>()
  readonly #counters: PasskeyCounters

  constructor(policy: PasskeyPolicy = {}) {
    this.#policy = policy
    this.#requireUv = policy.requireUserVerification ?? true
    this.#counters = policy.counters ?? new MemoryPasskeyCounters(policy.maxCounters)
  }

  /** The highest counter accepted for `passkey` (0: none, or an authenticator without one). */
  counter(passkey: Hex): number {
    return this.#counters.get(passkey)
  }

  /** Checks an assertion against its grant and this session's challenges; accepts its counter on OK. */
  verify(grant: PasskeyGrant, assertion: PasskeyAssertion, challenges: AssertionChallenges): PasskeyCode {
    const clientData = readClientData(assertion.clientDataJSON)
    if (clientData === undefined || clientData.type !== 'webauthn.get') return 'PASSKEY_CLIENT_DATA'
    const challenge = clientData.challenge
    if (typeof challenge !== 'string') return 'PASSKEY_CLIENT_DATA'
    let replayOf: 'used' | 'expired' | undefined
    if (challenge !== challenges.current) {
      for (const past of challenges.past())
        if (past.challenge === challenge) {
          replayOf = past.status
          break
        }
      if (replayOf === undefined) return 'REQUEST_BAD_SIGNATURE'
    }
    const authData = assertion.authenticatorData
    if (!equalBytes(authData, this.#rpIdHash(grant.rpId), 32)) return 'PASSKEY_RP_MISMATCH'
    const flags = authData[32]!
    if ((flags & FLAG_UP) === 0 || (this.#requireUv && (flags & FLAG_UV) === 0)) return 'PASSKEY_USER_ABSENT'
    if (
      typeof clientData.origin !== 'string' ||
      clientData.crossOrigin === true ||
      !originAllowed(clientData.origin, grant.rpId, this.#policy)
    )
      return 'PASSKEY_ORIGIN'
    if (!this.#signatureValid(grant.passkey, assertion)) return 'REQUEST_BAD_SIGNATURE'
    if (replayOf !== undefined) return replayOf === 'used' ? 'CHALLENGE_UNKNOWN' : 'CHALLENGE_EXPIRED'
    const counter =
      ((authData[33]! << 24) | (authData[34]! << 16) | (authData[35]! << 8) | authData[36]!) >>> 0
    const last = this.counter(grant.passkey)
    // An authenticator that counts must count up; one that does not (0) never may start later
    // and stop again.
    if (last > 0 && counter <= last) return 'PASSKEY_COUNTER'
    if (counter > 0) this.#counters.set(grant.passkey, counter)
    return 'OK'
  }

  #rpIdHash(rpId: string): Uint8Array {
    let hash = this.#rpIdHashes.get(rpId)
    if (hash === undefined) {
      hash = sha256(rpId)
      setBounded(this.#rpIdHashes, rpId, hash, 256)
    }
    return hash
  }

  #signatureValid(passkey: Hex, assertion: PasskeyAssertion): boolean {
    const { authenticatorData, clientDataJSON, signature } = assertion
    const signed = new Uint8Array(authenticatorData.length + 32)
    signed.set(authenticatorData, 0)
    signed.set(sha256(clientDataJSON), authenticatorData.length)
    try {
      // WebAuthn signatures are DER and may be high-S (OpenSSL-style): both are accepted.
      return p256.verify(signature, signed, Buffer.from(passkey.slice(2), 'hex'), {
        format: 'der',
        lowS: false,
        prehash: true,
      })
    } catch {
      return false // a malformed DER signature or a key not on the curve
    }
  }
}
