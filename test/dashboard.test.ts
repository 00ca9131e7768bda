/**
 * The dashboard end to end in a real browser: `carchain up` as a user runs it (embedded anvil,
 * PGlite, the demo fleet), Debian's Chromium driven by playwright-core. Checks the fleet view and
 * the node/chain status render, that a vehicle's timeline marks events "verified on chain" (the
 * check runs in the page against the root read from LedgerAnchor), and that a demo owner can sign
 * a key and revoke it on chain. Screenshots go to docs/img/ with UPDATE_SCREENSHOTS=1, else to a
 * temp dir.
 */
import assert from 'node:assert/strict'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import type { Page } from 'playwright-core'
import { developmentAccount } from '../src/chain/clients.ts'
import { grantSigner } from '../src/keys/grant.ts'
import { decodeShareLink, sharedKeyDomain } from '../src/keys/share-link.ts'
import { CHROMIUM_MISSING, type ChromiumFixture, hasChromium, startChromium } from './chromium.ts'
import { type SeededFleet, seedFleet } from './fleet-fixture.ts'
import { requirePart } from './skip.ts'

/** Screenshots of made-up data never go to docs/. */
const sampleDir = mkdtempSync(join(tmpdir(), 'carchain-shots-sample-'))

let fixture: ChromiumFixture | undefined
let url = ''
let fleet: SeededFleet | undefined
let page: Page
let pageErrors: string[] = []
let shotDir = ''

before(async () => {
  if (!hasChromium) return
  fixture = await startChromium({
    name: 'dashboard',
    // Without the simulator: the fixture's cars keep the test deterministic and light.
    upArgs: ['--no-sim'],
    env: { CARCHAIN_ANCHOR_INTERVAL_MS: '2000' },
    viewport: { width: 1440, height: 900 },
  })
  ;({ page, pageErrors, shotDir } = fixture)
  url = fixture.info.url
  fleet = await seedFleet(fixture.info, 4)
})

after(async () => {
  await fleet?.cleanup()
  await fixture?.close()
})

async function shot(name: string) {
  await page.screenshot({ path: join(shotDir, `${name}.png`) })
}

async function getJson(path: string): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${url}${path}`)
  return { status: response.status, body: await response.json().catch(() => undefined) }
}

test('the fleet view renders with the node health and chain', async (t) => {
  if (!requirePart(t, hasChromium, CHROMIUM_MISSING)) return
  await page.goto(url)
  await page.getByTestId('fleet-view').waitFor()
  await page.getByTestId('health').getByText('healthy').waitFor({ timeout: 15_000 })
  assert.match((await page.getByTestId('chain').textContent()) ?? '', /id 31337/)
  // The fleet appears (or says clearly why it cannot), never a blank page.
  await page
    .locator('[data-testid="vehicles-table"], [data-testid="unavailable"], .state-empty')
    .first()
    .waitFor({ timeout: 30_000 })
  // Deep links fall back to the app; unknown API routes keep their JSON 404.
  const deep = await fetch(`${url}/some/deep/link`)
  assert.equal(deep.status, 200)
  assert.match(deep.headers.get('content-type') ?? '', /text\/html/)
  assert.equal(((await getJson('/v1/nope')).body as { code: string }).code, 'NOT_FOUND')
  assert.deepEqual(pageErrors, [])
})

test('a vehicle timeline marks events verified on chain, checked in the browser', async (t) => {
  if (!requirePart(t, hasChromium, CHROMIUM_MISSING)) return
  const car = fleet!.cars[0]!
  await page.goto(url)
  const row = page.getByTestId('vehicle-row').filter({ hasText: car.vin })
  await row.waitFor({ timeout: 20_000 })
  await page
    .getByTestId('vehicle-row')
    .nth(fleet!.cars.length - 1)
    .waitFor()
  await page.waitForTimeout(500)
  await shot('dashboard')
  await row.locator('a.vehicle-link').click()
  await page.getByTestId('timeline').waitFor({ timeout: 20_000 })
  // Anchoring runs every 2 s here; the mark appears once an anchor covers the events.
  const marks = (testId: string, atLeast: number, timeout: number) =>
    page.waitForFunction(
      ([id, n]) => document.querySelectorAll(`[data-testid="${id}"]`).length >= (n as number),
      [testId, atLeast] as const,
      { timeout },
    )
  await marks('verified', 9, 60_000)
  // A new errand arrives live (over the stream) and waits for the next anchor.
  await fleet!.drive(car)
  await marks('timeline-event', 18, 20_000)
  assert.equal(await page.getByTestId('verify-failed').count(), 0, 'an event failed verification')
  await marks('verified', 18, 60_000)
  assert.equal(await page.getByTestId('verify-failed').count(), 0, 'an event failed verification')
  // The mark opens the steps of the check.
  await page.getByTestId('verified').nth(1).click()
  assert.match((await page.getByTestId('proof-details').textContent()) ?? '', /leaf \d+ of \d+/)
  await shot('timeline')
  assert.deepEqual(pageErrors, [])
})

test('a demo owner signs a key (EIP-712) and revokes it on chain', async (t) => {
  if (!requirePart(t, hasChromium, CHROMIUM_MISSING)) return
  await page.goto(`${url}/#/keys`)
  await page.getByTestId('keys-view').waitFor()
  const select = page.getByTestId('owner-select')
  if ((await select.count()) === 0) await page.getByTestId('owner-index').fill('1')
  else await select.selectOption('1')
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByTestId('signed-in').waitFor({ timeout: 15_000 })
  await page
    .getByTestId('grant-vehicle')
    .locator('option')
    .first()
    .waitFor({ state: 'attached', timeout: 15_000 })
  await page.getByTestId('grant-grantee').fill('0x90f79bf6eb2c4f870365e785982e1f101e93b906')
  await page.getByTestId('grant-sign').click()
  await page.getByTestId('grant-status').getByText('active').first().waitFor({ timeout: 15_000 })
  // The share link is what a grantee's phone presents: the car's own code must accept its signer.
  const shared = decodeShareLink(await page.getByTestId('share-link').inputValue())
  assert.equal(grantSigner(sharedKeyDomain(shared), shared), developmentAccount(1).address.toLowerCase())
  const owned = fleet!.cars.filter((c) => c.ownerIndex === 1).map((c) => c.vehicle.toLowerCase())
  assert.ok(owned.includes(shared.grant.vehicle), `${shared.grant.vehicle} is not owner 1's`)
  await shot('keys')
  await page.getByTestId('grant-revoke').first().click()
  await page.getByTestId('grant-status').getByText('revoked').first().waitFor({ timeout: 20_000 })
  // Signed in with Ethereum as the owner, the timeline shows the payloads too.
  const signedIn = (await page.getByTestId('signed-in').textContent()) ?? ''
  if (signedIn.includes('Sign-In with Ethereum session')) {
    await page.goto(`${url}/#/vehicles/${fleet!.cars[0]!.vehicle.toLowerCase()}`)
    await page.getByTestId('timeline').waitFor({ timeout: 20_000 })
    await page.getByRole('button', { name: 'show data' }).first().click()
    assert.match((await page.locator('.payload').first().textContent()) ?? '', /"/)
    await page.locator('.payload-summary').first().waitFor()
    assert.equal(await page.getByTestId('payload-bad').count(), 0, 'a payload does not match its commit')
    assert.ok((await page.getByTestId('payload-ok').count()) >= 9)
    await shot('timeline-owner')
  } else t.diagnostic('the node offers no Sign-In with Ethereum: payloads not checked')
  assert.deepEqual(pageErrors, [])
})

