/**
 * Test fixture: a small fleet on a running node, made the way real cars join — the operator
 * (development account 0, the embedded chain's deployer) trusts a test OEM, the OEM registers each
 * car's title to an owner (development accounts 1 and 2), the car registers its certificate with
 * the node and uploads signed batches of everyday events. Used by the dashboard's browser test so
 * it does not depend on the simulator.
 */
import { createHash } from 'node:crypto'
import { type Address, getAddress, keccak256, type LocalAccount, toBytes } from 'viem'
import { connectChain, developmentAccount } from '../src/chain/clients.ts'
import { demoTokenAbi, vehicleRegistryAbi } from '../src/chain/generated/index.ts'
import { toPem } from '../src/identity/certificate.ts'
import { aPki, aVin } from '../src/identity/pki.testkit.ts'
import { createBatch } from '../src/ledger/batch.ts'
import { createEventChain, type EventChain, type EventKind } from '../src/ledger/envelope.ts'

export type FleetCar = {
  vehicle: `0x${string}`
  vin: string
  ownerIndex: number
  chain: EventChain
  sign(message: Uint8Array): Promise<Uint8Array>
}

export type SeededFleet = {
  cars: FleetCar[]
  /** Uploads one more batch for `car` (a short errand), newest event at `nowMs`. */
  drive(car: FleetCar, nowMs?: number): Promise<void>
  cleanup(): Promise<void>
}

type NodeInfo = { url: string; chain: { rpcUrl: string; contracts: Record<string, string> } }

async function post(url: string, body: unknown): Promise<Record<string, unknown>> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  const answer = (await response.json()) as Record<string, unknown>
  if (!response.ok) throw new Error(`POST ${url}: ${response.status} ${JSON.stringify(answer)}`)
  return answer
}

/** One day of a car's life, compressed: the kinds and data a fleet operator sees. */
function errand(odometerKm: number, i: number): { kind: EventKind; data: Record<string, unknown> }[] {
  const distanceKm = 6 + ((i * 7.3) % 19)
  const places = ['Depot Nord', 'Hauptbahnhof', 'Messe Süd', 'Airport P4', 'Hafen West']
  return [
    { kind: 'door.unlocked', data: { by: 'owner' } },
    { kind: 'trip.started', data: { lat: 48.137 + i / 100, lon: 11.575 } },
    { kind: 'navigation.destination', data: { name: places[i % places.length]!, etaMin: 12 + i } },
    { kind: 'telemetry', data: { speedKmh: 48 + i, batteryPct: 81 - i } },
    { kind: 'driving.behavior', data: { score: 92 - i, harshBraking: i % 2 } },
    { kind: 'trip.ended', data: { distanceKm: Math.round(distanceKm * 10) / 10 } },
    { kind: 'odometer', data: { km: Math.round((odometerKm + distanceKm) * 10) / 10 } },
    { kind: 'parking.started', data: { zone: `Z${3 + i}` } },
    { kind: 'door.locked', data: { by: 'owner' } },
  ]
}

/**
 * Registers `count` cars with the node at `info.url` and uploads one errand each
 * (`certificateLifetimeMs`: the cars' certificates' validity, backdated 5 min by the issuer).
 */
