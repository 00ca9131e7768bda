import assert from 'node:assert/strict'
import { createHash, createPrivateKey, generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import fc from 'fast-check'
import { engines, freshDatabase } from '../../test/database.ts'
import { haveVectors, vectorFiles, vectorLeaves, vectorsDir } from '../../test/rfc9162-vectors.ts'
import { requirePart } from '../../test/skip.ts'
import type { Database } from '../db/database.ts'
import { type ErrorCode, isErrorCode } from '../errors.ts'
import type { NodeContext } from '../node/context.ts'
import { logRoutes } from '../node/log-routes.ts'
import { createServer } from '../node/server.ts'
import { loadNoteKey, logInfo, transparencyRoutes } from '../node/transparency.ts'
import { toHex } from './bytes.ts'
import { type BuiltEvent, createEventChain, type VehicleAddress } from './envelope.ts'
import { buildMerkleTree, hashLeaf, type MerkleTree, verifyConsistency, verifyInclusion } from './merkle.ts'
import {
  noteSigner,
  openCheckpointNote,
  openNote,
  parseVerifierKey,
  signCheckpointNote,
  verifierKey,
} from './note.ts'
import { appendBatch } from './store.ts'
import {
  consistencyProofFromTiles,
  encodeTileIndex,
  inclusionProofFromTiles,
  parseEntryBundle,
  parseTilePath,
  TILE_HEIGHT,
  TILE_WIDTH,
  type TileReader,
  type TileRef,
  tilePath,
} from './tiles.ts'

const hasCode = (code: ErrorCode) => (error: unknown) => isErrorCode(error, code)
const b64 = (value: string) => new Uint8Array(Buffer.from(value, 'base64'))
const hex = (value: Uint8Array) => Buffer.from(value).toString('hex')
const aSigner = (name = 'fleet.example/log') => noteSigner(name, generateKeyPairSync('ed25519').privateKey)

/** Tiles of an in-memory tree of `treeSize` leaves: the reference the store's tiles must equal. */
function memoryTiles(tree: MerkleTree): TileReader {
  return async (ref: TileRef) => {
    const level = ref.level === 'entries' ? 0 : ref.level
    const bytes = new Uint8Array(ref.width * 32)
    for (let i = 0; i < ref.width; i++)
      bytes.set(tree.node({ level: level * TILE_HEIGHT, index: ref.index * TILE_WIDTH + i }), i * 32)
    return bytes
  }
}

describe('signed-note checkpoints (c2sp.org/signed-note, c2sp.org/tlog-checkpoint)', () => {
  it('verifies the example note of the signed-note spec (signed by the Go reference implementation)', () => {
    const verifier = parseVerifierKey('example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k')
    const note =
      'This is an example message.\n\n— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n'
    assert.equal(openNote(note, verifier), 'This is an example message.\n')
    // The key id is computed, not copied: the same name and key give the spec's 530d903a.
    assert.equal(
      verifierKey(verifier.name, verifier.publicKey),
      'example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k',
    )
    assert.throws(
      () => openNote(note.replace('example message', 'example massage'), verifier),
      hasCode('NOTE_INVALID'),
    )
  })

  it('signs a checkpoint in the exact byte form and opens it with the verifier key', () => {
    const signer = aSigner()
    const rootHash = hashLeaf(new Uint8Array([1, 2, 3]))
    const note = signCheckpointNote({ treeSize: 1234, rootHash }, signer)
    const lines = note.split('\n')
    assert.deepEqual(lines.slice(0, 4), [
      'fleet.example/log',
      '1234',
      Buffer.from(rootHash).toString('base64'),
      '',
    ])
    assert.match(lines[4]!, /^— fleet\.example\/log [A-Za-z0-9+/]{91}=$/)
    assert.equal(lines[5], '')
    const vkey = verifierKey(signer.name, signer.publicKey)
    assert.match(vkey, /^fleet\.example\/log\+[0-9a-f]{8}\+[A-Za-z0-9+/]{44}$/)
    const blob = b64(lines[4]!.split(' ')[2]!)
    assert.equal(hex(blob.subarray(0, 4)), vkey.split('+')[1])
    const opened = openCheckpointNote(note, vkey)
    assert.deepEqual(opened, {
      origin: 'fleet.example/log',
      treeSize: 1234,
      rootHash: Uint8Array.from(rootHash),
    })
  })

  it('docs/transparency.md: the byte-level example is what the code makes', async () => {
    const doc = readFileSync(new URL('../../docs/transparency.md', import.meta.url), 'utf8')
    const seed = createHash('sha256').update('carchain docs example key').digest()
    const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed])
    const signer = noteSigner(
      'fleet.example/carchain',
      createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }),
    )
    const leaves = [0x61, 0x62, 0x63].map((byte) => new Uint8Array([byte]))
    const tree = buildMerkleTree({ leafInputs: leaves })
    const note = signCheckpointNote({ treeSize: 3, rootHash: tree.rootHash }, signer)
    const block = /## Signed checkpoint[\s\S]*?```\n([\s\S]*?)```/.exec(doc)![1]
    assert.equal(block, note)
    assert.ok(doc.includes(`"verifierKey": "${verifierKey(signer.name, signer.publicKey)}"`))
    assert.ok(doc.includes(hex(signer.publicKey)))
    assert.ok(doc.includes(hex(tree.rootHash)))
    const tile = await memoryTiles(tree)({ level: 0, index: 0, width: 3 })
    for (let i = 0; i < 3; i++) {
      const h = hex(tile.subarray(i * 32, i * 32 + 32))
      assert.ok(doc.includes(`${h.slice(0, 8)}…${h.slice(-8)}`), h)
    }
  })

  it('refuses tampered, re-signed, truncated and malformed checkpoints', () => {
    const signer = aSigner()
    const vkey = verifierKey(signer.name, signer.publicKey)
    const note = signCheckpointNote({ treeSize: 7, rootHash: new Uint8Array(32).fill(9) }, signer)
    const other = aSigner()
    const otherKeyNote = signCheckpointNote({ treeSize: 7, rootHash: new Uint8Array(32).fill(9) }, other)
    const bad = [
      note.replace('\n7\n', '\n8\n'), // tree size changed
      note.replace('fleet.example/log\n', 'fleet.example/lag\n'), // origin changed
      otherKeyNote, // same name, another key: no signature by this key
      note.slice(0, -1), // no final newline
      note.replace('\n\n', '\n'), // no blank line
      note.replace('— ', '- '), // not an em dash
      `${note.split('\n\n')[0]}\n\n`, // no signature at all
      note.replace('7\n', '07\n'), // leading zero (re-signed below too)
      note.replace('\n7\n', '\n7\u0007\n'),
    ]
    for (const text of bad)
      assert.throws(() => openCheckpointNote(text, vkey), hasCode('NOTE_INVALID'), JSON.stringify(text))
    // A validly signed note that is not a checkpoint of this origin is still refused.
    const leadingZero = signCheckpointNote({ treeSize: 7, rootHash: new Uint8Array(32) }, signer).replace(
      '\n7\n',
      '\n07\n',
    )
    assert.throws(() => openCheckpointNote(leadingZero, vkey), hasCode('NOTE_INVALID'))
    // A flipped signature bit fails even though name and id match.
    const [body, sig] = note.split('\n\n') as [string, string]
    const blob = b64(sig.split(' ')[2]!)
    blob[10]! ^= 1
    const flipped = `${body}\n\n— ${signer.name} ${Buffer.from(blob).toString('base64')}\n`
    assert.throws(() => openCheckpointNote(flipped, vkey), hasCode('NOTE_INVALID'))
    // Unknown signatures are ignored: a second (witness) line does not break it.
    const cosigned = `${note}— witness.example/w ${Buffer.from(new Uint8Array(72)).toString('base64')}\n`
    assert.equal(openCheckpointNote(cosigned, vkey).treeSize, 7)
    // A verifier key whose id does not match its key is refused.
    const [name, id, key] = vkey.split('+') as [string, string, string]
    const wrongId = `${name}+${id === '00000000' ? '00000001' : '00000000'}+${key}`
    assert.throws(() => parseVerifierKey(wrongId), hasCode('NOTE_INVALID'))
    assert.throws(
      () => noteSigner('has space', generateKeyPairSync('ed25519').privateKey),
      hasCode('CONFIG_INVALID'),
    )
    assert.throws(
      () => noteSigner('a+b', generateKeyPairSync('ed25519').privateKey),
      hasCode('CONFIG_INVALID'),
    )
  })

  it('keeps the note key in the data dir: made on first start, the same one after', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'carchain-note-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const first = loadNoteKey(dir, 'fleet.example/log')
    const second = loadNoteKey(dir, 'fleet.example/log')
    assert.equal(first.created, true)
    assert.equal(second.created, false)
    assert.equal(logInfo(first.signer).verifierKey, logInfo(second.signer).verifierKey)
    assert.equal(statSync(join(dir, 'log-note-key.pem')).mode & 0o777, 0o600)
    // A damaged or foreign key is never replaced silently: the start stops naming the file.
    for (const damaged of [
      'not a key',
      generateKeyPairSync('ec', { namedCurve: 'P-256' })
        .privateKey.export({ format: 'pem', type: 'pkcs8' })
        .toString(),
    ]) {
      writeFileSync(join(dir, 'log-note-key.pem'), damaged)
      assert.throws(() => loadNoteKey(dir, 'fleet.example/log'), hasCode('DATA_DIR_INVALID'))
    }
  })
})

