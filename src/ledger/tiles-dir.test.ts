/**
 * The tiles directory (`--tiles-dir`, src/ledger/tiles-dir.ts): what a client reads from it is
 * always a checkpoint with every tile it needs, whatever point a crash stopped the writer at; a
 * partial tile grows into a full one; a directory of another log is refused.
 */
import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { engines, freshDatabase } from '../../test/database.ts'
import type { Database } from '../db/database.ts'
import { type ErrorCode, isErrorCode } from '../errors.ts'
import { makeDirDurable } from '../fs-atomic.ts'
import { createCheckpointPublisher } from '../node/checkpoints.ts'
import { fromHex } from './bytes.ts'
import { createEventChain, type VehicleAddress } from './envelope.ts'
import { hashLeaf, verifyInclusion } from './merkle.ts'
import { noteSigner, openCheckpointNote, signCheckpointNote, verifierKey } from './note.ts'
import { appendBatch, getCheckpoint } from './store.ts'
import {
  inclusionProofFromTiles,
  parseEntryBundle,
  parseTilePath,
  readTile,
  TILE_WIDTH,
  type TileReader,
  tilePath,
} from './tiles.ts'
import { tilesBetween, updateTilesDir, writeTilesDirFile } from './tiles-dir.ts'

const hasCode = (code: ErrorCode) => (error: unknown) => isErrorCode(error, code)
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex')
const vehicleAt = (n: number) => `0x${n.toString(16).padStart(40, '0')}` as VehicleAddress

/** A client of the directory: reads files only, as a static web server would serve them. */
const dirReader =
  (dir: string): TileReader =>
  async (ref) =>
    new Uint8Array(readFileSync(join(dir, 'tile', tilePath(ref))))

/**
 * What a client of the directory sees must hold together: the checkpoint verifies, every entry in
 * the bundles hashes to the level-0 tile's leaf hash, and a proof from the tiles of every leaf
 * reaches the checkpoint's root. Returns the checkpoint's size.
 */
async function checkDirectory(dir: string, key: string): Promise<number> {
  const { treeSize, rootHash } = openCheckpointNote(readFileSync(join(dir, 'checkpoint'), 'utf8'), key)
  const read = dirReader(dir)
  const nodes = new Map<string, Uint8Array>()
  for (let start = 0; start < treeSize; start += TILE_WIDTH) {
    const width = Math.min(TILE_WIDTH, treeSize - start)
    const index = start / TILE_WIDTH
    const entries = parseEntryBundle(await read({ level: 'entries', index, width }))
    const hashes = await read({ level: 0, index, width })
    assert.equal(entries.length, width)
    entries.forEach((entry, i) => {
      assert.equal(hex(hashLeaf(entry)), hex(hashes.subarray(i * 32, i * 32 + 32)), `entry ${start + i}`)
    })
  }
  for (let leafIndex = 0; leafIndex < treeSize; leafIndex += 7) {
    const proof = await inclusionProofFromTiles(leafIndex, treeSize, read, nodes)
    const leaf = (
      await read({
        level: 0,
        index: Math.floor(leafIndex / TILE_WIDTH),
        width: Math.min(TILE_WIDTH, treeSize - Math.floor(leafIndex / TILE_WIDTH) * TILE_WIDTH),
      })
    ).subarray((leafIndex % TILE_WIDTH) * 32, (leafIndex % TILE_WIDTH) * 32 + 32)
    assert.ok(verifyInclusion({ leafHash: leaf, leafIndex, treeSize, proof, rootHash }), `leaf ${leafIndex}`)
  }
  return treeSize
}

/** Every file of the directory, relative; temporary files of an interrupted write apart. */
function listFiles(dir: string): string[] {
  const walk = (path: string): string[] =>
    statSync(path).isDirectory() ? readdirSync(path).flatMap((name) => walk(join(path, name))) : [path]
  return walk(dir)
    .map((path) => relative(dir, path))
    .filter((path) => !/\.tmp-\d+$/.test(path))
    .sort()
}

