/**
 * Attacks on a vehicle's payloads at the node (issue 19 #5 #7 #8, docs/reliability.md "Security
 * review (issue 19)"): replayed and rolled-back DataGrants, reads and erasure across a sale,
 * and the odometer in the public fleet view.
 */
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import type { LocalAccount } from 'viem'
import { developmentAccount } from '../../src/chain/clients.ts'
import { createBatch } from '../../src/ledger/batch.ts'
import { type DataGrant, dataGrantTypedData } from '../../src/ledger/data-grant.ts'
import type { VehicleAddress } from '../../src/ledger/envelope.ts'
import { getVehicleHead } from '../../src/ledger/store.ts'
import { type SeededFleet, seedFleet, sellVehicle } from '../fleet-fixture.ts'
import { type Answer, call, signIn, startTestNode, type TestNode } from './harness.ts'

let node: TestNode
let fleet: SeededFleet
/** Car 0 belongs to development account 1, car 1 to account 2 (test/fleet-fixture.ts). */
const owners = [developmentAccount(1), developmentAccount(2)]
const tokens = new Map<string, string>()

before(async () => {
  node = await startTestNode()
  fleet = await seedFleet(node, 2)
})

after(async () => {
  await fleet?.cleanup()
  await node?.cleanup()
})

/** A bearer token for `account` (signed in once per test file). */
async function tokenOf(account: LocalAccount): Promise<string> {
  const known = tokens.get(account.address)
  if (known) return known
  const { token, answer } = await signIn(node.url, node.chain.chainId, account)
  assert.equal(answer.status, 200, JSON.stringify(answer.body))
  tokens.set(account.address, token!)
  return token!
}

const nowSec = () => Math.floor(Date.now() / 1000)

/** A DataGrant signed by `signer`, as the JSON body of `POST /v1/vehicles/{vehicle}/readers`. */
async function signedGrant(signer: LocalAccount, grant: DataGrant) {
  const domain = {
    chainId: node.chain.chainId,
    vehicleRegistry: node.chain.contracts.VehicleRegistry as `0x${string}`,
  }
  const signature = await signer.signTypedData(dataGrantTypedData(domain, grant))
  return { reader: grant.reader, notAfter: grant.notAfter, issuedAtMs: grant.issuedAtMs, signature }
}

const admit = (vehicle: string, body: unknown) =>
  call(`${node.url}/v1/vehicles/${vehicle}/readers`, { json: body })

const payloadsFor = async (vehicle: string, account: LocalAccount) =>
  (await call(`${node.url}/v1/vehicles/${vehicle}/events?limit=20`, { token: await tokenOf(account) })).body
    .payloads

/** The grant was refused as stale and the reader still reads nothing. */
async function assertStaleAndLockedOut(vehicle: string, reader: LocalAccount, answer: Answer) {
  assert.equal(answer.status, 409, JSON.stringify(answer.body))
  assert.equal(answer.body.code, 'DATA_GRANT_STALE')
  assert.equal(await payloadsFor(vehicle, reader), 'forbidden')
}

test('a removed reader cannot come back by replaying its old DataGrant (issue 19 #5)', async () => {
  const car = fleet.cars[0]!
  const reader = developmentAccount(7)
  const grant = await signedGrant(owners[0]!, {
    vehicle: car.vehicle,
    reader: reader.address,
    notAfter: nowSec() + 3600,
    issuedAtMs: Date.now(),
  })
  const admitted = await admit(car.vehicle, grant)
  assert.equal(admitted.status, 200, JSON.stringify(admitted.body))
  assert.equal(await payloadsFor(car.vehicle, reader), 'included')

  const removed = await call(`${node.url}/v1/vehicles/${car.vehicle}/readers/${reader.address}`, {
    method: 'DELETE',
    token: await tokenOf(owners[0]!),
  })
  assert.equal(removed.status, 200, JSON.stringify(removed.body))
  assert.equal(removed.body.removed, 1)
  assert.equal(await payloadsFor(car.vehicle, reader), 'forbidden')

  // The attack: the reader (or anyone holding the grant) posts it again.
  await assertStaleAndLockedOut(car.vehicle, reader, await admit(car.vehicle, grant))

  // A grant the owner signed before the removal but never posted is just as dead.
  const unposted = await signedGrant(owners[0]!, {
    vehicle: car.vehicle,
    reader: reader.address,
    notAfter: nowSec() + 7200,
    issuedAtMs: grant.issuedAtMs + 1,
  })
  assert.equal((await admit(car.vehicle, unposted)).body.code, 'DATA_GRANT_STALE')

  // The owner admits the reader again with a grant signed after the removal.
  const fresh = await signedGrant(owners[0]!, {
    vehicle: car.vehicle,
    reader: reader.address,
    notAfter: nowSec() + 3600,
    issuedAtMs: Date.now() + 1,
  })
  const readmitted = await admit(car.vehicle, fresh)
  assert.equal(readmitted.status, 200, JSON.stringify(readmitted.body))
  assert.equal(await payloadsFor(car.vehicle, reader), 'included')
})

