/**
 * The demo fleet behind `npm start`: certified cars registered on chain, each a full in-car agent
 * (key store, offline key checks over its link, crash-safe ledger uploading to the node), driven
 * by a scenario that exercises every flow within the first minute. Owners, the parcel agent and
 * the renter are accounts of the development mnemonic, so any wallet or `cast` can join in.
 *
 * Everything lives in `<data>/fleet` and `<data>/pki`: a restart finds its cars, keys and ledgers
 * again and goes on where they stopped.
 *
 * Demo shortcuts, all documented in docs/simulator.md: one software key store holds every car's
 * keys (a real car's live in its own secure element); the operator (development account 0) is
 * the OEM, the CPO and the token's minter.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { type Address, formatUnits, getAddress, keccak256, parseEther, parseUnits, stringToBytes } from 'viem'
import { developmentAccount } from '../chain/clients.ts'
import { demoTokenAbi, vehicleRegistryAbi } from '../chain/generated/index.ts'
import { BaseError } from '../errors.ts'
import { writeFileAtomic } from '../fs-atomic.ts'
import { parseCertificate } from '../identity/certificate.ts'
import { answerComponentChallenge, authenticateComponents } from '../identity/components.ts'
import { DEV_PASSPHRASE, PkiDirectory } from '../identity/pki-directory.ts'
import { registryRevocation } from '../identity/registry-revocation.ts'
import { SoftwareKeyStore } from '../identity/software-keystore.ts'
import type { NodeContext } from '../node/context.ts'
import { connectMqtt } from '../node/mqtt.ts'
import { registerVehicle } from '../node/vehicle-routes.ts'
import type { StationSession } from '../station/station.ts'
import type { VoucherBook } from '../station/vouchers.ts'
import { VehicleAgent } from '../vehicle/agent.ts'
import {
  httpBatchTransport,
  keyStoreP256Signer,
  mqttBatchTransport,
  VehicleLedger,
} from '../vehicle/ledger.ts'
import { type ChargerBay, Connector, DEMO_CHARGERS } from './battery.ts'
import {
  carWallet,
  chargeCar,
  DEMO_CHANNEL_DEPOSIT,
  PARKING_INDEX,
  payParking,
  pemDer,
  startChargePoints,
} from './charging.ts'
import { mountLinkRelay } from './link-relay.ts'
import { type NfcDemo, startNfcDemo } from './nfc.ts'
import { type BatteryStatus, runScenario, type ScenarioPayments, type SimActivity } from './scenario.ts'

/** The demo keystore's KDF: its passphrase is public anyway, so start-up stays quick. */
const DEMO_SCRYPT = { n: 2 ** 12, r: 8, p: 1 }
/** Demo owners are development accounts 1..OWNER_COUNT (the courier and renter: scenario.ts). */
export const OWNER_COUNT = 5

/** The ECUs each demo car carries, each with its own component certificate. */
export const DEMO_COMPONENTS = ['gateway', 'bms', 'telematics'] as const

export type FleetVehicleRecord = {
  vin: string
  vehicle: Address
  ownerIndex: number
  identityKey: string
  walletKey: string
  cert: string
  chain: string
  /** Its ECUs: name, certificate path, key reference (issued once). */
  components?: { name: string; cert: string; key: string }[]
}
export type ComponentCheck = { accepted: string[]; rejected: { name: string; reason: string }[] }
type FleetState = { version: 1; vehicles: FleetVehicleRecord[] }

export type SimVehicle = {
  vehicle: Address
  vin: string
  owner: Address
  ownerIndex: number
  link: string
  /** Its battery and whether it is parked, driving or charging (absent without the scenario). */
  battery?: BatteryStatus
}

