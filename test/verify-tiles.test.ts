/**
 * `carchain verify --tiles` against a running node's /log/ tiles: the event is proven from tiles
 * alone (no node API: the deployment is pinned by --rpc/--contract/--log-id) against the root
 * anchored on chain, and a tiles server whose checkpoint another key signed is refused.
 */
import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { type Address, createPublicClient, type Hex, http } from 'viem'
import { ledgerAnchorAbi } from '../src/chain/generated/index.ts'
import { loadConfig } from '../src/config.ts'
import {
  type CheckpointNote,
  type NoteSigner,
  noteSigner,
  openCheckpointNote,
  signCheckpointNote,
} from '../src/ledger/note.ts'
import { loadNoteKey } from '../src/node/transparency.ts'
import { type RunningSystem, startSystem } from '../src/sim/system.ts'
import { cli } from './cli.ts'

const dataDir = mkdtempSync(join(tmpdir(), 'carchain-verify-tiles-'))
let node: RunningSystem
let eventId: string
let log: { origin: string; verifierKey: string }
let pin: string[]
let impostor: Server | undefined

before(async () => {
  node = await startSystem({
    config: loadConfig({
      flags: { data: dataDir, port: 0, vehicles: 1 },
      env: { CARCHAIN_ANCHOR_INTERVAL_MS: '1000' },
    }),
  })
  const chain = await (await fetch(`${node.url}/v1/chain`)).json()
  log = chain.log
  const [car] = node.fleet!.vehicles()
  for (let i = 0; i < 120 && !eventId; i++) {
    await new Promise((resolve) => setTimeout(resolve, 500))
    const checkpoint = await (await fetch(`${node.url}/v1/log/checkpoint`)).json()
    pin = ['--rpc', chain.rpcUrl, '--contract', checkpoint.contract, '--log-id', checkpoint.logId]
    const { events } = await (await fetch(`${node.url}/v1/vehicles/${car!.vehicle}/events?limit=500`)).json()
    const anchored = checkpoint.anchored
    const event = events.find(
      (e: { index: number }) => anchored && e.index < anchored.treeSize && e.index > 0,
    )
    if (event) eventId = event.id
  }
  assert.ok(eventId, 'no anchored event within a minute')
})
after(async () => {
  impostor?.close()
  await node?.stop()
  rmSync(dataDir, { recursive: true, force: true })
})

const verifyTiles = (tiles: string, verifierKey = log.verifierKey, origin = log.origin) =>
  cli(
    'verify',
    '--event',
    eventId,
    '--tiles',
    tiles,
    '--origin',
    origin,
    '--verifier-key',
    verifierKey,
    ...pin,
  )

test('verify --tiles proves an event from the node’s tiles alone against the root anchored on chain', async () => {
  const ok = await verifyTiles(`${node.url}/log`)
  assert.equal(ok.status, 0, JSON.stringify(ok.json))
  assert.equal(ok.json.valid, true)
  assert.equal(ok.json.id, eventId)
  assert.equal(ok.json.checkpoint.origin, log.origin)
  assert.ok(ok.json.checkpoint.treeSize >= ok.json.anchored.treeSize)
  // The same answer with the index given (one entry bundle read).
  const indexed = await cli(
    'verify',
    '--event',
    eventId,
    '--tiles',
    `${node.url}/log/`,
    '--origin',
    log.origin,
    '--verifier-key',
    log.verifierKey,
    '--index',
    String(ok.json.leafIndex),
    ...pin,
  )
  assert.equal(indexed.status, 0, JSON.stringify(indexed.json))
  assert.equal(indexed.json.leafIndex, ok.json.leafIndex)
  // A made-up event is not in the anchored tree.
  const missing = await cli(
    'verify',
    '--event',
    `0x${'ab'.repeat(32)}`,
    '--tiles',
    `${node.url}/log`,
    '--origin',
    log.origin,
    '--verifier-key',
    log.verifierKey,
    ...pin,
  )
  assert.equal(missing.json.code, 'NOT_FOUND')
})

/** What a tampering tiles server answers: other bytes, or also another status. */
type Tampered = Uint8Array | { status: number; body: Uint8Array }

/** A tiles server in front of the node's /log/ that changes what `tamper` says; resolves with its URL. */
async function tamperingServer(
  tamper: (path: string, body: Uint8Array, status: number) => Tampered | Promise<Tampered>,
): Promise<string> {
  impostor?.close()
  impostor = createServer(async (request, response) => {
    const upstream = await fetch(`${node.url}/log${request.url}`)
    const answer = await tamper(request.url!, new Uint8Array(await upstream.arrayBuffer()), upstream.status)
    if (answer instanceof Uint8Array) response.writeHead(upstream.status).end(answer)
    else response.writeHead(answer.status).end(answer.body)
  })
  await new Promise<void>((resolve) => impostor!.listen(0, '127.0.0.1', resolve))
  return `http://127.0.0.1:${(impostor.address() as AddressInfo).port}`
}

