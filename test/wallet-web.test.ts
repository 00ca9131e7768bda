/**
 * The owner's own wallet in the console, in a real browser: `carchain up` (embedded anvil, PGlite,
 * a small fleet), Debian's Chromium driven by playwright-core, and a wallet the project did not
 * write — `headless-web3-provider`, announced to the page through EIP-6963 and answering over the
 * demo chain, whose every signature and transaction the test approves or refuses as a user would.
 *
 * The console finds the wallet, signs in with it (SIWE: the node issues a session), signs a key
 * with `eth_signTypedData_v4` that the car's own code accepts as the owner's, and with transactions
 * from the wallet revokes it, rents the car out, funds it, opens, tops up and extends a payment
 * channel, and sells the car to a buyer whose empty account then gets a clear "no ETH" message. A refused signature and a wallet on the wrong chain give
 * clear messages, and the switch (adding the chain first) fixes the latter. Screenshots go to
 * docs/img/ with UPDATE_SCREENSHOTS=1, else to a temp dir.
 */
import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import type { Page } from 'playwright-core'
import { createPublicClient, createWalletClient, type Hex, http, toHex } from 'viem'
import { generatePrivateKey, privateKeyToAccount, privateKeyToAddress } from 'viem/accounts'
import { developmentAccount } from '../src/chain/clients.ts'
import { demoTokenAbi, vehicleRegistryAbi } from '../src/chain/generated/index.ts'
import { grantSigner } from '../src/keys/grant.ts'
import { decodeShareLink, sharedKeyDomain } from '../src/keys/share-link.ts'
import { grantHolder, grantTypedData, passkeyFingerprint } from '../src/keys/typed-data.ts'
import {
  CHROMIUM_MISSING,
  type ChromiumFixture,
  type HeadlessWallet,
  type HeadlessWeb3,
  hasChromium,
  headlessWeb3,
  startChromium,
  type UpInfo,
} from './chromium.ts'
import { type SeededFleet, seedFleet } from './fleet-fixture.ts'
import { requirePart } from './skip.ts'

let fixture: ChromiumFixture | undefined
let url = ''
let rpcUrl = ''
let registry: Hex
let info: UpInfo
let fleet: SeededFleet | undefined
let web3: HeadlessWeb3 | undefined
let pageErrors: string[] = []
let shotDir = ''

/** Development account 1: an owner of the fleet's cars, its key held by the test's wallet. */
const ownerKey = toHex(developmentAccount(1).getHdKey().privateKey!)
const owner = developmentAccount(1).address

before(async () => {
  if (!hasChromium) return
  fixture = await startChromium({
    name: 'wallet',
    upArgs: ['--no-sim'],
    viewport: { width: 1280, height: 900 },
  })
  ;({ info, pageErrors, shotDir } = fixture)
  url = info.url
  rpcUrl = info.chain.rpcUrl
  registry = info.chain.contracts.VehicleRegistry as Hex
  // Owner 1 holds cars 0 and 2 (one is sold below), owner 2 car 1.
  fleet = await seedFleet(info, 3)
  // Tokens for owner 1 to fund a car with (the demo token's minter is the deployer, account 0).
  const deployer = createWalletClient({ account: developmentAccount(0), transport: http(rpcUrl) })
  const minted = await deployer.writeContract({
    chain: null,
    address: info.chain.contracts.Token as Hex,
    abi: demoTokenAbi,
    functionName: 'mint',
    args: [owner, 100n * 10n ** 18n],
  })
  await createPublicClient({ transport: http(rpcUrl) }).waitForTransactionReceipt({ hash: minted })
  web3 = await headlessWeb3()
})

after(async () => {
  await fleet?.cleanup()
  await fixture?.close()
})

/** A fresh page with the headless wallet injected (EIP-6963 announcement and window.ethereum). */
async function pageWithWallet(
  keys: Hex[],
  chainId: number,
  options: { legacyOnly?: boolean } = {},
): Promise<{ page: Page; wallet: HeadlessWallet }> {
  const page = await fixture!.newPage()
  // An older wallet: only window.ethereum (EIP-1193), no EIP-6963 announcement.
  if (options.legacyOnly)
    await page.addInitScript(() => {
      const dispatch = window.dispatchEvent.bind(window)
      window.dispatchEvent = (event: Event) => event.type === 'eip6963:announceProvider' || dispatch(event)
    })
  const wallet: HeadlessWallet = await web3!.injectHeadlessWeb3Provider(page as never, keys, chainId, rpcUrl)
  await page.goto(`${url}/#/keys`)
  await page.getByTestId('keys-view').waitFor()
  return { page, wallet }
}

