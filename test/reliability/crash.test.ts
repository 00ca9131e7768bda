/**
 * Crash consistency (docs/reliability.md, part 1): `carchain up` with the demo fleet is killed
 * with SIGKILL at seeded random moments — one of them during start-up — and restarted on the same
 * data dir. After each restart:
 * - every checkpoint the node served before any kill is a prefix of the log (verified consistency
 *   proof), so the log never forked or shrank;
 * - every event the node served (so acknowledged) is still there at its seq, and each car's seqs
 *   run 0..n-1: nothing lost, nothing doubled;
 * - every event a car had logged when it was killed reaches the node with the same id (the car
 *   re-sends its unacknowledged tail, and the node takes each event once);
 * - `carchain audit` finds the anchors on chain consistent with each other and with the log
 *   (the embedded chain may have lost its last second: the node re-anchors).
 *
 * Short mode: 3 kills. Soak (`CARCHAIN_SOAK=1`): 12 kills, longer runs between them.
 */
import assert from 'node:assert/strict'
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import type { Hex } from '../../src/ledger/bytes.ts'
import { openLocalLog } from '../../src/ledger/local-log.ts'
import { call, seed, seededRandom, sleep, soak, waitFor } from './harness.ts'
import { assertEventsKept, assertPrefixes, audit, type Checkpoint, type SeenEvent } from './log-checks.ts'
import { startUp, type UpInfo, type UpProcess } from './up-process.ts'

const KILLS = soak ? 12 : 3
const VEHICLES = soak ? 3 : 2
const dataDir = mkdtempSync(join(tmpdir(), 'carchain-crash-'))
const scratch = mkdtempSync(join(tmpdir(), 'carchain-crash-logs-'))
after(() => {
  rmSync(dataDir, { recursive: true, force: true })
  rmSync(scratch, { recursive: true, force: true })
})

const env = {
  CARCHAIN_ANCHOR_INTERVAL_MS: '1000',
  CARCHAIN_ANCHOR_EVERY: '20',
  CARCHAIN_RATE_LIMIT_API: '1000000',
}
const start = () => startUp(['--vehicles', String(VEHICLES), '--data', dataDir], env)

/** What the test saw served before the kills. */
const checkpoints = new Map<number, Checkpoint>()
const seenEvents = new Map<Hex, SeenEvent>()
/** What the cars had logged at the last kill (read from a copy of each car's local log). */
const logged = new Map<string, { nextSeq: number; ids: Map<number, Hex> }>()
const figures = {
  kills: 0,
  killsDuringStart: 0,
  checkpoints: 0,
  events: 0,
  matchedById: 0,
  anchorsAudited: 0,
}

function fleetRecords(): { vin: string; vehicle: string }[] {
  const path = join(dataDir, 'fleet', 'fleet.json')
  if (!existsSync(path)) return []
  return (JSON.parse(readFileSync(path, 'utf8')) as { vehicles: { vin: string; vehicle: string }[] }).vehicles
}

/** Samples checkpoints and events while the node runs, until `stop()` — then waits for the loop. */
function sample(info: UpInfo, vehicles: string[]) {
  let stopped = false
  const loop = (async () => {
    for (let round = 0; !stopped && round < 100_000; round++) {
      try {
        const c = (await call(`${info.url}/v1/log/checkpoint`, { timeoutMs: 5000 })).body
        if (!stopped && typeof c.treeSize === 'number')
          checkpoints.set(c.treeSize, { treeSize: c.treeSize, rootHash: c.rootHash })
        for (const vehicle of vehicles) {
          const { body } = await call(`${info.url}/v1/vehicles/${vehicle}/events?limit=100`, {
            timeoutMs: 5000,
          })
          if (stopped) break
          for (const e of body.events ?? [])
            seenEvents.set(e.id, { id: e.id, vehicle: vehicle.toLowerCase(), seq: e.seq })
        }
      } catch {
        // the node died mid-request: whatever it did not answer was not served
      }
      await sleep(200)
    }
  })()
  return async () => {
    stopped = true
    await loop
  }
}

