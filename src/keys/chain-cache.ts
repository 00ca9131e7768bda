/**
 * What a car knows of the chain about itself, synced from chain events whenever it is online and
 * persisted with the vehicle, so it decides offline — even after a restart with no RPC.
 *
 * Sync policy (docs/keys.md): from a cursor block, `eth_getLogs` for this title's VehicleRegistry
 * events (`Transfer` → owner, and the per-title approval cleared; `Approval` → the approved
 * manager; `UpdateUser` → the ERC-4907 renter and expiry), the owner's `ApprovalForAll`
 * (operators = managers; rescanned from `fromBlock` whenever the owner changes) and KeyRegistry's
 * `GrantRevoked` / `EpochBumped` for this vehicle. Events are applied in (block, logIndex) order;
 * the cache file is written atomically after every sync that changed anything. Only blocks
 * `confirmations` deep are read, which is the reorg policy.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Address, Chain, Hex, PublicClient, Transport } from 'viem'
import { vehicleRegistryAbi } from '../chain/generated/index.ts'
import { BaseError } from '../errors.ts'
import { writeFileAtomic } from '../fs-atomic.ts'
import type { KeyState } from './access-control.ts'

/** The persisted form (`<dir>/key-cache.json`). */
export type ChainCacheSnapshot = {
  v: 1
  chainId: number
  vehicleRegistry: Address
  keyRegistry: Address
  vehicle: Address
  /** Last block applied (decimal string); -1 before the first sync. */
  cursor: string
  /** That block's hash: when the chain no longer holds it, a reorg happened (older files lack it). */
  cursorHash?: Hex | undefined
  owner: Address | null
  /** The account approved for this title (ERC-721 `approve`). */
  approved: Address | null
  /** The owner's ERC-721 operators (`setApprovalForAll`). */
  operators: Address[]
  user: Address | null
  userExpires: number
  epoch: number
  revoked: Hex[]
  /** When the last sync succeeded (unix ms); 0 never. */
  syncedAtMs: number
}

export type ChainCacheOptions = {
  client: PublicClient<Transport, Chain | undefined>
  chainId: number
  vehicleRegistry: Address
  keyRegistry: Address
  vehicle: Address
  /** Directory for `key-cache.json`; omitted: memory only. */
  dir?: string | undefined
  /** First block to scan (the registries' deployment); default 0. */
  fromBlock?: bigint | undefined
  /** Blocks behind the head to treat as final; default 0 (anvil). */
  confirmations?: number | undefined
  /** Blocks per eth_getLogs call; default 10,000. */
  maxBlockRange?: number | undefined
}

export type ChainCacheStatus = {
  online: boolean
  cursor: bigint
  syncedAtMs: number
  lastError: string | undefined
}

const ZERO_ADDRESS = '0x0000000000000000000000000000000000000000'
export const CACHE_FILE = 'key-cache.json'

const lower = <T extends string>(value: T): T => value.toLowerCase() as T
const orNull = (address: string): Address | null =>
  address === ZERO_ADDRESS ? null : lower(address as Address)

type Ordered = { blockNumber: bigint | null; logIndex: number | null }
const byPosition = (a: Ordered, b: Ordered) =>
  a.blockNumber === b.blockNumber
    ? (a.logIndex ?? 0) - (b.logIndex ?? 0)
    : (a.blockNumber ?? 0n) < (b.blockNumber ?? 0n)
      ? -1
      : 1

/** The vehicle's synced view of owner, managers, renter, epoch and revocations. */
export class ChainCache implements KeyState {
  readonly vehicle: Address
  readonly tokenId: bigint
  readonly #options: ChainCacheOptions
  readonly #path: string | undefined
  #snapshot: ChainCacheSnapshot
  #operators = new Set<Address>()
  #revoked = new Set<Hex>()
  #online = false
  #lastError: string | undefined
  #timer: NodeJS.Timeout | undefined
  #syncing: Promise<boolean> | undefined
  readonly #listeners = new Set<(snapshot: ChainCacheSnapshot) => void>()

