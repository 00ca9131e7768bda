/**
 * A vehicle's registration at a node by its certificate: the chain must lead to an OEM root the
 * on-chain registry trusts, the certificate must not be revoked (CRL-free here: the registry's
 * revocation is authoritative at the node), it must bind the vehicle's wallet on this chain, and
 * the registry must hold this certificate's fingerprint for that address. The vehicle is then
 * stored in `node_vehicles` (src/db/migrations/0003_node.sql) with the key that signs its
 * checkpoints.
 */

import type { Address, PublicClient } from 'viem'
import type { Queryable } from '../db/database.ts'
import { fromPem, toPem } from './certificate.ts'
import { validateVehicleCertificate } from './vehicle-certificate.ts'

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

/** Validates a vehicle certificate against the chain's trust and registry; stores the vehicle. */
export async function registerVehicle(
  db: Queryable,
  chain: VehicleRegistrationChain,
  parameters: RegisterVehicleParameters,
): Promise<RegisterVehicleReturnType> {
  // The same checks a verifier runs on a disclosure's certificate (`carchain verify --bundle`).
  const identity = await validateVehicleCertificate({
    client: chain.client,
    vehicleRegistry: chain.vehicleRegistry,
    chainId: chain.chainId,
    certificate: parameters.certificate,
    chain: parameters.chain.flatMap((pem) => fromPem(pem)),
  })
  const { vehicle } = identity
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

/** The certificate (PEM) and its chain a vehicle registered with, if it did. */
export async function registeredCertificates(
  db: Queryable,
  vehicle: Address,
): Promise<{ certificate: string; chain: string[] } | undefined> {
  const { rows } = await db.query<{ certificate: Uint8Array; chain: Uint8Array[] }>(
    'select certificate, chain from node_vehicles where vehicle = $1',
    [Buffer.from(vehicle.slice(2), 'hex')],
  )
  const pem = (der: Uint8Array) => toPem('CERTIFICATE', new Uint8Array(der))
  return rows[0] && { certificate: pem(rows[0].certificate), chain: rows[0].chain.map(pem) }
}
