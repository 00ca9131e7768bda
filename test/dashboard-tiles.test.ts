/**
 * The dashboard's "Verify from tiles" in a real browser: `carchain up --shards 4` (embedded anvil,
 * PGlite), a small seeded fleet with cars in shard 0 and in another shard, Debian's Chromium driven
 * by playwright-core. The check runs in the page from the node's own /log tiles and passes; pointed
 * at a tiles mirror that lies — one hash flipped in every hash tile, or a checkpoint signed by
 * another key — it fails with PROOF_INVALID and NOTE_INVALID. An event of a car in shard k ≠ 0 is
 * verified from `/log/shards/<k>` under shard k's origin and its log id's anchored root; shard 0's
 * tiles for it are refused (NOTE_INVALID: that note names shard 0's origin), and so is a node
 * that places it in another shard (SHARDS_MISMATCH). The Anchors view lists the 4 shards with their heads, anchors and witness
 * cosignatures. Screenshots to docs/img/ with UPDATE_SCREENSHOTS=1, else to a temp dir.
 */
import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import type { Page } from 'playwright-core'
import {
  COSIGNATURE_TYPE,
  noteSigner,
  noteTextOf,
  parseCheckpointText,
  signCheckpointNote,
  verifierKey,
} from '../src/ledger/note.ts'
import { shardLogId, shardOfVehicle } from '../src/ledger/shards.ts'
import { loadNoteKey } from '../src/node/transparency.ts'
import { WITNESS_KEY_FILE } from '../src/node/witness-server.ts'
import { DEMO_WITNESS_NAME } from '../src/sim/system.ts'
import { CHROMIUM_MISSING, type ChromiumFixture, hasChromium, startChromium } from './chromium.ts'
import { type FleetCar, type SeededFleet, seedFleet } from './fleet-fixture.ts'
import { requirePart } from './skip.ts'

const SHARDS = 4
let fixture: ChromiumFixture | undefined
let url = ''
let shotDir = ''
const fleets: SeededFleet[] = []
/** A car whose events are in shard 0, and one whose are in another shard. */
let inShard0: FleetCar | undefined
let inShardK: FleetCar | undefined
let page: Page
let mirror: Server | undefined
let mirrorUrl = ''
/** How the mirror lies: 'none' serves the node's tiles as they are. */
let lie: 'none' | 'flip-hash' | 'other-key' = 'none'
let pageErrors: string[] = []

/**
 * A tiles mirror on another origin (CORS open, as a CDN would be) that serves the node's /log,
 * lying as `lie` says.
 */
async function startMirror(): Promise<void> {
  const impostor = noteSigner('impostor.example/log', generateKeyPairSync('ed25519').privateKey)
  mirror = createServer((request, response) => {
    const path = request.url ?? '/'
    fetch(`${url}${path}`)
      .then(async (upstream) => {
        let body = new Uint8Array(await upstream.arrayBuffer())
        if (upstream.ok && lie === 'flip-hash' && /^\/log(\/shards\/\d+)?\/tile\/\d+\//.test(path)) {
          body = Uint8Array.from(body)
          for (let i = 0; i < body.length; i += 32) body[i]! ^= 0x01
        }
        if (upstream.ok && lie === 'other-key' && /^\/log(\/shards\/\d+)?\/checkpoint$/.test(path)) {
          // The same tree head, signed by a key that is not the log's, under the log's origin.
          const head = parseCheckpointText(noteTextOf(new TextDecoder().decode(body)))
          const forger = { ...impostor, name: head.origin }
          body = new TextEncoder().encode(signCheckpointNote(head, forger))
        }
        response.writeHead(upstream.status, { 'access-control-allow-origin': '*' })
        response.end(body)
      })
      .catch(() => response.writeHead(502).end())
  })
  await new Promise<void>((resolve) => mirror!.listen(0, '127.0.0.1', resolve))
  mirrorUrl = `http://127.0.0.1:${(mirror.address() as AddressInfo).port}/log`
}

