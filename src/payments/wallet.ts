/**
 * The car's wallet: its secp256k1 key (in the key store, used through the viem account adapter)
 * and its owner's policy. Every payment the car makes — a charging voucher or a one-shot
 * transfer — passes `authorizeSpend` first; anything outside the policy is POLICY_DENIED with the
 * rule in `details.rule`.
 *
 * Spending is persisted (write-ahead, before a signature leaves the wallet) so a restart does not
 * reset the day; days are UTC calendar days. The wallet also remembers, per channel, the newest
 * voucher it signed: the base of the next session and the bound of what the channel can still pay.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { dirname } from 'node:path'
import type { Address, Hex, LocalAccount } from 'viem'
import { BaseError, type ErrorCode, toBaseError } from '../errors.ts'
import { writeFileAtomic } from '../fs-atomic.ts'
import { keyStoreAccount } from '../identity/account.ts'
import type { KeyRef, KeyStore } from '../identity/keystore.ts'
import type { EventKind } from '../ledger/envelope.ts'
import type { JsonValue } from '../ledger/jcs.ts'
import type { VoucherBase } from './pricing.ts'
import { type PaymentsDomain, signVoucher, type Tariff, type Voucher } from './typed-data.ts'

/** The owner's rules. Amounts are base units of the token. */
export type WalletPolicy = {
  /** Most one charging session or one-shot payment may cost. */
  readonly maxPerSession: bigint
  /** Most the wallet pays per UTC day, all payments together. */
  readonly maxPerDay: bigint
  /** Highest energy price the car accepts. */
  readonly maxPricePerKWh: bigint
  /** Highest session fee the car accepts (default: no limit beyond maxPerSession). */
  readonly maxSessionFee?: bigint
  /** The tokens the wallet pays in. */
  readonly tokens: readonly Address[]
  /** Highest charging power a meter may plausibly report (default 350 kW). */
  readonly maxPowerW?: number
}

/** What a charger presents: its on-chain address and, over TLS, its certificate chain. */
export type ChargerCredentials = {
  readonly address: Address
  /** The charger certificate (PEM or DER); absent for a payment to a bare address. */
  readonly certificate?: string | Uint8Array
  readonly chain?: readonly (string | Uint8Array)[]
  /** The EVSE ID the charger claims (its certificate's CN must match). */
  readonly evseId?: string
}

/** What a charger check learned; `payee` is the charger's CPO, which channels pay. */
export type ChargerIdentity = { readonly address: Address; readonly payee: Address; readonly evseId?: string }

/**
 * Checks a charger holds a valid CPO certificate and is registered and active on chain; throws a
 * BaseError (CHARGER_NOT_REGISTERED, CERT_*) otherwise. See `createChargerChecker`.
 */
export type CheckCharger = (charger: ChargerCredentials) => Promise<ChargerIdentity>

/** Appends an event to the car's ledger and returns its id. */
export type Recorder = (kind: EventKind, data: JsonValue) => Promise<string>

/** The newest voucher the wallet signed on a channel, and what it needs to reuse the channel. */
export type ChannelRecord = {
  readonly channelId: Hex
  readonly payee: Address
  readonly token: Address
  readonly nonce: bigint
  readonly cumulativeAmount: bigint
  readonly meterWh: bigint
  readonly signature: Hex | null
}

type StateFile = {
  version: 1
  day: string
  spentToday: string
  channels: Record<
    string,
    {
      payee: Address
      token: Address
      nonce: string
      cumulativeAmount: string
      meterWh: string
      signature: Hex | null
    }
  >
}

export type CreateCarWalletParameters = {
  readonly account: LocalAccount
  readonly domain: PaymentsDomain
  readonly policy: WalletPolicy
  /** Where spending and channel state persist (JSON); omitted: memory only. */
  readonly statePath?: string
  readonly checkCharger: CheckCharger
  readonly record: Recorder
  /** Clock (unix ms); tests inject one. */
  readonly now?: () => number
}

function denied(rule: string, message: string, details: Record<string, unknown> = {}): never {
  throw new BaseError('POLICY_DENIED', message, { details: { rule, ...details } })
}

function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10)
}

