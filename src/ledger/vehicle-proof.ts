/**
 * The car's word for an event, for a disclosure: the log shows the node logged an event, this
 * shows the car signed it. The car signs the leaf hash of the newest event of each batch
 * (docs/ledger.md "Checkpoint signature") and every envelope carries its predecessor's leaf hash
 * in `prev`, so a signature over a later event covers every earlier one. A proof carries the
 * envelopes after the disclosed event up to the signed one, that signature, and the vehicle's
 * certificate with its chain (checked by the verifier against the OEM roots it trusts; the
 * certificate's key is what `verifyVehicleSignature` is given).
 */
import type { Queryable } from '../db/database.ts'
import { BaseError } from '../errors.ts'
import { MAX_BATCH_EVENTS } from './batch.ts'
import { fromHex, type Hex, toBareHex, toHex } from './bytes.ts'
import {
  type Envelope,
  envelopeLeafHash,
  parseEnvelope,
  parseEnvelopeBytes,
  SIGNATURE_BYTES,
  verifyCheckpointSignature,
} from './envelope.ts'

/** What a disclosure carries to show the car signed its event. */
export type VehicleProof = {
  /** The vehicle's envelopes after the disclosed event up to the signed one, oldest first. */
  following: Envelope[]
  /** The car's checkpoint signature (P-256 r ‖ s) over the last of them (or the event itself). */
  signature: Hex
  /** The vehicle certificate (PEM). */
  certificate: string
  /** Its intermediates and root (PEM). */
  chain: string[]
}

/** Certificates a proof may carry besides the vehicle's (sub-CAs and root). */
const MAX_CHAIN_CERTIFICATES = 4

/**
 * The car's signature covering `envelope` as the log stores it: the checkpoint of the batch that
 * brought the event (the first at or after its seq) and the envelopes between. NOT_FOUND when the
 * log holds no signature of the vehicle covering it.
 */
export async function readVehicleSignature(
  db: Queryable,
  envelope: Envelope,
): Promise<Pick<VehicleProof, 'following' | 'signature'>> {
  const vehicle = fromHex(envelope.vehicle, 'vehicle', 20)
  const checkpoint = (
    await db.query<{ seq: bigint; signature: Uint8Array }>(
      'select seq, signature from ledger_checkpoints where vehicle = $1 and seq >= $2 order by seq limit 1',
      [vehicle, envelope.seq],
    )
  ).rows[0]
  if (!checkpoint)
    throw new BaseError(
      'NOT_FOUND',
      `no signature of ${envelope.vehicle} covers its event #${envelope.seq}`,
      {
        details: { vehicle: envelope.vehicle, seq: envelope.seq },
      },
    )
  const { rows } = await db.query<{ leaf_input: Uint8Array }>(
    'select leaf_input from ledger_leaves where vehicle = $1 and seq > $2 and seq <= $3 order by seq',
    [vehicle, envelope.seq, checkpoint.seq],
  )
  return {
    following: rows.map((row) => parseEnvelopeBytes(new Uint8Array(row.leaf_input))),
    signature: toHex(new Uint8Array(checkpoint.signature)),
  }
}

function malformed(message: string): BaseError {
  return new BaseError('EVENT_MALFORMED', `vehicleProof: ${message}`)
}

/**
 * Reads a (hostile) `vehicleProof`: DISCLOSURE_UNSIGNED when there is none, EVENT_MALFORMED when
 * it is not of the form above.
 */
export function parseVehicleProof(value: unknown): VehicleProof {
  if (value === undefined || value === null)
    throw new BaseError(
      'DISCLOSURE_UNSIGNED',
      'the disclosure carries no signature of the car: nothing shows the event comes from it; make a new one with `carchain ledger disclose`',
    )
  if (typeof value !== 'object' || Array.isArray(value)) throw malformed('must be an object')
  const proof = value as Record<string, unknown>
  const keys = Object.keys(proof).sort().join()
  if (keys !== 'certificate,chain,following,signature')
    throw malformed('has exactly certificate, chain, following and signature')
  const { following, certificate, chain } = proof
  if (!Array.isArray(following) || following.length >= MAX_BATCH_EVENTS)
    throw malformed(`following is an array of fewer than ${MAX_BATCH_EVENTS} envelopes`)
  if (typeof certificate !== 'string') throw malformed('certificate is a PEM string')
  if (
    !Array.isArray(chain) ||
    chain.length > MAX_CHAIN_CERTIFICATES ||
    !chain.every((pem) => typeof pem === 'string')
  )
    throw malformed(`chain is an array of at most ${MAX_CHAIN_CERTIFICATES} PEM strings`)
  return {
    following: following.map((envelope) => parseEnvelope(envelope)),
    signature: toHex(fromHex(proof.signature, 'vehicleProof.signature', SIGNATURE_BYTES, 'EVENT_MALFORMED')),
    certificate,
    chain,
  }
}

export type VerifyVehicleSignatureParameters = {
  /** The disclosed event (already proven in the log). */
  envelope: Envelope
  proof: VehicleProof
  /** The car's P-256 key, from its certificate once that is validated (65 bytes, uncompressed). */
  publicKey: Uint8Array
}

/**
 * Checks the car signed `envelope`: `following` continues its chain (same vehicle, next seqs,
 * each `prev` the previous leaf hash; else PROOF_INVALID, reason `chain`) and the signature over
 * the last leaf verifies with `publicKey` (else EVENT_BAD_SIGNATURE). Returns the signed seq.
 */
export function verifyVehicleSignature(parameters: VerifyVehicleSignatureParameters): { signedSeq: number } {
  const { envelope, proof } = parameters
  let leafHash = envelopeLeafHash(envelope)
  let seq = envelope.seq
  for (const next of proof.following) {
    if (next.vehicle !== envelope.vehicle || next.seq !== seq + 1 || next.prev !== toBareHex(leafHash))
      throw new BaseError(
        'PROOF_INVALID',
        `vehicleProof: the envelope after #${seq} does not continue ${envelope.vehicle}'s chain`,
        { details: { reason: 'chain', seq: next.seq } },
      )
    leafHash = envelopeLeafHash(next)
    seq = next.seq
  }
  const signature = fromHex(proof.signature, 'vehicleProof.signature', SIGNATURE_BYTES, 'EVENT_MALFORMED')
  if (!verifyCheckpointSignature({ publicKey: parameters.publicKey, leafHash, signature }))
    throw new BaseError(
      'EVENT_BAD_SIGNATURE',
      `the car's signature over event #${seq} does not verify with its certificate's key: the event is not shown to come from ${envelope.vehicle}`,
      { details: { vehicle: envelope.vehicle, signedSeq: seq, leafHash: toHex(leafHash) } },
    )
  return { signedSeq: seq }
}