/** Picks the announced wallet and approves the connection and the Sign-In with Ethereum message. */
async function connect(page: Page, wallet: HeadlessWallet, name = 'Headless Web3 Provider') {
  const { Web3RequestKind } = web3!
  await page.getByTestId('wallet-option').filter({ hasText: name }).click()
  await wallet.authorize(Web3RequestKind.RequestAccounts)
  await wallet.authorize(Web3RequestKind.SignMessage)
  await page.getByTestId('signed-in').waitFor({ timeout: 15_000 })
}

const problem = (page: Page) => page.getByTestId('wallet-problem').first()

test('an injected wallet signs in, grants, revokes and rents; a refusal is said plainly', async (t) => {
  if (!requirePart(t, hasChromium, CHROMIUM_MISSING)) return
  const { Web3RequestKind } = web3!
  const { page, wallet } = await pageWithWallet([ownerKey], 31337)
  // Found through EIP-6963, shown with its announced name; the demo owners stay, marked demo.
  await page.getByTestId('wallet-picker').waitFor()
  assert.match((await page.getByTestId('keys-view').textContent()) ?? '', /Demo owners/)
  await page.waitForTimeout(300)
  await page.screenshot({ path: join(shotDir, 'wallet-picker.png') })

  // Refusing the sign-in message signs nobody in and says why.
  await page.getByTestId('wallet-option').filter({ hasText: 'Headless Web3 Provider' }).click()
  await wallet.authorize(Web3RequestKind.RequestAccounts)
  await wallet.reject(Web3RequestKind.SignMessage)
  assert.match((await problem(page).textContent()) ?? '', /declined the request in your wallet/)
  assert.equal(await page.getByTestId('signed-in').count(), 0)

  await connect(page, wallet)
  const signedIn = (await page.getByTestId('signed-in').textContent()) ?? ''
  assert.match(signedIn, /Headless Web3 Provider/)
  assert.match(signedIn, /Sign-In with Ethereum session/)

  // A key signed by the wallet (eth_signTypedData_v4): the car's own check finds the owner.
  const grantee = privateKeyToAddress(generatePrivateKey()).toLowerCase()
  await page
    .getByTestId('grant-vehicle')
    .locator('option')
    .first()
    .waitFor({ state: 'attached', timeout: 15_000 })
  await page.getByTestId('grant-grantee').fill(grantee)
  // First the user refuses the signature …
  await page.getByTestId('grant-sign').click()
  await wallet.reject(Web3RequestKind.SignTypedDataV4)
  assert.match(
    (await problem(page).textContent()) ?? '',
    /declined the request in your wallet: nothing was signed/,
  )
  await page.screenshot({ path: join(shotDir, 'wallet-rejected.png') })
  // … then approves it.
  await page.getByTestId('grant-sign').click()
  await wallet.authorize(Web3RequestKind.SignTypedDataV4)
  await page.getByTestId('share-link').waitFor({ timeout: 15_000 })
  const shared = decodeShareLink(await page.getByTestId('share-link').inputValue())
  assert.equal(grantSigner(sharedKeyDomain(shared), shared), owner.toLowerCase())
  assert.equal(grantHolder(shared.grant), grantee)
  await page.getByTestId('grant-status').getByText('active').first().waitFor({ timeout: 15_000 })

  // Revoking is a KeyRegistry transaction the wallet sends after the user confirms it.
  await page.getByTestId('grant-revoke').first().click()
  await wallet.authorize(Web3RequestKind.SendTransaction)
  await page.getByTestId('grant-status').getByText('revoked').first().waitFor({ timeout: 20_000 })
  const chain = createPublicClient({ transport: http(rpcUrl) })
  const revoked = await chain.readContract({
    address: registry,
    abi: vehicleRegistryAbi,
    functionName: 'isRevoked',
    args: [shared.grant.vehicle, shared.grant.grantId],
  })
  assert.equal(revoked, true)

  // A phone key: the grantee is a passkey's P-256 public key. The node keeps it and the console
  // lists it from there too, with the key's fingerprint and its on-chain status.
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const passkey =
    `0x${publicKey.export({ format: 'der', type: 'spki' }).subarray(-65).toString('hex')}` as Hex
  await page.getByTestId('grant-grantee').fill(passkey)
  await page.getByTestId('grant-sign').click()
  await wallet.authorize(Web3RequestKind.SignTypedDataV4)
  await page.getByTestId('grant-signed').getByText('The node keeps it too').waitFor({ timeout: 15_000 })
  assert.match(
    (await page.getByTestId('grant-signed').textContent()) ?? '',
    new RegExp(passkeyFingerprint(passkey)),
  )
  const phoneRow = page
    .getByTestId('grants-table')
    .locator('tbody tr')
    .filter({ has: page.getByTestId('grant-passkey').getByText(passkeyFingerprint(passkey)) })
  await phoneRow.getByTestId('grant-status').getByText('active').waitFor({ timeout: 15_000 })
  // Listed from the node's mailbox as well (its signature recovered in the page to this owner).
  await phoneRow.getByText('node', { exact: true }).waitFor({ timeout: 15_000 })
  assert.match((await phoneRow.textContent()) ?? '', /passkey/)

  // Renting out: ERC-4907 setUser from the wallet.
  const renter = privateKeyToAddress(generatePrivateKey())
  await page.getByTestId('owner-vehicle').selectOption(shared.grant.vehicle)
  await page.getByTestId('rent-renter').fill(renter)
  await page.getByTestId('rent-send').click()
  await wallet.authorize(Web3RequestKind.SendTransaction)
  await page.getByTestId('owner-action-done').waitFor({ timeout: 20_000 })
  const user = await chain.readContract({
    address: registry,
    abi: vehicleRegistryAbi,
    functionName: 'userOf',
    args: [BigInt(shared.grant.vehicle)],
  })
  assert.equal(user, renter)
  await page.getByTestId('rental-state').getByText('rented').waitFor()

  // Funding the car's charging wallet: a token transfer from the wallet.
  const token = info.chain.contracts.Token as Hex
  const balance = (address: Hex) =>
    chain.readContract({ address: token, abi: demoTokenAbi, functionName: 'balanceOf', args: [address] })
  const carBefore = await balance(shared.grant.vehicle)
  await page.getByTestId('fund-amount').fill('12.5')
  await page.getByTestId('fund-send').click()
  await wallet.authorize(Web3RequestKind.SendTransaction)
  await page.getByTestId('owner-action-done').getByText('Funded').waitFor({ timeout: 20_000 })
  assert.equal(await balance(shared.grant.vehicle), carBefore + 12_500_000_000_000_000_000n)
  await page.setViewportSize({ width: 1280, height: 1400 })
  await page.screenshot({ path: join(shotDir, 'wallet-keys.png') })
  await page.setViewportSize({ width: 1280, height: 900 })

  // Charging channels paid from the wallet: open (approve, open), top up (approve, topUp), extend.
  const channels = info.chain.contracts.ChargingChannels as Hex
  const held = await balance(channels)
  await page.goto(`${url}/#/charging`)
  await page.getByTestId('channel-payee').fill(privateKeyToAddress(generatePrivateKey()))
  await page.getByTestId('channel-deposit').fill('20')
  await page.getByTestId('channel-open').click()
  await wallet.authorize(Web3RequestKind.SendTransaction)
  await wallet.authorize(Web3RequestKind.SendTransaction)
  await page.getByTestId('channel-done').getByText('Channel opened').waitFor({ timeout: 20_000 })
  await page.getByTestId('channel-deposit-value').getByText('20.00').waitFor()
  await page.getByTestId('channel-topup').click()
  await wallet.authorize(Web3RequestKind.SendTransaction)
  await wallet.authorize(Web3RequestKind.SendTransaction)
  await page.getByTestId('channel-done').getByText('Topped up').waitFor({ timeout: 20_000 })
  const expires = await page.getByTestId('channel-expires').textContent()
  await page.getByTestId('channel-extend').click()
  await wallet.authorize(Web3RequestKind.SendTransaction)
  await page.getByTestId('channel-done').getByText('Extended').waitFor({ timeout: 20_000 })
  await page.waitForFunction(
    (before) => document.querySelector('[data-testid="channel-expires"]')?.textContent !== before,
    expires,
  )
  await page.getByTestId('channel-deposit-value').getByText('25.00').waitFor()
  assert.equal(await balance(channels), held + 25n * 10n ** 18n)
  await page.screenshot({ path: join(shotDir, 'wallet-channels.png') })
  await page.goto(`${url}/#/keys`)

  // Selling: the title goes to a buyer; the buyer's empty account gets a plain "no ETH".
  const buyerKey = generatePrivateKey()
  const buyer = privateKeyToAddress(buyerKey)
  await page.getByTestId('sell-buyer').fill(buyer)
  await page.getByTestId('sell-send').click()
  await wallet.authorize(Web3RequestKind.SendTransaction)
  await page.getByTestId('owner-action-done').getByText('Sold').waitFor({ timeout: 20_000 })
  const titleOwner = await chain.readContract({
    address: registry,
    abi: vehicleRegistryAbi,
    functionName: 'ownerOf',
    args: [BigInt(shared.grant.vehicle)],
  })
  assert.equal(titleOwner, buyer)

  // The wallet switches account: the console ends the session and says so.
  await wallet.changeAccounts([buyerKey])
  await page.getByTestId('session-ended').waitFor({ timeout: 10_000 })
  await connect(page, wallet)
  await page
    .getByTestId('owner-vehicle')
    .locator(`option[value="${shared.grant.vehicle}"]`)
    .waitFor({ state: 'attached', timeout: 30_000 })
  await page.getByTestId('owner-vehicle').selectOption(shared.grant.vehicle)
  await page.getByTestId('rent-renter').fill(renter)
  await page.getByTestId('rent-send').click()
  await problem(page).waitFor({ timeout: 15_000 })
  assert.equal(await problem(page).getAttribute('data-kind'), 'no-funds')
  assert.match((await problem(page).textContent()) ?? '', /has no ETH on chain 31337/)
  assert.equal(wallet.getPendingRequestCount(), 0, 'the wallet was not asked to send what cannot be paid')
  await page.close()
  assert.deepEqual(pageErrors, [])
})

