import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { parseEther } from 'viem'
import { startTestChain, type TestChain } from '../../../test/chain.ts'
import { deploymentPath } from '../../chain/deploy.ts'
import { demoTokenAbi } from '../../chain/generated/index.ts'
import { writeFileAtomic } from '../../fs-atomic.ts'
import { runCli } from '../main.ts'

let chain: TestChain
let dir: string
before(async () => {
  chain = await startTestChain()
  dir = mkdtempSync(join(tmpdir(), 'carchain-charge-cli-'))
  const path = deploymentPath(join(dir, 'data'), chain.clients.chain.id)
  mkdirSync(join(dir, 'data', 'deployments'), { recursive: true })
  writeFileAtomic(path, JSON.stringify(chain.deployment))
})
after(async () => {
  await chain?.stop()
  rmSync(dir, { recursive: true, force: true })
})

async function cli(args: string[]): Promise<{ code: number; json: Record<string, unknown> }> {
  let out = ''
  const write = process.stdout.write.bind(process.stdout)
  process.stdout.write = ((chunk: string) => {
    out += chunk
    return true
  }) as typeof process.stdout.write
  try {
    const common = ['--rpc', chain.anvil.rpcUrl, '--data', join(dir, 'data'), '--keystore', join(dir, 'keys')]
    const code = await runCli(
      [...args, ...common, '--passphrase', 'test', '--json'],
      new AbortController().signal,
    )
    return { code, json: JSON.parse(out) as Record<string, unknown> }
  } finally {
    process.stdout.write = write
  }
}

test('carchain charge wallet, pay and charge channels', async () => {
  const created = await cli(['charge', 'wallet', '--wallet', 'car'])
  assert.equal(created.code, 0)
  const address = created.json.address as `0x${string}`
  const { walletClient, publicClient } = chain.clients
  const token = chain.deployment.contracts.Token.address
  await publicClient.waitForTransactionReceipt({
    hash: await walletClient.sendTransaction({ to: address, value: parseEther('1') }),
  })
  await publicClient.waitForTransactionReceipt({
    hash: await walletClient.writeContract({
      address: token,
      abi: demoTokenAbi,
      functionName: 'mint',
      args: [address, parseEther('10')],
    }),
  })
  const parking = (await chain.as(6)).account.address
  const paid = await cli(['pay', '--wallet', 'car', '--to', parking, '--amount', '2.5', '--memo', 'P3'])
  assert.equal(paid.code, 0, JSON.stringify(paid.json))
  assert.equal(paid.json.amount, parseEther('2.5').toString())
  const refused = await cli([
    'pay',
    '--wallet',
    'car',
    '--to',
    parking,
    '--amount',
    '3',
    '--max-session',
    '1',
  ])
  assert.equal(refused.code, 1)
  assert.equal(refused.json.code, 'POLICY_DENIED')
  const shown = await cli(['charge', 'wallet', '--wallet', 'car'])
  assert.equal(shown.json.spentToday, parseEther('2.5').toString())
  const listed = await cli(['charge', 'channels', '--wallet', 'car'])
  assert.deepEqual(listed.json, { channels: [] })
})
