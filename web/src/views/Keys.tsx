/**
 * Digital keys: sign in with the owner's own wallet (EIP-6963 / EIP-1193) or as a demo owner,
 * grant a key with an EIP-712 KeyGrant signature (docs/spec.md "Digital keys"; a wallet signs it
 * with `eth_signTypedData_v4`), and revoke it with a KeyRegistry transaction the wallet sends after
 * its own confirmation — the node is not asked to sign anything.
 */
import { useCallback, useEffect, useMemo, useState } from 'react'
import { type Address, type Hex, recoverAddress } from 'viem'
import { encodeShareLink, SHARE_LINK_PREFIX } from '../../../src/keys/share-link.ts'
import {
  type AnyGrant,
  grantTypedData,
  hashGrant,
  isPasskeyGrant,
  type KeyGrant,
  type PasskeyGrant,
  parseAnySignedGrant,
  passkeyFingerprint,
  passkeyGrantTypedData,
  Scope,
  scopeNames,
} from '../../../src/keys/typed-data.ts'
import { listNodeGrants, type SimVehicle, storeGrantWithNode, useApi, type Vehicle } from '../api.ts'
import { vehicleRegistryAbi } from '../chain.ts'
import { Address as AddressText, Badge, Card, Empty } from '../components/ui.tsx'
import {
  AddressField,
  ProblemAlert,
  SwitchChainButton,
  WalletActionButton,
} from '../components/wallet-ui.tsx'
import { toHex } from '../lib/hex.ts'
import { useNode } from '../node-context.tsx'
import {
  type Session,
  sendAs,
  signIn,
  signInWithWallet,
  signOut,
  signTypedDataAs,
  useSessionState,
} from '../session.ts'
import { useWallets, type WalletOption, type WalletProblem, walletProblem } from '../wallet.ts'
import { OwnerActions } from './OwnerActions.tsx'

/**
 * A key signed here, to an address (KeyGrant) or to a phone's passkey (PasskeyGrant); `signer` is
 * the owner (or manager) account that signed it.
 */
type StoredGrant = {
  grant: AnyGrant
  signature: Hex
  signedAt: number
  signer?: string
  /** Where the key is kept: this browser (absent), the node's mailbox, or both. */
  kept?: 'node' | 'both'
}
type GrantStatus = 'active' | 'revoked' | 'void' | 'expired' | 'not yet valid' | 'unknown'

const scopeList = Object.keys(Scope) as (keyof typeof Scope)[]

function storageKey(chainId: number, keyRegistry: string) {
  return `carchain.grants.${chainId}.${keyRegistry.toLowerCase()}`
}

function loadGrants(key: string): StoredGrant[] {
  try {
    return JSON.parse(localStorage.getItem(key) ?? '[]') as StoredGrant[]
  } catch {
    return []
  }
}

