/**
 * The demo's charge points and the cars' wallets: the chargers of the demo CPO (certificate for
 * mutual TLS, a secp256k1 key registered on chain as the charger's identity, a meter following
 * the plugged car's charge curve, its own signed tariff, claims on chain every few seconds), and
 * each car's wallet under its owner's policy. A session runs exactly as in a real car: mutual
 * TLS 1.3 with certificates of the right role, a payment channel opened with a permit (or
 * reused), a voucher per signed meter reading.
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { AddressInfo, Server } from 'node:net'
import { join } from 'node:path'
import { type Address, createWalletClient, http, keccak256, parseUnits, stringToBytes } from 'viem'
import { vehicleRegistryAbi } from '../chain/generated/index.ts'
import { keyStoreAccount } from '../identity/account.ts'
import { fromPem } from '../identity/certificate.ts'
import type { PkiDirectory } from '../identity/pki-directory.ts'
import { registryRevocation } from '../identity/registry-revocation.ts'
import type { SoftwareKeyStore } from '../identity/software-keystore.ts'
import { connectIdentity, createIdentityServer } from '../identity/tls.ts'
import { logger } from '../log.ts'
import type { NodeContext } from '../node/context.ts'
import type { ChannelClients } from '../payments/channels.ts'
import { createChargerChecker } from '../payments/charger-check.ts'
import { type PayReturnType, pay } from '../payments/pay.ts'
import { type ChargingSessionResult, runChargingSession } from '../payments/session.ts'
import { tlsTransport } from '../payments/transport.ts'
import { type CarWallet, createCarWallet } from '../payments/wallet.ts'
import { type ChargingStation, createChargingStation } from '../station/station.ts'
import { fileVoucherBook, type VoucherBook } from '../station/vouchers.ts'
import type { VehicleAgent } from '../vehicle/agent.ts'
import { type ChargerBay, type ChargerSpec, connectorMeter, TIME_COMPRESSION } from './battery.ts'

const log = logger('sim.charging')

const TOKEN = 10n ** 18n
/** The parking operator the demo cars pay (development account 7). */
export const PARKING_INDEX = 7
/** The most a demo session may cost: a full SUV battery at the dearest charger. */
export const DEMO_MAX_PER_SESSION = 80n * TOKEN
/** A demo car's new channel holds this much: several sessions' worth. */
export const DEMO_CHANNEL_DEPOSIT = 300n * TOKEN

export type DemoCharger = {
  evseId: string
  address: Address
  port: number
  station: ChargingStation
  spec: ChargerSpec
}

export type ChargePoints = {
  chargers: DemoCharger[]
  /** The CPO's voucher book, shared by its chargers (one channel serves them all). */
  book: VoucherBook
  stop(): Promise<void>
}

/** The first certificate of a PEM file, as DER. */
export const pemDer = (path: string) => fromPem(readFileSync(path, 'utf8'))[0]!

/** Starts the demo charge points (idempotent registration on chain). */
export async function startChargePoints(parameters: {
  context: NodeContext
  pki: PkiDirectory
  pkiDir: string
  store: SoftwareKeyStore
  dataDir: string
  /** One charger per bay: its power, tariff and connector (src/sim/battery.ts). */
  bays: readonly ChargerBay[]
}): Promise<ChargePoints> {
  const { context, pki, pkiDir, store } = parameters
  const { clients, contracts } = context
  const chargers: DemoCharger[] = []
  const servers: Server[] = []
  const schedulers: { stop(): Promise<void> }[] = []
  // The vouchers survive a restart, so nothing signed to the CPO goes unclaimed.
  const book = await fileVoucherBook(join(parameters.dataDir, 'fleet', 'cpo-vouchers.json'))
  for (let i = 1; i <= parameters.bays.length; i++) {
    const { spec, connector } = parameters.bays[i - 1]!
    const evseId = `DE*CCH*E${String(i).padStart(5, '0')}`
    const issued = await pki.issueCharger({ evseId })
    const walletLabel = `charger-${evseId.replace(/[^A-Za-z0-9]/g, '_')}-wallet`
    const walletRef = (await store.find(walletLabel)) ?? (await store.generate('secp256k1', walletLabel))
    const signer = await keyStoreAccount(store, walletRef)
    const registered = await clients.publicClient.readContract({
      address: contracts.VehicleRegistry,
      abi: vehicleRegistryAbi,
      functionName: 'isChargerActive',
      args: [signer.address],
    })
    const certificate = pemDer(issued.cert)
    if (!registered) {
      const fingerprint = `0x${createHash('sha256').update(certificate).digest('hex')}` as const
      const evseIdHash = keccak256(stringToBytes(evseId))
      const hash = await clients.walletClient.writeContract({
        address: contracts.VehicleRegistry,
        abi: vehicleRegistryAbi,
        functionName: 'registerCharger',
        args: [signer.address, fingerprint, evseIdHash],
      })
      await clients.publicClient.waitForTransactionReceipt({ hash })
    }
    const station = createChargingStation({
      signer,
      evseId,
      certificatePem: readFileSync(issued.cert, 'utf8'),
      chainPem: [readFileSync(join(pkiDir, 'subca', 'cpo.pem'), 'utf8')],
      domain: { chainId: clients.chain.id, verifyingContract: contracts.ChargingChannels },
      publicClient: clients.publicClient,
      settlement: { publicClient: clients.publicClient, walletClient: clients.walletClient },
      payee: clients.account.address,
      book,
      tariff: { token: contracts.Token, pricePerKWh: spec.pricePerKWh, sessionFee: spec.sessionFee },
      // delivers what the plugged car's battery accepts, in compressed time
      meter: connectorMeter(spec, connector),
      record: async (kind, data) => {
        context.events.publish('charging', { evseId, kind, data })
        return `${evseId}:${kind}`
      },
    })
    const server = await createIdentityServer(
      {
        identity: {
          store,
          keyRef: issued.key,
          certificate,
          chain: [pemDer(join(pkiDir, 'subca', 'cpo.pem'))],
        },
        peer: {
          role: 'vehicle',
          trustAnchors: { oem: [pemDer(join(pkiDir, 'roots', 'oem.pem'))] },
          isRevoked: registryRevocation(clients.publicClient, contracts.VehicleRegistry),
          // The car's certificate must be the one its title records on chain.
          isRegistered: async (peer) =>
            peer.wallet !== undefined &&
            (
              await clients.publicClient.readContract({
                address: contracts.VehicleRegistry,
                abi: vehicleRegistryAbi,
                functionName: 'certFingerprintOf',
                args: [peer.wallet.address],
              })
            ).toLowerCase() === `0x${peer.fingerprint}`,
        },
      },
      (session) => {
        station
          .serve(tlsTransport(session))
          .catch((error: unknown) => log.error({ err: error, evseId }, 'a charging session failed'))
      },
    )
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    servers.push(server)
    schedulers.push(station.startClaimScheduler(10_000))
    chargers.push({
      evseId,
      address: signer.address,
      port: (server.address() as AddressInfo).port,
      station,
      spec,
    })
  }
  return {
    chargers,
    book,
    async stop() {
      for (const scheduler of schedulers) await scheduler.stop()
      for (const server of servers) server.close()
    },
  }
}