describe('tile paths (c2sp.org/tlog-tiles)', () => {
  it('encodes indexes in three-digit groups and parses each tile under exactly one name', () => {
    assert.equal(encodeTileIndex(1234067), 'x001/x234/067')
    assert.equal(encodeTileIndex(0), '000')
    assert.equal(encodeTileIndex(1000), 'x001/000')
    assert.deepEqual(parseTilePath('0/x001/x234/067'), { level: 0, index: 1234067, width: 256 })
    assert.deepEqual(parseTilePath('entries/000.p/7'), { level: 'entries', index: 0, width: 7 })
    assert.deepEqual(parseTilePath('63/x001/000.p/255'), { level: 63, index: 1000, width: 255 })
    fc.assert(
      fc.property(
        fc.oneof(fc.constant<'entries'>('entries'), fc.integer({ min: 0, max: 63 })),
        fc.nat(),
        fc.integer({ min: 1, max: 256 }),
        (level, index, width) => {
          const ref = { level, index, width }
          assert.deepEqual(parseTilePath(tilePath(ref)), ref)
        },
      ),
    )
  })

  it('attack: refuses malformed and hostile tile paths', () => {
    const hostile = [
      '',
      '/',
      '00/000',
      '64/000',
      '-1/000',
      '1e1/000',
      ' 0/000',
      '0',
      '0/',
      '0/0',
      '0/00',
      '0/0000',
      '0/x000/001',
      '0/001/x001',
      '0/x01/001',
      '0/X001/001',
      '0/000.p/0',
      '0/000.p/256',
      '0/000.p/01',
      '0/000.p/',
      '0/000.p/1/2',
      '0/000.p',
      '0/000/.p/1',
      'entries',
      'entries/',
      'entries/x000/000',
      '0/../000',
      '0/%30%30%30',
      '0/000?x',
      '0/x999/x999/x999/x999/x999/x999/999',
      '0/x001/x002/x003/x004/x005/x006/007',
      'entries/000.p/-1',
      'ENTRIES/000',
      '0/000.P/1',
    ]
    for (const path of hostile) assert.throws(() => parseTilePath(path), hasCode('INVALID_ARGUMENT'), path)
  })
})

