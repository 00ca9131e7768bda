/**
 * Live updates: an in-process hub that the ingest, anchoring and domain services publish to, and
 * `GET /v1/stream`, which relays it to browsers as server-sent events.
 *
 * What a reader sees depends on who it is. Anyone gets the public view of each message: ledger
 * events and anchors (public in the log anyway), alerts, a charger's state changes without the
 * session's details, and access decisions without who asked, who granted or why (no grantee,
 * subject, issuer, purpose, grant id). An owner signed in with SIWE (`?token=` — an EventSource
 * cannot send headers — or `Authorization: Bearer`) also gets the full messages about the vehicles
 * whose title it holds (as indexed, refreshed every 15 s). A reader that leaves more than
 * `MAX_STREAM_BUFFERED_BYTES` unread is disconnected (logged), so a slow or stalled reader cannot
 * grow the node's memory; an EventSource reconnects on its own.
 */
import { EventEmitter } from 'node:events'
import type { FastifyInstance } from 'fastify'
import type { Address } from 'viem'
import type { Queryable } from '../db/database.ts'
import { fromHex, toHex } from '../ledger/bytes.ts'
import { logger } from '../log.ts'
import { sessionAddress, tokenAddress } from './auth.ts'
import type { NodeContext } from './context.ts'

export type NodeEventMap = {
  event: {
    shard?: number
    vehicle: string
    id: string
    index: number
    seq: number
    kind: string
    timeMs: number
  }
  anchor: { shard?: number; treeSize: number; rootHash: string; txHash: string; blockNumber: number }
  charging: Record<string, unknown>
  access: Record<string, unknown>
  alert: { vehicle: string; code: string; message: string }
}
export type NodeEventName = keyof NodeEventMap

export type NodeEvents = {
  publish<K extends NodeEventName>(name: K, data: NodeEventMap[K]): void
  subscribe(listener: (name: NodeEventName, data: unknown) => void): () => void
}

/** Unread bytes a stream reader may leave at the node before it is disconnected. */
export const MAX_STREAM_BUFFERED_BYTES = 1024 * 1024
const KEEP_ALIVE_MS = 15_000

const log = logger('node.stream')

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

const record = (value: unknown): Record<string, unknown> =>
  typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {}

/** The vehicle a message is about, lowercase, if any. */
function messageVehicle(name: NodeEventName, data: unknown): string | undefined {
  const fields = record(data)
  const vehicle = name === 'charging' ? (fields.vehicle ?? record(fields.data).vehicle) : fields.vehicle
  return typeof vehicle === 'string' ? vehicle.toLowerCase() : undefined
}

/** What anyone may see of a message; undefined: nothing (an owner's notice). */
export function publicView(name: NodeEventName, data: unknown): unknown {
  const fields = record(data)
  switch (name) {
    case 'event':
    case 'anchor':
    case 'alert':
      return data
    case 'charging':
      return { evseId: fields.evseId, kind: fields.kind }
    case 'access': {
      if (fields.notice) return undefined
      const decision = fields.decision === undefined ? undefined : record(fields.decision)
      return {
        vehicle: fields.vehicle,
        code: fields.code,
        ...(decision && {
          decision: {
            ok: decision.ok,
            code: decision.code,
            action: decision.action,
            rental: decision.rental,
          },
        }),
      }
    }
  }
}

async function titlesOf(db: Queryable, owner: Address): Promise<Set<string>> {
  const { rows } = await db.query<{ vehicle: Uint8Array }>(
    'select vehicle from node_titles where owner = $1',
    [fromHex(owner, 'owner', 20)],
  )
  return new Set(rows.map((row) => toHex(new Uint8Array(row.vehicle))))
}

/** `GET /v1/stream`: server-sent events, a comment every 15 s to keep proxies from closing it. */
export function streamRoutes(context: Pick<NodeContext, 'db' | 'events'>) {
  const { db, events } = context
  return (app: FastifyInstance) => {
    app.get(
      '/v1/stream',
      {
        schema: {
          summary:
            'Live updates as server-sent events (event, anchor, charging, access, alert); full messages about their own vehicles for a signed-in owner',
          querystring: {
            type: 'object',
            additionalProperties: false,
            properties: { token: { type: 'string', maxLength: 256 } },
          },
        },
      },
      async (request, reply) => {
        // Refused before the stream opens: an unknown or expired token is UNAUTHENTICATED.
        const token = (request.query as { token?: string }).token
        const owner = token ? await tokenAddress(db, token) : await sessionAddress(db, request)
        let owned = owner ? await titlesOf(db, owner) : new Set<string>()
        reply.hijack()
        const socket = reply.raw
        socket.writeHead(200, {
          'content-type': 'text/event-stream',
          'cache-control': 'no-cache',
          connection: 'keep-alive',
          // Public messages only may be read by any site; a signed-in stream is the dashboard's own.
          ...(owner ? { vary: 'authorization' } : { 'access-control-allow-origin': '*' }),
        })
        let closed = false
        const send = (chunk: string) => {
          if (closed) return
          if (socket.writableLength + chunk.length > MAX_STREAM_BUFFERED_BYTES) {
            log.warn(
              { owner, bufferedBytes: socket.writableLength, limitBytes: MAX_STREAM_BUFFERED_BYTES },
              'stream reader too slow; disconnected',
            )
            close()
            socket.destroy()
            return
          }
          socket.write(chunk)
        }
        const unsubscribe = events.subscribe((name, data) => {
          const vehicle = messageVehicle(name, data)
          const view = vehicle !== undefined && owned.has(vehicle) ? data : publicView(name, data)
          if (view !== undefined) send(`event: ${name}\ndata: ${JSON.stringify(view)}\n\n`)
        })
        const keepAlive = setInterval(() => {
          send(': keep-alive\n\n')
          if (owner)
            titlesOf(db, owner).then(
              (titles) => {
                owned = titles
              },
              (error: unknown) =>
                log.warn({ err: error, owner }, 'could not refresh a stream owner’s titles'),
            )
        }, KEEP_ALIVE_MS)
        const close = () => {
          closed = true
          clearInterval(keepAlive)
          unsubscribe()
        }
        socket.on('close', close)
        send(': carchain\n\n')
      },
    )
  }
}