/** The car's wallet. Methods that change state are serialised; call them from any task. */
export type CarWallet = {
  readonly address: Address
  readonly account: LocalAccount
  readonly domain: PaymentsDomain
  readonly policy: WalletPolicy
  readonly now: () => number
  /** Base units spent so far today (UTC). */
  spentToday(): bigint
  /** Runs the charger check; a failure is POLICY_DENIED (rule `charger`, `details.causeCode`). */
  checkCharger(charger: ChargerCredentials): Promise<ChargerIdentity>
  /** Expiry (TARIFF_INVALID), token and prices (POLICY_DENIED). */
  checkTariff(tariff: Tariff): void
  /** Whether paying `amount` more, making a session total of `sessionTotal`, is within policy. */
  authorizeSpend(amount: bigint, sessionTotal: bigint, token: Address): void
  /** Books a one-shot payment (write-ahead); `release` undoes it when the payment failed. */
  reserveSpend(amount: bigint, token: Address): Promise<{ release(): Promise<void> }>
  /**
   * Signs the next voucher on a channel after the policy check; books the increment before
   * returning the signature. INSUFFICIENT_FUNDS when it would exceed `depositAmount`.
   */
  signSessionVoucher(parameters: {
    voucher: Voucher
    sessionTotal: bigint
    depositAmount: bigint
  }): Promise<Hex>
  rememberChannel(record: ChannelRecord): Promise<void>
  channel(channelId: Hex): ChannelRecord | undefined
  channels(): ChannelRecord[]
  /** The base of the next session on a channel (its newest signed voucher). */
  baseOf(channelId: Hex): VoucherBase
  /** Records `payment.sent` on the car's ledger. */
  recordPayment(data: JsonValue): Promise<string>
  record: Recorder
}

