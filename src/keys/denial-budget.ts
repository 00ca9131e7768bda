/**
 * What refused link attempts may cost the car (issue 19 #10). A well-formed refused request costs
 * a signature recovery and an `access.denied` event that is written, fsynced and uploaded; without
 * a bound, anyone in radio range could make the car do that as fast as it answers.
 *
 * Two token buckets, each holding `max` refusals and refilled at `max` per `windowMs`: one per
 * peer (the link's remote address; a real car would use the BLE device address) and one for the
 * whole car (many peers). A refusal spends a token from both; a granted attempt spends nothing.
 * While either is empty the link answers RATE_LIMITED before any signature work, and records one
 * summarising `access.denied` event per window (`refused`: the attempts refused that way since
 * the last summary) instead of one per attempt.
 */
import { setBounded } from './bounded-map.ts'

export type DenialBudgetOptions = {
  /** Refusals per window from one peer; default 20. */
  perPeer?: number | undefined
  /** Refusals per window from every peer together; default 120. */
  total?: number | undefined
  /** Default 60,000 ms. */
  windowMs?: number | undefined
  /** Peers remembered (oldest dropped first); default 1024. */
  maxPeers?: number | undefined
}

export const DEFAULT_DENIED_PER_PEER = 20
export const DEFAULT_DENIED_TOTAL = 120
export const DEFAULT_DENIED_WINDOW_MS = 60_000

type Bucket = { tokens: number; atMs: number }

/** The car's budget of refusals; the link asks it before deciding and charges it after. */
export class DenialBudget {
  readonly #perPeer: number
  readonly #total: number
  readonly #windowMs: number
  readonly #maxPeers: number
  readonly #peers = new Map<string, Bucket>()
  readonly #all: Bucket
  #unrecorded = 0
  #summaryAtMs = Number.NEGATIVE_INFINITY

  constructor(options: DenialBudgetOptions = {}) {
    this.#perPeer = options.perPeer ?? DEFAULT_DENIED_PER_PEER
    this.#total = options.total ?? DEFAULT_DENIED_TOTAL
    this.#windowMs = options.windowMs ?? DEFAULT_DENIED_WINDOW_MS
    this.#maxPeers = options.maxPeers ?? 1024
    this.#all = { tokens: this.#total, atMs: 0 }
  }

  /** Whether a refusal from `peer` may still be decided and recorded in full at `nowMs`. */
  allows(peer: string, nowMs: number): boolean {
    const own = this.#peers.get(peer)
    const peerLeft = own === undefined ? this.#perPeer : this.#refill(own, this.#perPeer, nowMs)
    return peerLeft >= 1 && this.#refill(this.#all, this.#total, nowMs) >= 1
  }

  /** Spends one refusal of `peer` (and of the car). */
  charge(peer: string, nowMs: number): void {
    const own = this.#peers.get(peer) ?? { tokens: this.#perPeer, atMs: nowMs }
    this.#refill(own, this.#perPeer, nowMs)
    own.tokens = Math.max(0, own.tokens - 1)
    setBounded(this.#peers, peer, own, this.#maxPeers)
    this.#refill(this.#all, this.#total, nowMs)
    this.#all.tokens = Math.max(0, this.#all.tokens - 1)
  }

  /**
   * One attempt refused RATE_LIMITED: the number of such attempts to record in one summarising
   * event when one is due (the first of each window), otherwise undefined (nothing recorded).
   */
  limited(nowMs: number): number | undefined {
    this.#unrecorded++
    if (nowMs - this.#summaryAtMs < this.#windowMs) return undefined
    this.#summaryAtMs = nowMs
    const refused = this.#unrecorded
    this.#unrecorded = 0
    return refused
  }

  #refill(bucket: Bucket, max: number, nowMs: number): number {
    if (nowMs <= bucket.atMs) return bucket.tokens // a clock that stands still or steps back earns nothing
    bucket.tokens = Math.min(max, bucket.tokens + ((nowMs - bucket.atMs) * max) / this.#windowMs)
    bucket.atMs = nowMs
    return bucket.tokens
  }
}
