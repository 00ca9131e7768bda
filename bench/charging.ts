/**
 * Charging figures (issue 6 "Performance"): the charger's voucher verification rate on one core,
 * and the gas of the channel's life on a real anvil (`measureChargingGas`, whole-transaction
 * receipt gas: intrinsic and calldata included).
 */
import type { Address } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { BaseError } from '../src/errors.ts'
import { measureChargingGas } from '../src/payments/gas.ts'
import { type PaymentsDomain, signVoucher, type Voucher } from '../src/payments/typed-data.ts'
import { createVoucherVerifier } from '../src/payments/verify-voucher.ts'
import type { TestChain } from '../test/chain.ts'
import {
  type BenchOptions,
  type BenchResult,
  countResult,
  median,
  repeat,
  resultOf,
  round3,
} from './harness.ts'
import { hotLoopChecks } from './keys.ts'

export const voucherNames = [
  { name: 'charging.vouchers_per_s', unit: 'vouchers/s' },
  { name: 'charging.vouchers_over_verify', unit: '×' },
] as const
export const chargingGasNames = [
  { name: 'charging.gas_open', unit: 'gas' },
  { name: 'charging.gas_open_typical', unit: 'gas' },
  { name: 'charging.gas_settle', unit: 'gas' },
  { name: 'charging.gas_per_session', unit: 'gas' },
  { name: 'charging.naive_over_channel', unit: '×' },
] as const

/**
 * Vouchers verified per second on one core, the charger's way (`createVoucherVerifier`): one
 * payer's distinct vouchers, its key cached after the first (as during a session). Each round also
 * times one secp256k1 verification with the fastest primitive in a hot loop, in slices taking
 * turns with the voucher loop:
 * `charging.vouchers_over_verify` is the voucher rate × that time (1 = a voucher costs exactly one
 * bare verification; the digest, the parsing and the checks are the rest).
 */
export async function benchVouchers(options: BenchOptions): Promise<BenchResult[]> {
  const domain: PaymentsDomain = {
    chainId: 31337,
    verifyingContract: '0x5FbDB2315678afecb367f032d93F642f64180aa3',
  }
  const payer = privateKeyToAccount(generatePrivateKey())
  const channelId = `0x${'42'.repeat(32)}` as const
  const signed: { voucher: Voucher; signature: `0x${string}` }[] = []
  for (let i = 1; i <= 200; i++) {
    const voucher = { channelId, cumulativeAmount: BigInt(i) * 1000n, meterWh: BigInt(i) * 100n }
    signed.push({ voucher, signature: await signVoucher(payer, domain, voucher) })
  }
  const verifier = createVoucherVerifier(domain)
  const count = options.quick ? 400 : 3000
  // The voucher loop and each primitive's hot loop take turns in slices through the round, so
  // both sides meet the same load of the shared cores (a ratio of two timings seconds apart
  // moved 0.26–0.95 here under load).
  const slices = 10
  const checks = await hotLoopChecks()
  const primitives = Object.keys(checks) as (keyof typeof checks)[]
  const perSlice = options.quick ? 5 : 20
  for (const name of primitives) for (let i = 0; i < 20; i++) checks[name]()
  const rounds = await repeat(options.quick ? 3 : 7, 1, async () => {
    let voucherMs = 0
    const primitiveMs = Object.fromEntries(primitives.map((name) => [name, 0])) as Record<
      keyof typeof checks,
      number
    >
    let next = 0
    for (let slice = 0; slice < slices; slice++) {
      const started = performance.now()
      for (let i = 0; i < count / slices; i++) {
        const { voucher, signature } = signed[next++ % signed.length]!
        if (!verifier.verify(voucher, signature, payer.address))
          throw new BaseError('INTERNAL', 'the charger refused a valid voucher')
      }
      voucherMs += performance.now() - started
      for (const name of primitives) {
        const check = checks[name]
        const begun = performance.now()
        for (let i = 0; i < perSlice; i++)
          if (!check()) throw new BaseError('INTERNAL', 'a valid secp256k1 signature failed to verify')
        primitiveMs[name] += performance.now() - begun
      }
    }
    const micros = Object.fromEntries(
      primitives.map((name) => [name, (primitiveMs[name] * 1000) / (slices * perSlice)]),
    ) as Record<keyof typeof checks, number>
    return {
      rate: count / (voucherMs / 1000),
      verify: { fastest: Math.min(...Object.values(micros)), ...micros },
    }
  })
  const rates = rounds.map((r) => r.rate)
  return [
    resultOf(
      'charging.vouchers_per_s',
      'vouchers/s',
      rates,
      { op: '>=', value: 3000, source: 'issue 6' },
      {
        vouchersPerRound: count,
        what: 'createVoucherVerifier().verify, one payer, key cached after the first voucher, one thread',
      },
    ),
    resultOf(
      'charging.vouchers_over_verify',
      '×',
      rounds.map((r) => (r.rate * r.verify.fastest) / 1e6),
      { op: '>=', value: 0.8, source: 'issue 18' },
      {
        what: 'vouchers verified per second (as charging.vouchers_per_s) × the time of one secp256k1 verification with the fastest primitive in a hot loop over one signature (OpenSSL, noble, SignerKeyCache, fixed-base tables); per round, the voucher loop and each primitive taking turns in ten slices',
        verifyMicros: rounds.map((r) => round3(r.verify.fastest)),
        voucherMicros: rounds.map((r) => round3(1e6 / r.rate)),
        primitivesMicros: {
          openssl: round3(median(rounds.map((r) => r.verify.openssl))),
          noble: round3(median(rounds.map((r) => r.verify.noble))),
          signerKeyCache: round3(median(rounds.map((r) => r.verify.signerKeyCache))),
          fixedTables: round3(median(rounds.map((r) => r.verify.fixedTables))),
        },
      },
    ),
  ]
}

