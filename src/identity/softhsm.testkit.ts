/**
 * Test kit: a throw-away SoftHSM2 token in a temporary directory (its own SOFTHSM2_CONF and
 * tokendir), so tests touch no global state. Not part of the library.
 */
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const SOFTHSM_MODULE = process.env.SOFTHSM2_MODULE ?? '/usr/lib/softhsm/libsofthsm2.so'

function hasSoftHsmUtil(): boolean {
  try {
    execFileSync('softhsm2-util', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** Whether SoftHSM2 (module and softhsm2-util) is installed. */
export const softHsmAvailable = existsSync(SOFTHSM_MODULE) && hasSoftHsmUtil()

export type SoftHsmToken = {
  readonly module: string
  readonly slot: number
  readonly pin: string
  /** The SOFTHSM2_CONF value: set it in the environment of anything that opens the token. */
  readonly conf: string
  cleanup(): Promise<void>
}

/**
 * Initialises a fresh token and points this process's SOFTHSM2_CONF at it (SoftHSM2 reads it at
 * C_Initialize, so open the store after this).
 */
export async function createSoftHsmToken(label = 'carchain-test', pin = '1234'): Promise<SoftHsmToken> {
  const dir = await mkdtemp(join(tmpdir(), 'carchain-softhsm-'))
  const conf = join(dir, 'softhsm2.conf')
  await writeFile(conf, `directories.tokendir = ${dir}\nobjectstore.backend = file\nlog.level = ERROR\n`)
  const env = { ...process.env, SOFTHSM2_CONF: conf }
  const out = execFileSync(
    'softhsm2-util',
    ['--init-token', '--free', '--label', label, '--pin', pin, '--so-pin', `${pin}-so`],
    { env, encoding: 'utf8' },
  )
  const slot = Number(/reassigned to slot (\d+)/.exec(out)?.[1] ?? 0)
  process.env.SOFTHSM2_CONF = conf
  return {
    module: SOFTHSM_MODULE,
    slot,
    pin,
    conf,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  }
}
