/**
 * The node's configuration, parsed once at the entry point from flags and environment and passed
 * down as one typed object. Flags win over environment variables.
 */
import { resolve } from 'node:path'
import { BaseError } from './errors.ts'
import type { Pkcs11KeyStoreOptions } from './identity/pkcs11-keystore.ts'
import { checkLogOrigin } from './ledger/note.ts'
import { MIN_PARTITION_SPAN, PARTITION_LEAVES } from './ledger/partitions.ts'
import { MAX_SHARDS } from './ledger/shards.ts'
import { defaultRateLimit, type RateLimitConfig } from './node/rate-limit.ts'
import { DEFAULT_REVOCATION_TTL_MS } from './node/vehicle-keys.ts'
import { parseWitness, type Witness } from './node/witnesses.ts'

export type NodeConfig = {
  /** Data directory: chain snapshot, PGlite files, deployments, keys. */
  readonly dataDir: string
  /** HTTP port of the node (0: any free port). */
  readonly port: number
  /** Interface the HTTP server binds (default 127.0.0.1). */
  readonly host: string
  /**
   * The URL people and wallets reach the node at (`--public-url`, `CARCHAIN_PUBLIC_URL`): a
   * Sign-In with Ethereum message must name its origin. Undefined: what the server listens on.
   */
  readonly publicUrl: string | undefined
  /** External JSON-RPC endpoint; undefined: the embedded anvil. */
  readonly rpcUrl: string | undefined
  /** PostgreSQL URL; undefined: PGlite in the data dir. */
  readonly databaseUrl: string | undefined
  /** Operator key for an external network (`CARCHAIN_OPERATOR_KEY`). */
  readonly operatorKey: string | undefined
  /**
   * Demo fleet size; 0 with `--no-sim`, and 0 by default with `--rpc`: the fleet's owners are
   * development-mnemonic accounts, whose keys are public, so on an external chain it runs only
   * when forced with `--demo-fleet-on-external-chain` (else DEMO_FLEET_REFUSED for `--vehicles N`).
   */
  readonly vehicles: number
  readonly sim: boolean
  /** MQTT broker for vehicle telemetry, e.g. mqtt://127.0.0.1:1883. */
  readonly mqttUrl: string | undefined
  /** Anchor every N new events (`CARCHAIN_ANCHOR_EVERY`, default 1000)… */
  readonly anchorEveryEvents: number
  /** …or after this long with anything new (`CARCHAIN_ANCHOR_INTERVAL_MS`, default 10 s). */
  readonly anchorIntervalMs: number
  /**
   * About how many leaves a partition of the leaf table holds (`CARCHAIN_LEAF_PARTITION_LEAVES`,
   * default 2^22, at least 2^16): fixed when the log is made (docs/ledger.md "Partitions").
   */
  readonly leafPartitionLeaves: number
  /**
   * Per-client request budgets per minute: `CARCHAIN_RATE_LIMIT_API` (public reads, default 1200),
   * `CARCHAIN_RATE_LIMIT_AUTH` (sign-in, default 60), `CARCHAIN_RATE_LIMIT_INGEST` (signed batches
   * per vehicle, default 1200), `CARCHAIN_RATE_LIMIT_INGEST_CLIENT` (uploads per client IP, any
   * vehicle, default 30000).
   */
  readonly rateLimit: RateLimitConfig
  /**
   * How long ingest reuses an on-chain certificate revocation answer (`CARCHAIN_REVOCATION_TTL_MS`,
   * default 30 s): a revoked vehicle's batches are refused at most this long after the revocation.
   */
  readonly revocationTtlMs: number
  /**
   * The origin line of the log's signed checkpoints and its note key's name (`--log-origin`,
   * `CARCHAIN_LOG_ORIGIN`); undefined: `carchain.local/<chainId>/<LedgerAnchor>/<logId>`.
   */
  readonly logOrigin: string | undefined
  /**
   * An external CSMS (`--csms`, `CARCHAIN_CSMS_URL`, ws: or wss:) the demo's stations connect to
   * as `{url}/{stationId}` (docs/ocpp.md); undefined: the node's own CSMS.
   */
  readonly csmsUrl: string | undefined
  /**
   * The node's CSMS over TLS as well (security profiles 2 and 3, docs/ocpp.md):
   * `CARCHAIN_OCPP_TLS_PORT`, `CARCHAIN_OCPP_TLS_CERT` and `CARCHAIN_OCPP_TLS_KEY` (PEM files),
   * `CARCHAIN_OCPP_TLS_CLIENT_CA` (PEM, the CA of stations' client certificates: profile 3).
   */
  readonly ocppTls: { port: number; cert: string; key: string; clientCa: string | undefined } | undefined
  /**
   * Also write the log's C2SP tiles and checkpoint to this directory (`--tiles-dir`,
   * `CARCHAIN_TILES_DIR`), kept up to date for a static web server (docs/transparency.md); shard k
   * of several in `DIR/shards/<k>`.
   */
  readonly tilesDir: string | undefined
  /** Witnesses that cosign each new checkpoint (`--witness URL=VERIFIERKEY`, repeatable). */
  readonly witnesses: readonly Witness[]
  /**
   * The PKCS#11 token that keeps the log's note key (`--pkcs11-module`/`--pkcs11-slot`/
   * `--pkcs11-pin`, `CARCHAIN_PKCS11_MODULE`/`_SLOT`/`_PIN`); undefined: `<data>/log-note-key.pem`.
   */
  readonly pkcs11: Pkcs11KeyStoreOptions | undefined
  /** How often the checkpoint is published to the witnesses and the tiles dir (`CARCHAIN_CHECKPOINT_INTERVAL_MS`, default 1 s). */
  readonly checkpointIntervalMs: number
  /**
   * How many log shards the deployment runs (`--shards N`, `CARCHAIN_SHARDS`); fixed when its log
   * is created. Undefined: what the database holds (1 for a new one).
   */
  readonly shards: number | undefined
  /**
   * Join an existing deployment (`--join`): take its contracts and shard count from the shared
   * PostgreSQL database instead of deploying, and run no demo fleet.
   */
  readonly join: boolean
}

