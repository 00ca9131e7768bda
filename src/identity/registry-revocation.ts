/**
 * Certificate revocation as the chain records it: VehicleRegistry's `isCertRevoked`, keyed by
 * fingerprint (revocation is permanent, whoever revoked). The node, the chargers, the car's
 * component check and a car's charger check all ask it the same way.
 */
import type { Address, PublicClient } from 'viem'
import { vehicleRegistryAbi } from '../chain/generated/index.ts'

/** `validateCertificate`'s `isRevoked` over the registry at `vehicleRegistry` (fingerprint as lowercase hex). */
export function registryRevocation(
  client: Pick<PublicClient, 'readContract'>,
  vehicleRegistry: Address,
): (fingerprint: string) => Promise<boolean> {
  return (fingerprint) =>
    client.readContract({
      address: vehicleRegistry,
      abi: vehicleRegistryAbi,
      functionName: 'isCertRevoked',
      args: [`0x${fingerprint}`],
    })
}
