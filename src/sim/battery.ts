/**
 * The demo cars' batteries and the demo chargers (docs/simulator.md "Batteries and charging").
 *
 * A car has a battery of its model's capacity that trips drain at the model's consumption per
 * km. It charges when low, at a charger with its own power and tariff; the power a session gets
 * is the smaller of the charger's and what the car's battery accepts at its state of charge (full
 * power on the bulk of the charge, tapering near full), so energy, power and duration vary from
 * session to session as they do on the road. Time is compressed as in the rest of the demo:
 * `TIME_COMPRESSION` simulated seconds pass per real second.
 *
 * The charger's meter learns the car's battery through the `Connector` it is plugged into (as a
 * real charger and car settle the current over the cable: the control pilot on AC, ISO 15118 or
 * DIN 70121 on DC) and meters what flows.
 */
import type { Hex } from 'viem'
import type { EnergySample, Meter, MeterClock } from '../station/meter.ts'

/** Simulated seconds per real second: 1 real second is 10 simulated minutes. */
export const TIME_COMPRESSION = 600

/** What a car model brings to its battery. */
export type CarModel = {
  readonly name: string
  readonly capacityWh: number
  readonly consumptionWhPerKm: number
  /** The on-board charger's limit on AC. */
  readonly maxAcW: number
  /** The battery's peak power on DC. */
  readonly maxDcW: number
}

/** The demo fleet's models; car `i` (0-based) is `CAR_MODELS[i mod 4]`. */
export const CAR_MODELS: readonly CarModel[] = [
  { name: 'compact', capacityWh: 40_000, consumptionWhPerKm: 150, maxAcW: 7_400, maxDcW: 50_000 },
  { name: 'hatchback', capacityWh: 58_000, consumptionWhPerKm: 165, maxAcW: 11_000, maxDcW: 120_000 },
  { name: 'saloon', capacityWh: 77_000, consumptionWhPerKm: 180, maxAcW: 11_000, maxDcW: 175_000 },
  { name: 'suv', capacityWh: 100_000, consumptionWhPerKm: 220, maxAcW: 11_000, maxDcW: 150_000 },
]

/** A car's battery: its model and the energy it holds. */
export type Battery = { readonly model: CarModel; socWh: number }

export type ChargerKind = 'AC' | 'DC'

/** A demo charger: its power and its tariff (cEUR base units, 18 decimals). */
export type ChargerSpec = {
  readonly kind: ChargerKind
  readonly maxPowerW: number
  readonly pricePerKWh: bigint
  readonly sessionFee: bigint
}

const CENT = 10n ** 16n

/** The demo CPO's chargers, `DE*CCH*E00001` … in this order: fast and dear, slow and cheap. */
export const DEMO_CHARGERS: readonly ChargerSpec[] = [
  { kind: 'DC', maxPowerW: 150_000, pricePerKWh: 69n * CENT, sessionFee: 0n },
  { kind: 'AC', maxPowerW: 11_000, pricePerKWh: 39n * CENT, sessionFee: 50n * CENT },
  { kind: 'DC', maxPowerW: 50_000, pricePerKWh: 55n * CENT, sessionFee: 25n * CENT },
  { kind: 'AC', maxPowerW: 11_000, pricePerKWh: 45n * CENT, sessionFee: 0n },
]

/** A car charges below this state of charge, or when the next trip would leave less than it. */
export const CHARGE_BELOW_PCT = 25
/** The least a trip may leave in the battery. */
export const RESERVE_PCT = 10

export const socPct = (battery: Battery): number => (100 * battery.socWh) / battery.model.capacityWh

/** A deterministic battery for demo car `index` (0-based): its model, and a charge of 15–90 %. */
export function demoBattery(index: number): Battery {
  const model = CAR_MODELS[index % CAR_MODELS.length]!
  // the golden ratio spreads the cars' charges; the last cars of a small fleet start low
  const fraction = 0.15 + 0.75 * ((index * 0.618_034 + 0.5) % 1)
  return { model, socWh: Math.round(model.capacityWh * fraction) }
}

/** The energy a trip of `km` takes, Wh. */
export const tripEnergyWh = (model: CarModel, km: number): number => Math.round(km * model.consumptionWhPerKm)

