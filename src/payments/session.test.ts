import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import type { Hex, LocalAccount } from 'viem'
import { BaseError } from '../errors.ts'
import { channelIdOf, channelKeyOf, claimVoucher, readChannel } from './channels.ts'
import { aChargingWorld, type ChargingWorld, TOKEN } from './payments.testkit.ts'
import { sessionCost } from './pricing.ts'
import { PROTOCOL_VERSION, parseStart } from './protocol.ts'
import { runChargingSession } from './session.ts'
import { type MessageTransport, memoryTransportPair } from './transport.ts'
import { type PaymentsDomain, signMeterReading, signTariff, type Tariff, tariffToJson } from './typed-data.ts'

let world: ChargingWorld
before(async () => {
  world = await aChargingWorld()
})
after(async () => {
  await world?.stop()
})

const codeOf = (code: string, detail?: Record<string, unknown>) => (error: unknown) => {
  assert.ok(error instanceof BaseError, `not a BaseError: ${String(error)}`)
  assert.equal(error.code, code, error.shortMessage)
  for (const [k, v] of Object.entries(detail ?? {})) assert.equal(error.details[k], v, `details.${k}`)
  return true
}

test('a session end to end: vouchers for the signed energy, one claim, the payee gets exactly that', async () => {
  const { station, events: stationEvents, evseId } = await world.aCharger()
  const car = await world.aCar()
  const cpoBefore = await world.balanceOf(world.cpo.account.address)
  const [carSide, chargerSide] = memoryTransportPair()
  const [result, session] = await Promise.all([
    runChargingSession({
      transport: carSide,
      wallet: car.wallet,
      clients: car.clients,
      contracts: { channels: world.domain.verifyingContract },
      stopAtWh: 5000,
    }),
    station.serve(chargerSide),
  ])
  assert.equal(result.evseId, evseId)
  assert.equal(result.channelAction, 'opened')
  assert.equal(result.payee, world.cpo.account.address)
  assert.ok(result.energyWh >= 5000n)
  const tariff = { pricePerKWh: 300_000_000_000_000_000n, sessionFee: 500_000_000_000_000_000n }
  assert.equal(result.amount, sessionCost(tariff, result.energyWh))
  assert.equal(session.code, 'OK')
  assert.equal(session.cumulativeAmount, result.cumulativeAmount)
  assert.equal(session.vouchers, result.vouchers)
  assert.deepEqual(
    car.events.map((e) => e.kind),
    ['charging.started', 'charging.ended', 'payment.sent'],
  )
  assert.equal((car.events[2]!.data as { amount: string }).amount, result.amount.toString())

  // Claimed once (newest voucher only): the payee gets exactly the vouchered amount.
  const claims = await station.claim()
  assert.equal(claims.length, 1)
  assert.ok(claims[0]?.ok)
  assert.equal((await world.balanceOf(world.cpo.account.address)) - cpoBefore, result.amount)
  assert.deepEqual(
    stationEvents.map((e) => e.kind),
    ['charging.started', 'charging.ended', 'payment.sent'],
  )

  // A second and third session reuse the channel; their vouchers continue its history.
  const carBalanceBefore = await world.balanceOf(car.account.address)
  let last = result
  for (let i = 0; i < 2; i++) {
    const [c, s] = memoryTransportPair()
    const [next] = await Promise.all([
      runChargingSession({
        transport: c,
        wallet: car.wallet,
        clients: car.clients,
        contracts: { channels: world.domain.verifyingContract },
        stopAtWh: 2000,
      }),
      station.serve(s),
    ])
    assert.equal(next.channelAction, 'reused')
    assert.equal(next.channelId, result.channelId)
    assert.equal(next.cumulativeAmount, last.cumulativeAmount + next.amount)
    assert.equal(next.meterWh, last.meterWh + next.energyWh)
    last = next
  }
  assert.equal(
    await world.balanceOf(car.account.address),
    carBalanceBefore,
    'no token moved for a reused channel',
  )
  const batched = await station.claim()
  assert.equal(batched.length, 1, 'two sessions, one claim')
  assert.equal((await world.balanceOf(world.cpo.account.address)) - cpoBefore, last.cumulativeAmount)

  // The operator closes: the payer gets back exactly deposit − paid.
  const key = channelKeyOf(car.account.address, car.wallet.channel(result.channelId)!)
  const onChain = await readChannel(world.chain.clients.publicClient, {
    channels: world.domain.verifyingContract,
    key,
  })
  const { closeChannel } = await import('./channels.ts')
  await closeChannel(world.cpo, { channels: world.domain.verifyingContract, key })
  assert.equal(
    (await world.balanceOf(car.account.address)) - carBalanceBefore,
    onChain.deposit - last.cumulativeAmount,
  )
  assert.deepEqual(
    station.sessions().map((s) => s.code),
    ['OK', 'OK', 'OK'],
  )
})

