/**
 * Carchain's station against an independent CSMS: the `ocpp-rpc` library's own server in strict
 * mode (its validator, OCA's 2.0.1 schemas) with handlers written here. The station boots, reports
 * connectors, heartbeats, and reports a car's paid session as a transaction whose vouchers add up
 * to the cost the CSMS answers; it answers the CSMS's calls; a CSMS that refuses it is an error.
 */
import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import { after, before, test } from 'node:test'
import { RPCServer } from 'ocpp-rpc'
import { getAddress, toHex } from 'viem'
import { BaseError } from '../errors.ts'
import { aChargingWorld, type ChargingWorld } from '../payments/payments.testkit.ts'
import { CARCHAIN_VENDOR_ID, costResponse, parseBaseCustomData, parseVoucherCustomData } from './payment.ts'
import type { RpcPeer } from './rpc.ts'
import { connectOcppStation } from './station-client.ts'

type Call = { method: string; params: Record<string, unknown> }

let world: ChargingWorld
let server: {
  auth(cb: (...args: never[]) => unknown): void
  on(event: string, listener: (...args: never[]) => void): void
  listen(port: number, host: string): Promise<import('node:http').Server>
  close(options?: Record<string, unknown>): Promise<unknown>
}
let url: string
const calls: Call[] = []
const failures: unknown[] = []
const connected: RpcPeer[] = []
let bootStatus = 'Accepted'
let startedStatus = 'Accepted'

before(async () => {
  world = await aChargingWorld()
  server = new RPCServer({ protocols: ['ocpp2.0.1'], strictMode: true } as never) as never
  server.auth(((
    accept: (s: unknown) => void,
    reject: (code: number) => void,
    handshake: { password?: Buffer },
  ) => {
    if (handshake.password?.toString() === 'the-station-password-1') accept({})
    else reject(401)
  }) as never)
  server.on('client', ((client: RpcPeer) => {
    connected.push(client)
    client.on('strictValidationFailure', (event) => failures.push(event))
    let base = 0n
    let newest = 0n
    const record = (method: string, answer: (params: Record<string, unknown>) => unknown) =>
      client.handle(method, ({ params }) => {
        calls.push({ method, params })
        return answer(params)
      })
    record('BootNotification', () => ({
      currentTime: new Date().toISOString(),
      interval: 1,
      status: bootStatus,
    }))
    record('Heartbeat', () => ({ currentTime: new Date().toISOString() }))
    record('StatusNotification', () => ({}))
    record('Authorize', (params) => {
      const idToken = params.idToken as { idToken: string; type: string; customData?: { vendorId: string } }
      const ok = idToken.type === 'Central' && idToken.customData?.vendorId === CARCHAIN_VENDOR_ID
      return { idTokenInfo: { status: ok ? 'Accepted' : 'Invalid' } }
    })
    record('TransactionEvent', (params) => {
      const custom = params.customData as Record<string, unknown> | undefined
      const started = parseBaseCustomData(custom)
      if (started) base = newest = started.cumulativeAmount
      if (params.eventType === 'Started' && startedStatus !== 'Accepted')
        return { idTokenInfo: { status: startedStatus } }
      const voucher = parseVoucherCustomData(custom)
      if (voucher) newest = voucher.cumulativeAmount
      return params.eventType === 'Ended' ? costResponse(newest - base, world.token) : {}
    })
  }) as never)
  const http = await server.listen(0, '127.0.0.1')
  url = `ws://127.0.0.1:${(http.address() as AddressInfo).port}/ocpp`
})
after(async () => {
  await server?.close({ force: true })
  await world?.stop()
})

const until = async (condition: () => boolean) => {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 20))
}

