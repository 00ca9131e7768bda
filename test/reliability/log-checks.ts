/**
 * What the fault tests check on a node's log, from the outside with the public API only:
 * checkpoints seen earlier are prefixes of the log now (RFC 9162 §2.1.4 consistency proofs,
 * verified here), events seen earlier are still there at the same seq, each vehicle's seqs run
 * 0..n-1, and `carchain audit` finds the on-chain anchors consistent with the log.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { fromHex, type Hex } from '../../src/ledger/bytes.ts'
import { verifyConsistency } from '../../src/ledger/merkle.ts'
import { call } from './harness.ts'

const main = new URL('../../src/cli/main.ts', import.meta.url).pathname

export type Checkpoint = { treeSize: number; rootHash: Hex }
export type SeenEvent = { id: Hex; vehicle: string; seq: number }

/** Every event of `vehicle`, oldest first (pages of 500, newest first on the wire). */
export async function allEvents(nodeUrl: string, vehicle: string): Promise<SeenEvent[]> {
  const out: SeenEvent[] = []
  let before: number | undefined
  for (let page = 0; page < 10_000; page++) {
    const query = before === undefined ? 'limit=500' : `limit=500&before=${before}`
    const answer = await call(`${nodeUrl}/v1/vehicles/${vehicle}/events?${query}`)
    assert.equal(answer.status, 200, JSON.stringify(answer.body))
    const events = answer.body.events as { id: Hex; seq: number }[]
    for (const e of events) out.push({ id: e.id, vehicle: vehicle.toLowerCase(), seq: e.seq })
    if (events.length < 500) break
    before = Math.min(...events.map((e) => e.seq))
    if (before === 0) break
  }
  return out.sort((a, b) => a.seq - b.seq)
}

/**
 * Checks `earlier` is a prefix of the node's log now; answers the current checkpoint. `api`: the
 * log's paths (`/v1/log/shards/<shard>` for a shard other than 0).
 */
export async function assertPrefixes(
  nodeUrl: string,
  earlier: Iterable<Checkpoint>,
  api = '/v1/log',
): Promise<Checkpoint> {
  const now = (await call(`${nodeUrl}${api}/checkpoint`)).body as Checkpoint
  for (const seen of earlier) {
    if (seen.treeSize === 0) continue
    assert.ok(seen.treeSize <= now.treeSize, `the log shrank from ${seen.treeSize} to ${now.treeSize}`)
    if (seen.treeSize === now.treeSize) {
      assert.equal(now.rootHash, seen.rootHash, `another root at size ${seen.treeSize}`)
      continue
    }
    const { body } = await call(
      `${nodeUrl}${api}/proof/consistency?first=${seen.treeSize}&second=${now.treeSize}`,
    )
    const proof = (body.proof as Hex[]).map((h) => fromHex(h, 'proof', 32))
    assert.ok(
      verifyConsistency({
        first: seen.treeSize,
        second: now.treeSize,
        firstHash: fromHex(seen.rootHash, 'root', 32),
        secondHash: fromHex(now.rootHash, 'root', 32),
        proof,
      }),
      `the checkpoint (${seen.treeSize}, ${seen.rootHash}) served earlier is not a prefix of (${now.treeSize}, ${now.rootHash})`,
    )
  }
  return now
}

/** Checks every event seen earlier is still there, at its seq; each vehicle's seqs are 0..n-1. */
export async function assertEventsKept(
  nodeUrl: string,
  vehicles: readonly string[],
  seen: ReadonlyMap<Hex, SeenEvent>,
): Promise<Map<string, SeenEvent[]>> {
  const byVehicle = new Map<string, SeenEvent[]>()
  const present = new Map<Hex, SeenEvent>()
  for (const vehicle of vehicles) {
    const events = await allEvents(nodeUrl, vehicle)
    for (const [i, event] of events.entries())
      assert.equal(event.seq, i, `${vehicle}: seq ${event.seq} at position ${i} (a gap or a duplicate)`)
    for (const event of events) present.set(event.id, event)
    byVehicle.set(vehicle.toLowerCase(), events)
  }
  for (const event of seen.values()) {
    const now = present.get(event.id)
    assert.ok(now, `event ${event.id} (seq ${event.seq} of ${event.vehicle}) was acknowledged and is gone`)
    assert.equal(now.seq, event.seq)
  }
  return byVehicle
}

/** `carchain audit --node URL --json`: every anchor on chain consistent with the last and the log. */
export function audit(
  nodeUrl: string,
): Promise<{ consistent: boolean; anchors: number; [k: string]: unknown }> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [main, 'audit', '--node', nodeUrl, '--json'],
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
