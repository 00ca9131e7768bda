/**
 * Attacks on the operator's side of charging (issue 19 #3), on a real anvil over real mutual
 * TLS 1.3: a car that pays one channel's amount twice by charging at two chargers of one operator
 * at once, and a car that names another car's channel.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, test } from 'node:test'
import type { Address, Hex, LocalAccount } from 'viem'
import { engines, freshDatabase } from '../../test/database.ts'
import { openChannel } from '../payments/channels.ts'
import { aChargingWorld, type ChargingWorld, TOKEN } from '../payments/payments.testkit.ts'
import { type VoucherBase, voucherFor } from '../payments/pricing.ts'
import { parseOffer } from '../payments/protocol.ts'
import type { Message, MessageTransport } from '../payments/transport.ts'
import { signVoucher, type Tariff, voucherToJson } from '../payments/typed-data.ts'
import type { ChannelRecord } from '../payments/wallet.ts'
import { databaseVoucherBook } from './database-voucher-book.ts'
import { memoryVoucherBook, type VoucherBook } from './vouchers.ts'

let world: ChargingWorld
before(async () => {
  world = await aChargingWorld()
})
after(async () => {
  await world?.stop()
})

/**
 * A hand-driven car: reads the offer and starts a session on `channel` (as `payer`) from `base`;
 * `pay` answers the pending reading with the voucher it asks for and returns the next message.
 */
async function startSession(
  transport: MessageTransport,
  channel: ChannelRecord,
  payer: Address,
  base: VoucherBase & { signature: Hex | null },
) {
  const tariff: Tariff = parseOffer(await transport.receive(10_000)).tariff.value
  await transport.send({
    type: 'start',
    sessionId: `0x${randomBytes(32).toString('hex')}`,
    vehicle: payer,
    channelId: channel.channelId,
    nonce: channel.nonce.toString(),
    base: {
      cumulativeAmount: base.cumulativeAmount.toString(),
      meterWh: Number(base.meterWh),
      signature: base.signature,
    },
    maxWh: 0,
  })
  let pending: Message = await transport.receive(10_000)
  let last: { cumulativeAmount: bigint; meterWh: bigint; signature: Hex } | undefined
  return {
    get pending() {
      return pending
    },
    get last() {
      return last
    },
    async pay(account: LocalAccount) {
      assert.equal(pending.type, 'reading', JSON.stringify(pending))
      const voucher = voucherFor(channel.channelId, base, tariff, BigInt(pending.sessionWh as number))
      const signature = await signVoucher(account, world.domain, voucher)
      await transport.send({ type: 'voucher', ...voucherToJson(voucher), signature })
      last = { ...voucher, signature }
      pending = await transport.receive(10_000)
    },
    async stop() {
      await transport.send({ type: 'stop', code: 'OK', message: 'the car is full' })
      transport.close()
    },
  }
}

const zero = { cumulativeAmount: 0n, meterWh: 0n, signature: null }

async function aCarWithCertificate() {
  const vehicle = await world.pki.aVehicle()
  const car = await world.aCar({ walletRef: vehicle.walletRef })
  const channel = await openChannel(car.clients, car.wallet, {
    channels: world.domain.verifyingContract,
    payee: world.cpo.account.address,
    token: world.token,
    deposit: 20n * TOKEN,
    expiresAt: BigInt(Math.floor(world.clock.now() / 1000) + 86_400 * 30),
  })
  return { vehicle, car, channel }
}

/**
 * Two chargers of one operator, `books` theirs (one shared book, or two books on one database as
 * chargers in two processes have): a car runs two sessions at once on one channel.
 */
async function concurrentSessions(books: [VoucherBook, VoucherBook]) {
  const one = await world.aCharger({ book: books[0], tariff: { sessionFee: 0n } })
  const two = await world.aCharger({ book: books[1], tariff: { sessionFee: 0n } })
  const [atOne, atTwo] = [await world.listen(one), await world.listen(two)]
  try {
    const { vehicle, car, channel } = await aCarWithCertificate()
    // The first session runs; while it does, the car starts a second one at the other charger
    // from the same base and answers both in lockstep with overlapping (here: equal) vouchers.
    const first = await startSession(
      await world.connectAs(vehicle, atOne.port),
      channel,
      car.account.address,
      zero,
    )
    assert.equal(first.pending.type, 'reading')
    const second = await startSession(
      await world.connectAs(vehicle, atTwo.port),
      channel,
      car.account.address,
      zero,
    )
    for (let round = 0; round < 3; round++) {
      await first.pay(car.account)
      if (second.pending.type === 'reading') await second.pay(car.account)
    }
    assert.equal(second.pending.type, 'stop', 'the second session is refused')
    assert.equal(second.pending.code, 'CHANNEL_BUSY')
    await first.stop()
    await Promise.allSettled([second.stop()]) // the refused session has ended: its stop may reject
    const [firstSession] = await Promise.all(atOne.served)
    const [secondSession] = await Promise.all(atTwo.served)
    assert.equal(firstSession?.code, 'OK')
    assert.equal(secondSession?.code, 'CHANNEL_BUSY')
    assert.equal(secondSession?.energyWh, 0n, 'nothing delivered to the refused session')

    // Once the first session ended, the channel serves the next one from the book's newest voucher.
    const third = await startSession(
      await world.connectAs(vehicle, atTwo.port),
      channel,
      car.account.address,
      {
        ...first.last!,
      },
    )
    await third.pay(car.account)
    await third.stop()
    const sessions = await Promise.all([...atOne.served, ...atTwo.served])
    assert.deepEqual(
      sessions.map((s) => s.code),
      ['OK', 'CHANNEL_BUSY', 'OK'],
    )
    // What the operator can claim (the book's newest voucher) pays every session it delivered.
    const delivered = sessions.reduce((sum, s) => sum + s.amount, 0n)
    const claimable = (await books[1].newest(channel.channelId))?.newest.cumulativeAmount ?? 0n
    assert.ok(delivered > 0n)
    assert.equal(claimable, delivered, `claimable ${claimable}, delivered ${delivered}`)
  } finally {
    atOne.server.close()
    atTwo.server.close()
  }
}

test('two concurrent sessions on one channel at two chargers of one process: the second is refused', async () => {
  const book = memoryVoucherBook()
  await concurrentSessions([book, book])
})

for (const engine of engines)
  test(`two concurrent sessions on one channel at chargers in two processes (${engine} book): the second is refused`, async () => {
    const db = await freshDatabase(engine)
    try {
      await concurrentSessions([databaseVoucherBook(db), databaseVoucherBook(db)])
    } finally {
      await db.close()
    }
  })

test('a car that names another car’s channel is refused before any energy', async () => {
  const charger = await world.aCharger({ tariff: { sessionFee: 0n } })
  const at = await world.listen(charger)
  try {
    const victim = await aCarWithCertificate()
    const thief = await world.pki.aVehicle()
    // The thief's own certificate (its own wallet) on the victim's channel, as its payer.
    const session = await startSession(
      await world.connectAs(thief, at.port),
      victim.channel,
      victim.car.account.address,
      zero,
    )
    assert.equal(session.pending.type, 'stop', `got ${session.pending.type}`)
    assert.equal(session.pending.code, 'PAYER_NOT_PEER')
    const [served] = await Promise.all(at.served)
    assert.equal(served?.code, 'PAYER_NOT_PEER')
    assert.equal(served?.energyWh, 0n)
    assert.equal(charger.events.length, 0, 'no charging.started for a refused session')
  } finally {
    at.server.close()
  }
})
