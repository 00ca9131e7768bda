/**
 * The operator's voucher book: the newest voucher per channel, what was claimed, and the one
 * session open on each channel. Claims are batched per channel — only the newest voucher is ever
 * submitted, since it pays everything the older ones would — so one claim transaction settles any
 * number of increments and sessions.
 *
 * Every charger of one CPO must share one book: they are paid through the same channels, and the
 * book is where sessions on a channel are serialised (`openSession`). Two chargers with two books,
 * or two sessions open at once, would each accept vouchers from the same base, and the operator
 * could claim only the highest of the overlapping amounts (docs/payments.md "One session per
 * channel"). The in-memory and file books serve the chargers of one process.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { dirname } from 'node:path'
import type { Address, Hash, Hex } from 'viem'
import { BaseError } from '../errors.ts'
import { writeFileAtomic } from '../fs-atomic.ts'
import {
  type ChannelClients,
  type ChannelKey,
  channelIdOf,
  claimVoucher,
  type SignedVoucher,
} from '../payments/channels.ts'
import { describeValue } from '../payments/typed-data.ts'

export type BookEntry = {
  readonly newest: SignedVoucher
  /** The channel's key (payer, payee, token, nonce): what a claim names the channel by. */
  readonly key: ChannelKey
  /** The highest cumulative amount claimed on chain so far. */
  readonly claimed: bigint
}

/**
 * Contract: async so that a book may live in a store shared by processes; every method is atomic
 * with respect to the others on the same channel.
 */
export interface VoucherBook {
  newest(channelId: Hex): Promise<BookEntry | undefined>
  /**
   * Keeps `voucher` when it raises the channel's cumulative amount; resolves whether it did.
   * INVALID_ARGUMENT when `key` is not the key of the voucher's channel.
   */
  offer(voucher: SignedVoucher, key: ChannelKey): Promise<boolean>
  markClaimed(channelId: Hex, cumulativeAmount: bigint): Promise<void>
  /** Channels whose newest voucher is above what was claimed. */
  pending(): Promise<BookEntry[]>
  all(): Promise<BookEntry[]>
  /**
   * Holds the channel for `holder` (an id the station draws per session, never one the car
   * chose) across every charger sharing this book: CHANNEL_BUSY while another holder's hold is
   * live. The same holder calling again renews its hold. A station holds the channel before it
   * reads the book's newest voucher as the session's floor, renews with every voucher and
   * releases when the session ended; a book shared by processes lets a hold lapse when it was
   * not renewed in time (its charger died).
   */
  holdChannel(channelId: Hex, holder: string): Promise<void>
  /** Ends `holder`'s hold on the channel; nothing when it does not hold it. */
  releaseChannel(channelId: Hex, holder: string): Promise<void>
}

/** The error of a channel another session holds. */
export function channelBusy(channelId: Hex): BaseError {
  return new BaseError(
    'CHANNEL_BUSY',
    'another session is open on this channel at this operator; start again when it ended',
    { details: { channelId } },
  )
}

/** Channel holds for the books of one process: a hold lives until released. */
function processHolds(): Pick<VoucherBook, 'holdChannel' | 'releaseChannel'> {
  const holders = new Map<string, string>()
  return {
    async holdChannel(channelId, holder) {
      const id = channelId.toLowerCase()
      const current = holders.get(id)
      if (current !== undefined && current !== holder) throw channelBusy(channelId)
      holders.set(id, holder)
    },
    async releaseChannel(channelId, holder) {
      const id = channelId.toLowerCase()
      if (holders.get(id) === holder) holders.delete(id)
    },
  }
}

export function memoryVoucherBook(): VoucherBook {
  const entries = new Map<string, BookEntry>()
  return {
    newest: async (channelId) => entries.get(channelId.toLowerCase()),
    async offer(voucher, key) {
      const id = voucher.channelId.toLowerCase()
      if (channelIdOf(key) !== id)
        throw new BaseError('INVALID_ARGUMENT', 'the key is not the voucher’s channel’s', {
          details: { channelId: id, keyChannelId: channelIdOf(key) },
        })
      const current = entries.get(id)
      if (current && current.newest.cumulativeAmount >= voucher.cumulativeAmount) return false
      entries.set(id, {
        newest: voucher,
        key: { payer: key.payer, payee: key.payee, token: key.token, nonce: key.nonce },
        claimed: current?.claimed ?? 0n,
      })
      return true
    },
    async markClaimed(channelId, cumulativeAmount) {
      const id = channelId.toLowerCase()
      const current = entries.get(id)
      if (current && cumulativeAmount > current.claimed)
        entries.set(id, { ...current, claimed: cumulativeAmount })
    },
    pending: async () => [...entries.values()].filter((e) => e.newest.cumulativeAmount > e.claimed),
    all: async () => [...entries.values()],
    ...processHolds(),
  }
}

