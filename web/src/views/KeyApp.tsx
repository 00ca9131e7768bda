/**
 * The key app (`#/key`, or `#/key/<payload of a carchain-key: link>`): the grantee's page, made
 * for a phone and installable (manifest + service worker). It shows what a key allows and until
 * when, makes or picks this phone's passkey, and unlocks, locks or opens the trunk with one tap
 * over the car's link (through the node's relay to the demo cars), showing the car's answer in
 * plain words. The demo's parcel agent and renter can be played from it with their development
 * accounts (public test keys).
 */
import { useEffect, useMemo, useState } from 'react'
import type { HDAccount } from 'viem/accounts'
import { type ErrorCode, errorCodes } from '../../../src/errors.ts'
import {
  decodeShareLink,
  SHARE_LINK_PREFIX,
  type SharedKey,
  toBase64Url,
} from '../../../src/keys/share-link.ts'
import {
  type AnyGrant,
  accessRequestTypedData,
  hashAccessRequest,
  isPasskeyGrant,
  type KeyDomain,
  passkeyFingerprint,
  Scope,
  scopeNames,
  ZERO_GRANT_ID,
} from '../../../src/keys/typed-data.ts'
import { callApi, type Hex, type SimVehicle } from '../api.ts'
import { demoOwner } from '../chain.ts'
import { fromHex } from '../lib/hex.ts'
import { attempt, type CarChallenge, type CarResult } from '../lib/link.ts'
import { assertWithPasskey, createPasskey, loadPasskeys, type StoredPasskey } from '../lib/passkeys.ts'
import { useNode } from '../node-context.tsx'
import { signIn } from '../session.ts'

const PARCEL_AGENT = 8
const RENTER = 9

const actionWords: Record<number, string> = {
  [Scope.UNLOCK]: 'Unlock',
  [Scope.LOCK]: 'Lock',
  [Scope.OPEN_TRUNK]: 'Open trunk',
  [Scope.START]: 'Start',
  [Scope.OPEN_CHARGE_PORT]: 'Open charge port',
}
const tapActions = [Scope.UNLOCK, Scope.LOCK, Scope.OPEN_TRUNK] as const

/** The car's answer in plain words. */
export function answerWords(result: CarResult, action: number): string {
  if (result.ok) return `Granted: ${actionWords[action]?.toLowerCase() ?? 'done'}.`
  const code = result.code as ErrorCode
  const plain: Partial<Record<ErrorCode, string>> = {
    CHALLENGE_EXPIRED: 'Too slow: the answer reached the car too late. Stand by the car and tap again.',
    GRANT_EXPIRED: 'This key has expired.',
    GRANT_USED_UP: 'This key has no uses left.',
    GRANT_REVOKED: 'The owner revoked this key.',
    GRANT_SCOPE: 'This key does not allow that.',
  }
  return `Refused (${code}): ${plain[code] ?? errorCodes[code]?.summary ?? 'the car said no.'}`
}

function when(sec: number): string {
  return new Date(sec * 1000).toLocaleString()
}

