/**
 * The key app end to end in a real browser (issue 16): `carchain up` with one demo car, Debian's
 * Chromium driven by playwright-core, and Chromium's virtual WebAuthn authenticator (DevTools
 * protocol `WebAuthn.addVirtualAuthenticator`, internal, user-verifying). On a phone-sized page
 * the grantee makes a passkey; the owner signs a PasskeyGrant for its public key (here in Node,
 * with the demo owner's development key) and shares it as a link; the key app opens it, shows what
 * it allows, and unlocks the car over the node's link relay with one tap — the car checks the
 * browser's real WebAuthn assertion offline. The frame the browser sent, replayed or tampered
 * with, is refused by the car; so are real assertions made on another site (wrong RP ID, wrong
 * origin). Screenshot to docs/img/ with UPDATE_SCREENSHOTS=1.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import type { Page } from 'playwright-core'
import { createPublicClient, http } from 'viem'
import WebSocket from 'ws'
import { developmentAccount } from '../src/chain/clients.ts'
import { issuePasskeyGrant } from '../src/keys/grant.ts'
import { LinkClient } from '../src/keys/link-client.ts'
import { epochOf } from '../src/keys/registry.ts'
import { encodeShareLink, SHARE_LINK_PREFIX } from '../src/keys/share-link.ts'
import { type KeyDomain, passkeyFingerprint, Scope } from '../src/keys/typed-data.ts'
import {
  addVirtualAuthenticator,
  CHROMIUM_MISSING,
  type ChromiumFixture,
  hasChromium,
  startChromium,
  type UpInfo,
} from './chromium.ts'
import { requirePart } from './skip.ts'

let fixture: ChromiumFixture | undefined
let info: UpInfo
let origin = ''
let page: Page
let pageErrors: string[] = []
let shotDir = ''
const sentFrames: string[] = []

before(async () => {
  if (!hasChromium) return
  fixture = await startChromium({
    name: 'keyapp',
    upArgs: ['--vehicles', '1'],
    env: { CARCHAIN_ANCHOR_INTERVAL_MS: '3600000' },
    viewport: { width: 390, height: 844 }, // a phone
    deviceScaleFactor: 2,
  })
  ;({ info, page, pageErrors, shotDir } = fixture)
  // WebAuthn takes a domain as RP ID, never an IP address: the page is opened as localhost.
  origin = `http://localhost:${new URL(info.url).port}`
  page.on('websocket', (socket) => {
    socket.on('framesent', (frame) => {
      sentFrames.push(String(frame.payload))
    })
  })
})

after(() => fixture?.close())

test('a passkey made in the key app receives a grant and unlocks a demo car; its frame replayed or tampered is refused', async (t) => {
  if (!requirePart(t, hasChromium, CHROMIUM_MISSING)) return
  // The phone's authenticator: Chromium's virtual one, user-verifying (as a phone with biometrics).
  await addVirtualAuthenticator(fixture!, page)

  await page.goto(`${origin}/#/key`)
  await page.getByTestId('key-app').waitFor()
  await page.getByTestId('passkey-create').click()
  const publicKey = (
    (await page.getByTestId('passkey-public').first().textContent({ timeout: 15_000 })) ?? ''
  ).trim()
  assert.match(publicKey, /^0x04[0-9a-f]{128}$/)
  // Its fingerprint, the one the owner's console shows beside the key it signs for it.
  assert.equal(
    await page.getByTestId('passkey-fingerprint').first().textContent(),
    passkeyFingerprint(publicKey as `0x${string}`),
  )

  // The owner signs a PasskeyGrant for that key and shares it as a link.
  const cars = (await (await fetch(`${info.url}/v1/sim/vehicles`)).json()) as {
    vehicle: `0x${string}`
    ownerIndex: number
    link: string
  }[]
  const car = cars[0]!
  const domain: KeyDomain = {
    chainId: info.chain.chainId,
    keyRegistry: info.chain.contracts.KeyRegistry as `0x${string}`,
  }
  const client = createPublicClient({ transport: http(info.chain.rpcUrl) })
  const grant = await issuePasskeyGrant({
    signer: developmentAccount(car.ownerIndex),
    domain,
    vehicle: car.vehicle,
    passkey: publicKey as `0x${string}`,
    rpId: 'localhost',
    scopes: Scope.UNLOCK | Scope.LOCK,
    notAfter: Math.floor(Date.now() / 1000) + 3600,
    epoch: await epochOf(client, { keyRegistry: domain.keyRegistry, vehicle: car.vehicle }),
    purpose: 'Family car, phone key',
  })
  const link = encodeShareLink(domain, grant)
  await page.goto(`${origin}/#/key/${link.slice(SHARE_LINK_PREFIX.length)}`)
  const summary = page.getByTestId('key-summary')
  await summary.waitFor()
  assert.match((await summary.textContent()) ?? '', /Unlock, Lock/)
  assert.equal(await page.getByTestId('key-open_trunk').isDisabled(), true)

  await page.getByTestId('key-unlock').click()
  const status = page.getByTestId('key-status')
  await status.getByText(/^Granted/).waitFor({ timeout: 20_000 })
  const carState = (await (await fetch(`${info.url}/v1/sim/vehicles/${car.vehicle}`)).json()) as Record<
    string,
    unknown
  >
  assert.ok(JSON.stringify(carState).length > 0)
  await page.screenshot({ path: join(shotDir, 'key-app.png') })

  // The frame Chromium sent carries the real WebAuthn assertion: replayed on the car's link, or
  // with its grant widened, the car refuses it.
  const sent = sentFrames
    .map((f) => JSON.parse(f) as Record<string, unknown>)
    .find((f) => f.type === 'request')
  assert.ok(sent?.assertion, 'the key app sent an assertion')
  const carLink = await LinkClient.connect(car.link)
  t.after(() => carLink.close())
  await carLink.challenge()
  carLink.sendRaw(JSON.stringify(sent))
  assert.equal((await carLink.result()).code, 'REQUEST_BAD_SIGNATURE', 'replayed in a new session')
  await carLink.challenge()
  const grantSent = sent.grant as Record<string, unknown>
  carLink.sendRaw(JSON.stringify({ ...sent, grant: { ...grantSent, scopes: 31 } }))
  assert.equal((await carLink.result()).code, 'GRANT_BAD_SIGNATURE', 'grant tampered')

  // The relay reaches demo cars only.
  const nowhere = new WebSocket(
    `${info.url.replace(/^http/, 'ws')}/v1/sim/vehicles/0x${'00'.repeat(20)}/link`,
  )
  const refused = await new Promise<number>((resolve) => {
    nowhere.on('unexpected-response', (request, response) => {
      resolve(response.statusCode ?? 0)
      request.destroy()
    })
    nowhere.on('open', () => resolve(101))
  })
  assert.equal(refused, 404)

  // Locking again through the app works: each tap answers a fresh challenge.
  await page.getByTestId('key-lock').click()
  await status.getByText(/^Granted: lock/).waitFor({ timeout: 20_000 })

  // Another site (evil.localhost, which Chromium resolves to this machine) is no way in. Its
  // passkey (RP ID evil.localhost) asked for a key: the browser's real assertion reaches the car
  // and is refused — for the RP ID when the grant names localhost, for the origin when the grant
  // names evil.localhost itself (a plain-http origin is allowed for localhost only). And the
  // phone's own passkey cannot even be asked from there: the browser refuses.
  const stored = await page.evaluate(() => localStorage.getItem('carchain.passkeys'))
  const evil = `http://evil.localhost:${new URL(info.url).port}`
  await page.goto(`${evil}/#/key`)
  await page.getByTestId('passkey-create').click()
  const evilKey = (
    (await page.getByTestId('passkey-public').first().textContent({ timeout: 15_000 })) ?? ''
  ).trim()
  // (each expected answer differs from the one on screen before the tap)
  const tryKey = async (rpId: string, expected: string) => {
    const signed = await issuePasskeyGrant({
      signer: developmentAccount(car.ownerIndex),
      domain,
      vehicle: car.vehicle,
      passkey: evilKey as `0x${string}`,
      rpId,
      scopes: Scope.UNLOCK,
      notAfter: Math.floor(Date.now() / 1000) + 3600,
      epoch: grant.grant.epoch,
    })
    await page.goto(`${evil}/#/key/${encodeShareLink(domain, signed).slice(SHARE_LINK_PREFIX.length)}`)
    await page.getByTestId('key-unlock').click()
    await status.getByText(`Refused (${expected})`).waitFor({ timeout: 20_000 })
  }
  await tryKey('localhost', 'PASSKEY_RP_MISMATCH')
  await tryKey('evil.localhost', 'PASSKEY_ORIGIN')
  await page.evaluate((value) => localStorage.setItem('carchain.passkeys', value ?? '[]'), stored)
  await page.goto(`${evil}/#/key/${link.slice(SHARE_LINK_PREFIX.length)}`)
  await page.reload()
  await page.getByTestId('key-unlock').click()
  await status.getByText(/relying party ID is not a registrable domain suffix/).waitFor({ timeout: 20_000 })
  assert.deepEqual(pageErrors, [])
})
