/**
 * Verifying an event from C2SP tiles alone (issue 17 item 4), the one procedure both
 * `carchain verify --tiles` and the dashboard's in-browser check run: pure code, no node:* import,
 * no Buffer, hashing passed in (node:crypto in the CLI, @noble/hashes in the browser).
 *
 * The client knows, out of band, only the log's origin, its note verifier key and a root anchored
 * on chain; the tiles server is not trusted. In order (`TILES_STEPS`):
 *
 *  1. checkpoint — `<tiles>/checkpoint` is a signed note that verifies under the pinned key, with the
 *     pinned origin (NOTE_INVALID, LOG_UNTRUSTED); other signature lines are listed as cosignatures,
 *     and verified when the witness's key is given.
 *  2. anchor — the checkpoint and the anchored root are one history: the same root at the same
 *     size, or a consistency proof from the anchored tree to the checkpoint's, assembled from the hash
 *     tiles (PROOF_INVALID); a checkpoint older than the anchor is a rollback and one of the same size
 *     with another root a fork (LOG_UNTRUSTED).
 *  3. entry — the event's entry from its entry bundle, whose bytes hash to the event id
 *     (PROOF_INVALID), at an index below the anchored size (NOT_FOUND otherwise).
 *  4. inclusion — the inclusion proof from the hash tiles leads to the root anchored on chain, and
 *     to the signed checkpoint's (PROOF_INVALID).
 *
 * Every read is bounded by what the C2SP formats allow (`maxTileBytes`, MAX_NOTE_BYTES) before it is
 * parsed; a larger answer stops with TILE_TOO_LARGE.
 */
import { readBoundedBody } from '../bounded-body.ts'
import { BaseError } from '../errors.ts'
import { equalBytes } from './bytes.ts'
import type { MerkleHashing } from './rfc9162.ts'
import {
  type CheckpointNote,
  MAX_NOTE_BYTES,
  noteTextOf,
  openCheckpointNote,
  parseVerifierKey,
  verifyCosignatures,
} from './signed-note.ts'
import {
  maxTileBytes,
  parseEntryBundle,
  TILE_WIDTH,
  type TileReader,
  tilePath,
  tileProofs,
} from './tlog-tiles.ts'

/** Reads `path` below the tiles' URL (`checkpoint`, `tile/…`), at most `maxBytes` (TILE_TOO_LARGE). */
export type TilesGet = (path: string, maxBytes: number) => Promise<Uint8Array>

/** The steps of `verifyFromTiles`, in order, with what each establishes. */
export const TILES_STEPS = {
  checkpoint: 'The checkpoint is signed by the pinned verifier key under the pinned origin',
  anchor: 'The checkpoint and the root anchored on chain are one history',
  entry: 'The entry from the entry bundle hashes to the event id',
  inclusion: 'The inclusion proof from the hash tiles leads to the anchored root and the checkpoint',
} as const

export type TilesStep = keyof typeof TILES_STEPS

/** A signature line of the checkpoint other than the log's own. */
export type SeenCosignature = {
  name: string
  /** The 4-byte key id, hex. */
  keyId: string
  /** Verified with a witness key the caller gave; else only seen. */
  verified: boolean
  /** POSIX seconds, when verified. */
  timestamp?: number
}

export type VerifyFromTilesParameters = {
  /** Reads the tiles (`httpTilesGet`, or a directory). */
  get: TilesGet
  /** The log's origin, known out of band. */
  origin: string
  /** The log's note verifier key `<name>+<hex>+<base64>`, known out of band. */
  verifierKey: string
  /** The newest root anchored on chain for this log, read on chain (treeSize > 0). */
  anchored: { treeSize: number; rootHash: Uint8Array }
  /** The event id (its RFC 9162 leaf hash). */
  leafHash: Uint8Array
  /** The event's leaf index, when known: one entry bundle is read instead of searching them. */
  leafIndex?: number
  /** The RFC 9162 hashing to use. */
  hashing: MerkleHashing
  /** Witness cosigner keys (type 0x04 verifier keys) whose cosignatures to verify. */
  witnessKeys?: readonly string[]
  /** Called as each step passes. */
  onStep?: (step: TilesStep, detail: string) => void
}

export type VerifyFromTilesReturnType = {
  checkpoint: CheckpointNote
  cosignatures: SeenCosignature[]
  leafIndex: number
  /** The entry's bytes (the canonical envelope). */
  entry: Uint8Array
  /** The inclusion proof under the anchored root. */
  auditPath: Uint8Array[]
}

const hex = (bytes: Uint8Array) => `0x${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`

