import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import type { Address, Hex } from 'viem'
import { type AccessAttempt, AccessController } from './access-control.ts'
import { signAccessRequest } from './grant.ts'
import { aGrant, FakeKeyState, testAccount } from './testing.ts'
import { type KeyDomain, type KeyGrant, Scope, type SignedGrant, ZERO_GRANT_ID } from './typed-data.ts'
import { FileUseCounter, MemoryUseCounter } from './use-counter.ts'

const domain: KeyDomain = { chainId: 31337, keyRegistry: '0xe7f1725e7734ce288f8367e1bb143e90bb3f0512' }
const vehicle = '0x00000000000000000000000000000000000c0de1' as Address
const owner = testAccount(1)
const grantee = testAccount(2)
const stranger = testAccount(3)
const manager = testAccount(4)
const lower = (a: string) => a.toLowerCase() as Address
const NOW_MS = 1_800_000_000_000
const nowSec = NOW_MS / 1000

function setup() {
  const state = new FakeKeyState()
  state.owner = lower(owner.address)
  let now = NOW_MS
  const uses = new MemoryUseCounter()
  const controller = new AccessController({ vehicle, domain, state, uses, clock: () => now })
  return { state, controller, uses, setNow: (ms: number) => (now = ms) }
}

const challenge = () => new Uint8Array(32).map(() => Math.floor(Math.random() * 256))
const hex = (b: Uint8Array) => `0x${Buffer.from(b).toString('hex')}` as Hex

async function attempt(
  grant: SignedGrant | null,
  action: number,
  signer = grantee,
  c = challenge(),
): Promise<AccessAttempt> {
  const signature = await signAccessRequest(signer, domain, {
    grantId: grant?.grant.grantId ?? ZERO_GRANT_ID,
    action,
    challenge: hex(c),
  })
  return { grant, action, signature: Buffer.from(signature.slice(2), 'hex'), challenge: c }
}

const grantFor = (overrides: Partial<Parameters<typeof aGrant>[0]> = {}) =>
  aGrant({ signer: owner, domain, vehicle, grantee: grantee.address, nowSec, ...overrides })

