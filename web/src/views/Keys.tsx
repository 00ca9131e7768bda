/**
 * Digital keys: sign in as a demo owner, grant a key with an EIP-712 KeyGrant signature
 * (docs/spec.md "Digital keys"), and revoke it with a KeyRegistry transaction sent from the owner's
 * account — both straight from this browser, the node is not asked to sign anything.
 */
import { useCallback, useEffect, useMemo, useState } from 'react'
import type { Address, Hex } from 'viem'
import { encodeShareLink, SHARE_LINK_PREFIX } from '../../../src/keys/share-link.ts'
import {
  grantTypedData,
  type KeyGrant,
  type PasskeyGrant,
  passkeyGrantTypedData,
  Scope,
  scopeNames,
} from '../../../src/keys/typed-data.ts'
import { type SimVehicle, useApi, type Vehicle } from '../api.ts'
import { vehicleRegistryAbi } from '../chain.ts'
import { Address as AddressText, Badge, Card, Empty } from '../components/ui.tsx'
import { toHex } from '../lib/hex.ts'
import { useNode } from '../node-context.tsx'
import { type Session, signIn, signOut, useSession } from '../session.ts'

/** A key signed here; `signer` is the owner (or manager) account that signed it. */
type StoredGrant = { grant: KeyGrant; signature: Hex; signedAt: number; signer?: string }
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
  const session = useSession()
  const sim = useApi<SimVehicle[]>('/v1/sim/vehicles')
  const vehicles = useApi<{ vehicles: Vehicle[] }>('/v1/vehicles')
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
    const mine = (owner: string) => owner.toLowerCase() === session.account.address.toLowerCase()
    if (vehicles.state === 'ok')
      return vehicles.data.vehicles
        .filter((v) => mine(v.owner))
        .map((v) => ({ vehicle: v.vehicle, vin: v.vin }))
    if (sim.state === 'ok')
      return sim.data.filter((v) => mine(v.owner)).map((v) => ({ vehicle: v.vehicle, vin: v.vin }))
    return []
  }, [session, vehicles, sim])

  return (
    <div className="view" data-testid="keys-view">
      <div className="view-header">
        <div>
          <h1>Digital keys</h1>
          <p className="subtitle">
            Grant a scoped, time-boxed key with an EIP-712 signature; the car checks it offline. Revoke on
            chain.
          </p>
        </div>
      </div>
      <SignInCard owners={owners} simState={sim.state} session={session} />
      {session && chain && (
        <>
          <GrantForm session={session} vehicles={owned} />
          <GrantList session={session} />
        </>
      )}
    </div>
  )
}

function SignInCard(props: {
  owners: { ownerIndex: number; owner: string; count: number }[]
  simState: string
  session: Session | undefined
}) {
  const { chainInfo } = useNode()
  const [index, setIndex] = useState<number>(1)
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<string>()
  useEffect(() => {
    const first = props.owners[0]
    if (first) setIndex(first.ownerIndex)
  }, [props.owners])
  const go = async () => {
    if (chainInfo.state !== 'ok') return
    setBusy(true)
    setError(undefined)
    try {
      await signIn(index, chainInfo.data.chainId)
    } catch (e) {
      setError((e as Error).message)
    } finally {
      setBusy(false)
    }
  }
  const { session } = props
  if (session)
    return (
      <Card
        title="Signed in"
        actions={
          <button type="button" className="button button-quiet" onClick={signOut}>
            Sign out
          </button>
        }
      >
        <div className="signed-in" data-testid="signed-in">
          <span>
            Demo owner #{session.ownerIndex} · <AddressText value={session.account.address} keep={10} />
          </span>
          {session.siwe.state === 'signed-in' ? (
            <Badge tone="good">Sign-In with Ethereum session</Badge>
          ) : (
            <Badge tone="neutral" title={session.siwe.message}>
              {session.siwe.state === 'unavailable' ? 'node sign-in not available' : 'node sign-in failed'}
            </Badge>
          )}
        </div>
      </Card>
    )
  return (
    <Card title="Sign in as a demo owner">
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
        <button type="button" className="button" onClick={go} disabled={busy || chainInfo.state !== 'ok'}>
          {busy ? 'Signing in…' : 'Sign in'}
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
  const [message, setMessage] = useState<{ tone: 'good' | 'bad'; text: string; link?: string }>()
  useEffect(() => {
    // A vehicle of the signed-in owner (after a switch of owner, the old choice is not one).
    const first = props.vehicles[0]
    if (first && !props.vehicles.some((v) => v.vehicle === vehicle)) setVehicle(first.vehicle)
  }, [props.vehicles, vehicle])

  const sign = async () => {
    setBusy(true)
    setMessage(undefined)
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
        const signature = await props.session.account.signTypedData(
          passkeyGrantTypedData(domain, passkeyGrant),
        )
        const link = encodeShareLink(domain, { grant: passkeyGrant, signature })
        setMessage({
          tone: 'good',
          text: 'Phone key signed. Send the grantee this key-app address; their passkey opens the car.',
          link: `${window.location.origin}/#/key/${link.slice(SHARE_LINK_PREFIX.length)}`,
        })
        return
      }
      const grant: KeyGrant = { ...fields, grantee: grantee.toLowerCase() as Address }
      const signature = await props.session.account.signTypedData(grantTypedData(domain, grant))
      const stored = {
        grant,
        signature,
        signedAt: Date.now(),
        signer: props.session.account.address.toLowerCase(),
      }
      add(stored)
      setMessage({
        tone: 'good',
        text: 'Key signed. Give the grantee this link (or the grant file); the car verifies it offline.',
        link: encodeShareLink(domain, { grant, signature }),
      })
    } catch (error) {
      setMessage({ tone: 'bad', text: (error as Error).message.split('\n')[0] ?? 'failed' })
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
        <label>
          Grantee
          <input
            placeholder="0x… an address, or a passkey's public key from the key app (#/key)"
            value={grantee}
            onChange={(e) => setGrantee(e.target.value.trim())}
            data-testid="grant-grantee"
          />
        </label>
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
          {busy ? 'Signing…' : 'Sign key (EIP-712)'}
        </button>
      </div>
      {message && (
        <div className={`state ${message.tone === 'good' ? 'state-good' : 'state-error'}`} role="status">
          {message.text}
          {message.link && (
            <textarea
              className="share-link"
              readOnly
              value={message.link}
              rows={3}
              data-testid="share-link"
            />
          )}
        </div>
      )}
    </Card>
  )
}

