/**
 * `carchain key …`: digital keys from the command line (docs/keys.md).
 *
 * - `key grant`  — sign a grant as the owner (or a manager) and write the grant file and link.
 * - `key revoke` — revoke one grant, or all (`--all`, epoch bump), on chain.
 * - `key list`   — the grants issued from a local directory (with their chain status when a chain
 *                  is reachable), or `--on-chain` the vehicle's revocations.
 * - `key rent`   — rent the car out: ERC-4907 setUser on the title.
 * - `key unlock` — play the phone: answer the car's challenge on its link.
 *
 * Chain facts come from `--node URL` (its `/v1/chain`) or `--rpc URL` + `--key-registry ADDR`
 * (+ `--vehicle-registry ADDR`). Signing keys: `--owner-key 0x…` / `--key 0x…` or an account of
 * the development mnemonic with `--owner-index N` / `--key-index N` (the demo owners).
 */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { type Address, createPublicClient, http, type LocalAccount } from 'viem'
import { type ChainClients, connectChain } from '../../chain/clients.ts'
import { BaseError } from '../../errors.ts'
import { issueGrant } from '../../keys/grant.ts'
import { requestAccess } from '../../keys/link-client.ts'
import {
  epochOf,
  isRevoked,
  listRevocations,
  revokeAllGrants,
  revokeGrant,
  setRentalUser,
} from '../../keys/registry.ts'
import {
  decodeShareLink,
  encodeShareLink,
  SHARE_LINK_PREFIX,
  type SharedKey,
  sharedKey,
} from '../../keys/share-link.ts'
import {
  grantHolder,
  isPasskeyGrant,
  type KeyDomain,
  parseActionName,
  parseAddress,
  parseBytes32,
  parseScopes,
  Scope,
  type SignedGrant,
  scopeNames,
} from '../../keys/typed-data.ts'
import type { Command, FlagSpec, ParsedFlags } from '../command.ts'
import { integerFlag, requiredStringFlag, stringFlag } from '../flags.ts'
import { accountFromFlags } from '../remote.ts'

const chainFlags: Record<string, FlagSpec> = {
  node: {
    type: 'string',
    value: 'URL',
    description: 'A Carchain node: chain id, RPC and contracts from its /v1/chain.',
  },
  rpc: { type: 'string', value: 'URL', description: 'Ethereum JSON-RPC endpoint (overrides the node’s).' },
  'chain-id': { type: 'string', value: 'N', description: 'Chain id (else asked of the RPC).' },
  'key-registry': { type: 'string', value: 'ADDR', description: 'KeyRegistry address (else from --node).' },
  'vehicle-registry': {
    type: 'string',
    value: 'ADDR',
    description: 'VehicleRegistry address (else from --node).',
  },
}

const ownerFlags: Record<string, FlagSpec> = {
  'owner-key': { type: 'string', value: '0xKEY', description: 'Owner’s (or manager’s) private key.' },
  'owner-index': {
    type: 'string',
    value: 'N',
    description: 'Owner as account N of the development mnemonic.',
  },
}

type ChainInfo = {
  chainId: number | undefined
  rpcUrl: string | undefined
  keyRegistry: Address | undefined
  vehicleRegistry: Address | undefined
}

async function chainInfo(flags: ParsedFlags): Promise<ChainInfo> {
  const info: ChainInfo = {
    chainId: undefined,
    rpcUrl: undefined,
    keyRegistry: undefined,
    vehicleRegistry: undefined,
  }
  const node = stringFlag(flags, 'node')
  if (node) {
    let body: { chainId: number; rpcUrl: string; contracts: Record<string, string> }
    try {
      const response = await fetch(new URL('/v1/chain', node))
      if (!response.ok) throw new Error(`HTTP ${response.status}`)
      body = (await response.json()) as typeof body
    } catch (error) {
      throw new BaseError('NOT_FOUND', `no Carchain node answers at ${node}`, {
        details: { node },
        cause: error,
      })
    }
    info.chainId = body.chainId
    info.rpcUrl = body.rpcUrl
    if (body.contracts.KeyRegistry) info.keyRegistry = parseAddress(body.contracts.KeyRegistry, 'KeyRegistry')
    if (body.contracts.VehicleRegistry)
      info.vehicleRegistry = parseAddress(body.contracts.VehicleRegistry, 'VehicleRegistry')
  }
  info.rpcUrl = stringFlag(flags, 'rpc') ?? info.rpcUrl
  info.chainId = integerFlag(flags, 'chain-id', { min: 1 }) ?? info.chainId
  const keyRegistry = stringFlag(flags, 'key-registry')
  if (keyRegistry) info.keyRegistry = usageAddress(keyRegistry, 'key-registry')
  const vehicleRegistry = stringFlag(flags, 'vehicle-registry')
  if (vehicleRegistry) info.vehicleRegistry = usageAddress(vehicleRegistry, 'vehicle-registry')
  if (info.chainId === undefined && info.rpcUrl) {
    try {
      info.chainId = await createPublicClient({
        transport: http(info.rpcUrl, { retryCount: 1 }),
      }).getChainId()
    } catch (error) {
      throw new BaseError('CHAIN_UNREACHABLE', `no Ethereum JSON-RPC answers at ${info.rpcUrl}`, {
        cause: error,
      })
    }
  }
  return info
}

