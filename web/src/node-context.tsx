/**
 * What every view needs about the node and its chain: `/v1/chain`, `/v1/health`, the log
 * checkpoint, viem clients, and every log shard's head as the node says (`/v1/log/shards`) and as
 * anchored on chain (`LedgerAnchor.latest` of each shard's log id, computed here), refreshed on
 * every `anchor` message of the stream and every few seconds.
 */
import { createContext, type ReactNode, useCallback, useContext, useEffect, useMemo, useState } from 'react'
import {
  type ChainInfo,
  type Checkpoint,
  type Health,
  type Hex,
  type Loadable,
  type LogShards,
  useApi,
} from './api.ts'
import { type Chain, connect, readAnchoredHead } from './chain.ts'
import type { AnchoredHead } from './lib/event-proof.ts'
import { shardCountOf, shardLogIdOf } from './lib/shards.ts'
import { type StreamMessage, useStream } from './stream.ts'

export type NodeState = {
  health: Loadable<Health>
  chainInfo: Loadable<ChainInfo>
  checkpoint: Loadable<Checkpoint>
  chain: Chain | undefined
  /** Shard 0's newest anchor as the LedgerAnchor contract says, or why it cannot be read. */
  anchored: Loadable<AnchoredHead>
  blockNumber: bigint | undefined
  /** How many log shards the deployment runs (1 unless `/v1/chain` lists several). */
  shardCount: number
  /** Each shard's log id on LedgerAnchor (index = shard), computed from shard 0's. */
  logIds: Hex[] | undefined
  /** Each shard's head as the node says (`/v1/log/shards`). */
  logShards: Loadable<LogShards>
  /** Each shard's newest anchor read on chain (index = shard). */
  anchoredShards: Loadable<AnchoredHead[]>
}

/**
 * The whole ledger's size over every shard: the events the node holds (`/v1/log/shards`, else
 * shard 0's checkpoint of a node before shards) and those anchored on chain; undefined while unknown.
 */
export function useLedgerTotals(): { events: number | undefined; anchored: number | undefined } {
  const { checkpoint, logShards, anchoredShards } = useNode()
  const sum = (heads: readonly { treeSize: number }[]) => heads.reduce((total, h) => total + h.treeSize, 0)
  return {
    events:
      logShards.state === 'ok'
        ? sum(logShards.data.shards)
        : checkpoint.state === 'ok'
          ? checkpoint.data.treeSize
          : undefined,
    anchored: anchoredShards.state === 'ok' ? sum(anchoredShards.data) : undefined,
  }
}

const NodeContext = createContext<NodeState | undefined>(undefined)

export function useNode(): NodeState {
  const node = useContext(NodeContext)
  if (!node) throw new TypeError('useNode outside NodeProvider')
  return node
}

export function NodeProvider(props: { children: ReactNode }) {
  const [tick, setTick] = useState(0)
  useEffect(() => {
    const timer = setInterval(() => setTick((t) => t + 1), 5000)
    return () => clearInterval(timer)
  }, [])
  const health = useApi<Health>('/v1/health', Math.floor(tick / 2))
  const chainInfo = useApi<ChainInfo>('/v1/chain')
  const [anchorTick, setAnchorTick] = useState(0)
  const checkpoint = useApi<Checkpoint>('/v1/log/checkpoint', `${tick}/${anchorTick}`)
  const logShards = useApi<LogShards>('/v1/log/shards', `${tick}/${anchorTick}`)
  const onMessage = useCallback((message: StreamMessage) => {
    if (message.type === 'anchor') setAnchorTick((t) => t + 1)
  }, [])
  useStream(onMessage)

  const chain = useMemo(() => (chainInfo.state === 'ok' ? connect(chainInfo.data) : undefined), [chainInfo])
  const [blockNumber, setBlockNumber] = useState<bigint>()
  const [anchoredShards, setAnchoredShards] = useState<Loadable<AnchoredHead[]>>({ state: 'loading' })
  const logId = checkpoint.state === 'ok' ? checkpoint.data.logId : undefined
  const checkpointState = checkpoint.state
  const shardCount = shardCountOf(chainInfo.state === 'ok' ? chainInfo.data : undefined)
  const logIds = useMemo(
    () => (logId ? Array.from({ length: shardCount }, (_, shard) => shardLogIdOf(logId, shard)) : undefined),
    [logId, shardCount],
  )

  // biome-ignore lint/correctness/useExhaustiveDependencies: tick and anchorTick are refresh triggers
  useEffect(() => {
    if (!chain) return
    let live = true
    chain.client.getBlockNumber().then(
      (n) => live && setBlockNumber(n),
      () => live && setBlockNumber(undefined),
    )
    if (checkpointState === 'unavailable' || checkpointState === 'error')
      setAnchoredShards({
        state: 'unavailable',
        message: 'the node does not publish its log id yet (/v1/log/checkpoint)',
      })
    else if (logIds)
      Promise.all(logIds.map((id) => readAnchoredHead(chain, id))).then(
        (heads) => live && setAnchoredShards({ state: 'ok', data: heads }),
        (error: Error) =>
          live &&
          setAnchoredShards({
            state: 'error',
            message: `LedgerAnchor.latest failed: ${error.message.split('\n')[0]}`,
          }),
      )
    return () => {
      live = false
    }
  }, [chain, logIds, checkpointState, tick, anchorTick])
  const anchored = useMemo<Loadable<AnchoredHead>>(
    () => (anchoredShards.state === 'ok' ? { state: 'ok', data: anchoredShards.data[0]! } : anchoredShards),
    [anchoredShards],
  )

  const value = useMemo(
    () => ({
      health,
      chainInfo,
      checkpoint,
      chain,
      anchored,
      blockNumber,
      shardCount,
      logIds,
      logShards,
      anchoredShards,
    }),
    [
      health,
      chainInfo,
      checkpoint,
      chain,
      anchored,
      blockNumber,
      shardCount,
      logIds,
      logShards,
      anchoredShards,
    ],
  )
  return <NodeContext.Provider value={value}>{props.children}</NodeContext.Provider>
}
