/**
 * The node's chain indexer: follows VehicleRegistry `Transfer` events (mints and sales) into
 * `node_titles`, from a cursor kept in `node_settings`, so reads such as the fleet view come from
 * the database, and their history into `node_title_transfers` (the title periods that payload
 * access is cut by, src/ledger/payload-access.ts). It polls (default 1 s) and resumes from its
 * cursor after a restart or an RPC outage; a reorg is healed by re-reading the last `reorgDepth` blocks on every pass (a title's
 * row always holds the newest transfer seen).
 */
import { type Address, getAddress } from 'viem'
import { vehicleRegistryAbi } from '../chain/generated/index.ts'
import { fromHex, toHex } from '../ledger/bytes.ts'
import { recordTitleTransfers, type TitleTransfer } from '../ledger/payload-access.ts'
import { logger } from '../log.ts'
import type { NodeContext } from './context.ts'

const log = logger('node.indexer')

export type ChainIndexer = {
  /** One pass now (tests). */
  sync(): Promise<void>
  /** The indexed owner of a vehicle's title, or null. */
  ownerOf(vehicle: Address): Promise<Address | null>
  stop(): Promise<void>
}

export function startChainIndexer(
  context: Pick<NodeContext, 'db' | 'clients' | 'contracts' | 'deployment'>,
  options: { pollMs?: number; reorgDepth?: number } = {},
): ChainIndexer {
  const { db, clients, contracts } = context
  const reorgDepth = BigInt(options.reorgDepth ?? 12)
  const deployedAt = BigInt(context.deployment.contracts.VehicleRegistry.blockNumber)
  let running: Promise<void> | undefined
  let stopped = false

  const cursor = async (): Promise<bigint> => {
    const { rows } = await db.query<{ value: string }>(
      `select value from node_settings where key = 'indexerCursor'`,
    )
    return rows[0] ? BigInt(rows[0].value) : deployedAt
  }
  /** The transfers of `logs` with their blocks' timestamps (the history of title periods). */
  const titleTransfers = async (
    logs: readonly { args: unknown; blockNumber: bigint; logIndex: number }[],
  ): Promise<TitleTransfer[]> => {
    const blocks = [...new Set(logs.map((log) => log.blockNumber))]
    const atMs = new Map<bigint, number>()
    for (const blockNumber of blocks) {
      const block = await clients.publicClient.getBlock({ blockNumber })
      atMs.set(blockNumber, Number(block.timestamp) * 1000)
    }
    return logs.map((log) => {
      const { to, tokenId } = log.args as { to: Address; tokenId: bigint }
      return {
        vehicle: getAddress(`0x${tokenId.toString(16).padStart(40, '0')}`),
        owner: getAddress(to),
        blockNumber: log.blockNumber,
        logIndex: log.logIndex,
        atMs: atMs.get(log.blockNumber)!,
      }
    })
  }
  const pass = async () => {
    // Uncached: viem keeps a block number for seconds, and a pass must see every block mined so far.
    const head = await clients.publicClient.getBlockNumber({ cacheTime: 0 })
    let from = (await cursor()) - reorgDepth
    if (from < deployedAt) from = deployedAt
    // The chain lost blocks (embedded chain after a crash): read again from where it is.
    if (from > head) from = head > reorgDepth ? head - reorgDepth : 0n
    for (let start = from; start <= head; start += 2000n) {
      const end = start + 1999n < head ? start + 1999n : head
      const logs = await clients.publicClient.getContractEvents({
        address: contracts.VehicleRegistry,
        abi: vehicleRegistryAbi,
        eventName: 'Transfer',
        fromBlock: start,
        toBlock: end,
      })
      await recordTitleTransfers(db, { fromBlock: start, toBlock: end }, await titleTransfers(logs))
      for (const log of logs) {
        const { to, tokenId } = log.args as { to: Address; tokenId: bigint }
        const vehicle = `0x${tokenId.toString(16).padStart(40, '0')}`
        await db.query(
          `insert into node_titles (vehicle, owner, block_number) values ($1, $2, $3)
           on conflict (vehicle) do update set owner = excluded.owner, block_number = excluded.block_number
           where node_titles.block_number <= excluded.block_number`,
          [fromHex(vehicle, 'vehicle', 20), fromHex(to, 'owner', 20), log.blockNumber],
        )
      }
      await db.query(
        `insert into node_settings (key, value) values ('indexerCursor', $1)
         on conflict (key) do update set value = excluded.value, updated_at = now()`,
        [JSON.stringify(String(end + 1n))],
      )
    }
  }
  /** A pass that starts now (after any pass in flight), so it sees everything mined so far. */
  const sync = async (): Promise<void> => {
    // Only to run after the pass in flight: its failure went to whoever started it.
    while (running) await Promise.allSettled([running])
    running = pass().finally(() => {
      running = undefined
    })
    return running
  }
  const timer = setInterval(() => {
    if (!stopped && !running)
      sync().catch((error: unknown) =>
        log.error({ err: error }, 'chain indexer sync failed; the next pass retries from the cursor'),
      )
  }, options.pollMs ?? 1000)
  timer.unref()
  return {
    sync,
    async ownerOf(vehicle) {
      const key = fromHex(vehicle, 'vehicle', 20)
      const { rows } = await db.query<{ owner: Uint8Array }>(
        'select owner from node_titles where vehicle = $1',
        [key],
      )
      if (rows[0]) return getAddress(toHex(new Uint8Array(rows[0].owner)))
      // Not indexed yet (a title minted since the last pass): read through, and remember it as
      // older than any event, so the next pass's events win.
      const owner = await clients.publicClient
        .readContract({
          address: contracts.VehicleRegistry,
          abi: vehicleRegistryAbi,
          functionName: 'ownerOf',
          args: [BigInt(vehicle)],
        })
        .catch((error: unknown) => {
          log.warn({ err: error, vehicle }, 'reading ownerOf from the chain failed; answering no owner')
          return null
        })
      if (owner)
        await db.query(
          'insert into node_titles (vehicle, owner, block_number) values ($1, $2, 0) on conflict (vehicle) do nothing',
          [key, fromHex(owner, 'owner', 20)],
        )
      return owner
    },
    async stop() {
      stopped = true
      clearInterval(timer)
      if (running) await Promise.allSettled([running]) // only to stop after it: its failure went to its caller
    },
  }
}
