/**
 * `ledger.merkle_speedup_vs_openzeppelin`: building a tree of 100,000 leaves and every leaf's
 * inclusion proof, @openzeppelin/merkle-tree (`SimpleMerkleTree`, its defaults: Keccak-256, the
 * leaves given as 32-byte hashes, unsorted) against Carchain's in-memory RFC 9162 tree
 * (`buildMerkleTree`, SHA-256). Both get the same 32-byte leaf hashes; each round times one then
 * the other, and the ratio is taken per round.
 */
import { randomBytes } from 'node:crypto'
import { SimpleMerkleTree } from '@openzeppelin/merkle-tree'
import { buildMerkleTree } from '../src/ledger/merkle.ts'
import { type BenchOptions, type BenchResult, repeat, resultOf, timeMs } from './harness.ts'

export const merkleNames = [{ name: 'ledger.merkle_speedup_vs_openzeppelin', unit: '×' }] as const

function leafHashes(count: number): Uint8Array[] {
  const all = randomBytes(count * 32)
  return Array.from({ length: count }, (_, i) => new Uint8Array(all.buffer, all.byteOffset + i * 32, 32))
}

/** Carchain: the tree, then every proof; returns a checksum so nothing is optimised away. */
function carchain(leaves: readonly Uint8Array[]): number {
  const tree = buildMerkleTree({ leafHashes: leaves })
  let total = 0
  for (let i = 0; i < leaves.length; i++) total += tree.inclusionProof(i).length
  return total
}

function openZeppelin(leaves: readonly Uint8Array[]): number {
  const tree = SimpleMerkleTree.of(leaves as Uint8Array[], { sortLeaves: false })
  let total = 0
  for (let i = 0; i < leaves.length; i++) total += tree.getProof(i).length
  return total
}

export async function benchMerkle(options: BenchOptions): Promise<BenchResult[]> {
  const count = options.quick ? 10_000 : 100_000
  const leaves = leafHashes(count)
  const small = leafHashes(2_000)
  const carchainMs: number[] = []
  const openZeppelinMs: number[] = []
  const ratios = await repeat(options.quick ? 2 : 3, 1, async (round) => {
    const input = round < 0 ? small : leaves
    const ours = await timeMs(() => carchain(input))
    const theirs = await timeMs(() => openZeppelin(input))
    if (round >= 0) {
      carchainMs.push(ours)
      openZeppelinMs.push(theirs)
      options.progress(
        `merkle round ${round + 1}: carchain ${ours.toFixed(0)} ms, openzeppelin ${theirs.toFixed(0)} ms`,
      )
    }
    return theirs / ours
  })
  return [
    resultOf(
      'ledger.merkle_speedup_vs_openzeppelin',
      '×',
      ratios,
      { op: '>=', value: 10, source: 'issue 4' },
      {
        leaves: count,
        carchainMs: carchainMs.map(Math.round),
        openZeppelinMs: openZeppelinMs.map(Math.round),
        what: 'build the tree + an inclusion proof for every leaf; OZ SimpleMerkleTree (keccak) vs RFC 9162 buildMerkleTree (sha256)',
      },
    ),
  ]
}
