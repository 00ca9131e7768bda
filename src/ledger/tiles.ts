/**
 * The log as C2SP static tiles (c2sp.org/tlog-tiles), served by the node: hash tiles of height 8
 * and entry bundles, computed from the stored tree (src/ledger/store.ts). docs/transparency.md
 * describes the paths. The pure tile code (paths, bundles, proofs from tiles) is
 * src/ledger/tlog-tiles.ts, which the dashboard runs too; this module adds the store's side and the
 * proofs over node:crypto's hashing.
 */

import type { Queryable } from '../db/database.ts'
import { BaseError } from '../errors.ts'
import { HASH_BYTES, nodeMerkle } from './merkle.ts'
import { getCheckpoint, getEntries, getSubtreeHashes } from './store.ts'
import {
  hashesAtLevel,
  MAX_ENTRY_BYTES,
  TILE_HEIGHT,
  TILE_WIDTH,
  type TileRef,
  tilePath,
  tileProofs,
} from './tlog-tiles.ts'

export {
  encodeTileIndex,
  MAX_TILE_LEVEL,
  parseEntryBundle,
  parseTilePath,
  TILE_HEIGHT,
  TILE_WIDTH,
  type TileReader,
  type TileRef,
  tilePath,
} from './tlog-tiles.ts'

/** Proofs from tiles, hashed with node:crypto (`tileProofs` of src/ledger/tlog-tiles.ts). */
export const { inclusionProofFromTiles, consistencyProofFromTiles } = tileProofs(nodeMerkle)

/**
 * The bytes of a tile or entry bundle, read from the committed tree; NOT_FOUND when the tree
 * does not (yet) hold all of it.
 */
export async function readTile(db: Queryable, ref: TileRef): Promise<Uint8Array> {
  const { treeSize } = await getCheckpoint(db)
  const leafLevel = ref.level === 'entries' ? 0 : ref.level
  const start = ref.index * TILE_WIDTH
  const available = hashesAtLevel(treeSize, leafLevel)
  if (start + ref.width > available) {
    throw new BaseError('NOT_FOUND', `tile ${tilePath(ref)} is beyond the log (tree size ${treeSize})`, {
      details: { tile: tilePath(ref), treeSize },
    })
  }
  if (ref.level === 'entries') return entryBundle(db, start, start + ref.width)
  const hashes = await getSubtreeHashes(db, ref.level * TILE_HEIGHT, start, ref.width)
  const tile = new Uint8Array(ref.width * HASH_BYTES)
  hashes.forEach((hash, i) => {
    tile.set(hash, i * HASH_BYTES)
  })
  return tile
}

/** Entries [start, end) as big-endian uint16 length-prefixed leaf inputs (canonical envelopes). */
async function entryBundle(db: Queryable, start: number, end: number): Promise<Uint8Array> {
  const { entries } = await getEntries(db, start, end)
  const total = entries.reduce((sum, entry) => sum + 2 + entry.leafInput.length, 0)
  const bundle = new Uint8Array(total)
  let offset = 0
  for (const { index, leafInput } of entries) {
    if (leafInput.length > MAX_ENTRY_BYTES)
      throw new BaseError(
        'INTERNAL',
        `entry ${index} is ${leafInput.length} bytes, more than an entry bundle holds`,
        {
          details: { index, bytes: leafInput.length },
        },
      )
    bundle[offset] = leafInput.length >> 8
    bundle[offset + 1] = leafInput.length & 0xff
    bundle.set(leafInput, offset + 2)
    offset += 2 + leafInput.length
  }
  return bundle
}
