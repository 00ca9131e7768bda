/**
 * Access control (docs/reliability.md, part 5): an owner reads and erases only its own cars'
 * payloads; a SIWE nonce works once; a vehicle uploads only for itself; public endpoints and the
 * sign-in are rate-limited per client while vehicles' ingest keeps its own budget.
 */
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { developmentAccount } from '../../src/chain/clients.ts'
import { createBatch } from '../../src/ledger/batch.ts'
import { createEventChain } from '../../src/ledger/envelope.ts'
import { type SeededFleet, seedFleet } from '../fleet-fixture.ts'
import { call, signIn, startTestNode, type TestNode } from './harness.ts'

const LIMITS = { api: 150, auth: 12, ingest: 30 }
let node: TestNode
let fleet: SeededFleet
const owners = [developmentAccount(1), developmentAccount(2)]
const tokens: string[] = []

before(async () => {
  node = await startTestNode({
    env: {
      CARCHAIN_RATE_LIMIT_API: String(LIMITS.api),
      CARCHAIN_RATE_LIMIT_AUTH: String(LIMITS.auth),
      CARCHAIN_RATE_LIMIT_INGEST: String(LIMITS.ingest),
    },
  })
  // Car 0 belongs to development account 1, car 1 to account 2 (test/fleet-fixture.ts).
  fleet = await seedFleet(node, 2)
  for (const owner of owners) {
    const { token, answer } = await signIn(node.url, node.chain.chainId, owner)
    assert.equal(answer.status, 200, JSON.stringify(answer.body))
    tokens.push(token!)
  }
})

after(async () => {
  await fleet?.cleanup()
  await node?.cleanup()
})

const events = (vehicle: string, token?: string) =>
  call(`${node.url}/v1/vehicles/${vehicle}/events?limit=20`, { token })

test('an owner reads its own payloads and never another owner’s', async () => {
  const [mine, theirs] = fleet.cars
  const own = await events(mine!.vehicle, tokens[0])
  assert.equal(own.body.payloads, 'included')
  assert.ok(
    own.body.events.length > 0 && own.body.events.every((e: { payload: unknown }) => e.payload !== null),
  )
  const other = await events(theirs!.vehicle, tokens[0])
  assert.equal(other.status, 200)
  assert.equal(other.body.payloads, 'forbidden')
  assert.ok(other.body.events.every((e: { payload: unknown }) => e.payload === null))
  // A disclosure bundle carries the payload: the same rule.
  const id = other.body.events[0].id
  await node.anchoring.anchorNow()
  const disclosure = await call(`${node.url}/v1/events/${id}/disclosure`, { token: tokens[0] })
  assert.equal(disclosure.status, 403)
  assert.equal(disclosure.body.code, 'FORBIDDEN')
  const anonymous = await call(`${node.url}/v1/events/${id}/disclosure`)
  assert.ok(
    (anonymous.status === 401 && anonymous.body.code === 'UNAUTHENTICATED') ||
      (anonymous.status === 403 && anonymous.body.code === 'FORBIDDEN'),
    JSON.stringify(anonymous.body),
  )
  const forged = await events(theirs!.vehicle, 'a-token-nobody-issued')
  assert.equal(forged.status, 401)
  assert.equal(forged.body.code, 'UNAUTHENTICATED')
})

test('an owner cannot erase another owner’s payloads; its own erasure works', async () => {
  const [mine, theirs] = fleet.cars
  const theirEvents = (await events(theirs!.vehicle, tokens[1])).body.events
  const one = await call(`${node.url}/v1/events/${theirEvents[0].id}/payload`, {
    method: 'DELETE',
    token: tokens[0],
  })
  assert.equal(one.status, 403)
  assert.equal(one.body.code, 'FORBIDDEN')
  const all = await call(`${node.url}/v1/vehicles/${theirs!.vehicle}/payloads`, {
    method: 'DELETE',
    token: tokens[0],
  })
  assert.equal(all.status, 403)
  assert.equal(all.body.code, 'FORBIDDEN')
  const anonymous = await call(`${node.url}/v1/vehicles/${theirs!.vehicle}/payloads`, { method: 'DELETE' })
  assert.equal(anonymous.status, 401)
  // Nothing of theirs was erased.
  const after = (await events(theirs!.vehicle, tokens[1])).body.events
  assert.deepEqual(
    after.map((e: { payload: unknown }) => e.payload),
    theirEvents.map((e: { payload: unknown }) => e.payload),
  )
  assert.ok(after.every((e: { erased: boolean; payload: unknown }) => !e.erased && e.payload !== null))
  // The owner's own erasure goes through, so the refusals above are about ownership.
  const ownEvents = (await events(mine!.vehicle, tokens[0])).body.events
  const erased = await call(`${node.url}/v1/events/${ownEvents[0].id}/payload`, {
    method: 'DELETE',
    token: tokens[0],
  })
  assert.equal(erased.status, 200, JSON.stringify(erased.body))
  assert.equal(erased.body.erased, 1)
})

