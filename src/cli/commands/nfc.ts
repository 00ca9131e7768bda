/**
 * `carchain nfc …`: tap to pay (docs/nfc.md). `nfc card` presents a demo car's wallet as a
 * contactless card on vsmartcard's virtual reader, `nfc parking` is a parking terminal reading
 * a card through PC/SC, `nfc readers` lists the readers pcscd sees.
 */
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { type Address, formatUnits, getAddress } from 'viem'
import { BaseError } from '../../errors.ts'
import { fromPem } from '../../identity/certificate.ts'
import { createWalletApplet } from '../../nfc/applet.ts'
import { listReaders, waitForCard, waitForRemoval } from '../../nfc/pcsc.ts'
import { payParkingOverNfc } from '../../nfc/terminal.ts'
import { insertVirtualCard, VPCD_PORT } from '../../nfc/vpcd.ts'
import type { FleetVehicleRecord } from '../../sim/fleet.ts'
import type { Command, FlagSpec } from '../command.ts'
import { requiredStringFlag, stringFlag } from '../flags.ts'
import { accountFor, clientsFor, openWallet, tokens, walletFlags, withContext } from './charge.ts'

const { wallet: _wallet, keystore: _keystore, ...carFlags } = walletFlags

const readerFlag: FlagSpec = {
  type: 'string',
  value: 'NAME',
  description: 'The PC/SC reader (default: the first pcscd lists).',
}

/** The demo fleet's record of a car, by VIN or wallet address. */
function fleetRecord(dataDir: string, vehicle: string): FleetVehicleRecord {
  const path = join(dataDir, 'fleet', 'fleet.json')
  let records: FleetVehicleRecord[]
  try {
    records = (JSON.parse(readFileSync(path, 'utf8')) as { vehicles: FleetVehicleRecord[] }).vehicles
  } catch (error) {
    throw new BaseError('DATA_DIR_INVALID', `no demo fleet in ${dataDir} (run carchain up first)`, {
      details: { path },
      cause: error,
    })
  }
  const wanted = vehicle.toLowerCase()
  const record = records.find((r) => r.vin.toLowerCase() === wanted || r.vehicle.toLowerCase() === wanted)
  if (!record)
    throw new BaseError('NOT_FOUND', `no car ${vehicle} in the demo fleet`, { details: { vehicle } })
  return record
}

/** `HOST:PORT` of the virtual reader. */
function vpcdAddress(value: string | undefined): { host: string; port: number } {
  if (!value) return { host: '127.0.0.1', port: VPCD_PORT }
  const match = /^([^:]+):(\d{1,5})$/.exec(value)
  if (!match || Number(match[2]) > 65_535) throw new BaseError('CLI_USAGE', '--vpcd must be HOST:PORT')
  return { host: match[1] as string, port: Number(match[2]) }
}

const card: Command = {
  path: ['nfc', 'card'],
  summary: 'Present a car’s wallet as a contactless card on the virtual reader until stopped.',
  flags: {
    ...carFlags,
    vehicle: { type: 'string', value: 'VIN|ADDR', description: 'The demo fleet’s car.', required: true },
    keystore: {
      type: 'string',
      value: 'DIR',
      description: 'The car’s key store (default: the demo’s, <data>/pki/keystore).',
    },
    vpcd: {
      type: 'string',
      value: 'HOST:PORT',
      description: `vsmartcard's virtual reader (default 127.0.0.1:${VPCD_PORT}).`,
    },
  },
  run: async ({ flags, io }) => {
    const dataDir = resolve(requiredStringFlag(flags, 'data'))
    const record = fleetRecord(dataDir, requiredStringFlag(flags, 'vehicle'))
    const vpcd = vpcdAddress(stringFlag(flags, 'vpcd'))
    const withKeys = { ...flags, keystore: stringFlag(flags, 'keystore') ?? join(dataDir, 'pki', 'keystore') }
    return withContext(withKeys, io, async (ctx) => {
      const label = record.walletKey.replace(/^keystore:/, '')
      const wallet = await openWallet(ctx, withKeys, [], label)
      const identityRef =
        (await ctx.store.find(record.identityKey.replace(/^keystore:/, ''))) ?? record.identityKey
      const applet = createWalletApplet({
        identity: {
          store: ctx.store,
          keyRef: identityRef,
          certificate: fromPem(readFileSync(record.cert, 'utf8'))[0] as Uint8Array,
          chain: fromPem(readFileSync(record.chain, 'utf8')),
        },
        wallet,
        publicClient: ctx.clients.publicClient,
        onPayment: (payment) =>
          io.progress(`paid ${formatUnits(payment.amount, ctx.decimals)} to ${payment.to} (${payment.kind})`),
      })
      const inserted = await insertVirtualCard({ applet, ...vpcd })
      io.progress(
        `${record.vin} (${wallet.address}) is in the field of ${vpcd.host}:${vpcd.port}; Ctrl-C takes it out`,
      )
      const stopped = new Promise<void>((done) =>
        io.stopSignal.addEventListener('abort', () => done(), { once: true }),
      )
      await Promise.race([stopped, inserted.removed])
      await inserted.remove()
      return {
        data: { vin: record.vin, wallet: wallet.address, spentToday: wallet.spentToday() },
        text: 'card removed',
      }
    })
  },
}

