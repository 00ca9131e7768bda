/**
 * Security profiles 2 and 3 (docs/ocpp.md): the CSMS over TLS. A station with its password over TLS
 * is profile 2; one with a client certificate of the station CA naming it is profile 3 without a
 * password; a certificate from another CA, or naming another station, is refused at the handshake.
 * Certificates are made here with OpenSSL (P-256).
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import type { Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { freshDatabase } from '../../test/database.ts'
import { requirePart } from '../../test/skip.ts'
import { loadConfig } from '../config.ts'
import type { Database } from '../db/database.ts'
import { isErrorCode } from '../errors.ts'
import { rawUpgrade } from '../upgrade-router.testkit.ts'
import { type Csms, createCsms, listenCsmsTls } from './csms.ts'
import { connectOcppStation } from './station-client.ts'
import { listStations, registerStation } from './stations.ts'

const hasOpenssl = (() => {
  try {
    execFileSync('openssl', ['version'])
    return true
  } catch {
    return false
  }
})()
const dir = mkdtempSync(join(tmpdir(), 'carchain-ocpp-tls-'))
const file = (name: string) => join(dir, name)
const read = (name: string) => readFileSync(file(name), 'utf8')
const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' })

/** A P-256 CA, and a certificate it issues (`san` for a server). */
function ca(name: string) {
  openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`)
  openssl(
    'req',
    '-x509',
    '-new',
    '-key',
    `${name}.key`,
    '-subj',
    `/CN=${name}`,
    '-days',
    '2',
    '-out',
    `${name}.pem`,
  )
}
function issue(issuer: string, name: string, cn: string, san?: string) {
  openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`)
  openssl('req', '-new', '-key', `${name}.key`, '-subj', `/CN=${cn}`, '-out', `${name}.csr`)
  const extensions = san ? ['-extfile', `${name}.ext`] : []
  if (san) execFileSync('sh', ['-c', `printf 'subjectAltName=${san}\\n' > ${name}.ext`], { cwd: dir })
  openssl(
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    `${issuer}.pem`,
    '-CAkey',
    `${issuer}.key`,
    '-CAcreateserial',
    '-days',
    '2',
    '-out',
    `${name}.pem`,
    ...extensions,
  )
}

let db: Database
let csms: Csms
let server: Server
let url: string

before(async () => {
  if (!hasOpenssl) return
  ca('stations-ca')
  ca('rogue-ca')
  issue('stations-ca', 'csms', 'csms.local', 'IP:127.0.0.1')
  issue('stations-ca', 'station', 'TLS-STATION-1')
  issue('stations-ca', 'other', 'TLS-STATION-2')
  issue('rogue-ca', 'rogue', 'TLS-STATION-1')
  db = await freshDatabase('pglite')
  csms = createCsms({ db })
  server = await listenCsmsTls(csms, {
    port: 0,
    host: '127.0.0.1',
    cert: read('csms.pem'),
    key: read('csms.key'),
    clientCa: read('stations-ca.pem'),
  })
  url = `wss://127.0.0.1:${(server.address() as AddressInfo).port}/ocpp`
})
after(async () => {
  await csms?.close()
  server?.close()
  await db?.close()
  rmSync(dir, { recursive: true, force: true })
})

const profileOf = async (stationId: string) =>
  (await listStations(db)).find((s) => s.stationId === stationId)?.securityProfile

test('profile 2 (Basic over TLS) and 3 (client certificate) connect; a foreign or mis-named certificate does not', async (t) => {
  if (!requirePart(t, hasOpenssl, 'OpenSSL is not installed (apt-get install openssl)')) return
  const { password } = await registerStation(db, 'TLS-STATION-1')
  const caPem = read('stations-ca.pem')
  const basic = await connectOcppStation({
    csmsUrl: url,
    stationId: 'TLS-STATION-1',
    password,
    tls: { ca: caPem },
    reconnect: false,
  })
  assert.equal(basic.boot.status, 'Accepted')
  assert.equal(await profileOf('TLS-STATION-1'), 2)
  await basic.close()
  await assert.rejects(
    connectOcppStation({ csmsUrl: url, stationId: 'TLS-STATION-1', tls: { ca: caPem }, reconnect: false }),
    /Unauthorized/,
  )

  const mutual = await connectOcppStation({
    csmsUrl: url,
    stationId: 'TLS-STATION-1',
    tls: { ca: caPem, cert: read('station.pem'), key: read('station.key') },
    reconnect: false,
  })
  assert.equal(mutual.boot.status, 'Accepted')
  assert.equal(await profileOf('TLS-STATION-1'), 3)
  await mutual.close()

  for (const [cert, why] of [
    ['rogue', 'a certificate of another CA'],
    ['other', 'a certificate naming another station'],
  ] as const)
    await assert.rejects(
      connectOcppStation({
        csmsUrl: url,
        stationId: 'TLS-STATION-1',
        tls: { ca: caPem, cert: read(`${cert}.pem`), key: read(`${cert}.key`) },
        reconnect: false,
      }),
      /Unauthorized/,
      why,
    )
})

test('attack: the TLS server’s upgrade router answers other paths 404 at once, refuses a malformed upgrade, and serves on', async (t) => {
  if (!requirePart(t, hasOpenssl, 'OpenSSL is not installed (apt-get install openssl)')) return
  const port = (server.address() as AddressInfo).port
  const tls = { ca: read('stations-ca.pem') }
  for (const path of ['/', '/v1/sim/vehicles/0x0000000000000000000000000000000000000000/link', '/ocpp/A/B']) {
    const answer = await rawUpgrade(port, path, { tls })
    assert.equal(answer.status, 404, path)
    assert.ok(answer.closed && answer.ms < 1000, `${path}: answered and closed at once (${answer.ms} ms)`)
  }
  // Malformed past the station's login (ws refuses it) and before (ocpp-rpc does).
  const { password } = await registerStation(db, 'TLS-STATION-3')
  const login = `Basic ${Buffer.from(`TLS-STATION-3:${password}`).toString('base64')}`
  for (const headers of [{ Authorization: login, 'Sec-WebSocket-Key': null }, { Upgrade: 'h2c' }]) {
    const malformed = await rawUpgrade(port, '/ocpp/TLS-STATION-3', { tls, headers })
    assert.equal(malformed.status, 400, JSON.stringify(headers))
    assert.ok(malformed.closed, JSON.stringify(headers))
  }
  const station = await connectOcppStation({
    csmsUrl: url,
    stationId: 'TLS-STATION-3',
    password,
    tls,
    reconnect: false,
  })
  assert.equal(station.boot.status, 'Accepted')
  await station.close()
})

test('the node’s CSMS over TLS is configured all together or not at all', () => {
  const base = { CARCHAIN_OCPP_TLS_CERT: 'c.pem', CARCHAIN_OCPP_TLS_KEY: 'k.pem' }
  assert.equal(loadConfig({ flags: {}, env: {} }).ocppTls, undefined)
  assert.deepEqual(loadConfig({ flags: {}, env: { ...base, CARCHAIN_OCPP_TLS_PORT: '8443' } }).ocppTls, {
    port: 8443,
    cert: 'c.pem',
    key: 'k.pem',
    clientCa: undefined,
  })
  for (const env of [base, { ...base, CARCHAIN_OCPP_TLS_PORT: '99999' }, { CARCHAIN_OCPP_TLS_PORT: '8443' }])
    assert.throws(
      () => loadConfig({ flags: {}, env }),
      (error) => isErrorCode(error, 'CONFIG_INVALID'),
    )
})
