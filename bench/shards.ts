/**
 * Issue 18's scale figures for shards and nodes:
 * - `ledger.gas_per_anchor_per_shard`: the gas of one `LedgerAnchor.anchorBatch` that moves 1, 16
 *   or 64 logs (a deployment's shards) each from size N to N + M, over the number of shards. The
 *   logs' trees are one in-memory RFC 9162 tree (the contract sees only sizes, roots and proofs),
 *   so each head carries a steady-state proof (~2·log₂ n hashes).
 * - `ledger.two_nodes_over_one`: the ingest rate of two node processes sharing one PostgreSQL
 *   database of 4 shards over that of one node process with 1 shard, same offered load (the same
 *   cars, each sending its batches one after the other, acknowledged after commit), same machine.
 *   Each node process is a child running the node's ingest path (verify, group commit per shard,
 *   the shard's row lock) without HTTP.
 */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import type { Address, Hex } from 'viem'
import { ledgerAnchorAbi } from '../src/chain/generated/index.ts'
import { type Database, openDatabase } from '../src/db/database.ts'
import { migrate } from '../src/db/migrate.ts'
import { BaseError } from '../src/errors.ts'
import { createLogId } from '../src/ledger/anchor.ts'
import { createBatch } from '../src/ledger/batch.ts'
import { toHex } from '../src/ledger/bytes.ts'
import { type BuiltEvent, createEventChain, type VehicleAddress } from '../src/ledger/envelope.ts'
import { type BatchIngester, createBatchIngester } from '../src/ledger/ingest.ts'
import { buildMerkleTree } from '../src/ledger/merkle.ts'
import { ensureShards, shardOfVehicle, withShard } from '../src/ledger/shards.ts'
import { aP256Signer } from '../src/ledger/testing.ts'
import type { TestChain } from '../test/chain.ts'
import { type BenchOptions, type BenchResult, countResult, resultOf, round3 } from './harness.ts'

export const shardNames = [
  { name: 'ledger.gas_per_anchor_per_shard', unit: 'gas/shard' },
  { name: 'ledger.two_nodes_over_one', unit: '×' },
] as const

const GAS_SHARD_COUNTS = [1, 16, 64] as const

export async function benchShardAnchorGas(chain: TestChain, options: BenchOptions): Promise<BenchResult[]> {
  const first = 123_457
  const second = first + 12_345
  options.progress(`shard anchor gas: an in-memory tree of ${second.toLocaleString('en-US')} leaves`)
  const all = randomBytes(second * 32)
  const tree = buildMerkleTree({
    leafHashes: Array.from(
      { length: second },
      (_, i) => new Uint8Array(all.buffer, all.byteOffset + i * 32, 32),
    ),
  })
  const proof = tree.consistencyProof(first, second).map(toHex) as Hex[]
  const { clients, deployment } = chain
  const address = deployment.contracts.LedgerAnchor.address as Address
  const batch = async (heads: { logId: Hex; treeSize: number; rootHash: Hex; proof: Hex[] }[]) => {
    const hash = await clients.walletClient.writeContract({
      address,
      abi: ledgerAnchorAbi,
      functionName: 'anchorBatch',
      args: [heads.map((head) => ({ ...head, treeSize: BigInt(head.treeSize) }))],
    })
    const receipt = await clients.publicClient.waitForTransactionReceipt({ hash })
    if (receipt.status !== 'success') throw new BaseError('CHAIN_TX_FAILED', 'anchorBatch reverted')
    return Number(receipt.gasUsed)
  }
  const perShard: Record<string, number> = {}
  const totals: Record<string, number> = {}
  for (const shards of GAS_SHARD_COUNTS) {
    const logIds = Array.from({ length: shards }, () => createLogId(clients.account.address))
    // The first anchor of each log needs no proof; the measured batch extends every one of them.
    await batch(
      logIds.map((logId) => ({ logId, treeSize: first, rootHash: toHex(tree.rootAt(first)), proof: [] })),
    )
    const gas = await batch(
      logIds.map((logId) => ({ logId, treeSize: second, rootHash: toHex(tree.rootHash), proof })),
    )
    perShard[shards] = gas / shards
    totals[shards] = gas
  }
  // The same step for one log with `anchor`, for comparison.
  const single = createLogId(clients.account.address)
  const send = async (treeSize: number, rootHash: Hex, path: Hex[]) => {
    const hash = await clients.walletClient.writeContract({
      address,
      abi: ledgerAnchorAbi,
      functionName: 'anchor',
      args: [single, BigInt(treeSize), rootHash, path],
    })
    return Number((await clients.publicClient.waitForTransactionReceipt({ hash })).gasUsed)
  }
  await send(first, toHex(tree.rootAt(first)), [])
  const anchorGas = await send(second, toHex(tree.rootHash), proof)
  return [
    countResult('ledger.gas_per_anchor_per_shard', 'gas/shard', perShard[64]!, undefined, {
      what: `one LedgerAnchor.anchorBatch moving every shard from size ${first} to ${second} (proof of ${proof.length} hashes each), receipt gas / shards; the value is at 64 shards`,
      gasPerShard: Object.fromEntries(GAS_SHARD_COUNTS.map((s) => [`shards${s}`, round3(perShard[s]!)])),
      transactionGas: Object.fromEntries(GAS_SHARD_COUNTS.map((s) => [`shards${s}`, totals[s]])),
      oneLogWithAnchorGas: anchorGas,
      per64OverOne: round3(perShard[64]! / perShard[1]!),
    }),
  ]
}

