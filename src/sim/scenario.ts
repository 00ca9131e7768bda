/**
 * The demo's script: each car drives trips (navigation, telemetry, driving behaviour, odometer,
 * parking) with its owner unlocking, starting and locking it over the link as a phone would, and
 * charges when its battery runs low (src/sim/trips.ts); within the first minute the special flows
 * happen once each — a parcel delivered through a one-time trunk key, a rental through ERC-4907.
 * Time is compressed: a trip of simulated minutes takes seconds, so the ledger fills visibly.
 */
import type { Address } from 'viem'
import { connectChain, developmentAccount } from '../chain/clients.ts'
import { toBaseError } from '../errors.ts'
import { familyMemberGrant, parcelDeliveryGrant, startRental } from '../keys/flows.ts'
import { requestAccess } from '../keys/link-client.ts'
import type { SignedGrant } from '../keys/typed-data.ts'
import { Scope } from '../keys/typed-data.ts'
import type { VehicleAddress } from '../ledger/envelope.ts'
import { getVehicleHead } from '../ledger/store.ts'
import type { NodeContext } from '../node/context.ts'
import type { VehicleAgent } from '../vehicle/agent.ts'
import { type ChargerBay, demoBattery, socPct } from './battery.ts'
import type { SimVehicle } from './fleet.ts'
import { type CarState, type CarWorld, carCycle, type DemoCar, loadCar, saveCar } from './trips.ts'

/** Development-mnemonic indexes of the demo's people (owners are 1–5). */
export const COURIER = 8
export const RENTER = 9

export type SimActivity = {
  counts: Record<string, number>
  last: { timeMs: number; vehicle: string; flow: string; detail: string }[]
}

/** The payment flows the fleet provides; each resolves with a line for the activity log. */
export type ScenarioPayments = {
  /** One session of at most `energyWh` at the charger of `bays[bay]`. */
  charge(car: SimVehicle, bay: number, energyWh: number, signal: AbortSignal): Promise<string>
  payParking(car: SimVehicle): Promise<string>
}

export type RunScenarioParameters = {
  context: NodeContext
  payments: ScenarioPayments
  vehicles: () => SimVehicle[]
  agents: ReadonlyMap<Address, VehicleAgent>
  /** The demo chargers' connectors and specs, in the fleet's charger order. */
  bays: readonly ChargerBay[]
  /** Where each car's battery and trip state are kept across restarts (default: not kept). */
  carPath?: (car: SimVehicle) => string
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

/** A car's battery as `GET /v1/sim/vehicles` shows it. */
export type BatteryStatus = { model: string; capacityKWh: number; socPct: number; state: CarState }

export function runScenario(parameters: RunScenarioParameters): {
  activity: SimActivity
  /** The car's battery and state (undefined for a car not in the scenario). */
  battery(vehicle: Address): BatteryStatus | undefined
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
  const demoCars = new Map<Address, DemoCar>()

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

  const drive = async (car: SimVehicle, demo: DemoCar, signal: AbortSignal) => {
    const agent = agents.get(car.vehicle)!
    const record = agent.recorder.record.bind(agent.recorder)
    const save = () => {
      if (!parameters.carPath) return
      try {
        saveCar(parameters.carPath(car), demo)
      } catch (error) {
        progress(`${car.vin}: the car's state was not saved: ${toBaseError(error).shortMessage}`)
      }
    }
    const world: CarWorld = {
      places: PLACES,
      bays: parameters.bays,
      stepMs,
      random: Math.random,
      sleep: (ms) => sleep(ms, signal),
      unlock: async () => (await use(car, Scope.UNLOCK, await ownerKey(car), car.ownerIndex)).code,
      start: async () => {
        await use(car, Scope.START, await ownerKey(car), car.ownerIndex)
      },
      engineOn: () => agent.model.status().engineOn,
      stopEngine: () => agent.model.stopEngine(),
      // the car's own odometer follows the readings its ledger records
      odometer: (km) => agent.model.drive(km - agent.model.status().odometerKm),
      lock: async () => (await use(car, Scope.LOCK, await ownerKey(car), car.ownerIndex)).code,
      record,
      charge: (bay, energyWh) => parameters.payments.charge(car, bay, energyWh, signal),
      payParking: () => parameters.payments.payParking(car),
      note: (flow, detail) => note(car.vehicle, flow, detail),
      save,
    }
    world.odometer(demo.odometerKm)
    await sleep(Math.random() * stepMs * 3, signal)
    while (!signal.aborted) {
      try {
        await carCycle(demo, world, signal)
      } catch (error) {
        if (!signal.aborted) progress(`${car.vin}: ${toBaseError(error).shortMessage}`)
        await sleep(stepMs * 2, signal)
      } finally {
        save()
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
    // A sync already running shares its result and may have read the chain before the rental:
    // the second starts after the first ended, so it sees the rental.
    await agent.cache.sync()
    await agent.cache.sync()
    const unlocked = await use(car, Scope.UNLOCK, null, RENTER)
    const locked = await use(car, Scope.LOCK, null, RENTER)
    note(car.vehicle, 'rental', `renter unlock ${unlocked.code}, lock ${locked.code}`)
  }

  const loops = (async () => {
    const cars = parameters.vehicles()
    // (before the first await: every car has its battery once runScenario returns)
    for (const [i, car] of cars.entries()) {
      const demo: DemoCar = {
        battery: demoBattery(i),
        state: 'parked',
        trips: 0,
        odometerKm: 1000 + i * 137,
        place: car.ownerIndex,
      }
      demoCars.set(car.vehicle, parameters.carPath ? loadCar(parameters.carPath(car), demo) : demo)
    }
    // Each car resumes at the reading its head keeps for rollback checks (a new car, or one whose
    // readings were all erased, starts at a demo reading).
    const heads = await Promise.all(
      cars.map((car) => getVehicleHead(context.db, car.vehicle.toLowerCase() as VehicleAddress)),
    )
    for (const [i, car] of cars.entries()) {
      const odometerKm = heads[i]?.odometerKm
      if (odometerKm !== undefined) demoCars.get(car.vehicle)!.odometerKm = odometerKm
    }
    const drives = cars.map((car) => drive(car, demoCars.get(car.vehicle)!, controller.signal))
    const specials = [
      cars[0] && sleep(2000, controller.signal).then(() => parcel(cars[0]!)),
      cars[1] && sleep(4000, controller.signal).then(() => rental(cars[1]!)),
      cars[0] &&
        sleep(5000, controller.signal)
          .then(() => parameters.payments.payParking(cars[0]!))
          .then((line) => note(cars[0]!.vehicle, 'parking', line)),
    ].map((p) => p?.catch((error: unknown) => progress(`scenario: ${toBaseError(error).shortMessage}`)))
    await Promise.all([...drives, ...specials])
  })()

  return {
    activity,
    battery(vehicle) {
      const car = demoCars.get(vehicle)
      if (!car) return undefined
      const { model } = car.battery
      return {
        model: model.name,
        capacityKWh: model.capacityWh / 1000,
        socPct: Math.round(socPct(car.battery) * 10) / 10,
        state: car.state,
      }
    },
    async stop() {
      controller.abort()
      await loops
    },
  }
}
