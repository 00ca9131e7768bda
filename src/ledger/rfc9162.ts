/**
 * The RFC 9162 §2.1 Merkle tree (Certificate Transparency v2) as pure code, the same in Node and in
 * the browser (no node:* import): leaf hash = SHA-256(0x00 ‖ input), node hash =
 * SHA-256(0x01 ‖ left ‖ right), MTH of the empty tree = SHA-256(""), the plans of inclusion proofs
 * (§2.1.3) and consistency proofs (§2.1.4), and their verification.
 *
 * What hashes is made by `merkleHashing(sha256)`, one implementation over any SHA-256: the node
 * passes node:crypto's (src/ledger/merkle.ts, ~5× faster on 65-byte inputs, which ingest and the
 * tile readers feel); `portableMerkle` runs on @noble/hashes for the dashboard (web/src) and for any
 * client without node:crypto. Both give the same bytes; the tests cross-check them.
 *
 * Proofs are assembled from *perfect subtrees*: the node at (level, index) covers leaves
 * [index·2^level, (index+1)·2^level) and its hash never changes once the log holds those leaves.
 * Every node a proof needs — MTH(D[a:b]) for a range the RFC's recursion visits — is a right fold
 * of at most log₂ n perfect subtrees (`rangeNodes`).
 */
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js'
import { BaseError } from '../errors.ts'
import { equalBytes } from './bytes.ts'

/** Bytes of a SHA-256 hash: every leaf hash, node hash and root. */
export const HASH_BYTES = 32

/** A SHA-256 implementation: the digest of `data`, a fresh array the caller may keep. */
export type Sha256 = (data: Uint8Array) => Uint8Array

/** A perfect subtree: `level` 0 is a leaf; it covers leaves [index·2^level, (index+1)·2^level). */
export type NodeRef = { level: number; index: number }

/** The largest power of two strictly smaller than `n` (n ≥ 2): RFC 9162's split point k. */
export function splitPoint(n: number): number {
  let k = 1
  while (k * 2 < n) k *= 2
  return k
}

function largestPowerOfTwoAtMost(n: number): { power: number; level: number } {
  let power = 1
  let level = 0
  while (power * 2 <= n) {
    power *= 2
    level++
  }
  return { power, level }
}

/**
 * The perfect subtrees whose right fold is MTH(D[start:end]), largest (leftmost) first.
 * Valid for every range RFC 9162's recursion produces (start aligned to the range's size).
 */
export function rangeNodes(start: number, end: number): NodeRef[] {
  const nodes: NodeRef[] = []
  let position = start
  while (position < end) {
    const { power, level } = largestPowerOfTwoAtMost(end - position)
    nodes.push({ level, index: position / power })
    position += power
  }
  return nodes
}

/** A proof to assemble: each element is the fold of these perfect subtrees. */
export type ProofPlan = NodeRef[][]

/** Throws TREE_SIZE_INVALID unless `value` is a non-negative safe integer. */
export function checkSize(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new BaseError('TREE_SIZE_INVALID', `${name} must be a non-negative safe integer, got ${value}`, {
      details: { [name]: value },
    })
  }
}

/** Which subtrees make up the inclusion proof PATH(index, D[0:treeSize]) (RFC 9162 §2.1.3.1). */
export function inclusionProofPlan(leafIndex: number, treeSize: number): ProofPlan {
  checkSize('leafIndex', leafIndex)
  checkSize('treeSize', treeSize)
  if (leafIndex >= treeSize) {
    throw new BaseError('TREE_SIZE_INVALID', `leaf ${leafIndex} is not in a tree of size ${treeSize}`, {
      details: { leafIndex, treeSize },
    })
  }
  // The recursion appends each sibling after the sub-path: collect top-down, reverse at the end.
  const topDown: ProofPlan = []
  let start = 0
  let end = treeSize
  while (end - start > 1) {
    const k = splitPoint(end - start)
    if (leafIndex < start + k) {
      topDown.push(rangeNodes(start + k, end))
      end = start + k
    } else {
      topDown.push(rangeNodes(start, start + k))
      start += k
    }
  }
  return topDown.reverse()
}

