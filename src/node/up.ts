/**
 * `carchain up`: brings the parts up in order — data dir lock, chain (embedded anvil unless
 * `--rpc`), contracts, database (PGlite unless `--database`), HTTP node — and takes them down in
 * reverse. A failure on the way up undoes what was started and leaves the data dir as it was.
 */
import { mkdirSync, readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { LocalAccount } from 'viem'
import { type Anvil, startAnvil } from '../chain/anvil.ts'
import {
  type ChainClients,
  connectChain,
  developmentAccount,
  operatorAccountFromKey,
  refuseDevelopmentAccount,
} from '../chain/clients.ts'
import { type Deployment, deployContracts, deploymentPath, readDeployment } from '../chain/deploy.ts'
import type { NodeConfig } from '../config.ts'
import { lockDataDir } from '../data-dir.ts'
import { type Database, openDatabase, redactUrl } from '../db/database.ts'
import { migrate } from '../db/migrate.ts'
import { BaseError } from '../errors.ts'
import { writeFileAtomic } from '../fs-atomic.ts'
import { registryRevocation } from '../identity/registry-revocation.ts'
import { keyRoutes } from '../keys/online.ts'
import type { NoteSigner } from '../ledger/note.ts'
import { ensureLeafPartitions } from '../ledger/partitions.ts'
import { ensureShards, shardLogId } from '../ledger/shards.ts'
import { unwrittenEvidence } from '../ledger/store.ts'
import { type ChargingRoutesDeps, chargingRoutes } from '../station/routes.ts'
import { type AnchoringScheduler, startAnchoring } from './anchoring.ts'
import { authRoutes, signInOrigins } from './auth.ts'
import { createShardPublishers } from './checkpoints.ts'
import type { NodeContext } from './context.ts'
import { createDashboardRoutes } from './dashboard.ts'
import { grantRoutes } from './grant-routes.ts'
import { startChainIndexer } from './indexer.ts'
import { createNodeIngest } from './ingest.ts'
import { logRoutes } from './log-routes.ts'
import { startMqttIngest } from './mqtt.ts'
import { createNodeCsms } from './ocpp.ts'
import { type ChainInfo, createServer, type NodeRoutes } from './server.ts'
import { createNodeEvents, streamRoutes } from './stream.ts'
import {
  loadNoteKey,
  logIdentity,
  logInfo,
  NOTE_KEY_FILE,
  openTokenNoteKey,
  transparencyRoutes,
} from './transparency.ts'
import { vehicleRoutes } from './vehicle-routes.ts'
import type { Witness } from './witnesses.ts'

export const carchainVersion: string = JSON.parse(
  readFileSync(new URL('../../package.json', import.meta.url), 'utf8'),
).version

export type RunningNode = {
  readonly url: string
  readonly chain: ChainInfo
  readonly clients: ChainClients
  readonly deployment: Deployment
  readonly db: Database
  readonly context: NodeContext
  readonly anchoring: AnchoringScheduler
  readonly server: FastifyInstance
  /** Stops everything this node started, in reverse order. Idempotent. */
  stop(): Promise<void>
}

/**
 * What runs on top of the node (the demo fleet, src/sim/system.ts): the node knows it only
 * through this, so `node/` never depends on `sim/`.
 */
export type NodeExtension = {
  /** Routes mounted with the node's own (the server starts before the extension does). */
  routes?: readonly NodeRoutes[]
  /** What `GET /v1/charging/sessions` serves, read per request (default: no sessions). */
  charging?: ChargingRoutesDeps
  /**
   * Witnesses the extension runs for this log (the demo's), called once the log's origin and
   * verifier key (and with several shards each shard's) are known and before checkpoints are
   * published; stopped after the node.
   */
  witnesses?(log: NonNullable<ChainInfo['log']>): Promise<{
    witnesses: Witness[]
    stop(): Promise<void>
  }>
  /** Started once the node listens (and after MQTT ingest); stopped first. */
  start?(node: {
    context: NodeContext
    url: string
    progress: (message: string) => void
  }): Promise<{ stop(): Promise<void> } | undefined>
}

export type StartNodeParameters = {
  config: NodeConfig
  progress?: (message: string) => void
  extension?: NodeExtension
}

/** Starts the whole node; resolves when it serves HTTP. */
export async function startNode({
  config,
  progress = () => {},
  extension = {},
}: StartNodeParameters): Promise<RunningNode> {
  const undo: Array<() => Promise<void> | void> = []
  const stop = async () => {
    while (undo.length) {
      const step = undo.pop()!
      try {
        await step()
      } catch (error) {
        progress(`while stopping: ${(error as Error).message}`)
      }
    }
  }
  try {
    const lock = await lockDataDir(config.dataDir)
    undo.push(() => lock.release())

    let anvil: Anvil | undefined
    let rpcUrl = config.rpcUrl
    if (!rpcUrl) {
      progress('starting the embedded chain (anvil)')
      anvil = await startAnvil({ stateDir: join(config.dataDir, 'chain') })
      const started = anvil
      undo.push(() => started.stop())
      rpcUrl = anvil.rpcUrl
    }
    const account = config.operatorKey
      ? operatorAccountFromKey(config.operatorKey)
      : config.rpcUrl
        ? undefined
        : developmentAccount(0)
    if (!account)
      throw new BaseError(
        'CONFIG_INVALID',
        'an external chain needs the operator key in CARCHAIN_OPERATOR_KEY',
        {
          details: { rpcUrl: config.rpcUrl },
        },
      )
    const clients = await connectChain({ rpcUrl, account })
    refuseDevelopmentAccount(clients.chain.id, account)

    progress(
      config.databaseUrl
        ? `connecting to PostgreSQL ${redactUrl(config.databaseUrl)}`
        : 'opening the embedded database (PGlite)',
    )
    const db = config.databaseUrl
      ? await openDatabase({ engine: 'postgres', url: config.databaseUrl })
      : await openDatabase({ engine: 'pglite', dataDir: join(config.dataDir, 'db') })
    undo.push(() => db.close())
    await migrate(db)
    if (config.join) await adoptDeployment(db, config.dataDir, clients.chain.id, progress)

    const { deployment, deployedNow } = await deployContracts({
      clients,
      dataDir: config.dataDir,
      redeployMissing: anvil !== undefined,
      progress,
    })
    if (deployedNow) await anvil?.snapshot()
    progress(`contracts ${deployedNow ? 'deployed' : 'found'} on chain ${clients.chain.id}`)
    await checkChainBinding(db, deployment, progress)
    const shards = await ensureShards(db, config.shards)
    if (shards > 1) progress(`the log runs ${shards} shards`)
    // A new log's first leaf partition, of the configured size; an existing log keeps its own.
    await ensureLeafPartitions(db, 0, { leaves: config.leafPartitionLeaves })

    const contracts = Object.fromEntries(
      Object.entries(deployment.contracts).map(([name, c]) => [name, c.address]),
    ) as NodeContext['contracts']
    const events = createNodeEvents()
    let origins: readonly string[] = [] // known once the server listens
    const indexer = startChainIndexer({ db, clients, contracts, deployment })
    undo.push(() => indexer.stop())
    await indexer
      .sync()
      .catch((error: Error) => progress(`chain indexer: ${error.message.split('\n')[0]}; retrying`))
    const identity = await logIdentity(db, {
      operator: clients.account.address,
      chainId: clients.chain.id,
      ledgerAnchor: contracts.LedgerAnchor,
      configuredOrigin: config.logOrigin,
    })
    const context: NodeContext = {
      db,
      clients,
      deployment,
      contracts,
      logId: identity.logId,
      shards,
      logIds: Array.from({ length: shards }, (_, shard) => shardLogId(identity.logId, shard)),
      events,
      ingest: createNodeIngest(db, shards, events, config.rateLimit, {
        isRevoked: registryRevocation(clients.publicClient, contracts.VehicleRegistry),
        revocationTtlMs: config.revocationTtlMs,
      }),
      indexer,
      signInOrigins: () => origins,
    }
    const { origin } = identity
    if (identity.derivedFrom !== origin)
      progress(
        `the log id ${identity.logId} was ${identity.derivedFrom ? `derived from the origin ${identity.derivedFrom}` : 'made before log ids were derived from origins'}, not from ${origin}; it stays the log's id`,
      )
    let noteKey: { signer: NoteSigner; created: boolean }
    let noteKeyPlace: string
    if (config.pkcs11) {
      const tokenKey = await openTokenNoteKey(config.pkcs11, config.dataDir, origin, {
        mustExist: config.join,
      })
      undo.push(() => tokenKey.close())
      noteKey = tokenKey
      noteKeyPlace = tokenKey.ref
    } else {
      noteKey = loadNoteKey(config.dataDir, origin, { mustExist: config.join })
      noteKeyPlace = join(config.dataDir, NOTE_KEY_FILE)
    }
    progress(
      `${noteKey.created ? 'made the log note key' : 'log note key'} ${noteKeyPlace}; checkpoints signed as ${origin}`,
    )
    const chain: ChainInfo = {
      chainId: clients.chain.id,
      rpcUrl,
      contracts,
      log: logInfo(noteKey.signer, shards),
    }
    const extra = await extension.witnesses?.(logInfo(noteKey.signer, shards))
    if (extra) undo.push(() => extra.stop())
    const witnesses = [...config.witnesses, ...(extra?.witnesses ?? [])]
    const checkpoints = createShardPublishers(db, shards, {
      signer: noteKey.signer,
      tilesDir: config.tilesDir,
      witnesses,
    })
    if (config.tilesDir !== undefined || witnesses.length > 0)
      progress(
        `publishing ${shards > 1 ? `the ${shards} shards' ` : ''}checkpoints${config.tilesDir ? ` and tiles to ${config.tilesDir}` : ''}${witnesses.length ? ` with ${witnesses.length} witness(es)` : ''}`,
      )
    checkpoints.start(config.checkpointIntervalMs)
    undo.push(() => checkpoints.stop())
    // What goes on chain is a checkpoint the node published (signed, cosigned, in the tiles dir).
    const anchoring = startAnchoring(context, {
      everyEvents: config.anchorEveryEvents,
      intervalMs: config.anchorIntervalMs,
      log: (message) => progress(message),
      head: (shard) => checkpoints.shard(shard).publishHead(),
    })
    undo.push(() => anchoring.stop())
    const ocpp = createNodeCsms(context) // OCPP 2.0.1 stations on /ocpp/{stationId} (docs/ocpp.md)
    const server = await createServer({
      version: carchainVersion,
      chain: () => chain,
      rateLimit: config.rateLimit,
      health: async () => {
        const parts: Record<string, string> = {}
        parts.chain = await clients.publicClient.getBlockNumber().then(
          () => 'ok',
          (error: Error) => `unreachable: ${error.message.split('\n')[0]}`,
        )
        parts.database = await db.query('select 1').then(
          () => 'ok',
          (error: Error) => `unreachable: ${error.message.split('\n')[0]}`,
        )
        parts.anchoring = anchoring.lastError ? `retrying: ${anchoring.lastError}` : 'ok'
        parts.checkpoints = checkpoints.lastError ? `retrying: ${checkpoints.lastError}` : 'ok'
        const evidence = unwrittenEvidence(db)
        parts.evidence =
          evidence.count === 0 ? 'ok' : `${evidence.count} tamper record(s) not stored: ${evidence.lastError}`
        return parts
      },
      routes: [
        logRoutes(context),
        transparencyRoutes(context, noteKey.signer, checkpoints),
        vehicleRoutes(context),
        grantRoutes(context),
        authRoutes(context),
        streamRoutes(context),
        ocpp.routes,
        ...(extension.routes ?? []),
        (app) => chargingRoutes(app, extension.charging ?? { sessions: () => [] }),
        (app) =>
          keyRoutes(app, {
            client: clients.publicClient,
            domain: { chainId: clients.chain.id, keyRegistry: contracts.KeyRegistry },
            vehicleRegistry: contracts.VehicleRegistry,
            signer: clients.account as LocalAccount,
          }),
        createDashboardRoutes({ progress }),
      ],
    })
    undo.push(() => server.close())
    undo.push(() => ocpp.stop()) // before the server: its stations' WebSockets close first
    try {
      await server.listen({ port: config.port, host: config.host })
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      throw new BaseError(
        code === 'EADDRINUSE' ? 'PORT_IN_USE' : 'CONFIG_INVALID',
        `cannot listen on ${config.host}:${config.port}: ${code}`,
        {
          details: { port: config.port, host: config.host },
          cause: error,
        },
      )
    }
    const { port } = server.server.address() as AddressInfo
    const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`
    origins = signInOrigins({ publicUrl: config.publicUrl, host: config.host, port })
    if (config.ocppTls)
      progress(
        `OCPP 2.0.1 over TLS on port ${await ocpp.listenTls(config.ocppTls, config.host)} (profiles 2, 3)`,
      )
    progress(`sign-in messages must name ${origins.join(' or ')}`)
    if (config.mqttUrl) {
      progress(`subscribing to vehicle uploads on ${config.mqttUrl}`)
      const ingest = await startMqttIngest(context, config.mqttUrl)
      undo.push(() => ingest.stop())
    }
    const started = await extension.start?.({ context, url, progress })
    if (started) undo.push(() => started.stop())
    return { url, chain, clients, deployment, db, context, anchoring, server, stop }
  } catch (error) {
    await stop()
    throw error
  }
}

/**
 * A database belongs to one chain and one set of contracts. Opening it against others would mix
 * two worlds (anchors, registrations), so it is refused — unless the embedded chain redeployed at
 * the same addresses, which is the same world.
 */
async function checkChainBinding(db: Database, deployment: Deployment, progress: (message: string) => void) {
  const binding = {
    chainId: deployment.chainId,
    contracts: deployment.contracts.VehicleRegistry.address.toLowerCase(),
  }
  const { rows } = await db.query<{ value: typeof binding }>(
    "select value from node_settings where key = 'chain'",
  )
  const stored = rows[0]?.value
  // Nodes that join the deployment later take its contracts from here (`--join`).
  await db.query(
    "insert into node_settings (key, value) values ('deployment', $1) on conflict (key) do nothing",
    [JSON.stringify(deployment)],
  )
  if (!stored) {
    await db.query("insert into node_settings (key, value) values ('chain', $1)", [JSON.stringify(binding)])
    return
  }
  if (stored.chainId !== binding.chainId || stored.contracts !== binding.contracts)
    throw new BaseError(
      'CHAIN_MISMATCH',
      `the database belongs to chain ${stored.chainId} (registry ${stored.contracts}), not chain ${binding.chainId} (registry ${binding.contracts})`,
      { details: { database: stored, chain: binding } },
    )
  progress('database matches the chain')
}

/**
 * `--join`: the deployment this node joins is the one its database names. Its record is written to
 * the data dir, where the deployment step finds it (and checks its code is on the chain) instead
 * of deploying new contracts. DEPLOYMENT_MISSING when no node of the deployment started yet.
 */
async function adoptDeployment(
  db: Database,
  dataDir: string,
  chainId: number,
  progress: (message: string) => void,
): Promise<void> {
  const { rows } = await db.query<{ value: Deployment }>(
    "select value from node_settings where key = 'deployment'",
  )
  const deployment = rows[0]?.value
  if (!deployment)
    throw new BaseError(
      'DEPLOYMENT_MISSING',
      'the database holds no deployment to join: start its first node without --join',
    )
  if (deployment.chainId !== chainId)
    throw new BaseError(
      'CHAIN_MISMATCH',
      `the database's deployment is on chain ${deployment.chainId}, not on chain ${chainId}`,
      { details: { database: deployment.chainId, chain: chainId } },
    )
  const recorded = readDeployment(dataDir, chainId)
  if (recorded && recorded.contracts.VehicleRegistry.address !== deployment.contracts.VehicleRegistry.address)
    throw new BaseError(
      'CHAIN_MISMATCH',
      `${deploymentPath(dataDir, chainId)} names other contracts than the deployment this node joins; use another data dir`,
      { details: { record: deploymentPath(dataDir, chainId) } },
    )
  if (!recorded) {
    mkdirSync(join(dataDir, 'deployments'), { recursive: true })
    writeFileAtomic(deploymentPath(dataDir, chainId), `${JSON.stringify(deployment, null, 2)}\n`)
  }
  progress(
    `joining the deployment of chain ${chainId} (registry ${deployment.contracts.VehicleRegistry.address})`,
  )
}
