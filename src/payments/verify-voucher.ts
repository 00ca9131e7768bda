/**
 * The charger's fast path for vouchers: the same answer as recovering the signer and comparing
 * it with the payer (what ChargingChannels does on chain: 65 bytes, low s, v ∈ {27, 28}), at a
 * fraction of the cost when one payer signs many vouchers.
 *
 * - The EIP-712 digest is `keccak256(0x1901 ‖ domainSeparator ‖ keccak256(typeHash ‖ fields))`,
 *   with the domain separator and type hash computed once (two Keccak calls per voucher).
 * - The first voucher of a payer is checked by public-key recovery; the key is then cached as
 *   fixed-base window tables (identity/secp256k1-fixed.ts, ~0.5 MB per payer), and later vouchers are
 *   checked by computing R = u1·G + u2·Q and comparing its x with r and its y parity with v —
 *   exactly the point ecrecover would use.
 */
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { keccak_256 } from '@noble/hashes/sha3.js'
import type { Address, Hex } from 'viem'
import { ethereumAddressOf } from '../identity/keystore.ts'
import {
  type FixedTable,
  fixedTable,
  type RecoverableCheck,
  verifyRecoverableBatch,
} from '../identity/secp256k1-fixed.ts'
import { keccak256 } from '../keys/keccak.ts'
import type { PaymentsDomain, Voucher } from './typed-data.ts'

const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n
const HALF_N = N >> 1n

function word(value: bigint): Uint8Array {
  const out = new Uint8Array(32)
  let v = value
  for (let i = 31; i >= 0 && v > 0n; i--) {
    out[i] = Number(v & 0xffn)
    v >>= 8n
  }
  return out
}

function hexBytes(hex: string): Uint8Array {
  return Uint8Array.from(Buffer.from(hex.replace(/^0x/, ''), 'hex'))
}

function toBig(bytes: Uint8Array): bigint {
  return BigInt(`0x${Buffer.from(bytes).toString('hex')}`)
}

const text = (s: string) => new TextEncoder().encode(s)

export type VoucherVerifier = {
  /** The EIP-712 digest of a voucher (equal to ChargingChannels.voucherDigest). */
  digest(voucher: Voucher): Uint8Array
  /** Whether `signature` is `payer`'s valid, low-s signature of `voucher`. Never throws. */
  verify(voucher: Voucher, signature: Hex, payer: Address): boolean
  /**
   * `verify` for many vouchers at once (e.g. from many sessions), sharing the modular inversions;
   * one verdict per item, in order.
   */
  verifyMany(items: readonly { voucher: Voucher; signature: Hex; payer: Address }[]): boolean[]
}

/** A verifier for one domain (chain + ChargingChannels deployment); caches up to `maxPayers` keys. */
export function createVoucherVerifier(
  domain: PaymentsDomain,
  options: { maxPayers?: number } = {},
): VoucherVerifier {
  const maxPayers = options.maxPayers ?? 256
  const domainTypeHash = keccak_256(
    text('EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)'),
  )
  const separator = keccak_256(
    Uint8Array.from([
      ...domainTypeHash,
      ...keccak_256(text('Carchain')),
      ...keccak_256(text('1')),
      ...word(BigInt(domain.chainId)),
      ...word(toBig(hexBytes(domain.verifyingContract))),
    ]),
  )
  const voucherTypeHash = keccak_256(
    text('Voucher(bytes32 channelId,uint256 cumulativeAmount,uint64 meterWh)'),
  )
  const struct = new Uint8Array(128)
  struct.set(voucherTypeHash, 0)
  const outer = new Uint8Array(66)
  outer[0] = 0x19
  outer[1] = 0x01
  outer.set(separator, 2)
  const keys = new Map<string, FixedTable>()

  // Per voucher: the project's unrolled Keccak-256 (src/keys/keccak.ts, ~2.5× @noble/hashes on one block).
  const digest = (voucher: Voucher): Uint8Array => {
    struct.set(hexBytes(voucher.channelId), 32)
    struct.set(word(voucher.cumulativeAmount), 64)
    struct.set(word(voucher.meterWh), 96)
    outer.set(keccak256(struct), 34)
    return keccak256(outer)
  }

  /** Parses and checks what needs no curve arithmetic; a check for the batch, or a verdict. */
  const prepare = (voucher: Voucher, signature: Hex, payer: Address): RecoverableCheck | boolean => {
    try {
      const sig = hexBytes(signature)
      if (sig.length !== 65) return false
      const v = sig[64] as number
      if (v !== 27 && v !== 28) return false
      const r = toBig(sig.subarray(0, 32))
      const s = toBig(sig.subarray(32, 64))
      if (r === 0n || r >= N || s === 0n || s > HALF_N) return false
      const hash = digest(voucher)
      const id = payer.toLowerCase()
      const key = keys.get(id)
      if (key) return { key, z: toBig(hash), r, s, recovery: (v - 27) as 0 | 1 }
      // First voucher of this payer: recover once, then keep the key's tables.
      const recovered = new secp256k1.Signature(r, s).addRecoveryBit(v - 27).recoverPublicKey(hash)
      if (ethereumAddressOf(recovered.toBytes(false)).toLowerCase() !== id) return false
      if (keys.size >= maxPayers) keys.clear()
      const affine = recovered.toAffine()
      keys.set(id, fixedTable(affine.x, affine.y))
      return true
    } catch {
      return false
    }
  }

  return {
    digest,
    verify(voucher, signature, payer) {
      const prepared = prepare(voucher, signature, payer)
      return typeof prepared === 'boolean' ? prepared : (verifyRecoverableBatch([prepared])[0] as boolean)
    },
    verifyMany(items) {
      const prepared = items.map((item) => prepare(item.voucher, item.signature, item.payer))
      const checks = prepared.filter((p): p is RecoverableCheck => typeof p !== 'boolean')
      const results = verifyRecoverableBatch(checks)
      let next = 0
      return prepared.map((p) => (typeof p === 'boolean' ? p : (results[next++] as boolean)))
    },
  }
}
