/**
 * "Verify from tiles": one event checked in this browser from C2SP tiles alone (docs/dashboard
 * section of docs/transparency.md), by the same code `carchain verify --tiles` runs
 * (src/ledger/tiles-verify.ts, over @noble/hashes and @noble/curves here). The tiles may come from
 * any server — the node's own /log, a CDN, a static mirror — and are not trusted; what is trusted is
 * the log's origin and verifier key (a real verifier knows them out of band; here they are filled in
 * from the node's /v1/chain and shown, to be pinned) and the root anchored on chain, read from
 * LedgerAnchor over the chain's RPC, not from the node.
 *
 * With several log shards it is the event's own shard's log that is checked: its tiles
 * (`/log/shards/<k>`), its origin and verifier key (`/v1/chain` lists each shard's) and its log id
 * on chain — the shard and the log id computed in this browser by the node's rule
 * (src/ledger/shard-rule.ts), the shard cross-checked with the one the node gives the event.
 */
import { useState } from 'react'
import { BaseError } from '../../../src/errors.ts'
import { portableMerkle } from '../../../src/ledger/rfc9162.ts'
import {
  httpTilesGet,
  type SeenCosignature,
  TILES_STEPS,
  type TilesStep,
  verifyFromTiles,
} from '../../../src/ledger/tiles-verify.ts'
import type { LedgerEvent } from '../api.ts'
import { readAnchoredHead } from '../chain.ts'
import { Address, Badge } from '../components/ui.tsx'
import { fromHex, toHex } from '../lib/hex.ts'
import { shardLogOf, shardPaths, vehicleShard } from '../lib/shards.ts'
import { useNode } from '../node-context.tsx'

type StepState = { state: 'passed'; detail: string } | { state: 'failed'; detail: string }

type Outcome =
  | { state: 'idle' }
  | { state: 'running' }
  | {
      state: 'verified'
      checkpoint: { treeSize: number; rootHash: string }
      anchored: { treeSize: number; rootHash: string }
      cosignatures: SeenCosignature[]
    }
  | { state: 'failed'; code: string; message: string }

const steps = Object.keys(TILES_STEPS) as TilesStep[]

/** The tiles' default URL: the node that served this page, at shard `shard`'s /log. */
const defaultTilesUrl = (shard: number) => `${window.location.origin}${shardPaths(shard).tiles}`

