/**
 * pcscd with vsmartcard's virtual reader, for `carchain up` and the tests: found running, or
 * started (`pcscd --foreground` as a child that stops with its parent; or, for tests,
 * `pcscd --auto-exit`, which leaves by itself a minute after its last client). No systemd needed.
 * When pcscd or the vpcd driver is not installed, or CARCHAIN_NFC=off, says why NFC is off.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import { logger } from '../log.ts'
import { VPCD_PORT } from './vpcd.ts'

const log = logger('nfc.pcscd')

/** Where Debian's pcscd listens (PCSCLITE_CSOCK_NAME overrides it for clients, and here). */
export const PCSCD_SOCKET = process.env.PCSCLITE_CSOCK_NAME ?? '/run/pcscd/pcscd.comm'
const PCSCD_BINARIES = ['/usr/sbin/pcscd', '/usr/local/sbin/pcscd']
const READER_CONF = '/etc/reader.conf.d'

export type NfcService =
  | {
      readonly on: true
      /** Whether this process started pcscd (else it was running). */
      readonly started: boolean
      /** Where the virtual reader takes a card. */
      readonly vpcd: { host: string; port: number }
      stop(): Promise<void>
    }
  | { readonly on: false; readonly reason: string; stop(): Promise<void> }

/** Whether pcscd answers on its socket. */
export function pcscdRunning(socket = PCSCD_SOCKET): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect(socket)
    probe.once('connect', () => {
      probe.destroy()
      resolve(true)
    })
    probe.once('error', () => resolve(false))
  })
}

/** The vpcd reader's port from its reader.conf (CHANNELID), or the default. */
export function vpcdPort(): number | undefined {
  if (!existsSync(READER_CONF)) return undefined
  for (const name of readdirSync(READER_CONF)) {
    const text = readFileSync(join(READER_CONF, name), 'utf8')
    if (!/libifdvpcd/.test(text)) continue
    const channel = /^\s*CHANNELID\s+(0x[0-9a-f]+|\d+)/im.exec(text)
    return channel ? Number(channel[1]) : VPCD_PORT
  }
  return undefined
}

/**
 * Makes sure pcscd runs with the virtual reader. `mode: 'child'` starts it as a child that
 * `stop()` ends; `'daemon'` leaves it running on its own with `--auto-exit`.
 */
export async function startNfcService(
  options: { mode: 'child' | 'daemon' } = { mode: 'child' },
): Promise<NfcService> {
  const off = (reason: string): NfcService => ({ on: false, reason, stop: async () => {} })
  if (process.env.CARCHAIN_NFC === 'off') return off('CARCHAIN_NFC=off')
  const port = vpcdPort()
  if (port === undefined)
    return off('the vsmartcard virtual reader (Debian vsmartcard-vpcd) is not installed')
  const vpcd = { host: '127.0.0.1', port }
  if (await pcscdRunning()) return { on: true, started: false, vpcd, stop: async () => {} }
  const binary = PCSCD_BINARIES.find((path) => existsSync(path))
  if (!binary) return off('pcscd (Debian pcscd) is not installed')
  let child: ChildProcess | undefined
  if (options.mode === 'child') {
    child = spawn(binary, ['--foreground'], { stdio: ['ignore', 'ignore', 'pipe'] })
    child.stderr?.on('data', (chunk: Buffer) => log.debug({ output: chunk.toString('utf8').trim() }, 'pcscd'))
    child.on('error', (error) => log.error({ err: error }, 'pcscd failed'))
  } else {
    const daemon = spawn(binary, ['--auto-exit'], { stdio: 'ignore', detached: true })
    daemon.on('error', (error) => log.error({ err: error }, 'pcscd failed'))
    daemon.unref()
  }
  const deadline = Date.now() + 5000
  while (!(await pcscdRunning())) {
    if (Date.now() > deadline || child?.exitCode != null) {
      child?.kill()
      return off(`pcscd did not start (is ${PCSCD_SOCKET} writable? pcscd needs root or the pcscd group)`)
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return {
    on: true,
    started: true,
    vpcd,
    async stop() {
      if (!child || child.exitCode !== null) return
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      await exited
    },
  }
}
