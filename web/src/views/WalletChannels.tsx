/**
 * Payment channels paid from the signed-in account (the owner's wallet, or a demo owner): open
 * one to a charge-point operator, top it up, extend it, and reclaim what is left after it expires —
 * each a `ChargingChannels` transaction (with the token's `approve` first where the contract pulls
 * tokens) that the wallet confirms. docs/payments.md "Channels".
 *
 * The contract stores no channel's key (`{payer, payee, token, nonce}`, docs/contracts.md), so the
 * page keeps the keys of the channels opened here in this browser and reads their state on chain.
 */
import { useEffect, useState } from 'react'
import { type Address, type Hex, isAddress } from 'viem'
import { type Chain, chargingChannelsAbi, demoTokenAbi } from '../chain.ts'
import { Address as AddressText, Badge, Card, Empty, formatUnits } from '../components/ui.tsx'
import {
  AddressField,
  ProblemAlert,
  parseTokenAmount,
  useWalletActions,
  WalletActionButton,
} from '../components/wallet-ui.tsx'
import { toHex } from '../lib/hex.ts'
import { useNode } from '../node-context.tsx'
import { type Session, sendAs } from '../session.ts'
import { walletProblem } from '../wallet.ts'

type Key = { payer: Address; payee: Address; token: Address; nonce: string }
type State = { id: Hex; deposit: bigint; paid: bigint; expiresAt: number; closed: boolean }

const storageKey = (chain: Chain) =>
  `carchain.channels.${chain.info.chainId}.${chain.info.contracts.ChargingChannels.toLowerCase()}`

function loadKeys(key: string, payer: string): Key[] {
  try {
    const all = JSON.parse(localStorage.getItem(key) ?? '[]') as Key[]
    return all.filter((k) => k.payer?.toLowerCase() === payer.toLowerCase())
  } catch {
    return []
  }
}

const asKey = (k: Key) => ({ ...k, nonce: BigInt(k.nonce) })

/** `approve` the channels contract for `amount` unless it may already take that much. */
async function allow(session: Session, chain: Chain, amount: bigint) {
  const allowance = await chain.client.readContract({
    address: chain.info.contracts.Token,
    abi: demoTokenAbi,
    functionName: 'allowance',
    args: [session.address, chain.info.contracts.ChargingChannels],
  })
  if (allowance >= amount) return
  await sendAs(session, chain, {
    address: chain.info.contracts.Token,
    abi: demoTokenAbi,
    functionName: 'approve',
    args: [chain.info.contracts.ChargingChannels, amount],
  })
}

