/**
 * A demo car's life as a state machine (docs/simulator.md "Batteries and charging"): parked,
 * driving (from `trip.started` to `trip.ended`) or charging (plugged in, from before
 * `charging.started` to after `charging.ended`). A trip starts only from parked — never twice in
 * a row, never while plugged in — and a car charges only when parked.
 *
 * `carCycle` is one turn of a car's loop: it charges when its battery is low (or too low for the
 * next trip), and otherwise drives one trip that drains it. Everything it does to the world goes
 * through `CarWorld`, so the scenario wires it to the car's link, ledger and wallet, and tests to
 * fakes that fail where they like.
 */
import { existsSync, readFileSync } from 'node:fs'
import { BaseError } from '../errors.ts'
import { writeFileAtomic } from '../fs-atomic.ts'
import type { EventKind } from '../ledger/envelope.ts'
import type { JsonValue } from '../ledger/jcs.ts'
import { logger } from '../log.ts'
import {
  type Battery,
  type ChargerBay,
  charge,
  drain,
  needsCharge,
  sessionEnergyWh,
  sessionProfile,
  socPct,
  tripEnergyWh,
} from './battery.ts'

export type CarState = 'parked' | 'driving' | 'charging'

/** The ledger kinds that move a car between states: [from, to]. */
const transitions: Partial<Record<EventKind, readonly [CarState, CarState]>> = {
  'trip.started': ['parked', 'driving'],
  'trip.ended': ['driving', 'parked'],
  'charging.started': ['parked', 'charging'],
  'charging.ended': ['charging', 'parked'],
}

/** The state after `kind`, or undefined when `kind` may not happen in `state`. */
export function nextState(state: CarState, kind: EventKind): CarState | undefined {
  const transition = transitions[kind]
  if (!transition) return state
  return transition[0] === state ? transition[1] : undefined
}

export type TimelineViolation = { index: number; kind: EventKind; state: CarState }

/**
 * Where a car's timeline (its ledger kinds in order) breaks the state machine: a `trip.started`
 * during a trip or while charging, an end without its start, … (after each, the timeline is read
 * on from the state the kind leads to).
 */
export function timelineViolations(
  kinds: readonly EventKind[],
  initial: CarState = 'parked',
): TimelineViolation[] {
  const violations: TimelineViolation[] = []
  let state = initial
  for (const [index, kind] of kinds.entries()) {
    const next = nextState(state, kind)
    if (next === undefined) violations.push({ index, kind, state })
    state = next ?? transitions[kind]![1]
  }
  return violations
}

export type Place = { readonly name: string; readonly lat: number; readonly lon: number }

/** A demo car as the scenario drives it. */
export type DemoCar = {
  readonly battery: Battery
  state: CarState
  /** Trips driven so far (the next one's number is `trips + 1`). */
  trips: number
  odometerKm: number
  /** Where it is parked: an index into the places. */
  place: number
}

const log = logger('sim.trips')

/**
 * The car saved at `path` (`{version: 1, model, socWh, state, trips}`) over `fallback`: its
 * charge, its trip count and a trip in progress (the next turn ends it). A session in progress is
 * not resumed: the car is parked. A file that is unreadable, of another model or holds an
 * impossible value is ignored (with a warning): the car starts as `fallback`.
 */
export function loadCar(path: string, fallback: DemoCar): DemoCar {
  if (!existsSync(path)) return fallback
  try {
    const saved = (JSON.parse(readFileSync(path, 'utf8')) ?? {}) as Record<string, unknown>
    const { socWh, state, trips } = saved
    const { model } = fallback.battery
    if (
      saved.version === 1 &&
      saved.model === model.name &&
      typeof socWh === 'number' &&
      Number.isFinite(socWh) &&
      socWh >= 0 &&
      socWh <= model.capacityWh &&
      (state === 'parked' || state === 'driving' || state === 'charging') &&
      Number.isSafeInteger(trips) &&
      (trips as number) >= 0
    )
      return {
        ...fallback,
        battery: { model, socWh },
        state: state === 'driving' ? 'driving' : 'parked',
        trips: trips as number,
      }
    log.warn({ path }, 'the saved car is of another model or out of range; starting from the demo car')
  } catch (error) {
    log.warn({ err: error, path }, 'the saved car is unreadable; starting from the demo car')
  }
  return fallback
}

/** Saves what `loadCar` reads, atomically. */
export function saveCar(path: string, car: DemoCar): void {
  const { battery, state, trips } = car
  writeFileAtomic(
    path,
    `${JSON.stringify({ version: 1, model: battery.model.name, socWh: battery.socWh, state, trips })}\n`,
  )
}

/** What a car cycle does to the world. */
export type CarWorld = {
  readonly places: readonly Place[]
  readonly bays: readonly ChargerBay[]
  /** Real ms between two steps of a trip. */
  readonly stepMs: number
  random(): number
  sleep(ms: number): Promise<void>
  /** The owner's phone unlocks the car over its link; answers the link's code. */
  unlock(): Promise<string>
  /** The owner's phone starts the car over its link: the car itself records `trip.started`. */
  start(): Promise<void>
  /** Whether the car's engine runs (the car started). */
  engineOn(): boolean
  stopEngine(): void
  /** The car's own odometer follows the trip. */
  odometer(km: number): void
  /** The owner's phone locks the car; answers the link's code. */
  lock(): Promise<string>
  record(kind: EventKind, data: JsonValue): Promise<unknown>
  /** One paid session at `bays[bay]` of at most `energyWh`; answers a line for the activity log. */
  charge(bay: number, energyWh: number): Promise<string>
  /** Pays for the parking; answers a line for the activity log. */
  payParking(): Promise<string>
  note(flow: string, detail: string): void
  /** Keeps the car's state (a trip about to start, so a restart after a crash ends it). */
  save(): void
}

