/**
 * The console's wallet code without a browser, against hostile wallets: what a page's EIP-6963
 * announcements and a wallet's answers may not do. A malformed announcement is not listed, an
 * icon that is not an image is not shown, a name cannot flood the page; a signature by another
 * account or over other data is refused; a wallet on another chain is not asked to sign; and
 * every failure a wallet reports becomes the right plain-words kind (EIP-1193 codes first, the
 * standard messages when a bridge dropped the code).
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import {
  ChainMismatchError,
  type EIP1193Provider,
  InsufficientFundsError,
  TransactionExecutionError,
  UserRejectedRequestError,
} from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { grantTypedData } from '../src/keys/typed-data.ts'
import type { ChainInfo } from '../web/src/api.ts'
import { connect } from '../web/src/chain.ts'
import { type Session, signTypedDataAs } from '../web/src/session.ts'
import { switchToChain, type WalletOption, walletOption, walletProblem } from '../web/src/wallet.ts'

const info: ChainInfo = {
  chainId: 31337,
  rpcUrl: 'http://127.0.0.1:1',
  contracts: {
    VehicleRegistry: `0x${'11'.repeat(20)}`,
    KeyRegistry: `0x${'11'.repeat(20)}`,
    LedgerAnchor: `0x${'22'.repeat(20)}`,
    ChargingChannels: `0x${'33'.repeat(20)}`,
    Token: `0x${'44'.repeat(20)}`,
  },
}
const chain = connect(info)

/** An EIP-1193 provider that answers from `answers` and records what it was asked. */
function provider(answers: Record<string, (params: unknown) => unknown>) {
  const asked: string[] = []
  const p = {
    asked,
    request: async ({ method, params }: { method: string; params?: unknown }) => {
      asked.push(method)
      const answer = answers[method]
      if (!answer)
        throw Object.assign(new Error('The Provider does not support the requested method.'), { code: 4200 })
      return answer(params)
    },
    on() {},
    removeListener() {},
  }
  return p as typeof p & EIP1193Provider
}

const goodInfo = {
  uuid: '350670db-19fa-4704-a166-e52e178b59d2',
  name: 'Good Wallet',
  rdns: 'org.example',
  icon: 'data:image/svg+xml,<svg/>',
}

test('a malformed EIP-6963 announcement is not listed; a non-image icon is not shown; names are bounded', () => {
  const p = provider({})
  const good = walletOption({ info: goodInfo, provider: p } as never)
  assert.equal(good?.name, 'Good Wallet')
  assert.equal(good?.icon, goodInfo.icon)
  assert.equal(walletOption({ info: goodInfo, provider: {} } as never), undefined, 'no request()')
  assert.equal(walletOption({ info: { ...goodInfo, uuid: '' }, provider: p } as never), undefined)
  assert.equal(walletOption({ info: { ...goodInfo, uuid: 'x'.repeat(65) }, provider: p } as never), undefined)
  assert.equal(walletOption({ provider: p } as never), undefined)
  assert.equal(walletOption(undefined as never), undefined)
  for (const icon of [
    'javascript:alert(1)',
    'data:text/html,<script>alert(1)</script>',
    'https://evil.example/icon.png',
    'data:image/svg',
    42,
  ])
    assert.equal(
      walletOption({ info: { ...goodInfo, icon }, provider: p } as never)?.icon,
      undefined,
      String(icon),
    )
  assert.equal(
    walletOption({ info: { ...goodInfo, name: 'W'.repeat(10_000) }, provider: p } as never)?.name.length,
    64,
  )
  assert.equal(walletOption({ info: { ...goodInfo, name: 7 }, provider: p } as never)?.name, 'Unnamed wallet')
})

test("a wallet's failures become plain-words kinds, by code or by the standard message", () => {
  const context = { chainId: 31337, address: '0xabc' }
  const rejected = Object.assign(new Error('User rejected the request.'), { code: 4001 })
  assert.equal(walletProblem(rejected, context).kind, 'rejected')
  assert.equal(walletProblem(new UserRejectedRequestError(rejected), context).kind, 'rejected')
  // A bridge (a test harness, a mobile relay) that dropped the code keeps the standard message.
  assert.equal(walletProblem(new Error('The user rejected the request.'), context).kind, 'rejected')
  assert.match(walletProblem(rejected, context).message, /declined .* nothing was signed or sent/)
  assert.equal(walletProblem({ code: 4100, message: 'no' }, context).kind, 'unauthorized')
  assert.equal(walletProblem({ code: 4200, message: 'no' }, context).kind, 'unsupported')
  const mismatch = new ChainMismatchError({ chain: chain.definition, currentChainId: 1 })
  assert.equal(walletProblem(mismatch, context).kind, 'wrong-chain')
  const poor = new TransactionExecutionError(new InsufficientFundsError(), { account: undefined } as never)
  const noFunds = walletProblem(poor, context)
  assert.equal(noFunds.kind, 'no-funds')
  assert.match(noFunds.message, /0xabc has not enough ETH on chain 31337/)
  const other = walletProblem(new Error('execution reverted: NotOwner\nmore detail'), context)
  assert.equal(other.kind, 'failed')
  assert.equal(other.message, 'execution reverted: NotOwner')
})

