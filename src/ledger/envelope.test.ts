import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import fc from 'fast-check'
import { requirePart } from '../../test/skip.ts'
import { isErrorCode } from '../errors.ts'
import {
  buildEvent,
  computeCommit,
  createEventChain,
  encodeEnvelope,
  envelopeLeafHash,
  eventKinds,
  GENESIS_PREV,
  parseEnvelope,
  parseEnvelopeBytes,
  parsePayload,
  signCheckpoint,
  verifyCheckpointSignature,
  verifyP256,
  verifyPayload,
} from './envelope.ts'
import { canonicalizeToBytes } from './jcs.ts'
import { hashLeaf, sha256 } from './merkle.ts'
import { aP256Signer } from './testing.ts'

const vehicle = '0x00000000000000000000000000000000000000aa'
const salt = new Uint8Array(16).fill(7)

describe('envelope', () => {
  it('is canonical JSON with sorted keys; the leaf hash is SHA-256(0x00 ‖ bytes)', () => {
    const event = buildEvent({
      vehicle,
      seq: 0,
      time: 1_700_000_000_000,
      kind: 'door.unlocked',
      data: { door: 'front-left' },
      salt,
    })
    const text = new TextDecoder().decode(event.leafInput)
    assert.equal(
      text,
      `{"commit":"${event.envelope.commit}","kind":"door.unlocked","prev":"${GENESIS_PREV}","seq":0,"time":1700000000000,"v":1,"vehicle":"${vehicle}"}`,
    )
    assert.deepEqual(event.leafHash, hashLeaf(event.leafInput))
    assert.equal(event.id, `0x${Buffer.from(event.leafHash).toString('hex')}`)
    // commit = SHA-256(salt ‖ JCS(data))
    const expected = Buffer.from(
      sha256(Buffer.concat([Buffer.from(salt), Buffer.from('{"door":"front-left"}')])),
    ).toString('hex')
    assert.equal(event.envelope.commit, expected)
    assert.ok(verifyPayload(event.envelope, event.payload))
    assert.ok(!verifyPayload(event.envelope, { salt, data: { door: 'front-right' } }))
  })

  it('chains events: prev is the previous leaf hash, seq counts up', () => {
    const chain = createEventChain({ vehicle: vehicle.toUpperCase().replace('0X', '0x') })
    const a = chain.append({ kind: 'trip.started', time: 1, data: {} })
    const b = chain.append({ kind: 'odometer', time: 2, data: { km: 10 } })
    assert.equal(a.envelope.prev, GENESIS_PREV)
    assert.equal(b.envelope.seq, 1)
    assert.equal(b.envelope.prev, Buffer.from(a.leafHash).toString('hex'))
    assert.deepEqual(chain.head(), { nextSeq: 2, prev: Buffer.from(b.leafHash).toString('hex') })
    const resumed = createEventChain({ vehicle, head: chain.head() })
    assert.equal(resumed.append({ kind: 'trip.ended', time: 3, data: {} }).envelope.seq, 2)
  })

  it('parses strictly: exact keys, types, lowercase hex, known kinds', () => {
    const good = buildEvent({
      vehicle,
      seq: 3,
      time: 5,
      kind: 'telemetry',
      prev: 'ab'.repeat(32),
      data: 1,
      salt,
    }).envelope
    assert.deepEqual(parseEnvelope(JSON.parse(JSON.stringify(good))), good)
    const bad: Record<string, unknown>[] = [
      { ...good, extra: 1 },
      { ...good, v: 2 },
      { ...good, vehicle: vehicle.replace('aa', 'AA') },
      { ...good, vehicle: '0x1234' },
      { ...good, seq: -1 },
      { ...good, seq: 1.5 },
      { ...good, seq: '3' },
      { ...good, time: 2 ** 53 },
      { ...good, kind: 'door.smashed' },
      { ...good, prev: 'AB'.repeat(32) },
      { ...good, prev: `0x${'ab'.repeat(31)}` },
      { ...good, commit: 'ab'.repeat(33) },
      { ...good, seq: 0 },
    ]
    const { commit: _omitted, ...missing } = good
    bad.push(missing)
    for (const value of bad) {
      assert.throws(
        () => parseEnvelope(value),
        (error) => isErrorCode(error, 'EVENT_MALFORMED'),
        JSON.stringify(value),
      )
    }
    for (const value of [null, [], 'x', 1])
      assert.throws(
        () => parseEnvelope(value),
        (e) => isErrorCode(e, 'EVENT_MALFORMED'),
      )
  })

  it('parses leaf inputs only in canonical form', () => {
    const event = buildEvent({ vehicle, seq: 0, time: 9, kind: 'odometer', data: { km: 1 }, salt })
    assert.deepEqual(parseEnvelopeBytes(event.leafInput), event.envelope)
    const spaced = new TextEncoder().encode(JSON.stringify(event.envelope, null, 1))
    assert.throws(
      () => parseEnvelopeBytes(spaced),
      (e) => isErrorCode(e, 'EVENT_MALFORMED'),
    )
    const duplicated = new TextEncoder().encode(
      `${new TextDecoder().decode(event.leafInput).slice(0, -1)},"v":1}`,
    )
    assert.throws(
      () => parseEnvelopeBytes(duplicated),
      (e) => isErrorCode(e, 'EVENT_MALFORMED'),
    )
    assert.throws(
      () => parseEnvelopeBytes(new Uint8Array([0xff, 0xfe])),
      (e) => isErrorCode(e, 'EVENT_MALFORMED'),
    )
    assert.deepEqual(envelopeLeafHash(event.envelope), event.leafHash)
    assert.deepEqual(encodeEnvelope(event.envelope), event.leafInput)
  })

  it('the fast envelope encoding is exactly JCS', () => {
    const hex = (length: number) => fc.stringMatching(new RegExp(`^[0-9a-f]{${length}}$`))
    fc.assert(
      fc.property(
        hex(40),
        fc.nat(),
        fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        fc.constantFrom(...eventKinds),
        hex(64),
        hex(64),
        (address, seq, time, kind, prev, commit) => {
          const envelope = { v: 1 as const, vehicle: `0x${address}` as const, seq, time, kind, prev, commit }
          assert.deepEqual(encodeEnvelope(envelope), canonicalizeToBytes(envelope))
        },
      ),
      { numRuns: 300 },
    )
  })

  it('parses payloads strictly', () => {
    const payload = parsePayload({ salt: `0x${'07'.repeat(16)}`, data: { km: 1 } })
    assert.equal(computeCommit(payload), computeCommit({ salt, data: { km: 1 } }))
    for (const value of [
      { salt: `0x${'07'.repeat(15)}`, data: 1 },
      { salt: 'zz', data: 1 },
      { salt: `0x${'07'.repeat(16)}` },
      { salt: `0x${'07'.repeat(16)}`, data: 1, more: 2 },
      null,
    ]) {
      assert.throws(
        () => parsePayload(value),
        (e) => isErrorCode(e, 'EVENT_MALFORMED'),
      )
    }
  })
})

