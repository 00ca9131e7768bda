/**
 * `carchain charge …` and `carchain pay`: the car's wallet and the charging-station agent from the
 * command line (docs/payments.md "CLI"). Keys live in a software key store directory (e.g. the
 * PKI directory's `keystore/`); the passphrase comes from --passphrase or CARCHAIN_PASSPHRASE.
 * Contract addresses come from `<data>/deployments/<chainId>.json` (written by `carchain up` or
 * `deploy`). Amounts on the command line are in whole tokens (decimals read from the token).
 * The wallet's state (caps spent, channels) is `<data>/wallets/<address>.json`; without a node
 * to ingest them, its ledger events go to `<data>/wallets/<address>.events.jsonl`.
 */
import { appendFileSync, mkdirSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { join, resolve } from 'node:path'
import {
  type Address,
  createWalletClient,
  formatUnits,
  type Hex,
  http,
  isAddress,
  type LocalAccount,
  parseUnits,
} from 'viem'
import { type ChainClients, connectChain, developmentAccount } from '../../chain/clients.ts'
import { readDeployment } from '../../chain/deploy.ts'
import { demoTokenAbi } from '../../chain/generated/index.ts'
import { openDatabase } from '../../db/database.ts'
import { migrate } from '../../db/migrate.ts'
import { BaseError } from '../../errors.ts'
import { keyStoreAccount } from '../../identity/account.ts'
import { fromPem } from '../../identity/certificate.ts'
import { SoftwareKeyStore } from '../../identity/software-keystore.ts'
import { connectIdentity, createIdentityServer } from '../../identity/tls.ts'
import { connectOcppStation, type OcppStation } from '../../ocpp/station-client.ts'
import { type ChannelClients, channelKeyOf, readChannel, reclaimChannel } from '../../payments/channels.ts'
import { createChargerChecker } from '../../payments/charger-check.ts'
import { pay } from '../../payments/pay.ts'
import { runChargingSession } from '../../payments/session.ts'
import { tlsTransport } from '../../payments/transport.ts'
import { type CarWallet, createCarWallet } from '../../payments/wallet.ts'
import { databaseVoucherBook } from '../../station/database-voucher-book.ts'
import { simulatedMeter } from '../../station/meter.ts'
import { createChargingStation } from '../../station/station.ts'
import { claimPending, fileVoucherBook, type VoucherBook } from '../../station/vouchers.ts'
import type { Command, CommandIo, FlagSpec, ParsedFlags } from '../command.ts'
import { integerFlag, requiredStringFlag, stringFlag } from '../flags.ts'
import { keyStorePassphrase, passphraseFlag } from '../passphrase.ts'

export const chainFlags: Record<string, FlagSpec> = {
  rpc: {
    type: 'string',
    value: 'URL',
    description: 'Ethereum JSON-RPC (env CARCHAIN_RPC_URL).',
    default: 'http://127.0.0.1:8545',
  },
  data: {
    type: 'string',
    value: 'DIR',
    description: 'Data directory (deployments, wallet state).',
    default: './data',
  },
}
const keyFlags: Record<string, FlagSpec> = {
  keystore: { type: 'string', value: 'DIR', description: 'Software key store directory.', required: true },
  passphrase: passphraseFlag,
}
export const walletFlags: Record<string, FlagSpec> = {
  ...chainFlags,
  ...keyFlags,
  wallet: {
    type: 'string',
    value: 'LABEL',
    description: 'The secp256k1 wallet key’s label.',
    required: true,
  },
  'max-session': {
    type: 'string',
    value: 'TOKENS',
    description: 'Cap per session or payment.',
    default: '50',
  },
  'max-day': { type: 'string', value: 'TOKENS', description: 'Cap per UTC day.', default: '200' },
  'max-price': { type: 'string', value: 'TOKENS', description: 'Highest price per kWh.', default: '1' },
}
const identityFlags: Record<string, FlagSpec> = {
  'identity-key': {
    type: 'string',
    value: 'REF',
    description: 'P-256 identity key (keystore:<label>).',
    required: true,
  },
  cert: { type: 'string', value: 'FILE', description: 'Own certificate (PEM).', required: true },
  chain: {
    type: 'string',
    value: 'FILE',
    description: 'Own intermediate CA certificate(s) (PEM).',
    required: true,
  },
}

export type Context = {
  clients: ChainClients
  contracts: { token: Address; channels: Address; registry: Address }
  store: SoftwareKeyStore
  dataDir: string
  decimals: number
}

export async function openContext(flags: ParsedFlags): Promise<Context> {
  const rpcUrl = process.env.CARCHAIN_RPC_URL ?? requiredStringFlag(flags, 'rpc')
  const dataDir = resolve(requiredStringFlag(flags, 'data'))
  // Reads need no key; transactions are sent through per-account wallet clients below.
  const clients = await connectChain({ rpcUrl, account: developmentAccount(0) })
  const passphrase = keyStorePassphrase(flags, clients.chain.id) // before any work: fail fast
  const deployment = readDeployment(dataDir, clients.chain.id)
  if (!deployment)
    throw new BaseError('DEPLOYMENT_MISSING', `no deployment for chain ${clients.chain.id} in ${dataDir}`, {
      details: { dataDir, chainId: clients.chain.id },
    })
  const store = new SoftwareKeyStore({
    dir: requiredStringFlag(flags, 'keystore'),
    passphrase,
  })
  const token = deployment.contracts.Token.address
  const decimals = await clients.publicClient.readContract({
    address: token,
    abi: demoTokenAbi,
    functionName: 'decimals',
  })
  return {
    clients,
    contracts: {
      token,
      channels: deployment.contracts.ChargingChannels.address,
      registry: deployment.contracts.VehicleRegistry.address,
    },
    store,
    dataDir,
    decimals,
  }
}

export async function accountFor(ctx: Context, label: string): Promise<LocalAccount> {
  const ref = await ctx.store.find(label)
  if (!ref)
    throw new BaseError('KEY_NOT_FOUND', `no key "${label}" in the key store; create it with charge wallet`)
  return keyStoreAccount(ctx.store, ref)
}

export function clientsFor(ctx: Context, account: LocalAccount): ChannelClients {
  return {
    publicClient: ctx.clients.publicClient,
    walletClient: createWalletClient({
      chain: ctx.clients.chain,
      transport: http(ctx.clients.rpcUrl),
      account,
    }),
  }
}

export function tokens(ctx: Context, flags: ParsedFlags, name: string): bigint {
  const raw = requiredStringFlag(flags, name)
  if (!/^\d+(\.\d+)?$/.test(raw))
    throw new BaseError('CLI_USAGE', `--${name} must be a decimal number of tokens`)
  return parseUnits(raw, ctx.decimals)
}

export async function openWallet(
  ctx: Context,
  flags: ParsedFlags,
  trustRoots: Uint8Array[] = [],
  label = requiredStringFlag(flags, 'wallet'),
): Promise<CarWallet> {
  const account = await accountFor(ctx, label)
  const dir = join(ctx.dataDir, 'wallets')
  mkdirSync(dir, { recursive: true })
  const eventsPath = join(dir, `${account.address}.events.jsonl`)
  return createCarWallet({
    account,
    domain: { chainId: ctx.clients.chain.id, verifyingContract: ctx.contracts.channels },
    policy: {
      maxPerSession: tokens(ctx, flags, 'max-session'),
      maxPerDay: tokens(ctx, flags, 'max-day'),
      maxPricePerKWh: tokens(ctx, flags, 'max-price'),
      tokens: [ctx.contracts.token],
    },
    statePath: join(dir, `${account.address}.json`),
    checkCharger: createChargerChecker({
      publicClient: ctx.clients.publicClient,
      vehicleRegistry: ctx.contracts.registry,
      trustAnchors: { cpo: trustRoots },
    }),
    record: async (kind, data) => {
      const id = `${Date.now()}-${kind}`
      appendFileSync(eventsPath, `${JSON.stringify({ id, time: Date.now(), kind, data })}\n`)
      return id
    },
  })
}

export async function withContext<T>(
  flags: ParsedFlags,
  _io: CommandIo,
  task: (ctx: Context) => Promise<T>,
): Promise<T> {
  const ctx = await openContext(flags)
  try {
    return await task(ctx)
  } finally {
    await ctx.store.close()
  }
}

const amountText = (ctx: Context, amount: bigint) => formatUnits(amount, ctx.decimals)

const bookFlags: Record<string, FlagSpec> = {
  book: { type: 'string', value: 'FILE', description: 'Voucher book file (chargers of one process).' },
  database: {
    type: 'string',
    value: 'URL',
    description: 'PostgreSQL holding the operator’s voucher book, shared by all its chargers.',
  },
}

/**
 * The operator's voucher book: in its database with --database (every charger of the operator,
 * in any process, must use the same one: it allows one session per channel at a time), else the
 * file --book or `defaultPath`.
 */
async function openBook(
  flags: ParsedFlags,
  defaultPath: string | undefined,
): Promise<{ book: VoucherBook; close(): Promise<void> }> {
  const url = stringFlag(flags, 'database')
  const path = stringFlag(flags, 'book') ?? defaultPath
  if (url && stringFlag(flags, 'book'))
    throw new BaseError('CLI_USAGE', 'give the voucher book as --book or --database, not both')
  if (url) {
    const db = await openDatabase({ engine: 'postgres', url, maxConnections: 2 })
    await migrate(db)
    return { book: databaseVoucherBook(db), close: () => db.close() }
  }
  if (!path) throw new BaseError('CLI_USAGE', 'give the voucher book as --book FILE or --database URL')
  return { book: await fileVoucherBook(path), close: async () => {} }
}

const wallet: Command = {
  path: ['charge', 'wallet'],
  summary: 'Create (if missing) and show the car wallet key: address, token balance, spent today.',
  flags: walletFlags,
  run: ({ flags, io }) =>
    withContext(flags, io, async (ctx) => {
      const label = requiredStringFlag(flags, 'wallet')
      if (!(await ctx.store.find(label))) await ctx.store.generate('secp256k1', label)
      const w = await openWallet(ctx, flags)
      const balance = await ctx.clients.publicClient.readContract({
        address: ctx.contracts.token,
        abi: demoTokenAbi,
        functionName: 'balanceOf',
        args: [w.address],
      })
      const data = { address: w.address, token: ctx.contracts.token, balance, spentToday: w.spentToday() }
      return {
        data,
        text: `wallet ${w.address}\n  balance      ${amountText(ctx, balance)}\n  spent today  ${amountText(ctx, w.spentToday())}`,
      }
    }),
}

const channels: Command = {
  path: ['charge', 'channels'],
  summary: 'List the wallet’s payment channels with their on-chain state.',
  flags: walletFlags,
  run: ({ flags, io }) =>
    withContext(flags, io, async (ctx) => {
      const w = await openWallet(ctx, flags)
      const rows = []
      for (const record of w.channels()) {
        const c = await readChannel(ctx.clients.publicClient, {
          channels: ctx.contracts.channels,
          key: channelKeyOf(w.address, record),
        })
        rows.push({
          channelId: record.channelId,
          payee: record.payee,
          deposit: c.deposit,
          signed: record.cumulativeAmount,
          paid: c.paid,
          meterWh: record.meterWh,
          expiresAt: new Date(Number(c.expiresAt) * 1000).toISOString(),
          closed: c.closed,
        })
      }
      const text = rows.length
        ? rows
            .map(
              (r) =>
                `${r.channelId}  payee ${r.payee}  deposit ${amountText(ctx, r.deposit)}  signed ${amountText(ctx, r.signed)}  paid ${amountText(ctx, r.paid)}  ${r.meterWh} Wh  ${r.closed ? 'closed' : `until ${r.expiresAt}`}`,
            )
            .join('\n')
        : 'no channels'
      return { data: { channels: rows }, text }
    }),
}

const reclaim: Command = {
  path: ['charge', 'reclaim'],
  summary: 'Take back what the operator did not claim from an expired channel.',
  flags: {
    ...walletFlags,
    channel: { type: 'string', value: 'ID', description: 'Channel id.', required: true },
  },
  run: ({ flags, io }) =>
    withContext(flags, io, async (ctx) => {
      const w = await openWallet(ctx, flags)
      const channelId = requiredStringFlag(flags, 'channel').toLowerCase() as Hex
      // The contract names a channel by its key; the wallet remembers the keys of its channels.
      const record = w.channel(channelId)
      if (!record)
        throw new BaseError('CHANNEL_STATE', `the wallet holds no channel ${channelId}`, {
          details: { channelId },
        })
      const sent = await reclaimChannel(clientsFor(ctx, w.account), {
        channels: ctx.contracts.channels,
        key: channelKeyOf(w.address, record),
      })
      return { data: { channelId, txHash: sent.txHash }, text: `reclaimed ${channelId} (${sent.txHash})` }
    }),
}

const session: Command = {
  path: ['charge', 'session'],
  summary: 'Charge at a station over mutual TLS, paying through a channel under the wallet policy.',
  flags: {
    ...walletFlags,
    ...identityFlags,
    link: { type: 'string', value: 'HOST:PORT', description: 'The station’s TLS address.', required: true },
    'cpo-root': {
      type: 'string',
      value: 'FILE',
      description: 'Trusted CPO root certificate (PEM).',
      required: true,
    },
    'stop-at-wh': { type: 'string', value: 'N', description: 'Stop after this much energy.' },
  },
  run: ({ flags, io }) =>
    withContext(flags, io, async (ctx) => {
      const [host, port] = requiredStringFlag(flags, 'link').split(':')
      const cpoRoots = fromPem(await readFile(requiredStringFlag(flags, 'cpo-root'), 'utf8'))
      const car = await openWallet(ctx, flags, cpoRoots)
      const tls = await connectIdentity({
        identity: {
          store: ctx.store,
          keyRef: requiredStringFlag(flags, 'identity-key'),
          certificate: fromPem(await readFile(requiredStringFlag(flags, 'cert'), 'utf8'))[0] as Uint8Array,
          chain: fromPem(await readFile(requiredStringFlag(flags, 'chain'), 'utf8')),
        },
        peer: { role: 'charger', trustAnchors: { cpo: cpoRoots } },
        host: host ?? '127.0.0.1',
        port: Number(port),
      })
      const stopAtWh = integerFlag(flags, 'stop-at-wh', { min: 1 })
      const result = await runChargingSession({
        transport: tlsTransport(tls),
        wallet: car,
        clients: clientsFor(ctx, car.account),
        contracts: { channels: ctx.contracts.channels },
        ...(stopAtWh ? { stopAtWh } : {}),
        signal: io.stopSignal,
      })
      return {
        data: result,
        text: `charged ${result.energyWh} Wh at ${result.evseId} for ${amountText(ctx, result.amount)} (channel ${result.channelId}, ${result.channelAction})`,
      }
    }),
}

const station: Command = {
  path: ['charge', 'station'],
  summary: 'Run a charging-station agent on a TLS port with a simulated meter; claims on a schedule.',
  flags: {
    ...chainFlags,
    ...keyFlags,
    ...identityFlags,
    wallet: {
      type: 'string',
      value: 'LABEL',
      description: 'The charger’s registered secp256k1 key.',
      required: true,
    },
    'cpo-key': {
      type: 'string',
      value: 'LABEL',
      description: 'The CPO’s secp256k1 key (payee; claims).',
      required: true,
    },
    evse: { type: 'string', value: 'ID', description: 'EVSE ID (the certificate’s CN).', required: true },
    'oem-root': {
      type: 'string',
      value: 'FILE',
      description: 'Trusted OEM root certificate (PEM).',
      required: true,
    },
    port: { type: 'string', value: 'N', description: 'TLS port.', default: '15118' },
    price: { type: 'string', value: 'TOKENS', description: 'Price per kWh.', default: '0.3' },
    fee: { type: 'string', value: 'TOKENS', description: 'Session fee.', default: '0' },
    'power-w': { type: 'string', value: 'W', description: 'Simulated charging power.', default: '11000' },
    ...bookFlags,
    book: {
      type: 'string',
      value: 'FILE',
      description:
        'Voucher book file (default <data>/station/<EVSE>.vouchers.json); a charger of an operator with several runs --database instead.',
    },
    'claim-every': { type: 'string', value: 'SEC', description: 'Claim interval.', default: '300' },
    csms: {
      type: 'string',
      value: 'URL',
      description:
        'Report to an OCPP 2.0.1 CSMS (ws: or wss:, e.g. ws://127.0.0.1:8080/ocpp): the station connects to URL/{station-id} (docs/ocpp.md).',
    },
    'station-id': {
      type: 'string',
      value: 'ID',
      description: 'The OCPP identity at the CSMS (default the EVSE ID with * as -).',
    },
    password: {
      type: 'string',
      value: 'P',
      description: 'HTTP Basic password at the CSMS (env CARCHAIN_CSMS_PASSWORD).',
    },
  },
  run: ({ flags, io }) =>
    withContext(flags, io, async (ctx) => {
      const evseId = requiredStringFlag(flags, 'evse')
      const csmsUrl = stringFlag(flags, 'csms')
      if (csmsUrl !== undefined && !/^wss?:\/\//.test(csmsUrl))
        throw new BaseError('CLI_USAGE', '--csms must be a ws: or wss: URL', { details: { csms: csmsUrl } })
      const password = stringFlag(flags, 'password') ?? process.env.CARCHAIN_CSMS_PASSWORD
      const ocpp = csmsUrl
        ? await connectOcppStation({
            csmsUrl,
            stationId: stringFlag(flags, 'station-id') ?? evseId.replace(/\*/g, '-'),
            ...(password ? { password } : {}),
          })
        : undefined
      if (ocpp) io.progress(`· OCPP 2.0.1: ${ocpp.stationId} booted at ${csmsUrl} (${ocpp.boot.status})`)
      try {
        return await serveStation(flags, io, ctx, evseId, ocpp)
      } finally {
        // closed however the station ends, also when it fails to start (a missing key or file)
        await ocpp?.close()
      }
    }),
}

/** `charge station` once its OCPP connection (if any) is up: the agent on its TLS port until stopped. */
async function serveStation(
  flags: ParsedFlags,
  io: CommandIo,
  ctx: Context,
  evseId: string,
  ocpp: OcppStation | undefined,
) {
  const signer = await accountFor(ctx, requiredStringFlag(flags, 'wallet'))
  const cpo = await accountFor(ctx, requiredStringFlag(flags, 'cpo-key'))
  const certificate = fromPem(await readFile(requiredStringFlag(flags, 'cert'), 'utf8'))[0] as Uint8Array
  const chainPem = await readFile(requiredStringFlag(flags, 'chain'), 'utf8')
  const { book, close: closeBook } = await openBook(
    flags,
    join(ctx.dataDir, 'station', `${evseId.replace(/[^A-Za-z0-9._-]/g, '_')}.vouchers.json`),
  )
  try {
    const agent = createChargingStation({
      signer,
      evseId,
      certificatePem: (await readFile(requiredStringFlag(flags, 'cert'), 'utf8')).trim(),
      chainPem: [chainPem.trim()],
      domain: { chainId: ctx.clients.chain.id, verifyingContract: ctx.contracts.channels },
      publicClient: ctx.clients.publicClient,
      settlement: clientsFor(ctx, cpo),
      payee: cpo.address,
      tariff: {
        token: ctx.contracts.token,
        pricePerKWh: tokens(ctx, flags, 'price'),
        sessionFee: tokens(ctx, flags, 'fee'),
      },
      meter: simulatedMeter({ powerW: integerFlag(flags, 'power-w', { min: 1 }) ?? 11_000 }),
      book,
      ...(ocpp ? { report: ocpp.report } : {}),
    })
    const server = await createIdentityServer(
      {
        identity: {
          store: ctx.store,
          keyRef: requiredStringFlag(flags, 'identity-key'),
          certificate,
          chain: fromPem(chainPem),
        },
        peer: {
          role: 'vehicle',
          trustAnchors: { oem: fromPem(await readFile(requiredStringFlag(flags, 'oem-root'), 'utf8')) },
        },
      },
      (tls) =>
        void agent
          .serve(tlsTransport(tls))
          .then((s) => io.progress(`session ${s.sessionId} ended ${s.code}: ${s.energyWh} Wh`)),
      (error) => io.progress(`refused a connection: ${error.code} ${error.shortMessage}`),
    )
    const port = integerFlag(flags, 'port', { min: 0, max: 65535 }) ?? 15118
    await new Promise<void>((ok) => server.listen(port, ok))
    io.print(
      `station ${evseId} (${signer.address}) listening on TLS port ${(server.address() as AddressInfo).port}`,
    )
    const claims = agent.startClaimScheduler((integerFlag(flags, 'claim-every', { min: 1 }) ?? 300) * 1000)
    await new Promise<void>((done) => {
      if (io.stopSignal.aborted) done()
      io.stopSignal.addEventListener('abort', () => done(), { once: true })
    })
    server.close()
    await claims.stop()
    const final = await agent.claim()
    return { data: { stopped: true, claims: final }, text: `stopped; ${final.length} final claim(s)` }
  } finally {
    await closeBook()
  }
}

const claim: Command = {
  path: ['charge', 'claim'],
  summary: 'Claim the newest voucher of every channel in a voucher book (one transaction per channel).',
  flags: {
    ...chainFlags,
    ...keyFlags,
    'cpo-key': { type: 'string', value: 'LABEL', description: 'The payee’s secp256k1 key.', required: true },
    ...bookFlags,
  },
  run: ({ flags, io }) =>
    withContext(flags, io, async (ctx) => {
      const cpo = await accountFor(ctx, requiredStringFlag(flags, 'cpo-key'))
      const { book, close } = await openBook(flags, undefined)
      const outcomes = await claimPending(clientsFor(ctx, cpo), {
        channels: ctx.contracts.channels,
        book,
      }).finally(close)
      const failed = outcomes.filter((o) => !o.ok).length
      return {
        data: { claims: outcomes },
        text: outcomes.length
          ? outcomes
              .map((o) =>
                o.ok
                  ? `${o.channelId} +${amountText(ctx, o.paid)} (${o.txHash})`
                  : `${o.channelId} ${o.code}: ${o.message}`,
              )
              .join('\n')
          : 'nothing to claim',
        exitCode: failed ? 1 : 0,
      }
    }),
}

const payCommand: Command = {
  path: ['pay'],
  summary: 'Pay an address once (parking, tolls) from the car wallet, under its policy.',
  flags: {
    ...walletFlags,
    to: { type: 'string', value: 'ADDR', description: 'Payee address.', required: true },
    amount: { type: 'string', value: 'TOKENS', description: 'Amount in tokens.', required: true },
    memo: { type: 'string', value: 'TEXT', description: 'What it is for (kept in the ledger event).' },
  },
  run: ({ flags, io }) =>
    withContext(flags, io, async (ctx) => {
      const to = requiredStringFlag(flags, 'to')
      if (!isAddress(to)) throw new BaseError('CLI_USAGE', '--to must be an address')
      const w = await openWallet(ctx, flags)
      const amount = tokens(ctx, flags, 'amount')
      const memo = stringFlag(flags, 'memo')
      const paid = await pay(clientsFor(ctx, w.account), w, {
        token: ctx.contracts.token,
        to: to as Address,
        amount,
        ...(memo ? { memo } : {}),
      })
      return {
        data: { to, amount, ...paid },
        text: `paid ${amountText(ctx, amount)} to ${to} (${paid.txHash})`,
      }
    }),
}

export const chargeCommands: readonly Command[] = [
  wallet,
  channels,
  session,
  reclaim,
  station,
  claim,
  payCommand,
]