/** Takes a trip's energy out of the battery (never below empty); answers what it took. */
export function drain(battery: Battery, km: number): number {
  const taken = Math.min(battery.socWh, tripEnergyWh(battery.model, Math.max(0, km)))
  battery.socWh -= taken
  return taken
}

/** Puts charged energy into the battery (never above full). */
export function charge(battery: Battery, energyWh: number): void {
  battery.socWh = Math.min(battery.model.capacityWh, battery.socWh + Math.max(0, energyWh))
}

/** Whether the car must charge before a trip of `km`: low, or the trip would eat into the reserve. */
export function needsCharge(battery: Battery, km: number): boolean {
  const reserveWh = (battery.model.capacityWh * RESERVE_PCT) / 100
  return socPct(battery) < CHARGE_BELOW_PCT || battery.socWh - tripEnergyWh(battery.model, km) < reserveWh
}

/**
 * The energy a car asks for: up to 80–90 % on DC (beyond it the taper makes fast charging slow);
 * on AC up to 90–100 %, or what flows in the 1–4 hours it stays, whichever is less.
 */
export function sessionEnergyWh(battery: Battery, charger: ChargerSpec, random: () => number): number {
  const targetPct = charger.kind === 'DC' ? 80 + 10 * random() : 90 + 10 * random()
  const toTarget = Math.max(0, Math.round((battery.model.capacityWh * targetPct) / 100 - battery.socWh))
  if (charger.kind === 'DC') return toTarget
  const staySeconds = (1 + 3 * random()) * 3600
  return Math.min(toTarget, Math.floor(deliver(battery.model, battery.socWh, charger, staySeconds)))
}

/**
 * What the battery accepts at `socWh`, W. DC: the peak up to 50 %, tapering to 40 % of it at
 * 80 % and to 8 % at full. AC: the on-board charger's limit up to 90 %, tapering to 30 % of it
 * at full.
 */
export function acceptedPowerW(model: CarModel, socWh: number, kind: ChargerKind): number {
  const soc = Math.min(1, Math.max(0, socWh / model.capacityWh))
  const between = (x0: number, x1: number, y0: number, y1: number) =>
    y0 + ((soc - x0) / (x1 - x0)) * (y1 - y0)
  if (kind === 'AC') return model.maxAcW * (soc <= 0.9 ? 1 : between(0.9, 1, 1, 0.3))
  if (soc <= 0.5) return model.maxDcW
  if (soc <= 0.8) return model.maxDcW * between(0.5, 0.8, 1, 0.4)
  return model.maxDcW * between(0.8, 1, 0.4, 0.08)
}

/** The power a charger delivers to a car at `socWh`: the smaller of the two limits, W. */
export const sessionPowerW = (model: CarModel, socWh: number, charger: ChargerSpec): number =>
  Math.min(charger.maxPowerW, acceptedPowerW(model, socWh, charger.kind))

/** Integration step of the charge curve, simulated seconds. */
const STEP_S = 10

/**
 * Energy delivered into a battery at `socWh` within `seconds` (simulated), at most `maxWh`, Wh
 * (fractional): the charge curve integrated in 10-second steps.
 */
export function deliver(
  model: CarModel,
  socWh: number,
  charger: ChargerSpec,
  seconds: number,
  maxWh = Number.POSITIVE_INFINITY,
): number {
  let delivered = 0
  const limitWh = Math.min(maxWh, model.capacityWh - socWh)
  for (let t = 0; t < seconds && delivered < limitWh; t += STEP_S) {
    const dt = Math.min(STEP_S, seconds - t)
    delivered += (sessionPowerW(model, socWh + delivered, charger) * dt) / 3600
  }
  return Math.min(delivered, Math.max(0, limitWh))
}

/** A session's shape in simulated time: how long it takes and at what power. */
export type SessionProfile = {
  readonly energyWh: number
  readonly durationMin: number
  readonly averageKw: number
  readonly peakKw: number
}

