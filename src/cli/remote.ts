/**
 * What CLI commands share when they talk to a node or sign as someone: JSON calls to a node's API
 * (errors keep the node's code), signing accounts from flags, and Sign-In with Ethereum.
 */
import type { Hex, LocalAccount } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { createSiweMessage } from 'viem/siwe'
import { developmentAccount } from '../chain/clients.ts'
import { BaseError, type ErrorCode, errorCodes } from '../errors.ts'
import type { ParsedFlags } from './command.ts'
import { integerFlag, stringFlag } from './flags.ts'

/** Calls a node's JSON API; a node error is rethrown with its own code. */
export async function nodeJson<T>(
  node: string,
  path: string,
  init: { method?: string; body?: unknown; token?: string } = {},
): Promise<T> {
  let response: Response
  try {
    response = await fetch(new URL(path, node), {
      method: init.method ?? 'GET',
      headers: {
        ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(init.token ? { authorization: `Bearer ${init.token}` } : {}),
      },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
      signal: AbortSignal.timeout(30_000),
    })
  } catch (error) {
    throw new BaseError('NODE_UNREACHABLE', `no Carchain node answers at ${node}`, {
      details: { node },
      cause: error,
    })
  }
  const body = (await response.json().catch(() => ({}))) as {
    code?: string
    message?: string
    details?: Record<string, unknown>
  }
  if (!response.ok) {
    const code = (
      typeof body.code === 'string' && Object.hasOwn(errorCodes, body.code) ? body.code : 'INTERNAL'
    ) as ErrorCode
    throw new BaseError(code, body.message ?? `the node answered HTTP ${response.status}`, {
      details: body.details ?? {},
    })
  }
  return body as T
}

/** An account from `--<keyFlag> 0x…` (or env), else development account `--<indexFlag> N`. */
export function accountFromFlags(
  flags: ParsedFlags,
  keyFlag: string,
  indexFlag: string,
  envKey?: string,
): LocalAccount {
  const key = stringFlag(flags, keyFlag) ?? (envKey ? process.env[envKey] : undefined)
  if (key) {
    if (!/^0x[0-9a-fA-F]{64}$/.test(key))
      throw new BaseError('CLI_USAGE', `--${keyFlag} must be 0x followed by 64 hex digits`, {
        details: { flag: keyFlag },
      })
    return privateKeyToAccount(key as Hex)
  }
  const index = integerFlag(flags, indexFlag, { min: 0, max: 2 ** 31 - 1 })
  if (index === undefined) throw new BaseError('CLI_USAGE', `give --${keyFlag} or --${indexFlag}`)
  return developmentAccount(index)
}

/** Signs in to a node with EIP-4361; returns the bearer token. */
export async function signIn(node: string, account: LocalAccount): Promise<string> {
  const [{ nonce }, { chainId }] = await Promise.all([
    nodeJson<{ nonce: string }>(node, '/v1/auth/nonce'),
    nodeJson<{ chainId: number }>(node, '/v1/chain'),
  ])
  const url = new URL(node)
  const message = createSiweMessage({
    address: account.address,
    chainId,
    domain: url.host,
    nonce,
    uri: url.origin,
    version: '1',
  })
  const signature = await account.signMessage!({ message })
  const { token } = await nodeJson<{ token: string }>(node, '/v1/auth/siwe', {
    method: 'POST',
    body: { message, signature },
  })
  return token
}