/** Checks `event`, of the vehicle's shard `shard` (by the rule: see Vehicle.tsx), from tiles. */
export function TilesCheck(props: { event: LedgerEvent; shard: number }) {
  const { chain, chainInfo, logIds, shardCount } = useNode()
  const { shard } = props
  const log = shardLogOf(chainInfo.state === 'ok' ? chainInfo.data : undefined, shard)
  const logId = logIds?.[shard]
  const [tilesUrl, setTilesUrl] = useState(() => defaultTilesUrl(shard))
  const [origin, setOrigin] = useState<string>()
  const [verifierKey, setVerifierKey] = useState<string>()
  const [witnessKeys, setWitnessKeys] = useState('')
  const [results, setResults] = useState<Partial<Record<TilesStep, StepState>>>({})
  const [outcome, setOutcome] = useState<Outcome>({ state: 'idle' })
  const pinnedOrigin = origin ?? log?.origin ?? ''
  const pinnedKey = verifierKey ?? log?.verifierKey ?? ''

  const run = async () => {
    setResults({})
    setOutcome({ state: 'running' })
    const done: Partial<Record<TilesStep, StepState>> = {}
    try {
      if (!chain || !logId)
        throw new BaseError('CHAIN_UNREACHABLE', 'the chain or the log id cannot be read yet')
      const vehicle = (props.event.envelope as { vehicle?: unknown } | null)?.vehicle
      if (typeof vehicle !== 'string')
        throw new BaseError('EVENT_MALFORMED', 'the event names no vehicle, so its shard is unknown')
      // The shard of the event's own vehicle (not only the page's), and the node must agree.
      if (vehicleShard(vehicle, shardCount, props.event.shard) !== shard)
        throw new BaseError('SHARDS_MISMATCH', `the event's vehicle ${vehicle} is not of shard ${shard}`)
      const leafHash = fromHex(props.event.id)
      if (!leafHash) throw new BaseError('INVALID_ARGUMENT', 'the event id is not hex')
      // The anchored root, read on chain at the moment of the check.
      const head = await readAnchoredHead(chain, logId).catch((error: Error) => {
        throw new BaseError(
          'CHAIN_UNREACHABLE',
          `LedgerAnchor.latest failed: ${error.message.split('\n')[0]}`,
        )
      })
      const result = await verifyFromTiles({
        get: httpTilesGet(tilesUrl),
        origin: pinnedOrigin,
        verifierKey: pinnedKey,
        anchored: { treeSize: head.treeSize, rootHash: fromHex(head.rootHash) ?? new Uint8Array(0) },
        leafHash,
        leafIndex: props.event.index,
        hashing: portableMerkle,
        witnessKeys: witnessKeys.split(/\s+/).filter(Boolean),
        onStep: (step, detail) => {
          done[step] = { state: 'passed', detail }
          setResults({ ...done })
        },
      })
      // The entry the tiles proved is of that vehicle: the shard was the right log to look in.
      const proven = JSON.parse(new TextDecoder().decode(result.entry)) as { vehicle?: unknown }
      if (typeof proven.vehicle !== 'string' || proven.vehicle.toLowerCase() !== vehicle.toLowerCase())
        throw new BaseError('SHARDS_MISMATCH', `the entry proven is not of vehicle ${vehicle}`)
      setOutcome({
        state: 'verified',
        checkpoint: { treeSize: result.checkpoint.treeSize, rootHash: toHex(result.checkpoint.rootHash) },
        anchored: head,
        cosignatures: result.cosignatures,
      })
    } catch (error) {
      const code = error instanceof BaseError ? error.code : 'INTERNAL'
      const message = error instanceof Error ? error.message : String(error)
      const failed = steps.find((step) => !done[step])
      if (failed) setResults({ ...done, [failed]: { state: 'failed', detail: message } })
      setOutcome({ state: 'failed', code, message })
    }
  }

  return (
    <div className="tiles-check" data-testid="tiles-check">
      <p className="dim">
        Checks this event from the log's C2SP tiles alone, in this browser, trusting neither the node's API
        nor the server the tiles come from. It trusts the log's origin and verifier key — a real verifier
        knows them out of band; here they are filled in from the node's <code>/v1/chain</code>: compare them
        with the ones the operator publishes — and the root anchored on chain, read from LedgerAnchor.
        {shardCount > 1 &&
          ` The log is ${shardCount} shards; this event's vehicle is in shard ${shard} by the shard rule (computed here), so it is that shard's tiles, origin, key and anchored root.`}
      </p>
      <div className="form-grid">
        <label>
          Tiles URL
          <input
            value={tilesUrl}
            onChange={(e) => setTilesUrl(e.target.value.trim())}
            data-testid="tiles-url"
            placeholder="https://…/log (the node's /log, a CDN, a static mirror)"
          />
        </label>
        <label>
          Origin (pinned)
          <input
            value={pinnedOrigin}
            onChange={(e) => setOrigin(e.target.value.trim())}
            data-testid="tiles-origin"
          />
        </label>
        <label>
          Verifier key (pinned)
          <input
            value={pinnedKey}
            onChange={(e) => setVerifierKey(e.target.value.trim())}
            data-testid="tiles-verifier-key"
          />
        </label>
        <label>
          Witness keys (optional)
          <input
            value={witnessKeys}
            onChange={(e) => setWitnessKeys(e.target.value)}
            data-testid="tiles-witness-keys"
            placeholder="name+hex+base64 cosigner keys, space-separated"
          />
        </label>
      </div>
      <div className="form-row">
        <button
          type="button"
          className="button"
          onClick={run}
          disabled={outcome.state === 'running'}
          data-testid="tiles-verify"
        >
          {outcome.state === 'running' ? 'Verifying…' : 'Verify from tiles'}
        </button>
        {outcome.state === 'verified' && (
          <span data-testid="tiles-verified">
            <Badge tone="good">✓ verified from tiles</Badge>
          </span>
        )}
        {outcome.state === 'failed' && (
          <span data-testid="tiles-failed">
            <Badge tone="bad">✗ {outcome.code}</Badge>
          </span>
        )}
      </div>
      {outcome.state !== 'idle' && (
        <ol className="tiles-steps" data-testid="tiles-steps">
          {steps.map((step) => {
            const result = results[step]
            return (
              <li
                key={step}
                data-testid={`tiles-step-${step}`}
                data-state={result?.state ?? (outcome.state === 'running' ? 'running' : 'skipped')}
              >
                <span className={`tiles-step-mark tiles-step-${result?.state ?? 'none'}`} aria-hidden="true">
                  {result?.state === 'passed' ? '✓' : result?.state === 'failed' ? '✗' : '·'}
                </span>
                <div>
                  <strong>{TILES_STEPS[step]}</strong>
                  {result && <div className="dim small">{result.detail}</div>}
                </div>
              </li>
            )
          })}
        </ol>
      )}
      {outcome.state === 'failed' && (
        <p className="tiles-error" data-testid="tiles-error">
          <code data-testid="tiles-error-code">{outcome.code}</code> {outcome.message}
        </p>
      )}
      {outcome.state === 'verified' && (
        <dl className="proof" data-testid="tiles-summary">
          <dt>Checkpoint</dt>
          <dd>
            size {outcome.checkpoint.treeSize.toLocaleString()}, root{' '}
            <Address value={outcome.checkpoint.rootHash} keep={10} />
          </dd>
          <dt>Anchored</dt>
          <dd>
            size {outcome.anchored.treeSize.toLocaleString()}, root{' '}
            <Address value={outcome.anchored.rootHash} keep={10} /> — <code>LedgerAnchor.latest(logId)</code>,
            log <Address value={logId} />
            {shardCount > 1 && (
              <span data-testid="tiles-shard">
                , shard {shard} of {shardCount}
              </span>
            )}
          </dd>
          <dt>Cosignatures</dt>
          <dd data-testid="tiles-cosignatures">
            {outcome.cosignatures.length === 0
              ? 'none on this checkpoint'
              : outcome.cosignatures.map((c) => (
                  <div key={`${c.name}/${c.keyId}`}>
                    {c.name} (key id {c.keyId}) —{' '}
                    {c.verified && c.timestamp
                      ? `✓ verified, cosigned ${new Date(c.timestamp * 1000).toISOString()}`
                      : 'seen, not verified: give the witness’s cosigner key above to verify it'}
                  </div>
                ))}
          </dd>
        </dl>
      )}
    </div>
  )
}
