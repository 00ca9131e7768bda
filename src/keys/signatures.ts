/**
 * Ethereum (secp256k1, 65-byte r ‖ s ‖ v) signature checks for the car's hot path.
 *
 * Recovering a public key in pure JS costs ~4 verifications, and Node's OpenSSL cannot verify a
 * Keccak-256 (EIP-712) digest. So the car recovers each signer once, keeps the public key with a
 * precomputed multiplication table (noble-curves `precompute`), and afterwards checks a known
 * signer with one plain ECDSA verification: u1·G + u2·Q with both points tabled. Only low-S
 * signatures are accepted (EIP-2), as wallets and `cast` produce them.
 */

import { secp256k1 } from '@noble/curves/secp256k1.js'
import type { Address } from 'viem'
import { ethereumAddressOf } from '../identity/keystore.ts'
import { type FixedTable, fixedTable, verifyRecoverable } from '../identity/secp256k1-fixed.ts'
import { setBounded } from './bounded-map.ts'

const { Point } = secp256k1
const Fn = Point.Fn
const N = Fn.ORDER
const HALF_N = N >> 1n

type ParsedSignature = { r: bigint; s: bigint; recovery: number }

function toBigInt(bytes: Uint8Array, start: number): bigint {
  return BigInt(`0x${Buffer.from(bytes.buffer, bytes.byteOffset + start, 32).toString('hex')}`)
}

/** r, s and the recovery id of a 65-byte signature; undefined when malformed or high-S. */
export function parseEthereumSignature(signature: Uint8Array): ParsedSignature | undefined {
  if (signature.length !== 65) return undefined
  const v = signature[64] as number
  const recovery = v >= 27 ? v - 27 : v
  if (recovery !== 0 && recovery !== 1) return undefined
  const r = toBigInt(signature, 0)
  const s = toBigInt(signature, 32)
  if (r === 0n || r >= N || s === 0n || s > HALF_N) return undefined
  return { r, s, recovery }
}

/** The public key point that made `signature` over `digest`, or undefined. */
export function recoverPoint(
  digest: Uint8Array,
  signature: Uint8Array,
): InstanceType<typeof Point> | undefined {
  const parsed = parseEthereumSignature(signature)
  if (!parsed || digest.length !== 32) return undefined
  try {
    return new secp256k1.Signature(parsed.r, parsed.s)
      .addRecoveryBit(parsed.recovery)
      .recoverPublicKey(digest)
  } catch {
    return undefined
  }
}

/** The lowercase Ethereum address that made `signature` over `digest`, or undefined. */
export function recoverAddress(digest: Uint8Array, signature: Uint8Array): Address | undefined {
  const point = recoverPoint(digest, signature)
  return point && (ethereumAddressOf(point.toBytes(false)).toLowerCase() as Address)
}

/** ECDSA verification of a 32-byte digest against a (tabled) public key point. */
/** Verifies with the signer's fixed-base tables: the fastest secp256k1 check measured here. */
function verifyWithTable(table: FixedTable, digest: Uint8Array, signature: Uint8Array): boolean {
  const parsed = parseEthereumSignature(signature)
  if (!parsed || digest.length !== 32) return false
  return verifyRecoverable(table, toBigInt(digest, 0), parsed.r, parsed.s, parsed.recovery as 0 | 1)
}

export type SignerKeyCacheOptions = {
  /** Signers kept (oldest dropped first); default 64 (a table is ~0.5 MB at 8 bits). */
  maxEntries?: number
  /** Window of the per-signer fixed-base table (more: faster verify, more memory); default 8. */
  windowBits?: number
}

/**
 * Signer public keys recovered once and kept with a precomputed table. `verify` answers whether
 * `signature` over `digest` was made by `address`.
 */
export class SignerKeyCache {
  readonly #tables = new Map<string, FixedTable>()
  readonly #maxEntries: number
  readonly #windowBits: number

  constructor(options: SignerKeyCacheOptions = {}) {
    this.#maxEntries = options.maxEntries ?? 64
    this.#windowBits = options.windowBits ?? 8
  }

  /** Whether `address` (any case) signed `digest` with `signature`. Never throws. */
  verify(address: string, digest: Uint8Array, signature: Uint8Array): boolean {
    const key = address.toLowerCase()
    const table = this.#tables.get(key)
    if (table) return verifyWithTable(table, digest, signature)
    const recovered = recoverPoint(digest, signature)
    if (!recovered) return false
    if (ethereumAddressOf(recovered.toBytes(false)).toLowerCase() !== key) return false
    this.remember(key, recovered)
    return true
  }

  /** Whether the key of `address` is cached (its next check takes the fast path). */
  has(address: string): boolean {
    return this.#tables.has(address.toLowerCase())
  }

  private remember(key: string, point: InstanceType<typeof Point>): void {
    const { x, y } = point.toAffine()
    setBounded(this.#tables, key, fixedTable(x, y, this.#windowBits), this.#maxEntries)
  }
}
