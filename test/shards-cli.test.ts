/**
 * A node of 4 log shards with a few seeded cars, a witness and a tiles directory: the shard API,
 * each shard's tiles and checkpoints (every shard's cosigned, served, written under the tiles
 * directory and anchored as published), `carchain verify` (also from a shard's tiles in the
 * directory), `ledger disclose` and `audit` (one shard or all) finding an event's shard by
 * themselves, a witness refusing a fork of one shard while the others go on, and the refusals: another shard count on the same data, a bundle naming another
 * shard's log, `--join` without the deployment's chain and database. The cars upload signed
 * batches the way real cars do (test/fleet-fixture.ts) and the log is anchored on demand, so the
 * file does not wait for the demo fleet or the anchoring timer. The node's database is a fresh
 * schema on the PostgreSQL server when `DATABASE_URL` is set (CI; creating and migrating it takes
 * a second where PGlite takes ten or more), else PGlite; src/ledger/shards.test.ts runs the shard
 * store on both.
 */

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { loadConfig } from '../src/config.ts'
import { type Database, openDatabase } from '../src/db/database.ts'
import { isErrorCode } from '../src/errors.ts'
import type { Hex } from '../src/ledger/bytes.ts'
import {
  type NoteSigner,
  noteTextOf,
  openCheckpointNote,
  signCheckpointNote,
  verifierKey,
  verifyCosignatures,
} from '../src/ledger/note.ts'
import { shardPath } from '../src/ledger/shard-rule.ts'
import { shardLogId, shardOfVehicle } from '../src/ledger/shards.ts'
import { shardOrigin, shardTilesDir } from '../src/node/checkpoints.ts'
import { loadNoteKey } from '../src/node/transparency.ts'
import { type RunningNode, startNode } from '../src/node/up.ts'
import { type RunningWitness, startWitness } from '../src/node/witness-server.ts'
import { addCheckpointBody } from '../src/node/witnesses.ts'
import { cli } from './cli.ts'
import { type SeededFleet, seedFleet } from './fleet-fixture.ts'

const SHARDS = 4
const dataDir = mkdtempSync(join(tmpdir(), 'carchain-shards-cli-'))
let database: string | undefined
let admin: Database | undefined
const schema = `shards_cli_${randomBytes(6).toString('hex')}`
const ORIGIN = 'shards.test/log'
const tilesDir = join(dataDir, 'tiles')
let signer: NoteSigner
let witness: RunningWitness
const config = (shards: number) =>
  loadConfig({
    flags: {
      data: dataDir,
      port: 0,
      noSim: true,
      shards,
      database,
      logOrigin: ORIGIN,
      tilesDir,
      witnesses: [`${witness.url}=${witness.witness.verifierKey}`],
    },
    // Anchored on demand (anchorNow), not by the timer.
    env: { CARCHAIN_ANCHOR_INTERVAL_MS: '3600000' },
  })
let node: RunningNode | undefined
const fleets: SeededFleet[] = []
let event: { id: Hex; shard: number; ownerIndex: number; vehicle: string }
const file = join(dataDir, 'bundle.json')
/** `ledger disclose` of the event, started once the event is known so it runs beside the verify tests. */
let disclosed: ReturnType<typeof cli>
const get = async (path: string) => {
  const response = await fetch(`${node!.url}${path}`)
  return { status: response.status, body: await response.json() }
}
const api = (shard: number) => shardPath('/v1/log', shard)
const tiles = (shard: number) => shardPath('/log', shard)
const signatureLines = (note: string) => note.slice(noteTextOf(note).length + 1)
/** Shard `shard`'s checkpoint as the node serves it, its verified head and the witness's cosignatures on it. */
const served = async (shard: number) => {
  const note = await (await fetch(`${node!.url}${tiles(shard)}/checkpoint`)).text()
  const key = verifierKey(shardOrigin(ORIGIN, shard), signer.publicKey)
  return {
    note,
    head: openCheckpointNote(note, key),
    cosigned: verifyCosignatures(signatureLines(note), noteTextOf(note), witness.witness.verifierKey).length,
  }
}

