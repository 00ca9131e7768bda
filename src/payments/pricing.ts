/**
 * What a session costs, defined once and used by both sides (docs/payments.md "Rounding").
 *
 *   sessionCost(0)  = 0
 *   sessionCost(Wh) = sessionFee + floor(pricePerKWh × Wh / 1000)        for Wh > 0
 *
 * computed from the session's total signed energy, never summed per increment, so rounding never
 * accumulates: the car pays at most the exact price (floor favours the payer by < 1 base unit per
 * session). A voucher's amounts continue the channel's history:
 *
 *   cumulativeAmount = base.cumulativeAmount + sessionCost(sessionWh)
 *   meterWh          = base.meterWh + sessionWh
 *
 * where `base` is the channel's newest voucher when the session started (zero for a new channel).
 */
import type { Hex } from 'viem'
import type { Tariff, Voucher } from './typed-data.ts'

/** Base units owed for `sessionWh` of energy under `tariff`. */
export function sessionCost(tariff: Pick<Tariff, 'pricePerKWh' | 'sessionFee'>, sessionWh: bigint): bigint {
  if (sessionWh <= 0n) return 0n
  return tariff.sessionFee + (tariff.pricePerKWh * sessionWh) / 1000n
}

/** The channel's position when a session starts. */
export type VoucherBase = { readonly cumulativeAmount: bigint; readonly meterWh: bigint }

export const ZERO_BASE: VoucherBase = { cumulativeAmount: 0n, meterWh: 0n }

/** The voucher that pays exactly `sessionWh` of this session. */
export function voucherFor(
  channelId: Hex,
  base: VoucherBase,
  tariff: Pick<Tariff, 'pricePerKWh' | 'sessionFee'>,
  sessionWh: bigint,
): Voucher {
  return {
    channelId,
    cumulativeAmount: base.cumulativeAmount + sessionCost(tariff, sessionWh),
    meterWh: base.meterWh + sessionWh,
  }
}

/**
 * The most energy a charger can plausibly have delivered in `elapsedMs` at `maxPowerW`, plus one
 * watt-hour of meter rounding: Wh = W × ms / 3,600,000.
 */
export function plausibleEnergyWh(maxPowerW: number, elapsedMs: bigint): bigint {
  if (elapsedMs <= 0n) return 0n
  return (BigInt(Math.ceil(maxPowerW)) * elapsedMs) / 3_600_000n + 1n
}

/** The smaller of two amounts (Math.min does not take bigints). */
export function minAmount(a: bigint, b: bigint): bigint {
  return a < b ? a : b
}