export type Fleet = {
  readonly vehicles: () => SimVehicle[]
  /** The demo chargers' sessions, newest first (`GET /v1/charging/sessions`). */
  chargingSessions(): StationSession[]
  /** The CPO's voucher book: which sessions are claimed on chain. */
  readonly chargingBook: VoucherBook
  readonly agents: ReadonlyMap<Address, VehicleAgent>
  /** Each car's ECU check at start-up. */
  readonly components: ReadonlyMap<Address, ComponentCheck>
  readonly activity: SimActivity
  stop(): Promise<void>
}

export type StartFleetParameters = {
  context: NodeContext
  nodeUrl: string
  /** Upload over this MQTT broker instead of HTTP. */
  mqttUrl?: string | undefined
  /** An external OCPP CSMS for the chargers; default the node's own (docs/ocpp.md). */
  csmsUrl?: string | undefined
  dataDir: string
  vehicles: number
  progress?: (message: string) => void
  /** Run the scenario loop (default true); tests drive flows themselves. */
  scenario?: boolean
}

/** A VIN that passes ISO 3779 checks: a fixed WMI/VDS and the car's number. */
export function demoVin(index: number): string {
  return `WCC0DEM0${String(index).padStart(9, '0')}`
}

/**
 * Starts the demo fleet in steps: the PKI the registry trusts, the fleet's records (certificates
 * issued once), titles on chain, each car's agent, the chargers and the scenario.
 */
export async function startFleet(parameters: StartFleetParameters): Promise<Fleet> {
  const { context, dataDir, progress = () => {} } = parameters
  const fleetDir = join(dataDir, 'fleet')
  const pkiDir = join(dataDir, 'pki')
  mkdirSync(fleetDir, { recursive: true })

  const pki = await openDemoPki(context, pkiDir, progress)
  const records = await loadFleetRecords(context, pki, pkiDir, fleetDir, parameters.vehicles)
  progress(`registering ${records.length} vehicles on chain`)
  await registerOnChain(context, records)

  const store = keyStore(pkiDir)
  const cars = new Map<Address, StartedCar>()
  for (const record of records) cars.set(record.vehicle, await startCar(parameters, record, store, pkiDir))
  const agents = new Map([...cars].map(([vehicle, car]) => [vehicle, car.agent]))
  const components = new Map([...cars].map(([vehicle, car]) => [vehicle, car.components]))
  progress(`${agents.size} vehicles running`)

  const bays = DEMO_CHARGERS.map((spec) => ({ spec, connector: new Connector() }))
  const chargePoints = await startChargePoints({
    context,
    pki,
    pkiDir,
    store,
    dataDir,
    bays,
    csmsUrl: parameters.csmsUrl ?? `${parameters.nodeUrl.replace(/^http/, 'ws')}/ocpp`,
    ownCsms: parameters.csmsUrl === undefined,
  })
  progress(`${chargePoints.chargers.length} chargers running`)
  const nfc = await startNfcDemo({ context, store })
  progress(nfc.on ? nfc.description : `NFC off: ${nfc.reason}`)
  const payments = demoPayments({
    context,
    records,
    agents,
    store,
    pkiDir,
    fleetDir,
    chargePoints,
    bays,
    nfc,
  })

  const vehicles = (): SimVehicle[] =>
    records.map((r) => ({
      vehicle: r.vehicle,
      vin: r.vin,
      owner: developmentAccount(r.ownerIndex).address,
      ownerIndex: r.ownerIndex,
      link: agents.get(r.vehicle)!.link.url,
    }))

  const scenario =
    parameters.scenario === false
      ? undefined
      : runScenario({
          context,
          vehicles,
          agents,
          payments,
          bays,
          progress,
          carPath: (car) => join(fleetDir, car.vin, 'car.json'),
        })
  return {
    vehicles: () =>
      vehicles().map((v) => {
        const battery = scenario?.battery(v.vehicle)
        return battery ? { ...v, battery } : v
      }),
    agents,
    components,
    chargingBook: chargePoints.book,
    chargingSessions: () =>
      chargePoints.chargers
        .flatMap((c) => c.station.sessions())
        .sort((a, b) => b.startedAtMs - a.startedAtMs),
    activity: scenario?.activity ?? { counts: {}, last: [] },
    async stop() {
      await scenario?.stop()
      await chargePoints.stop()
      await nfc.stop()
      for (const agent of agents.values()) await agent.stop()
      await store.close()
      await pki.close()
    },
  }
}

