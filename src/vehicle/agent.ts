/**
 * The in-car agent: a composition of the car's parts, nothing more.
 *
 * ```
 *   key store (identity P-256, wallet secp256k1)
 *   chain cache ──▶ access controller ◀── use counters (<dir>/key-uses.log)
 *                        ▲
 *   link server (WebSocket for BLE/NFC) ──▶ recorder (ledger) ──▶ vehicle model
 *                                                          └──▶ owner notices
 * ```
 *
 * Extension points, for the parts others add later (ledger upload, charging, telemetry):
 * - `recorder`: inject the vehicle's local ledger log (`AccessRecorder`); every event the agent
 *   makes goes through it, in order.
 * - `plugins`: objects with `start(agent)` / `stop()`, started after the link and cache and stopped
 *   before them (e.g. a ledger uploader, a charging session manager using `agent.wallet()`).
 * - `onNotice(listener)`: owner notifications (a delivery key used, …) for the node to forward.
 * - `onAttempt` on `agent.link`: every link attempt with its code.
 */
import type { Address, Chain, Hex, LocalAccount, PublicClient, Transport } from 'viem'
import { BaseError } from '../errors.ts'
import { keyStoreAccount } from '../identity/account.ts'
import type { KeyRef, KeyStore } from '../identity/keystore.ts'
import { AccessController, type AccessDecision } from '../keys/access-control.ts'
import { ChainCache } from '../keys/chain-cache.ts'
import type { DenialBudgetOptions } from '../keys/denial-budget.ts'
import { LinkServer } from '../keys/link-server.ts'
import { FilePasskeyCounters, type PasskeyPolicy } from '../keys/passkey.ts'
import type { AccessRecorder } from '../keys/recorder.ts'
import { type KeyDomain, scopeNames } from '../keys/typed-data.ts'
import { FileUseCounter, type UseCounter } from '../keys/use-counter.ts'
import { logger } from '../log.ts'
import { VehicleModel, type VehicleStatus } from './vehicle-model.ts'

const log = logger('vehicle.agent')

/** What the owner is told when someone used a key on the car. */
export type OwnerNotice = {
  vehicle: Address
  time: number
  action: string
  grantId: Hex
  grantee: Address | undefined
  purpose: string
  /** A delivery key (purpose starting with "parcel"): the owner asked to be told. */
  delivery: boolean
  /** Uses so far, for limited keys. */
  uses?: number
  maxUses?: number
  eventId: Hex
}

/** A part added to the agent later (ledger upload, charging…). */
export interface VehicleAgentPlugin {
  readonly name: string
  start(agent: VehicleAgent): void | Promise<void>
  stop(): void | Promise<void>
}

export type VehicleAgentOptions = {
  /** The vehicle's directory: key cache, use counters (and, for others, its ledger log). */
  dir: string
  /** The vehicle's address (its wallet); derived from `keys.walletKey` when keys are given. */
  vehicle?: Address | undefined
  /** The car's secure element / key store. */
  keys?: { store: KeyStore; identityKey: KeyRef; walletKey: KeyRef } | undefined
  chain: {
    client: PublicClient<Transport, Chain | undefined>
    chainId: number
    vehicleRegistry: Address
    keyRegistry: Address
    fromBlock?: bigint | undefined
    /** Sync period while running; default 1000 ms. */
    syncIntervalMs?: number | undefined
    /** Offline longer than this, only owner-signed keys open the car (docs/keys.md); default 72 h. */
    maxStaleMs?: number | undefined
  }
  recorder: AccessRecorder
  link?: {
    host?: string | undefined
    port?: number | undefined
    challengeTtlMs?: number | undefined
    relayBoundMs?: number | undefined
    /** The bound on refused attempts (docs/keys.md "Refused attempts"). */
    deniedAttempts?: DenialBudgetOptions | undefined
  }
  /** What the car requires of passkey assertions (docs/keys.md "Passkey keys"). */
  passkeys?: PasskeyPolicy | undefined
  model?: VehicleModel | undefined
  plugins?: readonly VehicleAgentPlugin[] | undefined
  /** Milliseconds since the epoch; default Date.now. */
  clock?: (() => number) | undefined
}

/** The in-car agent. Create with {@link VehicleAgent.create}, then `start()`. */
export class VehicleAgent {
  readonly vehicle: Address
  readonly domain: KeyDomain
  readonly cache: ChainCache
  readonly controller: AccessController
  readonly link: LinkServer
  readonly model: VehicleModel
  readonly recorder: AccessRecorder
  readonly #uses: UseCounter
  readonly #passkeyCounters: FilePasskeyCounters
  readonly #options: VehicleAgentOptions
  readonly #notices = new Set<(notice: OwnerNotice) => void>()
  #wallet: LocalAccount | undefined
  #started = false