describe('inclusion proofs from tiles with a kept subtree map', () => {
  it('one map across leaves and growing sizes gives the in-memory tree’s proofs, and spares the hashing', async () => {
    const leaves = Array.from({ length: 70_000 }, (_, i) => hashLeaf(new Uint8Array([i >> 16, i >> 8, i])))
    const nodes = new Map<string, Uint8Array>()
    for (const size of [300, 65_536, 65_537, 70_000]) {
      const tree = buildMerkleTree({ leafHashes: leaves.slice(0, size) })
      for (const leafIndex of [0, size - 1, Math.floor(size / 3), Math.floor(Math.random() * size)]) {
        const fresh = await inclusionProofFromTiles(leafIndex, size, memoryTiles(tree))
        const kept = await inclusionProofFromTiles(leafIndex, size, memoryTiles(tree), nodes)
        const expected = tree.inclusionProof(leafIndex).map(hex)
        assert.deepEqual(fresh.map(hex), expected, `leaf ${leafIndex} of ${size}`)
        assert.deepEqual(kept.map(hex), expected, `leaf ${leafIndex} of ${size}, kept map`)
      }
    }
    // The second proof of a leaf reads its subtrees from the map: it reads no tile.
    const tree = buildMerkleTree({ leafHashes: leaves })
    let reads = 0
    const counting: TileReader = (ref) => {
      reads++
      return memoryTiles(tree)(ref)
    }
    await inclusionProofFromTiles(12_345, leaves.length, counting, nodes)
    reads = 0
    await inclusionProofFromTiles(12_345, leaves.length, counting, nodes)
    assert.equal(reads, 0)
  })
})

