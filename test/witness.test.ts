/**
 * Witnesses end to end (docs/transparency.md "Witnesses"): `carchain witness`'s HTTP server speaks
 * c2sp.org/tlog-witness (statuses, the 409 size body, the monitoring read), the node's publisher
 * submits each new checkpoint with its consistency proof, recovers the witness's size from a 409,
 * publishes the cosigned checkpoint (and writes it to the tiles dir), and a log that went back is
 * not cosigned; the embedded demo runs a witness whose cosignature is on `/log/checkpoint`.
 */
import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { loadConfig } from '../src/config.ts'
import type { Database } from '../src/db/database.ts'
import { isErrorCode } from '../src/errors.ts'
import { createEventChain, type VehicleAddress } from '../src/ledger/envelope.ts'
import {
  noteSigner,
  noteTextOf,
  openCheckpointNote,
  signCheckpointNote,
  verifierKey,
  verifyCosignatures,
} from '../src/ledger/note.ts'
import { appendBatch, getCheckpoint, getRootAt } from '../src/ledger/store.ts'
import { originHash } from '../src/ledger/witness.ts'
import { createCheckpointPublisher } from '../src/node/checkpoints.ts'
import { type RunningWitness, startWitness } from '../src/node/witness-server.ts'
import { addCheckpointBody, parseWitness, submitToWitness } from '../src/node/witnesses.ts'
import { type RunningSystem, startSystem } from '../src/sim/system.ts'
import { freshDatabase } from './database.ts'

const vehicleAt = (n: number) => `0x${n.toString(16).padStart(40, '0')}` as VehicleAddress
const signatureLines = (note: string) => note.slice(noteTextOf(note).length + 1)

