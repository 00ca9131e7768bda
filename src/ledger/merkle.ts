/**
 * The Merkle tree of RFC 9162 §2.1 (Certificate Transparency v2) in the node: the pure RFC code
 * (src/ledger/rfc9162.ts, which the dashboard runs too) over node:crypto's SHA-256, and the
 * in-memory tree. The in-memory tree and the database store share rfc9162.ts's planning code; only
 * where perfect-node hashes come from differs.
 */
import { hash } from 'node:crypto'
import { BaseError } from '../errors.ts'
import {
  checkSize,
  consistencyProofPlan,
  HASH_BYTES,
  inclusionProofPlan,
  type MerkleHashing,
  merkleHashing,
  type NodeRef,
  type ProofPlan,
  rangeNodes,
} from './rfc9162.ts'

export {
  consistencyProofPlan,
  HASH_BYTES,
  inclusionProofPlan,
  type NodeRef,
  type ProofPlan,
  rangeNodes,
  splitPoint,
  type VerifyConsistencyParameters,
  type VerifyInclusionParameters,
} from './rfc9162.ts'

/** SHA-256 (node:crypto's one-shot `hash`, measured ~5× faster here than @noble/hashes). */
export function sha256(data: Uint8Array): Uint8Array {
  // The digest as a binary (latin1) string, then its bytes: ~3x faster than asking for a Buffer (which
  // allocates a fresh backing store per call). A plain Uint8Array view: Buffer's `slice` shares
  // memory, which surprises callers.
  const digest = Buffer.from(hash('sha256', data, 'binary'), 'binary')
  return new Uint8Array(digest.buffer, digest.byteOffset, digest.byteLength)
}

/** RFC 9162 over node:crypto: what the node's code hashes and verifies with. */
export const nodeMerkle: MerkleHashing = merkleHashing(sha256)

export const {
  hashLeaf,
  hashChildren,
  foldNodes,
  rootFromInclusionProof,
  verifyInclusion,
  verifyConsistency,
} = nodeMerkle

/** MTH({}) = SHA-256 of the empty string (RFC 9162 §2.1.1). */
export const EMPTY_ROOT: Uint8Array = nodeMerkle.emptyRoot

/** Resolves a plan with a function that returns any perfect subtree's hash. */
export function resolvePlan(plan: ProofPlan, node: (ref: NodeRef) => Uint8Array): Uint8Array[] {
  return plan.map((refs) => foldNodes(refs.map(node)))
}

/**
 * An in-memory RFC 9162 tree over a fixed list of leaves: every perfect subtree is hashed once
 * at build time (n − 1 node hashes, in flat buffers), then any root, inclusion or consistency
 * proof — for this size or any smaller one — is assembled in O(log n).
 */
export type MerkleTree = {
  readonly size: number
  /** MTH of all leaves. */
  readonly rootHash: Uint8Array
  /** Leaf hash at `index`. */
  leafHash(index: number): Uint8Array
  /** Hash of the perfect subtree (level, index). */
  node(ref: NodeRef): Uint8Array
  /** MTH(D[0:treeSize]) for any treeSize ≤ size. */
  rootAt(treeSize: number): Uint8Array
  /** PATH(leafIndex, D[0:treeSize]); treeSize defaults to size. */
  inclusionProof(leafIndex: number, treeSize?: number): Uint8Array[]
  /** PROOF(first, D[0:second]); second defaults to size. */
  consistencyProof(first: number, second?: number): Uint8Array[]
}

/** BuildMerkleTreeParameters: leaf hashes (32 bytes each) or leaf inputs (hashed here). */
export type BuildMerkleTreeParameters =
  | { leafHashes: readonly Uint8Array[] }
  | { leafInputs: readonly Uint8Array[] }

