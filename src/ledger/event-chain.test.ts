import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { isErrorCode } from '../errors.ts'
import {
  buildEvent,
  type ChainHead,
  computeCommit,
  createEventChain,
  encodeEnvelope,
  envelopeLeafHash,
  eventKinds,
  parseEnvelope,
} from './envelope.ts'
import type { JsonValue } from './jcs.ts'

const vehicle = '0x00000000000000000000000000000000000000C4'

/** The chain as the envelope rules define it, one `buildEvent` per append: the reference. */
function referenceChain(head: ChainHead = { nextSeq: 0, prev: '0'.repeat(64) }) {
  let { nextSeq, prev } = head
  return {
    append(event: Parameters<ReturnType<typeof createEventChain>['append']>[0]) {
      const built = buildEvent({ vehicle, seq: nextSeq, prev, ...event })
      nextSeq++
      prev = Buffer.from(built.leafHash).toString('hex')
      return built
    },
    head: () => ({ nextSeq, prev }),
  }
}

describe('createEventChain', () => {
  it('builds exactly the events buildEvent builds', () => {
    const json: fc.Arbitrary<JsonValue> = fc.jsonValue() as fc.Arbitrary<JsonValue>
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            kind: fc.constantFrom(...eventKinds),
            time: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
            data: json,
            salt: fc.uint8Array({ minLength: 16, maxLength: 16 }),
          }),
          { minLength: 1, maxLength: 8 },
        ),
        fc.option(
          fc.record({
            nextSeq: fc.integer({ min: 1, max: 1_000_000 }),
            prev: fc.stringMatching(/^[0-9a-f]{64}$/),
          }),
          { nil: undefined },
        ),
        (events, head) => {
          const reference = referenceChain(head)
          const fast = createEventChain({ vehicle, head })
          for (const event of events) {
            const expected = reference.append(event)
            const actual = fast.append(event)
            assert.deepEqual(actual.envelope, expected.envelope)
            assert.deepEqual([...actual.leafInput], [...expected.leafInput])
            assert.deepEqual([...actual.leafHash], [...expected.leafHash])
            assert.equal(actual.id, expected.id)
            assert.deepEqual([...actual.payload.salt], [...expected.payload.salt])
            assert.deepEqual(actual.payload.data, expected.payload.data)
            assert.deepEqual(fast.head(), reference.head())
          }
        },
      ),
      { numRuns: 200 },
    )
  })

  it('draws a fresh salt per event and commits to it', () => {
    const chain = createEventChain({ vehicle })
    const salts = new Set<string>()
    for (let i = 0; i < 200; i++) {
      const event = chain.append({ kind: 'access.used', time: 1_763_770_000_000 + i, data: { i } })
      assert.equal(event.envelope.commit, computeCommit(event.payload))
      assert.deepEqual(parseEnvelope(event.envelope), event.envelope)
      assert.deepEqual([...envelopeLeafHash(event.envelope)], [...event.leafHash])
      assert.deepEqual([...encodeEnvelope(event.envelope)], [...event.leafInput])
      salts.add(Buffer.from(event.payload.salt).toString('hex'))
    }
    assert.equal(salts.size, 200)
  })

  it('refuses what buildEvent refuses', () => {
    const chain = createEventChain({ vehicle })
    const bad: [string, Parameters<typeof chain.append>[0]][] = [
      ['kind', { kind: 'door.opened' as never, time: 1, data: null }],
      ['fractional time', { kind: 'telemetry', time: 1.5, data: null }],
      ['negative time', { kind: 'telemetry', time: -1, data: null }],
      ['data', { kind: 'telemetry', time: 1, data: { x: undefined } as never }],
      ['salt', { kind: 'telemetry', time: 1, data: null, salt: new Uint8Array(15) }],
    ]
    for (const [name, parameters] of bad) {
      assert.throws(
        () => referenceChain().append(parameters),
        (e) => isErrorCode(e, 'EVENT_MALFORMED'),
        name,
      )
      assert.throws(
        () => chain.append(parameters),
        (e) => isErrorCode(e, 'EVENT_MALFORMED'),
        name,
      )
    }
    // nothing was appended by a refusal
    assert.equal(chain.head().nextSeq, 0)
    assert.throws(
      () => createEventChain({ vehicle: '0x12' }),
      (e) => isErrorCode(e, 'INVALID_ARGUMENT'),
    )
  })
})
