/** `carchain up` and `carchain deploy`. */
import { connectChain, operatorAccountFromKey, refuseDevelopmentAccount } from '../../chain/clients.ts'
import { deployContracts } from '../../chain/deploy.ts'
import { loadConfig } from '../../config.ts'
import { BaseError } from '../../errors.ts'
import { listAnchors } from '../../ledger/anchor.ts'
import { logger } from '../../log.ts'
import { type RunningSystem, startSystem } from '../../sim/system.ts'
import type { Command } from '../command.ts'
import { booleanFlag, integerFlag, listFlag, stringFlag } from '../flags.ts'
import { pkcs11Flags } from '../pkcs11.ts'

const log = logger('cli.up')

const up: Command = {
  path: ['up'],
  summary: 'Run the whole system: chain, contracts, database, node, dashboard and demo fleet.',
  flags: {
    data: {
      type: 'string',
      value: 'DIR',
      description: 'Data directory (env CARCHAIN_DATA).',
      default: './data',
    },
    port: { type: 'string', value: 'N', description: 'HTTP port (env PORT).', default: '8080' },
    host: {
      type: 'string',
      value: 'IP',
      description: 'Interface to bind (env CARCHAIN_HOST).',
      default: '127.0.0.1',
    },
    'public-url': {
      type: 'string',
      value: 'URL',
      description:
        'Where users reach the node, e.g. https://fleet.example; sign-in messages must name it (env CARCHAIN_PUBLIC_URL; default: the address it listens on).',
    },
    rpc: {
      type: 'string',
      value: 'URL',
      description: 'External Ethereum JSON-RPC instead of the embedded anvil.',
    },
    database: {
      type: 'string',
      value: 'URL',
      description: 'PostgreSQL URL instead of PGlite (env DATABASE_URL).',
    },
    vehicles: {
      type: 'string',
      value: 'N',
      description: 'Demo fleet size (default 12; none with --rpc).',
    },
    'no-sim': { type: 'boolean', description: 'Run without the demo fleet.' },
    'demo-fleet-on-external-chain': {
      type: 'boolean',
      description:
        'Run the demo fleet (development-mnemonic owners, public keys) on the --rpc chain: only for a throwaway test network.',
    },
    mqtt: {
      type: 'string',
      value: 'URL',
      description: 'MQTT broker for vehicle uploads (env CARCHAIN_MQTT_URL).',
    },
    shards: {
      type: 'string',
      value: 'N',
      description:
        'Log shards of the deployment, 1–1024 (env CARCHAIN_SHARDS; default: what the database holds, 1 for a new one); fixed when the log is created.',
    },
    join: {
      type: 'boolean',
      description:
        'Join an existing deployment: another node process on its chain (--rpc, key in CARCHAIN_OPERATOR_KEY) and its PostgreSQL database (--database); contracts and shards come from the database, the note key must be copied into --data.',
    },
    csms: {
      type: 'string',
      value: 'URL',
      description:
        "An external OCPP 2.0.1 CSMS (ws: or wss:) the demo's stations connect to as URL/{stationId}, instead of the node's own (env CARCHAIN_CSMS_URL; docs/ocpp.md).",
    },
    'log-origin': {
      type: 'string',
      value: 'ORIGIN',
      description:
        'Origin line of the signed checkpoints and name of the note key, e.g. fleet.example/log (env CARCHAIN_LOG_ORIGIN; default carchain.local/<chainId>/<LedgerAnchor>/<logId>).',
    },
    'tiles-dir': {
      type: 'string',
      value: 'DIR',
      description:
        'Also write the C2SP checkpoint and tiles to DIR for a static web server, kept up to date, crash-safe; with several shards, shard k in DIR/shards/<k> (env CARCHAIN_TILES_DIR).',
    },
    ...pkcs11Flags("its token keeps the log's note key, made there on first start"),
    witness: {
      type: 'string',
      value: 'URL=KEY',
      multiple: true,
      description:
        'A witness (c2sp.org/tlog-witness) to cosign each checkpoint: its URL and cosigner verifier key; repeatable.',
    },
  },
  async run({ flags, io }) {
    const config = loadConfig({
      flags: {
        data: stringFlag(flags, 'data'),
        port: integerFlag(flags, 'port', { min: 0, max: 65535 }),
        host: stringFlag(flags, 'host'),
        publicUrl: stringFlag(flags, 'public-url'),
        rpc: stringFlag(flags, 'rpc'),
        database: stringFlag(flags, 'database'),
        vehicles: integerFlag(flags, 'vehicles', { min: 0, max: 10_000 }),
        noSim: booleanFlag(flags, 'no-sim'),
        demoFleetOnExternalChain: booleanFlag(flags, 'demo-fleet-on-external-chain'),
        mqtt: stringFlag(flags, 'mqtt'),
        logOrigin: stringFlag(flags, 'log-origin'),
        csms: stringFlag(flags, 'csms'),
        tilesDir: stringFlag(flags, 'tiles-dir'),
        witnesses: listFlag(flags, 'witness'),
        shards: integerFlag(flags, 'shards', { min: 1, max: 1024 }),
        join: booleanFlag(flags, 'join'),
        pkcs11Module: stringFlag(flags, 'pkcs11-module'),
        pkcs11Slot: integerFlag(flags, 'pkcs11-slot', { min: 0 }),
        pkcs11Pin: stringFlag(flags, 'pkcs11-pin'),
      },
      env: process.env,
    })
    const started = Date.now()
    const node = await startSystem({ config, progress: (message) => io.progress(`· ${message}`) })
    const info = {
      url: node.url,
      chain: node.chain,
      database: config.databaseUrl ? 'postgres' : 'pglite',
      dataDir: config.dataDir,
      startupMs: Date.now() - started,
    }
    if (io.json) io.print(JSON.stringify({ event: 'up', ...info }))
    else {
      const contracts = Object.entries(node.chain.contracts).map(
        ([name, address]) => `  ${name.padEnd(17)}${address}`,
      )
      io.print(
        [
          `Carchain is up (${(info.startupMs / 1000).toFixed(1)} s)`,
          `  node            ${node.url}  (API /v1, OpenAPI /openapi.json, health /v1/health)`,
          `  chain           ${node.chain.rpcUrl}  chain id ${node.chain.chainId}${config.rpcUrl ? '' : ' (embedded anvil)'}`,
          `  database        ${config.databaseUrl ? 'PostgreSQL' : `PGlite in ${config.dataDir}/db`}`,
          `  data            ${config.dataDir}`,
          ...contracts,
          'Ctrl-C stops everything.',
        ].join('\n'),
      )
    }
    const summary = setInterval(() => {
      liveSummary(node).then(
        (line) => io.progress(line),
        (error: unknown) => log.warn({ err: error }, 'the live summary could not be read'),
      )
    }, 15_000)
    summary.unref()
    await new Promise<void>((resolve) => {
      if (io.stopSignal.aborted) resolve()
      io.stopSignal.addEventListener('abort', () => resolve(), { once: true })
    })
    clearInterval(summary)
    io.progress(`· ${String(io.stopSignal.reason ?? 'stop')}: stopping`)
    await node.stop()
    return { data: { event: 'stopped' }, text: 'Carchain stopped.' }
  },
}

