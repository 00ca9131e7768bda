/**
 * The dashboard without a browser: its in-browser RFC 9162 verifier agrees with the node's
 * (src/ledger/merkle.ts: the same src/ledger/rfc9162.ts over node:crypto) on every leaf of trees of many sizes and rejects tampering; the event
 * check accepts real envelopes and refuses altered ones; the node serves the built app with the
 * right types, caching and SPA fallback while unknown API routes keep their JSON 404; and web/
 * type-checks under its own tsconfig (the root `tsc -p .` leaves it out); the dashboard's shard
 * helpers agree with the node's rule and refuse a node that places an event in another shard.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { test } from 'node:test'
import { isErrorCode } from '../src/errors.ts'
import { createEventChain, payloadToJson } from '../src/ledger/envelope.ts'
import { buildMerkleTree } from '../src/ledger/merkle.ts'
import { portableMerkle } from '../src/ledger/rfc9162.ts'
import { shardLogId, shardOfVehicle } from '../src/ledger/shards.ts'
import { createDashboardRoutes } from '../src/node/dashboard.ts'
import { createServer } from '../src/node/server.ts'
import type { ChainInfo } from '../web/src/api.ts'
import { checkEvent, envelopeLeafHash, payloadMatchesCommit } from '../web/src/lib/event-proof.ts'
import { fromHex, toHex } from '../web/src/lib/hex.ts'
import { shardCountOf, shardLogIdOf, shardLogOf, shardPaths, vehicleShard } from '../web/src/lib/shards.ts'

const { hashLeaf, rootFromInclusionProof } = portableMerkle
const leaves = (n: number) => Array.from({ length: n }, (_, i) => new TextEncoder().encode(`leaf ${i}`))

test('the browser verifier reaches the node tree root for every leaf and size', () => {
  for (let size = 1; size <= 33; size++) {
    const inputs = leaves(size)
    const tree = buildMerkleTree({ leafInputs: inputs })
    for (let treeSize = 1; treeSize <= size; treeSize++) {
      const root = toHex(tree.rootAt(treeSize))
      for (let index = 0; index < treeSize; index++) {
        const auditPath = tree.inclusionProof(index, treeSize)
        const leafHash = hashLeaf(inputs[index]!)
        assert.equal(toHex(leafHash), toHex(tree.leafHash(index)))
        const computed = rootFromInclusionProof({ leafIndex: index, treeSize, leafHash, proof: auditPath })
        assert.equal(computed && toHex(computed), root, `leaf ${index} of ${treeSize}`)
        // The same path claimed for another index or size must not reach the root.
        const wrongIndex = rootFromInclusionProof({
          leafIndex: (index + 1) % treeSize,
          treeSize,
          leafHash,
          proof: auditPath,
        })
        if (treeSize > 1) assert.notEqual(wrongIndex && toHex(wrongIndex), root)
        if (auditPath.length > 0) {
          const bent = auditPath.map((h, i) =>
            i === 0 ? Uint8Array.from(h, (b, j) => (j === 0 ? b ^ 1 : b)) : h,
          )
          const tampered = rootFromInclusionProof({ leafIndex: index, treeSize, leafHash, proof: bent })
          assert.notEqual(tampered && toHex(tampered), root)
        }
      }
    }
  }
  assert.equal(
    rootFromInclusionProof({ leafIndex: 3, treeSize: 3, leafHash: new Uint8Array(32), proof: [] }),
    undefined,
  )
})

test('checkEvent verifies real envelopes against an anchored root and names what fails', async () => {
  const chain = createEventChain({ vehicle: `0x${'ab'.repeat(20)}` })
  const events = Array.from({ length: 7 }, (_, i) =>
    chain.append({ kind: 'odometer', time: 1_700_000_000_000 + i, data: { km: i } }),
  )
  const tree = buildMerkleTree({ leafInputs: events.map((e) => e.leafInput) })
  const anchored = { treeSize: 6, rootHash: toHex(tree.rootAt(6)) }
  const fetchProof = async (leafHash: string, treeSize: number) => {
    const index = events.findIndex((e) => e.id === leafHash)
    return { leafIndex: index, treeSize, auditPath: tree.inclusionProof(index, treeSize).map(toHex) }
  }
  const json = JSON.parse(JSON.stringify(events[2]!.envelope))
  assert.equal(envelopeLeafHash(json), events[2]!.id)
  assert.deepEqual(await checkEvent({ id: events[2]!.id, index: 2, envelope: json }, anchored, fetchProof), {
    state: 'verified',
    leafIndex: 2,
    treeSize: 6,
    rootHash: anchored.rootHash,
    auditPathLength: tree.inclusionProof(2, 6).length,
  })
  const pending = await checkEvent(
    { id: events[6]!.id, index: 6, envelope: events[6]!.envelope },
    anchored,
    fetchProof,
  )
  assert.equal(pending.state, 'pending')
  const altered = await checkEvent(
    { id: events[2]!.id, index: 2, envelope: { ...json, kind: 'door.unlocked' } },
    anchored,
    fetchProof,
  )
  assert.equal(altered.state, 'failed')
  const wrongRoot = await checkEvent(
    { id: events[2]!.id, index: 2, envelope: json },
    { treeSize: 6, rootHash: toHex(tree.rootAt(5)) },
    fetchProof,
  )
  assert.equal(wrongRoot.state, 'failed')
  assert.equal(fromHex('0xzz'), undefined)
})

test('the node serves the dashboard: index, hashed assets, SPA fallback, API 404 kept', async () => {
  const progress: string[] = []
  const app = await createServer({
    version: 'test',
    chain: () => ({ chainId: 31337, rpcUrl: 'http://127.0.0.1:1', contracts: {} }),
    health: async () => ({}),
    routes: [createDashboardRoutes({ progress: (m) => progress.push(m) })],
  })
  try {
    const index = await app.inject({ method: 'GET', url: '/' })
    assert.equal(index.statusCode, 200, progress.join('\n'))
    assert.match(index.headers['content-type'] as string, /^text\/html/)
    assert.equal(index.headers['cache-control'], 'no-cache')
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(index.body)?.[1]
    assert.ok(script, 'index.html names its bundle')
    const asset = await app.inject({ method: 'GET', url: script })
    assert.equal(asset.statusCode, 200)
    assert.match(asset.headers['content-type'] as string, /^text\/javascript/)
    assert.match(asset.headers['cache-control'] as string, /immutable/)
    const deep = await app.inject({ method: 'GET', url: '/vehicles/0xabc' })
    assert.equal(deep.statusCode, 200)
    assert.equal(deep.body, index.body)
    const missingAsset = await app.inject({ method: 'GET', url: '/assets/nope.js' })
    assert.equal(missingAsset.statusCode, 404)
    const traversal = await app.inject({ method: 'GET', url: '/assets/..%2f..%2fpackage.json' })
    assert.equal(traversal.statusCode, 404)
    const api = await app.inject({ method: 'GET', url: '/v1/nope' })
    assert.equal(api.statusCode, 404)
    assert.equal(api.json().code, 'NOT_FOUND')
    const health = await app.inject({ method: 'GET', url: '/v1/health' })
    assert.equal(health.statusCode, 200)
  } finally {
    await app.close()
  }
})

test('web/ type-checks under its own tsconfig', () => {
  const tsc = new URL('../node_modules/.bin/tsc', import.meta.url).pathname
  const result = spawnSync(tsc, ['--noEmit', '-p', new URL('../web', import.meta.url).pathname], {
    encoding: 'utf8',
  })
  assert.equal(result.status, 0, result.stdout + result.stderr)
})

test('a payload shown in the browser is checked against the envelope commitment', () => {
  const chain = createEventChain({ vehicle: `0x${'cd'.repeat(20)}` })
  const event = chain.append({
    kind: 'trip.ended',
    time: 1_700_000_000_000,
    data: { distanceKm: 12.5, note: 'ü' },
  })
  const payload = JSON.parse(JSON.stringify(payloadToJson(event.payload)))
  const envelope = JSON.parse(JSON.stringify(event.envelope))
  assert.equal(payloadMatchesCommit(envelope, payload), true)
  assert.equal(payloadMatchesCommit(envelope, { ...payload, data: { distanceKm: 1.5, note: 'ü' } }), false)
  assert.equal(payloadMatchesCommit(envelope, { ...payload, salt: `0x${'00'.repeat(16)}` }), false)
  assert.equal(payloadMatchesCommit(envelope, { ...payload, salt: '0x12' }), false)
})

test('the dashboard places an event in its vehicle’s shard by the node’s rule, and refuses a node that says otherwise', () => {
  const info = (count: number) =>
    ({
      log: {
        origin: 'o',
        verifierKey: 'k',
        shards: Array.from({ length: count }, (_, shard) => ({
          shard,
          origin: `o/shards/${shard}`,
          verifierKey: 'k',
        })),
      },
    }) as unknown as ChainInfo
  assert.equal(shardCountOf(info(4)), 4)
  assert.equal(shardCountOf({ log: { origin: 'o', verifierKey: 'k' } } as ChainInfo), 1)
  assert.deepEqual(shardLogOf(info(4), 3), { origin: 'o/shards/3', verifierKey: 'k' })
  assert.deepEqual(shardPaths(0), { api: '/v1/log', tiles: '/log' })
  assert.deepEqual(shardPaths(3), { api: '/v1/log/shards/3', tiles: '/log/shards/3' })
  for (let i = 0; i < 500; i++) {
    const vehicle = toHex(randomBytes(20))
    const shard = shardOfVehicle(vehicle, 4)
    assert.equal(vehicleShard(vehicle, 4), shard)
    assert.equal(vehicleShard(vehicle.toUpperCase().replace('0X', '0x'), 4, shard), shard)
    // The node claiming another shard for the event: refused.
    assert.throws(
      () => vehicleShard(vehicle, 4, (shard + 1) % 4),
      (error) => isErrorCode(error, 'SHARDS_MISMATCH'),
    )
  }
  const logId = toHex(randomBytes(32))
  for (const shard of [0, 1, 3]) assert.equal(shardLogIdOf(logId, shard), shardLogId(logId, shard))
  assert.throws(
    () => vehicleShard('0x1234', 4),
    (error) => isErrorCode(error, 'INVALID_ARGUMENT'),
  )
})
