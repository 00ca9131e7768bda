/** `0x`-hex ↔ bytes without a dependency, strict about the form the node API uses. */

const hexPattern = /^0x(?:[0-9a-fA-F]{2})*$/

/** Bytes of a `0x`-hex string; undefined when it is not one. */
export function fromHex(hex: string): Uint8Array | undefined {
  if (!hexPattern.test(hex)) return undefined
  const bytes = new Uint8Array((hex.length - 2) / 2)
  for (let i = 0; i < bytes.length; i++) bytes[i] = Number.parseInt(hex.slice(2 + 2 * i, 4 + 2 * i), 16)
  return bytes
}

/** Lowercase `0x`-hex of bytes. */
export function toHex(bytes: Uint8Array): `0x${string}` {
  let out = '0x'
  for (const byte of bytes) out += byte.toString(16).padStart(2, '0')
  return out as `0x${string}`
}

/** `0x1234…abcd`: enough of an address or hash to tell it apart in a table. */
export function shortHex(hex: string | null | undefined, keep = 4): string {
  if (!hex) return '—'
  return hex.length <= 2 + 2 * keep + 1 ? hex : `${hex.slice(0, 2 + keep)}…${hex.slice(-keep)}`
}