/** The demo OEM and CPO hierarchies (created on first start), trusted by the registry. */
async function openDemoPki(
  context: NodeContext,
  pkiDir: string,
  progress: (message: string) => void,
): Promise<PkiDirectory> {
  const pki = new PkiDirectory({ dir: pkiDir, passphrase: DEV_PASSPHRASE, scrypt: DEMO_SCRYPT })
  if (!existsSync(join(pkiDir, 'pki.json'))) {
    progress('creating the demo OEM and CPO certificate hierarchies')
    await pki.init()
  }
  await trustPki(context, pkiDir)
  return pki
}

/**
 * The fleet's records from `fleet/fleet.json`, grown to `count` cars: each new car's certificate,
 * wallet and ECU certificates are issued once and written at once, so a restart finds them.
 */
async function loadFleetRecords(
  context: NodeContext,
  pki: PkiDirectory,
  pkiDir: string,
  fleetDir: string,
  count: number,
): Promise<FleetVehicleRecord[]> {
  const statePath = join(fleetDir, 'fleet.json')
  const state: FleetState = existsSync(statePath)
    ? JSON.parse(readFileSync(statePath, 'utf8'))
    : { version: 1, vehicles: [] }
  for (let i = state.vehicles.length; i < count; i++) {
    const vin = demoVin(i + 1)
    const issued = await pki.issueVehicle({ vin, chainId: context.clients.chain.id })
    const walletKey = `${issued.key}-wallet` // PkiDirectory's label for the car's wallet key
    const store = keyStore(pkiDir)
    const vehicle = getAddress(await store.ethereumAddress(walletKey))
    state.vehicles.push({
      vin,
      vehicle,
      ownerIndex: 1 + (i % OWNER_COUNT),
      identityKey: issued.key,
      walletKey,
      cert: issued.cert,
      chain: issued.chain,
    })
    writeFileAtomic(statePath, `${JSON.stringify(state, null, 2)}\n`)
  }
  for (const record of state.vehicles) {
    if (record.components) continue
    record.components = []
    for (const name of DEMO_COMPONENTS) {
      const issued = await pki.issueComponent({ vin: record.vin, name })
      record.components.push({ name, cert: issued.cert, key: issued.key })
    }
    writeFileAtomic(statePath, `${JSON.stringify(state, null, 2)}\n`)
  }
  return state.vehicles.slice(0, count)
}

type StartedCar = { agent: VehicleAgent; components: ComponentCheck }

/**
 * One car: registered with the node by its certificate, its ledger uploading over HTTP or MQTT,
 * its agent (keys, link) started and its ECUs checked.
 */
async function startCar(
  parameters: StartFleetParameters,
  record: FleetVehicleRecord,
  store: SoftwareKeyStore,
  pkiDir: string,
): Promise<StartedCar> {
  const { context, progress = () => {} } = parameters
  const { clients } = context
  const roots = [join(pkiDir, 'subca', 'oem.pem'), join(pkiDir, 'roots', 'oem.pem')].map((p) =>
    readFileSync(p, 'utf8'),
  )
  await registerVehicle(context, { certificate: readFileSync(record.cert, 'utf8'), chain: roots })
  const dir = join(parameters.dataDir, 'fleet', record.vin)
  const ledger = await VehicleLedger.open({
    vehicle: record.vehicle,
    dir,
    signer: keyStoreP256Signer(store, record.identityKey),
    transport: parameters.mqttUrl
      ? await mqttBatchTransport(
          await connectMqtt(parameters.mqttUrl, `carchain-car-${record.vehicle}`),
          record.vehicle,
          clients.account.address,
        )
      : httpBatchTransport(parameters.nodeUrl, clients.account.address),
    onUploadError: (error) => progress(`${record.vin}: upload failed (${error.code}); retrying`),
  })
  const agent = await VehicleAgent.create({
    dir,
    keys: { store, identityKey: record.identityKey, walletKey: record.walletKey },
    chain: {
      client: clients.publicClient,
      chainId: clients.chain.id,
      vehicleRegistry: context.contracts.VehicleRegistry,
      keyRegistry: context.contracts.KeyRegistry,
    },
    recorder: ledger,
    link: { host: '127.0.0.1', port: 0 },
    plugins: [ledger],
  })
  agent.onNotice((notice) => context.events.publish('access', { ...notice, notice: true }))
  agent.link.onAttempt((attempt) =>
    context.events.publish('access', { vehicle: record.vehicle, ...(attempt as object) }),
  )
  await agent.start()
  const components = await authenticateEcus(context, record, store, pkiDir, ledger, progress)
  return { agent, components }
}

