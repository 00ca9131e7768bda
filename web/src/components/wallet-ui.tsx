/** What every wallet action shows: its problem in plain words, and the switch to the node's chain. */
import { useState } from 'react'
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
