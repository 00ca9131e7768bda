import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { isErrorCode } from '../errors.ts'
import { canonicalize, canonicalizeToBytes, JCS_MAX_DEPTH } from './jcs.ts'

/** RFC 8785 the plain way, as a reference for canonicalize's faster paths; undefined = refused. */
function reference(value: unknown, depth = 0): string | undefined {
  if (depth > JCS_MAX_DEPTH) return undefined
  if (value === null || typeof value === 'boolean') return String(value)
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : undefined
  if (typeof value === 'string') {
    return /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(value)
      ? undefined
      : JSON.stringify(value)
  }
  if (Array.isArray(value)) {
    const items = Array.from(value.keys(), (i) => (i in value ? reference(value[i], depth + 1) : undefined))
    return items.includes(undefined) ? undefined : `[${items.join(',')}]`
  }
  if (typeof value !== 'object' || ![Object.prototype, null].includes(Object.getPrototypeOf(value))) {
    return undefined
  }
  const members = Object.keys(value)
    .sort()
    .map((key) => {
      const item = reference((value as Record<string, unknown>)[key], depth + 1)
      const name = reference(key)
      return item === undefined || name === undefined ? undefined : `${name}:${item}`
    })
  return members.includes(undefined) ? undefined : `{${members.join(',')}}`
}

function outcome(value: unknown): string | undefined {
  try {
    return canonicalize(value)
  } catch (error) {
    assert.ok(isErrorCode(error, 'EVENT_MALFORMED'))
    return undefined
  }
}

describe('canonicalize (RFC 8785)', () => {
  it('sorts keys and drops whitespace', () => {
    assert.equal(
      canonicalize({ b: 1, a: [true, null, 'x'], c: { z: {}, y: [] } }),
      '{"a":[true,null,"x"],"b":1,"c":{"y":[],"z":{}}}',
    )
  })

  it('serializes the RFC 8785 §3.2.2 example', () => {
    // The RFC's input text, parsed (333333333.33333329 is not exactly representable: that is the point).
    const value = JSON.parse(
      '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],' +
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/", "literals": [null, true, false]}',
    )
    assert.equal(
      canonicalize(value),
      '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
    )
  })

  it('sorts keys by UTF-16 code units (RFC 8785 §3.2.3 example)', () => {
    const value = {
      '\u20ac': 'Euro Sign',
      '\r': 'Carriage Return',
      '\ufb33': 'Hebrew Letter Dalet With Dagesh',
      '1': 'One',
      '\ud83d\ude00': 'Emoji: Grinning Face',
      '\u0080': 'Control',
      '\u00f6': 'Latin Small Letter O With Diaeresis',
    }
    // (JSON.parse would reorder the integer-like key "1": read the order off the text.)
    const order = ['\\r', '1', '\u0080', '\u00f6', '\u20ac', '\ud83d\ude00', '\ufb33'].map((key) =>
      canonicalize(value).indexOf(`"${key}":`),
    )
    assert.ok(
      order.every((position, i) => position >= 0 && (i === 0 || position > order[i - 1]!)),
      String(order),
    )
  })

  it('prints numbers as ECMAScript does (RFC 8785 Appendix B)', () => {
    const cases: [number, string][] = [
      [0, '0'],
      [-0, '0'],
      [1, '1'],
      [-1.5, '-1.5'],
      [5e-324, '5e-324'],
      [1.7976931348623157e308, '1.7976931348623157e+308'],
      [9007199254740992, '9007199254740992'],
      [295147905179352830000, '295147905179352830000'],
      [1e21, '1e+21'],
      [1e-7, '1e-7'],
      [0.000001, '0.000001'],
      [123456789012345680000, '123456789012345680000'],
    ]
    for (const [value, text] of cases) assert.equal(canonicalize(value), text)
  })

  it('escapes control characters with lowercase \\u00XX and leaves other text as is', () => {
    assert.equal(canonicalize('\u0000\u001f\b\t\n\f\r"\\é😀'), '"\\u0000\\u001f\\b\\t\\n\\f\\r\\"\\\\é😀"')
    assert.deepEqual([...canonicalizeToBytes('é')], [0x22, 0xc3, 0xa9, 0x22])
  })

  it('refuses what JSON cannot carry with EVENT_MALFORMED', () => {
    const bad: unknown[] = [
      Number.NaN,
      Number.POSITIVE_INFINITY,
      undefined,
      1n,
      { a: undefined },
      [1, () => 1],
      Symbol('s'),
      new Date(0),
      new Map(),
      'lone \ud800 surrogate',
      { '\udc00': 1 },
      // biome-ignore lint/suspicious/noSparseArray: the hole is the point
      [1, , 2],
    ]
    for (const value of bad) {
      assert.throws(
        () => canonicalize(value),
        (error) => isErrorCode(error, 'EVENT_MALFORMED'),
        String(value),
      )
    }
  })

  it('refuses nesting deeper than the limit', () => {
    let deep: unknown = 1
    for (let i = 0; i < 100; i++) deep = [deep]
    assert.throws(
      () => canonicalize(deep),
      (error) => isErrorCode(error, 'EVENT_MALFORMED'),
    )
  })

  it('accepts null-prototype objects', () => {
    const value = Object.assign(Object.create(null), { b: 2, a: 1 })
    assert.equal(canonicalize(value), '{"a":1,"b":2}')
  })

  it('prints exactly what the plain algorithm prints, whatever the key order, or refuses alike', () => {
    const key = fc.oneof(
      fc.string(),
      fc.constantFrom('1', '10', '2', '-1', '01', '4294967295', '__proto__', 'toJSON', '\uD800', 'a\u0000'),
    )
    const leaf = fc.oneof(
      fc.string({ unit: 'binary' }),
      fc.double(),
      fc.integer(),
      fc.boolean(),
      fc.constant(null),
      fc.constantFrom(undefined, Number.NaN, -0, 1e21, 5e-324, '\uDC00x', 10n),
    )
    const { tree } = fc.letrec<{ tree: unknown }>((self) => ({
      tree: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        leaf,
        fc.array(self('tree'), { maxLength: 4 }),
        fc.dictionary(key, self('tree'), { maxKeys: 5 }),
      ),
    }))
    fc.assert(
      fc.property(tree, (value) => {
        const expected = reference(value)
        assert.equal(outcome(value), expected)
        // Parsed back from its canonical form, keys come in JCS order (the fast path): same text.
        if (expected !== undefined) assert.equal(outcome(JSON.parse(expected)), expected)
      }),
      { numRuns: 2000 },
    )
    let deep: unknown = {}
    for (let i = 0; i < JCS_MAX_DEPTH; i++) deep = { a: deep }
    assert.equal(outcome(deep), reference(deep))
    assert.equal(outcome([deep]), undefined)
    assert.equal(outcome({ a: new Array(3) }), undefined)
    assert.equal(outcome({ a: new Date(0) }), undefined)
  })
})
