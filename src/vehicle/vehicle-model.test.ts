import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Scope } from '../keys/typed-data.ts'
import { VehicleModel } from './vehicle-model.ts'

test('each action names its event kind and says whether it changed anything', () => {
  const model = new VehicleModel()
  assert.deepEqual(
    [Scope.UNLOCK, Scope.UNLOCK, Scope.OPEN_TRUNK, Scope.LOCK, Scope.START, Scope.OPEN_CHARGE_PORT].map(
      (action) => {
        const { kind, changed } = model.apply(action)
        return [kind, changed]
      },
    ),
    [
      ['door.unlocked', true],
      ['door.unlocked', false],
      ['trunk.opened', true],
      ['door.locked', true],
      ['trip.started', true],
      ['charging.started', true],
    ],
  )
  assert.deepEqual(model.status(), {
    locked: true,
    trunkOpen: false,
    engineOn: true,
    chargePortOpen: true,
    odometerKm: 0,
  })
})
