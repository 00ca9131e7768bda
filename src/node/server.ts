/**
 * The node's HTTP server: thin routes that validate with a schema, call the core, and serialise
 * the result. Errors leave as `{code, message, details}` with the status from the error registry.
 * The OpenAPI document is generated from the same route schemas at `/openapi.json`.
 */
import swagger from '@fastify/swagger'
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify'
import { BaseError, errorCodes, toBaseError } from '../errors.ts'
import { logger } from '../log.ts'
import { routeUpgrades, type UpgradeRouter } from '../upgrade-router.ts'
import { defaultRateLimit, type RateLimitConfig, registerRateLimit } from './rate-limit.ts'

const log = logger('node.http')

/** What the node tells about its chain (docs/spec.md "HTTP API": `GET /v1/chain`). */
export type ChainInfo = {
  chainId: number
  rpcUrl: string
  contracts: Record<string, string>
  /** The log's checkpoint origin and note verifier key (docs/transparency.md). */
  log?: {
    origin: string
    verifierKey: string
    /** With several log shards: each shard's origin and verifier key (shard 0's are the above). */
    shards?: { shard: number; origin: string; verifierKey: string }[]
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * The node port's one WebSocket upgrade router (src/upgrade-router.ts): the CSMS and the demo
     * fleet's link relay add their paths; an upgrade to any other path is answered 404 at once.
     */
    readonly upgrades: UpgradeRouter
  }
}

export type NodeRoutes = (app: FastifyInstance) => void | Promise<void>

export type CreateServerParameters = {
  version: string
  chain: () => ChainInfo
  /** Liveness details: each part's state. */
  health: () => Promise<Record<string, 'ok' | string>>
  /** More routes from the domains (ledger log API, vehicles, keys…). */
  routes?: readonly NodeRoutes[]
  /** Per-client request budgets (src/node/rate-limit.ts); `false` turns them off. */
  rateLimit?: RateLimitConfig | false
}

export const errorSchema = {
  type: 'object',
  required: ['code', 'message', 'details'],
  properties: {
    code: { type: 'string' },
    message: { type: 'string' },
    details: { type: 'object', additionalProperties: true },
  },
} as const

/** Builds the server; the caller listens. */
export async function createServer(parameters: CreateServerParameters): Promise<FastifyInstance> {
  // Fastify's own request logging stays off; what fails inside a request is logged below through
  // the one logger (src/log.ts), and every other error answer is the caller's mistake.
  const app = Fastify({ logger: false, bodyLimit: 8 * 1024 * 1024 })
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Carchain node API',
        version: parameters.version,
        description:
          'Vehicles, tamper-evident ledger (RFC 9162 log), digital keys and charging. Errors are {code, message, details}.',
      },
    },
  })

  app.decorate('upgrades', routeUpgrades(app.server))

  if (parameters.rateLimit !== false) await registerRateLimit(app, parameters.rateLimit ?? defaultRateLimit)

  app.setErrorHandler((thrown: FastifyError | BaseError, request, reply) => {
    let error: BaseError
    if (thrown instanceof BaseError) error = thrown
    else if ((thrown as FastifyError).validation)
      error = new BaseError('INVALID_ARGUMENT', thrown.message, {
        details: { validation: (thrown as FastifyError).validation },
      })
    else if ((thrown as FastifyError).statusCode === 413)
      error = new BaseError('INVALID_ARGUMENT', 'request body too large', {
        details: { limitBytes: 8 * 1024 * 1024 },
      })
    else if ((thrown as FastifyError).statusCode && (thrown as FastifyError).statusCode! < 500)
      error = new BaseError('INVALID_ARGUMENT', thrown.message)
    else error = toBaseError(thrown)
    const status = errorCodes[error.code].httpStatus
    if (status >= 500)
      log.error(
        { err: thrown, code: error.code, method: request.method, url: request.url.split('?')[0] },
        'a request failed inside the node',
      )
    // A budget counted outside the rate-limit plugin (a vehicle's own) says when to retry too.
    const { retryAfterMs } = error.details
    if (error.code === 'RATE_LIMITED' && typeof retryAfterMs === 'number' && !reply.hasHeader('retry-after'))
      reply.header('retry-after', Math.ceil(retryAfterMs / 1000))
    reply.status(status).send(error.toJSON())
  })
  app.setNotFoundHandler((request, reply) => {
    const error = new BaseError('NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`)
    reply.status(404).send(error.toJSON())
  })

  app.get(
    '/v1/health',
    {
      schema: {
        summary: 'Liveness and the state of each part',
        response: {
          200: {
            type: 'object',
            required: ['status', 'version', 'parts'],
            properties: {
              status: { type: 'string', enum: ['ok', 'degraded'] },
              version: { type: 'string' },
              parts: { type: 'object', additionalProperties: { type: 'string' } },
            },
          },
        },
      },
    },
    async () => {
      const parts = await parameters.health()
      const status = Object.values(parts).every((state) => state === 'ok') ? 'ok' : 'degraded'
      return { status, version: parameters.version, parts }
    },
  )

  app.get(
    '/v1/chain',
    {
      schema: {
        summary: 'The chain and the Carchain contract addresses',
        response: {
          200: {
            type: 'object',
            required: ['chainId', 'rpcUrl', 'contracts'],
            properties: {
              chainId: { type: 'integer' },
              rpcUrl: { type: 'string' },
              contracts: {
                type: 'object',
                required: ['VehicleRegistry', 'KeyRegistry', 'LedgerAnchor', 'ChargingChannels', 'Token'],
                additionalProperties: { type: 'string' },
              },
              log: {
                type: 'object',
                required: ['origin', 'verifierKey'],
                properties: {
                  origin: { type: 'string' },
                  verifierKey: { type: 'string' },
                  shards: {
                    type: 'array',
                    items: {
                      type: 'object',
                      properties: {
                        shard: { type: 'integer' },
                        origin: { type: 'string' },
                        verifierKey: { type: 'string' },
                      },
                    },
                  },
                },
              },
            },
          },
        },
      },
    },
    async () => parameters.chain(),
  )

  for (const routes of parameters.routes ?? []) await routes(app)

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
  await app.ready()
  return app
}
