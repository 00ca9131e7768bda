/**
 * The EIP-712 typed data of metered charging (docs/spec.md "Payments and charging", docs/payments.md).
 *
 * All three types share one domain: `{name: "Carchain", version: "1", chainId, verifyingContract:
 * ChargingChannels}` — the contract checks vouchers against it, and binding tariffs and meter
 * readings to the same chain and deployment keeps a charger's signatures from being replayed on
 * another network.
 *
 * - `Voucher(bytes32 channelId,uint256 cumulativeAmount,uint64 meterWh)` — signed by the car's
 *   wallet; `meterWh` is the energy paid for over the whole channel history.
 * - `Tariff(string evseId,address token,uint256 pricePerKWh,uint256 sessionFee,uint64 validUntil)` —
 *   signed by the charger's secp256k1 key (its registered on-chain address); unix seconds.
 * - `MeterReading(string evseId,bytes32 sessionId,uint64 sessionWh,uint64 timeMs)` — signed by the
 *   charger: energy delivered in this session so far, at unix milliseconds `timeMs`. The car picks
 *   `sessionId`, so readings cannot be carried over from another session.
 */
import {
  type Address,
  type Hex,
  hashTypedData,
  isAddress,
  type LocalAccount,
  recoverAddress,
  type TypedDataDomain,
} from 'viem'
import { BaseError, type ErrorCode } from '../errors.ts'

/** The EIP-712 domain of vouchers, tariffs and meter readings. */
export type PaymentsDomain = {
  readonly chainId: number
  /** The ChargingChannels deployment. */
  readonly verifyingContract: Address
}

export function paymentsDomain(domain: PaymentsDomain): TypedDataDomain {
  return {
    name: 'Carchain',
    version: '1',
    chainId: domain.chainId,
    verifyingContract: domain.verifyingContract,
  }
}

export const voucherTypes = {
  Voucher: [
    { name: 'channelId', type: 'bytes32' },
    { name: 'cumulativeAmount', type: 'uint256' },
    { name: 'meterWh', type: 'uint64' },
  ],
} as const

export const tariffTypes = {
  Tariff: [
    { name: 'evseId', type: 'string' },
    { name: 'token', type: 'address' },
    { name: 'pricePerKWh', type: 'uint256' },
    { name: 'sessionFee', type: 'uint256' },
    { name: 'validUntil', type: 'uint64' },
  ],
} as const

export const meterReadingTypes = {
  MeterReading: [
    { name: 'evseId', type: 'string' },
    { name: 'sessionId', type: 'bytes32' },
    { name: 'sessionWh', type: 'uint64' },
    { name: 'timeMs', type: 'uint64' },
  ],
} as const

/** A payment voucher: the car owes the payee `cumulativeAmount` in total on this channel. */
export type Voucher = {
  readonly channelId: Hex
  /** Base units of the channel's token, over the channel's whole history. */
  readonly cumulativeAmount: bigint
  /** Energy paid for over the channel's whole history. */
  readonly meterWh: bigint
}

/** A charger's price list, signed by the charger. */
export type Tariff = {
  readonly evseId: string
  readonly token: Address
  /** Base units of `token` per kWh. */
  readonly pricePerKWh: bigint
  /** Base units charged once per session, with the first delivered watt-hour. */
  readonly sessionFee: bigint
  /** Unix seconds; the tariff may start a session up to this time. */
  readonly validUntil: bigint
}

/** Energy delivered in a session so far, signed by the charger. */
export type MeterReading = {
  readonly evseId: string
  readonly sessionId: Hex
  readonly sessionWh: bigint
  readonly timeMs: bigint
}

/** A signed value as it travels: the value and a 65-byte `r‖s‖v` signature. */
export type Signed<T> = { readonly value: T; readonly signature: Hex }

const UINT64_MAX = (1n << 64n) - 1n
const UINT256_MAX = (1n << 256n) - 1n

function invalid(code: ErrorCode, message: string, details: Record<string, unknown>): never {
  throw new BaseError(code, message, { details })
}

