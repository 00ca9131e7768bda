/**
 * The EIP-712 `DataGrant` (docs/api.md "Payload access"): a vehicle's owner or manager admits a
 * reader to the vehicle's payloads at a node until `notAfter`.
 *
 * - Domain `{name:"Carchain", version:"1", chainId, verifyingContract: <VehicleRegistry>}`.
 * - `DataGrant(address vehicle,address reader,uint64 notAfter,uint64 issuedAtMs)`, `notAfter` in
 *   unix seconds, `issuedAtMs` the signing time in unix milliseconds.
 *
 * `issuedAtMs` makes a grant single-use at a node: it takes a grant only if it is newer than every
 * grant it accepted for that vehicle and reader and than the reader's last removal, so neither a
 * removed reader nor a third party can replay an old grant (src/ledger/payload-access.ts).
 */
import { type Address, recoverTypedDataAddress } from 'viem'
import type { Hex } from './bytes.ts'

/** The signed fields of a DataGrant, in their JSON form. */
export type DataGrant = {
  vehicle: Address
  reader: Address
  /** Unix seconds, inclusive. */
  notAfter: number
  /** When the grant was signed, unix milliseconds: a later grant for the same reader replaces it. */
  issuedAtMs: number
}

/** The chain and VehicleRegistry a DataGrant is signed for. */
export type DataGrantDomain = { chainId: number; vehicleRegistry: Address }

/** EIP-712 struct definition of a DataGrant. */
export const dataGrantTypes = {
  DataGrant: [
    { name: 'vehicle', type: 'address' },
    { name: 'reader', type: 'address' },
    { name: 'notAfter', type: 'uint64' },
    { name: 'issuedAtMs', type: 'uint64' },
  ],
} as const

/** The typed data to sign (viem `signTypedData`, any wallet) for `grant` in `domain`. */
export function dataGrantTypedData(domain: DataGrantDomain, grant: DataGrant) {
  return {
    domain: {
      name: 'Carchain',
      version: '1',
      chainId: domain.chainId,
      verifyingContract: domain.vehicleRegistry,
    },
    types: dataGrantTypes,
    primaryType: 'DataGrant' as const,
    message: {
      vehicle: grant.vehicle,
      reader: grant.reader,
      notAfter: BigInt(grant.notAfter),
      issuedAtMs: BigInt(grant.issuedAtMs),
    },
  }
}

/** The account that signed `grant` (whoever it is: the caller checks it is the owner or a manager). */
export function recoverDataGrantSigner(
  domain: DataGrantDomain,
  grant: DataGrant,
  signature: Hex,
): Promise<Address> {
  return recoverTypedDataAddress({ ...dataGrantTypedData(domain, grant), signature })
}
