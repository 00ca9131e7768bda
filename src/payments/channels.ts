/**
 * The ChargingChannels client: the car's side (open with an EIP-2612 permit, reuse, top up,
 * reclaim after expiry) and the operator's side (claim the newest voucher, close). Each action
 * takes the clients first, as viem's actions do, and waits for the receipt; a revert becomes a
 * BaseError whose code says what it means (VOUCHER_INVALID, CHANNEL_STATE, INSUFFICIENT_FUNDS…)
 * with the contract's error name in `details.reason`.
 *
 * The contract stores only a channel's amounts and expiry; its payer, payee and token are what
 * its id commits to. So every action on an existing channel names it by its `ChannelKey`
 * (payer, payee, token, nonce), from which the contract — and `channelIdOf` here — computes the id.
 */
import {
  type Account,
  type Address,
  type Chain,
  ContractFunctionRevertedError,
  encodeAbiParameters,
  type Hash,
  type Hex,
  keccak256,
  type PublicClient,
  type Transport,
  BaseError as ViemBaseError,
  type WalletClient,
} from 'viem'
import { chargingChannelsAbi, demoTokenAbi } from '../chain/generated/index.ts'
import { BaseError, type ErrorCode } from '../errors.ts'
import { signPermit } from './permit.ts'
import { minAmount } from './pricing.ts'
import type { CarWallet, ChannelRecord } from './wallet.ts'

/** A public client for reads and a wallet client whose account sends the transactions. */
export type ChannelClients = {
  readonly publicClient: PublicClient<Transport, Chain>
  readonly walletClient: WalletClient<Transport, Chain, Account>
}

/**
 * What identifies a channel (the contract's `ChannelKey`): the payer is the account that opened
 * it, and the nonce any value it had not used with this payee and token.
 */
export type ChannelKey = {
  readonly payer: Address
  readonly payee: Address
  readonly token: Address
  readonly nonce: bigint
}

/** A channel: its key and id, and the state the contract holds for it. */
export type OnChainChannel = ChannelKey & {
  readonly channelId: Hex
  readonly deposit: bigint
  readonly paid: bigint
  /** Unix seconds; 0 once closed. */
  readonly expiresAt: bigint
  readonly closed: boolean
}

const channelKeyParameters = [
  { type: 'address' },
  { type: 'address' },
  { type: 'address' },
  { type: 'uint256' },
] as const

/** The channel id, lowercase: `keccak256(abi.encode(payer, payee, token, nonce))`, as the contract computes it. */
export function channelIdOf(key: ChannelKey): Hex {
  return keccak256(
    encodeAbiParameters(channelKeyParameters, [key.payer, key.payee, key.token, key.nonce]),
  ).toLowerCase() as Hex
}

/** The key of a channel the wallet at `payer` holds (`ChannelRecord` or any `{payee, token, nonce}`). */
export function channelKeyOf(
  payer: Address,
  channel: { readonly payee: Address; readonly token: Address; readonly nonce: bigint },
): ChannelKey {
  return { payer, payee: channel.payee, token: channel.token, nonce: channel.nonce }
}

/** The key as the contract's ABI takes it (a plain object, nothing else). */
function keyArg(key: ChannelKey): ChannelKey {
  return { payer: key.payer, payee: key.payee, token: key.token, nonce: key.nonce }
}

/** The contract's ABI plus the ERC-20 (OpenZeppelin, ERC-6093) errors a transfer may revert with. */
const channelsAndTokenErrors = [
  ...chargingChannelsAbi,
  ...demoTokenAbi.filter((item) => item.type === 'error'),
]

const revertCodes: Record<string, ErrorCode> = {
  ChargingChannelsUnknownChannel: 'CHANNEL_STATE',
  ChargingChannelsChannelExists: 'CHANNEL_STATE',
  ChargingChannelsChannelClosed: 'CHANNEL_STATE',
  ChargingChannelsNotExpired: 'CHANNEL_STATE',
  ChargingChannelsNotPayer: 'FORBIDDEN',
  ChargingChannelsNotPayee: 'FORBIDDEN',
  ChargingChannelsInvalidPayee: 'INVALID_ARGUMENT',
  ChargingChannelsZeroAmount: 'INVALID_ARGUMENT',
  ChargingChannelsAmountTooLarge: 'INVALID_ARGUMENT',
  ChargingChannelsInvalidExpiry: 'INVALID_ARGUMENT',
  ChargingChannelsVoucherNotIncreasing: 'VOUCHER_INVALID',
  ChargingChannelsVoucherExceedsDeposit: 'VOUCHER_INVALID',
  ChargingChannelsInvalidSignature: 'VOUCHER_INVALID',
  ERC20InsufficientBalance: 'INSUFFICIENT_FUNDS',
  ERC20InsufficientAllowance: 'INSUFFICIENT_FUNDS',
}

