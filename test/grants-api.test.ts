/**
 * Key grants kept by the node (docs/api.md "Key grants"), on a real node, chain and database
 * (PGlite; PostgreSQL too when DATABASE_URL is set): an owner stores the grants it signs and lists
 * them with their status now (revoked on chain, used by the car's recorded events, expired); a
 * grantee signs in and fetches the grants made out to it. The node is a mailbox: it refuses a
 * grant signed by someone else, tampered with, for another vehicle, or stored by a stranger, and
 * shows nobody else's grants.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { connectChain, developmentAccount } from '../src/chain/clients.ts'
import { loadConfig } from '../src/config.ts'
import { issuePasskeyGrant } from '../src/keys/grant.ts'
import { revokeGrant } from '../src/keys/registry.ts'
import { aGrant } from '../src/keys/testing.ts'
import { type KeyDomain, Scope } from '../src/keys/typed-data.ts'
import { createBatch } from '../src/ledger/batch.ts'
import { type RunningNode, startNode } from '../src/node/up.ts'
import { engines, freshSchema } from './database.ts'
import { type SeededFleet, seedFleet } from './fleet-fixture.ts'
import { call as jsonCall, signIn as siweSignIn } from './reliability/harness.ts'

const owner = developmentAccount(1)
const stranger = developmentAccount(2)
const courier = developmentAccount(7)

for (const engine of engines) {
  describe(`key grants at the node (${engine})`, () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'carchain-grants-'))
    let node: RunningNode
    let fleet: SeededFleet
    let vehicle: `0x${string}`
    let domain: KeyDomain
    let dropSchema: (() => Promise<void>) | undefined

    before(async () => {
      const database = engine === 'postgres' ? await freshSchema() : undefined
      dropSchema = database?.drop
      node = await startNode({
        config: loadConfig({
          flags: { data: dataDir, port: 0, noSim: true, ...(database ? { database: database.url } : {}) },
          env: { CARCHAIN_ANCHOR_INTERVAL_MS: '3600000' },
        }),
      })
      fleet = await seedFleet(node, 1)
      vehicle = fleet.cars[0]!.vehicle
      domain = { chainId: node.chain.chainId, keyRegistry: node.chain.contracts.KeyRegistry as `0x${string}` }
    })

    after(async () => {
      await fleet?.cleanup()
      await node?.stop()
      await dropSchema?.()
      rmSync(dataDir, { recursive: true, force: true })
    })

    const api = (path: string, init: Parameters<typeof jsonCall>[1] = {}) =>
      jsonCall(`${node.url}${path}`, { method: 'GET', ...init })

    async function signIn(account: ReturnType<typeof developmentAccount>): Promise<string> {
      const { answer, token } = await siweSignIn(node.url, node.chain.chainId, account)
      assert.equal(answer.status, 200, JSON.stringify(answer.body))
      return token!
    }

    test('an owner stores, lists and removes grants; the grantee fetches its own; statuses follow the chain and the car', async () => {
      const ownerToken = await signIn(owner)
      const courierToken = await signIn(courier)
      const parcel = await aGrant({
        signer: owner,
        domain,
        vehicle,
        grantee: courier.address,
        scopes: Scope.OPEN_TRUNK,
        maxUses: 1,
        purpose: 'parcel DHL-1',
      })
      const family = await aGrant({ signer: owner, domain, vehicle, grantee: courier.address })
      const expired = await aGrant({
        signer: owner,
        domain,
        vehicle,
        grantee: stranger.address,
        notBefore: 1_000,
        notAfter: 2_000,
      })
      const phone = await issuePasskeyGrant({
        signer: owner,
        domain,
        vehicle,
        passkey: `0x04${'11'.repeat(64)}`,
        rpId: 'localhost',
        scopes: Scope.UNLOCK,
        notAfter: Math.floor(Date.now() / 1000) + 3600,
        epoch: 0,
        purpose: 'phone key',
      })
      for (const signed of [parcel, family, expired, phone]) {
        const stored = await api(`/v1/vehicles/${vehicle}/grants`, {
          method: 'POST',
          json: signed,
          token: ownerToken,
        })
        assert.equal(stored.status, 201, JSON.stringify(stored.body))
        assert.equal(stored.body.signer, owner.address)
        assert.deepEqual(stored.body.grant, signed.grant)
      }
      // The same signed grant again is idempotent.
      const again = await api(`/v1/vehicles/${vehicle}/grants`, {
        method: 'POST',
        json: family,
        token: ownerToken,
      })
      assert.equal(again.status, 201)

      // The car used the parcel key once (its access.used event in the ledger); the owner
      // revokes the family key on chain.
      const car = fleet.cars[0]!
      const used = car.chain.append({
        kind: 'access.used',
        time: Date.now(),
        data: { action: 'OPEN_TRUNK', grantId: parcel.grant.grantId, maxUses: 1, uses: 1 } as never,
      })
      const upload = await fetch(`${node.url}/v1/vehicles/${vehicle}/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(await createBatch({ events: [used], signer: { sign: car.sign } })),
      })
      assert.equal(upload.status, 200, await upload.text())
      const clients = await connectChain({ rpcUrl: node.chain.rpcUrl, account: owner })
      await revokeGrant(clients, { keyRegistry: domain.keyRegistry, vehicle, grantId: family.grant.grantId })

      const listed = await api(`/v1/vehicles/${vehicle}/grants`, { token: ownerToken })
      assert.equal(listed.status, 200, JSON.stringify(listed.body))
      const status = (grantId: string) =>
        listed.body.grants.find((g: { grant: { grantId: string } }) => g.grant.grantId === grantId)
      assert.equal(listed.body.grants.length, 4)
      assert.deepEqual(
        { status: status(parcel.grant.grantId).status, uses: status(parcel.grant.grantId).uses },
        { status: 'used', uses: 1 },
      )
      assert.equal(status(family.grant.grantId).status, 'revoked')
      assert.equal(status(expired.grant.grantId).status, 'expired')
      assert.equal(status(phone.grant.grantId).status, 'active')
      assert.equal(status(phone.grant.grantId).grant.passkey, phone.grant.passkey)

      // The courier sees the two grants made out to it, nobody else's.
      const mine = await api('/v1/grants', { token: courierToken })
      assert.equal(mine.status, 200)
      assert.deepEqual(
        mine.body.grants.map((g: { grant: { grantId: string } }) => g.grant.grantId).sort(),
        [parcel.grant.grantId, family.grant.grantId].sort(),
      )
      const signature = mine.body.grants.find(
        (g: { grant: { grantId: string } }) => g.grant.grantId === parcel.grant.grantId,
      ).signature
      assert.equal(signature, parcel.signature)

      const removed = await api(`/v1/vehicles/${vehicle}/grants/${family.grant.grantId}`, {
        method: 'DELETE',
        token: ownerToken,
      })
      assert.deepEqual(removed.body, { removed: 1 })
      assert.equal((await api(`/v1/vehicles/${vehicle}/grants`, { token: ownerToken })).body.grants.length, 3)
    })

    test('passkey grants are kept and listed with their status like KeyGrants; attacks on them are refused', async () => {
      const ownerToken = await signIn(owner)
      const courierToken = await signIn(courier)
      const phoneKey = await issuePasskeyGrant({
        signer: owner,
        domain,
        vehicle,
        passkey: `0x04${'22'.repeat(64)}`,
        rpId: 'keys.example.com',
        scopes: Scope.UNLOCK | Scope.LOCK,
        notAfter: Math.floor(Date.now() / 1000) + 3600,
        epoch: 0,
        purpose: 'courier phone',
      })
      const post = (json: unknown) =>
        api(`/v1/vehicles/${vehicle}/grants`, { method: 'POST', json, token: ownerToken })
      // Tampered after signing: another phone's key, another site, more scopes.
      for (const grant of [
        { ...phoneKey.grant, passkey: `0x04${'33'.repeat(64)}` },
        { ...phoneKey.grant, rpId: 'evil.example' },
        { ...phoneKey.grant, scopes: Scope.START },
      ])
        assert.equal((await post({ ...phoneKey, grant })).body.code, 'GRANT_BAD_SIGNATURE')
      // Not a P-256 point's encoding, or both kinds of grantee at once.
      for (const grant of [
        { ...phoneKey.grant, passkey: `0x02${'22'.repeat(32)}` },
        { ...phoneKey.grant, grantee: courier.address },
      ])
        assert.equal((await post({ ...phoneKey, grant })).body.code, 'INVALID_ARGUMENT')

      assert.equal((await post(phoneKey)).status, 201)
      const listed = async () =>
        (
          (await api(`/v1/vehicles/${vehicle}/grants`, { token: ownerToken })).body.grants as {
            grant: { grantId: string; passkey?: string; rpId?: string }
            status: string
            signer: string
          }[]
        ).find((g) => g.grant.grantId === phoneKey.grant.grantId)
      const kept = await listed()
      assert.deepEqual(kept?.grant, phoneKey.grant)
      assert.equal(kept?.status, 'active')
      assert.equal(kept?.signer, owner.address)
      // A passkey has no address to sign in with: it is never in anyone's own list.
      const courierGrants = (await api('/v1/grants', { token: courierToken })).body.grants as {
        grant: { grantId: string }
      }[]
      assert.ok(!courierGrants.some((g) => g.grant.grantId === phoneKey.grant.grantId))
      // Revoked on chain: listed as revoked from then on.
      const clients = await connectChain({ rpcUrl: node.chain.rpcUrl, account: owner })
      await revokeGrant(clients, {
        keyRegistry: domain.keyRegistry,
        vehicle,
        grantId: phoneKey.grant.grantId,
      })
      assert.equal((await listed())?.status, 'revoked')
    })

    test('attacks: a stranger stores, lists, removes or reads; a foreign, tampered or misdirected grant', async () => {
      const ownerToken = await signIn(owner)
      const strangerToken = await signIn(stranger)
      const good = await aGrant({ signer: owner, domain, vehicle, grantee: stranger.address })
      const post = (json: unknown, token?: string) =>
        api(`/v1/vehicles/${vehicle}/grants`, { method: 'POST', json, ...(token ? { token } : {}) })

      // no session; a session of someone who is neither owner nor manager
      assert.equal((await post(good)).body.code, 'UNAUTHENTICATED')
      assert.equal((await post(good, strangerToken)).body.code, 'FORBIDDEN')
      assert.equal(
        (await api(`/v1/vehicles/${vehicle}/grants`, { token: strangerToken })).body.code,
        'FORBIDDEN',
      )
      assert.equal((await api(`/v1/vehicles/${vehicle}/grants`)).body.code, 'UNAUTHENTICATED')
      const removal = await api(`/v1/vehicles/${vehicle}/grants/${good.grant.grantId}`, {
        method: 'DELETE',
        token: strangerToken,
      })
      assert.equal(removal.body.code, 'FORBIDDEN')
      assert.equal((await api('/v1/grants')).body.code, 'UNAUTHENTICATED')

      // signed by a stranger, stored by the owner
      const foreign = await aGrant({ signer: stranger, domain, vehicle, grantee: stranger.address })
      const refused = await post(foreign, ownerToken)
      assert.equal(refused.status, 403)
      assert.equal(refused.body.code, 'GRANT_BAD_SIGNATURE')
      // tampered after signing: more scopes, a longer life
      for (const tampered of [
        { ...good, grant: { ...good.grant, scopes: Scope.UNLOCK | Scope.START } },
        { ...good, grant: { ...good.grant, notAfter: good.grant.notAfter + 86_400 } },
      ])
        assert.equal((await post(tampered, ownerToken)).body.code, 'GRANT_BAD_SIGNATURE')
      // for another vehicle than the path names
      const elsewhere = await aGrant({
        signer: owner,
        domain,
        vehicle: developmentAccount(9).address,
        grantee: stranger.address,
      })
      assert.equal((await post(elsewhere, ownerToken)).body.code, 'GRANT_WRONG_VEHICLE')
      // a malformed grant; an unknown extra field
      assert.equal(
        (await post({ grant: { vehicle }, signature: good.signature }, ownerToken)).body.code,
        'INVALID_ARGUMENT',
      )
      assert.equal(
        (await post({ grant: { ...good.grant, admin: true }, signature: good.signature }, ownerToken)).body
          .code,
        'INVALID_ARGUMENT',
      )
      // another grant under a grantId already stored
      assert.equal((await post(good, ownerToken)).status, 201)
      const clash = await aGrant({
        signer: owner,
        domain,
        vehicle,
        grantee: courier.address,
        grantId: good.grant.grantId,
      })
      const conflict = await post(clash, ownerToken)
      assert.equal(conflict.status, 409)
      assert.equal(conflict.body.code, 'GRANT_EXISTS')
      // nothing of the refused ones was kept: the stranger's own list shows the good grant only
      const strangers = await api('/v1/grants', { token: strangerToken })
      assert.deepEqual(
        strangers.body.grants
          .map((g: { grant: { grantId: string } }) => g.grant.grantId)
          .filter((id: string) => id === good.grant.grantId || id === foreign.grant.grantId),
        [good.grant.grantId],
      )
    })
  })
}
