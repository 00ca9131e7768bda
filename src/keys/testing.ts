/**
 * Builder fixtures for key tests: development-mnemonic accounts (public test keys, so `cast` can
 * sign as them), a settable {@link KeyState}, and a grant builder with sensible defaults.
 */
import type { Address, Hex } from 'viem'
import { mnemonicToAccount } from 'viem/accounts'
import { DEVELOPMENT_MNEMONIC } from '../chain/anvil.ts'
import type { KeyState } from './access-control.ts'
import { issueGrant, newGrantId, type TypedDataSigner } from './grant.ts'
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