export function KeysView() {
  const { chain } = useNode()
  const { session, endedBecause } = useSessionState()
  const sim = useApi<SimVehicle[]>('/v1/sim/vehicles')
  // Titles change hands (a sale here, or elsewhere): re-read the owners every few seconds while
  // signed in, and at once when someone else signs in.
  const [tick, setTick] = useState(0)
  useEffect(() => {
    if (!session) return
    const timer = setInterval(() => setTick((t) => t + 1), 5000)
    return () => clearInterval(timer)
  }, [session])
  const vehicles = useApi<{ vehicles: Vehicle[] }>('/v1/vehicles', `${session?.address}/${tick}`)
  const owners = useMemo(() => {
    if (sim.state !== 'ok') return []
    const byIndex = new Map<number, { ownerIndex: number; owner: string; count: number }>()
    for (const v of sim.data) {
      const entry = byIndex.get(v.ownerIndex) ?? { ownerIndex: v.ownerIndex, owner: v.owner, count: 0 }
      entry.count++
      byIndex.set(v.ownerIndex, entry)
    }
    return [...byIndex.values()].sort((a, b) => a.ownerIndex - b.ownerIndex)
  }, [sim])

  const owned: { vehicle: Address; vin: string }[] = useMemo(() => {
    if (!session) return []
    const mine = (owner: string) => owner.toLowerCase() === session.address.toLowerCase()
    if (vehicles.state === 'ok')
      return vehicles.data.vehicles
        .filter((v) => mine(v.owner))
        .map((v) => ({ vehicle: v.vehicle.toLowerCase() as Address, vin: v.vin }))
    if (sim.state === 'ok')
      return sim.data
        .filter((v) => mine(v.owner))
        .map((v) => ({ vehicle: v.vehicle.toLowerCase() as Address, vin: v.vin }))
    return []
  }, [session, vehicles, sim])

  return (
    <div className="view" data-testid="keys-view">
      <div className="view-header">
        <div>
          <h1>Digital keys</h1>
          <p className="subtitle">
            Connect your wallet, grant a scoped, time-boxed key with an EIP-712 signature (the car checks it
            offline), revoke on chain, rent the car out or sell it.
          </p>
        </div>
      </div>
      <SignInCard owners={owners} simState={sim.state} session={session} endedBecause={endedBecause} />
      {session && chain && (
        <>
          <GrantForm session={session} vehicles={owned} />
          <GrantList session={session} vehicles={owned} />
          <OwnerActions session={session} vehicles={owned} onChange={vehicles.reload} />
        </>
      )}
    </div>
  )
}

