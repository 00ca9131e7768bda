import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { haveVectors, vectorFiles, vectorLeaves, vectorsDir } from '../../test/rfc9162-vectors.ts'
import { requirePart } from '../../test/skip.ts'
import {
  buildMerkleTree,
  EMPTY_ROOT,
  hashChildren,
  hashLeaf,
  inclusionProofPlan,
  resolvePlan,
  verifyConsistency,
  verifyInclusion,
} from './merkle.ts'

const b64 = (value: string) => new Uint8Array(Buffer.from(value, 'base64'))
const hex = (value: Uint8Array) => Buffer.from(value).toString('hex')

/** MTH straight from the RFC's recursive definition, to check the fast tree against. */
function referenceRoot(hashes: Uint8Array[]): Uint8Array {
  if (hashes.length === 0) return EMPTY_ROOT
  if (hashes.length === 1) return hashes[0]!
  let k = 1
  while (k * 2 < hashes.length) k *= 2
  return hashChildren(referenceRoot(hashes.slice(0, k)), referenceRoot(hashes.slice(k)))
}

describe('RFC 9162 vectors', () => {
  it('builds the README roots', (t) => {
    if (!requirePart(t, haveVectors, `RFC 9162 vectors missing at ${vectorsDir}`)) return
    assert.equal(
      hex(buildMerkleTree({ leafInputs: [] }).rootHash),
      'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    )
    assert.equal(
      hex(buildMerkleTree({ leafInputs: vectorLeaves }).rootHash),
      '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
    )
  })

  it('inclusion: every valid case verifies and every broken one fails; the tree makes the valid proofs', (t) => {
    if (!requirePart(t, haveVectors, `RFC 9162 vectors missing at ${vectorsDir}`)) return
    const tree = buildMerkleTree({ leafInputs: vectorLeaves })
    const files = vectorFiles(join(vectorsDir, 'inclusion'))
    assert.ok(files.length > 50)
    for (const file of files) {
      const c = JSON.parse(readFileSync(file, 'utf8'))
      const proof = (c.proof ?? []).map(b64)
      const ok = verifyInclusion({
        leafIndex: c.leafIdx,
        treeSize: c.treeSize,
        leafHash: b64(c.leafHash),
        proof,
        rootHash: b64(c.root),
      })
      assert.equal(ok, !c.wantErr, `${file}: ${c.desc}`)
      if (!c.wantErr && c.treeSize <= tree.size && hex(tree.rootAt(c.treeSize)) === hex(b64(c.root))) {
        assert.deepEqual(tree.inclusionProof(c.leafIdx, c.treeSize).map(hex), proof.map(hex), file)
      }
    }
  })

  it('consistency: every valid case verifies and every broken one fails; the tree makes the valid proofs', (t) => {
    if (!requirePart(t, haveVectors, `RFC 9162 vectors missing at ${vectorsDir}`)) return
    const tree = buildMerkleTree({ leafInputs: vectorLeaves })
    const files = vectorFiles(join(vectorsDir, 'consistency'))
    assert.ok(files.length > 50)
    let generated = 0
    for (const file of files) {
      const c = JSON.parse(readFileSync(file, 'utf8'))
      const proof = (c.proof ?? []).map(b64)
      const ok = verifyConsistency({
        first: c.size1,
        second: c.size2,
        firstHash: b64(c.root1),
        secondHash: b64(c.root2),
        proof,
      })
      assert.equal(ok, !c.wantErr, `${file}: ${c.desc}`)
      if (!c.wantErr && c.size2 <= tree.size && hex(tree.rootAt(c.size2)) === hex(b64(c.root2))) {
        assert.equal(hex(tree.rootAt(c.size1)), hex(b64(c.root1)))
        assert.deepEqual(tree.consistencyProof(c.size1, c.size2).map(hex), proof.map(hex), file)
        generated++
      }
    }
    assert.ok(generated >= 5)
  })
})

const leafHashesArb = (max: number) =>
  fc
    .array(fc.uint8Array({ minLength: 0, maxLength: 8 }), { minLength: 1, maxLength: max })
    // Distinct leaves (index prefixed), so moving a proof to another index must fail.
    .map((inputs) => inputs.map((input, i) => hashLeaf(new Uint8Array([i, ...input]))))

function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const copy = Uint8Array.from(bytes)
  copy[Math.floor(bit / 8) % copy.length]! ^= 1 << (bit % 8)
  return copy
}