before(async () => {
  if (process.env.DATABASE_URL) {
    admin = await openDatabase({ engine: 'postgres', url: process.env.DATABASE_URL, maxConnections: 1 })
    await admin.exec(`create schema ${schema}`)
    const url = new URL(process.env.DATABASE_URL)
    url.searchParams.set('options', `-c search_path=${schema}`)
    database = url.toString()
  }
  // The note key is made first, so the witness knows every shard's verifier key before the node starts.
  signer = loadNoteKey(dataDir, ORIGIN).signer
  witness = await startWitness({
    dataDir: join(dataDir, 'witness'),
    name: 'shards.test/witness',
    logs: Array.from({ length: SHARDS }, (_, k) => verifierKey(shardOrigin(ORIGIN, k), signer.publicKey)),
  })
  node = await startNode({ config: config(SHARDS) })
  // Cars until one lands outside shard 0 (each does with probability 3/4).
  const outside = () =>
    fleets.flatMap((f) => f.cars).find((car) => shardOfVehicle(car.vehicle.toLowerCase(), SHARDS) !== 0)
  for (let i = 0; i < 5 && !outside(); i++) fleets.push(await seedFleet(node, 3))
  const car = outside()
  assert.ok(car, 'no seeded car outside shard 0')
  await node.anchoring.anchorNow()
  const shard = shardOfVehicle(car.vehicle.toLowerCase(), SHARDS)
  const anchored = (await get(`${api(shard)}/checkpoint`)).body.anchored
  const { events } = (await get(`/v1/vehicles/${car.vehicle}/events?limit=500`)).body
  const found = events.find(
    (e: { kind: string; index: number }) => e.kind === 'odometer' && anchored && e.index < anchored.treeSize,
  )
  assert.ok(found, 'the car’s odometer event is not anchored')
  event = { id: found.id, shard, ownerIndex: car.ownerIndex, vehicle: car.vehicle.toLowerCase() }
  disclosed = cli(
    'ledger',
    'disclose',
    '--event',
    event.id,
    '--out',
    file,
    '--node',
    node.url,
    '--owner-index',
    String(event.ownerIndex),
  )
})
after(async () => {
  await disclosed
  await node?.stop()
  await witness?.stop()
  for (const fleet of fleets) await fleet.cleanup()
  await admin?.exec(`drop schema ${schema} cascade`)
  await admin?.close()
  rmSync(dataDir, { recursive: true, force: true })
})

test('the shard API: the count, the rule, one log id per shard; each shard’s own log and tiles', async () => {
  const { body } = await get('/v1/log/shards')
  assert.equal(body.count, SHARDS)
  const logId = (await get('/v1/log/checkpoint')).body.logId as Hex
  assert.deepEqual(
    body.shards.map((s: { logId: Hex }) => s.logId),
    Array.from({ length: SHARDS }, (_, k) => shardLogId(logId, k)),
  )
  for (let shard = 0; shard < SHARDS; shard++) {
    const checkpoint = (await get(`${api(shard)}/checkpoint`)).body
    assert.equal(checkpoint.logId, body.shards[shard].logId)
    const note = await (await fetch(`${node!.url}${tiles(shard)}/checkpoint`)).text()
    const origin = note.split('\n')[0]!
    assert.equal(origin.endsWith(`/shards/${shard}`), shard !== 0)
  }
  // The event is in its shard's log only.
  const size = (await get(`${api(event.shard)}/checkpoint`)).body.treeSize
  const proof = await get(`${api(event.shard)}/proof/inclusion?leafHash=${event.id}&treeSize=${size}`)
  assert.equal(proof.status, 200)
  for (const other of body.shards as { shard: number; treeSize: number }[]) {
    if (other.shard === event.shard || other.treeSize === 0) continue
    const wrong = await get(
      `${api(other.shard)}/proof/inclusion?leafHash=${event.id}&treeSize=${other.treeSize}`,
    )
    assert.equal(wrong.body.code, 'NOT_FOUND')
  }
  assert.equal((await get(`/v1/log/shards/${SHARDS}/checkpoint`)).body.code, 'NOT_FOUND')
  assert.equal((await get('/v1/log/shards/1024/checkpoint')).status, 400)
  const chain = (await get('/v1/chain')).body
  assert.equal(chain.log.shards.length, SHARDS)
})

