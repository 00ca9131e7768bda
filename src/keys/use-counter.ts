/**
 * Per-grant use counters that survive restarts and crashes.
 *
 * Only grants with a limit (`maxUses > 0`) are counted. A use is appended to
 * `<dir>/key-uses.log` as one JSON line `{"grantId":"0x…","uses":n}` and fsynced *before* the car
 * acts, so a crash after a door opened can never give a one-time key a second use. On open the
 * file is replayed (the highest count per grant wins; a torn last line from a crash is ignored)
 * and compacted into a fresh file with an atomic rename when it has grown.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import type { Hex } from 'viem'
import { BaseError } from '../errors.ts'
import { writeFileAtomic } from '../fs-atomic.ts'

/** Where the car counts uses of limited grants. */
export interface UseCounter {
  /** How often the grant was used (0 for an unknown one). */
  used(grantId: Hex): number
  /** Records one use, durably before returning; returns the new count. */
  consume(grantId: Hex): number
  /** Releases the file. */
  close(): void
}

/** Counters in memory only (tests, and the online path's per-process view). */
export class MemoryUseCounter implements UseCounter {
  readonly #uses = new Map<string, number>()
  used(grantId: Hex): number {
    return this.#uses.get(grantId) ?? 0
  }
  consume(grantId: Hex): number {
    const uses = this.used(grantId) + 1
    this.#uses.set(grantId, uses)
    return uses
  }
  close(): void {}
}

/** The log file's name inside the vehicle's directory. */
export const USE_LOG_FILE = 'key-uses.log'

/** Lines past which the log is compacted on open. */
const COMPACT_AFTER_LINES = 4096

/** The crash-safe file-backed counter. */
export class FileUseCounter implements UseCounter {
  readonly path: string
  readonly #uses = new Map<string, number>()
  #fd: number | undefined

  /** Opens (creating) `<dir>/key-uses.log` and replays it. */
  constructor(dir: string) {
    mkdirSync(dir, { recursive: true })
    this.path = join(dir, USE_LOG_FILE)
    let lines = 0
    if (existsSync(this.path)) {
      let text: string
      try {
        text = readFileSync(this.path, 'utf8')
      } catch (error) {
        throw new BaseError('DATA_DIR_INVALID', `cannot read ${this.path}`, { cause: error })
      }
      for (const line of text.split('\n')) {
        if (line === '') continue
        lines++
        try {
          const { grantId, uses } = JSON.parse(line) as { grantId: unknown; uses: unknown }
          if (typeof grantId === 'string' && typeof uses === 'number' && Number.isSafeInteger(uses))
            this.#uses.set(grantId, Math.max(uses, this.#uses.get(grantId) ?? 0))
        } catch {
          // a torn last line from a crash mid-append: the use it describes never acted
        }
      }
      if (lines > COMPACT_AFTER_LINES || !text.endsWith('\n') || text.length === 0) this.compact()
    }
  }

  used(grantId: Hex): number {
    return this.#uses.get(grantId) ?? 0
  }

  consume(grantId: Hex): number {
    const uses = this.used(grantId) + 1
    this.#fd ??= openSync(this.path, 'a', 0o600)
    writeSync(this.#fd, `${JSON.stringify({ grantId, uses })}\n`)
    fsyncSync(this.#fd)
    this.#uses.set(grantId, uses)
    return uses
  }

  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd)
    this.#fd = undefined
  }

  private compact(): void {
    const text = [...this.#uses].map(([grantId, uses]) => `${JSON.stringify({ grantId, uses })}\n`).join('')
    writeFileAtomic(this.path, text)
  }
}
