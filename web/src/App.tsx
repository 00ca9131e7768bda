/** The dashboard shell: navigation, the node/chain status bar, and a hash router over the views. */
import { useEffect, useState } from 'react'
import { Icon } from './components/Icon.tsx'
import { Badge } from './components/ui.tsx'
import { useLedgerTotals, useNode } from './node-context.tsx'
import { useStreamState } from './stream.ts'
import { AnchorsView } from './views/Anchors.tsx'
import { ChargingView } from './views/Charging.tsx'
import { FleetView } from './views/Fleet.tsx'
import { KeyApp } from './views/KeyApp.tsx'
import { KeysView } from './views/Keys.tsx'
import { VehicleView } from './views/Vehicle.tsx'
import { WalletsView } from './views/Wallets.tsx'

const sections = [
  { path: '', label: 'Fleet', icon: 'fleet' },
  { path: 'keys', label: 'Digital keys', icon: 'key' },
  { path: 'charging', label: 'Charging', icon: 'bolt' },
  { path: 'wallets', label: 'Wallets', icon: 'wallet' },
  { path: 'anchors', label: 'Anchors', icon: 'anchor' },
] as const

const readRoute = () => window.location.hash.replace(/^#\/?/, '').split('/').filter(Boolean)

function useRoute(): string[] {
  const [route, setRoute] = useState(readRoute)
  useEffect(() => {
    const onChange = () => setRoute(readRoute())
    window.addEventListener('hashchange', onChange)
    return () => window.removeEventListener('hashchange', onChange)
  }, [])
  return route
}

export function App() {
  const route = useRoute()
  const [first = '', second] = route
  const active = first === 'vehicles' ? '' : first
  // The grantee's key app stands alone (a phone page), without the console around it.
  if (first === 'key') return <KeyApp />
  let view: React.ReactNode
  if (first === 'vehicles' && second) view = <VehicleView vehicle={second.toLowerCase()} />
  else if (first === 'keys') view = <KeysView />
  else if (first === 'charging') view = <ChargingView />
  else if (first === 'wallets') view = <WalletsView />
  else if (first === 'anchors') view = <AnchorsView />
  else view = <FleetView />
  return (
    <div className="shell">
      <nav className="sidebar" aria-label="Sections">
        <a className="brand" href="#/">
          <span className="brand-mark" aria-hidden="true">
            <Icon name="brand" />
          </span>
          <span>
            Carchain
            <small>Fleet console</small>
          </span>
        </a>
        <ul>
          {sections.map((section) => (
            <li key={section.path}>
              <a href={`#/${section.path}`} className={active === section.path ? 'active' : ''}>
                <Icon name={section.icon} />
                {section.label}
              </a>
            </li>
          ))}
        </ul>
        <div className="sidebar-foot">
          <a href="/openapi.json">OpenAPI</a>
        </div>
      </nav>
      <div className="main">
        <StatusBar />
        <main className="content">{view}</main>
      </div>
    </div>
  )
}

function StatusBar() {
  const { health, chainInfo, blockNumber, shardCount } = useNode()
  const totals = useLedgerTotals()
  const stream = useStreamState()
  return (
    <header className="statusbar" data-testid="statusbar">
      <div className="status-item" data-testid="health">
        <span className="status-label">Node</span>
        {health.state === 'ok' ? (
          <Badge
            tone={health.data.status === 'ok' ? 'good' : 'warn'}
            title={Object.entries(health.data.parts)
              .map(([part, state]) => `${part}: ${state}`)
              .join('\n')}
          >
            {health.data.status === 'ok' ? 'healthy' : 'degraded'}
          </Badge>
        ) : health.state === 'loading' ? (
          <Badge tone="neutral">…</Badge>
        ) : (
          <Badge tone="bad">unreachable</Badge>
        )}
        {health.state === 'ok' && <span className="status-dim">v{health.data.version}</span>}
      </div>
      <div className="status-item" data-testid="chain">
        <span className="status-label">Chain</span>
        {chainInfo.state === 'ok' ? (
          <>
            <span>id {chainInfo.data.chainId}</span>
            <span className="status-dim">
              block {blockNumber === undefined ? '—' : blockNumber.toString()} · {chainInfo.data.rpcUrl}
            </span>
          </>
        ) : (
          <span className="status-dim">{chainInfo.state === 'loading' ? '…' : 'unknown'}</span>
        )}
      </div>
      <div className="status-item" data-testid="log">
        <span className="status-label">Ledger</span>
        {totals.events !== undefined ? (
          <span>
            {totals.events.toLocaleString()} events{shardCount > 1 ? ` in ${shardCount} shards` : ''}
          </span>
        ) : (
          <span className="status-dim">—</span>
        )}
        {totals.anchored !== undefined && (
          <span className="status-dim">{totals.anchored.toLocaleString()} anchored on chain</span>
        )}
      </div>
      <div className="status-item status-right">
        <span className={`live-dot live-${stream}`} aria-hidden="true" />
        <span className="status-dim">
          {stream === 'live' ? 'live' : stream === 'connecting' ? 'connecting…' : 'polling'}
        </span>
      </div>
    </header>
  )
}