test('an older DataGrant cannot replace a newer one (issue 19 #5)', async () => {
  const car = fleet.cars[0]!
  const reader = developmentAccount(8)
  const issuedAtMs = Date.now()
  const long = await signedGrant(owners[0]!, {
    vehicle: car.vehicle,
    reader: reader.address,
    notAfter: nowSec() + 30 * 86_400,
    issuedAtMs,
  })
  assert.equal((await admit(car.vehicle, long)).status, 200)
  assert.equal(await payloadsFor(car.vehicle, reader), 'included')
  // The owner ends the access early with a newer, already expired grant.
  const ended = await signedGrant(owners[0]!, {
    vehicle: car.vehicle,
    reader: reader.address,
    notAfter: nowSec() - 1,
    issuedAtMs: issuedAtMs + 1,
  })
  assert.equal((await admit(car.vehicle, ended)).status, 200)
  assert.equal(await payloadsFor(car.vehicle, reader), 'forbidden')
  // The attack: a third party puts the older, longer grant back.
  await assertStaleAndLockedOut(car.vehicle, reader, await admit(car.vehicle, long))
  // A grant dated in the future would block the owner's next ones: refused until its time.
  const future = await signedGrant(owners[0]!, {
    vehicle: car.vehicle,
    reader: reader.address,
    notAfter: nowSec() + 3600,
    issuedAtMs: Date.now() + 3_600_000,
  })
  const early = await admit(car.vehicle, future)
  assert.equal(early.status, 403, JSON.stringify(early.body))
  assert.equal(early.body.code, 'GRANT_NOT_YET_VALID')
})

type Listed = { vehicle: string; odometerKm: number | null }
const listed = async (vehicle: string, token?: string): Promise<Listed> =>
  (await call(`${node.url}/v1/vehicles`, { token })).body.vehicles.find(
    (entry: Listed) => entry.vehicle === vehicle,
  )

test('the odometer is not public, and erasure erases it (issue 19 #8)', async () => {
  const car = fleet.cars[0]!
  const head = await getVehicleHead(node.db, car.vehicle.toLowerCase() as VehicleAddress)
  assert.ok(head?.odometerKm !== undefined, 'the seeded car has an odometer reading')
  // The attack: anyone reads the odometer (payload data) from the fleet view.
  assert.equal((await listed(car.vehicle)).odometerKm, null)
  assert.equal(
    (await listed(car.vehicle, await tokenOf(owners[1]!))).odometerKm,
    null,
    'not to another owner',
  )
  assert.equal(
    (await call(`${node.url}/v1/vehicles/${car.vehicle}`)).body.odometerKm,
    null,
    'nor in the one-vehicle view',
  )
  // The owner sees its own reading…
  const owner = await tokenOf(owners[0]!)
  assert.equal((await listed(car.vehicle, owner)).odometerKm, head.odometerKm)
  // …until it erases its payloads: then the node keeps no reading at all.
  const erased = await call(`${node.url}/v1/vehicles/${car.vehicle}/payloads`, {
    method: 'DELETE',
    token: owner,
  })
  assert.equal(erased.status, 200, JSON.stringify(erased.body))
  assert.equal((await listed(car.vehicle, owner)).odometerKm, null)
  const after = await getVehicleHead(node.db, car.vehicle.toLowerCase() as VehicleAddress)
  assert.equal(after?.odometerKm, undefined, 'the vehicle head forgot the erased reading')
})

test('a signed-in read of a vehicle with no title is a plain refusal, not a failure', async () => {
  const nobody = `0x${'5a'.repeat(20)}`
  const page = await call(`${node.url}/v1/vehicles/${nobody}/events`, { token: await tokenOf(owners[0]!) })
  assert.equal(page.status, 200, JSON.stringify(page.body))
  assert.deepEqual(page.body.events, [])
  const erase = await call(`${node.url}/v1/vehicles/${nobody}/payloads`, {
    method: 'DELETE',
    token: await tokenOf(owners[0]!),
  })
  assert.equal(erase.status, 403, JSON.stringify(erase.body))
})

/** Uploads `count` events for `car`, the first at `fromMs`; returns their ids. */
async function upload(car: SeededFleet['cars'][number], fromMs: number, count: number): Promise<string[]> {
  const events = Array.from({ length: count }, (_, i) =>
    car.chain.append({ kind: 'telemetry', time: fromMs + i, data: { batteryPct: 60 - i } }),
  )
  const answer = await call(`${node.url}/v1/vehicles/${car.vehicle}/events`, {
    json: await createBatch({ events, signer: { sign: car.sign } }),
  })
  assert.equal(answer.status, 200, JSON.stringify(answer.body))
  return answer.body.ids
}

