import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { engines, freshDatabase } from '../../test/database.ts'
import type { Database } from '../db/database.ts'
import { isErrorCode } from '../errors.ts'
import { captureLogs } from '../log.ts'
import { fromHex, toBareHex } from './bytes.ts'
import { type BuiltEvent, createEventChain, type VehicleAddress } from './envelope.ts'
import { appendBatch, getAlerts, unwrittenEvidence, writeUnwrittenEvidence } from './store.ts'

// Tamper evidence (issue 19 #17): when the database refuses the record of a fork, the store says
// so loudly (an error log with the evidence, `unwrittenEvidence` for health) and writes it later.

const signature = new Uint8Array(64).fill(1)
const vehicle = `0x${'7'.repeat(40)}` as VehicleAddress

const append = (db: Database, events: BuiltEvent[]) =>
  appendBatch(db, { vehicle, events, checkpointSignature: signature })

const forks = async (db: Database) =>
  (
    await db.query<{ seq: bigint }>('select seq from ledger_forks where vehicle = $1', [
      fromHex(vehicle, 'vehicle', 20),
    ])
  ).rows.map((row) => Number(row.seq))

for (const engine of engines) {
  describe(`tamper evidence the database refuses (${engine})`, () => {
    it('is logged as an error, reported, kept and written once the database takes it', async () => {
      const db = await freshDatabase(engine)
      const logs = captureLogs()
      try {
        const chain = createEventChain({ vehicle })
        const first = chain.append({ kind: 'trip.started', time: 10, data: {} })
        await append(db, [first, chain.append({ kind: 'trip.ended', time: 15, data: {} })])
        // A real fault: the alerts table refuses every new row.
        await db.exec('alter table ledger_alerts add constraint evidence_fault check (false) not valid')

        const fork = createEventChain({ vehicle, head: { nextSeq: 1, prev: toBareHex(first.leafHash) } })
        const other = fork.append({ kind: 'door.locked', time: 20, data: {} })
        await assert.rejects(append(db, [first, other]), (e) => isErrorCode(e, 'EVENT_FORK'))

        const failure = logs.records.find((r) => r.component === 'ledger.store' && r.level === 50)
        assert.ok(failure, 'the failed evidence write is logged as an error')
        assert.equal(failure.code, 'EVENT_FORK')
        assert.equal(failure.vehicle, vehicle)
        assert.equal(failure.seq, 1)
        const reported = unwrittenEvidence(db)
        assert.equal(reported.count, 1)
        assert.match(reported.lastError ?? '', /evidence_fault/)
        assert.deepEqual(await forks(db), [], 'the fork and its alert are written together or not at all')

        await db.exec('alter table ledger_alerts drop constraint evidence_fault')
        await writeUnwrittenEvidence(db)
        assert.equal(unwrittenEvidence(db).count, 0)
        assert.deepEqual(await forks(db), [1])
        assert.deepEqual(
          (await getAlerts(db, { vehicle })).map((alert) => [alert.code, alert.seq]),
          [['EVENT_FORK', 1]],
        )
        // Good batches were never held up by the evidence.
        const next = chain.append({ kind: 'trip.ended', time: 30, data: {} })
        assert.equal((await append(db, [next])).ids[0], next.id)
      } finally {
        logs.restore()
        await db.close()
      }
    })
  })
}
