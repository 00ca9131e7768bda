/**
 * The car's charger check (the policy rule "only chargers with a valid CPO certificate
 * registered on chain"), in this order:
 *
 * 1. on chain: `VehicleRegistry.isChargerActive(address)` — registered, not revoked, its CPO still
 *    registered ............................................... CHARGER_NOT_REGISTERED / CERT_REVOKED
 * 2. the certificate path to a trusted CPO root, with CRLs and the registry's revocation
 *    (src/identity/validate.ts) ............................................. CERT_*
 * 3. the certificate is the one registered for the address (`chargerOf(address).certFingerprint`
 *    = SHA-256 of its DER) and its CN is the EVSE ID the charger claims, whose
 *    `keccak256(utf8(evseId))` is the registered `evseIdHash` ........... CHARGER_NOT_REGISTERED
 *
 * The registry binds the charger's secp256k1 address (which signs tariffs and meter readings) to
 * its P-256 certificate (which TLS authenticates): that is why a tariff signed by the address is
 * the certified charger's.
 */
import {
  type Address,
  type Chain,
  type Hex,
  keccak256,
  type PublicClient,
  stringToBytes,
  type Transport,
} from 'viem'
import { vehicleRegistryAbi } from '../chain/generated/index.ts'
import { BaseError } from '../errors.ts'
import { registryRevocation } from '../identity/registry-revocation.ts'
import { type TrustAnchors, validateCertificate } from '../identity/validate.ts'
import type { CheckCharger } from './wallet.ts'

export type CreateChargerCheckerParameters = {
  readonly publicClient: PublicClient<Transport, Chain>
  readonly vehicleRegistry: Address
  /** The CPO roots the car trusts. */
  readonly trustAnchors: TrustAnchors
  readonly crls?: readonly (string | Uint8Array)[]
  readonly now?: () => Date
}

/** The hash the registry stores for an EVSE ID. */
export function evseIdHash(evseId: string): Hex {
  return keccak256(stringToBytes(evseId))
}

export function createChargerChecker(parameters: CreateChargerCheckerParameters): CheckCharger {
  const { publicClient, vehicleRegistry } = parameters
  const read = <T>(functionName: 'isChargerActive' | 'chargerOf', args: readonly unknown[]) =>
    publicClient.readContract({
      address: vehicleRegistry,
      abi: vehicleRegistryAbi,
      functionName,
      args,
    } as never) as Promise<T>
  return async (charger) => {
    // Both reads at once: the check sits on the path of every payment (a tap at a reader too).
    const [record, active] = await Promise.all([
      read<{ certFingerprint: Hex; evseIdHash: Hex; cpo: Address; revoked: boolean }>('chargerOf', [
        charger.address,
      ]),
      read<boolean>('isChargerActive', [charger.address]),
    ])
    if (record.revoked)
      throw new BaseError('CERT_REVOKED', `charger ${charger.address} is revoked on chain`, {
        details: { charger: charger.address, source: 'chain' },
      })
    if (!active)
      throw new BaseError(
        'CHARGER_NOT_REGISTERED',
        `charger ${charger.address} is not registered and active`,
        {
          details: { charger: charger.address },
        },
      )
    if (charger.certificate === undefined) return { address: charger.address, payee: record.cpo }
    const identity = await validateCertificate({
      certificate: charger.certificate,
      chain: charger.chain ?? [],
      role: 'charger',
      trustAnchors: parameters.trustAnchors,
      ...(parameters.crls ? { crls: parameters.crls } : {}),
      isRevoked: registryRevocation(publicClient, vehicleRegistry),
      ...(parameters.now ? { now: parameters.now() } : {}),
    })
    if (`0x${identity.fingerprint}` !== record.certFingerprint.toLowerCase())
      throw new BaseError(
        'CHARGER_NOT_REGISTERED',
        'the certificate is not the one registered for this charger',
        {
          details: {
            charger: charger.address,
            fingerprint: identity.fingerprint,
            registered: record.certFingerprint,
          },
        },
      )
    if (charger.evseId !== undefined && charger.evseId !== identity.commonName)
      throw new BaseError(
        'CHARGER_NOT_REGISTERED',
        `the certificate is for ${identity.commonName}, not ${charger.evseId}`,
        {
          details: { charger: charger.address, evseId: charger.evseId, certificate: identity.commonName },
        },
      )
    if (evseIdHash(identity.commonName) !== record.evseIdHash.toLowerCase())
      throw new BaseError(
        'CHARGER_NOT_REGISTERED',
        `${identity.commonName} is not the EVSE registered for ${charger.address}`,
        {
          details: { charger: charger.address, evseId: identity.commonName },
        },
      )
    return { address: charger.address, payee: record.cpo, evseId: identity.commonName }
  }
}
