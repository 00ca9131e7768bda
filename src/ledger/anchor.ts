/**
 * Anchoring: putting the log's root on chain in `LedgerAnchor`, which accepts a new root only
 * with an RFC 9162 consistency proof from the last anchored one — so the chain itself enforces
 * that the log is append-only.
 *
 * `anchorLog` is one step, safe to repeat and to run from several nodes (one leader at a time,
 * by a lease in the database): it reads what the chain holds, checks the database agrees with
 * it, and anchors the database's current tree with a proof from the chain's size. No database
 * transaction stays open while the chain is asked, so ingest never waits for the chain.
 * Whatever the chain lost (an embedded chain's last second, a reorg, an RPC outage) is simply
 * covered by the next anchor: there is never a gap, because each proof starts where the chain
 * actually is.
 */
import { createHash, randomBytes } from 'node:crypto'
import { type Address, getAddress, type Hash, zeroAddress } from 'viem'
import type { ChainClients } from '../chain/clients.ts'
import { ledgerAnchorAbi } from '../chain/generated/index.ts'
import type { Queryable } from '../db/database.ts'
import { BaseError } from '../errors.ts'
import { fromHex, type Hex, toHex } from './bytes.ts'
import { type GetCheckpointReturnType, getCheckpoint, getConsistencyProof, getRootAt } from './store.ts'

/** How long a leader's lease lasts without renewal. */
export const ANCHOR_LEASE_MS = 30_000

/**
 * Takes or renews the anchoring lease for `holder`. A lease is a row, not a session advisory
 * lock, so it works the same on PGlite and on a pooled PostgreSQL, and a dead leader's lease
 * simply runs out.
 */
export async function takeAnchorLease(
  db: Queryable,
  holder: string,
  leaseMs = ANCHOR_LEASE_MS,
): Promise<boolean> {
  const { rows } = await db.query<{ holder: string }>(
    `insert into node_settings (key, value, updated_at) values ('anchorLease', $1, now())
     on conflict (key) do update set value = excluded.value, updated_at = now()
       where node_settings.value->>'holder' = $2 or (node_settings.value->>'until')::bigint < $3
     returning value->>'holder' as holder`,
    [JSON.stringify({ holder, until: Date.now() + leaseMs }), holder, Date.now()],
  )
  return rows[0]?.holder === holder
}

/** A fresh log id `operator` may claim on LedgerAnchor: its address, then 12 random bytes. */
export function createLogId(operator: Address): Hex {
  return toHex(Buffer.concat([fromHex(operator, 'operator', 20), randomBytes(12)]))
}

/**
 * The log id of the log whose checkpoints carry `origin`, anchored by `operator`: the operator's
 * address (20 bytes, the only account LedgerAnchor lets claim it) and the first 12 bytes of
 * SHA-256(origin as UTF-8). A client that knows the origin and the operator computes it
 * (docs/ledger.md "The log id").
 */
export function logIdOfOrigin(operator: Address, origin: string): Hex {
  const digest = createHash('sha256').update(origin, 'utf8').digest()
  return toHex(Buffer.concat([fromHex(operator, 'operator', 20), digest.subarray(0, 12)]))
}

/**
 * The log's id on chain, made once per database and shared by its nodes: the anchoring account's
 * address (20 bytes) and 12 more bytes. LedgerAnchor lets only the account an id names claim
 * it, so nobody can take the node's id before its first anchor. A new database's id is derived
 * from its checkpoints' origin (`logIdOfOrigin`; `origin` names it, called only then); without
 * `origin` the 12 bytes are random (databases made before issue 17 keep such an id).
 */
export async function getLogId(db: Queryable, operator: Address, origin?: () => string): Promise<Hex> {
  const { rows: stored } = await db.query<{ value: Hex }>(
    `select value from node_settings where key = 'logId'`,
  )
  if (stored[0]) return stored[0].value
  const candidate = origin ? logIdOfOrigin(operator, origin()) : createLogId(operator)
  await db.query(`insert into node_settings (key, value) values ('logId', $1) on conflict (key) do nothing`, [
    JSON.stringify(candidate),
  ])
  const { rows } = await db.query<{ value: Hex }>(`select value from node_settings where key = 'logId'`)
  return rows[0]!.value
}

