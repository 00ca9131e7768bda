/**
 * The log's C2SP tiles written to a directory (`carchain up --tiles-dir DIR`) that any static web
 * server, object store or CDN can serve as it is: `DIR/checkpoint`, `DIR/tile/<L>/<N>[.p/<W>]`,
 * `DIR/tile/entries/<N>[.p/<W>]` — the same bytes as the node's `/log/` routes. docs/transparency.md
 * ("Tiles in a directory").
 *
 * Crash safety: a tile is read from the committed (durable) tree, written once (temporary file,
 * fsync, rename, directory fsync), and never rewritten; the checkpoint is written last, once every
 * tile of its tree is durable. A crash at any point leaves the previous checkpoint with all of its
 * tiles, plus perhaps some tiles of the next tree (which the next run finds identical and keeps).
 */
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import type { Queryable } from '../db/database.ts'
import { BaseError } from '../errors.ts'
import { makeDirDurable, writeFileAtomic } from '../fs-atomic.ts'
import { logger } from '../log.ts'
import { equalBytes, fromHex } from './bytes.ts'
import { noteTextOf, parseCheckpointText } from './note.ts'
import { getCheckpoint, getRootAt } from './store.ts'
import { readTile, TILE_WIDTH, type TileRef, tilePath } from './tiles.ts'

const log = logger('ledger.tiles-dir')

/** Published files are world-readable: a web server serves them. */
const PUBLISHED_MODE = 0o644

/** Writes one file of the directory durably and atomically (tests inject faults here). */
export type TilesDirFileWriter = (path: string, bytes: Uint8Array) => void

export const writeTilesDirFile: TilesDirFileWriter = (path, bytes) => {
  makeDirDurable(dirname(path))
  writeFileAtomic(path, bytes, PUBLISHED_MODE)
}

/** The tiles (hash tiles of every level, entry bundles) that the tree of `to` has and `from` has not. */
export function tilesBetween(from: number, to: number): TileRef[] {
  const refs: TileRef[] = []
  for (let level = 0, scale = 1; Math.floor(to / scale) > 0; level++, scale *= TILE_WIDTH) {
    const had = Math.floor(from / scale)
    const has = Math.floor(to / scale)
    if (has === had) continue
    for (let index = Math.floor(had / TILE_WIDTH); index * TILE_WIDTH < has; index++) {
      const width = Math.min(TILE_WIDTH, has - index * TILE_WIDTH)
      refs.push({ level, index, width })
      if (level === 0) refs.push({ level: 'entries', index, width })
    }
  }
  return refs
}

function readIfPresent(path: string): Uint8Array | undefined {
  try {
    return new Uint8Array(readFileSync(path))
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new BaseError('DATA_DIR_INVALID', `cannot read ${path} in the tiles directory`, {
      details: { path },
      cause: error,
    })
  }
}

export type UpdateTilesDirParameters = {
  db: Queryable
  dir: string
  /** The signed (maybe cosigned) checkpoint to publish: a committed head of this log. */
  note: string
  /** Default: durable atomic writes. */
  writeFile?: TilesDirFileWriter
}

/**
 * Brings `dir` up to the checkpoint `note`: the tiles its tree has and the directory's checkpoint
 * has not, then the checkpoint. DATA_DIR_INVALID when the directory holds another log (its
 * checkpoint's root is not this log's root at that size, or a tile differs) or is ahead of the log.
 */
export async function updateTilesDir({
  db,
  dir,
  note,
  writeFile = writeTilesDirFile,
}: UpdateTilesDirParameters): Promise<{ from: number; to: number; tilesWritten: number }> {
  const head = parseCheckpointText(noteTextOf(note))
  // The checkpoint must state this log's tree, whose tiles are written below.
  if (!equalBytes(fromHex(await getRootAt(db, head.treeSize), 'rootHash', 32), head.rootHash))
    throw new BaseError(
      'INTERNAL',
      `the checkpoint to publish (size ${head.treeSize}) is not this log's tree`,
      {
        details: { treeSize: head.treeSize },
      },
    )
  const checkpointPath = join(dir, 'checkpoint')
  const previousBytes = readIfPresent(checkpointPath)
  let from = 0
  if (previousBytes !== undefined) {
    const previous = parseCheckpointText(noteTextOf(new TextDecoder().decode(previousBytes)))
    const { treeSize } = await getCheckpoint(db)
    if (previous.treeSize > treeSize)
      throw new BaseError(
        'DATA_DIR_INVALID',
        `the tiles directory ${dir} holds a tree of ${previous.treeSize} entries, more than the log's ${treeSize}: it is another log's, or the database was restored from an older backup`,
        { details: { dir, directorySize: previous.treeSize, logSize: treeSize } },
      )
    const root = fromHex(await getRootAt(db, previous.treeSize), 'rootHash', 32)
    if (!equalBytes(root, previous.rootHash))
      throw new BaseError(
        'DATA_DIR_INVALID',
        `the tiles directory ${dir} holds another log: its checkpoint's root at size ${previous.treeSize} is not this log's`,
        { details: { dir, treeSize: previous.treeSize } },
      )
    if (previous.treeSize > head.treeSize)
      return { from: previous.treeSize, to: previous.treeSize, tilesWritten: 0 }
    from = previous.treeSize
  }
  let tilesWritten = 0
  for (const ref of tilesBetween(from, head.treeSize)) {
    const path = join(dir, 'tile', tilePath(ref))
    const bytes = await readTile(db, ref)
    const present = readIfPresent(path)
    if (present !== undefined) {
      // Written by a run that stopped before its checkpoint: a tile never changes.
      if (!equalBytes(present, bytes))
        throw new BaseError(
          'DATA_DIR_INVALID',
          `the tiles directory ${dir} holds another log: ${path} differs from this log's tile`,
          { details: { dir, tile: tilePath(ref) } },
        )
      continue
    }
    writeFile(path, bytes)
    tilesWritten++
  }
  if (
    head.treeSize !== from ||
    previousBytes === undefined ||
    new TextDecoder().decode(previousBytes) !== note
  )
    writeFile(checkpointPath, new TextEncoder().encode(note))
  if (tilesWritten > 0) log.debug({ dir, from, to: head.treeSize, tilesWritten }, 'tiles written')
  return { from, to: head.treeSize, tilesWritten }
}