test('verify finds the event’s shard by itself, from the API and from that shard’s tiles', async () => {
  const chain = (await get('/v1/chain')).body
  // The CLI processes are independent of each other: run them side by side.
  const other = (event.shard + 1) % SHARDS
  // `verify` from the tiles at `at`, pinned to shard `shard`'s origin and key (no --shard: the
  // shard is the one the origin names).
  const verifyFromTiles = (at: string, shard: number) =>
    cli(
      'verify',
      '--event',
      event.id,
      '--node',
      node!.url,
      '--tiles',
      at,
      '--origin',
      chain.log.shards[shard].origin,
      '--verifier-key',
      chain.log.shards[shard].verifierKey,
    )
  const [ok, fromTiles, otherTiles, wrong, audit, all, fromDir] = await Promise.all([
    cli('verify', '--event', event.id, '--node', node!.url),
    verifyFromTiles(`${node!.url}${tiles(event.shard)}`, event.shard),
    // Attack: another shard's tiles, under that shard's origin and key: the event is not there.
    verifyFromTiles(`${node!.url}${tiles(other)}`, other),
    // Attack: pinned to another shard's log, the event is not there.
    cli('verify', '--event', event.id, '--node', node!.url, '--shard', String(other)),
    cli('audit', '--node', node!.url, '--shard', String(event.shard)),
    cli('audit', '--node', node!.url),
    // From the tiles directory the node wrote: shard k's tiles are in DIR/shards/<k>.
    verifyFromTiles(`file://${shardTilesDir(tilesDir, event.shard)}`, event.shard),
  ])
  assert.equal(ok.status, 0, JSON.stringify(ok.json))
  assert.equal(ok.json.valid, true)
  assert.equal(fromTiles.status, 0, JSON.stringify(fromTiles.json))
  assert.equal(fromDir.status, 0, JSON.stringify(fromDir.json))
  assert.notEqual(otherTiles.status, 0, JSON.stringify(otherTiles.json))
  assert.notEqual(wrong.status, 0)
  assert.equal(audit.json.consistent, true, JSON.stringify(audit.json))
  // Without --shard: every shard, each consistent with its anchors.
  assert.equal(all.status, 0, JSON.stringify(all.json))
  assert.equal(all.json.consistent, true)
  assert.deepEqual(
    all.json.shards.map((s: { shard: number; consistent: boolean }) => [s.shard, s.consistent]),
    Array.from({ length: SHARDS }, (_, k) => [k, true]),
  )
  assert.match(all.stderr, /shard 3/)
})

test('every shard’s checkpoint is cosigned by the witness, served, written to its place in the tiles dir and anchored as published', async () => {
  const { body } = await get('/v1/log/shards')
  for (let shard = 0; shard < SHARDS; shard++) {
    const { note, head, cosigned } = await served(shard)
    assert.equal(head.origin, shardOrigin(ORIGIN, shard))
    assert.equal(head.treeSize, body.shards[shard].treeSize)
    assert.equal(cosigned, 1, `shard ${shard}'s checkpoint carries the witness's cosignature`)
    const dir = shardTilesDir(tilesDir, shard)
    assert.equal(readFileSync(join(dir, 'checkpoint'), 'utf8'), note)
    const anchored = (await get(`${api(shard)}/checkpoint`)).body.anchored
    assert.equal(anchored?.treeSize ?? 0, head.treeSize, `shard ${shard} anchored its published checkpoint`)
  }
  // The witness holds each shard as its own log.
  const listed = await (await fetch(witness.url)).json()
  assert.equal(listed.logs.length, SHARDS)
})

