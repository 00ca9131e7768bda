/**
 * One vehicle's timeline. Each event carries a "verified on chain" mark computed here, in the
 * browser: the envelope's RFC 9162 leaf hash, the audit path to the root anchored in the
 * LedgerAnchor contract (read on chain, not from the node), and the per-vehicle hash chain. With
 * several log shards, all of it is the vehicle's own shard's — computed here by the shard rule and
 * cross-checked with the shard the node gives each event: its proofs, its log id, its anchored root.
 */
import { useCallback, useEffect, useState } from 'react'
import { BaseError } from '../../../src/errors.ts'
import { callApi, type LedgerEvent, useApi, useThrottledTick, type Vehicle } from '../api.ts'
import { demoTokenAbi } from '../chain.ts'
import {
  Address,
  Badge,
  Card,
  Empty,
  formatTime,
  formatUnits,
  kindLabel,
  kindTone,
  Load,
  Stat,
} from '../components/ui.tsx'
import {
  type AnchoredHead,
  checkEvent,
  type EventCheck,
  type InclusionProofResponse,
  payloadMatchesCommit,
} from '../lib/event-proof.ts'
import { shortHex } from '../lib/hex.ts'
import { shardPaths, vehicleShard } from '../lib/shards.ts'
import { useNode } from '../node-context.tsx'
import { type StreamMessage, useStream } from '../stream.ts'
import { TilesCheck } from './TilesCheck.tsx'

const PAGE = 50

export function VehicleView(props: { vehicle: string }) {
  const { vehicle } = props
  const [refresh, poke] = useThrottledTick(1500)
  const info = useApi<Vehicle>(`/v1/vehicles/${vehicle}`, refresh)
  const page = useApi<{ events: LedgerEvent[] }>(`/v1/vehicles/${vehicle}/events?limit=${PAGE}`, refresh)
  const [older, setOlder] = useState<LedgerEvent[]>([])
  const [olderDone, setOlderDone] = useState(false)
  const onMessage = useCallback(
    (message: StreamMessage) => {
      if (message.type === 'event' && message.data.vehicle.toLowerCase() === vehicle) poke()
    },
    [vehicle, poke],
  )
  useStream(onMessage)

  const events = page.state === 'ok' ? mergeEvents(page.data.events, older) : []
  const loadOlder = async () => {
    const last = events[events.length - 1]
    if (!last) return
    const next = await callApi<{ events: LedgerEvent[] }>(
      `/v1/vehicles/${vehicle}/events?before=${last.seq}&limit=${PAGE}`,
    )
    if (next.state !== 'ok') return
    setOlder((o) => [...o, ...next.data.events])
    if (next.data.events.length < PAGE) setOlderDone(true)
  }

  return (
    <div className="view" data-testid="vehicle-view">
      <div className="view-header">
        <div>
          <a className="back" href="#/">
            ← Fleet
          </a>
          <h1>{info.state === 'ok' ? info.data.vin : 'Vehicle'}</h1>
          <p className="subtitle">
            <Address value={vehicle} keep={20} />
          </p>
        </div>
      </div>
      <VehicleSummary vehicle={vehicle} info={info.state === 'ok' ? info.data : undefined} />
      <Card
        title="Timeline"
        actions={
          <span className="dim">
            Each mark is checked in this browser against the root anchored on chain.
          </span>
        }
      >
        <Load value={page} what="the timeline">
          {() =>
            events.length === 0 ? (
              <Empty>No events recorded for this vehicle yet.</Empty>
            ) : (
              <>
                <Timeline vehicle={vehicle} events={events} />
                {!olderDone && events.length >= PAGE && (
                  <button type="button" className="button button-quiet" onClick={loadOlder}>
                    Load older events
                  </button>
                )}
              </>
            )
          }
        </Load>
      </Card>
    </div>
  )
}

function mergeEvents(newest: LedgerEvent[], older: LedgerEvent[]): LedgerEvent[] {
  const seen = new Set<string>()
  const out: LedgerEvent[] = []
  for (const event of [...newest, ...older]) {
    if (seen.has(event.id)) continue
    seen.add(event.id)
    out.push(event)
  }
  return out.sort((a, b) => b.seq - a.seq)
}

function VehicleSummary(props: { vehicle: string; info: Vehicle | undefined }) {
  const { chain } = useNode()
  const [balance, setBalance] = useState<string>()
  useEffect(() => {
    if (!chain) return
    const token = chain.info.contracts.Token
    Promise.all([
      chain.client.readContract({
        address: token,
        abi: demoTokenAbi,
        functionName: 'balanceOf',
        args: [props.vehicle as `0x${string}`],
      }),
      chain.client.readContract({ address: token, abi: demoTokenAbi, functionName: 'symbol' }),
      chain.client.readContract({ address: token, abi: demoTokenAbi, functionName: 'decimals' }),
    ]).then(
      ([amount, symbol, decimals]) => setBalance(`${formatUnits(amount, decimals)} ${symbol}`),
      () => setBalance('unavailable'),
    )
  }, [chain, props.vehicle])
  const info = props.info
  return (
    <div className="stats">
      <Stat label="Owner" value={info ? <Address value={info.owner} /> : '—'} />
      <Stat
        label="Odometer"
        value={info?.odometerKm != null ? `${Math.round(info.odometerKm).toLocaleString()} km` : '—'}
      />
      <Stat label="Events" value={info ? info.events.toLocaleString() : '—'} />
      <Stat label="Wallet" value={balance ?? '…'} hint="ERC-20 balance, read on chain" />
    </div>
  )
}

