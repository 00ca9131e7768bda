/**
 * Tap to pay through the real stack: the car's applet on vsmartcard's virtual reader (vpcd),
 * pcscd, and the terminals reading it through pcsc-lite — a charging payment and a parking
 * payment redeemed on a real anvil; a card pulled out mid-payment leaves nothing to claim; and
 * an independent PC/SC client (Debian's python3-pyscard, not Carchain's terminal code) selects
 * the applet, reads the certificate and has OpenSSL check an INTERNAL AUTHENTICATE signature.
 * pcscd is started when it does not run (`pcscd --auto-exit`: it leaves a minute after its last
 * client).
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { promisify } from 'node:util'
import { requirePart } from '../../test/skip.ts'
import { rawToDerSignature } from '../identity/signature.ts'
import { aChargingWorld, type ChargingWorld, TOKEN } from '../payments/payments.testkit.ts'
import { sessionCost } from '../payments/pricing.ts'
import { aCarWithApplet } from './nfc.testkit.ts'
import { type PcscCard, waitForCard, waitForRemoval } from './pcsc.ts'
import { type NfcService, startNfcService } from './pcscd.ts'
import { chargeOverNfc, payParkingOverNfc } from './terminal.ts'
import { insertVirtualCard } from './vpcd.ts'

const run = promisify(execFile)
let world: ChargingWorld
let nfc: NfcService

before(async () => {
  nfc = await startNfcService({ mode: 'daemon' })
  if (nfc.on) world = await aChargingWorld()
})
after(async () => {
  await world?.stop()
  await nfc?.stop()
})

/** A car of the test OEM with its applet in the virtual reader's field. */
async function aCarInTheField(options: { onCommand?: (apdu: Uint8Array) => void } = {}) {
  if (!nfc.on) throw new Error('NFC is off')
  const { vehicle, car, applet } = await aCarWithApplet(world)
  const card = await insertVirtualCard({
    applet,
    ...nfc.vpcd,
    ...(options.onCommand ? { onCommand: options.onCommand } : {}),
  })
  return { vehicle, car, card }
}

/**
 * The terminal's side of a tap: waits for `card` in the reader (`reader`: by name, else the
 * first), runs `use` with the connection, then the car drives off (the field is empty again).
 */
async function tap<T>(
  card: { remove(): Promise<void> },
  use: (reader: PcscCard) => Promise<T>,
  reader?: string,
): Promise<T> {
  const connected = await waitForCard({ ...(reader ? { reader } : {}), timeoutMs: 10_000 })
  try {
    return await use(connected)
  } finally {
    connected.close()
    await card.remove()
    await waitForRemoval()
  }
}

