import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { engines, freshDatabase } from '../../test/database.ts'
import type { Database } from '../db/database.ts'
import { isErrorCode } from '../errors.ts'
import { type BuiltEvent, createEventChain, type VehicleAddress } from './envelope.ts'
import { appendBatch, erasePayload, getCheckpoint, getConsistencyProof, getRootAt } from './store.ts'
import { createDisclosure, verifyDisclosure, verifyEvent } from './verify.ts'

const vehicle = `0x${'d0'.repeat(20)}` as VehicleAddress

for (const engine of engines) {
  describe(`verify on ${engine}`, () => {
    let db: Database
    const events: BuiltEvent[] = []
    before(async () => {
      db = await freshDatabase(engine)
      const chain = createEventChain({ vehicle })
      for (let b = 0; b < 4; b++) {
        const batch = Array.from({ length: 5 }, (_, i) =>
          chain.append({ kind: 'navigation.destination', time: b * 100 + i, data: { place: `p${b}.${i}` } }),
        )
        await appendBatch(db, { vehicle, events: batch, checkpointSignature: new Uint8Array(64) })
        events.push(...batch)
      }
    })
    after(async () => {
      await db.close()
    })

    it('a disclosure verifies on its own and against a trusted root of the same size', async () => {
      const disclosure = JSON.parse(JSON.stringify(await createDisclosure(db, { id: events[7]!.id })))
      const checkpoint = await getCheckpoint(db)
      const result = verifyDisclosure({ disclosure, trusted: checkpoint })
      assert.equal(result.id, events[7]!.id)
      assert.equal(result.leafIndex, 7)
      assert.deepEqual(result.data, { place: 'p1.2' })
      assert.equal(result.inTrustedTree, true)
    })

    it('checks against an older or newer trusted (anchored) root with a consistency proof', async () => {
      const anchored = { treeSize: 12, rootHash: await getRootAt(db, 12) }
      // The proof is in the newest tree (20); the anchor is older: consistency 12 → 20.
      const newer = await createDisclosure(db, { id: events[3]!.id })
      const forward = (await getConsistencyProof(db, 12, 20)).proof
      assert.equal(
        verifyDisclosure({ disclosure: newer, trusted: anchored, consistencyProof: forward }).inTrustedTree,
        true,
      )
      const late = await createDisclosure(db, { id: events[15]!.id })
      assert.equal(
        verifyDisclosure({ disclosure: late, trusted: anchored, consistencyProof: forward }).inTrustedTree,
        false,
      )
      // The proof is in an older tree (8); the trusted root is newer: consistency 8 → 12.
      const older = await createDisclosure(db, { id: events[2]!.id, treeSize: 8 })
      const backward = (await getConsistencyProof(db, 8, 12)).proof
      assert.equal(
        verifyDisclosure({ disclosure: older, trusted: anchored, consistencyProof: backward }).leafIndex,
        2,
      )
      assert.throws(
        () => verifyDisclosure({ disclosure: older, trusted: anchored, consistencyProof: forward }),
        (e) => isErrorCode(e, 'PROOF_INVALID') && e.details.reason === 'consistency',
      )
    })

    it('refuses a tampered envelope, payload, path or root', async () => {
      const good = await createDisclosure(db, { id: events[9]!.id })
      const checkpoint = await getCheckpoint(db)
      const bad = [
        { ...good, envelope: { ...good.envelope, time: good.envelope.time + 1 } },
        { ...good, payload: { ...good.payload!, data: { place: 'elsewhere' } } },
        { ...good, auditPath: [...good.auditPath].reverse() },
        { ...good, leafIndex: 8 },
        { ...good, rootHash: `0x${'00'.repeat(32)}` },
      ]
      for (const disclosure of bad) {
        assert.throws(
          () => verifyDisclosure({ disclosure }),
          (e) => isErrorCode(e, 'PROOF_INVALID'),
          JSON.stringify(disclosure),
        )
      }
      const otherRoot = { treeSize: checkpoint.treeSize, rootHash: `0x${'11'.repeat(32)}` as const }
      assert.throws(
        () => verifyDisclosure({ disclosure: good, trusted: otherRoot }),
        (e) => isErrorCode(e, 'PROOF_INVALID'),
      )
      assert.throws(
        () => verifyDisclosure({ disclosure: { ...good, extra: 1 } }),
        (e) => isErrorCode(e, 'EVENT_MALFORMED'),
      )
    })

    it('an erased payload leaves the event provable without its data', async () => {
      await erasePayload(db, events[4]!.id)
      const disclosure = await createDisclosure(db, { id: events[4]!.id })
      assert.equal(disclosure.payload, undefined)
      const result = verifyEvent({ ...disclosure, trusted: await getCheckpoint(db) })
      assert.equal(result.data, undefined)
      assert.equal(result.id, events[4]!.id)
    })
  })
}