/** Verifies the event `leafHash` from tiles (see the module comment); throws a BaseError with a stable code. */
export async function verifyFromTiles(
  parameters: VerifyFromTilesParameters,
): Promise<VerifyFromTilesReturnType> {
  const { get, origin, anchored, leafHash, hashing } = parameters
  const step = parameters.onStep ?? (() => {})
  const { inclusionProofFromTiles, consistencyProofFromTiles } = tileProofs(hashing)
  if (!Number.isSafeInteger(anchored.treeSize) || anchored.treeSize < 1)
    throw new BaseError('NOT_FOUND', 'nothing is anchored on chain for this log yet')

  // 1. The checkpoint, under the pinned key and origin only.
  const noteBytes = await get('checkpoint', MAX_NOTE_BYTES)
  let note: string
  try {
    note = new TextDecoder('utf-8', { fatal: true }).decode(noteBytes)
  } catch {
    throw new BaseError('NOTE_INVALID', 'the checkpoint is not UTF-8 text')
  }
  const checkpoint = openCheckpointNote(note, parameters.verifierKey)
  if (checkpoint.origin !== origin)
    throw new BaseError('LOG_UNTRUSTED', `the checkpoint is of log ${checkpoint.origin}, not ${origin}`, {
      details: { origin: checkpoint.origin, expected: origin },
    })
  const cosignatures = seenCosignatures(note, parameters.verifierKey, parameters.witnessKeys ?? [])
  step('checkpoint', `size ${checkpoint.treeSize}, root ${hex(checkpoint.rootHash)}`)

  // 2. One history with the anchored root.
  const read: TileReader = (ref) => get(`tile/${tilePath(ref)}`, maxTileBytes(ref))
  const nodes = new Map<string, Uint8Array>()
  if (checkpoint.treeSize < anchored.treeSize)
    throw new BaseError(
      'LOG_UNTRUSTED',
      `the tiles' checkpoint (size ${checkpoint.treeSize}) is older than the root anchored on chain (size ${anchored.treeSize}): a stale or rolled-back copy`,
      { details: { checkpointSize: checkpoint.treeSize, anchoredSize: anchored.treeSize } },
    )
  if (checkpoint.treeSize === anchored.treeSize) {
    if (!equalBytes(checkpoint.rootHash, anchored.rootHash))
      throw new BaseError(
        'LOG_UNTRUSTED',
        `the signed checkpoint of size ${checkpoint.treeSize} has another root than the one anchored on chain: the log shows two histories`,
        {
          details: {
            treeSize: anchored.treeSize,
            checkpointRoot: hex(checkpoint.rootHash),
            anchoredRoot: hex(anchored.rootHash),
          },
        },
      )
    step('anchor', `the checkpoint is the anchored tree of ${anchored.treeSize}`)
  } else {
    const proof = await consistencyProofFromTiles(anchored.treeSize, checkpoint.treeSize, read, nodes)
    if (
      !hashing.verifyConsistency({
        first: anchored.treeSize,
        second: checkpoint.treeSize,
        firstHash: anchored.rootHash,
        secondHash: checkpoint.rootHash,
        proof,
      })
    )
      throw new BaseError(
        'PROOF_INVALID',
        `the tiles do not show that the signed checkpoint (size ${checkpoint.treeSize}) extends the tree of ${anchored.treeSize} anchored on chain`,
        {
          details: { reason: 'consistency', treeSize: checkpoint.treeSize, anchoredSize: anchored.treeSize },
        },
      )
    step(
      'anchor',
      `consistency proof of ${proof.length} hashes from the anchored tree of ${anchored.treeSize} to the checkpoint's ${checkpoint.treeSize}`,
    )
  }

  // 3. The entry, from the entry bundles of the anchored tree.
  const { leafIndex, entry } = await findEntry(parameters, read)
  step('entry', `entry ${leafIndex}, ${entry.length} bytes, hashes to ${hex(leafHash)}`)

  // 4. Inclusion, under the anchored root and under the signed checkpoint.
  const proveUnder = async (
    head: { treeSize: number; rootHash: Uint8Array },
    reason: string,
    what: string,
  ) => {
    const proof = await inclusionProofFromTiles(leafIndex, head.treeSize, read, nodes)
    if (
      !hashing.verifyInclusion({
        leafIndex,
        treeSize: head.treeSize,
        leafHash,
        proof,
        rootHash: head.rootHash,
      })
    )
      throw new BaseError('PROOF_INVALID', `the tiles do not prove event ${hex(leafHash)} under ${what}`, {
        details: { reason, leafIndex, treeSize: head.treeSize },
      })
    return proof
  }
  const auditPath = await proveUnder(anchored, 'inclusion', 'the root anchored on chain')
  const underCheckpoint = await proveUnder(checkpoint, 'checkpoint', 'their signed checkpoint')
  step(
    'inclusion',
    `leaf ${leafIndex}: ${auditPath.length} hashes to the anchored root, ${underCheckpoint.length} to the checkpoint's`,
  )
  return { checkpoint, cosignatures, leafIndex, entry, auditPath }
}