/** The scenario's payments: charging at the demo chargers and paying for parking, per car. */
function demoPayments(parameters: {
  context: NodeContext
  records: FleetVehicleRecord[]
  agents: ReadonlyMap<Address, VehicleAgent>
  store: SoftwareKeyStore
  pkiDir: string
  fleetDir: string
  chargePoints: Awaited<ReturnType<typeof startChargePoints>>
  bays: readonly ChargerBay[]
  nfc: NfcDemo
}): ScenarioPayments {
  const { context, records, agents, store, pkiDir, fleetDir, chargePoints, bays, nfc } = parameters
  const wallets = new Map(
    records.map((r) => [
      r.vehicle,
      carWallet(context, agents.get(r.vehicle)!, join(fleetDir, r.vin), pkiDir),
    ]),
  )
  const oemSubCa = pemDer(join(pkiDir, 'subca', 'oem.pem'))
  /** The car as a contactless card: its wallet and its certificate's key (docs/nfc.md). */
  const card = (record: FleetVehicleRecord) => ({
    wallet: wallets.get(record.vehicle)!.wallet,
    identity: { store, keyRef: record.identityKey, certificate: pemDer(record.cert), chain: [oemSubCa] },
  })
  let charges = 0
  let topUps = Promise.resolve()
  return {
    async charge(car, bay, energyWh, signal) {
      const record = records.find((r) => r.vehicle === car.vehicle)!
      const charger = chargePoints.chargers[bay]!
      // one mint at a time: they all send from the operator's account
      topUps = topUps.then(() => topUp(context, car.vehicle))
      await topUps
      // every other session by tap at the charger's contactless reader, the first over OCPP/TLS
      const { kind, maxPowerW, pricePerKWh, sessionFee } = charger.spec
      const at = `at ${charger.evseId} (${kind} ${maxPowerW / 1000} kW)`
      if (nfc.on && charges++ % 2 === 1) {
        const amount = await nfc.charge(
          card(record),
          { evseId: charger.evseId, pricePerKWh, sessionFee },
          energyWh,
        )
        bays[bay]!.connector.metered(energyWh) // the tap pays the whole session's energy at once
        return `${energyWh / 1000} kWh ${at} by tap, ${formatUnits(amount, 18)} cEUR`
      }
      const result = await chargeCar({
        agent: agents.get(car.vehicle)!,
        identity: { store, keyRef: record.identityKey, certificate: pemDer(record.cert), chain: [oemSubCa] },
        charger,
        wallet: wallets.get(car.vehicle)!,
        pkiDir,
        channels: context.contracts.ChargingChannels,
        energyWh,
        signal,
      })
      return `${Number(result.energyWh) / 1000} kWh ${at}, ${formatUnits(result.amount, 18)} cEUR (${result.channelAction} channel)`
    },
    async payParking(car) {
      const record = records.find((r) => r.vehicle === car.vehicle)!
      if (nfc.on) return nfc.payParking(card(record), PARKING_INDEX, parseUnits('2.5', 18), 'parking P3')
      const paid = await payParking(
        context,
        wallets.get(car.vehicle)!,
        developmentAccount(PARKING_INDEX).address,
        'parking P3',
      )
      return `2.5 cEUR to the parking operator, tx ${paid.txHash.slice(0, 10)}…`
    },
  }
}

