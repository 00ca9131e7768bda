/**
 * `carchain verify`, `carchain audit`, `carchain ledger erase|disclose`: checking the ledger
 * against the roots anchored on chain, trusting neither the node nor its database — the node
 * only supplies entries and proofs, which are checked; roots come from the chain.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { type Address, createPublicClient, getAddress, http, type PublicClient } from 'viem'
import { ledgerAnchorAbi } from '../../chain/generated/index.ts'
import { BaseError } from '../../errors.ts'
import { fromBase64, fromHex, type Hex, toHex } from '../../ledger/bytes.ts'
import { encodeEnvelope, parseEnvelope, parseEnvelopeBytes } from '../../ledger/envelope.ts'
import { hashLeaf, verifyConsistency } from '../../ledger/merkle.ts'
import { type Disclosure, verifyDisclosure, verifyEvent } from '../../ledger/verify.ts'
import type { Command, FlagSpec, ParsedFlags } from '../command.ts'
import { requiredStringFlag, stringFlag } from '../flags.ts'
import { accountFromFlags, nodeJson, signIn } from '../remote.ts'

/** The file `ledger disclose` writes and `verify --bundle` reads. */
export type DisclosureBundle = {
  v: 1
  kind: 'carchain.disclosure'
  disclosure: Disclosure
  anchor: { chainId: number; contract: Address; logId: Hex; rpcUrl?: string }
}

type LogLocation = { chainId: number; contract: Address; logId: Hex; rpcUrl: string; client: PublicClient }

const trustFlags: Record<string, FlagSpec> = {
  node: {
    type: 'string',
    value: 'URL',
    description: 'A Carchain node (entries and proofs; never trusted).',
    default: 'http://127.0.0.1:8080',
  },
  rpc: {
    type: 'string',
    value: 'URL',
    description: 'Ethereum JSON-RPC to read anchors from (default: the node’s).',
  },
  contract: { type: 'string', value: 'ADDR', description: 'LedgerAnchor address (default: the node’s).' },
  'log-id': { type: 'string', value: '0x…', description: 'The log id (default: the node’s).' },
}

async function locateLog(
  flags: ParsedFlags,
  hint?: Partial<DisclosureBundle['anchor']>,
): Promise<LogLocation> {
  const node = stringFlag(flags, 'node')
  const needNode =
    !(stringFlag(flags, 'contract') ?? hint?.contract) || !(stringFlag(flags, 'log-id') ?? hint?.logId)
  const checkpoint =
    needNode && node
      ? await nodeJson<{ logId: Hex; contract: Address; chainId: number }>(node, '/v1/log/checkpoint')
      : undefined
  const rpcUrl =
    stringFlag(flags, 'rpc') ??
    hint?.rpcUrl ??
    (node ? (await nodeJson<{ rpcUrl: string }>(node, '/v1/chain')).rpcUrl : undefined)
  const contract = stringFlag(flags, 'contract') ?? hint?.contract ?? checkpoint?.contract
  const logId = (stringFlag(flags, 'log-id') ?? hint?.logId ?? checkpoint?.logId) as Hex | undefined
  if (!rpcUrl || !contract || !logId)
    throw new BaseError('CLI_USAGE', 'give --node, or --rpc with --contract and --log-id')
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
  const expected = hint?.chainId ?? checkpoint?.chainId
  if (expected !== undefined && expected !== chainId)
    throw new BaseError(
      'CHAIN_MISMATCH',
      `the log is anchored on chain ${expected}, ${rpcUrl} is chain ${chainId}`,
    )
  return { chainId, contract: getAddress(contract), logId, rpcUrl, client }
}

