/**
 * KeyRegistry and title helpers over viem: revoke one grant, revoke all (epoch bump), read the
 * epoch and revocations, and the ERC-4907 rental of a title. Writes wait for the receipt and
 * throw CHAIN_TX_FAILED with the contract's custom error name (e.g. `KeyRegistryUnauthorized`).
 */
import {
  type Account,
  type Address,
  type Chain,
  type Hash,
  type Hex,
  type PublicClient,
  type Transport,
  BaseError as ViemBaseError,
  type WalletClient,
} from 'viem'
import { vehicleRegistryAbi } from '../chain/generated/index.ts'
import { BaseError } from '../errors.ts'

/** Clients for one account on one chain (`ChainClients` from src/chain/clients.ts fits). */
export type RegistryClients = {
  publicClient: PublicClient<Transport, Chain>
  walletClient: WalletClient<Transport, Chain, Account>
}

/** The receipt facts callers need. */
export type TxResult = { txHash: Hash; blockNumber: bigint; gasUsed: bigint }

/** The tokenId of a vehicle's title: its address as uint160. */
export function titleTokenId(vehicle: Address): bigint {
  return BigInt(vehicle)
}

async function send(
  clients: RegistryClients,
  what: string,
  write: () => Promise<Hash>,
  details: Record<string, unknown>,
): Promise<TxResult> {
  let hash: Hash
  try {
    hash = await write()
  } catch (error) {
    const name =
      error instanceof ViemBaseError
        ? ((
            error.walk((e) => (e as { data?: { errorName?: string } }).data?.errorName !== undefined) as {
              data?: { errorName?: string }
            } | null
          )?.data?.errorName ?? error.shortMessage)
        : String(error)
    throw new BaseError('CHAIN_TX_FAILED', `${what} failed: ${name}`, {
      details: { ...details, error: name },
      cause: error,
    })
  }
  const receipt = await clients.publicClient.waitForTransactionReceipt({ hash, timeout: 60_000 })
  if (receipt.status !== 'success')
    throw new BaseError('CHAIN_TX_FAILED', `${what} reverted`, { details: { ...details, txHash: hash } })
  return { txHash: hash, blockNumber: receipt.blockNumber, gasUsed: receipt.gasUsed }
}

export type RevokeParameters = { keyRegistry: Address; vehicle: Address; grantId: Hex }

/** `KeyRegistry.revoke(vehicle, grantId)`: the title owner or a manager only. */
export function revokeGrant(clients: RegistryClients, parameters: RevokeParameters): Promise<TxResult> {
  const { keyRegistry, vehicle, grantId } = parameters
  return send(
    clients,
    'revoke',
    () =>
      clients.walletClient.writeContract({
        address: keyRegistry,
        abi: vehicleRegistryAbi,
        functionName: 'revoke',
        args: [vehicle, grantId],
      }),
    { vehicle, grantId },
  )
}

/** `KeyRegistry.revokeAll(vehicle)`: bumps the epoch, voiding every grant. Owner or manager. */
export function revokeAllGrants(
  clients: RegistryClients,
  parameters: { keyRegistry: Address; vehicle: Address },
): Promise<TxResult> {
  const { keyRegistry, vehicle } = parameters
  return send(
    clients,
    'revokeAll',
    () =>
      clients.walletClient.writeContract({
        address: keyRegistry,
        abi: vehicleRegistryAbi,
        functionName: 'revokeAll',
        args: [vehicle],
      }),
    { vehicle },
  )
}

/** `KeyRegistry.epochOf(vehicle)`, as a number (what a grant's `epoch` must equal). */
export async function epochOf(
  client: Pick<PublicClient, 'readContract'>,
  parameters: { keyRegistry: Address; vehicle: Address },
): Promise<number> {
  const epoch = await client.readContract({
    address: parameters.keyRegistry,
    abi: vehicleRegistryAbi,
    functionName: 'epochOf',
    args: [parameters.vehicle],
  })
  return Number(epoch)
}

/** `KeyRegistry.isRevoked(vehicle, grantId)`. */
export function isRevoked(
  client: Pick<PublicClient, 'readContract'>,
  parameters: { keyRegistry: Address; vehicle: Address; grantId: Hex },
): Promise<boolean> {
  return client.readContract({
    address: parameters.keyRegistry,
    abi: vehicleRegistryAbi,
    functionName: 'isRevoked',
    args: [parameters.vehicle, parameters.grantId],
  })
}

/** Revocations of a vehicle on chain, oldest first (for `carchain key list --revoked`). */
export async function listRevocations(
  client: Pick<PublicClient, 'getContractEvents'>,
  parameters: { keyRegistry: Address; vehicle: Address; fromBlock?: bigint },
): Promise<{ grantId: Hex; by: Address; blockNumber: bigint; txHash: Hash }[]> {
  const logs = await client.getContractEvents({
    address: parameters.keyRegistry,
    abi: vehicleRegistryAbi,
    eventName: 'GrantRevoked',
    args: { vehicle: parameters.vehicle },
    fromBlock: parameters.fromBlock ?? 0n,
    strict: true,
  })
  return logs.map((log) => ({
    grantId: log.args.grantId,
    by: log.args.by,
    blockNumber: log.blockNumber,
    txHash: log.transactionHash,
  }))
}

/** ERC-4907 `setUser(tokenId, user, expires)` on the title: a rental the car honours without a grant. */
export function setRentalUser(
  clients: RegistryClients,
  parameters: { vehicleRegistry: Address; vehicle: Address; user: Address; expiresSec: number },
): Promise<TxResult> {
  const { vehicleRegistry, vehicle, user, expiresSec } = parameters
  return send(
    clients,
    'setUser',
    () =>
      clients.walletClient.writeContract({
        address: vehicleRegistry,
        abi: vehicleRegistryAbi,
        functionName: 'setUser',
        args: [titleTokenId(vehicle), user, BigInt(expiresSec)],
      }),
    { vehicle, user, expiresSec },
  )
}

/** Whether `account` is the title owner or a manager now (`VehicleRegistry.isOwnerOrManager`). */
export function isOwnerOrManager(
  client: Pick<PublicClient, 'readContract'>,
  parameters: { vehicleRegistry: Address; vehicle: Address; account: Address },
): Promise<boolean> {
  return client.readContract({
    address: parameters.vehicleRegistry,
    abi: vehicleRegistryAbi,
    functionName: 'isOwnerOrManager',
    args: [parameters.vehicle, parameters.account],
  })
}
