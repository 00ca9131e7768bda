/**
 * The log's side of c2sp.org/tlog-witness: each new checkpoint goes to every configured witness's
 * `add-checkpoint` with the consistency proof from the size that witness last cosigned, and the
 * cosignatures that verify with the witness's key are added to the published checkpoint.
 * docs/transparency.md ("Witnesses").
 */
import { readBoundedBody } from '../bounded-body.ts'
import type { Queryable } from '../db/database.ts'
import { BaseError, toBaseError } from '../errors.ts'
import { fromHex } from '../ledger/bytes.ts'
import {
  COSIGNATURE_TYPE,
  MAX_NOTE_BYTES,
  noteTextOf,
  parseCheckpointText,
  parseVerifierKey,
  verifyCosignatures,
} from '../ledger/note.ts'
import { getConsistencyProof } from '../ledger/store.ts'
import { logger } from '../log.ts'

const log = logger('node.witnesses')

/** How long the node waits for one witness answer. */
const WITNESS_TIMEOUT_MS = 10_000

/** A witness the node submits its checkpoints to. */
export type Witness = {
  /** The submission prefix: `<url>/add-checkpoint` is posted to. */
  readonly url: string
  /** The witness's cosigner verifier key (`<name>+<hex>+<base64(0x04 ‖ key)>`). */
  readonly verifierKey: string
  /** The size the node believes the witness last cosigned (learnt from its 409 answers). */
  knownSize: number
}

/** Parses `--witness URL=VERIFIERKEY` (the URL holds no `=`); CONFIG_INVALID otherwise. */
export function parseWitness(value: string): Witness {
  const split = value.indexOf('=')
  const url = value.slice(0, split)
  const key = value.slice(split + 1)
  const refuse = (why: string, cause?: unknown) =>
    new BaseError('CONFIG_INVALID', `--witness ${JSON.stringify(value.slice(0, 300))}: ${why}`, {
      details: { witness: value.slice(0, 300) },
      cause,
    })
  if (split < 0) throw refuse('expected URL=VERIFIERKEY')
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch (error) {
    throw refuse('the URL is not a URL', error)
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
    throw refuse('the URL must be http: or https:')
  try {
    parseVerifierKey(key, COSIGNATURE_TYPE)
  } catch (error) {
    throw refuse('the verifier key is not an Ed25519 cosigner key (type 0x04) <name>+<hex>+<base64>', error)
  }
  return { url: url.replace(/\/+$/, ''), verifierKey: key, knownSize: 0 }
}

/** Reads at most `max` bytes of a response body as text (WITNESS_REFUSED beyond). */
async function boundedText(response: Response, max: number, url: string): Promise<string> {
  const body = await readBoundedBody(
    response,
    max,
    () =>
      new BaseError('WITNESS_REFUSED', `the witness at ${url} answered more than ${max} bytes`, {
        details: { url },
      }),
  )
  return new TextDecoder('utf-8', { fatal: true }).decode(body)
}

/** The `add-checkpoint` request body: `old <size>`, the proof lines, a blank line, the checkpoint. */
export function addCheckpointBody(oldSize: number, proof: readonly Uint8Array[], note: string): string {
  return `old ${oldSize}\n${proof.map((hash) => `${Buffer.from(hash).toString('base64')}\n`).join('')}\n${note}`
}

/**
 * Has `witness` cosign the checkpoint `note` (a committed head of the log in `db`): the verified
 * cosignature lines. A 409 answer names the size the witness holds; the node then sends the proof
 * from there, once. WITNESS_REFUSED for any other answer, or one without a valid cosignature.
 */
export async function submitToWitness(db: Queryable, witness: Witness, note: string): Promise<string[]> {
  const text = noteTextOf(note)
  const { treeSize } = parseCheckpointText(text)
  const endpoint = `${witness.url}/add-checkpoint`
  for (let attempt = 0; ; attempt++) {
    const old = witness.knownSize <= treeSize ? witness.knownSize : 0
    const { proof } = await getConsistencyProof(db, old, treeSize)
    const hashes = old === 0 ? [] : proof.map((hash) => fromHex(hash, 'proof', 32))
    let response: Response
    try {
      response = await fetch(endpoint, {
        method: 'POST',
        body: addCheckpointBody(old, hashes, note),
        headers: { 'content-type': 'text/plain; charset=utf-8' },
        signal: AbortSignal.timeout(WITNESS_TIMEOUT_MS),
      })
    } catch (error) {
      throw new BaseError('WITNESS_REFUSED', `the witness at ${witness.url} does not answer`, {
        details: { url: witness.url },
        cause: error,
      })
    }
    const body = await boundedText(response, MAX_NOTE_BYTES, endpoint)
    if (response.status === 409 && attempt === 0) {
      const match = /^(0|[1-9][0-9]{0,15})\n$/.exec(body)
      if (!match)
        throw new BaseError(
          'WITNESS_REFUSED',
          `the witness at ${witness.url} answered 409 without its size`,
          {
            details: { url: witness.url },
          },
        )
      const size = Number(match[1])
      if (size > treeSize)
        // The witness cosigned a larger tree of this log: the log went back (a restored database?).
        throw new BaseError(
          'WITNESS_REFUSED',
          `the witness at ${witness.url} has cosigned a tree of ${size} entries, more than this log's ${treeSize}: the log was rolled back`,
          { details: { url: witness.url, witnessSize: size, treeSize } },
        )
      witness.knownSize = size
      continue
    }
    if (response.status !== 200)
      throw new BaseError(
        'WITNESS_REFUSED',
        `the witness at ${witness.url} refused the checkpoint of size ${treeSize}: ${response.status} ${body.slice(0, 200)}`,
        { details: { url: witness.url, status: response.status, treeSize } },
      )
    const cosignatures = verifyCosignatures(body, text, witness.verifierKey)
    if (cosignatures.length === 0)
      throw new BaseError(
        'WITNESS_REFUSED',
        `the witness at ${witness.url} answered no cosignature by its key`,
        {
          details: { url: witness.url },
        },
      )
    witness.knownSize = treeSize
    return cosignatures.map(({ line }) => line)
  }
}

/**
 * The cosignature lines every witness that could gave on `note`, in the configured order. A witness
 * that fails is logged and left out: the checkpoint is published with the others' cosignatures.
 */
export async function collectCosignatures(
  db: Queryable,
  witnesses: readonly Witness[],
  note: string,
): Promise<string[]> {
  const results = await Promise.allSettled(witnesses.map((witness) => submitToWitness(db, witness, note)))
  return results.flatMap((result, i) => {
    if (result.status === 'fulfilled') return result.value
    const error = toBaseError(result.reason)
    log.warn(
      { err: error, witness: witnesses[i]!.url, code: error.code },
      'a witness did not cosign the checkpoint',
    )
    return []
  })
}