/** Reads each car's local log from a copy (the car itself recovers the original on restart). */
async function snapshotCarLogs() {
  for (const { vin, vehicle } of fleetRecords()) {
    const path = join(dataDir, 'fleet', vin, 'ledger.log')
    if (!existsSync(path)) continue
    const copy = join(scratch, `${vin}-${Date.now()}.log`)
    copyFileSync(path, copy)
    const log = await openLocalLog(copy)
    const ids = new Map(log.entries().map((e) => [e.envelope.seq, e.id]))
    logged.set(vehicle.toLowerCase(), { nextSeq: log.head().nextSeq, ids })
    await log.close()
  }
}

/** Every check after a restart. */
async function checkAfterRestart(info: UpInfo, up: UpProcess) {
  const vehicles = fleetRecords().map((r) => r.vehicle)
  await assertPrefixes(info.url, checkpoints.values())
  await assertEventsKept(info.url, vehicles, seenEvents)
  // The cars re-send what the node had not acknowledged: each reaches the node, with the same id.
  for (const [vehicle, car] of logged) {
    let held = -1
    const byVehicle = await waitFor(
      `${vehicle} to re-send up to seq ${car.nextSeq - 1}`,
      async () => {
        const kept = await assertEventsKept(info.url, [vehicle], new Map())
        const events = kept.get(vehicle)!
        held = events.length
        return events.length >= car.nextSeq ? events : undefined
      },
      180_000,
      1000,
    ).catch((error: Error) => {
      throw new Error(`${error.message}; the node holds ${held}; the node said: ${up.output().slice(-3000)}`)
    })
    for (const [seq, id] of car.ids) {
      assert.equal(
        byVehicle[seq]?.id,
        id,
        `${vehicle} seq ${seq}: the node holds another event than the car logged`,
      )
      figures.matchedById += 1
    }
  }
  const result = await audit(info.url)
  assert.equal(result.consistent, true, JSON.stringify(result))
  figures.anchorsAudited = Math.max(figures.anchorsAudited, result.anchors)
}

test(`SIGKILL the node and its fleet ${KILLS} times at random moments: nothing served is lost or rewritten`, async (t) => {
  const random = seededRandom(seed + 20)
  let up: UpProcess | undefined
  try {
    for (let kill = 0; kill < KILLS; kill++) {
      up = start()
      // One kill lands during start-up (chain, deployment, database, fleet registration).
      if (kill === 1) {
        await Promise.race([sleep(1000 + random() * 4000), up.exited])
        up.child.kill('SIGKILL')
        await up.exited
        figures.kills++
        figures.killsDuringStart++
        await snapshotCarLogs()
        continue
      }
      const info = await up.ready
      if (kill > 0) await checkAfterRestart(info, up)
      const vehicles = await waitFor('the fleet', async () => {
        const list = (await call(`${info.url}/v1/sim/vehicles`)).body as unknown as { vehicle: string }[]
        return Array.isArray(list) && list.length === VEHICLES ? list.map((v) => v.vehicle) : undefined
      })
      const stopSampling = sample(info, vehicles)
      await sleep((soak ? 3000 : 1500) + random() * (soak ? 20_000 : 4000))
      up.child.kill('SIGKILL')
      await stopSampling()
      await up.exited
      figures.kills++
      await snapshotCarLogs()
      assert.ok(checkpoints.size > 0 || kill === 0, 'nothing was sampled')
    }
    up = start()
    const info = await up.ready
    await checkAfterRestart(info, up)
    figures.checkpoints = checkpoints.size
    figures.events = seenEvents.size
    up.child.kill('SIGINT')
    assert.equal(await up.exited, 0, up.output())
    up = undefined
  } finally {
    if (up && up.child.exitCode === null) {
      up.child.kill('SIGKILL')
      await up.exited
    }
  }
  t.diagnostic(
    `crash: ${figures.kills} SIGKILLs (${figures.killsDuringStart} during start-up); ${figures.checkpoints} checkpoints re-proven, ${figures.events} served events kept, ${figures.matchedById} car-logged events matched by id (summed over restarts), ${figures.anchorsAudited} anchors audited consistent`,
  )
})
