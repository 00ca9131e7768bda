/**
 * The demo's battery model and chargers: trips drain the battery, a low battery (or one too low
 * for the next trip) charges, sessions vary in energy, power and duration with the car, its charge
 * and the charger, and the chargers' meters follow the car's charge curve in compressed time — up
 * to a real session on a real chain, paid at the charger's own tariff to the base unit.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { seededRandom as seeded } from '../../test/reliability/harness.ts'
import { aChargingWorld, TOKEN } from '../payments/payments.testkit.ts'
import { sessionCost } from '../payments/pricing.ts'
import type { EnergySample } from '../station/meter.ts'
import { virtualClock } from '../station/meter.ts'
import {
  acceptedPowerW,
  type Battery,
  CAR_MODELS,
  type CarModel,
  CHARGE_BELOW_PCT,
  type ChargerSpec,
  Connector,
  charge,
  connectorMeter,
  DEMO_CHARGERS,
  demoBattery,
  drain,
  needsCharge,
  RESERVE_PCT,
  type SessionProfile,
  sessionEnergyWh,
  sessionProfile,
  socPct,
  TIME_COMPRESSION,
} from './battery.ts'

const [compact, hatchback, saloon, suv] = CAR_MODELS as [CarModel, CarModel, CarModel, CarModel]
const [dc150, ac11, dc50] = DEMO_CHARGERS as [ChargerSpec, ChargerSpec, ChargerSpec, ChargerSpec]
const at = (model: CarModel, pct: number): Battery => ({
  model,
  socWh: (model.capacityWh * pct) / 100,
})

test('a trip drains the battery by its distance at the model consumption, never below empty', () => {
  const battery = at(saloon, 50)
  assert.equal(drain(battery, 42.5), 42.5 * saloon.consumptionWhPerKm)
  assert.equal(battery.socWh, saloon.capacityWh / 2 - 42.5 * 180)
  const nearlyEmpty: Battery = { model: compact, socWh: 1000 }
  assert.equal(drain(nearlyEmpty, 100), 1000)
  assert.equal(nearlyEmpty.socWh, 0)
  assert.equal(drain(nearlyEmpty, -5), 0)
  // charging fills up to the capacity, never beyond
  charge(nearlyEmpty, 10 * compact.capacityWh)
  assert.equal(socPct(nearlyEmpty), 100)
})

test('a car charges when low, or when the next trip would eat into the reserve', () => {
  assert.equal(needsCharge(at(suv, CHARGE_BELOW_PCT - 1), 1), true)
  assert.equal(needsCharge(at(suv, CHARGE_BELOW_PCT + 1), 5), false)
  // 45 km of a compact at 26 %: 10.4 kWh − 6.75 kWh leaves less than the 10 % reserve (4 kWh)
  assert.equal(needsCharge(at(compact, 26), 45), true)
  assert.equal(needsCharge(at(compact, 26), 10), false)
  // a car never leaves with less than the reserve: whatever needsCharge lets through keeps it
  for (let pct = 0; pct <= 100; pct += 0.5)
    for (let km = 5; km <= 45; km += 2.5)
      for (const model of CAR_MODELS) {
        const battery = at(model, pct)
        if (needsCharge(battery, km)) continue
        drain(battery, km)
        assert.ok(socPct(battery) >= RESERVE_PCT, `${model.name} ${pct} % ${km} km`)
      }
})

test('the demo fleet starts at different charges, some of them low', () => {
  const batteries = Array.from({ length: 12 }, (_, i) => demoBattery(i))
  const pcts = batteries.map(socPct)
  assert.ok(pcts.every((p) => p >= 15 && p <= 90))
  assert.equal(new Set(pcts.map(Math.round)).size, 12)
  assert.ok(
    pcts.some((p) => p < CHARGE_BELOW_PCT),
    'a car of a dozen starts low',
  )
  // and a two-car fleet (the fleet test's) has one car that charges on its first turn
  assert.ok(socPct(demoBattery(1)) < CHARGE_BELOW_PCT)
  assert.deepEqual(
    batteries.slice(0, 4).map((b) => b.model.name),
    CAR_MODELS.map((m) => m.name),
  )
})

test('the battery takes full power on the bulk of the charge and tapers near full', () => {
  for (const model of CAR_MODELS) {
    for (const kind of ['AC', 'DC'] as const) {
      let last = Number.POSITIVE_INFINITY
      for (let pct = 0; pct <= 100; pct++) {
        const power = acceptedPowerW(model, (model.capacityWh * pct) / 100, kind)
        assert.ok(power <= last + 1e-6, `${model.name} ${kind}: the power never rises with the charge`)
        assert.ok(power > 0)
        last = power
      }
    }
    assert.equal(acceptedPowerW(model, model.capacityWh * 0.3, 'DC'), model.maxDcW)
    assert.ok(acceptedPowerW(model, model.capacityWh * 0.85, 'DC') < model.maxDcW * 0.4)
    assert.equal(acceptedPowerW(model, model.capacityWh * 0.85, 'AC'), model.maxAcW)
    assert.ok(acceptedPowerW(model, model.capacityWh * 0.99, 'AC') < model.maxAcW * 0.4)
  }
})

test('sessions vary in energy, power and duration with the car, its charge and the charger', () => {
  const random = seeded(14)
  const profiles: SessionProfile[] = []
  for (let i = 0; i < 200; i++) {
    const model = CAR_MODELS[Math.floor(random() * CAR_MODELS.length)]!
    const charger = DEMO_CHARGERS[Math.floor(random() * DEMO_CHARGERS.length)]!
    const battery = at(model, 5 + random() * 30)
    const energyWh = sessionEnergyWh(battery, charger, random)
    const profile = sessionProfile(model, battery.socWh, charger, energyWh)
    assert.ok(Math.abs(profile.energyWh - energyWh) <= 1, 'the profile delivers what the car asked for')
    assert.ok(
      profile.peakKw * 1000 <=
        Math.min(charger.maxPowerW, charger.kind === 'AC' ? model.maxAcW : model.maxDcW),
    )
    assert.ok(profile.averageKw <= profile.peakKw)
    // DC stops at 80–90 %, AC at 90–100 % or when the car leaves after 1–4 h
    const endPct = (100 * (battery.socWh + energyWh)) / model.capacityWh
    if (charger.kind === 'DC') assert.ok(endPct >= 79.9 && endPct <= 90.1, `DC to ${endPct} %`)
    else assert.ok(endPct <= 100.1 && profile.durationMin <= 4 * 60 + 1, `AC to ${endPct} %`)
    profiles.push(profile)
  }
  const distinct = (f: (p: SessionProfile) => number) => new Set(profiles.map(f)).size
  assert.ok(distinct((p) => Math.round(p.energyWh / 1000)) > 40, 'energies spread over tens of kWh')
  assert.ok(distinct((p) => Math.round(p.averageKw)) > 20, 'average powers spread')
  assert.ok(distinct((p) => Math.round(p.durationMin / 10)) > 15, 'durations spread')
  const kwh = profiles.map((p) => p.energyWh / 1000)
  assert.ok(Math.min(...kwh) < 15 && Math.max(...kwh) > 60, `${Math.min(...kwh)}–${Math.max(...kwh)} kWh`)

  // For one car and the same energy: DC 150 beats DC 50 beats AC, and the taper shows
  const energy = 30_000
  const [fast, slow, ac] = [dc150, dc50, ac11].map((c) =>
    sessionProfile(saloon, saloon.capacityWh * 0.2, c, energy),
  )
  assert.ok(fast!.durationMin < slow!.durationMin && slow!.durationMin < ac!.durationMin)
  assert.equal(fast!.peakKw, 150)
  const low = sessionProfile(hatchback, hatchback.capacityWh * 0.1, dc150, 20_000)
  const high = sessionProfile(hatchback, hatchback.capacityWh * 0.75, dc150, 20_000)
  assert.ok(high.averageKw < low.averageKw / 2, `taper: ${high.averageKw} vs ${low.averageKw} kW`)
})

test('the chargers have their own tariffs', () => {
  assert.equal(new Set(DEMO_CHARGERS.map((c) => c.pricePerKWh)).size, DEMO_CHARGERS.length)
  assert.deepEqual(new Set(DEMO_CHARGERS.map((c) => c.kind)), new Set(['AC', 'DC']))
  // dearer for faster: every DC tariff above every AC one
  const dc = DEMO_CHARGERS.filter((c) => c.kind === 'DC').map((c) => c.pricePerKWh)
  const ac = DEMO_CHARGERS.filter((c) => c.kind === 'AC').map((c) => c.pricePerKWh)
  assert.ok(dc.every((d) => ac.every((a) => d > a)))
  // under the demo wallet's price cap (1 cEUR/kWh)
  assert.ok(DEMO_CHARGERS.every((c) => c.pricePerKWh < TOKEN))
})

/** All readings of one metered session in virtual time. */
async function meterAll(charger: ChargerSpec, connector: Connector, maxWh?: bigint) {
  const clock = virtualClock(0)
  const meter = connectorMeter(charger, connector, { clock, intervalMs: 500 })
  const session = meter.open('0x01', maxWh === undefined ? {} : { maxWh })
  const readings: EnergySample[] = []
  for (let sample = await session.next(); sample; sample = await session.next()) readings.push(sample)
  return readings
}

