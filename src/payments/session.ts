/**
 * The car's side of a charging session (docs/payments.md "Session protocol"). It pays only for
 * energy it saw signed, at the price it saw signed:
 *
 * 1. `offer`: the charger's certificate must be the TLS peer's, the tariff signed by the
 *    charger's registered address; the wallet checks the charger (PKI + registry) and the tariff
 *    (expiry, token, prices).
 * 2. A channel to the charger's CPO is reused or opened with a permit; `start` names it, with the
 *    channel's newest voucher as the base and a fresh random `sessionId`.
 * 3. Each signed `reading` is checked (signature over this session, energy never backwards,
 *    time forwards, no faster than `maxPowerW`, the charger's `due` not above the tariff), and
 *    answered with a voucher for exactly the signed energy at the signed price, after the
 *    wallet's caps.
 * 4. Either side stops; the car logs `charging.started`, `charging.ended`, `payment.sent`.
 *
 * Any refusal sends `stop` with the error code to the charger, records the end, and rejects with
 * that BaseError (details: `sessionId`, `amount` paid).
 */
import { createHash, randomBytes } from 'node:crypto'
import type { Address, Hash, Hex } from 'viem'
import { demoTokenAbi } from '../chain/generated/index.ts'
import { BaseError, toBaseError } from '../errors.ts'
import { toDer } from '../identity/certificate.ts'
import { type ChannelClients, ensureChannel } from './channels.ts'
import { minAmount, plausibleEnergyWh, sessionCost, type VoucherBase, voucherFor } from './pricing.ts'
import { isOkStop, parseOffer, parseReading, stopError, stopMessage } from './protocol.ts'
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

