/**
 * The charging session's messages (docs/payments.md "Session protocol"), one JSON object per line
 * over mutual TLS. Addresses, bytes32 and signatures are 0x-hex; token amounts decimal strings;
 * energy (Wh) and times (unix ms) JSON numbers.
 *
 *   charger → car  offer    {type, version, evseId, charger, certificate, chain, tariff, tariffSignature}
 *   car → charger  start    {type, sessionId, vehicle, channelId, nonce, base:{cumulativeAmount, meterWh, signature}, maxWh}
 *   charger → car  reading  {type, sessionWh, timeMs, due, signature}
 *   car → charger  voucher  {type, channelId, cumulativeAmount, meterWh, signature}
 *   either         stop     {type, code, message}
 */
import type { Address, Hex } from 'viem'
import { BaseError, type ErrorCode, errorCodes } from '../errors.ts'
import { logger } from '../log.ts'
import type { Message, MessageTransport } from './transport.ts'
import {
  describeValue,
  readAddress,
  readAmount,
  readBytes32,
  readSignature,
  readUint64,
  type Signed,
  type Tariff,
  type TariffJson,
  tariffFromJson,
  type Voucher,
  voucherFromJson,
} from './typed-data.ts'

/** 2: `start` names the channel's nonce (ChargingChannels keys channels by payer, payee, token, nonce). */
export const PROTOCOL_VERSION = 2

export type OfferMessage = {
  type: 'offer'
  version: number
  evseId: string
  charger: Address
  /** PEM of the charger certificate and its intermediates. */
  certificate: string
  chain: string[]
  tariff: TariffJson
  tariffSignature: Hex
}

export type StartMessage = {
  type: 'start'
  sessionId: Hex
  vehicle: Address
  channelId: Hex
  /**
   * The channel's nonce, a decimal string (uint256). With the vehicle as payer, the charger's CPO
   * as payee and the tariff's token it is the channel's key: the charger checks it gives
   * `channelId` and uses it to read and claim the channel.
   */
  nonce: string
  base: { cumulativeAmount: string; meterWh: number; signature: Hex | null }
  /** The most energy the car wants, Wh (0: no limit). */
  maxWh: number
}

export type ReadingMessage = {
  type: 'reading'
  sessionWh: number
  timeMs: number
  due: string
  signature: Hex
}

export type VoucherMessage = {
  type: 'voucher'
  channelId: Hex
  cumulativeAmount: string
  meterWh: number
  signature: Hex
}

/** `code` is "OK" for a normal end, else the error code that ended the session. */
export type StopMessage = { type: 'stop'; code: 'OK' | ErrorCode; message: string }

function expect(message: Message, type: string): Record<string, unknown> {
  if (message.type === 'stop') throw stopError(message)
  if (message.type !== type)
    throw new BaseError('INVALID_ARGUMENT', `expected a "${type}" message, got "${message.type}"`, {
      details: { expected: type, got: message.type },
    })
  return message as Record<string, unknown>
}

/** The error a peer's non-OK stop stands for (its code, when it is a known one). */
export function stopError(message: Message): BaseError {
  const code =
    typeof message.code === 'string' && Object.hasOwn(errorCodes, message.code)
      ? (message.code as ErrorCode)
      : 'PEER_CLOSED'
  return new BaseError(
    code,
    `the peer stopped the session: ${describeValue(message.message ?? message.code)}`,
    {
      details: { peerCode: describeValue(message.code), peer: true },
    },
  )
}

export function isOkStop(message: Message): boolean {
  return message.type === 'stop' && message.code === 'OK'
}

export function parseOffer(message: Message): {
  evseId: string
  charger: Address
  certificate: string
  chain: string[]
  tariff: Signed<Tariff>
} {
  const m = expect(message, 'offer')
  if (m.version !== PROTOCOL_VERSION)
    throw new BaseError('INVALID_ARGUMENT', `unsupported protocol version ${describeValue(m.version)}`, {
      details: { version: m.version },
    })
  if (typeof m.evseId !== 'string' || typeof m.certificate !== 'string' || !Array.isArray(m.chain))
    throw new BaseError('INVALID_ARGUMENT', 'offer needs evseId, certificate and chain')
  return {
    evseId: m.evseId,
    charger: readAddress(m.charger, 'charger'),
    certificate: m.certificate,
    chain: m.chain.map((pem, i) => {
      if (typeof pem !== 'string')
        throw new BaseError('INVALID_ARGUMENT', `offer.chain[${i}] must be a PEM string`, {
          details: { field: 'chain' },
        })
      return pem
    }),
    tariff: {
      value: tariffFromJson(m.tariff),
      signature: readSignature(m.tariffSignature, 'tariffSignature', 'TARIFF_INVALID'),
    },
  }
}

export function parseStart(message: Message): {
  sessionId: Hex
  vehicle: Address
  channelId: Hex
  nonce: bigint
  base: { cumulativeAmount: bigint; meterWh: bigint; signature: Hex | null }
  maxWh: bigint
} {
  const m = expect(message, 'start')
  const base = (m.base ?? {}) as Record<string, unknown>
  return {
    sessionId: readBytes32(m.sessionId, 'sessionId'),
    vehicle: readAddress(m.vehicle, 'vehicle'),
    channelId: readBytes32(m.channelId, 'channelId', 'VOUCHER_INVALID'),
    nonce: readAmount(m.nonce, 'nonce'),
    base: {
      cumulativeAmount: readAmount(base.cumulativeAmount, 'base.cumulativeAmount', 'VOUCHER_INVALID'),
      meterWh: readUint64(base.meterWh, 'base.meterWh', 'VOUCHER_INVALID'),
      signature:
        base.signature === null ? null : readSignature(base.signature, 'base.signature', 'VOUCHER_INVALID'),
    },
    maxWh: readUint64(m.maxWh ?? 0, 'maxWh'),
  }
}

export function parseReading(message: Message): {
  sessionWh: bigint
  timeMs: bigint
  due: bigint
  signature: Hex
} {
  const m = expect(message, 'reading')
  return {
    sessionWh: readUint64(m.sessionWh, 'sessionWh', 'METER_INVALID'),
    timeMs: readUint64(m.timeMs, 'timeMs', 'METER_INVALID'),
    due: readAmount(m.due, 'due', 'METER_INVALID'),
    signature: readSignature(m.signature, 'signature', 'METER_INVALID'),
  }
}

export function parseVoucher(message: Message): Signed<Voucher> {
  const m = expect(message, 'voucher')
  return { value: voucherFromJson(m), signature: readSignature(m.signature, 'signature', 'VOUCHER_INVALID') }
}

export function stopMessage(code: 'OK' | ErrorCode, message: string): StopMessage {
  return { type: 'stop', code, message }
}

const log = logger('payments.session')

/**
 * Sends `stop` as a side's last message. One that cannot be sent (the link is gone) is logged with
 * `context`, not thrown: the peer then ends on its own timeout, and the session's outcome stands.
 */
export async function sendStop(
  transport: MessageTransport,
  code: 'OK' | ErrorCode,
  message: string,
  context: Record<string, unknown> = {},
): Promise<void> {
  await transport
    .send(stopMessage(code, message))
    .catch((err: unknown) => log.warn({ err, code, ...context }, 'could not send the stop to the peer'))
}
