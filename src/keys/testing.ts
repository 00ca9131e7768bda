/**
 * Builder fixtures for key tests: development-mnemonic accounts (public test keys, so `cast` can
 * sign as them), a settable {@link KeyState}, and a grant builder with sensible defaults.
 */
import { createHash } from 'node:crypto'
import { p256 } from '@noble/curves/nist.js'
import type { Address, Hex } from 'viem'
import { mnemonicToAccount } from 'viem/accounts'
import { DEVELOPMENT_MNEMONIC } from '../chain/anvil.ts'
import type { KeyState } from './access-control.ts'
import { issueGrant, newGrantId, type TypedDataSigner } from './grant.ts'
import { type WireAssertion, wireAssertion } from './passkey.ts'
import { type KeyDomain, Scope, type SignedGrant } from './typed-data.ts'

/** Development account `index` (account 0 is the operator in the embedded chain). */
export function testAccount(index: number) {
  return mnemonicToAccount(DEVELOPMENT_MNEMONIC, { addressIndex: index })
}

/** The private key of development account `index` (for `cast --private-key`). */
export function testPrivateKey(index: number): Hex {
  const key = testAccount(index).getHdKey().privateKey
  return `0x${Buffer.from(key as Uint8Array).toString('hex')}`
}

/** A KeyState whose facts the test sets directly. */
export class FakeKeyState implements KeyState {
  owner: Address | null = null
  managers = new Set<Address>()
  currentEpoch = 0
  revoked = new Set<Hex>()
  rental: { user: Address; expiresSec: number } | undefined
  /** Fresh whatever clock the test's controller runs on, unless the test sets it (0: never). */
  lastSyncedAtMs = Number.MAX_SAFE_INTEGER

  isOwnerOrManager(address: Address): boolean {
    return address === this.owner || this.managers.has(address)
  }
  isOwner(address: Address): boolean {
    return address === this.owner
  }
  syncedAtMs(): number {
    return this.lastSyncedAtMs
  }
  epoch(): number {
    return this.currentEpoch
  }
  isRevoked(grantId: Hex): boolean {
    return this.revoked.has(grantId)
  }
  rentalUser() {
    return this.rental
  }
}

/** A grant with defaults (unlock+lock, valid for a day from an hour ago, unlimited, epoch 0). */
export function aGrant(parameters: {
  signer: TypedDataSigner
  domain: KeyDomain
  vehicle: Address
  grantee: Address
  nowSec?: number
  scopes?: number
  notBefore?: number
  notAfter?: number
  maxUses?: number
  epoch?: number
  grantId?: Hex
  purpose?: string
}): Promise<SignedGrant> {
  const nowSec = parameters.nowSec ?? Math.floor(Date.now() / 1000)
  return issueGrant({
    signer: parameters.signer,
    domain: parameters.domain,
    vehicle: parameters.vehicle,
    grantee: parameters.grantee,
    scopes: parameters.scopes ?? Scope.UNLOCK | Scope.LOCK,
    notBefore: parameters.notBefore ?? nowSec - 3600,
    notAfter: parameters.notAfter ?? nowSec + 86_400,
    maxUses: parameters.maxUses ?? 0,
    epoch: parameters.epoch ?? 0,
    grantId: parameters.grantId ?? newGrantId(),
    purpose: parameters.purpose ?? 'test',
  })
}

/** What a test may make a software passkey get wrong in one assertion. */
export type SoftAssertionOverrides = {
  type?: string
  origin?: string
  rpId?: string
  /** Authenticator data flags; default UP|UV (0x05). */
  flags?: number
  counter?: number
  crossOrigin?: boolean
  /** Another key signs (a stolen grant answered with the thief's own passkey). */
  signWith?: Uint8Array
}

/**
 * A software WebAuthn authenticator (ES256), for tests and the bench: it answers a WebAuthn
 * challenge with the assertion a browser's `navigator.credentials.get` gives — authenticator data
 * `SHA-256(rpId) ‖ flags ‖ counter`, client data JSON, and a DER P-256 signature over
 * `authenticatorData ‖ SHA-256(clientDataJSON)`.
 */
export class SoftPasskey {
  readonly secretKey: Uint8Array
  /** `0x04‖X‖Y`, what a PasskeyGrant names. */
  readonly publicKey: Hex
  readonly rpId: string
  readonly origin: string
  /** The signature counter; null for an authenticator that keeps none (always 0). */
  counter: number | null

  constructor(parameters: { rpId?: string; origin?: string; counter?: number | null } = {}) {
    this.secretKey = p256.utils.randomSecretKey()
    this.publicKey = `0x${Buffer.from(p256.getPublicKey(this.secretKey, false)).toString('hex')}`
    this.rpId = parameters.rpId ?? 'localhost'
    this.origin = parameters.origin ?? 'http://localhost:8080'
    this.counter = parameters.counter === undefined ? 1 : parameters.counter
  }

  /** The assertion for `challenge` (base64url), counting up like a real authenticator. */
  assert(challenge: string, overrides: SoftAssertionOverrides = {}): WireAssertion {
    if (this.counter !== null) this.counter++
    const authenticatorData = new Uint8Array(37)
    authenticatorData.set(
      createHash('sha256')
        .update(overrides.rpId ?? this.rpId)
        .digest(),
      0,
    )
    authenticatorData[32] = overrides.flags ?? 0x05
    new DataView(authenticatorData.buffer).setUint32(33, overrides.counter ?? this.counter ?? 0)
    const clientDataJSON = new TextEncoder().encode(
      JSON.stringify({
        type: overrides.type ?? 'webauthn.get',
        challenge,
        origin: overrides.origin ?? this.origin,
        crossOrigin: overrides.crossOrigin ?? false,
      }),
    )
    const signed = Buffer.concat([authenticatorData, createHash('sha256').update(clientDataJSON).digest()])
    const signature = p256.sign(signed, overrides.signWith ?? this.secretKey, {
      format: 'der',
      prehash: true,
    })
    return wireAssertion({ authenticatorData, clientDataJSON, signature })
  }
}
