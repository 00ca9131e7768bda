/**
 * The log in the transparency ecosystem's form (docs/transparency.md): the checkpoint as a C2SP
 * signed note and the tree and entries as C2SP static tiles under `/log/`, plus the note key the
 * node signs with, kept in its data dir and made on first start.
 */

import { createPrivateKey, generateKeyPairSync, type KeyObject, randomBytes } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { Address } from 'viem'
import type { Queryable } from '../db/database.ts'
import { BaseError } from '../errors.ts'
import { writeFileAtomic } from '../fs-atomic.ts'
import { Pkcs11KeyStore, type Pkcs11KeyStoreOptions } from '../identity/pkcs11-keystore.ts'
import { getLogId } from '../ledger/anchor.ts'
import type { Hex } from '../ledger/bytes.ts'
import { checkLogOrigin, type NoteSigner, noteSigner, verifierKey } from '../ledger/note.ts'
import { shardPath } from '../ledger/shard-rule.ts'
import { withShard } from '../ledger/shards.ts'
import { parseTilePath, readTile, TILE_WIDTH } from '../ledger/tiles.ts'
import {
  type CheckpointPublisher,
  createShardPublishers,
  type ShardPublishers,
  shardOrigin,
} from './checkpoints.ts'
import type { NodeContext } from './context.ts'

/** The note key's file in the data dir: an Ed25519 private key, PKCS#8 PEM, mode 0600. */
export const NOTE_KEY_FILE = 'log-note-key.pem'

/**
 * The origin of logs made before origins named their log id: names the deployment (chain,
 * LedgerAnchor, log id), lowercase.
 */
export function legacyLogOrigin(parameters: {
  chainId: number
  ledgerAnchor: string
  logId: string
}): string {
  return `carchain.local/${parameters.chainId}/${parameters.ledgerAnchor.toLowerCase()}/${parameters.logId.toLowerCase()}`
}

/**
 * The log's id on chain and the origin its checkpoints carry (docs/ledger.md "The log id"). A new
 * database's log takes its origin (`--log-origin`, else `carchain.local/<chainId>/<LedgerAnchor>/
 * <24 random hex>`), stored once as `logOrigin`, and its id is derived from it
 * (`logIdOfOrigin`). Later starts keep both; a `--log-origin` given later changes the origin the
 * checkpoints carry, not the id (`derivedFrom` then differs from `origin`). A database made before
 * keeps its random id and, by default, the origin `carchain.local/<chainId>/<LedgerAnchor>/<logId>`.
 */
export async function logIdentity(
  db: Queryable,
  parameters: {
    operator: Address
    chainId: number
    ledgerAnchor: string
    configuredOrigin: string | undefined
  },
): Promise<{ logId: Hex; origin: string; derivedFrom: string | undefined }> {
  const setting = async (key: string) =>
    (await db.query<{ value: string }>('select value from node_settings where key = $1', [key])).rows[0]
      ?.value
  let derivedFrom = await setting('logOrigin')
  if (derivedFrom === undefined && (await setting('logId')) === undefined) {
    const candidate =
      parameters.configuredOrigin ??
      `carchain.local/${parameters.chainId}/${parameters.ledgerAnchor.toLowerCase()}/${randomBytes(12).toString('hex')}`
    // Nodes sharing a new database race here: the first origin stored is the log's.
    await db.query(
      `insert into node_settings (key, value) values ('logOrigin', $1) on conflict (key) do nothing`,
      [JSON.stringify(candidate)],
    )
    derivedFrom = await setting('logOrigin')
  }
  const logId = await getLogId(
    db,
    parameters.operator,
    derivedFrom === undefined ? undefined : () => derivedFrom,
  )
  const origin =
    parameters.configuredOrigin ??
    derivedFrom ??
    legacyLogOrigin({ chainId: parameters.chainId, ledgerAnchor: parameters.ledgerAnchor, logId })
  return { logId, origin, derivedFrom }
}

