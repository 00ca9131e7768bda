/**
 * `ledger.tile_reads_per_s` and `ledger.tiles_over_api` (issue 17): inclusion proofs a client
 * assembles per second from the node's C2SP tiles (`/log/tile/…` over HTTP, `inclusionProofFromTiles`),
 * and that rate over the rate of the same proofs fetched from the JSON API
 * (`/v1/log/proof/inclusion`), same log, same leaves, same concurrency, timed back to back.
 *
 * The log is a PGlite store filled by `appendBatch`, served by the node's own routes on a loopback
 * port. The tile client keeps the tiles it fetched for the checkpoint's tree size (a real client's
 * cache: full tiles never change, partial ones hold for that size) with the subtree hashes it
 * computed from them, and starts each round empty, so each round pays for every tile it needs once. The tiles come from the node (no `--tiles-dir` yet).
 */

import { generateKeyPairSync } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import type { Database } from '../src/db/database.ts'
import { BaseError } from '../src/errors.ts'
import { toHex } from '../src/ledger/bytes.ts'
import { createEventChain, type VehicleAddress } from '../src/ledger/envelope.ts'
import { noteSigner, openCheckpointNote, verifierKey } from '../src/ledger/note.ts'
import { appendBatch } from '../src/ledger/store.ts'
import { inclusionProofFromTiles, type TileReader, tilePath } from '../src/ledger/tiles.ts'
import type { NodeContext } from '../src/node/context.ts'
import { logRoutes } from '../src/node/log-routes.ts'
import { createServer } from '../src/node/server.ts'
import { logInfo, transparencyRoutes } from '../src/node/transparency.ts'
import { freshDatabase } from '../test/database.ts'
import { type BenchOptions, type BenchResult, repeat, resultOf } from './harness.ts'

export const tileNames = [
  { name: 'ledger.tile_reads_per_s', unit: 'proofs/s' },
  { name: 'ledger.tiles_over_api', unit: '×' },
] as const

/** Proofs in flight at once, for both clients. */
const CONCURRENCY = 8

async function fill(db: Database, events: number): Promise<string[]> {
  const chain = createEventChain({ vehicle: `0x${'be'.repeat(20)}` as VehicleAddress })
  const ids: string[] = []
  for (let done = 0; done < events; ) {
    const batch = Array.from({ length: Math.min(1_000, events - done) }, (_, i) =>
      chain.append({ kind: 'telemetry', time: 1_000 + done + i, data: { i: done + i } }),
    )
    await appendBatch(db, { vehicle: chain.vehicle, events: batch, checkpointSignature: new Uint8Array(64) })
    ids.push(...batch.map((e) => e.id))
    done += batch.length
  }
  return ids
}

async function get(url: string): Promise<Response> {
  const response = await fetch(url)
  if (!response.ok) throw new BaseError('INTERNAL', `GET ${url}: ${response.status} ${await response.text()}`)
  return response
}

/** Runs `work(i)` for i < count, `CONCURRENCY` at a time; resolves with the seconds taken. */
async function timed(count: number, work: (i: number) => Promise<void>): Promise<number> {
  let next = 0
  const started = performance.now()
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < count) await work(next++)
    }),
  )
  return (performance.now() - started) / 1000
}

