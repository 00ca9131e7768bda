/**
 * The vehicle's local event log: an append-only file that survives a crash or power loss at any
 * instant, holding every event (envelope + payload) until the node has acknowledged it.
 *
 * File format (docs/ledger.md "Local log"): the 8-byte magic `CCLEDG01`, then records
 *   u32 BE body length ‖ u32 BE CRC-32 (ISO-HDLC, zlib) of type ‖ body ‖ u8 type ‖ body
 * with types 1 = event `{"envelope","payload"}`, 2 = acknowledged `{"throughSeq"}`, 3 = chain
 * base `{"nextSeq","prev"}` (written by compaction), bodies canonical JSON.
 *
 * Recovery on open: a record cut short at the end of the file (a torn write) and a last record
 * whose CRC fails are dropped and the file truncated to the last whole record; a bad record
 * *followed by more data* is damage, not a torn write, and fails with LOG_CORRUPT.
 * Durability: `append` returns after fdatasync (one per call: callers group events); an
 * acknowledgement is not synced on its own, since losing one only re-sends events, which the
 * node acknowledges again idempotently.
 */
import { type FileHandle, open, rename, stat } from 'node:fs/promises'
import { dirname } from 'node:path'
import { crc32 } from 'node:zlib'
import { BaseError } from '../errors.ts'
import { logger } from '../log.ts'
import { type Hex, toBareHex, toHex } from './bytes.ts'
import {
  type ChainHead,
  type Envelope,
  encodeEnvelope,
  GENESIS_PREV,
  type Payload,
  parseEnvelope,
  parsePayload,
  payloadToJson,
} from './envelope.ts'
import { canonicalizeToBytes } from './jcs.ts'
import { hashLeaf } from './merkle.ts'

const log = logger('ledger.local-log')

const MAGIC = new TextEncoder().encode('CCLEDG01')
const RECORD_HEADER_BYTES = 9
/** Larger bodies are refused on write and read as damage. */
export const MAX_RECORD_BYTES = 16 * 1024 * 1024

const RECORD_EVENT = 1
const RECORD_ACK = 2
const RECORD_BASE = 3

/** One event of the local log. */
export type LocalLogEntry = { envelope: Envelope; payload: Payload; leafHash: Uint8Array; id: Hex }

export type LocalLog = {
  readonly path: string
  /** Bytes of a torn tail dropped when the log was opened (0 after a clean shutdown). */
  readonly truncatedBytes: number
  /** Where the chain stands: pass to `createEventChain({ vehicle, head })` to go on. */
  head(): ChainHead
  /** The highest seq the node acknowledged; -1 before the first acknowledgement. */
  acknowledgedSeq(): number
  /** Every event held, oldest first. */
  entries(): readonly LocalLogEntry[]
  /** The events the node has not acknowledged yet: to (re-)send. */
  unacknowledged(): LocalLogEntry[]
  /** Appends events continuing the chain; resolves once they are on disk (fdatasync). */
  append(events: readonly { envelope: Envelope; payload: Payload }[]): Promise<void>
  /** Records that the node acknowledged every event up to `throughSeq`. */
  acknowledge(throughSeq: number): Promise<void>
  /** Rewrites the file without acknowledged events (atomically, by rename). */
  compact(): Promise<void>
  close(): Promise<void>
}

function corrupt(path: string, message: string, offset: number): BaseError {
  return new BaseError('LOG_CORRUPT', `${path}: ${message} at byte ${offset}`, { details: { path, offset } })
}