describe('the offline decision', () => {
  test('a valid grant opens; each check refuses with its own code, in the order of docs/spec.md', async () => {
    const { controller, state } = setup()
    const good = await grantFor()
    assert.equal(controller.decide(await attempt(good, Scope.UNLOCK)).code, 'OK')

    // 1. not the owner's signature — even if everything else is wrong too, this comes first
    const byStranger = await grantFor({
      signer: stranger,
      vehicle: '0x0000000000000000000000000000000000000bad',
    })
    assert.equal(controller.decide(await attempt(byStranger, Scope.UNLOCK)).code, 'GRANT_BAD_SIGNATURE')
    // a tampered field changes the recovered signer
    const tampered: SignedGrant = { ...good, grant: { ...good.grant, scopes: Scope.START | Scope.UNLOCK } }
    assert.equal(controller.decide(await attempt(tampered, Scope.START)).code, 'GRANT_BAD_SIGNATURE')
    // (the signer cache is keyed by the signature: the tampered copy did not hit the good entry,
    // nor spoil it)
    assert.equal(controller.decide(await attempt(good, Scope.UNLOCK)).code, 'OK')
    assert.equal(controller.decide(await attempt(tampered, Scope.START)).code, 'GRANT_BAD_SIGNATURE')
    // 2. another vehicle (and an old epoch: vehicle is checked first)
    const other = await grantFor({ vehicle: '0x0000000000000000000000000000000000000bad', epoch: 9 })
    assert.equal(controller.decide(await attempt(other, Scope.UNLOCK)).code, 'GRANT_WRONG_VEHICLE')
    // 3. epoch (checked before revocation)
    const oldEpoch = await grantFor({ epoch: 1 })
    state.revoked.add(oldEpoch.grant.grantId)
    assert.equal(controller.decide(await attempt(oldEpoch, Scope.UNLOCK)).code, 'GRANT_EPOCH')
    // 4. revoked (checked before time)
    const revoked = await grantFor({ notAfter: nowSec - 10, notBefore: nowSec - 20 })
    state.revoked.add(revoked.grant.grantId)
    assert.equal(controller.decide(await attempt(revoked, Scope.UNLOCK)).code, 'GRANT_REVOKED')
    // 5. window (checked before scope)
    const early = await grantFor({ notBefore: nowSec + 60, notAfter: nowSec + 120 })
    assert.equal(controller.decide(await attempt(early, Scope.START)).code, 'GRANT_NOT_YET_VALID')
    const late = await grantFor({ notBefore: nowSec - 120, notAfter: nowSec - 1 })
    assert.equal(controller.decide(await attempt(late, Scope.START)).code, 'GRANT_EXPIRED')
    // the bounds are inclusive
    const edge = await grantFor({ notBefore: nowSec, notAfter: nowSec })
    assert.equal(controller.decide(await attempt(edge, Scope.UNLOCK)).code, 'OK')
    // 6. scope (checked before uses)
    const trunk = await grantFor({ scopes: Scope.OPEN_TRUNK, maxUses: 1 })
    assert.equal(controller.decide(await attempt(trunk, Scope.UNLOCK)).code, 'GRANT_SCOPE')
    // 7. uses, and 8. the request signature — a stranger's signature does not consume the use
    assert.equal(
      controller.decide(await attempt(trunk, Scope.OPEN_TRUNK, stranger)).code,
      'REQUEST_BAD_SIGNATURE',
    )
    assert.equal(controller.decide(await attempt(trunk, Scope.OPEN_TRUNK)).code, 'OK')
    assert.equal(controller.decide(await attempt(trunk, Scope.OPEN_TRUNK, stranger)).code, 'GRANT_USED_UP')
  })

  test('the request must be over this challenge; an old used or expired one is a replay', async () => {
    const { controller } = setup()
    const grant = await grantFor()
    const first = await attempt(grant, Scope.UNLOCK)
    assert.equal(controller.decide(first).code, 'OK')
    const replay = {
      ...first,
      challenge: challenge(),
      pastChallenges: [{ challenge: first.challenge, status: 'used' as const }],
    }
    assert.equal(controller.decide(replay).code, 'CHALLENGE_UNKNOWN')
    const stale = { ...replay, pastChallenges: [{ challenge: first.challenge, status: 'expired' as const }] }
    assert.equal(controller.decide(stale).code, 'CHALLENGE_EXPIRED')
    // the same signature over another action fails
    assert.equal(controller.decide({ ...first, action: Scope.LOCK }).code, 'REQUEST_BAD_SIGNATURE')
  })

  test('a manager may issue grants; after a sale only the new owner’s grants work', async () => {
    const { controller, state } = setup()
    const byManager = await grantFor({ signer: manager })
    assert.equal(controller.decide(await attempt(byManager, Scope.UNLOCK)).code, 'GRANT_BAD_SIGNATURE')
    state.managers.add(lower(manager.address))
    assert.equal(controller.decide(await attempt(byManager, Scope.UNLOCK)).code, 'OK')
    const byOwner = await grantFor()
    assert.equal(controller.decide(await attempt(byOwner, Scope.UNLOCK)).code, 'OK')
    // sale: the cached signer is re-checked against the current owner every time
    state.owner = lower(stranger.address)
    state.managers.clear()
    assert.equal(controller.decide(await attempt(byOwner, Scope.UNLOCK)).code, 'GRANT_BAD_SIGNATURE')
    assert.equal(
      controller.decide(await attempt(await grantFor({ signer: stranger }), Scope.UNLOCK)).code,
      'OK',
    )
  })

  test('rental: the ERC-4907 user unlocks with grant null until expiry; others are refused', async () => {
    const { controller, state, setNow } = setup()
    assert.equal(controller.decide(await attempt(null, Scope.UNLOCK)).code, 'RENTAL_NOT_ACTIVE')
    state.rental = { user: lower(grantee.address), expiresSec: nowSec + 60 }
    for (const action of [Scope.UNLOCK, Scope.START, Scope.LOCK]) {
      const decision = controller.decide(await attempt(null, action))
      assert.equal(decision.code, 'OK')
      assert.equal(decision.subject, lower(grantee.address))
    }
    assert.equal(controller.decide(await attempt(null, Scope.OPEN_TRUNK)).code, 'GRANT_SCOPE')
    assert.equal(controller.decide(await attempt(null, Scope.UNLOCK, stranger)).code, 'RENTAL_NOT_ACTIVE')
    const garbage = await attempt(null, Scope.UNLOCK)
    garbage.signature = new Uint8Array(65)
    assert.equal(controller.decide(garbage).code, 'REQUEST_BAD_SIGNATURE')
    setNow(NOW_MS + 61_000)
    assert.equal(controller.decide(await attempt(null, Scope.UNLOCK)).code, 'RENTAL_NOT_ACTIVE')
  })

  test('use counters survive a restart (file) and ignore a torn last line', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'carchain-uses-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const state = new FakeKeyState()
    state.owner = lower(owner.address)
    const grant = await grantFor({ maxUses: 2 })
    const make = () => {
      const uses = new FileUseCounter(dir)
      return { uses, controller: new AccessController({ vehicle, domain, state, uses, clock: () => NOW_MS }) }
    }
    let car = make()
    assert.equal(car.controller.decide(await attempt(grant, Scope.UNLOCK)).uses, 1)
    car.uses.close()
    const { appendFileSync } = await import('node:fs')
    appendFileSync(car.uses.path, '{"grantId":"0xdead')
    car = make()
    assert.equal(car.controller.decide(await attempt(grant, Scope.UNLOCK)).uses, 2)
    car.uses.close()
    car = make()
    assert.equal(car.controller.decide(await attempt(grant, Scope.UNLOCK)).code, 'GRANT_USED_UP')
    car.uses.close()
  })

  test('property: any single tampered grant field is refused and consumes nothing', async () => {
    const { controller, uses } = setup()
    const grant = await grantFor({ maxUses: 1, scopes: Scope.UNLOCK | Scope.OPEN_TRUNK })
    const fields: (keyof KeyGrant)[] = [
      'vehicle',
      'grantee',
      'scopes',
      'notBefore',
      'notAfter',
      'maxUses',
      'epoch',
      'grantId',
      'purpose',
    ]
    const requests = new Map<string, AccessAttempt>()
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...fields),
        fc.integer({ min: 1, max: 1000 }),
        async (field, delta) => {
          const value = grant.grant[field]
          const changed: KeyGrant = { ...grant.grant }
          if (typeof value === 'number')
            (changed[field] as number) = field === 'scopes' ? value ^ Scope.START : value + delta
          else if (field === 'purpose') changed.purpose = `${value}${delta}`
          else
            (changed[field] as string) =
              `${(value as string).slice(0, -4)}${delta.toString(16).padStart(4, '0')}`
          if (JSON.stringify(changed) === JSON.stringify(grant.grant)) return
          const key = JSON.stringify(changed)
          let a = requests.get(key)
          if (!a) {
            a = await attempt({ grant: changed, signature: grant.signature }, Scope.UNLOCK)
            requests.set(key, a)
          }
          const decision = controller.decide(a)
          assert.equal(decision.ok, false)
          assert.equal(decision.code, 'GRANT_BAD_SIGNATURE')
          assert.equal(uses.used(grant.grant.grantId), 0)
        },
      ),
      { numRuns: 40 },
    )
  })
})