// ---------------------------------------------------------------- scripted peers for attacks

/** A charger that follows the protocol up to `start`, then sends what `script` makes. */
async function scriptedCharger(
  transport: MessageTransport,
  options: {
    signer: LocalAccount
    evseId: string
    certificatePem: string
    chainPem: string[]
    domain: PaymentsDomain
    tariff: Tariff
    script: (sessionId: Hex) => Promise<Record<string, unknown>[]>
  },
): Promise<void> {
  await transport.send({
    type: 'offer',
    version: PROTOCOL_VERSION,
    evseId: options.evseId,
    charger: options.signer.address,
    certificate: options.certificatePem,
    chain: options.chainPem,
    tariff: tariffToJson(options.tariff),
    tariffSignature: await signTariff(options.signer, options.domain, options.tariff),
  })
  let start: ReturnType<typeof parseStart>
  try {
    start = parseStart(await transport.receive(60_000))
  } catch {
    return
  }
  for (const message of await options.script(start.sessionId)) {
    await transport.send(message as { type: string })
    const answer = await transport.receive(10_000).catch(() => undefined)
    if (!answer || answer.type === 'stop') return
  }
  await transport.send({ type: 'stop', code: 'OK', message: 'script done' }).catch(() => {})
}

test('the car refuses overbilling, bad signatures and expired tariffs', async (t) => {
  const registered = await world.aCharger()
  const car = await world.aCar()
  const nowSec = () => BigInt(Math.floor(world.clock.now() / 1000))
  const tariff = (over: Partial<Tariff> = {}): Tariff => ({
    evseId: registered.evseId,
    token: world.token,
    pricePerKWh: 300_000_000_000_000_000n,
    sessionFee: 0n,
    validUntil: nowSec() + 600n,
    ...over,
  })
  const offerOf = async () => {
    // The registered charger's certificate, as its real offer carries it.
    const [c, s] = memoryTransportPair()
    const serving = registered.station.serve(s)
    const offer = await c.receive(5000)
    c.close()
    await serving.catch(() => {})
    return offer as unknown as { certificate: string; chain: string[] }
  }
  const { certificate: certificatePem, chain: chainPem } = await offerOf()
  const run = (t0: Tariff, script: (sessionId: Hex) => Promise<Record<string, unknown>[]>) => {
    const [c, s] = memoryTransportPair()
    const charger = scriptedCharger(s, {
      signer: registered.signer,
      evseId: registered.evseId,
      certificatePem,
      chainPem,
      domain: world.domain,
      tariff: t0,
      // The readings are stamped up to two minutes after the start: let the car's clock catch up.
      script: async (sessionId) => {
        const messages = await script(sessionId)
        world.clock.advance(180_000)
        return messages
      },
    })
    return Promise.all([
      runChargingSession({
        transport: c,
        wallet: car.wallet,
        clients: car.clients,
        contracts: { channels: world.domain.verifyingContract },
      }),
      charger,
    ])
  }
  const reading = async (
    sessionId: Hex,
    sessionWh: bigint,
    timeMs: bigint,
    due: bigint,
    by = registered.signer,
  ) => ({
    type: 'reading',
    sessionWh: Number(sessionWh),
    timeMs: Number(timeMs),
    due: due.toString(),
    signature: await signMeterReading(by, world.domain, {
      evseId: registered.evseId,
      sessionId,
      sessionWh,
      timeMs,
    }),
  })
  const price = 300_000_000_000_000_000n
  const cost = (wh: bigint) => (price * wh) / 1000n

  await t.test('a reading that goes backwards', async () => {
    const t0 = BigInt(world.clock.now())
    await assert.rejects(
      run(tariff(), async (id) => [
        await reading(id, 1000n, t0 + 60_000n, cost(1000n)),
        await reading(id, 900n, t0 + 120_000n, cost(900n)),
      ]),
      codeOf('METER_INVALID'),
    )
  })
  await t.test('a reading that jumps beyond a plausible rate', async () => {
    const t0 = BigInt(world.clock.now())
    await assert.rejects(
      run(tariff(), async (id) => [await reading(id, 100_000n, t0 + 60_000n, cost(100_000n))]),
      codeOf('METER_INVALID'),
    )
  })
  await t.test('a reading from the future', async () => {
    const t0 = BigInt(world.clock.now())
    await assert.rejects(
      run(tariff(), async (id) => [await reading(id, 10n, t0 + 3_600_000n, cost(10n))]),
      codeOf('METER_INVALID'),
    )
  })
  await t.test('a charger asking for more than its signed tariff', async () => {
    const t0 = BigInt(world.clock.now())
    await assert.rejects(
      run(tariff(), async (id) => {
        const base = car.wallet.channels().at(-1)?.cumulativeAmount ?? 0n
        return [await reading(id, 500n, t0 + 60_000n, base + cost(500n) + 1n)]
      }),
      codeOf('TARIFF_INVALID'),
    )
  })
  await t.test('a reading signed by another key', async () => {
    const t0 = BigInt(world.clock.now())
    await assert.rejects(
      run(tariff(), async (id) => [await reading(id, 500n, t0 + 60_000n, cost(500n), car.account)]),
      codeOf('METER_INVALID'),
    )
  })
  await t.test('a reading for another session', async () => {
    const t0 = BigInt(world.clock.now())
    const other = `0x${'11'.repeat(32)}` as Hex
    await assert.rejects(
      run(tariff(), async () => [await reading(other, 500n, t0 + 60_000n, cost(500n))]),
      codeOf('METER_INVALID'),
    )
  })
  await t.test('an expired tariff', async () => {
    await assert.rejects(
      run(tariff({ validUntil: nowSec() - 1n }), async () => []),
      codeOf('TARIFF_INVALID'),
    )
  })
  await t.test('a tariff not signed by the charger', async () => {
    const [c, s] = memoryTransportPair()
    const bad = tariff()
    const sending = s.send({
      type: 'offer',
      version: PROTOCOL_VERSION,
      evseId: registered.evseId,
      charger: registered.signer.address,
      certificate: certificatePem,
      chain: chainPem,
      tariff: tariffToJson(bad),
      tariffSignature: await signTariff(car.account, world.domain, bad),
    })
    await assert.rejects(
      runChargingSession({
        transport: c,
        wallet: car.wallet,
        clients: car.clients,
        contracts: { channels: world.domain.verifyingContract },
      }),
      codeOf('TARIFF_INVALID'),
    )
    await sending
  })
  await t.test('an offered certificate that is not the TLS peer’s', async () => {
    const [c, s] = memoryTransportPair({ carSeesCertificate: world.pki.cpo.sub.der })
    const charger = scriptedCharger(s, {
      signer: registered.signer,
      evseId: registered.evseId,
      certificatePem,
      chainPem,
      domain: world.domain,
      tariff: tariff(),
      script: async () => [],
    })
    await assert.rejects(
      runChargingSession({
        transport: c,
        wallet: car.wallet,
        clients: car.clients,
        contracts: { channels: world.domain.verifyingContract },
      }),
      codeOf('UNAUTHENTICATED'),
    )
    await charger
  })
  await t.test('a price above the owner’s maximum', async () => {
    await assert.rejects(
      run(tariff({ pricePerKWh: 2n * TOKEN }), async () => []),
      codeOf('POLICY_DENIED', { rule: 'maxPricePerKWh' }),
    )
  })
  await t.test('only the signed, plausible reading before a refusal was paid', async () => {
    const payments = car.events.filter((e) => e.kind === 'payment.sent')
    assert.equal(payments.length, 1, 'the backwards session paid its first, valid reading')
    assert.equal((payments[0]!.data as { amount: string }).amount, cost(1000n).toString())
  })
})