  private constructor(options: VehicleAgentOptions, vehicle: Address, wallet: LocalAccount | undefined) {
    this.#options = options
    this.vehicle = vehicle
    this.#wallet = wallet
    const { chain } = options
    this.domain = { chainId: chain.chainId, keyRegistry: chain.keyRegistry }
    this.cache = new ChainCache({ ...chain, vehicle, dir: options.dir })
    this.#uses = new FileUseCounter(options.dir)
    this.#passkeyCounters = new FilePasskeyCounters(options.dir)
    const clock = options.clock ?? Date.now
    this.controller = new AccessController({
      vehicle,
      domain: this.domain,
      state: this.cache,
      uses: this.#uses,
      clock,
      maxStaleMs: chain.maxStaleMs,
      passkeys: { counters: this.#passkeyCounters, ...options.passkeys },
    })
    this.model = options.model ?? new VehicleModel()
    this.recorder = options.recorder
    this.link = new LinkServer({
      vehicle,
      controller: this.controller,
      recorder: options.recorder,
      clock,
      ...options.link,
      onGranted: (decision, eventId) => this.#act(decision, eventId),
    })
  }

  /** Builds the agent (reads the wallet address from the key store when given). */
  static async create(options: VehicleAgentOptions): Promise<VehicleAgent> {
    let wallet: LocalAccount | undefined
    let vehicle = options.vehicle?.toLowerCase() as Address | undefined
    if (options.keys) {
      wallet = await keyStoreAccount(options.keys.store, options.keys.walletKey)
      const address = wallet.address.toLowerCase() as Address
      if (vehicle !== undefined && vehicle !== address)
        throw new BaseError('CONFIG_INVALID', 'the vehicle address is not its wallet key’s address', {
          details: { vehicle, wallet: address },
        })
      vehicle = address
    }
    if (vehicle === undefined)
      throw new BaseError('CONFIG_INVALID', 'a vehicle address or its wallet key is needed')
    return new VehicleAgent(options, vehicle, wallet)
  }

  /** The car's wallet as a viem account (payments), when the agent has a key store. */
  wallet(): LocalAccount {
    if (!this.#wallet) throw new BaseError('KEY_NOT_FOUND', 'this agent has no wallet key')
    return this.#wallet
  }

  /** Starts the link, the cache sync and the plugins; resolves with the link URL. */
  async start(): Promise<string> {
    if (this.#started) return this.link.url
    this.#started = true
    const url = await this.link.listen()
    // First sync at once. Until a car has synced once it refuses every key (KEYS_NOT_SYNCED);
    // offline, a persisted cache decides, within the staleness bound (docs/keys.md).
    await this.cache
      .sync()
      .catch((error: unknown) =>
        log.warn(
          { err: error, vehicle: this.vehicle },
          'first key cache sync failed; deciding from the cache',
        ),
      )
    this.cache.start(this.#options.chain.syncIntervalMs ?? 1000)
    for (const plugin of this.#options.plugins ?? []) await plugin.start(this)
    return url
  }

  /** Stops plugins (reverse order), the sync loop and the link; releases the counters. */
  async stop(): Promise<void> {
    if (!this.#started) return
    this.#started = false
    for (const plugin of [...(this.#options.plugins ?? [])].reverse()) await plugin.stop()
    await this.cache.stop()
    await this.link.close()
    this.#uses.close()
    this.#passkeyCounters.flush()
  }

  status(): {
    vehicle: Address
    link: string | undefined
    model: VehicleStatus
    chain: ReturnType<ChainCache['status']>
  } {
    let link: string | undefined
    try {
      link = this.link.url
    } catch {
      link = undefined
    }
    return { vehicle: this.vehicle, link, model: this.model.status(), chain: this.cache.status() }
  }

  /** Listens for owner notices (the node forwards them to the owner's app). */
  onNotice(listener: (notice: OwnerNotice) => void): () => void {
    this.#notices.add(listener)
    return () => this.#notices.delete(listener)
  }

  /**
   * Acts out a granted action. Record, then act: the action's event (`door.unlocked`, …) takes
   * its place in the ledger before the car acts, and a car that cannot record does not act (the
   * link answers INTERNAL). A recorder that can defer (`recordLater`, the vehicle ledger) builds
   * and writes it just after the answer; the answer only names the access event.
   */
  #act(decision: AccessDecision, eventId: Hex): void | Promise<void> {
    const kind = VehicleModel.eventKind(decision.action)
    // keys in RFC 8785 order: canonicalizing is a plain JSON.stringify
    const data = { access: eventId, grantId: decision.grantId, via: decision.rental ? 'rental' : 'key' }
    if (this.recorder.recordLater === undefined)
      return this.recorder.record(kind, data).then(() => this.#apply(decision, eventId))
    this.recorder.recordLater(kind, data)
    this.#apply(decision, eventId)
  }

  #apply(decision: AccessDecision, eventId: Hex): void {
    this.model.apply(decision.action)
    if (decision.rental) return
    if (this.#notices.size === 0) return
    const notice: OwnerNotice = {
      vehicle: this.vehicle,
      time: (this.#options.clock ?? Date.now)(),
      action: scopeNames(decision.action).join('|'),
      grantId: decision.grantId,
      grantee: decision.subject,
      purpose: decision.purpose,
      delivery: decision.purpose.toLowerCase().startsWith('parcel'),
      ...(decision.uses === undefined ? {} : { uses: decision.uses }),
      ...(decision.maxUses === undefined ? {} : { maxUses: decision.maxUses }),
      eventId,
    }
    for (const listener of this.#notices) {
      try {
        listener(notice)
      } catch {
        // a listener's failure must not undo an action the car already took
      }
    }
  }
}
