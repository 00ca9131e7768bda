/**
 * The witness (c2sp.org/tlog-witness, src/ledger/witness.ts): it cosigns a checkpoint only when it
 * extends the one it cosigned before, durably, and refuses a rollback, a fork, a bad proof, an
 * unknown log, a checkpoint the log's key did not sign, and malformed requests — each with the
 * status the spec gives.
 */
import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { type BaseError, type ErrorCode, errorCodes, isErrorCode } from '../errors.ts'
import { buildMerkleTree } from './merkle.ts'
import {
  COSIGNATURE_TYPE,
  noteSigner,
  noteTextOf,
  openCheckpointNote,
  signCheckpointNote,
  verifierKey,
  verifyCosignatures,
} from './note.ts'
import { createWitness, directoryWitnessStore, originHash, parseAddCheckpoint } from './witness.ts'

const hasCode = (code: ErrorCode) => (error: unknown) => isErrorCode(error, code)
const aKey = () => generateKeyPairSync('ed25519').privateKey
const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64')

const dir = mkdtempSync(join(tmpdir(), 'carchain-witness-'))
after(() => rmSync(dir, { recursive: true, force: true }))

const log = noteSigner('fleet.example/log', aKey())
const logKey = verifierKey(log.name, log.publicKey)
const other = noteSigner('other.example/log', aKey())
const witnessSigner = noteSigner('witness.example/w1', aKey())
const leaves = Array.from({ length: 40 }, (_, i) => new TextEncoder().encode(`entry ${i}`))
const tree = buildMerkleTree({ leafInputs: leaves })
const forkTree = buildMerkleTree({
  leafInputs: leaves.map((leaf, i) => (i === 3 ? new Uint8Array([9]) : leaf)),
})

const checkpoint = (size: number, t = tree, signer = log) =>
  signCheckpointNote({ treeSize: size, rootHash: t.rootAt(size) }, signer)
const request = (old: number, proof: readonly Uint8Array[], note: string) =>
  `old ${old}\n${proof.map((hash) => `${b64(hash)}\n`).join('')}\n${note}`
const consistency = (from: number, to: number, t = tree) => (from === 0 ? [] : t.consistencyProof(from, to))