before(async () => {
  if (!hasChromium) return
  fixture = await startChromium({
    name: 'dashboard-tiles',
    upArgs: ['--no-sim', '--shards', String(SHARDS)],
    env: { CARCHAIN_ANCHOR_INTERVAL_MS: '2000' },
    viewport: { width: 1440, height: 1100 },
  })
  const { info } = fixture
  ;({ page, pageErrors, shotDir } = fixture)
  url = info.url
  // Cars until one is in shard 0 and one in another (the rule spreads random cars evenly).
  const shardOf = (car: FleetCar) => shardOfVehicle(car.vehicle, SHARDS)
  for (let round = 0; round < 10; round++) {
    fleets.push(await seedFleet(info, round === 0 ? 4 : 2))
    const cars = fleets.flatMap((f) => f.cars)
    const zero = cars.find((car) => shardOf(car) === 0)
    const other = cars.find((car) => shardOf(car) !== 0)
    if (zero && other) {
      inShard0 = zero
      inShardK = other
      break
    }
  }
  assert.ok(inShard0 && inShardK, 'no cars in shard 0 and in another shard after 10 rounds')
  await startMirror()
})

after(async () => {
  mirror?.close()
  for (const fleet of fleets) await fleet.cleanup()
  await fixture?.close()
})

/** Runs the check with the tiles at `tilesUrl`; the code it ends with ('' when verified). */
async function verifyFromTiles(tilesUrl: string): Promise<string> {
  await page.getByTestId('tiles-url').fill(tilesUrl)
  await page.getByTestId('tiles-verify').click()
  await page
    .locator('[data-testid="tiles-verified"], [data-testid="tiles-failed"]')
    .first()
    .waitFor({ timeout: 30_000 })
  return (await page.getByTestId('tiles-verified').count()) > 0
    ? ''
    : ((await page.getByTestId('tiles-error-code').textContent()) ?? '')
}

test('the dashboard verifies an event from tiles alone, and names a lying mirror’s lie', async (t) => {
  if (!requirePart(t, hasChromium, CHROMIUM_MISSING)) return
  const car = inShard0!
  await page.goto(`${url}/#/vehicles/${car.vehicle.toLowerCase()}`)
  await page.getByTestId('timeline').waitFor({ timeout: 20_000 })
  // Once an anchor covers the events (every 2 s here), the mark opens the checks.
  await page.getByTestId('verified').nth(1).waitFor({ timeout: 60_000 })
  await page.getByTestId('verified').nth(1).click()
  await page.getByTestId('tiles-check').waitFor()
  // Origin and key are the node's /v1/chain `log`, shown to be pinned.
  const chainInfo = (await (await fetch(`${url}/v1/chain`)).json()) as {
    log: { origin: string; verifierKey: string }
  }
  assert.equal(await page.getByTestId('tiles-origin').inputValue(), chainInfo.log.origin)
  assert.equal(await page.getByTestId('tiles-verifier-key').inputValue(), chainInfo.log.verifierKey)
  assert.equal(await page.getByTestId('tiles-url').inputValue(), `${url}/log`)

  // The node's own tiles, then the same through an honest mirror on another origin.
  assert.equal(await verifyFromTiles(`${url}/log`), '')
  for (const step of ['checkpoint', 'anchor', 'entry', 'inclusion'])
    assert.equal(await page.getByTestId(`tiles-step-${step}`).getAttribute('data-state'), 'passed', step)
  assert.match((await page.getByTestId('tiles-summary').textContent()) ?? '', /LedgerAnchor\.latest/)
  // The demo witness's cosignature: seen, then verified under its cosigner key.
  const witness = loadNoteKey(join(fixture!.dataDir, 'witness'), DEMO_WITNESS_NAME, {
    file: WITNESS_KEY_FILE,
    mustExist: true,
  }).signer
  assert.match(
    (await page.getByTestId('tiles-cosignatures').textContent()) ?? '',
    new RegExp(`${DEMO_WITNESS_NAME}.*seen, not verified`),
  )
  await page
    .getByTestId('tiles-witness-keys')
    .fill(verifierKey(witness.name, witness.publicKey, COSIGNATURE_TYPE))
  assert.equal(await verifyFromTiles(`${url}/log`), '')
  assert.match((await page.getByTestId('tiles-cosignatures').textContent()) ?? '', /✓ verified, cosigned 20/)
  await page.screenshot({ path: join(shotDir, 'tiles-check.png') })
  lie = 'none'
  assert.equal(await verifyFromTiles(mirrorUrl), '')

  // A mirror that flips a hash in every hash tile: a proof fails.
  lie = 'flip-hash'
  assert.equal(await verifyFromTiles(mirrorUrl), 'PROOF_INVALID')
  assert.equal(await page.getByTestId('tiles-step-checkpoint').getAttribute('data-state'), 'passed')
  assert.equal(
    await page.locator('[data-testid^="tiles-step-"][data-state="failed"]').count(),
    1,
    'one step is marked failed',
  )

  // A mirror whose checkpoint another key signed: refused before any tile is read.
  lie = 'other-key'
  assert.equal(await verifyFromTiles(mirrorUrl), 'NOTE_INVALID')
  assert.equal(await page.getByTestId('tiles-step-checkpoint').getAttribute('data-state'), 'failed')

  // The right tiles under a verifier key the user pinned that is not the log's.
  lie = 'none'
  const other = noteSigner(chainInfo.log.origin, generateKeyPairSync('ed25519').privateKey)
  await page.getByTestId('tiles-verifier-key').fill(verifierKey(other.name, other.publicKey))
  assert.equal(await verifyFromTiles(`${url}/log`), 'NOTE_INVALID')
  assert.deepEqual(pageErrors, [])
})

