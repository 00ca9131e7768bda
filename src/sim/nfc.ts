/**
 * The demo's contactless terminals (docs/nfc.md): pcscd with vsmartcard's virtual reader,
 * started with the fleet when both are installed. A car that parks at the parking operator's
 * terminal, or charges at a charger's NFC reader, taps: its wallet applet enters the virtual
 * reader's field, the terminal reads it through pcsc-lite, the car pays under its policy and the
 * payee redeems the permit on chain. One virtual reader: taps take turns.
 */
import type { LocalAccount } from 'viem'
import { createWalletClient, formatUnits, http } from 'viem'
import { developmentAccount } from '../chain/clients.ts'
import { keyStoreAccount } from '../identity/account.ts'
import type { SoftwareKeyStore } from '../identity/software-keystore.ts'
import { logger } from '../log.ts'
import { type AppletIdentity, createWalletApplet } from '../nfc/applet.ts'
import { type PcscCard, waitForCard, waitForRemoval } from '../nfc/pcsc.ts'
import { startNfcService } from '../nfc/pcscd.ts'
import { chargeOverNfc, payParkingOverNfc } from '../nfc/terminal.ts'
import { insertVirtualCard } from '../nfc/vpcd.ts'
import type { NodeContext } from '../node/context.ts'
import type { ChannelClients } from '../payments/channels.ts'
import type { CarWallet } from '../payments/wallet.ts'

const log = logger('sim.nfc')

export type NfcDemo =
  | { readonly on: false; readonly reason: string; stop(): Promise<void> }
  | {
      readonly on: true
      /** What `npm start` prints about it. */
      readonly description: string
      payParking(
        car: { wallet: CarWallet; identity: AppletIdentity },
        operatorIndex: number,
        amount: bigint,
        memo: string,
      ): Promise<string>
      charge(
        car: { wallet: CarWallet; identity: AppletIdentity },
        charger: { evseId: string; pricePerKWh: bigint; sessionFee: bigint },
        energyWh: number,
      ): Promise<bigint>
      stop(): Promise<void>
    }

/** Starts pcscd with the virtual reader (or says why NFC is off) and the demo's terminals. */
export async function startNfcDemo(parameters: {
  context: NodeContext
  store: SoftwareKeyStore
}): Promise<NfcDemo> {
  const { context, store } = parameters
  const service = await startNfcService({ mode: 'child' })
  if (!service.on) return { on: false, reason: service.reason, stop: service.stop }
  const { clients, contracts } = context
  const publicClient = clients.publicClient
  const clientsOf = (account: LocalAccount | ReturnType<typeof developmentAccount>): ChannelClients => ({
    publicClient,
    walletClient: createWalletClient({ chain: clients.chain, transport: http(clients.rpcUrl), account }),
  })
  let turn: Promise<unknown> = Promise.resolve()
  /** One tap: the car's applet in the field, the terminal's exchange, the car drives off. */
  const tap = <T>(
    car: { wallet: CarWallet; identity: AppletIdentity },
    terminal: (card: PcscCard) => Promise<T>,
  ) => {
    const run = async () => {
      const applet = createWalletApplet({ identity: car.identity, wallet: car.wallet, publicClient })
      const inserted = await insertVirtualCard({ applet, ...service.vpcd })
      let reader: PcscCard | undefined
      try {
        reader = await waitForCard({ timeoutMs: 5000 })
        return await terminal(reader)
      } finally {
        reader?.close()
        await inserted.remove()
        await waitForRemoval({ timeoutMs: 3000 }).catch((error: unknown) =>
          log.warn({ err: error }, 'the virtual reader still shows a card'),
        )
      }
    }
    const next = turn.then(run, run)
    turn = Promise.allSettled([next]) // the queue only orders: each failure goes to its caller
    return next
  }
  return {
    on: true,
    description: `NFC on: pcscd ${service.started ? 'started' : 'running'} with the virtual reader on ${service.vpcd.host}:${service.vpcd.port}; cars pay parking, and every other charging session, by tap`,
    async payParking(car, operatorIndex, amount, memo) {
      const operator = developmentAccount(operatorIndex)
      const paid = await tap(car, (card) =>
        payParkingOverNfc({ card, token: contracts.Token, amount, memo, clients: clientsOf(operator) }),
      )
      return `${formatUnits(paid.amount, 18)} cEUR to the parking operator by tap, tx ${paid.txHashes.at(-1)?.slice(0, 10)}…`
    },
    async charge(car, { evseId, pricePerKWh, sessionFee }, energyWh) {
      const ref = await store.find(`charger-${evseId.replace(/[^A-Za-z0-9]/g, '_')}-wallet`)
      if (!ref) throw new Error(`no key for charger ${evseId}`)
      const signer = await keyStoreAccount(store, ref)
      const paid = await tap(car, (card) =>
        chargeOverNfc({
          card,
          signer,
          evseId,
          domain: { chainId: clients.chain.id, verifyingContract: contracts.ChargingChannels },
          tariff: { token: contracts.Token, pricePerKWh, sessionFee },
          // the demo's meter: the energy is there at once
          deliver: async () => BigInt(energyWh),
          clients: { publicClient, walletClient: clients.walletClient },
        }),
      )
      return paid.amount
    },
    stop: service.stop,
  }
}