describe('consistency proofs from tiles', () => {
  it('equal the in-memory tree’s for sizes across tile and level edges, from the newer tree’s tiles alone', async () => {
    const leaves = Array.from({ length: 66_000 }, (_, i) => hashLeaf(new Uint8Array([i >> 16, i >> 8, i])))
    const nodes = new Map<string, Uint8Array>()
    for (const second of [2, 256, 257, 300, 65_536, 65_537, 66_000]) {
      const tree = buildMerkleTree({ leafHashes: leaves.slice(0, second) })
      for (const first of [1, 255, 256, 257, Math.floor(second / 2), second - 1, second].filter(
        (size) => size >= 1 && size <= second,
      )) {
        const proof = await consistencyProofFromTiles(first, second, memoryTiles(tree), nodes)
        assert.deepEqual(
          proof.map(hex),
          tree.consistencyProof(first, second).map(hex),
          `${first} → ${second}`,
        )
        if (first < second)
          assert.ok(
            verifyConsistency({
              first,
              second,
              firstHash: tree.rootAt(first),
              secondHash: tree.rootHash,
              proof,
            }),
          )
      }
    }
    await assert.rejects(
      consistencyProofFromTiles(5, 3, memoryTiles(buildMerkleTree({ leafHashes: leaves.slice(0, 5) }))),
      hasCode('TREE_SIZE_INVALID'),
    )
  })

  it('equal the RFC 9162 vectors’ consistency proofs', async (t) => {
    if (!requirePart(t, haveVectors, `RFC 9162 vectors missing at ${vectorsDir}`)) return
    const tree = buildMerkleTree({ leafInputs: vectorLeaves })
    let checked = 0
    for (const file of vectorFiles(join(vectorsDir, 'consistency'))) {
      const c = JSON.parse(readFileSync(file, 'utf8'))
      if (c.wantErr || c.size2 > tree.size || c.size1 < 1 || c.size1 > c.size2) continue
      if (hex(tree.rootAt(c.size2)) !== hex(b64(c.root2))) continue
      const sized = buildMerkleTree({ leafInputs: vectorLeaves.slice(0, c.size2) })
      const proof = await consistencyProofFromTiles(c.size1, c.size2, memoryTiles(sized))
      assert.deepEqual(
        proof.map(hex),
        (c.proof ?? []).map((p: string) => hex(b64(p))),
        file,
      )
      checked++
    }
    assert.ok(checked >= 3, `only ${checked} vectors applied`)
  })
})

describe('RFC 9162 vectors through tiles', () => {
  it('inclusion proofs assembled from tiles equal the vectors’ proofs', async (t) => {
    if (!requirePart(t, haveVectors, `RFC 9162 vectors missing at ${vectorsDir}`)) return
    const tree = buildMerkleTree({ leafInputs: vectorLeaves })
    let checked = 0
    for (const file of vectorFiles(join(vectorsDir, 'inclusion'))) {
      const c = JSON.parse(readFileSync(file, 'utf8'))
      if (c.wantErr || c.treeSize > tree.size || hex(tree.rootAt(c.treeSize)) !== hex(b64(c.root))) continue
      // The tiles of the tree of the case's size (its partial tiles), the proof from them alone.
      const sized = buildMerkleTree({ leafInputs: vectorLeaves.slice(0, c.treeSize) })
      const proof = await inclusionProofFromTiles(c.leafIdx, c.treeSize, memoryTiles(sized))
      assert.deepEqual(
        proof.map(hex),
        (c.proof ?? []).map((p: string) => hex(b64(p))),
        file,
      )
      checked++
    }
    assert.ok(checked >= 5, `only ${checked} vectors applied`)
  })
})