  constructor(options: ChainCacheOptions) {
    this.#options = options
    this.vehicle = lower(options.vehicle)
    this.tokenId = BigInt(this.vehicle)
    this.#path = options.dir === undefined ? undefined : join(options.dir, CACHE_FILE)
    this.#snapshot = this.#load() ?? {
      v: 1,
      chainId: options.chainId,
      vehicleRegistry: lower(options.vehicleRegistry),
      keyRegistry: lower(options.keyRegistry),
      vehicle: this.vehicle,
      cursor: String((options.fromBlock ?? 0n) - 1n),
      owner: null,
      approved: null,
      operators: [],
      user: null,
      userExpires: 0,
      epoch: 0,
      revoked: [],
      syncedAtMs: 0,
    }
    this.#operators = new Set(this.#snapshot.operators)
    this.#revoked = new Set(this.#snapshot.revoked)
  }

  // --- KeyState: synchronous lookups for the offline decision ---------------------------------

  isOwnerOrManager(address: Address): boolean {
    const { owner, approved } = this.#snapshot
    return owner !== null && (address === owner || address === approved || this.#operators.has(address))
  }

  isOwner(address: Address): boolean {
    return this.#snapshot.owner !== null && address === this.#snapshot.owner
  }

  syncedAtMs(): number {
    return this.#snapshot.syncedAtMs
  }

  epoch(): number {
    return this.#snapshot.epoch
  }

  isRevoked(grantId: Hex): boolean {
    return this.#revoked.has(grantId)
  }

  rentalUser(): { user: Address; expiresSec: number } | undefined {
    const { user, userExpires } = this.#snapshot
    return user === null ? undefined : { user, expiresSec: userExpires }
  }

  // --- state and status ------------------------------------------------------------------------

  /** A copy of what the car knows. */
  snapshot(): ChainCacheSnapshot {
    return structuredClone(this.#snapshot)
  }

  status(): ChainCacheStatus {
    return {
      online: this.#online,
      cursor: BigInt(this.#snapshot.cursor),
      syncedAtMs: this.#snapshot.syncedAtMs,
      lastError: this.#lastError,
    }
  }

  /** Calls `listener` after each sync that changed something (e.g. to log a sale). */
  onChange(listener: (snapshot: ChainCacheSnapshot) => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  // --- sync ------------------------------------------------------------------------------------

  /**
   * Applies every new event up to the head (minus confirmations). Throws CHAIN_UNREACHABLE when
   * the RPC fails; the cache then keeps what it had. Returns whether anything changed.
   */
  sync(): Promise<boolean> {
    // one sync at a time: a second caller shares the running one
    this.#syncing ??= this.#sync().finally(() => {
      this.#syncing = undefined
    })
    return this.#syncing
  }

  async #sync(): Promise<boolean> {
    const { client, confirmations = 0, maxBlockRange = 10_000 } = this.#options
    let changed = false
    const cursorBefore = this.#snapshot.cursor
    try {
      const tip = await client.getBlockNumber({ cacheTime: 0 })
      const head = tip - BigInt(confirmations)
      let cursor = BigInt(this.#snapshot.cursor)
      const seenHash = this.#snapshot.cursorHash
      if (cursor >= 0n && seenHash !== undefined) {
        // A reorg replaced the last block applied: what was scanned may differ from the chain now.
        const hash = cursor > tip ? undefined : (await client.getBlock({ blockNumber: cursor })).hash
        if (hash !== seenHash) {
          this.#rewind()
          cursor = BigInt(this.#snapshot.cursor)
          changed = true
        }
      }
      // Read before scanning: a reorg during the scan shows as a mismatch at the next sync.
      const headHash =
        head >= 0n && head > cursor ? (await client.getBlock({ blockNumber: head })).hash : undefined
      while (cursor < head) {
        const toBlock = cursor + BigInt(maxBlockRange) < head ? cursor + BigInt(maxBlockRange) : head
        changed = (await this.#applyRange(cursor + 1n, toBlock)) || changed
        cursor = toBlock
        this.#snapshot.cursor = String(cursor)
      }
      if (headHash !== undefined) this.#snapshot.cursorHash = headHash
      this.#online = true
      this.#lastError = undefined
      this.#snapshot.syncedAtMs = Date.now()
    } catch (error) {
      this.#online = false
      this.#lastError = error instanceof Error ? error.message.split('\n')[0] : String(error)
      if (changed) this.#persist()
      throw new BaseError('CHAIN_UNREACHABLE', `key cache sync failed: ${this.#lastError}`, { cause: error })
    }
    if (changed || this.#snapshot.cursor !== cursorBefore) this.#persist()
    if (changed) for (const listener of this.#listeners) listener(this.snapshot())
    return changed
  }

  /**
   * After a reorg: scan again from the first block. Owner, approvals, operators and renter come
   * back from the new branch; the epoch and the revocations seen are kept, since they only ever
   * tighten access and a revocation dropped by a reorg is one the owner meant (and re-sends).
   */
  #rewind(): void {
    const s = this.#snapshot
    s.cursor = String((this.#options.fromBlock ?? 0n) - 1n)
    s.cursorHash = undefined
    s.owner = null
    s.approved = null
    s.user = null
    s.userExpires = 0
    this.#operators.clear()
    s.operators = []
  }

  async #applyRange(fromBlock: bigint, toBlock: bigint): Promise<boolean> {
    const { client, vehicleRegistry, keyRegistry } = this.#options
    const tokenId = this.tokenId
    const vehicle = this.vehicle
    const range = { fromBlock, toBlock, strict: true } as const
    const reg = { address: vehicleRegistry, abi: vehicleRegistryAbi } as const
    const keys = { address: keyRegistry, abi: vehicleRegistryAbi } as const
    const ownerBefore = this.#snapshot.owner
    const [transfers, approvals, users, revocations, epochs, operatorLogs] = await Promise.all([
      client.getContractEvents({ ...reg, eventName: 'Transfer', args: { tokenId }, ...range }),
      client.getContractEvents({ ...reg, eventName: 'Approval', args: { tokenId }, ...range }),
      client.getContractEvents({ ...reg, eventName: 'UpdateUser', args: { tokenId }, ...range }),
      client.getContractEvents({ ...keys, eventName: 'GrantRevoked', args: { vehicle }, ...range }),
      client.getContractEvents({ ...keys, eventName: 'EpochBumped', args: { vehicle }, ...range }),
      ownerBefore === null
        ? Promise.resolve([])
        : client.getContractEvents({
            ...reg,
            eventName: 'ApprovalForAll',
            args: { owner: ownerBefore },
            ...range,
          }),
    ])
    const s = this.#snapshot
    let changed = false
    type TitleLog =
      | { kind: 'transfer'; to: Address; log: Ordered }
      | { kind: 'approval'; approved: Address; log: Ordered }
      | { kind: 'user'; user: Address; expires: number; log: Ordered }
    const titleLogs: TitleLog[] = [
      ...transfers.map((log) => ({ kind: 'transfer' as const, to: log.args.to as Address, log })),
      ...approvals.map((log) => ({ kind: 'approval' as const, approved: log.args.approved as Address, log })),
      ...users.map((log) => ({
        kind: 'user' as const,
        user: log.args.user as Address,
        expires: Number(log.args.expires),
        log,
      })),
    ].sort((a, b) => byPosition(a.log, b.log))
    for (const entry of titleLogs) {
      changed = true
      if (entry.kind === 'transfer') {
        s.owner = orNull(entry.to)
        s.approved = null // ERC-721: a transfer clears the per-token approval
      } else if (entry.kind === 'approval') s.approved = orNull(entry.approved)
      else {
        s.user = orNull(entry.user)
        s.userExpires = s.user === null ? 0 : entry.expires
      }
    }
    for (const log of revocations) {
      const grantId = lower(log.args.grantId as Hex)
      if (!this.#revoked.has(grantId)) {
        this.#revoked.add(grantId)
        changed = true
      }
    }
    for (const log of [...epochs].sort(byPosition)) {
      // The epoch only grows on chain; after a rewind, a higher one seen before is kept.
      s.epoch = Math.max(s.epoch, Number(log.args.epoch))
      changed = true
    }
    if (s.owner !== ownerBefore) {
      // a new owner: its operators are whatever it approved, ever
      this.#operators.clear()
      if (s.owner !== null) {
        const all = await client.getContractEvents({
          ...reg,
          eventName: 'ApprovalForAll',
          args: { owner: s.owner },
          fromBlock: this.#options.fromBlock ?? 0n,
          toBlock,
          strict: true,
        })
        this.#applyOperators(all)
      }
      changed = true
    } else if (operatorLogs.length > 0) {
      this.#applyOperators(operatorLogs)
      changed = true
    }
    s.operators = [...this.#operators]
    s.revoked = [...this.#revoked]
    return changed
  }

  #applyOperators(logs: readonly (Ordered & { args: { operator?: Address; approved?: boolean } })[]): void {
    for (const log of [...logs].sort(byPosition)) {
      const operator = lower(log.args.operator as Address)
      if (log.args.approved) this.#operators.add(operator)
      else this.#operators.delete(operator)
    }
  }

  /** Syncs now and then every `intervalMs` until `stop()`; failures mark the cache offline. */
  start(intervalMs = 1000): void {
    if (this.#timer) return
    const tick = async () => {
      try {
        await this.sync()
      } catch {
        // offline: keep deciding from the cache; status() tells
      }
      if (this.#timer) this.#timer = setTimeout(tick, intervalMs)
    }
    this.#timer = setTimeout(tick, 0)
  }

  /** Stops the sync loop (waits for a running sync). */
  async stop(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = undefined
    if (this.#syncing) await Promise.allSettled([this.#syncing]) // a failed sync marks the cache offline
  }

  // --- persistence -----------------------------------------------------------------------------

  #load(): ChainCacheSnapshot | undefined {
    if (this.#path === undefined || !existsSync(this.#path)) return undefined
    let parsed: ChainCacheSnapshot
    try {
      parsed = JSON.parse(readFileSync(this.#path, 'utf8')) as ChainCacheSnapshot
    } catch (error) {
      throw new BaseError('DATA_DIR_INVALID', `${this.#path} is not valid JSON`, { cause: error })
    }
    const o = this.#options
    const same =
      parsed.v === 1 &&
      parsed.chainId === o.chainId &&
      parsed.vehicle === lower(o.vehicle) &&
      parsed.keyRegistry === lower(o.keyRegistry) &&
      parsed.vehicleRegistry === lower(o.vehicleRegistry)
    // a cache for another chain or deployment is useless, not an error: start over
    return same ? parsed : undefined
  }

  #persist(): void {
    if (this.#path === undefined) return
    mkdirSync(join(this.#path, '..'), { recursive: true })
    writeFileAtomic(this.#path, `${JSON.stringify(this.#snapshot)}\n`)
  }
}