describe('tap to pay through pcscd', () => {
  test('a charging payment: the charger reads the card, delivers, the car pays its CPO', async (t) => {
    if (!requirePart(t, nfc.on, `NFC is off: ${nfc.on ? '' : nfc.reason}`)) return
    const { signer, evseId } = await world.aCharger()
    const { car, card } = await aCarInTheField()
    const tariff = {
      token: world.token,
      pricePerKWh: 300_000_000_000_000_000n,
      sessionFee: 500_000_000_000_000_000n,
    }
    const before = await world.balanceOf(world.cpo.account.address)
    await tap(card, async (reader) => {
      const paid = await chargeOverNfc({
        card: reader,
        signer,
        evseId,
        domain: world.domain,
        tariff,
        clients: world.cpo,
        authenticate: { trustAnchors: { oem: [world.pki.oem.root.der] } },
        now: world.clock.now,
        deliver: async () => {
          world.clock.advance(20 * 60_000)
          return 11_000n
        },
      })
      assert.equal(paid.amount, sessionCost(tariff, 11_000n))
      assert.equal(paid.wallet.toLowerCase(), car.wallet.address.toLowerCase())
      assert.equal(paid.vehicle?.wallet?.address.toLowerCase(), car.wallet.address.toLowerCase())
      assert.equal(await world.balanceOf(world.cpo.account.address), before + paid.amount)
      assert.equal(car.wallet.spentToday(), paid.amount)
      assert.deepEqual(
        car.events.map((e) => e.kind),
        ['payment.sent'],
      )
    })
  })

  test('a parking payment: the terminal reads the card, the car pays the operator', async (t) => {
    if (!requirePart(t, nfc.on, `NFC is off: ${nfc.on ? '' : nfc.reason}`)) return
    const operator = await world.chain.as(5)
    const { car, card } = await aCarInTheField()
    const before = await world.balanceOf(operator.account.address)
    await tap(
      card,
      async (reader) => {
        const paid = await payParkingOverNfc({
          card: reader,
          token: world.token,
          amount: (5n * TOKEN) / 2n,
          memo: 'parking P3',
          clients: operator,
        })
        assert.equal(await world.balanceOf(operator.account.address), before + (5n * TOKEN) / 2n)
        assert.equal(car.wallet.spentToday(), paid.amount)
      },
      'Virtual PCD 00 00',
    )
  })

  test('a card removed mid-payment: the terminal gets no permit and claims nothing', async (t) => {
    if (!requirePart(t, nfc.on, `NFC is off: ${nfc.on ? '' : nfc.reason}`)) return
    const operator = await world.chain.as(6)
    let pull: (() => Promise<void>) | undefined
    const { car, card } = await aCarInTheField({
      // the car drives off as the PAY command arrives, before the card answers it
      onCommand: (apdu) => {
        if (apdu[1] === 0x50) void pull?.()
      },
    })
    pull = () => card.remove()
    const before = await world.balanceOf(operator.account.address)
    await tap(card, async (reader) => {
      await assert.rejects(
        payParkingOverNfc({ card: reader, token: world.token, amount: TOKEN, clients: operator }),
        { code: 'NFC_CARD_REMOVED' },
      )
      assert.equal(await world.balanceOf(operator.account.address), before)
      assert.equal(car.wallet.spentToday(), 0n)
    })
  })

  test('reader errors: a reader that does not exist', async (t) => {
    if (!requirePart(t, nfc.on, `NFC is off: ${nfc.on ? '' : nfc.reason}`)) return
    await assert.rejects(waitForCard({ reader: 'ACS ACR122U 00 00', timeoutMs: 200 }), {
      code: 'NFC_UNAVAILABLE',
    })
  })

  test('an independent PC/SC client (pyscard) selects the applet, reads the certificate, and OpenSSL checks the car’s signature', async (t) => {
    if (!requirePart(t, nfc.on, `NFC is off: ${nfc.on ? '' : nfc.reason}`)) return
    const python = '/usr/bin/python3'
    const pyscard =
      existsSync(python) &&
      (await run(python, ['-c', 'import smartcard']).then(
        () => true,
        () => false,
      ))
    if (!requirePart(t, pyscard, 'python3-pyscard is not installed (apt-get install python3-pyscard)')) return
    const { card, vehicle } = await aCarInTheField()
    const dir = await mkdtemp(join(tmpdir(), 'carchain-nfc-'))
    try {
      await writeFile(join(dir, 'client.py'), PYSCARD_CLIENT)
      const { stdout } = await run(python, [join(dir, 'client.py'), dir], { timeout: 30_000 })
      const out = JSON.parse(stdout) as {
        fci: string
        chain: string
        challenge: string
        signature: string
        sws: string[]
      }
      assert.deepEqual(out.sws, ['9000', '9000', '9000'])
      assert.ok(out.fci.startsWith('6f'))
      // the first certificate of the chain is the vehicle's
      const chain = Buffer.from(out.chain, 'hex')
      assert.ok(chain.subarray(0, vehicle.cert.der.length).equals(vehicle.cert.der))
      await writeFile(join(dir, 'leaf.der'), vehicle.cert.der)
      await writeFile(
        join(dir, 'message.bin'),
        Buffer.concat([Buffer.from('carchain/nfc/auth/v1'), Buffer.from(out.challenge, 'hex')]),
      )
      await writeFile(join(dir, 'signature.der'), rawToDerSignature(Buffer.from(out.signature, 'hex')))
      const { stdout: pub } = await run('openssl', [
        'x509',
        '-inform',
        'DER',
        '-in',
        join(dir, 'chain-leaf.der'),
        '-pubkey',
        '-noout',
      ])
      await writeFile(join(dir, 'pub.pem'), pub)
      const verified = await run('openssl', [
        'dgst',
        '-sha256',
        '-verify',
        join(dir, 'pub.pem'),
        '-signature',
        join(dir, 'signature.der'),
        join(dir, 'message.bin'),
      ])
      assert.match(verified.stdout, /Verified OK/)
      // the same signature does not verify over the bare challenge
      await writeFile(join(dir, 'bare.bin'), Buffer.from(out.challenge, 'hex'))
      await assert.rejects(
        run('openssl', [
          'dgst',
          '-sha256',
          '-verify',
          join(dir, 'pub.pem'),
          '-signature',
          join(dir, 'signature.der'),
          join(dir, 'bare.bin'),
        ]),
      )
    } finally {
      await card.remove()
      await waitForRemoval()
      await rm(dir, { recursive: true, force: true })
    }
  })
})

/**
 * The independent client: pyscard alone, following docs/nfc.md. It writes the leaf certificate
 * it split off the chain to chain-leaf.der (so OpenSSL checks against what the card sent).
 */
const PYSCARD_CLIENT = `
import json, os, sys
from smartcard.CardRequest import CardRequest

out_dir = sys.argv[1]
# waits for the card in the first reader's field, then connects (T=0 or T=1)
connection = CardRequest(timeout=10).waitforcard().connection
connection.connect()

def send(apdu):
    data, sw1, sw2 = connection.transmit(apdu)
    while sw1 == 0x61:
        more, sw1, sw2 = connection.transmit([0x00, 0xC0, 0x00, 0x00, sw2])
        data += more
    return bytes(data), '%02X%02X' % (sw1, sw2)

aid = list(bytes.fromhex('F0434152434841494E01'))
fci, sw_select = send([0x00, 0xA4, 0x04, 0x00, len(aid)] + aid + [0x00])
chain, sw_chain = send([0x00, 0xCA, 0x7F, 0x21, 0x00])
# the leaf: a DER SEQUENCE with a two-byte length (82 LL LL)
assert chain[0] == 0x30 and chain[1] == 0x82
leaf = chain[:4 + int.from_bytes(chain[2:4], 'big')]
open(os.path.join(out_dir, 'chain-leaf.der'), 'wb').write(leaf)
challenge = os.urandom(32)
signature, sw_auth = send([0x00, 0x88, 0x00, 0x00, 0x20] + list(challenge) + [0x00])
print(json.dumps({'fci': fci.hex(), 'chain': chain.hex(), 'challenge': challenge.hex(),
                  'signature': signature.hex(), 'sws': [sw_select, sw_chain, sw_auth]}))
`
