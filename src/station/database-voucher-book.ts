/**
 * The voucher book in the operator's database (PostgreSQL, or PGlite for one process): what every
 * charger of one CPO shares when they run in several processes or machines. Each method is one
 * statement, so the database serialises them: a voucher is kept only when it raises the channel's
 * amount, and a channel is held by one session at a time (migration 0012).
 */
import { getAddress, type Hex, hexToBytes, toHex } from 'viem'
import type { Queryable } from '../db/database.ts'
import { BaseError } from '../errors.ts'
import { channelIdOf } from '../payments/channels.ts'
import { type BookEntry, channelBusy, type VoucherBook } from './vouchers.ts'

export type DatabaseVoucherBookParameters = {
  /**
   * How long a hold lasts without renewal (default 300 s). A station renews it with every
   * voucher, at most a meter interval plus its 30 s voucher timeout apart; a hold its charger did
   * not renew in time (the process died) lapses and frees the channel.
   */
  readonly holdMs?: number
}

type Row = {
  channel_id: Uint8Array
  cumulative_amount: string
  meter_wh: string
  signature: Uint8Array
  payer: Uint8Array
  payee: Uint8Array
  token: Uint8Array
  nonce: string
  claimed: string
}

const columns = 'channel_id, cumulative_amount, meter_wh, signature, payer, payee, token, nonce, claimed'
const address = (bytes: Uint8Array) => getAddress(toHex(new Uint8Array(bytes)))

function entryOf(row: Row): BookEntry {
  return {
    newest: {
      channelId: toHex(new Uint8Array(row.channel_id)),
      cumulativeAmount: BigInt(row.cumulative_amount),
      meterWh: BigInt(row.meter_wh),
      signature: toHex(new Uint8Array(row.signature)),
    },
    key: {
      payer: address(row.payer),
      payee: address(row.payee),
      token: address(row.token),
      nonce: BigInt(row.nonce),
    },
    claimed: BigInt(row.claimed),
  }
}

/** A voucher book on a migrated database. */
export function databaseVoucherBook(
  db: Queryable,
  parameters: DatabaseVoucherBookParameters = {},
): VoucherBook {
  const holdMs = parameters.holdMs ?? 300_000
  const id = (channelId: Hex) => hexToBytes(channelId)
  const select = async (where: string, params: unknown[] = []) =>
    (await db.query<Row>(`select ${columns} from station_vouchers ${where}`, params)).rows.map(entryOf)
  return {
    async newest(channelId) {
      return (await select('where channel_id = $1', [id(channelId)]))[0]
    },
    async offer(voucher, key) {
      if (channelIdOf(key) !== voucher.channelId.toLowerCase())
        throw new BaseError('INVALID_ARGUMENT', 'the key is not the voucher’s channel’s', {
          details: { channelId: voucher.channelId, keyChannelId: channelIdOf(key) },
        })
      const { rows } = await db.query(
        `insert into station_vouchers (channel_id, cumulative_amount, meter_wh, signature, payer, payee, token, nonce)
         values ($1, $2::numeric, $3::numeric, $4, $5, $6, $7, $8::numeric)
         on conflict (channel_id) do update set cumulative_amount = excluded.cumulative_amount,
           meter_wh = excluded.meter_wh, signature = excluded.signature
         where station_vouchers.cumulative_amount < excluded.cumulative_amount
         returning channel_id`,
        [
          id(voucher.channelId),
          voucher.cumulativeAmount.toString(),
          voucher.meterWh.toString(),
          hexToBytes(voucher.signature),
          hexToBytes(key.payer),
          hexToBytes(key.payee),
          hexToBytes(key.token),
          key.nonce.toString(),
        ],
      )
      return rows.length === 1
    },
    async markClaimed(channelId, cumulativeAmount) {
      await db.query(
        'update station_vouchers set claimed = $2::numeric where channel_id = $1 and claimed < $2::numeric',
        [id(channelId), cumulativeAmount.toString()],
      )
    },
    pending: () => select('where cumulative_amount > claimed order by channel_id'),
    all: () => select('order by channel_id'),
    async holdChannel(channelId, holder) {
      const { rows } = await db.query(
        `insert into station_channel_holds (channel_id, holder, expires_at)
         values ($1, $2, now() + $3::integer * interval '1 millisecond')
         on conflict (channel_id) do update set holder = excluded.holder, expires_at = excluded.expires_at
         where station_channel_holds.holder = excluded.holder or station_channel_holds.expires_at <= now()
         returning holder`,
        [id(channelId), holder, holdMs],
      )
      if (rows.length === 0) throw channelBusy(channelId)
    },
    async releaseChannel(channelId, holder) {
      await db.query('delete from station_channel_holds where channel_id = $1 and holder = $2', [
        id(channelId),
        holder,
      ])
    },
  }
}
