/**
 * The real node publishes its log in C2SP form (docs/transparency.md): `GET /v1/chain` names the
 * origin and verifier key, `/log/checkpoint` is a signed note that key verifies, and the note key
 * made on first start stays the node's across restarts and origins.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { loadConfig } from '../src/config.ts'
import { isErrorCode } from '../src/errors.ts'
import { openCheckpointNote } from '../src/ledger/note.ts'
import { type RunningNode, startNode } from '../src/node/up.ts'

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
  assert.equal(first.log.origin, `carchain.local/${node.chain.chainId}/${anchor}/${node.context.logId}`)
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
