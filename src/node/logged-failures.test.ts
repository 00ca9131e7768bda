/**
 * Failures are logged, not swallowed (issue 19 #19): the indexer's timed pass against an RPC
 * endpoint nobody answers on, and a request that fails inside the node, show up in the structured
 * log.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createPublicClient, createWalletClient, http } from 'viem'
import { foundry } from 'viem/chains'
import { freshDatabase } from '../../test/database.ts'
import { developmentAccount } from '../chain/clients.ts'
import type { Deployment } from '../chain/deploy.ts'
import { captureLogs } from '../log.ts'
import type { NodeContext } from './context.ts'
import { startChainIndexer } from './indexer.ts'
import { createServer } from './server.ts'

test('a failed background sync (RPC unreachable) is logged with its error', async () => {
  const db = await freshDatabase('pglite')
  const rpcUrl = 'http://127.0.0.1:1' // nothing listens on port 1
  const transport = http(rpcUrl, { retryCount: 0 })
  const account = developmentAccount(0)
  const clients = {
    chain: foundry,
    rpcUrl,
    account,
    publicClient: createPublicClient({ chain: foundry, transport }),
    walletClient: createWalletClient({ chain: foundry, transport, account }),
  } as NodeContext['clients']
  const registry = '0x5FbDB2315678afecb367f032d93F642f64180aa3'
  const deployment = {
    contracts: { VehicleRegistry: { address: registry, blockNumber: 0 } },
  } as unknown as Deployment
  const capture = captureLogs()
  const indexer = startChainIndexer(
    {
      db,
      clients,
      deployment,
      contracts: { VehicleRegistry: registry } as unknown as NodeContext['contracts'],
    },
    { pollMs: 20 },
  )
  try {
    const failed = () => capture.records.find((r) => r.component === 'node.indexer' && r.level >= 50)
    for (let i = 0; i < 500 && !failed(); i++) await new Promise((resolve) => setTimeout(resolve, 20))
    const record = failed()
    assert.ok(record, 'the failed sync is logged as an error')
    assert.match(record.msg, /sync/)
    assert.ok(record.err?.message, 'the record carries the error')
  } finally {
    await indexer.stop()
    capture.restore()
    await db.close()
  }
})

test('a request that fails inside the node is logged; a caller mistake is not', async () => {
  const app = await createServer({
    version: 'test',
    chain: () => ({
      chainId: 31337,
      rpcUrl: 'http://127.0.0.1:1',
      contracts: {} as NodeContext['contracts'],
    }),
    health: async () => ({}),
    rateLimit: false,
    routes: [
      (server) => {
        server.get('/boom', async () => {
          throw new TypeError('a bug in a route')
        })
      },
    ],
  })
  const capture = captureLogs()
  try {
    assert.equal((await app.inject({ url: '/boom?secret=1' })).statusCode, 500)
    assert.equal((await app.inject({ url: '/nothing-here' })).statusCode, 404)
  } finally {
    capture.restore()
    await app.close()
  }
  const errors = capture.records.filter((r) => r.component === 'node.http')
  assert.equal(errors.length, 1)
  assert.equal(errors[0]!.err?.message, 'a bug in a route')
  assert.equal(errors[0]!.url, '/boom')
})