test('Carchain’s station boots, heartbeats and reports a paid session to an independent CSMS', async () => {
  const ocpp = await connectOcppStation({
    csmsUrl: url,
    stationId: 'CARCHAIN-EXT-1',
    password: 'the-station-password-1',
    evses: 2,
  })
  assert.equal(ocpp.boot.status, 'Accepted')
  const car = await world.aCar()
  const { station } = await world.aCharger({ report: ocpp.report })
  const [result, session] = await world.charge(car, station, { stopAtWh: 3000 })
  assert.equal(session.code, 'OK')
  await until(() => calls.filter((c) => c.method === 'Heartbeat').length > 0)

  const methods = calls.map((c) => c.method).filter((m) => m !== 'Heartbeat')
  assert.deepEqual(methods.slice(0, 3), ['BootNotification', 'StatusNotification', 'StatusNotification'])
  const session0 = methods.slice(3)
  assert.deepEqual(session0.slice(0, 3), ['Authorize', 'StatusNotification', 'TransactionEvent'])
  assert.equal(session0.at(-1), 'StatusNotification')
  const events = calls.filter((c) => c.method === 'TransactionEvent').map((c) => c.params)
  assert.deepEqual(
    events.map((e) => e.eventType),
    ['Started', ...Array(result.vouchers).fill('Updated'), 'Ended'],
  )
  assert.deepEqual(
    events.map((e) => e.seqNo),
    events.map((_, i) => i),
  )
  const ids = new Set(events.map((e) => (e.transactionInfo as { transactionId: string }).transactionId))
  assert.equal(ids.size, 1)
  // The IdToken names the car's wallet in 27 characters; customData the channel it pays from.
  const idToken = events[0]!.idToken as { idToken: string; customData: { channelId: string } }
  assert.equal(getAddress(toHex(Buffer.from(idToken.idToken, 'base64url'))), car.account.address)
  assert.equal(idToken.customData.channelId, result.channelId)
  // Each Updated carries the signed reading and the voucher for it.
  const updated = events[1]!
  const sample = (updated.meterValue as { sampledValue: Record<string, unknown>[] }[])[0]!.sampledValue[0]!
  assert.equal(sample.measurand, 'Energy.Active.Import.Register')
  assert.equal((sample.signedMeterValue as { signingMethod: string }).signingMethod, 'EIP712-secp256k1')
  assert.ok(parseVoucherCustomData(updated.customData as Record<string, unknown>))
  // The cost the CSMS answered to Ended is what the car's vouchers paid, to the base unit.
  assert.equal(ocpp.costs[0]?.amount, result.amount)
  assert.deepEqual(failures, [], 'every message both ways is valid OCPP 2.0.1')

  // The CSMS's calls.
  const client = connected.at(-1)!
  const get = (await client.call('GetVariables', {
    getVariableData: [
      { component: { name: 'OCPPCommCtrlr' }, variable: { name: 'HeartbeatInterval' } },
      { component: { name: 'Nope' }, variable: { name: 'Nope' } },
    ],
  })) as { getVariableResult: { attributeStatus: string; attributeValue?: string }[] }
  assert.deepEqual(
    get.getVariableResult.map((r) => r.attributeStatus),
    ['Accepted', 'UnknownComponent'],
  )
  const set = (await client.call('SetVariables', {
    setVariableData: [
      { component: { name: 'OCPPCommCtrlr' }, variable: { name: 'HeartbeatInterval' }, attributeValue: '30' },
      { component: { name: 'ChargingStation' }, variable: { name: 'Model' }, attributeValue: 'x' },
    ],
  })) as { setVariableResult: { attributeStatus: string }[] }
  assert.deepEqual(
    set.setVariableResult.map((r) => r.attributeStatus),
    ['Accepted', 'Rejected'],
  )
  assert.deepEqual(
    await client.call('RequestStartTransaction', {
      idToken: { idToken: 'x', type: 'Central' },
      remoteStartId: 1,
    }),
    {
      status: 'Rejected',
      statusInfo: { reasonCode: 'CarStartsSession', additionalInfo: 'a car starts a session by paying' },
    },
  )
  assert.deepEqual(await client.call('RequestStopTransaction', { transactionId: 'none' }), {
    status: 'Rejected',
  })
  assert.deepEqual(
    await client.call('SetChargingProfile', {
      evseId: 1,
      chargingProfile: {
        id: 1,
        stackLevel: 0,
        chargingProfilePurpose: 'TxDefaultProfile',
        chargingProfileKind: 'Absolute',
        chargingSchedule: [
          {
            id: 1,
            chargingRateUnit: 'W',
            chargingSchedulePeriod: [{ startPeriod: 0, limit: 11_000 }],
          },
        ],
      },
    }),
    { status: 'Accepted' },
  )
  const boots = calls.filter((c) => c.method === 'BootNotification').length
  assert.deepEqual(await client.call('Reset', { type: 'Immediate' }), { status: 'Accepted' })
  await until(() => calls.filter((c) => c.method === 'BootNotification').length > boots)
  assert.equal(calls.filter((c) => c.method === 'BootNotification').at(-1)?.params.reason, 'RemoteReset')
  await assert.rejects(
    client.call('UpdateFirmware', {
      requestId: 1,
      firmware: { location: 'x', retrieveDateTime: new Date().toISOString() },
    }),
    (error: { rpcErrorCode?: string }) => {
      assert.equal(error.rpcErrorCode, 'NotImplemented')
      return true
    },
  )
  assert.deepEqual(failures, [])
  await ocpp.close()
})

test('a CSMS that refuses the station (password, BootNotification) is OCPP_BOOT_REJECTED', async () => {
  const refused = (error: unknown) => {
    assert.ok(error instanceof BaseError)
    assert.equal(error.code, 'OCPP_BOOT_REJECTED')
    return true
  }
  await assert.rejects(
    connectOcppStation({
      csmsUrl: url,
      stationId: 'CARCHAIN-EXT-2',
      password: 'not-the-password-x',
      reconnect: false,
    }),
    refused,
  )
  bootStatus = 'Rejected'
  try {
    await assert.rejects(
      connectOcppStation({
        csmsUrl: url,
        stationId: 'CARCHAIN-EXT-3',
        password: 'the-station-password-1',
        reconnect: false,
      }),
      refused,
    )
  } finally {
    bootStatus = 'Accepted'
  }
})

test('a transaction the CSMS deauthorizes at Started ends there, before any energy', async () => {
  const ocpp = await connectOcppStation({
    csmsUrl: url,
    stationId: 'CARCHAIN-EXT-4',
    password: 'the-station-password-1',
    reconnect: false,
  })
  const car = await world.aCar()
  const { station } = await world.aCharger({ report: ocpp.report })
  startedStatus = 'NoCredit'
  const seen = calls.length
  try {
    const [carOutcome, session] = await world.chargeOutcome(car, station, { stopAtWh: 3000 })
    assert.equal(carOutcome, 'OCPP_NOT_AUTHORIZED')
    assert.equal(session.code, 'OCPP_NOT_AUTHORIZED')
    assert.equal(session.energyWh, 0n)
  } finally {
    startedStatus = 'Accepted'
  }
  const events = calls
    .slice(seen)
    .filter((c) => c.method === 'TransactionEvent')
    .map((c) => c.params)
  assert.deepEqual(
    events.map((e) => [e.eventType, (e.transactionInfo as { stoppedReason?: string }).stoppedReason]),
    [
      ['Started', undefined],
      ['Ended', 'DeAuthorized'],
    ],
  )
  assert.deepEqual(ocpp.transactions(), [])
  assert.deepEqual(failures, [])
  await ocpp.close()
})
