/**
 * A node of 4 log shards with a few seeded cars: the shard API, each shard's tiles and
 * signed checkpoints, `carchain verify`, `ledger disclose` and `audit` finding an event's shard by
 * themselves, and the refusals: another shard count on the same data, a bundle naming another
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
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { loadConfig } from '../src/config.ts'
import { type Database, openDatabase } from '../src/db/database.ts'
import { isErrorCode } from '../src/errors.ts'
import type { Hex } from '../src/ledger/bytes.ts'
import { shardLogId, shardOfVehicle } from '../src/ledger/shards.ts'
import { type RunningNode, startNode } from '../src/node/up.ts'
import { cli } from './cli.ts'
import { type SeededFleet, seedFleet } from './fleet-fixture.ts'

const SHARDS = 4
const dataDir = mkdtempSync(join(tmpdir(), 'carchain-shards-cli-'))
let database: string | undefined
let admin: Database | undefined
const schema = `shards_cli_${randomBytes(6).toString('hex')}`
const config = (shards: number) =>
  loadConfig({
    flags: { data: dataDir, port: 0, noSim: true, shards, database },
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
const api = (shard: number) => (shard === 0 ? '/v1/log' : `/v1/log/shards/${shard}`)

before(async () => {
  if (process.env.DATABASE_URL) {
    admin = await openDatabase({ engine: 'postgres', url: process.env.DATABASE_URL, maxConnections: 1 })
    await admin.exec(`create schema ${schema}`)
    const url = new URL(process.env.DATABASE_URL)
    url.searchParams.set('options', `-c search_path=${schema}`)
    database = url.toString()
  }
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
    const note = await (
      await fetch(`${node!.url}${shard === 0 ? '/log' : `/log/shards/${shard}`}/checkpoint`)
    ).text()
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
  const log = chain.log.shards[event.shard]
  // The CLI processes are independent of each other: run them side by side.
  const other = (event.shard + 1) % SHARDS
  const [ok, tiles, otherTiles, wrong, audit, unpinned] = await Promise.all([
    cli('verify', '--event', event.id, '--node', node!.url),
    cli(
      'verify',
      '--event',
      event.id,
      '--node',
      node!.url,
      // No --shard: the shard is the one the origin names.
      '--tiles',
      `${node!.url}${event.shard === 0 ? '/log' : `/log/shards/${event.shard}`}`,
      '--origin',
      log.origin,
      '--verifier-key',
      log.verifierKey,
    ),
    // Attack: another shard's tiles, under that shard's origin and key: the event is not there.
    cli(
      'verify',
      '--event',
      event.id,
      '--node',
      node!.url,
      '--tiles',
      `${node!.url}${other === 0 ? '/log' : `/log/shards/${other}`}`,
      '--origin',
      chain.log.shards[other].origin,
      '--verifier-key',
      chain.log.shards[other].verifierKey,
    ),
    // Attack: pinned to another shard's log, the event is not there.
    cli('verify', '--event', event.id, '--node', node!.url, '--shard', String(other)),
    cli('audit', '--node', node!.url, '--shard', String(event.shard)),
    cli('audit', '--node', node!.url),
  ])
  assert.equal(ok.status, 0, JSON.stringify(ok.json))
  assert.equal(ok.json.valid, true)
  assert.equal(tiles.status, 0, JSON.stringify(tiles.json))
  assert.notEqual(otherTiles.status, 0, JSON.stringify(otherTiles.json))
  assert.notEqual(wrong.status, 0)
  assert.equal(audit.json.consistent, true, JSON.stringify(audit.json))
  assert.equal(unpinned.json.code, 'CLI_USAGE')
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
