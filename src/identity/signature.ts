/**
 * Every signature check Carchain's identity layer makes, in one place so one test suite
 * (Wycheproof) covers them all:
 * - P-256/SHA-256 with a DER Ecdsa-Sig-Value — certificates and CRLs (RFC 5480 §2.2 / RFC 5758 §3.2);
 * - P-256/SHA-256 with raw r ‖ s (IEEE P1363) — event checkpoints, component challenges, TLS channel binding;
 * - secp256k1/SHA-256, DER or r ‖ s — generic;
 * - Ethereum signatures r ‖ s ‖ v over a 32-byte digest — low S only (EIP-2), checked by recovery.
 */
import { createPublicKey, type KeyObject, verify } from 'node:crypto'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { BaseError } from '../errors.ts'
import {
  bitString,
  children,
  decode,
  expectTag,
  oid,
  readInteger,
  sequence,
  Tag,
  unsignedInteger,
} from './der.ts'
import { bigIntToBytes, bytesToBigInt, type Curve, ethereumAddressOf } from './keystore.ts'

export const OID = {
  ecPublicKey: '1.2.840.10045.2.1',
  prime256v1: '1.2.840.10045.3.1.7',
  secp256k1: '1.3.132.0.10',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
} as const

const P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n
const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n

/** The SubjectPublicKeyInfo DER of an EC public key (RFC 5480 §2: named curve, uncompressed point). */
export function subjectPublicKeyInfo(curve: Curve, publicKey: Uint8Array): Uint8Array {
  return sequence(
    sequence(oid(OID.ecPublicKey), oid(curve === 'p256' ? OID.prime256v1 : OID.secp256k1)),
    bitString(publicKey),
  )
}

const keyCache = new Map<string, KeyObject>()

function publicKeyObject(curve: Curve, publicKey: Uint8Array): KeyObject | undefined {
  const id = `${curve}:${Buffer.from(publicKey).toString('hex')}`
  let key = keyCache.get(id)
  if (!key) {
    try {
      key = createPublicKey({
        key: Buffer.from(subjectPublicKeyInfo(curve, publicKey)),
        format: 'der',
        type: 'spki',
      })
    } catch {
      return undefined
    }
    if (keyCache.size > 1024) keyCache.clear()
    keyCache.set(id, key)
  }
  return key
}

/** r and s from a strict DER Ecdsa-Sig-Value (SEQUENCE { r INTEGER, s INTEGER }). */
export function parseDerSignature(signature: Uint8Array): { r: bigint; s: bigint } {
  const parts = children(expectTag(decode(signature), Tag.SEQUENCE, 'Ecdsa-Sig-Value'))
  if (parts.length !== 2) throw new BaseError('CERT_BAD_SIGNATURE', 'signature is not SEQUENCE { r, s }')
  return { r: readInteger(parts[0], 'r'), s: readInteger(parts[1], 's') }
}

/** Converts raw r ‖ s (64 bytes) to a DER Ecdsa-Sig-Value, as X.509 signatures need. */
export function rawToDerSignature(raw: Uint8Array): Uint8Array {
  return sequence(unsignedInteger(raw.subarray(0, 32)), unsignedInteger(raw.subarray(32, 64)))
}

/** Converts a DER Ecdsa-Sig-Value to raw r ‖ s. */
export function derToRawSignature(der: Uint8Array): Uint8Array {
  const { r, s } = parseDerSignature(der)
  if (r <= 0n || s <= 0n || r >= 1n << 256n || s >= 1n << 256n)
    throw new BaseError('CERT_BAD_SIGNATURE', 'signature integers out of range')
  return Uint8Array.from(Buffer.concat([bigIntToBytes(r, 32), bigIntToBytes(s, 32)]))
}

function verifyWith(
  curve: Curve,
  n: bigint,
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
  encoding: 'der' | 'p1363',
): boolean {
  const key = publicKeyObject(curve, publicKey)
  if (!key) return false
  let raw: Uint8Array
  try {
    raw = encoding === 'der' ? derToRawSignature(signature) : signature
  } catch {
    return false
  }
  if (raw.length !== 64) return false
  const r = bytesToBigInt(raw.subarray(0, 32))
  const s = bytesToBigInt(raw.subarray(32, 64))
  if (r === 0n || s === 0n || r >= n || s >= n) return false
  try {
    return verify('sha256', message, { key, dsaEncoding: 'ieee-p1363' }, raw)
  } catch {
    return false
  }
}

/** ECDSA P-256 with SHA-256 over `message`. Never throws: a malformed input is `false`. */
export function verifyP256(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
  encoding: 'der' | 'p1363',
): boolean {
  return verifyWith('p256', P256_N, publicKey, message, signature, encoding)
}

/** ECDSA secp256k1 with SHA-256 over `message` (either S half accepted). Never throws. */
export function verifySecp256k1(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
  encoding: 'der' | 'p1363',
): boolean {
  return verifyWith('secp256k1', SECP256K1_N, publicKey, message, signature, encoding)
}

/**
 * Recovers the Ethereum address that made `signature` (r ‖ s ‖ v, v ∈ {27, 28} or {0, 1}) over a
 * 32-byte digest; `undefined` when the signature is malformed, has high S (EIP-2) or recovers
 * to no point.
 */
export function recoverEthereumAddress(digest: Uint8Array, signature: Uint8Array): `0x${string}` | undefined {
  if (digest.length !== 32 || signature.length !== 65) return undefined
  const v = signature[64] as number
  const recovery = v >= 27 ? v - 27 : v
  if (recovery !== 0 && recovery !== 1) return undefined
  const r = bytesToBigInt(signature.subarray(0, 32))
  const s = bytesToBigInt(signature.subarray(32, 64))
  if (r === 0n || r >= SECP256K1_N || s === 0n || s > SECP256K1_N / 2n) return undefined
  try {
    const point = new secp256k1.Signature(r, s).addRecoveryBit(recovery).recoverPublicKey(digest)
    return ethereumAddressOf(point.toBytes(false))
  } catch {
    return undefined
  }
}

/** Whether `signature` is a valid low-S Ethereum signature by `address` over `digest`. */
export function verifyEthereumSignature(address: string, digest: Uint8Array, signature: Uint8Array): boolean {
  const recovered = recoverEthereumAddress(digest, signature)
  return recovered !== undefined && recovered.toLowerCase() === address.toLowerCase()
}
