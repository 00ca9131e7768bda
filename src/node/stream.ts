/**
 * Live updates: an in-process hub that the ingest, anchoring and domain services publish to, and
 * `GET /v1/stream`, which relays it to browsers as server-sent events.
 */
import { EventEmitter } from 'node:events'
import type { FastifyInstance } from 'fastify'

export type NodeEventMap = {
  event: { vehicle: string; id: string; index: number; seq: number; kind: string; timeMs: number }
  anchor: { treeSize: number; rootHash: string; txHash: string; blockNumber: number }
  charging: Record<string, unknown>
  access: Record<string, unknown>
  alert: { vehicle: string; code: string; message: string }
}
export type NodeEventName = keyof NodeEventMap

export type NodeEvents = {
  publish<K extends NodeEventName>(name: K, data: NodeEventMap[K]): void
  subscribe(listener: (name: NodeEventName, data: unknown) => void): () => void
}

export function createNodeEvents(): NodeEvents {
  const emitter = new EventEmitter()
  emitter.setMaxListeners(0) // one per open stream
  return {
    publish: (name, data) => emitter.emit('message', name, data),
    subscribe(listener) {
      emitter.on('message', listener)
      return () => emitter.off('message', listener)
    },
  }
}

/** `GET /v1/stream`: server-sent events, a comment every 15 s to keep proxies from closing it. */
export function streamRoutes(events: NodeEvents) {
  return (app: FastifyInstance) => {
    app.get(
      '/v1/stream',
      { schema: { summary: 'Live updates as server-sent events (event, anchor, charging, access, alert)' } },
      (request, reply) => {
        reply.hijack()
        const socket = reply.raw
        socket.writeHead(200, {
          'content-type': 'text/event-stream',
          'cache-control': 'no-cache',
          connection: 'keep-alive',
          'access-control-allow-origin': '*',
        })
        socket.write(': carchain\n\n')
        const unsubscribe = events.subscribe((name, data) => {
          socket.write(`event: ${name}\ndata: ${JSON.stringify(data)}\n\n`)
        })
        const keepAlive = setInterval(() => socket.write(': keep-alive\n\n'), 15_000)
        request.raw.on('close', () => {
          clearInterval(keepAlive)
          unsubscribe()
        })
      },
    )
  }
}