function GrantList(props: { session: Session }) {
  const { chain } = useNode()
  const info = chain!.info
  const { grants } = useStoredGrants(info.chainId, info.contracts.KeyRegistry)
  const me = props.session.account.address.toLowerCase()
  // Only this account's keys: revoking another owner's key would be refused on chain anyway.
  const mine = grants.filter((g) => g.grant.vehicle && g.signature && (g.signer ?? me) === me)
  const [statuses, setStatuses] = useState<Record<string, GrantStatus>>({})
  const [busy, setBusy] = useState<string>()
  const [error, setError] = useState<string>()
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
    setError(undefined)
    try {
      const wallet = chain!.wallet(props.session.account)
      const hash =
        call === 'revoke'
          ? await wallet.writeContract({
              address: info.contracts.KeyRegistry,
              abi: vehicleRegistryAbi,
              functionName: 'revoke',
              args: [g.grant.vehicle, g.grant.grantId],
              chain: wallet.chain,
              account: props.session.account,
            })
          : await wallet.writeContract({
              address: info.contracts.KeyRegistry,
              abi: vehicleRegistryAbi,
              functionName: 'revokeAll',
              args: [g.grant.vehicle],
              chain: wallet.chain,
              account: props.session.account,
            })
      const receipt = await chain!.client.waitForTransactionReceipt({ hash })
      if (receipt.status !== 'success') throw new TypeError(`transaction ${hash} reverted`)
      setTick((t) => t + 1)
    } catch (e) {
      setError((e as { shortMessage?: string }).shortMessage ?? (e as Error).message.split('\n')[0])
    } finally {
      setBusy(undefined)
    }
  }

  return (
    <Card title="Keys you signed in this browser" className="card-table">
      {error && (
        <div className="state state-error" role="alert">
          {error}
        </div>
      )}
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
                    <div className="dim">{g.grant.purpose}</div>
                  </td>
                  <td>
                    <AddressText value={g.grant.vehicle} />
                  </td>
                  <td>
                    <AddressText value={g.grant.grantee} />
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
                        <button
                          type="button"
                          className="button button-danger"
                          disabled={busy !== undefined}
                          onClick={() => send(g.grant.grantId, 'revoke', g)}
                          data-testid="grant-revoke"
                        >
                          {busy === g.grant.grantId ? 'Revoking…' : 'Revoke'}
                        </button>
                        <button
                          type="button"
                          className="button button-quiet"
                          disabled={busy !== undefined}
                          title="KeyRegistry.revokeAll: bumps the vehicle's epoch, voiding every key for it"
                          onClick={() => send(`all-${g.grant.grantId}`, 'revokeAll', g)}
                        >
                          Revoke all for vehicle
                        </button>
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
