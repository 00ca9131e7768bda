/**
 * Attacks on the car's side (issue 19 #10 #11 #12 #14, docs/reliability.md "Security review
 * (issue 19)"): link floods, a stale or never-synced key cache, concurrent online
 * unlocks of a one-use grant, forged upload acknowledgements. A real anvil with the contracts,
 * the car's real link and ledger, the local Mosquitto.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { type Address, createPublicClient, type Hex, http } from 'viem'
import {
  type AccessAttempt,
  AccessController,
  type AccessDecision,
  DEFAULT_MAX_STALE_MS,
} from '../../src/keys/access-control.ts'
import { startRental } from '../../src/keys/flows.ts'
import { buildRequest, LinkClient, requestAccess } from '../../src/keys/link-client.ts'
import { LinkServer } from '../../src/keys/link-server.ts'
import { OnlineKeyService } from '../../src/keys/online.ts'
import { MemoryAccessRecorder } from '../../src/keys/recorder.ts'
import { aGrant, FakeKeyState, testAccount } from '../../src/keys/testing.ts'
import { type KeyDomain, Scope, type SignedGrant } from '../../src/keys/typed-data.ts'
import { MemoryUseCounter } from '../../src/keys/use-counter.ts'
import { signLedgerAck } from '../../src/ledger/ack.ts'
import { type BatchJson, createBatch } from '../../src/ledger/batch.ts'
import { aP256Signer } from '../../src/ledger/testing.ts'
import { acksTopic, eventsTopic } from '../../src/ledger/topics.ts'
import { captureLogs } from '../../src/log.ts'
import { connectMqtt } from '../../src/node/mqtt.ts'
import { VehicleAgent } from '../../src/vehicle/agent.ts'
import {
  type BatchTransport,
  httpBatchTransport,
  mqttBatchTransport,
  VehicleLedger,
} from '../../src/vehicle/ledger.ts'
import { startTestChain, type TestChain } from '../chain.ts'
import { seedFleet } from '../fleet-fixture.ts'
import { requirePart } from '../skip.ts'
import { listening, MQTT_URL, startTestNode } from './harness.ts'

const nodeAccount = testAccount(0)
const owner = testAccount(1)
const member = testAccount(2)
const courier = testAccount(3)
const manager = testAccount(4)
const renter = testAccount(5)
const stranger = testAccount(7)
const vehicle = testAccount(10).address.toLowerCase() as Address

let chain: TestChain
let domain: KeyDomain

before(async () => {
  chain = await startTestChain()
  await chain.registerVehicle(vehicle, owner.address)
  domain = { chainId: chain.clients.chain.id, keyRegistry: chain.deployment.contracts.KeyRegistry.address }
})

after(async () => {
  await chain?.stop()
})

describe('#10 refused link attempts are bounded per peer and per time', () => {
  const linkDomain: KeyDomain = { chainId: 31337, keyRegistry: '0xe7f1725e7734ce288f8367e1bb143e90bb3f0512' }
  const car = '0x00000000000000000000000000000000000c0d10' as Address

  /** The real decision, counting what each attempt costs (a decision = signature work). */
  class CountingController extends AccessController {
    decisions = 0
    override decide(attempt: AccessAttempt): AccessDecision {
      this.decisions++
      return super.decide(attempt)
    }
  }

  test('a flood of well-formed refused requests costs the bound, then RATE_LIMITED; the holder gets in after the window', async (t) => {
    let nowMs = Date.now()
    const clock = () => nowMs
    const state = new FakeKeyState()
    state.owner = owner.address.toLowerCase() as Address
    const controller = new CountingController({
      vehicle: car,
      domain: linkDomain,
      state,
      uses: new MemoryUseCounter(),
      clock,
    })
    const recorder = new MemoryAccessRecorder(car, clock)
    const budget = { perPeer: 5, total: 50, windowMs: 60_000 }
    const server = new LinkServer({ vehicle: car, controller, recorder, clock, deniedAttempts: budget })
    const url = await server.listen()
    t.after(() => server.close())
    const holderGrant = await aGrant({
      signer: owner,
      domain: linkDomain,
      vehicle: car,
      grantee: courier.address,
    })
    const tryOnce = async (link: LinkClient, grant: SignedGrant, signer = stranger) => {
      const { challenge } = await link.challenge()
      link.send(await buildRequest({ signer, domain: linkDomain, grant, action: Scope.UNLOCK, challenge }))
      return (await link.result()).code
    }

    // Every request is well formed and carries a fresh grant: each one decided costs a recovery.
    const flood = 30
    const link = await LinkClient.connect(url)
    const codes: string[] = []
    for (let i = 0; i < flood; i++) {
      const forged = await aGrant({
        signer: stranger,
        domain: linkDomain,
        vehicle: car,
        grantee: stranger.address,
      })
      codes.push(await tryOnce(link, forged))
    }
    assert.equal(controller.decisions, budget.perPeer, 'every flooded request was decided')
    assert.deepEqual(codes.slice(0, budget.perPeer), Array(budget.perPeer).fill('GRANT_BAD_SIGNATURE'))
    assert.deepEqual(new Set(codes.slice(budget.perPeer)), new Set(['RATE_LIMITED']))
    // one event per decided refusal, plus one summary for the window
    const denied = recorder.events.filter((e) => e.envelope.kind === 'access.denied')
    assert.equal(denied.length, budget.perPeer + 1)
    assert.deepEqual(denied.map((e) => (e.payload!.data as { code: string }).code).at(-1), 'RATE_LIMITED')
    // within the window the peer is refused even with a good key: the bound is on the peer
    assert.equal(await tryOnce(link, holderGrant, courier), 'RATE_LIMITED')
    link.close()

    // A window later (a fresh session, so its challenge is fresh by the car's clock).
    nowMs += budget.windowMs
    const later = await LinkClient.connect(url)
    t.after(() => later.close())
    assert.equal(await tryOnce(later, holderGrant, courier), 'OK')
    const forged = await aGrant({
      signer: stranger,
      domain: linkDomain,
      vehicle: car,
      grantee: stranger.address,
    })
    assert.equal(await tryOnce(later, forged), 'GRANT_BAD_SIGNATURE')
    const summaries = recorder.events.filter(
      (e) => (e.payload!.data as { code?: string }).code === 'RATE_LIMITED',
    )
    assert.equal(summaries.length, 1)
    assert.equal((summaries[0]!.payload!.data as { refused: number }).refused, 1)
  })
})

