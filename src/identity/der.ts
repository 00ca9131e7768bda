/**
 * A small strict DER (ITU-T X.690) reader and writer: just what X.509 certificates and CRLs
 * (RFC 5280) need. The reader rejects indefinite lengths, non-minimal lengths, high tag numbers
 * and trailing bytes, so every certificate has one encoding and one fingerprint.
 */
import { BaseError } from '../errors.ts'

export const Tag = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const

/** One decoded TLV. `bytes` is the whole element; `content` its value. */
export type DerNode = {
  readonly tag: number
  readonly bytes: Uint8Array
  readonly content: Uint8Array
}

function malformed(message: string, details: Record<string, unknown> = {}): BaseError {
  return new BaseError('CERT_MALFORMED', `DER: ${message}`, { details })
}

/** Reads the TLV at `offset`; returns it and the offset after it. */
export function readTlv(input: Uint8Array, offset = 0): { node: DerNode; next: number } {
  if (offset + 2 > input.length) throw malformed('truncated header', { offset })
  const tag = input[offset] as number
  if ((tag & 0x1f) === 0x1f) throw malformed('high tag numbers are not used', { offset })
  let length = input[offset + 1] as number
  let header = 2
  if (length & 0x80) {
    const count = length & 0x7f
    if (count === 0) throw malformed('indefinite length', { offset })
    if (count > 4) throw malformed('length too long', { offset })
    if (offset + 2 + count > input.length) throw malformed('truncated length', { offset })
    length = 0
    for (let i = 0; i < count; i++) length = length * 256 + (input[offset + 2 + i] as number)
    if (input[offset + 2] === 0 || length < 0x80) throw malformed('non-minimal length', { offset })
    header += count
  }
  const end = offset + header + length
  if (end > input.length) throw malformed('content runs past the end', { offset, length })
  return {
    node: { tag, bytes: input.subarray(offset, end), content: input.subarray(offset + header, end) },
    next: end,
  }
}

/** Decodes exactly one element filling `input`. */
export function decode(input: Uint8Array): DerNode {
  const { node, next } = readTlv(input, 0)
  if (next !== input.length) throw malformed('trailing bytes', { length: input.length, used: next })
  return node
}

/** The elements inside a constructed node. */
export function children(node: DerNode): DerNode[] {
  if (!(node.tag & 0x20)) throw malformed('expected a constructed element', { tag: node.tag })
  const out: DerNode[] = []
  let offset = 0
  while (offset < node.content.length) {
    const { node: child, next } = readTlv(node.content, offset)
    out.push(child)
    offset = next
  }
  return out
}

export function expectTag(node: DerNode | undefined, tag: number, what: string): DerNode {
  if (!node || node.tag !== tag)
    throw malformed(`${what}: expected tag 0x${tag.toString(16)}`, { tag: node?.tag })
  return node
}

export function readInteger(node: DerNode | undefined, what: string): bigint {
  const { content } = expectTag(node, Tag.INTEGER, what)
  if (content.length === 0) throw malformed(`${what}: empty integer`)
  if (
    content.length > 1 &&
    ((content[0] === 0 && !(content[1]! & 0x80)) || (content[0] === 0xff && content[1]! & 0x80))
  )
    throw malformed(`${what}: non-minimal integer`)
  let value = BigInt(`0x${Buffer.from(content).toString('hex')}`)
  if (content[0]! & 0x80) value -= 1n << BigInt(content.length * 8)
  return value
}

export function readOid(node: DerNode | undefined, what: string): string {
  const { content } = expectTag(node, Tag.OID, what)
  if (content.length === 0) throw malformed(`${what}: empty OID`)
  const arcs: bigint[] = []
  let value = 0n
  for (let i = 0; i < content.length; i++) {
    const byte = content[i] as number
    if (value === 0n && byte === 0x80) throw malformed(`${what}: non-minimal OID arc`)
    value = (value << 7n) | BigInt(byte & 0x7f)
    if (!(byte & 0x80)) {
      arcs.push(value)
      value = 0n
    } else if (i === content.length - 1) throw malformed(`${what}: truncated OID`)
  }
  const first = arcs[0] as bigint
  const head = first < 40n ? [0n, first] : first < 80n ? [1n, first - 40n] : [2n, first - 80n]
  return [...head, ...arcs.slice(1)].join('.')
}

export function readBitString(
  node: DerNode | undefined,
  what: string,
): { bytes: Uint8Array; unusedBits: number } {
  const { content } = expectTag(node, Tag.BIT_STRING, what)
  const unusedBits = content[0]
  if (unusedBits === undefined || unusedBits > 7 || (content.length === 1 && unusedBits !== 0))
    throw malformed(`${what}: bad BIT STRING`)
  const bytes = content.subarray(1)
  // DER (X.690 §11.2.1): unused bits are zero.
  if (unusedBits && (bytes[bytes.length - 1] as number) & ((1 << unusedBits) - 1))
    throw malformed(`${what}: unused bits are not zero`)
  return { bytes, unusedBits }
}

/** UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ), as RFC 5280 §4.1.2.5 requires. */
export function readTime(node: DerNode | undefined, what: string): Date {
  if (!node) throw malformed(`${what}: missing time`)
  const text = Buffer.from(node.content).toString('latin1')
  const utc = node.tag === Tag.UTC_TIME ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text) : null
  const generalized =
    node.tag === Tag.GENERALIZED_TIME ? /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text) : null
  const match = utc ?? generalized
  if (!match) throw malformed(`${what}: not a UTCTime/GeneralizedTime in Z form`, { text })
  const yy = Number(match[1])
  const year = utc ? (yy < 50 ? 2000 + yy : 1900 + yy) : yy
  const [, , mo, d, h, mi, s] = match.map(Number) as number[]
  const date = new Date(Date.UTC(year, mo! - 1, d, h, mi, s))
  if (date.getUTCMonth() !== mo! - 1 || date.getUTCDate() !== d || h! > 23 || mi! > 59 || s! > 59)
    throw malformed(`${what}: impossible date`, { text })
  return date
}

export function readString(node: DerNode | undefined, what: string): string {
  if (!node) throw malformed(`${what}: missing string`)
  if (node.tag === Tag.UTF8_STRING) return new TextDecoder('utf-8', { fatal: true }).decode(node.content)
  if (node.tag === Tag.PRINTABLE_STRING || node.tag === Tag.IA5_STRING) {
    const text = Buffer.from(node.content).toString('latin1')
    if (/[^\x20-\x7e]/.test(text)) throw malformed(`${what}: non-ASCII characters`)
    return text
  }
  throw malformed(`${what}: unsupported string type`, { tag: node.tag })
}

// ---- writer ----

function lengthBytes(length: number): Uint8Array {
  if (length < 0x80) return Uint8Array.of(length)
  const bytes: number[] = []
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff)
  return Uint8Array.of(0x80 | bytes.length, ...bytes)
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(Buffer.concat(parts))
}

export function tlv(tag: number, ...content: Uint8Array[]): Uint8Array {
  const body = concat(...content)
  return concat(Uint8Array.of(tag), lengthBytes(body.length), body)
}

export const sequence = (...items: Uint8Array[]) => tlv(Tag.SEQUENCE, ...items)
export const set = (...items: Uint8Array[]) => tlv(Tag.SET, ...items)
export const octetString = (bytes: Uint8Array) => tlv(Tag.OCTET_STRING, bytes)
export const booleanTrue = () => tlv(Tag.BOOLEAN, Uint8Array.of(0xff))
export const utf8String = (text: string) => tlv(Tag.UTF8_STRING, new TextEncoder().encode(text))
export const printableString = (text: string) => tlv(Tag.PRINTABLE_STRING, Buffer.from(text, 'latin1'))
export const ia5String = (text: string) => tlv(Tag.IA5_STRING, Buffer.from(text, 'latin1'))
/** [n] with content: constructed (EXPLICIT or a constructed IMPLICIT type) or primitive (IMPLICIT). */
export const contextTag = (n: number, constructed: boolean, ...content: Uint8Array[]) =>
  tlv(0x80 | (constructed ? 0x20 : 0) | n, ...content)

export function integer(value: bigint | number): Uint8Array {
  const v = BigInt(value)
  if (v < 0n) throw new BaseError('INTERNAL', 'negative integers are not written')
  let hex = v.toString(16)
  if (hex.length % 2) hex = `0${hex}`
  let bytes = Buffer.from(hex, 'hex')
  if ((bytes[0] as number) & 0x80) bytes = Buffer.concat([Buffer.of(0), bytes])
  return tlv(Tag.INTEGER, bytes)
}

/** An unsigned big-endian byte string as a DER INTEGER (adds 0x00 if the top bit is set, trims zeros). */
export function unsignedInteger(bytes: Uint8Array): Uint8Array {
  let start = 0
  while (start < bytes.length - 1 && bytes[start] === 0) start++
  const trimmed = bytes.subarray(start)
  return tlv(Tag.INTEGER, (trimmed[0] as number) & 0x80 ? concat(Uint8Array.of(0), trimmed) : trimmed)
}

export function oid(dotted: string): Uint8Array {
  const arcs = dotted.split('.').map((a) => BigInt(a))
  const [a, b, ...rest] = arcs as [bigint, bigint, ...bigint[]]
  const out: number[] = []
  for (const arc of [a * 40n + b, ...rest]) {
    const group: number[] = [Number(arc & 0x7fn)]
    for (let v = arc >> 7n; v > 0n; v >>= 7n) group.unshift(Number(v & 0x7fn) | 0x80)
    out.push(...group)
  }
  return tlv(Tag.OID, Uint8Array.from(out))
}

export function bitString(bytes: Uint8Array, unusedBits = 0): Uint8Array {
  return tlv(Tag.BIT_STRING, Uint8Array.of(unusedBits), bytes)
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; whole seconds, Z. */
export function time(date: Date): Uint8Array {
  const iso = date
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replace(/[-:T]/g, '')
  const year = date.getUTCFullYear()
  if (year >= 1950 && year < 2050) return tlv(Tag.UTC_TIME, Buffer.from(iso.slice(2), 'latin1'))
  return tlv(Tag.GENERALIZED_TIME, Buffer.from(iso, 'latin1'))
}
