/**
 * Database faults (docs/reliability.md, part 3): a node on PostgreSQL reached through a TCP proxy
 * this test cuts while cars upload — the server itself, which other tests share, is never touched.
 * While the database is away every request answers 503 DB_UNREACHABLE (never a 500, never a
 * hang), health says degraded; once it is back the cars' retries go through and nothing a car
 * was told is stored is missing: every acknowledged id is in the log, each car's seqs run 0..n-1.
 *
 * Short mode: 2 outages of 3 s under 3 cars. Soak (`CARCHAIN_SOAK=1`): 5 outages of 30 s under 10.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, test } from 'node:test'
import { openDatabase } from '../../src/db/database.ts'
import { errorCodes } from '../../src/errors.ts'
import { createBatch } from '../../src/ledger/batch.ts'
import { type FleetCar, type SeededFleet, seedFleet } from '../fleet-fixture.ts'
import { requirePart } from '../skip.ts'
import {
  call,
  listening,
  POSTGRES_URL,
  sleep,
  soak,
  startTestNode,
  type TestNode,
  waitFor,
} from './harness.ts'
import { assertEventsKept, type SeenEvent } from './log-checks.ts'
import { startTcpProxy, type TcpProxy } from './tcp-proxy.ts'

const OUTAGES = soak ? 5 : 2
const OUTAGE_MS = soak ? 30_000 : 3000
const CARS = soak ? 10 : 3
const target = new URL(POSTGRES_URL)
const serverUp = await listening(target.hostname, Number(target.port || 5432))

let proxy: TcpProxy
let node: TestNode | undefined
let fleet: SeededFleet
const schema = `reliability_${randomBytes(6).toString('hex')}`

before(async () => {
  if (!serverUp) return
  const admin = await openDatabase({ engine: 'postgres', url: POSTGRES_URL, maxConnections: 1 })
  await admin.exec(`create schema ${schema}`)
  await admin.close()
  proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) })
  const url = new URL(POSTGRES_URL)
  url.port = String(proxy.port)
  url.searchParams.set('options', `-c search_path=${schema}`)
  node = await startTestNode({ database: url.toString() })
  fleet = await seedFleet(node, CARS)
})

after(async () => {
  await fleet?.cleanup()
  await node?.cleanup()
  await proxy?.close()
  if (serverUp) {
    const admin = await openDatabase({ engine: 'postgres', url: POSTGRES_URL, maxConnections: 1 })
    await admin.exec(`drop schema if exists ${schema} cascade`)
    await admin.close()
  }
})

test('PostgreSQL cut off under load: 503 DB_UNREACHABLE meanwhile, nothing acknowledged lost', async (t) => {
  if (!requirePart(t, serverUp, `no PostgreSQL at ${target.host}`)) return
  const acknowledged = new Map<`0x${string}`, SeenEvent>()
  const refusals = new Map<string, number>()
  const odd: string[] = []
  const figures = { batches: 0, acked: 0, refusedWhileDown: 0, retried: 0 }
  let stop = false

  /** A car as VehicleLedger behaves: a batch is re-sent until the node acknowledges it. */
  const drive = async (car: FleetCar) => {
    for (let round = 0; !stop && round < 100_000; round++) {
      const events = Array.from({ length: 1 + (round % 4) }, (_, i) =>
        car.chain.append({ kind: 'telemetry', time: Date.now() + i, data: { round, i, speedKmh: 40 + i } }),
      )
      const batch = await createBatch({ events, signer: { sign: car.sign } })
      figures.batches++
      for (let attempt = 0; attempt < 1000; attempt++) {
        const answer = await call(`${node!.url}/v1/vehicles/${car.vehicle}/events`, {
          json: batch,
          timeoutMs: 60_000,
        }).catch((error: Error) => ({ status: 0, body: { code: `network: ${error.message}` } }))
        if (answer.status === 200) {
          for (const [i, id] of ((answer.body as { ids: string[] }).ids as `0x${string}`[]).entries())
            acknowledged.set(id, { id, vehicle: car.vehicle.toLowerCase(), seq: events[i]!.envelope.seq })
          figures.acked++
          break
        }
        const code = String(answer.body.code)
        if (code !== 'DB_UNREACHABLE') odd.push(JSON.stringify(answer.body).slice(0, 300))
        refusals.set(`${answer.status} ${code}`, (refusals.get(`${answer.status} ${code}`) ?? 0) + 1)
        figures.retried++
        await sleep(200)
      }
      await sleep(50)
    }
  }
  const cars = fleet.cars.map((car) => drive(car))

  for (let outage = 0; outage < OUTAGES; outage++) {
    await sleep(1500)
    proxy.cut()
    const cutAt = Date.now()
    try {
      // Reads and writes alike: a clear, retryable 503 while the database is away.
      while (Date.now() - cutAt < OUTAGE_MS) {
        const read = await call(`${node!.url}/v1/log/checkpoint`, { timeoutMs: 30_000 })
        if (read.status !== 200) {
          assert.equal(read.status, 503, JSON.stringify(read.body))
          assert.equal(read.body.code, 'DB_UNREACHABLE')
          figures.refusedWhileDown++
        }
        const health = (await call(`${node!.url}/v1/health`, { timeoutMs: 30_000 })).body
        if (health.parts.database !== 'ok') assert.equal(health.status, 'degraded')
        await sleep(250)
      }
    } finally {
      proxy.restore()
    }
  }
  await sleep(2000)
  stop = true
  await Promise.all(cars)

  // Every answer but success was the database's code, with its status.
  for (const key of refusals.keys()) {
    const [status, code] = key.split(' ')
    assert.equal(code, 'DB_UNREACHABLE', `a refusal other than DB_UNREACHABLE: ${key} (${odd.join('; ')})`)
    assert.equal(Number(status), errorCodes.DB_UNREACHABLE.httpStatus)
  }
  assert.ok(figures.refusedWhileDown > 0, 'the outage was never seen')
  const vehicles = fleet.cars.map((c) => c.vehicle)
  const kept = await assertEventsKept(node!.url, vehicles, acknowledged)
  for (const car of fleet.cars)
    assert.equal(
      kept.get(car.vehicle.toLowerCase())!.length,
      car.chain.head().nextSeq,
      `${car.vehicle}: every event stored`,
    )
  const health = await waitFor('health ok', async () => {
    const h = (await call(`${node!.url}/v1/health`)).body
    return h.status === 'ok' ? h : undefined
  })
  assert.equal(health.parts.database, 'ok')
  t.diagnostic(
    `database faults: ${OUTAGES} outages of ${OUTAGE_MS} ms under ${CARS} cars; ${figures.batches} batches, ${acknowledged.size} events acknowledged and all kept; ${figures.refusedWhileDown} reads and ${figures.retried} uploads answered ${[...refusals.keys()].join(', ') || 'nothing else'} meanwhile`,
  )
})
