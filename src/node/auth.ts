/**
 * Sign-In with Ethereum (EIP-4361) for owners and managers: a single-use nonce, a signed message
 * for this node's domain, and a bearer token for the session. Tokens are stored hashed.
 *
 * The message must name this node: its domain and URI the node's configured public origin (never
 * the request's own Host header, which the caller chooses), its chain id the node's chain, and
 * "now" must lie inside its validity window (EIP-4361 `expiration-time`, `not-before`). Otherwise a
 * phishing site could collect a signature for its own domain and trade it here for a token.
 */
import { createHash, randomBytes } from 'node:crypto'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { type Address, getAddress } from 'viem'
import { generateSiweNonce, parseSiweMessage, type SiweMessage, verifySiweMessage } from 'viem/siwe'
import type { Queryable } from '../db/database.ts'
import { BaseError } from '../errors.ts'
import { logger } from '../log.ts'
import type { NodeContext } from './context.ts'

const log = logger('node.auth')

export const NONCE_TTL_MS = 5 * 60_000
export const SESSION_TTL_MS = 12 * 60 * 60_000

const LOOPBACK_NAMES = ['127.0.0.1', 'localhost', '[::1]']
const LOOPBACK_OR_ANY = new Set(['127.0.0.1', 'localhost', '::1', '0.0.0.0', '::'])

/**
 * The origins a sign-in message may name: the configured public URL's origin, or else the one the
 * server listens on; a server bound to loopback (or to every interface) answers to the loopback
 * names of its port alike, since a browser on this machine may use any of them.
 */
export function signInOrigins(parameters: { publicUrl: string | undefined; host: string; port: number }) {
  if (parameters.publicUrl) return [new URL(parameters.publicUrl).origin]
  if (LOOPBACK_OR_ANY.has(parameters.host))
    return LOOPBACK_NAMES.map((name) => new URL(`http://${name}:${parameters.port}`).origin)
  const host = parameters.host.includes(':') ? `[${parameters.host}]` : parameters.host
  return [new URL(`http://${host}:${parameters.port}`).origin]
}

export type CheckSiweMessageParameters = {
  /** `signInOrigins`. */
  origins: readonly string[]
  chainId: number
  nowMs: number
}

/**
 * The message's own claims against this node, before its signature is checked: domain and URI
 * name one of `origins` (and the same one), the chain id is the node's, and `nowMs` lies within
 * `not-before` … `expiration-time`. Throws SIWE_DOMAIN_MISMATCH, SIWE_CHAIN_MISMATCH or
 * SIWE_OUTSIDE_VALIDITY; answers the matched origin.
 */
export function checkSiweMessage(message: Partial<SiweMessage>, parameters: CheckSiweMessageParameters): URL {
  const { origins, chainId, nowMs } = parameters
  let uri: URL | undefined
  try {
    uri = new URL(message.uri ?? '')
  } catch {
    uri = undefined
  }
  const origin = uri && origins.includes(uri.origin) ? new URL(uri.origin) : undefined
  if (
    !origin ||
    origin.host !== message.domain?.toLowerCase() ||
    (message.scheme !== undefined && `${message.scheme}:` !== origin.protocol)
  )
    throw new BaseError(
      'SIWE_DOMAIN_MISMATCH',
      `the message is for ${message.domain} (${message.uri}), not this node: sign a message for ${origins[0]}`,
      { details: { domain: message.domain, uri: message.uri, expected: origins } },
    )
  if (message.chainId !== chainId)
    throw new BaseError(
      'SIWE_CHAIN_MISMATCH',
      `the message is for chain ${message.chainId}, this node is on chain ${chainId}: sign one for ${chainId}`,
      { details: { chainId: message.chainId, expected: chainId } },
    )
  if (
    (message.expirationTime && message.expirationTime.getTime() <= nowMs) ||
    (message.notBefore && message.notBefore.getTime() > nowMs)
  )
    throw new BaseError('SIWE_OUTSIDE_VALIDITY', 'the message is expired or not yet valid: sign a new one', {
      details: {
        notBefore: message.notBefore?.toISOString(),
        expirationTime: message.expirationTime?.toISOString(),
        now: new Date(nowMs).toISOString(),
      },
    })
  return origin
}