/** Turns a viem contract error into a BaseError with a meaningful code. */
export function toChannelError(error: unknown, action: string): BaseError {
  if (error instanceof BaseError) return error
  if (error instanceof ViemBaseError) {
    const reverted = error.walk((e) => e instanceof ContractFunctionRevertedError)
    if (reverted instanceof ContractFunctionRevertedError && reverted.data?.errorName) {
      const reason = reverted.data.errorName
      const args = (reverted.data.args ?? []).map((a) => (typeof a === 'bigint' ? a.toString() : a))
      return new BaseError(revertCodes[reason] ?? 'CHAIN_TX_FAILED', `${action}: ${reason}`, {
        details: { reason, args },
        cause: error,
      })
    }
    return new BaseError('CHAIN_TX_FAILED', `${action}: ${error.shortMessage}`, { cause: error })
  }
  return new BaseError('CHAIN_TX_FAILED', `${action} failed`, { cause: error })
}

async function send(
  clients: ChannelClients,
  action: string,
  request: { address: Address; functionName: string; args: readonly unknown[] },
): Promise<{ txHash: Hash; gasUsed: bigint; blockNumber: bigint }> {
  let txHash: Hash
  try {
    txHash = await clients.walletClient.writeContract({
      abi: channelsAndTokenErrors,
      ...request,
    } as never)
  } catch (error) {
    throw toChannelError(error, action)
  }
  const receipt = await clients.publicClient.waitForTransactionReceipt({ hash: txHash })
  if (receipt.status !== 'success')
    throw new BaseError('CHAIN_TX_FAILED', `${action}: transaction ${txHash} reverted`, {
      details: { txHash },
    })
  return { txHash, gasUsed: receipt.gasUsed, blockNumber: receipt.blockNumber }
}

/**
 * Reads the channel `key` names; CHANNEL_STATE when there is none (never opened, or opened by
 * another payer, to another payee or in another token: those are other ids).
 */
export async function readChannel(
  publicClient: PublicClient<Transport, Chain>,
  parameters: { channels: Address; key: ChannelKey },
): Promise<OnChainChannel> {
  const channelId = channelIdOf(parameters.key)
  const c = await publicClient.readContract({
    address: parameters.channels,
    abi: chargingChannelsAbi,
    functionName: 'channel',
    args: [channelId],
  })
  if (c.deposit === 0n)
    throw new BaseError('CHANNEL_STATE', `no channel ${channelId}`, {
      details: { channelId },
    })
  return { ...keyArg(parameters.key), channelId, ...c }
}

/**
 * 64 random bits. The nonce only has to be new for this payer, payee and token (the payer is part
 * of the id, so nobody else can take it); it travels in the calldata of every open, claim and
 * close, where 8 bytes cost ~290 gas less than 32, and a collision (odds ~2^-64 per pair of
 * channels) only makes the open revert with ChannelExists.
 */
function randomNonce(): bigint {
  return BigInt(`0x${Buffer.from(crypto.getRandomValues(new Uint8Array(8))).toString('hex')}`)
}

export type OpenChannelParameters = {
  readonly channels: Address
  readonly payee: Address
  readonly token: Address
  readonly deposit: bigint
  /** Unix seconds. */
  readonly expiresAt: bigint
  /** Default: 64 random bits. */
  readonly nonce?: bigint
}

/**
 * Opens a channel from the wallet with an EIP-2612 permit (one transaction, no approve) and
 * remembers it in the wallet. `clients.walletClient` must send as the wallet's account.
 */
export async function openChannel(
  clients: ChannelClients,
  wallet: CarWallet,
  parameters: OpenChannelParameters,
): Promise<ChannelRecord & { txHash: Hash; gasUsed: bigint }> {
  const { channels, payee, token, deposit, expiresAt } = parameters
  const nonce = parameters.nonce ?? randomNonce()
  const permit = await signPermit(clients.publicClient, wallet.account, {
    token,
    spender: channels,
    value: deposit,
  })
  const record: ChannelRecord = {
    channelId: channelIdOf({ payer: wallet.address, payee, token, nonce }),
    payee,
    token,
    nonce,
    cumulativeAmount: 0n,
    meterWh: 0n,
    signature: null,
  }
  const sent = await send(clients, 'openWithPermit', {
    address: channels,
    functionName: 'openWithPermit',
    args: [payee, token, deposit, expiresAt, nonce, permit.deadline, permit.v, permit.r, permit.s],
  })
  await wallet.rememberChannel(record)
  return { ...record, txHash: sent.txHash, gasUsed: sent.gasUsed }
}

/** Adds `amount` to a channel's deposit with a permit. Payer only (`key.payer` is the wallet). */
export async function topUpChannel(
  clients: ChannelClients,
  wallet: CarWallet,
  parameters: { channels: Address; key: ChannelKey; amount: bigint },
): Promise<{ txHash: Hash; gasUsed: bigint }> {
  const permit = await signPermit(clients.publicClient, wallet.account, {
    token: parameters.key.token,
    spender: parameters.channels,
    value: parameters.amount,
  })
  return send(clients, 'topUpWithPermit', {
    address: parameters.channels,
    functionName: 'topUpWithPermit',
    args: [keyArg(parameters.key), parameters.amount, permit.deadline, permit.v, permit.r, permit.s],
  })
}

