/**
 * The one way an HTTP(S) server takes WebSocket upgrades: a router that owns the server's `upgrade`
 * event and hands each upgrade to the route whose path pattern matches (the request target without
 * its query), or answers it at once when none does: HTTP 404 and the socket closed. Without it, an
 * upgrade no handler took would hang until the server's timeout, holding a socket.
 *
 * The node's port routes `/ocpp/{stationId}` to the CSMS and, with the demo fleet,
 * `/v1/sim/vehicles/{vehicle}/link` to the link relay; the CSMS's own TLS server routes the CSMS
 * alone. A route's handler checks the WebSocket handshake itself (the `ws` library answers 400 to
 * a malformed one); a handler that throws is answered 500 and logged, never left hanging.
 */
import type { Server as HttpServer, IncomingMessage } from 'node:http'
import type { Server as HttpsServer } from 'node:https'
import type { Duplex } from 'node:stream'
import { BaseError } from './errors.ts'
import { logger } from './log.ts'

const log = logger('upgrade-router')

/** Takes one upgrade whose path matched `path`; `match` is that match (its groups). */
export type UpgradeHandler = (
  request: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  match: RegExpExecArray,
) => void | Promise<void>

export type UpgradeRoute = {
  /** Matched against the request target's path (no query); anchor it (`^…$`). */
  readonly path: RegExp
  readonly handle: UpgradeHandler
}

export type UpgradeRouter = {
  /** Adds a route; a second route with the same pattern is a programming error. */
  add(route: UpgradeRoute): void
}

const reasons = {
  400: 'Bad Request',
  404: 'Not Found',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
} as const

/** Refuses an upgrade with an HTTP status and closes the connection (no WebSocket is made). */
export function refuseUpgrade(socket: Duplex, status: keyof typeof reasons): void {
  if (socket.destroyed) return
  // Closed once the answer is written, whether or not the client closes its side.
  socket.once('finish', () => socket.destroy())
  socket.end(`HTTP/1.1 ${status} ${reasons[status]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`)
}

/**
 * Makes `server`'s upgrade router with `routes`. It must be the server's only `upgrade` listener:
 * one already there is refused, so no second mechanism can take upgrades behind the router's back.
 */
export function routeUpgrades(
  server: HttpServer | HttpsServer,
  routes: readonly UpgradeRoute[] = [],
): UpgradeRouter {
  if (server.listenerCount('upgrade') > 0)
    throw new BaseError('CONFIG_INVALID', 'this server already has an upgrade listener; add a route instead')
  const table: UpgradeRoute[] = []
  const router: UpgradeRouter = {
    add(route) {
      if (table.some((known) => known.path.source === route.path.source))
        throw new BaseError('CONFIG_INVALID', `two upgrade routes for ${route.path.source}`)
      table.push(route)
    },
  }
  for (const route of routes) router.add(route)
  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    // The upgraded socket has lost the HTTP server's error listener: a peer resetting it while it
    // is refused or handed over must not become an uncaught error.
    socket.on('error', (error) => log.debug({ err: error }, 'an upgrading connection failed'))
    const path = (request.url ?? '').split('?')[0]!
    for (const route of table) {
      const match = route.path.exec(path)
      if (!match) continue
      const failed = (error: unknown) => {
        log.error({ err: error, path }, 'a WebSocket upgrade handler failed')
        refuseUpgrade(socket, 500)
      }
      try {
        const pending = route.handle(request, socket, head, match)
        if (pending) pending.catch(failed)
      } catch (error) {
        failed(error)
      }
      return
    }
    refuseUpgrade(socket, 404)
  })
  return router
}