/** Which subtrees make up the consistency proof PROOF(first, D[0:second]) (RFC 9162 §2.1.4.1). */
export function consistencyProofPlan(first: number, second: number): ProofPlan {
  checkSize('first', first)
  checkSize('second', second)
  if (first > second) {
    throw new BaseError('TREE_SIZE_INVALID', `first (${first}) is larger than second (${second})`, {
      details: { first, second },
    })
  }
  if (first === 0 || first === second) return []
  // SUBPROOF(m, D[start:end], b), unrolled: siblings collected top-down, reversed at the end.
  const topDown: ProofPlan = []
  let m = first
  let start = 0
  let end = second
  let complete = true
  for (;;) {
    const n = end - start
    if (m === n) {
      if (!complete) topDown.push(rangeNodes(start, end))
      break
    }
    const k = splitPoint(n)
    if (m <= k) {
      topDown.push(rangeNodes(start + k, end))
      end = start + k
    } else {
      topDown.push(rangeNodes(start, start + k))
      start += k
      m -= k
      complete = false
    }
  }
  return topDown.reverse()
}

/** VerifyInclusionParameters: what RFC 9162 §2.1.3.2 takes. */
export type VerifyInclusionParameters = {
  leafIndex: number
  treeSize: number
  leafHash: Uint8Array
  proof: readonly Uint8Array[]
  rootHash: Uint8Array
}

/** VerifyConsistencyParameters: what RFC 9162 §2.1.4.2 takes. */
export type VerifyConsistencyParameters = {
  first: number
  second: number
  firstHash: Uint8Array
  secondHash: Uint8Array
  proof: readonly Uint8Array[]
}

/** The RFC 9162 functions that hash, over one SHA-256 implementation (`merkleHashing`). */
export type MerkleHashing = {
  readonly sha256: Sha256
  /** MTH({}) = SHA-256 of the empty string (RFC 9162 §2.1.1). */
  readonly emptyRoot: Uint8Array
  /** RFC 9162 §2.1.1 leaf hash: SHA-256(0x00 ‖ input). */
  hashLeaf(input: Uint8Array): Uint8Array
  /** RFC 9162 §2.1.1 interior node hash: SHA-256(0x01 ‖ left ‖ right). */
  hashChildren(left: Uint8Array, right: Uint8Array): Uint8Array
  /** MTH of a range from its perfect subtrees (as `rangeNodes` lists them): H(P1, H(P2, … Pk)). */
  foldNodes(hashes: readonly Uint8Array[]): Uint8Array
  /**
   * The root an inclusion proof leads to (RFC 9162 §2.1.3.2 without the final comparison), or
   * undefined when the proof cannot be a proof for (leafIndex, treeSize).
   */
  rootFromInclusionProof(parameters: Omit<VerifyInclusionParameters, 'rootHash'>): Uint8Array | undefined
  /** Whether `proof` shows `leafHash` at `leafIndex` in the tree of `treeSize` with `rootHash`. */
  verifyInclusion(parameters: VerifyInclusionParameters): boolean
  /**
   * Whether `proof` shows the tree (second, secondHash) extends (first, firstHash)
   * (RFC 9162 §2.1.4.2). Equal sizes need byte-equal roots and an empty proof; a proof from the
   * empty tree (first = 0) is refused, as it proves nothing (§2.1.4).
   */
  verifyConsistency(parameters: VerifyConsistencyParameters): boolean
}

function allHashes(...groups: (readonly Uint8Array[])[]): boolean {
  for (const group of groups) for (const h of group) if (h.length !== HASH_BYTES) return false
  return true
}

const isOdd = (n: number) => n % 2 === 1
const half = (n: number) => Math.floor(n / 2)

function isPowerOfTwo(n: number): boolean {
  if (n < 1) return false
  while (n % 2 === 0) n /= 2
  return n === 1
}