function SignInCard(props: {
  owners: { ownerIndex: number; owner: string; count: number }[]
  simState: string
  session: Session | undefined
  endedBecause: string | undefined
}) {
  const { chainInfo, chain } = useNode()
  const wallets = useWallets()
  const [index, setIndex] = useState<number>(1)
  const [busy, setBusy] = useState<string>()
  const [error, setError] = useState<string>()
  const [problem, setProblem] = useState<WalletProblem>()
  useEffect(() => {
    const first = props.owners[0]
    if (first) setIndex(first.ownerIndex)
  }, [props.owners])
  const goDemo = async () => {
    if (chainInfo.state !== 'ok') return
    setBusy('demo')
    setError(undefined)
    setProblem(undefined)
    try {
      await signIn(index, chainInfo.data.chainId)
    } catch (e) {
      setError((e as Error).message)
    } finally {
      setBusy(undefined)
    }
  }
  const goWallet = async (wallet: WalletOption) => {
    if (!chain) return
    setBusy(wallet.id)
    setError(undefined)
    setProblem(undefined)
    try {
      await signInWithWallet(wallet, chain)
    } catch (e) {
      setProblem(walletProblem(e, { chainId: chain.info.chainId }))
    } finally {
      setBusy(undefined)
    }
  }
  const { session } = props
  if (session)
    return (
      <Card
        title="Signed in"
        actions={
          <button type="button" className="button button-quiet" onClick={() => signOut()}>
            Sign out
          </button>
        }
      >
        <div className="signed-in" data-testid="signed-in" data-kind={session.kind}>
          {session.kind === 'wallet' ? (
            <span>
              {session.wallet.icon && <img className="wallet-icon" src={session.wallet.icon} alt="" />}
              {session.wallet.name} · <AddressText value={session.address} keep={10} />
            </span>
          ) : (
            <span>
              <Badge tone="warn" title="A public key of the development mnemonic: for the demo only">
                demo
              </Badge>{' '}
              Demo owner #{session.ownerIndex} · <AddressText value={session.address} keep={10} />
            </span>
          )}
          {session.siwe.state === 'signed-in' ? (
            <Badge tone="good">Sign-In with Ethereum session</Badge>
          ) : (
            <Badge tone="neutral" title={session.siwe.message}>
              {session.siwe.state === 'unavailable' ? 'node sign-in not available' : 'node sign-in failed'}
            </Badge>
          )}
        </div>
        {session.kind === 'wallet' && chain && session.walletChainId !== chain.info.chainId && (
          <div className="state state-error" role="alert" data-testid="wrong-chain">
            Your wallet is on chain {session.walletChainId}; this node's chain is {chain.definition.name}, id{' '}
            {chain.info.chainId}. Keys and transactions need the wallet on the node's chain.
            <SwitchChainButton session={session} />
          </div>
        )}
        {session.siwe.state === 'failed' && (
          <div className="dim" data-testid="siwe-failed">
            The node refused the sign-in: {session.siwe.message}. You can still sign keys and send
            transactions; the node shows payloads only to a signed-in owner.
          </div>
        )}
      </Card>
    )
  return (
    <Card title="Sign in">
      <h3 className="card-subtitle">Your wallet</h3>
      <p className="muted">
        Connect the wallet that holds your car's title. It asks you to sign a Sign-In with Ethereum message
        for this node ({window.location.host}, chain {chainInfo.state === 'ok' ? chainInfo.data.chainId : '…'}
        ); keys you grant are EIP-712 signatures and revocations, rentals and sales are transactions, each
        confirmed in the wallet.
      </p>
      {wallets.length === 0 ? (
        <p className="dim" data-testid="no-wallet">
          No wallet found in this browser. Install a wallet extension (MetaMask, Rabby, Coinbase Wallet…) and
          reload, or use a demo owner below.
        </p>
      ) : (
        <div className="wallet-list" data-testid="wallet-picker">
          {wallets.map((wallet) => (
            <button
              key={wallet.id}
              type="button"
              className="button button-quiet wallet-option"
              onClick={() => goWallet(wallet)}
              disabled={busy !== undefined || !chain}
              title={wallet.rdns ?? wallet.source}
              data-testid="wallet-option"
            >
              {wallet.icon && <img className="wallet-icon" src={wallet.icon} alt="" />}
              {busy === wallet.id ? `Waiting for ${wallet.name}…` : wallet.name}
            </button>
          ))}
        </div>
      )}
      <ProblemAlert problem={problem} session={undefined} />
      {props.endedBecause && !problem && (
        <div className="state state-unavailable" role="status" data-testid="session-ended">
          {props.endedBecause}
        </div>
      )}
      <h3 className="card-subtitle">
        Demo owners <Badge tone="warn">demo</Badge>
      </h3>
      <p className="muted">
        The demo fleet's owners are accounts of the standard development mnemonic (
        <code>test test … junk</code>). Their keys are public: this is for the demo only.
      </p>
      <div className="form-row">
        <label htmlFor="owner">
          Owner
          {props.owners.length > 0 ? (
            <select
              id="owner"
              value={index}
              onChange={(e) => setIndex(Number(e.target.value))}
              data-testid="owner-select"
            >
              {props.owners.map((o) => (
                <option key={o.ownerIndex} value={o.ownerIndex}>
                  #{o.ownerIndex} · {o.owner.slice(0, 10)}… · {o.count} vehicle{o.count === 1 ? '' : 's'}
                </option>
              ))}
            </select>
          ) : (
            <input
              id="owner"
              type="number"
              min={0}
              max={99}
              value={index}
              onChange={(e) => setIndex(Number(e.target.value))}
              data-testid="owner-index"
            />
          )}
        </label>
        <button
          type="button"
          className="button"
          onClick={goDemo}
          disabled={busy !== undefined || chainInfo.state !== 'ok'}
        >
          {busy === 'demo' ? 'Signing in…' : 'Sign in as demo owner'}
        </button>
      </div>
      {props.simState === 'unavailable' && (
        <p className="dim">
          The simulator's list (/v1/sim/vehicles) is not available: enter an account index.
        </p>
      )}
      {error && (
        <div className="state state-error" role="alert">
          {error}
        </div>
      )}
    </Card>
  )
}

