/**
 * Test kit: a charging world on a real anvil — a CPO with a registered, certified charger, a car
 * whose wallet key lives in a software key store, the station agent and the car's wallet wired
 * together. Not part of the library.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import type { AddressInfo, Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Address, createWalletClient, http, type LocalAccount, parseEther } from 'viem'
import { startTestChain, type TestChain } from '../../test/chain.ts'
import type { ChainClients } from '../chain/clients.ts'
import { demoTokenAbi, vehicleRegistryAbi } from '../chain/generated/index.ts'
import type { BaseError } from '../errors.ts'
import { keyStoreAccount } from '../identity/account.ts'
import { type Certificate, toPem } from '../identity/certificate.ts'
import { aPki, type TestPki } from '../identity/pki.testkit.ts'
import { connectIdentity, createIdentityServer, type TlsIdentity } from '../identity/tls.ts'
import type { EventKind } from '../ledger/envelope.ts'
import type { JsonValue } from '../ledger/jcs.ts'
import { type Meter, simulatedMeter, virtualClock } from '../station/meter.ts'
import {
  type ChargingStation,
  createChargingStation,
  type SessionReport,
  type StationSession,
  type TariffConfig,
} from '../station/station.ts'
import type { VoucherBook } from '../station/vouchers.ts'
import type { ChannelClients } from './channels.ts'
import { createChargerChecker, evseIdHash } from './charger-check.ts'
import { type ChargingSessionResult, runChargingSession } from './session.ts'
import { type MessageTransport, memoryTransportPair, tlsTransport } from './transport.ts'
import type { PaymentsDomain } from './typed-data.ts'
import { type CarWallet, createCarWallet, type Recorder, type WalletPolicy } from './wallet.ts'

export const TOKEN = 10n ** 18n

export type RecordedEvent = { kind: EventKind; data: JsonValue }

export type ChargingWorld = {
  chain: TestChain
  pki: TestPki
  domain: PaymentsDomain
  token: Address
  registry: Address
  cpo: ChainClients
  clock: ReturnType<typeof virtualClock>
  tmp: string
  aCharger(options?: {
    evseId?: string
    tariff?: Partial<TariffConfig>
    powerW?: number
    limitWh?: number
    /** Replaces the simulated meter (`powerW`, `limitWh`); it should read `clock`. */
    meter?: Meter
    register?: boolean
    /** The operator's voucher book, to share it between chargers (default: the station's own). */
    book?: VoucherBook
    /** Reports sessions to a central system (OCPP, src/ocpp/station-client.ts). */
    report?: SessionReport
  }): Promise<{
    station: ChargingStation
    signer: LocalAccount
    events: RecordedEvent[]
    evseId: string
    cert: Certificate
    keyRef: string
  }>
  aCar(options?: {
    policy?: Partial<WalletPolicy>
    funds?: bigint
    statePath?: string
    /** The wallet key in `pki.store` (e.g. the one a vehicle certificate binds); default a fresh one. */
    walletRef?: string
    /** Replaces the recorder that collects `events` (e.g. one that fails). */
    record?: Recorder
  }): Promise<{
    wallet: CarWallet
    clients: ChannelClients
    account: LocalAccount
    events: RecordedEvent[]
  }>
  /** Serves `charger` over mutual TLS 1.3 (vehicles of the test OEM) on a free port. */
  listen(charger: { station: ChargingStation; keyRef: string; cert: Certificate }): Promise<{
    server: Server
    served: Promise<StationSession>[]
    port: number
  }>
  /** Connects to a charger's `port` over mutual TLS 1.3 as `vehicle` (whose certificate binds its wallet). */
  connectAs(vehicle: { keyRef: string; cert: Certificate }, port: number): Promise<MessageTransport>
  /** One charging session of `car` at `station` over an in-memory link, both sides run to their end. */
  charge(
    car: { wallet: CarWallet; clients: ChannelClients },
    station: ChargingStation,
    options: { stopAtWh: number; channelDeposit?: bigint },
  ): Promise<[ChargingSessionResult, StationSession]>
  /**
   * As `charge`, for a session one side may refuse: the car's error code (`'paid'` when it paid)
   * and the station's session.
   */
  chargeOutcome(
    car: { wallet: CarWallet; clients: ChannelClients },
    station: ChargingStation,
    options: { stopAtWh: number; channelDeposit?: bigint },
  ): Promise<[string, StationSession]>
  balanceOf(address: Address): Promise<bigint>
  stop(): Promise<void>
}

let evseCounter = 0