// ---------------------------------------------------------------------------------------------
// Two node processes over one

type NodeWorkload = { vehicles: number; batchesPerVehicle: number; eventsPerBatch: number }

function nodeWorkload(quick: boolean): NodeWorkload {
  return quick
    ? { vehicles: 16, batchesPerVehicle: 4, eventsPerBatch: 100 }
    : { vehicles: 64, batchesPerVehicle: 10, eventsPerBatch: 100 }
}

type ChildReport = { events: number; startedAt: number; endedAt: number; cpuMs: number }

/** One node process's part: `vehicles` cars from `offset`, closed loop, into `shards` shards. */
async function runNodeChild(
  url: string,
  shards: number,
  offset: number,
  w: NodeWorkload,
): Promise<ChildReport> {
  const cars: { vehicle: VehicleAddress; publicKey: Uint8Array; batches: string[] }[] = []
  const startMs = Date.now() - 86_400_000
  for (let c = 0; c < w.vehicles; c++) {
    const { signer, publicKey } = aP256Signer()
    const vehicle = `0x${(offset + c + 1).toString(16).padStart(40, 'c')}` as VehicleAddress
    const chain = createEventChain({ vehicle })
    const batches: string[] = []
    for (let b = 0; b < w.batchesPerVehicle; b++) {
      const events: BuiltEvent[] = []
      for (let e = 0; e < w.eventsPerBatch; e++) {
        const seq = chain.head().nextSeq
        events.push(
          chain.append({
            kind: 'telemetry',
            time: startMs + seq * 1000,
            data: { speedKmh: seq % 130, lat: 48.1 },
          }),
        )
      }
      batches.push(JSON.stringify(await createBatch({ events, signer })))
    }
    cars.push({ vehicle, publicKey, batches })
  }
  const db = await openDatabase({ engine: 'postgres', url, maxConnections: 10 })
  try {
    const keys = new Map(cars.map((car) => [car.vehicle, car.publicKey]))
    const resolveVehicleKey = async (vehicle: VehicleAddress) => keys.get(vehicle)
    // As the node does (src/node/ingest.ts): one group-commit queue per shard.
    const ingesters = new Map<number, BatchIngester>()
    const ingesterOf = (vehicle: VehicleAddress) => {
      const shard = shardOfVehicle(vehicle, shards)
      let ingester = ingesters.get(shard)
      if (!ingester) {
        ingester = createBatchIngester(withShard(db, shard), {
          resolveVehicleKey,
          verifyOnWorker: shards > 1 ? false : undefined,
        })
        ingesters.set(shard, ingester)
      }
      return ingester
    }
    process.stdout.write('ready\n')
    await new Promise<void>((resolve) => process.stdin.once('data', () => resolve()))
    const cpu = process.cpuUsage()
    const startedAt = performance.timeOrigin + performance.now()
    await Promise.all(
      cars.map(async (car) => {
        for (const json of car.batches) {
          const result = await ingesterOf(car.vehicle).ingest(JSON.parse(json))
          if (result.ids.length !== w.eventsPerBatch)
            throw new BaseError('INTERNAL', `ingest acknowledged ${result.ids.length} events`)
        }
      }),
    )
    const endedAt = performance.timeOrigin + performance.now()
    const used = process.cpuUsage(cpu)
    return {
      events: w.vehicles * w.batchesPerVehicle * w.eventsPerBatch,
      startedAt,
      endedAt,
      cpuMs: (used.user + used.system) / 1000,
    }
  } finally {
    await db.close()
  }
}