export async function seedFleet(
  info: NodeInfo,
  count = 3,
  options: { certificateLifetimeMs?: number } = {},
): Promise<SeededFleet> {
  const pki = await aPki()
  const { walletClient, publicClient } = await connectChain({
    rpcUrl: info.chain.rpcUrl,
    account: developmentAccount(0),
  })
  const registry = info.chain.contracts.VehicleRegistry as `0x${string}`
  const send = async (functionName: string, args: readonly unknown[]) => {
    const hash = await walletClient.writeContract({
      address: registry,
      abi: vehicleRegistryAbi,
      functionName,
      args,
    } as never)
    await publicClient.waitForTransactionReceipt({ hash })
  }
  await send('setOem', [walletClient.account.address, true])
  await send('setTrustedRoot', [0, `0x${pki.oem.root.fingerprint}`, true])
  const odometers = new Map<string, number>()
  const errands = new Map<string, number>()
  const lastTimes = new Map<string, number>()
  const cars: FleetCar[] = []
  for (let n = 0; n < count; n++) {
    const vin = aVin()
    const issued = await pki.aVehicle({ vin, lifetimeMs: options.certificateLifetimeMs })
    const vehicle = getAddress(await pki.store.ethereumAddress(issued.walletRef))
    const ownerIndex = 1 + (n % 2)
    await send('registerVehicle', [
      vehicle,
      developmentAccount(ownerIndex).address,
      `0x${issued.cert.fingerprint}`,
      keccak256(toBytes(vin)),
    ])
    await post(`${info.url}/v1/vehicles`, {
      certificate: toPem('CERTIFICATE', issued.cert.der),
      chain: [toPem('CERTIFICATE', pki.oem.sub.der), toPem('CERTIFICATE', pki.oem.root.der)],
    })
    // Pocket money for the car's wallet (the demo token's owner is the deployer).
    const minted = await walletClient.writeContract({
      address: info.chain.contracts.Token as `0x${string}`,
      abi: demoTokenAbi,
      functionName: 'mint',
      args: [vehicle, (40n + BigInt(n) * 17n) * 10n ** 18n + 250n * 10n ** 15n],
    } as never)
    await publicClient.waitForTransactionReceipt({ hash: minted })
    odometers.set(vehicle, 12_000 + n * 8_731.4)
    errands.set(vehicle, 0)
    cars.push({
      vehicle,
      vin,
      ownerIndex,
      chain: createEventChain({ vehicle }),
      sign: (message) => pki.store.signDigest(issued.keyRef, createHash('sha256').update(message).digest()),
    })
  }
  const drive = async (car: FleetCar, nowMs = Date.now()) => {
    const i = errands.get(car.vehicle)! + 1
    errands.set(car.vehicle, i)
    const steps = errand(odometers.get(car.vehicle)!, i)
    const km = steps.find((s) => s.kind === 'odometer')!.data.km as number
    odometers.set(car.vehicle, km)
    // Spread over the last minutes, never before the car's previous event (times only grow).
    const startMs = Math.max(nowMs - (steps.length - 1) * 95_000, (lastTimes.get(car.vehicle) ?? 0) + 1000)
    const stepMs = Math.max(1, Math.min(95_000, (nowMs - startMs) / (steps.length - 1)))
    const events = steps.map((step, j) =>
      car.chain.append({ kind: step.kind, time: Math.round(startMs + j * stepMs), data: step.data as never }),
    )
    lastTimes.set(car.vehicle, events[events.length - 1]!.envelope.time)
    await post(
      `${info.url}/v1/vehicles/${car.vehicle}/events`,
      await createBatch({ events, signer: { sign: car.sign } }),
    )
  }
  for (const [n, car] of cars.entries()) await drive(car, Date.now() - (count - n) * 40_000)
  return { cars, drive, cleanup: () => pki.cleanup() }
}

/**
 * `seller` sells `vehicle`'s title to `buyer` on chain (VehicleRegistry `transferFrom`) and waits
 * for it; answers the sale's block and its timestamp in milliseconds (the title periods' boundary).
 */
export async function sellVehicle(
  info: NodeInfo,
  sale: { seller: LocalAccount; buyer: Address; vehicle: string },
): Promise<{ blockNumber: bigint; timeMs: number }> {
  const { walletClient, publicClient } = await connectChain({
    rpcUrl: info.chain.rpcUrl,
    account: sale.seller,
  })
  const hash = await walletClient.writeContract({
    address: info.chain.contracts.VehicleRegistry as Address,
    abi: vehicleRegistryAbi,
    functionName: 'transferFrom',
    args: [sale.seller.address, sale.buyer, BigInt(sale.vehicle)],
  })
  const { blockNumber } = await publicClient.waitForTransactionReceipt({ hash })
  const block = await publicClient.getBlock({ blockNumber })
  return { blockNumber, timeMs: Number(block.timestamp) * 1000 }
}
