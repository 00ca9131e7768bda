/**
 * Attacks on `carchain verify --bundle` (issue 19 #2): a disclosure bundle is the attacker's own
 * file, so nothing in it may say where to verify, and an event must be shown to come from the car.
 *
 * - a forged event anchored as a one-leaf log under a fresh log id on the genuine LedgerAnchor,
 *   bundled with that log id, is refused (the verifier pins the deployment's log);
 * - a bundle naming another LedgerAnchor or chain is refused;
 * - an event in the genuine, anchored log that the car never signed (the operator wrote it) is
 *   refused, as is a bundle without the car's signature or with a broken one;
 * - a certificate that does not lead to the OEM roots the registry trusts, or is not the one
 *   registered for the vehicle, is refused.
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import type { Address } from 'viem'
import { connectChain, developmentAccount } from '../../src/chain/clients.ts'
import { ledgerAnchorAbi } from '../../src/chain/generated/index.ts'
import { toPem } from '../../src/identity/certificate.ts'
import { aPki, aVin, type TestPki } from '../../src/identity/pki.testkit.ts'
import { issueVehicleCertificate } from '../../src/identity/profiles.ts'
import { createLogId } from '../../src/ledger/anchor.ts'
import { toHex } from '../../src/ledger/bytes.ts'
import {
  createEventChain,
  envelopeLeafHash,
  parseEnvelope,
  payloadToJson,
} from '../../src/ledger/envelope.ts'
import { appendBatch } from '../../src/ledger/store.ts'
import { cli } from '../cli.ts'
import { type SeededFleet, seedFleet } from '../fleet-fixture.ts'
import { startTestNode, type TestNode } from './harness.ts'

const dir = mkdtempSync(join(tmpdir(), 'carchain-attack-verify-'))
let node: TestNode
let fleet: SeededFleet
let rogue: TestPki
let chain: { chainId: number; rpcUrl: string; contracts: Record<string, Address> }
let logId: string
// biome-ignore lint/suspicious/noExplicitAny: the bundle is edited field by field, as an attacker would
let genuine: Record<string, any>

let files = 0
/** Writes `bundle` to a file and runs `verify --bundle` on it with `flags` (default: the node). */
function verifyBundle(bundle: unknown, ...flags: string[]) {
  const file = join(dir, `bundle-${++files}.json`)
  writeFileSync(file, JSON.stringify(bundle))
  return cli('verify', '--bundle', file, ...(flags.length ? flags : ['--node', node.url]))
}

/** The node's deployment given by flags alone (no node consulted). */
const pinnedByFlags = () => [
  ...['--rpc', chain.rpcUrl, '--contract', chain.contracts.LedgerAnchor!],
  ...['--log-id', logId, '--registry', chain.contracts.VehicleRegistry!],
]

/** The genuine bundle with its vehicle proof replaced (or left out, with undefined). */
// biome-ignore lint/suspicious/noExplicitAny: the bundle is edited field by field
const withProof = (vehicleProof: any) => ({ ...genuine, disclosure: { ...genuine.disclosure, vehicleProof } })

/** Discloses `id` as the car's owner (the genuine `carchain ledger disclose`). */
async function disclose(id: string) {
  const file = join(dir, `disclosed-${++files}.json`)
  const made = await cli(
    'ledger',
    'disclose',
    '--event',
    id,
    '--out',
    file,
    '--node',
    node.url,
    '--owner-index',
    String(fleet.cars[0]!.ownerIndex),
  )
  assert.equal(made.status, 0, JSON.stringify(made.json))
  return JSON.parse(readFileSync(file, 'utf8'))
}

before(async () => {
  node = await startTestNode()
  fleet = await seedFleet(node, 1)
  rogue = await aPki()
  await node.anchoring.anchorNow()
  chain = await (await fetch(`${node.url}/v1/chain`)).json()
  logId = (await (await fetch(`${node.url}/v1/log/checkpoint`)).json()).logId
  const { events } = await (await fetch(`${node.url}/v1/vehicles/${fleet.cars[0]!.vehicle}/events`)).json()
  const odometer = events.find((e: { kind: string }) => e.kind === 'odometer')
  genuine = await disclose(odometer.id)
})

after(async () => {
  await rogue?.cleanup()
  await fleet?.cleanup()
  await node?.cleanup()
  rmSync(dir, { recursive: true, force: true })
})

test('the genuine bundle verifies against the pinned deployment, with the car’s certificate', async () => {
  const verified = await verifyBundle(genuine)
  assert.equal(verified.status, 0, JSON.stringify(verified.json))
  assert.equal(verified.json.valid, true)
  assert.equal(verified.json.vehicle, fleet.cars[0]!.vehicle.toLowerCase())
  assert.equal(verified.json.certificate.vin, fleet.cars[0]!.vin)
  const pinned = await verifyBundle(genuine, ...pinnedByFlags(), '--operator', node.clients.account.address)
  assert.equal(pinned.status, 0, JSON.stringify(pinned.json))
  const wrongOperator = await verifyBundle(
    genuine,
    '--node',
    node.url,
    '--operator',
    developmentAccount(7).address,
  )
  assert.equal(wrongOperator.json.code, 'LOG_UNTRUSTED')
})

