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
import { shardOf, withShard } from './shards.ts'
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
  return takeLease(db, 'anchorLease', holder, leaseMs)
}

/**
 * Takes or renews the lease named `key` (a `node_settings` row) for `holder`: true while it holds
 * it. The anchoring lease and each shard's checkpoint-publishing lease (src/node/checkpoints.ts).
 */
export async function takeLease(
  db: Queryable,
  key: string,
  holder: string,
  leaseMs = ANCHOR_LEASE_MS,
): Promise<boolean> {
  const { rows } = await db.query<{ holder: string }>(
    `insert into node_settings (key, value, updated_at) values ($1, $2, now())
     on conflict (key) do update set value = excluded.value, updated_at = now()
       where node_settings.value->>'holder' = $3 or (node_settings.value->>'until')::bigint < $4
     returning value->>'holder' as holder`,
    [key, JSON.stringify({ holder, until: Date.now() + leaseMs }), holder, Date.now()],
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

/** The anchors sent for the shard `db` is scoped to (shard 0 when it is not) that the chain still holds, newest first. */
export async function listAnchors(db: Queryable, limit = 100): Promise<AnchorRecord[]> {
  const { rows } = await db.query<{
    tree_size: bigint
    root_hash: Uint8Array
    tx_hash: Uint8Array
    block_number: bigint
    gas_used: bigint
    anchored_at: Date
  }>('select * from ledger_anchors where shard = $2 order by tree_size desc limit $1', [limit, shardOf(db)])
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
 * never fixed automatically. `db` may be scoped to a shard (`withShard`): then that shard's log.
 */
export async function anchorLog(parameters: AnchorLogParameters): Promise<AnchorLogReturnType> {
  const { db, clients, contract, logId } = parameters
  const { local, databaseSize } = await headToAnchor(db, parameters.head)
  if (!(await takeAnchorLease(db, parameters.holder)))
    return { status: 'not-leader', treeSize: local.treeSize }
  const due = await dueHead(db, clients, contract, logId, local, databaseSize, parameters.minNewEvents)
  if (due.status !== 'due') return { status: due.status, treeSize: local.treeSize }
  const receipt = await sendAnchor(clients, contract, [due.head])
  const anchor = anchorRecord(due.head, receipt, receipt.gasUsed)
  await recordAnchor(db, anchor)
  return {
    status: 'anchored',
    anchor,
    previousSize: due.head.previousSize,
    proofLength: due.head.proof.length,
  }
}

/**
 * The tree to anchor and the database's own size: the published checkpoint when `head` is given
 * (it must be a tree of this log: INTERNAL otherwise), else the database's newest tree.
 */
async function headToAnchor(
  db: Queryable,
  head: (() => Promise<GetCheckpointReturnType>) | undefined,
): Promise<{ local: GetCheckpointReturnType; databaseSize: number }> {
  if (!head) {
    const local = await getCheckpoint(db)
    return { local, databaseSize: local.treeSize }
  }
  const local = await head()
  if ((await getRootAt(db, local.treeSize)) !== local.rootHash)
    throw new BaseError(
      'INTERNAL',
      `the checkpoint to anchor (size ${local.treeSize}) is not this log's tree`,
      {
        details: { treeSize: local.treeSize },
      },
    )
  return { local, databaseSize: (await getCheckpoint(db)).treeSize }
}

export type AnchorShardsParameters = Omit<AnchorLogParameters, 'logId' | 'head'> & {
  /** Each shard's log id (`shardLogId`), by shard; `db` must not be scoped to one. */
  logIds: readonly Hex[]
  /**
   * Shard `shard`'s tree to anchor: the checkpoint the node published for it as a signed note
   * (docs/transparency.md). Default: each shard's newest tree.
   */
  head?: (shard: number) => Promise<GetCheckpointReturnType>
}

export type AnchorShardsReturnType =
  | {
      status: 'anchored'
      txHash: Hash
      blockNumber: number
      gasUsed: number
      /** The shards anchored by the transaction, each with its new and previous size. */
      anchors: (AnchorRecord & { shard: number; previousSize: number; proofLength: number })[]
    }
  | { status: 'up-to-date' | 'not-leader' | 'too-few'; treeSize: number }

/**
 * `anchorLog` for every shard of a deployment at once: one transaction (`anchorBatch`) carries the
 * newest root of every shard that grew, each with its consistency proof from what the chain holds
 * for that shard. One shard is anchored with `anchor`, as before shards. The same alarms as
 * `anchorLog`, per shard, before anything is sent; `treeSize` in the answer is the sum over shards.
 */
export async function anchorShards(parameters: AnchorShardsParameters): Promise<AnchorShardsReturnType> {
  const { db, clients, contract, logIds } = parameters
  const { head } = parameters
  const locals = await Promise.all(
    logIds.map((_, shard) => headToAnchor(withShard(db, shard), head && (() => head(shard)))),
  )
  const total = locals.reduce((sum, { local }) => sum + local.treeSize, 0)
  if (!(await takeAnchorLease(db, parameters.holder))) return { status: 'not-leader', treeSize: total }
  const heads: DueHead[] = []
  let tooFew = false
  for (const [shard, logId] of logIds.entries()) {
    const due = await dueHead(
      withShard(db, shard),
      clients,
      contract,
      logId,
      locals[shard]!.local,
      locals[shard]!.databaseSize,
      parameters.minNewEvents,
    )
    if (due.status === 'due') heads.push(due.head)
    else if (due.status === 'too-few') tooFew = true
  }
  if (heads.length === 0) return { status: tooFew ? 'too-few' : 'up-to-date', treeSize: total }
  const receipt = await sendAnchor(clients, contract, heads, logIds.length > 1)
  // Each shard's row carries its share of the transaction's gas.
  const share = receipt.gasUsed / BigInt(heads.length)
  const anchors = []
  for (const head of heads) {
    const anchor = anchorRecord(head, receipt, share)
    await recordAnchor(withShard(db, head.shard), anchor)
    anchors.push({
      ...anchor,
      shard: head.shard,
      previousSize: head.previousSize,
      proofLength: head.proof.length,
    })
  }
  return {
    status: 'anchored',
    txHash: receipt.transactionHash,
    blockNumber: Number(receipt.blockNumber),
    gasUsed: Number(receipt.gasUsed),
    anchors,
  }
}

type DueHead = {
  shard: number
  logId: Hex
  treeSize: number
  rootHash: Hex
  previousSize: number
  proof: Hex[]
}

/**
 * What the chain holds for the log of the shard `db` is scoped to, checked against the database
 * (ANCHOR_LOG_TAKEN, ANCHOR_MISMATCH), and the head to anchor with its proof when enough is new.
 */
async function dueHead(
  db: Queryable,
  clients: ChainClients,
  contract: Address,
  logId: Hex,
  local: { treeSize: number; rootHash: Hex },
  databaseSize: number,
  minNewEvents = 1,
): Promise<{ status: 'due'; head: DueHead } | { status: 'up-to-date' | 'too-few' }> {
  await checkOperator(clients, contract, logId)
  const onChain = await readAnchored(clients, contract, logId)
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
  await db.query('delete from ledger_anchors where shard = $2 and tree_size > $1', [
    onChain.treeSize,
    shardOf(db),
  ])
  // (Another node of this database may have anchored a newer checkpoint it published.)
  if (local.treeSize <= onChain.treeSize) return { status: 'up-to-date' }
  if (local.treeSize - onChain.treeSize < minNewEvents) return { status: 'too-few' }
  const proof =
    onChain.treeSize === 0 ? [] : (await getConsistencyProof(db, onChain.treeSize, local.treeSize)).proof
  return {
    status: 'due',
    head: {
      shard: shardOf(db),
      logId,
      treeSize: local.treeSize,
      rootHash: local.rootHash,
      previousSize: onChain.treeSize,
      proof,
    },
  }
}

type Receipt = { transactionHash: Hash; blockNumber: bigint; gasUsed: bigint; status: 'success' | 'reverted' }

/** One transaction: `anchor` for one head, `anchorBatch` for several (or when `batch`). */
async function sendAnchor(
  clients: ChainClients,
  contract: Address,
  heads: DueHead[],
  batch = heads.length > 1,
): Promise<Receipt> {
  const treeSizes = heads.map((head) => head.treeSize)
  let receipt: Receipt
  try {
    const [first] = heads
    const hash = batch
      ? await clients.walletClient.writeContract({
          address: contract,
          abi: ledgerAnchorAbi,
          functionName: 'anchorBatch',
          args: [
            heads.map((head) => ({
              logId: head.logId,
              treeSize: BigInt(head.treeSize),
              rootHash: head.rootHash,
              proof: head.proof,
            })),
          ],
        })
      : await clients.walletClient.writeContract({
          address: contract,
          abi: ledgerAnchorAbi,
          functionName: 'anchor',
          args: [first!.logId, BigInt(first!.treeSize), first!.rootHash, first!.proof],
        })
    receipt = await clients.publicClient.waitForTransactionReceipt({ hash, timeout: 60_000 })
  } catch (error) {
    throw new BaseError(
      'CHAIN_TX_FAILED',
      `anchoring ${treeSizes.join(', ')} events failed: ${(error as Error).message.split('\n')[0]}`,
      {
        details: heads.length === 1 ? { treeSize: treeSizes[0] } : { treeSizes },
        cause: error,
      },
    )
  }
  if (receipt.status !== 'success')
    throw new BaseError('CHAIN_TX_FAILED', `the anchor transaction reverted`, {
      details: { txHash: receipt.transactionHash },
    })
  return receipt
}

function anchorRecord(head: DueHead, receipt: Receipt, gasUsed: bigint): AnchorRecord {
  return {
    treeSize: head.treeSize,
    rootHash: head.rootHash,
    txHash: receipt.transactionHash,
    blockNumber: Number(receipt.blockNumber),
    gasUsed: Number(gasUsed),
    anchoredAt: new Date(),
  }
}

/** The anchor's row, in the shard `db` is scoped to. */
async function recordAnchor(db: Queryable, anchor: AnchorRecord): Promise<void> {
  await db.query(
    `insert into ledger_anchors (shard, tree_size, root_hash, tx_hash, block_number, gas_used) values ($6, $1, $2, $3, $4, $5)
       on conflict (shard, tree_size) do update set root_hash = excluded.root_hash, tx_hash = excluded.tx_hash,
         block_number = excluded.block_number, gas_used = excluded.gas_used, anchored_at = now()`,
    [
      anchor.treeSize,
      fromHex(anchor.rootHash, 'rootHash', 32),
      fromHex(anchor.txHash, 'txHash', 32),
      anchor.blockNumber,
      anchor.gasUsed,
      shardOf(db),
    ],
  )
}
