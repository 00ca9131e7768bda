/**
 * The key store contract: where the car's private keys live. Two backends implement it — an
 * encrypted keystore directory for development (`software-keystore.ts`) and PKCS#11 for HSMs and
 * secure elements (`pkcs11-keystore.ts`). Callers hold a `KeyRef` (an opaque string) and never the
 * private key.
 */
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { keccak_256 } from '@noble/hashes/sha3.js'
import type { Address, Hex } from 'viem'
import { BaseError } from '../errors.ts'

/** The curves Carchain uses: P-256 for identity (certificates, events, TLS); secp256k1 for the wallet. */
export type Curve = 'p256' | 'secp256k1'

/**
 * A reference to a key in a store: `keystore:<label>` (software) or an RFC 7512 PKCS#11 URI
 * (`pkcs11:token=…;object=<label>`). Stable across processes; safe to print and store.
 */
export type KeyRef = string

export type KeyInfo = {
  readonly ref: KeyRef
  readonly label: string
  readonly curve: Curve
  /** SEC1 uncompressed point: 0x04 ‖ X ‖ Y (65 bytes). */
  readonly publicKey: Uint8Array
}

/**
 * A key store. Every method may be called concurrently. Implementations must never return or log
 * private key material.
 */
export interface KeyStore {
  readonly kind: 'software' | 'pkcs11'
  /** Generates a key pair inside the store under a unique `label` (KEYSTORE_CORRUPT if taken). */
  generate(curve: Curve, label: string): Promise<KeyRef>
  /** The key's curve and public key (KEY_NOT_FOUND if unknown). */
  describe(ref: KeyRef): Promise<KeyInfo>
  /** The key's SEC1 uncompressed public key (65 bytes). */
  publicKey(ref: KeyRef): Promise<Uint8Array>
  /** The Ethereum address of a secp256k1 key (INVALID_ARGUMENT for a P-256 key). */
  ethereumAddress(ref: KeyRef): Promise<Address>
  /** The key whose label is `label`, if any. */
  find(label: string): Promise<KeyRef | undefined>
  /**
   * Signs a 32-byte digest the caller computed (SHA-256 for P-256, Keccak-256 for Ethereum): the
   * store does not hash. Returns the raw IEEE P1363 signature r ‖ s (64 bytes); for secp256k1
   * the signature is normalised to low S (EIP-2), so it is also a valid Ethereum signature body.
   */
  signDigest(ref: KeyRef, digest: Uint8Array): Promise<Uint8Array>
  /** Releases sessions and caches. */
  close(): Promise<void>
}

/** The order of secp256k1's group, for low-S normalisation (EIP-2). */
const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n

export function bytesToBigInt(bytes: Uint8Array): bigint {
  return bytes.length === 0 ? 0n : BigInt(`0x${Buffer.from(bytes).toString('hex')}`)
}

export function bigIntToBytes(value: bigint, length: number): Uint8Array {
  const hex = value.toString(16).padStart(length * 2, '0')
  if (hex.length > length * 2) throw new BaseError('INTERNAL', `integer does not fit in ${length} bytes`)
  return Uint8Array.from(Buffer.from(hex, 'hex'))
}

/** Returns r ‖ s with s replaced by n − s when s is in the upper half (EIP-2 low S). */
export function normaliseLowS(signature: Uint8Array): Uint8Array {
  const s = bytesToBigInt(signature.subarray(32, 64))
  if (s <= SECP256K1_N / 2n) return signature
  const out = Uint8Array.from(signature)
  out.set(bigIntToBytes(SECP256K1_N - s, 32), 32)
  return out
}

/** The Ethereum address of a secp256k1 public key: the last 20 bytes of keccak256(X ‖ Y). */
export function ethereumAddressOf(publicKey: Uint8Array): Address {
  const point = secp256k1.Point.fromBytes(publicKey).toBytes(false)
  const hash = keccak_256(point.subarray(1))
  return toChecksumAddress(Buffer.from(hash.subarray(12)).toString('hex'))
}

/** EIP-55 mixed-case checksum encoding of a 40-hex-digit address. */
export function toChecksumAddress(hex40: string): Address {
  const lower = hex40.toLowerCase()
  const hash = Buffer.from(keccak_256(new TextEncoder().encode(lower))).toString('hex')
  let out = '0x'
  for (let i = 0; i < 40; i++) {
    const c = lower[i] as string
    out += Number.parseInt(hash[i] as string, 16) >= 8 ? c.toUpperCase() : c
  }
  return out as Address
}

/**
 * Turns a low-S r ‖ s over `digest` into the 65-byte Ethereum signature r ‖ s ‖ v (v = 27 or 28)
 * by trying both recovery ids against the signer's known public key — a PKCS#11 token returns
 * no recovery id.
 */
export function toRecoverableSignature(
  signature: Uint8Array,
  digest: Uint8Array,
  publicKey: Uint8Array,
): Uint8Array {
  const lowS = normaliseLowS(signature)
  const parsed = secp256k1.Signature.fromBytes(lowS, 'compact')
  const expected = Buffer.from(secp256k1.Point.fromBytes(publicKey).toBytes(false))
  for (const recovery of [0, 1]) {
    try {
      const recovered = parsed.addRecoveryBit(recovery).recoverPublicKey(digest).toBytes(false)
      if (expected.equals(recovered)) {
        const out = new Uint8Array(65)
        out.set(lowS)
        out[64] = 27 + recovery
        return out
      }
    } catch {
      // this recovery id gives no valid point; try the other
    }
  }
  throw new BaseError('INTERNAL', 'signature does not recover to the signer’s public key')
}

/** Signs a 32-byte digest with a secp256k1 key and returns the 65-byte Ethereum signature. */
export async function signEthereumDigest(store: KeyStore, ref: KeyRef, digest: Uint8Array): Promise<Hex> {
  const info = await store.describe(ref)
  if (info.curve !== 'secp256k1')
    throw new BaseError('INVALID_ARGUMENT', 'an Ethereum signature needs a secp256k1 key', {
      details: { ref, curve: info.curve },
    })
  const signature = await store.signDigest(ref, digest)
  return `0x${Buffer.from(toRecoverableSignature(signature, digest, info.publicKey)).toString('hex')}`
}

/** The Ethereum address of a key described by `info` (shared by the backends). */
export function ethereumAddressOfKey(info: KeyInfo): Address {
  if (info.curve !== 'secp256k1')
    throw new BaseError('INVALID_ARGUMENT', 'only a secp256k1 key has an Ethereum address', {
      details: { ref: info.ref, curve: info.curve },
    })
  return ethereumAddressOf(info.publicKey)
}

/** Checks that a digest is 32 bytes (both curves here sign 256-bit digests). */
export function assertDigest(digest: Uint8Array): void {
  if (!(digest instanceof Uint8Array) || digest.length !== 32)
    throw new BaseError('INVALID_ARGUMENT', 'a digest must be 32 bytes', {
      details: { length: digest?.length },
    })
}

/** Labels are file names and PKCS#11 CKA_LABELs: keep them to a safe alphabet. */
export function assertLabel(label: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(label))
    throw new BaseError('INVALID_ARGUMENT', `key label "${label}" must be 1–64 of [A-Za-z0-9._-]`, {
      details: { label },
    })
}
