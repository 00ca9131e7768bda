/**
 * `node.startup_s`: wall time of `carchain up` (defaults: embedded anvil, PGlite, the demo fleet
 * of 12 cars) from spawning the process to its `{"event":"up"}` line, on a fresh data dir (what a
 * new user waits for: initdb, contract deployment, PKI); and, in the detail, a restart on the same
 * data dir. Each start is stopped with SIGINT before the next.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { BaseError } from '../src/errors.ts'
import { type BenchOptions, type BenchResult, median, resultOf, round3 } from './harness.ts'

export const startupNames = [{ name: 'node.startup_s', unit: 's' }] as const

const main = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url))

async function startOnce(dataDir: string): Promise<{ seconds: number; child: ChildProcess }> {
  // The embedded default: PGlite, even where the bench was given a PostgreSQL server.
  const env = { ...process.env }
  delete env.DATABASE_URL
  const started = performance.now()
  const child = spawn(process.execPath, [main, 'up', '--data', dataDir, '--port', '0', '--json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  })
  let stderr = ''
  child.stderr!.on('data', (chunk) => {
    stderr += chunk
  })
  const seconds = await new Promise<number>((resolve, reject) => {
    let stdout = ''
    const timer = setTimeout(() => {
      // Never leave a half-started node (and its anvil) behind: SIGINT lets it stop its children.
      void stop(child)
      reject(new BaseError('TIMEOUT', 'carchain up did not come up in 180 s'))
    }, 180_000)
    child.stdout!.on('data', (chunk) => {
      stdout += chunk
      if (stdout.includes('"event":"up"')) {
        clearTimeout(timer)
        resolve((performance.now() - started) / 1000)
      }
    })
    child.on('exit', (code) => {
      clearTimeout(timer)
      reject(new BaseError('INTERNAL', `carchain up exited ${code}: ${stderr.trim().split('\n').at(-1)}`))
    })
  })
  return { seconds, child }
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGINT')
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
  await exited
  clearTimeout(timer)
}

export async function benchStartup(options: BenchOptions): Promise<BenchResult[]> {
  const fresh: number[] = []
  const restart: number[] = []
  for (let run = 0; run < (options.quick ? 1 : 2); run++) {
    const dataDir = mkdtempSync(join(tmpdir(), 'carchain-bench-up-'))
    try {
      const first = await startOnce(dataDir)
      await stop(first.child)
      fresh.push(first.seconds)
      const again = await startOnce(dataDir)
      await stop(again.child)
      restart.push(again.seconds)
      options.progress(
        `carchain up: fresh ${first.seconds.toFixed(1)} s, restart ${again.seconds.toFixed(1)} s`,
      )
    } finally {
      rmSync(dataDir, { recursive: true, force: true })
    }
  }
  return [
    resultOf('node.startup_s', 's', fresh, undefined, {
      what: '`carchain up` on a fresh data dir (anvil, deploy, PGlite initdb, PKI, 12 demo cars) until its "up" line',
      restartSeconds: round3(median(restart)),
      note: 'no target in the issues; PGlite first open measured ~4 s here (initdb)',
    }),
  ]
}
