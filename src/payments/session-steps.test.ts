/**
 * The car's session ends with a `stop` to the charger whatever step fails (issue 19 #17), and a
 * stop that cannot be sent is logged, not swallowed.
 */
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { BaseError } from '../errors.ts'
import { captureLogs } from '../log.ts'
import { aChargingWorld, type ChargingWorld } from './payments.testkit.ts'
import { runChargingSession } from './session.ts'
import { type MessageTransport, memoryTransportPair } from './transport.ts'

let world: ChargingWorld
before(async () => {
  world = await aChargingWorld()
})
after(async () => {
  await world?.stop()
})

/** The car's side of a session of `car` on `transport`. */
const carSession = (car: Awaited<ReturnType<ChargingWorld['aCar']>>, transport: MessageTransport) =>
  runChargingSession({
    transport,
    wallet: car.wallet,
    clients: car.clients,
    contracts: { channels: world.domain.verifyingContract },
  })

const rejectedWith = (code: string) => (error: unknown) => {
  assert.ok(error instanceof BaseError, String(error))
  assert.equal(error.code, code, error.shortMessage)
  return true
}

test('a failure recording charging.started still sends the stop message to the station', async () => {
  const { station } = await world.aCharger()
  const car = await world.aCar({
    record: async (kind) => {
      if (kind === 'charging.started')
        throw new BaseError('DB_UNREACHABLE', 'the ledger store does not answer')
      return kind
    },
  })
  const [carSide, chargerSide] = memoryTransportPair()
  const [result, served] = await Promise.allSettled([carSession(car, carSide), station.serve(chargerSide)])
  assert.equal(result.status, 'rejected')
  rejectedWith('DB_UNREACHABLE')(result.reason)
  assert.equal(served.status, 'fulfilled')
  // The station ended on the car's stop, with its code, not on a timeout.
  assert.equal(served.value.code, 'DB_UNREACHABLE')
  assert.equal(served.value.vouchers, 0)
})

test('a stop that cannot be sent is logged with the session’s code', async () => {
  const { station } = await world.aCharger({ tariff: { pricePerKWh: 10n ** 19n } }) // above the policy
  const car = await world.aCar()
  const [carSide, chargerSide] = memoryTransportPair()
  // The link fails just as the car stops (a fault a healthy pair cannot produce on demand).
  const failingStop: MessageTransport = {
    ...carSide,
    receive: (timeoutMs) => carSide.receive(timeoutMs),
    close: () => carSide.close(),
    send: (message) =>
      message.type === 'stop'
        ? Promise.reject(new BaseError('PEER_CLOSED', 'the connection is closed'))
        : carSide.send(message),
  }
  const logs = captureLogs()
  try {
    const [result] = await Promise.allSettled([carSession(car, failingStop), station.serve(chargerSide)])
    assert.equal(result.status, 'rejected')
    rejectedWith('POLICY_DENIED')(result.reason)
  } finally {
    logs.restore()
  }
  const logged = logs.records.filter((r) => r.component === 'payments.session')
  assert.equal(logged.length, 1, JSON.stringify(logs.records))
  assert.equal(logged[0]?.code, 'POLICY_DENIED')
  assert.match(logged[0]?.err?.message ?? '', /connection is closed/)
})
