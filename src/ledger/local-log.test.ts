import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { isErrorCode } from '../errors.ts'
import { createEventChain, type VehicleAddress } from './envelope.ts'
import { openLocalLog } from './local-log.ts'

const vehicle = `0x${'e0'.repeat(20)}` as VehicleAddress
const dir = mkdtempSync(join(tmpdir(), 'carchain-local-log-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let counter = 0
const freshPath = () => join(dir, `log-${counter++}.bin`)

describe('local log', () => {
  it('keeps events and acknowledgements across reopen', async () => {
    const path = freshPath()
    const chain = createEventChain({ vehicle })
    const log = await openLocalLog(path)
    assert.deepEqual(log.head(), chain.head())
    const events = [0, 1, 2, 3].map((i) => chain.append({ kind: 'telemetry', time: i, data: { i } }))
    await log.append(events.slice(0, 2))
    await log.append(events.slice(2))
    await log.acknowledge(1)
    await log.close()

    const reopened = await openLocalLog(path)
    assert.equal(reopened.truncatedBytes, 0)
    assert.deepEqual(
      reopened.entries().map((entry) => entry.id),
      events.map((event) => event.id),
    )
    assert.deepEqual(reopened.entries()[3]!.payload, events[3]!.payload)
    assert.equal(reopened.acknowledgedSeq(), 1)
    assert.deepEqual(
      reopened.unacknowledged().map((entry) => entry.envelope.seq),
      [2, 3],
    )
    assert.deepEqual(reopened.head(), chain.head())
    await reopened.close()
  })

  it('refuses events that do not continue the chain, writing nothing', async () => {
    const path = freshPath()
    const log = await openLocalLog(path)
    const chain = createEventChain({ vehicle })
    const first = chain.append({ kind: 'telemetry', time: 1, data: {} })
    chain.append({ kind: 'telemetry', time: 2, data: {} })
    const third = chain.append({ kind: 'telemetry', time: 3, data: {} })
    await assert.rejects(log.append([first, third]), (e) => isErrorCode(e, 'EVENT_GAP'))
    assert.equal(statSync(path).size, 8)
    await log.append([first])
    await assert.rejects(
      log.append([
        createEventChain({ vehicle, head: { nextSeq: 1, prev: 'ab'.repeat(32) } }).append({
          kind: 'telemetry',
          time: 2,
          data: {},
        }),
      ]),
      (e) => isErrorCode(e, 'EVENT_FORK'),
    )
    await log.close()
  })

  it('recovers every earlier record when the last one is cut at any byte', async () => {
    const path = freshPath()
    const chain = createEventChain({ vehicle })
    const log = await openLocalLog(path)
    await log.append([0, 1, 2].map((i) => chain.append({ kind: 'telemetry', time: i, data: { i } })))
    await log.acknowledge(0)
    const lastStart = statSync(path).size
    const last = chain.append({ kind: 'odometer', time: 9, data: { km: 42 } })
    await log.append([last])
    await log.close()
    const whole = readFileSync(path)
    const cutPath = freshPath()
    for (let cut = lastStart; cut < whole.length; cut++) {
      writeFileSync(cutPath, whole.subarray(0, cut))
      const recovered = await openLocalLog(cutPath)
      assert.equal(recovered.entries().length, 3, `cut at ${cut}`)
      assert.equal(recovered.acknowledgedSeq(), 0)
      assert.equal(recovered.truncatedBytes, cut - lastStart)
      assert.equal(statSync(cutPath).size, lastStart)
      // The vehicle goes on: the lost event is rebuilt and appended again.
      if (cut === whole.length - 1) {
        await recovered.append([last])
        await recovered.close()
        assert.deepEqual(readFileSync(cutPath), whole)
      } else {
        await recovered.close()
      }
    }
  })

  it('treats damage before the last record as LOG_CORRUPT, and a garbled last record as torn', async () => {
    const path = freshPath()
    const chain = createEventChain({ vehicle })
    const log = await openLocalLog(path)
    await log.append([chain.append({ kind: 'telemetry', time: 1, data: { a: 1 } })])
    await log.append([chain.append({ kind: 'telemetry', time: 2, data: { a: 2 } })])
    await log.close()
    const whole = readFileSync(path)
    const middle = Buffer.from(whole)
    middle[20]! ^= 0x01
    writeFileSync(path, middle)
    await assert.rejects(openLocalLog(path), (e) => isErrorCode(e, 'LOG_CORRUPT'))
    const tail = Buffer.from(whole)
    tail[tail.length - 3]! ^= 0x01
    writeFileSync(path, tail)
    const recovered = await openLocalLog(path)
    assert.equal(recovered.entries().length, 1)
    await recovered.close()
    writeFileSync(path, 'not a log at all')
    await assert.rejects(openLocalLog(path), (e) => isErrorCode(e, 'LOG_CORRUPT'))
    writeFileSync(path, 'CCLE')
    const restarted = await openLocalLog(path)
    assert.equal(restarted.entries().length, 0)
    await restarted.close()
  })

  it('compacts away acknowledged events and goes on from the same chain', async () => {
    const path = freshPath()
    const chain = createEventChain({ vehicle })
    const log = await openLocalLog(path)
    const events = [0, 1, 2, 3, 4].map((i) => chain.append({ kind: 'telemetry', time: i, data: { i } }))
    await log.append(events)
    await log.acknowledge(2)
    const before = statSync(path).size
    await log.compact()
    assert.ok(statSync(path).size < before)
    assert.deepEqual(
      log.entries().map((entry) => entry.envelope.seq),
      [3, 4],
    )
    const next = chain.append({ kind: 'telemetry', time: 5, data: {} })
    await log.append([next])
    await log.close()
    const reopened = await openLocalLog(path)
    assert.deepEqual(
      reopened.unacknowledged().map((entry) => entry.envelope.seq),
      [3, 4, 5],
    )
    assert.equal(reopened.acknowledgedSeq(), 2)
    assert.deepEqual(reopened.head(), chain.head())
    await reopened.close()
  })
})