describe('#11 the car decides only from chain state it has read, and not forever', () => {
  const carB = testAccount(11).address.toLowerCase() as Address
  let agent: VehicleAgent
  let url: string
  let clockOffsetMs = 0
  let dir: string

  before(async () => {
    await chain.registerVehicle(carB, owner.address)
    dir = mkdtempSync(join(tmpdir(), 'carchain-attack-stale-'))
    agent = await VehicleAgent.create({
      dir,
      vehicle: carB,
      chain: {
        client: chain.clients.publicClient,
        chainId: chain.clients.chain.id,
        vehicleRegistry: chain.deployment.contracts.VehicleRegistry.address,
        keyRegistry: chain.deployment.contracts.KeyRegistry.address,
      },
      recorder: new MemoryAccessRecorder(carB),
      clock: () => Date.now() + clockOffsetMs,
    })
    // The link alone, as between a start and the first sync (or a start with no network).
    url = await agent.link.listen()
  })
  after(async () => {
    await agent?.link.close()
    rmSync(dir, { recursive: true, force: true })
  })

  const attempt = (grant: SignedGrant | null, signer: typeof member) =>
    requestAccess({ link: url, signer, domain, grant, action: Scope.UNLOCK }).then((r) => r.code)

  test('before its first sync the car refuses every key with KEYS_NOT_SYNCED', async () => {
    const grant = await aGrant({ signer: owner, domain, vehicle: carB, grantee: member.address })
    assert.equal(await attempt(grant, member), 'KEYS_NOT_SYNCED')
    assert.equal(await attempt(null, renter), 'KEYS_NOT_SYNCED')
    await agent.cache.sync()
    assert.equal(await attempt(grant, member), 'OK')
  })

  test(`offline past the bound (${DEFAULT_MAX_STALE_MS / 3_600_000} h) a rental no longer opens, the owner's keys do`, async () => {
    const ownerClients = await chain.as(1)
    const nowSec = Math.floor(Date.now() / 1000)
    await startRental(ownerClients, {
      vehicleRegistry: chain.deployment.contracts.VehicleRegistry.address,
      vehicle: carB,
      renter: renter.address,
      untilSec: nowSec + 30 * 86_400,
    })
    await agent.cache.sync()
    const week = { nowSec, notAfter: nowSec + 7 * 86_400 }
    const byOwner = await aGrant({ signer: owner, domain, vehicle: carB, grantee: member.address, ...week })
    assert.equal(await attempt(null, renter), 'OK')
    // The car stays offline (no sync) past the bound: its rental and approval state may be old.
    clockOffsetMs = DEFAULT_MAX_STALE_MS + 3_600_000
    assert.equal(await attempt(null, renter), 'KEYS_STALE')
    assert.equal(await attempt(byOwner, member), 'OK')
  })

  test('past the bound a manager’s grant is refused KEYS_STALE, the owner’s still opens', async () => {
    const nowMs = Date.now()
    const state = new FakeKeyState()
    state.owner = owner.address.toLowerCase() as Address
    state.managers.add(manager.address.toLowerCase() as Address)
    const controller = new AccessController({
      vehicle: carB,
      domain,
      state,
      uses: new MemoryUseCounter(),
      clock: () => nowMs,
    })
    const challenge = `0x${'5a'.repeat(32)}` as Hex
    const decide = async (signer: typeof owner) => {
      const grant = await aGrant({ signer, domain, vehicle: carB, grantee: member.address })
      const request = await buildRequest({ signer: member, domain, grant, action: Scope.UNLOCK, challenge })
      return controller.decide({
        grant,
        action: Scope.UNLOCK,
        signature: Buffer.from(request.signature.slice(2), 'hex'),
        challenge: Buffer.from(challenge.slice(2), 'hex'),
      }).code
    }
    state.lastSyncedAtMs = nowMs - 3_600_000
    assert.equal(await decide(manager), 'OK')
    state.lastSyncedAtMs = nowMs - DEFAULT_MAX_STALE_MS - 1
    assert.equal(await decide(manager), 'KEYS_STALE')
    assert.equal(await decide(owner), 'OK')
  })
})