test('a wallet on another chain is told so, and the switch (adding the chain) fixes it', async (t) => {
  if (!requirePart(t, hasChromium, CHROMIUM_MISSING)) return
  const { Web3RequestKind } = web3!
  // The wallet starts on chain 1 and does not know the node's chain; it is found as window.ethereum.
  const { page, wallet } = await pageWithWallet([ownerKey], 1, { legacyOnly: true })
  await page.getByTestId('wallet-picker').waitFor()
  assert.deepEqual(await page.getByTestId('wallet-option').allTextContents(), [
    'Browser wallet (window.ethereum)',
  ])
  await connect(page, wallet, 'window.ethereum')
  await page.getByTestId('wrong-chain').waitFor()
  assert.match(
    (await page.getByTestId('wrong-chain').textContent()) ?? '',
    /on chain 1; this node's chain is Anvil \(embedded\), id 31337/,
  )
  await page
    .getByTestId('grant-vehicle')
    .locator('option')
    .first()
    .waitFor({ state: 'attached', timeout: 15_000 })
  await page.getByTestId('grant-grantee').fill(privateKeyToAddress(generatePrivateKey()))
  await page.getByTestId('grant-sign').click()
  await problem(page).waitFor()
  assert.equal(await problem(page).getAttribute('data-kind'), 'wrong-chain')
  assert.equal(wallet.getPendingRequestCount(Web3RequestKind.SignTypedDataV4), 0, 'nothing was sent to sign')
  await page.screenshot({ path: join(shotDir, 'wallet-wrong-chain.png') })
  // Switch: the wallet does not know 31337, so the console offers to add it, then switches.
  await page.getByTestId('wrong-chain').getByTestId('switch-chain').click()
  await wallet.authorize(Web3RequestKind.SwitchEthereumChain)
  await wallet.authorize(Web3RequestKind.AddEthereumChain)
  await wallet.authorize(Web3RequestKind.SwitchEthereumChain)
  await page.getByTestId('wrong-chain').waitFor({ state: 'detached', timeout: 10_000 })
  assert.equal(wallet.getNetwork().chainId, 31337)
  assert.ok(wallet.getNetworks().some((n) => n.chainId === 31337 && n.rpcUrl === rpcUrl))
  // The node's mailbox (GET /v1/vehicles/{vehicle}/grants) is listed only for keys this account
  // signed: one the owner signed elsewhere shows, one signed by another key or malformed does not.
  const vehicle = (await page.getByTestId('grant-vehicle').inputValue()) as Hex
  const domain = { chainId: 31337, keyRegistry: info.chain.contracts.KeyRegistry as Hex }
  const now = Math.floor(Date.now() / 1000)
  const aGrant = (grantId: string) => ({
    vehicle,
    grantee: privateKeyToAddress(generatePrivateKey()).toLowerCase() as Hex,
    scopes: 4,
    notBefore: now,
    notAfter: now + 7200,
    maxUses: 1,
    epoch: 0,
    grantId: `0x${grantId.repeat(64)}` as Hex,
    purpose: 'parcel elsewhere',
  })
  const ownerAccount = privateKeyToAccount(ownerKey)
  const elsewhere = aGrant('e')
  const forged = aGrant('f')
  const mailbox = [
    { grant: elsewhere, signature: await ownerAccount.signTypedData(grantTypedData(domain, elsewhere)) },
    {
      grant: forged,
      signature: await privateKeyToAccount(generatePrivateKey()).signTypedData(
        grantTypedData(domain, forged),
      ),
    },
    { grant: { ...elsewhere, grantId: 'not hex' }, signature: '0x00' },
    'junk',
  ]
  await page.route('**/v1/vehicles/*/grants', (route) =>
    route.fulfill({
      status: 200,
      contentType: 'application/json',
      body: JSON.stringify({ grants: mailbox }),
    }),
  )
  await page.getByTestId('grant-sign').click()
  await wallet.authorize(Web3RequestKind.SignTypedDataV4)
  await page.getByTestId('share-link').waitFor({ timeout: 15_000 })
  const rows = page.getByTestId('grants-table').locator('tbody tr')
  await rows.filter({ hasText: 'parcel elsewhere' }).waitFor({ timeout: 15_000 })
  assert.equal(await rows.filter({ hasText: 'parcel elsewhere' }).count(), 1, 'the forged key is not listed')
  assert.match((await rows.filter({ hasText: 'parcel elsewhere' }).textContent()) ?? '', /node only/)
  await page.close()
  assert.deepEqual(pageErrors, [])
})