/** Runs one charging session as the car; resolves when it ended normally. */
export async function runChargingSession(
  parameters: ChargingSessionParameters,
): Promise<ChargingSessionResult> {
  const { transport, wallet } = parameters
  const timeoutMs = parameters.timeoutMs ?? 30_000
  const skewMs = BigInt(parameters.clockSkewMs ?? 30_000)
  const maxPowerW = wallet.policy.maxPowerW ?? 350_000
  const refuse = async (error: unknown): Promise<never> => {
    const failure = toBaseError(error)
    if (!failure.details.peer)
      await transport.send(stopMessage(failure.code, failure.shortMessage)).catch(() => {})
    transport.close()
    throw failure
  }

  // 1. offer
  let offer: ReturnType<typeof parseOffer>
  let payee: Address
  try {
    offer = parseOffer(await transport.receive(timeoutMs))
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
    payee = identity.payee
    wallet.checkTariff(offer.tariff.value)
  } catch (error) {
    return refuse(error)
  }
  const tariff = offer.tariff.value

  // 2. channel and start
  const sessionBudget = minAmount(wallet.policy.maxPerDay - wallet.spentToday(), wallet.policy.maxPerSession)
  let ensured: Awaited<ReturnType<typeof ensureChannel>>
  try {
    // The smallest useful session is the fee plus one kWh; below that the day's cap is spent.
    if (sessionBudget < tariff.sessionFee + tariff.pricePerKWh / 1000n + 1n)
      throw new BaseError(
        'POLICY_DENIED',
        `the daily cap leaves ${sessionBudget}, too little for a session`,
        {
          details: {
            rule: 'maxPerDay',
            spentToday: wallet.spentToday().toString(),
            maxPerDay: wallet.policy.maxPerDay.toString(),
          },
        },
      )
    ensured = await ensureChannel(parameters.clients, wallet, {
      channels: parameters.contracts.channels,
      payee,
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
  } catch (error) {
    return refuse(error)
  }
  // The most energy the session budget pays for; the charger's meter stops there (as ISO 15118's
  // EVMaximumEnergyRequest), so the cap ends a session normally instead of refusing a reading.
  const budgetWh =
    tariff.pricePerKWh > 0n ? ((sessionBudget - tariff.sessionFee) * 1000n) / tariff.pricePerKWh : undefined
  const stopAtWh = parameters.stopAtWh === undefined ? undefined : BigInt(parameters.stopAtWh)
  const maxWh =
    budgetWh === undefined ? stopAtWh : stopAtWh === undefined ? budgetWh : minAmount(budgetWh, stopAtWh)
  const channelId = ensured.record.channelId
  const base: VoucherBase = wallet.baseOf(channelId)
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
    maxWh: Number(maxWh ?? 0n),
  })
  const started = await wallet.record('charging.started', {
    sessionId,
    evseId: offer.evseId,
    charger: offer.charger,
    payee,
    channelId,
    channel: ensured.action,
    tariff: tariffToJson(tariff),
  })

  // 3. readings → vouchers
  let lastWh = 0n
  let lastTimeMs = startedAtMs - skewMs
  let amount = 0n
  let vouchers = 0
  let stoppedBy: 'car' | 'charger' = 'charger'
  let failure: BaseError | undefined
  const ended = async (code: string) => {
    const cumulativeAmount = base.cumulativeAmount + amount
    const endedId = await wallet.record('charging.ended', {
      sessionId,
      evseId: offer.evseId,
      channelId,
      energyWh: Number(lastWh),
      amount: amount.toString(),
      code,
    })
    const paymentId =
      amount > 0n
        ? await wallet.recordPayment({
            kind: 'charging',
            sessionId,
            to: payee,
            token: tariff.token,
            amount: amount.toString(),
            channelId,
            cumulativeAmount: cumulativeAmount.toString(),
            meterWh: Number(base.meterWh + lastWh),
          })
        : undefined
    return { endedId, paymentId }
  }
  try {
    for (;;) {
      if (parameters.signal?.aborted) {
        stoppedBy = 'car'
        await transport.send(stopMessage('OK', 'stopped by the car'))
        break
      }
      const message = await transport.receive(timeoutMs)
      if (message.type === 'stop') {
        if (!isOkStop(message)) throw stopError(message)
        break
      }
      const reading = parseReading(message)
      await verifyMeterReading(
        wallet.domain,
        {
          value: { evseId: offer.evseId, sessionId, sessionWh: reading.sessionWh, timeMs: reading.timeMs },
          signature: reading.signature,
        },
        offer.charger,
      )
      const details = {
        sessionWh: Number(reading.sessionWh),
        timeMs: Number(reading.timeMs),
        lastWh: Number(lastWh),
      }
      if (reading.sessionWh < lastWh)
        throw new BaseError('METER_INVALID', 'the meter reading goes backwards', { details })
      if (reading.timeMs <= lastTimeMs)
        throw new BaseError('METER_INVALID', 'the meter reading is not later than the previous one', {
          details,
        })
      if (reading.timeMs > BigInt(wallet.now()) + skewMs)
        throw new BaseError('METER_INVALID', 'the meter reading is from the future', { details })
      const plausible = plausibleEnergyWh(maxPowerW, reading.timeMs - lastTimeMs)
      if (reading.sessionWh - lastWh > plausible)
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
        depositAmount: ensured.onChain.deposit,
      })
      amount = cost
      lastWh = reading.sessionWh
      lastTimeMs = reading.timeMs
      vouchers += 1
      await transport.send({ type: 'voucher', ...voucherToJson(voucher), signature })
      if (maxWh !== undefined && lastWh >= maxWh) {
        stoppedBy = 'car'
        await transport.send(stopMessage('OK', `reached ${maxWh} Wh`))
        break
      }
    }
  } catch (error) {
    failure = toBaseError(error)
  }
  const events = await ended(failure ? failure.code : 'OK')
  if (failure) {
    failure.details.sessionId = sessionId
    failure.details.amount = amount.toString()
    return refuse(failure)
  }
  transport.close()
  return {
    sessionId,
    evseId: offer.evseId,
    charger: offer.charger,
    payee,
    channelId,
    channelAction: ensured.action,
    ...(ensured.txHash ? { openTxHash: ensured.txHash } : {}),
    tariff,
    energyWh: lastWh,
    amount,
    cumulativeAmount: base.cumulativeAmount + amount,
    meterWh: base.meterWh + lastWh,
    vouchers,
    stoppedBy,
    eventIds: { started, ended: events.endedId, ...(events.paymentId ? { payment: events.paymentId } : {}) },
  }
}
