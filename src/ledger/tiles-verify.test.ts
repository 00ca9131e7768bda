/**
 * The browser-safe ledger code (rfc9162.ts, signed-note.ts, tlog-tiles.ts, tiles-verify.ts) that
 * the dashboard and `carchain verify --tiles` share: over @noble/hashes it meets the RFC 9162 vectors
 * and gives the node path's (node:crypto) bytes on random trees; its Ed25519 opens what the node's
 * key signs; and `verifyFromTiles` proves events from in-memory tiles and names, with a stable code,
 * each way a hostile tiles server can lie.
 */
import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { dirname, join, resolve } from 'node:path'
import { after, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import fc from 'fast-check'
import { haveVectors, vectorFiles, vectorLeaves, vectorsDir } from '../../test/rfc9162-vectors.ts'
import { requirePart } from '../../test/skip.ts'
import { type ErrorCode, isErrorCode } from '../errors.ts'
import { buildMerkleTree, type MerkleTree, nodeMerkle } from './merkle.ts'
import { cosignatureLine, noteSigner, signCheckpointNote, verifierKey } from './note.ts'
import { portableMerkle } from './rfc9162.ts'
import { COSIGNATURE_TYPE, openCheckpointNote, verifyCosignatures } from './signed-note.ts'
import { httpTilesGet, type TilesGet, type TilesStep, verifyFromTiles } from './tiles-verify.ts'
import { TILE_HEIGHT, TILE_WIDTH, type TileRef, tilePath, tileProofs } from './tlog-tiles.ts'

const hasCode = (code: ErrorCode) => (error: unknown) => isErrorCode(error, code)
const b64 = (value: string) => new Uint8Array(Buffer.from(value, 'base64'))
const hex = (value: Uint8Array) => Buffer.from(value).toString('hex')
const ORIGIN = 'fleet.example/log'
const aSigner = (name = ORIGIN) => noteSigner(name, generateKeyPairSync('ed25519').privateKey)

describe('portableMerkle (@noble/hashes) against the RFC 9162 vectors', () => {
  it('verifies every valid case and refuses every broken one', (t) => {
    if (!requirePart(t, haveVectors, `RFC 9162 vectors missing at ${vectorsDir}`)) return
    let cases = 0
    for (const file of vectorFiles(join(vectorsDir, 'inclusion'))) {
      const c = JSON.parse(readFileSync(file, 'utf8'))
      const ok = portableMerkle.verifyInclusion({
        leafIndex: c.leafIdx,
        treeSize: c.treeSize,
        leafHash: b64(c.leafHash),
        proof: (c.proof ?? []).map(b64),
        rootHash: b64(c.root),
      })
      assert.equal(ok, !c.wantErr, `${file}: ${c.desc}`)
      cases++
    }
    for (const file of vectorFiles(join(vectorsDir, 'consistency'))) {
      const c = JSON.parse(readFileSync(file, 'utf8'))
      const ok = portableMerkle.verifyConsistency({
        first: c.size1,
        second: c.size2,
        firstHash: b64(c.root1),
        secondHash: b64(c.root2),
        proof: (c.proof ?? []).map(b64),
      })
      assert.equal(ok, !c.wantErr, `${file}: ${c.desc}`)
      cases++
    }
    assert.ok(cases > 100, `only ${cases} vectors`)
    assert.equal(
      hex(portableMerkle.emptyRoot),
      'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    )
    // The README root of the vector leaves, folded from portable leaf hashes.
    const hashes = vectorLeaves.map(portableMerkle.hashLeaf)
    const root = (of: Uint8Array[]): Uint8Array => {
      if (of.length === 1) return of[0]!
      let k = 1
      while (k * 2 < of.length) k *= 2
      return portableMerkle.hashChildren(root(of.slice(0, k)), root(of.slice(k)))
    }
    assert.equal(hex(root(hashes)), '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328')
  })
})

/** The tiles of an in-memory tree: hash tiles and entry bundles, as the node serves them. */
function memoryTiles(tree: MerkleTree, inputs: readonly Uint8Array[]): (ref: TileRef) => Uint8Array {
  return (ref) => {
    if (ref.level === 'entries') {
      const entries = inputs.slice(ref.index * TILE_WIDTH, ref.index * TILE_WIDTH + ref.width)
      return Buffer.concat(
        entries.map((e) => Buffer.concat([Buffer.from([e.length >> 8, e.length & 0xff]), e])),
      )
    }
    const bytes = new Uint8Array(ref.width * 32)
    for (let i = 0; i < ref.width; i++)
      bytes.set(tree.node({ level: ref.level * TILE_HEIGHT, index: ref.index * TILE_WIDTH + i }), i * 32)
    return bytes
  }
}

const inputsOf = (n: number) => Array.from({ length: n }, (_, i) => new TextEncoder().encode(`entry ${i}`))

describe('the portable path gives the node path’s bytes', () => {
  it('on random trees: leaf hashes, roots, inclusion and consistency proofs from tiles, verification', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 700 }), fc.nat(), fc.nat(), async (size, a, b) => {
        const inputs = inputsOf(size)
        const tree = buildMerkleTree({ leafInputs: inputs })
        const tiles = memoryTiles(tree, inputs)
        const read = async (ref: TileRef) => tiles(ref)
        const leafIndex = a % size
        const first = 1 + (b % size)
        assert.equal(
          hex(portableMerkle.hashLeaf(inputs[leafIndex]!)),
          hex(nodeMerkle.hashLeaf(inputs[leafIndex]!)),
        )
        const results = await Promise.all(
          [portableMerkle, nodeMerkle].map(async (hashing) => {
            const proofs = tileProofs(hashing)
            const inclusion = await proofs.inclusionProofFromTiles(leafIndex, size, read)
            const consistency = await proofs.consistencyProofFromTiles(first, size, read)
            return {
              inclusion: inclusion.map(hex),
              consistency: consistency.map(hex),
              root: hex(
                hashing.rootFromInclusionProof({
                  leafIndex,
                  treeSize: size,
                  leafHash: tree.leafHash(leafIndex),
                  proof: inclusion,
                })!,
              ),
              consistent: hashing.verifyConsistency({
                first,
                second: size,
                firstHash: tree.rootAt(first),
                secondHash: tree.rootHash,
                proof: consistency,
              }),
            }
          }),
        )
        assert.deepEqual(results[0], results[1])
        assert.deepEqual(results[0]!.inclusion, tree.inclusionProof(leafIndex).map(hex))
        assert.equal(results[0]!.root, hex(tree.rootHash))
        assert.equal(results[0]!.consistent, true)
      }),
      { numRuns: 40 },
    )
  })
})

