/**
 * The car's side of a charging session (docs/payments.md "Session protocol"). It pays only for
 * energy it saw signed, at the price it saw signed:
 *
 * 1. `acceptOffer`: the charger's certificate must be the TLS peer's, the tariff signed by the
 *    charger's registered address; the wallet checks the charger (PKI + registry) and the tariff
 *    (expiry, token, prices).
 * 2. `prepareChannel`: a channel to the charger's CPO is reused or opened with a permit.
 * 3. `startSession`: `start` names it, with the channel's newest voucher as the base and a fresh
 *    random `sessionId`; the car records `charging.started`.
 * 4. `payReadings`: each signed `reading` is checked (signature over this session, energy never
 *    backwards, time forwards, no faster than `maxPowerW`, the charger's `due` not above the
 *    tariff), and answered with a voucher for exactly the signed energy at the signed price,
 *    after the wallet's caps, until either side stops.
 * 5. `recordEnd`: the car records `charging.ended` and `payment.sent`.
 *
 * A refusal at any step sends `stop` with the error code to the charger (one that cannot be sent
 * is logged), records the end once the session started, and rejects with that BaseError
 * (details: `sessionId`, `amount` paid).
 */
import { createHash, randomBytes } from 'node:crypto'
import type { Address, Hash, Hex } from 'viem'
import { demoTokenAbi } from '../chain/generated/index.ts'
import { BaseError, toBaseError } from '../errors.ts'
import { toDer } from '../identity/certificate.ts'
import { logger } from '../log.ts'
import { type ChannelClients, ensureChannel } from './channels.ts'
import { minAmount, plausibleEnergyWh, sessionCost, type VoucherBase, voucherFor } from './pricing.ts'
import { isOkStop, parseOffer, parseReading, sendStop, stopError, stopMessage } from './protocol.ts'
import type { MessageTransport } from './transport.ts'
import { type Tariff, tariffToJson, verifyMeterReading, verifyTariff, voucherToJson } from './typed-data.ts'
import type { CarWallet } from './wallet.ts'

export type ChargingSessionParameters = {
  readonly transport: MessageTransport
  readonly wallet: CarWallet
  /** Clients whose wallet client sends as `wallet.account` (opening a channel). */
  readonly clients: ChannelClients
  readonly contracts: { readonly channels: Address }
  /** Stop after this much energy, Wh (default: until the charger stops or the session budget is spent). */
  readonly stopAtWh?: number
  /** Deposit of a new channel (default 5 × the session cap, at most the wallet's balance). */
  readonly channelDeposit?: bigint
  /** Lifetime of a new channel (default 30 days) and the least left on a reused one (default 1 day). */
  readonly channelValiditySec?: number
  readonly minChannelValiditySec?: number
  /** How far a reading's time may be ahead of the car's clock (default 30 s). */
  readonly clockSkewMs?: number
  /** Per message (default 30 s; the `start` wait covers opening a channel on chain). */
  readonly timeoutMs?: number
  /** Ends the session at the next message boundary. */
  readonly signal?: AbortSignal
}

export type ChargingSessionResult = {
  readonly sessionId: Hex
  readonly evseId: string
  readonly charger: Address
  readonly payee: Address
  readonly channelId: Hex
  readonly channelAction: 'reused' | 'opened'
  readonly openTxHash?: Hash
  readonly tariff: Tariff
  readonly energyWh: bigint
  /** Paid in this session, base units. */
  readonly amount: bigint
  /** The newest voucher on the channel after the session. */
  readonly cumulativeAmount: bigint
  readonly meterWh: bigint
  readonly vouchers: number
  /** Who stopped: the car (limit reached or signal) or the charger. */
  readonly stoppedBy: 'car' | 'charger'
  readonly eventIds: { started: string; ended: string; payment?: string }
}

const DAY_SEC = 86_400
const log = logger('payments.session')

/** The charger's offer once the car accepted it (step 1). */
type AcceptedOffer = ReturnType<typeof parseOffer> & {
  /** The charger's CPO, read from the chain: the channel's payee. */
  readonly payee: Address
}

/** The channel the session pays through and what the session may spend (step 2). */
type SessionChannel = {
  readonly ensured: Awaited<ReturnType<typeof ensureChannel>>
  readonly channelId: Hex
  /** The channel's newest voucher when the session started. */
  readonly base: VoucherBase
  /** The most energy the session budget pays for (the car's `maxWh`); undefined: no limit. */
  readonly maxWh: bigint | undefined
}

