/**
 * The vehicle as the keys see it: doors, trunk, engine, charge port and odometer, acted out by
 * granted actions. Each change names the ledger event kind that records it (docs/spec.md "Event envelope and hashing").
 */

import { Scope } from '../keys/typed-data.ts'
import type { EventKind } from '../ledger/envelope.ts'

/** What the vehicle's body and drivetrain are doing. */
export type VehicleStatus = {
  locked: boolean
  trunkOpen: boolean
  engineOn: boolean
  chargePortOpen: boolean
  odometerKm: number
}

/** The outcome of one action: the event kind to record, and whether anything changed. */
export type ActionOutcome = { kind: EventKind; changed: boolean; status: VehicleStatus }

const actionKinds: Record<number, EventKind> = {
  [Scope.UNLOCK]: 'door.unlocked',
  [Scope.LOCK]: 'door.locked',
  [Scope.OPEN_TRUNK]: 'trunk.opened',
  [Scope.START]: 'trip.started',
  // the ledger has no port event kind; opening the port is the first step of charging
  [Scope.OPEN_CHARGE_PORT]: 'charging.started',
}

/** An in-memory vehicle; parked, locked, everything closed, unless told otherwise. */
export class VehicleModel {
  #status: VehicleStatus

  constructor(initial: Partial<VehicleStatus> = {}) {
    this.#status = {
      locked: true,
      trunkOpen: false,
      engineOn: false,
      chargePortOpen: false,
      odometerKm: 0,
      ...initial,
    }
  }

  /** The event kind that records `action` (known before acting, so it is recorded first). */
  static eventKind(action: number): EventKind {
    return actionKinds[action] ?? 'telemetry'
  }

  status(): VehicleStatus {
    return { ...this.#status }
  }

  /** Acts out one granted action bit. */
  apply(action: number): ActionOutcome {
    const s = this.#status
    const before = { ...s }
    switch (action) {
      case Scope.UNLOCK:
        s.locked = false
        break
      case Scope.LOCK:
        // locking closes the trunk lid latch too; the engine keeps running (remote lock while idling)
        s.locked = true
        s.trunkOpen = false
        break
      case Scope.OPEN_TRUNK:
        // a delivery opens only the trunk: the cabin stays locked
        s.trunkOpen = true
        break
      case Scope.START:
        s.engineOn = true
        break
      case Scope.OPEN_CHARGE_PORT:
        s.chargePortOpen = true
        break
    }
    const kind = VehicleModel.eventKind(action)
    const changed =
      s.locked !== before.locked ||
      s.trunkOpen !== before.trunkOpen ||
      s.engineOn !== before.engineOn ||
      s.chargePortOpen !== before.chargePortOpen
    return { kind, changed, status: this.status() }
  }

  /** Closes the trunk (its lid is shut by hand). */
  closeTrunk(): void {
    this.#status.trunkOpen = false
  }

  /** Stops the engine. */
  stopEngine(): void {
    this.#status.engineOn = false
  }

  /** Adds driven distance. */
  drive(km: number): void {
    if (km > 0) this.#status.odometerKm += km
  }
}