/**
 * The node's note key for `origin`: read from `<dataDir>/log-note-key.pem` (or `file`: a witness
 * keeps its cosigner key the same way), made there if missing — unless `mustExist` (a node
 * joining a deployment must sign with the deployment's key).
 */
export function loadNoteKey(
  dataDir: string,
  origin: string,
  options: { file?: string; mustExist?: boolean } = {},
): { signer: NoteSigner; created: boolean } {
  const path = join(dataDir, options.file ?? NOTE_KEY_FILE)
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

/** The label of the log's note key on a PKCS#11 token. */
export const NOTE_KEY_LABEL = 'carchain-log-note'

/**
 * The node's note key for `origin` on the PKCS#11 token `options` names: the Ed25519 key
 * `carchain-log-note`, made there (sensitive, non-extractable) if missing, signing through
 * CKM_EDDSA; with `mustExist` (`--join`) a token without the key is refused. A data dir whose log
 * already signs with `log-note-key.pem` is refused while the token has no key (CONFIG_INVALID): a
 * new key would change the verifier key its verifiers pinned. `close` ends the token session.
 * A witness keeps its cosigner key the same way (`label` and `file` its own).
 */
export async function openTokenNoteKey(
  options: Pkcs11KeyStoreOptions,
  dataDir: string,
  origin: string,
  {
    mustExist = false,
    label = NOTE_KEY_LABEL,
    file: fileName = NOTE_KEY_FILE,
  }: { mustExist?: boolean; label?: string; file?: string } = {},
): Promise<{ signer: NoteSigner; created: boolean; ref: string; close: () => Promise<void> }> {
  const store = await Pkcs11KeyStore.open(options)
  try {
    const file = join(dataDir, fileName)
    const missing = (await store.find(label)) === undefined
    if (missing && mustExist)
      throw new BaseError(
        'CONFIG_INVALID',
        `the PKCS#11 token has no key "${label}": a node joining a deployment signs with the deployment's note key; point it at the token (or a token holding the same key) of the deployment's first node`,
        { details: { label } },
      )
    if (missing && existsSync(file))
      throw new BaseError(
        'CONFIG_INVALID',
        `${file} is the signing key in use, and the PKCS#11 token has no key "${label}": a new key would change the verifier key; run without --pkcs11-module, or import that key to the token under this label`,
        { details: { file, label } },
      )
    const key = store.ed25519Key(label)
    checkLogOrigin(origin)
    return {
      signer: { name: origin, publicKey: key.publicKey, sign: key.sign },
      created: key.created,
      ref: key.ref,
      close: () => store.close(),
    }
  } catch (error) {
    await store.close()
    throw error
  }
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
 * The `/log/` routes: `/log/…` serves shard 0 (docs/spec.md), `/log/shards/<shard>/…` each other
 * shard, each signed under its own origin (`shardOrigin`). Each shard's checkpoint is what its
 * publisher in `publishers` publishes (cosigned by the witnesses, written to the tiles dir); without
 * `publishers`, the newest head, signed when asked.
 */
export function transparencyRoutes(
  context: Pick<NodeContext, 'db' | 'shards'>,
  signer: NoteSigner,
  publishers?: ShardPublishers,
) {
  return (app: FastifyInstance) => {
    const shards = context.shards ?? 1
    const sources = publishers ?? createShardPublishers(context.db, shards, { signer })
    for (let shard = 0; shard < shards; shard++)
      shardTileRoutes(app, withShard(context.db, shard), sources.shard(shard), shardPath('/log', shard))
  }
}

function shardTileRoutes(
  app: FastifyInstance,
  db: Queryable,
  publisher: CheckpointPublisher,
  prefix: string,
): void {
  app.get(
    `${prefix}/checkpoint`,
    { schema: { summary: 'The log head as a C2SP signed checkpoint (c2sp.org/tlog-checkpoint)' } },
    async (_request, reply) => {
      const note = await publisher.current()
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
