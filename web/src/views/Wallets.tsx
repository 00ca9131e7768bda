/** Wallet balances: each vehicle's and owner's ERC-20 and ETH, read on chain (not from the node). */
import { useEffect, useMemo, useState } from 'react'
import type { Address } from 'viem'
import { type Loadable, type SimVehicle, useApi, type Vehicle } from '../api.ts'
import { demoTokenAbi } from '../chain.ts'
import { Address as AddressText, Card, Empty, formatUnits, Load, Stat } from '../components/ui.tsx'
import { useNode } from '../node-context.tsx'

type Row = { address: Address; label: string; role: 'vehicle' | 'owner' }
type Balance = { token: bigint; eth: bigint }

export function WalletsView() {
  const { chain } = useNode()
  const vehicles = useApi<{ vehicles: Vehicle[] }>('/v1/vehicles')
  const sim = useApi<SimVehicle[]>(vehicles.state === 'unavailable' ? '/v1/sim/vehicles' : null)
  const source = vehicles.state === 'ok' ? vehicles.data.vehicles : sim.state === 'ok' ? sim.data : undefined
  const rows: Row[] = useMemo(() => {
    if (!source) return []
    const out: Row[] = source.map((v) => ({ address: v.vehicle, label: v.vin, role: 'vehicle' as const }))
    const owners = new Set<string>()
    for (const v of source) {
      const owner = v.owner?.toLowerCase()
      if (owner && !owners.has(owner)) {
        owners.add(owner)
        out.push({ address: v.owner, label: 'owner', role: 'owner' })
      }
    }
    return out
  }, [source])
  const [token, setToken] = useState<{ symbol: string; decimals: number; totalSupply: bigint }>()
  const [balances, setBalances] = useState<Record<string, Balance>>({})
  const [tick, setTick] = useState(0)
  useEffect(() => {
    const timer = setInterval(() => setTick((t) => t + 1), 10_000)
    return () => clearInterval(timer)
  }, [])
  // biome-ignore lint/correctness/useExhaustiveDependencies: tick refreshes the balances
  useEffect(() => {
    if (!chain) return
    let live = true
    const address = chain.info.contracts.Token
    Promise.all([
      chain.client.readContract({ address, abi: demoTokenAbi, functionName: 'symbol' }),
      chain.client.readContract({ address, abi: demoTokenAbi, functionName: 'decimals' }),
      chain.client.readContract({ address, abi: demoTokenAbi, functionName: 'totalSupply' }),
    ]).then(
      ([symbol, decimals, totalSupply]) => live && setToken({ symbol, decimals, totalSupply }),
      () => {},
    )
    Promise.all(
      rows.map(async (row): Promise<[string, Balance]> => {
        const [tokenBalance, eth] = await Promise.all([
          chain.client.readContract({
            address,
            abi: demoTokenAbi,
            functionName: 'balanceOf',
            args: [row.address],
          }),
          chain.client.getBalance({ address: row.address }),
        ])
        return [row.address.toLowerCase(), { token: tokenBalance, eth }]
      }),
    ).then(
      (entries) => live && setBalances(Object.fromEntries(entries)),
      () => {},
    )
    return () => {
      live = false
    }
  }, [chain, rows, tick])

  const list: Loadable<unknown> = vehicles.state === 'unavailable' ? sim : vehicles
  const vehicleTotal = rows
    .filter((r) => r.role === 'vehicle')
    .reduce((sum, r) => sum + (balances[r.address.toLowerCase()]?.token ?? 0n), 0n)
  return (
    <div className="view" data-testid="wallets-view">
      <div className="view-header">
        <div>
          <h1>Wallets</h1>
          <p className="subtitle">
            Each car has its own wallet and pays chargers and parking machine to machine.
          </p>
        </div>
      </div>
      <div className="stats">
        <Stat
          label="Token"
          value={token?.symbol ?? '—'}
          hint={chain ? <AddressText value={chain.info.contracts.Token} /> : ''}
        />
        <Stat
          label="Held by vehicles"
          value={token ? `${formatUnits(vehicleTotal, token.decimals)} ${token.symbol}` : '—'}
        />
        <Stat
          label="Total supply"
          value={token ? `${formatUnits(token.totalSupply, token.decimals, 0)}` : '—'}
        />
      </div>
      <Card title="Balances (read on chain)" className="card-table">
        <Load value={list} what="the vehicle list">
          {() =>
            rows.length === 0 ? (
              <Empty>No vehicles yet.</Empty>
            ) : (
              <table className="table" data-testid="wallets-table">
                <thead>
                  <tr>
                    <th>Account</th>
                    <th>Role</th>
                    <th className="num">{token?.symbol ?? 'Token'}</th>
                    <th className="num">ETH (gas)</th>
                  </tr>
                </thead>
                <tbody>
                  {rows.map((row) => {
                    const b = balances[row.address.toLowerCase()]
                    return (
                      <tr key={`${row.role}-${row.address}`}>
                        <td>
                          {row.role === 'vehicle' ? (
                            <a className="vehicle-link" href={`#/vehicles/${row.address}`}>
                              <span className="vin">{row.label}</span>
                              <AddressText value={row.address} />
                            </a>
                          ) : (
                            <AddressText value={row.address} keep={8} />
                          )}
                        </td>
                        <td>{row.role}</td>
                        <td className="num">{b && token ? formatUnits(b.token, token.decimals) : '…'}</td>
                        <td className="num">{b ? formatUnits(b.eth, 18, 4) : '…'}</td>
                      </tr>
                    )
                  })}
                </tbody>
              </table>
            )
          }
        </Load>
      </Card>
    </div>
  )
}