test('the car refuses unregistered and revoked chargers, and a wallet over its daily cap', async (t) => {
  const serveOnce = async (
    station: Awaited<ReturnType<ChargingWorld['aCharger']>>['station'],
    car: Awaited<ReturnType<ChargingWorld['aCar']>>,
    stopAtWh?: number,
  ) => {
    const [c, s] = memoryTransportPair()
    const [result, session] = await Promise.allSettled([
      runChargingSession({
        transport: c,
        wallet: car.wallet,
        clients: car.clients,
        contracts: { channels: world.domain.verifyingContract },
        ...(stopAtWh ? { stopAtWh } : {}),
      }),
      station.serve(s),
    ])
    assert.equal(session.status, 'fulfilled')
    if (result.status === 'rejected') throw result.reason
    return result.value
  }
  await t.test('unregistered', async () => {
    const { station } = await world.aCharger({ register: false })
    const car = await world.aCar()
    await assert.rejects(
      serveOnce(station, car),
      codeOf('POLICY_DENIED', { rule: 'charger', causeCode: 'CHARGER_NOT_REGISTERED' }),
    )
  })
  await t.test('revoked', async () => {
    const { station, signer } = await world.aCharger()
    const { vehicleRegistryAbi } = await import('../chain/generated/index.ts')
    const hash = await world.cpo.walletClient.writeContract({
      address: world.registry,
      abi: vehicleRegistryAbi,
      functionName: 'revokeCharger',
      args: [signer.address],
    })
    await world.chain.clients.publicClient.waitForTransactionReceipt({ hash })
    const car = await world.aCar()
    await assert.rejects(
      serveOnce(station, car),
      codeOf('POLICY_DENIED', { rule: 'charger', causeCode: 'CERT_REVOKED' }),
    )
  })
  await t.test('over the daily cap, also after a restart', async () => {
    const { station } = await world.aCharger()
    const statePath = `${world.tmp}/cap-wallet.json`
    const car = await world.aCar({ policy: { maxPerDay: 3n * TOKEN, maxPerSession: 3n * TOKEN }, statePath })
    // 0.5 fee + 0.3/kWh with a 3-token cap: the car asks for at most 8,333 Wh and the meter stops
    // there, so the session ends normally at the cap.
    const first = await serveOnce(station, car)
    assert.equal(first.energyWh, 8333n)
    assert.equal(first.amount, 500_000_000_000_000_000n + (300_000_000_000_000_000n * 8333n) / 1000n)
    const spent = car.wallet.spentToday()
    assert.equal(spent, first.amount)
    // What is left today does not pay for a session: refused before any channel or voucher.
    await assert.rejects(serveOnce(station, car), codeOf('POLICY_DENIED', { rule: 'maxPerDay' }))
    const { createCarWallet } = await import('./wallet.ts')
    const restarted = createCarWallet({
      account: car.account,
      domain: world.domain,
      policy: car.wallet.policy,
      statePath,
      checkCharger: async () => {
        throw new Error('unused')
      },
      record: async () => 'x',
      now: world.clock.now,
    })
    assert.equal(restarted.spentToday(), spent)
    assert.throws(
      () => restarted.authorizeSpend(3n * TOKEN - spent + 1n, 1n, world.token),
      codeOf('POLICY_DENIED', { rule: 'maxPerDay' }),
    )
  })
})

