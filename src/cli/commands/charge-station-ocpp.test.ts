/**
 * `carchain charge station --csms URL --station-id ID [--password P]` against an independent CSMS:
 * the `ocpp-rpc` library's own server in strict mode (its validator, OCA's 2.0.1 schemas) with
 * handlers written here. The station boots with its Basic password, reports its connector and
 * heartbeats, schema-valid; a wrong password or a refused boot ends the command with
 * `OCPP_BOOT_REJECTED` and exit status 1; a station that fails to start after booting hangs up.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { RPCServer } from 'ocpp-rpc'
import { startTestChain, type TestChain } from '../../../test/chain.ts'
import { deploymentPath } from '../../chain/deploy.ts'
import { writeFileAtomic } from '../../fs-atomic.ts'
import { aPki, type TestPki } from '../../identity/pki.testkit.ts'
import type { RpcPeer } from '../../ocpp/rpc.ts'
import { chargeStationArgs, commonArgs } from './charge.testkit.ts'

const main = new URL('../main.ts', import.meta.url).pathname
const PASSWORD = 'the-station-password-1'

type Call = { stationId: string; method: string; params: Record<string, unknown> }
const calls: Call[] = []
const failures: unknown[] = []
const closed: string[] = []
/** What the CSMS answers to BootNotification, per station. */
const bootStatus = new Map<string, string>()

let chain: TestChain
let pki: TestPki
let dir: string
let csmsUrl: string
let stationFlags: string[]
const server = new RPCServer({ protocols: ['ocpp2.0.1'], strictMode: true } as never) as unknown as {
  auth(callback: unknown): void
  on(event: string, listener: (client: RpcPeer) => void): void
  listen(port: number, host: string): Promise<import('node:http').Server>
  close(options?: Record<string, unknown>): Promise<unknown>
}

