import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { BaseError, type ErrorCode, errorCodes } from '../errors.ts'
import { formatResult, GrantParseCache, parseCarMessage, parseRequestMessage } from './link-protocol.ts'
import { aGrant, testAccount } from './testing.ts'
import { type KeyDomain, Scope } from './typed-data.ts'

const domain: KeyDomain = { chainId: 31337, keyRegistry: '0x5fbdb2315678afecb367f032d93f642f64180aa3' }
const signed = await aGrant({
  signer: testAccount(1),
  domain,
  vehicle: testAccount(10).address,
  grantee: testAccount(2).address,
  purpose: 'family',
})
const requestSignature = `0x${'1b'.repeat(64)}1b`

function frame(grant: unknown, grantSignature: unknown = signed.signature): string {
  return JSON.stringify({
    type: 'request',
    grant,
    grantSignature,
    action: Scope.UNLOCK,
    signature: requestSignature,
  })
}

/** What a parse gives: the request, or the error's code and field. */
function outcome(parse: () => unknown): unknown {
  try {
    return { ok: parse() }
  } catch (error) {
    assert.ok(error instanceof BaseError)
    return { code: error.code, details: error.details }
  }
}

test('formatResult writes exactly what JSON.stringify writes, for every code, and the device reads it back', () => {
  for (const code of ['OK', ...(Object.keys(errorCodes) as ErrorCode[])] as const) {
    for (const eventId of [null, `0x${'ab'.repeat(32)}`] as const) {
      const result = { type: 'result', ok: code === 'OK', code, eventId } as const
      assert.equal(formatResult(result), JSON.stringify(result))
      assert.deepEqual(parseCarMessage(formatResult(result)), result)
    }
  }
})

test('a grant seen before is parsed from the cache only when every field is identical', () => {
  const cache = new GrantParseCache()
  const first = parseRequestMessage(frame(signed.grant), cache)
  const again = parseRequestMessage(frame({ ...signed.grant }), cache)
  assert.equal(again.grant, first.grant, 'the same grant fields reuse the parsed grant')
  assert.deepEqual(first, parseRequestMessage(frame(signed.grant)))
  // the shared parse is frozen: nobody can change what later frames get
  assert.throws(() => {
    ;(again.grant!.grant as { scopes: number }).scopes = 31
  }, TypeError)
  // one field changed, a field's type changed, a field added or missing: parsed afresh
  const changed = [
    { ...signed.grant, scopes: Scope.UNLOCK | Scope.START },
    { ...signed.grant, notAfter: String(signed.grant.notAfter) },
    { ...signed.grant, grantee: signed.grant.grantee.toUpperCase().replace('0X', '0x') },
    { ...signed.grant, extra: 1 },
    Object.fromEntries(Object.entries(signed.grant).filter(([key]) => key !== 'purpose')),
  ]
  for (const grant of changed) {
    assert.deepEqual(
      outcome(() => parseRequestMessage(frame(grant), cache)),
      outcome(() => parseRequestMessage(frame(grant))),
    )
    const parsed = outcome(() => parseRequestMessage(frame(grant), cache)) as { ok?: { grant: unknown } }
    if (parsed.ok) assert.notEqual(parsed.ok.grant, first.grant)
  }
})

test('a malformed grant is never cached: it is refused every time, with its field', () => {
  const cache = new GrantParseCache()
  const bad = { ...signed.grant, scopes: 64 }
  for (let i = 0; i < 2; i++)
    assert.deepEqual(
      outcome(() => parseRequestMessage(frame(bad), cache)),
      {
        code: 'INVALID_ARGUMENT',
        details: { field: 'grant.scopes', value: '64' },
      },
    )
  // a malformed grant signature is not cached either, under its text or any other
  for (let i = 0; i < 2; i++)
    assert.equal(
      (outcome(() => parseRequestMessage(frame(signed.grant, '0x12'), cache)) as { code: string }).code,
      'INVALID_ARGUMENT',
    )
})

test('property: with or without the cache, any mutated grant parses to the same request or the same error', () => {
  const cache = new GrantParseCache(4)
  const fields = Object.keys(signed.grant)
  const values = fc.oneof(
    fc.integer({ min: -2, max: 2 ** 40 }),
    fc.string({ maxLength: 70 }),
    fc.constant(null),
    fc.boolean(),
    fc.constantFrom(...Object.values(signed.grant)),
  )
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.constantFrom(...fields, 'other'), values, fc.boolean()), { maxLength: 3 }),
      fc.boolean(),
      (edits, otherSignature) => {
        const grant: Record<string, unknown> = { ...signed.grant }
        for (const [field, value, remove] of edits) {
          if (remove) delete grant[field]
          else grant[field] = value
        }
        const signature = otherSignature ? `0x${'cd'.repeat(65)}` : signed.signature
        const plain = outcome(() => parseRequestMessage(frame(grant, signature)))
        assert.deepEqual(
          outcome(() => parseRequestMessage(frame(grant, signature), cache)),
          plain,
        )
        // the untouched grant still parses to the right fields from the cache afterwards
        assert.deepEqual(parseRequestMessage(frame(signed.grant), cache).grant, {
          grant: signed.grant,
          signature: signed.signature,
        })
      },
    ),
    { numRuns: 300 },
  )
})
