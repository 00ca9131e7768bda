/**
 * The embedded chain: an `anvil` child process whose state lives in the data dir.
 *
 * Persistence policy (docs/operations.md): anvil keeps state in memory. Carchain snapshots it with
 * `anvil_dumpState` whenever a new block was mined, at most every `snapshotIntervalMs` (default
 * 1 s), and writes the snapshot atomically (temp file, fsync, rename), so a crash or SIGKILL loses
 * at most the blocks of the last interval and never leaves a torn file. On a clean stop it takes a
 * final snapshot. On start it loads the snapshot with `anvil_loadState`. Whatever the chain lost is
 * reconciled by its users: deployment re-checks contract code (src/chain/deploy.ts) and anchoring
 * re-anchors from the database.
 *
 * Anvil runs behind a small shell guard reading our stdin: if this process dies in any way
 * (even SIGKILL) the pipe closes and the guard stops anvil, so no orphan keeps the port.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { BaseError } from '../errors.ts'
import { writeFileAtomic } from '../fs-atomic.ts'
import { logger } from '../log.ts'

const log = logger('chain.anvil')

/** The standard development mnemonic; its accounts are the demo owners any wallet can use. */
export const DEVELOPMENT_MNEMONIC = 'test test test test test test test test test test test junk'
export const EMBEDDED_CHAIN_ID = 31337

export type StartAnvilParameters = {
  /** Where the state snapshot lives (`<dir>/state.json.gz`); omitted: nothing persisted. */
  stateDir?: string | undefined
  /** Port to listen on (127.0.0.1); omitted: a free one. */
  port?: number | undefined
  chainId?: number | undefined
  mnemonic?: string | undefined
  /** Funded accounts derived from the mnemonic (default 20). */
  accounts?: number | undefined
  snapshotIntervalMs?: number | undefined
  /** Called with anvil's stderr lines when it fails to start. */
  startTimeoutMs?: number | undefined
}

export type Anvil = {
  readonly rpcUrl: string
  readonly chainId: number
  readonly pid: number
  /** Takes a snapshot now (if the chain moved since the last one). */
  snapshot(): Promise<void>
  /** Final snapshot, then stops anvil. Idempotent. */
  stop(): Promise<void>
}

const stateFileName = 'state.json.gz.hex'

/** The anvil binary shipped in the platform package of `@foundry-rs/anvil`. */
export function anvilBinaryPath(): string {
  const arch = process.arch === 'x64' ? 'amd64' : process.arch
  const require = createRequire(import.meta.url)
  try {
    return require.resolve(`@foundry-rs/anvil-${process.platform}-${arch}/bin/anvil`)
  } catch (error) {
    throw new BaseError(
      'CHAIN_START_FAILED',
      `no anvil binary for ${process.platform}-${arch}; reinstall @foundry-rs/anvil`,
      {
        cause: error,
      },
    )
  }
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      )
    })
  })
}

/** Minimal JSON-RPC call (anvil_* methods are not in viem's typed actions). */
export async function rpc<T>(
  rpcUrl: string,
  method: string,
  params: unknown[] = [],
  timeoutMs = 30_000,
): Promise<T> {
  const response = await fetch(rpcUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    signal: AbortSignal.timeout(timeoutMs),
  })
  const body = (await response.json()) as { result?: T; error?: { message: string } }
  if (body.error)
    throw new BaseError('CHAIN_TX_FAILED', `${method}: ${body.error.message}`, { details: { method } })
  return body.result as T
}

const guardScript = [
  // $0 = anvil, $@ = its args. Start it with stdin detached, forward TERM, and stop it when our
  // stdin (the parent's pipe) closes, i.e. when the parent is gone.
  '"$0" "$@" </dev/null & child=$!',
  "trap 'kill -TERM $child 2>/dev/null' TERM",
  'cat >/dev/null',
  'kill -TERM $child 2>/dev/null',
  'wait $child',
].join('\n')

