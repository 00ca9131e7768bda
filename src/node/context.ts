/** What the node's routes and background jobs share: one object built by `startNode`. */
import type { Address } from 'viem'
import type { ChainClients } from '../chain/clients.ts'
import type { Deployment } from '../chain/deploy.ts'
import type { Database } from '../db/database.ts'
import type { Hex } from '../ledger/bytes.ts'
import type { ChainIndexer } from './indexer.ts'
import type { NodeIngest } from './ingest.ts'
import type { NodeEvents } from './stream.ts'

export type NodeContext = {
  readonly db: Database
  readonly clients: ChainClients
  readonly deployment: Deployment
  readonly contracts: Record<keyof Deployment['contracts'], Address>
  /** The log's id on chain (LedgerAnchor): shard 0's, the deployment's own. */
  readonly logId: Hex
  /** How many log shards the deployment runs (docs/ledger.md "Shards"), fixed with its log. */
  readonly shards: number
  /** Each shard's log id on chain, by shard (`shardLogId`; shard 0's is `logId`). */
  readonly logIds: readonly Hex[]
  /** Live updates for `/v1/stream` and in-process listeners (the simulator, the dashboard). */
  readonly events: NodeEvents
  /** Vehicle batches in, from any transport. */
  readonly ingest: NodeIngest
  /** Titles (owners) followed from chain events. */
  readonly indexer: ChainIndexer
  /** The origins a sign-in message may name (src/node/auth.ts `signInOrigins`); known once listening. */
  readonly signInOrigins: () => readonly string[]
}
