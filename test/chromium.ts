/**
 * The browser tests' fixture: `carchain up` as a user runs it (a child process, embedded anvil,
 * PGlite), Debian's Chromium driven by playwright-core with a fresh profile, a first page whose
 * errors are collected, and the teardown of all of it. The phone's authenticator (Chromium's
 * virtual WebAuthn one) and the owner's wallet (`headless-web3-provider`, a wallet the project did
 * not write) are set up here too, for the tests that need them.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { BrowserContext, Page } from 'playwright-core'

export const chromiumPath = '/usr/bin/chromium'
export const hasChromium = existsSync(chromiumPath)
export const CHROMIUM_MISSING = 'chromium not installed (apt-get install chromium)'

const main = new URL('../src/cli/main.ts', import.meta.url).pathname

/** What `carchain up --json` says once it listens. */
export type UpInfo = {
  url: string
  chain: { chainId: number; rpcUrl: string; contracts: Record<string, string> }
}

export type ChromiumFixture = {
  readonly info: UpInfo
  /** The node's data directory (its keys, the demo witness's). */
  readonly dataDir: string
  readonly browser: BrowserContext
  /** The first page; its uncaught errors go to `pageErrors`. */
  readonly page: Page
  /** Uncaught errors of every page opened through `newPage`. */
  readonly pageErrors: string[]
  /** Where screenshots go: docs/img/ with UPDATE_SCREENSHOTS=1, else a temp dir. */
  readonly shotDir: string
  /** Another page, its errors collected too. */
  newPage(): Promise<Page>
  /** Stops the browser and the node and removes their directories. */
  close(): Promise<void>
}

export type StartChromiumParameters = {
  /** Names the temp directories (`carchain-<name>-…`). */
  name: string
  /** More `carchain up` flags (`--no-sim`, `--vehicles 1`, …). */
  upArgs: readonly string[]
  /** More environment for `carchain up`. */
  env?: Record<string, string>
  viewport: { width: number; height: number }
  deviceScaleFactor?: number
}

/** Where screenshots go: docs/img/ with UPDATE_SCREENSHOTS=1, else a temp dir. */
function screenshotDir(): string {
  const dir = process.env.UPDATE_SCREENSHOTS
    ? new URL('../docs/img/', import.meta.url).pathname
    : mkdtempSync(join(tmpdir(), 'carchain-shots-'))
  mkdirSync(dir, { recursive: true })
  return dir
}

/** Starts `carchain up --json --port 0` in a child process; its `up` line, or its output on exit. */
async function startUp(
  dataDir: string,
  parameters: StartChromiumParameters,
): Promise<{ child: ChildProcessWithoutNullStreams; info: UpInfo }> {
  const child = spawn(
    process.execPath,
    [main, 'up', '--json', '--port', '0', ...parameters.upArgs, '--data', dataDir],
    { env: { ...process.env, DATABASE_URL: '', ...parameters.env } },
  )
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  const info = await new Promise<UpInfo>((resolve, reject) => {
    let stdout = ''
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString()
      const line = stdout.split('\n').find((l) => l.startsWith('{"event":"up"'))
      if (line) resolve(JSON.parse(line))
    })
    child.once('exit', (code) => reject(new Error(`up exited ${code}: ${stdout}\n${stderr}`)))
  })
  return { child, info }
}

async function stopChild(child: ChildProcessWithoutNullStreams): Promise<void> {
  if (child.exitCode !== null) return
  child.kill('SIGINT')
  await new Promise((resolve) => child.once('exit', resolve))
}

/** `carchain up`, then Chromium with a fresh profile and its first page. */
export async function startChromium(parameters: StartChromiumParameters): Promise<ChromiumFixture> {
  const dataDir = mkdtempSync(join(tmpdir(), `carchain-${parameters.name}-`))
  const profileDir = mkdtempSync(join(tmpdir(), `carchain-${parameters.name}-chromium-`))
  let child: ChildProcessWithoutNullStreams | undefined
  let browser: BrowserContext | undefined
  const close = async () => {
    await browser?.close()
    if (child) await stopChild(child)
    rmSync(dataDir, { recursive: true, force: true })
    rmSync(profileDir, { recursive: true, force: true })
  }
  try {
    const up = await startUp(dataDir, parameters)
    child = up.child
    const { chromium } = await import('playwright-core')
    // A fresh profile per run (playwright passes it as --user-data-dir).
    browser = await chromium.launchPersistentContext(profileDir, {
      executablePath: chromiumPath,
      viewport: parameters.viewport,
      ...(parameters.deviceScaleFactor ? { deviceScaleFactor: parameters.deviceScaleFactor } : {}),
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    })
    const context = browser
    const pageErrors: string[] = []
    const watch = (page: Page) => {
      page.on('pageerror', (error) => {
        pageErrors.push(error.message)
      })
      return page
    }
    const page = watch(context.pages()[0] ?? (await context.newPage()))
    return {
      info: up.info,
      dataDir,
      browser: context,
      page,
      pageErrors,
      shotDir: screenshotDir(),
      newPage: async () => watch(await context.newPage()),
      close,
    }
  } catch (error) {
    await close()
    throw error
  }
}

/**
 * Chromium's virtual WebAuthn authenticator on `page` (DevTools protocol, internal transport,
 * user-verifying): a phone's platform authenticator with biometrics.
 */
export async function addVirtualAuthenticator(fixture: ChromiumFixture, page: Page): Promise<void> {
  const cdp = await fixture.browser.newCDPSession(page)
  await cdp.send('WebAuthn.enable')
  await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  })
}

export type HeadlessWeb3 = typeof import('headless-web3-provider')
export type HeadlessWallet = InstanceType<HeadlessWeb3['Web3ProviderBackend']>

/** `headless-web3-provider`, the wallet injected into pages (a CommonJS package: its exports are the ES module's default). */
export async function headlessWeb3(): Promise<HeadlessWeb3> {
  const module = (await import('headless-web3-provider')) as HeadlessWeb3 & { default?: HeadlessWeb3 }
  return module.default ?? module
}
