/**
 * viem clients for one chain: a public client for reads and logs, a wallet client for the
 * operator account (deployer, OEM/CPO registrar and log anchorer of the embedded default).
 */
import {
  type Account,
  type Chain,
  createPublicClient,
  createWalletClient,
  defineChain,
  http,
  type PublicClient,
  type Transport,
  type WalletClient,
} from 'viem'
import { type HDAccount, mnemonicToAccount, privateKeyToAccount } from 'viem/accounts'
import { BaseError } from '../errors.ts'
import { DEVELOPMENT_MNEMONIC, EMBEDDED_CHAIN_ID } from './anvil.ts'

export type ChainClients = {
  readonly chain: Chain
  readonly rpcUrl: string
  readonly publicClient: PublicClient<Transport, Chain>
  readonly walletClient: WalletClient<Transport, Chain, Account>
  readonly account: Account
}

/** Account `index` of the development mnemonic: the embedded default's operator is index 0. */
export function developmentAccount(index = 0): HDAccount {
  return mnemonicToAccount(DEVELOPMENT_MNEMONIC, { addressIndex: index })
}

/** How many accounts of the development mnemonic count as publicly known (anvil funds 10 to 20). */
const KNOWN_DEVELOPMENT_ACCOUNTS = 20

/**
 * Refuses an account of the development mnemonic on any chain but the development chain id:
 * its key is public, so whatever it signs or owns there anyone can take (DEVELOPMENT_KEY_REFUSED).
 */
export function refuseDevelopmentAccount(chainId: number, account: Pick<Account, 'address'>): void {
  if (chainId === EMBEDDED_CHAIN_ID) return
  for (let index = 0; index < KNOWN_DEVELOPMENT_ACCOUNTS; index++)
    if (developmentAccount(index).address === account.address)
      throw new BaseError(
        'DEVELOPMENT_KEY_REFUSED',
        `the key of ${account.address} is development account ${index}, public to anyone; chain ${chainId} needs your own key in CARCHAIN_OPERATOR_KEY`,
        { details: { chainId, address: account.address, index } },
      )
}

/** The operator account from a 0x private key (external networks: `CARCHAIN_OPERATOR_KEY`). */
export function operatorAccountFromKey(privateKey: string): Account {
  if (!/^0x[0-9a-fA-F]{64}$/.test(privateKey))
    throw new BaseError('CONFIG_INVALID', 'the operator key must be 0x followed by 64 hex digits')
  return privateKeyToAccount(privateKey as `0x${string}`)
}

export type ConnectChainParameters = {
  rpcUrl: string
  account: Account
  /** Give up connecting after this long (default 10 s). */
  timeoutMs?: number
}

/** Connects to a JSON-RPC endpoint, learns its chain id, and builds the clients. */
export async function connectChain(parameters: ConnectChainParameters): Promise<ChainClients> {
  const { rpcUrl, account } = parameters
  let chainId: number
  try {
    const probe = createPublicClient({
      transport: http(rpcUrl, { timeout: parameters.timeoutMs ?? 10_000, retryCount: 1 }),
    })
    chainId = await probe.getChainId()
  } catch (error) {
    throw new BaseError('CHAIN_UNREACHABLE', `no Ethereum JSON-RPC answers at ${rpcUrl}`, {
      details: { rpcUrl },
      cause: error,
    })
  }
  const chain = defineChain({
    id: chainId,
    name: chainId === 31337 ? 'Carchain embedded (anvil)' : `chain ${chainId}`,
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [rpcUrl] } },
  })
  const transport = http(rpcUrl, { retryCount: 3, retryDelay: 200 })
  return {
    chain,
    rpcUrl,
    account,
    publicClient: createPublicClient({ chain, transport, pollingInterval: 250 }),
    walletClient: createWalletClient({ chain, transport, account }),
  }
}
