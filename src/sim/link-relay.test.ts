/**
 * The link relay on the node's upgrade router: it relays frames to a car's link both ways, answers
 * a car not in the fleet 404 and the relay past its bound 503, and a malformed handshake (refused
 * 400) holds no place in that bound — many of them cannot shut the relay.
 */
import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import { after, before, test } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { getAddress } from 'viem'
import WebSocket, { WebSocketServer } from 'ws'
import { createServer } from '../node/server.ts'
import { rawUpgrade } from '../upgrade-router.testkit.ts'
import { mountLinkRelay } from './link-relay.ts'

const car = getAddress(`0x${'ab'.repeat(20)}`)
let link: WebSocketServer
let app: FastifyInstance
let port: number

before(async () => {
  // The car's link stands in as an echo server.
  link = new WebSocketServer({ port: 0, host: '127.0.0.1' })
  link.on('connection', (ws) => ws.on('message', (data) => ws.send(`car: ${data}`)))
  await new Promise((resolve) => link.once('listening', resolve))
  const linkUrl = `ws://127.0.0.1:${(link.address() as AddressInfo).port}`
  app = await createServer({
    version: 'test',
    chain: () => ({ chainId: 1, rpcUrl: '', contracts: {} }),
    health: async () => ({}),
    rateLimit: false,
    routes: [(server) => mountLinkRelay(server, (vehicle) => (vehicle === car ? linkUrl : undefined), 1)],
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  port = (app.server.address() as AddressInfo).port
})
after(async () => {
  await app?.close()
  for (const client of link?.clients ?? []) client.terminate()
  link?.close()
})

const relayPath = (vehicle: string) => `/v1/sim/vehicles/${vehicle}/link`

test('attack: malformed handshakes hold no relay place; the one place relays, the next is refused 503', async () => {
  for (let i = 0; i < 3; i++) {
    const answer = await rawUpgrade(port, relayPath(car.toLowerCase()), {
      headers: { 'Sec-WebSocket-Key': null },
    })
    assert.equal(answer.status, 400)
    assert.ok(answer.closed)
  }
  assert.equal(
    (await rawUpgrade(port, relayPath(`0x${'00'.repeat(20)}`))).status,
    404,
    'a car not in the fleet',
  )
  const phone = new WebSocket(`ws://127.0.0.1:${port}${relayPath(car)}`)
  await new Promise((resolve, reject) => phone.once('open', resolve).once('error', reject))
  phone.send('hello')
  assert.equal(String(await new Promise((resolve) => phone.once('message', resolve))), 'car: hello')
  assert.equal((await rawUpgrade(port, relayPath(car))).status, 503, 'past the bound')
  phone.close()
  await new Promise((resolve) => phone.once('close', resolve))
  // The place is free again once the phone left.
  for (let tries = 0; ; tries++) {
    const again = await rawUpgrade(port, relayPath(car), { waitMs: 200 })
    if (again.status === 101) break
    assert.ok(tries < 20, `the relay place was not freed (${again.status})`)
  }
})
