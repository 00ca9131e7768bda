/**
 * Charging sessions paid over ChargingChannels. The session shape is read defensively (several
 * likely field names), so the view keeps working while docs/payments.md settles.
 */
import { useCallback, useEffect, useState } from 'react'
import { useApi, useThrottledTick, type Vehicle } from '../api.ts'
import { demoTokenAbi } from '../chain.ts'
import { EnergyChart } from '../components/EnergyChart.tsx'
import { Address, Badge, Card, Empty, formatTime, Load, Stat } from '../components/ui.tsx'
import { useNode } from '../node-context.tsx'
import { useSession } from '../session.ts'
import { type StreamMessage, useStream } from '../stream.ts'
import { WalletChannels } from './WalletChannels.tsx'

type Session = {
  id: string
  vehicle: string | undefined
  charger: string | undefined
  startedMs: number | undefined
  energyWh: number
  /** Base units of the token. */
  costBase: bigint | undefined
  state: string | undefined
  /** Settled on chain (the channel's claimed amount covers it). */
  claimed: boolean | undefined
}

const pick = (record: Record<string, unknown>, names: string[]): unknown => {
  for (const name of names) if (record[name] !== undefined && record[name] !== null) return record[name]
  return undefined
}

function toNumber(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return value
  if (typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value))) return Number(value)
  return undefined
}

function toTimeMs(value: unknown): number | undefined {
  if (typeof value === 'string' && !/^\d+$/.test(value)) {
    const parsed = Date.parse(value)
    return Number.isNaN(parsed) ? undefined : parsed
  }
  const n = toNumber(value)
  if (n === undefined) return undefined
  return n < 1e12 ? n * 1000 : n // seconds or milliseconds
}

export function normaliseSession(raw: unknown, i: number): Session {
  const r = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>
  const kWh = toNumber(pick(r, ['energyKWh', 'kWh']))
  const energyWh = toNumber(pick(r, ['energyWh', 'sessionWh', 'meterWh', 'deliveredWh'])) ?? (kWh ?? 0) * 1000
  const cost = pick(r, ['costBaseUnits', 'cost', 'amount', 'paid', 'total', 'cumulativeAmount', 'amountWei'])
  let costBase: bigint | undefined
  try {
    costBase =
      typeof cost === 'string' || typeof cost === 'number' || typeof cost === 'bigint'
        ? BigInt(cost)
        : undefined
  } catch {
    costBase = undefined
  }
  const id = pick(r, ['sessionId', 'id'])
  const vehicle = pick(r, ['vehicle', 'payer'])
  const charger = pick(r, ['evseId', 'charger', 'payee', 'station'])
  const state = pick(r, ['state', 'status'])
  return {
    id: typeof id === 'string' ? id : String(i),
    vehicle: typeof vehicle === 'string' ? vehicle : undefined,
    charger: typeof charger === 'string' ? charger : undefined,
    startedMs: toTimeMs(
      pick(r, ['startedAtMs', 'startedMs', 'startMs', 'startedAt', 'timeMs', 'endedAtMs', 'endedAt']),
    ),
    energyWh,
    costBase,
    state: typeof state === 'string' ? state : undefined,
    claimed: typeof r.claimed === 'boolean' ? r.claimed : undefined,
  }
}

function SessionState(props: { state: string; claimed: boolean | undefined }) {
  if (props.state === 'active') return <Badge tone="info">charging</Badge>
  if (props.claimed) return <Badge tone="good">ended · claimed on chain</Badge>
  return <Badge tone={/end|clos|settl/.test(props.state) ? 'neutral' : 'warn'}>{props.state}</Badge>
}

