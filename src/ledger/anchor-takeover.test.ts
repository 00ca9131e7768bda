/**
 * Attack (issue 19 #4): log ids are public (GET /v1/log/checkpoint), and the first account to
 * anchor an id used to become its operator, so a stranger anchoring the node's id before the node
 * did stopped its anchoring for good. A log id now names its operator (its first 20 bytes), the
 * contract refuses a first anchor from anyone else, and the node says clearly, without sending a
 * doomed transaction, when it cannot anchor under its id.
 */
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { startTestChain, type TestChain } from '../../test/chain.ts'
import { freshDatabase } from '../../test/database.ts'
import { ledgerAnchorAbi } from '../chain/generated/index.ts'
import { BaseError } from '../errors.ts'
import { anchorLog, createLogId, getLogId, readAnchored } from './anchor.ts'
import { createBatch } from './batch.ts'
import { toHex } from './bytes.ts'
import { createEventChain } from './envelope.ts'
import { ingestBatch } from './ingest.ts'
import { aP256Signer } from './testing.ts'

let chain: TestChain
before(async () => {
  chain = await startTestChain()
})
after(() => chain.stop())

/** A database with a few signed events in its log. */
async function aLogWithEvents() {
  const db = await freshDatabase('pglite')
  const key = aP256Signer()
  const events = createEventChain({ vehicle: '0x00000000000000000000000000000000000000bb' })
  const built = [0, 1, 2].map((i) =>
    events.append({ kind: 'telemetry', time: 1_700_000_000_000 + i, data: { i } }),
  )
  await ingestBatch(db, {
    batch: await createBatch({ events: built, signer: key.signer }),
    resolveVehicleKey: async () => key.publicKey,
  })
  return db
}

const isCode = (code: string) => (error: unknown) => error instanceof BaseError && error.code === code

test('a stranger anchoring the node’s log id first is refused; the node anchors as usual', async () => {
  const db = await aLogWithEvents()
  try {
    const contract = chain.deployment.contracts.LedgerAnchor.address
    const logId = await getLogId(db, chain.clients.account.address)
    const stranger = await chain.as(7)
    await assert.rejects(
      stranger.walletClient.writeContract({
        address: contract,
        abi: ledgerAnchorAbi,
        functionName: 'anchor',
        args: [logId, 1n, toHex(new Uint8Array(32).fill(7)), []],
      }),
      /LedgerAnchorUnauthorized/,
    )
    const result = await anchorLog({ db, clients: chain.clients, contract, logId, holder: 'a' })
    assert.equal(result.status, 'anchored')
    assert.equal((await readAnchored(chain.clients, contract, logId)).treeSize, 3)
  } finally {
    await db.close()
  }
})

test('a log id the node cannot anchor under is told clearly, before any transaction', async () => {
  const db = await aLogWithEvents()
  try {
    const contract = chain.deployment.contracts.LedgerAnchor.address
    const stranger = await chain.as(7)
    // An id bound to another account (e.g. a database moved to a node with another key)…
    const theirs = createLogId(stranger.account.address)
    const nonce = await chain.clients.publicClient.getTransactionCount({
      address: chain.clients.account.address,
    })
    await assert.rejects(
      anchorLog({ db, clients: chain.clients, contract, logId: theirs, holder: 'a' }),
      isCode('ANCHOR_LOG_TAKEN'),
    )
    // …and one its operator already anchors: neither costs a transaction.
    await stranger.walletClient.writeContract({
      address: contract,
      abi: ledgerAnchorAbi,
      functionName: 'anchor',
      args: [theirs, 1n, toHex(new Uint8Array(32).fill(9)), []],
    })
    await assert.rejects(
      anchorLog({ db, clients: chain.clients, contract, logId: theirs, holder: 'a' }),
      isCode('ANCHOR_LOG_TAKEN'),
    )
    assert.equal(
      await chain.clients.publicClient.getTransactionCount({ address: chain.clients.account.address }),
      nonce,
    )
  } finally {
    await db.close()
  }
})
