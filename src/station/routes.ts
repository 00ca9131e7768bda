/**
 * The node's view of charging sessions: a fastify route plugin the node mounts.
 *
 *   GET /v1/charging/sessions?state=active|ended&limit=N
 *   → {"sessions":[{sessionId, evseId, charger, vehicle, payee, channelId, token, pricePerKWh,
 *       sessionFee, state, code, startedAt, endedAt, energyWh, amount, cumulativeAmount,
 *       vouchers, claimed}]}
 *
 * Newest first; amounts are decimal strings of token base units, times ISO 8601, `claimed`
 * whether the session's vouchers are settled on chain.
 */
import type { FastifyInstance } from 'fastify'
import type { Hex } from 'viem'
import type { StationSession } from './station.ts'
import type { VoucherBook } from './vouchers.ts'

export type ChargingRoutesDeps = {
  /** Sessions, newest first (e.g. one or many stations' `sessions()`). */
  sessions(): StationSession[] | Promise<StationSession[]>
  /** The voucher book, to tell whether a session is settled. */
  book?: VoucherBook
}

export type ChargingSessionJson = {
  sessionId: string | null
  evseId: string
  charger: string
  vehicle: string | null
  payee: string
  channelId: string | null
  token: string
  pricePerKWh: string
  sessionFee: string
  state: 'active' | 'ended'
  code: string | null
  startedAt: string
  endedAt: string | null
  energyWh: number
  amount: string
  cumulativeAmount: string
  vouchers: number
  claimed: boolean
}

/** `claimedAmount`: what the operator claimed on the session's channel so far (the book's `claimed`). */
export function sessionToJson(session: StationSession, claimedAmount: bigint): ChargingSessionJson {
  return {
    sessionId: session.sessionId,
    evseId: session.evseId,
    charger: session.charger,
    vehicle: session.vehicle,
    payee: session.payee,
    channelId: session.channelId,
    token: session.token,
    pricePerKWh: session.pricePerKWh.toString(),
    sessionFee: session.sessionFee.toString(),
    state: session.state,
    code: session.code,
    startedAt: new Date(session.startedAtMs).toISOString(),
    endedAt: session.endedAtMs === null ? null : new Date(session.endedAtMs).toISOString(),
    energyWh: Number(session.energyWh),
    amount: session.amount.toString(),
    cumulativeAmount: session.cumulativeAmount.toString(),
    vouchers: session.vouchers,
    claimed: session.amount === 0n || claimedAmount >= session.cumulativeAmount,
  }
}

const nullableString = { type: ['string', 'null'] } as const
const sessionSchema = {
  type: 'object',
  properties: {
    sessionId: nullableString,
    evseId: { type: 'string' },
    charger: { type: 'string' },
    vehicle: nullableString,
    payee: { type: 'string' },
    channelId: nullableString,
    token: { type: 'string' },
    pricePerKWh: { type: 'string' },
    sessionFee: { type: 'string' },
    state: { type: 'string', enum: ['active', 'ended'] },
    code: nullableString,
    startedAt: { type: 'string' },
    endedAt: nullableString,
    energyWh: { type: 'integer' },
    amount: { type: 'string' },
    cumulativeAmount: { type: 'string' },
    vouchers: { type: 'integer' },
    claimed: { type: 'boolean' },
  },
} as const

/** Registers `GET /v1/charging/sessions`. */
export function chargingRoutes(app: FastifyInstance, deps: ChargingRoutesDeps): void {
  app.get(
    '/v1/charging/sessions',
    {
      schema: {
        summary: 'Charging sessions seen by this node’s stations, newest first',
        querystring: {
          type: 'object',
          properties: {
            state: { type: 'string', enum: ['active', 'ended'] },
            limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
          },
          additionalProperties: false,
        },
        response: {
          200: {
            type: 'object',
            required: ['sessions'],
            properties: { sessions: { type: 'array', items: sessionSchema } },
          },
        },
      },
    },
    async (request) => {
      const query = request.query as { state?: 'active' | 'ended'; limit?: number }
      const all = await deps.sessions()
      const book = deps.book
      const claimedOn = async (channelId: Hex | null) =>
        channelId && book ? ((await book.newest(channelId))?.claimed ?? 0n) : 0n
      const sessions = await Promise.all(
        all
          .filter((s) => !query.state || s.state === query.state)
          .slice(0, query.limit ?? 100)
          .map(async (s) => sessionToJson(s, await claimedOn(s.channelId))),
      )
      return { sessions }
    },
  )
}
