import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { freshDatabase } from '../../test/database.ts'
import type { Database } from '../db/database.ts'
import { isErrorCode } from '../errors.ts'
import { type BuiltEvent, createEventChain, signCheckpoint, type VehicleAddress } from './envelope.ts'
import { appendBatch } from './store.ts'
import { aP256Signer } from './testing.ts'
import {
  parseVehicleProof,
  readVehicleSignature,
  type VehicleProof,
  verifyVehicleSignature,
} from './vehicle-proof.ts'

const vehicle = `0x${'e1'.repeat(20)}` as VehicleAddress
const certificates = { certificate: '-----BEGIN CERTIFICATE-----', chain: [] }

describe('the car’s signature covering a disclosed event', () => {
  let db: Database
  const car = aP256Signer()
  const events: BuiltEvent[] = []
  before(async () => {
    db = await freshDatabase('pglite')
    const chain = createEventChain({ vehicle })
    for (let b = 0; b < 3; b++) {
      const batch = Array.from({ length: 4 }, (_, i) =>
        chain.append({ kind: 'telemetry', time: b * 100 + i, data: { b, i } }),
      )
      const checkpointSignature = await signCheckpoint(car.signer, batch.at(-1)!.leafHash)
      await appendBatch(db, { vehicle, events: batch, checkpointSignature })
      events.push(...batch)
    }
  })
  after(() => db.close())

  const proofOf = async (event: BuiltEvent): Promise<VehicleProof> => ({
    ...(await readVehicleSignature(db, event.envelope)),
    ...certificates,
  })

  it('reads the checkpoint of the event’s batch and the envelopes up to it; the signature verifies', async () => {
    for (const [index, following] of [
      [5, 2],
      [7, 0],
      [8, 3],
    ] as const) {
      const proof = await proofOf(events[index]!)
      assert.deepEqual(
        proof.following,
        events.slice(index + 1, index + 1 + following).map((e) => e.envelope),
      )
      const parsed = parseVehicleProof(JSON.parse(JSON.stringify(proof)))
      const { envelope } = events[index]!
      assert.equal(
        verifyVehicleSignature({ envelope, proof: parsed, publicKey: car.publicKey }).signedSeq,
        index + following,
      )
    }
  })

  it('refuses another key, a broken link, a missing or malformed proof', async () => {
    const { envelope } = events[1]!
    const proof = await proofOf(events[1]!)
    const stranger = aP256Signer()
    assert.throws(
      () => verifyVehicleSignature({ envelope, proof, publicKey: stranger.publicKey }),
      (error) => isErrorCode(error, 'EVENT_BAD_SIGNATURE'),
    )
    // An envelope of another batch in the middle: the chain no longer links.
    const broken = { ...proof, following: [proof.following[0]!, events[6]!.envelope] }
    assert.throws(
      () => verifyVehicleSignature({ envelope, proof: broken, publicKey: car.publicKey }),
      (error) => isErrorCode(error, 'PROOF_INVALID'),
    )
    // The signed event disclosed as if it covered an earlier one it does not follow.
    assert.throws(
      () => verifyVehicleSignature({ envelope: events[5]!.envelope, proof, publicKey: car.publicKey }),
      (error) => isErrorCode(error, 'PROOF_INVALID'),
    )
    assert.throws(
      () => parseVehicleProof(undefined),
      (error) => isErrorCode(error, 'DISCLOSURE_UNSIGNED'),
    )
    for (const bad of [
      [],
      { ...proof, extra: 1 },
      { ...proof, signature: '0x12' },
      { ...proof, chain: 'pem' },
      { ...proof, following: [{ v: 2 }] },
    ])
      assert.throws(
        () => parseVehicleProof(bad),
        (error) => isErrorCode(error, 'EVENT_MALFORMED'),
        JSON.stringify(bad).slice(0, 80),
      )
  })
})