function useStoredGrants(chainId: number | undefined, keyRegistry: string | undefined) {
  const key = chainId && keyRegistry ? storageKey(chainId, keyRegistry) : undefined
  const [grants, setGrants] = useState<StoredGrant[]>(() => (key ? loadGrants(key) : []))
  useEffect(() => {
    if (!key) return
    setGrants(loadGrants(key))
    const onStorage = (event: StorageEvent) => event.key === key && setGrants(loadGrants(key))
    const onLocal = () => setGrants(loadGrants(key))
    window.addEventListener('storage', onStorage)
    window.addEventListener('carchain-grants', onLocal)
    return () => {
      window.removeEventListener('storage', onStorage)
      window.removeEventListener('carchain-grants', onLocal)
    }
  }, [key])
  const add = useCallback(
    (grant: StoredGrant) => {
      if (!key) return
      const next = [grant, ...loadGrants(key)]
      localStorage.setItem(key, JSON.stringify(next))
      setGrants(next)
      window.dispatchEvent(new Event('carchain-grants'))
    },
    [key],
  )
  return { grants, add }
}

/** Where a signed key is kept, after the node was (or was not) asked to keep it too. */
function keptText(kept: { state: string; message?: string } | undefined, nodeNote = ''): string {
  if (kept?.state === 'ok') return `The node keeps it too${nodeNote}.`
  if (kept?.state === 'error')
    return `The node did not keep it (${kept.message}); it is kept in this browser.`
  return 'It is kept in this browser.'
}

