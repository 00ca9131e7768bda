/**
 * The node's signed acknowledgement of a vehicle batch: the only thing that lets a car drop
 * events from its local log (docs/ledger.md "Acknowledgements").
 *
 * An ack is EIP-712 typed data signed by the node's operator account, over the batch's newest
 * event:
 *
 * ```
 * domain {name: "Carchain ledger", version: "1"}
 * LedgerAck(address vehicle,bytes32 leafHash,uint64 leafIndex,uint64 treeSize,bytes32 rootHash)
 * ```
 *
 * "The event `leafHash` of `vehicle` is in my log at `leafIndex`, of a tree of `treeSize` leaves
 * with root `rootHash`, durably." The node accepts an event only when its `prev` continues the
 * stored chain, so acknowledging the newest event of a batch acknowledges the whole chain up to
 * it. The car checks the signer against the node address it was configured with and the leaf
 * hash against the one it computed itself: the transport (MQTT broker, plain HTTP) carries the
 * ack, it does not vouch for it. The statement is also checkable later against the public log
 * (an inclusion proof of `leafHash` at `leafIndex` in the tree of `treeSize`), so a node that
 * signs and then drops an event is caught with its own signature.
 */
import { type Address, recoverTypedDataAddress } from 'viem'
import { BaseError } from '../errors.ts'
import type { Hex } from './bytes.ts'

/** What the node states about a batch it stored. */
export type LedgerAck = {
  vehicle: Address
  /** The batch's newest event (its checkpoint's leaf hash). */
  leafHash: Hex
  leafIndex: number
  treeSize: number
  rootHash: Hex
}

/** The ack with the node's 65-byte Ethereum signature, as it travels (HTTP body, MQTT ack). */
export type SignedLedgerAck = LedgerAck & { signature: Hex }

/** Anything that signs EIP-712 typed data as the node's account (a viem account or wallet). */
export type LedgerAckSigner = { signTypedData(data: ReturnType<typeof ackTypedData>): Promise<Hex> }

const ledgerAckTypes = {
  LedgerAck: [
    { name: 'vehicle', type: 'address' },
    { name: 'leafHash', type: 'bytes32' },
    { name: 'leafIndex', type: 'uint64' },
    { name: 'treeSize', type: 'uint64' },
    { name: 'rootHash', type: 'bytes32' },
  ],
} as const

function ackTypedData(ack: LedgerAck) {
  return {
    domain: { name: 'Carchain ledger', version: '1' },
    types: ledgerAckTypes,
    primaryType: 'LedgerAck' as const,
    message: {
      vehicle: ack.vehicle,
      leafHash: ack.leafHash,
      leafIndex: BigInt(ack.leafIndex),
      treeSize: BigInt(ack.treeSize),
      rootHash: ack.rootHash,
    },
  }
}

/** The node's side: the ack of a stored batch (its newest event), signed. */
export async function signLedgerAck(
  signer: LedgerAckSigner,
  stored: {
    vehicle: string
    ids: readonly Hex[]
    leafIndexes: readonly number[]
    treeSize: number
    rootHash: Hex
  },
): Promise<SignedLedgerAck> {
  const ack: LedgerAck = {
    vehicle: stored.vehicle.toLowerCase() as Address,
    leafHash: stored.ids.at(-1)!,
    leafIndex: stored.leafIndexes.at(-1)!,
    treeSize: stored.treeSize,
    rootHash: stored.rootHash,
  }
  return { ...ack, signature: await signer.signTypedData(ackTypedData(ack)) }
}

const hex32 = /^0x[0-9a-f]{64}$/
const isIndex = (value: unknown): value is number =>
  typeof value === 'number' && Number.isSafeInteger(value) && value >= 0

/**
 * The car's side: the ack, if `value` is one signed by `trustedNode` for `batch` (its vehicle
 * and newest leaf hash, as the car computed them). Throws ACK_INVALID otherwise: the car keeps
 * the events and sends them again.
 */
export async function verifyLedgerAck(
  value: unknown,
  batch: { vehicle: string; checkpoint: { leafHash: string } },
  trustedNode: Address,
): Promise<LedgerAck> {
  const invalid = (reason: string): never => {
    throw new BaseError('ACK_INVALID', `the node's acknowledgement ${reason}; the events are kept`, {
      details: { leafHash: batch.checkpoint.leafHash, reason },
    })
  }
  if (typeof value !== 'object' || value === null) return invalid('is missing')
  const ack = value as Record<string, unknown>
  if (ack.vehicle !== batch.vehicle.toLowerCase()) invalid('is for another vehicle')
  if (ack.leafHash !== batch.checkpoint.leafHash) invalid('is for another batch')
  if (typeof ack.rootHash !== 'string' || !hex32.test(ack.rootHash)) invalid('has no rootHash')
  if (!isIndex(ack.leafIndex) || !isIndex(ack.treeSize) || ack.leafIndex >= ack.treeSize)
    invalid('has no leafIndex within treeSize')
  const statement = ack as LedgerAck
  let signer: Address
  try {
    signer = await recoverTypedDataAddress({ ...ackTypedData(statement), signature: ack.signature as Hex })
  } catch {
    return invalid('has a malformed signature')
  }
  if (signer.toLowerCase() !== trustedNode.toLowerCase()) invalid('is not signed by the node')
  return {
    vehicle: statement.vehicle,
    leafHash: statement.leafHash,
    leafIndex: statement.leafIndex,
    treeSize: statement.treeSize,
    rootHash: statement.rootHash,
  }
}
