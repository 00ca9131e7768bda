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
  const onOtherChain = await signVoucher(payer, { ...domain, chainId: 1 }, v)
  assert.ok(!verifier.verify(v, onOtherChain, payer.address), 'another chain')
  assert.ok(!verifier.verify(v, '0x1234', payer.address), 'malformed')
})

test('voucher verification rate at the charger (reported; the bench holds the target)', async (t) => {
  const report = await measureVoucherVerification({ count: 600 })
  t.diagnostic(`fast path ${report.fastPerSecond}/s, plain recovery ${report.recoverPerSecond}/s`)
  assert.ok(report.fastPerSecond > report.recoverPerSecond)
})