describe('tilesBetween: the tiles a tree has that a smaller one has not', () => {
  it('names each tile of each level once, partial tiles at their width', () => {
    const paths = (from: number, to: number) => tilesBetween(from, to).map(tilePath)
    assert.deepEqual(paths(0, 0), [])
    assert.deepEqual(paths(0, 3), ['0/000.p/3', 'entries/000.p/3'])
    assert.deepEqual(paths(3, 3), [])
    assert.deepEqual(paths(300, 700), [
      '0/001',
      'entries/001',
      '0/002.p/188',
      'entries/002.p/188',
      '1/000.p/2',
    ])
    assert.deepEqual(paths(256, 257), ['0/001.p/1', 'entries/001.p/1'])
    assert.deepEqual(paths(255, 256), ['0/000', 'entries/000', '1/000.p/1'])
    // From scratch to 65,536 + 1: 256 full level-0 tiles, one full level-1 tile, a level-2 partial.
    const big = tilesBetween(0, 65_537).map(tilePath)
    assert.equal(big.length, 2 * 257 + 1 + 1)
    assert.ok(big.includes('1/000') && big.includes('2/000.p/1'))
    assert.ok(big.includes('entries/256.p/1'))
  })
})

for (const engine of engines) {
  describe(`the tiles directory on ${engine}`, () => {
    let db: Database
    let dir: string
    const signer = noteSigner('carchain.test/tiles-dir', generateKeyPairSync('ed25519').privateKey)
    const key = verifierKey(signer.name, signer.publicKey)
    const chain = createEventChain({ vehicle: vehicleAt(9) })
    let appended = 0
    const grow = async (count: number) => {
      const events = Array.from({ length: count }, (_, i) =>
        chain.append({ kind: 'telemetry', time: 1_000 + appended + i, data: { i: appended + i } }),
      )
      await appendBatch(db, {
        vehicle: chain.vehicle,
        events,
        checkpointSignature: new Uint8Array(64).fill(1),
      })
      appended += count
    }
    const headNote = async () => {
      const head = await getCheckpoint(db)
      return signCheckpointNote(
        { treeSize: head.treeSize, rootHash: fromHex(head.rootHash, 'root', 32) },
        signer,
      )
    }

    before(async () => {
      db = await freshDatabase(engine)
      dir = mkdtempSync(join(tmpdir(), 'carchain-tiles-dir-'))
    })
    after(async () => {
      await db?.close()
      rmSync(dir, { recursive: true, force: true })
    })

    it('writes the same bytes the node serves, readable with files alone', async () => {
      await updateTilesDir({ db, dir, note: await headNote() })
      assert.equal(await checkDirectory(dir, key), 0)
      assert.deepEqual(listFiles(dir), ['checkpoint'])
      await grow(300)
      const written = await updateTilesDir({ db, dir, note: await headNote() })
      assert.deepEqual(written, { from: 0, to: 300, tilesWritten: 5 })
      assert.equal(await checkDirectory(dir, key), 300)
      for (const file of listFiles(dir).filter((path) => path.startsWith('tile/'))) {
        const ref = parseTilePath(file.slice('tile/'.length))
        assert.deepEqual(new Uint8Array(readFileSync(join(dir, file))), await readTile(db, ref), file)
        assert.equal(statSync(join(dir, file)).mode & 0o777, 0o644, `${file} is world-readable`)
      }
    })

    it('a crash at any write leaves the last checkpoint with all its tiles; the next run completes', async () => {
      const before300 = listFiles(dir)
      const partial = readFileSync(join(dir, 'tile/0/001.p/44'))
      await grow(400)
      const note = await headNote()
      // 300 → 700: five tiles (0/001, entries/001, 0/002.p/188, entries/002.p/188, 1/000.p/2), then the
      // checkpoint. A crash at each write (a copy of the directory each time), half-way through
      // writing its temporary file, the directories it needed made.
      for (let crashAt = 0; crashAt <= 5; crashAt++) {
        const trial = mkdtempSync(join(tmpdir(), 'carchain-tiles-crash-'))
        try {
          cpSync(dir, trial, { recursive: true })
          let writes = 0
          await assert.rejects(
            updateTilesDir({
              db,
              dir: trial,
              note,
              writeFile: (path, bytes) => {
                if (writes++ === crashAt) {
                  makeDirDurable(dirname(path))
                  writeFileSync(`${path}.tmp-${process.pid}`, bytes.subarray(0, bytes.length >> 1))
                  throw new Error('injected crash')
                }
                writeTilesDirFile(path, bytes)
              },
            }),
            /injected crash/,
          )
          assert.equal(writes, crashAt + 1)
          assert.equal(await checkDirectory(trial, key), 300, `after a crash at write ${crashAt}`)
          assert.deepEqual(
            listFiles(trial).filter((path) => before300.includes(path)),
            before300,
            'nothing published is lost',
          )
          // The next run keeps the tiles the crashed one wrote (the same bytes) and writes the rest.
          const resumed = await updateTilesDir({ db, dir: trial, note })
          assert.deepEqual(resumed, { from: 300, to: 700, tilesWritten: Math.max(5 - crashAt, 0) })
          assert.equal(await checkDirectory(trial, key), 700)
        } finally {
          rmSync(trial, { recursive: true, force: true })
        }
      }
      await updateTilesDir({ db, dir, note })
      assert.equal(await checkDirectory(dir, key), 700)
      // The partial tile grew into the full one; the partial stays for clients of the old checkpoint.
      const full = readFileSync(join(dir, 'tile/0/001'))
      assert.equal(full.length, TILE_WIDTH * 32)
      assert.deepEqual(full.subarray(0, partial.length), partial)
      assert.deepEqual(readFileSync(join(dir, 'tile/0/001.p/44')), partial)
      // Nothing new: the checkpoint stays, no tile is written.
      assert.equal((await updateTilesDir({ db, dir, note })).tilesWritten, 0)
    })

    it('the publisher keeps the directory up to date as the log grows', async () => {
      const publisher = createCheckpointPublisher(db, { signer, tilesDir: dir })
      await grow(100)
      const note = await publisher.publishNow()
      assert.equal(readFileSync(join(dir, 'checkpoint'), 'utf8'), note)
      assert.equal(await checkDirectory(dir, key), 800)
    })

    it('a tiles dir that fails holds anchoring back to the last published head, never past it', async () => {
      let failing = false
      const writeFile = (path: string, bytes: Uint8Array) => {
        if (failing) throw new Error('disk full')
        writeTilesDirFile(path, bytes)
      }
      const fresh = mkdtempSync(join(tmpdir(), 'carchain-tiles-failing-'))
      try {
        // Nothing published yet: the failure is the answer.
        failing = true
        const never = createCheckpointPublisher(db, { signer, tilesDir: fresh, writeFile })
        await assert.rejects(never.publishHead(), /disk full/)
        failing = false
        const publisher = createCheckpointPublisher(db, { signer, tilesDir: fresh, writeFile })
        const published = await publisher.publishHead()
        assert.deepEqual(published, await getCheckpoint(db))
        await grow(10)
        failing = true
        // The newest head is not in the directory: the last published one is what gets anchored.
        assert.deepEqual(await publisher.publishHead(), published)
        assert.match(publisher.lastError ?? '', /disk full/)
        assert.equal(await checkDirectory(fresh, key), published.treeSize)
        failing = false
        assert.deepEqual(await publisher.publishHead(), await getCheckpoint(db))
        assert.equal(publisher.lastError, undefined)
      } finally {
        rmSync(fresh, { recursive: true, force: true })
      }
    })

    it('attack: a directory of another log, or ahead of this one, is refused and left as it is', async () => {
      const other = mkdtempSync(join(tmpdir(), 'carchain-tiles-other-'))
      try {
        // Another log's checkpoint at a size this log has.
        const forged = signCheckpointNote({ treeSize: 10, rootHash: new Uint8Array(32).fill(7) }, signer)
        writeFileSync(join(other, 'checkpoint'), forged)
        await assert.rejects(
          updateTilesDir({ db, dir: other, note: await headNote() }),
          hasCode('DATA_DIR_INVALID'),
        )
        // A checkpoint beyond this log (a restored, older database).
        writeFileSync(
          join(other, 'checkpoint'),
          signCheckpointNote({ treeSize: 10_000, rootHash: new Uint8Array(32) }, signer),
        )
        await assert.rejects(
          updateTilesDir({ db, dir: other, note: await headNote() }),
          hasCode('DATA_DIR_INVALID'),
        )
        assert.equal(readFileSync(join(other, 'checkpoint'), 'utf8').split('\n')[1], '10000')
        // A tile already there (past the checkpoint) with other bytes is not overwritten.
        rmSync(join(other, 'checkpoint'))
        const tile = join(other, 'tile', '0', '000')
        writeTilesDirFile(tile, new Uint8Array(TILE_WIDTH * 32))
        await assert.rejects(
          updateTilesDir({ db, dir: other, note: await headNote() }),
          hasCode('DATA_DIR_INVALID'),
        )
        assert.deepEqual(new Uint8Array(readFileSync(tile)), new Uint8Array(TILE_WIDTH * 32))
        // A checkpoint that is not this log's tree is never written.
        await assert.rejects(updateTilesDir({ db, dir: other, note: forged }), hasCode('INTERNAL'))
      } finally {
        rmSync(other, { recursive: true, force: true })
      }
    })
  })
}
