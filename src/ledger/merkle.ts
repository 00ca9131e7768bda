/**
 * The Merkle tree of RFC 9162 §2.1 (Certificate Transparency v2), exactly:
 * leaf hash = SHA-256(0x00 ‖ input), node hash = SHA-256(0x01 ‖ left ‖ right), MTH of the empty
 * tree = SHA-256(""), inclusion proofs (§2.1.3) and consistency proofs (§2.1.4).
 *
 * Proofs are assembled from *perfect subtrees*: the node at (level, index) covers leaves
 * [index·2^level, (index+1)·2^level) and its hash never changes once the log holds those leaves.
 * Every node a proof needs — MTH(D[a:b]) for a range the RFC's recursion visits — is a right fold
 * of at most log₂ n perfect subtrees (`rangeNodes`). The in-memory tree and the database store
 * share this planning code; only where perfect-node hashes come from differs.
 */
import { hash } from 'node:crypto'
import { BaseError } from '../errors.ts'

/** Bytes of a SHA-256 hash: every leaf hash, node hash and root. */
export const HASH_BYTES = 32

/** MTH({}) = SHA-256 of the empty string (RFC 9162 §2.1.1). */
export const EMPTY_ROOT: Uint8Array = sha256(new Uint8Array(0))

/** SHA-256 (node:crypto's one-shot `hash`, measured faster here than createHash or @noble/hashes). */
export function sha256(data: Uint8Array): Uint8Array {
  // The digest as a binary (latin1) string, then its bytes: ~3x faster than asking for a Buffer (which
  // allocates a fresh backing store per call). A plain Uint8Array view: Buffer's `slice` shares
  // memory, which surprises callers.
  const digest = Buffer.from(hash('sha256', data, 'binary'), 'binary')
  return new Uint8Array(digest.buffer, digest.byteOffset, digest.byteLength)
}

/** RFC 9162 §2.1.1 leaf hash: SHA-256(0x00 ‖ input). */
export function hashLeaf(input: Uint8Array): Uint8Array {
  const buffer = new Uint8Array(input.length + 1)
  buffer.set(input, 1)
  return sha256(buffer)
}

const nodeScratch = new Uint8Array(1 + 2 * HASH_BYTES)
nodeScratch[0] = 0x01

/** RFC 9162 §2.1.1 interior node hash: SHA-256(0x01 ‖ left ‖ right). */
export function hashChildren(left: Uint8Array, right: Uint8Array): Uint8Array {
  nodeScratch.set(left, 1)
  nodeScratch.set(right, 1 + HASH_BYTES)
  return sha256(nodeScratch)
}

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

/** MTH of a range from its perfect subtrees (as `rangeNodes` lists them): H(P1, H(P2, … Pk)). */
export function foldNodes(hashes: readonly Uint8Array[]): Uint8Array {
  if (hashes.length === 0) return EMPTY_ROOT
  let result = hashes[hashes.length - 1]!
  for (let i = hashes.length - 2; i >= 0; i--) result = hashChildren(hashes[i]!, result)
  return result
}

/** A proof to assemble: each element is the fold of these perfect subtrees. */
export type ProofPlan = NodeRef[][]

function checkSize(name: string, value: number): void {
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

/** Resolves a plan with a function that returns any perfect subtree's hash. */
export function resolvePlan(plan: ProofPlan, node: (ref: NodeRef) => Uint8Array): Uint8Array[] {
  return plan.map((refs) => foldNodes(refs.map(node)))
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

function allHashes(...groups: (readonly Uint8Array[])[]): boolean {
  for (const group of groups) for (const h of group) if (h.length !== HASH_BYTES) return false
  return true
}

const isOdd = (n: number) => n % 2 === 1
const half = (n: number) => Math.floor(n / 2)

/** VerifyInclusionParameters: what RFC 9162 §2.1.3.2 takes. */
export type VerifyInclusionParameters = {
  leafIndex: number
  treeSize: number
  leafHash: Uint8Array
  proof: readonly Uint8Array[]
  rootHash: Uint8Array
}

/**
 * The root an inclusion proof leads to (RFC 9162 §2.1.3.2 without the final comparison), or
 * undefined when the proof cannot be a proof for (leafIndex, treeSize).
 */
export function rootFromInclusionProof(
  parameters: Omit<VerifyInclusionParameters, 'rootHash'>,
): Uint8Array | undefined {
  const { leafIndex, treeSize, leafHash, proof } = parameters
  if (!Number.isSafeInteger(leafIndex) || !Number.isSafeInteger(treeSize)) return undefined
  if (leafIndex < 0 || leafIndex >= treeSize) return undefined
  if (!allHashes([leafHash], proof)) return undefined
  let fn = leafIndex
  let sn = treeSize - 1
  let r = leafHash
  for (const p of proof) {
    if (sn === 0) return undefined
    if (isOdd(fn) || fn === sn) {
      r = hashChildren(p, r)
      if (!isOdd(fn)) {
        while (!isOdd(fn) && fn !== 0) {
          fn = half(fn)
          sn = half(sn)
        }
      }
    } else {
      r = hashChildren(r, p)
    }
    fn = half(fn)
    sn = half(sn)
  }
  return sn === 0 ? r : undefined
}

/** Whether `proof` shows `leafHash` at `leafIndex` in the tree of `treeSize` with `rootHash`. */
export function verifyInclusion(parameters: VerifyInclusionParameters): boolean {
  if (parameters.rootHash.length !== HASH_BYTES) return false
  const root = rootFromInclusionProof(parameters)
  return root !== undefined && equalBytes(root, parameters.rootHash)
}

/** VerifyConsistencyParameters: what RFC 9162 §2.1.4.2 takes. */
export type VerifyConsistencyParameters = {
  first: number
  second: number
  firstHash: Uint8Array
  secondHash: Uint8Array
  proof: readonly Uint8Array[]
}

/**
 * Whether `proof` shows the tree (second, secondHash) extends (first, firstHash)
 * (RFC 9162 §2.1.4.2). Equal sizes need byte-equal roots and an empty proof; a proof from the
 * empty tree (first = 0) is refused, as it proves nothing (§2.1.4).
 */
export function verifyConsistency(parameters: VerifyConsistencyParameters): boolean {
  const { first, second, firstHash, secondHash, proof } = parameters
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
      if (!isOdd(fn)) {
        while (!isOdd(fn) && fn !== 0) {
          fn = half(fn)
          sn = half(sn)
        }
      }
    } else {
      sr = hashChildren(sr, c)
    }
    fn = half(fn)
    sn = half(sn)
  }
  return sn === 0 && equalBytes(fr, firstHash) && equalBytes(sr, secondHash)
}

function isPowerOfTwo(n: number): boolean {
  if (n < 1) return false
  while (n % 2 === 0) n /= 2
  return n === 1
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
