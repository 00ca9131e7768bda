import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import fc from 'fast-check'
import { engines, freshDatabase } from '../../test/database.ts'
import type { Database } from '../db/database.ts'
import { BaseError, isErrorCode } from '../errors.ts'
import { type BatchJson, createBatch, parseBatch } from './batch.ts'
import { fromHex, toHex } from './bytes.ts'
import {
  computeCommit,
  createEventChain,
  encodeEnvelope,
  odometerKm,
  type Payload,
  parseEnvelope,
  parsePayload,
  type VehicleAddress,
} from './envelope.ts'
import { createBatchIngester, ingestBatch } from './ingest.ts'
import { canonicalize, type JsonValue } from './jcs.ts'
import { buildMerkleTree, hashLeaf } from './merkle.ts'
import { getAlerts, getCheckpoint, getEntries, getPayload } from './store.ts'
import { aP256Signer } from './testing.ts'

const vehicle = `0x${'c0'.repeat(20)}` as VehicleAddress
const key = aP256Signer()
const resolveVehicleKey = async (v: VehicleAddress) => (v === vehicle ? key.publicKey : undefined)
const clone = (batch: BatchJson): BatchJson => JSON.parse(JSON.stringify(batch))

for (const engine of engines) {
  describe(`ingest on ${engine}`, () => {
    let db: Database
    before(async () => {
      db = await freshDatabase(engine)
    })
    after(async () => {
      await db.close()
    })
    const chain = createEventChain({ vehicle })

    it('accepts a signed batch, then the same batch again with the same ids', async () => {
      const events = [
        chain.append({ kind: 'door.unlocked', time: 1_000, data: { by: 'owner' } }),
        chain.append({ kind: 'odometer', time: 2_000, data: { km: 12_345.6 } }),
        chain.append({ kind: 'trip.started', time: 3_000, data: { lat: 52.5, lon: 13.4 } }),
      ]
      const batch = await createBatch({ events, signer: key.signer })
      const wire = JSON.parse(JSON.stringify(batch))
      const first = await ingestBatch(db, { batch: wire, resolveVehicleKey, authenticatedVehicle: vehicle })
      assert.deepEqual(
        first.ids,
        events.map((event) => event.id),
      )
      assert.equal(first.treeSize, 3)
      assert.equal(first.vehicle, vehicle)
      const again = await ingestBatch(db, { batch: wire, resolveVehicleKey })
      assert.deepEqual(again.ids, first.ids)
      assert.equal(again.duplicates, 3)
      assert.deepEqual((await getPayload(db, events[1]!.id)).data, { km: 12_345.6 })
      assert.equal((await getCheckpoint(db)).treeSize, 3)
    })

    it('refuses malformed batches', async () => {
      const events = [
        createEventChain({ vehicle, head: chain.head() }).append({
          kind: 'parking.started',
          time: 4_000,
          data: {},
        }),
      ]
      const good = await createBatch({ events, signer: key.signer })
      const cases: [string, (b: BatchJson) => unknown, string][] = [
        ['extra key', (b) => ({ ...b, extra: 1 }), 'EVENT_MALFORMED'],
        ['no events', (b) => ({ ...b, events: [] }), 'EVENT_MALFORMED'],
        ['bad vehicle', (b) => ({ ...b, vehicle: vehicle.toUpperCase() }), 'EVENT_MALFORMED'],
        ['other vehicle', (b) => ({ ...b, vehicle: `0x${'c1'.repeat(20)}` }), 'EVENT_VEHICLE_MISMATCH'],
        [
          'payload mismatch',
          (b) => ({
            ...b,
            events: [{ ...b.events[0]!, payload: { ...b.events[0]!.payload!, data: { x: 1 } } }],
          }),
          'EVENT_MALFORMED',
        ],
        ['event extra key', (b) => ({ ...b, events: [{ ...b.events[0]!, more: 1 }] }), 'EVENT_MALFORMED'],
        [
          'checkpoint of another event',
          (b) => ({ ...b, checkpoint: { ...b.checkpoint, leafHash: `0x${'00'.repeat(32)}` } }),
          'EVENT_MALFORMED',
        ],
        [
          'short signature',
          (b) => ({ ...b, checkpoint: { ...b.checkpoint, signature: '0x1234' } }),
          'EVENT_MALFORMED',
        ],
      ]
      for (const [name, mutate, code] of cases) {
        await assert.rejects(
          ingestBatch(db, { batch: mutate(clone(good)), resolveVehicleKey }),
          (e) => isErrorCode(e, code as 'EVENT_MALFORMED'),
          name,
        )
      }
      // Odometer events must carry their reading.
      const odo = createEventChain({ vehicle, head: chain.head() }).append({
        kind: 'odometer',
        time: 5_000,
        data: { km: 1 },
      })
      const withoutPayload = await createBatch({ events: [odo], signer: key.signer, withoutPayloads: true })
      assert.throws(
        () => parseBatch(withoutPayload),
        (e) => isErrorCode(e, 'EVENT_MALFORMED'),
      )
    })

    it('refuses bad signatures, unknown vehicles and another authenticated vehicle', async () => {
      const events = [
        createEventChain({ vehicle, head: chain.head() }).append({
          kind: 'trip.ended',
          time: 6_000,
          data: {},
        }),
      ]
      const forged = await createBatch({ events, signer: aP256Signer().signer })
      await assert.rejects(ingestBatch(db, { batch: forged, resolveVehicleKey }), (e) =>
        isErrorCode(e, 'EVENT_BAD_SIGNATURE'),
      )
      const good = await createBatch({ events, signer: key.signer })
      await assert.rejects(ingestBatch(db, { batch: good, resolveVehicleKey: async () => undefined }), (e) =>
        isErrorCode(e, 'VEHICLE_NOT_REGISTERED'),
      )
      await assert.rejects(
        ingestBatch(db, { batch: good, resolveVehicleKey, authenticatedVehicle: `0x${'c1'.repeat(20)}` }),
        (e) => isErrorCode(e, 'EVENT_VEHICLE_MISMATCH'),
      )
    })

    it('refuses gaps and forks, odometer rollbacks (alerted), and goes on after them', async () => {
      const ahead = createEventChain({
        vehicle,
        head: { ...chain.head(), nextSeq: chain.head().nextSeq + 1 },
      })
      const gap = await createBatch({
        events: [ahead.append({ kind: 'trip.ended', time: 7_000, data: {} })],
        signer: key.signer,
      })
      await assert.rejects(ingestBatch(db, { batch: gap, resolveVehicleKey }), (e) =>
        isErrorCode(e, 'EVENT_GAP'),
      )

      const fork = createEventChain({ vehicle })
      const forked = await createBatch({
        events: [fork.append({ kind: 'door.locked', time: 1_000, data: {} })],
        signer: key.signer,
      })
      await assert.rejects(ingestBatch(db, { batch: forked, resolveVehicleKey }), (e) =>
        isErrorCode(e, 'EVENT_FORK'),
      )

      const rollback = createEventChain({ vehicle, head: chain.head() })
      const rolled = await createBatch({
        events: [rollback.append({ kind: 'odometer', time: 8_000, data: { km: 10 } })],
        signer: key.signer,
      })
      await assert.rejects(ingestBatch(db, { batch: rolled, resolveVehicleKey }), (e) =>
        isErrorCode(e, 'ODOMETER_ROLLBACK'),
      )
      assert.deepEqual(
        (await getAlerts(db, { vehicle })).map((alert) => alert.code),
        ['ODOMETER_ROLLBACK', 'EVENT_FORK'],
      )
      const next = await createBatch({
        events: [chain.append({ kind: 'odometer', time: 9_000, data: { km: 12_400 } })],
        signer: key.signer,
      })
      const result = await ingestBatch(db, { batch: next, resolveVehicleKey })
      assert.equal(result.leafIndexes[0], 3)
    })

    it('takes one vehicle’s consecutive batches sent at once, in order, however it verifies', async () => {
      for (const verifyOnWorker of [false, true]) {
        const signer = aP256Signer()
        const chain = createEventChain({ vehicle: `0x${verifyOnWorker ? 'a1' : 'a2'}${'0'.repeat(38)}` })
        const ingester = createBatchIngester(db, {
          resolveVehicleKey: async (v) => (v === chain.vehicle ? signer.publicKey : undefined),
          verifyOnWorker,
        })
        const batches = await Promise.all(
          [0, 1, 2, 3, 4].map((b) =>
            createBatch({
              events: [1, 2, 3].map((t) =>
                chain.append({ kind: 'telemetry', time: 10 * b + t, data: { t } }),
              ),
              signer: signer.signer,
            }),
          ),
        )
        const results = await Promise.all(batches.map((batch) => ingester.ingest(clone(batch))))
        assert.deepEqual(
          results.flatMap((result) => result.ids),
          batches.flatMap((batch) =>
            batch.events.map((event) => toHex(hashLeaf(encodeEnvelope(event.envelope)))),
          ),
        )
        assert.ok(
          results.every((result, i) => i === 0 || result.leafIndexes[0]! > results[i - 1]!.leafIndexes[2]!),
        )
      }
    })

    it('group-commits concurrent vehicles through the ingester, each answered after its commit', async () => {
      const keys = [1, 2, 3, 4].map(() => aP256Signer())
      const fleet = keys.map((_, i) => createEventChain({ vehicle: `0x${'f'.repeat(39)}${i}` }))
      const resolve = async (v: VehicleAddress) =>
        keys[fleet.findIndex((chain) => chain.vehicle === v)]?.publicKey
      const ingester = createBatchIngester(db, { resolveVehicleKey: resolve, maxGroupBatches: 3 })
      const start = await getCheckpoint(db)
      const sent = await Promise.all(
        fleet.map(async (chain, i) => {
          const ids: string[] = []
          for (let round = 0; round < 3; round++) {
            const events = [0, 1].map((j) =>
              chain.append({ kind: 'telemetry', time: round * 10 + j, data: { j } }),
            )
            const result = await ingester.ingest(
              await createBatch({ events, signer: keys[i]!.signer }),
              chain.vehicle,
            )
            assert.deepEqual(
              result.ids,
              events.map((event) => event.id),
            )
            ids.push(...result.ids)
          }
          return ids
        }),
      )
      const forged = await createBatch({
        events: [fleet[0]!.append({ kind: 'telemetry', time: 99, data: {} })],
        signer: key.signer,
      })
      await assert.rejects(ingester.ingest(forged), (e) => isErrorCode(e, 'EVENT_BAD_SIGNATURE'))
      const end = await getCheckpoint(db)
      assert.equal(end.treeSize, start.treeSize + 24)
      const { entries } = await getEntries(db, 0, end.treeSize)
      assert.equal(
        toHex(buildMerkleTree({ leafHashes: entries.map((e) => fromHex(e.leafHash, 'h')) }).rootHash),
        end.rootHash,
      )
      assert.deepEqual(new Set(entries.slice(start.treeSize).map((e) => e.leafHash)), new Set(sent.flat()))
    })
  })
}

