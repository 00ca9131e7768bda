/** What every wallet action shows: its problem in plain words, and the switch to the node's chain. */
import { type ReactNode, useCallback, useState } from 'react'
import { parseUnits } from 'viem'
import { useNode } from '../node-context.tsx'
import { refreshWalletChain, type Session } from '../session.ts'
import { switchToChain, type WalletProblem, walletProblem } from '../wallet.ts'

/** A failed action's message; a wrong chain comes with the switch. */
export function ProblemAlert(props: { problem: WalletProblem | undefined; session: Session | undefined }) {
  const { problem, session } = props
  if (!problem) return null
  return (
    <div className="state state-error" role="alert" data-testid="wallet-problem" data-kind={problem.kind}>
      {problem.message}
      {problem.kind === 'wrong-chain' && session?.kind === 'wallet' && (
        <SwitchChainButton session={session} />
      )}
    </div>
  )
}

/** `wallet_switchEthereumChain` to the node's chain (adding it to the wallet when it does not know it). */
export function SwitchChainButton(props: { session: Session & { kind: 'wallet' } }) {
  const { chain } = useNode()
  const [busy, setBusy] = useState(false)
  const [problem, setProblem] = useState<WalletProblem>()
  if (!chain) return null
  const go = async () => {
    setBusy(true)
    setProblem(undefined)
    try {
      await switchToChain(props.session.wallet.provider, chain)
      await refreshWalletChain()
    } catch (error) {
      setProblem(walletProblem(error, { chainId: chain.info.chainId }))
    } finally {
      setBusy(false)
    }
  }
  return (
    <>
      {' '}
      <button type="button" className="button" onClick={go} disabled={busy} data-testid="switch-chain">
        {busy ? 'Asking the wallet…' : `Switch wallet to chain ${chain.info.chainId}`}
      </button>
      {problem && (
        <div className="state-detail" data-testid="switch-problem">
          {problem.message}
        </div>
      )}
    </>
  )
}

/**
 * The state of a card's wallet actions, one at a time: `run(action, send, success)` marks `action`
 * busy (see {@link WalletActionButton}), sends, and says `success` or the problem in plain words;
 * `tick` counts successes, for the card to re-read the chain; `onSuccess` is told of each too.
 */
export function useWalletActions(session: Session, onSuccess?: () => void) {
  const { chain } = useNode()
  const [busy, setBusy] = useState<string>()
  const [done, setDone] = useState<string>()
  const [problem, setProblem] = useState<WalletProblem>()
  const [tick, setTick] = useState(0)
  const chainId = chain?.info.chainId
  const run = useCallback(
    async (action: string, send: () => Promise<unknown>, success: string) => {
      if (chainId === undefined) return
      setBusy(action)
      setProblem(undefined)
      setDone(undefined)
      try {
        await send()
        setDone(success)
        setTick((t) => t + 1)
        onSuccess?.()
      } catch (error) {
        setProblem(walletProblem(error, { chainId, address: session.address }))
      } finally {
        setBusy(undefined)
      }
    },
    [chainId, session.address, onSuccess],
  )
  return { busy, done, problem, setProblem, tick, run }
}

/**
 * A button that sends a wallet transaction. `busy` names the action of its card that is waiting
 * for the wallet, if any: every button is disabled meanwhile (one transaction at a time), and the
 * one whose `action` it is asks the user to confirm in the wallet.
 */
export function WalletActionButton(props: {
  action: string
  busy: string | undefined
  onClick(): void
  children: ReactNode
  testId: string
  tone?: 'quiet' | 'danger'
  /** Disabled for a reason of its own as well (no vehicle chosen, …). */
  disabled?: boolean
  /** In a table row: a shorter prompt. */
  compact?: boolean
  title?: string
}) {
  return (
    <button
      type="button"
      className={props.tone ? `button button-${props.tone}` : 'button'}
      onClick={props.onClick}
      disabled={props.busy !== undefined || props.disabled === true}
      title={props.title}
      data-testid={props.testId}
    >
      {props.busy === props.action
        ? props.compact
          ? 'Confirm…'
          : 'Confirm in your wallet…'
        : props.children}
    </button>
  )
}

/** A labelled field for an address (or key) a wallet action sends to; the value is kept trimmed. */
export function AddressField(props: {
  label: string
  placeholder: string
  value: string
  onChange(value: string): void
  testId: string
}) {
  return (
    <label>
      {props.label}
      <input
        placeholder={props.placeholder}
        value={props.value}
        onChange={(e) => props.onChange(e.target.value.trim())}
        data-testid={props.testId}
      />
    </label>
  )
}

/** A positive amount of `token` typed by the user, in base units; a plain TypeError otherwise. */
export function parseTokenAmount(text: string, token: { decimals: number; symbol: string }): bigint {
  let value: bigint
  try {
    value = parseUnits(text, token.decimals)
  } catch {
    throw new TypeError(`the amount must be a number of ${token.symbol}`)
  }
  if (value <= 0n) throw new TypeError('the amount must be more than zero')
  return value
}
