/**
 * The node's CSMS on the Charging page: OCPP 2.0.1 stations with their connectors, and the
 * transactions they reported, with what the car's vouchers paid (docs/ocpp.md).
 */
import { useApi } from '../api.ts'
import { Address, Badge, Card, Empty, formatTime, formatUnits, Load } from '../components/ui.tsx'

type Station = {
  stationId: string
  connected: boolean
  revoked: boolean
  securityProfile: number | null
  vendorName: string | null
  model: string | null
  lastSeenAt: string | null
  connectors: { evseId: number; connectorId: number; status: string }[]
}

type Transaction = {
  stationId: string
  transactionId: string
  evseId: number | null
  vehicle: string | null
  idToken: string | null
  authorizationStatus: string | null
  state: 'active' | 'ended'
  startedAt: string
  stoppedReason: string | null
  energyWh: number
  amount: string
  vouchers: number
}

const connectorTone = (status: string) =>
  status === 'Available' ? 'good' : status === 'Occupied' ? 'info' : status === 'Faulted' ? 'bad' : 'warn'

export function OcppPanel(props: { refresh: unknown; symbol: string; decimals: number }) {
  const stations = useApi<{ stations: Station[] }>('/v1/ocpp/stations', props.refresh)
  const transactions = useApi<{ transactions: Transaction[] }>(
    '/v1/ocpp/transactions?limit=20',
    props.refresh,
  )
  return (
    <>
      <Card title="OCPP 2.0.1 stations" className="card-table">
        <Load value={stations} what="OCPP stations">
          {(data) =>
            data.stations.length === 0 ? (
              <Empty>No station has connected to this node's CSMS (/ocpp/&#123;stationId&#125;).</Empty>
            ) : (
              <table className="table" data-testid="ocpp-stations">
                <thead>
                  <tr>
                    <th>Station</th>
                    <th>Link</th>
                    <th>Model</th>
                    <th>Connectors</th>
                    <th>Last seen</th>
                  </tr>
                </thead>
                <tbody>
                  {data.stations.map((s) => (
                    <tr key={s.stationId}>
                      <td>{s.stationId}</td>
                      <td>
                        {s.revoked ? (
                          <Badge tone="bad">revoked</Badge>
                        ) : s.connected ? (
                          <Badge tone="good">{`connected · profile ${s.securityProfile ?? '?'}`}</Badge>
                        ) : (
                          <Badge tone="neutral">offline</Badge>
                        )}
                      </td>
                      <td>{[s.vendorName, s.model].filter(Boolean).join(' ') || '—'}</td>
                      <td>
                        {s.connectors.map((c) => (
                          <Badge key={`${c.evseId}/${c.connectorId}`} tone={connectorTone(c.status)}>
                            {`EVSE ${c.evseId}: ${c.status}`}
                          </Badge>
                        ))}
                      </td>
                      <td>{s.lastSeenAt ? formatTime(Date.parse(s.lastSeenAt)) : '—'}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )
          }
        </Load>
      </Card>
      <Card title="OCPP transactions" className="card-table">
        <Load value={transactions} what="OCPP transactions">
          {(data) =>
            data.transactions.length === 0 ? (
              <Empty>No OCPP transactions yet.</Empty>
            ) : (
              <table className="table" data-testid="ocpp-transactions">
                <thead>
                  <tr>
                    <th>Started</th>
                    <th>Station</th>
                    <th>Vehicle (IdToken)</th>
                    <th className="num">Energy</th>
                    <th className="num">Paid (vouchers)</th>
                    <th>State</th>
                  </tr>
                </thead>
                <tbody>
                  {data.transactions.map((t) => (
                    <tr key={`${t.stationId}/${t.transactionId}`}>
                      <td>{formatTime(Date.parse(t.startedAt))}</td>
                      <td>{`${t.stationId} · EVSE ${t.evseId ?? '—'}`}</td>
                      <td>{t.vehicle ? <Address value={t.vehicle} /> : (t.idToken ?? '—')}</td>
                      <td className="num">{(t.energyWh / 1000).toFixed(2)} kWh</td>
                      <td className="num">
                        {`${formatUnits(t.amount, props.decimals)} ${props.symbol} (${t.vouchers})`}
                      </td>
                      <td>
                        {t.authorizationStatus && t.authorizationStatus !== 'Accepted' ? (
                          <Badge tone="bad">{t.authorizationStatus}</Badge>
                        ) : t.state === 'active' ? (
                          <Badge tone="info">charging</Badge>
                        ) : (
                          <Badge tone="neutral">{`ended · ${t.stoppedReason ?? '—'}`}</Badge>
                        )}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )
          }
        </Load>
      </Card>
    </>
  )
}
