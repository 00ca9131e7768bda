/**
 * The car-wallet payment inside OCPP 2.0.1 (docs/ocpp.md "Payment mapping"): how a Carchain car, its
 * ChargingChannels channel and its vouchers travel in OCPP's own extension points.
 *
 * - The car's IdToken: `{idToken: base64url(the wallet's 20 bytes) (27 characters ≤ 36),
 *   type: "Central", customData: {vendorId: "org.carchain", vehicle, channelId, nonce}}`. The
 *   42-character address does not fit in an idToken, its 20 bytes do; `customData` (the one OCPP
 *   field that takes extra properties) carries the channel the car pays from, so the CSMS can
 *   check it on chain.
 * - TransactionEvent Started: `customData {vendorId, base}`: the channel's newest voucher when the
 *   session started (what the session's vouchers count from).
 * - TransactionEvent Updated: `customData {vendorId, voucher}`: each voucher the car signed, and the
 *   meter value with the charger's signed reading as `signedMeterValue`.
 * - TransactionEventResponse to Ended (and Updated): `totalCost` in whole tokens (a JSON number,
 *   informative) and `customData {vendorId, amount, token}`: what the vouchers pay, exactly, in the
 *   token's base units.
 *
 * Everything here parses hostile input: a malformed value is an `INVALID_ARGUMENT` BaseError.
 */
import { type Address, formatUnits, getAddress, type Hex, isAddress } from 'viem'
import { BaseError } from '../errors.ts'

/** The `vendorId` of every Carchain `customData`. */
export const CARCHAIN_VENDOR_ID = 'org.carchain'

export type IdToken = {
  idToken: string
  type: string
  customData?: Record<string, unknown>
}

export type CarchainIdToken = {
  vehicle: Address
  /** The channel the car pays from, when the station knows it (always for a Carchain station). */
  channel?: { channelId: Hex; nonce: bigint }
}

export type VoucherJson = { channelId: Hex; cumulativeAmount: string; meterWh: string; signature: Hex }

const invalid = (message: string, details: Record<string, unknown> = {}): never => {
  throw new BaseError('INVALID_ARGUMENT', message, { details })
}

const bytes32 = /^0x[0-9a-fA-F]{64}$/
const uint = /^(0|[1-9][0-9]{0,77})$/
const signatureHex = /^0x[0-9a-fA-F]{130}$/
const MAX_UINT64 = 2n ** 64n - 1n

/** The IdToken of a car (its wallet) paying from `channel`. */
export function carIdToken(token: CarchainIdToken): IdToken {
  const customData: Record<string, unknown> = { vendorId: CARCHAIN_VENDOR_ID, vehicle: token.vehicle }
  if (token.channel) {
    customData.channelId = token.channel.channelId
    customData.nonce = token.channel.nonce.toString()
  }
  return {
    idToken: Buffer.from(token.vehicle.slice(2), 'hex').toString('base64url'),
    type: 'Central',
    customData,
  }
}

/**
 * The car and channel an IdToken names, or undefined when it is no Carchain token (another kind
 * of IdToken: an RFID card, an eMAID). A token that claims to be Carchain's but does not add up
 * is refused.
 */
export function parseCarIdToken(token: IdToken): CarchainIdToken | undefined {
  const custom = token.customData
  if (token.type !== 'Central' || custom?.vendorId !== CARCHAIN_VENDOR_ID) return undefined
  if (!/^[A-Za-z0-9_-]{27}$/.test(token.idToken)) invalid('a Carchain idToken is 27 base64url characters')
  const vehicle = getAddress(`0x${Buffer.from(token.idToken, 'base64url').toString('hex')}`)
  if (custom.vehicle !== undefined) {
    if (typeof custom.vehicle !== 'string' || !isAddress(custom.vehicle, { strict: false }))
      invalid('customData.vehicle is not an address')
    if ((custom.vehicle as string).toLowerCase() !== vehicle.toLowerCase())
      invalid('customData.vehicle is not the idToken’s wallet', { vehicle: custom.vehicle, idToken: vehicle })
  }
  if (custom.channelId === undefined && custom.nonce === undefined) return { vehicle }
  if (typeof custom.channelId !== 'string' || !bytes32.test(custom.channelId))
    invalid('customData.channelId is not a bytes32')
  if (typeof custom.nonce !== 'string' || !uint.test(custom.nonce) || BigInt(custom.nonce) > MAX_UINT64)
    invalid('customData.nonce is not a uint64 decimal string')
  return {
    vehicle,
    channel: {
      channelId: (custom.channelId as string).toLowerCase() as Hex,
      nonce: BigInt(custom.nonce as string),
    },
  }
}

