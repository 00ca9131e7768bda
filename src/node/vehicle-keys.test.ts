import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { getAddress } from 'viem'
import { freshDatabase } from '../../test/database.ts'
import type { Database } from '../db/database.ts'
import { isErrorCode } from '../errors.ts'
import type { Certificate } from '../identity/certificate.ts'
import { aPki, type TestPki } from '../identity/pki.testkit.ts'
import { fromHex } from '../ledger/bytes.ts'
import type { VehicleAddress } from '../ledger/envelope.ts'
import { captureLogs } from '../log.ts'
import { createVehicleKeys, type VehicleKeysParameters } from './vehicle-keys.ts'

// The bounds of the on-chain revocation cache, on a clock the test moves. The chain's own answers
// (a vehicle revoked on VehicleRegistry) are tested end to end in test/reliability/attack-ingest.

let pki: TestPki
let db: Database
const vehicles: { vehicle: VehicleAddress; cert: Certificate }[] = []

before(async () => {
  pki = await aPki()
  db = await freshDatabase('pglite')
  for (let i = 0; i < 3; i++) {
    const { cert, walletRef } = await pki.aVehicle()
    const vehicle = getAddress(await pki.store.ethereumAddress(walletRef)).toLowerCase() as VehicleAddress
    await db.query(
      `insert into node_vehicles (vehicle, vin, certificate, chain, fingerprint, public_key)
       values ($1, 'test', $2, $3, $4, $5)`,
      [
        fromHex(vehicle, 'vehicle', 20),
        cert.der,
        [pki.oem.sub.der, pki.oem.root.der],
        Buffer.from(cert.fingerprint, 'hex'),
        cert.publicKey,
      ],
    )
    vehicles.push({ vehicle, cert })
  }
})

after(async () => {
  await db?.close()
  await pki?.cleanup()
})

/** A cache over a chain whose answers the test sets, counting what it was asked. */
function aCache(options: Partial<VehicleKeysParameters> = {}) {
  const chain = { revoked: new Set<string>(), down: false, asked: [] as string[] }
  let now = Date.now()
  const keys = createVehicleKeys(db, {
    isRevoked: async (fingerprint) => {
      chain.asked.push(fingerprint)
      if (chain.down) throw new Error('connect ECONNREFUSED')
      return chain.revoked.has(fingerprint)
    },
    revocationTtlMs: 1000,
    maxStaleMs: 10_000,
    retryMs: 500,
    nowMs: () => now,
    ...options,
  })
  return { keys, chain, advance: (ms: number) => (now += ms) }
}

describe('createVehicleKeys', () => {
  test('asks the chain once per TTL per certificate on the path, not per batch', async () => {
    const { keys, chain, advance } = aCache()
    const [{ vehicle, cert }] = vehicles as [(typeof vehicles)[0]]
    for (let i = 0; i < 5; i++) assert.deepEqual(await keys.resolve(vehicle), cert.publicKey)
    // The leaf and the OEM's sub-CA; the self-signed root's trust is the registry's root list.
    assert.deepEqual(chain.asked, [cert.fingerprint, pki.oem.sub.fingerprint])
    advance(1001)
    await keys.resolve(vehicle)
    assert.equal(chain.asked.length, 4, 'asked again once the TTL passed')
  })

  test('a revocation refuses within the TTL, and for good', async () => {
    const { keys, chain, advance } = aCache()
    const { vehicle, cert } = vehicles[0]!
    await keys.resolve(vehicle)
    chain.revoked.add(cert.fingerprint)
    assert.ok(await keys.resolve(vehicle), 'the answer of less than a TTL ago still holds')
    advance(1001)
    await assert.rejects(keys.resolve(vehicle), (e) => isErrorCode(e, 'CERT_REVOKED'))
    const asked = chain.asked.length
    advance(60_000)
    await assert.rejects(keys.resolve(vehicle), (e) => isErrorCode(e, 'CERT_REVOKED'))
    assert.equal(chain.asked.length, asked, 'a revocation is final: no need to ask again')
  })

  test('a revoked issuing CA refuses every vehicle it certified', async () => {
    const { keys, chain } = aCache()
    chain.revoked.add(pki.oem.sub.fingerprint)
    for (const { vehicle } of vehicles)
      await assert.rejects(keys.resolve(vehicle), (e) => isErrorCode(e, 'CERT_REVOKED'))
  })

  test('an expired certificate is refused without asking anyone', async () => {
    const { keys, chain, advance } = aCache()
    const { vehicle, cert } = vehicles[1]!
    await keys.resolve(vehicle)
    const asked = chain.asked.length
    advance(cert.notAfter.getTime() - Date.now() + 1000)
    await assert.rejects(keys.resolve(vehicle), (e) => isErrorCode(e, 'CERT_EXPIRED'))
    assert.equal(chain.asked.length, asked)
  })

  test('the chain down: the last answer serves for maxStale (logged, retried), then CHAIN_UNREACHABLE', async () => {
    const logs = captureLogs()
    try {
      const { keys, chain, advance } = aCache()
      const { vehicle } = vehicles[2]!
      chain.down = true
      await assert.rejects(keys.resolve(vehicle), (e) => isErrorCode(e, 'CHAIN_UNREACHABLE'))
      chain.down = false
      await keys.resolve(vehicle)
      chain.down = true
      advance(1001)
      assert.ok(await keys.resolve(vehicle), 'served from the last answer while the chain is down')
      const asked = chain.asked.length
      advance(100)
      await keys.resolve(vehicle)
      assert.equal(chain.asked.length, asked, 'not asked again before retryMs')
      advance(500)
      await keys.resolve(vehicle)
      assert.ok(chain.asked.length > asked, 'asked again after retryMs')
      advance(10_000)
      await assert.rejects(keys.resolve(vehicle), (e) => isErrorCode(e, 'CHAIN_UNREACHABLE'))
      assert.ok(
        logs.records.some((r) => r.component === 'node.vehicle-keys' && r.level === 50),
        'every failed check is logged as an error',
      )
    } finally {
      logs.restore()
    }
  })

  test('bounded: beyond maxEntries the oldest answers go and are asked again', async () => {
    const { keys, chain } = aCache({ maxEntries: 2 })
    const [first, second] = vehicles as [(typeof vehicles)[0], (typeof vehicles)[0]]
    await keys.resolve(first.vehicle)
    await keys.resolve(second.vehicle)
    await keys.resolve(first.vehicle)
    assert.equal(chain.asked.filter((f) => f === first.cert.fingerprint).length, 2)
  })

  test('an unknown vehicle has no key; a new registration counts at forget, or within the TTL', async () => {
    const { keys, advance } = aCache()
    assert.equal(await keys.resolve(`0x${'ab'.repeat(20)}`), undefined)
    const { vehicle, cert } = vehicles[0]!
    assert.deepEqual(await keys.resolve(vehicle), cert.publicKey)
    const { cert: renewed } = await pki.aVehicle()
    await db.query('update node_vehicles set certificate = $1 where vehicle = $2', [
      renewed.der,
      fromHex(vehicle, 'vehicle', 20),
    ])
    assert.deepEqual(await keys.resolve(vehicle), cert.publicKey, 'cached')
    keys.forget(getAddress(vehicle))
    assert.deepEqual(await keys.resolve(vehicle), renewed.publicKey, 'forgotten: loaded again')
    await db.query('update node_vehicles set certificate = $1 where vehicle = $2', [
      cert.der,
      fromHex(vehicle, 'vehicle', 20),
    ])
    advance(1001)
    assert.deepEqual(await keys.resolve(vehicle), cert.publicKey, 'loaded again after the TTL')
  })
})
