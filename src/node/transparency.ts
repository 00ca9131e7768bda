/**
 * The log in the transparency ecosystem's form (docs/transparency.md): the checkpoint as a C2SP
 * signed note and the tree and entries as C2SP static tiles under `/log/`, plus the note key the
 * node signs with, kept in its data dir and made on first start.
 */
import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { BaseError } from '../errors.ts'
import { writeFileAtomic } from '../fs-atomic.ts'
import { type NoteSigner, noteSigner, verifierKey } from '../ledger/note.ts'
import { parseTilePath, readTile, TILE_WIDTH } from '../ledger/tiles.ts'
import { type CheckpointPublisher, createCheckpointPublisher } from './checkpoints.ts'
import type { NodeContext } from './context.ts'

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
 * The node's note key for `origin`: read from `<dataDir>/log-note-key.pem` (or `file`: a witness
 * keeps its cosigner key the same way), made there if missing.
 */
export function loadNoteKey(
  dataDir: string,
  origin: string,
  file = NOTE_KEY_FILE,
): { signer: NoteSigner; created: boolean } {
  const path = join(dataDir, file)
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
export function logInfo(signer: NoteSigner): { origin: string; verifierKey: string } {
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
 * The `/log/` routes. `/log/checkpoint` serves what `source` publishes (a CheckpointPublisher:
 * cosigned by the witnesses, written to the tiles dir), or, given only the note key, the newest
 * head signed when asked.
 */
export function transparencyRoutes(
  context: Pick<NodeContext, 'db'>,
  source: NoteSigner | CheckpointPublisher,
) {
  const { db } = context
  const publisher = 'current' in source ? source : createCheckpointPublisher(db, { signer: source })
  const signedCheckpoint = () => publisher.current()
  return (app: FastifyInstance) => {
    app.get(
      '/log/checkpoint',
      { schema: { summary: 'The log head as a C2SP signed checkpoint (c2sp.org/tlog-checkpoint)' } },
      async (_request, reply) => {
        const note = await signedCheckpoint()
        reply.header('content-type', 'text/plain; charset=utf-8').header('cache-control', CACHE_CHECKPOINT)
        return note
      },
    )
    app.get(
      '/log/tile/*',
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
}