/** parseBatch as plainly specified, from the strict building blocks: the reference for its fast path. */
function referenceParse(value: unknown): unknown {
  const batch = value as { vehicle: string; events: unknown[] }
  const events: unknown[] = []
  let previous: { seq: number; leafHash: Uint8Array } | undefined
  batch.events.forEach((raw, i) => {
    const item = raw as Record<string, unknown>
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error('EVENT_MALFORMED')
    if (Object.keys(item).some((k) => k !== 'envelope' && k !== 'payload') || !('envelope' in item)) {
      throw new Error('EVENT_MALFORMED')
    }
    const envelope = parseEnvelope(item.envelope)
    if (envelope.vehicle !== batch.vehicle) throw new Error(`EVENT_VEHICLE_MISMATCH ${i}`)
    const leafInput = encodeEnvelope(envelope)
    const leafHash = hashLeaf(leafInput)
    if (previous !== undefined && envelope.seq !== previous.seq + 1) throw new Error('EVENT_GAP')
    if (previous !== undefined && envelope.prev !== toHex(previous.leafHash).slice(2))
      throw new Error('EVENT_FORK')
    let payload: Payload | undefined
    if (item.payload !== undefined) {
      payload = parsePayload(item.payload)
      if (computeCommit(payload) !== envelope.commit) throw new Error('EVENT_MALFORMED')
    }
    if (envelope.kind === 'odometer') {
      if (payload === undefined) throw new Error('EVENT_MALFORMED')
      odometerKm(payload.data)
    }
    events.push({
      envelope,
      leafInput: toHex(leafInput),
      id: toHex(leafHash),
      payload: payload && { salt: toHex(payload.salt), data: payload.data, json: canonicalize(payload.data) },
    })
    previous = { seq: envelope.seq, leafHash }
  })
  return events
}

