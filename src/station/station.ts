/**
 * The charging-station agent: the charger's side of the session protocol (docs/payments.md).
 *
 * It offers its certificate and an EIP-712 tariff signed by its registered secp256k1 key, checks
 * that the car's certificate binds the channel's payer, holds the channel for this session in
 * the operator's voucher book (shared by all its chargers), checks the car's channel (its key — the
 * car as payer, its CPO as payee, the tariff's token and the car's nonce — gives the channel id
 * the car named; on chain it is open long enough; the base is not below the book), then
 * alternates: deliver an increment, send the signed meter reading, require the
 * car's voucher for exactly that energy at the tariff before delivering more. So the most it can
 * lose is one increment. Vouchers go to the voucher book; `claim()` settles the newest per
 * channel on chain with the CPO's settlement account.
 */
import { randomUUID } from 'node:crypto'
import type { Address, Chain, Hex, LocalAccount, PublicClient, Transport } from 'viem'
import { BaseError, toBaseError } from '../errors.ts'
import type { EventKind } from '../ledger/envelope.ts'
import type { JsonValue } from '../ledger/jcs.ts'
import { logger } from '../log.ts'
import {
  type ChannelClients,
  type ChannelKey,
  channelIdOf,
  type OnChainChannel,
  readChannel,
} from '../payments/channels.ts'
import { sessionCost, type VoucherBase, voucherFor } from '../payments/pricing.ts'
import {
  isOkStop,
  PROTOCOL_VERSION,
  parseStart,
  parseVoucher,
  sendStop,
  stopError,
  stopMessage,
} from '../payments/protocol.ts'
import type { MessageTransport } from '../payments/transport.ts'
import {
  type PaymentsDomain,
  signMeterReading,
  signTariff,
  type Tariff,
  tariffToJson,
} from '../payments/typed-data.ts'
import { createVoucherVerifier } from '../payments/verify-voucher.ts'
import type { Meter, MeterSession } from './meter.ts'
import { type ClaimOutcome, claimPending, memoryVoucherBook, type VoucherBook } from './vouchers.ts'

/** The tariff the station offers; it is re-signed per session with `validUntil` = now + `validForSec`. */
export type TariffConfig = {
  readonly token: Address
  readonly pricePerKWh: bigint
  readonly sessionFee: bigint
  /** Default 600 s. */
  readonly validForSec?: number
}

/** A session as the station saw it (`GET /v1/charging/sessions`). */
export type StationSession = {
  sessionId: Hex | null
  evseId: string
  charger: Address
  vehicle: Address | null
  payee: Address
  channelId: Hex | null
  token: Address
  pricePerKWh: bigint
  sessionFee: bigint
  state: 'active' | 'ended'
  /** "OK" or the code that ended it; null while active. */
  code: string | null
  startedAtMs: number
  endedAtMs: number | null
  energyWh: bigint
  /** Vouchered in this session. */
  amount: bigint
  cumulativeAmount: bigint
  vouchers: number
}

/**
 * What a station tells its central system about each session: the OCPP 2.0.1 reporter
 * (src/ocpp/station-client.ts) implements it; a station without one reports to nobody.
 */
export type SessionReport = {
  /** Before any energy is delivered; throws a BaseError (e.g. `OCPP_NOT_AUTHORIZED`) to refuse the car. */
  authorize(car: { vehicle: Address; channelId: Hex; nonce: bigint; token: Address }): Promise<void>
  /** The session started (authorized, channel held); throws to refuse it before any energy. */
  started(session: {
    sessionId: Hex
    vehicle: Address
    channelId: Hex
    nonce: bigint
    token: Address
    base: VoucherBase
    timeMs: number
  }): Promise<SessionReportHandle>
}

export type SessionReportHandle = {
  /** Aborts when the central system asks the session to stop; the station stops at the next reading. */
  readonly signal: AbortSignal
  /** A delivered increment: the charger's signed reading and the car's voucher for it. Throws to stop. */
  metered(increment: {
    reading: {
      evseId: string
      sessionId: Hex
      sessionWh: bigint
      timeMs: bigint
      signature: Hex
      signer: Address
    }
    voucher: { channelId: Hex; cumulativeAmount: bigint; meterWh: bigint; signature: Hex }
  }): Promise<void>
  /** The session ended: energy and amount of this session, `OK` or the code that ended it. */
  ended(end: { energyWh: bigint; amount: bigint; code: string; timeMs: number }): Promise<void>
}