test("a charger's meter follows the plugged car's charge curve in compressed time", async () => {
  const connector = new Connector()
  const battery = at(saloon, 20)
  assert.equal(connector.plug(battery), true)
  assert.equal(connector.plug(at(suv, 50)), false, 'one car per connector')
  const askWh = 45_000
  const readings = await meterAll(dc150, connector, BigInt(askWh))
  // ends exactly at what the car asked for; energy and time only grow
  assert.equal(readings.at(-1)!.sessionWh, BigInt(askWh))
  for (const [i, r] of readings.entries()) {
    if (i === 0) continue
    const previous = readings[i - 1]!
    assert.ok(r.sessionWh >= previous.sessionWh && r.timeMs > previous.timeMs)
    // never more than the charger's power in compressed time
    const seconds = (Number(r.timeMs - previous.timeMs) / 1000) * TIME_COMPRESSION
    assert.ok(Number(r.sessionWh - previous.sessionWh) <= (dc150.maxPowerW * seconds) / 3600 + 1)
  }
  // its simulated duration is the profile's, to a reading (5 simulated minutes)
  const profile = sessionProfile(saloon, battery.socWh, dc150, askWh)
  const simulatedMin = (readings.length * 500 * TIME_COMPRESSION) / 60_000
  assert.ok(
    Math.abs(simulatedMin - profile.durationMin) <= 5,
    `${simulatedMin} vs ${profile.durationMin} min`,
  )
  // the car learns what flowed when it unplugs; the battery itself is the car's to update
  assert.equal(battery.socWh, saloon.capacityWh * 0.2)
  assert.equal(connector.unplug(), askWh)
  assert.equal(connector.plugged, undefined)
  assert.equal(connector.unplug(), 0)
})