describe('#12 the online key path counts uses atomically', () => {
  test('N concurrent requests on a one-use grant: exactly one command', async () => {
    // JSON-RPC batching (a common client setting) answers the concurrent chain reads together,
    // so every request reaches the use check in the same turn of the event loop.
    const client = createPublicClient({ transport: http(chain.anvil.rpcUrl, { batch: true }) })
    const service = new OnlineKeyService({
      client,
      domain,
      vehicleRegistry: chain.deployment.contracts.VehicleRegistry.address,
      signer: nodeAccount,
    })
    const grant = await aGrant({
      signer: owner,
      domain,
      vehicle,
      grantee: courier.address.toLowerCase() as Address,
      scopes: Scope.OPEN_TRUNK,
      maxUses: 1,
    })
    const requests = await Promise.all(
      Array.from({ length: 8 }, async () => {
        const { challenge } = service.challenge(vehicle)
        const request = await buildRequest({
          signer: courier,
          domain,
          grant,
          action: Scope.OPEN_TRUNK,
          challenge,
        })
        return { ...request, vehicle, challenge, grantSignature: grant.signature, grant: grant.grant }
      }),
    )
    const outcomes = await Promise.allSettled(requests.map((request) => service.decide(request)))
    const granted = outcomes.filter((o) => o.status === 'fulfilled')
    const refused = outcomes.flatMap((o) =>
      o.status === 'rejected' ? [(o.reason as { code: string }).code] : [],
    )
    assert.equal(granted.length, 1, `granted ${granted.length} commands for a one-use grant`)
    assert.deepEqual(new Set(refused), new Set(['GRANT_USED_UP']))
  })
})

