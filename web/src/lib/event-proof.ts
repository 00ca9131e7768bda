/**
 * Checks one ledger event against a root read from the chain, in the browser, trusting the node
 * only for bytes that are themselves checked: the envelope (its hash must be the event id) and the
 * audit path (it must lead to the anchored root).
 *
 * leaf input = JCS(envelope) (RFC 8785), leaf hash = SHA-256(0x00 ‖ input) (RFC 9162 §2.1.1).
 */
import { sha256 } from '@noble/hashes/sha2.js'
import { equalBytes } from '../../../src/ledger/bytes.ts'
import { canonicalize } from '../../../src/ledger/jcs.ts'
import { portableMerkle } from '../../../src/ledger/rfc9162.ts'
import { SALT_BYTES } from '../../../src/ledger/sizes.ts'
import { fromHex, toHex } from './hex.ts'

/** The node's RFC 9162 code (src/ledger/rfc9162.ts) over @noble/hashes. */
const { hashLeaf, rootFromInclusionProof } = portableMerkle

const encoder = new TextEncoder()

/**
 * The RFC 9162 leaf input of an envelope as the API may carry it: the JSON object, its JSON
 * text, or base64 of the canonical bytes. Undefined when it is none of those.
 */
export function envelopeLeafInput(envelope: unknown): Uint8Array | undefined {
  try {
    if (typeof envelope === 'object' && envelope !== null) return encoder.encode(canonicalize(envelope))
    if (typeof envelope !== 'string') return undefined
    if (envelope.trimStart().startsWith('{')) return encoder.encode(canonicalize(JSON.parse(envelope)))
    const binary = atob(envelope)
    return Uint8Array.from(binary, (c) => c.charCodeAt(0))
  } catch {
    return undefined
  }
}

/** The leaf hash (the event id) of an envelope, `0x`-hex; undefined when it cannot be read. */
export function envelopeLeafHash(envelope: unknown): `0x${string}` | undefined {
  const input = envelopeLeafInput(envelope)
  return input && toHex(hashLeaf(input))
}

/** A root and size anchored on chain (`LedgerAnchor.latest(logId)`). */
export type AnchoredHead = { treeSize: number; rootHash: `0x${string}` }

/** The node's answer to `GET /v1/log/proof/inclusion`. */
export type InclusionProofResponse = { leafIndex: number; treeSize: number; auditPath: string[] }

/** The outcome, with a sentence for the person looking at it. */
export type EventCheck =
  | { state: 'verified'; leafIndex: number; treeSize: number; rootHash: string; auditPathLength: number }
  | { state: 'pending'; reason: string }
  | { state: 'failed'; reason: string }

/**
 * Verifies the event `{id, index, envelope}` is in the anchored tree: the envelope hashes to
 * the id, and the audit path from that hash leads to the anchored root.
 */
export async function checkEvent(
  event: { id: string; index?: number; envelope: unknown },
  anchored: AnchoredHead,
  fetchProof: (leafHash: string, treeSize: number) => Promise<InclusionProofResponse>,
): Promise<EventCheck> {
  const computed = envelopeLeafHash(event.envelope)
  if (!computed) return { state: 'failed', reason: 'the envelope could not be read' }
  if (computed !== event.id.toLowerCase())
    return { state: 'failed', reason: `the envelope hashes to ${computed}, not to the event id` }
  if (anchored.treeSize === 0) return { state: 'pending', reason: 'nothing is anchored on chain yet' }
  if (event.index !== undefined && event.index >= anchored.treeSize)
    return { state: 'pending', reason: `in the log, not yet anchored (anchored size ${anchored.treeSize})` }
  const proof = await fetchProof(computed, anchored.treeSize)
  const auditPath = proof.auditPath.map(fromHex)
  const leafHash = fromHex(computed)!
  const root = auditPath.every((h) => h !== undefined)
    ? rootFromInclusionProof({
        leafIndex: proof.leafIndex,
        treeSize: anchored.treeSize,
        leafHash,
        proof: auditPath as Uint8Array[],
      })
    : undefined
  if (!root) return { state: 'failed', reason: 'the audit path does not fit the anchored tree size' }
  const expected = fromHex(anchored.rootHash)
  if (!expected || !equalBytes(root, expected))
    return { state: 'failed', reason: `the audit path leads to ${toHex(root)}, not to the anchored root` }
  return {
    state: 'verified',
    leafIndex: proof.leafIndex,
    treeSize: anchored.treeSize,
    rootHash: anchored.rootHash,
    auditPathLength: auditPath.length,
  }
}

/**
 * Whether a payload `{salt, data}` (salt as `0x`-hex, as the API gives it) is the one the
 * envelope commits to: `commit = SHA-256(salt ‖ JCS(data))` (docs/ledger.md). True means the data
 * shown is what the car recorded, since the envelope itself is proven by the inclusion check.
 */
export function payloadMatchesCommit(envelope: unknown, payload: { salt: string; data: unknown }): boolean {
  const commit = (envelope as { commit?: unknown } | null)?.commit
  const salt = fromHex(payload.salt)
  if (typeof commit !== 'string' || !salt || salt.length !== SALT_BYTES) return false
  let data: Uint8Array
  try {
    data = encoder.encode(canonicalize(payload.data))
  } catch {
    return false
  }
  const input = new Uint8Array(salt.length + data.length)
  input.set(salt, 0)
  input.set(data, salt.length)
  return toHex(sha256(input)) === `0x${commit.replace(/^0x/, '').toLowerCase()}`
}