test('a hostile wallet in the page: its markup is not rendered, its foreign sign-in signature is refused', async (t) => {
  if (!requirePart(t, hasChromium, CHROMIUM_MISSING)) return
  const claimed = privateKeyToAddress(generatePrivateKey())
  // A signature by another key: it recovers to some third address over the sign-in message.
  const foreign = await privateKeyToAccount(generatePrivateKey()).signMessage({ message: 'anything' })
  const page = await fixture!.newPage()
  await page.addInitScript(
    ([address, signature]) => {
      const provider = {
        on() {},
        removeListener() {},
        async request({ method }: { method: string }) {
          if (method === 'eth_requestAccounts') return [address]
          if (method === 'eth_chainId') return '0x7a69'
          if (method === 'personal_sign') return signature
          throw Object.assign(new Error('unsupported'), { code: 4200 })
        },
      }
      const announce = (info: Record<string, string>) =>
        window.dispatchEvent(new CustomEvent('eip6963:announceProvider', { detail: { info, provider } }))
      const announceAll = () => {
        announce({
          uuid: 'a7f4c1d2-0000-4000-8000-000000000001',
          name: '<img src=x onerror="window.__pwned=1">Evil',
          icon: 'javascript:window.__pwned=1',
          rdns: 'example.evil',
        })
        // No request(): not a provider, never listed.
        window.dispatchEvent(
          new CustomEvent('eip6963:announceProvider', {
            detail: {
              info: { uuid: 'b', name: 'Broken', icon: 'data:image/png;base64,AA==', rdns: 'x' },
              provider: {},
            },
          }),
        )
      }
      window.addEventListener('eip6963:requestProvider', announceAll)
      announceAll()
    },
    [claimed, foreign] as const,
  )
  await page.goto(`${url}/#/keys`)
  await page.getByTestId('wallet-picker').waitFor()
  const options = page.getByTestId('wallet-option')
  assert.deepEqual(await options.allTextContents(), ['<img src=x onerror="window.__pwned=1">Evil'])
  assert.equal(await options.locator('img').count(), 0, 'a javascript: icon is not shown')
  await options.first().click()
  await problem(page).waitFor()
  assert.match(
    (await problem(page).textContent()) ?? '',
    /signed the sign-in message as 0x[0-9a-fA-F]{40}, not as/,
  )
  assert.equal(await page.getByTestId('signed-in').count(), 0)
  assert.equal(await page.evaluate(() => (window as { __pwned?: number }).__pwned), undefined)
  await page.close()
  assert.deepEqual(pageErrors, [])
})