export type ConfigSources = {
  flags: {
    data?: string | undefined
    port?: number | undefined
    host?: string | undefined
    publicUrl?: string | undefined
    rpc?: string | undefined
    database?: string | undefined
    vehicles?: number | undefined
    noSim?: boolean | undefined
    demoFleetOnExternalChain?: boolean | undefined
    mqtt?: string | undefined
    logOrigin?: string | undefined
    csms?: string | undefined
    tilesDir?: string | undefined
    witnesses?: readonly string[] | undefined
    shards?: number | undefined
    join?: boolean | undefined
    pkcs11Module?: string | undefined
    pkcs11Slot?: number | undefined
    pkcs11Pin?: string | undefined
  }
  env: Record<string, string | undefined>
}

function ocppTlsConfig(env: Record<string, string | undefined>): NodeConfig['ocppTls'] {
  const { CARCHAIN_OCPP_TLS_PORT: port, CARCHAIN_OCPP_TLS_CERT: cert, CARCHAIN_OCPP_TLS_KEY: key } = env
  if (!port && !cert && !key) return undefined
  if (!port || !/^\d{1,5}$/.test(port) || Number(port) > 65535 || !cert || !key)
    throw new BaseError(
      'CONFIG_INVALID',
      'the CSMS over TLS needs CARCHAIN_OCPP_TLS_PORT (0–65535), CARCHAIN_OCPP_TLS_CERT and CARCHAIN_OCPP_TLS_KEY',
      { details: { port: port ?? null, cert: cert ?? null, key: key ?? null } },
    )
  return { port: Number(port), cert, key, clientCa: env.CARCHAIN_OCPP_TLS_CLIENT_CA || undefined }
}

function checkUrl(value: string | undefined, what: string, protocols: string[]): string | undefined {
  if (value === undefined || value === '') return undefined
  let parsed: URL
  try {
    parsed = new URL(value)
  } catch {
    throw new BaseError('CONFIG_INVALID', `${what} is not a URL: "${value}"`, { details: { value } })
  }
  if (!protocols.includes(parsed.protocol))
    throw new BaseError(
      'CONFIG_INVALID',
      `${what} must use ${protocols.join(' or ')}, not ${parsed.protocol}`,
      {
        details: { protocol: parsed.protocol },
      },
    )
  return value
}