test('charging, wallets and anchors render or say they are not available', async (t) => {
  if (!requirePart(t, hasChromium, CHROMIUM_MISSING)) return
  for (const [hash, view] of [
    ['charging', 'charging-view'],
    ['wallets', 'wallets-view'],
    ['anchors', 'anchors-view'],
  ] as const) {
    await page.goto(`${url}/#/${hash}`)
    await page.getByTestId(view).waitFor()
    await page.locator('.state-loading').first().waitFor({ state: 'detached', timeout: 20_000 })
    await page.waitForTimeout(800)
    // A view that only says "not available" is no picture for the docs.
    if ((await page.getByTestId('unavailable').count()) > 0)
      await page.screenshot({ path: join(sampleDir, `${hash}.png`) })
    else await shot(hash)
  }
  assert.deepEqual(pageErrors, [])
})

test('the charging chart draws sessions in the docs/payments.md shape', async (t) => {
  if (!requirePart(t, hasChromium, CHROMIUM_MISSING)) return
  // The answer as docs/payments.md gives it, served to the page whatever the node has mounted.
  const base = Date.parse('2026-11-21T08:00:00Z')
  const sessions = Array.from({ length: 8 }, (_, i) => ({
    sessionId: `0x${(i + 1).toString(16).padStart(64, '0')}`,
    evseId: `DE*CCH*E0000${1 + (i % 3)}`,
    charger: `0x${'c1'.repeat(20)}`,
    vehicle: fleet!.cars[i % fleet!.cars.length]!.vehicle,
    payee: `0x${'cd'.repeat(20)}`,
    channelId: `0x${'ab'.repeat(32)}`,
    token: `0x${'00'.repeat(20)}`,
    pricePerKWh: '300000000000000000',
    sessionFee: '0',
    state: i === 7 ? 'active' : 'ended',
    code: i === 7 ? null : 'OK',
    startedAt: new Date(base + i * 3_600_000).toISOString(),
    endedAt: i === 7 ? null : new Date(base + i * 3_600_000 + 1_800_000).toISOString(),
    energyWh: 4000 + ((i * 2731) % 9000),
    amount: (BigInt(4000 + ((i * 2731) % 9000)) * 300000000000000n).toString(),
    cumulativeAmount: '0',
    vouchers: 6,
    claimed: i < 5,
  }))
  await page.route('**/v1/charging/sessions*', (route) =>
    route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify({ sessions }) }),
  )
  try {
    await page.goto(`${url}/#/charging`)
    await page.getByTestId('energy-chart').waitFor({ timeout: 15_000 })
    assert.equal(await page.locator('.chart-bar').count(), 8)
    assert.equal(await page.getByTestId('sessions-table').locator('tbody tr').count(), 8)
    const text = (await page.getByTestId('charging-view').textContent()) ?? ''
    assert.match(text, /Energy delivered/)
    assert.match(text, /claimed on chain/)
    await page.screenshot({ path: join(sampleDir, 'charging-sample.png') })
  } finally {
    await page.unroute('**/v1/charging/sessions*')
  }
  assert.deepEqual(pageErrors, [])
})
