/**
 * Passkey keys over the car's link (docs/keys.md "Passkey keys"): a PasskeyGrant names a P-256
 * key; the phone answers each challenge with a WebAuthn assertion; the car checks it offline with
 * every check it makes for address keys. Each check has its attack: replayed, tampered, wrong
 * origin, wrong RP ID, wrong type, counter rollback, user not present — and an old car refuses the
 * new grant instead of misreading it.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import type { Address } from 'viem'
import { BaseError } from '../errors.ts'
import { AccessController } from './access-control.ts'
import { issuePasskeyGrant } from './grant.ts'
import { buildPasskeyRequest, LinkClient } from './link-client.ts'
import { parseRequestMessage } from './link-protocol.ts'
import { LinkServer } from './link-server.ts'
import { FilePasskeyCounters, originAllowed, type PasskeyPolicy, PasskeyVerifier } from './passkey.ts'
import { MemoryAccessRecorder } from './recorder.ts'
import { aGrant, FakeKeyState, type SoftAssertionOverrides, SoftPasskey, testAccount } from './testing.ts'
import { type KeyDomain, parseGrant, Scope, type SignedPasskeyGrant } from './typed-data.ts'
import { MemoryUseCounter } from './use-counter.ts'

const domain: KeyDomain = { chainId: 31337, keyRegistry: '0xe7f1725e7734ce288f8367e1bb143e90bb3f0512' }
const vehicle = '0x00000000000000000000000000000000000c0de3' as Address
const owner = testAccount(1)
const stranger = testAccount(3)

async function car(options: { relayBoundMs?: number; passkeys?: PasskeyPolicy } = {}) {
  const state = new FakeKeyState()
  state.owner = owner.address.toLowerCase() as Address
  const controller = new AccessController({
    vehicle,
    domain,
    state,
    uses: new MemoryUseCounter(),
    passkeys: options.passkeys,
  })
  const recorder = new MemoryAccessRecorder(vehicle)
  const acted: number[] = []
  const server = new LinkServer({
    vehicle,
    controller,
    recorder,
    relayBoundMs: options.relayBoundMs,
    challengeTtlMs: Math.max(options.relayBoundMs ?? 0, 5000),
    onGranted: (decision) => {
      acted.push(decision.action)
    },
  })
  const url = await server.listen()
  const client = await LinkClient.connect(url)
  return {
    server,
    client,
    state,
    recorder,
    acted,
    close: async () => {
      client.close()
      await server.close()
    },
  }
}

function phoneKey(passkey: SoftPasskey, parameters: Partial<Parameters<typeof issuePasskeyGrant>[0]> = {}) {
  const nowSec = Math.floor(Date.now() / 1000)
  return issuePasskeyGrant({
    signer: owner,
    domain,
    vehicle,
    passkey: passkey.publicKey,
    rpId: passkey.rpId,
    scopes: Scope.UNLOCK | Scope.LOCK | Scope.OPEN_TRUNK,
    notBefore: nowSec - 60,
    notAfter: nowSec + 3600,
    epoch: 0,
    purpose: 'phone key',
    ...parameters,
  })
}

/** One attempt: the car's challenge, the passkey's assertion over it, the car's answer. */
async function unlock(
  client: LinkClient,
  grant: SignedPasskeyGrant,
  passkey: SoftPasskey,
  overrides: SoftAssertionOverrides = {},
  action: number = Scope.UNLOCK,
) {
  const { challenge } = await client.challenge()
  const request = await buildPasskeyRequest({
    domain,
    grant,
    action,
    challenge,
    authenticate: (webauthnChallenge) => passkey.assert(webauthnChallenge, overrides),
  })
  client.send(request)
  return { code: (await client.result()).code, request }
}