/** Builds the configuration; CONFIG_INVALID names the offending flag or variable. */
export function loadConfig({ flags, env }: ConfigSources): NodeConfig {
  const port = flags.port ?? (env.PORT ? Number(env.PORT) : 8080)
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new BaseError('CONFIG_INVALID', `the port must be 0–65535, not ${env.PORT ?? port}`)
  const rpcUrl = checkUrl(flags.rpc ?? env.CARCHAIN_RPC_URL, '--rpc', ['http:', 'https:', 'ws:', 'wss:'])
  const demoFleetAllowed = rpcUrl === undefined || flags.demoFleetOnExternalChain === true
  if (!demoFleetAllowed && !flags.noSim && flags.vehicles !== undefined && flags.vehicles > 0)
    throw new BaseError(
      'DEMO_FLEET_REFUSED',
      `the demo fleet's owners are development-mnemonic accounts, whose keys are public: it does not run on the external chain ${rpcUrl}; drop --vehicles, or pass --demo-fleet-on-external-chain for a throwaway test network`,
      { details: { rpcUrl, vehicles: flags.vehicles } },
    )
  const join = flags.join === true
  const noSim = flags.noSim === true || join
  const vehicles = noSim ? 0 : (flags.vehicles ?? (demoFleetAllowed ? 12 : 0))
  const positive = (name: string, fallback: number) => {
    const raw = env[name]
    if (raw === undefined || raw === '') return fallback
    const value = Number(raw)
    if (!Number.isSafeInteger(value) || value < 1)
      throw new BaseError('CONFIG_INVALID', `${name} must be a positive integer, not "${raw}"`, {
        details: { name, value: raw },
      })
    return value
  }
  const atLeast = (name: string, least: number, fallback: number) => {
    const value = positive(name, fallback)
    if (value < least)
      throw new BaseError('CONFIG_INVALID', `${name} must be at least ${least}, not ${value}`, {
        details: { name, value, least },
      })
    return value
  }
  const pkcs11Module = flags.pkcs11Module ?? env.CARCHAIN_PKCS11_MODULE
  let pkcs11: Pkcs11KeyStoreOptions | undefined
  if (pkcs11Module !== undefined && pkcs11Module !== '') {
    const rawSlot = env.CARCHAIN_PKCS11_SLOT
    const slot = flags.pkcs11Slot ?? (rawSlot === undefined || rawSlot === '' ? 0 : Number(rawSlot))
    if (!Number.isSafeInteger(slot) || slot < 0)
      throw new BaseError(
        'CONFIG_INVALID',
        `CARCHAIN_PKCS11_SLOT must be a slot number ≥ 0, not "${rawSlot}"`,
        {
          details: { value: rawSlot },
        },
      )
    const pin = flags.pkcs11Pin ?? env.CARCHAIN_PKCS11_PIN
    if (pin === undefined || pin === '')
      throw new BaseError(
        'CONFIG_INVALID',
        '--pkcs11-pin (or CARCHAIN_PKCS11_PIN) is required with a PKCS#11 module',
      )
    pkcs11 = { module: pkcs11Module, slot, pin }
  }
  const logOrigin = flags.logOrigin ?? env.CARCHAIN_LOG_ORIGIN
  const tilesDir = flags.tilesDir ?? env.CARCHAIN_TILES_DIR
  const shardsRaw = flags.shards ?? (env.CARCHAIN_SHARDS ? Number(env.CARCHAIN_SHARDS) : undefined)
  if (
    shardsRaw !== undefined &&
    (!Number.isSafeInteger(shardsRaw) || shardsRaw < 1 || shardsRaw > MAX_SHARDS)
  )
    throw new BaseError(
      'CONFIG_INVALID',
      `--shards / CARCHAIN_SHARDS must be 1–${MAX_SHARDS}, not ${shardsRaw}`,
      {
        details: { shards: shardsRaw },
      },
    )
  const databaseUrl = checkUrl(flags.database ?? env.DATABASE_URL, '--database / DATABASE_URL', [
    'postgres:',
    'postgresql:',
  ])
  if (join && (rpcUrl === undefined || databaseUrl === undefined))
    throw new BaseError(
      'CONFIG_INVALID',
      '--join needs the deployment’s chain (--rpc) and its shared PostgreSQL database (--database)',
      { details: { rpc: rpcUrl !== undefined, database: databaseUrl !== undefined } },
    )
  return {
    dataDir: resolve(flags.data ?? env.CARCHAIN_DATA ?? './data'),
    port,
    host: flags.host ?? env.CARCHAIN_HOST ?? '127.0.0.1',
    publicUrl: checkUrl(flags.publicUrl ?? env.CARCHAIN_PUBLIC_URL, '--public-url', ['http:', 'https:']),
    rpcUrl,
    databaseUrl,
    operatorKey: env.CARCHAIN_OPERATOR_KEY,
    vehicles,
    sim: !noSim && vehicles > 0,
    mqttUrl: checkUrl(flags.mqtt ?? env.CARCHAIN_MQTT_URL, '--mqtt', ['mqtt:', 'mqtts:', 'ws:', 'wss:']),
    csmsUrl: checkUrl(flags.csms ?? env.CARCHAIN_CSMS_URL, '--csms', ['ws:', 'wss:']),
    ocppTls: ocppTlsConfig(env),
    anchorEveryEvents: positive('CARCHAIN_ANCHOR_EVERY', 1000),
    anchorIntervalMs: positive('CARCHAIN_ANCHOR_INTERVAL_MS', 10_000),
    leafPartitionLeaves: atLeast('CARCHAIN_LEAF_PARTITION_LEAVES', MIN_PARTITION_SPAN, PARTITION_LEAVES),
    rateLimit: {
      windowMs: defaultRateLimit.windowMs,
      apiMax: positive('CARCHAIN_RATE_LIMIT_API', defaultRateLimit.apiMax),
      authMax: positive('CARCHAIN_RATE_LIMIT_AUTH', defaultRateLimit.authMax),
      ingestMax: positive('CARCHAIN_RATE_LIMIT_INGEST', defaultRateLimit.ingestMax),
      ingestClientMax: positive('CARCHAIN_RATE_LIMIT_INGEST_CLIENT', defaultRateLimit.ingestClientMax),
    },
    revocationTtlMs: positive('CARCHAIN_REVOCATION_TTL_MS', DEFAULT_REVOCATION_TTL_MS),
    logOrigin: logOrigin === undefined || logOrigin === '' ? undefined : checkLogOrigin(logOrigin),
    tilesDir: tilesDir === undefined || tilesDir === '' ? undefined : resolve(tilesDir),
    witnesses: (flags.witnesses ?? []).map(parseWitness),
    checkpointIntervalMs: positive('CARCHAIN_CHECKPOINT_INTERVAL_MS', 1_000),
    shards: shardsRaw,
    join,
    pkcs11,
  }
}