test('a full battery ends the session; a car the fleet does not know gets full power', async () => {
  const full = new Connector()
  full.plug(at(compact, 100))
  const readings = await meterAll(ac11, full, 10_000n)
  assert.deepEqual(
    readings.map((r) => r.sessionWh),
    [0n],
  )
  // nothing plugged (a car run by hand): the charger's own power, here 11 kW for 5 minutes a reading
  const free = new Connector()
  const clock = virtualClock(0)
  const session = connectorMeter(ac11, free, { clock }).open('0x02', { maxWh: 2000n })
  assert.equal((await session.next())!.sessionWh, BigInt(Math.floor((11_000 * 300) / 3600)))
  assert.equal(free.unplug(), 0)
})

test('a demo session on chain pays its charger’s tariff × its energy, to the base unit', async () => {
  const world = await aChargingWorld()
  try {
    for (const spec of [dc150, ac11]) {
      const connector = new Connector()
      const battery = at(hatchback, 15)
      const { station } = await world.aCharger({
        tariff: { pricePerKWh: spec.pricePerKWh, sessionFee: spec.sessionFee },
        meter: connectorMeter(spec, connector, { clock: world.clock }),
      })
      const car = await world.aCar({
        policy: { maxPerSession: 80n * TOKEN, maxPowerW: 350_000 * TIME_COMPRESSION },
      })
      const energyWh = sessionEnergyWh(battery, spec, () => 0.5)
      connector.plug(battery)
      const [result, session] = await world.charge(car, station, {
        stopAtWh: energyWh,
        channelDeposit: 300n * TOKEN,
      })
      charge(battery, connector.unplug())
      assert.equal(result.energyWh, BigInt(energyWh))
      assert.equal(battery.socWh, hatchback.capacityWh * 0.15 + energyWh)
      assert.equal(result.amount, sessionCost(spec, result.energyWh))
      assert.equal(result.amount, spec.sessionFee + (spec.pricePerKWh * BigInt(energyWh)) / 1000n)
      assert.equal(session.amount, result.amount)
      assert.equal(session.code, 'OK')
    }
  } finally {
    await world.stop()
  }
})
