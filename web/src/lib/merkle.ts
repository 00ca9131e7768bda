/**
 * RFC 9162 §2.1 hashing and inclusion-proof verification for the browser (the node's
 * src/ledger/merkle.ts uses node:crypto, which a browser lacks). Pure and synchronous over
 * @noble/hashes' SHA-256, so it also runs under Node for the cross-check test.
 */
import { sha256 } from '@noble/hashes/sha2.js'

/** RFC 9162 §2.1.1 leaf hash: SHA-256(0x00 ‖ input). */
export function hashLeaf(input: Uint8Array): Uint8Array {
  const prefixed = new Uint8Array(input.length + 1)
  prefixed.set(input, 1)
  return sha256(prefixed)
}

/** RFC 9162 §2.1.1 interior node: SHA-256(0x01 ‖ left ‖ right). */
export function hashChildren(left: Uint8Array, right: Uint8Array): Uint8Array {
  const buffer = new Uint8Array(1 + left.length + right.length)
  buffer[0] = 0x01
  buffer.set(left, 1)
  buffer.set(right, 1 + left.length)
  return sha256(buffer)
}

/** InclusionProof: what RFC 9162 §2.1.3.2 takes, less the root it is compared with. */
export type InclusionProof = {
  leafIndex: number
  treeSize: number
  leafHash: Uint8Array
  auditPath: readonly Uint8Array[]
}

/**
 * The root the audit path leads to (RFC 9162 §2.1.3.2 steps 1–4), or undefined when the path
 * cannot belong to (leafIndex, treeSize): wrong length, wrong hash sizes, index out of range.
 */
export function rootFromInclusionProof(proof: InclusionProof): Uint8Array | undefined {
  const { leafIndex, treeSize, leafHash, auditPath } = proof
  if (!Number.isSafeInteger(leafIndex) || !Number.isSafeInteger(treeSize)) return undefined
  if (leafIndex < 0 || leafIndex >= treeSize) return undefined
  if (leafHash.length !== 32 || auditPath.some((h) => h.length !== 32)) return undefined
  // fn walks the leaf's position up the tree, sn the last leaf's; they meet at the root.
  let fn = leafIndex
  let sn = treeSize - 1
  let root = leafHash
  for (const sibling of auditPath) {
    if (sn === 0) return undefined
    if (fn % 2 === 1 || fn === sn) {
      root = hashChildren(sibling, root)
      // A right-edge node with no right sibling is promoted: skip the levels it climbs alone.
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2)
        sn = Math.floor(sn / 2)
      }
    } else {
      root = hashChildren(root, sibling)
    }
    fn = Math.floor(fn / 2)
    sn = Math.floor(sn / 2)
  }
  return sn === 0 ? root : undefined
}

/** Whether two byte strings are equal. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
