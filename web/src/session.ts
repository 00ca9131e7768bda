/**
 * Who is signed in to the console, and how it signs:
 *
 * - **wallet**: the owner's own wallet (EIP-1193, found through EIP-6963 or `window.ethereum`,
 *   wallet.ts). Every signature and transaction goes to the wallet, which asks the user.
 * - **demo**: an account of the development mnemonic (a public, test-only key; never do this with
 *   a real one), signed in the browser, for the demo fleet of `npm start`.
 *
 * Both sign in to the node with Sign-In with Ethereum (EIP-4361) where it offers it: the message
 * names the node's origin (this page's, the node serves it) and the node's chain, so the node
 * shows that account's event payloads.
 */
import { useEffect, useState } from 'react'
import {
  type Abi,
  type Address,
  type ContractFunctionArgs,
  type ContractFunctionName,
  type Hex,
  isHex,
  recoverMessageAddress,
  recoverTypedDataAddress,
  type TypedDataDefinition,
  type WalletClient,
} from 'viem'
import type { HDAccount } from 'viem/accounts'
import { createSiweMessage } from 'viem/siwe'
import { callApi, setBearer } from './api.ts'
import { type Chain, demoOwner } from './chain.ts'
import { restartStream } from './stream.ts'
import {
  requestAccounts,
  requireChain,
  type WalletOption,
  WalletProblem,
  walletChainId,
  walletProblem,
} from './wallet.ts'

export type SiweState =
  | { state: 'signed-in'; expiresAt?: string }
  | { state: 'unavailable' | 'failed'; message: string }

export type Session = {
  address: Address
  siwe: SiweState
} & (
  | { kind: 'demo'; ownerIndex: number; account: HDAccount }
  | {
      kind: 'wallet'
      wallet: WalletOption
      /** The chain the wallet is on now (it tells us on `chainChanged`). */
      walletChainId: number
    }
)

let current: Session | undefined
/** Why the last session ended, when the console ended it (the wallet changed account). */
let endedBecause: string | undefined
const listeners = new Set<() => void>()

function publish(session: Session | undefined, reason?: string) {
  current = session
  endedBecause = reason
  for (const listener of listeners) listener()
}

/** Sign-In with Ethereum with `sign`; answers the state (never throws for the node's refusal). */
async function siweSignIn(address: Address, chainId: number, sign: (message: string) => Promise<Hex>) {
  const nonce = await callApi<{ nonce: string }>('/v1/auth/nonce')
  if (nonce.state !== 'ok')
    return {
      state: nonce.state === 'unavailable' ? 'unavailable' : 'failed',
      message: nonce.state === 'loading' ? 'no answer' : nonce.message,
    } satisfies SiweState
  const message = createSiweMessage({
    address,
    chainId,
    domain: window.location.host,
    uri: window.location.origin,
    nonce: nonce.data.nonce,
    version: '1',
    statement: 'Sign in to the Carchain fleet console.',
    issuedAt: new Date(),
  })
  const signature = await sign(message)
  const answer = await callApi<{ token: string; address: string; expiresAt?: string }>('/v1/auth/siwe', {
    method: 'POST',
    body: { message, signature },
  })
  if (answer.state !== 'ok')
    return {
      state: 'failed',
      message:
        answer.state === 'loading'
          ? 'no answer'
          : `${answer.message}${'code' in answer && answer.code ? ` (${answer.code})` : ''}`,
    } satisfies SiweState
  setBearer(answer.data.token)
  restartStream()
  return {
    state: 'signed-in',
    ...(answer.data.expiresAt ? { expiresAt: String(answer.data.expiresAt) } : {}),
  } satisfies SiweState
}

/** Signs in as demo owner `ownerIndex` of the development mnemonic. */
export async function signIn(ownerIndex: number, chainId: number): Promise<Session> {
  endWalletWatch()
  const account = demoOwner(ownerIndex)
  const siwe = await siweSignIn(account.address, chainId, (message) => account.signMessage({ message }))
  const session: Session = { kind: 'demo', ownerIndex, account, address: account.address, siwe }
  publish(session)
  return session
}

let endWalletWatch = () => {}

/**
 * Connects `wallet` (eth_requestAccounts) and signs in with its first account: the wallet shows
 * the EIP-4361 message and asks the user. A refusal throws a WalletProblem and signs nobody in.
 */
export async function signInWithWallet(wallet: WalletOption, chain: Chain): Promise<Session> {
  endWalletWatch()
  const context = { chainId: chain.info.chainId }
  try {
    const [address] = await requestAccounts(wallet.provider)
    const onChain = await walletChainId(wallet.provider)
    const siwe = await siweSignIn(address!, chain.info.chainId, (message) =>
      personalSign(wallet, address!, message),
    )
    const session: Session = { kind: 'wallet', wallet, address: address!, walletChainId: onChain, siwe }
    watchWallet(session)
    publish(session)
    return session
  } catch (error) {
    throw walletProblem(error, context)
  }
}

/**
 * `personal_sign` of an EIP-4361 message, sent as its text: wallets take the text or its hex
 * (MetaMask, Coinbase Wallet and Rabby decode a hex string and keep any other as UTF-8), but some
 * sign a hex string's characters instead of its bytes. Whatever comes back must be the account's
 * signature over exactly this message.
 */
async function personalSign(wallet: WalletOption, address: Address, message: string): Promise<Hex> {
  const signature: unknown = await wallet.provider.request({
    method: 'personal_sign',
    params: [message as Hex, address],
  })
  if (!isHex(signature) || signature.length !== 132)
    throw new WalletProblem('failed', 'The wallet answered no 65-byte signature.')
  const signer = await recoverMessageAddress({ message, signature })
  if (signer.toLowerCase() !== address.toLowerCase())
    throw new WalletProblem(
      'failed',
      `The wallet signed the sign-in message as ${signer}, not as ${address}.`,
    )
  return signature
}

