/**
 * The certified key of each vehicle, as ingest checks it before every batch: the key of the
 * certificate the vehicle registered at this node (`node_vehicles`), refused once that
 * certificate or an issuing CA on its path has expired or is revoked on chain (VehicleRegistry
 * `isCertRevoked`, permanent and keyed by fingerprint).
 *
 * The hot path is a few map hits per batch, never a database or chain round trip per batch:
 *
 * - a vehicle's key and path (fingerprints, earliest `notAfter`) are loaded from the database
 *   once per `revocationTtlMs` (a registration here calls `forget`; one through another node
 *   sharing the database is seen within the TTL);
 * - expiry is checked on every batch against the cached `notAfter`, so an expired certificate is
 *   refused from its first batch after `notAfter`, with no lookup;
 * - each fingerprint's revocation answer is reused for `revocationTtlMs` (default 30 s): a
 *   certificate revoked on chain is refused from the first batch that arrives more than that
 *   after the node last asked, i.e. within `revocationTtlMs` (plus one RPC round trip) of the
 *   revoking block. A revoked answer is final (revocation cannot be undone).
 *
 * When the chain does not answer a re-check, the last answer keeps serving for at most
 * `maxStaleMs` (default 10 min; retried every `retryMs`, each failure logged), so an RPC outage
 * does not stop uploads; beyond that, or with no answer at all, batches are refused with
 * CHAIN_UNREACHABLE (retryable: the car keeps its events and sends them again later).
 */
import type { Database } from '../db/database.ts'
import { BaseError } from '../errors.ts'
import { parseCertificate } from '../identity/certificate.ts'
import { setBounded } from '../keys/bounded-map.ts'
import type { ResolveVehicleKey } from '../ledger/batch.ts'
import { fromHex } from '../ledger/bytes.ts'
import { logger } from '../log.ts'

const log = logger('node.vehicle-keys')

/** How long an on-chain revocation answer is reused: the bound on a revocation taking effect. */
export const DEFAULT_REVOCATION_TTL_MS = 30_000
/** How long the last revocation answer serves while the chain does not answer. */
export const DEFAULT_REVOCATION_MAX_STALE_MS = 10 * 60_000
/** The most vehicles (and, separately, fingerprints) kept in memory; the oldest go first. */
export const DEFAULT_VEHICLE_KEYS_MAX_ENTRIES = 100_000

export type VehicleKeysParameters = {
  /** VehicleRegistry `isCertRevoked` (`registryRevocation`), by fingerprint as lowercase hex. */
  isRevoked: (fingerprint: string) => Promise<boolean>
  revocationTtlMs?: number | undefined
  maxStaleMs?: number | undefined
  /** The wait before asking the chain again after it failed to answer (default 5 s). */
  retryMs?: number | undefined
  maxEntries?: number | undefined
  /** The clock (tests). */
  nowMs?: (() => number) | undefined
}

export type VehicleKeys = {
  /**
   * The vehicle's P-256 key, or undefined when it never registered here. Throws CERT_EXPIRED,
   * CERT_REVOKED or CHAIN_UNREACHABLE.
   */
  resolve: ResolveVehicleKey
  /** Drops a vehicle's cached key and path (after it registered a new certificate). */
  forget(vehicle: string): void
}

type CertifiedKey = {
  publicKey: Uint8Array
  /** The leaf and its issuing CAs, not the self-signed root (its trust is the registry's root list). */
  fingerprints: string[]
  /** The earliest `notAfter` on the path. */
  notAfterMs: number
  loadedAtMs: number
}

type RevocationAnswer = {
  revoked: boolean
  /** When the chain gave this answer. */
  answeredAtMs: number
  /** When to ask again. */
  nextCheckAtMs: number
}