function codeOf(error: unknown): string {
  if (error instanceof BaseError) return error.code
  const message = (error as Error).message
  return message.split(' ')[0]!
}

describe('parseBatch', () => {
  it('parses exactly as the plain algorithm does, and refuses alike, whatever is changed in a batch', async () => {
    const chain = createEventChain({ vehicle })
    const events = [
      chain.append({ kind: 'telemetry', time: 1, data: { speed: 3, lat: 1.5, note: 'x' } }),
      chain.append({ kind: 'odometer', time: 2, data: { km: 10 } }),
      chain.append({ kind: 'door.locked', time: 2, data: { by: ['a', { z: 1, a: null }] } }),
      chain.append({ kind: 'trip.ended', time: 5, data: {} }),
    ]
    const good = await createBatch({ events, signer: key.signer })
    // Committed, signed, and still refused: odometer readings that are not a number ≥ 0.
    const odometers = await Promise.all(
      ([{ km: -1 }, { km: '5' }, { miles: 5 }, [1]] as JsonValue[]).map((data) => {
        const odo = createEventChain({ vehicle })
        return createBatch({ events: [odo.append({ kind: 'odometer', time: 1, data })], signer: key.signer })
      }),
    )
    const paths: [number, string, string | undefined][] = []
    for (const i of [0, 1, 2, 3]) {
      paths.push([i, 'envelope', undefined], [i, 'payload', undefined])
      for (const field of ['v', 'vehicle', 'seq', 'time', 'kind', 'prev', 'commit'])
        paths.push([i, 'envelope', field])
      for (const field of ['salt', 'data']) paths.push([i, 'payload', field])
    }
    const replacement = fc.oneof(
      fc.constantFrom(
        undefined,
        null,
        0,
        -1,
        1.5,
        2 ** 53,
        '',
        'odometer',
        'telemetry',
        'nope',
        vehicle,
        `0x${'c1'.repeat(20)}`,
        '0'.repeat(64),
        'A'.repeat(64),
        `0x${'ab'.repeat(16)}`,
        `0x${'AB'.repeat(16)}`,
        'ab'.repeat(16),
        { km: -1 },
        { km: 5 },
        { b: 1, a: [1, 2] },
        ['x'],
        '\uD800',
        { extra: 1 },
      ),
      fc.string(),
      fc.integer(),
    )
    fc.assert(
      fc.property(
        fc.constantFrom(good, ...odometers),
        fc.array(fc.tuple(fc.constantFrom(...paths), replacement, fc.boolean()), {
          minLength: 0,
          maxLength: 3,
        }),
        (base, changes) => {
          const batch = clone(base) as unknown as {
            events: Record<string, Record<string, unknown> | undefined>[]
          }
          for (const [[i, part, field], value, asKey] of changes) {
            const event = batch.events[i]
            if (event === undefined) continue
            if (field === undefined) {
              if (value === undefined) delete event[part]
              else event[part] = value as Record<string, unknown>
            } else if (typeof event[part] === 'object' && event[part] !== null) {
              const target = event[part] as Record<string, unknown>
              if (asKey) target[`${field}_`] = value
              else if (value === undefined) delete target[field]
              else target[field] = value
            }
          }
          let expected: unknown
          try {
            expected = referenceParse(batch)
          } catch (error) {
            expected = codeOf(error)
          }
          let actual: unknown
          try {
            actual = parseBatch(batch).events.map((event) => ({
              envelope: event.envelope,
              leafInput: toHex(event.leafInput),
              id: event.id,
              payload: event.payload && {
                salt: toHex(event.payload.salt),
                data: event.payload.data,
                json: event.payloadJson,
              },
            }))
            assert.deepEqual(
              parseBatch(batch).events.map((event) => toHex(event.leafHash)),
              (actual as { id: string }[]).map((event) => event.id),
            )
          } catch (error) {
            actual = codeOf(error)
          }
          // The checkpoint names the newest event of the original batch: a changed one is refused.
          if (typeof expected !== 'string') {
            const newest = (expected as { id: string }[]).at(-1)!.id
            if (newest !== base.checkpoint.leafHash) expected = 'EVENT_MALFORMED'
          }
          assert.deepEqual(actual, expected)
        },
      ),
      { numRuns: 3000 },
    )
  })
})