describe('signed notes without node:crypto', () => {
  it('opens what the node’s key signed, and its witness’s cosignature; refuses an altered one', () => {
    const signer = aSigner()
    const key = verifierKey(signer.name, signer.publicKey)
    const rootHash = nodeMerkle.hashLeaf(new Uint8Array([7]))
    const note = signCheckpointNote({ treeSize: 9, rootHash }, signer)
    assert.deepEqual(openCheckpointNote(note, key), { origin: ORIGIN, treeSize: 9, rootHash })
    const witness = aSigner('witness.example/w1')
    const witnessKey = verifierKey(witness.name, witness.publicKey, COSIGNATURE_TYPE)
    const text = note.slice(0, note.indexOf('\n\n') + 1)
    const line = cosignatureLine(text, 1_800_000_000, witness)
    assert.deepEqual(verifyCosignatures(line, text, witnessKey), [{ line, timestamp: 1_800_000_000 }])
    assert.throws(() => verifyCosignatures(line, text.replace('9', '8'), witnessKey), hasCode('NOTE_INVALID'))
    assert.throws(() => openCheckpointNote(note.replace('\n9\n', '\n8\n'), key), hasCode('NOTE_INVALID'))
    // Another key of the same name: its signature is not the pinned key's.
    const other = aSigner()
    assert.throws(
      () => openCheckpointNote(signCheckpointNote({ treeSize: 9, rootHash }, other), key),
      hasCode('NOTE_INVALID'),
    )
  })
})

