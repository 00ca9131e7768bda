/**
 * ISO/IEC 7816-4 framing as the car's wallet applet and the terminals use it (docs/nfc.md):
 * short APDUs (Lc, Le ≤ 256), command chaining (CLA bit 0x10) for longer commands, `61 xx` +
 * GET RESPONSE for longer answers, status words, and the one-byte-tag TLV of the PAY command.
 * Pure functions over bytes; every parser takes hostile input.
 */
import { BaseError } from '../errors.ts'

/** The wallet applet's AID (a proprietary RID `F0`, "CARCHAIN", version 01). */
export const WALLET_AID = Uint8Array.from(Buffer.from('F0434152434841494E01', 'hex'))

/** Status words (ISO/IEC 7816-4 §5.6). */
export const SW = {
  OK: 0x9000,
  /** `61 xx`: xx more bytes (00: 256 or more) wait for GET RESPONSE. */
  MORE: 0x6100,
  WRONG_LENGTH: 0x6700,
  /** Last command of a chain expected. */
  CHAIN_EXPECTED: 0x6883,
  /** Security status not satisfied: the wallet's policy refuses. */
  POLICY_REFUSED: 0x6982,
  /** Reference data not usable: the payment nonce is unknown, used or expired. */
  NONCE_UNUSABLE: 0x6984,
  /** Conditions of use not satisfied: no applet selected, nothing to GET RESPONSE. */
  CONDITIONS: 0x6985,
  /** Incorrect data field: malformed or unsigned request, a tariff or meter reading that does not add up. */
  BAD_DATA: 0x6a80,
  /** Application not found. */
  NOT_FOUND: 0x6a82,
  INCORRECT_P1P2: 0x6a86,
  /** Referenced data (a GET DATA tag) not found. */
  DATA_NOT_FOUND: 0x6a88,
  INS_NOT_SUPPORTED: 0x6d00,
  CLA_NOT_SUPPORTED: 0x6e00,
  /** No precise diagnosis: the car could not decide (e.g. its chain was unreachable); try again. */
  UNKNOWN: 0x6f00,
} as const

/** A parsed command APDU (short form). */
export type CommandApdu = {
  readonly cla: number
  readonly ins: number
  readonly p1: number
  readonly p2: number
  readonly data: Uint8Array
  /** Ne: the most answer bytes expected (Le 00 = 256); undefined when the APDU has no Le. */
  readonly ne: number | undefined
}

/** Parses a short command APDU (cases 1–4); `undefined` for bytes that are not one. */
export function parseCommand(bytes: Uint8Array): CommandApdu | undefined {
  if (bytes.length < 4) return undefined
  const [cla, ins, p1, p2] = bytes as unknown as [number, number, number, number]
  const header = { cla, ins, p1, p2 }
  if (bytes.length === 4) return { ...header, data: new Uint8Array(0), ne: undefined }
  const b5 = bytes[4] as number
  if (bytes.length === 5) return { ...header, data: new Uint8Array(0), ne: b5 === 0 ? 256 : b5 }
  // An extended APDU starts its length with 00 and is longer than 5 bytes: not supported here.
  if (b5 === 0) return undefined
  if (bytes.length === 5 + b5) return { ...header, data: bytes.slice(5, 5 + b5), ne: undefined }
  if (bytes.length === 6 + b5) {
    const le = bytes[5 + b5] as number
    return { ...header, data: bytes.slice(5, 5 + b5), ne: le === 0 ? 256 : le }
  }
  return undefined
}

/** Encodes a short command APDU; `ne` 1–256 adds Le. */
export function encodeCommand(
  cla: number,
  ins: number,
  p1: number,
  p2: number,
  data: Uint8Array = new Uint8Array(0),
  ne?: number,
): Uint8Array {
  if (data.length > 255)
    throw new BaseError('INVALID_ARGUMENT', 'a short APDU carries at most 255 data bytes; chain it')
  const parts = [cla, ins, p1, p2]
  if (data.length > 0) parts.push(data.length, ...data)
  if (ne !== undefined) parts.push(ne === 256 ? 0 : ne)
  return Uint8Array.from(parts)
}

/**
 * A long command as a chain of short ones: every block but the last has CLA bit 0x10 set
 * (ISO/IEC 7816-4 §5.3.3); the last carries `ne`.
 */
export function chainCommand(
  cla: number,
  ins: number,
  p1: number,
  p2: number,
  data: Uint8Array,
  ne?: number,
): Uint8Array[] {
  const blocks: Uint8Array[] = []
  for (let offset = 0; offset + 255 < data.length; offset += 255)
    blocks.push(encodeCommand(cla | 0x10, ins, p1, p2, data.subarray(offset, offset + 255)))
  const rest = data.subarray(Math.floor(Math.max(data.length - 1, 0) / 255) * 255)
  blocks.push(encodeCommand(cla, ins, p1, p2, rest, ne))
  return blocks
}

/** A response APDU: data then SW1 SW2. */
export function response(sw: number, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(data.length + 2)
  out.set(data)
  out[data.length] = sw >> 8
  out[data.length + 1] = sw & 0xff
  return out
}

/** Splits a response APDU into its data and status word (PROTOCOL error for fewer than 2 bytes). */
export function splitResponse(bytes: Uint8Array): { data: Uint8Array; sw: number } {
  if (bytes.length < 2)
    throw new BaseError('NFC_PROTOCOL', 'the card answered fewer than two bytes', {
      details: { length: bytes.length },
    })
  const n = bytes.length
  return { data: bytes.subarray(0, n - 2), sw: ((bytes[n - 2] as number) << 8) | (bytes[n - 1] as number) }
}

/** `9000`, `6A82`, … as four upper-case hex digits. */
export function swHex(sw: number): string {
  return sw.toString(16).toUpperCase().padStart(4, '0')
}

// ---------------------------------------------------------------- TLV (PAY request, FCI)

/** Encodes one TLV: a one- or two-byte tag, a BER length (1, 2 or 3 bytes), the value. */
export function tlv(tag: number, value: Uint8Array): Uint8Array {
  const tagBytes = tag > 0xff ? [tag >> 8, tag & 0xff] : [tag]
  const n = value.length
  const length = n < 0x80 ? [n] : n <= 0xff ? [0x81, n] : [0x82, n >> 8, n & 0xff]
  return Uint8Array.from([...tagBytes, ...length, ...value])
}

/**
 * Reads a flat list of one-byte-tag TLVs (the PAY request): each tag at most once, lengths
 * within the data, no trailing bytes. Throws BaseError NFC_BAD_DATA otherwise.
 */
export function readTlvs(bytes: Uint8Array): Map<number, Uint8Array> {
  const out = new Map<number, Uint8Array>()
  let i = 0
  const bad = (message: string): never => {
    throw new BaseError('NFC_BAD_DATA', message, { details: { offset: i } })
  }
  while (i < bytes.length) {
    const tag = bytes[i] as number
    if (i + 1 >= bytes.length) bad('a TLV has no length')
    let length = bytes[i + 1] as number
    let start = i + 2
    if (length === 0x81) {
      if (start >= bytes.length) bad('a TLV length is cut short')
      length = bytes[start] as number
      start += 1
      if (length < 0x80) bad('a TLV length is not in its shortest form')
    } else if (length > 0x80) bad('a TLV length is longer than 255')
    else if (length === 0x80) bad('an indefinite TLV length')
    if (start + length > bytes.length) bad('a TLV runs past the data')
    if (out.has(tag)) bad(`tag ${tag.toString(16)} appears twice`)
    out.set(tag, bytes.slice(start, start + length))
    i = start + length
  }
  return out
}
