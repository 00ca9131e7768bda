/**
 * The vehicle's ledger: every event it makes goes into its crash-safe local log (durable by group
 * commit just after the call, within milliseconds; a clean stop writes everything), and an
 * uploader sends the unacknowledged tail to the node in signed batches until the node
 * acknowledges them — retried with backoff, idempotent on re-send (the node answers a re-sent
 * batch with the same ids), so a crash on either side loses nothing and duplicates nothing.
 *
 * It is the agent's `AccessRecorder` and a `VehicleAgentPlugin` (the uploader starts and stops
 * with the agent).
 */
import { createHash } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { MqttClient } from 'mqtt'
import type { Address, Hex } from 'viem'
import { BaseError, toBaseError } from '../errors.ts'
import type { KeyRef, KeyStore } from '../identity/keystore.ts'
import { type AccessRecorder, DeferredEvents } from '../keys/recorder.ts'
import { verifyLedgerAck } from '../ledger/ack.ts'
import { type BatchJson, createBatch } from '../ledger/batch.ts'
import {
  type BuiltEvent,
  createEventChain,
  type EventChain,
  type EventKind,
  type P256Signer,
} from '../ledger/envelope.ts'
import type { JsonValue } from '../ledger/jcs.ts'
import { type LocalLog, openLocalLog } from '../ledger/local-log.ts'
import { acksTopic, eventsTopic } from '../ledger/topics.ts'
import { logger } from '../log.ts'
import type { VehicleAgentPlugin } from './agent.ts'

const log = logger('vehicle.ledger')

/**
 * Moves a batch to the node. Resolves only with an acknowledgement it verified (`verifyLedgerAck`):
 * signed by the configured node, for this batch's vehicle and newest event. The ledger drops the
 * batch's events when `send` resolves, so an unverified answer must reject (or be ignored).
 */
export type BatchTransport = {
  send(batch: BatchJson): Promise<{ ids: readonly string[]; treeSize: number }>
  /** Releases the connection (the ledger calls it on stop). */
  close?(): Promise<void>
}

/**
 * HTTP transport: `POST <node>/v1/vehicles/{vehicle}/events`. Plain HTTP authenticates nothing:
 * the answer counts only with its `ack` signed by `trustedNode` (the node's operator address).
 */
export function httpBatchTransport(
  nodeUrl: string,
  trustedNode: Address,
  timeoutMs = 30_000,
): BatchTransport {
  return {
    async send(batch) {
      let response: Response
      try {
        response = await fetch(`${nodeUrl}/v1/vehicles/${batch.vehicle}/events`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(batch),
          signal: AbortSignal.timeout(timeoutMs),
        })
      } catch (error) {
        throw new BaseError('TIMEOUT', `the node at ${nodeUrl} did not answer`, { cause: error })
      }
      const body = (await response.json().catch(() => ({}))) as {
        code?: string
        message?: string
        ids?: string[]
        treeSize?: number
        ack?: unknown
      }
      if (!response.ok)
        throw new BaseError(
          (body.code as never) ?? 'INTERNAL',
          body.message ?? `the node answered ${response.status}`,
          {
            details: { status: response.status },
          },
        )
      const ack = await verifyLedgerAck(body.ack, batch, trustedNode)
      return { ids: body.ids ?? [], treeSize: ack.treeSize }
    },
  }
}

/**
 * MQTT transport (src/node/mqtt.ts has the protocol): publishes the batch with QoS 1 and waits for
 * the node's ack for the batch's checkpoint on the vehicle's acks topic. Any client of the broker
 * can publish there: an `ok` ack counts only when its `ack` is signed by `trustedNode` for this
 * batch; another is logged and ignored, and the wait goes on for the node's own. A refusal
 * (`ok: false`) is taken as it comes: it deletes nothing, the ledger only sends again later.
 */