/** Gas of open, claim, ten sessions and naive per-kWh transfers on a fresh anvil. */
export async function benchChargingGas(chain: TestChain, options: BenchOptions): Promise<BenchResult[]> {
  options.progress('charging gas: open with permit, claims, close, 50 per-kWh transfers')
  const payee = await chain.as(3)
  const contracts = chain.deployment.contracts
  const gas = await measureChargingGas({
    operator: chain.clients,
    payee,
    contracts: {
      token: contracts.Token.address as Address,
      channels: contracts.ChargingChannels.address as Address,
    },
  })
  // The channel's gas for one 50 kWh session on its own: open with permit, then close with the
  // newest voucher (everything on chain for it; the vouchers themselves stay off chain).
  const singleSession = gas.openWithPermit.first + gas.closeWithVoucher
  const openTarget = { op: '<=', value: 100_000, source: 'issue 6' } as const
  return [
    // The headline is the worst case measured: a car's first permit ever also pays the token's
    // fresh permit-nonce slot.
    countResult('charging.gas_open', 'gas', gas.openWithPermit.first, openTarget, {
      what: "openWithPermit, the car's first permit ever (the token's permit nonce 0 → 1, a fresh slot)",
      typicalOpen: gas.openWithPermit.later,
      channelStorage: 'one fresh slot per channel (deposit, paid, expiresAt); payer, payee, token in the id',
      microRaiden: '120,090 + 46,366 approve',
    }),
    countResult('charging.gas_open_typical', 'gas', gas.openWithPermit.later, openTarget, {
      what: 'openWithPermit by a car that has used a permit before (every open after its first)',
      firstPermitOpen: gas.openWithPermit.first,
    }),
    countResult(
      'charging.gas_settle',
      'gas',
      gas.claim,
      { op: '<=', value: 60_000, source: 'issue 6' },
      {
        what: 'one claim with the newest voucher (payee already holds the token)',
        closeWithVoucher: gas.closeWithVoucher,
        microRaidenCooperativeClose: 71_182,
      },
    ),
    countResult(
      'charging.gas_per_session',
      'gas',
      gas.perSessionBatched,
      { op: '<=', value: 20_000, source: 'issue 6' },
      {
        what: 'ten sessions on one channel: open with permit + one settlement (close with the newest voucher), / 10',
        claimAfterEachSession: gas.perSessionClaimEach,
      },
    ),
    countResult(
      'charging.naive_over_channel',
      '×',
      gas.naiveTransfers.session50KWh / singleSession,
      undefined,
      {
        what: '50 ERC-20 transfers (one per kWh) / open + close of one channel for the same 50 kWh session',
        naiveSessionGas: gas.naiveTransfers.session50KWh,
        naivePerKWh: gas.naiveTransfers.perKWh,
        channelSessionGas: singleSession,
        overAmortizedSession: Math.round((gas.naiveTransfers.session50KWh / gas.perSessionBatched) * 10) / 10,
        note: 'issue 6 sets no target for this ratio; it frames the per-session target (~34,500 gas per kWh)',
      },
    ),
  ]
}
