/**
 * Wycheproof (C2SP/wycheproof testvectors_v1) against every signature-verification path of the
 * identity layer. The vectors live in ../shared/vectors (never copied into the repo).
 */
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { sha256 } from '@noble/hashes/sha2.js'
import { requirePart } from '../../test/skip.ts'
import { ethereumAddressOf } from './keystore.ts'
import { recoverEthereumAddress, verifyP256, verifySecp256k1 } from './signature.ts'

const vectorsDir = join(import.meta.dirname, '../../../shared/vectors/wycheproof')

type WycheproofFile = {
  testGroups: {
    publicKey: { uncompressed: string }
    tests: {
      tcId: number
      comment: string
      msg: string
      sig: string
      result: 'valid' | 'invalid' | 'acceptable'
    }[]
  }[]
}

function load(name: string): WycheproofFile | undefined {
  const path = join(vectorsDir, name)
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as WycheproofFile) : undefined
}

const hex = (text: string) => Uint8Array.from(Buffer.from(text, 'hex'))

/** Runs every case; returns how many ran. `acceptable` cases may go either way. */
function runVectors(
  file: WycheproofFile,
  check: (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array) => boolean,
): number {
  let count = 0
  const failures: string[] = []
  for (const group of file.testGroups) {
    const publicKey = hex(group.publicKey.uncompressed)
    for (const test of group.tests) {
      count++
      const ok = check(publicKey, hex(test.msg), hex(test.sig))
      if (test.result === 'acceptable') continue
      if (ok !== (test.result === 'valid')) failures.push(`tcId ${test.tcId} (${test.comment}): got ${ok}`)
    }
  }
  assert.deepEqual(failures, [])
  return count
}

const missing = 'Wycheproof vectors not found in ../shared/vectors/wycheproof'

describe('Wycheproof ECDSA', () => {
  it('P-256/SHA-256, DER (certificate and CRL signatures)', (t) => {
    const file = load('ecdsa_secp256r1_sha256_test.json')
    if (!requirePart(t, file !== undefined, missing)) return
    assert.ok(runVectors(file!, (k, m, s) => verifyP256(k, m, s, 'der')) > 400)
  })

  it('P-256/SHA-256, P1363 r‖s (events, component challenges, TLS channel binding)', (t) => {
    const file = load('ecdsa_secp256r1_sha256_p1363_test.json')
    if (!requirePart(t, file !== undefined, missing)) return
    assert.ok(runVectors(file!, (k, m, s) => verifyP256(k, m, s, 'p1363')) > 200)
  })

  it('secp256k1/SHA-256, DER and P1363', (t) => {
    const der = load('ecdsa_secp256k1_sha256_test.json')
    const p1363 = load('ecdsa_secp256k1_sha256_p1363_test.json')
    if (!requirePart(t, der !== undefined && p1363 !== undefined, missing)) return
    assert.ok(runVectors(der!, (k, m, s) => verifySecp256k1(k, m, s, 'der')) > 400)
    assert.ok(runVectors(p1363!, (k, m, s) => verifySecp256k1(k, m, s, 'p1363')) > 200)
  })

  it('secp256k1 as Ethereum signatures: recovery with v 27/28, high S rejected (EIP-2)', (t) => {
    const file = load('ecdsa_secp256k1_sha256_p1363_test.json')
    if (!requirePart(t, file !== undefined, missing)) return
    const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n
    let highS = 0
    let recovered = 0
    for (const group of file!.testGroups) {
      const address = ethereumAddressOf(hex(group.publicKey.uncompressed))
      for (const test of group.tests) {
        const rs = hex(test.sig)
        const digest = sha256(hex(test.msg))
        const accepts = [27, 28].some((v) => {
          if (rs.length !== 64) return false
          const signature = Uint8Array.from([...rs, v])
          return recoverEthereumAddress(digest, signature) === address
        })
        const s = rs.length === 64 ? BigInt(`0x${Buffer.from(rs.subarray(32)).toString('hex')}`) : 0n
        if (s > N / 2n) {
          highS++
          assert.equal(accepts, false, `tcId ${test.tcId}: a high-S signature must be rejected`)
        } else if (test.result === 'invalid') {
          assert.equal(accepts, false, `tcId ${test.tcId} (${test.comment}) must be rejected`)
        } else if (test.result === 'valid') {
          // A valid low-S signature recovers with v 27 or 28, unless r's point needs x = r + n
          // (recovery ids 2/3), which Ethereum cannot express; Wycheproof has such edge cases.
          if (accepts) recovered++
          else
            assert.match(test.comment, /r|edge|point/i, `tcId ${test.tcId} (${test.comment}) should recover`)
        }
      }
    }
    assert.ok(highS > 0 && recovered > 50, `highS ${highS}, recovered ${recovered}`)
  })
})
