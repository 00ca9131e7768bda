/**
 * `carchain verify`, `carchain audit`, `carchain ledger erase|disclose`: checking the ledger
 * against the roots anchored on chain, trusting neither the node nor its database — the node
 * only supplies entries and proofs, which are checked; roots come from the chain.
 */

import { type FileHandle, open, readFile, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { type Address, createPublicClient, getAddress, http, type PublicClient } from 'viem'
import { ledgerAnchorAbi } from '../../chain/generated/index.ts'
import { BaseError, isErrorCode } from '../../errors.ts'
import { fromPem } from '../../identity/certificate.ts'
import { validateVehicleCertificate } from '../../identity/vehicle-certificate.ts'
import { fromBase64, fromHex, type Hex, toHex } from '../../ledger/bytes.ts'
import { encodeEnvelope, isVehicleAddress, parseEnvelope, parseEnvelopeBytes } from '../../ledger/envelope.ts'
import { HASH_BYTES, hashLeaf, nodeMerkle, verifyConsistency } from '../../ledger/merkle.ts'
import { shardPath } from '../../ledger/shard-rule.ts'
import { MAX_SHARDS, shardOfVehicle } from '../../ledger/shards.ts'
import { httpTilesGet, type TilesGet, verifyFromTiles } from '../../ledger/tiles-verify.ts'
import { parseVehicleProof, verifyVehicleSignature } from '../../ledger/vehicle-proof.ts'
import {
  type Disclosure,
  type VerifyEventReturnType,
  verifyDisclosure,
  verifyEvent,
} from '../../ledger/verify.ts'
import type { Command, FlagSpec, ParsedFlags } from '../command.ts'
import { integerFlag, requiredStringFlag, stringFlag } from '../flags.ts'
import { accountFromFlags, nodeJson, signIn } from '../remote.ts'

/**
 * The file `ledger disclose` writes and `verify --bundle` reads (docs/ledger.md "Disclosure
 * bundle"). `anchor` is what the disclosing node said; the verifier only compares it with the
 * deployment it pinned itself, never looks where it points.
 */
export type DisclosureBundle = {
  v: 2
  kind: 'carchain.disclosure'
  disclosure: Disclosure
  anchor: { chainId: number; contract: Address; logId: Hex }
}

/** The log the verifier trusts: from its flags or a node it trusts, never from a bundle. */
type PinnedLog = {
  chainId: number
  contract: Address
  logId: Hex
  /** The node's API paths of the pinned log: `/v1/log` (shard 0) or `/v1/log/shards/<shard>`. */
  api: string
  /** VehicleRegistry, for the car's certificate. */
  registry: Address | undefined
  rpcUrl: string
  client: PublicClient
}

const trustFlags: Record<string, FlagSpec> = {
  node: {
    type: 'string',
    value: 'URL',
    description:
      'A Carchain node you trust to name its deployment (chain, LedgerAnchor, log id, VehicleRegistry); its entries and proofs are checked, never trusted.',
    default: 'http://127.0.0.1:8080',
  },
  rpc: {
    type: 'string',
    value: 'URL',
    description: 'Ethereum JSON-RPC to read anchors from (default: the node’s).',
  },
  contract: { type: 'string', value: 'ADDR', description: 'LedgerAnchor address (default: the node’s).' },
  'log-id': {
    type: 'string',
    value: '0x…',
    description:
      'The log id (default: the node’s; with several shards, the one of the event’s vehicle, found by the shard rule).',
  },
  shard: {
    type: 'string',
    value: 'N',
    description:
      'With several log shards: take the log id of shard N from the node (default: the vehicle’s shard when the vehicle is known; with --tiles, the shard its --origin names).',
  },
  operator: {
    type: 'string',
    value: 'ADDR',
    description: 'The account that must operate the log on chain (LedgerAnchor.operatorOf).',
  },
}

type ShardList = { count: number; shards: { shard: number; logId: Hex; treeSize: number }[] }

/**
 * The log id the trusted node names for the log to verify against: its one log's; with several
 * shards the one of `--shard`, else of the vehicle's shard (`shardOfVehicle`), else of the shard
 * whose log holds `leafHash` (asked shard by shard; the proof is checked against that shard's
 * anchored root all the same).
 */
async function nodeLogId(
  node: string,
  options: { shard?: number | undefined; vehicle?: string | undefined; leafHash?: Hex | undefined },
): Promise<{ logId: Hex; api: string }> {
  const one = async () => ({
    logId: (await nodeJson<{ logId: Hex }>(node, '/v1/log/checkpoint')).logId,
    api: '/v1/log',
  })
  let list: ShardList
  try {
    list = await nodeJson<ShardList>(node, '/v1/log/shards')
  } catch (error) {
    // A node from before shards serves one log.
    if (isErrorCode(error, 'NOT_FOUND') && options.shard === undefined) return one()
    throw error
  }
  const pick = (shard: number) => {
    const entry = list.shards.find((s) => s.shard === shard)
    if (!entry)
      throw new BaseError('CLI_USAGE', `the node's log has ${list.count} shard(s), no shard ${shard}`, {
        details: { shard, shards: list.count },
      })
    return { logId: entry.logId, api: shardPath('/v1/log', shard) }
  }
  if (options.shard !== undefined) return pick(options.shard)
  if (list.count === 1) return pick(0)
  if (options.vehicle !== undefined && isVehicleAddress(options.vehicle))
    return pick(shardOfVehicle(options.vehicle, list.count))
  if (options.leafHash !== undefined)
    for (const { shard, treeSize } of list.shards) {
      if (treeSize === 0) continue
      const api = shardPath('/v1/log', shard)
      try {
        await nodeJson(node, `${api}/proof/inclusion?leafHash=${options.leafHash}&treeSize=${treeSize}`)
        return pick(shard)
      } catch (error) {
        if (!isErrorCode(error, 'NOT_FOUND')) throw error
      }
    }
  throw new BaseError(
    'CLI_USAGE',
    `the node's log has ${list.count} shards: give --shard, or --log-id of the event's shard`,
    { details: { shards: list.count } },
  )
}

function pinnedAddress(value: string, flag: string): Address {
  if (!/^0x[0-9a-fA-F]{40}$/.test(value))
    throw new BaseError('CLI_USAGE', `${flag} must be an address (0x + 40 hex)`, { details: { value } })
  return getAddress(value)
}

/**
 * Pins the log to verify against: flags first, the rest from the node at `--node` (which the
 * user trusts to name its own deployment). A bundle never takes part. With `--operator`, the log's
 * operator on chain must be that account (LOG_UNTRUSTED otherwise).
 */
async function pinLog(
  flags: ParsedFlags,
  options: {
    registry?: boolean
    vehicle?: string | undefined
    leafHash?: Hex | undefined
    /** The shard when `--shard` is not given (e.g. from a shard's origin). */
    shard?: number | undefined
  } = {},
): Promise<PinnedLog> {
  const flagged = {
    rpcUrl: stringFlag(flags, 'rpc'),
    contract: stringFlag(flags, 'contract'),
    logId: stringFlag(flags, 'log-id'),
    registry: options.registry ? stringFlag(flags, 'registry') : undefined,
  }
  const node = stringFlag(flags, 'node')
  const complete =
    flagged.rpcUrl && flagged.contract && flagged.logId && (!options.registry || flagged.registry)
  const chain =
    !complete && node
      ? await nodeJson<{ chainId: number; rpcUrl: string; contracts: Record<string, Address> }>(
          node,
          '/v1/chain',
        )
      : undefined
  const shardFlag = integerFlag(flags, 'shard', { min: 0, max: MAX_SHARDS - 1 }) ?? options.shard
  const named =
    flagged.logId === undefined && chain && node
      ? await nodeLogId(node, { shard: shardFlag, ...options })
      : { logId: undefined, api: shardFlag === undefined ? '/v1/log' : `/v1/log/shards/${shardFlag}` }
  const logId = flagged.logId ?? named.logId
  const rpcUrl = flagged.rpcUrl ?? chain?.rpcUrl
  const contract = flagged.contract ?? chain?.contracts.LedgerAnchor
  const registry = flagged.registry ?? (options.registry ? chain?.contracts.VehicleRegistry : undefined)
  if (!rpcUrl || !contract || !logId || (options.registry && !registry))
    throw new BaseError(
      'CLI_USAGE',
      `give --node (a node you trust), or --rpc with --contract and --log-id${options.registry ? ' and --registry' : ''}`,
    )
  if (!/^0x[0-9a-fA-F]{64}$/.test(logId))
    throw new BaseError('CLI_USAGE', '--log-id must be 32 bytes (0x + 64 hex)', { details: { logId } })
  const client = createPublicClient({
    transport: http(rpcUrl, { retryCount: 1, timeout: 15_000 }),
  }) as PublicClient
  let chainId: number
  try {
    chainId = await client.getChainId()
  } catch (error) {
    throw new BaseError('CHAIN_UNREACHABLE', `no Ethereum JSON-RPC answers at ${rpcUrl}`, {
      details: { rpcUrl },
      cause: error,
    })
  }
  if (chain && chain.chainId !== chainId)
    throw new BaseError(
      'CHAIN_MISMATCH',
      `the node is on chain ${chain.chainId}, ${rpcUrl} is chain ${chainId}`,
    )
  const log: PinnedLog = {
    chainId,
    contract: pinnedAddress(contract, '--contract'),
    logId: logId.toLowerCase() as Hex,
    api: named.api,
    registry: registry === undefined ? undefined : pinnedAddress(registry, '--registry'),
    rpcUrl,
    client,
  }
  const operator = stringFlag(flags, 'operator')
  if (operator) {
    const actual = await client.readContract({
      address: log.contract,
      abi: ledgerAnchorAbi,
      functionName: 'operatorOf',
      args: [log.logId],
    })
    if (actual !== pinnedAddress(operator, '--operator'))
      throw new BaseError('LOG_UNTRUSTED', `log ${log.logId} is operated by ${actual}, not ${operator}`, {
        details: { logId: log.logId, operator: actual, expected: operator },
      })
  }
  return log
}

/** A bundle's `anchor` must name the pinned log: anything else is someone else's log. */
function checkBundleNamesPinnedLog(anchor: unknown, log: PinnedLog): void {
  const named = (anchor ?? {}) as Partial<DisclosureBundle['anchor']>
  const same =
    named.chainId === log.chainId &&
    typeof named.contract === 'string' &&
    named.contract.toLowerCase() === log.contract.toLowerCase() &&
    typeof named.logId === 'string' &&
    named.logId.toLowerCase() === log.logId
  if (!same)
    throw new BaseError(
      'LOG_UNTRUSTED',
      `the bundle names log ${String(named.logId)} of ${String(named.contract)} on chain ${String(named.chainId)}, not the pinned log ${log.logId} of ${log.contract} on chain ${log.chainId}`,
      {
        details: {
          bundle: named,
          pinned: { chainId: log.chainId, contract: log.contract, logId: log.logId },
        },
      },
    )
}

/** Every root anchored for the log, oldest first, read from the chain's `Anchored` events. */
async function anchoredRoots(
  log: PinnedLog,
): Promise<{ treeSize: number; rootHash: Hex; txHash: Hex; blockNumber: bigint }[]> {
  const logs = await log.client.getContractEvents({
    address: log.contract,
    abi: ledgerAnchorAbi,
    eventName: 'Anchored',
    args: { logId: log.logId },
    fromBlock: 0n,
    toBlock: 'latest',
  })
  return logs.map((entry) => ({
    treeSize: Number(entry.args.treeSize),
    rootHash: entry.args.rootHash as Hex,
    txHash: entry.transactionHash as Hex,
    blockNumber: entry.blockNumber as bigint,
  }))
}

async function latestAnchored(log: PinnedLog): Promise<{ treeSize: number; rootHash: Hex }> {
  const [treeSize, rootHash] = await log.client.readContract({
    address: log.contract,
    abi: ledgerAnchorAbi,
    functionName: 'latest',
    args: [log.logId],
  })
  if (treeSize === 0n) throw new BaseError('NOT_FOUND', `nothing is anchored yet for log ${log.logId}`)
  return { treeSize: Number(treeSize), rootHash }
}

/** What `verify` says of a proven event. */
function provenEvent(proven: VerifyEventReturnType) {
  const { vehicle, seq, kind } = proven.envelope
  return { valid: true, id: proven.id, vehicle, seq, kind }
}

/**
 * `verify --bundle`: the bundle is the holder's file, so it only supplies what is then proven —
 * the event's inclusion in a root anchored in the PINNED log, and the car's signature by a
 * certificate under the OEM roots (the registry's, or `--oem-root`) registered for the vehicle.
 */
async function verifyBundle(flags: ParsedFlags, path: string) {
  const text = await readFile(path, 'utf8')
  let bundle: Record<string, unknown> | null
  try {
    bundle = JSON.parse(text)
  } catch (error) {
    throw new BaseError('EVENT_MALFORMED', `${path} is not a JSON disclosure bundle`, { cause: error })
  }
  if (bundle?.kind !== 'carchain.disclosure')
    throw new BaseError('EVENT_MALFORMED', `${path} is not a Carchain disclosure bundle`)
  if (bundle.v !== 2)
    throw new BaseError(
      'DISCLOSURE_UNSIGNED',
      `${path} is a version ${String(bundle.v)} bundle, which carries no signature of the car; make a new one with \`carchain ledger disclose\``,
    )
  // The bundle's vehicle only chooses which of the deployment's shards to pin; its proof must then hold there.
  const claimed = (bundle.disclosure as { envelope?: { vehicle?: unknown } } | null)?.envelope?.vehicle
  const log = await pinLog(flags, {
    registry: true,
    vehicle: typeof claimed === 'string' ? claimed : undefined,
  })
  checkBundleNamesPinnedLog(bundle.anchor, log)
  const disclosure = bundle.disclosure as Disclosure
  const proven = verifyDisclosure({ disclosure })
  const anchor = (await anchoredRoots(log)).find(
    (a) => a.treeSize === disclosure.treeSize && a.rootHash === disclosure.rootHash,
  )
  if (!anchor)
    throw new BaseError(
      'PROOF_INVALID',
      `no anchor of size ${disclosure.treeSize} with this root in log ${log.logId} on chain ${log.chainId}`,
      { details: { reason: 'anchor', treeSize: disclosure.treeSize } },
    )
  const vehicleProof = parseVehicleProof(disclosure.vehicleProof)
  const oemRootFile = stringFlag(flags, 'oem-root')
  const block = await log.client.getBlock({ blockNumber: anchor.blockNumber })
  // The certificate must have been valid when the event was anchored, as far as the chain knows.
  const certificate = await validateVehicleCertificate({
    client: log.client,
    vehicleRegistry: log.registry!,
    chainId: log.chainId,
    certificate: vehicleProof.certificate,
    chain: vehicleProof.chain,
    oemRoots: oemRootFile ? fromPem(await readFile(oemRootFile, 'utf8')) : undefined,
    vehicle: proven.envelope.vehicle,
    now: new Date(Number(block.timestamp) * 1000),
  })
  const { signedSeq } = verifyVehicleSignature({
    envelope: proven.envelope,
    proof: vehicleProof,
    publicKey: certificate.publicKey,
  })
  const data = {
    ...provenEvent(proven),
    payload: proven.data ?? null,
    signedSeq,
    certificate: {
      vin: certificate.vin ?? certificate.commonName,
      fingerprint: `0x${certificate.fingerprint}`,
    },
    log: { chainId: log.chainId, contract: log.contract, logId: log.logId },
    anchor: {
      treeSize: anchor.treeSize,
      txHash: anchor.txHash,
      blockNumber: anchor.blockNumber.toString(),
    },
  }
  return {
    data,
    text: `valid: ${data.kind} #${data.seq} of ${data.vehicle} (VIN ${data.certificate.vin}), signed by the car, anchored in tx ${anchor.txHash}`,
  }
}

/** A tiles directory read in place (`--tiles file:///…`, e.g. a `--tiles-dir`): the same limits. */
const fileTilesGet =
  (base: string): TilesGet =>
  async (relative, maxBytes) => {
    const url = `${base}/${relative}`
    const path = fileURLToPath(url)
    let handle: FileHandle
    try {
      handle = await open(path, 'r')
    } catch (error) {
      throw new BaseError('NOT_FOUND', `cannot read ${path}`, { details: { url }, cause: error })
    }
    try {
      const buffer = Buffer.alloc(maxBytes + 1)
      let length = 0
      for (let read = -1; read !== 0 && length <= maxBytes; length += read)
        read = (await handle.read(buffer, length, maxBytes + 1 - length, null)).bytesRead
      if (length > maxBytes)
        throw new BaseError('TILE_TOO_LARGE', `${path} holds more than the ${maxBytes} bytes it may hold`, {
          details: { url, maxBytes },
        })
      return new Uint8Array(buffer.subarray(0, length))
    } finally {
      await handle.close()
    }
  }

/**
 * `verify --event H --tiles URL`: the proof from C2SP tiles alone, no node API. The checkpoint at
 * `URL/checkpoint` must be signed by the verifier key the user gave (never one the server names)
 * under the origin the user gave; the event is found in the entry bundles (or at `--index`), proven
 * from the hash tiles against the root anchored on chain for the pinned log, and against the signed
 * checkpoint; a checkpoint of the anchored size with another root is a fork (LOG_UNTRUSTED).
 */
async function verifyEventFromTiles(flags: ParsedFlags, leafHash: Hex, tilesUrl: string) {
  const origin = requiredStringFlag(flags, 'origin')
  const key = requiredStringFlag(flags, 'verifier-key')
  const base = tilesUrl.replace(/\/+$/, '')
  // Without --shard: shard k's origin is `<origin>/shards/<k>`; another origin (shard 0's, or a
  // log without shards) is found by the event, as `verify --event` does.
  const suffix = /\/shards\/(0|[1-9][0-9]{0,3})$/.exec(origin)
  const log = await pinLog(flags, { shard: suffix ? Number(suffix[1]) : undefined, leafHash })
  const trusted = await latestAnchored(log)
  const indexFlag = stringFlag(flags, 'index')
  if (indexFlag !== undefined && !/^(0|[1-9][0-9]*)$/.test(indexFlag))
    throw new BaseError('CLI_USAGE', '--index must be a leaf index (a whole number)', {
      details: { index: indexFlag },
    })
  const { checkpoint, leafIndex, entry, auditPath } = await verifyFromTiles({
    get: base.startsWith('file:') ? fileTilesGet(base) : httpTilesGet(base),
    origin,
    verifierKey: key,
    anchored: { treeSize: trusted.treeSize, rootHash: fromHex(trusted.rootHash, 'rootHash', HASH_BYTES) },
    leafHash: fromHex(leafHash, 'leafHash', HASH_BYTES),
    ...(indexFlag === undefined ? {} : { leafIndex: Number(indexFlag) }),
    hashing: nodeMerkle,
  })
  // The envelope's own checks (form, leaf hash) on the entry the tiles proved.
  const proven = verifyEvent({
    envelope: parseEnvelopeBytes(entry),
    leafIndex,
    treeSize: trusted.treeSize,
    auditPath: auditPath.map(toHex),
    rootHash: trusted.rootHash,
    trusted,
  })
  const data = {
    ...provenEvent(proven),
    leafIndex,
    anchored: trusted,
    checkpoint: {
      origin: checkpoint.origin,
      treeSize: checkpoint.treeSize,
      rootHash: toHex(checkpoint.rootHash),
    },
    chainId: log.chainId,
    contract: log.contract,
  }
  return {
    data,
    text: `valid: ${data.kind} #${data.seq} of ${data.vehicle} is in the tree of ${trusted.treeSize} anchored on chain ${log.chainId}, proven from the tiles at ${base} (checkpoint of ${origin} signed by the given key)`,
  }
}

const verify: Command = {
  path: ['verify'],
  summary: 'Prove an event against the root anchored on chain, trusting neither the node nor its database.',
  flags: {
    event: {
      type: 'string',
      value: 'HASH|FILE',
      description: 'The event id (leaf hash) or a file with its envelope.',
    },
    bundle: {
      type: 'string',
      value: 'FILE',
      description:
        'A disclosure bundle (carchain ledger disclose): checked against the pinned log and the car’s certificate.',
    },
    registry: {
      type: 'string',
      value: 'ADDR',
      description: 'VehicleRegistry address, for --bundle (default: the node’s).',
    },
    'oem-root': {
      type: 'string',
      value: 'FILE',
      description: 'OEM root certificate(s) (PEM) to trust for --bundle instead of the registry’s.',
    },
    tiles: {
      type: 'string',
      value: 'URL',
      description:
        'Take the checkpoint, entry and proof from C2SP tiles at URL (URL/checkpoint, URL/tile/…; a node serves them at <node>/log) instead of the node’s API; needs --origin and --verifier-key.',
    },
    origin: {
      type: 'string',
      value: 'ORIGIN',
      description: 'With --tiles: the log’s origin, the first line of its checkpoints.',
    },
    'verifier-key': {
      type: 'string',
      value: 'KEY',
      description:
        'With --tiles: the log’s note verifier key (<name>+<hex>+<base64>), obtained out of band; never taken from the tiles server.',
    },
    index: {
      type: 'string',
      value: 'N',
      description:
        'With --tiles: the event’s leaf index, to read one entry bundle instead of searching them.',
    },
    ...trustFlags,
  },
  async run({ flags }) {
    const bundlePath = stringFlag(flags, 'bundle')
    if (bundlePath) return verifyBundle(flags, bundlePath)
    const target = requiredStringFlag(flags, 'event')
    let leafHash: Hex
    let fileEnvelope: unknown
    if (/^0x[0-9a-fA-F]{64}$/.test(target)) leafHash = target.toLowerCase() as Hex
    else {
      fileEnvelope = JSON.parse(await readFile(target, 'utf8'))
      leafHash = toHex(hashLeaf(encodeEnvelope(parseEnvelope(fileEnvelope))))
    }
    const tilesUrl = stringFlag(flags, 'tiles')
    if (tilesUrl) return verifyEventFromTiles(flags, leafHash, tilesUrl)
    const node = requiredStringFlag(flags, 'node')
    const claimed = (fileEnvelope as { vehicle?: unknown } | undefined)?.vehicle
    const log = await pinLog(flags, { vehicle: typeof claimed === 'string' ? claimed : undefined, leafHash })
    const trusted = await latestAnchored(log)
    const proof = await nodeJson<{ leafIndex: number; treeSize: number; auditPath: Hex[] }>(
      node,
      `${log.api}/proof/inclusion?leafHash=${leafHash}&treeSize=${trusted.treeSize}`,
    )
    const envelope =
      fileEnvelope ??
      parseEnvelopeBytes(
        fromBase64(
          (
            await nodeJson<{ entries: { leafInput: string }[] }>(
              node,
              `${log.api}/entries?start=${proof.leafIndex}&end=${proof.leafIndex + 1}`,
            )
          ).entries[0]?.leafInput,
          'leafInput',
        ),
      )
    const proven = verifyEvent({ envelope, ...proof, rootHash: trusted.rootHash, trusted })
    if (proven.id !== leafHash)
      throw new BaseError('PROOF_INVALID', 'the node returned another event than the one asked for')
    const data = {
      ...provenEvent(proven),
      leafIndex: proven.leafIndex,
      anchored: trusted,
      chainId: log.chainId,
      contract: log.contract,
    }
    return {
      data,
      text: `valid: ${data.kind} #${data.seq} of ${data.vehicle} is in the tree of ${trusted.treeSize} anchored on chain ${log.chainId}`,
    }
  },
}

type AuditedLog = {
  consistent: boolean
  anchors: number
  latest: { treeSize: number; rootHash: Hex; txHash: Hex } | null
  node: { treeSize: number; extendsChain: boolean }
  failures: { from: number; to: number }[]
}

/**
 * One log's audit: every anchor on chain for `log` is consistent with the one before (proofs from
 * the node, checked here), and the node's head extends the newest. `label` prefixes progress lines.
 */
async function auditLog(
  node: string,
  log: PinnedLog,
  progress: (message: string) => void,
  label = '',
): Promise<AuditedLog> {
  const anchors = await anchoredRoots(log)
  progress(`${label}${anchors.length} anchors on chain ${log.chainId}`)
  const consistent = async (
    first: { treeSize: number; rootHash: Hex },
    second: { treeSize: number; rootHash: Hex },
  ) => {
    const { proof } = await nodeJson<{ proof: Hex[] }>(
      node,
      `${log.api}/proof/consistency?first=${first.treeSize}&second=${second.treeSize}`,
    )
    return verifyConsistency({
      first: first.treeSize,
      second: second.treeSize,
      firstHash: fromHex(first.rootHash, 'root', 32),
      secondHash: fromHex(second.rootHash, 'root', 32),
      proof: proof.map((h) => fromHex(h, 'proof', 32)),
    })
  }
  const failures: { from: number; to: number }[] = []
  for (let i = 1; i < anchors.length; i++) {
    if (!(await consistent(anchors[i - 1]!, anchors[i]!)))
      failures.push({ from: anchors[i - 1]!.treeSize, to: anchors[i]!.treeSize })
    if (i % 50 === 0) progress(`${label}checked ${i}/${anchors.length - 1}`)
  }
  const head = await nodeJson<{ treeSize: number; rootHash: Hex }>(node, `${log.api}/checkpoint`)
  const last = anchors.at(-1)
  const nodeExtendsChain = !last || (await consistent(last, head))
  if (last && !nodeExtendsChain) failures.push({ from: last.treeSize, to: head.treeSize })
  return {
    consistent: failures.length === 0,
    anchors: anchors.length,
    latest: last ? { treeSize: last.treeSize, rootHash: last.rootHash, txHash: last.txHash } : null,
    node: { treeSize: head.treeSize, extendsChain: nodeExtendsChain },
    failures,
  }
}

/** How many shards the node's log has (1 for a node from before shards). */
async function nodeShardCount(node: string): Promise<number> {
  try {
    return (await nodeJson<ShardList>(node, '/v1/log/shards')).count
  } catch (error) {
    if (isErrorCode(error, 'NOT_FOUND')) return 1
    throw error
  }
}

const audit: Command = {
  path: ['audit'],
  summary:
    'Check every on-chain anchor is consistent with the previous one and with the node’s log: every shard’s, or one (--shard, --log-id).',
  flags: trustFlags,
  async run({ flags, io }) {
    const node = requiredStringFlag(flags, 'node')
    const one = flags.shard !== undefined || flags['log-id'] !== undefined
    const count = one ? 1 : await nodeShardCount(node)
    if (count === 1) {
      const data = await auditLog(node, await pinLog(flags), (message) => io.progress(message))
      return {
        data,
        exitCode: data.consistent ? 0 : 1,
        text: data.consistent
          ? `consistent: ${data.anchors} anchors, each extending the last; the node's log (${data.node.treeSize}) extends the newest`
          : `INCONSISTENT: ${data.failures.map((f) => `${f.from}→${f.to}`).join(', ')}`,
      }
    }
    // Every shard in turn, each its own log with its own anchors (one batch transaction anchors several).
    const shards: (AuditedLog & { shard: number; logId: Hex })[] = []
    for (let shard = 0; shard < count; shard++) {
      const log = await pinLog(flags, { shard })
      const label = `shard ${shard}/${count}: `
      const audited = await auditLog(node, log, (message) => io.progress(message), label)
      io.progress(
        `${label}${audited.consistent ? 'consistent' : 'INCONSISTENT'} (${audited.anchors} anchors, node at ${audited.node.treeSize})`,
      )
      shards.push({ shard, logId: log.logId, ...audited })
    }
    const bad = shards.filter((s) => !s.consistent)
    const anchors = shards.reduce((sum, s) => sum + s.anchors, 0)
    const data = { consistent: bad.length === 0, anchors, shards }
    return {
      data,
      exitCode: data.consistent ? 0 : 1,
      text: data.consistent
        ? `consistent: all ${count} shards, ${anchors} anchors, each extending its shard's last; every shard's log on the node extends its newest`
        : `INCONSISTENT: ${bad.map((s) => `shard ${s.shard} ${s.failures.map((f) => `${f.from}→${f.to}`).join(', ')}`).join('; ')} (the other ${count - bad.length} shards consistent)`,
    }
  },
}

const ownerFlags: Record<string, FlagSpec> = {
  node: trustFlags.node!,
  'owner-key': {
    type: 'string',
    value: '0xKEY',
    description: 'Owner’s or manager’s key (env CARCHAIN_OWNER_KEY).',
  },
  'owner-index': {
    type: 'string',
    value: 'N',
    description: 'Owner as account N of the development mnemonic.',
  },
}

const erase: Command = {
  path: ['ledger', 'erase'],
  summary: 'Erase payloads (privacy law): one event’s or a whole vehicle’s; every proof stays valid.',
  flags: {
    event: { type: 'string', value: 'HASH', description: 'The event whose payload to erase.' },
    vehicle: { type: 'string', value: 'ADDR', description: 'Erase every payload of this vehicle.' },
    ...ownerFlags,
  },
  async run({ flags }) {
    const node = requiredStringFlag(flags, 'node')
    const event = stringFlag(flags, 'event')
    const vehicle = stringFlag(flags, 'vehicle')
    if (!event === !vehicle) throw new BaseError('CLI_USAGE', 'give exactly one of --event and --vehicle')
    const token = await signIn(
      node,
      accountFromFlags(flags, 'owner-key', 'owner-index', 'CARCHAIN_OWNER_KEY'),
    )
    const path = event ? `/v1/events/${event}/payload` : `/v1/vehicles/${vehicle}/payloads`
    const result = await nodeJson<{ erased: number; by: string }>(node, path, { method: 'DELETE', token })
    return { data: result, text: `erased ${result.erased} payload(s)` }
  },
}

const disclose: Command = {
  path: ['ledger', 'disclose'],
  summary:
    'Write a bundle (envelope, payload, salt, inclusion proof, the car’s signature and certificate) that `verify --bundle` checks.',
  flags: {
    event: { type: 'string', value: 'HASH', description: 'The event to disclose.', required: true },
    out: { type: 'string', value: 'FILE', description: 'Where to write the bundle.', required: true },
    ...ownerFlags,
  },
  async run({ flags }) {
    const node = requiredStringFlag(flags, 'node')
    const token = await signIn(
      node,
      accountFromFlags(flags, 'owner-key', 'owner-index', 'CARCHAIN_OWNER_KEY'),
    )
    const disclosure = await nodeJson<Disclosure>(
      node,
      `/v1/events/${requiredStringFlag(flags, 'event')}/disclosure`,
      { token },
    )
    // The bundle names the log of the event's shard.
    const { api } = await nodeLogId(node, { vehicle: disclosure.envelope.vehicle })
    const checkpoint = await nodeJson<{ logId: Hex; contract: Address; chainId: number }>(
      node,
      `${api}/checkpoint`,
    )
    const bundle: DisclosureBundle = {
      v: 2,
      kind: 'carchain.disclosure',
      disclosure,
      anchor: { chainId: checkpoint.chainId, contract: checkpoint.contract, logId: checkpoint.logId },
    }
    const out = requiredStringFlag(flags, 'out')
    await writeFile(out, `${JSON.stringify(bundle, null, 2)}\n`)
    return {
      data: { out, treeSize: disclosure.treeSize, withPayload: disclosure.payload !== undefined },
      text: `wrote ${out}`,
    }
  },
}

export const ledgerCommands: readonly Command[] = [verify, audit, erase, disclose]
