/**
 * A minimal transparency-log witness (c2sp.org/tlog-witness, the witness side; cosignatures per
 * c2sp.org/tlog-cosignature, Ed25519 `cosignature/v1`): for each log it is configured with (origin
 * and note verifier key) it keeps the latest size and root it cosigned, durably, and cosigns a new
 * checkpoint only when a consistency proof shows it extends that one. It never goes back: a smaller
 * tree, or another root for the same size, is refused. `carchain witness` serves it over HTTP
 * (src/node/witness-server.ts); docs/transparency.md ("Witnesses") describes the exchange.
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { BaseError, type ErrorCode } from '../errors.ts'
import { makeDirDurable, writeFileAtomic } from '../fs-atomic.ts'
import { equalBytes } from './bytes.ts'
import { EMPTY_ROOT, HASH_BYTES, verifyConsistency } from './merkle.ts'
import {
  COSIGNATURE_TYPE,
  cosignatureLine,
  MAX_NOTE_BYTES,
  type NoteSigner,
  noteTextOf,
  openCheckpointNote,
  parseCheckpointText,
  parseVerifierKey,
  verifierKey,
} from './note.ts'

/** The most consistency proof lines a request may carry (the spec's bound). */
export const MAX_PROOF_LINES = 63
/** The largest request body: the old size line, 63 proof lines and a note. */
export const MAX_ADD_CHECKPOINT_BYTES = 32 + MAX_PROOF_LINES * 45 + 1 + MAX_NOTE_BYTES

/** What the witness keeps per log: the latest checkpoint it cosigned. */
export type WitnessRecord = {
  origin: string
  treeSize: number
  rootHash: Uint8Array
  /** That checkpoint with the log's signature and the witness's cosignature (monitors read it). */
  checkpoint: string
}

/** Where a witness keeps its records; `put` returns only once the record is durable. */
export type WitnessStore = {
  get(origin: string): WitnessRecord | undefined
  put(record: WitnessRecord): void
}

/** The SHA-256 of an origin, lowercase hex: the record's file name and the monitoring path. */
export const originHash = (origin: string) => createHash('sha256').update(origin, 'utf8').digest('hex')

/** Records as JSON files `<dir>/<origin hash>.json`, each written atomically and fsynced. */
export function directoryWitnessStore(dir: string): WitnessStore {
  makeDirDurable(dir)
  const cache = new Map<string, WitnessRecord | undefined>()
  return {
    get(origin) {
      if (cache.has(origin)) return cache.get(origin)
      const path = join(dir, `${originHash(origin)}.json`)
      let record: WitnessRecord | undefined
      try {
        const stored = JSON.parse(readFileSync(path, 'utf8'))
        record = { ...stored, rootHash: new Uint8Array(Buffer.from(stored.rootHash, 'base64')) }
        if (
          record!.origin !== origin ||
          record!.rootHash.length !== HASH_BYTES ||
          !Number.isSafeInteger(record!.treeSize)
        )
          throw new Error('not a witness record of this origin')
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
          throw new BaseError(
            'DATA_DIR_INVALID',
            `the witness record ${path} is unreadable; restore it from a backup`,
            {
              details: { path },
              cause: error,
            },
          )
        record = undefined
      }
      cache.set(origin, record)
      return record
    },
    put(record) {
      const path = join(dir, `${originHash(record.origin)}.json`)
      const stored = { ...record, rootHash: Buffer.from(record.rootHash).toString('base64') }
      writeFileAtomic(path, `${JSON.stringify(stored, null, 2)}\n`)
      cache.set(record.origin, record)
    },
  }
}

/** What `add-checkpoint` answers: 200 with cosignature lines, or an error with its status. */
export type AddCheckpointAnswer = { status: 200; body: string }

function refuse(code: ErrorCode, message: string, details: Record<string, unknown> = {}): BaseError {
  return new BaseError(code, message, { details })
}

/** The parts of an `add-checkpoint` body; INVALID_ARGUMENT when it is not of that form. */
export function parseAddCheckpoint(body: string): { oldSize: number; proof: Uint8Array[]; note: string } {
  const malformed = (why: string) => refuse('INVALID_ARGUMENT', `malformed add-checkpoint request: ${why}`)
  const firstBreak = body.indexOf('\n')
  const oldLine = /^old (0|[1-9][0-9]{0,15})$/.exec(body.slice(0, Math.max(firstBreak, 0)))
  if (firstBreak < 0 || !oldLine || !Number.isSafeInteger(Number(oldLine[1])))
    throw malformed('the first line must be "old <size>", the size a decimal without leading zeros')
  const proof: Uint8Array[] = []
  let offset = firstBreak + 1
  for (;;) {
    const end = body.indexOf('\n', offset)
    if (end < 0) throw malformed('no empty line before the checkpoint')
    const line = body.slice(offset, end)
    offset = end + 1
    if (line === '') break
    if (proof.length === MAX_PROOF_LINES)
      throw malformed(`more than ${MAX_PROOF_LINES} consistency proof lines`)
    const hash = new Uint8Array(Buffer.from(line, 'base64'))
    if (hash.length !== HASH_BYTES || Buffer.from(hash).toString('base64') !== line)
      throw malformed('a consistency proof line is not one base64 SHA-256 hash')
    proof.push(hash)
  }
  return { oldSize: Number(oldLine[1]), proof, note: body.slice(offset) }
}

