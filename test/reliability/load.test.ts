/**
 * Load (docs/reliability.md, part 6): many certified cars upload at a sustained rate for a bounded
 * time to a `carchain up --no-sim` process — half over HTTP, half over MQTT (Mosquitto on
 * 127.0.0.1:1883) — with the node's default rate limits on. Each car re-sends a batch until the
 * node acknowledges it, as the in-car ledger does. Afterwards every acknowledged id is in the log,
 * each car's seqs run 0..n-1 and match what it made; the node's resident memory, sampled from
 * /proc, stays bounded.
 *
 * Short mode: 50 cars, one batch each per second, 8 s. Soak (`CARCHAIN_SOAK=1`): 300 cars, 3 min.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { developmentAccount } from '../../src/chain/clients.ts'
import { createBatch } from '../../src/ledger/batch.ts'
import { connectMqtt } from '../../src/node/mqtt.ts'
import { type BatchTransport, httpBatchTransport, mqttBatchTransport } from '../../src/vehicle/ledger.ts'
import { type FleetCar, seedFleet } from '../fleet-fixture.ts'
import { inCI } from '../skip.ts'
import { listening, MQTT_URL, seed, seededRandom, sleep, soak } from './harness.ts'
import { assertEventsKept, type SeenEvent } from './log-checks.ts'
import { startUp, type UpProcess } from './up-process.ts'

const CARS = soak ? 300 : 50
const DURATION_MS = soak ? 180_000 : 8000
const PERIOD_MS = 1000
const dataDir = mkdtempSync(join(tmpdir(), 'carchain-load-'))
after(() => rmSync(dataDir, { recursive: true, force: true }))
const brokerUp = await listening(new URL(MQTT_URL).hostname, Number(new URL(MQTT_URL).port || 1883))

/** Resident memory of a process in MiB (Linux /proc). */
function rssMiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'))
  return Number(line?.split(/\s+/)[1] ?? 0) / 1024
}

test(`${CARS} cars upload over HTTP${brokerUp ? ' and MQTT' : ''} for ${DURATION_MS / 1000} s: nothing lost, memory bounded`, async (t) => {
  // Without a broker the run is HTTP only here; CI must have every part (test/skip.ts).
  if (inCI && !brokerUp) throw new Error(`missing in CI: an MQTT broker at ${MQTT_URL}`)
  const up: UpProcess = startUp(['--no-sim', '--data', dataDir, ...(brokerUp ? ['--mqtt', MQTT_URL] : [])], {
    CARCHAIN_ANCHOR_INTERVAL_MS: '5000',
  })
  const transports: BatchTransport[] = []
  try {
    const info = await up.ready
    const pid = up.child.pid!
    const fleet = await seedFleet(info, CARS)
    t.after(() => fleet.cleanup())
    const random = seededRandom(seed + 60)
    const acknowledged = new Map<`0x${string}`, SeenEvent>()
    const figures = { batches: 0, events: 0, resends: 0, http: 0, mqtt: 0 }
    const refusals = new Map<string, number>()

    // the embedded chain's operator (development account 0) signs the node's acks
    const operator = developmentAccount(0).address
    const carTransport = async (
      car: FleetCar,
      i: number,
    ): Promise<{ transport: BatchTransport; kind: 'http' | 'mqtt' }> => {
      if (brokerUp && i % 2 === 1) {
        const client = await connectMqtt(MQTT_URL, `carchain-load-${process.pid}-${i}`)
        return { transport: await mqttBatchTransport(client, car.vehicle, operator, 60_000), kind: 'mqtt' }
      }
      return { transport: httpBatchTransport(info.url, operator, 60_000), kind: 'http' }
    }
    const drive = async (car: FleetCar, i: number) => {
      const { transport, kind } = await carTransport(car, i)
      transports.push(transport)
      const jitter = random()
      await sleep(jitter * PERIOD_MS)
      const endAt = Date.now() + DURATION_MS
      for (let round = 0; Date.now() < endAt && round < 100_000; round++) {
        const started = Date.now()
        const events = Array.from({ length: 1 + ((i + round) % 5) }, (_, k) =>
          car.chain.append({
            kind: 'telemetry',
            time: Date.now() + k,
            data: { round, k, speedKmh: (i * 7 + round) % 130 },
          }),
        )
        const batch = await createBatch({ events, signer: { sign: car.sign } })
        for (let attempt = 0; attempt < 100; attempt++) {
          try {
            const { ids } = await transport.send(batch)
            for (const [n, id] of ids.entries())
              acknowledged.set(id as `0x${string}`, {
                id: id as `0x${string}`,
                vehicle: car.vehicle.toLowerCase(),
                seq: events[n]!.envelope.seq,
              })
            break
          } catch (error) {
            const code = (error as { code?: string }).code ?? 'unknown'
            refusals.set(code, (refusals.get(code) ?? 0) + 1)
            figures.resends++
            await sleep(500)
          }
        }
        figures.batches++
        figures.events += events.length
        figures[kind] += events.length
        await sleep(Math.max(0, PERIOD_MS - (Date.now() - started)))
      }
    }

    const samples: number[] = []
    let sampling = true
    const sampler = (async () => {
      for (let i = 0; sampling && i < 100_000; i++) {
        samples.push(rssMiB(pid))
        await sleep(500)
      }
    })()
    const startedAt = Date.now()
    await Promise.all(fleet.cars.map((car, i) => drive(car, i)))
    const elapsedS = (Date.now() - startedAt) / 1000
    sampling = false
    await sampler

    const kept = await assertEventsKept(
      info.url,
      fleet.cars.map((c) => c.vehicle),
      acknowledged,
    )
    for (const car of fleet.cars)
      assert.equal(
        kept.get(car.vehicle.toLowerCase())!.length,
        car.chain.head().nextSeq,
        `${car.vehicle}: every event stored`,
      )
    // Bounded memory: the last third of the run holds no more than the first third plus a margin
    // (caches, pools and JIT settle early), and the node stays far from any real limit.
    const third = Math.max(1, Math.floor(samples.length / 3))
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
    const early = mean(samples.slice(0, third))
    const late = mean(samples.slice(-third))
    const peak = Math.max(...samples)
    assert.ok(late < early + 200, `memory grew from ${early.toFixed(0)} to ${late.toFixed(0)} MiB`)
    assert.ok(peak < 1500, `peak RSS ${peak.toFixed(0)} MiB`)
    t.diagnostic(
      `load: ${CARS} cars for ${elapsedS.toFixed(0)} s: ${figures.batches} batches, ${figures.events} events (${figures.http} HTTP, ${figures.mqtt} MQTT), ${(figures.events / elapsedS).toFixed(0)} events/s, ${acknowledged.size} acknowledged and all kept; ${figures.resends} re-sends (${[...refusals].map(([c, n]) => `${c}×${n}`).join(' ') || 'none'}); node RSS ${early.toFixed(0)} → ${late.toFixed(0)} MiB, peak ${peak.toFixed(0)} MiB`,
    )
  } finally {
    for (const transport of transports) await transport.close?.().catch(() => {})
    up.child.kill('SIGINT')
    await up.exited
  }
})
