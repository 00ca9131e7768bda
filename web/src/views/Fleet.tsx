/** The fleet at a glance: every vehicle, its last event and odometer, updated live. */
import { useCallback, useEffect, useState } from 'react'
import { scopeNames } from '../../../src/keys/typed-data.ts'
import { type Loadable, type SimVehicle, useApi, useThrottledTick, type Vehicle } from '../api.ts'
import { Address, ago, Badge, Card, Empty, kindLabel, kindTone, Load, Stat } from '../components/ui.tsx'
import { useLedgerTotals, useNode } from '../node-context.tsx'
import { type StreamMessage, useStream } from '../stream.ts'

type FeedItem = { key: string; text: string; vehicle?: string; timeMs: number; tone: string; count?: number }

/** What a feed line says without its vehicle: lines alike in a burst become one, with a count. */
const feedGroup = (item: FeedItem) => item.text.split(' · ')[0]

function addToFeed(items: FeedItem[], item: FeedItem): FeedItem[] {
  const newest = items[0]
  if (newest && feedGroup(newest) === feedGroup(item) && item.timeMs - newest.timeMs < 10_000) {
    const count = (newest.count ?? 1) + 1
    const merged: FeedItem = { ...item, key: newest.key, text: feedGroup(item) ?? item.text, count }
    delete merged.vehicle
    return [merged, ...items.slice(1)]
  }
  return [item, ...items].slice(0, 14)
}

