/**
 * Where the car records every access attempt as a ledger event (`access.used`, `access.denied`).
 * The link depends only on this interface; the vehicle agent backs it with its local ledger log
 * (durable by group commit), tests with {@link MemoryAccessRecorder}.
 */
import type { Hex } from 'viem'
import { type BuiltEvent, createEventChain, type EventChain, type EventKind } from '../ledger/envelope.ts'
import type { JsonValue } from '../ledger/jcs.ts'

/**
 * Records one event and resolves with its id (`0x` + leaf hash). Must keep the vehicle's event
 * order (calls may overlap; the implementation serialises them). A rejection means the event was
 * not recorded; the link then answers with code INTERNAL rather than act unrecorded.
 */
export interface AccessRecorder {
  record(kind: EventKind, data: JsonValue): Promise<Hex>
  /**
   * Optional: `record` for recorders that build the event at once; returns its id, or throws
   * when the event was not recorded. The link then answers without yielding to the event loop.
   */
  recordNow?(kind: EventKind, data: JsonValue): Hex
  /**
   * Optional: records an event whose id the caller does not need (the door event of an unlock).
   * It takes its place in the order and its time at the call; building and writing it may wait
   * until after the current answer, so data that is not JSON may only be found then (the vehicle
   * ledger reports it through `onUploadError` and leaves the event out). Throws if the recorder
   * cannot take the event at all.
   */
  recordLater?(kind: EventKind, data: JsonValue): void
}

const NONE: readonly BuiltEvent[] = Object.freeze([])

/**
 * Events placed in a chain's order now and built later (`recordLater`): `build` appends them to
 * the chain in order, and runs before any other event is appended to it.
 */
export class DeferredEvents {
  #placed: { kind: EventKind; time: number; data: JsonValue }[] = []
  readonly #chain: EventChain

  constructor(chain: EventChain) {
    this.#chain = chain
  }

  /** Events placed and not built yet. */
  get size(): number {
    return this.#placed.length
  }

  /** Takes the event's place in the order, with its time. */
  place(kind: EventKind, time: number, data: JsonValue): void {
    this.#placed.push({ kind, time, data })
  }

  /**
   * Appends every placed event, in order. An event the chain refuses (data that is not JSON) is
   * left out and handed to `refused`; without it, the refusal is thrown.
   */
  build(refused?: (error: unknown) => void): readonly BuiltEvent[] {
    if (this.#placed.length === 0) return NONE
    const built: BuiltEvent[] = []
    const placed = this.#placed
    this.#placed = []
    for (const { kind, time, data } of placed) {
      try {
        built.push(this.#chain.append({ kind, time, data }))
      } catch (error) {
        if (!refused) throw error
        refused(error)
      }
    }
    return built
  }
}

/** An in-memory recorder on the ledger's event chain (tests, demos). */
export class MemoryAccessRecorder implements AccessRecorder {
  readonly #events: BuiltEvent[] = []
  readonly #later: DeferredEvents
  readonly #chain: EventChain
  readonly #clock: () => number

  constructor(vehicle: string, clock: () => number = Date.now) {
    this.#chain = createEventChain({ vehicle })
    this.#later = new DeferredEvents(this.#chain)
    this.#clock = clock
  }

  /** Every event recorded, in order. */
  get events(): BuiltEvent[] {
    this.#buildLater()
    return this.#events
  }

  async record(kind: EventKind, data: JsonValue): Promise<Hex> {
    return this.recordNow(kind, data)
  }

  recordNow(kind: EventKind, data: JsonValue): Hex {
    this.#buildLater()
    const event = this.#chain.append({ kind, time: this.#clock(), data })
    this.#events.push(event)
    return event.id
  }

  recordLater(kind: EventKind, data: JsonValue): void {
    if (this.#later.size === 0) setImmediate(() => this.#buildLater())
    this.#later.place(kind, this.#clock(), data)
  }

  /** The data of the recorded events of `kind`. */
  dataOf(kind: EventKind): JsonValue[] {
    return this.events.filter((e) => e.envelope.kind === kind).map((e) => e.payload.data)
  }

  #buildLater(): void {
    this.#events.push(...this.#later.build())
  }
}
