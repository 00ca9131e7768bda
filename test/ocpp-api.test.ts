/**
 * The node as a CSMS, end to end in process: the operator (signed in with SIWE) registers a
 * station, which connects to `/ocpp/{stationId}` on the node's own port and boots; the API lists it
 * with its connectors; the operator's calls reach it; anyone else is refused; a revoked station is
 * disconnected and refused; the OpenAPI document describes the routes.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { developmentAccount } from '../src/chain/clients.ts'
import { loadConfig } from '../src/config.ts'
import { type RunningNode, startNode } from '../src/node/up.ts'
import { connectOcppStation, type OcppStation } from '../src/ocpp/station-client.ts'
import { rawUpgrade } from '../src/upgrade-router.testkit.ts'
import { call as jsonCall, signIn as siweSignIn } from './reliability/harness.ts'

const dataDir = mkdtempSync(join(tmpdir(), 'carchain-ocpp-'))
let node: RunningNode

before(async () => {
  node = await startNode({
    config: loadConfig({ flags: { data: dataDir, port: 0, noSim: true }, env: {} }),
  })
})
after(async () => {
  await node?.stop()
  rmSync(dataDir, { recursive: true, force: true })
})

const api = (path: string, init: Parameters<typeof jsonCall>[1] = {}) =>
  jsonCall(`${node.url}${path}`, { method: 'GET', ...init })

const signIn = async (account: ReturnType<typeof developmentAccount>): Promise<string> =>
  (await siweSignIn(node.url, node.chain.chainId, account)).token!

test('the operator registers a station, which boots over OCPP on the node’s port; others are refused', async () => {
  const operator = await signIn(developmentAccount(0))
  const stranger = await signIn(developmentAccount(3))
  const register = { method: 'POST', json: { stationId: 'NODE-STATION-1' } }
  assert.equal((await api('/v1/ocpp/stations', register)).body.code, 'UNAUTHENTICATED')
  assert.equal((await api('/v1/ocpp/stations', { ...register, token: stranger })).body.code, 'FORBIDDEN')
  const bad = await api('/v1/ocpp/stations', { method: 'POST', json: { stationId: 'a/b' }, token: operator })
  assert.equal(bad.body.code, 'INVALID_ARGUMENT')
  const registered = await api('/v1/ocpp/stations', { ...register, token: operator })
  assert.equal(registered.status, 200)
  const { password } = registered.body as { password: string }
  assert.ok(password.length >= 16)

  const csmsUrl = `${node.url.replace(/^http/, 'ws')}/ocpp`
  let station: OcppStation | undefined = await connectOcppStation({
    csmsUrl,
    stationId: 'NODE-STATION-1',
    password,
    evses: 2,
    reconnect: false,
  })
  try {
    assert.equal(station.boot.status, 'Accepted')
    const listed = (await api('/v1/ocpp/stations')).body.stations as {
      stationId: string
      connected: boolean
      securityProfile: number
      connectors: { status: string }[]
    }[]
    const [mine] = listed.filter((s) => s.stationId === 'NODE-STATION-1')
    assert.equal(mine?.connected, true)
    assert.equal(mine?.securityProfile, 1)
    assert.deepEqual(
      mine?.connectors.map((c) => c.status),
      ['Available', 'Available'],
    )

    const call = (token: string | undefined, action: string, json: unknown) =>
      api(`/v1/ocpp/stations/NODE-STATION-1/calls/${action}`, {
        method: 'POST',
        json,
        ...(token ? { token } : {}),
      })
    const get = {
      getVariableData: [{ component: { name: 'OCPPCommCtrlr' }, variable: { name: 'HeartbeatInterval' } }],
    }
    const answered = await call(operator, 'GetVariables', get)
    assert.equal(answered.status, 200)
    assert.equal(answered.body.getVariableResult[0].attributeStatus, 'Accepted')
    assert.equal((await call(stranger, 'GetVariables', get)).body.code, 'FORBIDDEN')
    assert.equal((await call(operator, 'UpdateFirmware', {})).body.code, 'INVALID_ARGUMENT')
    // A payload the 2.0.1 schema refuses never leaves the node.
    const invalid = await call(operator, 'Reset', { type: 'Sometime' })
    assert.equal(invalid.body.code, 'OCPP_CALL_FAILED')
    assert.equal(invalid.body.details.ocppErrorCode, 'FormatViolation')
    assert.equal(
      (
        await api('/v1/ocpp/stations/NOBODY/calls/Reset', {
          method: 'POST',
          json: { type: 'Immediate' },
          token: operator,
        })
      ).body.code,
      'OCPP_STATION_OFFLINE',
    )

    // Revoked: disconnected now, refused from then on.
    const revoked = await api('/v1/ocpp/stations/NODE-STATION-1/revoke', {
      method: 'POST',
      json: {},
      token: operator,
    })
    assert.equal(revoked.body.revoked, true)
    await station.close()
    station = undefined
    await assert.rejects(
      connectOcppStation({ csmsUrl, stationId: 'NODE-STATION-1', password, reconnect: false }),
      (error: { code?: string }) => error.code === 'OCPP_BOOT_REJECTED',
    )
  } finally {
    await station?.close()
  }
  assert.deepEqual((await api('/v1/ocpp/transactions')).body.transactions, [])
  assert.equal((await api('/v1/ocpp/stations/NODE-STATION-1/transactions/none')).body.code, 'NOT_FOUND')
  const openapi = (await api('/openapi.json')).body as { paths: Record<string, unknown> }
  for (const path of [
    '/v1/ocpp/stations',
    '/v1/ocpp/transactions',
    '/v1/ocpp/stations/{stationId}/revoke',
    '/v1/ocpp/stations/{stationId}/calls/{action}',
    '/v1/ocpp/stations/{stationId}/transactions/{transactionId}',
  ])
    assert.ok(openapi.paths[path], `openapi describes ${path}`)
})

test('attack: the node port’s upgrade router answers an unknown path 404 at once, refuses a malformed upgrade, and serves on', async () => {
  const port = Number(new URL(node.url).port)
  // Not a path anyone serves here (the link relay is the demo fleet's, absent with --no-sim).
  for (const path of [
    '/v1/health',
    '/v1/nowhere',
    '/ocpp',
    '/ocpp/A/B',
    `/v1/sim/vehicles/0x${'11'.repeat(20)}/link`,
  ]) {
    const answer = await rawUpgrade(port, path)
    assert.equal(answer.status, 404, path)
    assert.ok(answer.closed && answer.ms < 1000, `${path}: answered and closed at once (${answer.ms} ms)`)
  }
  // Malformed past the station's login (ws refuses it) and before (ocpp-rpc does).
  const operator = await signIn(developmentAccount(0))
  const { password } = (
    await api('/v1/ocpp/stations', { method: 'POST', json: { stationId: 'NODE-STATION-2' }, token: operator })
  ).body as { password: string }
  const login = `Basic ${Buffer.from(`NODE-STATION-2:${password}`).toString('base64')}`
  for (const headers of [{ Authorization: login, 'Sec-WebSocket-Key': null }, { Upgrade: 'h2c' }]) {
    const answer = await rawUpgrade(port, '/ocpp/NODE-STATION-2', { headers })
    assert.equal(answer.status, 400, JSON.stringify(headers))
    assert.ok(answer.closed, JSON.stringify(headers))
  }
  assert.equal((await api('/v1/health')).status, 200)
  const station = await connectOcppStation({
    csmsUrl: `${node.url.replace(/^http/, 'ws')}/ocpp`,
    stationId: 'NODE-STATION-2',
    password,
    reconnect: false,
  })
  assert.equal(station.boot.status, 'Accepted')
  await station.close()
})