describe('createBatchIngester on a worker thread', () => {
  it('answers and refuses exactly as verifying on this thread does', async () => {
    const other = aP256Signer()
    const keyOf = async (v: VehicleAddress) => {
      if (v === `0x${'dd'.repeat(20)}`) throw new BaseError('DB_UNREACHABLE', 'no database')
      return v === vehicle ? key.publicKey : v === `0x${'ee'.repeat(20)}` ? other.publicKey : undefined
    }
    const chain = createEventChain({ vehicle })
    const events = [
      chain.append({ kind: 'odometer', time: 1, data: { km: 3 } }),
      chain.append({ kind: 'telemetry', time: 2, data: { z: 1, a: [{ y: 2, b: 'ü' }] } }),
    ]
    const good = await createBatch({ events, signer: key.signer })
    const bare = await createBatch({ events: events.slice(1), signer: key.signer, withoutPayloads: true })
    const forged = await createBatch({ events, signer: other.signer })
    const of = async (v: string) =>
      createBatch({
        events: [createEventChain({ vehicle: v }).append({ kind: 'door.locked', time: 1, data: {} })],
        signer: key.signer,
      })
    const unregistered = await of(`0x${'ab'.repeat(20)}`)
    const lookupFails = await of(`0x${'dd'.repeat(20)}`)
    const variants: [string, unknown, VehicleAddress | undefined][] = [
      ['good', good, undefined],
      ['good, authenticated', good, vehicle],
      ['another authenticated vehicle', good, `0x${'ee'.repeat(20)}`],
      ['without payloads', bare, undefined],
      ['odometer without payload', { ...bare, events: [{ envelope: events[0]!.envelope }] }, undefined],
      ['bad signature', forged, undefined],
      ['malformed', { ...good, extra: 1 }, undefined],
      ['not an object', 'nope', undefined],
      ['unregistered', unregistered, undefined],
      ['key lookup fails', lookupFails, undefined],
      ['key lookup fails, malformed first', { ...lookupFails, events: [] }, undefined],
      ['a function inside', { ...good, events: [{ ...good.events[0], payload: () => 1 }] }, undefined],
    ]
    const outcomes = async (verifyOnWorker: boolean) => {
      const db = await freshDatabase('pglite')
      try {
        const ingester = createBatchIngester(db, { resolveVehicleKey: keyOf, verifyOnWorker })
        const results: unknown[] = []
        for (const [name, batch, authenticated] of variants) {
          try {
            const result = await ingester.ingest(batch, authenticated)
            results.push([name, 'ok', result.ids, result.leafIndexes, result.duplicates, result.rootHash])
          } catch (error) {
            assert.ok(error instanceof BaseError, name)
            results.push([name, error.code, error.shortMessage, error.details])
          }
        }
        results.push(await getPayload(db, events[1]!.id))
        // Everything stored, byte for byte (the worker's bytes, this thread's envelope fields).
        results.push(
          (await db.query('select * from ledger_leaves order by leaf_index')).rows,
          (await db.query('select vehicle, seq, leaf_hash, signature from ledger_checkpoints order by seq'))
            .rows,
          (await db.query('select * from ledger_vehicles')).rows.map((row) => ({ ...row, updated_at: 0 })),
        )
        return results
      } finally {
        await db.close()
      }
    }
    const onWorker = await outcomes(true)
    assert.deepEqual(onWorker, await outcomes(false))
    assert.deepEqual(
      onWorker.slice(0, variants.length).map((outcome) => (outcome as string[])[1]),
      [
        'ok',
        'ok',
        'EVENT_VEHICLE_MISMATCH',
        'ok',
        'EVENT_MALFORMED',
        'EVENT_BAD_SIGNATURE',
        'EVENT_MALFORMED',
        'EVENT_MALFORMED',
        'VEHICLE_NOT_REGISTERED',
        'DB_UNREACHABLE',
        'EVENT_MALFORMED',
        'EVENT_MALFORMED',
      ],
    )
  })
})