function GrantForm(props: { session: Session; vehicles: { vehicle: Address; vin: string }[] }) {
  const { chain } = useNode()
  const info = chain!.info
  const { add } = useStoredGrants(info.chainId, info.contracts.KeyRegistry)
  const [vehicle, setVehicle] = useState<string>('')
  const [grantee, setGrantee] = useState('')
  const [scopes, setScopes] = useState<number>(Scope.UNLOCK | Scope.LOCK)
  const [hours, setHours] = useState(24)
  const [maxUses, setMaxUses] = useState(0)
  const [purpose, setPurpose] = useState('Parcel delivery')
  const [busy, setBusy] = useState(false)
  const [message, setMessage] = useState<{ text: string; link: string; kept: string }>()
  const [problem, setProblem] = useState<WalletProblem>()
  useEffect(() => {
    // A vehicle of the signed-in owner (after a switch of owner, the old choice is not one).
    const first = props.vehicles[0]
    if (first && !props.vehicles.some((v) => v.vehicle === vehicle)) setVehicle(first.vehicle)
  }, [props.vehicles, vehicle])

  /**
   * Keeps a signed key at the node (its mailbox: the grantee fetches it by signing in), when signed
   * in with SIWE, then in this browser: the list re-reads the node once the key is there.
   */
  const keep = async (signed: { grant: AnyGrant; signature: Hex }) => {
    const kept = props.session.siwe.state === 'signed-in' ? await storeGrantWithNode(signed) : undefined
    add({ ...signed, signedAt: Date.now(), signer: props.session.address.toLowerCase() })
    return kept
  }

  const sign = async () => {
    setBusy(true)
    setMessage(undefined)
    setProblem(undefined)
    try {
      if (!/^0x[0-9a-fA-F]{40}$/.test(vehicle)) throw new TypeError('choose a vehicle (an address)')
      const passkey = /^0x04[0-9a-fA-F]{128}$/.test(grantee)
      if (!passkey && !/^0x[0-9a-fA-F]{40}$/.test(grantee))
        throw new TypeError(
          'the grantee must be an address (0x + 40 hex) or a passkey public key from the key app (0x04 + 128 hex)',
        )
      const epoch = await chain!.client.readContract({
        address: info.contracts.KeyRegistry,
        abi: vehicleRegistryAbi,
        functionName: 'epochOf',
        args: [vehicle as Address],
      })
      const now = Math.floor(Date.now() / 1000)
      const fields = {
        vehicle: vehicle.toLowerCase() as Address,
        scopes,
        notBefore: now,
        notAfter: now + Math.round(hours * 3600),
        maxUses,
        epoch: Number(epoch),
        grantId: toHex(crypto.getRandomValues(new Uint8Array(32))),
        purpose,
      }
      const domain = { chainId: info.chainId, keyRegistry: info.contracts.KeyRegistry }
      if (passkey) {
        // A phone key (docs/keys.md "Passkey keys"): the passkey was made in this node's key app,
        // so its RP ID is this page's host name.
        const passkeyGrant: PasskeyGrant = {
          ...fields,
          passkey: grantee.toLowerCase() as Hex,
          rpId: window.location.hostname,
        }
        const signature = await signTypedDataAs(
          props.session,
          chain!,
          passkeyGrantTypedData(domain, passkeyGrant),
        )
        const kept = await keep({ grant: passkeyGrant, signature })
        const link = encodeShareLink(domain, { grant: passkeyGrant, signature })
        setMessage({
          text: `Phone key signed for the passkey ${passkeyFingerprint(passkeyGrant.passkey)}. Send the grantee this key-app address; their passkey opens the car.`,
          link: `${window.location.origin}/#/key/${link.slice(SHARE_LINK_PREFIX.length)}`,
          kept: keptText(kept),
        })
        return
      }
      const grant: KeyGrant = { ...fields, grantee: grantee.toLowerCase() as Address }
      const signature = await signTypedDataAs(props.session, chain!, grantTypedData(domain, grant))
      const kept = await keep({ grant, signature })
      setMessage({
        text: 'Key signed. Give the grantee this link (or the grant file); the car verifies it offline.',
        link: encodeShareLink(domain, { grant, signature }),
        kept: keptText(kept, ': the grantee can fetch it by signing in'),
      })
    } catch (error) {
      setProblem(walletProblem(error, { chainId: info.chainId, address: props.session.address }))
    } finally {
      setBusy(false)
    }
  }

  return (
    <Card title="Grant a key">
      <div className="form-grid">
        <label htmlFor="grant-vehicle">
          Vehicle
          {props.vehicles.length > 0 ? (
            <select
              id="grant-vehicle"
              value={vehicle}
              onChange={(e) => setVehicle(e.target.value)}
              data-testid="grant-vehicle"
            >
              {props.vehicles.map((v) => (
                <option key={v.vehicle} value={v.vehicle}>
                  {v.vin} · {v.vehicle.slice(0, 10)}…
                </option>
              ))}
            </select>
          ) : (
            <input
              id="grant-vehicle"
              placeholder="0x… vehicle address"
              value={vehicle}
              onChange={(e) => setVehicle(e.target.value.trim())}
            />
          )}
        </label>
        <AddressField
          label="Grantee"
          placeholder="0x… an address, or a passkey's public key from the key app (#/key)"
          value={grantee}
          onChange={setGrantee}
          testId="grant-grantee"
        />
        <fieldset className="scopes">
          <legend>May</legend>
          {scopeList.map((name) => (
            <label key={name} className="check">
              <input
                type="checkbox"
                checked={(scopes & Scope[name]) !== 0}
                onChange={(e) => setScopes(e.target.checked ? scopes | Scope[name] : scopes & ~Scope[name])}
              />
              {name.toLowerCase().replace(/_/g, ' ')}
            </label>
          ))}
        </fieldset>
        <label>
          Valid for (hours)
          <input
            type="number"
            min={0.1}
            step={0.5}
            value={hours}
            onChange={(e) => setHours(Number(e.target.value))}
          />
        </label>
        <label>
          Uses (0 = unlimited)
          <input type="number" min={0} value={maxUses} onChange={(e) => setMaxUses(Number(e.target.value))} />
        </label>
        <label>
          Purpose
          <input value={purpose} maxLength={120} onChange={(e) => setPurpose(e.target.value)} />
        </label>
      </div>
      <div className="form-row">
        <button
          type="button"
          className="button"
          onClick={sign}
          disabled={busy || scopes === 0}
          data-testid="grant-sign"
        >
          {busy
            ? props.session.kind === 'wallet'
              ? 'Confirm in your wallet…'
              : 'Signing…'
            : 'Sign key (EIP-712)'}
        </button>
      </div>
      <ProblemAlert problem={problem} session={props.session} />
      {message && (
        <div className="state state-good" role="status" data-testid="grant-signed">
          {message.text} {message.kept}
          <textarea className="share-link" readOnly value={message.link} rows={3} data-testid="share-link" />
        </div>
      )}
    </Card>
  )
}

