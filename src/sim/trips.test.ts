/**
 * A demo car's trip state machine: the timeline check flags every broken run, and whatever the
 * world does to the car loop — a link that refuses or loses the START's answer, a ledger write
 * that fails, a charging session refused or cut short, several cars at a few chargers — no car
 * records two `trip.started` in a row, none starts a trip while plugged in, the battery stays
 * between empty and full, trips drain it and sessions fill it (fast-check).
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import fc from 'fast-check'
import { seededRandom as seeded } from '../../test/reliability/harness.ts'
import type { EventKind } from '../ledger/envelope.ts'
import {
  CAR_MODELS,
  type ChargerBay,
  Connector,
  DEMO_CHARGERS,
  demoBattery,
  socPct,
  tripEnergyWh,
} from './battery.ts'
import {
  type CarWorld,
  carCycle,
  type DemoCar,
  loadCar,
  nextState,
  type Place,
  saveCar,
  timelineViolations,
} from './trips.ts'

const PLACES: Place[] = [
  { name: 'A', lat: 52.5, lon: 13.4 },
  { name: 'B', lat: 52.4, lon: 13.5 },
  { name: 'C', lat: 52.6, lon: 13.3 },
]

test('the timeline check flags what the state machine forbids', () => {
  const ok: EventKind[] = [
    'door.unlocked',
    'trip.started',
    'telemetry',
    'trip.ended',
    'charging.started',
    'charging.ended',
    'trip.started',
    'trip.ended',
  ]
  assert.deepEqual(timelineViolations(ok), [])
  assert.deepEqual(timelineViolations(['trip.started', 'telemetry', 'trip.started']), [
    { index: 2, kind: 'trip.started', state: 'driving' },
  ])
  assert.deepEqual(timelineViolations(['charging.started', 'trip.started']), [
    { index: 1, kind: 'trip.started', state: 'charging' },
  ])
  assert.deepEqual(timelineViolations(['trip.started', 'charging.started']), [
    { index: 1, kind: 'charging.started', state: 'driving' },
  ])
  assert.deepEqual(timelineViolations(['trip.ended']), [{ index: 0, kind: 'trip.ended', state: 'parked' }])
  // after a violation the check reads on from where the kind leads
  assert.deepEqual(timelineViolations(['trip.started', 'trip.started', 'trip.ended']).length, 1)
  assert.equal(nextState('charging', 'telemetry'), 'charging')
})

/** How each call of the world goes: most succeed, some fail in the ways a real world fails. */
type Fates = { next(): number }
const fatesOf = (values: number[]): Fates => {
  let i = 0
  return { next: () => values[i++ % values.length]! }
}

type Car = {
  demo: DemoCar
  timeline: EventKind[]
  engine: boolean
  drivenWh: number
  chargedWh: number
  saves: number
}

/**
 * A world of fakes around `car`: every call draws a fate (0–99); below `failPct` it fails.
 * START fails four ways: refused (access.denied, engine off), answer lost after the car started
 * (trip.started recorded, engine on, then a throw), lost before (nothing recorded), or fine.
 */
function fakeWorld(
  car: Car,
  bays: ChargerBay[],
  fates: Fates,
  failPct: number,
  random: () => number,
): CarWorld {
  const fails = () => fates.next() < failPct
  const append = (kind: EventKind) => {
    car.timeline.push(kind)
  }
  return {
    places: PLACES,
    bays,
    stepMs: 1,
    random,
    sleep: async () => {
      await Promise.resolve()
    },
    async unlock() {
      if (fails()) throw new Error('link down')
      append('door.unlocked')
      return 'OK'
    },
    async start() {
      assert.ok(!bays.some((b) => b.connector.plugged === car.demo.battery), 'START while plugged in')
      const fate = fates.next()
      if (fate < failPct / 3) throw new Error('link down before the car heard it')
      if (fate < (2 * failPct) / 3) {
        append('access.denied')
        return
      }
      append('trip.started')
      car.engine = true
      if (fate < failPct) throw new Error('the answer was lost')
    },
    engineOn: () => car.engine,
    stopEngine() {
      car.engine = false
    },
    odometer() {},
    async lock() {
      if (fails()) throw new Error('link down')
      append('door.locked')
      return 'OK'
    },
    async record(kind) {
      if (fails()) throw new Error('disk full')
      append(kind)
    },
    async charge(bay, energyWh) {
      const connector = bays[bay]!.connector
      assert.equal(connector.plugged, car.demo.battery, 'the car charges where it plugged in')
      assert.equal(car.demo.state, 'charging')
      const fate = fates.next()
      if (fate < failPct / 2) throw new Error('the charger refused the offer')
      append('charging.started')
      await Promise.resolve()
      // cut short: some of the energy, then the end is recorded and the session rejects
      const cut = fate < failPct
      const wh = cut ? Math.floor(energyWh * random()) : energyWh
      connector.metered(wh)
      car.chargedWh += Math.min(wh, car.demo.battery.model.capacityWh - car.demo.battery.socWh)
      append('charging.ended')
      if (cut) throw new Error('the meter failed')
      return `${wh} Wh`
    },
    async payParking() {
      if (fails()) throw new Error('no funds')
      return 'paid'
    },
    note() {},
    save() {
      car.saves += 1
    },
  }
}

