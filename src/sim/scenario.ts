/**
 * The demo's script: each car drives trips (navigation, telemetry, driving behaviour, odometer,
 * parking) with its owner unlocking and locking it over the link as a phone would, and within
 * the first minute the special flows happen once each — a parcel delivered through a one-time
 * trunk key, a rental through ERC-4907. Time is compressed: a trip of simulated minutes takes
 * seconds, so the ledger fills visibly.
 */
import type { Address } from 'viem'
import { connectChain, developmentAccount } from '../chain/clients.ts'
import { toBaseError } from '../errors.ts'
import { familyMemberGrant, parcelDeliveryGrant, startRental } from '../keys/flows.ts'
import { requestAccess } from '../keys/link-client.ts'
import type { SignedGrant } from '../keys/typed-data.ts'
import { Scope } from '../keys/typed-data.ts'
import { summarizeVehicles } from '../ledger/timeline.ts'
import type { NodeContext } from '../node/context.ts'
import type { VehicleAgent } from '../vehicle/agent.ts'
import type { SimVehicle } from './fleet.ts'

/** Development-mnemonic indexes of the demo's people (owners are 1–5). */
export const COURIER = 8
export const RENTER = 9

export type SimActivity = {
  counts: Record<string, number>
  last: { timeMs: number; vehicle: string; flow: string; detail: string }[]
}

/** The payment flows the fleet provides; each resolves with a line for the activity log. */
export type ScenarioPayments = {
  charge(car: SimVehicle, energyWh: number, signal: AbortSignal): Promise<string>
  payParking(car: SimVehicle): Promise<string>
}

export type RunScenarioParameters = {
  context: NodeContext
  payments: ScenarioPayments
  vehicles: () => SimVehicle[]
  agents: ReadonlyMap<Address, VehicleAgent>
  progress: (message: string) => void
  /** Real milliseconds between two steps of one car (default 1500). */
  stepMs?: number
}

const PLACES = [
  { name: 'Central Station', lat: 52.5251, lon: 13.3694 },
  { name: 'Airport BER', lat: 52.3667, lon: 13.5033 },
  { name: 'Tech Park', lat: 52.4309, lon: 13.5283 },
  { name: 'Old Town', lat: 52.5163, lon: 13.3777 },
  { name: 'Harbour', lat: 53.5461, lon: 9.9661 },
  { name: 'Mall West', lat: 52.5053, lon: 13.2826 },
]

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms)
    signal.addEventListener('abort', () => {
      clearTimeout(timer)
      resolve()
    })
  })

