/**
 * The node end to end, in process: a vehicle certified by an OEM the chain trusts registers,
 * uploads signed batches over HTTP, the log is anchored on chain, and anyone can check an event
 * against the anchored root with the public log API alone. Owners sign in with SIWE to read
 * payloads; nobody else can.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { getAddress } from 'viem'
import { developmentAccount } from '../src/chain/clients.ts'
import { vehicleRegistryAbi } from '../src/chain/generated/index.ts'
import { loadConfig } from '../src/config.ts'
import { toPem } from '../src/identity/certificate.ts'
import { aPki, type TestPki } from '../src/identity/pki.testkit.ts'
import { createBatch } from '../src/ledger/batch.ts'
import { fromBase64, fromHex } from '../src/ledger/bytes.ts'
import { dataGrantTypedData } from '../src/ledger/data-grant.ts'
import { createEventChain, type EventChain } from '../src/ledger/envelope.ts'
import { hashLeaf, verifyConsistency, verifyInclusion } from '../src/ledger/merkle.ts'
import { getRootAt } from '../src/ledger/store.ts'
import { aP256Signer } from '../src/ledger/testing.ts'
import { type RunningNode, startNode } from '../src/node/up.ts'
import { dataGrantDomain } from '../src/node/vehicle-routes.ts'
import { sellVehicle } from './fleet-fixture.ts'
import { signIn as siweSignIn } from './reliability/harness.ts'

const dataDir = mkdtempSync(join(tmpdir(), 'carchain-node-'))
let node: RunningNode
let pki: TestPki
const owner = developmentAccount(1)
const stranger = developmentAccount(2)
type Car = {
  vehicle: `0x${string}`
  chain: EventChain
  sign: (m: Uint8Array) => Promise<Uint8Array>
  certificate: string
}
let car: Car
let clockMs = Date.now()

before(async () => {
  node = await startNode({
    config: loadConfig({
      flags: { data: dataDir, port: 0, noSim: true },
      env: { CARCHAIN_ANCHOR_INTERVAL_MS: '3600000' },
    }),
  })
  pki = await aPki()
  const { walletClient, publicClient } = node.clients
  const registry = node.chain.contracts.VehicleRegistry as `0x${string}`
  const send = async (
    functionName: 'setOem' | 'setTrustedRoot' | 'registerVehicle',
    args: readonly unknown[],
  ) => {
    const hash = await walletClient.writeContract({
      address: registry,
      abi: vehicleRegistryAbi,
      functionName,
      args,
    } as never)
    await publicClient.waitForTransactionReceipt({ hash })
  }
  await send('setOem', [walletClient.account.address, true])
  await send('setTrustedRoot', [0, `0x${pki.oem.root.fingerprint}`, true])
  const issued = await pki.aVehicle()
  const vehicle = getAddress(await pki.store.ethereumAddress(issued.walletRef))
  await send('registerVehicle', [
    vehicle,
    owner.address,
    `0x${issued.cert.fingerprint}`,
    `0x${'ab'.repeat(32)}`,
  ])
  car = {
    vehicle,
    chain: createEventChain({ vehicle }),
    sign: (message) => pki.store.signDigest(issued.keyRef, createHash('sha256').update(message).digest()),
    certificate: toPem('CERTIFICATE', issued.cert.der),
  }
})

after(async () => {
  await node?.stop()
  await pki?.cleanup()
  rmSync(dataDir, { recursive: true, force: true })
})

const api = async (path: string, init: RequestInit & { json?: unknown; token?: string } = {}) => {
  const headers: Record<string, string> = {}
  if (init.json !== undefined) headers['content-type'] = 'application/json'
  if (init.token) headers.authorization = `Bearer ${init.token}`
  const response = await fetch(`${node.url}${path}`, {
    ...init,
    headers,
    body: init.json === undefined ? undefined : JSON.stringify(init.json),
  })
  // biome-ignore lint/suspicious/noExplicitAny: tests read the JSON answers field by field
  return { status: response.status, body: (await response.json()) as Record<string, any> }
}

const register = (certificate: string) =>
  api('/v1/vehicles', {
    method: 'POST',
    json: {
      certificate,
      chain: [toPem('CERTIFICATE', pki.oem.sub.der), toPem('CERTIFICATE', pki.oem.root.der)],
    },
  })

async function upload(count: number, signer = { sign: car.sign }) {
  // A refused batch must not advance the car's own chain.
  const chain =
    signer.sign === car.sign ? car.chain : createEventChain({ vehicle: car.vehicle, head: car.chain.head() })
  const events = Array.from({ length: count }, (_, i) =>
    chain.append({
      kind: i % 2 ? 'door.locked' : 'odometer',
      time: clockMs++,
      data: { km: clockMs / 1e9, i },
    }),
  )
  return api(`/v1/vehicles/${car.vehicle}/events`, {
    method: 'POST',
    json: await createBatch({ events, signer }),
  })
}

test('a certified, registered vehicle registers; an unregistered or untrusted one is refused', async () => {
  const ok = await register(car.certificate)
  assert.equal(ok.status, 200, JSON.stringify(ok.body))
  assert.equal(ok.body.vehicle, car.vehicle)
  const unregistered = await pki.aVehicle()
  const refused = await register(toPem('CERTIFICATE', unregistered.cert.der))
  assert.equal(refused.status, 403)
  assert.equal(refused.body.code, 'VEHICLE_NOT_REGISTERED')
  const otherOem = await aPki()
  try {
    const foreign = await otherOem.aVehicle()
    const untrusted = await api('/v1/vehicles', {
      method: 'POST',
      json: {
        certificate: toPem('CERTIFICATE', foreign.cert.der),
        chain: [toPem('CERTIFICATE', otherOem.oem.sub.der), toPem('CERTIFICATE', otherOem.oem.root.der)],
      },
    })
    assert.equal(untrusted.body.code, 'CERT_UNTRUSTED')
  } finally {
    await otherOem.cleanup()
  }
})

test('batches are accepted once durable, re-sends are idempotent, forgeries refused', async () => {
  const first = await upload(10)
  assert.equal(first.status, 200, JSON.stringify(first.body))
  assert.equal(first.body.accepted, 10)
  assert.equal(first.body.treeSize, 10)
  const forged = await upload(1, aP256Signer().signer)
  assert.equal(forged.status, 400)
  assert.equal(forged.body.code, 'EVENT_BAD_SIGNATURE')
  // Another vehicle's path: a vehicle cannot upload for another.
  const events = [createEventChain({ vehicle: car.vehicle }).append({ kind: 'telemetry', time: 1, data: {} })]
  const wrongPath = await api(`/v1/vehicles/0x${'11'.repeat(20)}/events`, {
    method: 'POST',
    json: await createBatch({ events, signer: { sign: car.sign } }),
  })
  // Nobody registered that path's vehicle: refused before the body is read (issue 19 #9); a
  // registered car's path gets EVENT_VEHICLE_MISMATCH (test/reliability/access-control.test.ts).
  assert.equal(wrongPath.body.code, 'VEHICLE_NOT_REGISTERED')
  const malformed = await api(`/v1/vehicles/${car.vehicle}/events`, {
    method: 'POST',
    json: { vehicle: car.vehicle, events: 'x' },
  })
  assert.equal(malformed.status, 400)
  assert.equal(malformed.body.code, 'EVENT_MALFORMED')
})

test('anyone can verify an event against the root anchored on chain using the log API', async () => {
  await upload(5)
  await node.anchoring.anchorNow()
  const checkpoint = (await api('/v1/log/checkpoint')).body
  assert.equal(checkpoint.treeSize, 15)
  assert.equal(checkpoint.anchored.treeSize, 15)
  assert.equal(checkpoint.anchored.rootHash, checkpoint.rootHash)
  assert.equal(checkpoint.contract, node.chain.contracts.LedgerAnchor)
  // The root comes from the chain, not from the node.
  const onChain = (await api('/v1/log/anchored')).body
  const { entries } = (await api('/v1/log/entries?start=3&end=5')).body
  assert.equal(entries.length, 2)
  const entry = entries[0]
  const leafHash = hashLeaf(fromBase64(entry.leafInput, 'leafInput'))
  assert.equal(`0x${Buffer.from(leafHash).toString('hex')}`, entry.leafHash)
  const proof = (await api(`/v1/log/proof/inclusion?leafHash=${entry.leafHash}&treeSize=${onChain.treeSize}`))
    .body
  assert.equal(proof.leafIndex, 3)
  assert.ok(
    verifyInclusion({
      leafIndex: proof.leafIndex,
      treeSize: proof.treeSize,
      leafHash,
      proof: proof.auditPath.map((h: string) => fromHex(h, 'h', 32)),
      rootHash: fromHex(onChain.rootHash, 'root', 32),
    }),
  )
  const older = (await api('/v1/log/anchors')).body.anchors
  assert.equal(older[0].treeSize, 15)
  const consistency = (await api('/v1/log/proof/consistency?first=10&second=15')).body
  assert.equal(consistency.proof.length > 0, true)
  assert.equal(
    verifyConsistency({
      first: 10,
      second: 15,
      firstHash: fromHex(await rootAt(10), 'r', 32),
      secondHash: fromHex(onChain.rootHash, 'r', 32),
      proof: consistency.proof.map((h: string) => fromHex(h, 'h', 32)),
    }),
    true,
  )
  const bad = await api('/v1/log/proof/inclusion?leafHash=0x1234&treeSize=1')
  assert.equal(bad.status, 400)
  assert.equal(bad.body.code, 'INVALID_ARGUMENT')
})

const rootAt = (size: number) => getRootAt(node.context.db, size)

const signIn = (account: ReturnType<typeof developmentAccount>) =>
  siweSignIn(node.url, node.chain.chainId, account)

test('payloads only for the owner signed in with SIWE; a replayed nonce is refused', async () => {
  const anonymous = (await api(`/v1/vehicles/${car.vehicle}/events?limit=3`)).body
  assert.equal(anonymous.events?.length, 3, JSON.stringify(anonymous))
  assert.ok(anonymous.events.every((e: { payload: unknown }) => e.payload === null))

  const mine = await signIn(owner)
  assert.equal(mine.answer.status, 200, JSON.stringify(mine.answer.body))
  const asOwner = (await api(`/v1/vehicles/${car.vehicle}/events?limit=3`, { token: mine.answer.body.token }))
    .body
  assert.ok(asOwner.events.every((e: { payload: { data: unknown } | null }) => e.payload !== null))
  assert.equal(asOwner.events[0].seq, 14)

  const replay = await api('/v1/auth/siwe', {
    method: 'POST',
    json: { message: mine.message, signature: mine.signature },
  })
  assert.equal(replay.status, 401)
  assert.equal(replay.body.code, 'UNAUTHENTICATED')

  const theirs = await signIn(stranger)
  const asStranger = (
    await api(`/v1/vehicles/${car.vehicle}/events?limit=3`, { token: theirs.answer.body.token })
  ).body
  assert.ok(asStranger.events.every((e: { payload: unknown }) => e.payload === null))
  assert.equal(asStranger.payloads, 'forbidden')

  const badToken = await api(`/v1/vehicles/${car.vehicle}/events`, { token: 'nope' })
  assert.equal(badToken.status, 401)
})

test('the fleet view lists the vehicle with its owner and last event', async () => {
  const { vehicles } = (await api('/v1/vehicles')).body
  const mine = vehicles.find((v: { vehicle: string }) => v.vehicle === car.vehicle)
  assert.equal(mine.owner, owner.address)
  assert.equal(mine.events, 15)
  assert.equal(mine.registered, true)
  assert.ok(mine.lastEvent.kind)
})

test('an owner admits a reader with a signed DataGrant; it expires, cannot be self-issued, and gives no right to erase', async () => {
  let issuedAtMs = Date.now()
  const admit = async (signer: typeof owner, notAfter: number) => {
    const grant = { vehicle: car.vehicle, reader: stranger.address, notAfter, issuedAtMs: ++issuedAtMs }
    return api(`/v1/vehicles/${car.vehicle}/readers`, {
      method: 'POST',
      json: {
        reader: grant.reader,
        notAfter,
        issuedAtMs: grant.issuedAtMs,
        signature: await signer.signTypedData(dataGrantTypedData(dataGrantDomain(node.context), grant)),
      },
    })
  }
  const selfIssued = await admit(stranger, Math.floor(Date.now() / 1000) + 3600)
  assert.equal(selfIssued.status, 403)
  assert.equal(selfIssued.body.code, 'FORBIDDEN')

  const token = (await signIn(stranger)).answer.body.token
  const payloads = async () =>
    (await api(`/v1/vehicles/${car.vehicle}/events?limit=2`, { token })).body.payloads
  assert.equal(await payloads(), 'forbidden')
  const admitted = await admit(owner, Math.floor(Date.now() / 1000) + 3600)
  assert.equal(admitted.status, 200, JSON.stringify(admitted.body))
  assert.equal(admitted.body.grantedBy, owner.address)
  assert.equal(await payloads(), 'included')
  const erase = await api(`/v1/vehicles/${car.vehicle}/payloads`, { method: 'DELETE', token })
  assert.equal(erase.status, 403, 'a reader may read, never erase')

  await admit(owner, Math.floor(Date.now() / 1000) - 1) // replaced by an expired grant
  assert.equal(await payloads(), 'forbidden')
})

test('a sale moves the title in the fleet view; the history before it stays the seller’s', async () => {
  await sellVehicle(node, { seller: owner, buyer: stranger.address, vehicle: car.vehicle })
  await node.context.indexer.sync()
  const { vehicles } = (await api('/v1/vehicles')).body
  assert.equal(vehicles.find((v: { vehicle: string }) => v.vehicle === car.vehicle).owner, stranger.address)
  const asSeller = (
    await api(`/v1/vehicles/${car.vehicle}/events?limit=1`, {
      token: (await signIn(owner)).answer.body.token,
    })
  ).body
  assert.equal(asSeller.payloads, 'included', 'the newest event was recorded before the sale')
  const asBuyer = (
    await api(`/v1/vehicles/${car.vehicle}/events?limit=1`, {
      token: (await signIn(stranger)).answer.body.token,
    })
  ).body
  assert.equal(asBuyer.payloads, 'forbidden', 'the buyer does not read the seller’s period')
})
