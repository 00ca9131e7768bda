/**
 * Sign-In with Ethereum (EIP-4361) for owners and managers: a single-use nonce, a signed message
 * for this node's domain, and a bearer token for the session. Tokens are stored hashed.
 */
import { createHash, randomBytes } from 'node:crypto'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { type Address, getAddress } from 'viem'
import { generateSiweNonce, parseSiweMessage, verifySiweMessage } from 'viem/siwe'
import type { Queryable } from '../db/database.ts'
import { BaseError } from '../errors.ts'
import type { NodeContext } from './context.ts'

export const NONCE_TTL_MS = 5 * 60_000
export const SESSION_TTL_MS = 12 * 60 * 60_000

const hashToken = (token: string) => createHash('sha256').update(token).digest()

/** The address signed in on this request, if any (Authorization: Bearer <token>). */
export async function sessionAddress(db: Queryable, request: FastifyRequest): Promise<Address | undefined> {
  const header = request.headers.authorization
  if (!header?.startsWith('Bearer ')) return undefined
  const { rows } = await db.query<{ address: Uint8Array }>(
    'select address from auth_sessions where token_hash = $1 and expires_at > now()',
    [hashToken(header.slice(7).trim())],
  )
  if (!rows[0])
    throw new BaseError('UNAUTHENTICATED', 'the session token is unknown or expired; sign in again')
  return getAddress(`0x${Buffer.from(rows[0].address).toString('hex')}`)
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
        const host = request.headers.host ?? ''
        const valid = await verifySiweMessage(context.clients.publicClient, {
          message,
          signature,
          domain: host,
          nonce: parsed.nonce,
        }).catch(() => false)
        if (!valid)
          throw new BaseError(
            'UNAUTHENTICATED',
            `the signature, domain (${host}), chain or validity window does not match`,
          )
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
