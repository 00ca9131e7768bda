import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { p256 } from '@noble/curves/nist.js'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { recoverAddress } from 'viem'
import { isErrorCode } from '../errors.ts'
import { signEthereumDigest } from './keystore.ts'
import { SoftwareKeyStore } from './software-keystore.ts'

const fast = { n: 2 ** 10, r: 8, p: 1 }

describe('SoftwareKeyStore', () => {
  let dir: string
  let store: SoftwareKeyStore
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'carchain-ks-'))
    store = new SoftwareKeyStore({ dir, passphrase: 'correct horse', scrypt: fast })
  })
  after(async () => {
    await store.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('signs P-256 digests that verify against the public key', async () => {
    const ref = await store.generate('p256', 'identity')
    assert.equal(ref, 'keystore:identity')
    const digest = sha256(new TextEncoder().encode('hello'))
    const signature = await store.signDigest(ref, digest)
    assert.equal(signature.length, 64)
    assert.ok(p256.verify(signature, digest, await store.publicKey(ref), { prehash: false, lowS: false }))
  })

  it('writes a keystore v3 file that a fresh store with the passphrase can use', async () => {
    const ref = await store.generate('secp256k1', 'wallet')
    const file = JSON.parse(await readFile(join(dir, 'wallet.json'), 'utf8'))
    assert.equal(file.version, 3)
    assert.equal(file.crypto.kdf, 'scrypt')
    assert.equal(file.crypto.cipher, 'aes-128-ctr')
    const address = await store.ethereumAddress(ref)
    assert.equal(`0x${file.address}`, address.toLowerCase())
    const reopened = new SoftwareKeyStore({ dir, passphrase: 'correct horse' })
    const digest = keccak_256(new TextEncoder().encode('pay'))
    const signature = await signEthereumDigest(reopened, ref, digest)
    assert.equal(await recoverAddress({ hash: digest, signature }), address)
    assert.ok(
      secp256k1.verify(Buffer.from(signature.slice(2, 130), 'hex'), digest, await store.publicKey(ref), {
        prehash: false,
        lowS: true,
      }),
    )
    await reopened.close()
  })

  it('refuses a wrong passphrase with KEYSTORE_LOCKED', async () => {
    const wrong = new SoftwareKeyStore({ dir, passphrase: 'wrong' })
    await assert.rejects(wrong.signDigest('keystore:identity', new Uint8Array(32)), (e) =>
      isErrorCode(e, 'KEYSTORE_LOCKED'),
    )
  })

  it('refuses a duplicate label, an unknown key and a bad digest', async () => {
    await assert.rejects(store.generate('p256', 'identity'), (e) => isErrorCode(e, 'KEYSTORE_CORRUPT'))
    await assert.rejects(store.describe('keystore:nope'), (e) => isErrorCode(e, 'KEY_NOT_FOUND'))
    await assert.rejects(store.signDigest('keystore:identity', new Uint8Array(31)), (e) =>
      isErrorCode(e, 'INVALID_ARGUMENT'),
    )
    await assert.rejects(store.ethereumAddress('keystore:identity'), (e) =>
      isErrorCode(e, 'INVALID_ARGUMENT'),
    )
    assert.equal(await store.find('identity'), 'keystore:identity')
    assert.equal(await store.find('nope'), undefined)
  })

  it('never stores the private key in clear', async () => {
    const text = await readFile(join(dir, 'identity.json'), 'utf8')
    assert.doesNotMatch(text, /"d"|privateKey/)
  })
})
