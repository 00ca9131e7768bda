/**
 * The dashboard's "Verify from tiles" in a real browser: `carchain up` (embedded anvil, PGlite), a
 * small seeded fleet, Debian's Chromium driven by playwright-core. The check runs in the page from
 * the node's own /log tiles and passes; pointed at a tiles mirror that lies — one hash flipped in
 * every hash tile, or a checkpoint signed by another key — it fails with PROOF_INVALID and
 * NOTE_INVALID. Screenshot to docs/img/ with UPDATE_SCREENSHOTS=1, else to a temp dir.
 */
import assert from 'node:assert/strict'
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process'
import { generateKeyPairSync } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import type { BrowserContext, Page } from 'playwright-core'
import {
  COSIGNATURE_TYPE,
  noteSigner,
  noteTextOf,
  parseCheckpointText,
  signCheckpointNote,
  verifierKey,
} from '../src/ledger/note.ts'
import { loadNoteKey } from '../src/node/transparency.ts'
import { WITNESS_KEY_FILE } from '../src/node/witness-server.ts'
import { DEMO_WITNESS_NAME } from '../src/sim/system.ts'
import { type SeededFleet, seedFleet } from './fleet-fixture.ts'
import { requirePart } from './skip.ts'

const chromiumPath = '/usr/bin/chromium'
const hasChromium = existsSync(chromiumPath)
const main = new URL('../src/cli/main.ts', import.meta.url).pathname
const dataDir = mkdtempSync(join(tmpdir(), 'carchain-dashboard-tiles-'))
const profileDir = mkdtempSync(join(tmpdir(), 'carchain-chromium-tiles-'))
const shotDir = process.env.UPDATE_SCREENSHOTS
  ? new URL('../docs/img/', import.meta.url).pathname
  : mkdtempSync(join(tmpdir(), 'carchain-shots-'))
mkdirSync(shotDir, { recursive: true })

let child: ChildProcessWithoutNullStreams | undefined
let url = ''
let fleet: SeededFleet | undefined
let browser: BrowserContext | undefined
let page: Page
let mirror: Server | undefined
let mirrorUrl = ''
/** How the mirror lies: 'none' serves the node's tiles as they are. */
let lie: 'none' | 'flip-hash' | 'other-key' = 'none'
const pageErrors: string[] = []

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
        if (upstream.ok && lie === 'flip-hash' && /^\/log\/tile\/\d+\//.test(path)) {
          body = Uint8Array.from(body)
          for (let i = 0; i < body.length; i += 32) body[i]! ^= 0x01
        }
        if (upstream.ok && lie === 'other-key' && path === '/log/checkpoint') {
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
  child = spawn(process.execPath, [main, 'up', '--json', '--port', '0', '--no-sim', '--data', dataDir], {
    env: { ...process.env, DATABASE_URL: '', CARCHAIN_ANCHOR_INTERVAL_MS: '2000' },
  })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  const info = await new Promise<{
    url: string
    chain: { rpcUrl: string; contracts: Record<string, string> }
  }>((resolve, reject) => {
    let stdout = ''
    child!.stdout.on('data', (d: Buffer) => {
      stdout += d.toString()
      const line = stdout.split('\n').find((l) => l.startsWith('{"event":"up"'))
      if (line) resolve(JSON.parse(line))
    })
    child!.once('exit', (code) => reject(new Error(`up exited ${code}: ${stdout}\n${stderr}`)))
  })
  url = info.url
  fleet = await seedFleet(info, 2)
  await startMirror()
  const { chromium } = await import('playwright-core')
  browser = await chromium.launchPersistentContext(profileDir, {
    executablePath: chromiumPath,
    viewport: { width: 1440, height: 1100 },
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
    ],
  })
  page = browser.pages()[0] ?? (await browser.newPage())
  page.on('pageerror', (error) => {
    pageErrors.push(error.message)
  })
})

after(async () => {
  await browser?.close()
  mirror?.close()
  await fleet?.cleanup()
  if (child && child.exitCode === null) {
    child.kill('SIGINT')
    await new Promise((resolve) => child!.once('exit', resolve))
  }
  rmSync(dataDir, { recursive: true, force: true })
  rmSync(profileDir, { recursive: true, force: true })
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
  if (!requirePart(t, hasChromium, 'chromium not installed (apt-get install chromium)')) return
  const car = fleet!.cars[0]!
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
  const witness = loadNoteKey(join(dataDir, 'witness'), DEMO_WITNESS_NAME, {
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