/** What the session delivered and paid so far (step 4). */
type Metered = {
  lastWh: bigint
  amount: bigint
  vouchers: number
  stoppedBy: 'car' | 'charger'
}

/**
 * Runs one charging session as the car; resolves when it ended normally. Each step that fails
 * sends `stop` with its code to the charger (see `refuse`) and rejects with it.
 */
export async function runChargingSession(
  parameters: ChargingSessionParameters,
): Promise<ChargingSessionResult> {
  const { transport } = parameters
  const offer = await refusing(transport, () => acceptOffer(parameters))
  const channel = await refusing(transport, () => prepareChannel(parameters, offer))
  const started = await refusing(transport, () => startSession(parameters, offer, channel))
  const metered: Metered = { lastWh: 0n, amount: 0n, vouchers: 0, stoppedBy: 'charger' }
  const failure = await payReadings(parameters, offer, channel, started, metered).then(
    () => undefined,
    (error: unknown) => toBaseError(error),
  )
  const end = () => recordEnd(parameters, offer, channel, started.sessionId, metered, failure?.code ?? 'OK')
  if (failure) {
    // The refusal is what the caller must see; a failure to record it as well is logged.
    await end().catch((err: unknown) =>
      log.error({ err, sessionId: started.sessionId }, 'could not record the session’s end'),
    )
    failure.details.sessionId = started.sessionId
    failure.details.amount = metered.amount.toString()
    return refuse(transport, failure)
  }
  const events = await refusing(transport, end)
  transport.close()
  return {
    sessionId: started.sessionId,
    evseId: offer.evseId,
    charger: offer.charger,
    payee: offer.payee,
    channelId: channel.channelId,
    channelAction: channel.ensured.action,
    ...(channel.ensured.txHash ? { openTxHash: channel.ensured.txHash } : {}),
    tariff: offer.tariff.value,
    energyWh: metered.lastWh,
    amount: metered.amount,
    cumulativeAmount: channel.base.cumulativeAmount + metered.amount,
    meterWh: channel.base.meterWh + metered.lastWh,
    vouchers: metered.vouchers,
    stoppedBy: metered.stoppedBy,
    eventIds: {
      started: started.eventId,
      ended: events.endedId,
      ...(events.paymentId ? { payment: events.paymentId } : {}),
    },
  }
}

/**
 * Ends the session on a refusal: sends `stop` with the error's code unless the charger stopped
 * first (a stop that cannot be sent is logged: the charger then ends on its timeout), closes the
 * transport, and rejects with the error.
 */
async function refuse(transport: MessageTransport, error: unknown): Promise<never> {
  const failure = toBaseError(error)
  if (!failure.details.peer)
    await sendStop(transport, failure.code, failure.shortMessage, { sessionId: failure.details.sessionId })
  transport.close()
  throw failure
}

/** Runs `step`; when it fails, refuses with its error. */
async function refusing<T>(transport: MessageTransport, step: () => Promise<T>): Promise<T> {
  try {
    return await step()
  } catch (error) {
    return refuse(transport, error)
  }
}

/**
 * Step 1: the charger's offer. Its certificate must be the TLS peer's, the tariff signed by the
 * charger's registered address for its EVSE; the wallet checks the charger (PKI + registry, which
 * gives the payee) and the tariff (expiry, token, prices).
 */
async function acceptOffer(parameters: ChargingSessionParameters): Promise<AcceptedOffer> {
  const { transport, wallet } = parameters
  const offer = parseOffer(await transport.receive(parameters.timeoutMs ?? 30_000))
  if (transport.peerCertificate) {
    const presented = createHash('sha256').update(toDer(offer.certificate)).digest('hex')
    const peer = createHash('sha256').update(transport.peerCertificate).digest('hex')
    if (presented !== peer)
      throw new BaseError('UNAUTHENTICATED', 'the offered certificate is not the TLS peer’s', {
        details: { presented, peer },
      })
  }
  if (offer.tariff.value.evseId !== offer.evseId)
    throw new BaseError(
      'TARIFF_INVALID',
      `the tariff is for ${offer.tariff.value.evseId}, not ${offer.evseId}`,
      {
        details: { evseId: offer.evseId, tariffEvseId: offer.tariff.value.evseId },
      },
    )
  await verifyTariff(wallet.domain, offer.tariff, offer.charger)
  const identity = await wallet.checkCharger({
    address: offer.charger,
    certificate: offer.certificate,
    chain: offer.chain,
    evseId: offer.evseId,
  })
  wallet.checkTariff(offer.tariff.value)
  return { ...offer, payee: identity.payee }
}