const vehicleAt = (n: number) => `0x${n.toString(16).padStart(40, '0')}` as VehicleAddress

for (const engine of engines) {
  describe(`tiles from the store on ${engine}`, () => {
    let db: Database
    let app: Awaited<ReturnType<typeof createServer>>
    const signer = aSigner('carchain.test/tiles')
    const vkey = verifierKey(signer.name, signer.publicKey)
    const all: BuiltEvent[] = []
    const chain = createEventChain({ vehicle: vehicleAt(7) })
    const grow = async (count: number) => {
      const events = Array.from({ length: count }, (_, i) =>
        chain.append({ kind: 'telemetry', time: 1_000 + all.length + i, data: { i: all.length + i } }),
      )
      await appendBatch(db, {
        vehicle: chain.vehicle,
        events,
        checkpointSignature: new Uint8Array(64).fill(1),
      })
      all.push(...events)
    }
    const get = async (url: string) => {
      const response = await app.inject({ method: 'GET', url })
      return response
    }
    const httpTiles: TileReader = async (ref) => {
      const response = await get(`/log/tile/${tilePath(ref)}`)
      assert.equal(response.statusCode, 200, `${tilePath(ref)}: ${response.body}`)
      return new Uint8Array(response.rawPayload)
    }

    before(async () => {
      db = await freshDatabase(engine)
      const context = { db, logId: toHex(new Uint8Array(32)) } as unknown as NodeContext
      app = await createServer({
        version: 'test',
        chain: () => ({ chainId: 31337, rpcUrl: 'http://127.0.0.1:1', contracts: {}, log: logInfo(signer) }),
        health: async () => ({}),
        rateLimit: false,
        routes: [logRoutes(context), transparencyRoutes(context, signer)],
      })
    })
    after(async () => {
      await app?.close()
      await db?.close()
    })

    it('the empty log: a checkpoint of size 0 and no tiles', async () => {
      const response = await get('/log/checkpoint')
      assert.equal(response.statusCode, 200)
      assert.equal(response.headers['content-type'], 'text/plain; charset=utf-8')
      assert.equal(response.headers['cache-control'], 'no-cache')
      const checkpoint = openCheckpointNote(response.body, vkey)
      assert.equal(checkpoint.treeSize, 0)
      assert.equal(
        hex(checkpoint.rootHash),
        'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
      )
      assert.equal((await get('/log/tile/0/000.p/1')).statusCode, 404)
      assert.equal((await get('/log/tile/entries/000.p/1')).statusCode, 404)
    })

    it('at random sizes, proofs from tiles alone equal the JSON API’s and verify against the signed checkpoint', async () => {
      let previousPartial: { width: number; bytes: Uint8Array } | undefined
      for (const target of [1, 5, 200, 255, 256, 257, 300, 511, 512, 515]) {
        await grow(target - all.length)
        const checkpoint = openCheckpointNote((await get('/log/checkpoint')).body, vkey)
        assert.equal(checkpoint.treeSize, all.length)
        const tree = buildMerkleTree({ leafHashes: all.map((e) => e.leafHash) })
        assert.equal(hex(checkpoint.rootHash), hex(tree.rootHash))
        // Every tile the tree holds equals the in-memory reference, and headers say full or partial.
        const reference = memoryTiles(tree)
        for (const level of [0, 1]) {
          const count = Math.floor(all.length / TILE_WIDTH ** level)
          for (let index = 0; index * TILE_WIDTH < count; index++) {
            const ref = { level, index, width: Math.min(TILE_WIDTH, count - index * TILE_WIDTH) }
            const response = await get(`/log/tile/${tilePath(ref)}`)
            assert.equal(response.statusCode, 200)
            assert.equal(response.headers['content-type'], 'application/octet-stream')
            assert.equal(
              response.headers['cache-control'],
              ref.width === 256 ? 'public, max-age=31536000, immutable' : 'public, max-age=60',
            )
            assert.deepEqual(new Uint8Array(response.rawPayload), await reference(ref), tilePath(ref))
          }
        }
        // A partial tile grows into the full one: its bytes are the full tile's prefix.
        const level0 = { level: 0, index: 0, width: Math.min(256, all.length) }
        const bytes = await httpTiles(level0)
        if (previousPartial)
          assert.deepEqual(bytes.subarray(0, previousPartial.bytes.length), previousPartial.bytes)
        if (level0.width < 256) {
          previousPartial = { width: level0.width, bytes }
          // An older partial width is still served, and is the same prefix.
          assert.deepEqual(await httpTiles({ level: 0, index: 0, width: 1 }), bytes.subarray(0, 32))
        }
        // Entry bundles hash to the leaf hashes of the level-0 tile.
        for (let index = 0; index * 256 < all.length; index++) {
          const width = Math.min(256, all.length - index * 256)
          const entries = parseEntryBundle(await httpTiles({ level: 'entries', index, width }))
          assert.equal(entries.length, width)
          entries.forEach((entry, i) => {
            assert.deepEqual(entry, all[index * 256 + i]!.leafInput)
            assert.equal(hex(hashLeaf(entry)), hex(all[index * 256 + i]!.leafHash))
          })
        }
        // Beyond the tree: 404 in the node's error format.
        const next = { level: 0, index: Math.floor(all.length / 256), width: (all.length % 256) + 1 }
        const beyond = await get(`/log/tile/${tilePath(next)}`)
        assert.equal(beyond.statusCode, 404)
        assert.equal(beyond.json().code, 'NOT_FOUND')
        assert.equal((await get(`/log/tile/1/001`)).statusCode, 404)
        // Random leaves: the proof from tiles equals the API's and verifies against the checkpoint.
        for (let k = 0; k < 6; k++) {
          const leafIndex = Math.floor(Math.random() * all.length)
          const treeSize = leafIndex + 1 + Math.floor(Math.random() * (all.length - leafIndex))
          const fromTiles = await inclusionProofFromTiles(leafIndex, all.length, httpTiles)
          const api = (
            await get(`/v1/log/proof/inclusion?leafHash=${all[leafIndex]!.id}&treeSize=${all.length}`)
          ).json()
          assert.deepEqual(fromTiles.map(toHex), api.auditPath, `leaf ${leafIndex} of ${all.length}`)
          assert.ok(
            verifyInclusion({
              leafIndex,
              treeSize: checkpoint.treeSize,
              leafHash: all[leafIndex]!.leafHash,
              proof: fromTiles,
              rootHash: checkpoint.rootHash,
            }),
          )
          // At an older size the client needs the partial tiles of that size: still served.
          const older = await inclusionProofFromTiles(leafIndex, treeSize, httpTiles)
          const olderApi = (
            await get(`/v1/log/proof/inclusion?leafHash=${all[leafIndex]!.id}&treeSize=${treeSize}`)
          ).json()
          assert.deepEqual(older.map(toHex), olderApi.auditPath)
          assert.ok(
            verifyInclusion({
              leafIndex,
              treeSize,
              leafHash: all[leafIndex]!.leafHash,
              proof: older,
              rootHash: tree.rootAt(treeSize),
            }),
          )
        }
        // Consistency from a random older size: from tiles alone, equal to the API's, and it verifies.
        const first = 1 + Math.floor(Math.random() * all.length)
        const consistency = await consistencyProofFromTiles(first, all.length, httpTiles)
        const consistencyApi = (
          await get(`/v1/log/proof/consistency?first=${first}&second=${all.length}`)
        ).json()
        assert.deepEqual(consistency.map(toHex), consistencyApi.proof, `consistency ${first} → ${all.length}`)
        assert.ok(
          first === all.length ||
            verifyConsistency({
              first,
              second: all.length,
              firstHash: tree.rootAt(first),
              secondHash: checkpoint.rootHash,
              proof: consistency,
            }),
        )
      }
      assert.equal(previousPartial !== undefined, true)
    })

    it('attack: malformed tile paths are refused with 400 in the node’s error format', async () => {
      for (const path of [
        '00/000',
        '64/000',
        '0/x000/001',
        '0/000.p/0',
        '0/000.p/256',
        '0/01',
        'entries/000.p/007',
        '0/..%2F000',
        '0/000%00',
      ]) {
        const response = await get(`/log/tile/${path}`)
        assert.equal(response.statusCode, 400, path)
        assert.equal(response.json().code, 'INVALID_ARGUMENT', path)
        assert.match(response.json().message, /tile path/)
      }
      assert.equal((await get('/log/tile/0/x999/x999/x999/x999/999')).statusCode, 404)
    })
  })
}
