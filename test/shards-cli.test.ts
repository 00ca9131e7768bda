/**
 * A node of 4 log shards with the demo fleet (PGlite): the shard API, each shard's tiles and
 * signed checkpoints, `carchain verify`, `ledger disclose` and `audit` finding an event's shard by
 * themselves, and the refusals: another shard count on the same data, a bundle naming another
 * shard's log, `--join` without the deployment's chain and database.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { loadConfig } from '../src/config.ts'
import { isErrorCode } from '../src/errors.ts'
import type { Hex } from '../src/ledger/bytes.ts'
import { shardLogId, shardOfVehicle } from '../src/ledger/shards.ts'
import { type RunningSystem, startSystem } from '../src/sim/system.ts'
import { cli } from './cli.ts'

const SHARDS = 4
const dataDir = mkdtempSync(join(tmpdir(), 'carchain-shards-cli-'))
const config = (shards: number) =>
  loadConfig({
    flags: { data: dataDir, port: 0, vehicles: 6, shards },
    env: { CARCHAIN_ANCHOR_INTERVAL_MS: '1000', CARCHAIN_ANCHOR_EVERY: '20' },
  })
let node: RunningSystem | undefined
let event: { id: Hex; shard: number; ownerIndex: number; vehicle: string }
const get = async (path: string) => {
  const response = await fetch(`${node!.url}${path}`)
  return { status: response.status, body: await response.json() }
}
const api = (shard: number) => (shard === 0 ? '/v1/log' : `/v1/log/shards/${shard}`)

before(async () => {
  node = await startSystem({ config: config(SHARDS) })
  // An anchored odometer event of a car outside shard 0.
  const cars = node.fleet!.vehicles().filter((car) => shardOfVehicle(car.vehicle.toLowerCase(), SHARDS) !== 0)
  assert.ok(cars.length > 0, 'no demo car outside shard 0')
  for (let i = 0; i < 240 && !event; i++) {
    await new Promise((resolve) => setTimeout(resolve, 500))
    for (const car of cars) {
      const shard = shardOfVehicle(car.vehicle.toLowerCase(), SHARDS)
      const anchored = (await get(`${api(shard)}/checkpoint`)).body.anchored
      const { events } = (await get(`/v1/vehicles/${car.vehicle}/events?limit=500`)).body
      const found = events.find(
        (e: { kind: string; index: number }) =>
          e.kind === 'odometer' && anchored && e.index < anchored.treeSize,
      )
      if (found) {
        event = { id: found.id, shard, ownerIndex: car.ownerIndex, vehicle: car.vehicle.toLowerCase() }
        break
      }
    }
  }
  assert.ok(event, 'no anchored odometer event outside shard 0 within two minutes')
})
after(async () => {
  await node?.stop()
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
  const other = (event.shard + 1) % SHARDS
  const otherSize = (await get(`${api(other)}/checkpoint`)).body.treeSize
  if (otherSize > 0) {
    const wrong = await get(`${api(other)}/proof/inclusion?leafHash=${event.id}&treeSize=${otherSize}`)
    assert.equal(wrong.body.code, 'NOT_FOUND')
  }
  assert.equal((await get(`/v1/log/shards/${SHARDS}/checkpoint`)).body.code, 'NOT_FOUND')
  assert.equal((await get('/v1/log/shards/1024/checkpoint')).status, 400)
  const chain = (await get('/v1/chain')).body
  assert.equal(chain.log.shards.length, SHARDS)
})

test('verify finds the event’s shard by itself, from the API and from that shard’s tiles', async () => {
  const ok = await cli('verify', '--event', event.id, '--node', node!.url)
  assert.equal(ok.status, 0, JSON.stringify(ok.json))
  assert.equal(ok.json.valid, true)
  const chain = (await get('/v1/chain')).body
  const log = chain.log.shards[event.shard]
  const tiles = await cli(
    'verify',
    '--event',
    event.id,
    '--node',
    node!.url,
    '--shard',
    String(event.shard),
    '--tiles',
    `${node!.url}${event.shard === 0 ? '/log' : `/log/shards/${event.shard}`}`,
    '--origin',
    log.origin,
    '--verifier-key',
    log.verifierKey,
  )
  assert.equal(tiles.status, 0, JSON.stringify(tiles.json))
  // Attack: pinned to another shard's log, the event is not there.
  const wrong = await cli(
    'verify',
    '--event',
    event.id,
    '--node',
    node!.url,
    '--shard',
    String((event.shard + 1) % SHARDS),
  )
  assert.notEqual(wrong.status, 0)
  const audit = await cli('audit', '--node', node!.url, '--shard', String(event.shard))
  assert.equal(audit.json.consistent, true, JSON.stringify(audit.json))
  const unpinned = await cli('audit', '--node', node!.url)
  assert.equal(unpinned.json.code, 'CLI_USAGE')
})

test('a disclosure bundle names its shard’s log and verifies; attack: one naming another shard’s log is refused', async () => {
  const file = join(dataDir, 'bundle.json')
  const made = await cli(
    'ledger',
    'disclose',
    '--event',
    event.id,
    '--out',
    file,
    '--node',
    node!.url,
    '--owner-index',
    String(event.ownerIndex),
  )
  assert.equal(made.status, 0, JSON.stringify(made.json))
  const bundle = JSON.parse(readFileSync(file, 'utf8'))
  const { body } = await get('/v1/log/shards')
  assert.equal(bundle.anchor.logId, body.shards[event.shard].logId)
  const ok = await cli('verify', '--bundle', file, '--node', node!.url)
  assert.equal(ok.status, 0, JSON.stringify(ok.json))
  assert.equal(ok.json.log.logId, body.shards[event.shard].logId)

  const other = (event.shard + 1) % SHARDS
  const renamed = join(dataDir, 'renamed.json')
  writeFileSync(
    renamed,
    JSON.stringify({ ...bundle, anchor: { ...bundle.anchor, logId: body.shards[other].logId } }),
  )
  assert.equal((await cli('verify', '--bundle', renamed, '--node', node!.url)).json.code, 'LOG_UNTRUSTED')
})

test('attack: another shard count on the same data is refused; --join needs the deployment’s chain and database', async () => {
  await node!.stop()
  node = undefined
  await assert.rejects(startSystem({ config: config(2) }), (e) => isErrorCode(e, 'SHARDS_MISMATCH'))
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