test('a SIWE message is good for one sign-in: a replayed nonce is refused', async () => {
  const first = await signIn(node.url, node.chain.chainId, owners[0]!)
  assert.equal(first.answer.status, 200)
  const replay = await call(`${node.url}/v1/auth/siwe`, {
    json: { message: first.message, signature: first.signature },
  })
  assert.equal(replay.status, 401)
  assert.equal(replay.body.code, 'UNAUTHENTICATED')
  // The same nonce signed by someone else: still used.
  const stolen = first.message.replace(owners[0]!.address, owners[1]!.address)
  const theirs = await call(`${node.url}/v1/auth/siwe`, {
    json: { message: stolen, signature: await owners[1]!.signMessage({ message: stolen }) },
  })
  assert.equal(theirs.status, 401)
  assert.equal(theirs.body.code, 'UNAUTHENTICATED')
  // A nonce the node never issued.
  const invented = first.message.replace(/Nonce: \w+/, 'Nonce: abcdefgh12345678')
  const made = await call(`${node.url}/v1/auth/siwe`, {
    json: { message: invented, signature: await owners[0]!.signMessage({ message: invented }) },
  })
  assert.equal(made.status, 401)
})

test('a vehicle cannot upload for another, on any path or in any field', async () => {
  const [mine, theirs] = fleet.cars
  // Events in car 0's name, signed by car 0, posted to car 1's path.
  const fresh = createEventChain({ vehicle: mine!.vehicle, head: mine!.chain.head() })
  const own = await createBatch({
    events: [fresh.append({ kind: 'telemetry', time: Date.now(), data: { x: 1 } })],
    signer: { sign: mine!.sign },
  })
  const wrongPath = await call(`${node.url}/v1/vehicles/${theirs!.vehicle}/events`, { json: own })
  assert.equal(wrongPath.status, 403)
  assert.equal(wrongPath.body.code, 'EVENT_VEHICLE_MISMATCH')
  // Events in car 1's name continuing car 1's chain, but signed by car 0.
  const impersonated = createEventChain({ vehicle: theirs!.vehicle, head: theirs!.chain.head() })
  const forged = await createBatch({
    events: [impersonated.append({ kind: 'door.unlocked', time: Date.now(), data: {} })],
    signer: { sign: mine!.sign },
  })
  const refused = await call(`${node.url}/v1/vehicles/${theirs!.vehicle}/events`, { json: forged })
  assert.equal(refused.status, 400)
  assert.equal(refused.body.code, 'EVENT_BAD_SIGNATURE')
  const count = (await call(`${node.url}/v1/vehicles/${theirs!.vehicle}`)).body.events
  assert.equal(count, theirs!.chain.head().nextSeq, 'nothing was added to car 1')
})

test('public reads and sign-in are rate-limited per client; ingest keeps its own budget', async () => {
  // Reads: the budget runs out within LIMITS.api requests (some were spent above).
  let limited: Awaited<ReturnType<typeof call>> | undefined
  let served = 0
  for (let i = 0; i <= LIMITS.api && !limited; i++) {
    const answer = await call(`${node.url}/v1/log/checkpoint`)
    if (answer.status === 429) limited = answer
    else {
      assert.equal(answer.status, 200)
      served += 1
    }
  }
  assert.ok(limited, `no 429 after ${served} reads`)
  assert.equal(limited.body.code, 'RATE_LIMITED')
  assert.equal(typeof limited.body.message, 'string')
  assert.equal(limited.body.details.limit, LIMITS.api)
  assert.ok(Number(limited.headers.get('retry-after')) > 0)
  // Every other public route shares the budget.
  assert.equal((await call(`${node.url}/v1/vehicles`)).status, 429)
  // Sign-in has its own, smaller budget.
  let authLimited = false
  for (let i = 0; i <= LIMITS.auth && !authLimited; i++) {
    const answer = await call(`${node.url}/v1/auth/nonce`)
    authLimited = answer.status === 429
    if (authLimited) assert.equal(answer.body.code, 'RATE_LIMITED')
  }
  assert.ok(authLimited, 'the nonce endpoint was never limited')
  // A car's uploads go on while readers from the same address are limited.
  const car = fleet.cars[1]!
  for (let i = 0; i < 3; i++) {
    const batch = await createBatch({
      events: [car.chain.append({ kind: 'telemetry', time: Date.now() + i, data: { i } })],
      signer: { sign: car.sign },
    })
    const answer = await call(`${node.url}/v1/vehicles/${car.vehicle}/events`, { json: batch })
    assert.equal(answer.status, 200, JSON.stringify(answer.body))
  }
  // …within a budget of its own per vehicle, spent only by batches it signed (re-sends count).
  const batch = await createBatch({
    events: [car.chain.append({ kind: 'telemetry', time: Date.now() + 3, data: { i: 3 } })],
    signer: { sign: car.sign },
  })
  let ingestLimited = false
  for (let i = 0; i <= LIMITS.ingest && !ingestLimited; i++) {
    const answer = await call(`${node.url}/v1/vehicles/${car.vehicle}/events`, { json: batch })
    ingestLimited = answer.status === 429
    if (!ingestLimited) assert.equal(answer.status, 200, JSON.stringify(answer.body))
    else assert.equal(answer.body.details.class, 'vehicle')
  }
  assert.ok(ingestLimited, 'ingest was never limited')
  const other = fleet.cars[0]!
  const otherBatch = await createBatch({
    events: [
      createEventChain({ vehicle: other.vehicle, head: other.chain.head() }).append({
        kind: 'telemetry',
        time: Date.now(),
        data: {},
      }),
    ],
    signer: { sign: other.sign },
  })
  const stillOpen = await call(`${node.url}/v1/vehicles/${other.vehicle}/events`, { json: otherBatch })
  assert.equal(stillOpen.status, 200, 'another vehicle’s budget is separate')
})
