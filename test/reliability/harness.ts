/**
 * Shared pieces of the reliability suite (docs/reliability.md): the short/soak switch, a seeded
 * random source, an in-process node on a temp data dir, SIWE sign-in, and JSON calls with their
 * status. Every wait here is bounded; nothing listens beyond 127.0.0.1.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { LocalAccount } from 'viem'
import { createSiweMessage } from 'viem/siwe'
import { loadConfig } from '../../src/config.ts'
import { type RunningNode, startNode } from '../../src/node/up.ts'

/** `CARCHAIN_SOAK=1`: the long runs; otherwise the short fixed-seed runs of `npm test`. */
export const soak = process.env.CARCHAIN_SOAK === '1' || process.env.CARCHAIN_SOAK === 'true'

/** The seed of every random choice; `CARCHAIN_SEED` replays another run. */
export const seed = Number(process.env.CARCHAIN_SEED ?? 20261121)

/** A small, fast, seeded generator (mulberry32): the same seed gives the same run. */
export function seededRandom(start: number): () => number {
  let state = start >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export const MQTT_URL = process.env.CARCHAIN_TEST_MQTT_URL ?? 'mqtt://127.0.0.1:1883'
export const POSTGRES_URL =
  process.env.CARCHAIN_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'

/** Whether something accepts TCP connections at `host:port` (within a second). */
export function listening(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, host)
    const timer = setTimeout(() => {
      socket.destroy()
      resolve(false)
    }, 1000)
    socket.once('connect', () => {
      clearTimeout(timer)
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => {
      clearTimeout(timer)
      resolve(false)
    })
  })
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls `probe` until it returns a value, at most `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 60_000,
  everyMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe().catch(() => undefined)
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(everyMs)
  }
}

// biome-ignore lint/suspicious/noExplicitAny: tests read JSON answers field by field
export type Answer = { status: number; body: Record<string, any>; headers: Headers }

/** One JSON call; never throws on an HTTP status, only on a network failure or timeout. */
export async function call(
  url: string,
  init: { method?: string; json?: unknown; body?: string; token?: string; timeoutMs?: number } = {},
): Promise<Answer> {
  const headers: Record<string, string> = {}
  if (init.json !== undefined || init.body !== undefined) headers['content-type'] = 'application/json'
  if (init.token) headers.authorization = `Bearer ${init.token}`
  const response = await fetch(url, {
    method: init.method ?? (init.json === undefined && init.body === undefined ? 'GET' : 'POST'),
    headers,
    body: init.body ?? (init.json === undefined ? undefined : JSON.stringify(init.json)),
    signal: AbortSignal.timeout(init.timeoutMs ?? 30_000),
  })
  const text = await response.text()
  let body: Record<string, unknown>
  try {
    body = JSON.parse(text)
  } catch {
    body = { unparsed: text }
  }
  return { status: response.status, body, headers: response.headers }
}

export type TestNode = RunningNode & { dataDir: string; cleanup(): Promise<void> }

/** An in-process node without the demo fleet on a fresh data dir (embedded anvil and PGlite). */
export async function startTestNode(
  options: { env?: Record<string, string>; mqtt?: string; database?: string; rpc?: string } = {},
): Promise<TestNode> {
  const dataDir = mkdtempSync(join(tmpdir(), 'carchain-reliability-'))
  try {
    const node = await startNode({
      config: loadConfig({
        flags: {
          data: dataDir,
          port: 0,
          noSim: true,
          mqtt: options.mqtt,
          database: options.database,
          rpc: options.rpc,
        },
        env: { CARCHAIN_ANCHOR_INTERVAL_MS: '3600000', ...options.env },
      }),
    })
    return Object.assign(node, {
      dataDir,
      async cleanup() {
        await node.stop()
        rmSync(dataDir, { recursive: true, force: true })
      },
    })
  } catch (error) {
    rmSync(dataDir, { recursive: true, force: true })
    throw error
  }
}

/** Signs `account` in with SIWE at `nodeUrl`; answers the message, signature and the node's answer. */
export async function signIn(nodeUrl: string, chainId: number, account: LocalAccount) {
  const { body } = await call(`${nodeUrl}/v1/auth/nonce`)
  const message = createSiweMessage({
    address: account.address,
    chainId,
    domain: new URL(nodeUrl).host,
    nonce: body.nonce,
    uri: nodeUrl,
    version: '1',
  })
  const signature = await account.signMessage({ message })
  const answer = await call(`${nodeUrl}/v1/auth/siwe`, { json: { message, signature } })
  return { message, signature, answer, token: answer.body.token as string | undefined }
}
