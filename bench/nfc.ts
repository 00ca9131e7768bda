/**
 * Tap to pay (issue 15 #6): the time at the terminal from SELECT to the car's payment answer,
 * over vsmartcard's virtual reader and pcscd, and that time over one bare APDU round trip on the
 * same reader in the same round (the transport's floor). The payment is a charging payment: the
 * charger signs its tariff and the final meter reading for the card's nonce, the car checks both,
 * the charger's registration on chain and its policy, and signs a permit.
 */
import { aCarWithApplet } from '../src/nfc/nfc.testkit.ts'
import { type PcscCard, waitForCard, waitForRemoval } from '../src/nfc/pcsc.ts'
import { startNfcService } from '../src/nfc/pcscd.ts'
import { collectChargingPermit, walletCard } from '../src/nfc/terminal.ts'
import { insertVirtualCard } from '../src/nfc/vpcd.ts'
import { aChargingWorld } from '../src/payments/payments.testkit.ts'
import { type BenchOptions, type BenchResult, median, resultOf, round3, skipped } from './harness.ts'

export const nfcNames = [
  { name: 'nfc.tap_to_pay_ms', unit: 'ms' },
  { name: 'nfc.tap_over_roundtrip', unit: '×' },
] as const

const TOKEN = 10n ** 18n
/** One bare APDU: GET DATA for the wallet address, answered from memory. */
const BARE = Uint8Array.of(0x00, 0xca, 0xdf, 0x02, 0x00)

export async function benchNfc(options: BenchOptions): Promise<BenchResult[]> {
  const service = await startNfcService({ mode: 'child' })
  if (!service.on)
    return nfcNames.map(({ name, unit }) => skipped(name, unit, `skipped: NFC is off: ${service.reason}`))
  const world = await aChargingWorld()
  let reader: PcscCard | undefined
  let inserted: Awaited<ReturnType<typeof insertVirtualCard>> | undefined
  try {
    const { signer, evseId } = await world.aCharger()
    const { applet } = await aCarWithApplet(world, {
      policy: { maxPerDay: 100_000n * TOKEN },
      funds: 100_000n * TOKEN,
    })
    inserted = await insertVirtualCard({ applet, ...service.vpcd })
    reader = await waitForCard({ timeoutMs: 10_000 })
    const card = walletCard(reader)
    const channel = reader
    await card.select()
    const roundTrip = async () => {
      const started = performance.now()
      await channel.transmit(BARE)
      return performance.now() - started
    }
    /** SELECT → GET CHALLENGE → PAY (two chained APDUs) → the permit, as the charger does it. */
    const tap = async () => {
      const started = performance.now()
      await collectChargingPermit({
        card: channel,
        signer,
        evseId,
        domain: world.domain,
        tariff: {
          token: world.token,
          pricePerKWh: 300_000_000_000_000_000n,
          sessionFee: 500_000_000_000_000_000n,
        },
        payee: world.cpo.account.address,
        now: world.clock.now,
        deliver: async () => {
          world.clock.advance(10 * 60_000)
          return 5_000n
        },
      })
      return performance.now() - started
    }
    const rounds = options.quick ? 3 : 12
    options.progress(`nfc: ${rounds} taps on ${reader.reader}`)
    await tap() // warm-up: caches, the first RPC connections
    const taps: number[] = []
    const floors: number[] = []
    const ratios: number[] = []
    for (let i = 0; i < rounds; i++) {
      const bare: number[] = []
      for (let k = 0; k < 5; k++) bare.push(await roundTrip())
      const floor = median(bare)
      const ms = await tap()
      taps.push(ms)
      floors.push(floor)
      ratios.push(ms / floor)
    }
    const what =
      'SELECT, GET CHALLENGE, PAY (charging: signed tariff + final reading, 2 chained APDUs) → permit'
    return [
      resultOf('nfc.tap_to_pay_ms', 'ms', taps, undefined, {
        what: `${what}, over vpcd + pcscd on ${reader.reader}`,
        roundTrips: 4,
        bareRoundTripMs: round3(median(floors)),
        budget: 'contactless schemes budget about 500 ms for a whole tap',
      }),
      resultOf(
        'nfc.tap_over_roundtrip',
        '×',
        ratios,
        { op: '<=', value: 6, source: 'issue 15' },
        {
          what: 'tap_to_pay / the median of 5 bare APDU round trips (GET DATA DF02) just before it, same reader, per round',
        },
      ),
    ]
  } finally {
    reader?.close()
    await inserted?.remove()
    if (inserted)
      await waitForRemoval({ timeoutMs: 3000 }).catch((error: unknown) =>
        options.progress(`nfc: the reader still shows a card (${(error as Error).message})`),
      )
    await world.stop()
    await service.stop()
  }
}