function usageAddress(value: string, flag: string): Address {
  try {
    return parseAddress(value, flag)
  } catch {
    throw new BaseError('CLI_USAGE', `--${flag} must be a 0x address`, { details: { flag, value } })
  }
}

function need<T>(value: T | undefined, message: string): T {
  if (value === undefined) throw new BaseError('CLI_USAGE', message)
  return value
}

function domainOf(info: ChainInfo): KeyDomain {
  return {
    chainId: need(info.chainId, 'the chain id is unknown: give --node, --rpc or --chain-id'),
    keyRegistry: need(info.keyRegistry, 'the KeyRegistry is unknown: give --node or --key-registry'),
  }
}

async function clientsFor(info: ChainInfo, account: LocalAccount): Promise<ChainClients> {
  return connectChain({
    rpcUrl: need(info.rpcUrl, 'no RPC: give --rpc or --node'),
    account,
  })
}

const nowSec = () => Math.floor(Date.now() / 1000)

/** Reads `--grant`: a file path or a `carchain-key:` link. */
async function readGrantArgument(value: string): Promise<SharedKey> {
  if (value.startsWith(SHARE_LINK_PREFIX)) return decodeShareLink(value)
  let text: string
  try {
    text = await readFile(value, 'utf8')
  } catch (error) {
    throw new BaseError('NOT_FOUND', `cannot read the grant file ${value}`, {
      details: { path: value },
      cause: error,
    })
  }
  return decodeShareLink(text)
}

const presets = {
  parcel: { scopes: Scope.OPEN_TRUNK, maxUses: 1, hours: 2, purpose: 'parcel' },
  family: { scopes: Scope.UNLOCK | Scope.LOCK | Scope.START, maxUses: 0, hours: 365 * 24, purpose: 'family' },
} as const

