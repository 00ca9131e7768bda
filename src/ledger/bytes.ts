/** Byte helpers shared by the ledger: `0x`-hex (the API's form) and bare hex (the envelope's). */
import { BaseError } from '../errors.ts'

/** A `0x`-prefixed hex string. */
export type Hex = `0x${string}`

/** `0x` + lowercase hex. */
export function toHex(bytes: Uint8Array): Hex {
  return `0x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')}`
}

/** Lowercase hex without a prefix (the envelope's `prev` and `commit`). */
export function toBareHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
}

const hexPattern = /^(?:[0-9a-fA-F]{2})*$/

/**
 * Bytes of a hex string (`0x` optional); `length` checks the byte count. Throws INVALID_ARGUMENT
 * (or `code`) naming `field`.
 */
export function fromHex(
  value: unknown,
  field: string,
  length?: number,
  code: 'INVALID_ARGUMENT' | 'EVENT_MALFORMED' = 'INVALID_ARGUMENT',
): Uint8Array {
  if (typeof value !== 'string')
    throw new BaseError(code, `${field} must be a hex string`, { details: { field } })
  const digits = value.startsWith('0x') ? value.slice(2) : value
  if (!hexPattern.test(digits)) {
    throw new BaseError(code, `${field} is not hex`, { details: { field, value: value.slice(0, 140) } })
  }
  if (length !== undefined && digits.length !== length * 2) {
    throw new BaseError(code, `${field} must be ${length} bytes`, {
      details: { field, length: digits.length / 2, expected: length },
    })
  }
  return new Uint8Array(Buffer.from(digits, 'hex'))
}

/** Standard base64 (RFC 4648 §4), as the log API's `leafInput`. */
export function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')
}

const base64Pattern = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/** Bytes of strict standard base64; throws INVALID_ARGUMENT naming `field`. */
export function fromBase64(value: unknown, field: string): Uint8Array {
  if (typeof value !== 'string' || !base64Pattern.test(value)) {
    throw new BaseError('INVALID_ARGUMENT', `${field} must be standard base64`, { details: { field } })
  }
  return new Uint8Array(Buffer.from(value, 'base64'))
}

/** Constant-shape byte equality. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  let diff = 0
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!
  return diff === 0
}