export async function mqttBatchTransport(
  client: MqttClient,
  vehicle: string,
  trustedNode: Address,
  timeoutMs = 30_000,
): Promise<BatchTransport> {
  const waiting = new Map<string, { batch: BatchJson; settle: (ack: MqttAck) => void }>()
  client.on('message', (topic, message) => {
    if (topic !== acksTopic(vehicle)) return
    let answer: MqttAck
    try {
      answer = JSON.parse(message.toString('utf8')) as MqttAck
    } catch (error) {
      log.warn({ err: error, vehicle }, 'an unreadable message on the acks topic was ignored')
      return
    }
    const waiter = waiting.get(String(answer?.leafHash))
    if (!waiter) return
    if (answer.ok !== true) return waiter.settle(answer)
    verifyLedgerAck(answer.ack, waiter.batch, trustedNode).then(
      () => waiter.settle(answer),
      (error: unknown) =>
        log.warn({ err: error, vehicle, leafHash: answer.leafHash }, 'an unverified ack was ignored'),
    )
  })
  await client.subscribeAsync(acksTopic(vehicle), { qos: 1 })
  return {
    async send(batch) {
      const key = batch.checkpoint.leafHash
      const ack = await new Promise<MqttAck>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(key)
          reject(
            new BaseError('TIMEOUT', `no ack from a node within ${timeoutMs} ms`, {
              details: { leafHash: key },
            }),
          )
        }, timeoutMs)
        waiting.set(key, {
          batch,
          settle: (a) => {
            clearTimeout(timer)
            waiting.delete(key)
            resolve(a)
          },
        })
        client
          .publishAsync(eventsTopic(vehicle), JSON.stringify(batch), { qos: 1 })
          .catch((error: unknown) => {
            clearTimeout(timer)
            waiting.delete(key)
            reject(new BaseError('TIMEOUT', 'the MQTT broker did not take the batch', { cause: error }))
          })
      })
      if (!ack.ok)
        throw new BaseError((ack.code as never) ?? 'INTERNAL', ack.message ?? 'the node refused the batch')
      return { ids: ack.ids ?? [], treeSize: ack.treeSize ?? 0 }
    },
    close: () => client.endAsync(),
  }
}

type MqttAck = {
  leafHash: string
  ok: boolean
  ids?: string[]
  treeSize?: number
  /** The node's signed statement (`ok: true`), see src/ledger/ack.ts. */
  ack?: unknown
  code?: string
  message?: string
}

/** A P-256 checkpoint signer over a key store: ECDSA over SHA-256(message). */
export function keyStoreP256Signer(store: KeyStore, ref: KeyRef): P256Signer {
  return { sign: (message) => store.signDigest(ref, createHash('sha256').update(message).digest()) }
}

export type VehicleLedgerOptions = {
  vehicle: string
  /** The vehicle's directory (the log lives in `<dir>/ledger.log`). */
  dir: string
  signer: P256Signer
  transport: BatchTransport
  /** How often the uploader looks for new events (default 1000 ms). */
  uploadIntervalMs?: number
  /** Most events per batch (default 500). */
  maxBatchEvents?: number
  clock?: () => number
  /** Told of failed uploads (first and every tenth). */
  onUploadError?: (error: BaseError) => void
}

export class VehicleLedger implements AccessRecorder, VehicleAgentPlugin {
  readonly name = 'ledger'
  readonly #options: VehicleLedgerOptions
  readonly #log: LocalLog
  readonly #chain: EventChain
  #queue: Promise<void> = Promise.resolve()
  #unwritten: { envelope: BuiltEvent['envelope']; payload: BuiltEvent['payload'] }[] = []
  /** Events placed in the order by `recordLater`, not built yet. */
  readonly #later: DeferredEvents
  #commitScheduled = false
  #timer: NodeJS.Timeout | undefined
  #uploading: Promise<void> | undefined
  #failures = 0
  #nextAttemptAt = 0
  #lastTimeMs = 0

  private constructor(options: VehicleLedgerOptions, log: LocalLog) {
    this.#options = options
    this.#log = log
    this.#chain = createEventChain({ vehicle: options.vehicle, head: log.head() })
    this.#later = new DeferredEvents(this.#chain)
    this.#lastTimeMs = log.entries().at(-1)?.envelope.time ?? 0
  }

  /** Opens (or recovers) the local log and resumes the chain where it stopped. */
  static async open(options: VehicleLedgerOptions): Promise<VehicleLedger> {
    await mkdir(options.dir, { recursive: true })
    return new VehicleLedger(options, await openLocalLog(join(options.dir, 'ledger.log')))
  }

