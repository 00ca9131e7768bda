/**
 * The demo fleet's link relay: `GET /v1/sim/vehicles/{vehicle}/link` upgraded to a WebSocket
 * carries the car's short-range link frames between a browser (the key app on a phone) and the
 * demo car's link server, both ways, unchanged. It stands for the phone's radio: the car still
 * issues and checks every challenge itself, so the relay can neither grant nor forge anything,
 * and the car's relay bound (docs/keys.md "The short-range link") counts the relay's own latency —
 * a phone too far away (too slow) is refused CHALLENGE_EXPIRED as before.
 *
 * Only upgrades of its own path are touched; other paths are left to their own handlers.
 *
 * Bounds: frames at most the link's 8 KiB, at most `maxRelays` connections at once (others are
 * refused with HTTP 503), and the car sees every relayed phone at the node's address, so its
 * per-peer refusal budget is shared by everyone on the relay.
 */
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { getAddress } from 'viem'
import WebSocket, { WebSocketServer } from 'ws'
import { MAX_LINK_MESSAGE_BYTES } from '../keys/link-protocol.ts'
import { logger } from '../log.ts'

const log = logger('sim.link-relay')

const RELAY_PATH = /^\/v1\/sim\/vehicles\/(0x[0-9a-fA-F]{40})\/link$/

/** Connections relayed at once, at most. */
export const MAX_LINK_RELAYS = 64

function refuse(socket: Duplex, status: number, reason: string): void {
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`)
}

/**
 * Mounts the relay on the node's HTTP server: `linkOf(vehicle)` answers a demo car's link URL
 * (checksummed address), or undefined when the fleet has no such car.
 */
export function mountLinkRelay(
  app: FastifyInstance,
  linkOf: (vehicle: string) => string | undefined,
  maxRelays = MAX_LINK_RELAYS,
): void {
  const server = new WebSocketServer({ noServer: true, maxPayload: MAX_LINK_MESSAGE_BYTES })
  let open = 0
  app.server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (request.url ?? '').split('?')[0] ?? ''
    const match = RELAY_PATH.exec(path)
    // Another path is another handler's (the OCPP endpoint, …): left alone.
    if (!match) return
    const link = linkOf(getAddress(match[1]!))
    if (link === undefined) return refuse(socket, 404, 'Not Found')
    if (open >= maxRelays) return refuse(socket, 503, 'Service Unavailable')
    open++
    server.handleUpgrade(request, socket, head, (phone) => relay(phone, link, () => open--))
  })
  app.addHook('onClose', async () => {
    for (const client of server.clients) client.terminate()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
}

/** Pipes text frames between the phone and the car until either side closes. */
function relay(phone: WebSocket, link: string, done: () => void): void {
  const car = new WebSocket(link, { maxPayload: MAX_LINK_MESSAGE_BYTES })
  const pending: string[] = []
  let finished = false
  const finish = () => {
    if (finished) return
    finished = true
    done()
    phone.close()
    car.close()
  }
  car.on('open', () => {
    for (const frame of pending.splice(0)) car.send(frame)
  })
  car.on('message', (data, isBinary) => {
    if (!isBinary && phone.readyState === WebSocket.OPEN) phone.send(String(data))
  })
  phone.on('message', (data, isBinary) => {
    if (isBinary) return // the link carries text frames only; the car would refuse them anyway
    if (car.readyState === WebSocket.OPEN) car.send(String(data))
    else if (pending.length < 4) pending.push(String(data))
  })
  car.on('error', (error) => {
    log.warn({ err: error, link }, 'the demo car’s link failed while relaying')
    finish()
  })
  phone.on('error', (error) => {
    log.warn({ err: error }, 'a relayed phone connection failed')
    finish()
  })
  car.on('close', finish)
  phone.on('close', finish)
}