/** `customData` of a TransactionEvent Updated carrying a voucher. */
export function voucherCustomData(voucher: {
  channelId: Hex
  cumulativeAmount: bigint
  meterWh: bigint
  signature: Hex
}): Record<string, unknown> {
  return {
    vendorId: CARCHAIN_VENDOR_ID,
    voucher: {
      channelId: voucher.channelId,
      cumulativeAmount: voucher.cumulativeAmount.toString(),
      meterWh: voucher.meterWh.toString(),
      signature: voucher.signature,
    },
  }
}

/** The voucher a Carchain `customData` carries, if it carries one. */
export function parseVoucherCustomData(
  custom: Record<string, unknown> | undefined,
): { channelId: Hex; cumulativeAmount: bigint; meterWh: bigint; signature: Hex } | undefined {
  if (custom?.vendorId !== CARCHAIN_VENDOR_ID || custom.voucher === undefined) return undefined
  const v = custom.voucher as Record<string, unknown>
  if (typeof v !== 'object' || v === null) return invalid('customData.voucher is not an object')
  if (typeof v.channelId !== 'string' || !bytes32.test(v.channelId))
    invalid('voucher.channelId is not a bytes32')
  if (typeof v.cumulativeAmount !== 'string' || !uint.test(v.cumulativeAmount))
    invalid('voucher.cumulativeAmount is not a uint256 decimal string')
  if (typeof v.meterWh !== 'string' || !uint.test(v.meterWh) || BigInt(v.meterWh) > MAX_UINT64)
    invalid('voucher.meterWh is not a uint64 decimal string')
  if (typeof v.signature !== 'string' || !signatureHex.test(v.signature))
    invalid('voucher.signature is not a 65-byte hex signature')
  return {
    channelId: (v.channelId as string).toLowerCase() as Hex,
    cumulativeAmount: BigInt(v.cumulativeAmount as string),
    meterWh: BigInt(v.meterWh as string),
    signature: v.signature as Hex,
  }
}

/** `customData` of a TransactionEvent Started: the channel's voucher total the session counts from. */
export function baseCustomData(base: { cumulativeAmount: bigint; meterWh: bigint }): Record<string, unknown> {
  return {
    vendorId: CARCHAIN_VENDOR_ID,
    base: { cumulativeAmount: base.cumulativeAmount.toString(), meterWh: base.meterWh.toString() },
  }
}

export function parseBaseCustomData(
  custom: Record<string, unknown> | undefined,
): { cumulativeAmount: bigint; meterWh: bigint } | undefined {
  if (custom?.vendorId !== CARCHAIN_VENDOR_ID || custom.base === undefined) return undefined
  const b = custom.base as Record<string, unknown>
  if (typeof b !== 'object' || b === null) return invalid('customData.base is not an object')
  if (typeof b.cumulativeAmount !== 'string' || !uint.test(b.cumulativeAmount))
    invalid('base.cumulativeAmount is not a uint256 decimal string')
  if (typeof b.meterWh !== 'string' || !uint.test(b.meterWh)) invalid('base.meterWh is not a decimal string')
  return { cumulativeAmount: BigInt(b.cumulativeAmount as string), meterWh: BigInt(b.meterWh as string) }
}

/** The cost part of a TransactionEventResponse: `totalCost` in tokens, the exact amount in `customData`. */
export function costResponse(amount: bigint, token: Address, decimals = 18) {
  return {
    totalCost: Number(formatUnits(amount, decimals)),
    customData: { vendorId: CARCHAIN_VENDOR_ID, amount: amount.toString(), token },
  }
}

/** The exact amount of a cost response, if it carries Carchain's. */
export function parseCostResponse(custom: Record<string, unknown> | undefined): bigint | undefined {
  if (
    custom?.vendorId !== CARCHAIN_VENDOR_ID ||
    typeof custom.amount !== 'string' ||
    !uint.test(custom.amount)
  )
    return undefined
  return BigInt(custom.amount)
}