/** One line on what the system did so far, for the terminal. */
async function liveSummary(node: RunningSystem): Promise<string> {
  const [{ rows }, [anchor]] = await Promise.all([
    node.db.query<{ size: string | number | bigint | null; shards: string | number | bigint }>(
      'select sum(tree_size) as size, count(*) as shards from ledger_log',
    ),
    listAnchors(node.db, 1),
  ])
  const events = Number(rows[0]?.size ?? 0)
  const shards = Number(rows[0]?.shards ?? 1)
  const counts = node.fleet?.activity.counts ?? {}
  const flows = Object.entries(counts)
    .map(([flow, n]) => `${flow} ${n}`)
    .join(' · ')
  const cars = node.fleet ? `${node.fleet.vehicles().length} cars · ` : ''
  const anchored = shards > 1 ? `${shards} shards` : `anchored ${anchor?.treeSize ?? 0}`
  return `· ${cars}${events} events · ${anchored}${flows ? ` · ${flows}` : ''}`
}

const deploy: Command = {
  path: ['deploy'],
  summary: 'Deploy the contracts to an Ethereum network (idempotent; key in CARCHAIN_OPERATOR_KEY).',
  flags: {
    rpc: { type: 'string', value: 'URL', description: 'Ethereum JSON-RPC endpoint.', required: true },
    data: {
      type: 'string',
      value: 'DIR',
      description: 'Where deployments/<chainId>.json is written.',
      default: './data',
    },
  },
  async run({ flags, io }) {
    const config = loadConfig({
      flags: { rpc: stringFlag(flags, 'rpc'), data: stringFlag(flags, 'data') },
      env: process.env,
    })
    if (!config.operatorKey)
      throw new BaseError('CONFIG_INVALID', 'set CARCHAIN_OPERATOR_KEY to the deployer’s private key (0x…)')
    const clients = await connectChain({
      rpcUrl: config.rpcUrl!,
      account: operatorAccountFromKey(config.operatorKey),
    })
    refuseDevelopmentAccount(clients.chain.id, clients.account)
    const { deployment, deployedNow } = await deployContracts({
      clients,
      dataDir: config.dataDir,
      progress: io.progress,
    })
    const lines = Object.entries(deployment.contracts).map(([name, c]) => `  ${name.padEnd(17)}${c.address}`)
    return {
      data: { deployedNow, ...deployment },
      text: [
        `${deployedNow ? 'Deployed' : 'Already deployed'} on chain ${deployment.chainId}:`,
        ...lines,
      ].join('\n'),
    }
  },
}

export const nodeCommands: readonly Command[] = [up, deploy]
