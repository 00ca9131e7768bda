/**
 * The node's checkpoint publisher (docs/transparency.md): for each log shard, signs each new
 * committed tree head as a C2SP checkpoint under the shard's origin, has it cosigned by the
 * configured witnesses (c2sp.org/tlog-witness, through `witnesses.ts`), writes the shard's tiles
 * directory (`--tiles-dir`, src/ledger/tiles-dir.ts) and then serves the (co)signed checkpoint at
 * `/log/checkpoint` (shard 0) and `/log/shards/<k>/checkpoint`.
 *
 * Without witnesses a checkpoint is the newest head, signed when asked (Ed25519 is deterministic:
 * one signature per head, the same from every node). With witnesses it is the newest head the
 * publisher has been through the witnesses with, so every checkpoint a client sees carries the
 * cosignatures that could be had. Several node processes on one database (`--join`) submit each
 * shard's checkpoints through one of them at a time: the holder of the shard's publishing lease
 * (a row in `node_settings`, as the anchoring lease), which stores the cosigned checkpoint there;
 * the others serve and write to their tiles directories that stored checkpoint.
 */

import { randomBytes } from 'node:crypto'
import type { Queryable } from '../db/database.ts'
import { BaseError, toBaseError } from '../errors.ts'
import { ANCHOR_LEASE_MS, takeLease } from '../ledger/anchor.ts'
import { fromHex, type Hex, toHex } from '../ledger/bytes.ts'
import {
  checkLogOrigin,
  type NoteSigner,
  noteTextOf,
  parseCheckpointText,
  signCheckpointNote,
} from '../ledger/note.ts'
import { shardPath } from '../ledger/shard-rule.ts'
import { shardOf, withShard } from '../ledger/shards.ts'
import { type GetCheckpointReturnType, getCheckpoint, getRootAt } from '../ledger/store.ts'
import { type TilesDirFileWriter, updateTilesDir } from '../ledger/tiles-dir.ts'
import { logger } from '../log.ts'
import { collectCosignatures, type Witness } from './witnesses.ts'

const log = logger('node.checkpoints')

export type CheckpointPublisherOptions = {
  /** The note key, named by the log's origin (shard 0's; shard k signs as `shardOrigin`). */
  signer: NoteSigner
  /** Write the tiles here too (`--tiles-dir`): shard 0 in DIR, shard k in `shardTilesDir`. */
  tilesDir?: string | undefined
  /** Witnesses to have each shard's new checkpoints cosigned by (`--witness`). */
  witnesses?: readonly Witness[]
  /** Tests inject faults into the directory's writes. */
  writeFile?: TilesDirFileWriter
}

/** One log's (one shard's) publisher. */
export type CheckpointPublisher = {
  /** The checkpoint the shard's `/log/…/checkpoint` serves. */
  current(): Promise<string>
  /** Publishes the newest committed head now (one run at a time); resolves to its checkpoint. */
  publishNow(): Promise<string>
  /** Publishes the newest committed head now; resolves to that head (what anchoring anchors). */
  publishHead(): Promise<GetCheckpointReturnType>
  /** Waits for a running run and gives the shard's publishing lease up, if this publisher holds it. */
  release(): Promise<void>
  /** The last failure of a publishing run, until one succeeds. */
  readonly lastError: string | undefined
}

/** Every shard's publisher, run together. */
export type ShardPublishers = {
  /** Shard `shard`'s publisher. */
  shard(shard: number): CheckpointPublisher
  /** Publishes every shard every `intervalMs` until `stop()`; failures are logged and retried. */
  start(intervalMs: number): void
  stop(): Promise<void>
  /** The last failure of a shard's publishing run (`shard k: CODE: message`), until it succeeds. */
  readonly lastError: string | undefined
}

/**
 * The origin of shard `shard`'s checkpoints: the deployment's origin for shard 0 (the log of a
 * one-shard deployment), `<origin>/shards/<shard>` for the others; one note key signs them all.
 */
