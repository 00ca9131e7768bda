/**
 * One-shot payments (parking, tolls, services) under the same wallet policy as charging: a
 * payment counts against the per-payment cap (`maxPerSession`) and the daily cap, is booked before
 * it is sent, released if it fails, and logged as `payment.sent`.
 *
 * Two ways, both plain ERC-20, no helper contract:
 * - `pay`: the car sends `transfer(to, amount)` itself (it holds gas for channels anyway);
 * - `signPaymentPermit` + `redeemPaymentPermit`: the car only signs an EIP-2612 permit for exactly
 *   `amount` to the payee, which submits `permit` and `transferFrom` (the car pays no gas; one
 *   outstanding permit per payee, as a newer permit replaces the allowance).
 */
import type { Address, Hash } from 'viem'
import { demoTokenAbi } from '../chain/generated/index.ts'
import { BaseError } from '../errors.ts'
import type { ChannelClients } from './channels.ts'
import { type PermitDomain, type SignedPermit, signPermit } from './permit.ts'
import type { CarWallet } from './wallet.ts'

export type PayParameters = {
  readonly token: Address
  readonly to: Address
  /** Base units. */
  readonly amount: bigint
  /** What it was for (goes to the ledger event), e.g. "parking P3". */
  readonly memo?: string
}

export type PayReturnType = { txHash: Hash; gasUsed: bigint; eventId: string }

/** Pays `amount` of `token` to `to` with a transfer from the wallet (`clients.walletClient` sends as it). */
export async function pay(
  clients: ChannelClients,
  wallet: CarWallet,
  parameters: PayParameters,
): Promise<PayReturnType> {
  const { token, to, amount } = parameters
  if (amount <= 0n)
    throw new BaseError('INVALID_ARGUMENT', 'the amount must be positive', {
      details: { amount: String(amount) },
    })
  const reservation = await wallet.reserveSpend(amount, token)
  let txHash: Hash
  let gasUsed: bigint
  try {
    txHash = await clients.walletClient.writeContract({
      address: token,
      abi: demoTokenAbi,
      functionName: 'transfer',
      args: [to, amount],
    })
    const receipt = await clients.publicClient.waitForTransactionReceipt({ hash: txHash })
    if (receipt.status !== 'success') throw new BaseError('CHAIN_TX_FAILED', `transfer ${txHash} reverted`)
    gasUsed = receipt.gasUsed
  } catch (error) {
    await reservation.release()
    const message = error instanceof Error ? error.message : String(error)
    throw new BaseError(
      /insufficient balance/i.test(message) ? 'INSUFFICIENT_FUNDS' : 'CHAIN_TX_FAILED',
      `paying ${to} failed`,
      {
        details: { to, token, amount: amount.toString() },
        cause: error,
      },
    )
  }
  const eventId = await wallet.recordPayment({
    kind: 'transfer',
    to,
    token,
    amount: amount.toString(),
    txHash,
    ...(parameters.memo ? { memo: parameters.memo } : {}),
  })
  return { txHash, gasUsed, eventId }
}

/** Signs a permit for exactly `amount` to the payee, after the policy; the payee redeems it. */
export async function signPaymentPermit(
  clients: Pick<ChannelClients, 'publicClient'>,
  wallet: CarWallet,
  parameters: PayParameters & {
    readonly deadline?: bigint
    /** The token's permit domain and the wallet's nonce, when the caller read them already. */
    readonly tokenDomain?: PermitDomain
    readonly nonce?: bigint
  },
): Promise<{ permit: SignedPermit; eventId: string }> {
  const { token, to, amount } = parameters
  await wallet.reserveSpend(amount, token)
  const permit = await signPermit(clients.publicClient, wallet.account, {
    token,
    spender: to,
    value: amount,
    ...(parameters.deadline ? { deadline: parameters.deadline } : {}),
    ...(parameters.tokenDomain ? { tokenDomain: parameters.tokenDomain } : {}),
    ...(parameters.nonce !== undefined ? { nonce: parameters.nonce } : {}),
  })
  const eventId = await wallet.recordPayment({
    kind: 'permit',
    to,
    token,
    amount: amount.toString(),
    deadline: Number(permit.deadline),
    ...(parameters.memo ? { memo: parameters.memo } : {}),
  })
  return { permit, eventId }
}

/** The payee's side: submits the permit and pulls the amount (`clients.walletClient` is the payee). */
export async function redeemPaymentPermit(
  clients: ChannelClients,
  parameters: { token: Address; permit: SignedPermit },
): Promise<{ txHashes: Hash[]; gasUsed: bigint }> {
  const { token, permit } = parameters
  if (permit.spender.toLowerCase() !== clients.walletClient.account.address.toLowerCase())
    throw new BaseError('FORBIDDEN', 'this permit is for another payee', {
      details: { spender: permit.spender },
    })
  const txHashes: Hash[] = []
  let gasUsed = 0n
  const calls = [
    {
      functionName: 'permit' as const,
      args: [
        permit.owner,
        permit.spender,
        permit.value,
        permit.deadline,
        permit.v,
        permit.r,
        permit.s,
      ] as const,
    },
    { functionName: 'transferFrom' as const, args: [permit.owner, permit.spender, permit.value] as const },
  ]
  for (const call of calls) {
    try {
      const hash = await clients.walletClient.writeContract({
        address: token,
        abi: demoTokenAbi,
        ...call,
      } as never)
      const receipt = await clients.publicClient.waitForTransactionReceipt({ hash })
      txHashes.push(hash)
      gasUsed += receipt.gasUsed
    } catch (error) {
      throw new BaseError('CHAIN_TX_FAILED', `redeeming the permit failed at ${call.functionName}`, {
        details: { owner: permit.owner, amount: permit.value.toString() },
        cause: error,
      })
    }
  }
  return { txHashes, gasUsed }
}