const hashToken = (token: string) => createHash('sha256').update(token).digest()

/** The address a session token belongs to, or UNAUTHENTICATED if it is unknown or expired. */
export async function tokenAddress(db: Queryable, token: string): Promise<Address> {
  const { rows } = await db.query<{ address: Uint8Array }>(
    'select address from auth_sessions where token_hash = $1 and expires_at > now()',
    [hashToken(token.trim())],
  )
  if (!rows[0])
    throw new BaseError('UNAUTHENTICATED', 'the session token is unknown or expired; sign in again')
  return getAddress(`0x${Buffer.from(rows[0].address).toString('hex')}`)
}

/** The address signed in on this request, if any (Authorization: Bearer <token>). */
export async function sessionAddress(db: Queryable, request: FastifyRequest): Promise<Address | undefined> {
  const header = request.headers.authorization
  if (!header?.startsWith('Bearer ')) return undefined
  return tokenAddress(db, header.slice(7))
}

export function authRoutes(context: NodeContext) {
  const { db } = context
  return (app: FastifyInstance) => {
    app.get('/v1/auth/nonce', { schema: { summary: 'A single-use SIWE nonce (5 minutes)' } }, async () => {
      const nonce = generateSiweNonce()
      await db.query('delete from auth_nonces where expires_at < now()')
      await db.query('insert into auth_nonces (nonce, expires_at) values ($1, $2)', [
        nonce,
        new Date(Date.now() + NONCE_TTL_MS),
      ])
      return { nonce }
    })

    app.post(
      '/v1/auth/siwe',
      {
        schema: {
          summary: 'Sign in with an EIP-4361 message; answers a bearer token',
          body: {
            type: 'object',
            required: ['message', 'signature'],
            additionalProperties: false,
            properties: {
              message: { type: 'string', maxLength: 4096 },
              signature: { type: 'string', pattern: '^0x[0-9a-fA-F]+$' },
            },
          },
        },
      },
      async (request) => {
        const { message, signature } = request.body as { message: string; signature: `0x${string}` }
        const parsed = parseSiweMessage(message)
        if (!parsed.nonce || !parsed.address)
          throw new BaseError('INVALID_ARGUMENT', 'not an EIP-4361 message (nonce and address are required)')
        // Single use: the nonce is consumed whether or not the signature verifies.
        const consumed = await db.query(
          'delete from auth_nonces where nonce = $1 and expires_at > now() returning nonce',
          [parsed.nonce],
        )
        if (consumed.rows.length === 0)
          throw new BaseError('UNAUTHENTICATED', 'the nonce is unknown, used or expired')
        const nowMs = Date.now()
        const origin = checkSiweMessage(parsed, {
          origins: context.signInOrigins(),
          chainId: context.clients.chain.id,
          nowMs,
        })
        const valid = await verifySiweMessage(context.clients.publicClient, {
          message,
          signature,
          domain: origin.host,
          nonce: parsed.nonce,
          time: new Date(nowMs),
        }).catch((error: unknown) => {
          // A malformed signature throws; a contract wallet's check may fail on the RPC.
          log.warn({ err: error, address: parsed.address }, 'sign-in signature check failed')
          return false
        })
        if (!valid)
          throw new BaseError('UNAUTHENTICATED', `the signature is not ${parsed.address}'s over this message`)
        const token = randomBytes(32).toString('base64url')
        const expiresAt = new Date(Date.now() + SESSION_TTL_MS)
        await db.query('insert into auth_sessions (token_hash, address, expires_at) values ($1, $2, $3)', [
          hashToken(token),
          Buffer.from(parsed.address.slice(2), 'hex'),
          expiresAt,
        ])
        return { token, address: getAddress(parsed.address), expiresAt: expiresAt.toISOString() }
      },
    )
  }
}