  /**
   * Records one event and resolves with its id at once; the event is on disk within one group
   * commit, which runs just after the current task (an answer on the link is sent first and never
   * waits for the write or its fdatasync — issue 5's "durable by group commit within 100 ms"); the
   * events recorded while a write is in flight go together in the next one. `durable()` waits for
   * everything recorded so far; a clean stop waits for it too. Calls are kept in order, and time
   * never goes backwards in the chain.
   */
  record(kind: EventKind, data: JsonValue): Promise<Hex> {
    try {
      return Promise.resolve(this.recordNow(kind, data))
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /** `record`, returning the id at once (the link answers without yielding); throws instead. */
  recordNow(kind: EventKind, data: JsonValue): Hex {
    this.#buildLater()
    const event = this.#chain.append({ kind, time: this.#time(), data })
    this.#unwritten.push(event)
    this.#scheduleCommit()
    return event.id
  }

  /**
   * Records an event whose id nobody waits for (the door event after an unlock): it takes its
   * place in the order and its time now, and is built and written with the next group commit,
   * after the current answer — or earlier, when a `record` call needs the chain's head.
   */
  recordLater(kind: EventKind, data: JsonValue): void {
    this.#later.place(kind, this.#time(), data)
    this.#scheduleCommit()
  }

  /** Resolves once every event recorded so far is on disk. */
  async durable(): Promise<void> {
    this.#buildLater()
    this.#queue = this.#queue.then(() => this.#commit())
    await this.#queue
    if (this.#unwritten.length > 0)
      throw new BaseError('LOG_CORRUPT', 'the local log could not be written', {
        details: { pending: this.#unwritten.length },
      })
  }

  #time(): number {
    const time = Math.max((this.#options.clock ?? Date.now)(), this.#lastTimeMs)
    this.#lastTimeMs = time
    return time
  }

  /** Builds the events `recordLater` placed, in order: before any later event is built. */
  #buildLater(): void {
    if (this.#later.size === 0) return // the unlock's path: nothing placed
    // data the ledger cannot hold (not JSON): told, and left out of the chain
    this.#unwritten.push(...this.#later.build((error) => this.#options.onUploadError?.(toBaseError(error))))
  }

  /** The next group commit, just after the current task (so after the answer being sent). */
  #scheduleCommit(): void {
    if (this.#commitScheduled) return
    this.#commitScheduled = true
    setImmediate(() => {
      this.#commitScheduled = false
      this.#buildLater()
      this.#queue = this.#queue.then(() => this.#commit())
    })
  }

  /** One group commit: every event recorded since the last one, in one fdatasync. */
  async #commit(): Promise<void> {
    if (this.#unwritten.length === 0) return
    const group = this.#unwritten
    this.#unwritten = []
    try {
      await this.#log.append(group)
    } catch (error) {
      // Kept in order for the next commit; the uploader sends only what is on disk.
      this.#unwritten = [...group, ...this.#unwritten]
      this.#options.onUploadError?.(toBaseError(error))
    }
  }

  /** Events not yet acknowledged by the node. */
  pending(): number {
    return this.#log.unacknowledged().length + this.#unwritten.length + this.#later.size
  }

  /** Sends what is pending now; resolves when the node acknowledged it (or throws). */
  async flush(): Promise<void> {
    await this.durable()
    while (this.#log.unacknowledged().length > 0) await this.#uploadOnce()
  }

  async #uploadOnce(): Promise<void> {
    const pending = this.#log.unacknowledged().slice(0, this.#options.maxBatchEvents ?? 500)
    if (pending.length === 0) return
    const batch = await createBatch({ events: pending, signer: this.#options.signer })
    await this.#options.transport.send(batch)
    await this.#log.acknowledge(pending.at(-1)!.envelope.seq)
    if (this.#log.entries().length > 5000) await this.#log.compact()
  }

  start(): void {
    this.#timer = setInterval(() => {
      if (this.#uploading || Date.now() < this.#nextAttemptAt) return
      this.#uploading = this.#uploadOnce()
        .then(() => {
          this.#failures = 0
        })
        .catch((error: unknown) => {
          this.#failures += 1
          this.#nextAttemptAt = Date.now() + Math.min(30_000, 250 * 2 ** Math.min(this.#failures, 7))
          if (this.#failures === 1 || this.#failures % 10 === 0)
            this.#options.onUploadError?.(toBaseError(error))
        })
        .finally(() => {
          this.#uploading = undefined
        })
    }, this.#options.uploadIntervalMs ?? 1000)
    this.#timer.unref()
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer)
    await this.#uploading
    this.#buildLater()
    await this.#queue
    await this.#commit() // everything recorded since, and anything a failed commit left behind
    await this.#log.close()
    await this.#options.transport.close?.()
  }
}
