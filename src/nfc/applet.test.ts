/**
 * The wallet applet's every command and refusal, on a real anvil (the permit is redeemed on
 * chain) with the car's keys in a software key store; the terminal code of `terminal.ts` talks
 * to it directly, without a reader. Fuzzed APDUs never crash it or make it pay.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import fc from 'fast-check'
import type { Hex } from 'viem'
import { requirePart } from '../../test/skip.ts'
import { Pkcs11KeyStore } from '../identity/pkcs11-keystore.ts'
import { issueVehicleCertificate } from '../identity/profiles.ts'
import { verifyP256 } from '../identity/signature.ts'
import { createSoftHsmToken, softHsmAvailable } from '../identity/softhsm.testkit.ts'
import { redeemPaymentPermit } from '../payments/pay.ts'
import { aChargingWorld, type ChargingWorld, TOKEN } from '../payments/payments.testkit.ts'
import { sessionCost } from '../payments/pricing.ts'
import { signMeterReading, signTariff, type Tariff } from '../payments/typed-data.ts'
import { chainCommand, encodeCommand, SW, splitResponse, WALLET_AID } from './apdu.ts'
import {
  createWalletApplet,
  decodePermit,
  encodePayRequest,
  nfcAuthMessage,
  type PayRequest,
  type WalletApplet,
} from './applet.ts'
import { aCarWithApplet } from './nfc.testkit.ts'
import { authenticateCar, exchange, walletCard } from './terminal.ts'

let world: ChargingWorld

before(async () => {
  world = await aChargingWorld()
})
after(async () => {
  await world?.stop()
})

async function aCard(policy: Parameters<typeof aCarWithApplet>[1] = {}) {
  const { vehicle, car, applet } = await aCarWithApplet(world, policy)
  const channel = { transmit: (apdu: Uint8Array) => applet.process(apdu) }
  return { vehicle, car, applet, channel, card: walletCard(channel) }
}

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/ /g, ''), 'hex'))
/** An NFC_REFUSED with this status word. */
const refused = (status: string) => (error: { code?: string; details?: { sw?: string } }) =>
  error.code === 'NFC_REFUSED' && error.details?.sw === status
const sw = async (applet: WalletApplet, apdu: Uint8Array) => splitResponse(await applet.process(apdu)).sw
const select = encodeCommand(0x00, 0xa4, 0x04, 0x00, WALLET_AID, 256)

