/**
 * `carchain nfc …` as a user runs it: the readers pcscd sees, and the card command's refusals
 * before it touches a reader (the payments themselves: src/nfc/pcsc.test.ts, the demo).
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { cli } from '../../../test/cli.ts'
import { requirePart } from '../../../test/skip.ts'
import { startNfcService } from '../../nfc/pcscd.ts'

test('nfc readers lists the virtual reader pcscd offers', async (t) => {
  const nfc = await startNfcService({ mode: 'daemon' })
  if (!requirePart(t, nfc.on, `NFC is off: ${nfc.on ? '' : nfc.reason}`)) return
  const { status, json } = await cli('nfc', 'readers')
  assert.equal(status, 0)
  assert.ok(json.readers.includes('Virtual PCD 00 00'), JSON.stringify(json))
})

test('nfc card names a car of the demo fleet: none without a fleet, a usage error without --vehicle', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'carchain-nfc-cli-'))
  try {
    const missing = await cli('nfc', 'card', '--vehicle', 'WCC0DEM0000000001', '--data', dir)
    assert.notEqual(missing.status, 0)
    assert.equal(missing.json.code, 'DATA_DIR_INVALID')
    const usage = await cli('nfc', 'card', '--data', dir)
    assert.equal(usage.status, 2)
    assert.equal(usage.json.code, 'CLI_USAGE')
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