/** EIP-712 digest of a voucher (what ChargingChannels.voucherDigest returns). */
export function voucherDigest(domain: PaymentsDomain, voucher: Voucher): Hex {
  return hashTypedData({
    domain: paymentsDomain(domain),
    types: voucherTypes,
    primaryType: 'Voucher',
    message: voucher,
  })
}

export function tariffDigest(domain: PaymentsDomain, tariff: Tariff): Hex {
  return hashTypedData({
    domain: paymentsDomain(domain),
    types: tariffTypes,
    primaryType: 'Tariff',
    message: tariff,
  })
}

export function meterReadingDigest(domain: PaymentsDomain, reading: MeterReading): Hex {
  return hashTypedData({
    domain: paymentsDomain(domain),
    types: meterReadingTypes,
    primaryType: 'MeterReading',
    message: reading,
  })
}

export function signVoucher(account: LocalAccount, domain: PaymentsDomain, voucher: Voucher): Promise<Hex> {
  return account.signTypedData({
    domain: paymentsDomain(domain),
    types: voucherTypes,
    primaryType: 'Voucher',
    message: voucher,
  })
}

export function signTariff(account: LocalAccount, domain: PaymentsDomain, tariff: Tariff): Promise<Hex> {
  return account.signTypedData({
    domain: paymentsDomain(domain),
    types: tariffTypes,
    primaryType: 'Tariff',
    message: tariff,
  })
}

export function signMeterReading(
  account: LocalAccount,
  domain: PaymentsDomain,
  reading: MeterReading,
): Promise<Hex> {
  return account.signTypedData({
    domain: paymentsDomain(domain),
    types: meterReadingTypes,
    primaryType: 'MeterReading',
    message: reading,
  })
}

async function recover(digest: Hex, signature: Hex): Promise<Address | undefined> {
  if (!/^0x[0-9a-fA-F]{130}$/.test(signature)) return undefined
  // EIP-2: a high-s twin is refused, as OpenZeppelin's ECDSA does on chain.
  const s = BigInt(`0x${signature.slice(66, 130)}`)
  if (s > 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0n) return undefined
  try {
    return await recoverAddress({ hash: digest, signature })
  } catch {
    return undefined
  }
}

/** The address that signed a voucher, or undefined for a malformed or high-s signature. */
export function recoverVoucherSigner(
  domain: PaymentsDomain,
  signed: Signed<Voucher>,
): Promise<Address | undefined> {
  return recover(voucherDigest(domain, signed.value), signed.signature)
}

/** Checks a tariff is signed by `charger`; TARIFF_INVALID otherwise. */
export async function verifyTariff(
  domain: PaymentsDomain,
  signed: Signed<Tariff>,
  charger: Address,
): Promise<void> {
  const signer = await recover(tariffDigest(domain, signed.value), signed.signature)
  if (signer?.toLowerCase() !== charger.toLowerCase())
    invalid('TARIFF_INVALID', 'the tariff is not signed by the charger', { charger, signer: signer ?? null })
}

/** Checks a meter reading is signed by `charger`; METER_INVALID otherwise. */
export async function verifyMeterReading(
  domain: PaymentsDomain,
  signed: Signed<MeterReading>,
  charger: Address,
): Promise<void> {
  const signer = await recover(meterReadingDigest(domain, signed.value), signed.signature)
  if (signer?.toLowerCase() !== charger.toLowerCase())
    invalid('METER_INVALID', 'the meter reading is not signed by the charger', {
      charger,
      signer: signer ?? null,
      sessionWh: Number(signed.value.sessionWh),
    })
}

// ------------------------------------------------------------------ JSON forms
// In messages: addresses and bytes32 as 0x-hex, token amounts (uint256) as decimal strings (they
// exceed 2^53), energy and times as JSON numbers (safe integers).

export type VoucherJson = { channelId: Hex; cumulativeAmount: string; meterWh: number }
export type TariffJson = {
  evseId: string
  token: Address
  pricePerKWh: string
  sessionFee: string
  validUntil: number
}