export function FleetView() {
  const { anchoredShards, shardCount } = useNode()
  const totals = useLedgerTotals()
  const [refresh, setRefresh] = useState(0)
  const [live, poke] = useThrottledTick(1500)
  const vehicles = useApi<{ vehicles: Vehicle[] }>('/v1/vehicles', `${refresh}/${live}`)
  const sim = useApi<SimVehicle[]>(vehicles.state === 'unavailable' ? '/v1/sim/vehicles' : null)
  const [feed, setFeed] = useState<FeedItem[]>([])
  const [flash, setFlash] = useState<Record<string, number>>({})
  const [now, setNow] = useState(Date.now())

  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000)
    return () => clearInterval(timer)
  }, [])
  // Without the stream, poll.
  useEffect(() => {
    const timer = setInterval(() => setRefresh((r) => r + 1), 10_000)
    return () => clearInterval(timer)
  }, [])

  const onMessage = useCallback(
    (message: StreamMessage) => {
      const item = feedItem(message)
      if (item) setFeed((items) => addToFeed(items, item))
      if (message.type === 'event') {
        setFlash((f) => ({ ...f, [message.data.vehicle.toLowerCase()]: Date.now() }))
        poke()
      }
    },
    [poke],
  )
  useStream(onMessage)

  const list: Loadable<Vehicle[]> =
    vehicles.state === 'ok'
      ? { state: 'ok', data: vehicles.data.vehicles }
      : vehicles.state === 'unavailable' && sim.state === 'ok'
        ? { state: 'ok', data: sim.data.map(fromSim) }
        : vehicles.state === 'unavailable' && sim.state === 'loading'
          ? { state: 'loading' }
          : vehicles

  useEffect(() => {
    if (list.state === 'ok') for (const v of list.data) if (v.vin) vins.set(v.vehicle.toLowerCase(), v.vin)
  })
  // Until the stream brings news, the feed starts from each vehicle's last event.
  const shownFeed: FeedItem[] =
    feed.length > 0 || list.state !== 'ok'
      ? feed
      : list.data
          .filter((v) => v.lastEvent)
          .sort((a, b) => b.lastEvent!.timeMs - a.lastEvent!.timeMs)
          .slice(0, 10)
          .map((v) => ({
            key: `last-${v.vehicle}`,
            text: `${kindLabel(v.lastEvent!.kind)} · ${shortVehicle(v.vehicle, v.vin)}`,
            vehicle: v.vehicle,
            timeMs: v.lastEvent!.timeMs,
            tone: kindTone(v.lastEvent!.kind),
          }))
  const count = list.state === 'ok' ? list.data.length : undefined
  const active =
    list.state === 'ok'
      ? list.data.filter((v) => v.lastEvent && now - v.lastEvent.timeMs < 5 * 60_000).length
      : undefined

  return (
    <div className="view" data-testid="fleet-view">
      <div className="view-header">
        <div>
          <h1>Fleet</h1>
          <p className="subtitle">Every vehicle on this node, its last event and odometer, live.</p>
        </div>
      </div>
      <div className="stats">
        <Stat
          label="Vehicles"
          value={count ?? '—'}
          hint={active === undefined ? '' : `${active} active in the last 5 min`}
          testId="stat-vehicles"
        />
        <Stat
          label="Events in the ledger"
          value={totals.events?.toLocaleString() ?? '—'}
          hint={
            totals.events === undefined
              ? 'log API not available'
              : shardCount > 1
                ? `RFC 9162 Merkle logs, ${shardCount} shards`
                : 'RFC 9162 Merkle log'
          }
        />
        <Stat
          label="Anchored on chain"
          value={totals.anchored?.toLocaleString() ?? '—'}
          hint={
            anchoredShards.state === 'ok'
              ? 'read from LedgerAnchor'
              : anchoredShards.state === 'loading'
                ? ''
                : 'not available'
          }
        />
        <Stat
          label="Awaiting anchor"
          value={
            totals.events !== undefined && totals.anchored !== undefined
              ? Math.max(0, totals.events - totals.anchored).toLocaleString()
              : '—'
          }
          hint="appended since the last anchor"
        />
      </div>
      <div className="grid-main">
        <Card title="Vehicles" className="card-table">
          {vehicles.state === 'unavailable' && sim.state === 'ok' && (
            <div className="note">
              Showing the simulator's list: the node does not serve /v1/vehicles yet.
            </div>
          )}
          <Load value={list} what="vehicles">
            {(data) =>
              data.length === 0 ? (
                <Empty>No vehicles yet. With the simulator on, they appear within seconds.</Empty>
              ) : (
                <table className="table" data-testid="vehicles-table">
                  <thead>
                    <tr>
                      <th>Vehicle</th>
                      <th>Owner</th>
                      <th>Last event</th>
                      <th className="num">Odometer</th>
                      <th className="num">Events</th>
                    </tr>
                  </thead>
                  <tbody>
                    {data.map((v) => (
                      <tr
                        key={v.vehicle}
                        className={now - (flash[v.vehicle.toLowerCase()] ?? 0) < 1500 ? 'row-flash' : ''}
                        data-testid="vehicle-row"
                      >
                        <td>
                          <a className="vehicle-link" href={`#/vehicles/${v.vehicle}`}>
                            <span className="vin">
                              {v.vin || 'unknown VIN'}{' '}
                              {!v.registered && <Badge tone="warn">not registered</Badge>}
                            </span>
                            <Address value={v.vehicle} />
                          </a>
                        </td>
                        <td>
                          <Address value={v.owner} />
                        </td>
                        <td>
                          {v.lastEvent ? (
                            <span className="last-event">
                              <span className={`dot dot-${kindTone(v.lastEvent.kind)}`} aria-hidden="true" />
                              {kindLabel(v.lastEvent.kind)}
                              <span className="dim">{ago(v.lastEvent.timeMs, now)}</span>
                            </span>
                          ) : (
                            <span className="dim">—</span>
                          )}
                        </td>
                        <td className="num">
                          {v.odometerKm === null || v.odometerKm === undefined
                            ? '—'
                            : `${Math.round(v.odometerKm).toLocaleString()} km`}
                        </td>
                        <td className="num">{Number.isFinite(v.events) ? v.events.toLocaleString() : '—'}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              )
            }
          </Load>
        </Card>
        <Card title="Live activity" className="card-feed">
          {shownFeed.length === 0 ? (
            <Empty>Events, anchors, charging and access attempts appear here as they happen.</Empty>
          ) : (
            <ul className="feed" data-testid="feed">
              {shownFeed.map((item) => (
                <li key={item.key}>
                  <span className={`dot dot-${item.tone}`} aria-hidden="true" />
                  <span className="feed-text">
                    {item.vehicle ? <a href={`#/vehicles/${item.vehicle}`}>{item.text}</a> : item.text}
                    {item.count && item.count > 1 ? <span className="feed-count">×{item.count}</span> : null}
                  </span>
                  <span className="dim">{ago(item.timeMs, now)}</span>
                </li>
              ))}
            </ul>
          )}
        </Card>
      </div>
    </div>
  )
}

function fromSim(v: SimVehicle): Vehicle {
  return {
    vehicle: v.vehicle,
    vin: v.vin,
    owner: v.owner,
    registered: true,
    events: Number.NaN,
    lastEvent: null,
    odometerKm: null,
  }
}

let feedCounter = 0

/** The VIN's serial part (its last 8 characters), else the address's start: fits the feed. */
function shortVehicle(address: string, vin = vins.get(address.toLowerCase())): string {
  return vin ? `…${vin.slice(-8)}` : `${address.slice(0, 8)}…`
}
/** VIN by lowercase address, so stream messages (which carry only the address) read well. */
const vins = new Map<string, string>()

function feedItem(message: StreamMessage): FeedItem | undefined {
  const key = `${Date.now()}-${feedCounter++}`
  switch (message.type) {
    case 'event':
      return {
        key,
        text: `${kindLabel(message.data.kind)} · ${shortVehicle(message.data.vehicle)}`,
        vehicle: message.data.vehicle,
        timeMs: message.data.timeMs ?? Date.now(),
        tone: kindTone(message.data.kind),
      }
    case 'anchor':
      return {
        key,
        text:
          message.data.shard === undefined
            ? `Anchored ${message.data.treeSize} events on chain`
            : `Anchored shard ${message.data.shard} at ${message.data.treeSize} events on chain`,
        timeMs: Date.now(),
        tone: 'violet',
      }
    case 'charging': {
      const d = message.data
      const inner = (typeof d.data === 'object' && d.data !== null ? d.data : {}) as Record<string, unknown>
      const rawVehicle = d.vehicle ?? inner.vehicle
      const vehicle = typeof rawVehicle === 'string' ? rawVehicle : undefined
      const what = [d.kind, d.state, d.type].find((v): v is string => typeof v === 'string') ?? 'update'
      return {
        key,
        text: `Charging ${what.replace(/^charging\./, '').replace(/[._]/g, ' ')}${vehicle ? ` · ${shortVehicle(vehicle)}` : typeof d.evseId === 'string' ? ` · ${d.evseId}` : ''}`,
        ...(vehicle ? { vehicle } : {}),
        timeMs: Date.now(),
        tone: 'teal',
      }
    }
    case 'access':
      return accessItem(key, message.data)
    case 'alert':
      return {
        key,
        text: `${message.data.code}: ${message.data.message}`,
        vehicle: message.data.vehicle,
        timeMs: Date.now(),
        tone: 'red',
      }
  }
}

/** A key used at a car: the decision (the node also relays a notice of the same attempt, skipped). */
function accessItem(key: string, data: Record<string, unknown>): FeedItem | undefined {
  if (data.notice) return undefined
  const decision = (data.decision ?? {}) as {
    action?: unknown
    ok?: unknown
    code?: unknown
    rental?: unknown
  }
  const rawAction = decision.action ?? data.action
  const action =
    typeof rawAction === 'number'
      ? (scopeNames(rawAction)[0] ?? String(rawAction))
      : typeof rawAction === 'string'
        ? rawAction
        : 'access'
  const code = String(decision.code ?? data.code ?? '')
  const ok = decision.ok === true || code === 'OK'
  const vehicle = typeof data.vehicle === 'string' ? data.vehicle : undefined
  return {
    key,
    text: `${kindLabel(action.toLowerCase())} ${ok ? 'granted' : `denied (${code || 'refused'})`}${decision.rental ? ' · rental' : ''}${vehicle ? ` · ${shortVehicle(vehicle)}` : ''}`,
    ...(vehicle ? { vehicle } : {}),
    timeMs: Date.now(),
    tone: ok ? 'violet' : 'red',
  }
}
