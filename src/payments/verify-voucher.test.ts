import assert from 'node:assert/strict'
import { test } from 'node:test'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { measureVoucherVerification } from './gas.ts'
import { type PaymentsDomain, signVoucher, voucherDigest } from './typed-data.ts'
import { createVoucherVerifier } from './verify-voucher.ts'

const domain: PaymentsDomain = {
  chainId: 31337,
  verifyingContract: '0x5FbDB2315678afecb367f032d93F642f64180aa3',
}
const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n

test('the fast path agrees with EIP-712 recovery and refuses what the contract refuses', async () => {
  const payer = privateKeyToAccount(generatePrivateKey())
  const other = privateKeyToAccount(generatePrivateKey())
  const verifier = createVoucherVerifier(domain)
  const v = { channelId: `0x${'01'.repeat(32)}` as const, cumulativeAmount: 123_456_789n, meterWh: 4200n }
  assert.equal(Buffer.from(verifier.digest(v)).toString('hex'), voucherDigest(domain, v).slice(2))
  for (let i = 0; i < 5; i++) {
    const vi = { ...v, cumulativeAmount: v.cumulativeAmount + BigInt(i) }
    const signature = await signVoucher(payer, domain, vi)
    assert.ok(verifier.verify(vi, signature, payer.address), `voucher ${i} (cached key after the first)`)
    assert.ok(!verifier.verify(vi, signature, other.address), 'another payer')
    assert.ok(
      !verifier.verify({ ...vi, meterWh: vi.meterWh + 1n }, signature, payer.address),
      'altered field',
    )
    // The high-s twin and the flipped v are valid ECDSA but not claimable on chain.
    const s = BigInt(`0x${signature.slice(66, 130)}`)
    const vByte = Number.parseInt(signature.slice(130), 16)
    const twin = `${signature.slice(0, 66)}${(N - s).toString(16).padStart(64, '0')}${(vByte === 27 ? 28 : 27).toString(16)}`
    assert.ok(!verifier.verify(vi, twin as `0x${string}`, payer.address), 'high s')
    const flipped = `${signature.slice(0, 130)}${(vByte === 27 ? 28 : 27).toString(16)}`
    assert.ok(!verifier.verify(vi, flipped as `0x${string}`, payer.address), 'wrong v')
  }
  const batch = await Promise.all(
    [0n, 1n, 2n].map(async (i) => {
      const vi = { ...v, cumulativeAmount: v.cumulativeAmount + 100n + i }
      return { voucher: vi, signature: await signVoucher(payer, domain, vi), payer: payer.address }
    }),
  )
  batch[1] = { ...batch[1]!, payer: other.address }
  assert.deepEqual(verifier.verifyMany(batch), [true, false, true])
  const onOtherChain = await signVoucher(payer, { ...domain, chainId: 1 }, v)
  assert.ok(!verifier.verify(v, onOtherChain, payer.address), 'another chain')
  assert.ok(!verifier.verify(v, '0x1234', payer.address), 'malformed')
})

test('voucher verification rate at the charger (reported; the bench holds the target)', async (t) => {
  const report = await measureVoucherVerification({ count: 300, rounds: 2 })
  t.diagnostic(
    `fast path ${report.fastPerSecond}/s, batched ${report.batchedPerSecond}/s, plain recovery ${report.recoverPerSecond}/s`,
  )
  assert.ok(report.fastPerSecond > report.recoverPerSecond)
})

test('fixed-base verification agrees with @noble/curves recovery on valid and tampered signatures', async () => {
  const { secp256k1 } = await import('@noble/curves/secp256k1.js')
  const { fixedTable, verifyRecoverable } = await import('../identity/secp256k1-fixed.ts')
  const big = (b: Uint8Array) => BigInt(`0x${Buffer.from(b).toString('hex')}`)
  const sk = secp256k1.utils.randomSecretKey()
  const pk = secp256k1.Point.fromBytes(secp256k1.getPublicKey(sk, false))
  const table = fixedTable(pk.toAffine().x, pk.toAffine().y)
  for (let i = 0; i < 40; i++) {
    const digest = crypto.getRandomValues(new Uint8Array(32))
    const sig = secp256k1.sign(digest, sk, { prehash: false, format: 'recovered' })
    const recovery = sig[0] as 0 | 1
    const r = big(sig.subarray(1, 33))
    const s = big(sig.subarray(33))
    const z = big(digest)
    assert.ok(verifyRecoverable(table, z, r, s, recovery), `valid ${i}`)
    assert.ok(!verifyRecoverable(table, z, r, s, (1 - recovery) as 0 | 1), `parity ${i}`)
    assert.ok(!verifyRecoverable(table, z + 1n, r, s, recovery), `digest ${i}`)
    assert.ok(!verifyRecoverable(table, z, r, s + 1n, recovery), `s ${i}`)
    const tamperedR = (r + 1n) % N
    // Whatever a tampered r recovers to, it must agree with noble: accepted only if it is this key.
    let nobleSays = false
    try {
      const key = new secp256k1.Signature(tamperedR, s).addRecoveryBit(recovery).recoverPublicKey(digest)
      nobleSays = key.equals(pk)
    } catch {}
    assert.equal(verifyRecoverable(table, z, tamperedR, s, recovery), nobleSays, `r ${i}`)
  }
})
