/**
 * `carchain witness`'s HTTP server (c2sp.org/tlog-witness): `POST /add-checkpoint` and the
 * monitoring read `GET /<origin hash>/checkpoint`, over the witness of src/ledger/witness.ts. Its
 * data dir holds the cosigner key (`witness-key.pem`, Ed25519, made on first start; or on a
 * PKCS#11 token as `carchain-witness`, the way the node keeps its note key) and one record per log
 * (`logs/<origin hash>.json`); one process owns it (the data dir lock).
 * docs/transparency.md ("Witnesses").
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { lockDataDir } from '../data-dir.ts'
import { BaseError, errorCodes, toBaseError } from '../errors.ts'
import type { Pkcs11KeyStoreOptions } from '../identity/pkcs11-keystore.ts'
import type { NoteSigner } from '../ledger/note.ts'
import {
  createWitness,
  directoryWitnessStore,
  MAX_ADD_CHECKPOINT_BYTES,
  type Witness,
} from '../ledger/witness.ts'
import { logger } from '../log.ts'
import { loadNoteKey, openTokenNoteKey } from './transparency.ts'

const log = logger('witness')

/** The witness's cosigner key file in its data dir. */
export const WITNESS_KEY_FILE = 'witness-key.pem'

/** The label of the witness's cosigner key on a PKCS#11 token. */
export const WITNESS_KEY_LABEL = 'carchain-witness'

export type StartWitnessParameters = {
  dataDir: string
  /** The witness's name (its cosigner key name), e.g. `witness.example/w1`. */
  name: string
  /** The note verifier keys of the logs it witnesses. */
  logs: readonly string[]
  host?: string
  /** 0: any free port. */
  port?: number
  /** Keep the cosigner key on this PKCS#11 token instead of `witness-key.pem`. */
  pkcs11?: Pkcs11KeyStoreOptions | undefined
}

export type RunningWitness = {
  readonly url: string
  readonly witness: Witness
  /** Whether the cosigner key was made by this start. */
  readonly created: boolean
  /** Where the cosigner key is: its file, or its PKCS#11 URI. */
  readonly key: string
  stop(): Promise<void>
}

/** Reads a request body up to `max` bytes (INVALID_ARGUMENT beyond, or when not UTF-8). */
async function readBody(request: IncomingMessage, max: number): Promise<string> {
  const chunks: Buffer[] = []
  let total = 0
  for await (const chunk of request as AsyncIterable<Buffer>) {
    total += chunk.length
    if (total > max) throw new BaseError('INVALID_ARGUMENT', `the request body is larger than ${max} bytes`)
    chunks.push(chunk)
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks))
  } catch (error) {
    throw new BaseError('INVALID_ARGUMENT', 'the request body is not UTF-8', { cause: error })
  }
}

function send(response: ServerResponse, status: number, contentType: string, body: string) {
  response.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) })
  response.end(body)
}

/** The spec's answer to a refusal: 409 is the size as text/x.tlog.size, the rest `{code, message, details}`. */
function sendError(response: ServerResponse, error: unknown) {
  const base = toBaseError(error)
  // The request body may be unread (too large): the connection is not reused.
  response.shouldKeepAlive = false
  if (base.code === 'INTERNAL') log.error({ err: error }, 'the witness failed')
  if (base.code === 'WITNESS_SIZE_CONFLICT')
    return send(response, 409, 'text/x.tlog.size', `${base.details.size}\n`)
  send(response, errorCodes[base.code].httpStatus, 'application/json', JSON.stringify(base.toJSON()))
}

/** Starts a witness; resolves once it listens. */
export async function startWitness({
  dataDir,
  name,
  logs,
  host = '127.0.0.1',
  port = 0,
  pkcs11,
}: StartWitnessParameters): Promise<RunningWitness> {
  const lock = await lockDataDir(dataDir)
  let closeToken: (() => Promise<void>) | undefined
  try {
    let signer: NoteSigner
    let created: boolean
    let key: string
    if (pkcs11) {
      const token = await openTokenNoteKey(pkcs11, dataDir, name, {
        label: WITNESS_KEY_LABEL,
        file: WITNESS_KEY_FILE,
      })
      closeToken = token.close
      ;({ signer, created, ref: key } = token)
    } else {
      ;({ signer, created } = loadNoteKey(dataDir, name, { file: WITNESS_KEY_FILE }))
      key = join(dataDir, WITNESS_KEY_FILE)
    }
    const witness = createWitness({ signer, logs, store: directoryWitnessStore(join(dataDir, 'logs')) })
    const server = createServer((request, response) => {
      const path = (request.url ?? '').split('?')[0]!
      const handle = async () => {
        if (path === '/add-checkpoint') {
          if (request.method !== 'POST')
            throw new BaseError('INVALID_ARGUMENT', 'add-checkpoint is a POST', {
              details: { method: request.method },
            })
          const answer = await witness.addCheckpoint(await readBody(request, MAX_ADD_CHECKPOINT_BYTES))
          log.debug({ path }, 'cosigned a checkpoint') // once a second per log: info would drown `npm start`
          return send(response, answer.status, 'text/plain; charset=utf-8', answer.body)
        }
        const monitor = /^\/([0-9a-f]{64})\/checkpoint$/.exec(path)
        if (monitor && request.method === 'GET') {
          const checkpoint = witness.checkpoint(monitor[1]!)
          if (checkpoint === undefined)
            throw new BaseError('NOT_FOUND', 'this witness has cosigned no checkpoint of that log')
          return send(response, 200, 'text/plain; charset=utf-8', checkpoint)
        }
        if (path === '/' && request.method === 'GET')
          return send(
            response,
            200,
            'application/json',
            JSON.stringify({ name, verifierKey: witness.verifierKey, logs: [...witness.logs.values()] }),
          )
        throw new BaseError('NOT_FOUND', `no route ${request.method} ${path.slice(0, 100)}`)
      }
      handle().catch((error: unknown) => sendError(response, error))
    })
    server.requestTimeout = 30_000
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => resolve())
    })
    const address = server.address() as AddressInfo
    const url = `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`
    return {
      url,
      witness,
      created,
      key,
      async stop() {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()))
        server.closeAllConnections()
        await closed
        await closeToken?.()
        await lock.release()
      },
    }
  } catch (error) {
    await closeToken?.()
    await lock.release()
    throw error
  }
}