/** A log of `size` entries, its signer, and a `TilesGet` the test may make lie. */
function aLog(size: number, checkpointSize = size) {
  const inputs = inputsOf(size)
  const tree = buildMerkleTree({ leafInputs: inputs })
  const signer = aSigner()
  const tiles = memoryTiles(buildMerkleTree({ leafInputs: inputs.slice(0, checkpointSize) }), inputs)
  const checkpoint = signCheckpointNote(
    { treeSize: checkpointSize, rootHash: tree.rootAt(checkpointSize) },
    signer,
  )
  const files = (path: string): Uint8Array => {
    if (path === 'checkpoint') return new TextEncoder().encode(checkpoint)
    const ref = parseRef(path, checkpointSize)
    return tiles(ref)
  }
  return { inputs, tree, signer, key: verifierKey(signer.name, signer.publicKey), checkpoint, files }
}

/** The ref of `tile/…`, with the widths a tree of `treeSize` has (what verifyFromTiles asks for). */
function parseRef(path: string, treeSize: number): TileRef {
  for (const level of ['entries', 0, 1, 2] as const) {
    const perLevel = level === 'entries' ? treeSize : Math.floor(treeSize / TILE_WIDTH ** level)
    for (let index = 0; index * TILE_WIDTH < perLevel; index++) {
      const ref = { level, index, width: Math.min(TILE_WIDTH, perLevel - index * TILE_WIDTH) }
      if (`tile/${tilePath(ref)}` === path) return ref
    }
  }
  throw new Error(`no tile ${path}`)
}

const asGet =
  (files: (path: string) => Uint8Array): TilesGet =>
  async (path) =>
    files(path)