/** Starts `processes` node children on a fresh schema of `shards` shards; answers events/s over all. */
async function nodeRound(
  databaseUrl: string,
  processes: number,
  shards: number,
  w: NodeWorkload,
): Promise<{ rate: number; cpuUsPerEvent: number }> {
  const schema = `bench_nodes_${randomBytes(6).toString('hex')}`
  const admin = await openDatabase({ engine: 'postgres', url: databaseUrl, maxConnections: 1 })
  await admin.exec(`create schema ${schema}`)
  const url = new URL(databaseUrl)
  url.searchParams.set('options', `-c search_path=${schema}`)
  let db: Database | undefined
  try {
    db = await openDatabase({ engine: 'postgres', url: url.toString(), maxConnections: 2 })
    await migrate(db)
    await ensureShards(db, shards)
    await db.close()
    db = undefined
    const share = { ...w, vehicles: w.vehicles / processes }
    const script = fileURLToPath(import.meta.url)
    const children = Array.from({ length: processes }, (_, i) => {
      const child = spawn(
        process.execPath,
        [
          script,
          '--node-child',
          url.toString(),
          String(shards),
          String(i * share.vehicles),
          JSON.stringify(share),
        ],
        { stdio: ['pipe', 'pipe', 'pipe'] },
      )
      let stdout = ''
      let stderr = ''
      child.stderr.on('data', (chunk) => {
        stderr += chunk
      })
      const ready = new Promise<void>((resolve) => {
        child.stdout.on('data', (chunk) => {
          stdout += chunk
          if (stdout.includes('ready\n')) resolve()
        })
      })
      const done = new Promise<ChildReport>((resolve, reject) => {
        child.on('close', (code) => {
          if (code !== 0)
            reject(
              new BaseError('INTERNAL', `a node child exited ${code}: ${stderr.trim().split('\n').at(-1)}`),
            )
          else resolve(JSON.parse(stdout.trim().split('\n').at(-1)!) as ChildReport)
        })
      })
      return { child, ready, done }
    })
    await Promise.all(children.map((c) => Promise.race([c.ready, c.done])))
    for (const { child } of children) child.stdin.end('go\n')
    const reports = await Promise.all(children.map((c) => c.done))
    const events = reports.reduce((sum, r) => sum + r.events, 0)
    const seconds =
      (Math.max(...reports.map((r) => r.endedAt)) - Math.min(...reports.map((r) => r.startedAt))) / 1000
    const cpuMs = reports.reduce((sum, r) => sum + r.cpuMs, 0)
    return { rate: events / seconds, cpuUsPerEvent: (cpuMs * 1000) / events }
  } finally {
    await db?.close()
    await admin.exec(`drop schema ${schema} cascade`)
    await admin.close()
  }
}

export async function benchTwoNodes(options: BenchOptions): Promise<BenchResult[]> {
  const databaseUrl = options.databaseUrl!
  const w = nodeWorkload(options.quick)
  const pairs = options.quick ? 1 : 3
  const one: number[] = []
  const two: number[] = []
  const ratios: number[] = []
  const cpu = { one: [] as number[], two: [] as number[] }
  for (let pair = 0; pair < pairs; pair++) {
    const a = await nodeRound(databaseUrl, 1, 1, w)
    const b = await nodeRound(databaseUrl, 2, 4, w)
    one.push(a.rate)
    two.push(b.rate)
    ratios.push(b.rate / a.rate)
    cpu.one.push(a.cpuUsPerEvent)
    cpu.two.push(b.cpuUsPerEvent)
    options.progress(
      `two nodes over one, pair ${pair + 1}: one node, 1 shard ${Math.round(a.rate)} events/s; two nodes, 4 shards ${Math.round(b.rate)} events/s`,
    )
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!
  return [
    resultOf('ledger.two_nodes_over_one', '×', ratios, undefined, {
      what: 'events/s of two node processes (4 shards, each process taking half the cars, every process writing every shard) over one node process (1 shard), one PostgreSQL (DATABASE_URL), same cars and batches, acknowledged after commit',
      ...w,
      oneNodeEventsPerSecond: one.map(round3),
      twoNodesEventsPerSecond: two.map(round3),
      nodeCpuUsPerEvent: { oneNode: round3(median(cpu.one)), twoNodes: round3(median(cpu.two)) },
      cores: (await import('node:os')).availableParallelism(),
      limit:
        'the cores: one node process is bound by its one JavaScript thread (~8.5 µs/event) beside the server (~5 µs/event); a second process needs cores of its own, and on 2 cores it shares them with the first and the server, so the ratio shows the coordination costs (shard locks, more connections), not added capacity',
    }),
  ]
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === '--node-child') {
  const [, , , url, shards, offset, workload] = process.argv
  const report = await runNodeChild(
    url!,
    Number(shards),
    Number(offset),
    JSON.parse(workload!) as NodeWorkload,
  )
  process.stdout.write(`${JSON.stringify(report)}\n`)
}