/** Starts anvil, loads the last snapshot, and begins snapshotting. */
export async function startAnvil(parameters: StartAnvilParameters = {}): Promise<Anvil> {
  const chainId = parameters.chainId ?? EMBEDDED_CHAIN_ID
  const port = parameters.port ?? (await freePort())
  const rpcUrl = `http://127.0.0.1:${port}`
  const snapshotIntervalMs = parameters.snapshotIntervalMs ?? 1000
  const statePath = parameters.stateDir ? join(parameters.stateDir, stateFileName) : undefined
  let savedState: string | undefined
  if (statePath && existsSync(statePath)) {
    savedState = readFileSync(statePath, 'utf8').trim()
    if (!/^0x[0-9a-f]+$/.test(savedState))
      throw new BaseError(
        'DATA_DIR_INVALID',
        `the chain snapshot ${statePath} is damaged; move it away to start a new chain`,
        {
          details: { path: statePath },
        },
      )
  }
  if (parameters.stateDir) mkdirSync(parameters.stateDir, { recursive: true })

  const args = [
    '--host',
    '127.0.0.1',
    '--port',
    String(port),
    '--chain-id',
    String(chainId),
    '--mnemonic',
    parameters.mnemonic ?? DEVELOPMENT_MNEMONIC,
    '--accounts',
    String(parameters.accounts ?? 20),
  ]
  // A process group of its own: Ctrl-C at a terminal signals the whole foreground group, and
  // anvil must outlive the node's orderly stop (the fleet's last transactions, the final
  // snapshot); the node stops it last. If the node dies instead, the pipe closes and the guard
  // stops anvil.
  const child = spawn('/bin/sh', ['-c', guardScript, anvilBinaryPath(), ...args], {
    stdio: ['pipe', 'ignore', 'pipe'],
    detached: true,
  })
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000)
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))

  try {
    await waitForRpc(rpcUrl, child, parameters.startTimeoutMs ?? 15_000)
    if (savedState) await rpc(rpcUrl, 'anvil_loadState', [savedState], 120_000)
  } catch (error) {
    child.kill('SIGTERM')
    throw new BaseError(
      'CHAIN_START_FAILED',
      `anvil did not start on port ${port}: ${stderr.trim() || (error as Error).message}`,
      {
        details: { port },
        cause: error,
      },
    )
  }

  let lastSnapshotBlock = savedState ? await blockNumber(rpcUrl) : -1n
  let snapshotting: Promise<void> | undefined
  const snapshot = async () => {
    if (!statePath) return
    if (snapshotting) return snapshotting
    snapshotting = (async () => {
      const block = await blockNumber(rpcUrl)
      if (block === lastSnapshotBlock) return
      const state = await rpc<string>(rpcUrl, 'anvil_dumpState', [], 120_000)
      writeFileAtomic(statePath, state)
      lastSnapshotBlock = block
    })().finally(() => {
      snapshotting = undefined
    })
    return snapshotting
  }
  const timer = statePath
    ? setInterval(() => {
        snapshot().catch((error: unknown) =>
          log.error({ err: error, statePath }, 'chain snapshot failed; the next tick retries'),
        )
      }, snapshotIntervalMs)
    : undefined
  timer?.unref()

  let stopping: Promise<void> | undefined
  return {
    rpcUrl,
    chainId,
    pid: child.pid ?? -1,
    snapshot,
    stop() {
      stopping ??= (async () => {
        if (timer) clearInterval(timer)
        try {
          await snapshot()
        } finally {
          child.stdin?.end()
          child.kill('SIGTERM')
          const timeout = setTimeout(() => child.kill('SIGKILL'), 5000)
          await exited
          clearTimeout(timeout)
        }
      })()
      return stopping
    },
  }
}

async function blockNumber(rpcUrl: string): Promise<bigint> {
  return BigInt(await rpc<string>(rpcUrl, 'eth_blockNumber'))
}

async function waitForRpc(rpcUrl: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let exited = false
  child.once('exit', () => {
    exited = true
  })
  while (Date.now() < deadline) {
    if (exited) throw new Error('anvil exited')
    try {
      await rpc(rpcUrl, 'eth_chainId', [], 1000)
      return
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  throw new Error(`no answer within ${timeoutMs} ms`)
}