/**
 * The keys the node keeps for `vehicles` (its mailbox, `GET /v1/vehicles/{vehicle}/grants`) that
 * this account signed, KeyGrants and PasskeyGrants alike: each entry is parsed as a signed grant
 * and its signature recovered, so a node cannot slip in a key the owner never signed. None while
 * the node keeps no grants.
 */
function useNodeGrants(session: Session, vehicles: { vehicle: Address }[], tick: number): StoredGrant[] {
  const { chain } = useNode()
  const [kept, setKept] = useState<StoredGrant[]>([])
  const signedIn = session.siwe.state === 'signed-in'
  const list = vehicles.map((v) => v.vehicle).join(',')
  // biome-ignore lint/correctness/useExhaustiveDependencies: tick re-reads after a new key
  useEffect(() => {
    if (!chain || !signedIn || list === '') return setKept([])
    let live = true
    const domain = { chainId: chain.info.chainId, keyRegistry: chain.info.contracts.KeyRegistry }
    const me = session.address.toLowerCase()
    Promise.all(list.split(',').map((vehicle) => listNodeGrants(vehicle))).then(async (answers) => {
      const out: StoredGrant[] = []
      for (const answer of answers) {
        if (answer.state !== 'ok' || !Array.isArray(answer.data?.grants)) continue
        for (const entry of answer.data.grants.slice(0, 500)) {
          let signed: { grant: AnyGrant; signature: Hex }
          try {
            signed = parseAnySignedGrant(entry)
          } catch {
            continue // not a grant this console understands (a newer kind): not shown
          }
          const signer = await recoverAddress({
            hash: hashGrant(domain, signed.grant),
            signature: signed.signature,
          }).then(
            (a) => a.toLowerCase(),
            () => undefined,
          )
          if (signer === me) out.push({ ...signed, signedAt: 0, signer, kept: 'node' })
        }
      }
      if (live) setKept(out)
    })
    return () => {
      live = false
    }
  }, [chain, signedIn, list, session.address, tick])
  return kept
}