export async function aChargingWorld(): Promise<ChargingWorld> {
  const chain = await startTestChain()
  const pki = await aPki()
  const tmp = await mkdtemp(join(tmpdir(), 'carchain-payments-'))
  const { publicClient, walletClient } = chain.clients
  const token = chain.deployment.contracts.Token.address
  const registry = chain.deployment.contracts.VehicleRegistry.address
  const domain: PaymentsDomain = {
    chainId: chain.clients.chain.id,
    verifyingContract: chain.deployment.contracts.ChargingChannels.address,
  }
  const cpo = await chain.as(2)
  const wait = async (hash: `0x${string}`) => {
    await publicClient.waitForTransactionReceipt({ hash })
  }
  await wait(
    await walletClient.writeContract({
      address: registry,
      abi: vehicleRegistryAbi,
      functionName: 'setCpo',
      args: [cpo.account.address, true],
    }),
  )
  // Virtual time from 01:00 UTC today, so a run of many simulated hours stays within one UTC day.
  const clock = virtualClock(Math.floor(Date.now() / 86_400_000) * 86_400_000 + 3_600_000)
  /** A TLS identity of the test PKI: its key in `pki.store`, its sub-CA as the chain. */
  const identity = (holder: { keyRef: string; cert: Certificate }, issuer: Certificate): TlsIdentity => ({
    store: pki.store,
    keyRef: holder.keyRef,
    certificate: holder.cert.der,
    chain: [issuer.der],
  })
  const world: ChargingWorld = {
    chain,
    pki,
    domain,
    token,
    registry,
    cpo,
    clock,
    tmp,
    async aCharger(options = {}) {
      const evseId = options.evseId ?? `DE*CCH*E${String(++evseCounter).padStart(5, '0')}`
      const { cert, keyRef } = await pki.aCharger({ evseId })
      const ref = await pki.store.generate(
        'secp256k1',
        `charger-wallet-${process.pid}-${evseCounter}-${Date.now()}`,
      )
      const signer = await keyStoreAccount(pki.store, ref)
      if (options.register !== false)
        await wait(
          await cpo.walletClient.writeContract({
            address: registry,
            abi: vehicleRegistryAbi,
            functionName: 'registerCharger',
            args: [signer.address, `0x${cert.fingerprint}`, evseIdHash(evseId)],
          }),
        )
      const events: RecordedEvent[] = []
      const station = createChargingStation({
        signer,
        evseId,
        certificatePem: toPem('CERTIFICATE', cert.der),
        chainPem: [toPem('CERTIFICATE', pki.cpo.sub.der)],
        domain,
        publicClient,
        settlement: cpo,
        payee: cpo.account.address,
        tariff: {
          token,
          pricePerKWh: 300_000_000_000_000_000n,
          sessionFee: 500_000_000_000_000_000n,
          ...options.tariff,
        },
        meter:
          options.meter ??
          simulatedMeter({
            powerW: options.powerW ?? 50_000,
            intervalMs: 60_000,
            clock,
            ...(options.limitWh !== undefined ? { limitWh: options.limitWh } : {}),
          }),
        ...(options.book ? { book: options.book } : {}),
        ...(options.report ? { report: options.report } : {}),
        record: async (kind, data) => {
          events.push({ kind, data })
          return `station-${events.length}`
        },
        now: clock.now,
      })
      return { station, signer, events, evseId, cert, keyRef }
    },
    async aCar(options = {}) {
      const ref =
        options.walletRef ??
        (await pki.store.generate(
          'secp256k1',
          `car-wallet-${process.pid}-${Date.now()}-${Math.random()}`.slice(0, 60),
        ))
      const account = await keyStoreAccount(pki.store, ref)
      await wait(await walletClient.sendTransaction({ to: account.address, value: parseEther('1') }))
      await wait(
        await walletClient.writeContract({
          address: token,
          abi: demoTokenAbi,
          functionName: 'mint',
          args: [account.address, options.funds ?? 1000n * TOKEN],
        }),
      )
      const events: RecordedEvent[] = []
      const wallet = createCarWallet({
        account,
        domain,
        policy: {
          maxPerSession: 40n * TOKEN,
          maxPerDay: 100n * TOKEN,
          maxPricePerKWh: TOKEN,
          tokens: [token],
          ...options.policy,
        },
        ...(options.statePath ? { statePath: options.statePath } : {}),
        checkCharger: createChargerChecker({
          publicClient,
          vehicleRegistry: registry,
          trustAnchors: { cpo: [pki.cpo.root.der] },
        }),
        record:
          options.record ??
          (async (kind, data) => {
            events.push({ kind, data })
            return `car-${events.length}`
          }),
        now: clock.now,
      })
      const clients: ChannelClients = {
        publicClient,
        walletClient: createWalletClient({
          chain: chain.clients.chain,
          transport: http(chain.anvil.rpcUrl),
          account,
        }),
      }
      return { wallet, clients, account, events }
    },
    async listen(charger) {
      const served: Promise<StationSession>[] = []
      const server = await createIdentityServer(
        {
          identity: identity(charger, pki.cpo.sub),
          peer: { role: 'vehicle', trustAnchors: { oem: [pki.oem.root.der] } },
        },
        (session) => served.push(charger.station.serve(tlsTransport(session))),
      )
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
      return { server, served, port: (server.address() as AddressInfo).port }
    },
    async connectAs(vehicle, port) {
      const session = await connectIdentity({
        identity: identity(vehicle, pki.oem.sub),
        peer: { role: 'charger', trustAnchors: { cpo: [pki.cpo.root.der] } },
        host: '127.0.0.1',
        port,
      })
      return tlsTransport(session)
    },
    charge: (car, station, options) =>
      Promise.all(bothSides(domain.verifyingContract, car, station, options)),
    chargeOutcome(car, station, options) {
      const [paying, serving] = bothSides(domain.verifyingContract, car, station, options)
      return Promise.all([
        paying.then(
          () => 'paid',
          (error: BaseError) => error.code,
        ),
        serving,
      ])
    },
    balanceOf: (address) =>
      publicClient.readContract({
        address: token,
        abi: demoTokenAbi,
        functionName: 'balanceOf',
        args: [address],
      }),
    async stop() {
      await chain.stop()
      await pki.cleanup()
      await rm(tmp, { recursive: true, force: true })
    },
  }
  return world
}

/** The car's and the station's side of one session over an in-memory link, paying into `channels`. */
const bothSides = (
  channels: Address,
  car: { wallet: CarWallet; clients: ChannelClients },
  station: ChargingStation,
  options: { stopAtWh: number; channelDeposit?: bigint },
) => {
  const [carSide, chargerSide] = memoryTransportPair()
  const paying = runChargingSession({
    transport: carSide,
    wallet: car.wallet,
    clients: car.clients,
    contracts: { channels },
    ...options,
  })
  return [paying, station.serve(chargerSide)] as const
}