/**
 * Step 2: the session budget (what the caps leave today), a channel to the payee that can pay it
 * (reused or opened with a permit), and the energy that budget buys.
 */
async function prepareChannel(
  parameters: ChargingSessionParameters,
  offer: AcceptedOffer,
): Promise<SessionChannel> {
  const { wallet } = parameters
  const tariff = offer.tariff.value
  const sessionBudget = minAmount(wallet.policy.maxPerDay - wallet.spentToday(), wallet.policy.maxPerSession)
  // The smallest useful session is the fee plus one kWh; below that the day's cap is spent.
  if (sessionBudget < tariff.sessionFee + tariff.pricePerKWh / 1000n + 1n)
    throw new BaseError('POLICY_DENIED', `the daily cap leaves ${sessionBudget}, too little for a session`, {
      details: {
        rule: 'maxPerDay',
        spentToday: wallet.spentToday().toString(),
        maxPerDay: wallet.policy.maxPerDay.toString(),
      },
    })
  const ensured = await ensureChannel(parameters.clients, wallet, {
    channels: parameters.contracts.channels,
    payee: offer.payee,
    token: tariff.token,
    minAvailable: sessionBudget,
    // Default: five sessions' worth, but no more than the wallet holds.
    deposit:
      parameters.channelDeposit ??
      minAmount(
        wallet.policy.maxPerSession * 5n,
        await parameters.clients.publicClient.readContract({
          address: tariff.token,
          abi: demoTokenAbi,
          functionName: 'balanceOf',
          args: [wallet.address],
        }),
      ),
    validitySec: parameters.channelValiditySec ?? 30 * DAY_SEC,
    minValiditySec: parameters.minChannelValiditySec ?? DAY_SEC,
  })
  // The most energy the session budget pays for; the charger's meter stops there (as ISO 15118's
  // EVMaximumEnergyRequest), so the cap ends a session normally instead of refusing a reading.
  const budgetWh =
    tariff.pricePerKWh > 0n ? ((sessionBudget - tariff.sessionFee) * 1000n) / tariff.pricePerKWh : undefined
  const stopAtWh = parameters.stopAtWh === undefined ? undefined : BigInt(parameters.stopAtWh)
  const maxWh =
    budgetWh === undefined ? stopAtWh : stopAtWh === undefined ? budgetWh : minAmount(budgetWh, stopAtWh)
  const channelId = ensured.record.channelId
  return { ensured, channelId, base: wallet.baseOf(channelId), maxWh }
}

/** Step 3: `start` names the channel, its nonce and base, under a fresh random `sessionId`; the car records `charging.started`. */
async function startSession(
  parameters: ChargingSessionParameters,
  offer: AcceptedOffer,
  channel: SessionChannel,
): Promise<{ sessionId: Hex; startedAtMs: bigint; eventId: string }> {
  const { transport, wallet } = parameters
  const { channelId, base, ensured } = channel
  const sessionId = `0x${randomBytes(32).toString('hex')}` as Hex
  const startedAtMs = BigInt(wallet.now())
  await transport.send({
    type: 'start',
    sessionId,
    vehicle: wallet.address,
    channelId,
    nonce: ensured.record.nonce.toString(),
    base: {
      cumulativeAmount: base.cumulativeAmount.toString(),
      meterWh: Number(base.meterWh),
      signature: wallet.channel(channelId)?.signature ?? null,
    },
    maxWh: Number(channel.maxWh ?? 0n),
  })
  try {
    const eventId = await wallet.record('charging.started', {
      sessionId,
      evseId: offer.evseId,
      charger: offer.charger,
      payee: offer.payee,
      channelId,
      channel: ensured.action,
      tariff: tariffToJson(offer.tariff.value),
    })
    return { sessionId, startedAtMs, eventId }
  } catch (error) {
    const failure = toBaseError(error)
    failure.details.sessionId = sessionId
    throw failure
  }
}

/**
 * Step 4: each signed reading is checked (signature over this session, energy never backwards,
 * time forwards, not from the future, no faster than `maxPowerW`, `due` not above the tariff) and
 * answered with a voucher for exactly the signed energy at the signed price, after the wallet's
 * caps. Ends normally on the charger's OK stop, at `maxWh` or on the signal; `metered` keeps what
 * was paid also when it throws.
 */
