/**
 * The car's offline access decision (docs/spec.md "The car's offline check, in order"): no server, only what the car
 * knows of the chain (its {@link KeyState}, synced by the chain cache) and its own use counters.
 *
 * Checks, in order, each with its code (the link's `result.code`):
 *
 * | # | check | code |
 * |---|---|---|
 * | 0 | the car has synced its chain state at least once | KEYS_NOT_SYNCED |
 * | 1 | the grant is signed by the vehicle's current owner or a manager (signer cached per grant) | GRANT_BAD_SIGNATURE |
 * | 1b | last sync within `maxStaleMs`, or the grant is signed by the owner | KEYS_STALE |
 * | 2 | `grant.vehicle` is this vehicle | GRANT_WRONG_VEHICLE |
 * | 3 | `grant.epoch` equals the car's known epoch | GRANT_EPOCH |
 * | 4 | `grant.grantId` is not revoked | GRANT_REVOKED |
 * | 5 | `notBefore ≤ now ≤ notAfter` | GRANT_NOT_YET_VALID, GRANT_EXPIRED |
 * | 6 | the action is within `scopes` | GRANT_SCOPE |
 * | 7 | uses left (`maxUses` 0 = unlimited) | GRANT_USED_UP |
 * | 8 | the grantee signed AccessRequest(grantId, action, challenge) over this fresh challenge | REQUEST_BAD_SIGNATURE |
 *
 * A PasskeyGrant takes the same checks 0–7; at 8 its passkey's WebAuthn assertion must answer
 * this challenge (passkey.ts: PASSKEY_CLIENT_DATA, PASSKEY_RP_MISMATCH, PASSKEY_USER_ABSENT,
 * PASSKEY_ORIGIN, REQUEST_BAD_SIGNATURE, PASSKEY_COUNTER).
 *
 * A rental (`grant` null): the action is within UNLOCK|LOCK|START (GRANT_SCOPE), the last sync is
 * within `maxStaleMs` (KEYS_STALE); the title has an
 * unexpired ERC-4907 user who signed AccessRequest(0, action, challenge) (RENTAL_NOT_ACTIVE;
 * REQUEST_BAD_SIGNATURE when the signature is malformed).
 *
 * When the request signature fails but verifies over a challenge this session already consumed
 * (or let expire), the answer is a replay: CHALLENGE_UNKNOWN (or CHALLENGE_EXPIRED). Only a
 * granted attempt consumes a use, and the use is durable before the decision returns.
 */
import type { Address, Hex } from 'viem'
import type { ErrorCode } from '../errors.ts'
import { setBounded } from './bounded-map.ts'
import { type PasskeyAssertion, type PasskeyPolicy, PasskeyVerifier, passkeyChallenge } from './passkey.ts'
import { recoverAddress, SignerKeyCache } from './signatures.ts'
import {
  type AnyGrant,
  type AnySignedGrant,
  accessRequestHasher,
  grantHolder,
  hashGrant,
  isPasskeyGrant,
  type KeyDomain,
  type PasskeyGrant,
  RENTAL_SCOPES,
  ZERO_GRANT_ID,
} from './typed-data.ts'
import type { UseCounter } from './use-counter.ts'

/**
 * What the car knows of the chain about itself. Implemented by the chain cache; every method is
 * a synchronous lookup (the decision never waits for the network).
 */
export interface KeyState {
  /** Whether `address` (lowercase) is the title's current owner or one of its managers. */
  isOwnerOrManager(address: Address): boolean
  /** Whether `address` (lowercase) is the title's current owner. */
  isOwner(address: Address): boolean
  /** When this state was last read from the chain (unix ms); 0 never. */
  syncedAtMs(): number
  /** The vehicle's current KeyRegistry epoch. */
  epoch(): number
  /** Whether `grantId` (lowercase) is revoked on chain. */
  isRevoked(grantId: Hex): boolean
  /** The title's ERC-4907 user and its expiry (unix seconds), if any. */
  rentalUser(): { user: Address; expiresSec: number } | undefined
}

