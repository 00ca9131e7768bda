/**
 * RFC 8785 JSON Canonicalization Scheme (JCS): the one byte form of a JSON value that Carchain
 * hashes (event envelopes, payload data).
 *
 * - object keys sorted by their UTF-16 code units (RFC 8785 §3.2.3), no whitespace;
 * - numbers in the ECMAScript `Number.prototype.toString` form (§3.2.2.3), `-0` as `0`;
 * - strings escaped as ECMAScript `JSON.stringify` does (§3.2.2.2).
 *
 * Values JSON cannot carry are refused with `EVENT_MALFORMED` instead of being dropped or
 * coerced: `undefined`, functions, symbols, bigint, NaN/±Infinity, lone surrogates (I-JSON,
 * RFC 7493 §2.1) and objects that are not plain (Date, Map, class instances).
 */
import { BaseError } from '../errors.ts'

/** Any value JCS can serialize. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue }

/** Nesting deeper than this is refused: protects the stack from hostile input. */
export const JCS_MAX_DEPTH = 64

const encoder = new TextEncoder()

/** The canonical JSON text of `value` (RFC 8785). Throws `EVENT_MALFORMED` for non-JSON values. */
export function canonicalize(value: unknown): string {
  // Fast path: a value whose objects all have their keys in JCS order already (as JSON.parse
  // leaves canonical input) and that holds nothing JCS refuses is printed by JSON.stringify
  // exactly as JCS prints it — same escapes, same ES number form, keys in own-property order.
  if (isStringifyCanonical(value, 0)) return JSON.stringify(value)
  const text = serialize(value, 0)
  if (text !== undefined) return text
  // Refused: the path-tracking writer names where.
  const parts: string[] = []
  write(value, parts, '$', 0)
  return parts.join('')
}

// Object keys repeat from event to event (the same few field names): their JSON form, cached.
const quotedKeys = new Map<string, string>()

function quoted(key: string): string {
  let text = quotedKeys.get(key)
  if (text === undefined) {
    text = JSON.stringify(key)
    if (quotedKeys.size < 4096 && key.length <= 64) quotedKeys.set(key, text)
  }
  return text
}

/**
 * JCS by string concatenation, without tracking the path (the cost of the general writer);
 * undefined where the value is refused, so that `write` can say where.
 */
function serialize(value: unknown, depth: number): string | undefined {
  if (depth > JCS_MAX_DEPTH) return undefined
  switch (typeof value) {
    case 'string':
      return value.isWellFormed() ? JSON.stringify(value) : undefined
    case 'number':
      return Number.isFinite(value) ? String(value) : undefined
    case 'boolean':
      return value ? 'true' : 'false'
    case 'object': {
      if (value === null) return 'null'
      if (Array.isArray(value)) {
        let text = '['
        for (let i = 0; i < value.length; i++) {
          const item = i in value ? serialize(value[i], depth + 1) : undefined
          if (item === undefined) return undefined
          text += i > 0 ? `,${item}` : item
        }
        return `${text}]`
      }
      const prototype = Object.getPrototypeOf(value)
      if (prototype !== Object.prototype && prototype !== null) return undefined
      const keys = Object.keys(value).sort()
      let text = '{'
      for (let i = 0; i < keys.length; i++) {
        const key = keys[i]!
        if (!key.isWellFormed()) return undefined
        const item = serialize((value as Record<string, unknown>)[key], depth + 1)
        if (item === undefined) return undefined
        text += `${i > 0 ? ',' : ''}${quoted(key)}:${item}`
      }
      return `${text}}`
    }
    default:
      return undefined
  }
}

/** The canonical JSON of `value` as UTF-8 bytes: the input to every Carchain hash. */
export function canonicalizeToBytes(value: unknown): Uint8Array {
  return encoder.encode(canonicalize(value))
}

/**
 * Whether JSON.stringify(value) is value's JCS form: only JSON values (finite numbers, strings
 * without lone surrogates, plain objects, arrays without holes, within JCS_MAX_DEPTH), every
 * object's keys already sorted by UTF-16 code units. False means "use the general algorithm",
 * which then canonicalizes or refuses.
 */
function isStringifyCanonical(value: unknown, depth: number): boolean {
  switch (typeof value) {
    case 'string':
      return value.isWellFormed()
    case 'number':
      return Number.isFinite(value)
    case 'boolean':
      return true
    case 'object': {
      if (value === null) return true
      if (depth >= JCS_MAX_DEPTH) return false
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          if (!(i in value) || !isStringifyCanonical(value[i], depth + 1)) return false
        }
        return true
      }
      const prototype = Object.getPrototypeOf(value)
      if (prototype !== Object.prototype && prototype !== null) return false
      const keys = Object.keys(value)
      for (let i = 0; i < keys.length; i++) {
        const key = keys[i]!
        // JS string comparison is by UTF-16 code units, as RFC 8785 §3.2.3 sorts.
        if ((i > 0 && !(keys[i - 1]! < key)) || !key.isWellFormed()) return false
        if (!isStringifyCanonical((value as Record<string, unknown>)[key], depth + 1)) return false
      }
      return true
    }
    default:
      return false
  }
}

function malformed(path: string, reason: string): BaseError {
  return new BaseError('EVENT_MALFORMED', `not canonicalizable JSON at ${path}: ${reason}`, {
    details: { path, reason },
  })
}

// A lone (unpaired) surrogate: I-JSON forbids it, and UTF-8 cannot encode it.
const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

function writeString(value: string, parts: string[], path: string): void {
  if (loneSurrogate.test(value)) throw malformed(path, 'string holds a lone surrogate')
  parts.push(JSON.stringify(value))
}

function write(value: unknown, parts: string[], path: string, depth: number): void {
  if (depth > JCS_MAX_DEPTH) throw malformed(path, `nesting deeper than ${JCS_MAX_DEPTH}`)
  switch (typeof value) {
    case 'string':
      writeString(value, parts, path)
      return
    case 'number':
      if (!Number.isFinite(value)) throw malformed(path, `number ${value} is not finite`)
      // ES Number::toString is exactly RFC 8785 §3.2.2.3; it already prints -0 as "0".
      parts.push(String(value))
      return
    case 'boolean':
      parts.push(value ? 'true' : 'false')
      return
    case 'bigint':
      throw malformed(path, 'bigint is not a JSON number; convert it to a string or a safe number')
    case 'undefined':
      throw malformed(path, 'undefined is not JSON')
    case 'object': {
      if (value === null) {
        parts.push('null')
        return
      }
      if (Array.isArray(value)) {
        parts.push('[')
        for (let i = 0; i < value.length; i++) {
          if (i > 0) parts.push(',')
          if (!(i in value)) throw malformed(`${path}[${i}]`, 'sparse array hole')
          write(value[i], parts, `${path}[${i}]`, depth + 1)
        }
        parts.push(']')
        return
      }
      const prototype = Object.getPrototypeOf(value)
      if (prototype !== Object.prototype && prototype !== null) {
        throw malformed(path, `${prototype?.constructor?.name ?? 'object'} is not a plain JSON object`)
      }
      // Array.prototype.sort compares strings by UTF-16 code units, as RFC 8785 §3.2.3 asks.
      const keys = Object.keys(value).sort()
      parts.push('{')
      for (let i = 0; i < keys.length; i++) {
        const key = keys[i]!
        if (i > 0) parts.push(',')
        writeString(key, parts, path)
        parts.push(':')
        write((value as Record<string, unknown>)[key], parts, `${path}.${key}`, depth + 1)
      }
      parts.push('}')
      return
    }
    default:
      throw malformed(path, `${typeof value} is not JSON`)
  }
}
