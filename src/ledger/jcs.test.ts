import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { isErrorCode } from '../errors.ts'
import { canonicalize, canonicalizeToBytes } from './jcs.ts'

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
})
