import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { aChargingWorld, type ChargingWorld } from './payments.testkit.ts'
import { runChargingSession } from './session.ts'

let world: ChargingWorld
before(async () => {
  world = await aChargingWorld()
})
after(async () => {
  await world?.stop()
})

test('a session over mutual TLS 1.3: the offered certificate is the TLS peer’s', async () => {
  const charger = await world.aCharger()
  const vehicle = await world.pki.aVehicle()
  const car = await world.aCar({ walletRef: vehicle.walletRef })
  const { server, served, port } = await world.listen(charger)
  try {
    const result = await runChargingSession({
      transport: await world.connectAs(vehicle, port),
      wallet: car.wallet,
      clients: car.clients,
      contracts: { channels: world.domain.verifyingContract },
      stopAtWh: 2000,
    })
    assert.equal(result.evseId, charger.evseId)
    assert.ok(result.amount > 0n)
    const [stationSession] = await Promise.all(served)
    assert.equal(stationSession?.code, 'OK')
    assert.equal(stationSession?.cumulativeAmount, result.cumulativeAmount)
  } finally {
    server.close()
  }
})