const round1 = (x: number) => Math.round(x * 10) / 10

/**
 * One turn of a car's loop: finish a trip a failure cut short, then charge if the battery is low
 * (or too low for the next trip), else drive one trip. Throws what the world throws; the car's
 * state stays true to what the car did, so the next turn goes on from there.
 */
export async function carCycle(car: DemoCar, world: CarWorld, signal: AbortSignal): Promise<void> {
  if (car.state === 'driving') {
    world.stopEngine()
    await world.record('trip.ended', {
      trip: car.trips,
      aborted: true,
      batteryPct: Math.round(socPct(car.battery)),
    })
    car.state = 'parked'
  }
  const distanceKm = round1(5 + world.random() * 40)
  if (needsCharge(car.battery, distanceKm)) await chargeAtFreeBay(car, world)
  else await drive(car, world, distanceKm, signal)
}

/** Plugs in at a free charger, runs one session and unplugs; waits a step when all are busy. */
async function chargeAtFreeBay(car: DemoCar, world: CarWorld): Promise<void> {
  const free = world.bays.flatMap((bay, i) => (bay.connector.plugged ? [] : [i]))
  if (free.length === 0) {
    world.note('charging', `${Math.round(socPct(car.battery))} %: every charger is busy, waiting`)
    await world.sleep(world.stepMs)
    return
  }
  const index = free[Math.floor(world.random() * free.length)]!
  const { spec, connector } = world.bays[index]!
  const battery = car.battery
  const energyWh = sessionEnergyWh(battery, spec, world.random)
  const beforeWh = battery.socWh
  if (!connector.plug(battery))
    throw new BaseError('INTERNAL', `the free connector ${index} refused the plug`)
  car.state = 'charging'
  let line: string
  try {
    line = await world.charge(index, energyWh)
  } finally {
    charge(battery, connector.unplug())
    car.state = 'parked'
  }
  const profile = sessionProfile(battery.model, beforeWh, spec, battery.socWh - beforeWh)
  const pct = (wh: number) => Math.round((100 * wh) / battery.model.capacityWh)
  world.note(
    'charging',
    `${line}; ${pct(beforeWh)} % → ${pct(battery.socWh)} % in ${profile.durationMin} min, ${profile.averageKw} kW average, ${profile.peakKw} kW peak`,
  )
  await world.record('telemetry', {
    type: 'charge',
    batteryPct: pct(battery.socWh),
    energyWh: profile.energyWh,
    durationMin: profile.durationMin,
    averageKw: profile.averageKw,
    peakKw: profile.peakKw,
  })
}

/** One trip from where the car is parked to the next place, then parking there. */
async function drive(car: DemoCar, world: CarWorld, distanceKm: number, signal: AbortSignal): Promise<void> {
  const { places, stepMs, random } = world
  const from = places[car.place % places.length]!
  const to = places[(car.place + 1) % places.length]!
  world.note('unlock', await world.unlock())
  // The car may record `trip.started` even when the answer is lost: it drives if its engine runs.
  car.state = 'driving'
  car.trips += 1
  world.save()
  try {
    await world.start()
  } finally {
    if (!world.engineOn()) {
      car.state = 'parked'
      car.trips -= 1
    }
  }
  if (car.state !== 'driving') return
  const trip = car.trips
  await world.record('navigation.destination', {
    trip,
    from: from.name,
    name: to.name,
    lat: to.lat,
    lon: to.lon,
  })
  const battery = car.battery
  const tripWh = tripEnergyWh(battery.model, distanceKm)
  for (let i = 1; i <= 3 && !signal.aborted; i++) {
    await world.sleep(stepMs)
    const f = i / 4
    await world.record('telemetry', {
      speedKmh: Math.round(30 + random() * 90),
      batteryPct: Math.round((100 * Math.max(0, battery.socWh - f * tripWh)) / battery.model.capacityWh),
      lat: from.lat + (to.lat - from.lat) * f,
      lon: from.lon + (to.lon - from.lon) * f,
    })
  }
  await world.record('driving.behavior', {
    score: Math.round(60 + random() * 40),
    harshBrakes: Math.floor(random() * 3),
    harshAccelerations: Math.floor(random() * 3),
    maxSpeedKmh: Math.round(90 + random() * 60),
  })
  drain(battery, distanceKm)
  car.odometerKm = round1(car.odometerKm + distanceKm)
  world.odometer(car.odometerKm)
  world.stopEngine()
  await world.record('odometer', { km: car.odometerKm })
  await world.record('trip.ended', {
    trip,
    distanceKm,
    durationMin: Math.round(distanceKm * 1.6),
    batteryPct: Math.round(socPct(battery)),
  })
  car.state = 'parked'
  car.place += 1
  await world.record('parking.started', { name: to.name, lat: to.lat, lon: to.lon })
  if (signal.aborted) return
  if (trip % 3 === 0) world.note('parking', await world.payParking())
  if (signal.aborted) return
  const locked = await world.lock()
  world.note('trip', `${distanceKm} km to ${to.name}, battery ${Math.round(socPct(battery))} %`)
  world.note('lock', locked)
  await world.sleep(stepMs * 2)
  await world.record('parking.ended', { name: to.name, minutes: Math.round(5 + random() * 120) })
}