describe('a checkpoint the caller verified is verified once', () => {
  for (const verifyOnWorker of [false, true]) {
    it(`is trusted only with the very key resolved and the batch's own bytes (${verifyOnWorker ? 'worker' : 'this thread'})`, async () => {
      const other = aP256Signer()
      const chain = createEventChain({ vehicle })
      const events = [chain.append({ kind: 'door.locked', time: 1, data: {} })]
      const forged = await createBatch({ events, signer: other.signer })
      const good = await createBatch({ events, signer: key.signer })
      const bytesOf = (batch: BatchJson) => ({
        leafHash: fromHex(batch.checkpoint.leafHash, 'leafHash'),
        signature: fromHex(batch.checkpoint.signature, 'signature'),
      })
      const db = await freshDatabase('pglite')
      try {
        const ingester = createBatchIngester(db, { resolveVehicleKey, verifyOnWorker })
        const refused = async (batch: BatchJson, verified: Parameters<typeof ingester.ingest>[2]) =>
          assert.rejects(ingester.ingest(clone(batch), vehicle, verified), (error) =>
            isErrorCode(error, 'EVENT_BAD_SIGNATURE'),
          )
        // A vouched signature made with another key object (even of equal bytes) is checked again.
        await refused(forged, { publicKey: other.publicKey, ...bytesOf(forged) })
        await refused(forged, { publicKey: key.publicKey.slice(), ...bytesOf(forged) })
        // Vouched bytes that are not the batch's own: the batch's signature is checked.
        await refused(forged, { publicKey: key.publicKey, ...bytesOf(good) })
        // Without a vouch, as before.
        await refused(forged, undefined)
        // The very key resolved and the batch's own bytes: not verified again (the caller did it).
        // A forged signature shows it: it passes only because the caller vouched for it.
        const trusted = await ingester.ingest(clone(forged), vehicle, {
          publicKey: key.publicKey,
          ...bytesOf(forged),
        })
        assert.deepEqual(trusted.ids, [events[0]!.id])
      } finally {
        await db.close()
      }
    })
  }
})
