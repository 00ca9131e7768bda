import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import {
  keccak256,
  parseTransaction,
  recoverAddress,
  recoverTransactionAddress,
  recoverTypedDataAddress,
  verifyMessage,
} from 'viem'
import { keyStoreAccount } from './account.ts'
import { SoftwareKeyStore } from './software-keystore.ts'

// EIP-712's own example (ethereum/EIPs assets/eip-712/Example.js).
const mail = {
  domain: {
    name: 'Ether Mail',
    version: '1',
    chainId: 1,
    verifyingContract: '0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC',
  },
  types: {
    Person: [
      { name: 'name', type: 'string' },
      { name: 'wallet', type: 'address' },
    ],
    Mail: [
      { name: 'from', type: 'Person' },
      { name: 'to', type: 'Person' },
      { name: 'contents', type: 'string' },
    ],
  },
  primaryType: 'Mail',
  message: {
    from: { name: 'Cow', wallet: '0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826' },
    to: { name: 'Bob', wallet: '0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB' },
    contents: 'Hello, Bob!',
  },
} as const

describe('keyStoreAccount', () => {
  let dir: string
  let store: SoftwareKeyStore
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'carchain-acct-'))
    store = new SoftwareKeyStore({ dir, passphrase: 'p', scrypt: { n: 1024, r: 8, p: 1 } })
  })
  after(async () => {
    await store.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('signs messages, typed data, hashes and transactions that recover to the wallet address', async () => {
    const account = await keyStoreAccount(store, await store.generate('secp256k1', 'wallet'))
    assert.equal(account.type, 'local')
    const signature = await account.signMessage({ message: 'hello car' })
    assert.ok(await verifyMessage({ address: account.address, message: 'hello car', signature }))
    const typed = await account.signTypedData(mail)
    assert.equal(await recoverTypedDataAddress({ ...mail, signature: typed }), account.address)
    const hash = keccak256('0x1234')
    assert.equal(await recoverAddress({ hash, signature: await account.sign!({ hash }) }), account.address)
    const serialized = await account.signTransaction({
      chainId: 31337,
      type: 'eip1559',
      to: '0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB',
      value: 1n,
      nonce: 0,
      gas: 21000n,
      maxFeePerGas: 2n,
      maxPriorityFeePerGas: 1n,
    })
    assert.equal(parseTransaction(serialized).chainId, 31337)
    assert.equal(
      await recoverTransactionAddress({ serializedTransaction: serialized as `0x02${string}` }),
      account.address,
    )
  })
})
