/**
 * The node HTTP API as the dashboard reads it (docs/api.md). Every call resolves to a
 * `Loadable`, never throws: a route the node does not serve yet is `unavailable`, so a view can
 * say so instead of breaking.
 */
import { useCallback, useEffect, useMemo, useRef, useState } from 'react'

export type Hex = `0x${string}`

export type Health = { status: 'ok' | 'degraded'; version: string; parts: Record<string, string> }
export type ChainInfo = {
  chainId: number
  rpcUrl: string
  contracts: {
    VehicleRegistry: Hex
    KeyRegistry: Hex
    LedgerAnchor: Hex
    ChargingChannels: Hex
    Token: Hex
  }
  /** The log as C2SP names it (docs/transparency.md): its checkpoints' origin and note verifier key. */
  log?: {
    origin: string
    verifierKey: string
    /** With several log shards (docs/ledger.md "Shards"): each shard's origin and verifier key. */
    shards?: { shard: number; origin: string; verifierKey: string }[]
  }
}
/** `GET /v1/log/shards`: every shard's log id and head, as the node says. */
export type LogShards = {
  count: number
  rule: string
  shards: { shard: number; logId: Hex; treeSize: number; rootHash: Hex }[]
}
export type Checkpoint = {
  logId: Hex
  treeSize: number
  rootHash: Hex
  anchored: { treeSize: number; rootHash: Hex; txHash: Hex; blockNumber: number } | null
  contract: Hex
  chainId: number
}
export type Vehicle = {
  vehicle: Hex
  vin: string
  owner: Hex
  registered: boolean
  events: number
  lastEvent: { kind: string; timeMs: number } | null
  odometerKm: number | null
}
export type SimVehicle = { vehicle: Hex; vin: string; owner: Hex; ownerIndex: number; link: string }
export type LedgerEvent = {
  id: Hex
  /** The log shard holding the event, as the node says (absent from nodes before shards). */
  shard?: number
  /** The leaf index in the event's shard. */
  index: number
  seq: number
  timeMs: number
  kind: string
  envelope: unknown
  payload: { salt: string; data: unknown } | null
  erased: boolean
}
export type Anchor = {
  treeSize: number
  rootHash: Hex
  txHash: Hex
  blockNumber: number
  anchoredAt?: number | string
}

export type Loadable<T> =
  | { state: 'loading' }
  | { state: 'ok'; data: T }
  /** The node does not serve this (yet): a 404 for the route itself, or 501. */
  | { state: 'unavailable'; message: string }
  | { state: 'error'; message: string; code?: string }

/** The bearer token after Sign-In with Ethereum, if any: sent with every call. */
let bearer: string | undefined
export function setBearer(token: string | undefined): void {
  bearer = token
}
export function getBearer(): string | undefined {
  return bearer
}

/** GET or POST a JSON route; never throws. */
export async function callApi<T>(
  path: string,
  init?: { method?: string; body?: unknown },
): Promise<Loadable<T>> {
  let response: Response
  try {
    const headers: Record<string, string> = { accept: 'application/json' }
    if (init?.body !== undefined) headers['content-type'] = 'application/json'
    if (bearer) headers.authorization = `Bearer ${bearer}`
    response = await fetch(path, {
      method: init?.method ?? 'GET',
      headers,
      body: init?.body === undefined ? undefined : JSON.stringify(init.body),
    })
  } catch (error) {
    return { state: 'error', message: `the node does not answer (${(error as Error).message})` }
  }
  let body: unknown
  try {
    body = await response.json()
  } catch {
    body = undefined
  }
  if (response.ok) return { state: 'ok', data: body as T }
  const error = (body ?? {}) as { code?: string; message?: string }
  // The node's own 404 for an unknown route says "no route …"; a missing thing is a real answer.
  if (response.status === 501 || (response.status === 404 && error.message?.startsWith('no route')))
    return { state: 'unavailable', message: `${path.split('?')[0]} is not served by this node yet` }
  return {
    state: 'error',
    message: error.message ?? `HTTP ${response.status}`,
    ...(error.code ? { code: error.code } : {}),
  }
}

/** Fetches `path` (null: nothing yet) and refetches when `refreshKey` changes or `reload` is called. */
export function useApi<T>(path: string | null, refreshKey: unknown = 0): Loadable<T> & { reload(): void } {
  const [result, setResult] = useState<Loadable<T>>({ state: 'loading' })
  const [tick, setTick] = useState(0)
  const shown = useRef<Loadable<T>>(result)
  // biome-ignore lint/correctness/useExhaustiveDependencies: refreshKey and tick are refetch triggers
  useEffect(() => {
    if (path === null) return
    let live = true
    // Keep the last good answer on screen while refreshing, so live updates do not flicker.
    if (shown.current.state !== 'ok') setResult({ state: 'loading' })
    callApi<T>(path).then((next) => {
      if (!live) return
      shown.current = next
      setResult(next)
    })
    return () => {
      live = false
    }
  }, [path, refreshKey, tick])
  const reload = useCallback(() => setTick((t) => t + 1), [])
  // A stable object while nothing changed, so it can be a dependency of memos and effects.
  return useMemo(() => ({ ...result, reload }), [result, reload])
}

/**
 * A refresh key that `poke` bumps at most once per `minIntervalMs`: a busy fleet sends dozens of
 * stream messages a second, and each must not become a request.
 */
export function useThrottledTick(minIntervalMs: number): [number, () => void] {
  const [tick, setTick] = useState(0)
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined)
  const last = useRef(0)
  const poke = useCallback(() => {
    if (timer.current !== undefined) return
    const waitMs = Math.max(0, last.current + minIntervalMs - Date.now())
    timer.current = setTimeout(() => {
      timer.current = undefined
      last.current = Date.now()
      setTick((t) => t + 1)
    }, waitMs)
  }, [minIntervalMs])
  useEffect(() => () => clearTimeout(timer.current), [])
  return [tick, poke]
}

/** A signed key as the node keeps it (`/v1/vehicles/{vehicle}/grants`, docs/api.md). */
export type NodeGrant = {
  grant: { vehicle: Hex; grantee: string; grantId: Hex } & Record<string, unknown>
  signature: Hex
  status?: string
}

const grantsPath = (vehicle: string) => `/v1/vehicles/${encodeURIComponent(vehicle.toLowerCase())}/grants`

/**
 * Hands a signed key to the node's mailbox (`POST /v1/vehicles/{vehicle}/grants`, SIWE): the
 * grantee fetches it by signing in. `unavailable` while the node keeps no grants; the console then
 * keeps it in this browser only.
 */
export function storeGrantWithNode(signed: { grant: { vehicle: string }; signature: Hex }) {
  return callApi<NodeGrant>(grantsPath(signed.grant.vehicle), { method: 'POST', body: signed })
}

/** The keys the node keeps for a vehicle, with their on-chain status (`GET …/grants`, SIWE). */
export function listNodeGrants(vehicle: string) {
  return callApi<{ grants: NodeGrant[] }>(grantsPath(vehicle))
}

/** Takes a key out of the node's mailbox (`DELETE …/grants/{grantId}`, SIWE); revoking is on chain. */
export function deleteNodeGrant(vehicle: string, grantId: Hex) {
  return callApi<unknown>(`${grantsPath(vehicle)}/${encodeURIComponent(grantId)}`, { method: 'DELETE' })
}
