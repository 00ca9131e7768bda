/**
 * Live updates from `GET /v1/stream` (server-sent events): one EventSource for the whole page,
 * shared by every view. When the node does not serve the stream, views fall back to polling.
 * Signed in, the stream carries the session token (an EventSource cannot send headers) and the
 * node adds the full messages about the owner's own vehicles; `restartStream` after a sign-in or out.
 */
import { useEffect, useState } from 'react'
import { getBearer } from './api.ts'

export type StreamMessage =
  | {
      type: 'event'
      data: {
        vehicle: string
        id: string
        shard?: number
        index: number
        seq: number
        kind: string
        timeMs: number
      }
    }
  | { type: 'anchor'; data: { shard?: number; treeSize: number; rootHash: string; txHash: string } }
  | { type: 'charging'; data: Record<string, unknown> }
  | { type: 'access'; data: Record<string, unknown> }
  | { type: 'alert'; data: { vehicle: string; code: string; message: string } }

export type StreamState = 'connecting' | 'live' | 'unavailable'

type Listener = (message: StreamMessage) => void

const listeners = new Set<Listener>()
const stateListeners = new Set<(state: StreamState) => void>()
let state: StreamState = 'connecting'
let source: EventSource | undefined

function setState(next: StreamState) {
  state = next
  for (const listener of stateListeners) listener(next)
}

function open() {
  if (source || typeof EventSource === 'undefined') return
  const token = getBearer()
  source = new EventSource(token ? `/v1/stream?token=${encodeURIComponent(token)}` : '/v1/stream')
  source.onopen = () => setState('live')
  source.onerror = () => {
    // A non-stream answer (a 404 before the route exists) closes the source for good; a dropped
    // connection leaves it CONNECTING and the browser retries on its own.
    if (source?.readyState === EventSource.CLOSED) {
      source = undefined
      setState('unavailable')
      setTimeout(open, 15_000)
    } else setState('connecting')
  }
  for (const type of ['event', 'anchor', 'charging', 'access', 'alert'] as const) {
    source.addEventListener(type, (raw) => {
      let data: unknown
      try {
        data = JSON.parse((raw as MessageEvent<string>).data)
      } catch {
        return
      }
      for (const listener of listeners) listener({ type, data } as StreamMessage)
    })
  }
}

/** Reopens the stream with the current session (after a sign-in or a sign-out). */
export function restartStream(): void {
  source?.close()
  source = undefined
  setState('connecting')
  open()
}

/** Calls `onMessage` for every message while the component is mounted. */
export function useStream(onMessage: Listener): void {
  useEffect(() => {
    open()
    listeners.add(onMessage)
    return () => {
      listeners.delete(onMessage)
    }
  }, [onMessage])
}

/** The stream's state, for the header's "live" indicator. */
export function useStreamState(): StreamState {
  const [current, setCurrent] = useState(state)
  useEffect(() => {
    open()
    stateListeners.add(setCurrent)
    setCurrent(state)
    return () => {
      stateListeners.delete(setCurrent)
    }
  }, [])
  return current
}
