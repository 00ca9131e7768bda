import assert from 'node:assert/strict'
import { test } from 'node:test'
import { captureLogs, logger } from './log.ts'

test('a component logger writes structured records with its component and the error', () => {
  const log = logger('test.component') // made before the capture: still captured
  const capture = captureLogs()
  try {
    log.error({ err: new Error('boom'), vehicle: '0x01' }, 'background step failed')
    log.debug({}, 'detail')
  } finally {
    capture.restore()
  }
  assert.equal(capture.records.length, 2)
  const first = capture.records[0]!
  assert.equal(first.component, 'test.component')
  assert.equal(first.msg, 'background step failed')
  assert.equal(first.err?.message, 'boom')
  assert.equal(first.vehicle, '0x01')
  assert.equal(first.level, 50)
})