test('property: never two trip.started in a row, never a trip while charging, the battery true', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.record({
        cars: fc.integer({ min: 1, max: 4 }),
        bays: fc.integer({ min: 1, max: 3 }),
        cycles: fc.integer({ min: 5, max: 40 }),
        failPct: fc.constantFrom(0, 5, 20, 50),
        fates: fc.array(fc.nat(99), { minLength: 1, maxLength: 200 }),
        seed: fc.nat(),
        abortAt: fc.option(fc.nat(40)),
      }),
      async ({ cars: count, bays: bayCount, cycles, failPct, fates: values, seed, abortAt }) => {
        const random = seeded(seed)
        const fates = fatesOf(values)
        const bays = DEMO_CHARGERS.slice(0, bayCount).map((spec) => ({ spec, connector: new Connector() }))
        const controller = new AbortController()
        const cars: Car[] = Array.from({ length: count }, (_, i) => ({
          demo: { battery: demoBattery(i + seed), state: 'parked', trips: 0, odometerKm: 1000, place: i },
          timeline: [],
          engine: false,
          drivenWh: 0,
          chargedWh: 0,
          saves: 0,
        }))
        await Promise.all(
          cars.map(async (car) => {
            const world = fakeWorld(car, bays, fates, failPct, random)
            for (let n = 0; n < cycles && !controller.signal.aborted; n++) {
              if (n === abortAt) controller.abort()
              const { socWh } = car.demo.battery
              const odometer = car.demo.odometerKm
              try {
                await carCycle(car.demo, world, controller.signal)
              } catch {
                // the scenario logs it and goes on with the next turn, as here
              }
              const battery = car.demo.battery
              assert.ok(battery.socWh >= 0 && battery.socWh <= battery.model.capacityWh)
              if (car.demo.odometerKm > odometer) {
                // a trip drained exactly its distance's energy
                const km = Math.round((car.demo.odometerKm - odometer) * 10) / 10
                assert.ok(Math.abs(socWh - battery.socWh - tripEnergyWh(battery.model, km)) < 1e-6)
                car.drivenWh += socWh - battery.socWh
              }
              assert.notEqual(car.demo.state, 'charging', 'a turn never leaves the car plugged in')
            }
          }),
        )
        for (const car of cars) {
          assert.deepEqual(timelineViolations(car.timeline), [], car.timeline.join(' '))
          const starts = car.timeline.filter((k) => k === 'trip.started').length
          assert.ok(car.saves >= starts, 'the car is saved before every START')
          const { battery } = car.demo
          const start = demoBattery(cars.indexOf(car) + seed).socWh
          assert.ok(Math.abs(start - car.drivenWh + car.chargedWh - battery.socWh) < 1e-6, 'energy adds up')
        }
        assert.ok(
          bays.every((b) => b.connector.plugged === undefined),
          'every connector free at the end',
        )
      },
    ),
    { numRuns: 300 },
  )
})

