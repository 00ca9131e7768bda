/**
 * The data-directory lock against the crashes that beat a pid file (issue 19 #16): a holder
 * killed with SIGKILL, a holder left as an unreaped zombie, and a stale pid file naming a live,
 * unrelated process (a pid reused after a reboot).
 */
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { type LockSocketKind, lockDataDir, lockSocketPath } from './data-dir.ts'

const scratch = mkdtempSync(join(tmpdir(), 'carchain-lock-'))
const children: ChildProcess[] = []
after(() => {
  for (const child of children) child.kill('SIGKILL')
  rmSync(scratch, { recursive: true, force: true })
})

// A separate process that takes the lock, prints its pid and waits forever.
const holderScript = join(scratch, 'holder.mjs')
writeFileSync(
  holderScript,
  `import { lockDataDir } from ${JSON.stringify(new URL('./data-dir.ts', import.meta.url).href)}
await lockDataDir(process.argv[2], { socket: process.argv[3] })
process.stdout.write(process.pid + '\\n')
setInterval(() => {}, 1 << 30)
`,
)

let dirs = 0
const freshDir = () => join(scratch, `data-${dirs++}`)

/** Starts `command`, whose stdout's first line is the holder's pid once it holds the lock. */
async function startHolder(command: string, args: string[]): Promise<{ child: ChildProcess; pid: number }> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] })
  children.push(child)
  const pid = await new Promise<number>((resolve, reject) => {
    let out = ''
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString()
      if (out.includes('\n')) resolve(Number(out.split('\n')[0]))
    })
    child.on('exit', (code) => reject(new Error(`the holder exited (${code}) before taking the lock`)))
  })
  return { child, pid }
}

const holdLock = (dataDir: string, socket: LockSocketKind = defaultKind) =>
  startHolder(process.execPath, [holderScript, dataDir, socket])
const defaultKind: LockSocketKind = process.platform === 'linux' ? 'abstract' : 'file'

function processState(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0]
  } catch {
    return undefined // gone
  }
}

async function until(condition: () => boolean, what: string) {
  for (let i = 0; i < 500 && !condition(); i++) await new Promise((r) => setTimeout(r, 10))
  assert.ok(condition(), what)
}

test('a live holder in another process refuses a second start with DATA_DIR_LOCKED', async () => {
  const dataDir = freshDir()
  const { pid } = await holdLock(dataDir)
  await assert.rejects(lockDataDir(dataDir), (error: { code: string; details: { pid?: number } }) => {
    assert.equal(error.code, 'DATA_DIR_LOCKED')
    assert.equal(error.details.pid, pid)
    return true
  })
})

test('a second lock in the same process is refused; after release it can be taken again', async () => {
  const dataDir = freshDir()
  const lock = await lockDataDir(dataDir)
  await assert.rejects(lockDataDir(dataDir), { code: 'DATA_DIR_LOCKED' })
  await lock.release()
  const again = await lockDataDir(dataDir)
  await again.release()
})

test('a holder killed with SIGKILL leaves no lock: a restart at once takes it', async () => {
  const dataDir = freshDir()
  const { child } = await holdLock(dataDir)
  const exited = new Promise((resolve) => child.on('exit', resolve))
  child.kill('SIGKILL')
  await exited
  const lock = await lockDataDir(dataDir)
  await lock.release()
})

test('a holder killed and left an unreaped zombie leaves no lock', {
  skip: process.platform !== 'linux' && 'reads the process state from /proc',
}, async () => {
  const dataDir = freshDir()
  // sh starts the holder in the background, then becomes `sleep`, which never reaps it.
  const { pid } = await startHolder('sh', [
    '-c',
    '"$0" "$1" "$2" & exec sleep 60',
    process.execPath,
    holderScript,
    dataDir,
  ])
  process.kill(pid, 'SIGKILL')
  // Dead and unreaped: a zombie whose threads are all gone (a zombie leader may briefly wait for
  // its other threads, which still hold the process's files).
  await until(
    () => processState(pid) === 'Z' && readdirSync(`/proc/${pid}/task`).length === 1,
    `the holder ${pid} is a zombie`,
  )
  const lock = await lockDataDir(dataDir)
  await lock.release()
})

test('a stale pid file naming a live, unrelated process (a reused pid) does not block', async () => {
  const dataDir = freshDir()
  const first = await lockDataDir(dataDir)
  await first.release()
  writeFileSync(join(dataDir, 'carchain.lock'), `${process.ppid}\n`) // alive, and not a holder
  const lock = await lockDataDir(dataDir)
  await lock.release()
})

test('the socket-file lock (platforms without an abstract namespace): the file of a dead holder is taken over, a live one refuses', async () => {
  const dataDir = freshDir()
  const { child, pid } = await holdLock(dataDir, 'file')
  await assert.rejects(
    lockDataDir(dataDir, { socket: 'file' }),
    (error: { code: string; details: { pid?: number } }) => {
      assert.equal(error.code, 'DATA_DIR_LOCKED')
      assert.equal(error.details.pid, pid)
      return true
    },
  )
  const exited = new Promise((resolve) => child.on('exit', resolve))
  child.kill('SIGKILL')
  await exited
  assert.ok(existsSync(lockSocketPath(dataDir, 'file')), 'SIGKILL left the socket file behind')
  const lock = await lockDataDir(dataDir, { socket: 'file' })
  await lock.release()
  assert.ok(!existsSync(lockSocketPath(dataDir, 'file')), 'a release removes the file')
})

test('another local user cannot squat the lock: its name is not derived from the path alone', {
  skip: process.platform !== 'linux' && 'the abstract namespace is Linux only',
}, async () => {
  const dataDir = freshDir()
  mkdirSync(dataDir)
  // Anyone on the host can listen on an abstract name; one computed from the path is guessable.
  const guess = createHash('sha256').update(realpathSync(dataDir)).digest('hex').slice(0, 32)
  const squatter = createServer((socket) => socket.end('1\n'))
  await new Promise<void>((resolve) => squatter.listen(`\0carchain-${guess}`, resolve))
  try {
    const lock = await lockDataDir(dataDir)
    await lock.release()
  } finally {
    squatter.close()
  }
  // The secret part of the name is readable by the data dir's owner only.
  assert.equal(statSync(join(dataDir, 'lock-id')).mode & 0o077, 0)
})
