import assert from 'node:assert/strict'
import { test } from 'node:test'
import { vehicleRegistryAbi } from '../src/chain/generated/index.ts'
import { startTestChain } from './chain.ts'

test('the chain fixture deploys every contract, wired together', async () => {
  const chain = await startTestChain()
  try {
    const { publicClient } = chain.clients
    for (const [name, contract] of Object.entries(chain.deployment.contracts)) {
      const code = await publicClient.getCode({ address: contract.address })
      assert.ok(code && code.length > 2, `${name} has no code`)
    }
    const owner = await publicClient.readContract({
      address: chain.deployment.contracts.VehicleRegistry.address,
      abi: vehicleRegistryAbi,
      functionName: 'owner',
    })
    assert.equal(owner, chain.clients.account.address)
    const renter = await chain.as(3)
    assert.notEqual(renter.account.address, chain.clients.account.address)
  } finally {
    await chain.stop()
  }
})