const grant: Command = {
  path: ['key', 'grant'],
  summary: 'Sign a digital key as the owner or a manager; writes the grant file and prints its link.',
  flags: {
    ...chainFlags,
    ...ownerFlags,
    vehicle: {
      type: 'string',
      value: 'ADDR',
      description: 'The vehicle (its wallet address).',
      required: true,
    },
    grantee: {
      type: 'string',
      value: 'ADDR',
      description: 'Who receives the key (their address).',
      required: true,
    },
    preset: {
      type: 'string',
      value: 'NAME',
      description: 'parcel (trunk, 1 use, 2 h) or family (unlock|lock|start, 1 year).',
    },
    scopes: {
      type: 'string',
      value: 'LIST',
      description: 'Actions, e.g. UNLOCK|LOCK|START (overrides the preset).',
    },
    'not-before': { type: 'string', value: 'UNIX', description: 'Valid from (unix seconds; default now).' },
    'not-after': { type: 'string', value: 'UNIX', description: 'Valid until (unix seconds).' },
    hours: {
      type: 'string',
      value: 'N',
      description: 'Valid for N hours from --not-before (default by preset, else 24).',
    },
    'max-uses': { type: 'string', value: 'N', description: 'Uses allowed; 0 = unlimited.' },
    epoch: {
      type: 'string',
      value: 'N',
      description: 'The vehicle’s key epoch (else read from KeyRegistry).',
    },
    purpose: {
      type: 'string',
      value: 'TEXT',
      description: 'A note signed into the grant (parcel… notifies the owner).',
    },
    dir: { type: 'string', value: 'DIR', description: 'Where grant files are kept.', default: './keys' },
    out: { type: 'string', value: 'FILE', description: 'Grant file to write (default DIR/<grantId>.json).' },
  },
  async run({ flags }) {
    const info = await chainInfo(flags)
    const domain = domainOf(info)
    const signer = accountFromFlags(flags, 'owner-key', 'owner-index', 'CARCHAIN_OWNER_KEY')
    const vehicle = usageAddress(requiredStringFlag(flags, 'vehicle'), 'vehicle')
    const presetName = stringFlag(flags, 'preset')
    if (presetName !== undefined && !(presetName in presets))
      throw new BaseError('CLI_USAGE', '--preset is parcel or family', { details: { preset: presetName } })
    const preset = presetName ? presets[presetName as keyof typeof presets] : undefined
    const scopesText = stringFlag(flags, 'scopes')
    const scopes = scopesText ? parseScopes(scopesText) : need(preset?.scopes, 'give --scopes or --preset')
    const notBefore = integerFlag(flags, 'not-before', { min: 0 }) ?? nowSec()
    const hours = integerFlag(flags, 'hours', { min: 1 }) ?? preset?.hours ?? 24
    const notAfter = integerFlag(flags, 'not-after', { min: 0 }) ?? notBefore + hours * 3600
    let epoch = integerFlag(flags, 'epoch', { min: 0 })
    if (epoch === undefined) {
      const rpcUrl = need(info.rpcUrl, 'give --epoch, or --rpc/--node to read it')
      epoch = await epochOf(createPublicClient({ transport: http(rpcUrl) }), {
        keyRegistry: domain.keyRegistry,
        vehicle,
      })
    }
    const signed = await issueGrant({
      signer,
      domain,
      vehicle,
      grantee: usageAddress(requiredStringFlag(flags, 'grantee'), 'grantee'),
      scopes,
      notBefore,
      notAfter,
      maxUses: integerFlag(flags, 'max-uses', { min: 0, max: 0xffffffff }) ?? preset?.maxUses ?? 0,
      epoch,
      purpose: stringFlag(flags, 'purpose') ?? preset?.purpose ?? '',
    })
    const dir = stringFlag(flags, 'dir') ?? './keys'
    const out = stringFlag(flags, 'out') ?? join(dir, `${signed.grant.grantId}.json`)
    await mkdir(join(out, '..'), { recursive: true })
    await writeFile(out, `${JSON.stringify(sharedKey(domain, signed), null, 2)}\n`, { mode: 0o600 })
    const link = encodeShareLink(domain, signed)
    return {
      data: { file: out, link, issuer: signer.address, ...sharedKey(domain, signed) },
      text: `key ${signed.grant.grantId}\n  for     ${signed.grant.grantee}\n  scopes  ${scopeNames(scopes).join('|')}\n  valid   ${new Date(notBefore * 1000).toISOString()} → ${new Date(notAfter * 1000).toISOString()}\n  file    ${out}\n  link    ${link}`,
    }
  },
}

const revoke: Command = {
  path: ['key', 'revoke'],
  summary: 'Revoke a key on chain (KeyRegistry.revoke), or every key with --all (epoch bump).',
  flags: {
    ...chainFlags,
    ...ownerFlags,
    vehicle: { type: 'string', value: 'ADDR', description: 'The vehicle (else from --grant).' },
    'grant-id': { type: 'string', value: '0xID', description: 'The grant to revoke.' },
    grant: { type: 'string', value: 'FILE|LINK', description: 'A grant file or link to revoke.' },
    all: { type: 'boolean', description: 'Revoke every key of the vehicle (revokeAll).' },
  },
  async run({ flags }) {
    const info = await chainInfo(flags)
    const keyRegistry = domainOf(info).keyRegistry
    const grantArgument = stringFlag(flags, 'grant')
    const shared = grantArgument ? await readGrantArgument(grantArgument) : undefined
    const vehicleFlag = stringFlag(flags, 'vehicle')
    const vehicle = vehicleFlag
      ? usageAddress(vehicleFlag, 'vehicle')
      : need(shared?.grant.vehicle, 'give --vehicle')
    const clients = await clientsFor(
      info,
      accountFromFlags(flags, 'owner-key', 'owner-index', 'CARCHAIN_OWNER_KEY'),
    )
    if (flags.all === true) {
      const tx = await revokeAllGrants(clients, { keyRegistry, vehicle })
      const epoch = await epochOf(clients.publicClient, { keyRegistry, vehicle })
      const data = {
        vehicle,
        epoch,
        txHash: tx.txHash,
        blockNumber: Number(tx.blockNumber),
        gasUsed: Number(tx.gasUsed),
      }
      return { data, text: `every key of ${vehicle} revoked; epoch is now ${epoch} (tx ${tx.txHash})` }
    }
    const idFlag = stringFlag(flags, 'grant-id')
    const grantId = idFlag
      ? parseBytes32(idFlag, 'grant-id')
      : need(shared?.grant.grantId, 'give --grant-id, --grant or --all')
    const tx = await revokeGrant(clients, { keyRegistry, vehicle, grantId })
    const data = {
      vehicle,
      grantId,
      txHash: tx.txHash,
      blockNumber: Number(tx.blockNumber),
      gasUsed: Number(tx.gasUsed),
    }
    return { data, text: `key ${grantId} revoked (tx ${tx.txHash}, ${tx.gasUsed} gas)` }
  },
}

