/**
 * The owner's own wallet: EIP-1193 providers announced through EIP-6963 (found with `mipd`), and
 * the legacy `window.ethereum` (EIP-1193) when a wallet announces nothing. Whatever a wallet
 * announces or answers is outside input: names and icons are checked before they are shown,
 * accounts and chain ids before they are used.
 *
 * Wallet failures become one `WalletProblem` with a sentence a person can act on: the user
 * refused (EIP-1193 4001), the wallet is on another chain than the node (offer
 * `wallet_switchEthereumChain`, then `wallet_addEthereumChain` on 4902), the account has no ETH
 * for gas, or the wallet lacks a method.
 */
import { createStore, type EIP6963ProviderDetail, type Store } from 'mipd'
import { useEffect, useState } from 'react'
import { type Address, type EIP1193Provider, getAddress, isAddress, numberToHex } from 'viem'
import type { Chain } from './chain.ts'

/** A wallet the user may pick. */
export type WalletOption = {
  /** EIP-6963 uuid, or `window.ethereum`. */
  id: string
  name: string
  /** A `data:image/…` URI (EIP-6963), shown as an <img>; absent when the wallet gave none or a bad one. */
  icon?: string
  rdns?: string
  source: 'eip6963' | 'window.ethereum'
  provider: EIP1193Provider
}

const ICON = /^data:image\/(png|svg\+xml|webp|jpeg|gif)[;,]/
const MAX_NAME = 64

/** One announced provider as a picker entry, or undefined when the announcement is malformed. */
export function walletOption(detail: EIP6963ProviderDetail): WalletOption | undefined {
  const info = detail?.info
  const provider = detail?.provider as EIP1193Provider | undefined
  if (!info || typeof provider?.request !== 'function') return undefined
  if (typeof info.uuid !== 'string' || info.uuid.length === 0 || info.uuid.length > 64) return undefined
  const name = typeof info.name === 'string' ? info.name.trim().slice(0, MAX_NAME) : ''
  return {
    id: info.uuid,
    name: name || 'Unnamed wallet',
    ...(typeof info.icon === 'string' && ICON.test(info.icon) && info.icon.length < 200_000
      ? { icon: info.icon }
      : {}),
    ...(typeof info.rdns === 'string' && info.rdns.length <= 128 ? { rdns: info.rdns } : {}),
    source: 'eip6963',
    provider,
  }
}

let store: Store | undefined

/** The wallets of this browser: every EIP-6963 announcement, else `window.ethereum`. */
export function listWallets(details: readonly EIP6963ProviderDetail[]): WalletOption[] {
  const options: WalletOption[] = []
  const seen = new Set<string>()
  for (const detail of details) {
    const option = walletOption(detail)
    if (option && !seen.has(option.id)) {
      seen.add(option.id)
      options.push(option)
    }
  }
  const legacy = (window as unknown as { ethereum?: EIP1193Provider }).ethereum
  if (legacy && typeof legacy.request === 'function' && !options.some((option) => option.provider === legacy))
    options.push({
      id: 'window.ethereum',
      name: 'Browser wallet (window.ethereum)',
      source: 'window.ethereum',
      provider: legacy,
    })
  return options
}

/** The wallets found so far, updated as wallets announce themselves. */
export function useWallets(): WalletOption[] {
  const [wallets, setWallets] = useState<WalletOption[]>([])
  useEffect(() => {
    store ??= createStore()
    return store.subscribe((details) => setWallets(listWallets(details)), { emitImmediately: true })
  }, [])
  return wallets
}

export type WalletProblemKind =
  | 'rejected'
  | 'wrong-chain'
  | 'no-funds'
  | 'unauthorized'
  | 'unsupported'
  | 'failed'

/** A wallet failure a person can act on. */
export class WalletProblem extends Error {
  readonly kind: WalletProblemKind
  /** For 'wrong-chain': the chain the wallet is on. */
  readonly walletChainId?: number
  constructor(kind: WalletProblemKind, message: string, walletChainId?: number) {
    super(message)
    this.name = 'WalletProblem'
    this.kind = kind
    if (walletChainId !== undefined) this.walletChainId = walletChainId
  }
}

type ErrorLike = {
  code?: unknown
  name?: unknown
  message?: unknown
  shortMessage?: unknown
  cause?: unknown
}

/** The error and its causes (viem wraps a provider's error; some wallets nest `data.originalError`). */
function chainOf(error: unknown): ErrorLike[] {
  const out: ErrorLike[] = []
  let current: unknown = error
  while (current && typeof current === 'object' && out.length < 8) {
    out.push(current as ErrorLike)
    current = (current as ErrorLike).cause
  }
  return out
}

