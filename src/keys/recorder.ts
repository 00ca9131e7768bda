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
}

/** An in-memory recorder on the ledger's event chain (tests, demos). */
export class MemoryAccessRecorder implements AccessRecorder {
  readonly events: BuiltEvent[] = []
  readonly #chain: EventChain
  readonly #clock: () => number

  constructor(vehicle: string, clock: () => number = Date.now) {
    this.#chain = createEventChain({ vehicle })
    this.#clock = clock
  }

  async record(kind: EventKind, data: JsonValue): Promise<Hex> {
    const event = this.#chain.append({ kind, time: this.#clock(), data })
    this.events.push(event)
    return event.id
  }

  /** The data of the recorded events of `kind`. */
  dataOf(kind: EventKind): JsonValue[] {
    return this.events.filter((e) => e.envelope.kind === kind).map((e) => e.payload.data)
  }
}
