/**
 * The demo fleet as `npm start` runs it (two cars, to keep the test short): certified cars on
 * chain, owners from the development mnemonic, every car's link reachable, trips uploaded and
 * anchored, the parcel, rental, charging (claimed on chain, at each charger's own tariff) and
 * parking flows done, every car's timeline a valid run of its trip state machine — and a restart
 * goes on with the same cars.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { developmentAccount } from '../src/chain/clients.ts'
import { vehicleRegistryAbi } from '../src/chain/generated/index.ts'
import { loadConfig } from '../src/config.ts'
import { parseCertificate } from '../src/identity/certificate.ts'
import type { EventKind } from '../src/ledger/envelope.ts'
import { sessionCost } from '../src/payments/pricing.ts'
import { CAR_MODELS, DEMO_CHARGERS } from '../src/sim/battery.ts'
import { type RunningSystem, startSystem } from '../src/sim/system.ts'
import { timelineViolations } from '../src/sim/trips.ts'

const dataDir = mkdtempSync(join(tmpdir(), 'carchain-sim-'))
after(() => rmSync(dataDir, { recursive: true, force: true }))

const start = () =>
  startSystem({
    config: loadConfig({
      flags: { data: dataDir, port: 0, vehicles: 2 },
      env: { CARCHAIN_ANCHOR_INTERVAL_MS: '2000' },
    }),
  })

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 500))
  }
}

const json = async (node: RunningSystem, path: string) => (await fetch(`${node.url}${path}`)).json()

let firstVehicles: { vehicle: string }[] = []

/** A car's whole timeline at the node, oldest first (the API pages newest first). */
async function timeline(node: RunningSystem, vehicle: string): Promise<EventKind[]> {
  const kinds: EventKind[] = []
  let before: number | undefined
  for (;;) {
    const page = `/v1/vehicles/${vehicle}/events?limit=500${before === undefined ? '' : `&before=${before}`}`
    const { events } = (await json(node, page)) as { events: { seq: number; kind: EventKind }[] }
    for (const event of events) kinds.push(event.kind)
    if (events.length < 500) return kinds.reverse()
    before = events.at(-1)!.seq
  }
}

/** Every car's timeline is a run of the trip state machine; answers them. */
async function checkTimelines(node: RunningSystem, vehicles: { vehicle: string }[]) {
  const timelines = []
  for (const v of vehicles) {
    const kinds = await timeline(node, v.vehicle)
    assert.deepEqual(timelineViolations(kinds), [], `${v.vehicle}: ${kinds.join(' ')}`)
    timelines.push(kinds)
  }
  return timelines
}