export type CreateChargingStationParameters = {
  /** The charger's secp256k1 key (its registered address), e.g. `keyStoreAccount(store, ref)`. */
  readonly signer: LocalAccount
  readonly evseId: string
  /** Charger certificate and intermediates, PEM (what TLS presents). */
  readonly certificatePem: string
  readonly chainPem: readonly string[]
  readonly domain: PaymentsDomain
  readonly publicClient: PublicClient<Transport, Chain>
  /** The CPO's account (the channels' payee) that claims; required for `claim()`. */
  readonly settlement?: ChannelClients
  /** The payee channels must name (the CPO registered for this charger). */
  readonly payee: Address
  readonly tariff: TariffConfig
  readonly meter: Meter
  /**
   * The operator's voucher book; every charger of one CPO must share it (it serialises the
   * sessions on a channel). Default: a book of this station alone.
   */
  readonly book?: VoucherBook
  readonly record?: (kind: EventKind, data: JsonValue) => Promise<string>
  /** Reports each session to a central system (OCPP 2.0.1, src/ocpp/station-client.ts). */
  readonly report?: SessionReport
  readonly now?: () => number
  /** Per message (default 30 s); the car's `start` may take `startTimeoutMs` (default 120 s: it may open a channel). */
  readonly timeoutMs?: number
  readonly startTimeoutMs?: number
  /** A channel must stay open this long after a session starts (default 1 h), so claims land in time. */
  readonly minChannelValiditySec?: number
  /** Ended sessions kept for the view (default 1,000). */
  readonly keepSessions?: number
}

export type ChargingStation = {
  readonly address: Address
  readonly book: VoucherBook
  /** Serves one car on a connected transport; resolves with the session when it ended. */
  serve(transport: MessageTransport): Promise<StationSession>
  /** Sessions, newest first. */
  sessions(): StationSession[]
  /** Claims the newest voucher of every channel with unclaimed value. */
  claim(): Promise<ClaimOutcome[]>
  /** Claims every `intervalMs` until `stop()`. */
  startClaimScheduler(intervalMs: number): { stop(): Promise<void> }
}

const sessionLog = logger('payments.session')