/** A challenge the session issued before, for telling replays and stale answers apart. */
export type PastChallenge = { challenge: Uint8Array; status: 'used' | 'expired' }

/** One access attempt, parsed from the link. */
export type AccessAttempt = {
  /** The signed grant (a KeyGrant or a PasskeyGrant), or null for a renter. */
  grant: AnySignedGrant | null
  action: number
  /** The grantee's 65-byte signature over AccessRequest(grantId, action, challenge). */
  signature: Uint8Array
  /** A passkey grant's WebAuthn assertion (instead of `signature`). */
  assertion?: PasskeyAssertion | undefined
  /** The fresh challenge the car issued for this answer (32 bytes). */
  challenge: Uint8Array
  /** Challenges this session issued earlier (replay detection). */
  pastChallenges?: readonly PastChallenge[]
}

/** The decision, with what the ledger event records. */
export type AccessDecision = {
  ok: boolean
  code: 'OK' | ErrorCode
  action: number
  /** The grant's id (zero for a rental). */
  grantId: Hex
  /** Who asked: the grantee (an address, or a passkey grant's public key), or the renter. */
  subject: Hex | undefined
  /** The grant's signer (owner or manager), when recovered. */
  issuer: Address | undefined
  rental: boolean
  purpose: string
  /** The grant's use count after this attempt (limited grants). */
  uses?: number
  maxUses?: number
}

export type AccessControllerOptions = {
  /** This vehicle's address. */
  vehicle: Address
  domain: KeyDomain
  state: KeyState
  uses: UseCounter
  /** Milliseconds since the epoch; default `Date.now`. */
  clock?: () => number
  /** Grants whose signer is cached (least recent dropped first); default 1024. */
  maxCachedGrants?: number
  /**
   * Past this long since the last sync, only owner-signed grants are honoured (docs/keys.md
   * "Chain cache, sync and offline policy"); default {@link DEFAULT_MAX_STALE_MS}.
   */
  maxStaleMs?: number | undefined
  /** What the car requires of passkey assertions (UV, web origins); docs/keys.md "Passkey keys". */
  passkeys?: PasskeyPolicy | undefined
}

/** Three days: a long weekend parked without coverage still opens for every key. */
export const DEFAULT_MAX_STALE_MS = 72 * 3600 * 1000

type CachedGrant = { grant: AnyGrant; issuer: Address | undefined; grantIdBytes: Uint8Array }

/** Whether two grants have the same fields (nine of a KeyGrant, ten of a PasskeyGrant). */
function sameGrant(a: AnyGrant, b: AnyGrant): boolean {
  return (
    a.grantId === b.grantId &&
    a.vehicle === b.vehicle &&
    (a as { grantee?: Address }).grantee === (b as { grantee?: Address }).grantee &&
    (a as { passkey?: Hex }).passkey === (b as { passkey?: Hex }).passkey &&
    (a as { rpId?: string }).rpId === (b as { rpId?: string }).rpId &&
    a.scopes === b.scopes &&
    a.notBefore === b.notBefore &&
    a.notAfter === b.notAfter &&
    a.maxUses === b.maxUses &&
    a.epoch === b.epoch &&
    a.purpose === b.purpose
  )
}

const ZERO32 = new Uint8Array(32)

/** The offline decision of one vehicle. */
export class AccessController {
  readonly vehicle: Address
  readonly #domain: KeyDomain
  readonly #state: KeyState
  readonly #uses: UseCounter
  readonly #clock: () => number
  readonly #hashRequest: ReturnType<typeof accessRequestHasher>
  readonly #signers = new SignerKeyCache()
  readonly #grants = new Map<string, CachedGrant>()
  readonly #maxCachedGrants: number
  readonly #maxStaleMs: number
  readonly #passkeys: PasskeyVerifier