describe('a witness server and the node’s publisher', () => {
  const dir = mkdtempSync(join(tmpdir(), 'carchain-witness-server-'))
  const signer = noteSigner('carchain.test/witnessed', generateKeyPairSync('ed25519').privateKey)
  const logKey = verifierKey(signer.name, signer.publicKey)
  let db: Database
  let witness: RunningWitness
  const chain = createEventChain({ vehicle: vehicleAt(5) })
  let appended = 0
  const grow = async (count: number, into = db) => {
    const events = Array.from({ length: count }, (_, i) =>
      chain.append({ kind: 'telemetry', time: 1_000 + appended + i, data: { i: appended + i } }),
    )
    await appendBatch(into, {
      vehicle: chain.vehicle,
      events,
      checkpointSignature: new Uint8Array(64).fill(1),
    })
    appended += count
  }
  const start = () => startWitness({ dataDir: join(dir, 'witness'), name: 'witness.test/w1', logs: [logKey] })
  const post = (body: string) => fetch(`${witness.url}/add-checkpoint`, { method: 'POST', body })

  before(async () => {
    db = await freshDatabase('pglite')
    witness = await start()
  })
  after(async () => {
    await witness?.stop()
    await db?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('the publisher has each new checkpoint cosigned and publishes it with the cosignature', async () => {
    const tilesDir = join(dir, 'tiles')
    const configured = parseWitness(`${witness.url}=${witness.witness.verifierKey}`)
    const publisher = createCheckpointPublisher(db, { signer, witnesses: [configured], tilesDir })
    await grow(20)
    const first = await publisher.publishNow()
    assert.equal(openCheckpointNote(first, logKey).treeSize, 20)
    assert.equal(
      verifyCosignatures(signatureLines(first), noteTextOf(first), configured.verifierKey).length,
      1,
    )
    assert.equal(await publisher.current(), first, '/log/checkpoint serves the cosigned checkpoint')
    assert.equal(readFileSync(join(tilesDir, 'checkpoint'), 'utf8'), first, 'the tiles dir holds it too')
    await grow(13)
    const second = await publisher.publishNow()
    assert.equal(openCheckpointNote(second, logKey).treeSize, 33)
    assert.equal(
      verifyCosignatures(signatureLines(second), noteTextOf(second), configured.verifierKey).length,
      1,
    )
    // A restarted witness and a restarted node (which knows no size): a 409 names 33, the proof follows.
    await witness.stop()
    witness = await start()
    await grow(4)
    const restarted = parseWitness(`${witness.url}=${witness.witness.verifierKey}`)
    const lines = await submitToWitness(db, restarted, signCheckpointNote(await headOf(db), signer))
    assert.equal(lines.length, 1)
    assert.equal(restarted.knownSize, 37)
    // Monitors read the latest cosigned checkpoint at /<sha256(origin)>/checkpoint.
    const monitored = await fetch(`${witness.url}/${originHash(signer.name)}/checkpoint`)
    assert.equal(monitored.status, 200)
    assert.equal(openCheckpointNote(await monitored.text(), logKey).treeSize, 37)
    assert.equal((await fetch(`${witness.url}/${'0'.repeat(64)}/checkpoint`)).status, 404)
  })

  it('attack over HTTP: a rollback gets 409 with the size as text/x.tlog.size; the other refusals their status', async () => {
    const old = signCheckpointNote(await headOf(db, 10), signer)
    const rollback = await post(addCheckpointBody(0, [], old))
    assert.equal(rollback.status, 409)
    assert.equal(rollback.headers.get('content-type'), 'text/x.tlog.size')
    assert.equal(await rollback.text(), '37\n')
    const beyond = await post(addCheckpointBody(37, [], old))
    assert.equal(beyond.status, 400)
    assert.equal((await beyond.json()).code, 'INVALID_ARGUMENT')
    const stranger = noteSigner('stranger.test/log', generateKeyPairSync('ed25519').privateKey)
    const unknown = await post(addCheckpointBody(0, [], signCheckpointNote(await headOf(db, 10), stranger)))
    assert.equal(unknown.status, 404)
    assert.equal((await unknown.json()).code, 'WITNESS_LOG_UNKNOWN')
    const forged = noteSigner(signer.name, generateKeyPairSync('ed25519').privateKey)
    const unsigned = await post(addCheckpointBody(37, [], signCheckpointNote(await headOf(db), forged)))
    assert.equal(unsigned.status, 403)
    const fork = await post(
      addCheckpointBody(
        37,
        [],
        signCheckpointNote({ treeSize: 37, rootHash: new Uint8Array(32).fill(3) }, signer),
      ),
    )
    assert.equal(fork.status, 422)
    assert.equal((await fork.json()).code, 'WITNESS_INCONSISTENT')
    const huge = await post(`old 0\n\n${'x'.repeat(64 * 1024)}`).catch((error: Error) => error)
    assert.ok(huge instanceof Error || huge.status === 400, 'an oversized body is refused')
    assert.equal((await fetch(`${witness.url}/add-checkpoint`)).status, 400)
  })

  it('attack: a log that went back (a restored database) is not cosigned; its checkpoint is published without', async () => {
    const restored = await freshDatabase('pglite')
    try {
      // The same log key, a shorter log than the witness cosigned.
      const replay = createEventChain({ vehicle: vehicleAt(5) })
      await appendBatch(restored, {
        vehicle: replay.vehicle,
        events: [replay.append({ kind: 'telemetry', time: 1_000, data: { i: 0 } })],
        checkpointSignature: new Uint8Array(64).fill(1),
      })
      const configured = parseWitness(`${witness.url}=${witness.witness.verifierKey}`)
      await assert.rejects(
        submitToWitness(restored, configured, signCheckpointNote(await headOf(restored), signer)),
        (error) => isErrorCode(error, 'WITNESS_REFUSED') && /rolled back/.test((error as Error).message),
      )
      const publisher = createCheckpointPublisher(restored, { signer, witnesses: [configured] })
      const note = await publisher.publishNow()
      assert.equal(
        verifyCosignatures(signatureLines(note), noteTextOf(note), configured.verifierKey).length,
        0,
      )
    } finally {
      await restored.close()
    }
  })

  it('attack: --witness values that are not URL=cosigner key are refused at start', () => {
    const key = witness.witness.verifierKey
    for (const value of [
      'no-separator',
      `ftp://x=${key}`,
      `not a url=${key}`,
      `${witness.url}=${logKey}`,
      `${witness.url}=`,
    ])
      assert.throws(
        () => loadConfig({ flags: { witnesses: [value] }, env: {} }),
        (error) => isErrorCode(error, 'CONFIG_INVALID'),
        value,
      )
  })

  it('with several nodes on one database, one lease holder per shard submits; the others serve what it stored', async () => {
    const configured = parseWitness(`${witness.url}=${witness.witness.verifierKey}`)
    // Another node's witness setting points nowhere: were it to submit, its checkpoint would carry no cosignature.
    const nowhere = parseWitness(`http://127.0.0.1:1=${witness.witness.verifierKey}`)
    const holder = createCheckpointPublisher(db, { signer, witnesses: [configured] })
    const other = createCheckpointPublisher(db, { signer, witnesses: [nowhere] })
    // The first test's publisher, gone now, still holds the lease: its lease runs out.
    await db.query(`delete from node_settings where key = 'checkpointLease/0'`)
    await grow(3)
    const note = await holder.publishNow()
    assert.equal(openCheckpointNote(note, logKey).treeSize, appended)
    assert.equal(verifyCosignatures(signatureLines(note), noteTextOf(note), configured.verifierKey).length, 1)
    assert.equal(await other.publishNow(), note, 'the other node serves the holder’s cosigned checkpoint')
    assert.deepEqual(await other.publishHead(), await getCheckpoint(db))
    // The holder stops (gives its lease up): the next run of the other node takes the shard over.
    await holder.release()
    await grow(2)
    const taken = await other.publishNow()
    assert.equal(openCheckpointNote(taken, logKey).treeSize, appended)
    assert.equal(
      verifyCosignatures(signatureLines(taken), noteTextOf(taken), configured.verifierKey).length,
      0,
      'the new holder submitted (to its unreachable witness)',
    )
    assert.equal(await holder.publishNow(), taken, 'the old holder now serves the new holder’s checkpoint')
  })
})

/** The head of the log in `db` (or its tree of `size`), as signCheckpointNote takes it. */
async function headOf(db: Database, size?: number) {
  const head = await getCheckpoint(db)
  const treeSize = size ?? head.treeSize
  const root = await getRootAt(db, treeSize)
  return { treeSize, rootHash: new Uint8Array(Buffer.from(root.slice(2), 'hex')) }
}

describe('the embedded demo runs a witness', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'carchain-demo-witness-'))
  let node: RunningSystem | undefined
  after(async () => {
    await node?.stop()
    rmSync(dataDir, { recursive: true, force: true })
  })

  it('/log/checkpoint carries the demo witness’s cosignature; the tiles dir holds the same', async () => {
    node = await startSystem({
      config: loadConfig({
        flags: { data: dataDir, port: 0, noSim: true, tilesDir: join(dataDir, 'tiles') },
        env: { CARCHAIN_ANCHOR_INTERVAL_MS: '3600000' },
      }),
    })
    assert.ok(node.witness, 'the embedded demo started a witness')
    const { log } = await (await fetch(`${node.url}/v1/chain`)).json()
    const note = await (await fetch(`${node.url}/log/checkpoint`)).text()
    assert.equal(openCheckpointNote(note, log.verifierKey).origin, log.origin)
    assert.equal(
      verifyCosignatures(signatureLines(note), noteTextOf(note), node.witness.verifierKey).length,
      1,
    )
    assert.equal(readFileSync(join(dataDir, 'tiles', 'checkpoint'), 'utf8'), note)
    assert.equal((await (await fetch(`${node.url}/v1/health`)).json()).parts.checkpoints, 'ok')
  })
})