const hasCode = (error: unknown, code: number) => chainOf(error).some((e) => Number(e.code) === code)
const says = (error: unknown, pattern: RegExp) =>
  chainOf(error).some(
    (e) =>
      (typeof e.message === 'string' && pattern.test(e.message)) ||
      (typeof e.name === 'string' && pattern.test(e.name)),
  )

/**
 * A wallet's (or viem's) error as a WalletProblem. EIP-1193 codes decide; a wallet reached
 * through a bridge that drops the code (a test harness, some mobile bridges) is recognised by
 * its standard message.
 */
export function walletProblem(error: unknown, context: { chainId: number; address?: string }): WalletProblem {
  if (error instanceof WalletProblem) return error
  if (
    hasCode(error, 4001) ||
    says(error, /UserRejectedRequest|user rejected|user denied|rejected the request/i)
  )
    return new WalletProblem(
      'rejected',
      'You declined the request in your wallet: nothing was signed or sent.',
    )
  if (hasCode(error, 4100) || says(error, /has not been authorized by the user/i))
    return new WalletProblem(
      'unauthorized',
      'Your wallet has not authorised this site for that account: connect the wallet again.',
    )
  if (hasCode(error, 4200) || says(error, /does not support the requested method|MethodNotSupported/i))
    return new WalletProblem('unsupported', 'Your wallet does not support this request.')
  if (says(error, /ChainMismatch|does not match the target chain/i))
    return new WalletProblem(
      'wrong-chain',
      `Your wallet is on another chain than this node's (chain ${context.chainId}): switch it and try again.`,
    )
  if (says(error, /InsufficientFunds|insufficient funds/i))
    return new WalletProblem(
      'no-funds',
      `${context.address ? `The account ${context.address}` : 'Your account'} has not enough ETH on chain ${context.chainId} to pay for this transaction: fund it and try again.`,
    )
  const first = chainOf(error)[0]
  const text =
    (typeof first?.shortMessage === 'string' && first.shortMessage) ||
    (typeof first?.message === 'string' && first.message.split('\n')[0]) ||
    String(error)
  return new WalletProblem('failed', text)
}

/** The wallet's accounts after asking it to connect (eth_requestAccounts), checked. */
export async function requestAccounts(provider: EIP1193Provider): Promise<Address[]> {
  const answer: unknown = await provider.request({ method: 'eth_requestAccounts' })
  if (!Array.isArray(answer)) throw new WalletProblem('failed', 'The wallet answered no list of accounts.')
  const accounts = answer.filter((a): a is string => typeof a === 'string' && isAddress(a, { strict: false }))
  if (accounts.length === 0) throw new WalletProblem('failed', 'The wallet shared no account with this site.')
  return accounts.map((a) => getAddress(a))
}

/** The chain the wallet is on (eth_chainId), checked. */
export async function walletChainId(provider: EIP1193Provider): Promise<number> {
  const answer: unknown = await provider.request({ method: 'eth_chainId' })
  const id =
    typeof answer === 'string' && /^0x[0-9a-fA-F]{1,16}$/.test(answer) ? Number.parseInt(answer, 16) : NaN
  if (!Number.isSafeInteger(id) || id <= 0)
    throw new WalletProblem('failed', `The wallet named no valid chain id (${String(answer).slice(0, 32)}).`)
  return id
}

/** Refuses with a 'wrong-chain' WalletProblem unless the wallet is on the node's chain. */
export async function requireChain(provider: EIP1193Provider, chain: Chain): Promise<void> {
  const id = await walletChainId(provider)
  if (id !== chain.info.chainId)
    throw new WalletProblem(
      'wrong-chain',
      `Your wallet is on chain ${id}; this node's chain is ${chain.definition.name}, id ${chain.info.chainId}: switch the wallet's network.`,
      id,
    )
}

/**
 * Asks the wallet to switch to the node's chain; when it does not know the chain (4902), offers
 * to add it (`wallet_addEthereumChain`, the node's rpcUrl) and then switches.
 */
export async function switchToChain(provider: EIP1193Provider, chain: Chain): Promise<void> {
  const chainId = numberToHex(chain.info.chainId)
  try {
    await provider.request({ method: 'wallet_switchEthereumChain', params: [{ chainId }] })
  } catch (error) {
    const unknownChain =
      hasCode(error, 4902) ||
      says(error, /unrecognized chain|not connected to the requested chain|add.*chain first/i)
    if (!unknownChain) throw error
    await provider.request({
      method: 'wallet_addEthereumChain',
      params: [
        {
          chainId,
          chainName: chain.definition.name,
          nativeCurrency: chain.definition.nativeCurrency,
          rpcUrls: [chain.info.rpcUrl],
        },
      ],
    })
    await provider.request({ method: 'wallet_switchEthereumChain', params: [{ chainId }] })
  }
}
