/**
 * The upgrade router (src/upgrade-router.ts) on a real HTTP server: a matched path reaches its
 * route; an unknown path is answered 404 at once and closed; a malformed handshake is refused by
 * the route's WebSocket server; a failing route is answered 500 and logged; a second mechanism
 * (another `upgrade` listener, a duplicate route) is refused. After each the server serves on.
 */
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, test } from 'node:test'
import WebSocket, { WebSocketServer } from 'ws'
import { isErrorCode } from './errors.ts'
import { captureLogs } from './log.ts'
import { rawUpgrade } from './upgrade-router.testkit.ts'
import { routeUpgrades, type UpgradeRouter } from './upgrade-router.ts'

let http: Server
let router: UpgradeRouter
let port: number
const echo = new WebSocketServer({ noServer: true })

before(async () => {
  http = createServer((_request, response) => response.writeHead(200).end('plain'))
  router = routeUpgrades(http, [
    {
      path: /^\/echo\/([a-z]+)$/,
      handle: (request, socket, head, match) =>
        echo.handleUpgrade(request, socket, head, (ws) => ws.send(`hello ${match[1]}`)),
    },
  ])
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  port = (http.address() as AddressInfo).port
})
after(async () => {
  for (const client of echo.clients) client.terminate()
  http.closeAllConnections()
  await new Promise((resolve) => http.close(resolve))
})

/** The server still serves: a plain request and a WebSocket on a routed path. */
async function servesOn(): Promise<void> {
  assert.equal(await (await fetch(`http://127.0.0.1:${port}/anything`)).text(), 'plain')
  const ws = new WebSocket(`ws://127.0.0.1:${port}/echo/again?x=1`)
  assert.equal(String(await new Promise((resolve) => ws.once('message', resolve))), 'hello again')
  ws.close()
}

test('a routed path reaches its route, with the path’s match and without the query', async () => {
  await servesOn()
})

test('attack: an upgrade to a path no route serves is answered 404 at once and closed', async () => {
  for (const path of ['/nowhere', '/echo/UPPER', '/echo/a/b', '//echo/a', '*', 'http://evil/echo/a']) {
    const answer = await rawUpgrade(port, path)
    assert.equal(answer.status, 404, path)
    assert.ok(answer.closed, `${path}: the connection is closed`)
    assert.ok(answer.ms < 1000, `${path}: answered at once, not at a timeout (${answer.ms} ms)`)
  }
  await servesOn()
})

test('attack: a malformed upgrade to a routed path is refused 400 and closed', async () => {
  for (const headers of [
    { 'Sec-WebSocket-Key': null },
    { 'Sec-WebSocket-Key': 'short' },
    { 'Sec-WebSocket-Version': '7' },
    { Upgrade: 'h2c' },
  ]) {
    const answer = await rawUpgrade(port, '/echo/x', { headers })
    assert.equal(answer.status, 400, JSON.stringify(headers))
    assert.ok(answer.closed, JSON.stringify(headers))
  }
  await servesOn()
})

test('a route that fails is answered 500, logged, and the server serves on', async () => {
  router.add({
    path: /^\/throws$/,
    handle: () => {
      throw new Error('route bug')
    },
  })
  router.add({ path: /^\/rejects$/, handle: async () => Promise.reject(new Error('async route bug')) })
  const logs = captureLogs()
  try {
    for (const path of ['/throws', '/rejects']) {
      const answer = await rawUpgrade(port, path)
      assert.equal(answer.status, 500, path)
      assert.ok(answer.closed, path)
    }
  } finally {
    logs.restore()
  }
  assert.deepEqual(
    logs.records.filter((r) => r.component === 'upgrade-router').map((r) => r.err?.message),
    ['route bug', 'async route bug'],
  )
  await servesOn()
})

test('one mechanism: a second upgrade listener or a duplicate route is refused', () => {
  assert.throws(
    () => routeUpgrades(http),
    (error) => isErrorCode(error, 'CONFIG_INVALID'),
  )
  assert.throws(
    () => router.add({ path: /^\/echo\/([a-z]+)$/, handle: () => undefined }),
    (error) => isErrorCode(error, 'CONFIG_INVALID'),
  )
})
