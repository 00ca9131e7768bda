/**
 * The car's side of the short-range link: a WebSocket server standing for BLE/NFC.
 *
 * Layers (as Tesla's vehicle-command): transport (WebSocket frames, size-limited) → session
 * (single-use challenges, relay bound) → decision ({@link AccessController}) → domain (the vehicle
 * acts through `onGranted`). Each connection is a session:
 *
 * - On connect, and after every answer, the car sends a fresh random challenge. A challenge is
 *   consumed by the first request that answers it, granted or not.
 * - Relay bound: a request arriving more than `relayBoundMs` (default 2 s) after its challenge was
 *   sent is refused with CHALLENGE_EXPIRED, before any other check. It is the software stand-in for
 *   UWB distance bounding: a relay that carries the radio exchange to a distant phone adds latency,
 *   and the car cannot tell distance any other way over this transport.
 * - A challenge left unanswered for `challengeTtlMs` (default 5 s, as Tesla's commands) expires and
 *   is replaced; an answer to it, or to one already used, is told apart by the decision's replay
 *   check (CHALLENGE_EXPIRED / CHALLENGE_UNKNOWN).
 * - Every attempt, malformed ones included, is recorded (`access.used` / `access.denied`) before
 *   the answer, and the answer carries the event id. A malformed frame is answered with its code
 *   (INVALID_ARGUMENT), never a crash; a connection sending `maxMalformed` of them is closed.
 * - Frames on one connection are handled one at a time, in order.
 * - Refusals are bounded per peer and for the whole car ({@link DenialBudget}): past the bound the
 *   answer is RATE_LIMITED, before any signature work, and one summarising event per window is
 *   recorded instead of one per attempt.
 */
import { randomBytes } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import type { Address, Hex } from 'viem'
import { type WebSocket, WebSocketServer } from 'ws'
import { BaseError, type ErrorCode, toBaseError } from '../errors.ts'
import type { JsonValue } from '../ledger/jcs.ts'
import type { AccessController, AccessDecision, PastChallenge } from './access-control.ts'
import { DenialBudget, type DenialBudgetOptions } from './denial-budget.ts'
import {
  type ChallengeMessage,
  formatResult,
  GrantParseCache,
  MAX_LINK_MESSAGE_BYTES,
  type ParsedRequest,
  parseRequestMessage,
  type ResultMessage,
} from './link-protocol.ts'
import type { AccessRecorder } from './recorder.ts'
import { grantHolder, Scope, scopeNames, ZERO_GRANT_ID } from './typed-data.ts'

/** What the vehicle does with a granted action; a throw turns the answer into INTERNAL. */
export type GrantedHandler = (decision: AccessDecision, eventId: Hex) => void | Promise<void>

export type LinkServerOptions = {
  vehicle: Address
  controller: AccessController
  recorder: AccessRecorder
  /** Acts out a granted action (the vehicle model). */
  onGranted?: GrantedHandler | undefined
  /** Listen address; default 127.0.0.1. */
  host?: string | undefined
  /** Default 0: a free port. */
  port?: number | undefined
  /** An unanswered challenge is replaced after this long; default 5000. */
  challengeTtlMs?: number | undefined
  /** An answer later than this after its challenge is refused; default 2000. */
  relayBoundMs?: number | undefined
  /** Malformed frames tolerated per connection before it is closed; default 5. */
  maxMalformed?: number | undefined
  /** How many refused attempts the car decides and records in full (docs/keys.md). */
  deniedAttempts?: DenialBudgetOptions | undefined
  /** Milliseconds since the epoch; default Date.now. */
  clock?: (() => number) | undefined
}

/** One attempt as the link saw it, for observers (tests, the agent's status). */
export type LinkAttempt = {
  decision: AccessDecision | undefined
  code: 'OK' | ErrorCode
  eventId: Hex | null
  elapsedMs: number
}

type Session = {
  socket: WebSocket
  /** The remote address: whom refusals are charged to. */
  peer: string
  current: { challenge: Uint8Array; sentAtMs: number } | undefined
  past: PastChallenge[]
  timer: NodeJS.Timeout | undefined
  queue: Promise<void>
  /** Frames received and not yet answered. */
  inFlight: number
  malformed: number
}

const PAST_CHALLENGES = 8

/** The car's link server. */
export class LinkServer {
  readonly #options: LinkServerOptions
  readonly #clock: () => number
  readonly #ttlMs: number
  readonly #relayBoundMs: number
  readonly #sessions = new Set<Session>()
  readonly #observers = new Set<(attempt: LinkAttempt) => void>()
  readonly #grants = new GrantParseCache()
  readonly #denials: DenialBudget
  #server: WebSocketServer | undefined
  #url: string | undefined