/**
 * Refuses, before any transaction, a log this node cannot anchor: one another account operates,
 * or an unclaimed id that names another account (LedgerAnchor would revert either way, forever).
 */
async function checkOperator(clients: ChainClients, contract: Address, logId: Hex): Promise<void> {
  const operator = await clients.publicClient.readContract({
    address: contract,
    abi: ledgerAnchorAbi,
    functionName: 'operatorOf',
    args: [logId],
  })
  const claimant = operator === zeroAddress ? getAddress(logId.slice(0, 42)) : operator
  if (claimant === clients.account.address) return
  throw new BaseError(
    'ANCHOR_LOG_TAKEN',
    operator === zeroAddress
      ? `log ${logId} can only be claimed by ${claimant}, not by this node's account ${clients.account.address}; anchor with that account, or (if this database never anchored on this chain) delete its id (\`delete from node_settings where key = 'logId'\`) and restart for a new one`
      : `log ${logId} is operated by ${operator}, not by this node's account ${clients.account.address}; anchor with that account or have it hand the log over (transferOperator)`,
    { details: { logId, operator, claimant, account: clients.account.address } },
  )
}

export type AnchorRecord = {
  treeSize: number
  rootHash: Hex
  txHash: Hash
  blockNumber: number
  gasUsed: number
  anchoredAt: Date
}

/** The anchors this node sent that the chain still holds, newest first. */
export async function listAnchors(db: Queryable, limit = 100): Promise<AnchorRecord[]> {
  const { rows } = await db.query<{
    tree_size: bigint
    root_hash: Uint8Array
    tx_hash: Uint8Array
    block_number: bigint
    gas_used: bigint
    anchored_at: Date
  }>('select * from ledger_anchors order by tree_size desc limit $1', [limit])
  return rows.map((row) => ({
    treeSize: Number(row.tree_size),
    rootHash: toHex(row.root_hash),
    txHash: toHex(row.tx_hash) as Hash,
    blockNumber: Number(row.block_number),
    gasUsed: Number(row.gas_used),
    anchoredAt: row.anchored_at,
  }))
}

/** What the chain holds for a log. */
export async function readAnchored(
  clients: ChainClients,
  contract: Address,
  logId: Hex,
): Promise<{ treeSize: number; rootHash: Hex }> {
  const [treeSize, rootHash] = await clients.publicClient.readContract({
    address: contract,
    abi: ledgerAnchorAbi,
    functionName: 'latest',
    args: [logId],
  })
  return { treeSize: Number(treeSize), rootHash }
}

export type AnchorLogParameters = {
  db: Queryable
  clients: ChainClients
  /** The LedgerAnchor address. */
  contract: Address
  logId: Hex
  /** Do not anchor fewer new events than this (default 1). */
  minNewEvents?: number
  /** This process's name for the anchoring lease. */
  holder: string
  /**
   * The tree to anchor: the checkpoint the node published as a signed note (docs/transparency.md).
   * It must be a tree of this log (INTERNAL otherwise). Default: the database's newest tree.
   */
  head?: () => Promise<GetCheckpointReturnType>
}

export type AnchorLogReturnType =
  | { status: 'anchored'; anchor: AnchorRecord; previousSize: number; proofLength: number }
  | { status: 'up-to-date' | 'not-leader' | 'too-few'; treeSize: number }

/**
 * Anchors the database's tree if it grew past what the chain holds. Throws ANCHOR_LOG_TAKEN when
 * this node's account may not anchor the log, and ANCHOR_MISMATCH when the chain's root is not a
 * prefix of the database's log (the log was rewritten, or belongs to another chain) — alarms,
 * never fixed automatically.
 */
