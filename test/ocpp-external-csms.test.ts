/**
 * `carchain up --csms URL` drives an external CSMS with schema-valid traffic: the `ocpp-rpc`
 * library's own server in strict mode (its own validator, OCA's 2.0.1 schemas, both ways) with
 * handlers written here stands for CitrineOS or SteVe; a real `carchain up` with a small demo fleet
 * points its stations at it. Every demo station connects to URL/{stationId}, boots, reports its
 * connector, heartbeats, and reports a car's charging session as a whole transaction with meter
 * values and Carchain's payment `customData`; nothing either side sends fails the schemas.
 */
import assert from 'node:assert/strict'
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { RPCServer } from 'ocpp-rpc'
import type { Address } from 'viem'
import {
  CARCHAIN_VENDOR_ID,
  costResponse,
  parseBaseCustomData,
  parseCarIdToken,
  parseVoucherCustomData,
} from '../src/ocpp/payment.ts'
import type { RpcPeer } from '../src/ocpp/rpc.ts'
import { DEMO_CHARGERS } from '../src/sim/battery.ts'

const main = new URL('../src/cli/main.ts', import.meta.url).pathname
const dataDir = mkdtempSync(join(tmpdir(), 'carchain-csms-'))

type Call = { stationId: string; method: string; params: Record<string, unknown> }
const calls: Call[] = []
/** Schema failures either way, CALLERRORs the CSMS received, messages it could not parse. */
const failures: unknown[] = []
const handshakes: { identity: string; endpoint: string }[] = []
let token: Address | undefined

const server = new RPCServer({ protocols: ['ocpp2.0.1'], strictMode: true } as never) as unknown as {
  auth(callback: unknown): void
  on(event: string, listener: (client: RpcPeer) => void): void
  listen(port: number, host: string): Promise<import('node:http').Server>
  close(options?: Record<string, unknown>): Promise<unknown>
}
server.auth(
  (
    accept: (session: unknown) => void,
    _reject: unknown,
    handshake: { identity: string; endpoint: string },
  ) => {
    handshakes.push({ identity: handshake.identity, endpoint: handshake.endpoint })
    accept({})
  },
)
server.on('client', (client) => {
  const stationId = client.identity
  client.on('strictValidationFailure', (event) => failures.push({ stationId, strict: event }))
  client.on('badMessage', (event) => failures.push({ stationId, badMessage: event }))
  // the base of each transaction's payment, and its newest voucher
  const base = new Map<string, bigint>()
  const newest = new Map<string, bigint>()
  const record = (method: string, answer: (params: Record<string, unknown>) => unknown) =>
    client.handle(method, ({ params }) => {
      calls.push({ stationId, method, params: params as Record<string, unknown> })
      return answer(params as Record<string, unknown>)
    })
  record('BootNotification', () => ({
    currentTime: new Date().toISOString(),
    interval: 1,
    status: 'Accepted',
  }))
  record('Heartbeat', () => ({ currentTime: new Date().toISOString() }))
  record('StatusNotification', () => ({}))
  record('Authorize', (params) => {
    const idToken = params.idToken as { idToken: string; type: string; customData?: Record<string, unknown> }
    return { idTokenInfo: { status: parseCarIdToken(idToken as never) ? 'Accepted' : 'Invalid' } }
  })
  record('TransactionEvent', (params) => {
    const id = (params.transactionInfo as { transactionId: string }).transactionId
    const custom = params.customData as Record<string, unknown> | undefined
    const started = parseBaseCustomData(custom)
    if (started) {
      base.set(id, started.cumulativeAmount)
      newest.set(id, started.cumulativeAmount)
    }
    const voucher = parseVoucherCustomData(custom)
    if (voucher) newest.set(id, voucher.cumulativeAmount)
    if (params.eventType !== 'Ended' || !token) return {}
    return costResponse((newest.get(id) ?? 0n) - (base.get(id) ?? 0n), token)
  })
  record('MeterValues', () => ({}))
  record('NotifyEvent', () => ({}))
  client.handle(({ method, params }) => {
    failures.push({ stationId, unhandled: method, params })
    throw new Error(`the test CSMS does not handle ${method}`)
  })
})
const http = await server.listen(0, '127.0.0.1')
const csmsUrl = `ws://127.0.0.1:${(http.address() as AddressInfo).port}/ocpp`

let child: ChildProcessWithoutNullStreams | undefined
after(async () => {
  child?.kill('SIGKILL')
  await server.close({ force: true })
  rmSync(dataDir, { recursive: true, force: true })
})

const exited = (process: ChildProcessWithoutNullStreams) =>
  new Promise<number | null>((resolve) =>
    process.exitCode !== null ? resolve(process.exitCode) : process.once('exit', resolve),
  )

const stationIds = DEMO_CHARGERS.map((_, i) => `DE-CCH-E${String(i + 1).padStart(5, '0')}`)
const of = (stationId: string, method: string) =>
  calls.filter((c) => c.stationId === stationId && c.method === method)
/** The transactions that ended, by id, each with its events in order. */
const endedTransactions = () => {
  const byId = new Map<string, Call[]>()
  for (const c of calls.filter((c) => c.method === 'TransactionEvent')) {
    const id = (c.params.transactionInfo as { transactionId: string }).transactionId
    byId.set(id, [...(byId.get(id) ?? []), c])
  }
  return [...byId.values()].filter((events) => events.at(-1)!.params.eventType === 'Ended')
}

