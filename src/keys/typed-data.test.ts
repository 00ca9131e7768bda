import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createHash, generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import { privateKeyToAccount } from 'viem/accounts'
import { grantSigner, issueGrant, newGrantId } from './grant.ts'
import { decodeShareLink, encodeShareLink } from './share-link.ts'
import { recoverAddress, SignerKeyCache } from './signatures.ts'
import {
  accessRequestHasher,
  grantTypedData,
  hashAccessRequest,
  type KeyDomain,
  keyTypes,
  parseGrant,
  parseScopes,
  passkeyFingerprint,
  Scope,
  scopeNames,
  typedDataJson,
} from './typed-data.ts'

const domain: KeyDomain = { chainId: 31337, keyRegistry: '0x5fbdb2315678afecb367f032d93f642f64180aa3' }
// development mnemonic accounts 1 and 2 (public test keys)
const ownerKey = '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d'
const granteeKey = '0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a'
const owner = privateKeyToAccount(ownerKey)
const grantee = privateKeyToAccount(granteeKey)
const vehicle = '0x000000000000000000000000000000000000c0de'

describe('typed data', () => {
  test('the fast AccessRequest hasher equals viem hashTypedData (property)', () => {
    const hasher = accessRequestHasher(domain)
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        (grantId, challenge, action) => {
          const fast = Buffer.from(hasher({ grantId, action, challenge })).toString('hex')
          const reference = hashAccessRequest(domain, {
            grantId: `0x${Buffer.from(grantId).toString('hex')}`,
            action,
            challenge: `0x${Buffer.from(challenge).toString('hex')}`,
          })
          assert.equal(`0x${fast}`, reference)
        },
      ),
      { numRuns: 50 },
    )
  })

  test('issue, share link round trip, recover the signer', async () => {
    const signed = await issueGrant({
      signer: owner,
      domain,
      vehicle,
      grantee: grantee.address,
      scopes: Scope.UNLOCK | Scope.LOCK,
      notAfter: 2_000_000_000,
      epoch: 0,
      purpose: 'family',
    })
    assert.equal(grantSigner(domain, signed), owner.address.toLowerCase())
    const link = encodeShareLink(domain, signed)
    assert.ok(link.startsWith('carchain-key:'))
    const shared = decodeShareLink(link)
    assert.deepEqual(shared.grant, signed.grant)
    assert.equal(shared.signature, signed.signature)
    assert.equal(shared.keyRegistry, domain.keyRegistry)
  })

  test('strict parsing names the offending field', () => {
    const good = {
      vehicle,
      grantee: grantee.address,
      scopes: 3,
      notBefore: 1,
      notAfter: 2,
      maxUses: 0,
      epoch: 0,
      grantId: newGrantId(),
      purpose: '',
    }
    assert.equal(parseGrant(good).grantee, grantee.address.toLowerCase())
    const bad: [Record<string, unknown>, string][] = [
      [{ ...good, scopes: 64 }, 'grant.scopes'],
      [{ ...good, notAfter: '2' }, 'grant.notAfter'],
      [{ ...good, grantId: '0x12' }, 'grant.grantId'],
      [{ ...good, vehicle: 'car' }, 'grant.vehicle'],
      [{ ...good, extra: 1 }, 'grant'],
      [{ ...good, notBefore: 3 }, 'grant.notBefore'],
    ]
    for (const [value, field] of bad) {
      assert.throws(
        () => parseGrant(value),
        (error: { code: string; details: { field: string } }) =>
          error.code === 'INVALID_ARGUMENT' && error.details.field === field,
      )
    }
  })

  test('a passkey’s fingerprint is the start of its SHA-256; a malformed key has none', () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-65)
    const passkey = `0x${raw.toString('hex')}` as const
    const digest = createHash('sha256').update(raw).digest('hex')
    assert.equal(passkeyFingerprint(passkey), digest.slice(0, 16).match(/.{4}/g)!.join(':'))
    assert.equal(
      passkeyFingerprint(passkey.toUpperCase().replace('0X', '0x') as never),
      passkeyFingerprint(passkey),
    )
    for (const bad of ['0x02' + '11'.repeat(32), '0x04' + '11'.repeat(63), 'not hex'])
      assert.throws(
        () => passkeyFingerprint(bad as never),
        (error: { code?: string }) => error.code === 'INVALID_ARGUMENT',
      )
  })

  test('scope names', () => {
    assert.equal(parseScopes('UNLOCK|lock,start'), 11)
    assert.deepEqual(scopeNames(5), ['UNLOCK', 'OPEN_TRUNK'])
    assert.throws(() => parseScopes('FLY'))
  })

  test('cached signer keys verify like recovery, and refuse other signers and tampering', async () => {
    const cache = new SignerKeyCache()
    const hasher = accessRequestHasher(domain)
    for (let i = 0; i < 3; i++) {
      const challenge = new Uint8Array(32).fill(i + 1)
      const grantId = new Uint8Array(32).fill(7)
      const digest = hasher({ grantId, action: 1, challenge })
      const signature = await grantee.signTypedData({
        domain: {
          name: 'Carchain',
          version: '1',
          chainId: domain.chainId,
          verifyingContract: domain.keyRegistry,
        },
        types: { AccessRequest: [...keyTypes.AccessRequest] },
        primaryType: 'AccessRequest',
        message: {
          grantId: `0x${'07'.repeat(32)}`,
          action: 1,
          challenge: `0x${Buffer.from(challenge).toString('hex')}`,
        },
      })
      const bytes = Buffer.from(signature.slice(2), 'hex')
      assert.equal(recoverAddress(digest, bytes), grantee.address.toLowerCase())
      assert.equal(cache.verify(grantee.address, digest, bytes), true)
      assert.equal(cache.verify(owner.address, digest, bytes), false)
      const tampered = Uint8Array.from(digest)
      tampered[0] = (tampered[0] as number) ^ 1
      assert.equal(cache.verify(grantee.address, tampered, bytes), false)
    }
    assert.ok(cache.has(grantee.address))
  })

  test('a grant signed by `cast wallet sign --data --from-file` recovers to the owner', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'carchain-cast-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const grant = parseGrant({
      vehicle,
      grantee: grantee.address,
      scopes: Scope.OPEN_TRUNK,
      notBefore: 1_700_000_000,
      notAfter: 1_700_007_200,
      maxUses: 1,
      epoch: 3,
      grantId: newGrantId(),
      purpose: 'parcel ✓',
    })
    const file = join(dir, 'typed.json')
    writeFileSync(file, JSON.stringify(typedDataJson(domain, { KeyGrant: grant })))
    const signature = execFileSync(
      'node_modules/.bin/cast',
      ['wallet', 'sign', '--data', '--from-file', file, '--private-key', ownerKey],
      { encoding: 'utf8' },
    ).trim() as `0x${string}`
    assert.equal(grantSigner(domain, { grant, signature }), owner.address.toLowerCase())
    const viemSigned = await owner.signTypedData(grantTypedData(domain, grant))
    assert.equal(signature, viemSigned)
  })
})