const resign = (body: Uint8Array, change: (c: CheckpointNote) => CheckpointNote, signer: NoteSigner) =>
  new TextEncoder().encode(
    signCheckpointNote(change(openCheckpointNote(new TextDecoder().decode(body), log.verifierKey)), signer),
  )

test('attack: a tiles server whose checkpoint another key signed is refused', async () => {
  // The impostor serves the node's own tiles, but the same tree head signed by its own key.
  const forger = noteSigner(log.origin, generateKeyPairSync('ed25519').privateKey)
  const url = await tamperingServer((path, body) =>
    path === '/checkpoint' ? resign(body, (c) => c, forger) : body,
  )
  const refused = await verifyTiles(url)
  assert.equal(refused.status, 1)
  assert.equal(refused.json.code, 'NOTE_INVALID')
  // Under another origin than the key's name, the real checkpoint is not the log asked for.
  const wrongOrigin = await verifyTiles(`${node.url}/log`, log.verifierKey, 'other.example/log')
  assert.equal(wrongOrigin.json.code, 'LOG_UNTRUSTED')
})

test('attack: with the log’s own key, a rolled-back checkpoint, a second history and a forged tile are refused', async () => {
  // The log operator itself (its note key from the data dir) tries to show another log than the chain's.
  const operator = loadNoteKey(dataDir, log.origin).signer
  const anchorClient = createPublicClient({ transport: http(pin[1]) })
  const rolledBack = await tamperingServer((path, body) =>
    path === '/checkpoint' ? resign(body, (c) => ({ ...c, treeSize: 1 }), operator) : body,
  )
  const rolled = await verifyTiles(rolledBack)
  assert.equal(rolled.json.code, 'LOG_UNTRUSTED')
  assert.match(rolled.json.message, /older than the root anchored/)
  // The size anchored on chain for the pinned log id, read when the client asks.
  const anchoredSize = async () => {
    const [treeSize] = await anchorClient.readContract({
      address: pin[3] as Address,
      abi: ledgerAnchorAbi,
      functionName: 'latest',
      args: [pin[5] as Hex],
    })
    return Number(treeSize)
  }
  // A second history: a checkpoint of the size anchored on chain (read when the client asks) with another root.
  const fork = await tamperingServer(async (path, body) => {
    if (path !== '/checkpoint') return body
    const treeSize = await anchoredSize()
    return resign(body, (c) => ({ ...c, treeSize, rootHash: new Uint8Array(32).fill(7) }), operator)
  })
  const forked = await verifyTiles(fork)
  assert.equal(forked.json.code, 'LOG_UNTRUSTED')
  assert.match(forked.json.message, /two histories/)
  // A larger checkpoint that does not extend the anchored tree: the consistency proof from the tiles fails.
  // It makes up the tiles the node does not have (yet) for it.
  const notExtending = await tamperingServer(async (path, body, status) => {
    if (path !== '/checkpoint')
      return status === 404
        ? { status: 200, body: new Uint8Array(32 * Number(/\.p\/(\d+)$/.exec(path)?.[1] ?? 256)) }
        : body
    const treeSize = await anchoredSize()
    return resign(
      body,
      (c) => ({ ...c, treeSize: treeSize + 1, rootHash: new Uint8Array(32).fill(9) }),
      operator,
    )
  })
  const diverged = await verifyTiles(notExtending)
  assert.equal(diverged.json.code, 'PROOF_INVALID')
  assert.match(diverged.json.message, /extends the tree/)
  // A hash tile with one byte changed: the proof no longer reaches the anchored root.
  const forged = await tamperingServer((path, body) => {
    if (!/^\/tile\/0\//.test(path)) return body
    const copy = body.slice()
    copy[0]! ^= 1
    return copy
  })
  const refused = await verifyTiles(forged)
  assert.equal(refused.status, 1)
  assert.equal(refused.json.code, 'PROOF_INVALID')
})

test('attack: a tiles server that sends a checkpoint or a tile larger than the formats allow is not read to the end', async () => {
  const huge = new Uint8Array(4 * 1024 * 1024).fill(0x41)
  const bigNote = await tamperingServer((path, body) => (path === '/checkpoint' ? huge : body))
  assert.equal((await verifyTiles(bigNote)).json.code, 'TILE_TOO_LARGE')
  const bigTile = await tamperingServer((path, body) => (/^\/tile\/0\//.test(path) ? huge : body))
  assert.equal((await verifyTiles(bigTile)).json.code, 'TILE_TOO_LARGE')
})