/**
 * Runs the checks one after another (proof requests are cheap, but a page has fifty), against the
 * head anchored for `shard` and that shard's proofs; an event the node places in another shard fails.
 */
function useChecks(
  events: LedgerEvent[],
  vehicle: string,
  shard: { shard: number; count: number } | undefined,
  anchored: AnchoredHead | undefined,
): Map<string, EventCheck> {
  const [checks, setChecks] = useState<Map<string, EventCheck>>(new Map())
  const key = events.map((e) => e.id).join()
  // biome-ignore lint/correctness/useExhaustiveDependencies: `key` stands for `events`
  useEffect(() => {
    if (!anchored || !shard) return
    let live = true
    const fetchProof = async (leafHash: string, treeSize: number): Promise<InclusionProofResponse> => {
      const result = await callApi<InclusionProofResponse>(
        `${shardPaths(shard.shard).api}/proof/inclusion?leafHash=${leafHash}&treeSize=${treeSize}`,
      )
      if (result.state === 'ok') return result.data
      throw new TypeError(result.state === 'loading' ? 'no answer' : result.message)
    }
    ;(async () => {
      for (const event of events) {
        if (!live) return
        const previous = checks.get(event.id)
        if (previous?.state === 'verified') continue
        let check: EventCheck
        try {
          vehicleShard(vehicle, shard.count, event.shard)
          check = await checkEvent(event, anchored, fetchProof)
        } catch (error) {
          if (error instanceof BaseError && error.code === 'SHARDS_MISMATCH')
            check = { state: 'failed', reason: error.message }
          else check = { state: 'pending', reason: `no inclusion proof: ${(error as Error).message}` }
        }
        if (!live) return
        setChecks((current) => new Map(current).set(event.id, check))
      }
    })()
    return () => {
      live = false
    }
  }, [key, vehicle, shard?.shard, shard?.count, anchored?.treeSize, anchored?.rootHash])
  return checks
}

function Timeline(props: { vehicle: string; events: LedgerEvent[] }) {
  const { anchoredShards, chainInfo, shardCount } = useNode()
  // The vehicle's shard by the rule, once /v1/chain has said how many there are (none for an
  // address that is not one: its events, if any, are not checked).
  const shard = chainInfo.state === 'ok' ? shardOrNone(props.vehicle, shardCount) : undefined
  const head = anchoredShards.state === 'ok' && shard !== undefined ? anchoredShards.data[shard] : undefined
  const checks = useChecks(
    props.events,
    props.vehicle,
    shard === undefined ? undefined : { shard, count: shardCount },
    head,
  )
  const [open, setOpen] = useState<string>()
  const [proofOpen, setProofOpen] = useState<string>()
  return (
    <ol className="timeline" data-testid="timeline">
      {props.events.map((event, i) => {
        const older = props.events[i + 1]
        const envelope =
          typeof event.envelope === 'object' && event.envelope
            ? (event.envelope as { prev?: string })
            : undefined
        // Newest first: the event below is the previous one when its seq is one less.
        const linked =
          older && older.seq === event.seq - 1 && envelope?.prev !== undefined
            ? `0x${envelope.prev}` === older.id.toLowerCase()
            : undefined
        return (
          <li key={event.id} className="timeline-item" data-testid="timeline-event">
            <span className={`timeline-dot dot-${kindTone(event.kind)}`} aria-hidden="true" />
            <div className="timeline-main">
              <div className="timeline-row">
                <strong>{kindLabel(event.kind)}</strong>
                <span className="dim">{formatTime(event.timeMs)}</span>
                <span className="dim">seq {event.seq}</span>
                <span className="spacer" />
                {linked === false && <Badge tone="bad">chain broken</Badge>}
                <VerifyMark
                  check={checks.get(event.id)}
                  anchoredState={anchoredShards.state}
                  onToggle={() => setProofOpen(proofOpen === event.id ? undefined : event.id)}
                />
              </div>
              <div className="timeline-row small">
                <span className="dim">id</span> <Address value={event.id} keep={8} />
                <span className="dim">log index {event.index}</span>
                {event.payload && open !== event.id && (
                  <span className="payload-summary">{summarise(event.payload.data)}</span>
                )}
                {event.payload && <PayloadMark envelope={event.envelope} payload={event.payload} />}
                {event.erased ? (
                  <Badge tone="neutral">payload erased</Badge>
                ) : event.payload ? (
                  <button
                    type="button"
                    className="link-button"
                    onClick={() => setOpen(open === event.id ? undefined : event.id)}
                  >
                    {open === event.id ? 'hide data' : 'show data'}
                  </button>
                ) : (
                  <span
                    className="dim"
                    title="Payloads are shown to the owner, managers and grantees signed in"
                  >
                    payload private
                  </span>
                )}
              </div>
              {open === event.id && event.payload && (
                <pre className="payload">{JSON.stringify(event.payload.data, null, 2)}</pre>
              )}
              {proofOpen === event.id && checks.get(event.id) && (
                <>
                  <ProofDetails event={event} shard={shard ?? 0} check={checks.get(event.id)!} />
                  <TilesCheck event={event} shard={shard ?? 0} />
                </>
              )}
            </div>
          </li>
        )
      })}
    </ol>
  )
}

