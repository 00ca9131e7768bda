/**
 * The node's checkpoint publisher (docs/transparency.md): signs each new committed tree head as a
 * C2SP checkpoint, has it cosigned by the configured witnesses (c2sp.org/tlog-witness, through
 * `witnesses.ts`), writes the tiles directory (`--tiles-dir`, src/ledger/tiles-dir.ts) and then
 * serves the (co)signed checkpoint at `/log/checkpoint`.
 *
 * Without witnesses `/log/checkpoint` is the newest head, signed when asked (Ed25519 is
 * deterministic: one signature per head). With witnesses it is the newest head the publisher has
 * been through the witnesses with, so every checkpoint a client sees carries the cosignatures that
 * could be had.
 */
import type { Queryable } from '../db/database.ts'
import { toBaseError } from '../errors.ts'
import { fromHex, type Hex } from '../ledger/bytes.ts'
import { type NoteSigner, signCheckpointNote } from '../ledger/note.ts'
import { type GetCheckpointReturnType, getCheckpoint } from '../ledger/store.ts'
import { type TilesDirFileWriter, updateTilesDir } from '../ledger/tiles-dir.ts'
import { logger } from '../log.ts'
import { collectCosignatures, type Witness } from './witnesses.ts'

const log = logger('node.checkpoints')

export type CheckpointPublisherOptions = {
  signer: NoteSigner
  /** Write the tiles here too (`--tiles-dir`). */
  tilesDir?: string | undefined
  /** Witnesses to have each new checkpoint cosigned by (`--witness`). */
  witnesses?: readonly Witness[]
  /** Tests inject faults into the directory's writes. */
  writeFile?: TilesDirFileWriter
}

export type CheckpointPublisher = {
  /** The checkpoint `/log/checkpoint` serves. */
  current(): Promise<string>
  /** Publishes the newest committed head now (one run at a time); resolves to its checkpoint. */
  publishNow(): Promise<string>
  /** Publishes the newest committed head now; resolves to that head (what anchoring anchors). */
  publishHead(): Promise<GetCheckpointReturnType>
  /** Publishes every `intervalMs` until `stop()`; failures are logged and retried. */
  start(intervalMs: number): void
  stop(): Promise<void>
  /** The last failure of a publishing run, until one succeeds. */
  readonly lastError: string | undefined
}

export function createCheckpointPublisher(
  db: Queryable,
  { signer, tilesDir, witnesses = [], writeFile }: CheckpointPublisherOptions,
): CheckpointPublisher {
  let signed: { treeSize: number; rootHash: Hex; note: string } | undefined
  const sign = async () => {
    const head = await getCheckpoint(db)
    if (signed?.treeSize !== head.treeSize || signed.rootHash !== head.rootHash) {
      const note = signCheckpointNote(
        { treeSize: head.treeSize, rootHash: fromHex(head.rootHash, 'rootHash', 32) },
        signer,
      )
      signed = { ...head, note }
      log.debug({ treeSize: head.treeSize }, 'signed a new checkpoint')
    }
    return signed
  }

  // What the last successful run published (head and checkpoint with its cosignatures).
  let published: { treeSize: number; rootHash: Hex; note: string } | undefined
  let running: Promise<string> | undefined
  let lastError: string | undefined
  const run = async (): Promise<string> => {
    const head = await sign()
    if (published?.treeSize === head.treeSize && published.rootHash === head.rootHash) return published.note
    const cosignatures = await collectCosignatures(db, witnesses, head.note)
    const note = head.note + cosignatures.join('')
    if (tilesDir !== undefined)
      await updateTilesDir({ db, dir: tilesDir, note, ...(writeFile && { writeFile }) })
    published = { treeSize: head.treeSize, rootHash: head.rootHash, note }
    return note
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

  let timer: NodeJS.Timeout | undefined
  let stopped = false
  const tick = async () => {
    try {
      await publishNow()
    } catch (error) {
      log.error({ err: error, tilesDir }, 'publishing the checkpoint failed; retrying')
    }
  }
  return {
    async current() {
      if (witnesses.length === 0) return (await sign()).note
      return published?.note ?? publishNow()
    },
    publishNow,
    async publishHead() {
      await publishNow()
      return { treeSize: published!.treeSize, rootHash: published!.rootHash }
    },
    start(intervalMs) {
      const loop = () => {
        if (stopped) return
        timer = setTimeout(() => void tick().then(loop), intervalMs)
        timer.unref()
      }
      void tick().then(loop)
    },
    async stop() {
      stopped = true
      clearTimeout(timer)
      if (running)
        await running.then(
          () => undefined,
          (error: unknown) => log.debug({ err: error }, 'the last publishing run failed while stopping'),
        )
    },
    get lastError() {
      return lastError
    },
  }
}
