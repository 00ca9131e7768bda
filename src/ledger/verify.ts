/**
 * Verifying events without trusting the node or its database (used by `carchain verify` and by
 * anyone handed a disclosure): an event is proven by its canonical envelope, an RFC 9162
 * inclusion proof to a tree root, and — when that tree is not the trusted (anchored) one — a
 * consistency proof between the two. A payload is proven by its salt against `commit`.
 *
 * A *disclosure* bundles all of it in one JSON document (docs/ledger.md "Disclosure"):
 * ```json
 * { "v": 1, "envelope": {…}, "payload": {"salt": "0x…", "data": …},
 *   "leafIndex": 7, "treeSize": 1024, "rootHash": "0x…", "auditPath": ["0x…"],
 *   "vehicleProof": { "following": [{…}], "signature": "0x…", "certificate": "-----BEGIN…", "chain": […] } }
 * ```
 * The log proves the node logged the event; `vehicleProof` proves the car signed it: the car's
 * checkpoint signature over a later event of its chain (linked back by `prev`) and its
 * certificate, which the verifier checks against the OEM roots it trusts.
 */
import type { Queryable } from '../db/database.ts'
import { BaseError, isErrorCode } from '../errors.ts'
import { fromHex, type Hex, toHex } from './bytes.ts'
import {
  type Envelope,
  encodeEnvelope,
  type Payload,
  type PayloadJson,
  parseEnvelope,
  parsePayload,
  payloadToJson,
  verifyPayload,
} from './envelope.ts'
import { HASH_BYTES, hashLeaf, rootFromInclusionProof, verifyConsistency } from './merkle.ts'
import { isShardScoped, withShard } from './shards.ts'
import { getCheckpoint, getEvent, getInclusionProof, getPayload, getRootAt } from './store.ts'
import { readVehicleSignature, type VehicleProof } from './vehicle-proof.ts'

/** A tree the verifier trusts, typically the latest root anchored on chain. */
export type TrustedRoot = { treeSize: number; rootHash: Hex }

export type VerifyEventParameters = {
  /** The event: its envelope (canonicalized here) — never the node's word for its hash. */
  envelope: Envelope | unknown
  /** The payload to prove too, if disclosed. */
  payload?: Payload | PayloadJson | undefined
  /** The inclusion proof, in the tree of `treeSize` with root `rootHash` (untrusted). */
  leafIndex: number
  treeSize: number
  rootHash: Hex
  auditPath: readonly Hex[]
  /** The root to check against; without it only the proof's own root is checked. */
  trusted?: TrustedRoot | undefined
  /**
   * Consistency proof between the proof's tree and the trusted one (older first), needed when
   * their sizes differ.
   */
  consistencyProof?: readonly Hex[] | undefined
}

export type VerifyEventReturnType = {
  id: Hex
  envelope: Envelope
  leafIndex: number
  /** The payload's data, when a payload was given and matches `commit`. */
  data: Payload['data'] | undefined
  /** The event is inside the trusted tree (leafIndex < trusted.treeSize). */
  inTrustedTree: boolean
}

function invalid(message: string, details: Record<string, unknown>): BaseError {
  return new BaseError('PROOF_INVALID', message, { details })
}

function hashes(values: readonly unknown[], field: string): Uint8Array[] {
  return values.map((value, i) => {
    try {
      return fromHex(value, `${field}[${i}]`, HASH_BYTES)
    } catch (error) {
      throw invalid(`${field}[${i}] is not a 32-byte hash`, {
        field,
        index: i,
        cause: (error as Error).message,
      })
    }
  })
}

/**
 * Proves an event (and optionally its payload) against a root, trusting nothing but `trusted`.
 * Throws PROOF_INVALID (with `details.reason`), or EVENT_MALFORMED for a malformed envelope or
 * payload.
 */
export function verifyEvent(parameters: VerifyEventParameters): VerifyEventReturnType {
  const envelope = parseEnvelope(parameters.envelope)
  const leafHash = hashLeaf(encodeEnvelope(envelope))
  const id = toHex(leafHash)
  const { leafIndex, treeSize } = parameters
  const [rootHash] = hashes([parameters.rootHash], 'rootHash')
  const auditPath = hashes(parameters.auditPath, 'auditPath')
  const root = rootFromInclusionProof({ leafIndex, treeSize, leafHash, proof: auditPath })
  if (root === undefined || toHex(root) !== toHex(rootHash!)) {
    throw invalid(`event ${id} is not at index ${leafIndex} of the tree of size ${treeSize}`, {
      reason: 'inclusion',
      id,
      leafIndex,
      treeSize,
    })
  }
  let inTrustedTree = true
  const { trusted } = parameters
  if (trusted !== undefined) {
    const [trustedHash] = hashes([trusted.rootHash], 'trusted.rootHash')
    if (trusted.treeSize === treeSize) {
      if (toHex(trustedHash!) !== toHex(rootHash!)) {
        throw invalid(`the proof's root is not the trusted root of size ${treeSize}`, {
          reason: 'root',
          treeSize,
        })
      }
    } else {
      const older = trusted.treeSize < treeSize
      const ok = verifyConsistency({
        first: older ? trusted.treeSize : treeSize,
        second: older ? treeSize : trusted.treeSize,
        firstHash: older ? trustedHash! : rootHash!,
        secondHash: older ? rootHash! : trustedHash!,
        proof: hashes(parameters.consistencyProof ?? [], 'consistencyProof'),
      })
      if (!ok) {
        throw invalid(
          `the tree of size ${treeSize} is not consistent with the trusted tree of size ${trusted.treeSize}`,
          {
            reason: 'consistency',
            treeSize,
            trustedTreeSize: trusted.treeSize,
          },
        )
      }
    }
    inTrustedTree = leafIndex < trusted.treeSize
  }
  let data: Payload['data'] | undefined
  if (parameters.payload !== undefined) {
    const payload =
      parameters.payload.salt instanceof Uint8Array
        ? (parameters.payload as Payload)
        : parsePayload(parameters.payload)
    if (!verifyPayload(envelope, payload)) {
      throw invalid(`the payload does not match the commit of event ${id}`, { reason: 'payload', id })
    }
    data = payload.data
  }
  return { id, envelope, leafIndex, data, inTrustedTree }
}

