/**
 * `ledger.gas_per_event`: the gas of one `LedgerAnchor.anchor` that moves a log from size N to
 * N + 1,000,000, divided by the 1,000,000 events it covers. The log state is an in-memory
 * RFC 9162 tree (`buildMerkleTree`) over random 32-byte leaf hashes — the contract sees only
 * sizes, roots and the consistency proof, so no event needs ingesting. N is deliberately not a
 * power of two: its proof is as long as a steady-state anchor's (~2·log₂ n hashes).
 */
import { randomBytes } from 'node:crypto'
import type { Address, Hex } from 'viem'
import { ledgerAnchorAbi } from '../src/chain/generated/index.ts'
import { BaseError } from '../src/errors.ts'
import { createLogId } from '../src/ledger/anchor.ts'
import { toHex } from '../src/ledger/bytes.ts'
import { buildMerkleTree } from '../src/ledger/merkle.ts'
import type { TestChain } from '../test/chain.ts'
import { type BenchOptions, type BenchResult, countResult } from './harness.ts'

export const anchorNames = [{ name: 'ledger.gas_per_event', unit: 'gas/event' }] as const

export const EVENTS_PER_ANCHOR = 1_000_000

export async function benchAnchorGas(chain: TestChain, options: BenchOptions): Promise<BenchResult[]> {
  const first = 1_234_567
  const second = first + EVENTS_PER_ANCHOR
  options.progress(`anchor gas: building an in-memory tree of ${second.toLocaleString('en-US')} leaves`)
  const all = randomBytes(second * 32)
  const leafHashes = Array.from(
    { length: second },
    (_, i) => new Uint8Array(all.buffer, all.byteOffset + i * 32, 32),
  )
  const tree = buildMerkleTree({ leafHashes })
  const proof = tree.consistencyProof(first, second).map(toHex) as Hex[]
  const { clients, deployment } = chain
  const address = deployment.contracts.LedgerAnchor.address as Address
  const logId = createLogId(clients.account.address)
  const send = async (treeSize: number, root: Uint8Array, path: Hex[]) => {
    const hash = await clients.walletClient.writeContract({
      address,
      abi: ledgerAnchorAbi,
      functionName: 'anchor',
      args: [logId, BigInt(treeSize), toHex(root) as Hex, path],
    })
    const receipt = await clients.publicClient.waitForTransactionReceipt({ hash })
    if (receipt.status !== 'success') throw new BaseError('CHAIN_TX_FAILED', `anchor to ${treeSize} reverted`)
    return Number(receipt.gasUsed)
  }
  // The first anchor of a log needs no proof; the measured one extends it by a million events.
  const firstGas = await send(first, tree.rootAt(first), [])
  const gas = await send(second, tree.rootHash, proof)
  return [
    countResult(
      'ledger.gas_per_event',
      'gas/event',
      gas / EVENTS_PER_ANCHOR,
      { op: '<=', value: 0.1, source: 'issue 4' },
      {
        what: `one LedgerAnchor.anchor from size ${first} to ${second} (1,000,000 events), receipt gas / 1,000,000`,
        anchorGas: gas,
        proofHashes: proof.length,
        firstAnchorGas: firstGas,
      },
    ),
  ]
}