/** Every root anchored for the log, oldest first, read from the chain's `Anchored` events. */
async function anchoredRoots(
  log: LogLocation,
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

async function latestAnchored(log: LogLocation): Promise<{ treeSize: number; rootHash: Hex }> {
  const [treeSize, rootHash] = await log.client.readContract({
    address: log.contract,
    abi: ledgerAnchorAbi,
    functionName: 'latest',
    args: [log.logId],
  })
  if (treeSize === 0n) throw new BaseError('NOT_FOUND', `nothing is anchored yet for log ${log.logId}`)
  return { treeSize: Number(treeSize), rootHash }
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
      description: 'A disclosure bundle (carchain ledger disclose); needs no node.',
    },
    ...trustFlags,
  },
  async run({ flags }) {
    const bundlePath = stringFlag(flags, 'bundle')
    if (bundlePath) {
      const bundle = JSON.parse(await readFile(bundlePath, 'utf8')) as DisclosureBundle
      if (bundle?.kind !== 'carchain.disclosure' || bundle.v !== 1)
        throw new BaseError('EVENT_MALFORMED', `${bundlePath} is not a Carchain disclosure bundle`)
      const proven = verifyDisclosure({ disclosure: bundle.disclosure })
      const log = await locateLog({ ...flags, node: undefined }, bundle.anchor)
      const anchors = await anchoredRoots(log)
      const anchor = anchors.find(
        (a) => a.treeSize === bundle.disclosure.treeSize && a.rootHash === bundle.disclosure.rootHash,
      )
      if (!anchor)
        throw new BaseError(
          'PROOF_INVALID',
          `no anchor of size ${bundle.disclosure.treeSize} with this root on chain ${log.chainId}`,
          {
            details: { reason: 'anchor', treeSize: bundle.disclosure.treeSize },
          },
        )
      const data = {
        valid: true,
        id: proven.id,
        vehicle: proven.envelope.vehicle,
        seq: proven.envelope.seq,
        kind: proven.envelope.kind,
        payload: proven.data ?? null,
        anchor: {
          treeSize: anchor.treeSize,
          txHash: anchor.txHash,
          blockNumber: anchor.blockNumber.toString(),
        },
      }
      return {
        data,
        text: `valid: ${data.kind} #${data.seq} of ${data.vehicle}, anchored in tx ${anchor.txHash}`,
      }
    }
    const target = requiredStringFlag(flags, 'event')
    const node = requiredStringFlag(flags, 'node')
    const log = await locateLog(flags)
    const trusted = await latestAnchored(log)
    let leafHash: Hex
    let fileEnvelope: unknown
    if (/^0x[0-9a-fA-F]{64}$/.test(target)) leafHash = target.toLowerCase() as Hex
    else {
      fileEnvelope = JSON.parse(await readFile(target, 'utf8'))
      leafHash = toHex(hashLeaf(encodeEnvelope(parseEnvelope(fileEnvelope))))
    }
    const proof = await nodeJson<{ leafIndex: number; treeSize: number; auditPath: Hex[] }>(
      node,
      `/v1/log/proof/inclusion?leafHash=${leafHash}&treeSize=${trusted.treeSize}`,
    )
    const envelope =
      fileEnvelope ??
      parseEnvelopeBytes(
        fromBase64(
          (
            await nodeJson<{ entries: { leafInput: string }[] }>(
              node,
              `/v1/log/entries?start=${proof.leafIndex}&end=${proof.leafIndex + 1}`,
            )
          ).entries[0]?.leafInput,
          'leafInput',
        ),
      )
    const proven = verifyEvent({ envelope, ...proof, rootHash: trusted.rootHash, trusted })
    if (proven.id !== leafHash)
      throw new BaseError('PROOF_INVALID', 'the node returned another event than the one asked for')
    const data = {
      valid: true,
      id: proven.id,
      vehicle: proven.envelope.vehicle,
      seq: proven.envelope.seq,
      kind: proven.envelope.kind,
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

const audit: Command = {
  path: ['audit'],
  summary: 'Check every on-chain anchor is consistent with the previous one and with the node’s log.',
  flags: trustFlags,
  async run({ flags, io }) {
    const node = requiredStringFlag(flags, 'node')
    const log = await locateLog(flags)
    const anchors = await anchoredRoots(log)
    io.progress(`${anchors.length} anchors on chain ${log.chainId}`)
    const consistent = async (
      first: { treeSize: number; rootHash: Hex },
      second: { treeSize: number; rootHash: Hex },
    ) => {
      const { proof } = await nodeJson<{ proof: Hex[] }>(
        node,
        `/v1/log/proof/consistency?first=${first.treeSize}&second=${second.treeSize}`,
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
      if (i % 50 === 0) io.progress(`checked ${i}/${anchors.length - 1}`)
    }
    const head = await nodeJson<{ treeSize: number; rootHash: Hex }>(node, '/v1/log/checkpoint')
    const last = anchors.at(-1)
    const nodeExtendsChain = !last || (await consistent(last, head))
    if (last && !nodeExtendsChain) failures.push({ from: last.treeSize, to: head.treeSize })
    const data = {
      consistent: failures.length === 0,
      anchors: anchors.length,
      latest: last ? { treeSize: last.treeSize, rootHash: last.rootHash, txHash: last.txHash } : null,
      node: { treeSize: head.treeSize, extendsChain: nodeExtendsChain },
      failures,
    }
    return {
      data,
      exitCode: data.consistent ? 0 : 1,
      text: data.consistent
        ? `consistent: ${anchors.length} anchors, each extending the last; the node's log (${head.treeSize}) extends the newest`
        : `INCONSISTENT: ${failures.map((f) => `${f.from}→${f.to}`).join(', ')}`,
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
    'Write a bundle (envelope, payload, salt, inclusion proof, anchor) that `verify --bundle` checks with no node.',
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
    const [checkpoint, chain] = await Promise.all([
      nodeJson<{ logId: Hex; contract: Address; chainId: number }>(node, '/v1/log/checkpoint'),
      nodeJson<{ rpcUrl: string }>(node, '/v1/chain'),
    ])
    const bundle: DisclosureBundle = {
      v: 1,
      kind: 'carchain.disclosure',
      disclosure,
      anchor: {
        chainId: checkpoint.chainId,
        contract: checkpoint.contract,
        logId: checkpoint.logId,
        rpcUrl: chain.rpcUrl,
      },
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
