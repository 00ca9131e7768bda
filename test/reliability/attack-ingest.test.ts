/**
 * Attacks on ingest (issue 19 #6), against a node on the embedded anvil: a vehicle whose
 * certificate is revoked on chain (VehicleRegistry) or has expired goes on uploading. The node
 * must refuse its next batch with a clear code, append nothing, and keep what it accepted before.
 */
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { connectChain, developmentAccount } from '../../src/chain/clients.ts'
import { vehicleRegistryAbi } from '../../src/chain/generated/index.ts'
import { createBatch } from '../../src/ledger/batch.ts'
import type { BuiltEvent } from '../../src/ledger/envelope.ts'
import { type FleetCar, type SeededFleet, seedFleet } from '../fleet-fixture.ts'
import { call, sleep, startTestNode, type TestNode } from './harness.ts'
import { allEvents, audit } from './log-checks.ts'

const REVOCATION_TTL_MS = 1500
// The issuer backdates notBefore by 5 min and counts the lifetime from there: valid ~20 s from now.
const SHORT_LIFETIME_MS = 5 * 60_000 + 20_000
let node: TestNode
let fleet: SeededFleet
let shortLived: SeededFleet
let shortLivedIssuedAtMs: number

before(async () => {
  node = await startTestNode({ env: { CARCHAIN_REVOCATION_TTL_MS: String(REVOCATION_TTL_MS) } })
  fleet = await seedFleet(node, 2)
  shortLivedIssuedAtMs = Date.now()
  shortLived = await seedFleet(node, 1, { certificateLifetimeMs: SHORT_LIFETIME_MS })
})

after(async () => {
  await fleet?.cleanup()
  await shortLived?.cleanup()
  await node?.cleanup()
})

const unsent = new Map<string, BuiltEvent[]>()

/** One more signed event from `car`, posted with those the node refused before; its answer. */
async function upload(car: FleetCar) {
  const event = car.chain.append({ kind: 'door.locked', time: Date.now(), data: { by: 'owner' } })
  const events = [...(unsent.get(car.vehicle) ?? []), event]
  const answer = await call(`${node.url}/v1/vehicles/${car.vehicle}/events`, {
    json: await createBatch({ events, signer: { sign: car.sign } }),
  })
  unsent.set(car.vehicle, answer.status === 200 ? [] : events)
  return answer
}

const treeSize = async () => (await call(`${node.url}/v1/log/checkpoint`)).body.treeSize as number

test('a vehicle revoked on chain: its next batch after the revocation TTL is refused, nothing appended, nothing lost', async () => {
  const [revoked, other] = fleet.cars as [FleetCar, FleetCar]
  const accepted = await upload(revoked)
  assert.equal(accepted.status, 200, JSON.stringify(accepted.body))
  const kept = await allEvents(node.url, revoked.vehicle)

  // The OEM that registered the car (development account 0 in the fixture) revokes it.
  const { walletClient, publicClient } = await connectChain({
    rpcUrl: node.chain.rpcUrl,
    account: developmentAccount(0),
  })
  const hash = await walletClient.writeContract({
    address: node.context.contracts.VehicleRegistry,
    abi: vehicleRegistryAbi,
    functionName: 'revokeVehicle',
    args: [revoked.vehicle],
  })
  await publicClient.waitForTransactionReceipt({ hash })
  // The node's last answer ("not revoked") was taken before the revocation: it lapses within the TTL.
  await sleep(REVOCATION_TTL_MS + 200)

  const sizeBefore = await treeSize()
  const refused = await upload(revoked)
  assert.equal(refused.status, 403, JSON.stringify(refused.body))
  assert.equal(refused.body.code, 'CERT_REVOKED')
  assert.match(refused.body.message, /revoked on chain/)
  assert.equal(await treeSize(), sizeBefore, 'nothing appended for the revoked vehicle')
  assert.deepEqual(await allEvents(node.url, revoked.vehicle), kept, 'what was accepted before stays')

  const again = await upload(revoked)
  assert.equal(again.body.code, 'CERT_REVOKED', 'a revocation is final')
  const unaffected = await upload(other)
  assert.equal(unaffected.status, 200, `another vehicle still uploads: ${JSON.stringify(unaffected.body)}`)

  await node.anchoring.anchorNow()
  const result = await audit(node.url)
  assert.equal(result.consistent, true, JSON.stringify(result))
})

test('a vehicle whose certificate expired: its next batch is refused, nothing appended, nothing lost', async () => {
  const car = shortLived.cars[0]!
  const accepted = await upload(car)
  assert.equal(accepted.status, 200, JSON.stringify(accepted.body))
  const kept = await allEvents(node.url, car.vehicle)

  const waitMs = shortLivedIssuedAtMs + SHORT_LIFETIME_MS - 5 * 60_000 + 1000 - Date.now()
  if (waitMs > 0) await sleep(waitMs)

  const sizeBefore = await treeSize()
  const refused = await upload(car)
  assert.equal(refused.status, 403, JSON.stringify(refused.body))
  assert.equal(refused.body.code, 'CERT_EXPIRED')
  assert.match(refused.body.message, /expired at/)
  assert.equal(await treeSize(), sizeBefore, 'nothing appended for the expired certificate')
  assert.deepEqual(await allEvents(node.url, car.vehicle), kept, 'what was accepted before stays')
})