export async function benchTiles(options: BenchOptions): Promise<BenchResult[]> {
  const treeSize = options.quick ? 5_000 : 20_000
  const proofsPerRound = options.quick ? 200 : 800
  const db = await freshDatabase('pglite')
  const signer = noteSigner('carchain.bench/tiles', generateKeyPairSync('ed25519').privateKey)
  const context = { db, logId: toHex(new Uint8Array(32)) } as unknown as NodeContext
  const app = await createServer({
    version: 'bench',
    chain: () => ({ chainId: 31337, rpcUrl: 'http://127.0.0.1:1', contracts: {}, log: logInfo(signer) }),
    health: async () => ({}),
    rateLimit: false,
    routes: [logRoutes(context), transparencyRoutes(context, signer)],
  })
  try {
    options.progress(`tiles: filling a log of ${treeSize.toLocaleString('en-US')} events`)
    const ids = await fill(db, treeSize)
    await app.listen({ host: '127.0.0.1', port: 0 })
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
    const note = await (await get(`${base}/log/checkpoint`)).text()
    const checkpoint = openCheckpointNote(note, verifierKey(signer.name, signer.publicKey))
    if (checkpoint.treeSize !== treeSize)
      throw new BaseError('INTERNAL', `the checkpoint says ${checkpoint.treeSize} events`)
    const tileRates: number[] = []
    const apiRates: number[] = []
    const tileFetches: number[] = []
    const ratios = await repeat(3, 1, async (round) => {
      // A short warm-up round (JIT, connections), then full rounds.
      const count = round < 0 ? 100 : proofsPerRound
      const leaves = Array.from({ length: count }, () => Math.floor(Math.random() * treeSize))
      // The client's cache: the tiles it fetched, and the subtree hashes it computed from them.
      const cache = new Map<string, Promise<Uint8Array>>()
      const nodes = new Map<string, Uint8Array>()
      const tiles: TileReader = (ref) => {
        const path = tilePath(ref)
        let tile = cache.get(path)
        if (tile === undefined) {
          tile = get(`${base}/log/tile/${path}`).then(async (r) => new Uint8Array(await r.arrayBuffer()))
          cache.set(path, tile)
        }
        return tile
      }
      const fromTiles: string[] = new Array(count)
      const fromApi: string[] = new Array(count)
      const tileSeconds = await timed(count, async (i) => {
        fromTiles[i] = (await inclusionProofFromTiles(leaves[i]!, treeSize, tiles, nodes)).map(toHex).join()
      })
      const apiSeconds = await timed(count, async (i) => {
        const url = `${base}/v1/log/proof/inclusion?leafHash=${ids[leaves[i]!]}&treeSize=${treeSize}`
        fromApi[i] = ((await (await get(url)).json()) as { auditPath: string[] }).auditPath.join()
      })
      // The same proofs, or the comparison means nothing.
      fromTiles.forEach((proof, i) => {
        if (proof !== fromApi[i]) throw new BaseError('INTERNAL', `leaf ${leaves[i]}: the proofs differ`)
      })
      const tileRate = count / tileSeconds
      const apiRate = count / apiSeconds
      if (round >= 0) {
        tileRates.push(tileRate)
        apiRates.push(apiRate)
        tileFetches.push(cache.size)
        options.progress(
          `tiles round ${round + 1}: ${Math.round(tileRate)} proofs/s from tiles (${cache.size} tiles fetched), ${Math.round(apiRate)} from the JSON API`,
        )
      }
      return tileRate / apiRate
    })
    const workload = {
      treeSize,
      proofsPerRound,
      concurrency: CONCURRENCY,
      tilesFetchedPerRound: tileFetches,
    }
    return [
      resultOf('ledger.tile_reads_per_s', 'proofs/s', tileRates, undefined, {
        what: "inclusion proofs of random leaves assembled by a client from the node's /log/tile/ hash tiles over loopback HTTP (inclusionProofFromTiles), each tile fetched once per round and kept with the subtree hashes computed from it (empty at each round's start); the log on PGlite",
        ...workload,
      }),
      resultOf(
        'ledger.tiles_over_api',
        '×',
        ratios,
        { op: '>=', value: 3, source: 'issue 17' },
        {
          what: 'tile_reads_per_s / proofs per second from GET /v1/log/proof/inclusion for the same leaves, same concurrency, per round',
          apiProofsPerSecond: apiRates.map(Math.round),
          ...workload,
        },
      ),
    ]
  } finally {
    await app.close()
    await db.close()
  }
}