/** A car's wallet under its owner's demo policy, recording payments on the car's ledger. */
export function carWallet(
  context: NodeContext,
  agent: VehicleAgent,
  dir: string,
  pkiDir: string,
): { wallet: CarWallet; clients: ChannelClients } {
  const { clients, contracts } = context
  const account = agent.wallet()
  const wallet = createCarWallet({
    account,
    domain: { chainId: clients.chain.id, verifyingContract: contracts.ChargingChannels },
    // In compressed time: a real day holds TIME_COMPRESSION simulated ones, and a meter reports
    // a second's simulated energy per real second.
    policy: {
      maxPerSession: DEMO_MAX_PER_SESSION,
      maxPerDay: 200n * TOKEN * BigInt(TIME_COMPRESSION),
      maxPricePerKWh: TOKEN,
      tokens: [contracts.Token],
      maxPowerW: 350_000 * TIME_COMPRESSION,
    },
    statePath: join(dir, 'wallet.json'),
    checkCharger: createChargerChecker({
      publicClient: clients.publicClient,
      vehicleRegistry: contracts.VehicleRegistry,
      trustAnchors: { cpo: [pemDer(join(pkiDir, 'roots', 'cpo.pem'))] },
    }),
    record: (kind, data) => agent.recorder.record(kind, data),
  })
  const walletClient = createWalletClient({ chain: clients.chain, transport: http(clients.rpcUrl), account })
  return { wallet, clients: { publicClient: clients.publicClient, walletClient } }
}

/** One charging session of a car at a charger, over mutual TLS. */
export async function chargeCar(parameters: {
  agent: VehicleAgent
  identity: { store: SoftwareKeyStore; keyRef: string; certificate: Uint8Array; chain: Uint8Array[] }
  charger: DemoCharger
  wallet: { wallet: CarWallet; clients: ChannelClients }
  pkiDir: string
  channels: Address
  energyWh: number
  /** Ends the session at the next reading (the fleet is stopping). */
  signal?: AbortSignal
}): Promise<ChargingSessionResult> {
  const session = await connectIdentity({
    identity: parameters.identity,
    peer: { role: 'charger', trustAnchors: { cpo: [pemDer(join(parameters.pkiDir, 'roots', 'cpo.pem'))] } },
    // (the charger's registration and revocation are checked by the wallet's charger check)
    host: '127.0.0.1',
    port: parameters.charger.port,
  })
  try {
    return await runChargingSession({
      transport: tlsTransport(session),
      wallet: parameters.wallet.wallet,
      clients: parameters.wallet.clients,
      contracts: { channels: parameters.channels },
      stopAtWh: parameters.energyWh,
      channelDeposit: DEMO_CHANNEL_DEPOSIT,
      ...(parameters.signal ? { signal: parameters.signal } : {}),
    })
  } finally {
    session.socket.destroy()
  }
}

/** A one-shot parking payment under the same policy. */
export function payParking(
  context: NodeContext,
  wallet: { wallet: CarWallet; clients: ChannelClients },
  to: Address,
  memo: string,
): Promise<PayReturnType> {
  return pay(wallet.clients, wallet.wallet, {
    token: context.contracts.Token,
    to,
    amount: parseUnits('2.5', 18),
    memo,
  })
}