function encodeRecord(type: number, body: Uint8Array): Uint8Array {
  if (body.length > MAX_RECORD_BYTES) {
    throw new BaseError('INVALID_ARGUMENT', `a local log record is at most ${MAX_RECORD_BYTES} bytes`, {
      details: { length: body.length },
    })
  }
  const record = new Uint8Array(RECORD_HEADER_BYTES + body.length)
  const view = new DataView(record.buffer)
  record[8] = type
  record.set(body, RECORD_HEADER_BYTES)
  view.setUint32(0, body.length)
  view.setUint32(4, crc32(record.subarray(8)))
  return record
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

function parseBody(bytes: Uint8Array): Record<string, unknown> {
  const value: unknown = JSON.parse(utf8.decode(bytes))
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not an object')
  return value as Record<string, unknown>
}

async function syncDirectory(path: string): Promise<void> {
  // Makes a create or rename durable; some platforms cannot open a directory: best effort there.
  try {
    const handle = await open(dirname(path), 'r')
    try {
      await handle.sync()
    } finally {
      await handle.close()
    }
  } catch (error) {
    log.warn({ err: error, path }, 'cannot fsync the directory; a crash may lose the last create or rename')
  }
}

type State = {
  entries: LocalLogEntry[]
  base: ChainHead
  acknowledgedSeq: number
}

function head(state: State): ChainHead {
  const last = state.entries[state.entries.length - 1]
  return last === undefined ? state.base : { nextSeq: last.envelope.seq + 1, prev: toBareHex(last.leafHash) }
}

/** Checks `envelope` continues the chain; returns its leaf hash. */
function link(state: State, envelope: Envelope): Uint8Array {
  const { nextSeq, prev } = head(state)
  if (envelope.seq !== nextSeq) {
    throw new BaseError('EVENT_GAP', `seq ${envelope.seq} does not follow the log's seq ${nextSeq - 1}`, {
      details: { seq: envelope.seq, expectedSeq: nextSeq },
    })
  }
  if (envelope.prev !== prev) {
    throw new BaseError('EVENT_FORK', `seq ${envelope.seq} does not link to the log's last event`, {
      details: { seq: envelope.seq },
    })
  }
  return hashLeaf(encodeEnvelope(envelope))
}

function replay(path: string, bytes: Uint8Array): { state: State; validLength: number } {
  const state: State = { entries: [], base: { nextSeq: 0, prev: GENESIS_PREV }, acknowledgedSeq: -1 }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  let offset = MAGIC.length
  while (offset < bytes.length) {
    if (bytes.length - offset < RECORD_HEADER_BYTES) break
    const length = view.getUint32(offset)
    const end = offset + RECORD_HEADER_BYTES + length
    if (end > bytes.length) break // cut short by the end of the file: a torn write
    const typed = bytes.subarray(offset + 8, end)
    if (crc32(typed) !== view.getUint32(offset + 4)) {
      if (end === bytes.length) break // the last record, partly written: torn
      throw corrupt(path, 'CRC mismatch', offset)
    }
    const type = typed[0]
    let body: Record<string, unknown>
    try {
      body = parseBody(typed.subarray(1))
    } catch {
      throw corrupt(path, 'unreadable record body', offset)
    }
    try {
      if (type === RECORD_EVENT) {
        const envelope = parseEnvelope(body.envelope)
        const payload = parsePayload(body.payload)
        const leafHash = link(state, envelope)
        state.entries.push({ envelope, payload, leafHash, id: toHex(leafHash) })
      } else if (type === RECORD_ACK) {
        const through = body.throughSeq
        if (typeof through !== 'number' || !Number.isSafeInteger(through)) throw new Error('bad throughSeq')
        state.acknowledgedSeq = Math.max(state.acknowledgedSeq, through)
      } else if (type === RECORD_BASE) {
        const { nextSeq, prev } = body
        if (state.entries.length > 0 || typeof nextSeq !== 'number' || typeof prev !== 'string') {
          throw new Error('misplaced or bad chain base')
        }
        state.base = { nextSeq, prev }
        state.acknowledgedSeq = Math.max(state.acknowledgedSeq, nextSeq - 1)
      } else {
        throw new Error(`unknown record type ${type}`)
      }
    } catch (error) {
      if (error instanceof BaseError && error.code === 'LOG_CORRUPT') throw error
      throw corrupt(path, `invalid record (${(error as Error).message})`, offset)
    }
    offset = end
  }
  return { state, validLength: offset }
}

/**
 * Opens (or creates) the local log at `path`, dropping a torn tail. Throws LOG_CORRUPT when the
 * file is damaged before its last record, or is not a Carchain log.
 */
export async function openLocalLog(path: string): Promise<LocalLog> {
  let handle: FileHandle
  let created = false
  try {
    handle = await open(path, 'r+')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw toDataDirError(path, error)
    handle = await open(path, 'wx+')
    created = true
  }
  let state: State
  let size: number
  let truncatedBytes = 0
  try {
    const bytes = new Uint8Array(await handle.readFile())
    const headerBytes = Math.min(bytes.length, MAGIC.length)
    if (bytes.subarray(0, headerBytes).some((byte, i) => byte !== MAGIC[i])) {
      throw corrupt(path, 'not a Carchain local log (bad magic)', 0)
    }
    if (bytes.length < MAGIC.length) {
      // New, or a create torn before its magic was written.
      await handle.truncate(0)
      await handle.write(MAGIC, 0, MAGIC.length, 0)
      await handle.sync()
      if (created) await syncDirectory(path)
      state = { entries: [], base: { nextSeq: 0, prev: GENESIS_PREV }, acknowledgedSeq: -1 }
      size = MAGIC.length
    } else {
      const replayed = replay(path, bytes)
      state = replayed.state
      size = replayed.validLength
      truncatedBytes = bytes.length - size
      if (truncatedBytes > 0) {
        await handle.truncate(size)
        await handle.sync()
      }
    }
  } catch (error) {
    await handle.close()
    throw error
  }

  // One operation at a time: appends, acks and compaction are serialized.
  let queue: Promise<unknown> = Promise.resolve()
  const serialized = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = queue.then(fn)
    queue = Promise.allSettled([run]) // the queue only orders: each failure is returned to its caller
    return run
  }
  const write = async (bytes: Uint8Array, sync: boolean) => {
    try {
      await handle.write(bytes, 0, bytes.length, size)
    } catch (error) {
      // A partial write (disk full) must not leave bytes a later, shorter record would not cover.
      await handle
        .truncate(size)
        .catch((truncateError: unknown) =>
          log.error({ err: truncateError, path }, 'cannot cut a partial write off the local log'),
        )
      throw new BaseError(
        'DATA_DIR_INVALID',
        `cannot write the local log ${path}: ${(error as Error).message}`,
        {
          details: { path },
          cause: error,
        },
      )
    }
    size += bytes.length
    if (sync) await handle.datasync()
  }

  return {
    path,
    truncatedBytes,
    head: () => head(state),
    acknowledgedSeq: () => state.acknowledgedSeq,
    entries: () => state.entries,
    unacknowledged: () => state.entries.filter((entry) => entry.envelope.seq > state.acknowledgedSeq),
    append: (events) =>
      serialized(async () => {
        // Check the whole group first: nothing is written unless all of it continues the chain.
        const scratch: State = { ...state, entries: [...state.entries] }
        const records: Uint8Array[] = []
        for (const event of events) {
          const leafHash = link(scratch, event.envelope)
          scratch.entries.push({
            envelope: event.envelope,
            payload: event.payload,
            leafHash,
            id: toHex(leafHash),
          })
          const body = canonicalizeToBytes({
            envelope: event.envelope,
            payload: payloadToJson(event.payload),
          })
          records.push(encodeRecord(RECORD_EVENT, body))
        }
        if (records.length === 0) return
        await write(Buffer.concat(records), true)
        state = scratch
      }),
    acknowledge: (throughSeq) =>
      serialized(async () => {
        if (!Number.isSafeInteger(throughSeq) || throughSeq <= state.acknowledgedSeq) return
        await write(encodeRecord(RECORD_ACK, canonicalizeToBytes({ throughSeq })), false)
        state.acknowledgedSeq = throughSeq
      }),
    compact: () =>
      serialized(async () => {
        const kept = state.entries.filter((entry) => entry.envelope.seq > state.acknowledgedSeq)
        const dropped = state.entries.length - kept.length
        if (dropped === 0) return
        const lastDropped = state.entries[dropped - 1]!
        const base: ChainHead = {
          nextSeq: lastDropped.envelope.seq + 1,
          prev: toBareHex(lastDropped.leafHash),
        }
        const parts = [MAGIC, encodeRecord(RECORD_BASE, canonicalizeToBytes(base))]
        for (const entry of kept) {
          const body = canonicalizeToBytes({
            envelope: entry.envelope,
            payload: payloadToJson(entry.payload),
          })
          parts.push(encodeRecord(RECORD_EVENT, body))
        }
        const bytes = Buffer.concat(parts)
        const temporary = `${path}.compact`
        const out = await open(temporary, 'w')
        try {
          await out.write(bytes, 0, bytes.length, 0)
          await out.sync()
        } finally {
          await out.close()
        }
        await rename(temporary, path)
        await syncDirectory(path)
        await handle.close()
        handle = await open(path, 'r+')
        size = (await stat(path)).size
        state = { entries: kept, base, acknowledgedSeq: state.acknowledgedSeq }
      }),
    close: () => serialized(() => handle.close()),
  }
}

function toDataDirError(path: string, error: unknown): BaseError {
  return new BaseError('DATA_DIR_INVALID', `cannot open the local log ${path}: ${(error as Error).message}`, {
    details: { path },
    cause: error,
  })
}
