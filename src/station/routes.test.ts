import assert from 'node:assert/strict'
import { test } from 'node:test'
import Fastify from 'fastify'
import { channelIdOf } from '../payments/channels.ts'
import { chargingRoutes } from './routes.ts'
import type { StationSession } from './station.ts'
import { memoryVoucherBook } from './vouchers.ts'

/** The sessions' channel: the vehicle's, to the payee, in the token. */
const key = {
  payer: '0x2222222222222222222222222222222222222222',
  payee: '0x3333333333333333333333333333333333333333',
  token: '0x4444444444444444444444444444444444444444',
  nonce: 7n,
} as const
const channelId = channelIdOf(key)

const aSession = (over: Partial<StationSession> = {}): StationSession => ({
  sessionId: `0x${'aa'.repeat(32)}`,
  evseId: 'DE*CCH*E00001',
  charger: '0x1111111111111111111111111111111111111111',
  vehicle: '0x2222222222222222222222222222222222222222',
  payee: '0x3333333333333333333333333333333333333333',
  channelId,
  token: '0x4444444444444444444444444444444444444444',
  pricePerKWh: 300_000_000_000_000_000n,
  sessionFee: 0n,
  state: 'ended',
  code: 'OK',
  startedAtMs: Date.UTC(2026, 10, 21, 12),
  endedAtMs: Date.UTC(2026, 10, 21, 13),
  energyWh: 5000n,
  amount: 1_500_000_000_000_000_000n,
  cumulativeAmount: 1_500_000_000_000_000_000n,
  vouchers: 6,
  ...over,
})

test('GET /v1/charging/sessions lists sessions with amounts as strings and claim state', async () => {
  const book = memoryVoucherBook()
  await book.offer(
    { channelId, cumulativeAmount: 1_500_000_000_000_000_000n, meterWh: 5000n, signature: '0x' },
    key,
  )
  // A key that is not the voucher's channel's is refused.
  await assert.rejects(
    () =>
      book.offer(
        { channelId, cumulativeAmount: 2_000_000_000_000_000_000n, meterWh: 6000n, signature: '0x' },
        { ...key, nonce: 8n },
      ),
    /not the voucher’s channel’s/,
  )
  await book.markClaimed(channelId, 1_500_000_000_000_000_000n)
  const app = Fastify()
  chargingRoutes(app, {
    sessions: () => [
      aSession({ state: 'active', code: null, endedAtMs: null, sessionId: `0x${'bb'.repeat(32)}` }),
      aSession(),
    ],
    book,
  })
  const all = await app.inject({ method: 'GET', url: '/v1/charging/sessions' })
  assert.equal(all.statusCode, 200)
  const body = all.json() as { sessions: Record<string, unknown>[] }
  assert.equal(body.sessions.length, 2)
  assert.deepEqual(body.sessions[1], {
    sessionId: `0x${'aa'.repeat(32)}`,
    evseId: 'DE*CCH*E00001',
    charger: '0x1111111111111111111111111111111111111111',
    vehicle: '0x2222222222222222222222222222222222222222',
    payee: '0x3333333333333333333333333333333333333333',
    channelId,
    token: '0x4444444444444444444444444444444444444444',
    pricePerKWh: '300000000000000000',
    sessionFee: '0',
    state: 'ended',
    code: 'OK',
    startedAt: '2026-11-21T12:00:00.000Z',
    endedAt: '2026-11-21T13:00:00.000Z',
    energyWh: 5000,
    amount: '1500000000000000000',
    cumulativeAmount: '1500000000000000000',
    vouchers: 6,
    claimed: true,
  })
  const active = await app.inject({ method: 'GET', url: '/v1/charging/sessions?state=active&limit=5' })
  assert.equal((active.json() as { sessions: unknown[] }).sessions.length, 1)
  const bad = await app.inject({ method: 'GET', url: '/v1/charging/sessions?state=nope' })
  assert.equal(bad.statusCode, 400)
  await app.close()
})
