/**
 * Chain faults (docs/reliability.md, part 2), against a node on an "external" chain (`--rpc`):
 * an anvil this test controls, reached through a TCP proxy it can cut.
 * - The RPC goes away during anchoring: uploads go on, health says so, a car still opens for its
 *   grantee from its synced cache, and once the RPC is back the anchors resume with no gap.
 * - A reorg drops an anchor (evm_snapshot / evm_revert): the node anchors the root again.
 * - A reorg drops a revocation and the new branch holds a revokeAll at heights the car's cache
 *   had already scanned: the cache notices the reorg and re-syncs.
 * - Several senders share the operator account (a second process, mining by interval so
 *   transactions wait in the pool): nonce clashes fail one sender at most, and nothing wedges.
 *
 * Short mode: a 3 s outage and 2 racing rounds; soak: 30 s and 20 rounds.
 */
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { createPublicClient, http, parseEther } from 'viem'
import { type Anvil, rpc, startAnvil } from '../../src/chain/anvil.ts'
import { connectChain, developmentAccount } from '../../src/chain/clients.ts'
import { demoTokenAbi, vehicleRegistryAbi } from '../../src/chain/generated/index.ts'
import { AccessController } from '../../src/keys/access-control.ts'
import { ChainCache } from '../../src/keys/chain-cache.ts'
import { requestAccess } from '../../src/keys/link-client.ts'
import { LinkServer } from '../../src/keys/link-server.ts'
import { MemoryAccessRecorder } from '../../src/keys/recorder.ts'
import { aGrant, testPrivateKey } from '../../src/keys/testing.ts'
import { Scope } from '../../src/keys/typed-data.ts'
import { MemoryUseCounter } from '../../src/keys/use-counter.ts'
import { readAnchored } from '../../src/ledger/anchor.ts'
import { type SeededFleet, seedFleet } from '../fleet-fixture.ts'
import { call, sleep, soak, startTestNode, type TestNode, waitFor } from './harness.ts'
import { audit } from './log-checks.ts'
import { startTcpProxy, type TcpProxy } from './tcp-proxy.ts'

const OUTAGE_MS = soak ? 30_000 : 3000
let anvil: Anvil
let proxy: TcpProxy
let node: TestNode
let fleet: SeededFleet
const figures = {
  outageMs: 0,
  uploadsDuringOutage: 0,
  unlocksDuringOutage: 0,
  reorgs: 0,
  racedSenders: 0,
  retries: 0,
}

before(async () => {
  anvil = await startAnvil()
  proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(anvil.rpcUrl).port) })
  node = await startTestNode({
    rpc: `http://127.0.0.1:${proxy.port}`,
    env: {
      CARCHAIN_OPERATOR_KEY: testPrivateKey(0),
      CARCHAIN_ANCHOR_INTERVAL_MS: '500',
      CARCHAIN_ANCHOR_EVERY: '1000000',
    },
  })
  fleet = await seedFleet(node, 1)
})

after(async () => {
  await fleet?.cleanup()
  await node?.cleanup()
  await proxy?.close()
  await anvil?.stop()
})

const chainLatest = () => readAnchored(node.clients, node.context.contracts.LedgerAnchor, node.context.logId)
const checkpoint = async () => (await call(`${node.url}/v1/log/checkpoint`)).body

/** Waits until the chain's latest anchor is the log's whole tree. */
async function anchoredThrough(what: string, timeoutMs = 120_000) {
  return waitFor(
    what,
    async () => {
      const [log, onChain] = await Promise.all([checkpoint(), chainLatest()])
      return onChain.treeSize === log.treeSize && onChain.rootHash === log.rootHash ? onChain : undefined
    },
    timeoutMs,
    250,
  )
}

