/**
 * The anchor history: what the node says it anchored, each row checked against the
 * `Anchored(logId, treeSize, rootHash)` events the LedgerAnchor contract emitted.
 */
import { useCallback, useEffect, useState } from 'react'
import { type Anchor, useApi } from '../api.ts'
import { ledgerAnchorAbi } from '../chain.ts'
import { Address, Badge, Card, Empty, formatTime, Load, Stat } from '../components/ui.tsx'
import { useNode } from '../node-context.tsx'
import { type StreamMessage, useStream } from '../stream.ts'

export function AnchorsView() {
  const { chain, checkpoint, anchored } = useNode()
  const [refresh, setRefresh] = useState(0)
  const anchors = useApi<{ anchors: Anchor[] }>('/v1/log/anchors?limit=100', refresh)
  const onMessage = useCallback((message: StreamMessage) => {
    if (message.type === 'anchor') setRefresh((r) => r + 1)
  }, [])
  useStream(onMessage)
  const logId = checkpoint.state === 'ok' ? checkpoint.data.logId : undefined
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
        <Stat label="Log id" value={logId ? <Address value={logId} keep={6} /> : '—'} />
        <Stat
          label="Latest on chain"
          value={anchored.state === 'ok' ? `${anchored.data.treeSize.toLocaleString()} events` : '—'}
          hint={anchored.state === 'ok' ? <Address value={anchored.data.rootHash} keep={8} /> : ''}
        />
        <Stat label="Contract" value={chain ? <Address value={chain.info.contracts.LedgerAnchor} /> : '—'} />
      </div>
      <Card title="History" className="card-table">
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

function anchoredAt(value: number | string | undefined): string {
  if (value === undefined) return '—'
  const ms = typeof value === 'number' ? (value < 1e12 ? value * 1000 : value) : Date.parse(value)
  return Number.isNaN(ms) ? String(value) : formatTime(ms)
}
