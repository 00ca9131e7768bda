/**
 * The log's shards and their anchors. A row per shard (docs/ledger.md "Shards"; one row when the
 * deployment runs one log): its log id on LedgerAnchor (computed here from shard 0's by the shard
 * rule, and compared with the one the node names), its head as the node says, its newest root
 * read on chain, its latest anchor transaction, and the witness cosignatures on its checkpoint
 * (read from its tiles, the log's signature verified here). Below, one shard's anchor history:
 * what the node says it anchored, each row checked against the `Anchored(logId, treeSize,
 * rootHash)` events the LedgerAnchor contract emitted for that shard's log id.
 */
import { useCallback, useEffect, useState } from 'react'
import { BaseError } from '../../../src/errors.ts'
import { MAX_NOTE_BYTES, openCheckpointNote } from '../../../src/ledger/signed-note.ts'
import { httpTilesGet, type SeenCosignature, seenCosignatures } from '../../../src/ledger/tiles-verify.ts'
import { type Anchor, type Checkpoint, type Loadable, useApi } from '../api.ts'
import { ledgerAnchorAbi } from '../chain.ts'
import { Address, Badge, Card, Empty, formatTime, Load, Stat } from '../components/ui.tsx'
import { shardLogOf, shardPaths } from '../lib/shards.ts'
import { useLedgerTotals, useNode } from '../node-context.tsx'
import { type StreamMessage, useStream } from '../stream.ts'

