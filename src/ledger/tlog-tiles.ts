/**
 * C2SP static tiles (c2sp.org/tlog-tiles) as pure code, the same in Node and in the browser (no
 * node:* import): tile paths, entry bundles, and RFC 9162 proofs assembled from tiles alone. The
 * node serves and writes tiles with src/ledger/tiles.ts; `carchain verify --tiles` and the
 * dashboard's in-browser check (src/ledger/tiles-verify.ts) read them with this.
 *
 * The n-th tile of level l holds MTH(D[(n·256 + i)·256^l : (n·256 + i + 1)·256^l]) for i < 256:
 * the perfect subtrees of Merkle level 8·l. A partial tile holds the first W of them, present once
 * the tree holds them, and is byte for byte the prefix of the full tile.
 */
import { BaseError } from '../errors.ts'
import {
  consistencyProofPlan,
  HASH_BYTES,
  inclusionProofPlan,
  type MerkleHashing,
  type NodeRef,
  type ProofPlan,
} from './rfc9162.ts'

/** Hashes in a full tile (tile height 8). */
export const TILE_WIDTH = 256
/** Merkle levels per tile level. */
export const TILE_HEIGHT = 8
/** Highest tile level the spec allows. */
export const MAX_TILE_LEVEL = 63

/** A tile: `level` is a tile level or 'entries'; `width` < 256 for a partial tile. */
export type TileRef = { level: number | 'entries'; index: number; width: number }

function malformed(path: string, why: string): BaseError {
  return new BaseError(
    'INVALID_ARGUMENT',
    `malformed tile path ${JSON.stringify(path.slice(0, 200))}: ${why}`,
    {
      details: { path: path.slice(0, 200) },
    },
  )
}

/** `x001/x234/067` for 1234067: three-digit groups, all but the last prefixed with `x`. */
export function encodeTileIndex(index: number): string {
  const digits = String(index)
  const padded = digits.padStart(Math.ceil(digits.length / 3) * 3, '0')
  const groups = padded.match(/.{3}/g)!
  return groups.map((group, i) => (i < groups.length - 1 ? `x${group}` : group)).join('/')
}

/** The path of a tile below `tile/`: `<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]`. */
export function tilePath(ref: TileRef): string {
  const partial = ref.width < TILE_WIDTH ? `.p/${ref.width}` : ''
  return `${ref.level}/${encodeTileIndex(ref.index)}${partial}`
}

/**
 * Parses a path below `tile/` strictly (every outside path is hostile): one spelling per tile,
 * so a cache or a directory never holds the same tile under two names. INVALID_ARGUMENT otherwise.
 */
export function parseTilePath(path: string): TileRef {
  const parts = path.split('/')
  const levelText = parts[0]!
  let level: number | 'entries'
  if (levelText === 'entries') level = 'entries'
  else if (/^(0|[1-9][0-9]?)$/.test(levelText) && Number(levelText) <= MAX_TILE_LEVEL)
    level = Number(levelText)
  else throw malformed(path, `the level must be 0–${MAX_TILE_LEVEL} without leading zeros, or "entries"`)
  let rest = parts.slice(1)
  let width = TILE_WIDTH
  if (rest.length >= 2 && rest[rest.length - 2]!.endsWith('.p')) {
    const widthText = rest[rest.length - 1]!
    if (!/^[1-9][0-9]{0,2}$/.test(widthText) || Number(widthText) > TILE_WIDTH - 1)
      throw malformed(path, 'a partial tile width must be 1–255 without leading zeros')
    width = Number(widthText)
    rest = [...rest.slice(0, -2), rest[rest.length - 2]!.slice(0, -2)]
  }
  if (rest.length === 0 || rest.length > 6)
    throw malformed(path, 'the index must be 1–6 groups of three digits')
  for (let i = 0; i < rest.length; i++) {
    const pattern = i < rest.length - 1 ? /^x[0-9]{3}$/ : /^[0-9]{3}$/
    if (!pattern.test(rest[i]!))
      throw malformed(path, 'the index is groups of three digits, all but the last prefixed with x')
  }
  const index = Number(rest.map((group) => group.replace('x', '')).join(''))
  if (!Number.isSafeInteger(index)) throw malformed(path, 'the index is too large')
  const ref: TileRef = { level, index, width }
  // Leading zero groups (x000/001) would be a second name of 001.
  if (tilePath(ref) !== path) throw malformed(path, 'the index has leading zero groups')
  return ref
}

/** How many hashes of tile level `level` a tree of `treeSize` holds: floor(size / 256^level). */
export function hashesAtLevel(treeSize: number, level: number): number {
  return Math.floor(treeSize / TILE_WIDTH ** level)
}

/** Splits an entry bundle into its entries; INVALID_ARGUMENT when the lengths do not add up. */
export function parseEntryBundle(bundle: Uint8Array): Uint8Array[] {
  const entries: Uint8Array[] = []
  let offset = 0
  while (offset < bundle.length) {
    if (offset + 2 > bundle.length)
      throw new BaseError('INVALID_ARGUMENT', 'entry bundle ends inside a length')
    const length = (bundle[offset]! << 8) | bundle[offset + 1]!
    if (offset + 2 + length > bundle.length)
      throw new BaseError('INVALID_ARGUMENT', 'entry bundle ends inside an entry')
    entries.push(bundle.subarray(offset + 2, offset + 2 + length))
    offset += 2 + length
  }
  return entries
}

