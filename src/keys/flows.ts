/**
 * The key flows people use, as library calls (the CLI and the node call these):
 *
 * - **Parcel delivery**: OPEN_TRUNK only, one use, a 2-hour window; purpose `parcel…`, so the car
 *   notifies the owner when it is used.
 * - **Family member**: UNLOCK | LOCK | START, unlimited uses, long-lived (default one year).
 * - **Rental**: no grant at all — the owner sets the renter as the title's ERC-4907 user until an
 *   expiry; the renter's phone sends `"grant": null` and the car honours the user until then.
 */
import type { Address, Hex, PublicClient } from 'viem'
import { BaseError } from '../errors.ts'
import { issueGrant, type TypedDataSigner } from './grant.ts'
import { epochOf, type RegistryClients, setRentalUser, type TxResult } from './registry.ts'
import { type KeyDomain, Scope, type SignedGrant } from './typed-data.ts'

/** A delivery window's default length: two hours. */
export const PARCEL_WINDOW_SEC = 2 * 3600
/** A family key's default lifetime: one year. */
export const FAMILY_LIFETIME_SEC = 365 * 86_400

type Common = {
  signer: TypedDataSigner
  domain: KeyDomain
  vehicle: Address
  /** The vehicle's current epoch; read from KeyRegistry with `client` when omitted. */
  epoch?: number
  client?: Pick<PublicClient, 'readContract'>
  grantId?: Hex
}

async function currentEpoch(parameters: Common): Promise<number> {
  if (parameters.epoch !== undefined) return parameters.epoch
  if (!parameters.client) throw new BaseError('INVALID_ARGUMENT', 'give the epoch or a client to read it')
  return epochOf(parameters.client, {
    keyRegistry: parameters.domain.keyRegistry,
    vehicle: parameters.vehicle,
  })
}

/** A one-time trunk key for a courier, valid from `startSec` (default now) for two hours. */
export async function parcelDeliveryGrant(
  parameters: Common & { courier: Address; startSec?: number; windowSec?: number; reference?: string },
): Promise<SignedGrant> {
  const startSec = parameters.startSec ?? Math.floor(Date.now() / 1000)
  return issueGrant({
    signer: parameters.signer,
    domain: parameters.domain,
    vehicle: parameters.vehicle,
    grantee: parameters.courier,
    scopes: Scope.OPEN_TRUNK,
    notBefore: startSec,
    notAfter: startSec + (parameters.windowSec ?? PARCEL_WINDOW_SEC),
    maxUses: 1,
    epoch: await currentEpoch(parameters),
    ...(parameters.grantId ? { grantId: parameters.grantId } : {}),
    purpose: parameters.reference ? `parcel ${parameters.reference}` : 'parcel',
  })
}

/** A family member's everyday key: unlock, lock, start; unlimited; one year by default. */
export async function familyMemberGrant(
  parameters: Common & { member: Address; startSec?: number; lifetimeSec?: number; name?: string },
): Promise<SignedGrant> {
  const startSec = parameters.startSec ?? Math.floor(Date.now() / 1000)
  return issueGrant({
    signer: parameters.signer,
    domain: parameters.domain,
    vehicle: parameters.vehicle,
    grantee: parameters.member,
    scopes: Scope.UNLOCK | Scope.LOCK | Scope.START,
    notBefore: startSec,
    notAfter: startSec + (parameters.lifetimeSec ?? FAMILY_LIFETIME_SEC),
    maxUses: 0,
    epoch: await currentEpoch(parameters),
    ...(parameters.grantId ? { grantId: parameters.grantId } : {}),
    purpose: parameters.name ? `family ${parameters.name}` : 'family',
  })
}

/** Rents the car out: ERC-4907 `setUser` on the title by its owner (or a manager). */
export function startRental(
  clients: RegistryClients,
  parameters: { vehicleRegistry: Address; vehicle: Address; renter: Address; untilSec: number },
): Promise<TxResult> {
  return setRentalUser(clients, {
    vehicleRegistry: parameters.vehicleRegistry,
    vehicle: parameters.vehicle,
    user: parameters.renter,
    expiresSec: parameters.untilSec,
  })
}

/** Ends a rental early: the user becomes zero. */
export function endRental(
  clients: RegistryClients,
  parameters: { vehicleRegistry: Address; vehicle: Address },
): Promise<TxResult> {
  return setRentalUser(clients, {
    ...parameters,
    user: '0x0000000000000000000000000000000000000000',
    expiresSec: 0,
  })
}