export function runScenario(parameters: RunScenarioParameters): {
  activity: SimActivity
  stop(): Promise<void>
} {
  const { context, agents, progress } = parameters
  const stepMs = parameters.stepMs ?? 1500
  const activity: SimActivity = { counts: {}, last: [] }
  const note = (vehicle: string, flow: string, detail: string) => {
    activity.counts[flow] = (activity.counts[flow] ?? 0) + 1
    activity.last.unshift({ timeMs: Date.now(), vehicle, flow, detail })
    activity.last.length = Math.min(activity.last.length, 30)
  }
  const controller = new AbortController()
  const domain = { chainId: context.clients.chain.id, keyRegistry: context.contracts.KeyRegistry }
  const ownerKeys = new Map<Address, SignedGrant>()

  /** The owner's phone key: the owner grants their own address unlock/lock/start. */
  const ownerKey = async (car: SimVehicle) => {
    let grant = ownerKeys.get(car.vehicle)
    if (!grant) {
      grant = await familyMemberGrant({
        signer: developmentAccount(car.ownerIndex),
        domain,
        vehicle: car.vehicle,
        member: car.owner,
        client: context.clients.publicClient,
        name: 'owner phone',
      })
      ownerKeys.set(car.vehicle, grant)
    }
    return grant
  }
  const use = async (car: SimVehicle, action: number, grant: SignedGrant | null, signerIndex: number) => {
    const result = await requestAccess({
      link: car.link,
      signer: developmentAccount(signerIndex),
      domain,
      grant,
      action,
    })
    return result
  }

  const drive = async (car: SimVehicle, odometerKm: number, signal: AbortSignal) => {
    const agent = agents.get(car.vehicle)!
    const record = agent.recorder.record.bind(agent.recorder)
    let km = odometerKm
    let trip = 0
    // the car's own odometer follows the readings its ledger records, resuming at the last one
    const readOdometer = () => agent.model.drive(km - agent.model.status().odometerKm)
    readOdometer()
    await sleep(Math.random() * stepMs * 3, signal)
    while (!signal.aborted) {
      try {
        const unlocked = await use(car, Scope.UNLOCK, await ownerKey(car), car.ownerIndex)
        note(car.vehicle, 'unlock', unlocked.code)
        await use(car, Scope.START, await ownerKey(car), car.ownerIndex)
        const from = PLACES[(trip + car.ownerIndex) % PLACES.length]!
        const to = PLACES[(trip + car.ownerIndex + 1) % PLACES.length]!
        trip += 1
        await record('trip.started', { trip, from: from.name, lat: from.lat, lon: from.lon })
        await record('navigation.destination', { name: to.name, lat: to.lat, lon: to.lon })
        const distanceKm = Math.round((5 + Math.random() * 40) * 10) / 10
        for (let i = 1; i <= 3 && !signal.aborted; i++) {
          await sleep(stepMs, signal)
          const f = i / 4
          await record('telemetry', {
            speedKmh: Math.round(30 + Math.random() * 90),
            batteryPct: Math.round(80 - f * 10 - Math.random() * 5),
            lat: from.lat + (to.lat - from.lat) * f,
            lon: from.lon + (to.lon - from.lon) * f,
          })
        }
        await record('driving.behavior', {
          score: Math.round(60 + Math.random() * 40),
          harshBrakes: Math.floor(Math.random() * 3),
          harshAccelerations: Math.floor(Math.random() * 3),
          maxSpeedKmh: Math.round(90 + Math.random() * 60),
        })
        km = Math.round((km + distanceKm) * 10) / 10
        readOdometer()
        agent.model.stopEngine()
        await record('odometer', { km })
        await record('trip.ended', { trip, distanceKm, durationMin: Math.round(distanceKm * 1.6) })
        await record('parking.started', { name: to.name, lat: to.lat, lon: to.lon })
        if (signal.aborted) break
        if (trip % 4 === 0) note(car.vehicle, 'charging', await parameters.payments.charge(car, 1500, signal))
        if (trip % 3 === 0) note(car.vehicle, 'parking', await parameters.payments.payParking(car))
        if (signal.aborted) break
        const locked = await use(car, Scope.LOCK, await ownerKey(car), car.ownerIndex)
        note(car.vehicle, 'trip', `${distanceKm} km to ${to.name}`)
        note(car.vehicle, 'lock', locked.code)
        await sleep(stepMs * 2, signal)
        await record('parking.ended', { name: to.name, minutes: Math.round(5 + Math.random() * 120) })
      } catch (error) {
        if (!signal.aborted) progress(`${car.vin}: ${toBaseError(error).shortMessage}`)
        await sleep(stepMs * 2, signal)
      }
    }
  }

  /** Once, early: a courier opens the trunk with a one-time key; a second try is refused. */
  const parcel = async (car: SimVehicle) => {
    const grant = await parcelDeliveryGrant({
      signer: developmentAccount(car.ownerIndex),
      domain,
      vehicle: car.vehicle,
      courier: developmentAccount(COURIER).address,
      client: context.clients.publicClient,
      reference: 'DHL-0001',
    })
    const first = await use(car, Scope.OPEN_TRUNK, grant, COURIER)
    const second = await use(car, Scope.OPEN_TRUNK, grant, COURIER)
    note(car.vehicle, 'parcel', `trunk ${first.code}, second use ${second.code}`)
  }

  /** Once, early: the owner rents the car out (ERC-4907); the renter unlocks with no grant. */
  const rental = async (car: SimVehicle) => {
    const owner = await connectChain({
      rpcUrl: context.clients.rpcUrl,
      account: developmentAccount(car.ownerIndex),
    })
    await startRental(owner, {
      vehicleRegistry: context.contracts.VehicleRegistry,
      vehicle: car.vehicle,
      renter: developmentAccount(RENTER).address,
      untilSec: Math.floor(Date.now() / 1000) + 3600,
    })
    const agent = agents.get(car.vehicle)!
    await agent.cache.sync()
    const unlocked = await use(car, Scope.UNLOCK, null, RENTER)
    const locked = await use(car, Scope.LOCK, null, RENTER)
    note(car.vehicle, 'rental', `renter unlock ${unlocked.code}, lock ${locked.code}`)
  }

  const loops = (async () => {
    const cars = parameters.vehicles()
    // A car with events but no odometer reading yet starts like a new one, not at 0 km.
    const odometers = new Map(
      (await summarizeVehicles(context.db)).flatMap((v) =>
        v.odometerKm === null ? [] : [[v.vehicle, v.odometerKm] as const],
      ),
    )
    const drives = cars.map((car, i) =>
      drive(
        car,
        odometers.get(car.vehicle.toLowerCase() as `0x${string}`) ?? 1000 + i * 137,
        controller.signal,
      ),
    )
    const specials = [
      cars[0] && sleep(2000, controller.signal).then(() => parcel(cars[0]!)),
      cars[1] && sleep(4000, controller.signal).then(() => rental(cars[1]!)),
      cars[0] &&
        sleep(3000, controller.signal)
          .then(() => parameters.payments.charge(cars.at(-1)!, 1500, controller.signal))
          .then((line) => note(cars.at(-1)!.vehicle, 'charging', line)),
      cars[0] &&
        sleep(5000, controller.signal)
          .then(() => parameters.payments.payParking(cars[0]!))
          .then((line) => note(cars[0]!.vehicle, 'parking', line)),
    ].map((p) => p?.catch((error: unknown) => progress(`scenario: ${toBaseError(error).shortMessage}`)))
    await Promise.all([...drives, ...specials])
  })()

  return {
    activity,
    async stop() {
      controller.abort()
      await loops
    },
  }
}