test('the fleet runs every flow, uploads and anchors', async () => {
  const node = await start()
  try {
    const vehicles = await json(node, '/v1/sim/vehicles')
    assert.equal(vehicles.length, 2)
    for (const v of vehicles) {
      assert.match(v.vehicle, /^0x[0-9a-fA-F]{40}$/)
      assert.match(v.vin, /^[A-HJ-NPR-Z0-9]{17}$/)
      assert.equal(v.owner, developmentAccount(v.ownerIndex).address)
      assert.match(v.link, /^ws:\/\/127\.0\.0\.1:\d+$/)
      // its battery: one of the demo models, charged 0–100 %
      assert.ok(
        CAR_MODELS.some((m) => m.name === v.battery.model && m.capacityWh === v.battery.capacityKWh * 1000),
      )
      assert.ok(v.battery.socPct >= 0 && v.battery.socPct <= 100, `${v.battery.socPct} %`)
      assert.match(v.battery.state, /^(parked|driving|charging)$/)
    }
    firstVehicles = vehicles
    // Every car authenticated its ECUs at start-up.
    for (const v of vehicles)
      assert.deepEqual(node.fleet!.components.get(v.vehicle), {
        accepted: ['gateway', 'bms', 'telematics'],
        rejected: [],
      })
    const activity = await waitFor('parcel, rental, a trip, charging and parking', async () => {
      const a = await json(node, '/v1/sim/activity')
      return a.counts.parcel && a.counts.rental && a.counts.trip && a.counts.charging && a.counts.parking
        ? a
        : undefined
    })
    // Each car's own view: the vehicle model its keys act on (its odometer resumed from the
    // ledger's readings, ≥ 1,000 km in the demo) and its chain cache, online and synced.
    for (const v of vehicles) {
      const car = await json(node, `/v1/sim/vehicles/${v.vehicle.toLowerCase()}`)
      assert.equal(car.vehicle, v.vehicle)
      assert.equal(car.link, v.link)
      for (const part of ['locked', 'trunkOpen', 'engineOn', 'chargePortOpen'])
        assert.equal(typeof car.model[part], 'boolean', part)
      assert.ok(car.model.odometerKm >= 1000, `odometer ${car.model.odometerKm}`)
      assert.equal(car.chain.online, true)
      assert.ok(Number.isSafeInteger(car.chain.cursor) && car.chain.cursor > 0)
    }
    const unknown = await fetch(`${node.url}/v1/sim/vehicles/0x${'ab'.repeat(20)}`)
    assert.equal(unknown.status, 404)
    assert.equal((await unknown.json()).code, 'NOT_FOUND')
    const parcel = activity.last.find((e: { flow: string }) => e.flow === 'parcel')
    assert.match(parcel.detail, /trunk OK, second use GRANT_USED_UP/)
    const rental = activity.last.find((e: { flow: string }) => e.flow === 'rental')
    assert.match(rental.detail, /renter unlock OK, lock OK/)
    // The charging session was paid over a channel and the station claimed it on chain.
    const claimed = await waitFor('a charging session claimed on chain', async () => {
      const { sessions } = await json(node, '/v1/charging/sessions')
      return sessions.find((x: { code: string; claimed: boolean }) => x.code === 'OK' && x.claimed)
    })
    assert.ok(claimed.energyWh > 1000, `${claimed.energyWh} Wh: a car charges when low`)
    // Each session paid its charger's own tariff × its energy, to the base unit.
    const { sessions } = await json(node, '/v1/charging/sessions')
    for (const session of sessions.filter((x: { code: string }) => x.code === 'OK')) {
      const spec = DEMO_CHARGERS[Number(session.evseId.slice(-5)) - 1]!
      assert.equal(BigInt(session.pricePerKWh), spec.pricePerKWh, session.evseId)
      assert.equal(BigInt(session.sessionFee), spec.sessionFee, session.evseId)
      assert.equal(BigInt(session.amount), sessionCost(spec, BigInt(session.energyWh)), session.evseId)
    }
    const line = activity.last.find((e: { flow: string }) => e.flow === 'charging')
    assert.match(
      line.detail,
      /kWh at DE\*CCH\*E0000\d \((AC|DC) \d+ kW\).* % → \d+ % in \d+ min, [\d.]+ kW average/,
    )
    const checkpoint = await waitFor('an anchor', async () => {
      const c = await json(node, '/v1/log/checkpoint')
      return c.anchored && c.anchored.treeSize > 0 ? c : undefined
    })
    assert.ok(checkpoint.treeSize >= checkpoint.anchored.treeSize)
    // Uploads trail the car by up to a second: wait until every flow reached the node.
    const wanted = [
      'access.used',
      'access.denied',
      'door.unlocked',
      'trunk.opened',
      'trip.started',
      'telemetry',
      'odometer',
    ]
    await waitFor(`events of kinds ${wanted.join(', ')}`, async () => {
      const { events } = await json(node, `/v1/vehicles/${vehicles[0].vehicle}/events?limit=500`)
      const kinds = new Set(events.map((e: { kind: string }) => e.kind))
      return wanted.every((kind) => kinds.has(kind)) ? true : undefined
    })
    // Never two trips at once, never a trip while charging, on any car.
    const timelines = await checkTimelines(node, vehicles)
    assert.ok(timelines.some((kinds) => kinds.includes('charging.ended')))
    // Revoke car 1's battery controller on chain: the next start must refuse it.
    const state = JSON.parse(readFileSync(join(dataDir, 'fleet', 'fleet.json'), 'utf8'))
    const bms = state.vehicles[0].components.find((c: { name: string }) => c.name === 'bms')
    const hash = await node.clients.walletClient.writeContract({
      address: node.context.contracts.VehicleRegistry,
      abi: vehicleRegistryAbi,
      functionName: 'revokeCertificate',
      args: [`0x${parseCertificate(readFileSync(bms.cert, 'utf8')).fingerprint}`],
    })
    await node.clients.publicClient.waitForTransactionReceipt({ hash })
  } finally {
    await node.stop()
  }
})

test('a restart carries on with the same cars and their chains; a revoked ECU is refused', async () => {
  const node = await start()
  try {
    assert.deepEqual(node.fleet!.components.get(firstVehicles[0]!.vehicle as `0x${string}`)?.rejected, [
      { name: 'bms', reason: 'CERT_REVOKED' },
    ])
    const vehicles = await json(node, '/v1/sim/vehicles')
    assert.deepEqual(
      vehicles.map((v: { vehicle: string }) => v.vehicle),
      firstVehicles.map((v) => v.vehicle),
    )
    const before = (await json(node, `/v1/vehicles/${vehicles[0].vehicle}`)).events
    await waitFor('new events after the restart', async () => {
      const now = (await json(node, `/v1/vehicles/${vehicles[0].vehicle}`)).events
      return now > before ? now : undefined
    })
    // The stop ended every trip and session: the timelines go on as valid runs.
    await checkTimelines(node, vehicles)
  } finally {
    await node.stop()
  }
})
