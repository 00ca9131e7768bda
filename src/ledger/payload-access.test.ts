/**
 * Payload access on both engines: readers' grants are single-use by their signing time, a
 * removal outlives the grants issued before it, and every owner reads and erases only the events
 * of its own title periods.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { type Address, getAddress } from 'viem'
import { engines, freshDatabase } from '../../test/database.ts'
import type { Database } from '../db/database.ts'
import { BaseError } from '../errors.ts'
import { createEventChain, type VehicleAddress } from './envelope.ts'
import {
  admitReader,
  OPEN_PERIOD_END_MS,
  payloadAccess,
  recordTitleTransfers,
  removeReader,
  type TitleChain,
  titlePeriods,
} from './payload-access.ts'
import { appendBatch, eraseVehicle } from './store.ts'
import { listVehicleEvents } from './timeline.ts'

const vehicle = getAddress(`0x${'11'.repeat(20)}`)
const owner = getAddress(`0x${'22'.repeat(20)}`)
const reader = getAddress(`0x${'33'.repeat(20)}`)
const buyer = getAddress(`0x${'44'.repeat(20)}`)

/** The chain's view: `current` owns the title, nobody manages it. */
const chainWith = (current: Address): TitleChain => ({
  isOwnerOrManager: async (_vehicle, account) => account === current,
  ownerOf: async () => current,
})
const ownerOnly = chainWith(owner)

/** Minted to `owner` at 1000 ms (block 1). */
const mint = (db: Database) =>
  recordTitleTransfers(db, { fromBlock: 0n, toBlock: 1n }, [
    { vehicle, owner, blockNumber: 1n, logIndex: 0, atMs: 1000 },
  ])

/** Whether `account` reads anything now. */
const mayRead = async (db: Database, chain: TitleChain, account: Address) =>
  (await payloadAccess(db, chain, vehicle, account)).readable.length > 0
const signature = `0x${'ab'.repeat(65)}` as const

const grant = (issuedAtMs: number, notAfter = Math.floor(Date.now() / 1000) + 3600) => ({
  vehicle,
  reader,
  grantedBy: owner,
  titleOwner: owner,
  notAfter,
  issuedAtMs,
  signature,
})

async function refusedWith(promise: Promise<unknown>, code: string) {
  await assert.rejects(promise, (error: unknown) => error instanceof BaseError && error.code === code)
}

for (const engine of engines) {
  describe(`payload access (${engine})`, () => {
    it('admits a reader once per grant and refuses older or equal grants', async () => {
      const db = await freshDatabase(engine)
      try {
        await mint(db)
        const reads = (account: Address) => mayRead(db, ownerOnly, account)
        assert.equal(await reads(reader), false)
        await admitReader(db, grant(1000))
        assert.equal(await reads(reader), true)
        await refusedWith(admitReader(db, grant(1000)), 'DATA_GRANT_STALE')
        await refusedWith(admitReader(db, grant(999)), 'DATA_GRANT_STALE')
        await admitReader(db, grant(1001, 1)) // newer, expired: ends the access
        assert.equal(await reads(reader), false)
        await refusedWith(admitReader(db, grant(1000)), 'DATA_GRANT_STALE')
        await refusedWith(admitReader(db, grant(Date.now() + 3_600_000)), 'GRANT_NOT_YET_VALID')
      } finally {
        await db.close()
      }
    })

    it('a removal refuses every grant issued before it, posted or not', async () => {
      const db = await freshDatabase(engine)
      try {
        await mint(db)
        const before = Date.now() - 10
        assert.equal(await removeReader(db, vehicle, reader), 0, 'nothing to remove, but recorded')
        await refusedWith(admitReader(db, grant(before)), 'DATA_GRANT_STALE')
        const after = Date.now() + 5
        await admitReader(db, grant(after))
        assert.equal(await mayRead(db, ownerOnly, reader), true)
        assert.equal(await removeReader(db, vehicle, reader), 1)
        assert.equal(await mayRead(db, ownerOnly, reader), false)
        await refusedWith(admitReader(db, grant(after)), 'DATA_GRANT_STALE')
      } finally {
        await db.close()
      }
    })

    it('cuts the history at each sale: owners and their readers see their own periods only', async () => {
      const db = await freshDatabase(engine)
      try {
        await mint(db)
        await admitReader(db, grant(Date.now()))
        // The seller sells at 5000 ms (block 7); the chain knows before the index does.
        const sold = chainWith(buyer)
        await assert.rejects(payloadAccess(db, sold, vehicle, owner), { code: 'TITLES_BEHIND' })
        await recordTitleTransfers(db, { fromBlock: 2n, toBlock: 7n }, [
          { vehicle, owner: buyer, blockNumber: 7n, logIndex: 3, atMs: 5000 },
        ])
        assert.deepEqual(await titlePeriods(db, vehicle), [
          { owner, fromMs: 0, untilMs: 5000 },
          { owner: buyer, fromMs: 5000, untilMs: OPEN_PERIOD_END_MS },
        ])
        const seller = await payloadAccess(db, sold, vehicle, owner)
        assert.deepEqual(seller.readable, [{ owner, fromMs: 0, untilMs: 5000 }])
        assert.deepEqual(seller.erasable, seller.readable, 'the seller still erases its own period')
        const bought = await payloadAccess(db, sold, vehicle, buyer)
        assert.deepEqual(bought.readable, [{ owner: buyer, fromMs: 5000, untilMs: OPEN_PERIOD_END_MS }])
        // The seller's reader is gone with the seller's title.
        assert.deepEqual(await payloadAccess(db, sold, vehicle, reader), { readable: [], erasable: [] })
        // A reader the buyer admits sees the buyer's period, and erases nothing.
        await admitReader(db, { ...grant(Date.now() + 1), grantedBy: buyer, titleOwner: buyer })
        const admitted = await payloadAccess(db, sold, vehicle, reader)
        assert.deepEqual(admitted, { readable: bought.readable, erasable: [] })
        // A reorg that drops the sale heals on the next pass over its blocks.
        await recordTitleTransfers(db, { fromBlock: 7n, toBlock: 8n }, [])
        assert.equal((await titlePeriods(db, vehicle)).length, 1)
      } finally {
        await db.close()
      }
    })

    it('erases a vehicle’s payloads of the given periods only', async () => {
      const db = await freshDatabase(engine)
      try {
        const car = vehicle.toLowerCase() as VehicleAddress
        const chain = createEventChain({ vehicle: car })
        const events = [0, 1, 2, 3, 4, 5].map((i) =>
          chain.append({ kind: 'telemetry', time: 100 + i, data: { i } }),
        )
        await appendBatch(db, { vehicle: car, events, checkpointSignature: new Uint8Array(64).fill(1) })
        assert.equal(
          await eraseVehicle(db, car, [
            { fromMs: 0, untilMs: 102 },
            { fromMs: 105, untilMs: 106 },
          ]),
          3,
        )
        const page = await listVehicleEvents(db, {
          vehicle: car,
          payloadPeriods: [{ fromMs: 0, untilMs: 200 }],
        })
        assert.deepEqual(
          page.map((event) => [event.timeMs, event.erased]),
          [105, 104, 103, 102, 101, 100].map((t) => [t, t < 102 || t === 105]),
        )
        assert.equal(await eraseVehicle(db, car), 3, 'without periods: all that is left')
      } finally {
        await db.close()
      }
    })
  })
}