export function shardOrigin(origin: string, shard: number): string {
  return shardPath(origin, shard)
}

/**
 * Where shard `shard`'s tiles go in a `--tiles-dir`: DIR itself for shard 0 (as before shards),
 * `DIR/shards/<shard>` for the others — the layout of the node's `/log/` routes.
 */
export function shardTilesDir(dir: string, shard: number): string {
  return shardPath(dir, shard)
}

/** The publishers of shards 0 … `shards` − 1 of the log in `db` (which must not be scoped). */
export function createShardPublishers(
  db: Queryable,
  shards: number,
  options: CheckpointPublisherOptions,
): ShardPublishers {
  const publishers = Array.from({ length: shards }, (_, shard) =>
    createCheckpointPublisher(withShard(db, shard), options),
  )
  let timer: NodeJS.Timeout | undefined
  let stopped = false
  let running: Promise<unknown> | undefined
  const tick = async () => {
    const results = await Promise.allSettled(publishers.map((publisher) => publisher.publishNow()))
    for (const [shard, result] of results.entries())
      if (result.status === 'rejected')
        log.error(
          { err: result.reason, shard, tilesDir: options.tilesDir },
          'publishing the checkpoint failed; retrying',
        )
  }
  return {
    shard(shard) {
      const publisher = publishers[shard]
      if (!publisher)
        throw new BaseError('INTERNAL', `no shard ${shard} among ${shards}`, { details: { shard, shards } })
      return publisher
    },
    start(intervalMs) {
      const loop = () => {
        if (stopped) return
        timer = setTimeout(() => {
          running = tick().then(loop)
        }, intervalMs)
        timer.unref()
      }
      running = tick().then(loop)
    },
    async stop() {
      stopped = true
      clearTimeout(timer)
      await running
      // A restarted node (or another) takes the shards over at once, not when the leases run out.
      await Promise.all(publishers.map((publisher) => publisher.release()))
    },
    get lastError() {
      for (const [shard, publisher] of publishers.entries())
        if (publisher.lastError !== undefined) return `shard ${shard}: ${publisher.lastError}`
      return undefined
    },
  }
}

type Published = { treeSize: number; rootHash: Hex; note: string }

/**
 * The publisher of the log (shard) `db` is scoped to (shard 0 when it is not): signs under the
 * shard's origin, submits to `witnesses` (each with its own view of this log's size), writes the
 * shard's tiles directory.
 */
