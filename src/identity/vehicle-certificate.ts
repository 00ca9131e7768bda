/**
 * A vehicle's certificate as the chain vouches for it: a path to an OEM root that VehicleRegistry
 * trusts, not revoked there, binding the vehicle's wallet (`did:pkh`) on this chain, and the very
 * certificate registered for that vehicle. The node checks it when a car registers; a verifier
 * checks it for the signature a disclosure carries (`carchain verify --bundle`).
 */
import { type Address, getAddress, type PublicClient } from 'viem'
import { vehicleRegistryAbi } from '../chain/generated/index.ts'
import { BaseError } from '../errors.ts'
import { type Hierarchy, parseCertificate } from './certificate.ts'
import { registryRevocation } from './registry-revocation.ts'
import { type TrustAnchor, type ValidatedIdentity, validateCertificate } from './validate.ts'

type RegistryReader = Pick<PublicClient, 'readContract'>

/** The registry's PKI roles (`IVehicleRegistry.Role`). */
const REGISTRY_ROLE = { oem: 0, cpo: 1 } as const

/**
 * The self-signed certificates among `certificates` that the registry trusts as roots of
 * `hierarchy` (lowercase hex fingerprints), for `validateCertificate`'s `trustAnchors`: the
 * registry stores fingerprints only, so the roots travel with the chain and are trusted by this.
 */
export async function registryTrustedRoots(
  client: RegistryReader,
  vehicleRegistry: Address,
  hierarchy: Hierarchy,
  certificates: readonly (Uint8Array | string)[],
): Promise<string[]> {
  const trusted: string[] = []
  for (const input of certificates) {
    const cert = parseCertificate(input)
    if (!Buffer.from(cert.subject.der).equals(cert.issuer.der)) continue
    const ok = await client.readContract({
      address: vehicleRegistry,
      abi: vehicleRegistryAbi,
      functionName: 'isTrustedRoot',
      args: [REGISTRY_ROLE[hierarchy], `0x${cert.fingerprint}`],
    })
    if (ok) trusted.push(cert.fingerprint)
  }
  return trusted
}

export type ValidateVehicleCertificateParameters = {
  readonly client: RegistryReader
  readonly vehicleRegistry: Address
  /** The chain the registry is on: the certificate's `did:pkh` must name it. */
  readonly chainId: number
  readonly certificate: Uint8Array | string
  /** Intermediates and the root (any order). */
  readonly chain: readonly (Uint8Array | string)[]
  /** OEM roots to trust instead of the registry's (certificates or fingerprints). */
  readonly oemRoots?: readonly TrustAnchor[] | undefined
  /** The vehicle the certificate must belong to, when the caller knows it. */
  readonly vehicle?: string | undefined
  readonly now?: Date | undefined
}

/**
 * Validates a vehicle certificate against the registry. Throws `validateCertificate`'s codes,
 * CERT_WRONG_ROLE (no wallet, another chain, another vehicle than `vehicle`) or
 * VEHICLE_NOT_REGISTERED (the registry holds another certificate for the vehicle, or none).
 */
export async function validateVehicleCertificate(
  parameters: ValidateVehicleCertificateParameters,
): Promise<ValidatedIdentity & { vehicle: Address }> {
  const { client, vehicleRegistry, chainId } = parameters
  const identity = await validateCertificate({
    certificate: parameters.certificate,
    chain: parameters.chain,
    role: 'vehicle',
    trustAnchors: {
      oem:
        parameters.oemRoots ?? (await registryTrustedRoots(client, vehicleRegistry, 'oem', parameters.chain)),
    },
    isRevoked: registryRevocation(client, vehicleRegistry),
    ...(parameters.now ? { now: parameters.now } : {}),
  })
  if (!identity.wallet)
    throw new BaseError(
      'CERT_WRONG_ROLE',
      'a vehicle certificate must bind its wallet (subjectAltName did:pkh)',
    )
  if (identity.wallet.chainId !== chainId)
    throw new BaseError(
      'CERT_WRONG_ROLE',
      `the certificate binds a wallet on chain ${identity.wallet.chainId}, not ${chainId}`,
    )
  const vehicle = getAddress(identity.wallet.address)
  if (parameters.vehicle !== undefined && vehicle !== getAddress(parameters.vehicle))
    throw new BaseError('CERT_WRONG_ROLE', `the certificate is ${vehicle}'s, not ${parameters.vehicle}'s`, {
      details: { certified: vehicle, vehicle: parameters.vehicle },
    })
  const registered = await client.readContract({
    address: vehicleRegistry,
    abi: vehicleRegistryAbi,
    functionName: 'certFingerprintOf',
    args: [vehicle],
  })
  if (registered.toLowerCase() !== `0x${identity.fingerprint}`)
    throw new BaseError(
      'VEHICLE_NOT_REGISTERED',
      `the registry holds no title for ${vehicle} with this certificate`,
      {
        details: { vehicle, fingerprint: identity.fingerprint, registered },
      },
    )
  return { ...identity, vehicle }
}