export function ChargingView() {
  const { chain } = useNode()
  const session = useSession()
  const [refresh, poke] = useThrottledTick(2000)
  const sessions = useApi<{ sessions: unknown[] } | unknown[]>('/v1/charging/sessions', refresh)
  const vehicles = useApi<{ vehicles: Vehicle[] }>('/v1/vehicles')
  const vins = new Map(
    vehicles.state === 'ok'
      ? vehicles.data.vehicles.map((v) => [v.vehicle.toLowerCase(), v.vin] as const)
      : [],
  )
  const onMessage = useCallback(
    (message: StreamMessage) => {
      if (message.type === 'charging') poke()
    },
    [poke],
  )
  useStream(onMessage)
  const [token, setToken] = useState({ symbol: 'tokens', decimals: 18 })
  useEffect(() => {
    if (!chain) return
    const address = chain.info.contracts.Token
    Promise.all([
      chain.client.readContract({ address, abi: demoTokenAbi, functionName: 'symbol' }),
      chain.client.readContract({ address, abi: demoTokenAbi, functionName: 'decimals' }),
    ]).then(
      ([symbol, decimals]) => setToken({ symbol, decimals }),
      () => {},
    )
  }, [chain])

  return (
    <div className="view" data-testid="charging-view">
      <div className="view-header">
        <div>
          <h1>Charging</h1>
          <p className="subtitle">
            Metered sessions paid by the car over a payment channel, settled with EIP-712 vouchers.
          </p>
        </div>
      </div>
      <Load value={sessions} what="charging sessions">
        {(data) => {
          const list = (Array.isArray(data) ? data : Array.isArray(data.sessions) ? data.sessions : []).map(
            normaliseSession,
          )
          const ordered = [...list].sort((a, b) => (a.startedMs ?? 0) - (b.startedMs ?? 0))
          const shown = ordered.slice(-40)
          const spanMs = (shown[shown.length - 1]?.startedMs ?? 0) - (shown[0]?.startedMs ?? 0)
          const scale = 10 ** token.decimals
          const costOf = (s: Session) => (s.costBase === undefined ? undefined : Number(s.costBase) / scale)
          const totalKWh = list.reduce((sum, s) => sum + s.energyWh / 1000, 0)
          const totalCost = list.reduce((sum, s) => sum + (costOf(s) ?? 0), 0)
          if (list.length === 0) return <Empty>No charging sessions yet.</Empty>
          return (
            <>
              <div className="stats">
                <Stat label="Sessions" value={list.length} />
                <Stat label="Energy delivered" value={`${totalKWh.toFixed(1)} kWh`} />
                <Stat label="Paid" value={`${totalCost.toFixed(2)} ${token.symbol}`} />
                <Stat
                  label="Average price"
                  value={totalKWh > 0 ? `${(totalCost / totalKWh).toFixed(3)} ${token.symbol}/kWh` : '—'}
                />
              </div>
              <Card title="Energy and cost per session">
                <EnergyChart
                  costUnit={token.symbol}
                  points={shown.map((s, i) => ({
                    key: s.id,
                    label: s.startedMs ? timeLabel(s.startedMs, spanMs) : `#${i + 1}`,
                    energyKWh: s.energyWh / 1000,
                    cost: costOf(s),
                  }))}
                />
              </Card>
              <Card title="Sessions" className="card-table">
                <table className="table" data-testid="sessions-table">
                  <thead>
                    <tr>
                      <th>Started</th>
                      <th>Vehicle</th>
                      <th>Charger</th>
                      <th className="num">Energy</th>
                      <th className="num">Cost</th>
                      <th>State</th>
                    </tr>
                  </thead>
                  <tbody>
                    {[...ordered].reverse().map((s) => (
                      <tr key={s.id}>
                        <td>{s.startedMs ? formatTime(s.startedMs) : '—'}</td>
                        <td>
                          {s.vehicle ? (
                            <a className="vehicle-link" href={`#/vehicles/${s.vehicle}`}>
                              <span className="vin">{vins.get(s.vehicle.toLowerCase()) ?? ''}</span>
                              <Address value={s.vehicle} />
                            </a>
                          ) : (
                            '—'
                          )}
                        </td>
                        <td>
                          {s.charger?.startsWith('0x') ? <Address value={s.charger} /> : (s.charger ?? '—')}
                        </td>
                        <td className="num">{(s.energyWh / 1000).toFixed(2)} kWh</td>
                        <td className="num">
                          {costOf(s) === undefined ? '—' : `${costOf(s)!.toFixed(2)} ${token.symbol}`}
                        </td>
                        <td>{s.state ? <SessionState state={s.state} claimed={s.claimed} /> : '—'}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </Card>
            </>
          )
        }}
      </Load>
      {session && <WalletChannels session={session} />}
    </div>
  )
}

/** Clock time, with seconds when the chart spans under an hour (a demo fleet charges in seconds). */
function timeLabel(timeMs: number, spanMs: number): string {
  return new Date(timeMs).toLocaleTimeString([], {
    hour: '2-digit',
    minute: '2-digit',
    ...(spanMs < 3_600_000 ? { second: '2-digit' } : {}),
  })
}