export function createCheckpointPublisher(
  db: Queryable,
  { signer: key, tilesDir, witnesses: configured = [], writeFile }: CheckpointPublisherOptions,
): CheckpointPublisher {
  const shard = shardOf(db)
  const signer = shard === 0 ? key : { ...key, name: checkLogOrigin(shardOrigin(key.name, shard)) }
  const dir = tilesDir === undefined ? undefined : shardTilesDir(tilesDir, shard)
  // A witness keeps one size per log: this shard's submissions learn this shard's.
  const witnesses = configured.map((witness) => ({ ...witness, knownSize: 0 }))
  const holder = `node-${process.pid}-${randomBytes(4).toString('hex')}`
  let signed: Published | undefined
  const sign = async () => {
    const head = await getCheckpoint(db)
    if (signed?.treeSize !== head.treeSize || signed.rootHash !== head.rootHash) {
      const note = signCheckpointNote(
        { treeSize: head.treeSize, rootHash: fromHex(head.rootHash, 'rootHash', 32) },
        signer,
      )
      signed = { ...head, note }
      log.debug({ shard, treeSize: head.treeSize }, 'signed a new checkpoint')
    }
    return signed
  }

  // What the last successful run published (head and checkpoint with its cosignatures).
  let published: Published | undefined
  let running: Promise<string> | undefined
  let lastError: string | undefined
  /** The cosigned checkpoint: ours when this process holds the shard's lease, else the holder's. */
  let leaseRenewedAt = 0
  const cosigned = async (): Promise<Published> => {
    // The holder renews its lease a third of a lease's time at the latest, not every run.
    if (published && Date.now() - leaseRenewedAt < ANCHOR_LEASE_MS / 3) {
      const head = await sign()
      if (published.treeSize === head.treeSize && published.rootHash === head.rootHash) return published
    }
    if (await takeLease(db, `checkpointLease/${shard}`, holder)) leaseRenewedAt = Date.now()
    else {
      leaseRenewedAt = 0
      const stored = await storedCheckpoint(db, signer.name)
      if (stored && (published === undefined || stored.treeSize >= published.treeSize)) return stored
      // Nothing newer from the holder yet: the newest head, signed, without cosignatures.
      return published ?? (await sign())
    }
    const head = await sign()
    if (published?.treeSize === head.treeSize && published.rootHash === head.rootHash) return published
    const cosignatures = await collectCosignatures(db, witnesses, head.note)
    const note = head.note + cosignatures.join('')
    await db.query(
      `insert into node_settings (key, value, updated_at) values ($1, $2, now())
       on conflict (key) do update set value = excluded.value, updated_at = now()`,
      [`checkpoint/${shard}`, JSON.stringify(note)],
    )
    return { treeSize: head.treeSize, rootHash: head.rootHash, note }
  }
  const run = async (): Promise<string> => {
    const next = witnesses.length === 0 ? await sign() : await cosigned()
    if (published?.note === next.note) return published.note
    if (dir !== undefined) await updateTilesDir({ db, dir, note: next.note, ...(writeFile && { writeFile }) })
    published = next
    return next.note
  }
  const publishNow = () => {
    running ??= run()
      .then(
        (note) => {
          lastError = undefined
          return note
        },
        (error: unknown) => {
          const base = toBaseError(error)
          lastError = `${base.code}: ${base.shortMessage}`
          throw error
        },
      )
      .finally(() => {
        running = undefined
      })
    return running
  }
  return {
    async current() {
      if (witnesses.length === 0) return (await sign()).note
      return published?.note ?? publishNow()
    },
    publishNow,
    async publishHead() {
      try {
        await publishNow()
      } catch (error) {
        // This shard's newest head could not be published (a witness or its tiles dir failing):
        // the last one it did publish is still a published head, and anchoring it keeps the other
        // shards' anchors from waiting on this one. Nothing published yet: the failure stands.
        if (published === undefined) throw error
        log.warn(
          { err: error, shard, treeSize: published.treeSize },
          'could not publish the newest checkpoint; anchoring the last published one',
        )
      }
      return { treeSize: published!.treeSize, rootHash: published!.rootHash }
    },
    async release() {
      if (running)
        await running.then(
          () => undefined,
          (error: unknown) =>
            log.debug({ err: error, shard }, 'the last publishing run failed while stopping'),
        )
      if (leaseRenewedAt === 0) return
      leaseRenewedAt = 0
      await db.query(`delete from node_settings where key = $1 and value->>'holder' = $2`, [
        `checkpointLease/${shard}`,
        holder,
      ])
    },
    get lastError() {
      return lastError
    },
  }
}

/**
 * The cosigned checkpoint the lease holder stored for the shard of `db`, when it is one of this
 * log (origin `origin`, root the database's at its size); undefined otherwise.
 */
async function storedCheckpoint(db: Queryable, origin: string): Promise<Published | undefined> {
  const { rows } = await db.query<{ value: string }>('select value from node_settings where key = $1', [
    `checkpoint/${shardOf(db)}`,
  ])
  const note = rows[0]?.value
  if (note === undefined) return undefined
  const head = parseCheckpointText(noteTextOf(note))
  const rootHash = toHex(head.rootHash)
  if (head.origin !== origin || (await getRootAt(db, head.treeSize)) !== rootHash) {
    log.warn(
      { shard: shardOf(db), origin: head.origin, treeSize: head.treeSize },
      'the checkpoint another node stored is not of this log (another --log-origin?); not served',
    )
    return undefined
  }
  return { treeSize: head.treeSize, rootHash, note }
}
