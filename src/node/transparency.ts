/**
 * The log in the transparency ecosystem's form (docs/transparency.md): the checkpoint as a C2SP
 * signed note and the tree and entries as C2SP static tiles under `/log/`, plus the note key the
 * node signs with, kept in its data dir and made on first start.
 */
import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { Queryable } from '../db/database.ts'
import { BaseError } from '../errors.ts'
import { writeFileAtomic } from '../fs-atomic.ts'
import { fromHex } from '../ledger/bytes.ts'
import { type NoteSigner, noteSigner, signCheckpointNote, verifierKey } from '../ledger/note.ts'
import { withShard } from '../ledger/shards.ts'
import { getCheckpoint } from '../ledger/store.ts'
import { parseTilePath, readTile, TILE_WIDTH } from '../ledger/tiles.ts'
import { logger } from '../log.ts'
import type { NodeContext } from './context.ts'

const log = logger('node.transparency')

/** The note key's file in the data dir: an Ed25519 private key, PKCS#8 PEM, mode 0600. */
export const NOTE_KEY_FILE = 'log-note-key.pem'

/** The default origin: names the deployment (chain, LedgerAnchor, log id), lowercase. */
export function defaultLogOrigin(parameters: {
  chainId: number
  ledgerAnchor: string
  logId: string
}): string {
  return `carchain.local/${parameters.chainId}/${parameters.ledgerAnchor.toLowerCase()}/${parameters.logId.toLowerCase()}`
}

/**
 * The node's note key for `origin`: read from `<dataDir>/log-note-key.pem`, made there if missing —
 * unless `mustExist` (a node joining a deployment must sign with the deployment's key).
 */
export function loadNoteKey(
  dataDir: string,
  origin: string,
  options: { mustExist?: boolean } = {},
): { signer: NoteSigner; created: boolean } {
  const path = join(dataDir, NOTE_KEY_FILE)
  let pem: string
  let created = false
  try {
    pem = readFileSync(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new BaseError('DATA_DIR_INVALID', `cannot read the log's note key ${path}`, {
        details: { path },
        cause: error,
      })
    if (options.mustExist)
      throw new BaseError(
        'DATA_DIR_INVALID',
        `${path} is missing: a node joining a deployment signs with the deployment's note key; copy it from the data dir of the deployment's first node`,
        { details: { path } },
      )
    // The data dir lock is held: no other node writes this file now.
    pem = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
    writeFileAtomic(path, pem)
    created = true
  }
  let key: KeyObject | undefined
  try {
    key = createPrivateKey(pem)
  } catch {
    key = undefined
  }
  if (key?.asymmetricKeyType !== 'ed25519')
    throw new BaseError(
      'DATA_DIR_INVALID',
      `${path} is not an Ed25519 private key (PKCS#8 PEM); restore it from a backup (moving it away makes a new key, which verifiers of the old one refuse)`,
      { details: { path } },
    )
  return { signer: noteSigner(origin, key), created }
}

/** What `GET /v1/chain` tells about the log: its origin and the verifier key of its checkpoints. */
export function logInfo(
  signer: NoteSigner,
  shards = 1,
): {
  origin: string
  verifierKey: string
  shards?: { shard: number; origin: string; verifierKey: string }[]
} {
  if (shards > 1)
    return {
      origin: signer.name,
      verifierKey: verifierKey(signer.name, signer.publicKey),
      shards: Array.from({ length: shards }, (_, shard) => ({
        shard,
        origin: shardOrigin(signer.name, shard),
        verifierKey: verifierKey(shardOrigin(signer.name, shard), signer.publicKey),
      })),
    }
  return { origin: signer.name, verifierKey: verifierKey(signer.name, signer.publicKey) }
}

/**
 * The tiles served (c2sp.org/tlog-tiles): the checkpoint must not be cached beyond seconds, full
 * tiles never change, partial tiles may be dropped once the full one exists.
 */
const CACHE_CHECKPOINT = 'no-cache'
const CACHE_FULL = 'public, max-age=31536000, immutable'
const CACHE_PARTIAL = 'public, max-age=60'

/**
 * The origin of shard `shard`'s checkpoints: the deployment's origin for shard 0 (the log of a
 * one-shard deployment), `<origin>/shards/<shard>` for the others; one note key signs them all.
 */
export function shardOrigin(origin: string, shard: number): string {
  return shard === 0 ? origin : `${origin}/shards/${shard}`
}

/**
 * `/log/…` serves shard 0 (docs/spec.md), `/log/shards/<shard>/…` each other shard, each signed
 * under its own origin (`shardOrigin`).
 */
export function transparencyRoutes(context: NodeContext, signer: NoteSigner) {
  return (app: FastifyInstance) => {
    const shards = context.shards ?? 1
    for (let shard = 0; shard < shards; shard++) {
      const shardSigner =
        shard === 0 ? signer : noteSigner(shardOrigin(signer.name, shard), signer.privateKey)
      shardTileRoutes(
        app,
        withShard(context.db, shard),
        shardSigner,
        shard === 0 ? '/log' : `/log/shards/${shard}`,
      )
    }
  }
}

function shardTileRoutes(app: FastifyInstance, db: Queryable, signer: NoteSigner, prefix: string): void {
  // Ed25519 is deterministic: one signature per tree head, kept until the log grows.
  let last: { treeSize: number; rootHash: string; note: string } | undefined
  const signedCheckpoint = async () => {
    const head = await getCheckpoint(db)
    if (last?.treeSize !== head.treeSize || last.rootHash !== head.rootHash) {
      const note = signCheckpointNote(
        { treeSize: head.treeSize, rootHash: fromHex(head.rootHash, 'rootHash', 32) },
        signer,
      )
      last = { ...head, note }
      log.debug({ treeSize: head.treeSize }, 'signed a new checkpoint')
    }
    return last.note
  }
  app.get(
    `${prefix}/checkpoint`,
    { schema: { summary: 'The log head as a C2SP signed checkpoint (c2sp.org/tlog-checkpoint)' } },
    async (_request, reply) => {
      const note = await signedCheckpoint()
      reply.header('content-type', 'text/plain; charset=utf-8').header('cache-control', CACHE_CHECKPOINT)
      return note
    },
  )
  app.get(
    `${prefix}/tile/*`,
    {
      schema: {
        summary:
          'C2SP tiles (c2sp.org/tlog-tiles): /log/tile/<L>/<N>[.p/<W>] hash tiles, /log/tile/entries/<N>[.p/<W>] entry bundles',
      },
    },
    async (request, reply) => {
      const ref = parseTilePath((request.params as { '*': string })['*'])
      const bytes = await readTile(db, ref)
      reply
        .header('content-type', 'application/octet-stream')
        .header('cache-control', ref.width === TILE_WIDTH ? CACHE_FULL : CACHE_PARTIAL)
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    },
  )
}