function GrantList(props: { session: Session; vehicles: { vehicle: Address }[] }) {
  const { chain } = useNode()
  const info = chain!.info
  const { grants } = useStoredGrants(info.chainId, info.contracts.KeyRegistry)
  const me = props.session.address.toLowerCase()
  const nodeGrants = useNodeGrants(props.session, props.vehicles, grants.length)
  // Only this account's keys: revoking another owner's key would be refused on chain anyway.
  const local = grants.filter((g) => g.grant.vehicle && g.signature && (g.signer ?? me) === me)
  const keptByNode = new Set(nodeGrants.map((g) => g.grant.grantId))
  const mine = [
    ...local.map((g) => (keptByNode.has(g.grant.grantId) ? { ...g, kept: 'both' as const } : g)),
    ...nodeGrants.filter((g) => !local.some((l) => l.grant.grantId === g.grant.grantId)),
  ]
  const [statuses, setStatuses] = useState<Record<string, GrantStatus>>({})
  const [busy, setBusy] = useState<string>()
  const [problem, setProblem] = useState<WalletProblem>()
  const [tick, setTick] = useState(0)

  // biome-ignore lint/correctness/useExhaustiveDependencies: tick re-reads after a revocation
  useEffect(() => {
    let live = true
    Promise.all(
      mine.map(async (g): Promise<[string, GrantStatus]> => {
        try {
          const [revoked, epoch] = await Promise.all([
            chain!.client.readContract({
              address: info.contracts.KeyRegistry,
              abi: vehicleRegistryAbi,
              functionName: 'isRevoked',
              args: [g.grant.vehicle, g.grant.grantId],
            }),
            chain!.client.readContract({
              address: info.contracts.KeyRegistry,
              abi: vehicleRegistryAbi,
              functionName: 'epochOf',
              args: [g.grant.vehicle],
            }),
          ])
          const now = Date.now() / 1000
          if (revoked) return [g.grant.grantId, 'revoked']
          if (Number(epoch) !== g.grant.epoch) return [g.grant.grantId, 'void']
          if (now > g.grant.notAfter) return [g.grant.grantId, 'expired']
          if (now < g.grant.notBefore) return [g.grant.grantId, 'not yet valid']
          return [g.grant.grantId, 'active']
        } catch {
          return [g.grant.grantId, 'unknown']
        }
      }),
    ).then((entries) => live && setStatuses(Object.fromEntries(entries)))
    return () => {
      live = false
    }
  }, [grants, chain, tick])

  const send = async (id: string, call: 'revoke' | 'revokeAll', g: StoredGrant) => {
    setBusy(id)
    setProblem(undefined)
    try {
      const address = info.contracts.KeyRegistry
      if (call === 'revoke')
        await sendAs(props.session, chain!, {
          address,
          abi: vehicleRegistryAbi,
          functionName: 'revoke',
          args: [g.grant.vehicle, g.grant.grantId],
        })
      else
        await sendAs(props.session, chain!, {
          address,
          abi: vehicleRegistryAbi,
          functionName: 'revokeAll',
          args: [g.grant.vehicle],
        })
      setTick((t) => t + 1)
    } catch (e) {
      setProblem(walletProblem(e, { chainId: info.chainId, address: props.session.address }))
    } finally {
      setBusy(undefined)
    }
  }

  return (
    <Card title="Keys you signed" className="card-table">
      <ProblemAlert problem={problem} session={props.session} />
      {mine.length === 0 ? (
        <Empty>No keys yet. Sign one above; its on-chain status shows here.</Empty>
      ) : (
        <table className="table" data-testid="grants-table">
          <thead>
            <tr>
              <th>Grant</th>
              <th>Vehicle</th>
              <th>Grantee</th>
              <th>Scopes</th>
              <th>Valid until</th>
              <th>Status (on chain)</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {mine.map((g) => {
              const status = statuses[g.grant.grantId] ?? 'unknown'
              return (
                <tr key={g.grant.grantId}>
                  <td>
                    <AddressText value={g.grant.grantId} />
                    <div className="dim">
                      {g.grant.purpose}
                      {g.kept && (
                        <Badge tone="info" title="The node keeps this key for the grantee to fetch">
                          {g.kept === 'node' ? 'node only' : 'node'}
                        </Badge>
                      )}
                    </div>
                  </td>
                  <td>
                    <AddressText value={g.grant.vehicle} />
                  </td>
                  <td>
                    {isPasskeyGrant(g.grant) ? (
                      <span
                        data-testid="grant-passkey"
                        title={`P-256 passkey ${g.grant.passkey} (RP ID ${g.grant.rpId})`}
                      >
                        <Badge tone="info">passkey</Badge> <code>{passkeyFingerprint(g.grant.passkey)}</code>
                      </span>
                    ) : (
                      <AddressText value={g.grant.grantee} />
                    )}
                  </td>
                  <td>{scopeNames(g.grant.scopes).join(', ').toLowerCase()}</td>
                  <td>{new Date(g.grant.notAfter * 1000).toLocaleString()}</td>
                  <td data-testid="grant-status">
                    <Badge tone={status === 'active' ? 'good' : status === 'unknown' ? 'neutral' : 'bad'}>
                      {status}
                    </Badge>
                  </td>
                  <td className="actions">
                    {status === 'active' && (
                      <>
                        <WalletActionButton
                          action={g.grant.grantId}
                          busy={busy}
                          onClick={() => send(g.grant.grantId, 'revoke', g)}
                          tone="danger"
                          compact
                          testId="grant-revoke"
                        >
                          Revoke
                        </WalletActionButton>
                        <WalletActionButton
                          action={`all-${g.grant.grantId}`}
                          busy={busy}
                          onClick={() => send(`all-${g.grant.grantId}`, 'revokeAll', g)}
                          tone="quiet"
                          compact
                          title="KeyRegistry.revokeAll: bumps the vehicle's epoch, voiding every key for it"
                          testId="grant-revoke-all"
                        >
                          Revoke all for vehicle
                        </WalletActionButton>
                      </>
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
