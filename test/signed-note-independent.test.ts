/**
 * The node's checkpoints and the witness's cosignatures checked by a second, independent
 * implementation of c2sp.org/signed-note, c2sp.org/tlog-checkpoint and c2sp.org/tlog-cosignature.
 *
 * No maintained signed-note implementation is installable here (the reference implementation is
 * Go's golang.org/x/mod/sumdb/note; Go is not on this machine, and no npm package implements the
 * C2SP key ids — sigstore's Rekor checkpoint code uses another key hint). So this file verifies
 * from the specifications' text alone, on raw bytes, with node:crypto and nothing from src/ledger:
 * no parser, key-id or base64 helper of src/ledger/note.ts is used. (src/ledger/tiles.test.ts also
 * verifies the signed-note spec's example, which Go's implementation signed, with the node's code.)
 */
import assert from 'node:assert/strict'
import { createHash, createPublicKey, generateKeyPairSync, verify } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { loadConfig } from '../src/config.ts'
import { type RunningSystem, startSystem } from '../src/sim/system.ts'

/** A verifier key `<name>+<8 hex>+<base64(type ‖ 32-byte key)>`, split by the spec's grammar. */
function readVerifierKey(vkey: string, type: number) {
  const first = vkey.indexOf('+')
  const second = vkey.indexOf('+', first + 1)
  const name = vkey.slice(0, first)
  const id = Buffer.from(vkey.slice(first + 1, second), 'hex')
  const material = Buffer.from(vkey.slice(second + 1), 'base64')
  assert.equal(material.length, 33)
  assert.equal(material[0], type)
  // key ID = SHA-256(key name || 0x0A || type || public key)[:4]
  const expected = createHash('sha256')
    .update(Buffer.concat([Buffer.from(name, 'utf8'), Buffer.from([0x0a]), material]))
    .digest()
    .subarray(0, 4)
  assert.deepEqual(id, expected, 'the key id is SHA-256(name ‖ 0x0A ‖ type ‖ key)[:4]')
  const publicKey = createPublicKey({
    // SubjectPublicKeyInfo of an Ed25519 key: a fixed 12-byte prefix and the raw key (RFC 8410).
    key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), material.subarray(1)]),
    format: 'der',
    type: 'spki',
  })
  return { name, id, publicKey }
}

/** Splits a note into its text (through the last line before the blank line) and signature lines. */
function splitNote(note: Buffer) {
  const blank = note.lastIndexOf(Buffer.from('\n\n'))
  assert.ok(blank > 0, 'a note has a blank line before its signatures')
  const text = note.subarray(0, blank + 1)
  const signatures = note
    .subarray(blank + 2)
    .toString('utf8')
    .split('\n')
  assert.equal(signatures.pop(), '', 'the note ends in a newline')
  return {
    text,
    signatures: signatures.map((line) => {
      // "— " (U+2014 then a space), the key name, a space, base64(key id ‖ signature)
      assert.ok(line.startsWith('\u2014 '))
      const [name, blob] = line.slice(2).split(' ')
      return { name: name!, blob: Buffer.from(blob!, 'base64') }
    }),
  }
}

const dataDir = mkdtempSync(join(tmpdir(), 'carchain-independent-note-'))
let node: RunningSystem | undefined
after(async () => {
  await node?.stop()
  rmSync(dataDir, { recursive: true, force: true })
})

test('the node’s checkpoint and the demo witness’s cosignature verify with an independent implementation', async () => {
  node = await startSystem({
    config: loadConfig({
      flags: { data: dataDir, port: 0, noSim: true, logOrigin: 'independent.example/log' },
      env: { CARCHAIN_ANCHOR_INTERVAL_MS: '3600000' },
    }),
  })
  const { log } = await (await fetch(`${node.url}/v1/chain`)).json()
  const note = Buffer.from(await (await fetch(`${node.url}/log/checkpoint`)).arrayBuffer())
  const { text, signatures } = splitNote(note)

  // The checkpoint body: origin, decimal size, base64 root of 32 bytes, each line ending in \n.
  const [origin, size, root, end] = text.toString('utf8').split('\n')
  assert.equal(origin, 'independent.example/log')
  assert.match(size!, /^(0|[1-9][0-9]*)$/)
  assert.equal(Buffer.from(root!, 'base64').length, 32)
  assert.equal(end, '')
  const head = await (await fetch(`${node.url}/v1/log/checkpoint`)).json()
  assert.equal(`0x${Buffer.from(root!, 'base64').toString('hex')}`, head.rootHash)

  // The log's signature: Ed25519 (type 0x01) over the note text.
  const logKey = readVerifierKey(log.verifierKey, 0x01)
  assert.equal(logKey.name, origin)
  const logSignature = signatures.find(
    (s) => s.name === logKey.name && s.blob.subarray(0, 4).equals(logKey.id),
  )
  assert.ok(logSignature, 'a signature line of the log key')
  assert.equal(logSignature.blob.length, 4 + 64)
  assert.ok(verify(null, text, logKey.publicKey, logSignature.blob.subarray(4)), 'the log signature verifies')
  assert.ok(
    !verify(null, Buffer.concat([text, Buffer.from('x')]), logKey.publicKey, logSignature.blob.subarray(4)),
  )

  // The witness's cosignature: type 0x04, key id ‖ u64 big-endian timestamp ‖ Ed25519 signature over
  // "cosignature/v1\ntime <timestamp>\n" ‖ the note text.
  const witnessKey = readVerifierKey(node.witness!.verifierKey, 0x04)
  const cosignature = signatures.find(
    (s) => s.name === witnessKey.name && s.blob.subarray(0, 4).equals(witnessKey.id),
  )
  assert.ok(cosignature, 'a cosignature line of the demo witness')
  assert.equal(cosignature.blob.length, 4 + 8 + 64)
  const timestamp = cosignature.blob.readBigUInt64BE(4)
  assert.ok(timestamp > 1_600_000_000n && timestamp <= BigInt(Math.ceil(Date.now() / 1000)))
  const message = Buffer.concat([Buffer.from(`cosignature/v1\ntime ${timestamp}\n`), text])
  assert.ok(
    verify(null, message, witnessKey.publicKey, cosignature.blob.subarray(12)),
    'the cosignature verifies',
  )
  // Under another key the same lines verify nothing.
  const stranger = generateKeyPairSync('ed25519').publicKey
  assert.ok(!verify(null, text, stranger, logSignature.blob.subarray(4)))
})