/** How a session of `energyWh` into a battery at `socWh` runs at `charger` (simulated time). */
export function sessionProfile(
  model: CarModel,
  socWh: number,
  charger: ChargerSpec,
  energyWh: number,
): SessionProfile {
  const target = Math.min(energyWh, model.capacityWh - socWh)
  let delivered = 0
  let seconds = 0
  let peakW = 0
  while (delivered < target && seconds < 48 * 3600) {
    peakW = Math.max(peakW, sessionPowerW(model, socWh + delivered, charger))
    delivered += deliver(model, socWh + delivered, charger, STEP_S, target - delivered)
    seconds += STEP_S
  }
  const round1 = (x: number) => Math.round(x * 10) / 10
  return {
    energyWh: Math.round(delivered),
    durationMin: Math.round(seconds / 60),
    averageKw: seconds > 0 ? round1((delivered * 3.6) / seconds) : 0,
    peakKw: round1(peakW / 1000),
  }
}

/**
 * A charger's cable: one car at a time. The car plugs its battery in before its session and
 * unplugs after it; the charger's meter reads the battery's state through it and leaves the
 * energy it metered here.
 */
export class Connector {
  #battery: Battery | undefined
  #deliveredWh = 0

  /** The plugged car's battery, or undefined while the connector is free. */
  get plugged(): Battery | undefined {
    return this.#battery
  }

  /** Plugs a car in; false when another one is plugged in already. */
  plug(battery: Battery): boolean {
    if (this.#battery) return false
    this.#battery = battery
    this.#deliveredWh = 0
    return true
  }

  /** The meter's newest reading of the session in progress (cumulative Wh). */
  metered(sessionWh: number): void {
    this.#deliveredWh = sessionWh
  }

  /** Unplugs the car; answers the energy metered into it since it was plugged in, Wh. */
  unplug(): number {
    const delivered = this.#deliveredWh
    this.#battery = undefined
    this.#deliveredWh = 0
    return delivered
  }
}

/** A demo charger's place in the fleet: what it is and the connector a car plugs into. */
export type ChargerBay = { readonly spec: ChargerSpec; readonly connector: Connector }

export type ConnectorMeterOptions = {
  /** Real ms between readings (default 500: 5 simulated minutes). */
  readonly intervalMs?: number
  /** Simulated per real time (default `TIME_COMPRESSION`). */
  readonly compression?: number
  /** Default real time; a clock with `advance` runs virtual time (tests). */
  readonly clock?: MeterClock
}

/**
 * A demo charger's meter: each reading adds what the charge curve of the plugged car delivers in
 * the compressed time since the previous one, from the battery's charge when the session
 * started. A session with no demo car plugged in (a car run by hand) gets the charger's full
 * power. Energy is floored to whole Wh; readings carry real time.
 */
export function connectorMeter(
  charger: ChargerSpec,
  connector: Connector,
  options: ConnectorMeterOptions = {},
): Meter {
  const intervalMs = options.intervalMs ?? 500
  const compression = options.compression ?? TIME_COMPRESSION
  const clock = options.clock ?? { now: Date.now }
  const fullPower: CarModel = {
    name: 'unknown',
    capacityWh: Number.MAX_SAFE_INTEGER,
    consumptionWhPerKm: 0,
    maxAcW: charger.maxPowerW,
    maxDcW: charger.maxPowerW,
  }
  return {
    open(_sessionId: Hex, openOptions = {}) {
      const battery = connector.plugged
      const model = battery?.model ?? fullPower
      const startWh = battery?.socWh ?? 0
      const maxWh = openOptions.maxWh === undefined ? Number.POSITIVE_INFINITY : Number(openOptions.maxWh)
      let lastMs = clock.now()
      let delivered = 0
      let closed = false
      return {
        async next(): Promise<EnergySample | undefined> {
          if (closed) return undefined
          if (clock.advance) clock.advance(intervalMs)
          else await new Promise((resolve) => setTimeout(resolve, intervalMs))
          const nowMs = clock.now()
          const seconds = ((nowMs - lastMs) / 1000) * compression
          lastMs = nowMs
          const added = deliver(model, startWh + delivered, charger, seconds, maxWh - delivered)
          delivered += added
          // full (nothing more flows) or the car's limit reached: the last reading
          closed = added < 1e-6 || maxWh - delivered < 1e-6
          const sessionWh = closed ? Math.min(maxWh, Math.round(delivered)) : Math.floor(delivered)
          if (battery) connector.metered(sessionWh)
          return { sessionWh: BigInt(sessionWh), timeMs: BigInt(nowMs) }
        },
        close() {
          closed = true
        },
      }
    },
  }
}
