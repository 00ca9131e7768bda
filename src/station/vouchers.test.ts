/**
 * The voucher book's contract, on every implementation: in memory, in a file, and in the
 * operator's database (PGlite always, PostgreSQL when DATABASE_URL is set). For the database,
 * `a` and `b` are two books on one database, as two charger processes of one operator have.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import type { Hex } from 'viem'
import { engines, freshDatabase } from '../../test/database.ts'
import { BaseError } from '../errors.ts'
import { type ChannelKey, channelIdOf } from '../payments/channels.ts'
import { databaseVoucherBook } from './database-voucher-book.ts'
import { fileVoucherBook, memoryVoucherBook, type VoucherBook } from './vouchers.ts'

const key: ChannelKey = {
  payer: '0x1111111111111111111111111111111111111111',
  payee: '0x2222222222222222222222222222222222222222',
  token: '0x3333333333333333333333333333333333333333',
  nonce: 18_446_744_073_709_551_615n,
}
const channelId = channelIdOf(key)
const voucher = (cumulativeAmount: bigint, fill = 'aa') => ({
  channelId,
  cumulativeAmount,
  meterWh: cumulativeAmount % 2n ** 64n, // uint64
  signature: `0x${fill.repeat(65)}` as Hex,
})
const busy = (error: unknown) => error instanceof BaseError && error.code === 'CHANNEL_BUSY'

type Books = { a: VoucherBook; b: VoucherBook; close(): Promise<void> }

const kinds: Record<string, () => Promise<Books>> = {
  memory: async () => {
    const book = memoryVoucherBook()
    return { a: book, b: book, close: async () => {} }
  },
  file: async () => {
    const dir = await mkdtemp(join(tmpdir(), 'carchain-book-'))
    const book = await fileVoucherBook(join(dir, 'book.json'))
    return { a: book, b: book, close: () => rm(dir, { recursive: true, force: true }) }
  },
  ...Object.fromEntries(
    engines.map((engine) => [
      `database (${engine})`,
      async () => {
        const db = await freshDatabase(engine)
        return { a: databaseVoucherBook(db), b: databaseVoucherBook(db), close: () => db.close() }
      },
    ]),
  ),
}

for (const [kind, open] of Object.entries(kinds))
  describe(`voucher book: ${kind}`, () => {
    it('keeps the newest voucher per channel and what was claimed', async () => {
      const { a, b, close } = await open()
      try {
        assert.equal(await a.newest(channelId), undefined)
        assert.equal(await a.offer(voucher(1_500_000_000_000_000_000n), key), true)
        assert.equal(await b.offer(voucher(1_500_000_000_000_000_000n, 'bb'), key), false, 'equal: not kept')
        assert.equal(await b.offer(voucher(1_000n), key), false, 'lower: not kept')
        await assert.rejects(
          a.offer(voucher(2n ** 255n), { ...key, nonce: 1n }),
          (e: unknown) => e instanceof BaseError && e.code === 'INVALID_ARGUMENT',
        )
        const kept = await b.newest(channelId)
        assert.deepEqual(kept, { newest: voucher(1_500_000_000_000_000_000n), key, claimed: 0n })
        assert.equal((await a.pending()).length, 1)
        await a.markClaimed(channelId, 1_500_000_000_000_000_000n)
        await b.markClaimed(channelId, 1n)
        assert.equal((await b.newest(channelId))?.claimed, 1_500_000_000_000_000_000n, 'claims only grow')
        assert.deepEqual(await b.pending(), [])
        assert.equal(await b.offer(voucher(2n ** 255n), key), true)
        assert.equal((await a.pending())[0]?.newest.cumulativeAmount, 2n ** 255n)
        assert.equal((await a.all()).length, 1)
      } finally {
        await close()
      }
    })

    it('holds a channel for one session at a time across the books', async () => {
      const { a, b, close } = await open()
      try {
        await a.holdChannel(channelId, 'first')
        await a.holdChannel(channelId, 'first') // renewed by its holder
        await assert.rejects(b.holdChannel(channelId, 'second'), busy)
        await b.releaseChannel(channelId, 'second') // not its hold: nothing
        await assert.rejects(b.holdChannel(channelId, 'second'), busy)
        await a.releaseChannel(channelId, 'first')
        await b.holdChannel(channelId, 'second')
        await assert.rejects(a.holdChannel(channelId, 'first'), busy)
        // Another channel is independent.
        const other = channelIdOf({ ...key, nonce: 7n })
        await a.holdChannel(other, 'first')
      } finally {
        await close()
      }
    })
  })

for (const engine of engines)
  it(`voucher book in the database (${engine}): a hold not renewed in time lapses`, async () => {
    const db = await freshDatabase(engine)
    try {
      const dead = databaseVoucherBook(db, { holdMs: 1 })
      const alive = databaseVoucherBook(db)
      await dead.holdChannel(channelId, 'crashed charger')
      await new Promise((resolve) => setTimeout(resolve, 20))
      await alive.holdChannel(channelId, 'next session')
      await assert.rejects(dead.holdChannel(channelId, 'crashed charger'), busy)
    } finally {
      await db.close()
    }
  })

it('voucher book in a file: survives a restart', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'carchain-book-'))
  try {
    const path = join(dir, 'book.json')
    const book = await fileVoucherBook(path)
    await book.offer(voucher(5_000n), key)
    await book.markClaimed(channelId, 4_000n)
    const reopened = await fileVoucherBook(path)
    assert.deepEqual(await reopened.newest(channelId), { newest: voucher(5_000n), key, claimed: 4_000n })
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