describe('passkey keys', () => {
  test('a passkey opens the car; the event names the key; an authenticator without a counter works', async (t) => {
    const { client, recorder, acted, close } = await car()
    t.after(close)
    const passkey = new SoftPasskey()
    const grant = await phoneKey(passkey)
    assert.equal((await unlock(client, grant, passkey)).code, 'OK')
    assert.equal((await unlock(client, grant, passkey, {}, Scope.OPEN_TRUNK)).code, 'OK')
    assert.deepEqual(acted, [Scope.UNLOCK, Scope.OPEN_TRUNK])
    const used = recorder.events.find((e) => e.envelope.kind === 'access.used')!
    assert.equal((used.payload.data as { subject: string }).subject, passkey.publicKey)

    const counterless = new SoftPasskey({ counter: null })
    const other = await phoneKey(counterless)
    assert.equal((await unlock(client, other, counterless)).code, 'OK')
    assert.equal((await unlock(client, other, counterless)).code, 'OK')
  })

  test('attacks on the assertion are refused, each with its code, and the car does not act', async (t) => {
    const { client, acted, close } = await car()
    t.after(close)
    const passkey = new SoftPasskey({ counter: 10 })
    const grant = await phoneKey(passkey)
    const cases: [string, SoftAssertionOverrides, string][] = [
      ['wrong origin', { origin: 'https://evil.example' }, 'PASSKEY_ORIGIN'],
      ['a look-alike origin', { origin: 'http://localhost.evil.example' }, 'PASSKEY_ORIGIN'],
      ['framed cross-origin', { crossOrigin: true }, 'PASSKEY_ORIGIN'],
      ['wrong RP ID', { rpId: 'evil.example' }, 'PASSKEY_RP_MISMATCH'],
      ['wrong type', { type: 'webauthn.create' }, 'PASSKEY_CLIENT_DATA'],
      ['user not present', { flags: 0x04 }, 'PASSKEY_USER_ABSENT'],
      ['user not verified', { flags: 0x01 }, 'PASSKEY_USER_ABSENT'],
      ['another key signs', { signWith: new SoftPasskey().secretKey }, 'REQUEST_BAD_SIGNATURE'],
    ]
    for (const [name, overrides, code] of cases)
      assert.equal((await unlock(client, grant, passkey, overrides)).code, code, name)
    assert.deepEqual(acted, [])

    // counter: it must go up once the authenticator counts
    assert.equal((await unlock(client, grant, passkey, { counter: 50 })).code, 'OK')
    assert.equal(
      (await unlock(client, grant, passkey, { counter: 50 })).code,
      'PASSKEY_COUNTER',
      'same counter',
    )
    assert.equal((await unlock(client, grant, passkey, { counter: 12 })).code, 'PASSKEY_COUNTER', 'rollback')
    assert.equal(
      (await unlock(client, grant, passkey, { counter: 0 })).code,
      'PASSKEY_COUNTER',
      'stopped counting',
    )
    assert.equal((await unlock(client, grant, passkey, { counter: 51 })).code, 'OK')
    assert.deepEqual(acted, [Scope.UNLOCK, Scope.UNLOCK])
  })

  test('replayed and tampered requests are refused', async (t) => {
    const { client, acted, close } = await car()
    t.after(close)
    const passkey = new SoftPasskey()
    const grant = await phoneKey(passkey)
    const granted = await unlock(client, grant, passkey)
    assert.equal(granted.code, 'OK')
    // the same frame again, over the next challenge: a replay of a used one
    await client.challenge()
    client.send(granted.request)
    assert.equal((await client.result()).code, 'CHALLENGE_UNKNOWN')

    // tampered: the action changed after the assertion; a byte of the authenticator data; the
    // client data's origin rewritten; the grant's scopes widened
    const tamper = async (change: (request: typeof granted.request) => void) => {
      const { challenge } = await client.challenge()
      const request = await buildPasskeyRequest({
        domain,
        grant,
        action: Scope.UNLOCK,
        challenge,
        authenticate: (c) => passkey.assert(c),
      })
      change(request)
      client.send(request)
      return (await client.result()).code
    }
    assert.equal(
      await tamper((r) => {
        r.action = Scope.OPEN_TRUNK
      }),
      'REQUEST_BAD_SIGNATURE',
    )
    assert.equal(
      await tamper((r) => {
        const data = Buffer.from(r.assertion.authenticatorData, 'base64url')
        data[36] = (data[36]! + 1) & 0xff
        r.assertion.authenticatorData = data.toString('base64url')
      }),
      'REQUEST_BAD_SIGNATURE',
    )
    assert.equal(
      await tamper((r) => {
        const json = JSON.parse(Buffer.from(r.assertion.clientDataJSON, 'base64url').toString())
        json.origin = 'http://localhost:9999'
        r.assertion.clientDataJSON = Buffer.from(JSON.stringify(json)).toString('base64url')
      }),
      'REQUEST_BAD_SIGNATURE',
    )
    assert.equal(
      await tamper((r) => {
        r.grant = { ...r.grant, scopes: r.grant.scopes | Scope.START }
      }),
      'GRANT_BAD_SIGNATURE',
    )
    assert.deepEqual(acted, [Scope.UNLOCK])
  })

  test('every check of an address key applies unchanged: scope, time, uses, revocation, signer, relay bound', async (t) => {
    const { client, state, acted, close } = await car()
    t.after(close)
    const passkey = new SoftPasskey()
    const nowSec = Math.floor(Date.now() / 1000)
    const once = await phoneKey(passkey, { maxUses: 1, scopes: Scope.OPEN_TRUNK })
    assert.equal((await unlock(client, once, passkey, {}, Scope.UNLOCK)).code, 'GRANT_SCOPE')
    assert.equal((await unlock(client, once, passkey, {}, Scope.OPEN_TRUNK)).code, 'OK')
    assert.equal((await unlock(client, once, passkey, {}, Scope.OPEN_TRUNK)).code, 'GRANT_USED_UP')
    const late = await phoneKey(passkey, { notBefore: nowSec - 7200, notAfter: nowSec - 3600 })
    assert.equal((await unlock(client, late, passkey)).code, 'GRANT_EXPIRED')
    const revoked = await phoneKey(passkey)
    state.revoked.add(revoked.grant.grantId)
    assert.equal((await unlock(client, revoked, passkey)).code, 'GRANT_REVOKED')
    const foreign = await issuePasskeyGrant({
      signer: stranger,
      domain,
      vehicle,
      passkey: passkey.publicKey,
      rpId: 'localhost',
      scopes: Scope.UNLOCK,
      notAfter: nowSec + 60,
      epoch: 0,
    })
    assert.equal((await unlock(client, foreign, passkey)).code, 'GRANT_BAD_SIGNATURE')
    const oldEpoch = await phoneKey(passkey, { epoch: 1 })
    assert.equal((await unlock(client, oldEpoch, passkey)).code, 'GRANT_EPOCH')
    assert.deepEqual(acted, [Scope.OPEN_TRUNK])

    const slow = await car({ relayBoundMs: 50 })
    t.after(slow.close)
    const grant = await phoneKey(passkey)
    const { challenge } = await slow.client.challenge()
    const request = await buildPasskeyRequest({
      domain,
      grant,
      action: Scope.UNLOCK,
      challenge,
      authenticate: async (c) => {
        await new Promise((resolve) => setTimeout(resolve, 120)) // a relay's extra round trip
        return passkey.assert(c)
      },
    })
    slow.client.send(request)
    assert.equal((await slow.client.result()).code, 'CHALLENGE_EXPIRED')
    assert.deepEqual(slow.acted, [])
  })

  test('policy: user verification can be waived; an explicit origin allow-list replaces the default', async (t) => {
    const relaxed = await car({
      passkeys: { requireUserVerification: false, origins: ['https://keys.example.com'] },
    })
    t.after(relaxed.close)
    const passkey = new SoftPasskey({ rpId: 'example.com', origin: 'https://keys.example.com' })
    const grant = await phoneKey(passkey)
    assert.equal((await unlock(relaxed.client, grant, passkey, { flags: 0x01 })).code, 'OK')
    assert.equal(
      (await unlock(relaxed.client, grant, passkey, { origin: 'https://other.example.com' })).code,
      'PASSKEY_ORIGIN',
    )
    assert.equal(originAllowed('https://keys.example.com', 'example.com', {}), true)
    assert.equal(originAllowed('https://example.com:8443', 'example.com', {}), true)
    assert.equal(originAllowed('http://keys.example.com', 'example.com', {}), false)
    assert.equal(originAllowed('https://badexample.com', 'example.com', {}), false)
    assert.equal(originAllowed('https://keys.example.com/path', 'example.com', {}), false)
    assert.equal(originAllowed('http://localhost:5173', 'localhost', {}), true)
    assert.equal(originAllowed('http://127.0.0.1:5173', 'localhost', {}), false)
  })

  test('malformed passkey requests are INVALID_ARGUMENT; an old car refuses a passkey grant rather than misread it', async () => {
    const passkey = new SoftPasskey()
    const grant = await phoneKey(passkey)
    const request = await buildPasskeyRequest({
      domain,
      grant,
      action: Scope.UNLOCK,
      challenge: `0x${'11'.repeat(32)}`,
      authenticate: (c) => passkey.assert(c),
    })
    const address = await aGrant({ signer: owner, domain, vehicle, grantee: stranger.address })
    const invalid = (frame: unknown) =>
      assert.throws(
        () => parseRequestMessage(JSON.stringify(frame)),
        (error: unknown) => error instanceof BaseError && error.code === 'INVALID_ARGUMENT',
      )
    invalid({ ...request, signature: `0x${'00'.repeat(65)}` }) // both kinds of proof
    invalid({ ...request, assertion: undefined, signature: `0x${'00'.repeat(65)}` }) // a signature for a passkey grant
    invalid({ ...request, grant: address.grant, grantSignature: address.signature }) // an assertion for an address grant
    invalid({ ...request, assertion: { ...request.assertion, signature: 'not base64url!' } })
    invalid({ ...request, assertion: { ...request.assertion, signature: 'A'.repeat(200) } })
    invalid({ ...request, assertion: { ...request.assertion, extra: 1 } })
    invalid({ ...request, grant: { ...request.grant, rpId: 'https://localhost' } })
    invalid({ ...request, grant: { ...request.grant, passkey: `0x02${'11'.repeat(32)}` } })
    invalid({ ...request, grant: { ...request.grant, grantee: stranger.address } })
    assert.deepEqual(parseRequestMessage(JSON.stringify(request)).grant?.grant, grant.grant)

    // A car that knows only KeyGrant reads the grant with the nine-field parser and the request's
    // `signature`: both refuse, with INVALID_ARGUMENT, before any check could misread the grant.
    assert.throws(() => parseGrant(grant.grant), /exactly the fields/)
  })

  test('counters survive a restart of the car (passkey-counters.json); a corrupt file is refused', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'carchain-passkey-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const passkey = new SoftPasskey()
    const { grant } = await phoneKey(passkey)
    const answer = (verifier: PasskeyVerifier, counter: number) => {
      const challenge = Buffer.alloc(32, counter).toString('base64url')
      const wire = passkey.assert(challenge, { counter })
      return verifier.verify(
        grant,
        {
          authenticatorData: Buffer.from(wire.authenticatorData, 'base64url'),
          clientDataJSON: Buffer.from(wire.clientDataJSON, 'base64url'),
          signature: Buffer.from(wire.signature, 'base64url'),
        },
        { current: challenge, past: () => [] },
      )
    }
    const before = new FilePasskeyCounters(dir)
    assert.equal(answer(new PasskeyVerifier({ counters: before }), 7), 'OK')
    before.flush()
    const restarted = new PasskeyVerifier({ counters: new FilePasskeyCounters(dir) })
    assert.equal(restarted.counter(passkey.publicKey), 7)
    assert.equal(answer(restarted, 7), 'PASSKEY_COUNTER')
    assert.equal(answer(restarted, 8), 'OK')
    writeFileSync(join(dir, 'passkey-counters.json'), '{not json')
    assert.throws(() => new FilePasskeyCounters(dir), /passkey counter file/)
  })
})
