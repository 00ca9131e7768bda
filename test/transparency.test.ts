/**
 * The real node publishes its log in C2SP form (docs/transparency.md): `GET /v1/chain` names the
 * origin and verifier key, `/log/checkpoint` is a signed note that key verifies, and the note key
 * made on first start stays the node's across restarts and origins.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { loadConfig } from '../src/config.ts'
import type { Database } from '../src/db/database.ts'
import { isErrorCode } from '../src/errors.ts'
import { getLogId, logIdOfOrigin } from '../src/ledger/anchor.ts'
import { openCheckpointNote } from '../src/ledger/note.ts'
import { logIdentity } from '../src/node/transparency.ts'
import { type RunningNode, startNode } from '../src/node/up.ts'
import { engines, freshDatabase } from './database.ts'

const dataDir = mkdtempSync(join(tmpdir(), 'carchain-transparency-'))
let node: RunningNode | undefined
after(async () => {
  await node?.stop()
  rmSync(dataDir, { recursive: true, force: true })
})

const start = (flags: { logOrigin?: string } = {}) =>
  startNode({
    config: loadConfig({
      flags: { data: dataDir, port: 0, noSim: true, ...flags },
      env: { CARCHAIN_ANCHOR_INTERVAL_MS: '3600000' },
    }),
  })

async function published(running: RunningNode) {
  const chain = await (await fetch(`${running.url}/v1/chain`)).json()
  const response = await fetch(`${running.url}/log/checkpoint`)
  assert.equal(response.headers.get('content-type'), 'text/plain; charset=utf-8')
  return { log: chain.log as { origin: string; verifierKey: string }, note: await response.text() }
}

test('the node signs its checkpoints with the note key of its data dir, under the configured origin', async () => {
  node = await start()
  const first = await published(node)
  const anchor = node.chain.contracts.LedgerAnchor!.toLowerCase()
  assert.match(
    first.log.origin,
    new RegExp(`^carchain\\.local/${node.chain.chainId}/${anchor}/[0-9a-f]{24}$`),
  )
  // The log id on chain is derived from the origin: operator address ‖ SHA-256(origin)[:12].
  assert.equal(node.context.logId, logIdOfOrigin(node.clients.account.address, first.log.origin))
  const logId = node.context.logId
  assert.ok(first.log.verifierKey.startsWith(`${first.log.origin}+`))
  const checkpoint = openCheckpointNote(first.note, first.log.verifierKey)
  assert.equal(checkpoint.origin, first.log.origin)
  assert.equal(checkpoint.treeSize, 0)
  // Beside the dashboard's deep links, a path under /log/ is never answered with the app's page.
  for (const path of ['/log', '/log/', '/log/checkpoint/x', '/log/tile', '/log/tile/']) {
    const response = await fetch(`${node.url}${path}`)
    assert.ok([400, 404].includes(response.status), `${path}: ${response.status}`)
    assert.match((await response.json()).code, /^(NOT_FOUND|INVALID_ARGUMENT)$/)
  }
  await node.stop()

  node = await start({ logOrigin: 'fleet.example/carchain' })
  const second = await published(node)
  assert.equal(second.log.origin, 'fleet.example/carchain')
  // A later origin changes what the checkpoints carry, not the log id the anchors are under.
  assert.equal(node.context.logId, logId)
  // The same Ed25519 key (made once, kept in the data dir) under another name and key id.
  assert.equal(second.log.verifierKey.split('+')[2], first.log.verifierKey.split('+')[2])
  assert.equal(openCheckpointNote(second.note, second.log.verifierKey).origin, 'fleet.example/carchain')
  assert.throws(
    () => openCheckpointNote(second.note, first.log.verifierKey),
    (error) => isErrorCode(error, 'NOTE_INVALID'),
  )
})

test('attack: an origin that would break the note format is refused at start', () => {
  for (const origin of ['has space', 'a+b', 'line\nbreak', '—dash', 'x'.repeat(256)])
    assert.throws(
      () => loadConfig({ flags: { data: dataDir, logOrigin: origin }, env: {} }),
      (error) => isErrorCode(error, 'CONFIG_INVALID'),
      origin,
    )
})

test('the log id: a new database derives it from its origin; an older one keeps its random id and origin', async () => {
  const operator = '0x1111111111111111111111111111111111111111'
  const anchor = '0x2222222222222222222222222222222222222222'
  const ask = (db: Database, configuredOrigin?: string) =>
    logIdentity(db, { operator, chainId: 31337, ledgerAnchor: anchor, configuredOrigin })
  const db = await freshDatabase(engines.at(-1)!)
  try {
    const made = await ask(db, 'fleet.example/x')
    assert.deepEqual(made, {
      logId: logIdOfOrigin(operator, 'fleet.example/x'),
      origin: 'fleet.example/x',
      derivedFrom: 'fleet.example/x',
    })
    assert.equal(
      made.logId.slice(0, 42),
      operator,
      'the first 20 bytes name the only account that may claim it',
    )
    assert.equal(
      made.logId.slice(42),
      createHash('sha256').update('fleet.example/x').digest('hex').slice(0, 24),
      'then SHA-256(origin)[:12]',
    )
    assert.deepEqual(await ask(db), made, 'the origin is kept without the flag')
    assert.deepEqual(await ask(db, 'fleet.example/y'), { ...made, origin: 'fleet.example/y' })
  } finally {
    await db.close()
  }
  const legacy = await freshDatabase(engines.at(-1)!)
  try {
    const logId = await getLogId(legacy, operator)
    assert.deepEqual(await ask(legacy), {
      logId,
      origin: `carchain.local/31337/${anchor}/${logId}`,
      derivedFrom: undefined,
    })
  } finally {
    await legacy.close()
  }
})