/** Opens `car`'s timeline and the checks of its second-newest event, once an anchor covers it. */
async function openChecks(car: FleetCar): Promise<void> {
  await page.goto(`${url}/#/vehicles/${car.vehicle.toLowerCase()}`)
  await page.getByTestId('timeline').waitFor({ timeout: 20_000 })
  await page.getByTestId('verified').nth(1).waitFor({ timeout: 60_000 })
  await page.getByTestId('verified').nth(1).click()
  await page.getByTestId('tiles-check').waitFor()
}

test('an event of a car in shard k ≠ 0 verifies from shard k’s tiles, origin and anchored root', async (t) => {
  if (!requirePart(t, hasChromium, CHROMIUM_MISSING)) return
  const car = inShardK!
  const shard = shardOfVehicle(car.vehicle, SHARDS)
  assert.notEqual(shard, 0)
  const chainInfo = (await (await fetch(`${url}/v1/chain`)).json()) as {
    log: { origin: string; shards: { shard: number; origin: string; verifierKey: string }[] }
  }
  assert.equal(chainInfo.log.shards.length, SHARDS)
  const own = chainInfo.log.shards[shard]!
  assert.equal(own.origin, `${chainInfo.log.origin}/shards/${shard}`)
  // The timeline's marks are checked against shard k's anchored root and proofs.
  await openChecks(car)
  assert.match(
    (await page.getByTestId('proof-shard').textContent()) ?? '',
    new RegExp(`^${shard} of ${SHARDS}`),
  )
  assert.equal(await page.getByTestId('verify-failed').count(), 0)
  // The check's defaults: shard k's tiles, origin and key.
  assert.equal(await page.getByTestId('tiles-url').inputValue(), `${url}/log/shards/${shard}`)
  assert.equal(await page.getByTestId('tiles-origin').inputValue(), own.origin)
  assert.equal(await page.getByTestId('tiles-verifier-key').inputValue(), own.verifierKey)
  assert.equal(await verifyFromTiles(`${url}/log/shards/${shard}`), '')
  for (const step of ['checkpoint', 'anchor', 'entry', 'inclusion'])
    assert.equal(await page.getByTestId(`tiles-step-${step}`).getAttribute('data-state'), 'passed', step)
  assert.equal(await page.getByTestId('tiles-shard').textContent(), `, shard ${shard} of ${SHARDS}`)
  // The anchored root is the one of shard k's log id, computed in the page from shard 0's.
  const { logId } = (await (await fetch(`${url}/v1/log/checkpoint`)).json()) as { logId: `0x${string}` }
  assert.equal(
    await page
      .getByTestId('tiles-summary')
      .locator(`code[title="${shardLogId(logId, shard)}"]`)
      .count(),
    1,
  )
  // The demo witness cosigns shard k's checkpoints too.
  assert.match(
    (await page.getByTestId('tiles-cosignatures').textContent()) ?? '',
    new RegExp(DEMO_WITNESS_NAME),
  )
  await page.screenshot({ path: join(shotDir, 'tiles-check-shard.png') })

  // Shard k's tiles through the lying mirror: the lie is found there too.
  lie = 'flip-hash'
  assert.equal(await verifyFromTiles(`${mirrorUrl}/shards/${shard}`), 'PROOF_INVALID')
  lie = 'none'
  // Shard 0's tiles are another log: refused at the checkpoint, whose signature is under shard 0's
  // origin, not under the name of shard k's pinned key.
  assert.equal(await verifyFromTiles(`${url}/log`), 'NOTE_INVALID')
  assert.equal(await page.getByTestId('tiles-step-checkpoint').getAttribute('data-state'), 'failed')

  // A node that places the car's events in another shard than the rule: every mark and the
  // tiles check refuse it.
  await page.route('**/v1/vehicles/*/events*', async (route) => {
    const response = await route.fetch()
    const body = (await response.json()) as { events: { shard: number }[] }
    for (const event of body.events) event.shard = (shard + 1) % SHARDS
    await route.fulfill({ response, json: body })
  })
  try {
    // A fresh page (the same URL: only a reload reads the events again).
    await page.reload()
    await page.getByTestId('verify-failed').first().waitFor({ timeout: 30_000 })
    assert.equal(await page.getByTestId('verified').count(), 0)
    await page.getByTestId('verify-failed').nth(1).click()
    await page.getByTestId('tiles-check').waitFor()
    assert.equal(await verifyFromTiles(`${url}/log/shards/${shard}`), 'SHARDS_MISMATCH')
  } finally {
    await page.unroute('**/v1/vehicles/*/events*')
  }
  assert.deepEqual(pageErrors, [])
})