test('a forged event anchored as a one-leaf log under a fresh log id is refused', async () => {
  // Anyone may anchor a fresh log id on the genuine contract: the attacker's one-leaf log holds a
  // made-up odometer reading of the victim's car.
  const attacker = await connectChain({ rpcUrl: chain.rpcUrl, account: developmentAccount(7) })
  const forged = createEventChain({ vehicle: fleet.cars[0]!.vehicle }).append({
    kind: 'odometer',
    time: Date.now(),
    data: { km: 5 },
  })
  const attackerLogId = createLogId(attacker.account.address)
  const hash = await attacker.walletClient.writeContract({
    address: chain.contracts.LedgerAnchor!,
    abi: ledgerAnchorAbi,
    functionName: 'anchor',
    args: [attackerLogId, 1n, toHex(forged.leafHash), []],
  })
  assert.equal((await attacker.publicClient.waitForTransactionReceipt({ hash })).status, 'success')
  const disclosure = {
    v: 1,
    envelope: forged.envelope,
    payload: payloadToJson(forged.payload),
    leafIndex: 0,
    treeSize: 1,
    rootHash: toHex(forged.leafHash),
    auditPath: [],
    vehicleProof: genuine.disclosure.vehicleProof,
  }
  const bundle = { ...genuine, disclosure, anchor: { ...genuine.anchor, logId: attackerLogId } }
  const refused = await verifyBundle(bundle)
  assert.equal(refused.status, 1, JSON.stringify(refused.json))
  assert.equal(refused.json.code, 'LOG_UNTRUSTED')
  // Pinned by flags alone, without a node: the same.
  const pinned = await verifyBundle(bundle, ...pinnedByFlags())
  assert.equal(pinned.json.code, 'LOG_UNTRUSTED')
  // Naming the genuine log instead: the forged root is not anchored there.
  const named = await verifyBundle({ ...bundle, anchor: genuine.anchor })
  assert.equal(named.json.code, 'PROOF_INVALID')
})

test('a bundle naming another LedgerAnchor or chain is refused', async () => {
  const contract = await verifyBundle({
    ...genuine,
    anchor: { ...genuine.anchor, contract: chain.contracts.KeyRegistry },
  })
  assert.equal(contract.json.code, 'LOG_UNTRUSTED')
  const chainId = await verifyBundle({ ...genuine, anchor: { ...genuine.anchor, chainId: 1 } })
  assert.equal(chainId.json.code, 'LOG_UNTRUSTED')
})

test('an event the car did not sign is refused, even in the genuine anchored log', async () => {
  const unsigned = await verifyBundle(withProof(undefined))
  assert.equal(unsigned.status, 1)
  assert.equal(unsigned.json.code, 'DISCLOSURE_UNSIGNED')
  const signature = Buffer.from(genuine.disclosure.vehicleProof.signature.slice(2), 'hex')
  signature[10]! ^= 1
  const proof = genuine.disclosure.vehicleProof
  const flipped = await verifyBundle(withProof({ ...proof, signature: toHex(signature) }))
  assert.equal(flipped.json.code, 'EVENT_BAD_SIGNATURE')
  // One more envelope after the signed one: the signature no longer covers the chain's end.
  const car = fleet.cars[0]!
  const extra = car.chain.append({ kind: 'door.unlocked', time: Date.now(), data: { by: 'owner' } })
  const extended = await verifyBundle(
    withProof({ ...proof, following: [...proof.following, extra.envelope] }),
  )
  assert.equal(extended.json.code, 'EVENT_BAD_SIGNATURE')
  // The operator writes an event into its own log, bypassing ingest, and anchors it: the car's
  // signature is what shows it is not the car's.
  const made = car.chain.append({ kind: 'odometer', time: Date.now(), data: { km: 99_999 } })
  await appendBatch(node.db, {
    vehicle: car.vehicle.toLowerCase() as `0x${string}`,
    events: [extra, made],
    checkpointSignature: randomBytes(64),
  })
  await node.anchoring.anchorNow()
  const operatorForged = await verifyBundle(await disclose(made.id))
  assert.equal(operatorForged.status, 1, JSON.stringify(operatorForged.json))
  assert.equal(operatorForged.json.code, 'EVENT_BAD_SIGNATURE')
})

test('a certificate not under the registry’s OEM roots, or not the vehicle’s, is refused', async () => {
  // The attacker's own OEM issues a certificate binding the victim's address, and signs the event.
  const keyRef = await rogue.store.generate('p256', `rogue-${process.pid}`)
  const cert = await issueVehicleCertificate({
    vin: aVin(),
    chainId: chain.chainId,
    wallet: fleet.cars[0]!.vehicle,
    subjectPublicKey: await rogue.store.publicKey(keyRef),
    issuer: rogue.oem.sub,
    signer: rogue.oem.subSigner,
  })
  const eventLeaf = envelopeLeafHash(parseEnvelope(genuine.disclosure.envelope))
  const signature = await rogue.store.signDigest(keyRef, createHash('sha256').update(eventLeaf).digest())
  const rootFile = join(dir, 'rogue-root.pem')
  writeFileSync(rootFile, toPem('CERTIFICATE', rogue.oem.root.der))
  const bundle = withProof({
    certificate: toPem('CERTIFICATE', cert.der),
    chain: [toPem('CERTIFICATE', rogue.oem.sub.der), toPem('CERTIFICATE', rogue.oem.root.der)],
    following: [],
    signature: toHex(signature),
  })
  const untrusted = await verifyBundle(bundle)
  assert.equal(untrusted.status, 1, JSON.stringify(untrusted.json))
  assert.equal(untrusted.json.code, 'CERT_UNTRUSTED')
  // Told to trust the rogue root, the certificate is still not the one registered for the car.
  const notRegistered = await verifyBundle(bundle, '--node', node.url, '--oem-root', rootFile)
  assert.equal(notRegistered.json.code, 'VEHICLE_NOT_REGISTERED')
})
