/**
 * Per-client rate limits for the node's HTTP API (`@fastify/rate-limit`, in-process counters).
 *
 * Requests fall in three classes, each with its own budget per time window:
 * - `auth` — `/v1/auth/*` (SIWE nonces and sign-ins), per client IP: small, since each nonce is a
 *   database row and each sign-in a signature check;
 * - `ingest` — a vehicle's `POST /v1/vehicles/{vehicle}/events`, per client IP *and* vehicle: a car
 *   must never be starved by readers or by other cars behind the same address (a depot's NAT,
 *   the demo fleet in one process), so ingest has its own, larger budget;
 * - `api` — everything else (public reads, the dashboard), per client IP.
 *
 * An exceeded budget answers 429 `{code: 'RATE_LIMITED', message, details: {limit, windowMs,
 * retryAfterMs}}` with a `retry-after` header. Several node processes each count their own
 * clients; that suits the purpose (keeping one process responsive), not billing.
 */
import rateLimit from '@fastify/rate-limit'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { BaseError } from '../errors.ts'

export type RateLimitConfig = {
  /** Length of a window (default one minute). */
  readonly windowMs: number
  /** Requests per window and client IP for public reads and everything not below. */
  readonly apiMax: number
  /** Requests per window and client IP to `/v1/auth/*`. */
  readonly authMax: number
  /** Batches per window, client IP and vehicle to `POST /v1/vehicles/{vehicle}/events`. */
  readonly ingestMax: number
}

export const defaultRateLimit: RateLimitConfig = {
  windowMs: 60_000,
  apiMax: 1200,
  authMax: 60,
  ingestMax: 1200,
}

type RequestClass = 'api' | 'auth' | 'ingest'

const INGEST_ROUTE = '/v1/vehicles/:vehicle/events'

function classify(request: FastifyRequest): RequestClass {
  const route = request.routeOptions.url ?? ''
  if (route.startsWith('/v1/auth/')) return 'auth'
  if (request.method === 'POST' && route === INGEST_ROUTE) return 'ingest'
  return 'api'
}

/** Registers the limits on `app`; call before any route is added. */
export async function registerRateLimit(app: FastifyInstance, config: RateLimitConfig): Promise<void> {
  const maxOf = { api: config.apiMax, auth: config.authMax, ingest: config.ingestMax }
  await app.register(rateLimit, {
    global: true,
    timeWindow: config.windowMs,
    max: (request) => maxOf[classify(request)],
    keyGenerator: (request) => {
      const kind = classify(request)
      if (kind !== 'ingest') return `${kind}:${request.ip}`
      const vehicle = String((request.params as { vehicle?: string }).vehicle ?? '').toLowerCase()
      return `ingest:${request.ip}:${vehicle}`
    },
    errorResponseBuilder: (request, context) =>
      new BaseError('RATE_LIMITED', `too many requests; retry in ${context.after}`, {
        details: {
          class: classify(request),
          limit: context.max,
          windowMs: config.windowMs,
          retryAfterMs: context.ttl,
        },
      }),
  })
}
