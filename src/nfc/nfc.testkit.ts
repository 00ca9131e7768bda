/**
 * NFC test and bench helpers: a car of a charging world's test OEM with the wallet applet its
 * card runs (the vehicle certificate binds the car's wallet key).
 */
import type { ChargingWorld } from '../payments/payments.testkit.ts'
import { createWalletApplet } from './applet.ts'

/** A vehicle of the test OEM, its car (wallet) and the applet that answers for both. */
export async function aCarWithApplet(
  world: ChargingWorld,
  options: Omit<NonNullable<Parameters<ChargingWorld['aCar']>[0]>, 'walletRef'> = {},
) {
  const vehicle = await world.pki.aVehicle()
  const car = await world.aCar({ ...options, walletRef: vehicle.walletRef })
  const applet = createWalletApplet({
    identity: {
      store: world.pki.store,
      keyRef: vehicle.keyRef,
      certificate: vehicle.cert.der,
      chain: [world.pki.oem.sub.der],
    },
    wallet: car.wallet,
    publicClient: world.chain.clients.publicClient,
  })
  return { vehicle, car, applet }
}
