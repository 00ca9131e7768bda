/**
 * Several nodes, several shards (docs/reliability.md, issue 18): two `carchain up` processes serve
 * one deployment of 4 log shards on one PostgreSQL database — the second started with `--join` —
 * while certified cars upload over HTTP to either node (any node takes any upload), and the
 * second node is SIGKILLed mid-run and started again. With a broker (Mosquitto on 127.0.0.1:1883)
 * both nodes subscribe to it and every fourth car uploads over MQTT, whichever node the broker
 * hands its batch to. Afterwards:
 * - every checkpoint of every shard either node served is a prefix of that shard's log now;
 * - every acknowledged event is stored, each car's seqs run 0..n-1 and match what it made;
 * - every shard holds only its own vehicles, each vehicle's chain whole and in order in its
 *   shard, and no event twice across the shards;
 * - the shards are anchored, several of them by one transaction, and `carchain audit` finds each
 *   shard's anchors consistent with its log;
 * - a witness cosigns every shard's checkpoints from whichever node holds the shard's publishing
 *   lease, and both nodes end up serving the same cosigned checkpoint of each shard's full tree.
 *
 * Short mode: 16 cars for 8 s. Soak (`CARCHAIN_SOAK=1`): 40 cars for 60 s.
 */

import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { developmentAccount } from '../../src/chain/clients.ts'
import { openDatabase } from '../../src/db/database.ts'
import { createBatch } from '../../src/ledger/batch.ts'
import { fromBase64, type Hex, toHex } from '../../src/ledger/bytes.ts'
import { parseEnvelopeBytes } from '../../src/ledger/envelope.ts'
import { noteTextOf, openCheckpointNote, verifierKey, verifyCosignatures } from '../../src/ledger/note.ts'
import { shardPath } from '../../src/ledger/shard-rule.ts'
import { shardOfVehicle } from '../../src/ledger/shards.ts'
import { shardOrigin } from '../../src/node/checkpoints.ts'
import { connectMqtt } from '../../src/node/mqtt.ts'
import { loadNoteKey, NOTE_KEY_FILE } from '../../src/node/transparency.ts'
import { startWitness } from '../../src/node/witness-server.ts'
import { type BatchTransport, httpBatchTransport, mqttBatchTransport } from '../../src/vehicle/ledger.ts'
import { seedFleet } from '../fleet-fixture.ts'
import { requirePart } from '../skip.ts'
import {
  call,
  listening,
  MQTT_URL,
  POSTGRES_URL,
  seed,
  seededRandom,
  sleep,
  soak,
  waitFor,
} from './harness.ts'
import { assertEventsKept, assertPrefixes, type Checkpoint, type SeenEvent } from './log-checks.ts'
import { startUp, type UpInfo, type UpProcess } from './up-process.ts'

const SHARDS = 4
const CARS = soak ? 40 : 16
const DURATION_MS = soak ? 60_000 : 8000
const main = new URL('../../src/cli/main.ts', import.meta.url).pathname
const dirA = mkdtempSync(join(tmpdir(), 'carchain-shards-a-'))
const dirB = mkdtempSync(join(tmpdir(), 'carchain-shards-b-'))
const dirW = mkdtempSync(join(tmpdir(), 'carchain-shards-w-'))
const ORIGIN = 'reliability.test/shards'
after(() => {
  rmSync(dirA, { recursive: true, force: true })
  rmSync(dirB, { recursive: true, force: true })
  rmSync(dirW, { recursive: true, force: true })
})
const api = (shard: number) => shardPath('/v1/log', shard)

/** `carchain audit --shard N`: that shard's anchors on chain consistent with each other and its log. */
function auditShard(nodeUrl: string, shard: number): Promise<{ consistent: boolean; anchors: number }> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [main, 'audit', '--node', nodeUrl, '--shard', String(shard), '--json'],
      { timeout: 120_000, env: { ...process.env, DATABASE_URL: '' } },
      (error, stdout) => {
        try {
          resolve(JSON.parse(stdout))
        } catch {
          reject(error ?? new Error(`audit printed no JSON: ${stdout}`))
        }
      },
    )
  })
}