test('the Anchors view lists every shard: head, root on chain, latest anchor, witness', async (t) => {
  if (!requirePart(t, hasChromium, CHROMIUM_MISSING)) return
  const shard = shardOfVehicle(inShardK!.vehicle, SHARDS)
  await page.goto(`${url}/#/anchors`)
  await page.getByTestId('anchors-view').waitFor()
  const rows = page.getByTestId('shard-row')
  await page.waitForFunction(
    (count) => document.querySelectorAll('[data-testid="shard-row"]').length === count,
    SHARDS,
  )
  assert.equal(await page.getByTestId('stat-shards').locator('.stat-value').textContent(), String(SHARDS))
  const { shards } = (await (await fetch(`${url}/v1/log/shards`)).json()) as {
    shards: { shard: number; treeSize: number }[]
  }
  // Shards 0 and k hold a car's events: their rows show the head, an anchor and the witness.
  for (const k of [0, shard]) {
    const row = rows.nth(k)
    assert.equal(await row.getAttribute('data-shard'), String(k))
    await row.getByTestId('shard-cosignatures').getByText(DEMO_WITNESS_NAME).waitFor({ timeout: 20_000 })
    assert.ok(shards[k]!.treeSize > 0)
    assert.match((await row.getByTestId('shard-anchored').textContent()) ?? '', /^\d[\d,]* · 0x/)
    assert.notEqual(await row.getByTestId('shard-tree-size').textContent(), '0')
  }
  // Shard k's history, each row checked against its log id's Anchored events on chain.
  await page.getByTestId('anchors-shard').selectOption(String(shard))
  await page.getByTestId('anchors-table').getByText('✓ Anchored event').first().waitFor({ timeout: 20_000 })
  await page.screenshot({ path: join(shotDir, 'anchors-shards.png') })
  assert.deepEqual(pageErrors, [])
})