describe('verifyFromTiles', () => {
  it('proves an entry from tiles, with each step reported, at the anchored size and beyond it', async () => {
    for (const [size, anchoredSize, leafIndex] of [
      [300, 300, 257],
      [700, 513, 3],
      [1, 1, 0],
    ] as const) {
      const log = aLog(size)
      const steps: TilesStep[] = []
      const result = await verifyFromTiles({
        get: asGet(log.files),
        origin: ORIGIN,
        verifierKey: log.key,
        anchored: { treeSize: anchoredSize, rootHash: log.tree.rootAt(anchoredSize) },
        leafHash: log.tree.leafHash(leafIndex),
        hashing: portableMerkle,
        onStep: (step) => steps.push(step),
      })
      assert.deepEqual(steps, ['checkpoint', 'anchor', 'entry', 'inclusion'])
      assert.equal(result.leafIndex, leafIndex)
      assert.deepEqual(Uint8Array.from(result.entry), log.inputs[leafIndex])
      assert.deepEqual(result.auditPath.map(hex), log.tree.inclusionProof(leafIndex, anchoredSize).map(hex))
      // With the index: one bundle, the same answer.
      const indexed = await verifyFromTiles({
        get: asGet(log.files),
        origin: ORIGIN,
        verifierKey: log.key,
        anchored: { treeSize: anchoredSize, rootHash: log.tree.rootAt(anchoredSize) },
        leafHash: log.tree.leafHash(leafIndex),
        leafIndex,
        hashing: nodeMerkle,
      })
      assert.equal(indexed.leafIndex, leafIndex)
    }
  })

  const base = (log: ReturnType<typeof aLog>, over: Partial<Parameters<typeof verifyFromTiles>[0]> = {}) =>
    verifyFromTiles({
      get: asGet(log.files),
      origin: ORIGIN,
      verifierKey: log.key,
      anchored: { treeSize: 300, rootHash: log.tree.rootAt(300) },
      leafHash: log.tree.leafHash(5),
      leafIndex: 5,
      hashing: portableMerkle,
      ...over,
    })

  it('attack: a checkpoint signed by another key, or of another origin, is refused', async () => {
    const log = aLog(400)
    const impostor = aSigner()
    const forged = signCheckpointNote({ treeSize: 400, rootHash: log.tree.rootHash }, impostor)
    await assert.rejects(
      base(log, {
        get: asGet((p) => (p === 'checkpoint' ? new TextEncoder().encode(forged) : log.files(p))),
      }),
      hasCode('NOTE_INVALID'),
    )
    await assert.rejects(base(log, { origin: 'other.example/log' }), hasCode('LOG_UNTRUSTED'))
    await assert.rejects(
      base(log, { get: asGet((p) => (p === 'checkpoint' ? new Uint8Array([0xff, 0xfe]) : log.files(p))) }),
      hasCode('NOTE_INVALID'),
    )
  })

  it('lists the witnesses’ cosignatures, verifies those whose key is given, refuses a forged one', async () => {
    const log = aLog(300)
    const witness = aSigner('witness.example/w1')
    const witnessKey = verifierKey(witness.name, witness.publicKey, COSIGNATURE_TYPE)
    const text = log.checkpoint.slice(0, log.checkpoint.indexOf('\n\n') + 1)
    const cosigned = `${log.checkpoint}${cosignatureLine(text, 1_800_000_000, witness)}`
    const get = (note: string) =>
      asGet((path) => (path === 'checkpoint' ? new TextEncoder().encode(note) : log.files(path)))
    const seen = await base(log, { get: get(cosigned) })
    assert.deepEqual(
      seen.cosignatures.map((c) => [c.name, c.verified]),
      [['witness.example/w1', false]],
    )
    const verified = await base(log, { get: get(cosigned), witnessKeys: [witnessKey] })
    assert.deepEqual(verified.cosignatures[0]?.timestamp, 1_800_000_000)
    // A cosignature line of the witness's key over another checkpoint.
    const forged = `${log.checkpoint}${cosignatureLine(text.replace('\n300\n', '\n299\n'), 1_800_000_000, witness)}`
    await assert.rejects(base(log, { get: get(forged), witnessKeys: [witnessKey] }), hasCode('NOTE_INVALID'))
  })

  it('attack: a rolled-back checkpoint and a second history at the anchored size are refused', async () => {
    const log = aLog(400, 200)
    await assert.rejects(base(log), hasCode('LOG_UNTRUSTED'))
    const fork = aLog(300)
    await assert.rejects(
      base(fork, { anchored: { treeSize: 300, rootHash: new Uint8Array(32).fill(9) } }),
      hasCode('LOG_UNTRUSTED'),
    )
  })

  it('attack: a hash tile with one bit flipped fails a proof (PROOF_INVALID)', async () => {
    const log = aLog(700)
    for (const [tile, anchored] of [
      ['tile/0/000', 300], // the inclusion proof's level-0 tile
      ['tile/0/001', 300], // the consistency proof 300 → 700
      ['tile/1/000.p/2', 300],
    ] as const) {
      const flipped = asGet((path) => {
        const bytes = Uint8Array.from(log.files(path))
        if (path === tile) for (let i = 0; i < bytes.length; i += 32) bytes[i]! ^= 1
        return bytes
      })
      await assert.rejects(
        base(log, { get: flipped, anchored: { treeSize: anchored, rootHash: log.tree.rootAt(anchored) } }),
        hasCode('PROOF_INVALID'),
        tile,
      )
    }
  })

  it('attack: an entry bundle that lies about the entry, or holds too few, is refused', async () => {
    const log = aLog(300)
    const swapped = asGet((path) => {
      if (path !== 'tile/entries/000') return log.files(path)
      const bytes = Uint8Array.from(log.files(path))
      bytes[bytes.length - 1]! ^= 1
      return bytes
    })
    await assert.rejects(
      base(log, { leafIndex: 255, leafHash: log.tree.leafHash(255), get: swapped }),
      hasCode('PROOF_INVALID'),
    )
    // Ten whole entries (9 bytes each with their lengths) where 256 belong.
    const short = asGet((path) =>
      path === 'tile/entries/000' ? log.files(path).subarray(0, 90) : log.files(path),
    )
    await assert.rejects(base(log, { get: short }), hasCode('PROOF_INVALID'))
    const cut = asGet((path) =>
      path === 'tile/entries/000' ? log.files(path).subarray(0, 5) : log.files(path),
    )
    await assert.rejects(base(log, { get: cut }), hasCode('INVALID_ARGUMENT'))
    const shortTile = asGet((path) =>
      path === 'tile/0/000' ? log.files(path).subarray(0, 64) : log.files(path),
    )
    await assert.rejects(base(log, { get: shortTile }), hasCode('INVALID_ARGUMENT'))
  })

  it('an event beyond the anchored tree, or not in it, is NOT_FOUND', async () => {
    const log = aLog(300)
    await assert.rejects(base(log, { leafIndex: 300 }), hasCode('NOT_FOUND'))
    await assert.rejects(
      base(log, { leafIndex: undefined, leafHash: new Uint8Array(32).fill(1) }),
      hasCode('NOT_FOUND'),
    )
    await assert.rejects(
      base(log, { anchored: { treeSize: 0, rootHash: portableMerkle.emptyRoot } }),
      hasCode('NOT_FOUND'),
    )
  })
})

