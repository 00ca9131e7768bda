/**
 * The dashboard's own view of the chain: viem clients straight to the node's `rpcUrl`, so roots,
 * balances and revocations are read from the contracts, not from the node.
 */
import {
  type Address,
  createPublicClient,
  createWalletClient,
  custom,
  defineChain,
  type EIP1193Provider,
  http,
  type PublicClient,
  type Chain as ViemChain,
  type WalletClient,
} from 'viem'
import { type HDAccount, mnemonicToAccount } from 'viem/accounts'
import {
  chargingChannelsAbi,
  demoTokenAbi,
  ledgerAnchorAbi,
  vehicleRegistryAbi,
} from '../../src/chain/generated/index.ts'
import type { ChainInfo, Hex } from './api.ts'
import type { AnchoredHead } from './lib/event-proof.ts'

export { chargingChannelsAbi, demoTokenAbi, ledgerAnchorAbi, vehicleRegistryAbi }

/** The standard development mnemonic; the demo fleet's owners are its accounts (docs/spec.md "HTTP API"). */
export const DEMO_MNEMONIC = 'test test test test test test test test test test test junk'

/** The demo owner at `ownerIndex` of the development mnemonic (a public, test-only key). */
export function demoOwner(ownerIndex: number): HDAccount {
  return mnemonicToAccount(DEMO_MNEMONIC, { addressIndex: ownerIndex })
}

export type Chain = {
  info: ChainInfo
  /** The node's chain as viem describes it (also what `wallet_addEthereumChain` offers a wallet). */
  definition: ViemChain
  client: PublicClient
  /** A wallet client that signs locally with `account` and sends over the same rpcUrl. */
  wallet(account: HDAccount): WalletClient
  /** A wallet client over the user's own wallet (EIP-1193): it signs and sends, after its own confirmation. */
  external(provider: EIP1193Provider, address: Address): WalletClient
}

export function connect(info: ChainInfo): Chain {
  const chain = defineChain({
    id: info.chainId,
    name: info.chainId === 31337 ? 'Anvil (embedded)' : `Chain ${info.chainId}`,
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [info.rpcUrl] } },
  })
  // JSON-RPC batching: a table of balances becomes one HTTP request.
  const transport = http(info.rpcUrl, { batch: { wait: 10 } })
  const client = createPublicClient({ chain, transport }) as PublicClient
  return {
    info,
    definition: chain,
    client,
    wallet: (account) => createWalletClient({ account, chain, transport }),
    external: (provider, address) =>
      createWalletClient({ account: address, chain, transport: custom(provider) }),
  }
}

/** `LedgerAnchor.latest(logId)`: the newest anchored (treeSize, rootHash), read on chain. */
export async function readAnchoredHead(chain: Chain, logId: Hex): Promise<AnchoredHead> {
  const [treeSize, rootHash] = await chain.client.readContract({
    address: chain.info.contracts.LedgerAnchor,
    abi: ledgerAnchorAbi,
    functionName: 'latest',
    args: [logId],
  })
  return { treeSize: Number(treeSize), rootHash }
}