export function createVehicleKeys(db: Database, parameters: VehicleKeysParameters): VehicleKeys {
  const ttlMs = parameters.revocationTtlMs ?? DEFAULT_REVOCATION_TTL_MS
  const maxStaleMs = parameters.maxStaleMs ?? DEFAULT_REVOCATION_MAX_STALE_MS
  const retryMs = parameters.retryMs ?? 5000
  const maxEntries = parameters.maxEntries ?? DEFAULT_VEHICLE_KEYS_MAX_ENTRIES
  const nowMs = parameters.nowMs ?? Date.now
  const keys = new Map<string, CertifiedKey>()
  const answers = new Map<string, RevocationAnswer>()
  // One chain read per fingerprint at a time, however many batches wait for it.
  const asking = new Map<string, Promise<RevocationAnswer>>()

  const load = async (vehicle: string, now: number): Promise<CertifiedKey | undefined> => {
    const { rows } = await db.query<{ certificate: Uint8Array; chain: Uint8Array[] }>(
      'select certificate, chain from node_vehicles where vehicle = $1',
      [fromHex(vehicle, 'vehicle', 20)],
    )
    const row = rows[0]
    if (row === undefined) return undefined
    const path = [row.certificate, ...row.chain].map((der) => parseCertificate(new Uint8Array(der)))
    const leaf = path[0]!
    return {
      publicKey: leaf.publicKey,
      fingerprints: path
        .filter((cert) => !Buffer.from(cert.subject.der).equals(cert.issuer.der))
        .map((cert) => cert.fingerprint),
      notAfterMs: Math.min(...path.map((cert) => cert.notAfter.getTime())),
      loadedAtMs: now,
    }
  }

  const ask = (fingerprint: string, previous: RevocationAnswer | undefined): Promise<RevocationAnswer> => {
    let pending = asking.get(fingerprint)
    if (pending !== undefined) return pending
    pending = (async () => {
      const askedAtMs = nowMs()
      let answer: RevocationAnswer
      try {
        const revoked = await parameters.isRevoked(fingerprint)
        answer = { revoked, answeredAtMs: askedAtMs, nextCheckAtMs: askedAtMs + ttlMs }
      } catch (error) {
        log.error({ err: error, fingerprint }, 'the chain did not answer a certificate revocation check')
        if (previous === undefined) {
          throw new BaseError(
            'CHAIN_UNREACHABLE',
            'cannot check the vehicle certificate’s revocation on chain; send the batch again later',
            { details: { fingerprint }, cause: error },
          )
        }
        answer = { ...previous, nextCheckAtMs: askedAtMs + retryMs }
      }
      setBounded(answers, fingerprint, answer, maxEntries)
      return answer
    })().finally(() => asking.delete(fingerprint))
    asking.set(fingerprint, pending)
    return pending
  }

  /** Throws when `answer` refuses the certificate `fingerprint` of `vehicle` at `now`. */
  const refuseIfRevoked = (vehicle: string, fingerprint: string, answer: RevocationAnswer, now: number) => {
    if (answer.revoked) {
      throw new BaseError(
        'CERT_REVOKED',
        `the certificate of ${vehicle} (or a CA that issued it) is revoked on chain; the vehicle needs a new certificate registered on chain and at this node`,
        { details: { vehicle, fingerprint, source: 'chain' } },
      )
    }
    if (now - answer.answeredAtMs > ttlMs + maxStaleMs) {
      throw new BaseError(
        'CHAIN_UNREACHABLE',
        `the revocation of ${vehicle}’s certificate was last checked ${Math.round((now - answer.answeredAtMs) / 1000)} s ago and the chain does not answer; send the batch again later`,
        { details: { vehicle, fingerprint, answeredAtMs: answer.answeredAtMs } },
      )
    }
  }

  return {
    async resolve(vehicle) {
      const now = nowMs()
      let key = keys.get(vehicle)
      // Reloaded once per TTL too: a registration made through another node sharing the database.
      if (key === undefined || now - key.loadedAtMs >= ttlMs) {
        key = await load(vehicle, now)
        if (key === undefined) {
          keys.delete(vehicle)
          return undefined
        }
        setBounded(keys, vehicle, key, maxEntries)
      }
      if (now > key.notAfterMs) {
        throw new BaseError(
          'CERT_EXPIRED',
          `the certificate of ${vehicle} (or a CA that issued it) expired at ${new Date(key.notAfterMs).toISOString()}; the vehicle needs a new certificate registered on chain and at this node`,
          { details: { vehicle, notAfter: new Date(key.notAfterMs).toISOString() } },
        )
      }
      for (const fingerprint of key.fingerprints) {
        let answer = answers.get(fingerprint)
        // Awaits the chain only when the answer is missing or due (once per TTL per fingerprint).
        if (answer === undefined || (!answer.revoked && now >= answer.nextCheckAtMs))
          answer = await ask(fingerprint, answer)
        refuseIfRevoked(vehicle, fingerprint, answer, now)
      }
      return key.publicKey
    },
    forget: (vehicle) => void keys.delete(vehicle.toLowerCase()),
  }
}