/** Builds the whole tree at once. */
export function buildMerkleTree(parameters: BuildMerkleTreeParameters): MerkleTree {
  const hashes = 'leafHashes' in parameters ? parameters.leafHashes : parameters.leafInputs.map(hashLeaf)
  const size = hashes.length
  // levels[l] holds the floor(size / 2^l) perfect subtrees of level l, back to back.
  const levels: Uint8Array[] = []
  const leaves = new Uint8Array(size * HASH_BYTES)
  for (let i = 0; i < size; i++) {
    const h = hashes[i]!
    if (h.length !== HASH_BYTES) {
      throw new BaseError('INVALID_ARGUMENT', `leaf hash ${i} has ${h.length} bytes, not ${HASH_BYTES}`, {
        details: { index: i, length: h.length },
      })
    }
    leaves.set(h, i * HASH_BYTES)
  }
  levels.push(leaves)
  const scratch = new Uint8Array(1 + 2 * HASH_BYTES)
  scratch[0] = 0x01
  for (let count = Math.floor(size / 2), below = leaves; count > 0; count = Math.floor(count / 2)) {
    const level = new Uint8Array(count * HASH_BYTES)
    for (let i = 0; i < count; i++) {
      scratch.set(below.subarray(2 * i * HASH_BYTES, (2 * i + 2) * HASH_BYTES), 1)
      level.set(sha256(scratch), i * HASH_BYTES)
    }
    levels.push(level)
    below = level
  }

  // edges[l]: the hash of the partial node at the right edge of level l (leaves
  // [floor(size/2^l)·2^l, size)), when there is one: RFC 9162's tree with an odd last node
  // promoted. With it, proofs at the tree's own size need no hashing at all.
  const edges: (Uint8Array | undefined)[] = [undefined]
  for (let level = 1, width = 2; width < size * 2; level++, width *= 2) {
    const index = Math.floor(size / width)
    const remainder = size - index * width
    if (remainder === 0) {
      edges.push(undefined)
      continue
    }
    const half = width / 2
    // The left child is perfect when the partial node holds more than half its width.
    if (remainder > half) {
      edges.push(
        hashChildren(
          levels[level - 1]!.subarray(2 * index * HASH_BYTES, (2 * index + 1) * HASH_BYTES),
          edges[level - 1]!,
        ),
      )
    } else if (remainder === half) {
      edges.push(levels[level - 1]!.subarray(2 * index * HASH_BYTES, (2 * index + 1) * HASH_BYTES))
    } else {
      edges.push(edges[level - 1])
    }
  }
  const levelNode = (level: number, index: number): Uint8Array => {
    const perfect = levels[level]
    if (perfect !== undefined && (index + 1) * HASH_BYTES <= perfect.length) {
      return perfect.subarray(index * HASH_BYTES, (index + 1) * HASH_BYTES)
    }
    return edges[level]!
  }
  const fullSizeInclusionProof = (leafIndex: number): Uint8Array[] => {
    const proof: Uint8Array[] = []
    for (
      let level = 0, width = 1, index = leafIndex;
      width < size;
      level++, width *= 2, index = Math.floor(index / 2)
    ) {
      const sibling = index % 2 === 1 ? index - 1 : index + 1
      if (sibling * width < size) proof.push(levelNode(level, sibling))
    }
    return proof
  }

  const node = (ref: NodeRef): Uint8Array => {
    const level = levels[ref.level]
    const offset = ref.index * HASH_BYTES
    if (level === undefined || offset + HASH_BYTES > level.length) {
      throw new BaseError(
        'TREE_SIZE_INVALID',
        `no perfect subtree (${ref.level}, ${ref.index}) in a tree of ${size}`,
        {
          details: { level: ref.level, index: ref.index, size },
        },
      )
    }
    return level.subarray(offset, offset + HASH_BYTES)
  }
  const checkAtMostSize = (treeSize: number) => {
    checkSize('treeSize', treeSize)
    if (treeSize > size) {
      throw new BaseError('TREE_SIZE_INVALID', `tree size ${treeSize} is beyond the tree (${size})`, {
        details: { treeSize, size },
      })
    }
  }
  const rootAt = (treeSize: number) => {
    checkAtMostSize(treeSize)
    return foldNodes(rangeNodes(0, treeSize).map(node))
  }
  return {
    size,
    rootHash: size === 0 ? EMPTY_ROOT : levelNode(edges.length - 1, 0),
    leafHash: (index) => node({ level: 0, index }),
    node,
    rootAt,
    inclusionProof(leafIndex, treeSize = size) {
      checkAtMostSize(treeSize)
      if (treeSize === size && Number.isSafeInteger(leafIndex) && leafIndex >= 0 && leafIndex < size) {
        return fullSizeInclusionProof(leafIndex)
      }
      return resolvePlan(inclusionProofPlan(leafIndex, treeSize), node)
    },
    consistencyProof(first, second = size) {
      checkAtMostSize(second)
      return resolvePlan(consistencyProofPlan(first, second), node)
    },
  }
}