export function voucherToJson(voucher: Voucher): VoucherJson {
  return {
    channelId: voucher.channelId,
    cumulativeAmount: voucher.cumulativeAmount.toString(),
    meterWh: Number(voucher.meterWh),
  }
}

export function tariffToJson(tariff: Tariff): TariffJson {
  return {
    evseId: tariff.evseId,
    token: tariff.token,
    pricePerKWh: tariff.pricePerKWh.toString(),
    sessionFee: tariff.sessionFee.toString(),
    validUntil: Number(tariff.validUntil),
  }
}

/**
 * A short, printable form of an untrusted JSON value for error details. `String(value)` is not
 * safe here: a JSON object with a "toString" member that is not a function makes it throw.
 */
export function describeValue(value: unknown): string {
  if (value === null || typeof value !== 'object') return String(value).slice(0, 80)
  return Array.isArray(value) ? 'an array' : 'an object'
}

/** Field readers for untrusted JSON; `code` names what a malformed field means to the caller. */
export function readAmount(value: unknown, field: string, code: ErrorCode = 'INVALID_ARGUMENT'): bigint {
  if (typeof value !== 'string' || !/^(0|[1-9][0-9]{0,77})$/.test(value))
    invalid(code, `${field} must be a decimal string`, { field, value: describeValue(value) })
  const amount = BigInt(value)
  if (amount > UINT256_MAX) invalid(code, `${field} does not fit in uint256`, { field, value })
  return amount
}

export function readUint64(value: unknown, field: string, code: ErrorCode = 'INVALID_ARGUMENT'): bigint {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0)
    invalid(code, `${field} must be a non-negative safe integer`, { field, value: describeValue(value) })
  const out = BigInt(value)
  if (out > UINT64_MAX) invalid(code, `${field} does not fit in uint64`, { field })
  return out
}

export function readBytes32(value: unknown, field: string, code: ErrorCode = 'INVALID_ARGUMENT'): Hex {
  if (typeof value !== 'string' || !/^0x[0-9a-fA-F]{64}$/.test(value))
    invalid(code, `${field} must be 0x and 64 hex digits`, { field })
  return value.toLowerCase() as Hex
}

export function readAddress(value: unknown, field: string, code: ErrorCode = 'INVALID_ARGUMENT'): Address {
  if (typeof value !== 'string' || !isAddress(value, { strict: false }))
    invalid(code, `${field} must be an address`, { field })
  return value as Address
}

export function readSignature(value: unknown, field: string, code: ErrorCode = 'INVALID_ARGUMENT'): Hex {
  if (typeof value !== 'string' || !/^0x[0-9a-fA-F]{130}$/.test(value))
    invalid(code, `${field} must be a 65-byte 0x-hex signature`, { field })
  return value as Hex
}

export function voucherFromJson(value: unknown, code: ErrorCode = 'VOUCHER_INVALID'): Voucher {
  const v = (value ?? {}) as Record<string, unknown>
  return {
    channelId: readBytes32(v.channelId, 'channelId', code),
    cumulativeAmount: readAmount(v.cumulativeAmount, 'cumulativeAmount', code),
    meterWh: readUint64(v.meterWh, 'meterWh', code),
  }
}

export function tariffFromJson(value: unknown): Tariff {
  const t = (value ?? {}) as Record<string, unknown>
  if (typeof t.evseId !== 'string' || t.evseId.length === 0 || t.evseId.length > 64)
    invalid('TARIFF_INVALID', 'tariff.evseId must be a string of 1–64 characters', { field: 'evseId' })
  return {
    evseId: t.evseId,
    token: readAddress(t.token, 'tariff.token', 'TARIFF_INVALID'),
    pricePerKWh: readAmount(t.pricePerKWh, 'tariff.pricePerKWh', 'TARIFF_INVALID'),
    sessionFee: readAmount(t.sessionFee, 'tariff.sessionFee', 'TARIFF_INVALID'),
    validUntil: readUint64(t.validUntil, 'tariff.validUntil', 'TARIFF_INVALID'),
  }
}
