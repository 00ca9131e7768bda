/**
 * The anchoring scheduler: anchors the log every `everyEvents` new events or every `intervalMs`,
 * whichever comes first, and keeps retrying through chain outages with backoff (each attempt
 * starts from what the chain holds, so an outage leaves no gap — see src/ledger/anchor.ts). It
 * also compares the chain with the log every `intervalMs` when nothing is new: a reorg may have
 * dropped the last anchor, which is then sent again. With several shards, "new events" counts
 * over all of them, and one transaction anchors the newest root of every shard that grew.
 */
import { randomBytes } from 'node:crypto'
import { toBaseError } from '../errors.ts'
import { anchorShards } from '../ledger/anchor.ts'
import type { GetCheckpointReturnType } from '../ledger/store.ts'
import type { NodeContext } from './context.ts'

export type AnchoringOptions = {
  /** Anchor when at least this many events arrived since the last anchor (default 1000). */
  everyEvents: number
  /** …or when this long passed with anything new (default 10 s). */
  intervalMs: number
  /** How often to look (default 500 ms). */
  pollMs?: number
  log?: (message: string) => void
  /** Each shard's tree to anchor: the checkpoint the node publishes (default: the database's newest tree). */
  head?: (shard: number) => Promise<GetCheckpointReturnType>
}

export type AnchoringScheduler = {
  /** Runs one attempt now (tests, shutdown). */
  anchorNow(): Promise<void>
  stop(): Promise<void>
  /** The last error, if the last attempt failed. */
  readonly lastError: string | undefined
}

export function startAnchoring(context: NodeContext, options: AnchoringOptions): AnchoringScheduler {
  const holder = `node-${process.pid}-${randomBytes(4).toString('hex')}`
  const log = options.log ?? (() => {})
  let lastAnchorAt = Date.now()
  // When the scheduler last compared the chain with the log, even with nothing new to anchor:
  // a reorg can drop an anchor the scheduler believes is on chain.
  let lastCheckAt = Date.now()
  let anchoredSize = -1
  let failures = 0
  let nextAttemptAt = 0
  let lastError: string | undefined
  let readFailed = false
  let running: Promise<void> | undefined
  let stopped = false

  const failed = (error: unknown) => {
    failures += 1
    const delay = Math.min(30_000, 500 * 2 ** Math.min(failures, 6))
    nextAttemptAt = Date.now() + delay
    const base = toBaseError(error)
    lastError = `${base.code}: ${base.shortMessage}`
    if (failures === 1 || failures % 10 === 0) log(`anchoring failed (${lastError}); retrying in ${delay} ms`)
  }

  const attempt = async (force: boolean) => {
    if (!force && Date.now() < nextAttemptAt) return
    // The database may be away too (PostgreSQL restarting): a failure like any other, retried —
    // never a rejection of the timer's promise, which would end the process.
    let treeSize: number
    try {
      const { rows } = await context.db.query<{ total: string | number | bigint | null }>(
        'select sum(tree_size) as total from ledger_log',
      )
      treeSize = Number(rows[0]?.total ?? 0)
    } catch (error) {
      failed(error)
      readFailed = true
      return
    }
    if (readFailed) {
      // The database is back; a chain failure, if any, is reported by the next anchoring attempt.
      readFailed = false
      failures = 0
      lastError = undefined
    }
    const fresh = treeSize - Math.max(anchoredSize, 0)
    const due =
      force ||
      fresh >= options.everyEvents ||
      (fresh > 0 && Date.now() - lastAnchorAt >= options.intervalMs) ||
      Date.now() - lastCheckAt >= options.intervalMs ||
      anchoredSize < 0
    if (!due || Date.now() < nextAttemptAt) return
    lastCheckAt = Date.now()
    try {
      const result = await anchorShards({
        db: context.db,
        clients: context.clients,
        contract: context.contracts.LedgerAnchor,
        logIds: context.logIds,
        holder,
        ...(options.head && { head: options.head }),
      })
      failures = 0
      lastError = undefined
      if (result.status === 'anchored') {
        anchoredSize = treeSize
        lastAnchorAt = Date.now()
        for (const anchor of result.anchors)
          context.events.publish('anchor', {
            ...(context.logIds.length > 1 ? { shard: anchor.shard } : {}),
            treeSize: anchor.treeSize,
            rootHash: anchor.rootHash,
            txHash: anchor.txHash,
            blockNumber: anchor.blockNumber,
          })
        const added = result.anchors.reduce((sum, a) => sum + a.treeSize - a.previousSize, 0)
        log(
          result.anchors.length === 1 && context.logIds.length === 1
            ? `anchored ${result.anchors[0]!.treeSize} events (+${added}, ${result.gasUsed} gas)`
            : `anchored ${result.anchors.length} shard(s) in one transaction (+${added} events, ${result.gasUsed} gas)`,
        )
      } else anchoredSize = result.treeSize
    } catch (error) {
      failed(error)
    }
  }
  const tick = () => {
    if (stopped || running) return
    running = attempt(false).finally(() => {
      running = undefined
    })
  }
  const timer = setInterval(tick, options.pollMs ?? 500)
  timer.unref()
  return {
    async anchorNow() {
      await running
      nextAttemptAt = 0
      running = attempt(true).finally(() => {
        running = undefined
      })
      await running
    },
    async stop() {
      stopped = true
      clearInterval(timer)
      await running
    },
    get lastError() {
      return lastError
    },
  }
}