export async function anchorLog(parameters: AnchorLogParameters): Promise<AnchorLogReturnType> {
  const { db, clients, contract, logId } = parameters
  const local = parameters.head ? await parameters.head() : await getCheckpoint(db)
  if (!(await takeAnchorLease(db, parameters.holder)))
    return { status: 'not-leader', treeSize: local.treeSize }
  if (parameters.head && (await getRootAt(db, local.treeSize)) !== local.rootHash)
    throw new BaseError(
      'INTERNAL',
      `the checkpoint to anchor (size ${local.treeSize}) is not this log's tree`,
      {
        details: { treeSize: local.treeSize },
      },
    )

  await checkOperator(clients, contract, logId)
  const onChain = await readAnchored(clients, contract, logId)
  const { treeSize: databaseSize } = parameters.head ? await getCheckpoint(db) : local
  if (onChain.treeSize > databaseSize)
    throw new BaseError(
      'ANCHOR_MISMATCH',
      `the chain anchors ${onChain.treeSize} events, the database holds ${databaseSize}`,
      {
        details: { chainTreeSize: onChain.treeSize, databaseTreeSize: databaseSize, logId },
      },
    )
  if (onChain.treeSize > 0) {
    const ours = await getRootAt(db, onChain.treeSize)
    if (ours !== onChain.rootHash)
      throw new BaseError(
        'ANCHOR_MISMATCH',
        `the root anchored at size ${onChain.treeSize} is not the database's`,
        {
          details: { treeSize: onChain.treeSize, chainRoot: onChain.rootHash, databaseRoot: ours, logId },
        },
      )
  }
  // Anchors the chain no longer holds (lost blocks, reorg): the anchor sent now covers them.
  await db.query('delete from ledger_anchors where tree_size > $1', [onChain.treeSize])
  // (Another node of this database may have anchored a newer checkpoint it published.)
  if (local.treeSize <= onChain.treeSize) return { status: 'up-to-date', treeSize: onChain.treeSize }
  if (local.treeSize - onChain.treeSize < (parameters.minNewEvents ?? 1))
    return { status: 'too-few', treeSize: local.treeSize }

  const proof =
    onChain.treeSize === 0 ? [] : (await getConsistencyProof(db, onChain.treeSize, local.treeSize)).proof
  let receipt: Awaited<ReturnType<typeof clients.publicClient.waitForTransactionReceipt>>
  try {
    const hash = await clients.walletClient.writeContract({
      address: contract,
      abi: ledgerAnchorAbi,
      functionName: 'anchor',
      args: [logId, BigInt(local.treeSize), local.rootHash, proof],
    })
    receipt = await clients.publicClient.waitForTransactionReceipt({ hash, timeout: 60_000 })
  } catch (error) {
    throw new BaseError(
      'CHAIN_TX_FAILED',
      `anchoring ${local.treeSize} events failed: ${(error as Error).message.split('\n')[0]}`,
      {
        details: { treeSize: local.treeSize },
        cause: error,
      },
    )
  }
  if (receipt.status !== 'success')
    throw new BaseError('CHAIN_TX_FAILED', `the anchor transaction reverted`, {
      details: { txHash: receipt.transactionHash },
    })
  const anchor: AnchorRecord = {
    treeSize: local.treeSize,
    rootHash: local.rootHash,
    txHash: receipt.transactionHash,
    blockNumber: Number(receipt.blockNumber),
    gasUsed: Number(receipt.gasUsed),
    anchoredAt: new Date(),
  }
  await db.query(
    `insert into ledger_anchors (tree_size, root_hash, tx_hash, block_number, gas_used) values ($1, $2, $3, $4, $5)
       on conflict (tree_size) do update set root_hash = excluded.root_hash, tx_hash = excluded.tx_hash,
         block_number = excluded.block_number, gas_used = excluded.gas_used, anchored_at = now()`,
    [
      anchor.treeSize,
      fromHex(anchor.rootHash, 'rootHash', 32),
      fromHex(anchor.txHash, 'txHash', 32),
      anchor.blockNumber,
      anchor.gasUsed,
    ],
  )
  return { status: 'anchored', anchor, previousSize: onChain.treeSize, proofLength: proof.length }
}