describe('#14 the car drops events only on an ack signed by its node', () => {
  const forger = testAccount(7)
  /** What a node would state for a batch stored as the log's only leaves. */
  const storedAs = (batch: BatchJson, leafHash = batch.checkpoint.leafHash as Hex) => ({
    vehicle: batch.vehicle,
    ids: [leafHash],
    leafIndexes: [0],
    treeSize: 1,
    rootHash: leafHash,
  })
  const aVehicle = () => testAccount(20 + Math.floor(Math.random() * 1000)).address.toLowerCase()
  const openLedger = async (vehicle: string, transport: BatchTransport) => {
    const dir = mkdtempSync(join(tmpdir(), 'carchain-attack-ack-'))
    const ledger = await VehicleLedger.open({ vehicle, dir, signer: aP256Signer().signer, transport })
    // stopped whatever the test's outcome: an open MQTT client would keep the runner alive
    const cleanup = async () => {
      await ledger.stop()
      rmSync(dir, { recursive: true, force: true })
    }
    return { ledger, cleanup }
  }

  test('forged acks on the MQTT acks topic (another client of the broker) delete nothing', async (t) => {
    const brokerUrl = new URL(MQTT_URL)
    const up = await listening(brokerUrl.hostname, Number(brokerUrl.port || 1883))
    if (!requirePart(t, up, `no MQTT broker at ${MQTT_URL} (apt-get install mosquitto)`)) return
    const carClient = await connectMqtt(MQTT_URL, `carchain-attack-car-${process.pid}`)
    const attacker = await connectMqtt(MQTT_URL, `carchain-attack-forger-${process.pid}`)
    t.after(() => attacker.endAsync())
    const vehicle = aVehicle()
    const transport = await mqttBatchTransport(carClient, vehicle, nodeAccount.address, 1500)
    const { ledger, cleanup } = await openLedger(vehicle, transport)
    t.after(cleanup)
    // The forger sees each batch on the events topic and answers at once, before any node could.
    let answer = async (batch: BatchJson): Promise<unknown[]> => {
      const base = {
        leafHash: batch.checkpoint.leafHash,
        ok: true,
        ids: [batch.checkpoint.leafHash],
        treeSize: 1,
      }
      const otherBatch = `0x${'ab'.repeat(32)}` as Hex
      return [
        base, // the old answer: no signature at all
        { ...base, ack: await signLedgerAck(forger, storedAs(batch)) }, // signed by another key
        { ...base, ack: await signLedgerAck(nodeAccount, storedAs(batch, otherBatch)) }, // the node's, for another batch
        { ...base, ack: { ...(await signLedgerAck(nodeAccount, storedAs(batch))), treeSize: 9 } }, // altered
      ]
    }
    attacker.on('message', async (_topic, message) => {
      const batch = JSON.parse(message.toString('utf8')) as BatchJson
      for (const forged of await answer(batch))
        await attacker.publishAsync(acksTopic(batch.vehicle), JSON.stringify(forged), { qos: 1 })
    })
    await attacker.subscribeAsync(eventsTopic(vehicle), { qos: 1 })
    const logs = captureLogs()
    t.after(logs.restore)
    for (let i = 0; i < 3; i++) ledger.recordNow('telemetry', { speedKmh: i })
    await assert.rejects(ledger.flush(), { code: 'TIMEOUT' })
    assert.equal(ledger.pending(), 3, 'the car deleted events on a forged ack')
    assert.ok(logs.records.some((r) => r.msg === 'an unverified ack was ignored'))
    // The node's own signed ack is taken (as src/node/mqtt.ts signs it).
    answer = async (batch) => [
      {
        leafHash: batch.checkpoint.leafHash,
        ok: true,
        ack: await signLedgerAck(nodeAccount, storedAs(batch)),
      },
    ]
    await ledger.flush()
    assert.equal(ledger.pending(), 0)
  })

  test('a forged answer over plain HTTP deletes nothing; the node’s signed one does', async (t) => {
    // A man in the middle (or a node impostor) answering every upload with success.
    const impostor = createServer((request, response) => {
      let body = ''
      request.on('data', (chunk) => {
        body += chunk
      })
      request.on('end', () => {
        const batch = JSON.parse(body) as BatchJson
        response.setHeader('content-type', 'application/json')
        response.end(
          JSON.stringify({ accepted: 2, duplicates: 0, ids: [batch.checkpoint.leafHash], treeSize: 1 }),
        )
      })
    })
    await new Promise<void>((resolve) => impostor.listen(0, '127.0.0.1', resolve))
    t.after(() => impostor.close())
    const { port } = impostor.address() as AddressInfo
    const { ledger, cleanup } = await openLedger(
      aVehicle(),
      httpBatchTransport(`http://127.0.0.1:${port}`, nodeAccount.address),
    )
    t.after(cleanup)
    ledger.recordNow('telemetry', { speedKmh: 1 })
    ledger.recordNow('telemetry', { speedKmh: 2 })
    await assert.rejects(ledger.flush(), { code: 'ACK_INVALID' })
    assert.equal(ledger.pending(), 2, 'the car deleted events on an unsigned answer')

    // The real node signs its answer with its operator account, and the car checks it.
    const node = await startTestNode()
    t.after(() => node.cleanup())
    const fleet = await seedFleet(node, 1)
    t.after(() => fleet.cleanup())
    const [car] = fleet.cars
    const events = [car!.chain.append({ kind: 'telemetry', time: Date.now(), data: { speedKmh: 3 } })]
    const batch = await createBatch({ events, signer: { sign: car!.sign } })
    const operator = node.context.clients.account.address
    const acknowledged = await httpBatchTransport(node.url, operator).send(batch)
    assert.deepEqual(acknowledged.ids, [batch.checkpoint.leafHash])
    // the same answer does not count for a car that trusts another node
    const stranger = forger.address
    await assert.rejects(httpBatchTransport(node.url, stranger).send(batch), { code: 'ACK_INVALID' })
  })
})
