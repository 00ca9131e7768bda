/**
 * What every view needs about the node and its chain: `/v1/chain`, `/v1/health`, the log
 * checkpoint, viem clients, and the anchored head read on chain (refreshed on every `anchor`
 * message of the stream, and every few seconds).
 */
import { createContext, type ReactNode, useCallback, useContext, useEffect, useMemo, useState } from 'react'
import { type ChainInfo, type Checkpoint, type Health, type Loadable, useApi } from './api.ts'
import { type Chain, connect, readAnchoredHead } from './chain.ts'
import type { AnchoredHead } from './lib/event-proof.ts'
import { type StreamMessage, useStream } from './stream.ts'

export type NodeState = {
  health: Loadable<Health>
  chainInfo: Loadable<ChainInfo>
  checkpoint: Loadable<Checkpoint>
  chain: Chain | undefined
  /** The newest anchor as the LedgerAnchor contract says, or why it cannot be read. */
  anchored: Loadable<AnchoredHead>
  blockNumber: bigint | undefined
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
  const onMessage = useCallback((message: StreamMessage) => {
    if (message.type === 'anchor') setAnchorTick((t) => t + 1)
  }, [])
  useStream(onMessage)

  const chain = useMemo(() => (chainInfo.state === 'ok' ? connect(chainInfo.data) : undefined), [chainInfo])
  const [blockNumber, setBlockNumber] = useState<bigint>()
  const [anchored, setAnchored] = useState<Loadable<AnchoredHead>>({ state: 'loading' })
  const logId = checkpoint.state === 'ok' ? checkpoint.data.logId : undefined
  const checkpointState = checkpoint.state

  // biome-ignore lint/correctness/useExhaustiveDependencies: tick and anchorTick are refresh triggers
  useEffect(() => {
    if (!chain) return
    let live = true
    chain.client.getBlockNumber().then(
      (n) => live && setBlockNumber(n),
      () => live && setBlockNumber(undefined),
    )
    if (checkpointState === 'unavailable' || checkpointState === 'error')
      setAnchored({
        state: 'unavailable',
        message: 'the node does not publish its log id yet (/v1/log/checkpoint)',
      })
    else if (logId)
      readAnchoredHead(chain, logId).then(
        (head) => live && setAnchored({ state: 'ok', data: head }),
        (error: Error) =>
          live &&
          setAnchored({
            state: 'error',
            message: `LedgerAnchor.latest failed: ${error.message.split('\n')[0]}`,
          }),
      )
    return () => {
      live = false
    }
  }, [chain, logId, checkpointState, tick, anchorTick])

  const value = useMemo(
    () => ({ health, chainInfo, checkpoint, chain, anchored, blockNumber }),
    [health, chainInfo, checkpoint, chain, anchored, blockNumber],
  )
  return <NodeContext.Provider value={value}>{props.children}</NodeContext.Provider>
}