test('a car drives until low, then charges, then drives again', async () => {
  const bays = [{ spec: DEMO_CHARGERS[0]!, connector: new Connector() }]
  const car: Car = {
    demo: {
      battery: { model: CAR_MODELS[0]!, socWh: 16_000 },
      state: 'parked',
      trips: 0,
      odometerKm: 0,
      place: 0,
    },
    timeline: [],
    engine: false,
    drivenWh: 0,
    chargedWh: 0,
    saves: 0,
  }
  const world = fakeWorld(car, bays, fatesOf([99]), 0, seeded(7))
  const pcts: number[] = []
  for (let n = 0; n < 12; n++) {
    await carCycle(car.demo, world, new AbortController().signal)
    pcts.push(Math.round(socPct(car.demo.battery)))
  }
  const sessions = car.timeline.filter((k) => k === 'charging.started').length
  const trips = car.timeline.filter((k) => k === 'trip.started').length
  assert.ok(sessions >= 1 && trips >= 8, `${sessions} sessions, ${trips} trips: ${pcts.join(' ')}`)
  // every session starts low (below 25 % or too low for the trip) and ends at 80–90 % (DC)
  for (const [i, pct] of pcts.entries()) {
    const before = i === 0 ? 40 : pcts[i - 1]!
    if (pct > before) assert.ok(before < 30 && pct >= 80 && pct <= 90, `${before} % → ${pct} %`)
  }
  assert.deepEqual(timelineViolations(car.timeline), [])
})

test('a car saved mid-trip ends that trip after a restart, and counts on', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'carchain-car-'))
  try {
    const path = join(dir, 'car.json')
    const demo = (): DemoCar => ({
      battery: demoBattery(2),
      state: 'parked',
      trips: 0,
      odometerKm: 0,
      place: 0,
    })
    assert.deepEqual(loadCar(path, demo()), demo(), 'none saved')
    // the first turn drives: the car is saved as driving before the START
    const car: Car = { demo: demo(), timeline: [], engine: false, drivenWh: 0, chargedWh: 0, saves: 0 }
    const bays = [{ spec: DEMO_CHARGERS[0]!, connector: new Connector() }]
    const world = fakeWorld(car, bays, fatesOf([99]), 0, seeded(3))
    const start = world.start
    world.start = async () => {
      saveCar(path, car.demo)
      await start()
    }
    await carCycle(car.demo, world, new AbortController().signal)
    assert.equal(car.timeline.filter((k) => k === 'trip.started').length, 1)
    // the process died during that trip: a new car from the file ends it first, then goes on
    const restarted: Car = { ...car, demo: loadCar(path, demo()), engine: false }
    assert.equal(restarted.demo.state, 'driving')
    assert.equal(restarted.demo.trips, 1)
    restarted.timeline = ['trip.started']
    const again = fakeWorld(restarted, bays, fatesOf([99]), 0, seeded(4))
    for (let n = 0; n < 3; n++) await carCycle(restarted.demo, again, new AbortController().signal)
    assert.equal(restarted.timeline[1], 'trip.ended')
    assert.deepEqual(timelineViolations(restarted.timeline), [])
    // a session in progress is not resumed; the charge and the trip count are
    saveCar(path, { ...car.demo, state: 'charging', trips: 7 })
    assert.equal(loadCar(path, demo()).state, 'parked')
    assert.equal(loadCar(path, demo()).trips, 7)
    assert.equal(loadCar(path, demo()).battery.socWh, car.demo.battery.socWh)
    // a saved car of another model, out of range or garbage is ignored
    const other: DemoCar = { ...demo(), battery: demoBattery(3) }
    assert.deepEqual(loadCar(path, other), other)
    for (const hostile of [
      '{"version":1,"model":"saloon","socWh":77001,"state":"parked","trips":1}',
      '{"version":1,"model":"saloon","socWh":-1,"state":"parked","trips":1}',
      '{"version":1,"model":"saloon","socWh":"5","state":"parked","trips":1}',
      '{"version":1,"model":"saloon","socWh":1e999,"state":"parked","trips":1}',
      '{"version":1,"model":"saloon","socWh":5,"state":"flying","trips":1}',
      '{"version":1,"model":"saloon","socWh":5,"state":"parked","trips":-1}',
      '{"version":1,"model":"saloon","socWh":5,"state":"parked","trips":1.5}',
      '{"version":2,"model":"saloon","socWh":5,"state":"parked","trips":1}',
      'not json',
      'null',
    ]) {
      writeFileSync(path, hostile)
      assert.deepEqual(loadCar(path, demo()), demo(), hostile)
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