before(async () => {
  server.auth(
    (
      accept: (session: unknown) => void,
      reject: (code: number) => void,
      handshake: { password?: Buffer },
    ) => {
      if (handshake.password?.toString() === PASSWORD) accept({})
      else reject(401)
    },
  )
  server.on('client', (client) => {
    const stationId = client.identity
    client.on('strictValidationFailure', (event) => failures.push({ stationId, event }))
    client.on('badMessage', (event) => failures.push({ stationId, event }))
    client.on('close', () => closed.push(stationId))
    const record = (method: string, answer: () => unknown) =>
      client.handle(method, ({ params }) => {
        calls.push({ stationId, method, params: params as Record<string, unknown> })
        return answer()
      })
    record('BootNotification', () => ({
      currentTime: new Date().toISOString(),
      interval: 1,
      status: bootStatus.get(stationId) ?? 'Accepted',
    }))
    record('Heartbeat', () => ({ currentTime: new Date().toISOString() }))
    record('StatusNotification', () => ({}))
  })
  const http = await server.listen(0, '127.0.0.1')
  csmsUrl = `ws://127.0.0.1:${(http.address() as AddressInfo).port}/ocpp`

  chain = await startTestChain()
  dir = mkdtempSync(join(tmpdir(), 'carchain-station-ocpp-'))
  mkdirSync(join(dir, 'data', 'deployments'), { recursive: true })
  writeFileAtomic(deploymentPath(join(dir, 'data'), chain.clients.chain.id), JSON.stringify(chain.deployment))
  pki = await aPki()
  const evseId = 'DE*CLI*E00007'
  const charger = await pki.aCharger({ evseId })
  await pki.store.generate('secp256k1', 'charger-wallet')
  await pki.store.generate('secp256k1', 'cpo')
  stationFlags = [
    ...chargeStationArgs(dir, pki, charger, evseId),
    ...commonArgs(chain.anvil.rpcUrl, join(dir, 'data'), pki.dir),
  ]
})
after(async () => {
  await server.close({ force: true })
  await pki?.cleanup()
  await chain?.stop()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

/**
 * Runs `carchain charge station` as a user does, in a process of its own; with `whileRunning`,
 * stops it with SIGTERM once that resolves. Answers its exit status and what it printed.
 */
async function station(
  extra: string[],
  options: { whileRunning?: (output: () => string) => Promise<void> } = {},
): Promise<{ status: number | null; out: string }> {
  const child = spawn(process.execPath, [main, ...stationFlags, ...extra], {
    env: { ...process.env, CARCHAIN_CSMS_PASSWORD: '' },
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString()
  })
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString()
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
  if (options.whileRunning) {
    await Promise.race([options.whileRunning(() => out + err), exited])
    child.kill('SIGTERM')
  }
  // a command that never ends (a connection left open) fails the test instead of hanging it
  const hung = setTimeout(() => child.kill('SIGKILL'), 30_000)
  const status = await exited
  clearTimeout(hung)
  return { status, out }
}

const until = async (what: string, condition: () => boolean) => {
  for (let i = 0; i < 300 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 50))
  assert.ok(condition(), `no ${what}`)
}
const of = (stationId: string, method: string) =>
  calls.filter((c) => c.stationId === stationId && c.method === method)
const lastJson = (out: string) => JSON.parse(out.trim().split('\n').at(-1)!) as Record<string, unknown>

test('charge station --csms --station-id --password boots, reports its connector and heartbeats', async () => {
  const { status, out } = await station(
    ['--csms', csmsUrl, '--station-id', 'CP-CLI-1', '--password', PASSWORD],
    {
      whileRunning: async (output) => {
        await until('TLS port', () => /listening on TLS port \d+/.test(output()))
        await until('heartbeat', () => of('CP-CLI-1', 'Heartbeat').length > 0)
      },
    },
  )
  assert.equal(status, 0, out)
  assert.equal(lastJson(out).stopped, true)
  const boot = of('CP-CLI-1', 'BootNotification')
  assert.equal(boot.length, 1)
  assert.equal(boot[0]!.params.reason, 'PowerUp')
  assert.deepEqual(
    of('CP-CLI-1', 'StatusNotification').map((c) => [
      c.params.evseId,
      c.params.connectorId,
      c.params.connectorStatus,
    ]),
    [[1, 1, 'Available']],
  )
  await until('hang-up', () => closed.includes('CP-CLI-1'))
  assert.deepEqual(failures, [], 'every message both ways is valid OCPP 2.0.1')
})

test('a wrong or missing password, or a refused boot: OCPP_BOOT_REJECTED, exit status 1', async () => {
  bootStatus.set('CP-CLI-REFUSED', 'Rejected')
  const cases: [string, string[]][] = [
    ['CP-CLI-2', ['--password', 'not-the-password-x']],
    ['CP-CLI-3', []],
    ['CP-CLI-REFUSED', ['--password', PASSWORD]],
  ]
  for (const [stationId, extra] of cases) {
    const { status, out } = await station(['--csms', csmsUrl, '--station-id', stationId, ...extra])
    assert.equal(status, 1, `${stationId}: ${out}`)
    assert.equal(lastJson(out).code, 'OCPP_BOOT_REJECTED', stationId)
  }
  assert.equal(of('CP-CLI-2', 'BootNotification').length, 0, 'refused at the handshake')
  assert.equal(of('CP-CLI-REFUSED', 'BootNotification').length, 1)
  await until('hang-up', () => closed.includes('CP-CLI-REFUSED'))
  assert.deepEqual(failures, [])
})

test('a --csms that is no ws: URL is CLI_USAGE (exit 2); a station that cannot start hangs up', async () => {
  const usage = await station(['--csms', 'http://127.0.0.1:1/ocpp'])
  assert.equal(usage.status, 2)
  assert.equal(lastJson(usage.out).code, 'CLI_USAGE')
  // booted, then its wallet key is missing: the command fails and the CSMS sees it go
  const args = [...stationFlags]
  args[args.indexOf('charger-wallet')] = 'no-such-key'
  const saved = stationFlags
  stationFlags = args
  try {
    const { status, out } = await station([
      '--csms',
      csmsUrl,
      '--station-id',
      'CP-CLI-4',
      '--password',
      PASSWORD,
    ])
    assert.equal(status, 1)
    assert.equal(lastJson(out).code, 'KEY_NOT_FOUND')
  } finally {
    stationFlags = saved
  }
  assert.equal(of('CP-CLI-4', 'BootNotification').length, 1)
  await until('hang-up', () => closed.includes('CP-CLI-4'))
})