  constructor(options: AccessControllerOptions) {
    this.vehicle = options.vehicle.toLowerCase() as Address
    this.#domain = options.domain
    this.#state = options.state
    this.#uses = options.uses
    this.#clock = options.clock ?? Date.now
    this.#hashRequest = accessRequestHasher(options.domain)
    this.#maxCachedGrants = options.maxCachedGrants ?? 1024
    this.#maxStaleMs = options.maxStaleMs ?? DEFAULT_MAX_STALE_MS
    this.#passkeys = new PasskeyVerifier(options.passkeys)
  }

  /** Decides one attempt. Synchronous: everything it needs is local. */
  decide(attempt: AccessAttempt): AccessDecision {
    return attempt.grant === null ? this.#decideRental(attempt) : this.#decideGrant(attempt, attempt.grant)
  }

  /** 'fresh', 'stale' (synced, but longer ago than the bound) or 'never' synced. */
  #freshness(): 'fresh' | 'stale' | 'never' {
    const syncedAtMs = this.#state.syncedAtMs()
    if (syncedAtMs <= 0) return 'never'
    return this.#clock() - syncedAtMs > this.#maxStaleMs ? 'stale' : 'fresh'
  }

  #decideGrant(attempt: AccessAttempt, signed: AnySignedGrant): AccessDecision {
    const { grant } = signed
    const cached = this.#grantSigner(signed)
    const base = {
      action: attempt.action,
      grantId: grant.grantId,
      subject: grantHolder(grant),
      issuer: cached.issuer,
      rental: false,
      purpose: grant.purpose,
      ...(grant.maxUses > 0 ? { maxUses: grant.maxUses, uses: this.#uses.used(grant.grantId) } : {}),
    }
    const deny = (code: ErrorCode): AccessDecision => ({ ...base, ok: false, code })
    // 0. an owner known from the chain, not the empty state of a car that never synced
    const freshness = this.#freshness()
    if (freshness === 'never') return deny('KEYS_NOT_SYNCED')
    // 1. signed by the *current* owner or a manager: a sale voids the old owner's grants
    if (cached.issuer === undefined || !this.#state.isOwnerOrManager(cached.issuer))
      return deny('GRANT_BAD_SIGNATURE')
    // 1b. long offline: a manager's approval may have been withdrawn meanwhile; the owner's not
    if (freshness === 'stale' && !this.#state.isOwner(cached.issuer)) return deny('KEYS_STALE')
    if (grant.vehicle !== this.vehicle) return deny('GRANT_WRONG_VEHICLE')
    if (grant.epoch !== this.#state.epoch()) return deny('GRANT_EPOCH')
    if (this.#state.isRevoked(grant.grantId)) return deny('GRANT_REVOKED')
    const nowSec = Math.floor(this.#clock() / 1000)
    if (nowSec < grant.notBefore) return deny('GRANT_NOT_YET_VALID')
    if (nowSec > grant.notAfter) return deny('GRANT_EXPIRED')
    if ((grant.scopes & attempt.action) !== attempt.action) return deny('GRANT_SCOPE')
    if (grant.maxUses > 0 && this.#uses.used(grant.grantId) >= grant.maxUses) return deny('GRANT_USED_UP')
    const request = { grantIdBytes: cached.grantIdBytes, action: attempt.action }
    const signatureCode = isPasskeyGrant(grant)
      ? this.#checkAssertion(grant, request, attempt)
      : attempt.assertion
        ? 'REQUEST_BAD_SIGNATURE'
        : this.#checkRequest(grant.grantee, request, attempt)
    if (signatureCode !== 'OK') return deny(signatureCode)
    if (grant.maxUses > 0) return { ...base, ok: true, code: 'OK', uses: this.#uses.consume(grant.grantId) }
    return { ...base, ok: true, code: 'OK' }
  }

  #decideRental(attempt: AccessAttempt): AccessDecision {
    const base = {
      action: attempt.action,
      grantId: ZERO_GRANT_ID,
      subject: undefined as Address | undefined,
      issuer: undefined,
      rental: true,
      purpose: 'rental',
    }
    if ((RENTAL_SCOPES & attempt.action) !== attempt.action)
      return { ...base, ok: false, code: 'GRANT_SCOPE' }
    // a rental is chain state alone: unknown before the first sync, unsure long after the last
    const freshness = this.#freshness()
    if (freshness !== 'fresh')
      return { ...base, ok: false, code: freshness === 'never' ? 'KEYS_NOT_SYNCED' : 'KEYS_STALE' }
    const rental = this.#state.rentalUser()
    const nowSec = Math.floor(this.#clock() / 1000)
    const active = rental !== undefined && nowSec <= rental.expiresSec ? rental.user : undefined
    const request = { grantIdBytes: ZERO32, action: attempt.action }
    if (active !== undefined) {
      const code = this.#checkRequest(active, request, attempt)
      if (code === 'OK') return { ...base, subject: active, ok: true, code: 'OK' }
      if (code !== 'REQUEST_BAD_SIGNATURE') return { ...base, subject: active, ok: false, code }
    }
    // Not the active renter: name who signed, or call the signature malformed.
    const digest = this.#hashRequest({
      grantId: ZERO32,
      action: attempt.action,
      challenge: attempt.challenge,
    })
    const signer = recoverAddress(digest, attempt.signature)
    if (signer === undefined) return { ...base, ok: false, code: 'REQUEST_BAD_SIGNATURE' }
    return { ...base, subject: signer, ok: false, code: 'RENTAL_NOT_ACTIVE' }
  }

  /** Check 8: the request signature over the fresh challenge, or a replay of an older one. */
  #checkRequest(
    expected: Address,
    request: { grantIdBytes: Uint8Array; action: number },
    attempt: AccessAttempt,
  ): 'OK' | 'REQUEST_BAD_SIGNATURE' | 'CHALLENGE_UNKNOWN' | 'CHALLENGE_EXPIRED' {
    const hash = (challenge: Uint8Array) =>
      this.#hashRequest({ grantId: request.grantIdBytes, action: request.action, challenge })
    if (this.#signers.verify(expected, hash(attempt.challenge), attempt.signature)) return 'OK'
    for (const past of attempt.pastChallenges ?? []) {
      if (this.#signers.verify(expected, hash(past.challenge), attempt.signature))
        return past.status === 'used' ? 'CHALLENGE_UNKNOWN' : 'CHALLENGE_EXPIRED'
    }
    return 'REQUEST_BAD_SIGNATURE'
  }

  /** Check 8 for a passkey grant: its WebAuthn assertion over this request (passkey.ts). */
  #checkAssertion(
    grant: PasskeyGrant,
    request: { grantIdBytes: Uint8Array; action: number },
    attempt: AccessAttempt,
  ): ErrorCode | 'OK' {
    if (attempt.assertion === undefined) return 'REQUEST_BAD_SIGNATURE'
    const challengeOf = (challenge: Uint8Array) =>
      passkeyChallenge(
        this.#hashRequest({ grantId: request.grantIdBytes, action: request.action, challenge }),
      )
    return this.#passkeys.verify(grant, attempt.assertion, {
      current: challengeOf(attempt.challenge),
      past: () =>
        (attempt.pastChallenges ?? []).map((past) => ({
          challenge: challengeOf(past.challenge),
          status: past.status,
        })),
    })
  }

  /**
   * The grant's recovered signer, computed once per (grant, signature): cached under the
   * signature, a hit only when all nine fields equal those the signer was recovered for.
   */
  #grantSigner(signed: AnySignedGrant): CachedGrant {
    const key = signed.signature.toLowerCase()
    const hit = this.#grants.get(key)
    if (hit && sameGrant(hit.grant, signed.grant)) return hit
    const digest = Buffer.from(hashGrant(this.#domain, signed.grant).slice(2), 'hex')
    const issuer = recoverAddress(digest, Buffer.from(signed.signature.slice(2), 'hex'))
    const entry: CachedGrant = {
      grant: { ...signed.grant },
      issuer,
      grantIdBytes: Buffer.from(signed.grant.grantId.slice(2), 'hex'),
    }
    setBounded(this.#grants, key, entry, this.#maxCachedGrants)
    return entry
  }
}