export type Witness = {
  /** The witness's cosigner verifier key (`<name>+<hex>+<base64(0x04 ‖ key)>`). */
  readonly verifierKey: string
  /** The logs it witnesses: origin → the log's note verifier key. */
  readonly logs: ReadonlyMap<string, string>
  /**
   * Handles an `add-checkpoint` body: the cosignature lines, or a BaseError whose code maps to the
   * spec's status (INVALID_ARGUMENT 400, WITNESS_SIGNATURE_INVALID 403, WITNESS_LOG_UNKNOWN 404,
   * WITNESS_SIZE_CONFLICT 409 with `details.size`, WITNESS_INCONSISTENT 422).
   */
  addCheckpoint(body: string): Promise<AddCheckpointAnswer>
  /** The latest checkpoint cosigned for the log whose origin hashes to `hash`, if any. */
  checkpoint(hash: string): string | undefined
}

export type CreateWitnessParameters = {
  /** The cosigner key; its name is the witness's name. */
  signer: NoteSigner
  /** The logs' note verifier keys (each names its origin). */
  logs: readonly string[]
  store: WitnessStore
  /** POSIX seconds (tests pin it). */
  now?: () => number
}

export function createWitness({
  signer,
  logs,
  store,
  now = () => Math.floor(Date.now() / 1000),
}: CreateWitnessParameters): Witness {
  const byOrigin = new Map<string, string>()
  for (const key of logs) byOrigin.set(parseVerifierKey(key).name, key)
  const byHash = new Map([...byOrigin.keys()].map((origin) => [originHash(origin), origin]))
  // `add` runs synchronously from the check to the durable record, so no other request of this
  // process interleaves (the spec's rollback race); the data dir lock keeps other processes out.
  const add = (oldSize: number, proof: Uint8Array[], note: string, origin: string, logKey: string) => {
    let checkpoint: ReturnType<typeof openCheckpointNote>
    try {
      checkpoint = openCheckpointNote(note, logKey)
    } catch (error) {
      throw new BaseError(
        'WITNESS_SIGNATURE_INVALID',
        `the checkpoint carries no valid signature by ${origin}'s key`,
        {
          details: { origin },
          cause: error,
        },
      )
    }
    const { treeSize, rootHash } = checkpoint
    if (oldSize > treeSize)
      throw refuse(
        'INVALID_ARGUMENT',
        `the old size ${oldSize} is larger than the checkpoint's ${treeSize}`,
        {
          oldSize,
          treeSize,
        },
      )
    const record = store.get(origin)
    const size = record?.treeSize ?? 0
    if (oldSize !== size)
      throw refuse(
        'WITNESS_SIZE_CONFLICT',
        `the witness last cosigned a tree of ${size} entries of ${origin}`,
        {
          size,
        },
      )
    if (treeSize === 0 && !equalBytes(rootHash, EMPTY_ROOT))
      throw refuse('WITNESS_INCONSISTENT', 'a checkpoint of size 0 must have the empty tree’s root')
    if (oldSize === 0 && proof.length > 0)
      throw refuse('WITNESS_INCONSISTENT', 'a proof from the empty tree must be empty')
    if (
      record !== undefined &&
      oldSize > 0 &&
      !verifyConsistency({
        first: oldSize,
        second: treeSize,
        firstHash: record.rootHash,
        secondHash: rootHash,
        proof,
      })
    )
      throw refuse(
        'WITNESS_INCONSISTENT',
        oldSize === treeSize
          ? `another root for the tree of ${treeSize} entries the witness cosigned: a fork`
          : `the consistency proof from ${oldSize} to ${treeSize} does not verify`,
        { oldSize, treeSize },
      )
    const text = noteTextOf(note)
    const line = cosignatureLine(text, now(), signer)
    // The log's own signature (verified above) goes with the record; other signatures do not.
    const { keyId } = parseVerifierKey(logKey)
    const logLines = note
      .slice(text.length + 1, -1)
      .split('\n')
      .filter((signature) => {
        const [dash, name, blob] = signature.split(' ')
        return (
          dash === '—' &&
          name === origin &&
          equalBytes(Buffer.from(blob ?? '', 'base64').subarray(0, 4), keyId)
        )
      })
    store.put({ origin, treeSize, rootHash, checkpoint: `${text}\n${logLines.join('\n')}\n${line}` })
    return { status: 200 as const, body: line }
  }

  return {
    verifierKey: verifierKey(signer.name, signer.publicKey, COSIGNATURE_TYPE),
    logs: byOrigin,
    async addCheckpoint(body) {
      const { oldSize, proof, note } = parseAddCheckpoint(body)
      let origin: string
      try {
        origin = parseCheckpointText(noteTextOf(note)).origin
      } catch (error) {
        throw new BaseError(
          'INVALID_ARGUMENT',
          'malformed add-checkpoint request: the checkpoint is not one',
          {
            cause: error,
          },
        )
      }
      const logKey = byOrigin.get(origin)
      if (logKey === undefined)
        throw refuse('WITNESS_LOG_UNKNOWN', `this witness does not witness ${origin}`, { origin })
      return add(oldSize, proof, note, origin, logKey)
    },
    checkpoint(hash) {
      const origin = byHash.get(hash)
      return origin === undefined ? undefined : store.get(origin)?.checkpoint
    },
  }
}
