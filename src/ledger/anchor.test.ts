import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { startTestChain, type TestChain } from '../../test/chain.ts'
import { freshDatabase } from '../../test/database.ts'
import { rpc } from '../chain/anvil.ts'
import { ledgerAnchorAbi } from '../chain/generated/index.ts'
import type { Database } from '../db/database.ts'
import { BaseError } from '../errors.ts'
import { anchorLog, getLogId, listAnchors, readAnchored, takeAnchorLease } from './anchor.ts'
import { createBatch } from './batch.ts'
import { createEventChain } from './envelope.ts'
import { ingestBatch } from './ingest.ts'
import { getCheckpoint } from './store.ts'
import { aP256Signer } from './testing.ts'

let chain: TestChain
before(async () => {
  chain = await startTestChain()
})
after(() => chain.stop())

const vehicle = '0x00000000000000000000000000000000000000aa'
let clockMs = 1_700_000_000_000

async function appendEvents(
  db: Database,
  events: ReturnType<typeof createEventChain>,
  count: number,
  key: ReturnType<typeof aP256Signer>,
) {
  const built = Array.from({ length: count }, (_, i) =>
    events.append({ kind: 'telemetry', time: clockMs++, data: { i } }),
  )
  await ingestBatch(db, {
    batch: await createBatch({ events: built, signer: key.signer }),
    resolveVehicleKey: async () => key.publicKey,
  })
}

test('anchors grow on chain with consistency proofs; a lost anchor is covered by the next one', async () => {
  const db = await freshDatabase('pglite')
  try {
    const contract = chain.deployment.contracts.LedgerAnchor.address
    const logId = await getLogId(db, chain.clients.account.address)
    assert.equal(await getLogId(db, chain.clients.account.address), logId, 'the log id is made once')
    const key = aP256Signer()
    const events = createEventChain({ vehicle })
    const step = () => anchorLog({ db, clients: chain.clients, contract, logId, holder: 'a' })

    assert.deepEqual(await step(), { status: 'up-to-date', treeSize: 0 })
    await appendEvents(db, events, 5, key)
    const first = await step()
    assert.equal(first.status, 'anchored')
    assert.deepEqual(await readAnchored(chain.clients, contract, logId), await getCheckpoint(db))

    await appendEvents(db, events, 7, key)
    const second = await step()
    assert.ok(second.status === 'anchored' && second.previousSize === 5 && second.proofLength > 0)
    assert.equal((await readAnchored(chain.clients, contract, logId)).treeSize, 12)

    // The chain loses its last blocks (as a crashed embedded chain or a reorg would): revert.
    const snapshot = await rpc<string>(chain.anvil.rpcUrl, 'evm_snapshot')
    await appendEvents(db, events, 3, key)
    assert.equal((await step()).status, 'anchored')
    await rpc(chain.anvil.rpcUrl, 'evm_revert', [snapshot])
    assert.equal((await readAnchored(chain.clients, contract, logId)).treeSize, 12)
    await appendEvents(db, events, 2, key)
    const healed = await step()
    assert.ok(healed.status === 'anchored' && healed.previousSize === 12 && healed.anchor.treeSize === 17)
    assert.deepEqual(
      (await listAnchors(db)).map((a) => a.treeSize),
      [17, 12, 5],
      'the lost anchor at 15 is gone from the history, 17 covers it',
    )
    assert.equal(await step().then((r) => r.status), 'up-to-date')
  } finally {
    await db.close()
  }
})

test('a database whose log is not what the chain anchored is refused with ANCHOR_MISMATCH', async () => {
  const honest = await freshDatabase('pglite')
  const rewritten = await freshDatabase('pglite')
  try {
    const contract = chain.deployment.contracts.LedgerAnchor.address
    const logId = await getLogId(honest, chain.clients.account.address)
    const key = aP256Signer()
    await appendEvents(honest, createEventChain({ vehicle }), 4, key)
    await anchorLog({ db: honest, clients: chain.clients, contract, logId, holder: 'a' })
    // Another history under the same log id: different events at the same positions.
    await appendEvents(rewritten, createEventChain({ vehicle }), 6, key)
    await assert.rejects(
      anchorLog({ db: rewritten, clients: chain.clients, contract, logId, holder: 'a' }),
      (error: unknown) => error instanceof BaseError && error.code === 'ANCHOR_MISMATCH',
    )
    // And the chain itself refuses a root that is not an extension, whoever sends it.
    await assert.rejects(
      chain.clients.walletClient.writeContract({
        address: contract,
        abi: ledgerAnchorAbi,
        functionName: 'anchor',
        args: [logId, 6n, (await getCheckpoint(rewritten)).rootHash, []],
      }),
      /LedgerAnchorInvalidProof/,
    )
  } finally {
    await honest.close()
    await rewritten.close()
  }
})

test('one anchoring leader at a time; a dead leader’s lease runs out', async () => {
  const db = await freshDatabase('pglite')
  try {
    assert.equal(await takeAnchorLease(db, 'node-1', 200), true)
    assert.equal(await takeAnchorLease(db, 'node-2', 200), false)
    assert.equal(await takeAnchorLease(db, 'node-1', 200), true, 'the leader renews')
    await new Promise((resolve) => setTimeout(resolve, 250))
    assert.equal(await takeAnchorLease(db, 'node-2', 200), true, 'the lease expired')
  } finally {
    await db.close()
  }
})