const list: Command = {
  path: ['key', 'list'],
  summary: 'List keys issued from a directory (with chain status if reachable), or --on-chain revocations.',
  flags: {
    ...chainFlags,
    dir: { type: 'string', value: 'DIR', description: 'Where grant files are kept.', default: './keys' },
    vehicle: {
      type: 'string',
      value: 'ADDR',
      description: 'Only this vehicle’s keys (required with --on-chain).',
    },
    'on-chain': { type: 'boolean', description: 'List the vehicle’s revocations from KeyRegistry events.' },
  },
  async run({ flags }) {
    const vehicleFlag = stringFlag(flags, 'vehicle')
    const vehicle = vehicleFlag ? usageAddress(vehicleFlag, 'vehicle') : undefined
    const hasChain = ['node', 'rpc'].some((f) => stringFlag(flags, f) !== undefined)
    const info = hasChain ? await chainInfo(flags) : undefined
    const client = info?.rpcUrl ? createPublicClient({ transport: http(info.rpcUrl) }) : undefined
    if (flags['on-chain'] === true) {
      const keyRegistry = domainOf(need(info, 'give --node or --rpc')).keyRegistry
      const revocations = await listRevocations(need(client, 'give --rpc or --node'), {
        keyRegistry,
        vehicle: need(vehicle, '--on-chain needs --vehicle'),
      })
      const data = revocations.map((r) => ({ ...r, blockNumber: Number(r.blockNumber) }))
      return {
        data,
        text:
          data.map((r) => `${r.grantId} revoked by ${r.by} in block ${r.blockNumber}`).join('\n') ||
          'no revocations',
      }
    }
    const dir = stringFlag(flags, 'dir') ?? './keys'
    let files: string[] = []
    try {
      files = (await readdir(dir)).filter((f) => f.endsWith('.json')).sort()
    } catch {
      files = []
    }
    const rows = []
    const epochs = new Map<string, number>()
    for (const file of files) {
      let shared: SharedKey
      try {
        shared = decodeShareLink(await readFile(join(dir, file), 'utf8'))
      } catch {
        continue // not a grant file
      }
      const g = shared.grant
      if (vehicle && g.vehicle !== vehicle) continue
      const now = nowSec()
      let status = now < g.notBefore ? 'not yet valid' : now > g.notAfter ? 'expired' : 'valid'
      if (client) {
        const key = `${shared.keyRegistry}:${g.vehicle}`
        if (!epochs.has(key))
          epochs.set(key, await epochOf(client, { keyRegistry: shared.keyRegistry, vehicle: g.vehicle }))
        if (epochs.get(key) !== g.epoch) status = 'revoked (epoch)'
        else if (
          await isRevoked(client, { keyRegistry: shared.keyRegistry, vehicle: g.vehicle, grantId: g.grantId })
        )
          status = 'revoked'
      }
      rows.push({
        file: join(dir, file),
        grantId: g.grantId,
        vehicle: g.vehicle,
        grantee: grantHolder(g),
        scopes: scopeNames(g.scopes),
        notBefore: g.notBefore,
        notAfter: g.notAfter,
        maxUses: g.maxUses,
        epoch: g.epoch,
        purpose: g.purpose,
        status,
      })
    }
    return {
      data: rows,
      text:
        rows
          .map(
            (r) =>
              `${r.grantId.slice(0, 12)}…  ${r.grantee}  ${r.scopes.join('|').padEnd(20)} ${r.status}  ${r.purpose}`,
          )
          .join('\n') || `no keys in ${dir}`,
    }
  },
}

