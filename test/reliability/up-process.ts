/**
 * `carchain up` as a child process for the crash and fault tests: started with `--json`, ready
 * when it prints `{"event":"up",…}`, killed by signal. Output is drained (and kept, bounded) so a
 * chatty node never blocks on a full pipe.
 */
import { type ChildProcess, spawn } from 'node:child_process'

const main = new URL('../../src/cli/main.ts', import.meta.url).pathname

export type UpInfo = {
  url: string
  chain: { chainId: number; rpcUrl: string; contracts: Record<string, string> }
}

export type UpProcess = {
  child: ChildProcess
  /** Resolves with the node's info once it serves HTTP; rejects if it exits first. */
  ready: Promise<UpInfo>
  /** Resolves with the exit code (null after a signal). */
  exited: Promise<number | null>
  /** The last few KiB of output, for failure messages. */
  output(): string
}

export function startUp(args: string[], env: Record<string, string> = {}): UpProcess {
  const child = spawn(process.execPath, [main, 'up', '--json', '--port', '0', ...args], {
    env: { ...process.env, DATABASE_URL: '', CARCHAIN_MQTT_URL: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-8192)
  }
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const ready = new Promise<UpInfo>((resolve, reject) => {
    let stdout = ''
    child.stdout!.on('data', (chunk: Buffer) => {
      keep(chunk)
      if (stdout.length < 1_000_000) stdout += chunk.toString()
      const line = stdout.split('\n').find((l) => l.startsWith('{"event":"up"'))
      if (line) {
        resolve(JSON.parse(line))
        stdout = ''
      }
    })
    child.stderr!.on('data', keep)
    void exited.then((code) => reject(new Error(`carchain up exited (${code}) before serving: ${output}`)))
  })
  ready.catch(() => {}) // a test that kills during start-up never awaits it
  return { child, ready, exited, output: () => output }
}