test('carchain up --csms URL: every demo station boots, heartbeats and reports a whole transaction', async (t) => {
  const t0 = Date.now()
  // Two cars: the second starts low and charges in its first cycle.
  child = spawn(
    process.execPath,
    [main, 'up', '--json', '--port', '0', '--data', dataDir, '--vehicles', '2', '--csms', csmsUrl],
    { env: { ...process.env, DATABASE_URL: '' } },
  )
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString()
  })
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  const running = child
  const until = async (what: string, condition: () => boolean) => {
    const deadline = Date.now() + 90_000
    while (!condition()) {
      if (running.exitCode !== null) throw new Error(`up exited ${running.exitCode}: ${stdout}\n${stderr}`)
      if (Date.now() > deadline) throw new Error(`no ${what} within 90 s: ${stderr.slice(-3000)}`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  await until('up event', () => stdout.includes('{"event":"up"'))
  const info = JSON.parse(stdout.split('\n').find((l) => l.startsWith('{"event":"up"'))!) as {
    url: string
    chain: { contracts: Record<string, Address> }
  }
  token = info.chain.contracts.Token
  await until('boot and heartbeat of every station', () =>
    stationIds.every((id) => of(id, 'Heartbeat').length > 0),
  )
  t.diagnostic(`every station booted and heartbeated after ${Date.now() - t0} ms`)
  await until('an ended transaction', () => endedTransactions().length > 0)
  t.diagnostic(`the first transaction ended after ${Date.now() - t0} ms`)

  // Every station connected to URL/{stationId}, and nothing else did.
  assert.deepEqual(new Set(handshakes.map((h) => h.identity)), new Set(stationIds))
  assert.ok(handshakes.every((h) => h.endpoint === '/ocpp'))
  for (const stationId of stationIds) {
    const boot = of(stationId, 'BootNotification')[0]!.params
    assert.equal(boot.reason, 'PowerUp')
    assert.equal((boot.chargingStation as { vendorName: string }).vendorName, 'Carchain')
    const statuses = of(stationId, 'StatusNotification').map((c) => c.params)
    assert.ok(statuses.length > 0, stationId)
    assert.deepEqual(
      [statuses[0]!.evseId, statuses[0]!.connectorId, statuses[0]!.connectorStatus],
      [1, 1, 'Available'],
    )
  }

  const events = endedTransactions()[0]!
  const stationId = events[0]!.stationId
  const types = events.map((e) => e.params.eventType)
  assert.equal(types[0], 'Started')
  assert.equal(types.at(-1), 'Ended')
  assert.ok(types.slice(1, -1).every((t) => t === 'Updated'))
  assert.ok(types.length >= 3, `a transaction with meter values: ${types}`)
  assert.deepEqual(
    events.map((e) => e.params.seqNo),
    events.map((_, i) => i),
  )
  // Authorized with the car's IdToken; Started carries it and the channel's base.
  assert.ok(of(stationId, 'Authorize').length > 0)
  const started = events[0]!.params
  const car = parseCarIdToken(started.idToken as never)
  assert.ok(car, 'Started carries the car’s IdToken')
  assert.equal(
    (started.idToken as { customData: { vendorId: string } }).customData.vendorId,
    CARCHAIN_VENDOR_ID,
  )
  const base = parseBaseCustomData(started.customData as Record<string, unknown>)
  assert.ok(base, 'Started carries the org.carchain base')
  // Each Updated: a signed energy reading and the car's voucher for it.
  let lastWh = -1
  for (const updated of events.slice(1, -1)) {
    const sample = (updated.params.meterValue as { sampledValue: Record<string, unknown>[] }[])[0]!
      .sampledValue[0]!
    assert.equal(sample.measurand, 'Energy.Active.Import.Register')
    assert.ok(sample.signedMeterValue, 'a signed reading')
    assert.ok((sample.value as number) >= lastWh)
    lastWh = sample.value as number
    const voucher = parseVoucherCustomData(updated.params.customData as Record<string, unknown>)
    assert.ok(voucher, 'an org.carchain voucher')
    assert.equal(voucher.channelId, car.channel?.channelId)
    assert.ok(voucher.cumulativeAmount > base.cumulativeAmount)
  }
  const ended = events.at(-1)!.params
  assert.ok((ended.meterValue as unknown[] | undefined)?.length, 'Ended carries the final reading')
  assert.ok((ended.transactionInfo as { stoppedReason?: string }).stoppedReason)

  // What the CSMS was told adds up to the session the station recorded: the vouchers it reported,
  // from the base at Started to the newest, are what the car paid (to the base unit).
  const vouchers = events.slice(1, -1).map((e) => parseVoucherCustomData(e.params.customData as never)!)
  const { sessions } = (await (await fetch(`${info.url}/v1/charging/sessions?state=ended`)).json()) as {
    sessions: {
      channelId: string
      cumulativeAmount: string
      amount: string
      vouchers: number
      evseId: string
    }[]
  }
  const session = sessions.find(
    (s) =>
      s.channelId === car.channel?.channelId &&
      BigInt(s.cumulativeAmount) === vouchers.at(-1)!.cumulativeAmount,
  )
  assert.ok(session, `the station's session of that transaction: ${JSON.stringify(sessions)}`)
  assert.equal(session.evseId.replace(/\*/g, '-'), stationId)
  assert.equal(BigInt(session.amount), vouchers.at(-1)!.cumulativeAmount - base.cumulativeAmount)
  assert.equal(session.vouchers, vouchers.length)

  // Nothing either side sent failed the 2.0.1 schemas; no CALLERROR, no unhandled action.
  assert.deepEqual(failures, [])
  assert.doesNotMatch(stderr, /failed the 2\.0\.1 schema|CALLERROR|OCPP_CALL_FAILED/)

  running.kill('SIGINT')
  assert.equal(await exited(running), 0)
})
