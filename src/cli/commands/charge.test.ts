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
import { captureStdout, chargeStationArgs, commonArgs, identityArgs, pemFile } from './charge.testkit.ts'

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
  const out = captureStdout()
  try {
    const code = await runCli(
      [...args, ...commonArgs(chain.anvil.rpcUrl, join(dir, 'data'), join(dir, 'keys'))],
      new AbortController().signal,
    )
    return { code, json: JSON.parse(out.text) as Record<string, unknown> }
  } finally {
    out.restore()
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

test('carchain charge station and charge session over mutual TLS, settled by the final claim', async () => {
  const { aPki } = await import('../../identity/pki.testkit.ts')
  const { keyStoreAccount } = await import('../../identity/account.ts')
  const { evseIdHash } = await import('../../payments/charger-check.ts')
  const { vehicleRegistryAbi } = await import('../../chain/generated/index.ts')
  const { createWalletClient, http } = await import('viem')
  const pki = await aPki()
  try {
    const { publicClient, walletClient } = chain.clients
    const registry = chain.deployment.contracts.VehicleRegistry.address
    const token = chain.deployment.contracts.Token.address
    const wait = (hash: `0x${string}`) => publicClient.waitForTransactionReceipt({ hash })
    const evseId = 'DE*CLI*E00001'
    const charger = await pki.aCharger({ evseId })
    const vehicle = await pki.aVehicle()
    const chargerWallet = await keyStoreAccount(
      pki.store,
      await pki.store.generate('secp256k1', 'charger-wallet'),
    )
    const cpo = await keyStoreAccount(pki.store, await pki.store.generate('secp256k1', 'cpo'))
    // The car pays from the wallet its certificate binds (the station checks that).
    const car = await keyStoreAccount(pki.store, vehicle.walletRef)
    for (const to of [cpo.address, car.address])
      await wait(await walletClient.sendTransaction({ to, value: parseEther('1') }))
    await wait(
      await walletClient.writeContract({
        address: token,
        abi: demoTokenAbi,
        functionName: 'mint',
        args: [car.address, parseEther('100')],
      }),
    )
    await wait(
      await walletClient.writeContract({
        address: registry,
        abi: vehicleRegistryAbi,
        functionName: 'setCpo',
        args: [cpo.address, true],
      }),
    )
    const cpoClient = createWalletClient({
      chain: chain.clients.chain,
      transport: http(chain.anvil.rpcUrl),
      account: cpo,
    })
    await wait(
      await cpoClient.writeContract({
        address: registry,
        abi: vehicleRegistryAbi,
        functionName: 'registerCharger',
        args: [chargerWallet.address, `0x${charger.cert.fingerprint}`, evseIdHash(evseId)],
      }),
    )
    const common = commonArgs(chain.anvil.rpcUrl, join(dir, 'data'), pki.dir)
    const out = captureStdout()
    const stop = new AbortController()
    try {
      const station = runCli(
        [...chargeStationArgs(dir, pki, charger, evseId), '--power-w', '300000', '--fee', '0.5', ...common],
        stop.signal,
      )
      let port: string | undefined
      for (let i = 0; i < 200 && !port; i++) {
        port = /listening on TLS port (\d+)/.exec(out.text)?.[1]
        if (!port) await new Promise((resolve) => setTimeout(resolve, 50))
      }
      assert.ok(port, `the station did not start: ${out.text}`)
      out.clear()
      const sessionCode = await runCli(
        [
          'charge',
          'session',
          '--wallet',
          vehicle.walletRef.slice('keystore:'.length),
          ...identityArgs(dir, 'car', vehicle, pki.oem.sub),
          '--cpo-root',
          pemFile(dir, 'cpo-root.pem', pki.cpo.root),
          '--link',
          `127.0.0.1:${port}`,
          '--stop-at-wh',
          '200',
          ...common,
        ],
        new AbortController().signal,
      )
      const session = JSON.parse(out.text.trim().split('\n').at(-1)!) as Record<string, unknown>
      assert.equal(sessionCode, 0, out.text)
      assert.equal(session.evseId, evseId)
      assert.equal(session.channelAction, 'opened')
      stop.abort('SIGTERM')
      assert.equal(await station, 0)
    } finally {
      out.restore()
      stop.abort()
    }
    // The station's final claim paid the CPO exactly what the car signed.
    const paid = await publicClient.readContract({
      address: token,
      abi: demoTokenAbi,
      functionName: 'balanceOf',
      args: [cpo.address],
    })
    assert.ok(paid > 0n)
  } finally {
    await pki.cleanup()
  }
})

test('carchain charge claim from the operator’s database book; --book and --database exclude each other', async (t) => {
  const { requirePart } = await import('../../../test/skip.ts')
  if (!requirePart(t, Boolean(process.env.DATABASE_URL), 'needs a PostgreSQL server (DATABASE_URL)')) return
  const { openDatabase } = await import('../../db/database.ts')
  const { randomBytes } = await import('node:crypto')
  // A schema of its own, so the migration touches nothing else on the server.
  const schema = `test_${randomBytes(6).toString('hex')}`
  const admin = await openDatabase({ engine: 'postgres', url: process.env.DATABASE_URL!, maxConnections: 1 })
  await admin.exec(`create schema ${schema}`)
  try {
    const url = new URL(process.env.DATABASE_URL!)
    url.searchParams.set('options', `-c search_path=${schema}`)
    await cli(['charge', 'wallet', '--wallet', 'cpo'])
    const claimed = await cli(['charge', 'claim', '--cpo-key', 'cpo', '--database', url.toString()])
    assert.equal(claimed.code, 0, JSON.stringify(claimed.json))
    assert.deepEqual(claimed.json, { claims: [] })
    const { rows } = await admin.query(
      `select count(*)::int as n from information_schema.tables where table_schema = $1 and table_name = 'station_channel_holds'`,
      [schema],
    )
    assert.equal(rows[0]?.n, 1, 'the book’s tables were migrated')
    const both = await cli([
      'charge',
      'claim',
      '--cpo-key',
      'cpo',
      '--database',
      url.toString(),
      '--book',
      join(dir, 'book.json'),
    ])
    assert.equal(both.code, 2)
    assert.equal(both.json.code, 'CLI_USAGE')
  } finally {
    await admin.exec(`drop schema ${schema} cascade`)
    await admin.close()
  }
})
