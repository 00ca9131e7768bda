/**
 * EIP-2612 permits: the car approves a spender by signature, so opening a channel (or paying a
 * parking operator) is one transaction instead of approve + call. The token's EIP-712 domain is
 * read from the token itself (EIP-5267 `eip712Domain()`), falling back to its `name()` and
 * version "1" (OpenZeppelin's ERC20Permit) for tokens that predate EIP-5267.
 */
import {
  type Address,
  type Chain,
  type Hex,
  type LocalAccount,
  type PublicClient,
  parseSignature,
  type Transport,
} from 'viem'
import { demoTokenAbi } from '../chain/generated/index.ts'
import { BaseError } from '../errors.ts'

export const permitTypes = {
  Permit: [
    { name: 'owner', type: 'address' },
    { name: 'spender', type: 'address' },
    { name: 'value', type: 'uint256' },
    { name: 'nonce', type: 'uint256' },
    { name: 'deadline', type: 'uint256' },
  ],
} as const

export type SignedPermit = {
  readonly owner: Address
  readonly spender: Address
  readonly value: bigint
  readonly nonce: bigint
  /** Unix seconds. */
  readonly deadline: bigint
  readonly v: number
  readonly r: Hex
  readonly s: Hex
  readonly signature: Hex
}

export type SignPermitParameters = {
  readonly token: Address
  readonly spender: Address
  readonly value: bigint
  /** Unix seconds (default: now + 1 hour). */
  readonly deadline?: bigint
  /** Override the token's current nonce (a second permit before the first is used). */
  readonly nonce?: bigint
}

/** A token's EIP-712 domain for permits (name, version, chain id); it never changes for a token. */
export type PermitDomain = { readonly name: string; readonly version: string; readonly chainId: number }

/** Reads a token's permit domain: EIP-5267 `eip712Domain()`, else `name()` and version "1". */
export async function readPermitDomain(
  publicClient: PublicClient<Transport, Chain>,
  token: Address,
): Promise<PermitDomain> {
  try {
    const domain = await publicClient.readContract({
      address: token,
      abi: demoTokenAbi,
      functionName: 'eip712Domain',
    })
    return { name: domain[1], version: domain[2], chainId: Number(domain[3]) }
  } catch {
    try {
      const name = await publicClient.readContract({
        address: token,
        abi: demoTokenAbi,
        functionName: 'name',
      })
      return { name, version: '1', chainId: publicClient.chain.id }
    } catch (error) {
      throw new BaseError('INVALID_ARGUMENT', `${token} is not an ERC-20 with EIP-2612 permit`, {
        details: { token },
        cause: error,
      })
    }
  }
}

/** The owner's current permit nonce at `token`. */
export function readPermitNonce(
  publicClient: PublicClient<Transport, Chain>,
  token: Address,
  owner: Address,
): Promise<bigint> {
  return publicClient.readContract({
    address: token,
    abi: demoTokenAbi,
    functionName: 'nonces',
    args: [owner],
  })
}

/**
 * Signs an EIP-2612 permit for `value` of `token` to `spender`, reading nonce and domain on chain
 * unless given (a caller that already read them saves the round trips).
 */
export async function signPermit(
  publicClient: PublicClient<Transport, Chain>,
  account: LocalAccount,
  parameters: SignPermitParameters & { readonly tokenDomain?: PermitDomain },
): Promise<SignedPermit> {
  const { token, spender, value } = parameters
  const { name, version, chainId } = parameters.tokenDomain ?? (await readPermitDomain(publicClient, token))
  const nonce = parameters.nonce ?? (await readPermitNonce(publicClient, token, account.address))
  const deadline = parameters.deadline ?? BigInt(Math.floor(Date.now() / 1000) + 3600)
  const signature = await account.signTypedData({
    domain: { name, version, chainId, verifyingContract: token },
    types: permitTypes,
    primaryType: 'Permit',
    message: { owner: account.address, spender, value, nonce, deadline },
  })
  const { r, s, v, yParity } = parseSignature(signature)
  return {
    owner: account.address,
    spender,
    value,
    nonce,
    deadline,
    v: Number(v ?? BigInt(27 + yParity)),
    r,
    s,
    signature,
  }
}