/** Follows the wallet: another account ends the session; another chain is shown. */
function watchWallet(session: Session & { kind: 'wallet' }) {
  const provider = session.wallet.provider
  const onAccounts = (accounts: readonly string[]) => {
    if (!(current?.kind === 'wallet' && current.wallet === session.wallet)) return
    const first = accounts[0]
    if (first?.toLowerCase() !== session.address.toLowerCase())
      signOut(
        first
          ? 'Your wallet switched to another account: sign in again to act as it.'
          : 'Your wallet disconnected this site.',
      )
  }
  const onChain = (chainId: string | number) => {
    const id = typeof chainId === 'number' ? chainId : Number.parseInt(String(chainId), 16)
    if (current?.kind === 'wallet' && current.wallet === session.wallet && Number.isSafeInteger(id))
      publish({ ...current, walletChainId: id })
  }
  provider.on('accountsChanged', onAccounts)
  provider.on('chainChanged', onChain)
  endWalletWatch = () => {
    // Some providers (older EventEmitters) have `off` but no `removeListener`.
    const remove = (
      provider.removeListener ?? (provider as { off?: typeof provider.removeListener }).off
    )?.bind(provider)
    remove?.('accountsChanged', onAccounts)
    remove?.('chainChanged', onChain)
    endWalletWatch = () => {}
  }
}

export function signOut(reason?: string): void {
  endWalletWatch()
  setBearer(undefined)
  restartStream()
  publish(undefined, reason)
}

/** Re-reads the wallet's chain (after a switch the wallet may not announce). */
export async function refreshWalletChain(): Promise<void> {
  const session = current
  if (session?.kind !== 'wallet') return
  const id = await walletChainId(session.wallet.provider)
  if (current === session) publish({ ...session, walletChainId: id })
}

export function useSession(): Session | undefined {
  return useSessionState().session
}

/** The session, and why the last one ended when the console ended it. */
export function useSessionState(): { session: Session | undefined; endedBecause: string | undefined } {
  const [state, setState] = useState({ session: current, endedBecause })
  useEffect(() => {
    const update = () => setState({ session: current, endedBecause })
    listeners.add(update)
    update()
    return () => {
      listeners.delete(update)
    }
  }, [])
  return state
}

/** The client that signs and sends as the session: the wallet, or the demo key in this page. */
export function sessionClient(session: Session, chain: Chain): WalletClient {
  return session.kind === 'demo'
    ? chain.wallet(session.account)
    : chain.external(session.wallet.provider, session.address)
}

/**
 * EIP-712 typed data signed as the session (the wallet: `eth_signTypedData_v4`). The wallet must
 * be on the node's chain (wallets refuse a domain of another chain); the answer must be a
 * signature of the session's account over exactly this data, whatever the wallet says.
 */
export async function signTypedDataAs(
  session: Session,
  chain: Chain,
  typedData: TypedDataDefinition,
): Promise<Hex> {
  const context = { chainId: chain.info.chainId, address: session.address }
  try {
    if (session.kind === 'wallet') await requireChain(session.wallet.provider, chain)
    const signature = await sessionClient(session, chain).signTypedData({
      ...typedData,
      account: session.kind === 'demo' ? session.account : session.address,
    } as Parameters<WalletClient['signTypedData']>[0])
    if (!isHex(signature) || signature.length !== 132)
      throw new WalletProblem('failed', 'The wallet answered no 65-byte signature.')
    const signer = await recoverTypedDataAddress({ ...typedData, signature } as Parameters<
      typeof recoverTypedDataAddress
    >[0])
    if (signer.toLowerCase() !== session.address.toLowerCase())
      throw new WalletProblem('failed', `The wallet signed as ${signer}, not as ${session.address}.`)
    return signature
  } catch (error) {
    throw walletProblem(error, context)
  }
}

/**
 * A contract call sent as the session and confirmed on chain: from the wallet (after its own
 * confirmation) on the node's chain, or signed here for a demo owner. Refuses early when the
 * account has no ETH for gas. Answers the transaction hash once it is mined and succeeded.
 */
export async function sendAs<
  const abi extends Abi,
  name extends ContractFunctionName<abi, 'nonpayable' | 'payable'>,
  args extends ContractFunctionArgs<abi, 'nonpayable' | 'payable', name>,
>(
  session: Session,
  chain: Chain,
  call: { address: Address; abi: abi; functionName: name; args: args },
): Promise<Hex> {
  const context = { chainId: chain.info.chainId, address: session.address }
  try {
    if (session.kind === 'wallet') await requireChain(session.wallet.provider, chain)
    if ((await chain.client.getBalance({ address: session.address })) === 0n)
      throw new WalletProblem(
        'no-funds',
        `The account ${session.address} has no ETH on chain ${chain.info.chainId} to pay for gas: fund it and try again.`,
      )
    const client = sessionClient(session, chain)
    const hash = await client.writeContract({
      ...call,
      chain: chain.definition,
      account: session.kind === 'demo' ? session.account : session.address,
    } as unknown as Parameters<WalletClient['writeContract']>[0])
    const receipt = await chain.client.waitForTransactionReceipt({ hash })
    if (receipt.status !== 'success') throw new WalletProblem('failed', `The transaction ${hash} reverted.`)
    return hash
  } catch (error) {
    throw walletProblem(error, context)
  }
}