test('attack: audit of all shards through a node that rewrites one shard’s head names that shard and fails', async () => {
  const shard = event.shard
  // A node whose answers are the real node's, except shard k's head: another root at its size.
  const liar = createServer((request, response) => {
    void (async () => {
      const answer = await fetch(`${node!.url}${request.url}`)
      let body = await answer.text()
      if (request.url === `${api(shard)}/checkpoint`)
        body = JSON.stringify({ ...JSON.parse(body), rootHash: `0x${'ab'.repeat(32)}` })
      response.writeHead(answer.status, { 'content-type': 'application/json' }).end(body)
    })().catch((error: unknown) => response.destroy(error as Error))
  })
  await new Promise<void>((resolve) => liar.listen(0, '127.0.0.1', resolve))
  try {
    const url = `http://127.0.0.1:${(liar.address() as AddressInfo).port}`
    const audit = await cli('audit', '--node', url)
    assert.equal(audit.status, 1, JSON.stringify(audit.json))
    assert.equal(audit.json.consistent, false)
    for (const entry of audit.json.shards as { shard: number; consistent: boolean }[])
      assert.equal(entry.consistent, entry.shard !== shard, `shard ${entry.shard}`)
    assert.match(audit.stderr, new RegExp(`shard ${shard}/${SHARDS}: INCONSISTENT`))
  } finally {
    await new Promise((resolve) => liar.close(resolve))
  }
})

test('attack: the witness refuses a fork of one shard; that shard and the others are cosigned as they grow', async () => {
  const shard = event.shard
  const { head } = await served(shard)
  const forked = signCheckpointNote(
    { treeSize: head.treeSize, rootHash: new Uint8Array(32).fill(3) },
    { ...signer, name: shardOrigin(ORIGIN, shard) },
  )
  const refused = await fetch(`${witness.url}/add-checkpoint`, {
    method: 'POST',
    body: addCheckpointBody(head.treeSize, [], forked),
  })
  assert.equal(refused.status, 422)
  assert.equal((await refused.json()).code, 'WITNESS_INCONSISTENT')
  const before = await Promise.all(Array.from({ length: SHARDS }, (_, k) => served(k)))
  fleets.push(await seedFleet(node!, 3))
  await node!.anchoring.anchorNow()
  const { body } = await get('/v1/log/shards')
  let grew = 0
  for (let k = 0; k < SHARDS; k++) {
    const after = await served(k)
    assert.equal(after.head.treeSize, body.shards[k].treeSize)
    assert.equal(after.cosigned, 1, `shard ${k} is cosigned after the fork was refused`)
    if (after.head.treeSize > before[k]!.head.treeSize) grew++
  }
  assert.ok(grew >= 1, 'the new cars grew some shard')
})

test('a disclosure bundle names its shard’s log and verifies; attack: one naming another shard’s log is refused', async () => {
  const made = await disclosed
  assert.equal(made.status, 0, JSON.stringify(made.json))
  const bundle = JSON.parse(readFileSync(file, 'utf8'))
  const { body } = await get('/v1/log/shards')
  assert.equal(bundle.anchor.logId, body.shards[event.shard].logId)
  const other = (event.shard + 1) % SHARDS
  const renamed = join(dataDir, 'renamed.json')
  writeFileSync(
    renamed,
    JSON.stringify({ ...bundle, anchor: { ...bundle.anchor, logId: body.shards[other].logId } }),
  )
  const [ok, refused] = await Promise.all([
    cli('verify', '--bundle', file, '--node', node!.url),
    cli('verify', '--bundle', renamed, '--node', node!.url),
  ])
  assert.equal(ok.status, 0, JSON.stringify(ok.json))
  assert.equal(ok.json.log.logId, body.shards[event.shard].logId)
  assert.equal(refused.json.code, 'LOG_UNTRUSTED')
})

test('attack: another shard count on the same data is refused; --join needs the deployment’s chain and database', async () => {
  await node!.stop()
  node = undefined
  await assert.rejects(startNode({ config: config(2) }), (e) => isErrorCode(e, 'SHARDS_MISMATCH'))
  assert.throws(
    () => loadConfig({ flags: { data: dataDir, join: true }, env: {} }),
    (e) => isErrorCode(e, 'CONFIG_INVALID'),
  )
  assert.throws(
    () => loadConfig({ flags: { data: dataDir, shards: 0 }, env: {} }),
    (e) => isErrorCode(e, 'CONFIG_INVALID'),
  )
  assert.throws(
    () => loadConfig({ flags: { data: dataDir }, env: { CARCHAIN_SHARDS: '1025' } }),
    (e) => isErrorCode(e, 'CONFIG_INVALID'),
  )
})
