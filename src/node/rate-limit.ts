/**
 * Per-client rate limits for the node's HTTP API (`@fastify/rate-limit`, in-process counters).
 *
 * Requests fall in three classes, each with its own budget per time window:
 * - `auth` — `/v1/auth/*` (SIWE nonces and sign-ins), per client IP: small, since each nonce is a
 *   database row and each sign-in a signature check;
 * - `ingest` — `POST /v1/vehicles/{vehicle}/events`, per client IP whatever the path's vehicle
 *   (a key the caller cannot cycle for free), counted before the body is read; a depot's NAT or a
 *   fleet in one process shares it, so it is large. Each vehicle also has a budget of its own,
 *   counted only for batches its key signed (`createRateCounter`, in src/node/ingest.ts), so
 *   nobody else can spend it and a car is never starved by readers or by other cars;
 * - `api` — everything else (public reads, the dashboard), per client IP.
 *
 * An exceeded budget answers 429 `{code: 'RATE_LIMITED', message, details: {class, limit, windowMs,
 * retryAfterMs}}` (`class` is `vehicle` for a vehicle's own budget), with a `retry-after` header
 * over HTTP. Several node processes each count their own clients; that suits the purpose (keeping
 * one process responsive), not billing.
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
  /** Signed batches per window and vehicle, whatever the transport and client. */
  readonly ingestMax: number
  /** Requests per window and client IP to `POST /v1/vehicles/{vehicle}/events`, any vehicle. */
  readonly ingestClientMax: number
}

export const defaultRateLimit: RateLimitConfig = {
  windowMs: 60_000,
  apiMax: 1200,
  authMax: 60,
  ingestMax: 1200,
  // 500 batches a second from one address: a depot of hundreds of cars behind one NAT.
  ingestClientMax: 30_000,
}

type RequestClass = 'api' | 'auth' | 'ingest'

/** The RATE_LIMITED error of every budget. */
function rateLimited(kind: RequestClass | 'vehicle', limit: number, windowMs: number, retryAfterMs: number) {
  return new BaseError('RATE_LIMITED', `too many requests; retry in ${Math.ceil(retryAfterMs / 1000)} s`, {
    details: { class: kind, limit, windowMs, retryAfterMs },
  })
}

/**
 * A fixed-window counter per key, for a budget counted outside the HTTP layer (a vehicle's
 * signed batches): `take(key)` spends one or throws RATE_LIMITED. Keys of past windows are dropped
 * when a new window starts, so memory stays bounded by the keys of one window.
 */
export function createRateCounter(parameters: { kind: 'vehicle'; max: number; windowMs: number }) {
  const { kind, max, windowMs } = parameters
  let windowStart = 0
  let counts = new Map<string, number>()
  return {
    take(key: string, nowMs = Date.now()): void {
      if (nowMs - windowStart >= windowMs) {
        windowStart = nowMs
        counts = new Map()
      }
      const count = (counts.get(key) ?? 0) + 1
      if (count > max) throw rateLimited(kind, max, windowMs, windowStart + windowMs - nowMs)
      counts.set(key, count)
    },
  }
}

const INGEST_ROUTE = '/v1/vehicles/:vehicle/events'

function classify(request: FastifyRequest): RequestClass {
  const route = request.routeOptions.url ?? ''
  if (route.startsWith('/v1/auth/')) return 'auth'
  if (request.method === 'POST' && route === INGEST_ROUTE) return 'ingest'
  return 'api'
}

/** Registers the limits on `app`; call before any route is added. */
export async function registerRateLimit(app: FastifyInstance, config: RateLimitConfig): Promise<void> {
  const maxOf = { api: config.apiMax, auth: config.authMax, ingest: config.ingestClientMax }
  await app.register(rateLimit, {
    global: true,
    timeWindow: config.windowMs,
    max: (request) => maxOf[classify(request)],
    keyGenerator: (request) => `${classify(request)}:${request.ip}`,
    errorResponseBuilder: (request, context) =>
      rateLimited(classify(request), context.max, config.windowMs, context.ttl),
  })
}