export function createChargingStation(parameters: CreateChargingStationParameters): ChargingStation {
  const { signer, domain, evseId } = parameters
  const now = parameters.now ?? Date.now
  const book = parameters.book ?? memoryVoucherBook()
  const verifier = createVoucherVerifier(domain)
  const timeoutMs = parameters.timeoutMs ?? 30_000
  const record = parameters.record ?? (async () => randomUUID())
  const log: StationSession[] = []
  const keep = parameters.keepSessions ?? 1000

  /**
   * The channel's payer must be the car at the other end: the wallet its certificate binds
   * (`did:pkh:eip155:<chainId>:<address>`), on this chain. A transport that authenticated no
   * peer (an in-process pair) has no identity to check.
   */
  function checkPayerIsPeer(transport: MessageTransport, start: ReturnType<typeof parseStart>): void {
    if (transport.peerCertificate === undefined) return
    const wallet = transport.peerWallet
    if (
      wallet === undefined ||
      wallet.chainId !== domain.chainId ||
      wallet.address.toLowerCase() !== start.vehicle.toLowerCase()
    )
      throw new BaseError(
        'PAYER_NOT_PEER',
        'the channel’s payer is not the wallet the car’s certificate binds',
        {
          details: {
            vehicle: start.vehicle,
            peerWallet: wallet?.address ?? null,
            peerChainId: wallet?.chainId ?? null,
            chainId: domain.chainId,
          },
        },
      )
  }

  async function checkStart(
    start: ReturnType<typeof parseStart>,
    tariff: Tariff,
  ): Promise<{ onChain: OnChainChannel; base: VoucherBase }> {
    const state = (message: string, details: Record<string, unknown> = {}): never => {
      throw new BaseError('CHANNEL_STATE', message, { details: { channelId: start.channelId, ...details } })
    }
    // The channel must be the car's, to this charger's operator, in the tariff's token: exactly
    // when that key with the car's nonce gives the id the car named (the id commits to all four).
    const key: ChannelKey = {
      payer: start.vehicle,
      payee: parameters.payee,
      token: tariff.token,
      nonce: start.nonce,
    }
    const expectedId = channelIdOf(key)
    if (expectedId !== start.channelId)
      state('the channel is not the car’s to this charger’s operator in the tariff’s token', {
        expectedChannelId: expectedId,
        vehicle: start.vehicle,
        payee: parameters.payee,
        token: tariff.token,
        nonce: start.nonce.toString(),
      })
    const onChain = await readChannel(parameters.publicClient, { channels: domain.verifyingContract, key })
    if (onChain.closed) state('the channel is closed')
    const minSec = BigInt(Math.floor(now() / 1000) + (parameters.minChannelValiditySec ?? 3600))
    if (onChain.expiresAt < minSec)
      state('the channel expires too soon', { expiresAt: Number(onChain.expiresAt) })
    // The base must not be below anything this operator knows the car signed or was paid (read
    // under the channel's session, so no other session of the operator moves it meanwhile).
    const known = (await book.newest(start.channelId))?.newest.cumulativeAmount ?? 0n
    const floor = known > onChain.paid ? known : onChain.paid
    const base = start.base
    if (base.cumulativeAmount < floor)
      throw new BaseError('VOUCHER_INVALID', 'the session base is older than the channel’s newest voucher', {
        details: { base: base.cumulativeAmount.toString(), newest: floor.toString() },
      })
    if (base.cumulativeAmount > 0n) {
      const voucher = {
        channelId: start.channelId,
        cumulativeAmount: base.cumulativeAmount,
        meterWh: base.meterWh,
      }
      if (!base.signature || !verifier.verify(voucher, base.signature, onChain.payer))
        throw new BaseError('VOUCHER_INVALID', 'the session base is not a voucher signed by the payer', {
          details: { channelId: start.channelId },
        })
      if (base.cumulativeAmount > onChain.deposit)
        throw new BaseError('VOUCHER_INVALID', 'the session base is above the deposit', { details: {} })
      await book.offer({ ...voucher, signature: base.signature }, key)
    }
    return { onChain, base: { cumulativeAmount: base.cumulativeAmount, meterWh: base.meterWh } }
  }

  async function serve(transport: MessageTransport): Promise<StationSession> {
    const validUntil = BigInt(Math.floor(now() / 1000) + (parameters.tariff.validForSec ?? 600))
    const tariff: Tariff = {
      evseId,
      token: parameters.tariff.token,
      pricePerKWh: parameters.tariff.pricePerKWh,
      sessionFee: parameters.tariff.sessionFee,
      validUntil,
    }
    const session: StationSession = {
      sessionId: null,
      evseId,
      charger: signer.address,
      vehicle: null,
      payee: parameters.payee,
      channelId: null,
      token: tariff.token,
      pricePerKWh: tariff.pricePerKWh,
      sessionFee: tariff.sessionFee,
      state: 'active',
      code: null,
      startedAtMs: now(),
      endedAtMs: null,
      energyWh: 0n,
      amount: 0n,
      cumulativeAmount: 0n,
      vouchers: 0,
    }
    log.unshift(session)
    if (log.length > keep) log.length = keep
    let meterSession: MeterSession | undefined
    let reported: SessionReportHandle | undefined
    // This session's hold on its channel in the operator's book: drawn here, never the car's id.
    const holder = randomUUID()
    let held: Hex | undefined
    let started = false
    let code = 'OK'
    try {
      await transport.send({
        type: 'offer',
        version: PROTOCOL_VERSION,
        evseId,
        charger: signer.address,
        certificate: parameters.certificatePem,
        chain: [...parameters.chainPem],
        tariff: tariffToJson(tariff),
        tariffSignature: await signTariff(signer, domain, tariff),
      })
      const start = parseStart(await transport.receive(parameters.startTimeoutMs ?? 120_000))
      session.sessionId = start.sessionId
      session.vehicle = start.vehicle
      session.channelId = start.channelId
      checkPayerIsPeer(transport, start)
      await book.holdChannel(start.channelId, holder)
      held = start.channelId
      const { onChain, base } = await checkStart(start, tariff)
      session.cumulativeAmount = base.cumulativeAmount
      if (parameters.report) {
        const car = {
          vehicle: start.vehicle,
          channelId: start.channelId,
          nonce: start.nonce,
          token: tariff.token,
        }
        await parameters.report.authorize(car)
        reported = await parameters.report.started({
          ...car,
          sessionId: start.sessionId,
          base,
          timeMs: now(),
        })
      }
      started = true
      await record('charging.started', {
        sessionId: start.sessionId,
        evseId,
        vehicle: start.vehicle,
        channelId: start.channelId,
        tariff: tariffToJson(tariff),
      })
      meterSession = parameters.meter.open(start.sessionId, start.maxWh > 0n ? { maxWh: start.maxWh } : {})
      for (;;) {
        if (reported?.signal.aborted) {
          await sendStop(transport, 'OK', 'stopped by the central system', {
            sessionId: start.sessionId,
            evseId,
          })
          break
        }
        const sample = await meterSession.next()
        if (!sample) {
          await transport.send(stopMessage('OK', 'delivery complete'))
          break
        }
        const expected = voucherFor(start.channelId, base, tariff, sample.sessionWh)
        const reading = {
          evseId,
          sessionId: start.sessionId,
          sessionWh: sample.sessionWh,
          timeMs: sample.timeMs,
        }
        const readingSignature = await signMeterReading(signer, domain, reading)
        try {
          await transport.send({
            type: 'reading',
            sessionWh: Number(sample.sessionWh),
            timeMs: Number(sample.timeMs),
            due: expected.cumulativeAmount.toString(),
            signature: readingSignature,
          })
        } catch (error) {
          // The car may have stopped and closed just before: its stop is still queued.
          const queued = await transport.receive(0).catch(() => undefined)
          if (queued && isOkStop(queued)) break
          throw error
        }
        const message = await transport.receive(timeoutMs)
        if (message.type === 'stop') {
          if (!isOkStop(message)) throw stopError(message)
          break
        }
        const signed = parseVoucher(message)
        const v = signed.value
        const details = {
          channelId: v.channelId,
          cumulativeAmount: v.cumulativeAmount.toString(),
          expected: expected.cumulativeAmount.toString(),
        }
        if (v.channelId !== start.channelId)
          throw new BaseError('VOUCHER_INVALID', 'the voucher is for another channel', { details })
        if (v.cumulativeAmount !== expected.cumulativeAmount || v.meterWh !== expected.meterWh)
          throw new BaseError(
            'VOUCHER_INVALID',
            'the voucher does not pay the metered energy at the tariff',
            {
              details: { ...details, meterWh: Number(v.meterWh), expectedWh: Number(expected.meterWh) },
            },
          )
        if (v.cumulativeAmount > onChain.deposit)
          throw new BaseError('VOUCHER_INVALID', 'the voucher is above the channel deposit', {
            details: { ...details, deposit: onChain.deposit.toString() },
          })
        const newest = (await book.newest(v.channelId))?.newest.cumulativeAmount ?? 0n
        if (v.cumulativeAmount < newest)
          throw new BaseError('VOUCHER_INVALID', 'the voucher is older than the newest one', {
            details: { ...details, newest: newest.toString() },
          })
        if (!verifier.verify(v, signed.signature, onChain.payer))
          throw new BaseError('VOUCHER_INVALID', 'the voucher is not signed by the channel’s payer', {
            details,
          })
        // Renewed before the voucher counts: the book takes vouchers only from the holding session.
        await book.holdChannel(start.channelId, holder)
        await book.offer({ ...v, signature: signed.signature }, onChain)
        session.energyWh = sample.sessionWh
        session.amount = sessionCost(tariff, sample.sessionWh)
        session.cumulativeAmount = v.cumulativeAmount
        session.vouchers += 1
        // The car stops on its own at maxWh: the stop goes first, the report after it.
        const reachedMax = start.maxWh > 0n && sample.sessionWh >= start.maxWh
        if (reachedMax)
          await sendStop(transport, 'OK', `reached the car's ${start.maxWh} Wh`, {
            sessionId: start.sessionId,
            evseId,
          })
        await reported?.metered({
          reading: { ...reading, signature: readingSignature, signer: signer.address },
          voucher: { ...v, signature: signed.signature },
        })
        if (reachedMax) {
          break
        }
      }
    } catch (error) {
      const failure = toBaseError(error)
      code = failure.code
      if (!failure.details.peer)
        await sendStop(transport, failure.code, failure.shortMessage, {
          sessionId: session.sessionId,
          evseId,
        })
    } finally {
      meterSession?.close()
      transport.close()
      if (held)
        await book
          .releaseChannel(held, holder)
          .catch((err: unknown) =>
            sessionLog.error(
              { err, channelId: held, evseId },
              'could not release the channel in the voucher book; it lapses when not renewed',
            ),
          )
    }
    session.state = 'ended'
    session.code = code
    session.endedAtMs = now()
    if (reported)
      await reported
        .ended({ energyWh: session.energyWh, amount: session.amount, code, timeMs: session.endedAtMs })
        .catch((err: unknown) =>
          sessionLog.error(
            { err, evseId, sessionId: session.sessionId },
            'could not report the session’s end',
          ),
        )
    if (started)
      await record('charging.ended', {
        sessionId: session.sessionId,
        evseId,
        energyWh: Number(session.energyWh),
        amount: session.amount.toString(),
        code,
      })
    return session
  }

  async function claim(): Promise<ClaimOutcome[]> {
    if (!parameters.settlement)
      throw new BaseError('CONFIG_INVALID', 'the station has no settlement account to claim with')
    return claimPending(parameters.settlement, {
      channels: domain.verifyingContract,
      book,
      onClaimed: async (outcome) => {
        if (outcome.ok)
          await record('payment.sent', {
            kind: 'claim',
            channelId: outcome.channelId,
            cumulativeAmount: outcome.cumulativeAmount.toString(),
            paid: outcome.paid.toString(),
            txHash: outcome.txHash,
          })
      },
    })
  }

  return {
    address: signer.address,
    book,
    serve,
    sessions: () => [...log],
    claim,
    startClaimScheduler(intervalMs) {
      let running: Promise<unknown> = Promise.resolve()
      const timer = setInterval(() => {
        running = running.then(() => claim().catch(() => []))
      }, intervalMs)
      return {
        async stop() {
          clearInterval(timer)
          await running
        },
      }
    },
  }
}
