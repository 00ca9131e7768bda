import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import { after, before, test } from 'node:test'
import { connectIdentity, createIdentityServer } from '../identity/tls.ts'
import type { StationSession } from '../station/station.ts'
import { aChargingWorld, type ChargingWorld } from './payments.testkit.ts'
import { runChargingSession } from './session.ts'
import { tlsTransport } from './transport.ts'

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
  const car = await world.aCar()
  const served: Promise<StationSession>[] = []
  const server = await createIdentityServer(
    {
      identity: {
        store: world.pki.store,
        keyRef: charger.keyRef,
        certificate: charger.cert.der,
        chain: [world.pki.cpo.sub.der],
      },
      peer: { role: 'vehicle', trustAnchors: { oem: [world.pki.oem.root.der] } },
    },
    (session) => served.push(charger.station.serve(tlsTransport(session))),
  )
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  try {
    const session = await connectIdentity({
      identity: {
        store: world.pki.store,
        keyRef: vehicle.keyRef,
        certificate: vehicle.cert.der,
        chain: [world.pki.oem.sub.der],
      },
      peer: { role: 'charger', trustAnchors: { cpo: [world.pki.cpo.root.der] } },
      host: '127.0.0.1',
      port: (server.address() as AddressInfo).port,
    })
    const result = await runChargingSession({
      transport: tlsTransport(session),
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
