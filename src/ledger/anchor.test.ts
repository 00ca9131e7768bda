import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { startTestChain, type TestChain } from '../../test/chain.ts'
import { freshDatabase } from '../../test/database.ts'
import { rpc } from '../chain/anvil.ts'
import { ledgerAnchorAbi } from '../chain/generated/index.ts'
import type { Database } from '../db/database.ts'
import { BaseError } from '../errors.ts'
import { anchorLog, anchorShards, getLogId, listAnchors, readAnchored, takeAnchorLease } from './anchor.ts'
import { createBatch } from './batch.ts'
import { createEventChain } from './envelope.ts'
import { ingestBatch } from './ingest.ts'
import { ensureShards, shardLogId, shardOfVehicle, withShard } from './shards.ts'
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

test('anchorShards: every shard that grew in one transaction; a shard with another history stops it before anything is sent', async () => {
  const honest = await freshDatabase('pglite')
  const rewritten = await freshDatabase('pglite')
  try {
    const contract = chain.deployment.contracts.LedgerAnchor.address
    await ensureShards(honest, 3)
    await ensureShards(rewritten, 3)
    const logId = await getLogId(honest, chain.clients.account.address)
    const logIds = [0, 1, 2].map((shard) => shardLogId(logId, shard))
    // A vehicle of shard 0 and one of shard 2; shard 1 stays empty.
    const inShard = (shard: number) => {
      for (let n = 1; ; n++) {
        const candidate = `0x${n.toString(16).padStart(40, '0')}`
        if (shardOfVehicle(candidate, 3) === shard) return candidate
      }
    }
    const key = aP256Signer()
    const cars = [0, 2].map((shard) => ({ shard, events: createEventChain({ vehicle: inShard(shard) }) }))
    for (const car of cars) await appendEvents(withShard(honest, car.shard), car.events, 4 + car.shard, key)
    const step = () => anchorShards({ db: honest, clients: chain.clients, contract, logIds, holder: 'a' })

    const first = await step()
    assert.ok(first.status === 'anchored')
    assert.deepEqual(
      first.anchors.map((a) => [a.shard, a.treeSize]),
      [
        [0, 4],
        [2, 6],
      ],
    )
    assert.ok(
      first.anchors.every((a) => a.txHash === first.txHash),
      'one transaction',
    )
    for (const shard of [0, 2])
      assert.deepEqual(
        await readAnchored(chain.clients, contract, logIds[shard]!),
        await getCheckpoint(withShard(honest, shard)),
      )
    assert.equal((await readAnchored(chain.clients, contract, logIds[1]!)).treeSize, 0)
    assert.deepEqual(
      (await listAnchors(withShard(honest, 2))).map((a) => a.treeSize),
      [6],
    )

    // Only the shard that grew is in the next transaction.
    await appendEvents(withShard(honest, 2), cars[1]!.events, 3, key)
    const second = await step()
    assert.ok(second.status === 'anchored')
    assert.deepEqual(
      second.anchors.map((a) => [a.shard, a.previousSize, a.treeSize]),
      [[2, 6, 9]],
    )
    assert.equal((await step()).status, 'up-to-date')

    // Attack: a database holding another history of shard 0 under the same log ids (and a grown
    // shard 2): ANCHOR_MISMATCH, and not even the honest-looking shard is sent.
    await rewritten.query("update node_settings set value = $1 where key = 'logId'", [JSON.stringify(logId)])
    await rewritten.query(
      "insert into node_settings (key, value) values ('logId', $1) on conflict do nothing",
      [JSON.stringify(logId)],
    )
    await appendEvents(withShard(rewritten, 0), createEventChain({ vehicle: inShard(0) }), 5, key)
    await appendEvents(withShard(rewritten, 2), createEventChain({ vehicle: inShard(2) }), 12, key)
    await assert.rejects(
      anchorShards({ db: rewritten, clients: chain.clients, contract, logIds, holder: 'a' }),
      (error: unknown) => error instanceof BaseError && error.code === 'ANCHOR_MISMATCH',
    )
    assert.equal((await readAnchored(chain.clients, contract, logIds[2]!)).treeSize, 9)
  } finally {
    await honest.close()
    await rewritten.close()
  }
})
