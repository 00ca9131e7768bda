/**
 * The chain fixture: a fresh embedded anvil with every Carchain contract deployed, for tests that
 * need the real chain. Each call starts its own anvil on a free port; `stop()` ends it.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Address } from 'viem'
import { type Anvil, startAnvil } from '../src/chain/anvil.ts'
import { type ChainClients, connectChain, developmentAccount } from '../src/chain/clients.ts'
import { type Deployment, deployContracts } from '../src/chain/deploy.ts'
import { vehicleRegistryAbi } from '../src/chain/generated/index.ts'

export type TestChain = {
  anvil: Anvil
  /** Clients whose account is the operator (development account 0: admin, deployer). */
  clients: ChainClients
  deployment: Deployment
  /** Clients acting as development account `index` (demo owners, renters, CPOs…). */
  as(index: number): Promise<ChainClients>
  /**
   * Registers `vehicle` with its title minted to `owner`, the operator acting as its OEM, with
   * placeholder certificate fingerprint and VIN hash (for tests about keys, not certificates).
   */
  registerVehicle(vehicle: Address, owner: Address): Promise<void>
  stop(): Promise<void>
}

export async function startTestChain(): Promise<TestChain> {
  const anvil = await startAnvil()
  const dataDir = mkdtempSync(join(tmpdir(), 'carchain-chain-'))
  try {
    const clients = await connectChain({ rpcUrl: anvil.rpcUrl, account: developmentAccount(0) })
    const { deployment } = await deployContracts({ clients, dataDir })
    return {
      anvil,
      clients,
      deployment,
      as: (index) => connectChain({ rpcUrl: anvil.rpcUrl, account: developmentAccount(index) }),
      async registerVehicle(vehicle, owner) {
        for (const [functionName, args] of [
          ['setOem', [clients.account.address, true]],
          ['registerVehicle', [vehicle, owner, `0x${'11'.repeat(32)}`, `0x${'22'.repeat(32)}`]],
        ] as const) {
          const hash = await clients.walletClient.writeContract({
            address: deployment.contracts.VehicleRegistry.address,
            abi: vehicleRegistryAbi,
            functionName,
            args: args as never,
          })
          await clients.publicClient.waitForTransactionReceipt({ hash })
        }
      },
      async stop() {
        await anvil.stop()
        rmSync(dataDir, { recursive: true, force: true })
      },
    }
  } catch (error) {
    await anvil.stop()
    rmSync(dataDir, { recursive: true, force: true })
    throw error
  }
}
