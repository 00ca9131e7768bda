/**
 * The data directory and its single-owner lock: PGlite and the chain snapshot must have one
 * writer.
 *
 * The lock is a Unix-domain socket the owner listens on, because the kernel closes it when its
 * process dies in any way — SIGKILL, or exited and not yet reaped (a zombie) — and nothing of it
 * outlives a reboot. A pid file cannot do that: `kill(pid, 0)` succeeds on a zombie and on any
 * process that reused the pid. On Linux the socket lives in the abstract namespace, so it can
 * never be left stale and taking it is one atomic `listen`. Elsewhere (macOS has no abstract
 * namespace) it is a socket file in the temp dir (a data dir's own path may exceed the 104–108
 * bytes a socket path may have): a file nobody answers on (connection refused) is left by a dead
 * owner and taken over. Either name is derived from the data dir's real path and a random lock
 * id kept in the data dir, readable by its owner only: anyone on the host may listen on an
 * abstract name or create a file in the temp dir, and a name they could compute would let them
 * block the node. The owner answers each connection with its pid, which the refusal names.
 * docs/operations.md.
 */
import { createHash, randomBytes } from 'node:crypto'
import { linkSync, mkdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { connect, createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BaseError } from './errors.ts'
import { logger } from './log.ts'

const log = logger('data-dir')

export type DataDirLock = { release(): Promise<void> }

/** Where earlier versions kept the owner's pid; a leftover is removed, never trusted. */
const LEGACY_PID_FILE = 'carchain.lock'
/** The random part of the lock's name (32 hex digits, mode 0600), made on first use. */
const LOCK_ID_FILE = 'lock-id'
/** How long a starter waits for a live owner to say its pid. */
const OWNER_ANSWER_TIMEOUT_MS = 2_000
/** How often, and how far apart, a starter looks again when the owner did not answer. */
const UNANSWERED_RETRIES = 5
const UNANSWERED_RETRY_MS = 100

/** Where the lock socket lives: Linux's abstract namespace, or a socket file (other platforms). */
export type LockSocketKind = 'abstract' | 'file'

export type LockDataDirOptions = {
  /** Default: `abstract` on Linux, `file` elsewhere (tests choose `file` to cover it on Linux). */
  socket?: LockSocketKind | undefined
}

/**
 * The data dir's lock id, made once: written to a temporary file and hard-linked into place, so
 * of two first starts exactly one id wins and nobody reads a half-written one.
 */
function lockId(dataDir: string): string {
  const path = join(dataDir, LOCK_ID_FILE)
  const temporary = `${path}.${process.pid}.tmp`
  try {
    writeFileSync(temporary, `${randomBytes(16).toString('hex')}\n`, { mode: 0o600 })
    linkSync(temporary, path)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST')
      throw new BaseError('DATA_DIR_INVALID', `cannot write ${path}`, { details: { path }, cause: error })
  } finally {
    rmSync(temporary, { force: true })
  }
  const id = readFileSync(path, 'utf8').trim()
  if (!/^[0-9a-f]{32}$/.test(id))
    throw new BaseError('DATA_DIR_INVALID', `${path} is damaged; move it away (a new one is made)`, {
      details: { path },
    })
  return id
}

/**
 * The lock socket's address for a data dir: from its real path (every spelling shares one lock,
 * a copy of the directory has its own) and its lock id (nobody else can compute it).
 */
export function lockSocketPath(dataDir: string, kind: LockSocketKind): string {
  const digest = createHash('sha256')
    .update(`${realpathSync(dataDir)}\0${lockId(dataDir)}`)
    .digest('hex')
  const name = `carchain-${digest.slice(0, 32)}`
  return kind === 'abstract' ? `\0${name}` : join(tmpdir(), `${name}.sock`)
}

function listen(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(path, () => {
      server.off('error', reject)
      resolve()
    })
  })
}

/** The owner's pid as it answers, or the connect error's code (ECONNREFUSED: a dead owner's file). */
function askOwner(path: string): Promise<{ pid: number | undefined } | { error: string }> {
  return new Promise((resolve) => {
    const socket = connect(path)
    let answer = ''
    const timer = setTimeout(() => socket.destroy(), OWNER_ANSWER_TIMEOUT_MS)
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString()
    })
    socket.on('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      resolve({ error: error.code ?? 'EIO' })
    })
    socket.on('close', (hadError) => {
      clearTimeout(timer)
      if (hadError) return // resolved by 'error'
      const pid = Number(answer.trim())
      resolve({ pid: Number.isSafeInteger(pid) && pid > 0 ? pid : undefined })
    })
  })
}

/** Creates the data dir if needed and takes its lock; DATA_DIR_LOCKED while another owner lives. */
export async function lockDataDir(dataDir: string, options: LockDataDirOptions = {}): Promise<DataDirLock> {
  try {
    mkdirSync(dataDir, { recursive: true })
  } catch (error) {
    throw new BaseError('DATA_DIR_INVALID', `cannot create the data directory ${dataDir}`, {
      details: { dataDir },
      cause: error,
    })
  }
  const kind = options.socket ?? (process.platform === 'linux' ? 'abstract' : 'file')
  const path = lockSocketPath(dataDir, kind)
  const server = createServer((socket) => {
    // A starter that gives up early resets the connection: expected, and no concern of the owner.
    socket.on('error', (error) => log.debug({ err: error }, 'a lock query ended early'))
    socket.end(`${process.pid}\n`)
  })
  let staleFileRemoved = false
  for (let attempt = 0; ; attempt++) {
    try {
      await listen(server, path)
      break
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      if (code !== 'EADDRINUSE')
        throw new BaseError('DATA_DIR_INVALID', `cannot create the lock socket of ${dataDir}: ${code}`, {
          details: { dataDir },
          cause: error,
        })
      const owner = await askOwner(path)
      // A socket file nobody listens on (not Linux): its owner died. Remove it and listen again.
      if ('error' in owner && owner.error === 'ECONNREFUSED' && kind === 'file' && !staleFileRemoved) {
        rmSync(path, { force: true })
        staleFileRemoved = true
        continue
      }
      const pid = 'pid' in owner ? owner.pid : undefined
      // No pid: an owner in the middle of dying (its last threads still hold the socket) does not
      // answer; look again shortly rather than refuse a restart that comes right after a crash.
      if (pid === undefined && attempt < UNANSWERED_RETRIES) {
        await new Promise((resolve) => setTimeout(resolve, UNANSWERED_RETRY_MS))
        continue
      }
      throw new BaseError(
        'DATA_DIR_LOCKED',
        `${dataDir} is in use by ${pid ? `process ${pid}` : 'another process'}; stop it or use another --data`,
        { details: { dataDir, ...(pid ? { pid } : {}) } },
      )
    }
  }
  server.unref() // the lock must not keep the process alive
  rmSync(join(dataDir, LEGACY_PID_FILE), { force: true })
  let released: Promise<void> | undefined
  return {
    release() {
      released ??= new Promise<void>((resolve) => server.close(() => resolve()))
      return released
    },
  }
}