/** An event with everything needed to prove it (and, optionally, its payload) to anyone. */
export type Disclosure = {
  v: 1
  envelope: Envelope
  payload?: PayloadJson
  leafIndex: number
  treeSize: number
  rootHash: Hex
  auditPath: Hex[]
  /** The car's signature covering the event and its certificate (`vehicle-proof.ts`). */
  vehicleProof?: VehicleProof
}

export type CreateDisclosureParameters = {
  id: Hex
  /** The tree to prove inclusion in (e.g. the anchored size); default: the newest. */
  treeSize?: number | undefined
  /** Include the payload (salt + data); default true. Erased payloads are left out. */
  withPayload?: boolean | undefined
  /**
   * The vehicle's certificate and chain (PEM), as it registered them: with them the disclosure
   * carries the car's signature covering the event (`vehicleProof`).
   */
  certificates?: { certificate: string; chain: string[] } | undefined
}

/**
 * Builds a disclosure from the store (the node side), in the event's shard: the one `db` is
 * scoped to, or whichever holds the event when it is not (`treeSize` is that shard's).
 */
export async function createDisclosure(
  scoped: Queryable,
  parameters: CreateDisclosureParameters,
): Promise<Disclosure> {
  const event = await getEvent(scoped, parameters.id)
  const db = isShardScoped(scoped) ? scoped : withShard(scoped, event.shard)
  const treeSize = parameters.treeSize ?? (await getCheckpoint(db)).treeSize
  const proof = await getInclusionProof(db, parameters.id, treeSize)
  const rootHash = await getRootAt(db, treeSize)
  let payload: PayloadJson | undefined
  if (parameters.withPayload !== false) {
    try {
      payload = payloadToJson(await getPayload(db, parameters.id))
    } catch (error) {
      if (!isErrorCode(error, 'PAYLOAD_ERASED') && !isErrorCode(error, 'NOT_FOUND')) throw error
    }
  }
  return {
    v: 1,
    envelope: event.envelope,
    ...(payload === undefined ? {} : { payload }),
    leafIndex: proof.leafIndex,
    treeSize,
    rootHash,
    auditPath: proof.auditPath,
    ...(parameters.certificates === undefined
      ? {}
      : {
          vehicleProof: {
            ...(await readVehicleSignature(db, event.envelope)),
            ...parameters.certificates,
          },
        }),
  }
}

export type VerifyDisclosureParameters = {
  disclosure: unknown
  trusted?: TrustedRoot | undefined
  consistencyProof?: readonly Hex[] | undefined
}

/**
 * Verifies a disclosure (parsed JSON) on its own or against a trusted root: that the node logged
 * the event. Its `vehicleProof` (that the car signed it) is checked apart, as it needs the OEM
 * roots: `validateVehicleCertificate` (identity) for the certificate, then `verifyVehicleSignature`.
 */
export function verifyDisclosure(parameters: VerifyDisclosureParameters): VerifyEventReturnType {
  const value = parameters.disclosure
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new BaseError('EVENT_MALFORMED', 'a disclosure must be a JSON object')
  }
  const d = value as Record<string, unknown>
  const allowed = new Set([
    'v',
    'envelope',
    'payload',
    'leafIndex',
    'treeSize',
    'rootHash',
    'auditPath',
    'vehicleProof',
  ])
  for (const key of Object.keys(d)) {
    if (!allowed.has(key))
      throw new BaseError('EVENT_MALFORMED', `a disclosure has an unknown key ${key}`, { details: { key } })
  }
  if (d.v !== 1)
    throw new BaseError('EVENT_MALFORMED', 'disclosure version v must be 1', { details: { v: d.v } })
  if (!Array.isArray(d.auditPath) || typeof d.rootHash !== 'string') {
    throw new BaseError('EVENT_MALFORMED', 'a disclosure has rootHash and an auditPath array')
  }
  if (typeof d.leafIndex !== 'number' || typeof d.treeSize !== 'number') {
    throw new BaseError('EVENT_MALFORMED', 'a disclosure has numeric leafIndex and treeSize')
  }
  return verifyEvent({
    envelope: d.envelope,
    payload: d.payload === undefined ? undefined : parsePayload(d.payload),
    leafIndex: d.leafIndex,
    treeSize: d.treeSize,
    rootHash: d.rootHash as Hex,
    auditPath: d.auditPath as Hex[],
    trusted: parameters.trusted,
    consistencyProof: parameters.consistencyProof,
  })
}