describe('httpTilesGet', () => {
  let server: Server | undefined
  after(() => server?.close())

  it('attack: an answer larger than its format allows is not read to the end (TILE_TOO_LARGE)', async () => {
    let written = 0
    server = createServer((request, response) => {
      if (request.url === '/log/missing') {
        response.writeHead(404).end()
        return
      }
      response.writeHead(200)
      // An endless body: the client must stop, not buffer it.
      const chunk = Buffer.alloc(64 * 1024, 1)
      const pump = () => {
        while (written < 64 * 1024 * 1024 && response.write(chunk)) written += chunk.length
        if (written < 64 * 1024 * 1024) response.once('drain', pump)
        else response.end()
      }
      pump()
    })
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve))
    const { port } = server.address() as AddressInfo
    const get = httpTilesGet(`http://127.0.0.1:${port}/log/`)
    await assert.rejects(get('checkpoint', 16 * 1024), hasCode('TILE_TOO_LARGE'))
    assert.ok(written < 32 * 1024 * 1024, `the server wrote ${written} bytes`)
    await assert.rejects(get('missing', 10), hasCode('NOT_FOUND'))
    await assert.rejects(
      httpTilesGet('http://127.0.0.1:1/log')('checkpoint', 10),
      hasCode('NODE_UNREACHABLE'),
    )
  })
})

describe('the shared modules run in a browser', () => {
  it('import nothing of Node, at any depth, and use no Buffer themselves', () => {
    const shared = ['rfc9162.ts', 'signed-note.ts', 'tlog-tiles.ts', 'tiles-verify.ts'].map((name) =>
      fileURLToPath(new URL(name, import.meta.url)),
    )
    const seen = new Set<string>()
    const visit = (file: string) => {
      if (seen.has(file)) return
      seen.add(file)
      const source = readFileSync(file, 'utf8')
      for (const [, specifier] of source.matchAll(/^import (?!type )[^'"]*['"]([^'"]+)['"]/gm)) {
        assert.ok(!specifier!.startsWith('node:'), `${file} imports ${specifier}`)
        if (specifier!.startsWith('.')) visit(resolve(dirname(file), specifier!))
      }
    }
    for (const file of shared) {
      visit(file)
      assert.doesNotMatch(readFileSync(file, 'utf8'), /\bBuffer\./, file)
    }
    assert.ok(seen.size > shared.length, 'the walk followed the relative imports')
  })
})