/**
 * The owner tops up a car's wallet (1,000 demo tokens, minted by the operator) when it holds less
 * than two new channels' deposits, so a long demo never runs dry.
 */
async function topUp(context: NodeContext, vehicle: Address): Promise<void> {
  const { publicClient } = context.clients
  const balance = await publicClient.readContract({
    address: context.contracts.Token,
    abi: demoTokenAbi,
    functionName: 'balanceOf',
    args: [vehicle],
  })
  if (balance >= 2n * DEMO_CHANNEL_DEPOSIT) return
  await send(context, {
    address: context.contracts.Token,
    abi: demoTokenAbi,
    functionName: 'mint',
    args: [vehicle, parseUnits('1000', 18)],
  } as never)
}

/** `/v1/sim/*`: mounted before the fleet exists (the server starts first); empty until it does. */
export function simRoutes(fleet: () => Fleet | undefined) {
  return (app: FastifyInstance) => {
    // the key app's way to a demo car's link (src/sim/link-relay.ts)
    mountLinkRelay(app, (vehicle) => {
      const agent = fleet()?.agents.get(vehicle as Address)
      return agent ? agent.link.url : undefined
    })
    app.get(
      '/v1/sim/vehicles',
      {
        schema: {
          summary:
            'The demo fleet: each car, its owner (development mnemonic index), link and battery (model, state of charge, parked/driving/charging)',
        },
      },
      async () => fleet()?.vehicles() ?? [],
    )
    app.get(
      '/v1/sim/vehicles/:vehicle',
      {
        schema: {
          summary:
            'One demo car as it sees itself: its doors, trunk, engine, charge port and odometer (what granted keys act on) and its view of the chain',
          params: {
            type: 'object',
            properties: { vehicle: { type: 'string', pattern: '^0x[0-9a-fA-F]{40}$' } },
          },
        },
      },
      async (request) => {
        // the fleet's cars are keyed by checksummed address, as the listing writes them
        const vehicle = getAddress((request.params as { vehicle: string }).vehicle)
        const agent = fleet()?.agents.get(vehicle)
        if (!agent) throw new BaseError('NOT_FOUND', `no demo car ${vehicle} in this node's fleet`)
        const { chain, ...status } = agent.status()
        // the block cursor as a JSON number (block heights stay far below 2^53)
        return { ...status, vehicle, chain: { ...chain, cursor: Number(chain.cursor) } }
      },
    )
    app.get(
      '/v1/sim/activity',
      { schema: { summary: 'What the simulator did: counts per flow and the latest actions' } },
      async () => fleet()?.activity ?? { counts: {}, last: [] },
    )
  }
}

/**
 * At start-up the car challenges each of its ECUs to sign with its certified key; the result is
 * a ledger event, and every refused component an alert for the operator.
 */
async function authenticateEcus(
  context: NodeContext,
  record: FleetVehicleRecord,
  store: SoftwareKeyStore,
  pkiDir: string,
  ledger: VehicleLedger,
  progress: (message: string) => void,
): Promise<ComponentCheck> {
  const { reports } = await authenticateComponents({
    vin: record.vin,
    components: (record.components ?? []).map((component) => ({
      name: component.name,
      certificate: readFileSync(component.cert, 'utf8'),
      respond: (challenge) => answerComponentChallenge(store, component.key, challenge),
    })),
    trustAnchors: { oem: [pemDer(join(pkiDir, 'roots', 'oem.pem'))] },
    chain: [pemDer(join(pkiDir, 'subca', 'oem.pem'))],
    isRevoked: registryRevocation(context.clients.publicClient, context.contracts.VehicleRegistry),
  })
  const check: ComponentCheck = {
    accepted: reports.filter((r) => r.ok).map((r) => r.name),
    rejected: reports.flatMap((r) => (r.ok ? [] : [{ name: r.name, reason: r.reason }])),
  }
  await ledger.record('telemetry', { type: 'components', ...check })
  for (const report of reports) {
    if (report.ok) continue
    progress(`${record.vin}: component ${report.name} refused (${report.reason})`)
    context.events.publish('alert', {
      vehicle: record.vehicle,
      code: report.code,
      message: `${report.name}: ${report.message}`,
    })
  }
  return check
}