/** The most an entry bundle's entry may hold: its length is a big-endian uint16. */
export const MAX_ENTRY_BYTES = 0xffff

/** The most a tile may hold: 256 hashes, or 256 entries of at most 65,535 bytes with their lengths. */
export function maxTileBytes(ref: TileRef): number {
  return ref.width * (ref.level === 'entries' ? 2 + MAX_ENTRY_BYTES : HASH_BYTES)
}

/** Reads a tile's bytes (over HTTP, from a directory, from the store…). */
export type TileReader = (ref: TileRef) => Promise<Uint8Array>

/** The tile that holds hash `position` of tile level `level` in a tree of `treeSize`. */
function tileFor(level: number, position: number, treeSize: number): TileRef {
  const index = Math.floor(position / TILE_WIDTH)
  const width = Math.min(TILE_WIDTH, hashesAtLevel(treeSize, level) - index * TILE_WIDTH)
  return { level, index, width }
}

/** Proofs assembled from tiles, over one RFC 9162 hashing (`tileProofs`). */
export type TileProofs = {
  /**
   * The RFC 9162 §2.1.3 inclusion proof of leaf `leafIndex` in the tree of `treeSize`, assembled
   * from tiles alone: each perfect subtree the proof needs is hashed up from the tile hashes below
   * it. A tile shorter than the tree says it must be is refused (INVALID_ARGUMENT).
   *
   * `nodes` keeps the subtree hashes computed on the way (by Merkle level and index; a perfect
   * subtree's hash never changes as the tree grows): a client that proves many leaves from the same
   * tiles passes one map to every call and hashes each tile's interior once, not once per proof.
   * Keep one map per log; what it holds came from that log's tiles, so every proof assembled with
   * it still has to verify against a checkpoint.
   */
  inclusionProofFromTiles(
    leafIndex: number,
    treeSize: number,
    read: TileReader,
    nodes?: Map<string, Uint8Array>,
  ): Promise<Uint8Array[]>
  /**
   * The RFC 9162 §2.1.4 consistency proof from the tree of `first` to the tree of `second`,
   * assembled from the tiles of the tree of `second` alone (as `inclusionProofFromTiles`): what a
   * witness or monitor needs to check that a newer checkpoint extends an older one.
   */
  consistencyProofFromTiles(
    first: number,
    second: number,
    read: TileReader,
    nodes?: Map<string, Uint8Array>,
  ): Promise<Uint8Array[]>
}

/** Tile proofs hashed with `hashing` (the node's node:crypto, or `portableMerkle` in a browser). */
export function tileProofs(hashing: MerkleHashing): TileProofs {
  return {
    inclusionProofFromTiles: async (leafIndex, treeSize, read, nodes = new Map()) =>
      proofFromTiles(hashing, inclusionProofPlan(leafIndex, treeSize), treeSize, read, nodes),
    consistencyProofFromTiles: async (first, second, read, nodes = new Map()) =>
      proofFromTiles(hashing, consistencyProofPlan(first, second), second, read, nodes),
  }
}

/** Resolves a proof plan from the tiles of the tree of `treeSize`. */
async function proofFromTiles(
  { hashChildren, foldNodes }: MerkleHashing,
  plan: ProofPlan,
  treeSize: number,
  read: TileReader,
  nodes: Map<string, Uint8Array>,
): Promise<Uint8Array[]> {
  const tiles = new Map<string, Promise<Uint8Array>>()
  const readTileOnce = (ref: TileRef): Promise<Uint8Array> => {
    const key = tilePath(ref)
    let tile = tiles.get(key)
    if (tile === undefined) {
      tile = read(ref).then((bytes) => {
        if (bytes.length !== ref.width * HASH_BYTES)
          throw new BaseError(
            'INVALID_ARGUMENT',
            `tile ${key} has ${bytes.length} bytes, not ${ref.width * HASH_BYTES}`,
            { details: { tile: key, bytes: bytes.length } },
          )
        return bytes
      })
      tiles.set(key, tile)
    }
    return tile
  }
  // A perfect subtree (level, index) lies in one tile of level floor(level / 8): its 2^(level mod 8)
  // hashes there, hashed up.
  const subtree = async ({ level, index }: NodeRef): Promise<Uint8Array> => {
    const known = nodes.get(`${level}/${index}`)
    if (known !== undefined) return known
    const tileLevel = Math.floor(level / TILE_HEIGHT)
    const height = level % TILE_HEIGHT
    const ref = tileFor(tileLevel, index * 2 ** height, treeSize)
    const bytes = await readTileOnce(ref)
    const node = (h: number, i: number): Uint8Array => {
      if (h === 0) {
        const offset = (i - ref.index * TILE_WIDTH) * HASH_BYTES
        return bytes.subarray(offset, offset + HASH_BYTES)
      }
      const key = `${tileLevel * TILE_HEIGHT + h}/${i}`
      let hash = nodes.get(key)
      if (hash === undefined) {
        hash = hashChildren(node(h - 1, 2 * i), node(h - 1, 2 * i + 1))
        nodes.set(key, hash)
      }
      return hash
    }
    const hash = height === 0 ? node(0, index).slice() : node(height, index)
    nodes.set(`${level}/${index}`, hash)
    return hash
  }
  return Promise.all(plan.map(async (refs) => foldNodes(await Promise.all(refs.map(subtree)))))
}
