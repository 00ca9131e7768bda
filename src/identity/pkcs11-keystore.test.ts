import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { p256 } from '@noble/curves/nist.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { recoverAddress } from 'viem'
import { requirePart } from '../../test/skip.ts'
import { isErrorCode } from '../errors.ts'
import { signEthereumDigest } from './keystore.ts'
import { labelOfPkcs11Uri, Pkcs11KeyStore } from './pkcs11-keystore.ts'
import { createSoftHsmToken, type SoftHsmToken, softHsmAvailable } from './softhsm.testkit.ts'

describe('Pkcs11KeyStore on SoftHSM2', () => {
  let token: SoftHsmToken | undefined
  let store: Pkcs11KeyStore | undefined
  before(async () => {
    if (!softHsmAvailable) return
    token = await createSoftHsmToken('carchain-ks')
    store = await Pkcs11KeyStore.open({ module: token.module, slot: token.slot, pin: token.pin })
  })
  after(async () => {
    await store?.close()
    await token?.cleanup()
  })

  it('generates a sensitive, non-extractable P-256 key and signs digests with it', async (t) => {
    if (!requirePart(t, softHsmAvailable, 'SoftHSM2 is not installed (apt-get install softhsm2)')) return
    const ref = await store!.generate('p256', 'identity')
    assert.match(ref, /^pkcs11:token=carchain-ks;object=identity$/)
    assert.equal(labelOfPkcs11Uri(ref), 'identity')
    assert.ok(await store!.privateKeyIsProtected(ref))
    const digest = sha256(new TextEncoder().encode('event'))
    const signature = await store!.signDigest(ref, digest)
    assert.ok(p256.verify(signature, digest, await store!.publicKey(ref), { prehash: false, lowS: false }))
  })

  it('makes Ethereum signatures with a secp256k1 key (recovery id found, low S)', async (t) => {
    if (!requirePart(t, softHsmAvailable, 'SoftHSM2 is not installed')) return
    const ref = await store!.generate('secp256k1', 'wallet')
    const address = await store!.ethereumAddress(ref)
    // Several signatures so both recovery ids and high-S outputs of the token are exercised.
    const signatures = await Promise.all(
      Array.from({ length: 8 }, async (_, i) => {
        const digest = keccak_256(new TextEncoder().encode(`payment ${i}`))
        const signature = await signEthereumDigest(store!, ref, digest)
        assert.equal(await recoverAddress({ hash: digest, signature }), address)
        const s = BigInt(`0x${signature.slice(66, 130)}`)
        assert.ok(s <= 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0n)
        return signature
      }),
    )
    assert.equal(signatures.length, 8)
  })

  it('finds keys by label, refuses duplicates, unknown keys and a wrong PIN', async (t) => {
    if (!requirePart(t, softHsmAvailable, 'SoftHSM2 is not installed')) return
    assert.equal(await store!.find('identity'), 'pkcs11:token=carchain-ks;object=identity')
    assert.equal(await store!.find('absent'), undefined)
    await assert.rejects(store!.generate('p256', 'identity'), (e) => isErrorCode(e, 'KEYSTORE_CORRUPT'))
    await assert.rejects(store!.describe('pkcs11:token=carchain-ks;object=absent'), (e) =>
      isErrorCode(e, 'KEY_NOT_FOUND'),
    )
    await assert.rejects(store!.describe('keystore:identity'), (e) => isErrorCode(e, 'KEY_NOT_FOUND'))
  })

  it('refuses a wrong PIN with KEYSTORE_LOCKED', async (t) => {
    if (!requirePart(t, softHsmAvailable, 'SoftHSM2 is not installed')) return
    // Login state is per application and token (PKCS#11 §6.6), so log out by closing first.
    await store!.close()
    await assert.rejects(
      Pkcs11KeyStore.open({ module: token!.module, slot: token!.slot, pin: '0000' }),
      (e) => isErrorCode(e, 'KEYSTORE_LOCKED'),
    )
    store = await Pkcs11KeyStore.open({ module: token!.module, slot: token!.slot, pin: token!.pin })
    assert.ok(await store.find('wallet'))
  })
})