export function AnchorsView() {
  const { chain, logIds, shardCount } = useNode()
  const totals = useLedgerTotals()
  const [refresh, setRefresh] = useState(0)
  const [shard, setShard] = useState(0)
  const anchors = useApi<{ anchors: Anchor[] }>(`${shardPaths(shard).api}/anchors?limit=100`, refresh)
  const onMessage = useCallback((message: StreamMessage) => {
    if (message.type === 'anchor') setRefresh((r) => r + 1)
  }, [])
  useStream(onMessage)
  const logId = logIds?.[shard]
  const shardNumbers = Array.from({ length: shardCount }, (_, k) => k)
  // Scan the chain's logs only from the oldest anchor listed, not from genesis.
  const fromBlock =
    anchors.state === 'ok' && anchors.data.anchors.length > 0
      ? BigInt(Math.min(...anchors.data.anchors.map((a) => a.blockNumber)))
      : 0n
  const [onChain, setOnChain] = useState<Map<number, string>>()
  // biome-ignore lint/correctness/useExhaustiveDependencies: refresh re-reads the logs
  useEffect(() => {
    if (!chain || !logId) return
    let live = true
    chain.client
      .getContractEvents({
        address: chain.info.contracts.LedgerAnchor,
        abi: ledgerAnchorAbi,
        eventName: 'Anchored',
        args: { logId },
        fromBlock,
      })
      .then(
        (logs) => {
          if (!live) return
          const roots = new Map<number, string>()
          for (const log of logs) {
            const args = log.args as { treeSize?: bigint; rootHash?: string }
            if (args.treeSize !== undefined && args.rootHash)
              roots.set(Number(args.treeSize), args.rootHash.toLowerCase())
          }
          setOnChain(roots)
        },
        () => live && setOnChain(undefined),
      )
    return () => {
      live = false
    }
  }, [chain, logId, fromBlock, refresh])

  return (
    <div className="view" data-testid="anchors-view">
      <div className="view-header">
        <div>
          <h1>Anchors</h1>
          <p className="subtitle">
            Log heads written to LedgerAnchor. The contract accepts a new root only with a consistency proof
            from the last, so the chain itself keeps the log append-only.
          </p>
        </div>
      </div>
      <div className="stats">
        <Stat
          label="Log shards"
          value={shardCount.toLocaleString()}
          hint={shardCount > 1 ? 'each its own log, anchored in one transaction' : 'one log'}
          testId="stat-shards"
        />
        <Stat
          label="Latest on chain"
          value={totals.anchored === undefined ? '—' : `${totals.anchored.toLocaleString()} events`}
          hint={shardCount > 1 ? 'over every shard' : ''}
        />
        <Stat label="Contract" value={chain ? <Address value={chain.info.contracts.LedgerAnchor} /> : '—'} />
      </div>
      <Card title={shardCount > 1 ? 'Shards' : 'Log'} className="card-table">
        <table className="table" data-testid="shards-table">
          <thead>
            <tr>
              <th className="num">Shard</th>
              <th>Log id</th>
              <th className="num">Tree size</th>
              <th>Root hash</th>
              <th>Anchored on chain</th>
              <th>Latest anchor</th>
              <th>Witness cosignatures</th>
            </tr>
          </thead>
          <tbody>
            {shardNumbers.map((k) => (
              <ShardRow
                key={k}
                shard={k}
                refresh={refresh}
                selected={k === shard}
                onSelect={() => setShard(k)}
              />
            ))}
          </tbody>
        </table>
      </Card>
      <Card
        title={shardCount > 1 ? `History of shard ${shard}` : 'History'}
        className="card-table"
        actions={
          shardCount > 1 && (
            <label className="dim">
              Shard{' '}
              <select
                value={shard}
                onChange={(e) => setShard(Number(e.target.value))}
                data-testid="anchors-shard"
              >
                {shardNumbers.map((k) => (
                  <option key={k} value={k}>
                    {k}
                  </option>
                ))}
              </select>
            </label>
          )
        }
      >
        <Load value={anchors} what="the anchor history">
          {(data) =>
            data.anchors.length === 0 ? (
              <Empty>
                Nothing anchored yet. The node anchors the log head every few seconds while it grows.
              </Empty>
            ) : (
              <table className="table" data-testid="anchors-table">
                <thead>
                  <tr>
                    <th className="num">Tree size</th>
                    <th>Root hash</th>
                    <th>Transaction</th>
                    <th className="num">Block</th>
                    <th>When</th>
                    <th>On chain</th>
                  </tr>
                </thead>
                <tbody>
                  {data.anchors.map((a) => {
                    const root = onChain?.get(a.treeSize)
                    return (
                      <tr key={`${a.treeSize}-${a.txHash}`}>
                        <td className="num">{a.treeSize.toLocaleString()}</td>
                        <td>
                          <Address value={a.rootHash} keep={8} />
                        </td>
                        <td>
                          <Address value={a.txHash} keep={6} />
                        </td>
                        <td className="num">{a.blockNumber}</td>
                        <td>{anchoredAt(a.anchoredAt)}</td>
                        <td>
                          {onChain === undefined ? (
                            <Badge tone="neutral">—</Badge>
                          ) : root === a.rootHash.toLowerCase() ? (
                            <Badge tone="good">✓ Anchored event</Badge>
                          ) : root ? (
                            <Badge tone="bad">different root</Badge>
                          ) : (
                            <Badge tone="warn">no event</Badge>
                          )}
                        </td>
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

/** One shard's row: its head (node), its root on chain, its latest anchor, its cosignatures. */
function ShardRow(props: { shard: number; refresh: number; selected: boolean; onSelect(): void }) {
  const { shard } = props
  const { chainInfo, logIds, logShards, anchoredShards } = useNode()
  const paths = shardPaths(shard)
  const checkpoint = useApi<Checkpoint>(`${paths.api}/checkpoint`, props.refresh)
  const cosignatures = useCosignatures(
    paths.tiles,
    shardLogOf(chainInfo.state === 'ok' ? chainInfo.data : undefined, shard)?.verifierKey,
    props.refresh,
  )
  const logId = logIds?.[shard]
  const said = logShards.state === 'ok' ? logShards.data.shards.find((s) => s.shard === shard) : undefined
  const head = said ?? (checkpoint.state === 'ok' ? checkpoint.data : undefined)
  const onChain = anchoredShards.state === 'ok' ? anchoredShards.data[shard] : undefined
  const latest = checkpoint.state === 'ok' ? checkpoint.data.anchored : undefined
  return (
    <tr
      data-testid="shard-row"
      data-shard={shard}
      className={props.selected ? 'row-selected' : undefined}
      onClick={props.onSelect}
    >
      <td className="num">{shard}</td>
      <td>
        <Address value={logId} keep={6} />{' '}
        {said && logId && said.logId.toLowerCase() !== logId.toLowerCase() && (
          <Badge tone="bad" title={`the node names ${said.logId}`}>
            node says another log id
          </Badge>
        )}
      </td>
      <td className="num" data-testid="shard-tree-size">
        {head ? head.treeSize.toLocaleString() : '—'}
      </td>
      <td>
        <Address value={head?.rootHash} keep={8} />
      </td>
      <td data-testid="shard-anchored">
        {onChain && onChain.treeSize > 0 ? (
          <>
            {onChain.treeSize.toLocaleString()} · <Address value={onChain.rootHash} keep={6} />
          </>
        ) : onChain ? (
          <span className="dim">nothing yet</span>
        ) : (
          '—'
        )}
      </td>
      <td>
        {latest ? (
          <>
            <Address value={latest.txHash} keep={6} /> <span className="dim">block {latest.blockNumber}</span>
          </>
        ) : (
          <span className="dim">none yet</span>
        )}
      </td>
      <td data-testid="shard-cosignatures">
        {cosignatures.state === 'ok' ? (
          cosignatures.data.length === 0 ? (
            <span className="dim">none</span>
          ) : (
            cosignatures.data.map((c) => (
              <Badge
                key={`${c.name}/${c.keyId}`}
                tone="info"
                title={`key id ${c.keyId}; seen, not verified here`}
              >
                {c.name}
              </Badge>
            ))
          )
        ) : cosignatures.state === 'loading' ? (
          '…'
        ) : (
          <span className="dim" title={cosignatures.message}>
            {cosignatures.state === 'error' && cosignatures.code ? cosignatures.code : 'unavailable'}
          </span>
        )}
      </td>
    </tr>
  )
}

/**
 * The witness cosignatures on the checkpoint at `<tiles>/checkpoint`, once the log's own signature
 * on it verifies under `verifierKey` (NOTE_INVALID otherwise). Seen, not verified: the witnesses'
 * keys are checked by "Verify from tiles", where the user pins them.
 */
function useCosignatures(
  tiles: string,
  verifierKey: string | undefined,
  refresh: number,
): Loadable<SeenCosignature[]> {
  const [result, setResult] = useState<Loadable<SeenCosignature[]>>({ state: 'loading' })
  // biome-ignore lint/correctness/useExhaustiveDependencies: refresh re-reads the checkpoint
  useEffect(() => {
    if (!verifierKey) return
    let live = true
    httpTilesGet(tiles)('checkpoint', MAX_NOTE_BYTES)
      .then((bytes) => {
        const note = new TextDecoder().decode(bytes)
        openCheckpointNote(note, verifierKey)
        return seenCosignatures(note, verifierKey, [])
      })
      .then(
        (seen) => live && setResult({ state: 'ok', data: seen }),
        (error: Error) =>
          live &&
          setResult({
            state: 'error',
            message: error.message,
            ...(error instanceof BaseError ? { code: error.code } : {}),
          }),
      )
    return () => {
      live = false
    }
  }, [tiles, verifierKey, refresh])
  return result
}

function anchoredAt(value: number | string | undefined): string {
  if (value === undefined) return '—'
  const ms = typeof value === 'number' ? (value < 1e12 ? value * 1000 : value) : Date.parse(value)
  return Number.isNaN(ms) ? String(value) : formatTime(ms)
}