describe('in-memory tree (properties)', () => {
  it('roots match the recursive definition for every prefix', () => {
    fc.assert(
      fc.property(leafHashesArb(40), (hashes) => {
        const tree = buildMerkleTree({ leafHashes: hashes })
        for (let n = 0; n <= hashes.length; n++)
          assert.equal(hex(tree.rootAt(n)), hex(referenceRoot(hashes.slice(0, n))))
        assert.equal(hex(tree.rootHash), hex(referenceRoot(hashes)))
        // The full-size fast path gives the same proofs as the generic plan.
        for (let i = 0; i < hashes.length; i++) {
          assert.deepEqual(
            tree.inclusionProof(i).map(hex),
            resolvePlan(inclusionProofPlan(i, hashes.length), tree.node).map(hex),
          )
        }
      }),
      { numRuns: 60 },
    )
  })

  it('every inclusion proof verifies; any flipped bit breaks it', () => {
    fc.assert(
      fc.property(leafHashesArb(70), fc.nat(), fc.nat(), fc.nat(), (hashes, a, b, bit) => {
        const tree = buildMerkleTree({ leafHashes: hashes })
        const treeSize = 1 + (a % hashes.length)
        const leafIndex = b % treeSize
        const proof = tree.inclusionProof(leafIndex, treeSize)
        const base = {
          leafIndex,
          treeSize,
          leafHash: hashes[leafIndex]!,
          proof,
          rootHash: tree.rootAt(treeSize),
        }
        assert.ok(verifyInclusion(base))
        assert.ok(!verifyInclusion({ ...base, leafHash: flipBit(base.leafHash, bit) }))
        assert.ok(!verifyInclusion({ ...base, rootHash: flipBit(base.rootHash, bit) }))
        if (proof.length > 0) {
          const at = bit % proof.length
          const broken = proof.map((p, i) => (i === at ? flipBit(p, bit >> 3) : p))
          assert.ok(!verifyInclusion({ ...base, proof: broken }))
          assert.ok(!verifyInclusion({ ...base, proof: proof.slice(1) }))
        }
        assert.ok(!verifyInclusion({ ...base, proof: [...proof, hashes[0]!] }))
        if (treeSize > 1) assert.ok(!verifyInclusion({ ...base, leafIndex: (leafIndex + 1) % treeSize }))
      }),
      { numRuns: 200 },
    )
  })

  it('every consistency proof verifies; any flipped bit breaks it', () => {
    fc.assert(
      fc.property(leafHashesArb(70), fc.nat(), fc.nat(), fc.nat(), (hashes, a, b, bit) => {
        const tree = buildMerkleTree({ leafHashes: hashes })
        const second = 1 + (a % hashes.length)
        const first = 1 + (b % second)
        const proof = tree.consistencyProof(first, second)
        const base = { first, second, firstHash: tree.rootAt(first), secondHash: tree.rootAt(second), proof }
        assert.ok(verifyConsistency(base))
        if (first === second) return
        assert.ok(!verifyConsistency({ ...base, firstHash: flipBit(base.firstHash, bit) }))
        assert.ok(!verifyConsistency({ ...base, secondHash: flipBit(base.secondHash, bit) }))
        const at = bit % proof.length
        assert.ok(
          !verifyConsistency({ ...base, proof: proof.map((p, i) => (i === at ? flipBit(p, bit >> 3) : p)) }),
        )
        assert.ok(!verifyConsistency({ ...base, proof: proof.slice(0, -1) }))
      }),
      { numRuns: 200 },
    )
  })

  it('builds 100,000 leaves with all proofs quickly', () => {
    const hashes = Array.from({ length: 100_000 }, (_, i) =>
      hashLeaf(new Uint8Array([i & 255, i >> 8, i >> 16])),
    )
    const started = performance.now()
    const tree = buildMerkleTree({ leafHashes: hashes })
    let elements = 0
    for (let i = 0; i < tree.size; i++) elements += tree.inclusionProof(i).length
    const elapsedMs = performance.now() - started
    assert.ok(elements > 1_600_000)
    assert.ok(
      verifyInclusion({
        leafIndex: 77_777,
        treeSize: tree.size,
        leafHash: hashes[77_777]!,
        proof: tree.inclusionProof(77_777),
        rootHash: tree.rootHash,
      }),
    )
    console.log(`# 100k-leaf tree + all inclusion proofs: ${elapsedMs.toFixed(0)} ms`)
  })
})