type BookFile = {
  version: 2
  channels: Record<
    string,
    {
      cumulativeAmount: string
      meterWh: string
      signature: Hex
      payer: Address
      payee: Address
      token: Address
      /** Decimal. */
      nonce: string
      claimed: string
    }
  >
}

/**
 * A voucher book persisted as JSON (crash-safe writes): a station keeps what the car signed
 * across restarts, and `carchain charge claim` settles from the same file. One process writes it
 * (its open sessions live in that process's memory): run all of an operator's chargers that
 * share it in that process.
 */
export async function fileVoucherBook(path: string): Promise<VoucherBook> {
  const memory = memoryVoucherBook()
  if (existsSync(path)) {
    let file: BookFile
    try {
      file = JSON.parse(readFileSync(path, 'utf8')) as BookFile
    } catch (error) {
      throw new BaseError('DATA_DIR_INVALID', `${path} is not a Carchain voucher book`, {
        details: { path },
        cause: error,
      })
    }
    if ((file.version as number) === 1)
      // Version 1 kept only the payer: its channels' keys (payee, token, nonce) are not known, and
      // the ChargingChannels it was written for took channel ids, which this one does not.
      throw new BaseError(
        'DATA_DIR_INVALID',
        `${path} is a voucher book for the previous ChargingChannels contract; settle it with the release that wrote it, then move it away`,
        { details: { path, version: 1 } },
      )
    if (file.version !== 2)
      throw new BaseError('DATA_DIR_INVALID', `${path} is not a Carchain voucher book`, {
        details: { path, version: describeValue(file.version) },
      })
    for (const [channelId, e] of Object.entries(file.channels)) {
      await memory.offer(
        {
          channelId: channelId as Hex,
          cumulativeAmount: BigInt(e.cumulativeAmount),
          meterWh: BigInt(e.meterWh),
          signature: e.signature,
        },
        { payer: e.payer, payee: e.payee, token: e.token, nonce: BigInt(e.nonce) },
      )
      await memory.markClaimed(channelId as Hex, BigInt(e.claimed))
    }
  }
  const save = async () => {
    const file: BookFile = { version: 2, channels: {} }
    for (const e of await memory.all())
      file.channels[e.newest.channelId.toLowerCase()] = {
        cumulativeAmount: e.newest.cumulativeAmount.toString(),
        meterWh: e.newest.meterWh.toString(),
        signature: e.newest.signature,
        payer: e.key.payer,
        payee: e.key.payee,
        token: e.key.token,
        nonce: e.key.nonce.toString(),
        claimed: e.claimed.toString(),
      }
    mkdirSync(dirname(path), { recursive: true })
    writeFileAtomic(path, `${JSON.stringify(file, null, 2)}\n`)
  }
  return {
    ...memory,
    async offer(voucher, key) {
      const kept = await memory.offer(voucher, key)
      if (kept) await save()
      return kept
    },
    async markClaimed(channelId, cumulativeAmount) {
      await memory.markClaimed(channelId, cumulativeAmount)
      await save()
    },
  }
}

export type ClaimOutcome =
  | { channelId: Hex; ok: true; cumulativeAmount: bigint; paid: bigint; txHash: Hash; gasUsed: bigint }
  | { channelId: Hex; ok: false; code: string; message: string }

/**
 * Claims every channel with an unclaimed voucher, one transaction per channel, each with its
 * newest voucher. A failed claim is reported and retried on the next round.
 */
export async function claimPending(
  clients: ChannelClients,
  parameters: {
    channels: Address
    book: VoucherBook
    onClaimed?: (outcome: ClaimOutcome) => Promise<void> | void
  },
): Promise<ClaimOutcome[]> {
  const outcomes: ClaimOutcome[] = []
  for (const entry of await parameters.book.pending()) {
    const { newest } = entry
    let outcome: ClaimOutcome
    try {
      const sent = await claimVoucher(clients, {
        channels: parameters.channels,
        key: entry.key,
        voucher: newest,
      })
      await parameters.book.markClaimed(newest.channelId, newest.cumulativeAmount)
      outcome = {
        channelId: newest.channelId,
        ok: true,
        cumulativeAmount: newest.cumulativeAmount,
        paid: newest.cumulativeAmount - entry.claimed,
        txHash: sent.txHash,
        gasUsed: sent.gasUsed,
      }
    } catch (error) {
      const e = error as { code?: string; message?: string }
      outcome = {
        channelId: newest.channelId,
        ok: false,
        code: e.code ?? 'INTERNAL',
        message: String(e.message),
      }
    }
    outcomes.push(outcome)
    await parameters.onClaimed?.(outcome)
  }
  return outcomes
}