const parking: Command = {
  path: ['nfc', 'parking'],
  summary: 'A parking terminal: waits for a card, has it pay --amount, redeems the permit.',
  flags: {
    ...carFlags,
    keystore: { type: 'string', value: 'DIR', description: 'Software key store directory.', required: true },
    payee: {
      type: 'string',
      value: 'LABEL',
      description: 'The operator’s wallet key (redeems the permit).',
      required: true,
    },
    amount: { type: 'string', value: 'TOKENS', description: 'What parking costs.', required: true },
    memo: { type: 'string', value: 'TEXT', description: 'What for (≤ 64 bytes, on the car’s ledger).' },
    reader: readerFlag,
    'oem-root': {
      type: 'string',
      value: 'FILE',
      description: 'Authenticate the car against this OEM root (PEM).',
    },
    timeout: { type: 'string', value: 'SECONDS', description: 'How long to wait for a card.', default: '30' },
  },
  run: ({ flags, io }) =>
    withContext(flags, io, async (ctx) => {
      const operator = await accountFor(ctx, requiredStringFlag(flags, 'payee'))
      const amount = tokens(ctx, flags, 'amount')
      const seconds = Number(requiredStringFlag(flags, 'timeout'))
      if (!Number.isFinite(seconds) || seconds <= 0)
        throw new BaseError('CLI_USAGE', '--timeout must be positive')
      const reader = stringFlag(flags, 'reader')
      const oemRoot = stringFlag(flags, 'oem-root')
      io.progress(`waiting for a card${reader ? ` in ${reader}` : ''}`)
      const pcsc = await waitForCard({ ...(reader ? { reader } : {}), timeoutMs: seconds * 1000 })
      try {
        const memo = stringFlag(flags, 'memo')
        const paid = await payParkingOverNfc({
          card: pcsc,
          token: ctx.contracts.token,
          amount,
          ...(memo ? { memo } : {}),
          clients: clientsFor(ctx, operator),
          ...(oemRoot
            ? { authenticate: { trustAnchors: { oem: fromPem(readFileSync(oemRoot, 'utf8')) } } }
            : {}),
        })
        const data = {
          reader: pcsc.reader,
          payer: getAddress(paid.wallet) as Address,
          payee: operator.address,
          amount: formatUnits(paid.amount, ctx.decimals),
          txHashes: paid.txHashes,
          vin: paid.vehicle?.vin ?? null,
        }
        return { data, text: `${data.payer} paid ${data.amount} to ${data.payee} through ${data.reader}` }
      } finally {
        pcsc.close()
        await waitForRemoval({ ...(reader ? { reader } : {}), timeoutMs: 1000 }).catch((error: unknown) =>
          io.progress(`the card is still in the field: ${(error as Error).message}`),
        )
      }
    }),
}

const readers: Command = {
  path: ['nfc', 'readers'],
  summary: 'List the PC/SC readers pcscd sees.',
  flags: {},
  run: async () => {
    const names = await listReaders()
    return { data: { readers: names }, text: names.length ? names.join('\n') : 'no reader' }
  },
}

export const nfcCommands: readonly Command[] = [card, parking, readers]