const grant = {
  vehicle: `0x${'aa'.repeat(20)}`,
  grantee: `0x${'bb'.repeat(20)}`,
  scopes: 3,
  notBefore: 1_800_000_000,
  notAfter: 1_800_086_400,
  maxUses: 0,
  epoch: 0,
  grantId: `0x${'cc'.repeat(32)}`,
  purpose: 'test',
} as const
const typedData = grantTypedData({ chainId: 31337, keyRegistry: info.contracts.KeyRegistry }, grant)

function walletSession(p: EIP1193Provider, address: `0x${string}`): Session {
  const wallet: WalletOption = { id: 'w', name: 'W', source: 'eip6963', provider: p }
  return {
    kind: 'wallet',
    wallet,
    address,
    walletChainId: 31337,
    siwe: { state: 'unavailable', message: '' },
  }
}

test('a key signature by another account, over other data, or of the wrong size is refused', async () => {
  const owner = privateKeyToAccount(generatePrivateKey())
  const other = privateKeyToAccount(generatePrivateKey())
  const honest = provider({
    eth_chainId: () => '0x7a69',
    eth_signTypedData_v4: () => owner.signTypedData(typedData),
  })
  const signature = await signTypedDataAs(walletSession(honest, owner.address), chain, typedData)
  assert.deepEqual(honest.asked, ['eth_chainId', 'eth_signTypedData_v4'])
  assert.equal(signature.length, 132)
  const cases: [string, () => unknown, RegExp][] = [
    ['another account', () => other.signTypedData(typedData), /signed as 0x[0-9a-fA-F]{40}, not as/],
    [
      'other data',
      () => owner.signTypedData({ ...typedData, message: { ...typedData.message, scopes: 31 } }),
      /signed as 0x[0-9a-fA-F]{40}, not as/,
    ],
    ['a short answer', () => '0x1234', /no 65-byte signature/],
    ['no string', () => ({ signature: '0x' }), /no 65-byte signature/],
  ]
  for (const [what, answer, message] of cases) {
    const hostile = provider({ eth_chainId: () => '0x7a69', eth_signTypedData_v4: answer })
    await assert.rejects(
      signTypedDataAs(walletSession(hostile, owner.address), chain, typedData),
      (error: Error) => {
        assert.match(error.message, message, what)
        return true
      },
    )
  }
})

test('a wallet on another chain is not asked to sign; a bad chain id is refused', async () => {
  const owner = privateKeyToAccount(generatePrivateKey())
  const elsewhere = provider({
    eth_chainId: () => '0x1',
    eth_signTypedData_v4: () => owner.signTypedData(typedData),
  })
  await assert.rejects(signTypedDataAs(walletSession(elsewhere, owner.address), chain, typedData), {
    kind: 'wrong-chain',
    walletChainId: 1,
  })
  assert.deepEqual(elsewhere.asked, ['eth_chainId'])
  for (const answer of ['0x', '7a69', '0x' + 'f'.repeat(40), 31337, null]) {
    const odd = provider({ eth_chainId: () => answer })
    await assert.rejects(
      signTypedDataAs(walletSession(odd, owner.address), chain, typedData),
      /no valid chain id/,
    )
  }
})

test('switching adds the chain only when the wallet does not know it (4902)', async () => {
  const unknown = provider({
    wallet_switchEthereumChain: (() => {
      let first = true
      return () => {
        if (first) {
          first = false
          throw Object.assign(new Error('Unrecognized chain ID "0x7a69".'), { code: 4902 })
        }
        return null
      }
    })(),
    wallet_addEthereumChain: (params) => {
      const [entry] = params as [{ chainId: string; rpcUrls: string[]; nativeCurrency: { decimals: number } }]
      assert.equal(entry.chainId, '0x7a69')
      assert.deepEqual(entry.rpcUrls, [info.rpcUrl])
      assert.equal(entry.nativeCurrency.decimals, 18)
      return null
    },
  })
  await switchToChain(unknown, chain)
  assert.deepEqual(unknown.asked, [
    'wallet_switchEthereumChain',
    'wallet_addEthereumChain',
    'wallet_switchEthereumChain',
  ])
  const refusing = provider({
    wallet_switchEthereumChain: () => {
      throw Object.assign(new Error('User rejected the request.'), { code: 4001 })
    },
  })
  await assert.rejects(switchToChain(refusing, chain), { code: 4001 })
  assert.deepEqual(
    refusing.asked,
    ['wallet_switchEthereumChain'],
    'a refusal is not answered by adding the chain',
  )
})