describe('the witness (c2sp.org/tlog-witness add-checkpoint)', () => {
  let now = 1_700_000_000
  const open = () =>
    createWitness({
      signer: witnessSigner,
      logs: [logKey, verifierKey(other.name, other.publicKey)],
      store: directoryWitnessStore(join(dir, 'logs')),
      now: () => now,
    })
  let witness = open()
  const witnessKey = verifierKey(witnessSigner.name, witnessSigner.publicKey, COSIGNATURE_TYPE)

  it('cosigns the first checkpoint and each one a proof shows extends it, durably', async () => {
    assert.equal(witness.verifierKey, witnessKey)
    const first = checkpoint(10)
    const answer = await witness.addCheckpoint(request(0, [], first))
    assert.equal(answer.status, 200)
    const [cosignature] = verifyCosignatures(answer.body, noteTextOf(first), witnessKey)
    assert.equal(cosignature?.timestamp, now)
    // A client adds the witness's lines to the checkpoint; the log's key still opens it.
    assert.equal(openCheckpointNote(first + answer.body, logKey).treeSize, 10)
    now += 60
    const second = checkpoint(17)
    const grown = await witness.addCheckpoint(request(10, consistency(10, 17), second))
    assert.equal(verifyCosignatures(grown.body, noteTextOf(second), witnessKey)[0]?.timestamp, now)
    // The same checkpoint again (a log that lost the answer) is cosigned again.
    await witness.addCheckpoint(request(17, [], second))
    // A restarted witness reads what it cosigned from its store.
    witness = open()
    await assert.rejects(witness.addCheckpoint(request(10, consistency(10, 20), checkpoint(20))), (error) => {
      assert.ok(hasCode('WITNESS_SIZE_CONFLICT')(error))
      assert.equal((error as BaseError).details.size, 17)
      return true
    })
    // Monitors read the latest cosigned checkpoint by the origin's hash, with both signatures.
    const monitored = witness.checkpoint(originHash(log.name))!
    assert.equal(openCheckpointNote(monitored, logKey).treeSize, 17)
    assert.equal(
      verifyCosignatures(monitored.slice(noteTextOf(monitored).length + 1), noteTextOf(monitored), witnessKey)
        .length,
      1,
    )
    assert.equal(witness.checkpoint(originHash(other.name)), undefined)
  })

  it('attack: refuses to go back (409 names its size; an old size beyond the checkpoint is 400)', async () => {
    await assert.rejects(
      witness.addCheckpoint(request(0, [], checkpoint(5))),
      hasCode('WITNESS_SIZE_CONFLICT'),
    )
    await assert.rejects(witness.addCheckpoint(request(17, [], checkpoint(5))), hasCode('INVALID_ARGUMENT'))
    assert.equal(errorCodes.WITNESS_SIZE_CONFLICT.httpStatus, 409)
  })

  it('attack: refuses a fork — another root for its size, or a proof from another history', async () => {
    await assert.rejects(
      witness.addCheckpoint(request(17, [], checkpoint(17, forkTree))),
      hasCode('WITNESS_INCONSISTENT'),
    )
    await assert.rejects(
      witness.addCheckpoint(request(17, consistency(17, 30, forkTree), checkpoint(30, forkTree))),
      hasCode('WITNESS_INCONSISTENT'),
    )
    assert.equal(errorCodes.WITNESS_INCONSISTENT.httpStatus, 422)
  })

  it('attack: refuses a bad consistency proof', async () => {
    const proof = consistency(17, 30).map((hash) => hash.slice())
    proof[0]![0]! ^= 1
    await assert.rejects(
      witness.addCheckpoint(request(17, proof, checkpoint(30))),
      hasCode('WITNESS_INCONSISTENT'),
    )
    await assert.rejects(
      witness.addCheckpoint(request(17, consistency(17, 30).slice(1), checkpoint(30))),
      hasCode('WITNESS_INCONSISTENT'),
    )
    // A proof from the empty tree must be empty; an empty tree must have the empty root.
    await assert.rejects(
      witness.addCheckpoint(request(0, consistency(17, 30), checkpoint(3, tree, other))),
      hasCode('WITNESS_INCONSISTENT'),
    )
    const badEmpty = signCheckpointNote({ treeSize: 0, rootHash: new Uint8Array(32).fill(1) }, other)
    await assert.rejects(witness.addCheckpoint(request(0, [], badEmpty)), hasCode('WITNESS_INCONSISTENT'))
    // Nothing was recorded: the log is still at 17.
    await witness.addCheckpoint(request(17, consistency(17, 30), checkpoint(30)))
  })

  it('attack: refuses an unknown log (404) and a checkpoint its key did not sign (403)', async () => {
    const stranger = noteSigner('stranger.example/log', aKey())
    await assert.rejects(
      witness.addCheckpoint(request(0, [], checkpoint(3, tree, stranger))),
      hasCode('WITNESS_LOG_UNKNOWN'),
    )
    assert.equal(errorCodes.WITNESS_LOG_UNKNOWN.httpStatus, 404)
    // The right origin, another key.
    const impostor = noteSigner(log.name, aKey())
    await assert.rejects(
      witness.addCheckpoint(request(30, [], checkpoint(30, tree, impostor))),
      hasCode('WITNESS_SIGNATURE_INVALID'),
    )
    // The log's signature on other text.
    const genuine = checkpoint(30)
    const tampered = genuine.replace('\n30\n', '\n31\n')
    await assert.rejects(
      witness.addCheckpoint(request(30, [], tampered)),
      hasCode('WITNESS_SIGNATURE_INVALID'),
    )
    assert.equal(errorCodes.WITNESS_SIGNATURE_INVALID.httpStatus, 403)
    // Another witness's (unknown) signature lines beside the log's are ignored.
    const withOthers = `${genuine}— someone.example/x ${b64(new Uint8Array(68))}\n`
    assert.equal((await witness.addCheckpoint(request(30, [], withOthers))).status, 200)
  })

  it('attack: refuses malformed requests (400)', async () => {
    const note = checkpoint(30)
    const hash = b64(new Uint8Array(32))
    for (const body of [
      '',
      note,
      `old 030\n\n${note}`,
      `old -1\n\n${note}`,
      `old 30 \n\n${note}`,
      `old 30\n${note}`,
      `old 30\n${hash.slice(0, -1)}\n\n${note}`,
      `old 30\n${b64(new Uint8Array(31))}\n\n${note}`,
      `old 30\n${`${hash}\n`.repeat(64)}\n${note}`,
      `old 30\n\nnot a checkpoint\n`,
    ])
      await assert.rejects(
        witness.addCheckpoint(body),
        hasCode('INVALID_ARGUMENT'),
        JSON.stringify(body.slice(0, 40)),
      )
    assert.deepEqual(parseAddCheckpoint(`old 3\n${hash}\n\n${note}`).proof.length, 1)
  })
})