/** Takes back what the payee did not claim, from `expiresAt` on. Payer only. */
export async function reclaimChannel(
  clients: ChannelClients,
  parameters: { channels: Address; key: ChannelKey },
): Promise<{ txHash: Hash; gasUsed: bigint }> {
  return send(clients, 'reclaim', {
    address: parameters.channels,
    functionName: 'reclaim',
    args: [keyArg(parameters.key)],
  })
}

export type EnsureChannelParameters = {
  readonly channels: Address
  readonly payee: Address
  readonly token: Address
  /** What the channel must still be able to pay (deposit − newest signed voucher). */
  readonly minAvailable: bigint
  /** The deposit of a new channel (at least `minAvailable`). */
  readonly deposit: bigint
  /** How long the channel must stay open from now, seconds (so the payee can settle). */
  readonly minValiditySec: number
  /** The lifetime of a new channel, seconds. */
  readonly validitySec: number
}

export type EnsuredChannel = {
  readonly record: ChannelRecord
  readonly onChain: OnChainChannel
  readonly action: 'reused' | 'opened'
  readonly txHash?: Hash
}

/**
 * A channel to `payee` in `token` able to pay `minAvailable` for at least `minValiditySec`: the
 * newest such channel the wallet holds, or a new one opened with a permit.
 */
export async function ensureChannel(
  clients: ChannelClients,
  wallet: CarWallet,
  parameters: EnsureChannelParameters,
): Promise<EnsuredChannel> {
  const nowSec = BigInt(Math.floor(wallet.now() / 1000))
  const candidates = wallet
    .channels()
    .filter(
      (c) =>
        c.payee.toLowerCase() === parameters.payee.toLowerCase() &&
        c.token.toLowerCase() === parameters.token.toLowerCase(),
    )
  for (const record of candidates.reverse()) {
    const onChain = await readChannel(clients.publicClient, {
      channels: parameters.channels,
      key: channelKeyOf(wallet.address, record),
    })
    if (onChain.closed) continue
    if (onChain.expiresAt < nowSec + BigInt(parameters.minValiditySec)) continue
    if (onChain.deposit - record.cumulativeAmount < parameters.minAvailable) continue
    return { record, onChain, action: 'reused' }
  }
  // A new channel must hold at least what this session needs.
  const deposit =
    parameters.minAvailable - minAmount(parameters.minAvailable, parameters.deposit) + parameters.deposit
  const opened = await openChannel(clients, wallet, {
    channels: parameters.channels,
    payee: parameters.payee,
    token: parameters.token,
    deposit,
    expiresAt: nowSec + BigInt(parameters.validitySec),
  })
  const onChain = await readChannel(clients.publicClient, {
    channels: parameters.channels,
    key: channelKeyOf(wallet.address, opened),
  })
  return { record: opened, onChain, action: 'opened', txHash: opened.txHash }
}

/** A voucher with its signature, as the operator keeps it. */
export type SignedVoucher = {
  readonly channelId: Hex
  readonly cumulativeAmount: bigint
  readonly meterWh: bigint
  readonly signature: Hex
}

/** INVALID_ARGUMENT unless `voucher` is for the channel `key` names (no transaction to find out). */
function checkVoucherKey(key: ChannelKey, voucher: SignedVoucher, action: string): void {
  const channelId = channelIdOf(key)
  if (voucher.channelId.toLowerCase() !== channelId)
    throw new BaseError('INVALID_ARGUMENT', `${action}: the voucher is for another channel than the key`, {
      details: { channelId, voucherChannelId: voucher.channelId },
    })
}

/** Claims a voucher (the newest one of its channel) on the channel `key`. Payee only. */
export async function claimVoucher(
  clients: ChannelClients,
  parameters: { channels: Address; key: ChannelKey; voucher: SignedVoucher },
): Promise<{ txHash: Hash; gasUsed: bigint; blockNumber: bigint }> {
  const { key, voucher } = parameters
  checkVoucherKey(key, voucher, 'claim')
  return send(clients, 'claim', {
    address: parameters.channels,
    functionName: 'claim',
    args: [keyArg(key), voucher.cumulativeAmount, voucher.meterWh, voucher.signature],
  })
}

/** Settles with the newest voucher (when it raises the amount) and refunds the rest. Payee only. */
export async function closeChannel(
  clients: ChannelClients,
  parameters: { channels: Address; key: ChannelKey; voucher?: SignedVoucher },
): Promise<{ txHash: Hash; gasUsed: bigint }> {
  const { key, voucher: v } = parameters
  if (v) checkVoucherKey(key, v, 'close')
  return send(clients, 'close', {
    address: parameters.channels,
    functionName: 'close',
    args: v ? [keyArg(key), v.cumulativeAmount, v.meterWh, v.signature] : [keyArg(key), 0n, 0n, '0x'],
  })
}
