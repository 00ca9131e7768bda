/**
 * Fuzzing the ingest API (docs/reliability.md, part 4): mutants of a car's valid signed batch and
 * random JSON, posted over HTTP and published over MQTT. Every answer is a success or a refusal
 * whose code maps to a 4xx status — never a 5xx, never silence — and afterwards the car's real
 * batch is still accepted and its chain has no gap.
 */
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import fc from 'fast-check'
import { errorCodes } from '../../src/errors.ts'
import { type BatchJson, createBatch } from '../../src/ledger/batch.ts'
import { createEventChain } from '../../src/ledger/envelope.ts'
import { acksTopic, eventsTopic } from '../../src/ledger/topics.ts'
import { connectMqtt } from '../../src/node/mqtt.ts'
import { type FleetCar, type SeededFleet, seedFleet } from '../fleet-fixture.ts'
import { requirePart } from '../skip.ts'
import {
  call,
  listening,
  MQTT_URL,
  seed,
  seededRandom,
  soak,
  startTestNode,
  type TestNode,
  waitFor,
} from './harness.ts'
import { mutateJson, mutateText } from './mutate.ts'

/** Short-mode count, or the soak count (100,000 mutants per transport; fewer of the cheap extras). */
const runs = (short: number, soakRuns = 100_000) => (soak ? soakRuns : short)
const brokerUp = await listening(new URL(MQTT_URL).hostname, Number(new URL(MQTT_URL).port || 1883))

let node: TestNode
let fleet: SeededFleet
let car: FleetCar
/** The car's next batch (three events, not sent yet): the seed of every mutant. */
let valid: BatchJson

before(async () => {
  node = await startTestNode({
    mqtt: brokerUp ? MQTT_URL : undefined,
    env: { CARCHAIN_RATE_LIMIT_INGEST: '100000000', CARCHAIN_RATE_LIMIT_API: '100000000' },
  })
  fleet = await seedFleet(node, 1)
  car = fleet.cars[0]!
  const next = createEventChain({ vehicle: car.vehicle, head: car.chain.head() })
  const now = Date.now()
  valid = await createBatch({
    events: [
      next.append({ kind: 'door.unlocked', time: now, data: { by: 'owner' } }),
      next.append({ kind: 'odometer', time: now + 1, data: { km: 99_999.5 } }),
      next.append({ kind: 'door.locked', time: now + 2, data: { by: 'owner' } }),
    ],
    signer: { sign: car.sign },
  })
})

after(async () => {
  await fleet?.cleanup()
  await node?.cleanup()
})

class Tally {
  readonly codes = new Map<string, number>()
  accepted = 0
  cases = 0
  add(ok: boolean, code: unknown, status: number | undefined, input: string): void {
    this.cases++
    if (ok) {
      this.accepted++
      return
    }
    assert.ok(
      typeof code === 'string' && Object.hasOwn(errorCodes, code),
      `unknown code ${String(code)} for ${input.slice(0, 300)}`,
    )
    const httpStatus = errorCodes[code as keyof typeof errorCodes].httpStatus
    assert.ok(
      httpStatus >= 400 && httpStatus < 500,
      `code ${code} (${httpStatus}) for ${input.slice(0, 300)}`,
    )
    if (status !== undefined) assert.equal(status, httpStatus, `status of ${code}`)
    this.codes.set(code, (this.codes.get(code) ?? 0) + 1)
  }
  summary(): string {
    const codes = [...this.codes].sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c}×${n}`)
    return `${this.cases} cases, ${this.accepted} accepted; refused: ${codes.join(' ')}`
  }
}

/** After fuzzing: the real batch goes in, and the car's chain is whole from seq 0. */
async function carStillWhole() {
  const answer = await call(`${node.url}/v1/vehicles/${car.vehicle}/events`, { json: valid })
  assert.equal(answer.status, 200, JSON.stringify(answer.body))
  const { events } = (await call(`${node.url}/v1/vehicles/${car.vehicle}/events?limit=500`)).body
  const seqs = events.map((e: { seq: number }) => e.seq).sort((a: number, b: number) => a - b)
  assert.deepEqual(
    seqs,
    seqs.map((_: number, i: number) => i),
    'seqs are 0..n-1 without gap or duplicate',
  )
  assert.equal(seqs.length, car.chain.head().nextSeq + valid.events.length)
}

test('HTTP ingest: mutated batches and random JSON get a 4xx code, never a 5xx', async (t) => {
  const tally = new Tally()
  const random = seededRandom(seed + 10)
  const url = `${node.url}/v1/vehicles/${car.vehicle}/events`
  const post = async (body: string) => {
    const answer = await call(url, { body, timeoutMs: 30_000 })
    tally.add(answer.status === 200, answer.body.code, answer.status, body)
  }
  for (let i = 0; i < runs(800); i++) await post(mutateJson(random, valid))
  await fc.assert(
    fc.asyncProperty(fc.jsonValue({ maxDepth: 4 }), async (value) => post(JSON.stringify(value))),
    { numRuns: runs(200, 10_000), seed },
  )
  // Bytes that are not JSON at all, and a path that is not an address.
  for (let i = 0; i < runs(100, 10_000); i++)
    await post(mutateText(random, mutateText(random, JSON.stringify(valid))))
  const badPath = await call(`${node.url}/v1/vehicles/0xnot-a-car/events`, { json: valid })
  tally.add(false, badPath.body.code, badPath.status, 'bad path')
  t.diagnostic(`HTTP ingest: ${tally.summary()}`)
  await carStillWhole()
})

test('MQTT ingest: mutated batches and garbage get an ack with a 4xx code each', async (t) => {
  if (!requirePart(t, brokerUp, `no MQTT broker at ${MQTT_URL} (apt-get install mosquitto)`)) return
  const tally = new Tally()
  const random = seededRandom(seed + 11)
  const client = await connectMqtt(MQTT_URL, `carchain-fuzz-${process.pid}`)
  t.after(() => client.endAsync())
  let acks = 0
  client.on('message', (_topic, message) => {
    acks++
    const ack = JSON.parse(message.toString('utf8'))
    tally.add(ack.ok === true, ack.code, undefined, JSON.stringify(ack))
  })
  await client.subscribeAsync(acksTopic(car.vehicle), { qos: 1 })
  const total = runs(300)
  let sent = 0
  for (let i = 0; i < total; i++) {
    const payload =
      i % 10 === 9
        ? Buffer.from(Array.from({ length: 1 + (i % 97) }, () => Math.floor(random() * 256)))
        : mutateJson(random, valid)
    await client.publishAsync(eventsTopic(car.vehicle), payload, { qos: 1 })
    sent++
    // Keep a bounded number in flight so a slow machine is not a lost ack.
    if (sent - acks > 50)
      await waitFor('acks to catch up', async () => (sent - acks <= 10 ? true : undefined), 60_000, 20)
  }
  await waitFor(`${sent} acks`, async () => (acks >= sent ? true : undefined), 120_000, 100)
  t.diagnostic(`MQTT ingest: ${tally.summary()} (${sent} published, ${acks} acks)`)
  assert.ok(acks >= sent)
})