const rent: Command = {
  path: ['key', 'rent'],
  summary: 'Rent the car out: make RENTER the title’s ERC-4907 user for N hours (no grant needed).',
  flags: {
    ...chainFlags,
    ...ownerFlags,
    vehicle: { type: 'string', value: 'ADDR', description: 'The vehicle.', required: true },
    renter: { type: 'string', value: 'ADDR', description: 'The renter’s address.', required: true },
    hours: { type: 'string', value: 'N', description: 'Rental length.', default: '24' },
  },
  async run({ flags }) {
    const info = await chainInfo(flags)
    const vehicleRegistry = need(
      info.vehicleRegistry,
      'the VehicleRegistry is unknown: give --node or --vehicle-registry',
    )
    const clients = await clientsFor(
      info,
      accountFromFlags(flags, 'owner-key', 'owner-index', 'CARCHAIN_OWNER_KEY'),
    )
    const vehicle = usageAddress(requiredStringFlag(flags, 'vehicle'), 'vehicle')
    const renter = usageAddress(requiredStringFlag(flags, 'renter'), 'renter')
    const untilSec = nowSec() + (integerFlag(flags, 'hours', { min: 1 }) ?? 24) * 3600
    const tx = await setRentalUser(clients, { vehicleRegistry, vehicle, user: renter, expiresSec: untilSec })
    return {
      data: { vehicle, renter, untilSec, txHash: tx.txHash },
      text: `${renter} may use ${vehicle} until ${new Date(untilSec * 1000).toISOString()} (tx ${tx.txHash})`,
    }
  },
}

const unlock: Command = {
  path: ['key', 'unlock'],
  summary: 'Play the phone: answer the car’s challenge on its link with a key (or as the renter).',
  flags: {
    ...chainFlags,
    link: { type: 'string', value: 'URL', description: 'The car’s link (ws://…).', required: true },
    grant: { type: 'string', value: 'FILE|LINK', description: 'The grant file or link; omit with --rental.' },
    rental: { type: 'boolean', description: 'Ask as the title’s ERC-4907 user (grant null).' },
    key: { type: 'string', value: '0xKEY', description: 'The grantee’s (or renter’s) private key.' },
    'key-index': {
      type: 'string',
      value: 'N',
      description: 'The grantee as account N of the development mnemonic.',
    },
    action: {
      type: 'string',
      value: 'NAME',
      description: 'UNLOCK, LOCK, OPEN_TRUNK, START or OPEN_CHARGE_PORT.',
      default: 'UNLOCK',
    },
  },
  async run({ flags }) {
    const signer = accountFromFlags(flags, 'key', 'key-index')
    const action = parseActionName(stringFlag(flags, 'action') ?? 'UNLOCK')
    const grantArgument = stringFlag(flags, 'grant')
    let domain: KeyDomain
    let signed: SignedGrant | null = null
    if (grantArgument) {
      const shared = await readGrantArgument(grantArgument)
      domain = { chainId: shared.chainId, keyRegistry: shared.keyRegistry }
      if (isPasskeyGrant(shared.grant))
        throw new BaseError(
          'CLI_USAGE',
          'this grant names a passkey as its grantee: open it in the key app (#/key) on the phone that holds the passkey',
        )
      signed = { grant: shared.grant, signature: shared.signature }
    } else {
      if (flags.rental !== true)
        throw new BaseError('CLI_USAGE', 'give --grant, or --rental to ask as the renter')
      domain = domainOf(await chainInfo(flags))
    }
    const result = await requestAccess({
      link: requiredStringFlag(flags, 'link'),
      signer,
      domain,
      grant: signed,
      action,
    })
    return {
      data: result,
      text: `${result.ok ? 'granted' : 'refused'}: ${result.code}${result.eventId ? ` (event ${result.eventId})` : ''}`,
      exitCode: result.ok ? 0 : 1,
    }
  },
}

export const keyCommands: readonly Command[] = [grant, revoke, list, rent, unlock]