/** Builds a wallet over a viem account. */
export function createCarWallet(parameters: CreateCarWalletParameters): CarWallet {
  const { account, domain, policy, statePath } = parameters
  const now = parameters.now ?? Date.now
  const tokens = new Set(policy.tokens.map((t) => t.toLowerCase()))
  let state: StateFile = { version: 1, day: utcDay(now()), spentToday: '0', channels: {} }
  if (statePath && existsSync(statePath)) {
    try {
      state = JSON.parse(readFileSync(statePath, 'utf8')) as StateFile
      if (state.version !== 1) throw new Error(`version ${state.version}`)
    } catch (error) {
      throw new BaseError('DATA_DIR_INVALID', `${statePath} is not a Carchain wallet state file`, {
        details: { path: statePath },
        cause: error,
      })
    }
  }
  let queue: Promise<unknown> = Promise.resolve()
  const serial = <T>(task: () => Promise<T> | T): Promise<T> => {
    const next = queue.then(task, task)
    queue = Promise.allSettled([next]) // the queue only orders: each failure is returned to its caller
    return next
  }
  const rollDay = () => {
    const today = utcDay(now())
    if (state.day !== today) state = { ...state, day: today, spentToday: '0' }
  }
  const persist = () => {
    if (!statePath) return
    mkdirSync(dirname(statePath), { recursive: true })
    writeFileAtomic(statePath, `${JSON.stringify(state, null, 2)}\n`)
  }
  const spentToday = () => {
    rollDay()
    return BigInt(state.spentToday)
  }
  const toRecord = (channelId: Hex): ChannelRecord | undefined => {
    const c = state.channels[channelId.toLowerCase()]
    if (!c) return undefined
    return {
      channelId: channelId.toLowerCase() as Hex,
      payee: c.payee,
      token: c.token,
      nonce: BigInt(c.nonce),
      cumulativeAmount: BigInt(c.cumulativeAmount),
      meterWh: BigInt(c.meterWh),
      signature: c.signature,
    }
  }
  const authorizeSpend = (amount: bigint, sessionTotal: bigint, token: Address) => {
    if (!tokens.has(token.toLowerCase())) denied('token', `the wallet does not pay in ${token}`, { token })
    if (amount < 0n) throw new BaseError('INVALID_ARGUMENT', 'a payment cannot be negative')
    if (sessionTotal > policy.maxPerSession)
      denied(
        'maxPerSession',
        `the session would cost ${sessionTotal}, above the cap of ${policy.maxPerSession}`,
        {
          sessionTotal: sessionTotal.toString(),
          maxPerSession: policy.maxPerSession.toString(),
        },
      )
    const spent = spentToday()
    if (spent + amount > policy.maxPerDay)
      denied(
        'maxPerDay',
        `paying ${amount} would bring today's spending to ${spent + amount}, above ${policy.maxPerDay}`,
        {
          amount: amount.toString(),
          spentToday: spent.toString(),
          maxPerDay: policy.maxPerDay.toString(),
          day: state.day,
        },
      )
  }

  const wallet: CarWallet = {
    address: account.address,
    account,
    domain,
    policy,
    now,
    spentToday,
    record: parameters.record,
    async checkCharger(charger) {
      try {
        return await parameters.checkCharger(charger)
      } catch (error) {
        const cause = toBaseError(error)
        // An unreachable chain is not a verdict on the charger: pass it on as it is.
        if (!/^(CERT_|CRL_|CHARGER_NOT_REGISTERED)/.test(cause.code)) throw cause
        throw new BaseError(
          'POLICY_DENIED',
          `charger ${charger.address} is not acceptable: ${cause.shortMessage}`,
          {
            details: {
              rule: 'charger',
              charger: charger.address,
              causeCode: cause.code,
              cause: cause.details,
            },
            cause,
          },
        )
      }
    },
    checkTariff(tariff) {
      const nowSec = BigInt(Math.floor(now() / 1000))
      if (tariff.validUntil <= nowSec)
        throw new BaseError('TARIFF_INVALID', `the tariff expired at ${tariff.validUntil}`, {
          details: { validUntil: Number(tariff.validUntil), now: Number(nowSec) },
        })
      if (!tokens.has(tariff.token.toLowerCase()))
        denied('token', `the wallet does not pay in ${tariff.token}`, { token: tariff.token })
      if (tariff.pricePerKWh > policy.maxPricePerKWh)
        denied(
          'maxPricePerKWh',
          `${tariff.pricePerKWh} per kWh is above the owner's maximum ${policy.maxPricePerKWh}`,
          {
            pricePerKWh: tariff.pricePerKWh.toString(),
            maxPricePerKWh: policy.maxPricePerKWh.toString(),
          },
        )
      const maxFee = policy.maxSessionFee ?? policy.maxPerSession
      if (tariff.sessionFee > maxFee)
        denied('maxSessionFee', `a session fee of ${tariff.sessionFee} is above ${maxFee}`, {
          sessionFee: tariff.sessionFee.toString(),
          maxSessionFee: maxFee.toString(),
        })
    },
    authorizeSpend,
    reserveSpend(amount, token) {
      return serial(() => {
        authorizeSpend(amount, amount, token)
        state = { ...state, spentToday: (spentToday() + amount).toString() }
        persist()
        const day = state.day
        return {
          release: () =>
            serial(() => {
              if (state.day === day)
                state = { ...state, spentToday: (BigInt(state.spentToday) - amount).toString() }
              persist()
            }),
        }
      })
    },
    signSessionVoucher({ voucher, sessionTotal, depositAmount }) {
      return serial(async () => {
        const record = toRecord(voucher.channelId)
        if (!record)
          throw new BaseError('CHANNEL_STATE', `the wallet has no channel ${voucher.channelId}`, {
            details: { channelId: voucher.channelId },
          })
        const increment = voucher.cumulativeAmount - record.cumulativeAmount
        if (increment < 0n || voucher.meterWh < record.meterWh)
          throw new BaseError(
            'VOUCHER_INVALID',
            'a voucher may not go below the newest one signed on the channel',
            {
              details: {
                channelId: voucher.channelId,
                cumulativeAmount: voucher.cumulativeAmount.toString(),
                signed: record.cumulativeAmount.toString(),
              },
            },
          )
        if (voucher.cumulativeAmount > depositAmount)
          throw new BaseError('INSUFFICIENT_FUNDS', 'the channel deposit does not cover this voucher', {
            details: {
              channelId: voucher.channelId,
              cumulativeAmount: voucher.cumulativeAmount.toString(),
              deposit: depositAmount.toString(),
            },
          })
        authorizeSpend(increment, sessionTotal, record.token)
        const signature = await signVoucher(account, domain, voucher)
        // Write-ahead: the books hold the increment before the signature leaves the wallet.
        state = {
          ...state,
          spentToday: (spentToday() + increment).toString(),
          channels: {
            ...state.channels,
            [record.channelId]: {
              payee: record.payee,
              token: record.token,
              nonce: record.nonce.toString(),
              cumulativeAmount: voucher.cumulativeAmount.toString(),
              meterWh: voucher.meterWh.toString(),
              signature,
            },
          },
        }
        persist()
        return signature
      })
    },
    rememberChannel(record) {
      return serial(() => {
        state = {
          ...state,
          channels: {
            ...state.channels,
            [record.channelId.toLowerCase()]: {
              payee: record.payee,
              token: record.token,
              nonce: record.nonce.toString(),
              cumulativeAmount: record.cumulativeAmount.toString(),
              meterWh: record.meterWh.toString(),
              signature: record.signature,
            },
          },
        }
        persist()
      })
    },
    channel: toRecord,
    channels: () => Object.keys(state.channels).map((id) => toRecord(id as Hex) as ChannelRecord),
    baseOf(channelId) {
      const record = toRecord(channelId)
      return { cumulativeAmount: record?.cumulativeAmount ?? 0n, meterWh: record?.meterWh ?? 0n }
    },
    recordPayment: (data) => parameters.record('payment.sent', data),
  }
  return wallet
}

export type OpenCarWalletParameters = Omit<CreateCarWalletParameters, 'account'> & {
  readonly store: KeyStore
  /** The secp256k1 wallet key. */
  readonly ref: KeyRef
}

/** A wallet whose key lives in a key store (software file or PKCS#11 secure element). */
export async function openCarWallet(parameters: OpenCarWalletParameters): Promise<CarWallet> {
  const account = await keyStoreAccount(parameters.store, parameters.ref)
  return createCarWallet({ ...parameters, account })
}

/** Whether an error is a policy refusal of a given rule (for callers that branch on it). */
export function isPolicyDenied(error: unknown, rule?: string): boolean {
  return (
    error instanceof BaseError &&
    error.code === ('POLICY_DENIED' satisfies ErrorCode) &&
    (rule === undefined || error.details.rule === rule)
  )
}