  constructor(options: LinkServerOptions) {
    this.#options = options
    this.#clock = options.clock ?? Date.now
    this.#ttlMs = options.challengeTtlMs ?? 5000
    this.#relayBoundMs = options.relayBoundMs ?? 2000
    this.#denials = new DenialBudget(options.deniedAttempts)
    if (this.#relayBoundMs > this.#ttlMs)
      throw new BaseError('CONFIG_INVALID', 'the relay bound must not exceed the challenge lifetime', {
        details: { relayBoundMs: this.#relayBoundMs, challengeTtlMs: this.#ttlMs },
      })
  }

  /** `ws://host:port` once listening. */
  get url(): string {
    if (this.#url === undefined) throw new BaseError('INTERNAL', 'the link server is not listening')
    return this.#url
  }

  /** Starts listening; resolves with the URL. */
  async listen(): Promise<string> {
    const host = this.#options.host ?? '127.0.0.1'
    const server = new WebSocketServer({
      host,
      port: this.#options.port ?? 0,
      maxPayload: MAX_LINK_MESSAGE_BYTES,
    })
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve)
      server.once('error', (error: NodeJS.ErrnoException) =>
        reject(
          error.code === 'EADDRINUSE'
            ? new BaseError('PORT_IN_USE', `link port ${this.#options.port} is taken`, { cause: error })
            : error,
        ),
      )
    })
    server.on('connection', (socket, request) =>
      this.#open(socket, request.socket.remoteAddress ?? 'unknown'),
    )
    this.#server = server
    const { port } = server.address() as AddressInfo
    this.#url = `ws://${host}:${port}`
    return this.#url
  }

  /** Calls `observer` after each attempt was answered. */
  onAttempt(observer: (attempt: LinkAttempt) => void): () => void {
    this.#observers.add(observer)
    return () => this.#observers.delete(observer)
  }

