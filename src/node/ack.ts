/**
 * The node's signature on what it stored for a vehicle (src/ledger/ack.ts): the same ack on every
 * transport, signed by the operator account, so a car can tell the node's answer from anyone's.
 */
import { type SignedLedgerAck, signLedgerAck } from '../ledger/ack.ts'
import type { IngestBatchReturnType } from '../ledger/ingest.ts'
import type { NodeContext } from './context.ts'

/** The signed ack of a stored batch, for the upload's answer (HTTP body, MQTT ack). */
export function ingestAck(context: NodeContext, stored: IngestBatchReturnType): Promise<SignedLedgerAck> {
  const { walletClient, account } = context.clients
  return signLedgerAck({ signTypedData: (data) => walletClient.signTypedData({ ...data, account }) }, stored)
}