test('the charger refuses vouchers for another channel or chain, above the deposit, or stale', async (t) => {
  const { station } = await world.aCharger({ tariff: { sessionFee: 0n } })
  const car = await world.aCar()
  // One honest session opens the channel and fills the book.
  const [c0, s0] = memoryTransportPair()
  const [first] = await Promise.all([
    runChargingSession({
      transport: c0,
      wallet: car.wallet,
      clients: car.clients,
      contracts: { channels: world.domain.verifyingContract },
      stopAtWh: 1500,
    }),
    station.serve(s0),
  ])
  const { openChannel } = await import('./channels.ts')
  const { signVoucher } = await import('./typed-data.ts')
  const { voucherFor } = await import('./pricing.ts')
  const other = await openChannel(car.clients, car.wallet, {
    channels: world.domain.verifyingContract,
    payee: world.cpo.account.address,
    token: world.token,
    deposit: TOKEN / 10n,
    expiresAt: BigInt(Math.floor(world.clock.now() / 1000) + 86_400 * 30),
  })
  const tariff = { pricePerKWh: 300_000_000_000_000_000n, sessionFee: 0n }

  /**
   * A car that starts on `channelId` with `base`, then answers the first reading with `forge`.
   * The nonce sent is the wallet's for `channelId` unless `start` overrides it (or the vehicle).
   */
  const misbehave = async (
    channelId: Hex,
    base: { cumulativeAmount: bigint; meterWh: bigint; signature: Hex | null },
    forge: (sessionWh: bigint) => Promise<Record<string, unknown>>,
    start: { nonce?: bigint; vehicle?: Hex } = {},
  ) => {
    const [c, s] = memoryTransportPair()
    const serving = station.serve(s)
    await c.receive(5000)
    await c.send({
      type: 'start',
      sessionId: `0x${'ab'.repeat(32)}`,
      vehicle: start.vehicle ?? car.account.address,
      channelId,
      nonce: (start.nonce ?? car.wallet.channel(channelId)?.nonce ?? 0n).toString(),
      base: {
        cumulativeAmount: base.cumulativeAmount.toString(),
        meterWh: Number(base.meterWh),
        signature: base.signature,
      },
      maxWh: 0,
    })
    const reading = await c.receive(5000)
    if (reading.type === 'reading')
      await c.send((await forge(BigInt(reading.sessionWh as number))) as { type: string })
    const session = await serving
    c.close()
    return session
  }
  const voucherMessage = async (
    v: { channelId: Hex; cumulativeAmount: bigint; meterWh: bigint },
    domain = world.domain,
  ) => ({
    type: 'voucher',
    channelId: v.channelId,
    cumulativeAmount: v.cumulativeAmount.toString(),
    meterWh: Number(v.meterWh),
    signature: await signVoucher(car.account, domain, v),
  })
  const base = {
    cumulativeAmount: first.cumulativeAmount,
    meterWh: first.meterWh,
    signature: car.wallet.channel(first.channelId)!.signature,
  }

  await t.test('a voucher for another channel', async () => {
    const session = await misbehave(first.channelId, base, (wh) =>
      voucherMessage(voucherFor(other.channelId, base, tariff, wh)),
    )
    assert.equal(session.code, 'VOUCHER_INVALID')
  })
  await t.test('a voucher signed for another chain', async () => {
    const session = await misbehave(first.channelId, base, (wh) =>
      voucherMessage(voucherFor(first.channelId, base, tariff, wh), { ...world.domain, chainId: 1 }),
    )
    assert.equal(session.code, 'VOUCHER_INVALID')
  })
  await t.test('a voucher below the metered amount', async () => {
    const session = await misbehave(first.channelId, base, (wh) =>
      voucherMessage({
        ...voucherFor(first.channelId, base, tariff, wh),
        cumulativeAmount: base.cumulativeAmount + 1n,
      }),
    )
    assert.equal(session.code, 'VOUCHER_INVALID')
  })
  await t.test('a voucher above the deposit', async () => {
    const zero = { cumulativeAmount: 0n, meterWh: 0n, signature: null }
    // 0.1 token deposit, 0.3 token per kWh: the first 833 Wh cost 0.25.
    const session = await misbehave(other.channelId, zero, (wh) =>
      voucherMessage(voucherFor(other.channelId, zero, tariff, wh)),
    )
    assert.equal(session.code, 'VOUCHER_INVALID')
    assert.match(station.sessions()[0]?.code ?? '', /VOUCHER_INVALID/)
  })
  await t.test('a stale base (older than the newest voucher)', async () => {
    const stale = { cumulativeAmount: 0n, meterWh: 0n, signature: null }
    const session = await misbehave(first.channelId, stale, (wh) =>
      voucherMessage(voucherFor(first.channelId, stale, tariff, wh)),
    )
    assert.equal(session.code, 'VOUCHER_INVALID')
  })
  await t.test(
    'a start whose nonce, vehicle or channel does not make the key of a channel to this CPO',
    async () => {
      const noReading = async () => ({ type: 'stop', code: 'OK', message: 'unused' })
      const wrongNonce = await misbehave(first.channelId, base, noReading, {
        nonce: car.wallet.channel(first.channelId)!.nonce + 1n,
      })
      assert.equal(wrongNonce.code, 'CHANNEL_STATE')
      const otherCar = await misbehave(first.channelId, base, noReading, {
        vehicle: world.chain.clients.account.address,
      })
      assert.equal(otherCar.code, 'CHANNEL_STATE')
      // A real channel of this car, with its own nonce, but to another payee: not this CPO's.
      const elsewhere = await openChannel(car.clients, car.wallet, {
        channels: world.domain.verifyingContract,
        payee: (await world.chain.as(5)).account.address,
        token: world.token,
        deposit: TOKEN / 10n,
        expiresAt: BigInt(Math.floor(world.clock.now() / 1000) + 86_400 * 30),
      })
      const zero = { cumulativeAmount: 0n, meterWh: 0n, signature: null }
      const toOther = await misbehave(elsewhere.channelId, zero, noReading)
      assert.equal(toOther.code, 'CHANNEL_STATE')
      // A key whose id is right but that opened nothing.
      const unopened = channelIdOf({
        ...channelKeyOf(car.account.address, elsewhere),
        payee: world.cpo.account.address,
      })
      const never = await misbehave(unopened, zero, noReading, { nonce: elsewhere.nonce })
      assert.equal(never.code, 'CHANNEL_STATE')
    },
  )
  await t.test('on chain: a stale voucher after a newer one pays nothing', async () => {
    const claims = await station.claim()
    assert.ok(claims.every((c) => c.ok))
    const newest = (await station.book.newest(first.channelId))!.newest
    const older = { channelId: first.channelId, cumulativeAmount: newest.cumulativeAmount - 1n, meterWh: 0n }
    await assert.rejects(
      claimVoucher(world.cpo, {
        channels: world.domain.verifyingContract,
        key: channelKeyOf(car.account.address, car.wallet.channel(first.channelId)!),
        voucher: { ...older, signature: await signVoucher(car.account, world.domain, older) },
      }),
      codeOf('VOUCHER_INVALID', { reason: 'ChargingChannelsVoucherNotIncreasing' }),
    )
  })
})
