/**
 * Payload access on both engines: readers' grants are single-use by their signing time, and a
 * removal outlives the grants issued before it.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { type Address, getAddress } from 'viem'
import { engines, freshDatabase } from '../../test/database.ts'
import { BaseError } from '../errors.ts'
import { admitReader, mayReadPayloads, removeReader, type TitleCheck } from './payload-access.ts'

const vehicle = getAddress(`0x${'11'.repeat(20)}`)
const owner = getAddress(`0x${'22'.repeat(20)}`)
const reader = getAddress(`0x${'33'.repeat(20)}`)
const ownerOnly: TitleCheck = async (_vehicle, account) => account === owner
const signature = `0x${'ab'.repeat(65)}` as const

const grant = (issuedAtMs: number, notAfter = Math.floor(Date.now() / 1000) + 3600) => ({
  vehicle,
  reader,
  grantedBy: owner,
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
        const reads = (account: Address) => mayReadPayloads(db, ownerOnly, vehicle, account)
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
        const before = Date.now() - 10
        assert.equal(await removeReader(db, vehicle, reader), 0, 'nothing to remove, but recorded')
        await refusedWith(admitReader(db, grant(before)), 'DATA_GRANT_STALE')
        const after = Date.now() + 5
        await admitReader(db, grant(after))
        assert.equal(await mayReadPayloads(db, ownerOnly, vehicle, reader), true)
        assert.equal(await removeReader(db, vehicle, reader), 1)
        assert.equal(await mayReadPayloads(db, ownerOnly, vehicle, reader), false)
        await refusedWith(admitReader(db, grant(after)), 'DATA_GRANT_STALE')
      } finally {
        await db.close()
      }
    })
  })
}