function shardOrNone(vehicle: string, count: number): number | undefined {
  try {
    return vehicleShard(vehicle, count)
  } catch {
    return undefined
  }
}

function VerifyMark(props: { check: EventCheck | undefined; anchoredState: string; onToggle(): void }) {
  const { check } = props
  if (!check) {
    if (props.anchoredState === 'unavailable' || props.anchoredState === 'error')
      return (
        <Badge tone="neutral" title="The log API or the anchor cannot be read yet">
          not checkable yet
        </Badge>
      )
    return <Badge tone="neutral">checking…</Badge>
  }
  const [tone, label, testId] =
    check.state === 'verified'
      ? (['good', '✓ verified on chain', 'verified'] as const)
      : check.state === 'pending'
        ? (['info', '◷ awaiting anchor', 'pending'] as const)
        : (['bad', '✗ does not verify', 'verify-failed'] as const)
  return (
    <button
      type="button"
      className="mark-button"
      data-testid={testId}
      onClick={props.onToggle}
      title="Show how this was checked"
    >
      <Badge tone={tone}>{label}</Badge>
    </button>
  )
}

/** The steps of the check, so a reader can see what was compared with what. */
function ProofDetails(props: { event: LedgerEvent; shard: number; check: EventCheck }) {
  const { chain, logIds, shardCount } = useNode()
  const { check, event, shard } = props
  const contract = chain?.info.contracts.LedgerAnchor
  const logId = logIds?.[shard]
  return (
    <dl className="proof" data-testid="proof-details">
      <dt>Leaf hash</dt>
      <dd>
        SHA-256(0x00 ‖ JCS(envelope)) computed in this browser = event id{' '}
        <Address value={event.id} keep={10} />
      </dd>
      {shardCount > 1 && (
        <>
          <dt>Shard</dt>
          <dd data-testid="proof-shard">
            {shard} of {shardCount}: SHA-256(vehicle address)[0..4] mod {shardCount}, computed in this browser
            {event.shard === undefined ? '' : ' — the node says the same'}
          </dd>
        </>
      )}
      {check.state === 'verified' && (
        <>
          <dt>Inclusion</dt>
          <dd>
            leaf {check.leafIndex} of {check.treeSize.toLocaleString()}
            {shardCount > 1 ? ` in shard ${shard}'s log` : ''}, audit path of {check.auditPathLength} hashes
            (RFC 9162 §2.1.3.2)
          </dd>
          <dt>Root</dt>
          <dd>
            <Address value={check.rootHash} keep={12} /> — equals <code>LedgerAnchor.latest(logId)</code> read
            from the chain
          </dd>
        </>
      )}
      {check.state !== 'verified' && (
        <>
          <dt>{check.state === 'pending' ? 'Waiting' : 'Failed'}</dt>
          <dd>{check.reason}</dd>
        </>
      )}
      <dt>Contract</dt>
      <dd>
        <Address value={contract} keep={8} /> on chain {chain?.info.chainId ?? '—'}, log{' '}
        <Address value={logId} />
      </dd>
    </dl>
  )
}

/** A few `key: value` pairs of a payload, for the timeline row (the whole data is one click away). */
function summarise(data: unknown): string {
  if (typeof data !== 'object' || data === null) return data === undefined ? '' : String(data)
  return Object.entries(data as Record<string, unknown>)
    .filter(([, value]) => value === null || typeof value !== 'object')
    .slice(0, 3)
    .map(([key, value]) => {
      const text = typeof value === 'number' ? value.toLocaleString() : String(value)
      return `${key}: ${/^0x[0-9a-fA-F]{16,}$/.test(text) ? shortHex(text) : text}`
    })
    .join(' · ')
}

/** Whether the data shown is the data the envelope (proven on chain) commits to. */
function PayloadMark(props: { envelope: unknown; payload: { salt: string; data: unknown } }) {
  const matches = payloadMatchesCommit(props.envelope, props.payload)
  return matches ? (
    <span
      className="commit-ok"
      data-testid="payload-ok"
      title="SHA-256(salt ‖ JCS(data)) equals the envelope's commit"
    >
      ✓ matches commit
    </span>
  ) : (
    <span data-testid="payload-bad">
      <Badge tone="bad" title="SHA-256(salt ‖ JCS(data)) differs from the envelope's commit">
        data does not match its commitment
      </Badge>
    </span>
  )
}