export function WalletChannels(props: { session: Session }) {
  const { chain } = useNode()
  const { session } = props
  const [keys, setKeys] = useState<Key[]>([])
  const [states, setStates] = useState<Record<string, State>>({})
  const [token, setToken] = useState({ symbol: 'tokens', decimals: 18 })
  const [payee, setPayee] = useState('')
  const [deposit, setDeposit] = useState('20')
  const [days, setDays] = useState(30)
  const [topUp, setTopUp] = useState('5')
  const { busy, done, problem, setProblem, tick, run } = useWalletActions(session)

  useEffect(() => {
    if (chain) setKeys(loadKeys(storageKey(chain), session.address))
  }, [chain, session.address])

  // biome-ignore lint/correctness/useExhaustiveDependencies: tick re-reads after a transaction
  useEffect(() => {
    if (!chain) return
    let live = true
    const address = chain.info.contracts.ChargingChannels
    Promise.all([
      chain.client.readContract({
        address: chain.info.contracts.Token,
        abi: demoTokenAbi,
        functionName: 'symbol',
      }),
      chain.client.readContract({
        address: chain.info.contracts.Token,
        abi: demoTokenAbi,
        functionName: 'decimals',
      }),
      Promise.all(
        keys.map(async (k): Promise<[string, State]> => {
          const id = await chain.client.readContract({
            address,
            abi: chargingChannelsAbi,
            functionName: 'channelIdOf',
            args: [asKey(k)],
          })
          const c = await chain.client.readContract({
            address,
            abi: chargingChannelsAbi,
            functionName: 'channel',
            args: [id],
          })
          return [
            k.nonce,
            { id, deposit: c.deposit, paid: c.paid, expiresAt: Number(c.expiresAt), closed: c.closed },
          ]
        }),
      ),
    ]).then(
      ([symbol, decimals, entries]) => {
        if (!live) return
        setToken({ symbol, decimals })
        setStates(Object.fromEntries(entries))
      },
      (error: Error) => live && setProblem(walletProblem(error, { chainId: chain.info.chainId })),
    )
    return () => {
      live = false
    }
  }, [chain, keys, tick])

  if (!chain) return null
  const channels = chain.info.contracts.ChargingChannels
  const amountOf = (text: string) => parseTokenAmount(text, token)

  const open = () =>
    run(
      'open',
      async () => {
        if (!isAddress(payee, { strict: false }))
          throw new TypeError('the payee must be an address (0x + 40 hex)')
        if (payee.toLowerCase() === session.address.toLowerCase()) throw new TypeError('the payee is you')
        if (!(days > 0)) throw new TypeError('the channel needs a lifetime in days')
        const value = amountOf(deposit)
        const key: Key = {
          payer: session.address,
          payee: payee.toLowerCase() as Address,
          token: chain.info.contracts.Token,
          nonce: BigInt(toHex(crypto.getRandomValues(new Uint8Array(32)))).toString(),
        }
        await allow(session, chain, value)
        await sendAs(session, chain, {
          address: channels,
          abi: chargingChannelsAbi,
          functionName: 'open',
          args: [
            key.payee,
            key.token,
            value,
            BigInt(Math.floor(Date.now() / 1000) + days * 86_400),
            BigInt(key.nonce),
          ],
        })
        const stored = storageKey(chain)
        const all = JSON.parse(localStorage.getItem(stored) ?? '[]') as Key[]
        localStorage.setItem(stored, JSON.stringify([key, ...all]))
        setKeys(loadKeys(stored, session.address))
      },
      'Channel opened: the deposit is held by ChargingChannels for the payee to claim vouchers against.',
    )
  const topUpChannel = (k: Key) =>
    run(
      `top-${k.nonce}`,
      async () => {
        const value = amountOf(topUp)
        await allow(session, chain, value)
        await sendAs(session, chain, {
          address: channels,
          abi: chargingChannelsAbi,
          functionName: 'topUp',
          args: [asKey(k), value],
        })
      },
      'Topped up.',
    )
  const extend = (k: Key, state: State) =>
    run(
      `extend-${k.nonce}`,
      () =>
        sendAs(session, chain, {
          address: channels,
          abi: chargingChannelsAbi,
          functionName: 'extend',
          args: [asKey(k), BigInt(Math.max(state.expiresAt, Math.floor(Date.now() / 1000)) + 30 * 86_400)],
        }),
      'Extended by 30 days.',
    )
  const reclaim = (k: Key) =>
    run(
      `reclaim-${k.nonce}`,
      () =>
        sendAs(session, chain, {
          address: channels,
          abi: chargingChannelsAbi,
          functionName: 'reclaim',
          args: [asKey(k)],
        }),
      'Reclaimed: what the payee had not claimed is back in your account.',
    )

  const now = Date.now() / 1000
  return (
    <Card title="Your payment channels" className="card-table">
      <div className="card-pad">
        <p className="muted">
          Channels paid from {session.kind === 'wallet' ? 'your wallet' : `demo owner #${session.ownerIndex}`}{' '}
          (<AddressText value={session.address} />) to a charge-point operator, in {token.symbol}. Each action
          is a ChargingChannels transaction your wallet confirms; opening and topping up first approve the
          token.
        </p>
        <div className="form-row">
          <AddressField
            label="Payee (the operator)"
            placeholder="0x… the operator's address"
            value={payee}
            onChange={setPayee}
            testId="channel-payee"
          />
          <label>
            Deposit ({token.symbol})
            <input
              value={deposit}
              onChange={(e) => setDeposit(e.target.value.trim())}
              data-testid="channel-deposit"
            />
          </label>
          <label>
            Days
            <input type="number" min={1} value={days} onChange={(e) => setDays(Number(e.target.value))} />
          </label>
          <WalletActionButton action="open" busy={busy} onClick={open} testId="channel-open">
            Open channel
          </WalletActionButton>
        </div>
        <ProblemAlert problem={problem} session={session} />
        {done && (
          <div className="state state-good" role="status" data-testid="channel-done">
            {done}
          </div>
        )}
      </div>
      {keys.length === 0 ? (
        <Empty>No channels opened from this browser yet.</Empty>
      ) : (
        <table className="table" data-testid="channels-table">
          <thead>
            <tr>
              <th>Channel</th>
              <th>Payee</th>
              <th>Deposit</th>
              <th>Claimed</th>
              <th>Expires</th>
              <th>State</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {keys.map((k) => {
              const state = states[k.nonce]
              const expired = state !== undefined && !state.closed && state.expiresAt <= now
              return (
                <tr key={k.nonce} data-testid="channel-row">
                  <td>
                    <AddressText value={state?.id} />
                  </td>
                  <td>
                    <AddressText value={k.payee} />
                  </td>
                  <td data-testid="channel-deposit-value">
                    {state ? `${formatUnits(state.deposit, token.decimals)} ${token.symbol}` : '…'}
                  </td>
                  <td>{state ? formatUnits(state.paid, token.decimals) : '…'}</td>
                  <td data-testid="channel-expires">
                    {state && !state.closed ? new Date(state.expiresAt * 1000).toLocaleDateString() : '—'}
                  </td>
                  <td>
                    <Badge tone={state?.closed ? 'neutral' : expired ? 'warn' : 'good'}>
                      {!state ? '…' : state.closed ? 'closed' : expired ? 'expired' : 'open'}
                    </Badge>
                  </td>
                  <td className="actions">
                    {state && !state.closed && !expired && (
                      <>
                        <input
                          className="input-small"
                          value={topUp}
                          onChange={(e) => setTopUp(e.target.value.trim())}
                          aria-label={`top-up amount (${token.symbol})`}
                        />
                        <WalletActionButton
                          action={`top-${k.nonce}`}
                          busy={busy}
                          onClick={() => topUpChannel(k)}
                          tone="quiet"
                          compact
                          testId="channel-topup"
                        >
                          Top up
                        </WalletActionButton>
                        <WalletActionButton
                          action={`extend-${k.nonce}`}
                          busy={busy}
                          onClick={() => extend(k, state)}
                          tone="quiet"
                          compact
                          testId="channel-extend"
                        >
                          +30 days
                        </WalletActionButton>
                      </>
                    )}
                    {expired && (
                      <WalletActionButton
                        action={`reclaim-${k.nonce}`}
                        busy={busy}
                        onClick={() => reclaim(k)}
                        tone="quiet"
                        compact
                        testId="channel-reclaim"
                      >
                        Reclaim
                      </WalletActionButton>
                    )}
                  </td>
                </tr>
              )
            })}
          </tbody>
        </table>
      )}
    </Card>
  )
}