/** The key link in the page's address (`#/key/<payload>`), if any. */
function linkFromHash(): string | undefined {
  const payload = window.location.hash.replace(/^#\/?key\/?/, '')
  return payload ? SHARE_LINK_PREFIX + decodeURIComponent(payload) : undefined
}

type Status = { tone: 'good' | 'bad' | 'busy'; text: string }

export function KeyApp() {
  const [text, setText] = useState(() => linkFromHash() ?? '')
  const [key, setKey] = useState<SharedKey>()
  const [keyError, setKeyError] = useState<string>()
  const [passkeys, setPasskeys] = useState<StoredPasskey[]>(loadPasskeys)
  const [status, setStatus] = useState<Status>()
  useEffect(() => {
    // Installable and opening offline: the service worker (web/public/sw.js) keeps the page.
    navigator.serviceWorker?.register('/sw.js').then(
      () => undefined,
      (error: Error) => console.warn('the key app works without its service worker:', error.message),
    )
    document.title = 'Carchain key'
  }, [])
  useEffect(() => {
    const onHash = () => {
      const link = linkFromHash()
      if (link) setText(link)
    }
    window.addEventListener('hashchange', onHash)
    return () => window.removeEventListener('hashchange', onHash)
  }, [])
  useEffect(() => {
    if (!text.trim()) {
      setKey(undefined)
      setKeyError(undefined)
      return
    }
    try {
      setKey(decodeShareLink(text))
      setKeyError(undefined)
    } catch (error) {
      setKey(undefined)
      setKeyError((error as Error).message)
    }
  }, [text])
  const mine =
    key && isPasskeyGrant(key.grant)
      ? passkeys.find((p) => p.publicKey === (key.grant as { passkey: string }).passkey)
      : undefined

  const make = async () => {
    setStatus({ tone: 'busy', text: 'Making a passkey…' })
    try {
      const made = await createPasskey(`Carchain key ${passkeys.length + 1}`)
      setPasskeys(loadPasskeys())
      setStatus({ tone: 'good', text: `Passkey made. Send its public key to the owner: ${made.publicKey}` })
    } catch (error) {
      setStatus({ tone: 'bad', text: (error as Error).message })
    }
  }

  const tap = async (action: number) => {
    if (!key || !isPasskeyGrant(key.grant) || !mine) return
    const grant = key.grant
    const domain: KeyDomain = { chainId: key.chainId, keyRegistry: key.keyRegistry }
    setStatus({ tone: 'busy', text: `${actionWords[action]}: asking the car…` })
    try {
      const result = await attempt(grant.vehicle, async (challenge: CarChallenge) => {
        const hash = hashAccessRequest(domain, {
          grantId: grant.grantId,
          action,
          challenge: challenge.challenge,
        })
        const assertion = await assertWithPasskey(mine, toBase64Url(fromHex(hash)!))
        return { type: 'request', grant, grantSignature: key.signature, action, assertion }
      })
      setStatus({ tone: result.ok ? 'good' : 'bad', text: answerWords(result, action) })
    } catch (error) {
      setStatus({ tone: 'bad', text: (error as Error).message })
    }
  }

  return (
    <div className="key-app" data-testid="key-app">
      <header className="key-app-header">
        <h1>Carchain key</h1>
        <p>Your phone is the key: the car checks it itself, offline.</p>
      </header>

      <section className="key-card">
        <h2>This phone's passkey</h2>
        {passkeys.length === 0 ? (
          <p className="muted">No passkey yet. Make one, then send its public key to the car's owner.</p>
        ) : (
          <ul className="key-passkeys">
            {passkeys.map((p) => (
              <li key={p.id}>
                <strong>{p.name}</strong> · {p.rpId} ·{' '}
                <span title="Fingerprint: the owner's console shows the same beside the key it signed">
                  <code data-testid="passkey-fingerprint">{passkeyFingerprint(p.publicKey as Hex)}</code>
                </span>
                {mine?.id === p.id && <span className="key-pill">this key's</span>}
                <code className="key-public" data-testid="passkey-public">
                  {p.publicKey}
                </code>
              </li>
            ))}
          </ul>
        )}
        <button type="button" className="button" onClick={make} data-testid="passkey-create">
          Make a passkey
        </button>
      </section>

      <section className="key-card">
        <h2>Key</h2>
        <textarea
          className="key-link"
          rows={3}
          placeholder="carchain-key:… (open the link or scan the QR code)"
          value={text}
          onChange={(e) => setText(e.target.value.trim())}
          data-testid="key-link-input"
        />
        {keyError && <p className="state state-error">{keyError}</p>}
        {key && <KeySummary grant={key.grant} />}
        {key && isPasskeyGrant(key.grant) && !mine && (
          <p className="state state-error">This key is for another passkey, not one made on this phone.</p>
        )}
        {key && !isPasskeyGrant(key.grant) && (
          <p className="muted">
            This key is for an Ethereum account: play it below if it is a demo account's.
          </p>
        )}
        {key && isPasskeyGrant(key.grant) && mine && (
          <div className="key-actions">
            {tapActions.map((action) => (
              <button
                key={action}
                type="button"
                className="button key-action"
                disabled={(key.grant.scopes & action) === 0 || status?.tone === 'busy'}
                onClick={() => tap(action)}
                data-testid={`key-${scopeNames(action)[0]!.toLowerCase()}`}
              >
                {actionWords[action]}
              </button>
            ))}
          </div>
        )}
      </section>

      {status && (
        <p
          className={`key-status state ${status.tone === 'good' ? 'state-good' : status.tone === 'bad' ? 'state-error' : ''}`}
          role="status"
          data-testid="key-status"
        >
          {status.text}
        </p>
      )}

      <DemoRoles onStatus={setStatus} />
    </div>
  )
}

function KeySummary(props: { grant: AnyGrant }) {
  const { grant } = props
  const nowSec = Date.now() / 1000
  return (
    <dl className="key-summary" data-testid="key-summary">
      <dt>Car</dt>
      <dd>
        <code>{grant.vehicle}</code>
      </dd>
      <dt>Allows</dt>
      <dd>
        {scopeNames(grant.scopes)
          .map((name) => actionWords[Scope[name]])
          .join(', ')}
      </dd>
      <dt>Valid</dt>
      <dd>
        {when(grant.notBefore)} – {when(grant.notAfter)}
        {nowSec > grant.notAfter ? ' (expired)' : nowSec < grant.notBefore ? ' (not yet)' : ''}
      </dd>
      <dt>Uses</dt>
      <dd>{grant.maxUses === 0 ? 'unlimited' : `${grant.maxUses} in all`}</dd>
      {grant.purpose && (
        <>
          <dt>For</dt>
          <dd>{grant.purpose}</dd>
        </>
      )}
    </dl>
  )
}

type DemoGrant = { grant: AnyGrant; signature: Hex; status: string }

/** The demo's parcel agent (account 8, keys from the node's mailbox) and renter (account 9). */
function DemoRoles(props: { onStatus: (status: Status) => void }) {
  const { chainInfo } = useNode()
  const [role, setRole] = useState<'parcel' | 'renter'>()
  const [grants, setGrants] = useState<DemoGrant[]>()
  const [cars, setCars] = useState<SimVehicle[]>()
  const account = useMemo<HDAccount | undefined>(
    () => (role ? demoOwner(role === 'parcel' ? PARCEL_AGENT : RENTER) : undefined),
    [role],
  )
  if (chainInfo.state !== 'ok') return null
  const domain: KeyDomain = {
    chainId: chainInfo.data.chainId,
    keyRegistry: chainInfo.data.contracts.KeyRegistry,
  }

  const play = async (next: 'parcel' | 'renter') => {
    setRole(next)
    props.onStatus({ tone: 'busy', text: 'Signing in…' })
    if (next === 'parcel') {
      await signIn(PARCEL_AGENT, domain.chainId)
      const answer = await callApi<{ grants: DemoGrant[] }>('/v1/grants')
      setGrants(answer.state === 'ok' ? answer.data.grants : [])
    } else {
      const answer = await callApi<SimVehicle[]>('/v1/sim/vehicles')
      setCars(answer.state === 'ok' ? answer.data : [])
    }
    props.onStatus({
      tone: 'good',
      text: next === 'parcel' ? 'Signed in as the parcel agent.' : 'Playing the renter.',
    })
  }

  const use = async (vehicle: string, grant: DemoGrant | null, action: number) => {
    if (!account) return
    props.onStatus({ tone: 'busy', text: `${actionWords[action]}: asking the car…` })
    try {
      const result = await attempt(vehicle, async (challenge) => {
        const grantId = grant?.grant.grantId ?? ZERO_GRANT_ID
        const signature = await account.signTypedData(
          accessRequestTypedData(domain, { grantId, action, challenge: challenge.challenge }),
        )
        return {
          type: 'request',
          grant: grant?.grant ?? null,
          grantSignature: grant?.signature ?? null,
          action,
          signature,
        }
      })
      props.onStatus({ tone: result.ok ? 'good' : 'bad', text: answerWords(result, action) })
    } catch (error) {
      props.onStatus({ tone: 'bad', text: (error as Error).message })
    }
  }

  return (
    <section className="key-card">
      <h2>Demo roles</h2>
      <p className="muted">The demo's parcel agent and renter use public development accounts: demo only.</p>
      <div className="key-actions">
        <button
          type="button"
          className="button button-quiet"
          onClick={() => play('parcel')}
          data-testid="demo-parcel"
        >
          Parcel agent (#{PARCEL_AGENT})
        </button>
        <button
          type="button"
          className="button button-quiet"
          onClick={() => play('renter')}
          data-testid="demo-renter"
        >
          Renter (#{RENTER})
        </button>
      </div>
      {role === 'parcel' && grants && (
        <ul className="key-passkeys">
          {grants.length === 0 && (
            <li className="muted">No keys made out to the parcel agent at this node.</li>
          )}
          {grants.map((g) => (
            <li key={g.grant.grantId}>
              {g.grant.purpose || 'key'} · {g.status}
              <div className="key-actions">
                {tapActions
                  .filter((action) => (g.grant.scopes & action) !== 0)
                  .map((action) => (
                    <button
                      key={action}
                      type="button"
                      className="button"
                      onClick={() => use(g.grant.vehicle, g, action)}
                    >
                      {actionWords[action]}
                    </button>
                  ))}
              </div>
            </li>
          ))}
        </ul>
      )}
      {role === 'renter' && cars && (
        <ul className="key-passkeys">
          {cars.map((car) => (
            <li key={car.vehicle}>
              {car.vin}
              <div className="key-actions">
                {[Scope.UNLOCK, Scope.LOCK].map((action) => (
                  <button
                    key={action}
                    type="button"
                    className="button"
                    onClick={() => use(car.vehicle, null, action)}
                  >
                    {actionWords[action]}
                  </button>
                ))}
              </div>
            </li>
          ))}
        </ul>
      )}
    </section>
  )
}