/** The event's entry: at `leafIndex` when given, else searched bundle by bundle in the anchored tree. */
async function findEntry(
  { anchored, leafHash, leafIndex, hashing }: VerifyFromTilesParameters,
  read: TileReader,
): Promise<{ leafIndex: number; entry: Uint8Array }> {
  if (leafIndex !== undefined && (!Number.isSafeInteger(leafIndex) || leafIndex < 0))
    throw new BaseError('INVALID_ARGUMENT', 'the leaf index must be a whole number', {
      details: { leafIndex },
    })
  if (leafIndex !== undefined && leafIndex >= anchored.treeSize)
    throw new BaseError(
      'NOT_FOUND',
      `entry ${leafIndex} is not in the tree of ${anchored.treeSize} anchored on chain yet`,
      { details: { leafIndex, treeSize: anchored.treeSize } },
    )
  const first = leafIndex === undefined ? 0 : Math.floor(leafIndex / TILE_WIDTH)
  for (let bundle = first; bundle * TILE_WIDTH < anchored.treeSize; bundle++) {
    const width = Math.min(TILE_WIDTH, anchored.treeSize - bundle * TILE_WIDTH)
    const entries = parseEntryBundle(await read({ level: 'entries', index: bundle, width }))
    if (entries.length !== width)
      throw new BaseError(
        'PROOF_INVALID',
        `entry bundle ${bundle} holds ${entries.length} entries, not ${width}`,
        { details: { reason: 'bundle', bundle, entries: entries.length, width } },
      )
    if (leafIndex !== undefined) {
      const entry = entries[leafIndex - bundle * TILE_WIDTH]!
      if (!equalBytes(hashing.hashLeaf(entry), leafHash))
        throw new BaseError(
          'PROOF_INVALID',
          `entry ${leafIndex} of the tiles does not hash to event ${hex(leafHash)}`,
          { details: { reason: 'entry', leafIndex } },
        )
      return { leafIndex, entry }
    }
    const i = entries.findIndex((entry) => equalBytes(hashing.hashLeaf(entry), leafHash))
    if (i >= 0) return { leafIndex: bundle * TILE_WIDTH + i, entry: entries[i]! }
  }
  throw new BaseError(
    'NOT_FOUND',
    `event ${hex(leafHash)} is not in the tree of ${anchored.treeSize} anchored on chain`,
    {
      details: { leafHash: hex(leafHash), treeSize: anchored.treeSize },
    },
  )
}

/**
 * The signature lines of `note` other than the log key's: each witness cosignature it carries,
 * verified when its key is among `witnessKeys` (NOTE_INVALID if such a line does not verify).
 */
export function seenCosignatures(
  note: string,
  logKey: string,
  witnessKeys: readonly string[],
): SeenCosignature[] {
  const text = noteTextOf(note)
  const log = parseVerifierKey(logKey)
  const lines = note.slice(text.length + 1)
  const verified = new Map<string, number>()
  for (const witness of witnessKeys)
    for (const { line, timestamp } of verifyCosignatures(lines, text, witness)) verified.set(line, timestamp)
  const seen: SeenCosignature[] = []
  for (const line of lines.slice(0, -1).split('\n')) {
    // openCheckpointNote checked the form: "— <name> <base64>".
    const [, name = '', blob = ''] = line.split(' ')
    const keyId = hex(Uint8Array.from(atob(blob).slice(0, 4), (c) => c.charCodeAt(0))).slice(2)
    if (name === log.name && keyId === hex(log.keyId).slice(2)) continue
    const timestamp = verified.get(`${line}\n`)
    seen.push({ name, keyId, verified: timestamp !== undefined, ...(timestamp ? { timestamp } : {}) })
  }
  return seen
}

/**
 * A `TilesGet` over HTTP(S) for the tiles at `baseUrl` (a node's `<node>/log`, a CDN, a static
 * server): GET with a timeout; NODE_UNREACHABLE when nothing answers, NOT_FOUND for another status
 * than 200, TILE_TOO_LARGE past `maxBytes`.
 */
export function httpTilesGet(baseUrl: string, timeoutMs = 30_000): TilesGet {
  const base = baseUrl.replace(/\/+$/, '')
  return async (path, maxBytes) => {
    const url = `${base}/${path}`
    let response: Response
    try {
      response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) })
    } catch (error) {
      throw new BaseError('NODE_UNREACHABLE', `no tiles server answers at ${url}`, {
        details: { url },
        cause: error,
      })
    }
    if (!response.ok) {
      await response.body?.cancel()
      throw new BaseError('NOT_FOUND', `GET ${url} answered ${response.status}`, {
        details: { url, status: response.status },
      })
    }
    return readBoundedBody(
      response,
      maxBytes,
      () =>
        new BaseError('TILE_TOO_LARGE', `${url} sent more than the ${maxBytes} bytes it may hold`, {
          details: { url, maxBytes },
        }),
    )
  }
}