test('the RPC down during anchoring: uploads and offline unlocks go on, anchors resume with no gap', async (t) => {
  const car = fleet.cars[0]!
  const owner = developmentAccount(car.ownerIndex)
  const grantee = developmentAccount(7)
  const domain = { chainId: node.chain.chainId, keyRegistry: node.context.contracts.KeyRegistry }
  // The car's side: its cache of owner, epoch and revocations, synced through the same proxy.
  const cache = new ChainCache({
    client: createPublicClient({
      transport: http(`http://127.0.0.1:${proxy.port}`, { retryCount: 0, timeout: 3000 }),
    }),
    chainId: node.chain.chainId,
    vehicleRegistry: node.context.contracts.VehicleRegistry,
    keyRegistry: node.context.contracts.KeyRegistry,
    vehicle: car.vehicle,
  })
  await cache.sync()
  assert.ok(cache.isOwnerOrManager(owner.address.toLowerCase() as `0x${string}`), 'the cache knows the owner')
  const link = new LinkServer({
    vehicle: car.vehicle,
    controller: new AccessController({
      vehicle: car.vehicle,
      domain,
      state: cache,
      uses: new MemoryUseCounter(),
    }),
    recorder: new MemoryAccessRecorder(car.vehicle),
  })
  const linkUrl = await link.listen()
  t.after(() => link.close())
  const grant = await aGrant({ signer: owner, domain, vehicle: car.vehicle, grantee: grantee.address })

  await fleet.drive(car)
  await anchoredThrough('the first anchor')

  proxy.cut()
  const cutAt = Date.now()
  try {
    await fleet.drive(car)
    figures.uploadsDuringOutage++
    const health = await waitFor('health to report the chain down', async () => {
      const h = (await call(`${node.url}/v1/health`)).body
      return h.parts.chain !== 'ok' && h.parts.anchoring !== 'ok' ? h : undefined
    })
    assert.equal(health.status, 'degraded')
    await assert.rejects(cache.sync(), (error: { code?: string }) => error.code === 'CHAIN_UNREACHABLE')
    // At least two unlocks while cut, however long noticing the outage took on a slow machine.
    for (let i = 0; (i < 2 || Date.now() - cutAt < OUTAGE_MS) && i < 1000; i++) {
      const answer = await requestAccess({
        link: linkUrl,
        signer: grantee,
        domain,
        grant,
        action: Scope.UNLOCK,
      })
      assert.equal(answer.code, 'OK', 'the car decides from its cache while the chain is away')
      figures.unlocksDuringOutage++
      await fleet.drive(car)
      figures.uploadsDuringOutage++
      await sleep(500)
    }
    const during = await chainLatest().catch(() => undefined)
    assert.equal(during, undefined, 'the proxy really cut the chain off')
  } finally {
    figures.outageMs = Date.now() - cutAt
    proxy.restore()
  }
  const resumed = await anchoredThrough('anchoring to resume')
  const log = await checkpoint()
  assert.equal(resumed.treeSize, log.treeSize)
  const result = await audit(node.url)
  assert.equal(result.consistent, true, JSON.stringify(result))
  assert.equal((await call(`${node.url}/v1/health`)).body.status, 'ok')
})

test('a reorg that drops an anchor: the node anchors the root again', async () => {
  const car = fleet.cars[0]!
  await anchoredThrough('a settled anchor')
  const before = await chainLatest()
  const snapshotId = await rpc<string>(anvil.rpcUrl, 'evm_snapshot', [])
  await fleet.drive(car)
  await node.anchoring.anchorNow()
  const dropped = await chainLatest()
  assert.ok(dropped.treeSize > before.treeSize)
  assert.equal(await rpc<boolean>(anvil.rpcUrl, 'evm_revert', [snapshotId]), true)
  assert.equal((await chainLatest()).treeSize, before.treeSize, 'the reorg dropped the anchor')
  figures.reorgs++
  // No new events arrive: the node must notice by itself that the chain lost its anchor.
  const again = await anchoredThrough('the dropped root to be anchored again', 60_000)
  assert.equal(again.treeSize, dropped.treeSize)
  assert.equal(again.rootHash, dropped.rootHash)
  const result = await audit(node.url)
  assert.equal(result.consistent, true, JSON.stringify(result))
})