describe('checkpoint signatures (P-256, raw r‖s)', () => {
  it('signs the 32-byte leaf hash as the message and verifies', async () => {
    const { signer, publicKey } = aP256Signer()
    const leafHash = hashLeaf(new Uint8Array([1, 2, 3]))
    const signature = await signCheckpoint(signer, leafHash)
    assert.equal(signature.length, 64)
    assert.ok(verifyCheckpointSignature({ publicKey, leafHash, signature }))
    const other = hashLeaf(new Uint8Array([1, 2, 4]))
    assert.ok(!verifyCheckpointSignature({ publicKey, leafHash: other, signature }))
    assert.ok(!verifyCheckpointSignature({ publicKey: aP256Signer().publicKey, leafHash, signature }))
    assert.ok(!verifyCheckpointSignature({ publicKey: publicKey.slice(1), leafHash, signature }))
    assert.ok(!verifyCheckpointSignature({ publicKey, leafHash, signature: signature.slice(1) }))
    await assert.rejects(signCheckpoint(signer, new Uint8Array(31)), (e) =>
      isErrorCode(e, 'INVALID_ARGUMENT'),
    )
  })

  const wycheproof = fileURLToPath(
    new URL('../../../shared/vectors/wycheproof/ecdsa_secp256r1_sha256_p1363_test.json', import.meta.url),
  )
  it('accepts every valid and refuses every invalid Wycheproof P-256 P1363 vector', (t) => {
    if (!requirePart(t, existsSync(wycheproof), `Wycheproof vectors missing at ${wycheproof}`)) return
    const file = JSON.parse(readFileSync(wycheproof, 'utf8'))
    const counts = { valid: 0, invalid: 0 }
    for (const group of file.testGroups) {
      const publicKey = new Uint8Array(Buffer.from(group.publicKey.uncompressed, 'hex'))
      for (const test of group.tests) {
        const ok = verifyP256({
          publicKey,
          message: new Uint8Array(Buffer.from(test.msg, 'hex')),
          signature: new Uint8Array(Buffer.from(test.sig, 'hex')),
        })
        if (test.result === 'valid') {
          assert.ok(ok, `tcId ${test.tcId} (${test.comment}) must verify`)
          counts.valid++
        } else if (test.result === 'invalid') {
          assert.ok(!ok, `tcId ${test.tcId} (${test.comment}) must be refused`)
          counts.invalid++
        }
      }
    }
    assert.ok(counts.valid > 100 && counts.invalid > 50, JSON.stringify(counts))
  })
})
