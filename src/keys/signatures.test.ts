import assert from 'node:assert/strict'
import { test } from 'node:test'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import fc from 'fast-check'
import { ethereumAddressOf } from '../identity/keystore.ts'
import { recoverAddress, SignerKeyCache } from './signatures.ts'

function ethereumSignature(digest: Uint8Array, secretKey: Uint8Array): Uint8Array {
  // noble's 'recovered' format is v ‖ r ‖ s; Ethereum's is r ‖ s ‖ (27 + v)
  const recovered = secp256k1.sign(digest, secretKey, { prehash: false, format: 'recovered' })
  const out = new Uint8Array(65)
  out.set(recovered.subarray(1), 0)
  out[64] = 27 + (recovered[0] as number)
  return out
}

test('property: the tabled fast path agrees with recovery, and refuses tampering', () => {
  const cache = new SignerKeyCache({ maxEntries: 4 })
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.integer({ min: 1, max: 6 }),
      fc.integer({ min: 0, max: 31 }),
      (digest, keyIndex, flip) => {
        const secretKey = new Uint8Array(32).fill(keyIndex)
        const address = ethereumAddressOf(secp256k1.getPublicKey(secretKey, false)).toLowerCase()
        const signature = ethereumSignature(digest, secretKey)
        assert.equal(recoverAddress(digest, signature), address)
        assert.equal(cache.verify(address, digest, signature), true)
        assert.equal(cache.verify(address, digest, signature), true) // now from the table
        const tampered = Uint8Array.from(digest)
        tampered[flip] = (tampered[flip] as number) ^ 0x80
        assert.equal(cache.verify(address, tampered, signature), false)
        const otherKey = new Uint8Array(32).fill(keyIndex + 10)
        assert.equal(cache.verify(address, digest, ethereumSignature(digest, otherKey)), false)
        // high S (the malleable twin) is refused, as EIP-2 requires
        const high = Uint8Array.from(signature)
        const s = BigInt(`0x${Buffer.from(signature.subarray(32, 64)).toString('hex')}`)
        high.set(Buffer.from((secp256k1.Point.Fn.ORDER - s).toString(16).padStart(64, '0'), 'hex'), 32)
        high[64] = (signature[64] as number) ^ 1
        assert.equal(cache.verify(address, digest, high), false)
      },
    ),
    { numRuns: 25 },
  )
})