test('a reorg that drops a revocation: the car’s cache re-syncs to the new branch', async () => {
  const car = fleet.cars[0]!
  const owner = await connectChain({ rpcUrl: anvil.rpcUrl, account: developmentAccount(car.ownerIndex) })
  const cache = new ChainCache({
    client: createPublicClient({ transport: http(anvil.rpcUrl, { retryCount: 0 }) }),
    chainId: node.chain.chainId,
    vehicleRegistry: node.context.contracts.VehicleRegistry,
    keyRegistry: node.context.contracts.KeyRegistry,
    vehicle: car.vehicle,
  })
  await cache.sync()
  const epochBefore = cache.epoch()
  const keyRegistry = { address: node.context.contracts.KeyRegistry, abi: vehicleRegistryAbi } as const
  const send = async (functionName: 'revoke' | 'revokeAll', args: readonly unknown[]) => {
    const hash = await owner.walletClient.writeContract({ ...keyRegistry, functionName, args } as never)
    await owner.publicClient.waitForTransactionReceipt({ hash })
  }
  const grantId = `0x${'5e'.repeat(32)}` as const
  const snapshotId = await rpc<string>(anvil.rpcUrl, 'evm_snapshot', [])
  await send('revoke', [car.vehicle, grantId])
  await rpc(anvil.rpcUrl, 'anvil_mine', ['0x3'])
  await cache.sync()
  assert.equal(cache.isRevoked(grantId), true)
  // The branch with the revocation is dropped; the owner's next act (revoke every key) lands at
  // heights the cache has already scanned on the old branch.
  assert.equal(await rpc<boolean>(anvil.rpcUrl, 'evm_revert', [snapshotId]), true)
  figures.reorgs++
  await send('revokeAll', [car.vehicle])
  await rpc(anvil.rpcUrl, 'anvil_mine', ['0x8'])
  await cache.sync()
  assert.equal(cache.epoch(), epochBefore + 1, 'the cache saw the revokeAll of the new branch')
  // A revocation the car once saw stays (fail-safe): the owner meant it; it is re-sent if needed.
  assert.equal(cache.isRevoked(grantId), true)
  // The node's anchors survive the same reorg.
  await anchoredThrough('the anchors after the revocation reorg', 60_000)
})

test('several senders from one account race the anchoring: nonce clashes wedge nothing', async () => {
  const car = fleet.cars[0]!
  // A second process with the operator's key (another node, the CLI), sending through the proxy.
  const other = await connectChain({
    rpcUrl: `http://127.0.0.1:${proxy.port}`,
    account: developmentAccount(0),
  })
  // Transactions wait in the pool for a block, so concurrent senders pick the same nonce.
  await rpc(anvil.rpcUrl, 'evm_setAutomine', [false])
  await rpc(anvil.rpcUrl, 'evm_setIntervalMining', [1])
  try {
    const mint = async (n: number) => {
      for (let attempt = 0; attempt < 8; attempt++) {
        try {
          const hash = await other.walletClient.writeContract({
            address: node.context.contracts.Token,
            abi: demoTokenAbi,
            functionName: 'mint',
            args: [developmentAccount(10 + n).address, parseEther('1')],
          } as never)
          const receipt = await other.publicClient.waitForTransactionReceipt({ hash, timeout: 60_000 })
          assert.equal(receipt.status, 'success')
          return
        } catch {
          figures.retries++
          await sleep(300 + 200 * attempt)
        }
      }
      assert.fail(`mint ${n} never went through`)
    }
    for (let round = 0; round < (soak ? 20 : 2); round++) {
      await fleet.drive(car)
      // The scheduler's own attempt, an explicit one, and four other transactions, all at once.
      const results = await Promise.allSettled([
        node.anchoring.anchorNow(),
        mint(round * 4),
        mint(round * 4 + 1),
        mint(round * 4 + 2),
        mint(round * 4 + 3),
      ])
      figures.racedSenders += results.length
      for (const result of results.slice(1))
        assert.equal(result.status, 'fulfilled', String((result as PromiseRejectedResult).reason))
      // The anchor may have lost the race; the scheduler must get it through on its own.
      await anchoredThrough(`the anchor after race ${round}`, 120_000)
    }
  } finally {
    await rpc(anvil.rpcUrl, 'evm_setIntervalMining', [0])
    await rpc(anvil.rpcUrl, 'evm_setAutomine', [true])
  }
  // And the node's own sends still work afterwards.
  await fleet.drive(car)
  await node.anchoring.anchorNow()
  await anchoredThrough('an anchor after the races')
  const result = await audit(node.url)
  assert.equal(result.consistent, true, JSON.stringify(result))
})

test('figures', (t) => {
  t.diagnostic(
    `chain faults: RPC cut for ${figures.outageMs} ms with ${figures.uploadsDuringOutage} uploads and ${figures.unlocksDuringOutage} offline unlocks accepted meanwhile; ${figures.reorgs} reorg(s) re-anchored; ${figures.racedSenders} racing senders, ${figures.retries} sender retries; audits consistent`,
  )
})
