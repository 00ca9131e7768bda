/**
 * `carchain verify`, `audit`, `ledger disclose` and `ledger erase` against a running node with a
 * one-car fleet: proofs check out against the chain, a tampered bundle is refused, only the owner
 * can erase, and every proof still verifies after erasure.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { loadConfig } from '../src/config.ts'
import { type RunningSystem, startSystem } from '../src/sim/system.ts'
import { cli } from './cli.ts'

const dataDir = mkdtempSync(join(tmpdir(), 'carchain-ledger-cli-'))
let node: RunningSystem
let eventId: string
let ownerIndex: number

before(async () => {
  node = await startSystem({
    config: loadConfig({
      flags: { data: dataDir, port: 0, vehicles: 1 },
      env: { CARCHAIN_ANCHOR_INTERVAL_MS: '1000' },
    }),
  })
  const [car] = node.fleet!.vehicles()
  ownerIndex = car!.ownerIndex
  // Wait for an anchored odometer event of the car.
  for (let i = 0; i < 120 && !eventId; i++) {
    await new Promise((resolve) => setTimeout(resolve, 500))
    const anchored = (await (await fetch(`${node.url}/v1/log/checkpoint`)).json()).anchored
    const { events } = await (await fetch(`${node.url}/v1/vehicles/${car!.vehicle}/events?limit=500`)).json()
    const odometer = events.find(
      (e: { kind: string; index: number }) =>
        e.kind === 'odometer' && anchored && e.index < anchored.treeSize,
    )
    if (odometer) eventId = odometer.id
  }
  assert.ok(eventId, 'no anchored odometer event within a minute')
})
after(async () => {
  await node?.stop()
  rmSync(dataDir, { recursive: true, force: true })
})

test('verify proves an event against the chain; a made-up event is not found', async () => {
  const ok = await cli('verify', '--event', eventId, '--node', node.url)
  assert.equal(ok.status, 0, JSON.stringify(ok.json))
  assert.equal(ok.json.valid, true)
  assert.equal(ok.json.kind, 'odometer')
  const missing = await cli('verify', '--event', `0x${'ab'.repeat(32)}`, '--node', node.url)
  assert.equal(missing.status, 1)
  assert.equal(missing.json.code, 'NOT_FOUND')
})

test('a disclosure bundle verifies against the node’s pinned log; a tampered one is refused', async () => {
  const file = join(dataDir, 'bundle.json')
  const stranger = await cli(
    'ledger',
    'disclose',
    '--event',
    eventId,
    '--out',
    file,
    '--node',
    node.url,
    '--owner-index',
    '12',
  )
  assert.equal(stranger.json.code, 'FORBIDDEN')
  const made = await cli(
    'ledger',
    'disclose',
    '--event',
    eventId,
    '--out',
    file,
    '--node',
    node.url,
    '--owner-index',
    String(ownerIndex),
  )
  assert.equal(made.status, 0, JSON.stringify(made.json))
  const verified = await cli('verify', '--bundle', file, '--node', node.url)
  assert.equal(verified.status, 0, JSON.stringify(verified.json))
  assert.equal(typeof verified.json.payload.km, 'number')
  const bundle = JSON.parse(readFileSync(file, 'utf8'))
  bundle.disclosure.payload.data.km -= 1000 // odometer fraud
  writeFileSync(file, JSON.stringify(bundle))
  const tampered = await cli('verify', '--bundle', file, '--node', node.url)
  assert.equal(tampered.status, 1)
  assert.equal(tampered.json.code, 'PROOF_INVALID')
})

test('only the owner erases; proofs still verify afterwards; the audit is consistent', async () => {
  const stranger = await cli('ledger', 'erase', '--event', eventId, '--node', node.url, '--owner-index', '12')
  assert.equal(stranger.json.code, 'FORBIDDEN')
  const erased = await cli(
    'ledger',
    'erase',
    '--event',
    eventId,
    '--node',
    node.url,
    '--owner-index',
    String(ownerIndex),
  )
  assert.equal(erased.json.erased, 1)
  const still = await cli('verify', '--event', eventId, '--node', node.url)
  assert.equal(still.json.valid, true)
  const audit = await cli('audit', '--node', node.url)
  assert.equal(audit.status, 0, JSON.stringify(audit.json))
  assert.equal(audit.json.consistent, true)
  assert.ok(audit.json.anchors >= 1)
})
