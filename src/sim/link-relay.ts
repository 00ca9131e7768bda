/**
 * The demo fleet's link relay: `GET /v1/sim/vehicles/{vehicle}/link` upgraded to a WebSocket
 * carries the car's short-range link frames between a browser (the key app on a phone) and the
 * demo car's link server, both ways, unchanged. It stands for the phone's radio: the car still
 * issues and checks every challenge itself, so the relay can neither grant nor forge anything,
 * and the car's relay bound (docs/keys.md "The short-range link") counts the relay's own latency —
 * a phone too far away (too slow) is refused CHALLENGE_EXPIRED as before.
 *
 * It is a route on the node port's upgrade router (src/upgrade-router.ts), which answers every
 * other path.
 *
 * Bounds: frames at most the link's 8 KiB, at most `maxRelays` connections at once (others are
 * refused with HTTP 503; a malformed handshake, refused 400 by `ws`, holds no place), and the car
 * sees every relayed phone at the node's address, so its per-peer refusal budget is shared by
 * everyone on the relay.
 */
import type { FastifyInstance } from 'fastify'
import { getAddress } from 'viem'
import WebSocket, { WebSocketServer } from 'ws'
import { MAX_LINK_MESSAGE_BYTES } from '../keys/link-protocol.ts'
import { logger } from '../log.ts'
import { refuseUpgrade } from '../upgrade-router.ts'

const log = logger('sim.link-relay')

/** Connections relayed at once, at most. */
export const MAX_LINK_RELAYS = 64

/**
 * Mounts the relay on the node's upgrade router: `linkOf(vehicle)` answers a demo car's link URL
 * (checksummed address), or undefined when the fleet has no such car.
 */
export function mountLinkRelay(
  app: FastifyInstance,
  linkOf: (vehicle: string) => string | undefined,
  maxRelays = MAX_LINK_RELAYS,
): void {
  const server = new WebSocketServer({ noServer: true, maxPayload: MAX_LINK_MESSAGE_BYTES })
  let open = 0
  app.upgrades.add({
    path: /^\/v1\/sim\/vehicles\/(0x[0-9a-fA-F]{40})\/link$/,
    handle(request, socket, head, match) {
      const link = linkOf(getAddress(match[1]!))
      if (link === undefined) return refuseUpgrade(socket, 404)
      if (open >= maxRelays) return refuseUpgrade(socket, 503)
      // Counted once the handshake succeeded (`ws` answers a malformed one 400 and never calls back;
      // it calls back synchronously here, so the check above cannot be overtaken).
      server.handleUpgrade(request, socket, head, (phone) => {
        open++
        relay(phone, link, () => open--)
      })
    },
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
