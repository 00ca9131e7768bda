/**
 * A vehicle's registration at a node by its certificate: the chain must lead to an OEM root the
 * on-chain registry trusts, the certificate must not be revoked (CRL-free here: the registry's
 * revocation is authoritative at the node), it must bind the vehicle's wallet on this chain, and
 * the registry must hold this certificate's fingerprint for that address. The vehicle is then
 * stored in `node_vehicles` (src/db/migrations/0003_node.sql) with the key that signs its
 * checkpoints.
 */

import type { Address } from 'viem'
import { getAddress, type PublicClient } from 'viem'
import { vehicleRegistryAbi } from '../chain/generated/index.ts'
import type { Queryable } from '../db/database.ts'
import { BaseError } from '../errors.ts'
import { fromPem, parseCertificate } from './certificate.ts'
import { registryRevocation } from './registry-revocation.ts'
import { validateCertificate } from './validate.ts'

/** VehicleRegistry's role index of OEM roots. */
const OEM_ROLE = 0

export type RegisterVehicleParameters = {
  /** The vehicle certificate (PEM). */
  certificate: string
  /** Its intermediates and root (PEM). */
  chain: string[]
}

/** Where to check: the chain's client and id and the VehicleRegistry. */
export type VehicleRegistrationChain = {
  client: Pick<PublicClient, 'readContract'>
  chainId: number
  vehicleRegistry: Address
}

export type RegisterVehicleReturnType = { vehicle: Address; vin: string; fingerprint: `0x${string}` }

/** Fingerprints of the self-signed roots in `chainDers` that the registry trusts for the OEM role. */
async function trustedOemRoots(chain: VehicleRegistrationChain, chainDers: Uint8Array[]): Promise<string[]> {
  const trusted: string[] = []
  for (const der of chainDers) {
    const cert = parseCertificate(der)
    if (Buffer.compare(Buffer.from(cert.subject.der), Buffer.from(cert.issuer.der)) !== 0) continue
    const ok = await chain.client.readContract({
      address: chain.vehicleRegistry,
      abi: vehicleRegistryAbi,
      functionName: 'isTrustedRoot',
      args: [OEM_ROLE, `0x${cert.fingerprint}`],
    })
    if (ok) trusted.push(cert.fingerprint)
  }
  return trusted
}

/** Validates a vehicle certificate against the chain's trust and registry; stores the vehicle. */
export async function registerVehicle(
  db: Queryable,
  chain: VehicleRegistrationChain,
  parameters: RegisterVehicleParameters,
): Promise<RegisterVehicleReturnType> {
  const chainDers = parameters.chain.flatMap((pem) => fromPem(pem))
  const identity = await validateCertificate({
    certificate: parameters.certificate,
    chain: chainDers,
    role: 'vehicle',
    trustAnchors: { oem: await trustedOemRoots(chain, chainDers) },
    isRevoked: registryRevocation(chain.client, chain.vehicleRegistry),
  })
  if (!identity.wallet)
    throw new BaseError(
      'CERT_WRONG_ROLE',
      'a vehicle certificate must bind its wallet (subjectAltName did:pkh)',
    )
  if (identity.wallet.chainId !== chain.chainId)
    throw new BaseError(
      'CERT_WRONG_ROLE',
      `the certificate binds a wallet on chain ${identity.wallet.chainId}, not ${chain.chainId}`,
    )
  const vehicle = getAddress(identity.wallet.address)
  const registered = await chain.client.readContract({
    address: chain.vehicleRegistry,
    abi: vehicleRegistryAbi,
    functionName: 'certFingerprintOf',
    args: [vehicle],
  })
  if (registered.toLowerCase() !== `0x${identity.fingerprint}`)
    throw new BaseError(
      'VEHICLE_NOT_REGISTERED',
      `the registry holds no title for ${vehicle} with this certificate`,
      { details: { vehicle, fingerprint: identity.fingerprint, registered } },
    )
  const leaf = identity.path[0]!
  const vin = identity.vin ?? identity.commonName
  await db.query(
    `insert into node_vehicles (vehicle, vin, certificate, chain, fingerprint, public_key) values ($1, $2, $3, $4, $5, $6)
     on conflict (vehicle) do update set vin = excluded.vin, certificate = excluded.certificate, chain = excluded.chain,
       fingerprint = excluded.fingerprint, public_key = excluded.public_key, registered_at = now()`,
    [
      Buffer.from(vehicle.slice(2), 'hex'),
      vin,
      leaf.der,
      identity.path.slice(1).map((c) => c.der),
      Buffer.from(identity.fingerprint, 'hex'),
      identity.publicKey,
    ],
  )
  return { vehicle, vin, fingerprint: `0x${identity.fingerprint}` }
}

/** Every vehicle registered at this node: its address (lowercase hex) and VIN. */
export async function listRegisteredVehicles(
  db: Queryable,
): Promise<{ vehicle: `0x${string}`; vin: string }[]> {
  const { rows } = await db.query<{ vehicle: Uint8Array; vin: string }>(
    'select vehicle, vin from node_vehicles',
  )
  return rows.map((row) => ({ vehicle: `0x${Buffer.from(row.vehicle).toString('hex')}`, vin: row.vin }))
}