test(`two nodes, ${SHARDS} shards, one PostgreSQL: ${CARS} cars upload to either node, one node is killed; every shard stays a prefix, nothing lost or doubled`, async (t) => {
  const target = new URL(POSTGRES_URL)
  const serverUp = await listening(target.hostname, Number(target.port || 5432))
  if (!requirePart(t, serverUp, `no PostgreSQL at ${target.host}`)) return
  // A schema of its own on the server: the deployment's whole database.
  const schema = `shards_${randomBytes(6).toString('hex')}`
  const admin = await openDatabase({ engine: 'postgres', url: POSTGRES_URL, maxConnections: 1 })
  await admin.exec(`create schema ${schema}`)
  t.after(async () => {
    await admin.exec(`drop schema ${schema} cascade`)
    await admin.close()
  })
  const url = new URL(POSTGRES_URL)
  url.searchParams.set('options', `-c search_path=${schema}`)
  const env = {
    CARCHAIN_ANCHOR_INTERVAL_MS: '1000',
    CARCHAIN_ANCHOR_EVERY: '50',
    CARCHAIN_RATE_LIMIT_API: '1000000',
  }
  const operator = developmentAccount(0)
  const brokerUp = await listening(new URL(MQTT_URL).hostname, Number(new URL(MQTT_URL).port || 1883))
  const mqtt = brokerUp ? ['--mqtt', MQTT_URL] : []
  const ups: UpProcess[] = []
  const transports: BatchTransport[] = []
  // The deployment's note key first, so the witness knows every shard's log before the nodes start.
  const signer = loadNoteKey(dirA, ORIGIN).signer
  const logKeys = Array.from({ length: SHARDS }, (_, k) =>
    verifierKey(shardOrigin(ORIGIN, k), signer.publicKey),
  )
  const witness = await startWitness({ dataDir: dirW, name: 'reliability.test/witness', logs: logKeys })
  t.after(() => witness.stop())
  const withWitness = ['--witness', `${witness.url}=${witness.witness.verifierKey}`]
  try {
    const a = startUp(
      [
        '--no-sim',
        '--data',
        dirA,
        '--database',
        url.toString(),
        '--shards',
        String(SHARDS),
        '--log-origin',
        ORIGIN,
        ...withWitness,
        ...mqtt,
      ],
      env,
    )
    ups.push(a)
    const infoA = await a.ready
    // The joining node signs checkpoints with the deployment's note key.
    copyFileSync(join(dirA, NOTE_KEY_FILE), join(dirB, NOTE_KEY_FILE))
    const startB = () => {
      const b = startUp(
        [
          '--join',
          '--rpc',
          infoA.chain.rpcUrl,
          '--database',
          url.toString(),
          '--data',
          dirB,
          ...withWitness,
          ...mqtt,
        ],
        {
          ...env,
          CARCHAIN_OPERATOR_KEY: toHex(operator.getHdKey().privateKey!),
        },
      )
      ups.push(b)
      return b
    }
    let b = startB()
    let infoB: UpInfo = await b.ready
    const shardList = (await call(`${infoB.url}/v1/log/shards`)).body as { count: number }
    assert.equal(shardList.count, SHARDS, 'the joining node serves the deployment’s shards')

    const fleet = await seedFleet(infoA, CARS)
    t.after(() => fleet.cleanup())
    const random = seededRandom(seed + 180)
    const acknowledged = new Map<Hex, SeenEvent>()
    const checkpoints = Array.from({ length: SHARDS }, () => new Map<number, Checkpoint>())
    const figures = { batches: 0, events: 0, toA: 0, toB: 0, toBRestarted: 0, mqtt: 0, resends: 0, kills: 0 }

    // Both nodes' transports; B's is replaced when it comes back on another port.
    const nodes = {
      a: httpBatchTransport(infoA.url, operator.address, 30_000),
      b: httpBatchTransport(infoB.url, operator.address, 30_000),
    }
    transports.push(nodes.a, nodes.b)
    let bUp = true
    let restartedAt: number | undefined
    let stopping = false
    const sampler = (async () => {
      for (let round = 0; !stopping && round < 100_000; round++) {
        for (const info of bUp ? [infoA, infoB] : [infoA]) {
          for (let shard = 0; shard < SHARDS; shard++) {
            try {
              const { body } = await call(`${info.url}${api(shard)}/checkpoint`, { timeoutMs: 5000 })
              if (typeof body.treeSize === 'number')
                checkpoints[shard]!.set(body.treeSize, { treeSize: body.treeSize, rootHash: body.rootHash })
            } catch {
              // the node died mid-request: what it did not answer was not served
            }
          }
        }
        await sleep(200)
      }
    })()
    const drive = async (i: number) => {
      const car = fleet.cars[i]!
      // Every fourth car over the broker: the nodes share its subscription, either one answers.
      let overMqtt: BatchTransport | undefined
      if (brokerUp && i % 4 === 3) {
        const client = await connectMqtt(MQTT_URL, `carchain-shards-${process.pid}-${i}`)
        overMqtt = await mqttBatchTransport(client, car.vehicle, operator.address, 10_000)
        transports.push(overMqtt)
      }
      await sleep(random() * 500)
      const endAt = Date.now() + DURATION_MS
      // Until the run's time is up and node B has served again for a while after its restart.
      const driving = () => Date.now() < endAt || restartedAt === undefined || Date.now() < restartedAt + 2000
      for (let round = 0; driving() && Date.now() < endAt + 120_000 && round < 100_000; round++) {
        const events = Array.from({ length: 1 + ((i + round) % 4) }, (_, k) =>
          car.chain.append({ kind: 'telemetry', time: Date.now() + k, data: { round, k } }),
        )
        const batch = await createBatch({ events, signer: { sign: car.sign } })
        for (let attempt = 0; attempt < 200; attempt++) {
          // Any node takes any upload: alternate, and fall over to the other one on failure.
          const toB = bUp && (i + round + attempt) % 2 === 1
          try {
            const { ids } = await (overMqtt ?? (toB ? nodes.b : nodes.a)).send(batch)
            for (const [n, id] of ids.entries())
              acknowledged.set(id as Hex, {
                id: id as Hex,
                vehicle: car.vehicle.toLowerCase(),
                seq: events[n]!.envelope.seq,
              })
            figures[overMqtt ? 'mqtt' : toB ? 'toB' : 'toA'] += events.length
            if (toB && !overMqtt && restartedAt !== undefined) figures.toBRestarted += events.length
            break
          } catch {
            figures.resends++
            await sleep(100)
          }
        }
        figures.batches++
        figures.events += events.length
        await sleep(100 + random() * 200)
      }
    }
    const killer = (async () => {
      await sleep(DURATION_MS / 3)
      b.child.kill('SIGKILL')
      bUp = false
      await b.exited
      figures.kills++
      await sleep(500)
      b = startB()
      infoB = await b.ready
      nodes.b = httpBatchTransport(infoB.url, operator.address, 30_000)
      transports.push(nodes.b)
      bUp = true
      restartedAt = Date.now()
    })()
    await Promise.all([...fleet.cars.map((_, i) => drive(i)), killer])
    stopping = true
    await sampler
    assert.ok(
      figures.toBRestarted > 0 && figures.toA > 0,
      `both nodes took uploads, node B again after its restart: ${JSON.stringify(figures)}`,
    )

    // Every shard: every checkpoint served is a prefix of its log now, on both nodes.
    for (const info of [infoA, infoB])
      for (let shard = 0; shard < SHARDS; shard++)
        await assertPrefixesAt(info.url, shard, checkpoints[shard]!.values())

    // Nothing acknowledged lost; each car's chain 0..n-1, as it made it.
    const vehicles = fleet.cars.map((car) => car.vehicle)
    const kept = await assertEventsKept(infoB.url, vehicles, acknowledged)
    for (const car of fleet.cars)
      assert.equal(
        kept.get(car.vehicle.toLowerCase())!.length,
        car.chain.head().nextSeq,
        `${car.vehicle}: all stored`,
      )

    // Each shard holds only its vehicles, each chain whole and in order there, nothing twice.
    const seen = new Set<Hex>()
    const nextSeq = new Map<string, number>()
    let total = 0
    for (let shard = 0; shard < SHARDS; shard++) {
      const { treeSize } = (await call(`${infoA.url}${api(shard)}/checkpoint`)).body as Checkpoint
      for (let start = 0; start < treeSize; start += 1000) {
        const { body } = await call(`${infoA.url}${api(shard)}/entries?start=${start}&end=${treeSize}`)
        for (const entry of body.entries as { leafInput: string; leafHash: Hex }[]) {
          const envelope = parseEnvelopeBytes(fromBase64(entry.leafInput, 'leafInput'))
          assert.equal(
            shardOfVehicle(envelope.vehicle, SHARDS),
            shard,
            `${envelope.vehicle} in shard ${shard}`,
          )
          assert.ok(!seen.has(entry.leafHash), `event ${entry.leafHash} stored twice`)
          seen.add(entry.leafHash)
          assert.equal(
            envelope.seq,
            nextSeq.get(envelope.vehicle) ?? 0,
            `${envelope.vehicle}: chain in order`,
          )
          nextSeq.set(envelope.vehicle, envelope.seq + 1)
          total++
        }
      }
    }
    const made = fleet.cars.reduce((sum, car) => sum + car.chain.head().nextSeq, 0)
    assert.equal(total, made, 'the shards hold exactly the events the cars made')
    const used = new Set(fleet.cars.map((car) => shardOfVehicle(car.vehicle, SHARDS)))
    assert.ok(used.size > 1, 'the cars spread over several shards')

    // Anchored: every shard that holds events, several by one transaction; audits consistent.
    const anchorTxs = await waitFor(
      'every shard anchored up to its current size',
      async () => {
        const txs: Hex[][] = []
        for (let shard = 0; shard < SHARDS; shard++) {
          const size = (await call(`${infoA.url}${api(shard)}/checkpoint`)).body.treeSize as number
          const anchored = (await call(`${infoA.url}${api(shard)}/anchored`)).body.treeSize as number
          if (anchored < size) return undefined
          const { body } = await call(`${infoA.url}${api(shard)}/anchors?limit=1000`)
          txs.push((body.anchors as { txHash: Hex }[]).map((anchor) => anchor.txHash))
        }
        return txs
      },
      60_000,
      500,
    )
    const txShards = new Map<Hex, number>()
    for (const txs of anchorTxs) for (const tx of new Set(txs)) txShards.set(tx, (txShards.get(tx) ?? 0) + 1)
    assert.ok(
      [...txShards.values()].some((count) => count > 1),
      'one transaction anchored several shards',
    )
    for (const shard of used) {
      const result = await auditShard(infoB.url, shard)
      assert.equal(result.consistent, true, JSON.stringify(result))
    }
    // Every shard's full tree cosigned by the witness, the same checkpoint from both nodes (one
    // lease holder per shard submits; a lease of the killed node runs out within 30 s).
    await waitFor(
      'both nodes serve every shard’s full tree, cosigned, the same bytes',
      async () => {
        for (let shard = 0; shard < SHARDS; shard++) {
          const path = `${shardPath('/log', shard)}/checkpoint`
          const [fromA, fromB] = await Promise.all(
            [infoA, infoB].map(async (info) => (await fetch(`${info.url}${path}`)).text()),
          )
          const size = (await call(`${infoA.url}${api(shard)}/checkpoint`)).body.treeSize as number
          if (fromA !== fromB || openCheckpointNote(fromA!, logKeys[shard]!).treeSize !== size)
            return undefined
          const lines = fromA!.slice(noteTextOf(fromA!).length + 1)
          if (verifyCosignatures(lines, noteTextOf(fromA!), witness.witness.verifierKey).length !== 1)
            return undefined
        }
        return true
      },
      60_000,
      500,
    )
    t.diagnostic(
      `shards: ${CARS} cars, ${figures.batches} batches, ${figures.events} events (HTTP ${figures.toA} via node A, ${figures.toB} via node B, ${figures.toBRestarted} of them after its restart; ${figures.mqtt} over MQTT), ${acknowledged.size} acknowledged and all kept, ${figures.resends} re-sends, ${figures.kills} SIGKILL of node B; ${SHARDS} shards (${used.size} used), ${checkpoints.reduce((n, c) => n + c.size, 0)} checkpoints re-proven, ${txShards.size} anchor transactions`,
    )
  } finally {
    for (const transport of transports) await transport.close?.()
    for (const up of ups) {
      if (up.child.exitCode === null && up.child.signalCode === null) {
        up.child.kill('SIGINT')
        await up.exited
      }
    }
  }
})

async function assertPrefixesAt(
  nodeUrl: string,
  shard: number,
  earlier: Iterable<Checkpoint>,
): Promise<void> {
  await assertPrefixes(nodeUrl, earlier, api(shard))
}