  /** Closes every session and stops listening; waits for answers in flight. */
  async close(): Promise<void> {
    const server = this.#server
    this.#server = undefined
    const pending = [...this.#sessions].map((s) => s.queue)
    await Promise.allSettled(pending)
    for (const session of this.#sessions) {
      clearTimeout(session.timer)
      session.socket.terminate()
    }
    this.#sessions.clear()
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()))
  }

  #open(socket: WebSocket, peer: string): void {
    const session: Session = {
      socket,
      peer,
      current: undefined,
      past: [],
      timer: undefined,
      queue: Promise.resolve(),
      inFlight: 0,
      malformed: 0,
    }
    this.#sessions.add(session)
    socket.on('message', (data, isBinary) => {
      const receivedAtMs = this.#clock()
      // One frame at a time, in order; an idle session handles the frame at once.
      const done = () => {
        session.inFlight--
      }
      if (++session.inFlight > 1) {
        session.queue = session.queue
          .then(() => this.#handle(session, data, isBinary, receivedAtMs))
          .finally(done)
        return
      }
      let pending: Promise<void> | undefined
      try {
        const handled = this.#handle(session, data, isBinary, receivedAtMs)
        if (handled) pending = handled
      } finally {
        if (!pending) done()
      }
      if (pending) session.queue = pending.finally(done)
    })
    socket.on('close', () => {
      clearTimeout(session.timer)
      this.#sessions.delete(session)
    })
    socket.on('error', () => socket.terminate())
    this.#issueChallenge(session)
  }

  #retire(session: Session, status: PastChallenge['status']): void {
    if (!session.current) return
    session.past.unshift({ challenge: session.current.challenge, status })
    session.past.length = Math.min(session.past.length, PAST_CHALLENGES)
    session.current = undefined
  }

  #issueChallenge(session: Session): void {
    clearTimeout(session.timer)
    if (session.socket.readyState !== session.socket.OPEN) return
    const challenge = new Uint8Array(randomBytes(32))
    const sentAtMs = this.#clock()
    session.current = { challenge, sentAtMs }
    const message: ChallengeMessage = {
      type: 'challenge',
      vehicle: this.#options.vehicle.toLowerCase() as Address,
      challenge: `0x${Buffer.from(challenge).toString('hex')}`,
      time: Math.floor(sentAtMs / 1000),
    }
    session.socket.send(JSON.stringify(message))
    session.timer = setTimeout(() => {
      this.#retire(session, 'expired')
      this.#issueChallenge(session)
    }, this.#ttlMs)
    session.timer.unref()
  }

  /**
   * One frame: parse, session checks, decision, the attempt's event, the action, the answer.
   * Synchronous from frame to answer when the recorder can record at once (`recordNow`) and the
   * action does not wait; otherwise a promise of the answer.
   */
  #handle(session: Session, data: unknown, isBinary: boolean, receivedAtMs: number): void | Promise<void> {
    const current = session.current
    const elapsedMs = current ? receivedAtMs - current.sentAtMs : -1
    let decision: AccessDecision | undefined
    let code: 'OK' | ErrorCode
    let request: ParsedRequest | undefined
    try {
      if (isBinary) throw new BaseError('INVALID_ARGUMENT', 'link messages are text frames')
      request = parseRequestMessage(String(data), this.#grants)
    } catch (error) {
      code = toBaseError(error, 'INVALID_ARGUMENT').code
      session.malformed++
    }
    // the refusal budget first (it spares the signature work), then the session layer's
    // freshness of the challenge, then the decision
    const limited = !this.#denials.allows(session.peer, receivedAtMs)
    if (limited) code = 'RATE_LIMITED'
    else if (request === undefined) code ??= 'INVALID_ARGUMENT'
    else if (!current) code = 'CHALLENGE_UNKNOWN'
    else if (elapsedMs > this.#relayBoundMs) code = 'CHALLENGE_EXPIRED'
    else {
      try {
        decision = this.#options.controller.decide({
          grant: request.grant,
          action: request.action,
          signature: request.signature,
          assertion: request.assertion,
          challenge: current.challenge,
          pastChallenges: session.past,
        })
        code = decision.code
      } catch (error) {
        code = toBaseError(error).code
      }
    }
    if (request !== undefined || current) this.#retire(session, 'used')
    const ok = code === 'OK'
    let refused: number | undefined
    if (limited) {
      refused = this.#denials.limited(receivedAtMs)
      if (refused === undefined) return this.#answer(session, undefined, code, null, elapsedMs)
    } else if (!ok) this.#denials.charge(session.peer, receivedAtMs)
    const kind = ok ? 'access.used' : 'access.denied'
    const eventFields = eventData(code, decision, request, elapsedMs, refused)
    const { recorder } = this.#options
    if (recorder.recordNow === undefined)
      return this.#recordThenAnswer(session, kind, decision, code, eventFields, elapsedMs)
    let eventId: Hex | null = null
    let acting: Promise<void> | undefined
    try {
      eventId = recorder.recordNow(kind, eventFields)
      const act = ok && decision ? this.#options.onGranted?.(decision, eventId) : undefined
      if (act) acting = act
    } catch {
      code = 'INTERNAL'
    }
    if (!acting) return this.#answer(session, decision, code, eventId, elapsedMs)
    const id = eventId
    return acting.then(
      () => this.#answer(session, decision, code, id, elapsedMs),
      () => this.#answer(session, decision, 'INTERNAL', id, elapsedMs),
    )
  }

  /** `#handle`'s second half with a recorder that only records asynchronously. */
  async #recordThenAnswer(
    session: Session,
    kind: 'access.used' | 'access.denied',
    decision: AccessDecision | undefined,
    code: 'OK' | ErrorCode,
    data: JsonValue,
    elapsedMs: number,
  ): Promise<void> {
    let eventId: Hex | null = null
    try {
      eventId = await this.#options.recorder.record(kind, data)
      if (code === 'OK' && decision) {
        const acting = this.#options.onGranted?.(decision, eventId)
        if (acting) await acting
      }
    } catch {
      code = 'INTERNAL'
    }
    this.#answer(session, decision, code, eventId, elapsedMs)
  }

  /** Sends the result, tells the observers, then the next challenge (or closes the session). */
  #answer(
    session: Session,
    decision: AccessDecision | undefined,
    code: 'OK' | ErrorCode,
    eventId: Hex | null,
    elapsedMs: number,
  ): void {
    const result: ResultMessage = { type: 'result', ok: code === 'OK', code, eventId }
    if (session.socket.readyState === session.socket.OPEN) session.socket.send(formatResult(result))
    for (const observer of this.#observers) observer({ decision, code, eventId, elapsedMs })
    if (session.malformed >= (this.#options.maxMalformed ?? 5)) {
      session.socket.close(1008, 'too many malformed messages')
      return
    }
    this.#issueChallenge(session)
  }
}

const actionNames = new Map(Object.entries(Scope).map(([name, bit]) => [bit as number, name]))

/**
 * The ledger event's data: what happened, never the signatures. Keys are added in RFC 8785 order
 * (UTF-16 code units), so canonicalizing it is a plain JSON.stringify (jcs.ts's fast path).
 * `refused`: a RATE_LIMITED summary's count of attempts refused that way since the last one.
 */
function eventData(
  code: string,
  decision: AccessDecision | undefined,
  request: ParsedRequest | undefined,
  elapsedMs: number,
  refused?: number,
): JsonValue {
  const data: Record<string, JsonValue> = {}
  const action = decision?.action ?? request?.action
  if (action !== undefined) data.action = actionNames.get(action) ?? scopeNames(action).join('|')
  data.channel = 'link'
  data.code = code
  data.elapsedMs = elapsedMs
  if (decision) {
    data.grantId = decision.grantId
    if (decision.issuer) data.issuer = decision.issuer
    if (decision.maxUses !== undefined) data.maxUses = decision.maxUses
    if (decision.purpose) data.purpose = decision.purpose
    data.rental = decision.rental
    if (decision.subject) data.subject = decision.subject
    if (decision.uses !== undefined) data.uses = decision.uses
  } else if (request) {
    const grant = request.grant?.grant
    data.grantId = grant?.grantId ?? ZERO_GRANT_ID
    if (refused !== undefined) data.refused = refused
    data.rental = request.grant === null
    if (grant) data.subject = grantHolder(grant)
  } else if (refused !== undefined) data.refused = refused
  return data
}
