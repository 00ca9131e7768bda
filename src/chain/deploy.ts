/**
 * Idempotent deployment of Carchain's contracts, recorded in `<data>/deployments/<chainId>.json`.
 *
 * A recorded deployment is reused when every contract still has code on the chain. When the
 * embedded chain lost blocks (a crash between snapshots), the missing deployment is made again —
 * with the same deployer nonce it lands at the same addresses. On an external network a record
 * pointing at empty addresses is a different or reset chain: CHAIN_MISMATCH, never a silent
 * redeploy.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { type Abi, type Address, type Hash, type Hex, keccak256 } from 'viem'
import { BaseError } from '../errors.ts'
import { writeFileAtomic } from '../fs-atomic.ts'
import type { ChainClients } from './clients.ts'
import * as generated from './generated/index.ts'

/** Contract names as they appear in `/v1/chain` and the deployment record. */
export const contractNames = [
  'Token',
  'VehicleRegistry',
  'KeyRegistry',
  'LedgerAnchor',
  'ChargingChannels',
] as const
export type ContractName = (typeof contractNames)[number]

export type DeployedContract = {
  address: Address
  txHash: Hash
  blockNumber: string
  /** keccak256 of the creation bytecode deployed: which version of the contract this is. */
  codeHash?: Hex
}
export type Deployment = {
  chainId: number
  deployer: Address
  deployedAt: string
  contracts: Record<ContractName, DeployedContract>
}

type Spec = {
  abi: Abi
  bytecode: Hex
  args: (deployed: Partial<Record<ContractName, Address>>, operator: Address) => readonly unknown[]
}

/**
 * Names that are another contract's address: KeyRegistry is part of VehicleRegistry (one contract,
 * so a revocation asks for the title without a call to another contract; docs/contracts.md).
 * A record from before the merge names a separate KeyRegistry; it keeps working as it is.
 */
const aliases: Partial<Record<ContractName, ContractName>> = { KeyRegistry: 'VehicleRegistry' }

/** What to deploy, in order; constructor arguments may name earlier contracts. */
const specs: Record<Exclude<ContractName, 'KeyRegistry'>, Spec> = {
  Token: {
    abi: generated.demoTokenAbi,
    bytecode: generated.demoTokenBytecode,
    args: (_, operator) => ['Carchain Demo Euro', 'cEUR', operator],
  },
  VehicleRegistry: {
    abi: generated.vehicleRegistryAbi,
    bytecode: generated.vehicleRegistryBytecode,
    args: (_, operator) => [operator],
  },
  LedgerAnchor: {
    abi: generated.ledgerAnchorAbi,
    bytecode: generated.ledgerAnchorBytecode,
    args: () => [],
  },
  ChargingChannels: {
    abi: generated.chargingChannelsAbi,
    bytecode: generated.chargingChannelsBytecode,
    args: () => [],
  },
}

export function deploymentPath(dataDir: string, chainId: number): string {
  return join(dataDir, 'deployments', `${chainId}.json`)
}

/** Reads a deployment record; DATA_DIR_INVALID if it is not one. */
export function readDeployment(dataDir: string, chainId: number): Deployment | undefined {
  const path = deploymentPath(dataDir, chainId)
  if (!existsSync(path)) return undefined
  let parsed: Deployment
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8')) as Deployment
  } catch (error) {
    throw new BaseError('DATA_DIR_INVALID', `${path} is not valid JSON; move it away to redeploy`, {
      details: { path },
      cause: error,
    })
  }
  const valid =
    parsed &&
    parsed.chainId === chainId &&
    contractNames.every((name) => /^0x[0-9a-fA-F]{40}$/.test(parsed.contracts?.[name]?.address ?? ''))
  if (!valid)
    throw new BaseError(
      'DATA_DIR_INVALID',
      `${path} is not a Carchain deployment record for chain ${chainId}`,
      { details: { path } },
    )
  return parsed
}

export type DeployContractsParameters = {
  clients: ChainClients
  dataDir: string
  /** Redeploy when the record's contracts are gone (embedded chain only; default false). */
  redeployMissing?: boolean
  progress?: (message: string) => void
}

