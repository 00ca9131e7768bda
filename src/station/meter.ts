/**
 * The charger's energy meter, behind a small interface so a real meter (OCPP MeterValues, an
 * Eichrecht-sealed meter) can replace the simulated one.
 */
import type { Hex } from 'viem'

/** One reading of a session: energy delivered so far and when (unix ms). */
export type EnergySample = { readonly sessionWh: bigint; readonly timeMs: bigint }

export interface MeterSession {
  /** The next reading once the next increment was delivered; undefined when delivery is over. */
  next(): Promise<EnergySample | undefined>
  close(): void
}

export interface Meter {
  /** Starts delivery; `maxWh` is the most the car asked for (the meter stops there, exactly). */
  open(sessionId: Hex, options?: { maxWh?: bigint }): MeterSession
}

/** A clock the simulated meter can read and, in virtual time, advance. */
export type MeterClock = { now(): number; advance?(ms: number): void }

export type SimulatedMeterOptions = {
  /** Charging power, W (default 11,000: an AC wallbox). */
  readonly powerW?: number
  /** Time between readings, ms (default 1,000). */
  readonly intervalMs?: number
  /** Energy after which the battery is full, Wh (default: never). */
  readonly limitWh?: number
  /**
   * Default: real time (waits `intervalMs` per reading). A clock with `advance` runs in virtual
   * time instead — each reading advances it — so tests and benches do not wait.
   */
  readonly clock?: MeterClock
}

/** A meter that delivers `powerW` continuously; energy is floored to whole Wh. */
export function simulatedMeter(options: SimulatedMeterOptions = {}): Meter {
  const powerW = options.powerW ?? 11_000
  const intervalMs = options.intervalMs ?? 1_000
  const clock = options.clock ?? { now: Date.now }
  return {
    open(_sessionId, openOptions = {}) {
      const startMs = clock.now()
      const limits = [
        options.limitWh,
        openOptions.maxWh === undefined ? undefined : Number(openOptions.maxWh),
      ]
      const limitWh = limits.reduce<number | undefined>(
        (min, l) => (l === undefined ? min : min === undefined ? l : Math.min(min, l)),
        undefined,
      )
      let closed = false
      return {
        async next() {
          if (closed) return undefined
          if (clock.advance) clock.advance(intervalMs)
          else await new Promise((resolve) => setTimeout(resolve, intervalMs))
          const elapsedMs = clock.now() - startMs
          let sessionWh = Math.floor((powerW * elapsedMs) / 3_600_000)
          if (limitWh !== undefined && sessionWh >= limitWh) {
            sessionWh = limitWh
            closed = true
          }
          return { sessionWh: BigInt(sessionWh), timeMs: BigInt(clock.now()) }
        },
        close() {
          closed = true
        },
      }
    },
  }
}

/** A virtual clock for simulated meters and the wallets that read them. */
export function virtualClock(startMs = Date.now()): Required<MeterClock> {
  let t = startMs
  return {
    now: () => t,
    advance(ms) {
      t += ms
    },
  }
}