async function payReadings(
  parameters: ChargingSessionParameters,
  offer: AcceptedOffer,
  channel: SessionChannel,
  started: { sessionId: Hex; startedAtMs: bigint },
  metered: Metered,
): Promise<void> {
  const { transport, wallet } = parameters
  const timeoutMs = parameters.timeoutMs ?? 30_000
  const skewMs = BigInt(parameters.clockSkewMs ?? 30_000)
  const maxPowerW = wallet.policy.maxPowerW ?? 350_000
  const tariff = offer.tariff.value
  const { channelId, base, maxWh } = channel
  let lastTimeMs = started.startedAtMs - skewMs
  for (;;) {
    if (parameters.signal?.aborted) {
      metered.stoppedBy = 'car'
      await transport.send(stopMessage('OK', 'stopped by the car'))
      return
    }
    const message = await transport.receive(timeoutMs)
    if (message.type === 'stop') {
      if (!isOkStop(message)) throw stopError(message)
      return
    }
    const reading = parseReading(message)
    await verifyMeterReading(
      wallet.domain,
      {
        value: {
          evseId: offer.evseId,
          sessionId: started.sessionId,
          sessionWh: reading.sessionWh,
          timeMs: reading.timeMs,
        },
        signature: reading.signature,
      },
      offer.charger,
    )
    const details = {
      sessionWh: Number(reading.sessionWh),
      timeMs: Number(reading.timeMs),
      lastWh: Number(metered.lastWh),
    }
    if (reading.sessionWh < metered.lastWh)
      throw new BaseError('METER_INVALID', 'the meter reading goes backwards', { details })
    if (reading.timeMs <= lastTimeMs)
      throw new BaseError('METER_INVALID', 'the meter reading is not later than the previous one', {
        details,
      })
    if (reading.timeMs > BigInt(wallet.now()) + skewMs)
      throw new BaseError('METER_INVALID', 'the meter reading is from the future', { details })
    const plausible = plausibleEnergyWh(maxPowerW, reading.timeMs - lastTimeMs)
    if (reading.sessionWh - metered.lastWh > plausible)
      throw new BaseError('METER_INVALID', `the meter jumped by more than ${maxPowerW} W could deliver`, {
        details: { ...details, plausibleWh: Number(plausible), maxPowerW },
      })
    const voucher = voucherFor(channelId, base, tariff, reading.sessionWh)
    if (reading.due > voucher.cumulativeAmount)
      throw new BaseError('TARIFF_INVALID', 'the charger asks for more than the signed tariff gives', {
        details: { due: reading.due.toString(), tariffAmount: voucher.cumulativeAmount.toString() },
      })
    const cost = sessionCost(tariff, reading.sessionWh)
    const signature = await wallet.signSessionVoucher({
      voucher,
      sessionTotal: cost,
      depositAmount: channel.ensured.onChain.deposit,
    })
    metered.amount = cost
    metered.lastWh = reading.sessionWh
    metered.vouchers += 1
    lastTimeMs = reading.timeMs
    await transport.send({ type: 'voucher', ...voucherToJson(voucher), signature })
    if (maxWh !== undefined && metered.lastWh >= maxWh) {
      metered.stoppedBy = 'car'
      await transport.send(stopMessage('OK', `reached ${maxWh} Wh`))
      return
    }
  }
}

/** Step 5: the car records `charging.ended` and, when it paid anything, `payment.sent`. */
async function recordEnd(
  parameters: ChargingSessionParameters,
  offer: AcceptedOffer,
  channel: SessionChannel,
  sessionId: Hex,
  metered: Metered,
  code: string,
): Promise<{ endedId: string; paymentId: string | undefined }> {
  const { wallet } = parameters
  const { channelId, base } = channel
  const endedId = await wallet.record('charging.ended', {
    sessionId,
    evseId: offer.evseId,
    channelId,
    energyWh: Number(metered.lastWh),
    amount: metered.amount.toString(),
    code,
  })
  const paymentId =
    metered.amount > 0n
      ? await wallet.recordPayment({
          kind: 'charging',
          sessionId,
          to: offer.payee,
          token: offer.tariff.value.token,
          amount: metered.amount.toString(),
          channelId,
          cumulativeAmount: (base.cumulativeAmount + metered.amount).toString(),
          meterWh: Number(base.meterWh + metered.lastWh),
        })
      : undefined
  return { endedId, paymentId }
}