export type DeployContractsReturnType = { deployment: Deployment; deployedNow: boolean }

/** Deploys every contract unless a recorded deployment is live on the chain. */
export async function deployContracts(
  parameters: DeployContractsParameters,
): Promise<DeployContractsReturnType> {
  const { clients, dataDir, progress = () => {} } = parameters
  const { publicClient, walletClient, account, chain } = clients
  const recorded = readDeployment(dataDir, chain.id)
  if (recorded) {
    const codes = await Promise.all(
      contractNames.map((name) => publicClient.getCode({ address: recorded.contracts[name].address })),
    )
    const missing = contractNames.filter((_, i) => !codes[i] || codes[i] === '0x')
    if (missing.length === 0) {
      checkCurrent(recorded, deploymentPath(dataDir, chain.id))
      return { deployment: recorded, deployedNow: false }
    }
    if (!parameters.redeployMissing)
      throw new BaseError(
        'CHAIN_MISMATCH',
        `the chain at ${clients.rpcUrl} has no code at the recorded ${missing.join(', ')}: a different or reset chain`,
        { details: { missing, record: deploymentPath(dataDir, chain.id) } },
      )
    progress(`chain lost ${missing.join(', ')} (blocks after the last snapshot); deploying again`)
  }

  const addresses: Partial<Record<ContractName, Address>> = {}
  const contracts = {} as Record<ContractName, DeployedContract>
  for (const name of contractNames) {
    const alias = aliases[name]
    if (alias) {
      contracts[name] = contracts[alias]
      addresses[name] = addresses[alias]
      continue
    }
    const spec = specs[name as keyof typeof specs]
    progress(`deploying ${name}`)
    let receipt: Awaited<ReturnType<typeof publicClient.waitForTransactionReceipt>>
    try {
      const hash = await walletClient.deployContract({
        abi: spec.abi,
        bytecode: spec.bytecode,
        args: spec.args(addresses, account.address) as unknown[],
      })
      receipt = await publicClient.waitForTransactionReceipt({ hash, timeout: 120_000 })
    } catch (error) {
      throw new BaseError(
        'DEPLOYMENT_FAILED',
        `deploying ${name} failed: ${(error as Error).message.split('\n')[0]}`,
        {
          details: { contract: name },
          cause: error,
        },
      )
    }
    if (receipt.status !== 'success' || !receipt.contractAddress)
      throw new BaseError('DEPLOYMENT_FAILED', `deploying ${name} reverted`, {
        details: { contract: name, txHash: receipt.transactionHash },
      })
    addresses[name] = receipt.contractAddress
    contracts[name] = {
      address: receipt.contractAddress,
      txHash: receipt.transactionHash,
      blockNumber: receipt.blockNumber.toString(),
      codeHash: keccak256(spec.bytecode),
    }
  }
  const deployment: Deployment = {
    chainId: chain.id,
    deployer: account.address,
    deployedAt: new Date().toISOString(),
    contracts,
  }
  mkdirSync(join(dataDir, 'deployments'), { recursive: true })
  writeFileAtomic(deploymentPath(dataDir, chain.id), `${JSON.stringify(deployment, null, 2)}\n`)
  return { deployment, deployedNow: true }
}

/**
 * A live recorded deployment must be of the contracts this code speaks to: a record from another
 * version of Carchain (a changed contract, or a record from before code hashes were kept) would
 * fail later with opaque reverts, so it is refused here with DEPLOYMENT_OUTDATED.
 */
function checkCurrent(recorded: Deployment, path: string): void {
  const outdated = contractNames.filter((name) => {
    const spec = specs[(aliases[name] ?? name) as keyof typeof specs]
    return recorded.contracts[name].codeHash !== keccak256(spec.bytecode)
  })
  if (outdated.length > 0)
    throw new BaseError(
      'DEPLOYMENT_OUTDATED',
      `${path} records contracts from another version of Carchain (${outdated.join(', ')} differ): start on a fresh data directory, or deploy to a fresh chain`,
      { details: { outdated, record: path } },
    )
}
