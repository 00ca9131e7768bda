import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { startAnvil } from '../src/chain/anvil.ts'
import { connectChain, developmentAccount } from '../src/chain/clients.ts'
import { deployContracts, deploymentPath } from '../src/chain/deploy.ts'
import { vehicleRegistryAbi } from '../src/chain/generated/index.ts'
import type { BaseError } from '../src/errors.ts'
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

test('a recorded deployment is reused only when it is of these contracts: else DEPLOYMENT_OUTDATED', async () => {
  const anvil = await startAnvil()
  const dataDir = mkdtempSync(join(tmpdir(), 'carchain-deploy-'))
  try {
    const clients = await connectChain({ rpcUrl: anvil.rpcUrl, account: developmentAccount(0) })
    const first = await deployContracts({ clients, dataDir })
    assert.equal(first.deployedNow, true)
    assert.equal(
      first.deployment.contracts.KeyRegistry.address,
      first.deployment.contracts.VehicleRegistry.address,
    )
    const again = await deployContracts({ clients, dataDir })
    assert.equal(again.deployedNow, false)
    assert.deepEqual(again.deployment, first.deployment)

    // A record written by another version: one contract's code differs, or no code hashes at all.
    const path = deploymentPath(dataDir, clients.chain.id)
    const changed = structuredClone(first.deployment)
    changed.contracts.ChargingChannels.codeHash = `0x${'00'.repeat(32)}`
    writeFileSync(path, JSON.stringify(changed))
    await assert.rejects(deployContracts({ clients, dataDir }), (error: BaseError) => {
      assert.equal(error.code, 'DEPLOYMENT_OUTDATED')
      assert.deepEqual(error.details?.outdated, ['ChargingChannels'])
      return true
    })
    const legacy = structuredClone(first.deployment)
    for (const contract of Object.values(legacy.contracts)) delete contract.codeHash
    writeFileSync(path, JSON.stringify(legacy))
    await assert.rejects(deployContracts({ clients, dataDir }), { code: 'DEPLOYMENT_OUTDATED' })
    assert.deepEqual(JSON.parse(readFileSync(path, 'utf8')), legacy, 'the record is left as it was')
  } finally {
    await anvil.stop()
    rmSync(dataDir, { recursive: true, force: true })
  }
})