describe('the wallet applet', () => {
  test('SELECT answers the FCI with the wallet; another AID is 6A82; nothing works unselected', async () => {
    const { applet, car } = await aCard()
    assert.equal(await sw(applet, hex('00 CA DF 02 00')), SW.CONDITIONS)
    assert.equal(await sw(applet, hex('00 A4 04 00 07 A0000000041010 00')), SW.NOT_FOUND)
    const { data, sw: status } = splitResponse(await applet.process(select))
    assert.equal(status, SW.OK)
    const fci = Buffer.from(data).toString('hex')
    assert.ok(fci.startsWith('6f'))
    assert.ok(fci.includes(`840af0434152434841494e01`))
    assert.ok(fci.includes(`df0214${car.wallet.address.slice(2).toLowerCase()}`))
    assert.equal(await sw(applet, hex('00 A4 00 0C 02 3F00')), SW.INCORRECT_P1P2)
    // a failed SELECT deselects
    assert.equal(await sw(applet, hex('00 A4 04 00 05 F043415243 00')), SW.NOT_FOUND)
    assert.equal(await sw(applet, hex('00 CA DF 02 00')), SW.CONDITIONS)
  })

  test('GET DATA: the certificate chain over 61xx/GET RESPONSE, leaf first; the wallet address; refusals', async () => {
    const { applet, card, vehicle, car, channel } = await aCard()
    await card.select()
    const first = splitResponse(await applet.process(hex('00 CA 7F 21 00')))
    assert.equal(first.sw & 0xff00, SW.MORE)
    assert.equal(first.data.length, 256)
    const chain = await card.certificateChain()
    assert.deepEqual(
      chain.map((c) => Buffer.from(c).toString('hex')),
      [vehicle.cert.der, world.pki.oem.sub.der].map((c) => Buffer.from(c).toString('hex')),
    )
    assert.equal((await card.walletAddress()).toLowerCase(), car.wallet.address.toLowerCase())
    assert.equal(await sw(applet, hex('00 CA 01 01 00')), SW.DATA_NOT_FOUND)
    assert.equal(await sw(applet, hex('00 CA DF 02 01 00 00')), SW.WRONG_LENGTH)
    // GET RESPONSE with nothing waiting, and after another command dropped the rest
    assert.equal(await sw(applet, hex('00 C0 00 00 00')), SW.CONDITIONS)
    await applet.process(hex('00 CA 7F 21 00'))
    await applet.process(hex('00 CA DF 02 00'))
    assert.equal(await sw(applet, hex('00 C0 00 00 00')), SW.CONDITIONS)
    // a short Le is honoured with 61xx
    const short = await exchange(channel, hex('00 CA DF 02 08'))
    assert.equal(short.sw, SW.OK)
    assert.equal(short.data.length, 20)
  })

  test('INTERNAL AUTHENTICATE signs SHA-256(label ‖ challenge), never the bare challenge; the terminal checks it', async () => {
    const { applet, card, vehicle, car } = await aCard()
    const { wallet } = await card.select()
    const challenge = Uint8Array.from({ length: 32 }, (_, i) => i)
    const signature = await card.authenticate(challenge)
    assert.equal(signature.length, 64)
    assert.ok(verifyP256(vehicle.cert.publicKey, nfcAuthMessage(challenge), signature, 'p1363'))
    assert.ok(!verifyP256(vehicle.cert.publicKey, challenge, signature, 'p1363'))
    const identity = await authenticateCar(card, { trustAnchors: { oem: [world.pki.oem.root.der] }, wallet })
    assert.equal(identity.wallet?.address.toLowerCase(), car.wallet.address.toLowerCase())
    await assert.rejects(
      authenticateCar(card, { trustAnchors: { oem: [world.pki.cpo.root.der] }, wallet }),
      (e: { code: string }) => e.code.startsWith('CERT_'),
    )
    await assert.rejects(
      authenticateCar(card, { trustAnchors: { oem: [world.pki.oem.root.der] }, wallet: world.token }),
      { code: 'UNAUTHENTICATED' },
    )
    assert.equal(
      await sw(applet, encodeCommand(0, 0x88, 0, 0, challenge.subarray(0, 31), 256)),
      SW.WRONG_LENGTH,
    )
    assert.equal(await sw(applet, encodeCommand(0, 0x88, 1, 0, challenge, 256)), SW.INCORRECT_P1P2)
  })

  test('unknown instruction 6D00, unknown class 6E00, malformed APDU 6700, interrupted chain 6883', async () => {
    const { applet } = await aCard()
    await applet.process(select)
    assert.equal(await sw(applet, hex('00 B0 00 00 00')), SW.INS_NOT_SUPPORTED)
    assert.equal(await sw(applet, hex('A0 CA DF 02 00')), SW.CLA_NOT_SUPPORTED)
    assert.equal(await sw(applet, hex('00 CA')), SW.WRONG_LENGTH)
    assert.equal(await sw(applet, hex('00 CA DF 02 05 01 02')), SW.WRONG_LENGTH)
    assert.equal(await sw(applet, hex('90 50 02 00 02 01 00')), SW.OK)
    assert.equal(await sw(applet, hex('00 CA DF 02 00')), SW.CHAIN_EXPECTED)
    assert.equal(await sw(applet, hex('10 CA DF 02 00')), SW.INS_NOT_SUPPORTED)
    assert.equal(await sw(applet, hex('00 84 00 00 10')), SW.WRONG_LENGTH)
  })

  test('a one-shot payment: GET CHALLENGE, PAY → a permit the payee redeems; the nonce works once', async () => {
    const { card, car } = await aCard()
    await card.select()
    const payee = world.cpo
    const before = await world.balanceOf(payee.account.address)
    const nonce = await card.paymentNonce()
    const request: PayRequest = {
      kind: 'one-shot',
      nonce,
      token: world.token,
      payee: payee.account.address,
      amount: 2n * TOKEN,
      memo: 'parking P3',
    }
    const permit = await card.pay(request)
    assert.equal(permit.owner.toLowerCase(), car.wallet.address.toLowerCase())
    assert.equal(permit.value, 2n * TOKEN)
    assert.equal(car.wallet.spentToday(), 2n * TOKEN)
    assert.deepEqual(
      car.events.map((e) => e.kind),
      ['payment.sent'],
    )
    await redeemPaymentPermit(payee, { token: world.token, permit })
    assert.equal(await world.balanceOf(payee.account.address), before + 2n * TOKEN)
    // replayed: the nonce is spent
    await assert.rejects(card.pay(request), {
      code: 'NFC_REFUSED',
      details: { sw: '6984', meaning: 'payment nonce unknown, used or expired' },
    })
    // a nonce the card never drew
    await assert.rejects(card.pay({ ...request, nonce: new Uint8Array(32) }), refused('6984'))
    assert.equal(car.wallet.spentToday(), 2n * TOKEN)
  })

  test('PAY refusals: over the cap 6982, foreign token 6982, malformed 6A80, wrong P1 6A86 — nothing booked', async () => {
    const { card, car, applet } = await aCard({ policy: { maxPerSession: 5n * TOKEN } })
    await card.select()
    const base = { kind: 'one-shot' as const, token: world.token, payee: world.cpo.account.address }
    await assert.rejects(
      card.pay({ ...base, nonce: await card.paymentNonce(), amount: 6n * TOKEN }),
      refused('6982'),
    )
    await assert.rejects(
      card.pay({ ...base, nonce: await card.paymentNonce(), amount: 1n, token: world.registry }),
      refused('6982'),
    )
    await assert.rejects(card.pay({ ...base, nonce: await card.paymentNonce(), amount: 0n }), refused('6A80'))
    const nonce = await card.paymentNonce()
    const good = encodePayRequest({ ...base, nonce, amount: 1n })
    for (const data of [
      good.subarray(0, good.length - 1), // cut short
      Buffer.concat([good, hex('05 00')]), // empty memo
      Buffer.concat([good, hex('10 01 41')]), // a charging tag in a one-shot request
      Buffer.concat([good, hex('01 20'), nonce]), // a tag twice
      Buffer.concat([good, hex('05 80')]), // indefinite length
    ])
      assert.equal(await sw(applet, encodeCommand(0x80, 0x50, 0x02, 0, data, 256)), SW.BAD_DATA)
    assert.equal(await sw(applet, encodeCommand(0x80, 0x50, 0x03, 0, good, 256)), SW.INCORRECT_P1P2)
    assert.equal(car.wallet.spentToday(), 0n)
    assert.equal(car.events.length, 0)
    // the nonce survived the malformed requests: a well-formed one still pays
    assert.equal(await sw(applet, encodeCommand(0x80, 0x50, 0x02, 0, good, 256)), SW.OK)
    assert.equal(car.wallet.spentToday(), 1n)
  })

  test('a charging payment: the signed tariff and reading for the card’s nonce; every refusal of the TCP session', async () => {
    const { signer, evseId } = await world.aCharger()
    const { card, car, applet } = await aCard()
    await card.select()
    const tariffAt = (overrides: Partial<Tariff> = {}): Tariff => ({
      evseId,
      token: world.token,
      pricePerKWh: 300_000_000_000_000_000n,
      sessionFee: 500_000_000_000_000_000n,
      validUntil: BigInt(Math.floor(world.clock.now() / 1000) + 600),
      ...overrides,
    })
    /** A tap, `elapsedMs` at the charger, and the payment of `sessionWh`, signed by `charger`. */
    const charging = async (options: {
      tariff?: Partial<Tariff>
      sessionWh?: bigint
      elapsedMs?: number
      timeMs?: bigint
      amount?: bigint
      signWith?: typeof signer
      charger?: { signer: typeof signer; evseId: string }
      sessionId?: Hex
    }) => {
      const nonce = await card.paymentNonce()
      world.clock.advance(options.elapsedMs ?? 600_000)
      const charger = options.charger ?? { signer, evseId }
      const t = tariffAt({ evseId: charger.evseId, ...options.tariff })
      const sessionWh = options.sessionWh ?? 5_000n
      const timeMs = options.timeMs ?? BigInt(world.clock.now())
      const by = options.signWith ?? charger.signer
      const sessionId = options.sessionId ?? (`0x${Buffer.from(nonce).toString('hex')}` as Hex)
      return card.pay({
        kind: 'charging',
        nonce,
        token: world.token,
        amount: options.amount ?? sessionCost(t, sessionWh),
        charger: charger.signer.address,
        tariff: t,
        tariffSignature: await signTariff(by, world.domain, t),
        sessionWh,
        timeMs,
        readingSignature: await signMeterReading(by, world.domain, {
          evseId: charger.evseId,
          sessionId,
          sessionWh,
          timeMs,
        }),
      })
    }
    const other = await world.aCharger()
    const stranger = await world.aCharger({ register: false })
    const refusals: [string, string, Parameters<typeof charging>[0]][] = [
      ['6A80', 'tariff and reading not signed by the charger', { signWith: other.signer }],
      ['6A80', 'a reading for another session', { sessionId: `0x${'11'.repeat(32)}` }],
      ['6A80', 'a reading from the future', { timeMs: BigInt(world.clock.now() + 3_600_000 + 600_000) }],
      ['6A80', '100 kWh in ten minutes (350 kW at most)', { sessionWh: 100_000n }],
      ['6A80', 'more than the signed tariff gives', { amount: sessionCost(tariffAt(), 5_000n) + 1n }],
      ['6A80', 'nothing delivered', { sessionWh: 0n }],
      ['6A80', 'an expired tariff', { tariff: { validUntil: 1n } }],
      ['6982', 'a price above the owner’s maximum', { tariff: { pricePerKWh: 2n * TOKEN } }],
      [
        '6982',
        'over the session cap (150 kWh: 45.5 tokens > 40)',
        { sessionWh: 150_000n, elapsedMs: 36_000_000 },
      ],
      ['6982', 'a charger not registered on chain', { charger: stranger }],
    ]
    for (const [expected, why, options] of refusals)
      await assert.rejects(charging(options), refused(expected), why)
    assert.equal(car.wallet.spentToday(), 0n)
    assert.equal(car.events.length, 0)
    // and one that pays: to the charger's CPO, read from the chain
    const permit = await charging({})
    assert.equal(permit.spender.toLowerCase(), world.cpo.account.address.toLowerCase())
    assert.equal(permit.value, sessionCost(tariffAt(), 5_000n))
    const before = await world.balanceOf(world.cpo.account.address)
    await redeemPaymentPermit(world.cpo, { token: world.token, permit })
    assert.equal(await world.balanceOf(world.cpo.account.address), before + permit.value)
    assert.equal(car.wallet.spentToday(), permit.value)
    void applet
  })

  test('a PAY split over chained commands is the same request; a reset drops the chain and the selection', async () => {
    const { applet, card, car } = await aCard()
    await card.select()
    const nonce = await card.paymentNonce()
    const data = encodePayRequest({
      kind: 'one-shot',
      nonce,
      token: world.token,
      payee: world.cpo.account.address,
      amount: 3n,
      memo: 'x'.repeat(64),
    })
    const blocks = [
      encodeCommand(0x90, 0x50, 0x02, 0, data.subarray(0, 50)),
      ...chainCommand(0x80, 0x50, 0x02, 0, data.subarray(50), 256),
    ]
    assert.equal(await sw(applet, blocks[0] as Uint8Array), SW.OK)
    applet.reset() // the card left the field mid-command
    assert.equal(await sw(applet, blocks[1] as Uint8Array), SW.CONDITIONS)
    assert.equal(car.wallet.spentToday(), 0n)
    await card.select()
    for (const block of blocks.slice(0, -1)) assert.equal(await sw(applet, block), SW.OK)
    const last = splitResponse(await applet.process(blocks.at(-1) as Uint8Array))
    assert.equal(last.sw, SW.OK)
    assert.equal(decodePermit(last.data).value, 3n)
  })

  test('the identity key in a PKCS#11 secure element (SoftHSM2) answers INTERNAL AUTHENTICATE', async (t) => {
    if (!requirePart(t, softHsmAvailable, 'SoftHSM2 is not installed (apt-get install softhsm2)')) return
    const token = await createSoftHsmToken('carchain-nfc')
    const hsm = await Pkcs11KeyStore.open({ module: token.module, slot: token.slot, pin: token.pin })
    try {
      const keyRef = await hsm.generate('p256', 'nfc-vehicle')
      const walletRef = await world.pki.store.generate('secp256k1', `nfc-hsm-wallet-${Date.now()}`)
      const certificate = await issueVehicleCertificate({
        vin: 'WDB00000000000777',
        chainId: 31337,
        wallet: await world.pki.store.ethereumAddress(walletRef),
        subjectPublicKey: await hsm.publicKey(keyRef),
        issuer: world.pki.oem.sub,
        signer: world.pki.oem.subSigner,
      })
      const car = await world.aCar({ walletRef })
      const applet = createWalletApplet({
        identity: { store: hsm, keyRef, certificate: certificate.der, chain: [world.pki.oem.sub.der] },
        wallet: car.wallet,
        publicClient: world.chain.clients.publicClient,
      })
      const card = walletCard({ transmit: (apdu) => applet.process(apdu) })
      const { wallet } = await card.select()
      const identity = await authenticateCar(card, {
        trustAnchors: { oem: [world.pki.oem.root.der] },
        wallet,
      })
      assert.equal(identity.vin, 'WDB00000000000777')
    } finally {
      await hsm.close()
      await token.cleanup()
    }
  })

  test('a tariff valid when the session began holds until the payment, as over TCP', async () => {
    const { signer, evseId } = await world.aCharger()
    const { card, car } = await aCard()
    await card.select()
    const nonce = await card.paymentNonce()
    const tariff: Tariff = {
      evseId,
      token: world.token,
      pricePerKWh: 300_000_000_000_000_000n,
      sessionFee: 500_000_000_000_000_000n,
      validUntil: BigInt(Math.floor(world.clock.now() / 1000) + 60), // signed at plug-in
    }
    world.clock.advance(3_600_000) // an hour of charging: the tariff's validUntil has passed
    const sessionId = `0x${Buffer.from(nonce).toString('hex')}` as Hex
    const timeMs = BigInt(world.clock.now())
    const permit = await card.pay({
      kind: 'charging',
      nonce,
      token: world.token,
      amount: sessionCost(tariff, 40_000n),
      charger: signer.address,
      tariff,
      tariffSignature: await signTariff(signer, world.domain, tariff),
      sessionWh: 40_000n,
      timeMs,
      readingSignature: await signMeterReading(signer, world.domain, {
        evseId,
        sessionId,
        sessionWh: 40_000n,
        timeMs,
      }),
    })
    assert.equal(permit.value, sessionCost(tariff, 40_000n))
    assert.equal(car.wallet.spentToday(), permit.value)
  })

  test('fuzzed APDUs never crash the card nor make it pay', async () => {
    const { applet, car, card } = await aCard()
    await card.select()
    await card.paymentNonce()
    const apdu = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      fc
        .record({
          cla: fc.constantFrom(0x00, 0x10, 0x80, 0x90, 0xff),
          ins: fc.constantFrom(0xa4, 0xca, 0x88, 0x84, 0xc0, 0x50, 0x00),
          p1: fc.integer({ min: 0, max: 255 }),
          p2: fc.integer({ min: 0, max: 255 }),
          data: fc.uint8Array({ maxLength: 255 }),
          le: fc.option(fc.integer({ min: 1, max: 256 })),
        })
        .map(({ cla, ins, p1, p2, data, le }) => encodeCommand(cla, ins, p1, p2, data, le ?? undefined)),
    )
    await fc.assert(
      fc.asyncProperty(apdu, async (bytes) => {
        const answer = await applet.process(bytes)
        assert.ok(answer.length >= 2)
        const { sw: status } = splitResponse(answer)
        assert.ok(
          status === SW.OK || (status & 0xff00) === SW.MORE || Object.values(SW).includes(status as never),
          status.toString(16),
        )
      }),
      { numRuns: 600 },
    )
    assert.equal(car.wallet.spentToday(), 0n)
    assert.equal(car.events.length, 0)
  })
})