function keyStore(pkiDir: string): SoftwareKeyStore {
  return new SoftwareKeyStore({
    dir: join(pkiDir, 'keystore'),
    passphrase: DEV_PASSPHRASE,
    scrypt: DEMO_SCRYPT,
  })
}

async function send(
  context: NodeContext,
  request: Parameters<NodeContext['clients']['walletClient']['writeContract']>[0],
) {
  const hash = await context.clients.walletClient.writeContract(request)
  const receipt = await context.clients.publicClient.waitForTransactionReceipt({ hash })
  return receipt
}

/** The operator is the demo OEM and CPO; the registry trusts the demo roots. Idempotent. */
async function trustPki(context: NodeContext, pkiDir: string) {
  const { publicClient, account } = context.clients
  const registry = context.contracts.VehicleRegistry
  const read = <T>(functionName: string, args: readonly unknown[]) =>
    publicClient.readContract({
      address: registry,
      abi: vehicleRegistryAbi,
      functionName,
      args,
    } as never) as Promise<T>
  if (!(await read<boolean>('isOem', [account.address])))
    await send(context, {
      address: registry,
      abi: vehicleRegistryAbi,
      functionName: 'setOem',
      args: [account.address, true],
    } as never)
  if (!(await read<boolean>('isCpo', [account.address])))
    await send(context, {
      address: registry,
      abi: vehicleRegistryAbi,
      functionName: 'setCpo',
      args: [account.address, true],
    } as never)
  for (const [role, file] of [
    [0, 'oem.pem'],
    [1, 'cpo.pem'],
  ] as const) {
    const root = parseCertificate(pemDer(join(pkiDir, 'roots', file)))
    const fingerprint = `0x${root.fingerprint}` as const
    if (!(await read<boolean>('isTrustedRoot', [role, fingerprint])))
      await send(context, {
        address: registry,
        abi: vehicleRegistryAbi,
        functionName: 'setTrustedRoot',
        args: [role, fingerprint, true],
      } as never)
  }
}

/** Mints each car's title to its owner and funds its wallet (gas and demo tokens). Idempotent. */
async function registerOnChain(context: NodeContext, records: FleetVehicleRecord[]) {
  const { publicClient } = context.clients
  for (const record of records) {
    const registered = await publicClient.readContract({
      address: context.contracts.VehicleRegistry,
      abi: vehicleRegistryAbi,
      functionName: 'isRegistered',
      args: [record.vehicle],
    })
    if (registered) continue
    const cert = parseCertificate(readFileSync(record.cert, 'utf8'))
    const vinHash = keccak256(stringToBytes(record.vin))
    await send(context, {
      address: context.contracts.VehicleRegistry,
      abi: vehicleRegistryAbi,
      functionName: 'registerVehicle',
      args: [record.vehicle, developmentAccount(record.ownerIndex).address, `0x${cert.fingerprint}`, vinHash],
    } as never)
    const hash = await context.clients.walletClient.sendTransaction({
      to: record.vehicle,
      value: parseEther('10'),
    } as never)
    await publicClient.waitForTransactionReceipt({ hash })
    await send(context, {
      address: context.contracts.Token,
      abi: demoTokenAbi,
      functionName: 'mint',
      args: [record.vehicle, parseUnits('1000', 18)],
    } as never)
  }
}
