import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { BaseError } from '../errors.ts'
import type { BatchJson } from '../ledger/batch.ts'
import { aP256Signer } from '../ledger/testing.ts'
import { type BatchTransport, VehicleLedger } from './ledger.ts'

const vehicle = '0x00000000000000000000000000000000000000c4'

/** A transport that refuses its first `failures` sends (a node outage), then acknowledges. */
function flakyTransport(failures: number): BatchTransport & { batches: BatchJson[] } {
  const batches: BatchJson[] = []
  let left = failures
  return {
    batches,
    async send(batch) {
      if (left-- > 0) throw new BaseError('TIMEOUT', 'node down')
      batches.push(batch)
      return { ids: [], treeSize: 0 }
    },
  }
}

test('events are recorded at once, durable by group commit, and survive a crash', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'carchain-vledger-'))
  try {
    const signer = aP256Signer().signer
    const first = await VehicleLedger.open({ vehicle, dir, signer, transport: flakyTransport(0) })
    const ids = await Promise.all(Array.from({ length: 50 }, (_, i) => first.record('telemetry', { i })))
    assert.equal(new Set(ids).size, 50)
    await first.durable()
    // No clean stop: the process "dies" here; a new one opens the same directory.
    const second = await VehicleLedger.open({ vehicle, dir, signer, transport: flakyTransport(0) })
    assert.equal(second.pending(), 50)
    const next = await second.record('odometer', { km: 1 })
    await second.flush()
    assert.equal(second.pending(), 0)
    assert.notEqual(next, ids[49])
    await second.stop()
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('the uploader retries through a node outage and sends each event once, in order', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'carchain-vledger-'))
  try {
    const transport = flakyTransport(3)
    const ledger = await VehicleLedger.open({
      vehicle,
      dir,
      signer: aP256Signer().signer,
      transport,
      uploadIntervalMs: 20,
    })
    ledger.start()
    for (let i = 0; i < 20; i++) await ledger.record('telemetry', { i })
    for (let i = 0; i < 200 && ledger.pending() > 0; i++) await new Promise((r) => setTimeout(r, 50))
    assert.equal(ledger.pending(), 0)
    const seqs = transport.batches.flatMap((b) => b.events.map((e) => e.envelope.seq))
    assert.deepEqual(
      seqs,
      Array.from({ length: 20 }, (_, i) => i),
    )
    await ledger.stop()
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('recordLater keeps its place in the order; everything is on disk within 100 ms and on a clean stop', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'carchain-vledger-'))
  try {
    const signer = aP256Signer().signer
    const ledger = await VehicleLedger.open({ vehicle, dir, signer, transport: flakyTransport(0) })
    const access = await ledger.record('access.used', { code: 'OK' })
    ledger.recordLater('door.unlocked', { access })
    const next = await ledger.record('access.denied', { code: 'GRANT_EXPIRED' })
    ledger.recordLater('door.locked', { access: next })
    assert.equal(ledger.pending(), 4)
    // no fdatasync awaited by anyone: the group commit runs on its own
    await new Promise((resolve) => setTimeout(resolve, 100))
    const crashed = await VehicleLedger.open({ vehicle, dir, signer, transport: flakyTransport(0) })
    assert.equal(crashed.pending(), 4)
    await crashed.stop()
    // a deferred event is written by a clean stop, whenever it came
    ledger.recordLater('trunk.opened', { access })
    await ledger.stop()
    const transport = flakyTransport(0)
    const reopened = await VehicleLedger.open({ vehicle, dir, signer, transport })
    await reopened.flush()
    const events = transport.batches.flatMap((b) => b.events)
    assert.deepEqual(
      events.map((e) => e.envelope.kind),
      ['access.used', 'door.unlocked', 'access.denied', 'door.locked', 'trunk.opened'],
    )
    assert.equal(`0x${events[1]!.envelope.prev}`, access)
    assert.equal(`0x${events[3]!.envelope.prev}`, next)
    await reopened.stop()
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