type Page = { payloads: string; events: { id: string; timeMs: number; payload: unknown; erased: boolean }[] }
const pageFor = async (vehicle: string, account: LocalAccount): Promise<Page> =>
  (await call(`${node.url}/v1/vehicles/${vehicle}/events?limit=100`, { token: await tokenOf(account) }))
    .body as Page

/** `signer` admits `reader` to `vehicle` for an hour with a fresh grant. */
const grantAccess = async (signer: LocalAccount, vehicle: `0x${string}`, reader: LocalAccount) =>
  admit(
    vehicle,
    await signedGrant(signer, {
      vehicle,
      reader: reader.address,
      notAfter: nowSec() + 3600,
      issuedAtMs: Date.now(),
    }),
  )

/** The page carries payloads for exactly the events `ids`. */
function assertPayloadsOnly(page: Page, ids: readonly string[], who: string) {
  for (const event of page.events)
    assert.equal(event.payload !== null, ids.includes(event.id), `${who}, event ${event.id}`)
}

test('after a sale the buyer reads and erases only its own period, the seller only its own (issue 19 #7)', async () => {
  const car = fleet.cars[1]!
  const seller = owners[1]!
  const buyer = developmentAccount(3)
  const sellersReader = developmentAccount(9)
  const admitted = await grantAccess(seller, car.vehicle, sellersReader)
  assert.equal(admitted.status, 200, JSON.stringify(admitted.body))
  const before = await pageFor(car.vehicle, seller)
  assert.equal(before.payloads, 'included')
  const sellersIds = before.events.map((event) => event.id)

  // The sale, on chain.
  const { timeMs: saleMs } = await sellVehicle(node, { seller, buyer: buyer.address, vehicle: car.vehicle })
  const lastMs = Math.max(...before.events.map((event) => event.timeMs))
  const buyersIds = await upload(car, Math.max(saleMs, lastMs) + 1000, 3)
  await node.anchoring.anchorNow()

  // The buyer: its own events with payloads, the seller's without.
  const asBuyer = await pageFor(car.vehicle, buyer)
  assert.equal(asBuyer.payloads, 'partial')
  assertPayloadsOnly(asBuyer, buyersIds, 'buyer')
  const disclosure = await call(`${node.url}/v1/events/${sellersIds[0]}/disclosure`, {
    token: await tokenOf(buyer),
  })
  assert.equal(disclosure.status, 403, JSON.stringify(disclosure.body))
  const eraseSellers = await call(`${node.url}/v1/events/${sellersIds[0]}/payload`, {
    method: 'DELETE',
    token: await tokenOf(buyer),
  })
  assert.equal(eraseSellers.status, 403, JSON.stringify(eraseSellers.body))
  assert.equal(eraseSellers.body.code, 'FORBIDDEN')

  // The seller's reader went with the seller's title; a reader the buyer admits sees the buyer's period.
  assert.equal(await payloadsFor(car.vehicle, sellersReader), 'forbidden')
  const buyersReader = developmentAccount(10)
  const buyerAdmits = await grantAccess(buyer, car.vehicle, buyersReader)
  assert.equal(buyerAdmits.status, 200, JSON.stringify(buyerAdmits.body))
  assertPayloadsOnly(await pageFor(car.vehicle, buyersReader), buyersIds, 'buyer’s reader')

  // The seller: still reads its own period, never the buyer's.
  const asSeller = await pageFor(car.vehicle, seller)
  assert.equal(asSeller.payloads, 'partial')
  assertPayloadsOnly(asSeller, sellersIds, 'seller')
  const eraseBuyers = await call(`${node.url}/v1/events/${buyersIds[0]}/payload`, {
    method: 'DELETE',
    token: await tokenOf(seller),
  })
  assert.equal(eraseBuyers.status, 403, JSON.stringify(eraseBuyers.body))
  // …and erases all of its own period, and nothing of the buyer's.
  const erased = await call(`${node.url}/v1/vehicles/${car.vehicle}/payloads`, {
    method: 'DELETE',
    token: await tokenOf(seller),
  })
  assert.equal(erased.status, 200, JSON.stringify(erased.body))
  assert.equal(erased.body.erased, sellersIds.length)
  const afterErasure = await pageFor(car.vehicle, buyer)
  for (const event of afterErasure.events) {
    assert.equal(event.erased, sellersIds.includes(event.id), `erased: event ${event.id}`)
    assert.equal(event.payload !== null, buyersIds.includes(event.id))
  }
})