/** The RFC 9162 hashing and proof verification over `sha256`. */
export function merkleHashing(sha256: Sha256): MerkleHashing {
  const nodeScratch = new Uint8Array(1 + 2 * HASH_BYTES)
  nodeScratch[0] = 0x01
  const hashChildren = (left: Uint8Array, right: Uint8Array): Uint8Array => {
    nodeScratch.set(left, 1)
    nodeScratch.set(right, 1 + HASH_BYTES)
    return sha256(nodeScratch)
  }
  const emptyRoot = sha256(new Uint8Array(0))

  const rootFromInclusionProof: MerkleHashing['rootFromInclusionProof'] = (parameters) => {
    const { leafIndex, treeSize, leafHash, proof } = parameters
    if (!Number.isSafeInteger(leafIndex) || !Number.isSafeInteger(treeSize)) return undefined
    if (leafIndex < 0 || leafIndex >= treeSize) return undefined
    if (!allHashes([leafHash], proof)) return undefined
    // fn walks the leaf's position up the tree, sn the last leaf's; they meet at the root.
    let fn = leafIndex
    let sn = treeSize - 1
    let r = leafHash
    for (const p of proof) {
      if (sn === 0) return undefined
      if (isOdd(fn) || fn === sn) {
        r = hashChildren(p, r)
        // A right-edge node with no right sibling is promoted: skip the levels it climbs alone.
        while (!isOdd(fn) && fn !== 0) {
          fn = half(fn)
          sn = half(sn)
        }
      } else {
        r = hashChildren(r, p)
      }
      fn = half(fn)
      sn = half(sn)
    }
    return sn === 0 ? r : undefined
  }

  return {
    sha256,
    emptyRoot,
    hashLeaf(input) {
      const buffer = new Uint8Array(input.length + 1)
      buffer.set(input, 1)
      return sha256(buffer)
    },
    hashChildren,
    foldNodes(hashes) {
      if (hashes.length === 0) return emptyRoot
      let result = hashes[hashes.length - 1]!
      for (let i = hashes.length - 2; i >= 0; i--) result = hashChildren(hashes[i]!, result)
      return result
    },
    rootFromInclusionProof,
    verifyInclusion(parameters) {
      if (parameters.rootHash.length !== HASH_BYTES) return false
      const root = rootFromInclusionProof(parameters)
      return root !== undefined && equalBytes(root, parameters.rootHash)
    },
    verifyConsistency({ first, second, firstHash, secondHash, proof }) {
      if (!Number.isSafeInteger(first) || !Number.isSafeInteger(second)) return false
      // Nothing is consistent with the empty tree: a proof from size 0 proves nothing (§2.1.4).
      if (first <= 0 || first > second) return false
      if (first === second) return proof.length === 0 && equalBytes(firstHash, secondHash)
      if (proof.length === 0 || !allHashes([firstHash, secondHash], proof)) return false
      // §2.1.4.2 step 2: when first is a power of two, its root is itself the first path node.
      const path = isPowerOfTwo(first) ? [firstHash, ...proof] : proof
      let fn = first - 1
      let sn = second - 1
      while (isOdd(fn)) {
        fn = half(fn)
        sn = half(sn)
      }
      let fr = path[0]!
      let sr = path[0]!
      for (let i = 1; i < path.length; i++) {
        const c = path[i]!
        if (sn === 0) return false
        if (isOdd(fn) || fn === sn) {
          fr = hashChildren(c, fr)
          sr = hashChildren(c, sr)
          while (!isOdd(fn) && fn !== 0) {
            fn = half(fn)
            sn = half(sn)
          }
        } else {
          sr = hashChildren(sr, c)
        }
        fn = half(fn)
        sn = half(sn)
      }
      return sn === 0 && equalBytes(fr, firstHash) && equalBytes(sr, secondHash)
    },
  }
}

/** RFC 9162 over @noble/hashes' SHA-256: for the browser and any client without node:crypto. */
export const portableMerkle: MerkleHashing = merkleHashing((data) => nobleSha256(data))
