/**
 * The terminal's side of the wallet applet (docs/nfc.md), over any card channel — a PC/SC reader
 * (`pcsc.ts`) in the field, the applet itself in a test: SELECT, GET DATA with GET RESPONSE,
 * INTERNAL AUTHENTICATE checked against the vehicle certificate, GET CHALLENGE and PAY with
 * command chaining; then the two terminals: a charger that is paid for metered energy at its
 * signed tariff, and a parking terminal paid a fixed amount. Each redeems the car's permit on
 * chain only when the card finished signing it: a card that leaves the field before its answer
 * leaves nothing to claim.
 */
import { randomBytes } from 'node:crypto'
import type { Address, Hash, Hex, LocalAccount } from 'viem'
import { BaseError } from '../errors.ts'
import { parseCertificate } from '../identity/certificate.ts'
import { verifyP256 } from '../identity/signature.ts'
import { type TrustAnchors, type ValidatedIdentity, validateCertificate } from '../identity/validate.ts'
import { logger } from '../log.ts'
import type { ChannelClients } from '../payments/channels.ts'
import { redeemPaymentPermit } from '../payments/pay.ts'
import type { SignedPermit } from '../payments/permit.ts'
import { sessionCost } from '../payments/pricing.ts'
import { type PaymentsDomain, signMeterReading, signTariff, type Tariff } from '../payments/typed-data.ts'
import { chainCommand, encodeCommand, SW, splitResponse, swHex, WALLET_AID } from './apdu.ts'
import {
  DATA_TAG,
  decodePermit,
  encodePayRequest,
  INS,
  nfcAuthMessage,
  PAY_KIND,
  type PayRequest,
} from './applet.ts'

const log = logger('nfc.terminal')

/** Anything that carries a command APDU to a card and its answer back. */
export type CardChannel = { transmit(apdu: Uint8Array): Promise<Uint8Array> }

const MEANING: Record<number, string> = {
  [SW.WRONG_LENGTH]: 'wrong length',
  [SW.CHAIN_EXPECTED]: 'last command of a chain expected',
  [SW.POLICY_REFUSED]: 'the wallet policy refuses',
  [SW.NONCE_UNUSABLE]: 'payment nonce unknown, used or expired',
  [SW.CONDITIONS]: 'conditions of use not satisfied',
  [SW.BAD_DATA]: 'incorrect data',
  [SW.NOT_FOUND]: 'application not found',
  [SW.INCORRECT_P1P2]: 'incorrect P1 P2',
  [SW.DATA_NOT_FOUND]: 'data object not found',
  [SW.INS_NOT_SUPPORTED]: 'instruction not supported',
  [SW.CLA_NOT_SUPPORTED]: 'class not supported',
  [SW.UNKNOWN]: 'the car could not decide',
}

/** NFC_REFUSED for a status word other than 9000 (details: `sw` as hex, its `meaning`). */
export function refusedBy(sw: number, what: string): BaseError {
  return new BaseError(
    'NFC_REFUSED',
    `the card refused ${what}: ${swHex(sw)} (${MEANING[sw] ?? 'unknown'})`,
    {
      details: { sw: swHex(sw), meaning: MEANING[sw] ?? null },
    },
  )
}

/** Sends one command; follows `61 xx` with GET RESPONSE until the whole answer is in. */
export async function exchange(
  card: CardChannel,
  apdu: Uint8Array,
): Promise<{ data: Uint8Array; sw: number }> {
  let { data, sw } = splitResponse(await card.transmit(apdu))
  const parts = [Uint8Array.from(data)]
  let total = data.length
  while ((sw & 0xff00) === SW.MORE) {
    const ne = sw & 0xff || 256
    ;({ data, sw } = splitResponse(
      await card.transmit(encodeCommand(0x00, INS.GET_RESPONSE, 0, 0, undefined, ne)),
    ))
    parts.push(Uint8Array.from(data))
    total += data.length
    if (total > 65_536) throw new BaseError('NFC_PROTOCOL', 'the card’s answer exceeds 64 KiB')
  }
  return { data: Uint8Array.from(Buffer.concat(parts)), sw }
}

/** Sends one (possibly chained) command and returns its answer's data; NFC_REFUSED unless 9000. */
async function run(card: CardChannel, what: string, apdus: Uint8Array[]): Promise<Uint8Array> {
  for (const [i, apdu] of apdus.entries()) {
    const { data, sw } = await exchange(card, apdu)
    if (sw !== SW.OK) throw refusedBy(sw, what)
    if (i === apdus.length - 1) return data
  }
  throw new BaseError('INTERNAL', 'no command to send')
}

/** The wallet applet as a terminal sees it. */
export type WalletCard = {
  /** SELECT by AID; returns the wallet address from the FCI. */
  select(): Promise<{ wallet: Address; version: number }>
  /** GET DATA 7F21: the vehicle certificate chain, DER, leaf first. */
  certificateChain(): Promise<Uint8Array[]>
  /** GET DATA DF02. */
  walletAddress(): Promise<Address>
  /** INTERNAL AUTHENTICATE: the raw r ‖ s signature over SHA-256(label ‖ challenge). */
  authenticate(challenge: Uint8Array): Promise<Uint8Array>
  /** GET CHALLENGE: a fresh payment nonce (32 bytes). */
  paymentNonce(): Promise<Uint8Array>
  /** PAY: the car's permit, or NFC_REFUSED with the status word. */
  pay(request: PayRequest): Promise<SignedPermit>
}

export function walletCard(card: CardChannel): WalletCard {
  return {
    async select() {
      const fci = await run(card, 'SELECT', [encodeCommand(0x00, INS.SELECT, 0x04, 0x00, WALLET_AID, 256)])
      return parseFci(fci)
    },
    async certificateChain() {
      const der = await run(card, 'GET DATA', [
        encodeCommand(
          0x00,
          INS.GET_DATA,
          DATA_TAG.CERTIFICATE_CHAIN >> 8,
          DATA_TAG.CERTIFICATE_CHAIN & 0xff,
          undefined,
          256,
        ),
      ])
      return splitDerSequence(der)
    },
    async walletAddress() {
      const bytes = await run(card, 'GET DATA', [
        encodeCommand(
          0x00,
          INS.GET_DATA,
          DATA_TAG.WALLET_ADDRESS >> 8,
          DATA_TAG.WALLET_ADDRESS & 0xff,
          undefined,
          256,
        ),
      ])
      if (bytes.length !== 20) throw new BaseError('NFC_PROTOCOL', 'a wallet address is 20 bytes')
      return `0x${Buffer.from(bytes).toString('hex')}` as Address
    },
    async authenticate(challenge) {
      const signature = await run(card, 'INTERNAL AUTHENTICATE', [
        encodeCommand(0x00, INS.INTERNAL_AUTHENTICATE, 0, 0, challenge, 256),
      ])
      if (signature.length !== 64)
        throw new BaseError('NFC_PROTOCOL', 'an authentication signature is 64 bytes')
      return signature
    },
    async paymentNonce() {
      const nonce = await run(card, 'GET CHALLENGE', [
        encodeCommand(0x00, INS.GET_CHALLENGE, 0, 0, undefined, 32),
      ])
      if (nonce.length !== 32) throw new BaseError('NFC_PROTOCOL', 'a payment nonce is 32 bytes')
      return nonce
    },
    async pay(request) {
      const p1 = request.kind === 'charging' ? PAY_KIND.CHARGING : PAY_KIND.ONE_SHOT
      return decodePermit(
        await run(card, 'PAY', chainCommand(0x80, INS.PAY, p1, 0, encodePayRequest(request), 256)),
      )
    },
  }
}

/** Reads the FCI: `6F { 84 AID, A5 { 50 label, DF01 version, DF02 wallet } }`. */
function parseFci(fci: Uint8Array): { wallet: Address; version: number } {
  const hex = Buffer.from(fci).toString('hex')
  const wallet = /df0214([0-9a-f]{40})/.exec(hex)
  const version = /df0101([0-9a-f]{2})/.exec(hex)
  if (!wallet || !version || !hex.startsWith('6f'))
    throw new BaseError('NFC_PROTOCOL', 'the FCI does not carry the wallet address and version')
  return { wallet: `0x${wallet[1]}` as Address, version: Number.parseInt(version[1] as string, 16) }
}

/** Splits back-to-back DER SEQUENCEs (a certificate chain). */
export function splitDerSequence(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = []
  let i = 0
  while (i < bytes.length) {
    if (bytes[i] !== 0x30 || i + 2 > bytes.length)
      throw new BaseError('NFC_PROTOCOL', 'not a DER certificate')
    const first = bytes[i + 1] as number
    let length = first
    let header = 2
    if (first & 0x80) {
      const n = first & 0x7f
      if (n < 1 || n > 3 || i + 2 + n > bytes.length) throw new BaseError('NFC_PROTOCOL', 'bad DER length')
      length = 0
      for (let k = 0; k < n; k++) length = length * 256 + (bytes[i + 2 + k] as number)
      header = 2 + n
    }
    if (i + header + length > bytes.length)
      throw new BaseError('NFC_PROTOCOL', 'a certificate runs past the data')
    out.push(bytes.slice(i, i + header + length))
    i += header + length
  }
  if (out.length === 0) throw new BaseError('NFC_PROTOCOL', 'the card holds no certificate')
  return out
}

/**
 * Authenticates the car: its certificate chain validated for role `vehicle` against the OEM
 * roots, a fresh challenge signed with the certificate's key under the NFC label, and the wallet
 * the certificate binds equal to the wallet the card pays from. UNAUTHENTICATED otherwise.
 */
export async function authenticateCar(
  card: WalletCard,
  parameters: {
    trustAnchors: TrustAnchors
    wallet: Address
    isRevoked?: Parameters<typeof validateCertificate>[0]['isRevoked']
  },
): Promise<ValidatedIdentity> {
  const [leaf, ...chain] = await card.certificateChain()
  const identity = await validateCertificate({
    certificate: leaf as Uint8Array,
    chain,
    role: 'vehicle',
    trustAnchors: parameters.trustAnchors,
    ...(parameters.isRevoked ? { isRevoked: parameters.isRevoked } : {}),
  })
  const challenge = randomBytes(32)
  const signature = await card.authenticate(challenge)
  const publicKey = parseCertificate(leaf as Uint8Array).publicKey
  if (!verifyP256(publicKey, nfcAuthMessage(challenge), signature, 'p1363'))
    throw new BaseError('UNAUTHENTICATED', 'the card’s signature does not verify against its certificate')
  if (identity.wallet?.address.toLowerCase() !== parameters.wallet.toLowerCase())
    throw new BaseError('UNAUTHENTICATED', 'the certificate binds another wallet than the card pays from', {
      details: { certificate: identity.wallet?.address ?? null, card: parameters.wallet },
    })
  return identity
}

/** Checks the permit is what was asked for: from the card's wallet, to the payee, exactly the amount. */
function checkPermit(
  permit: SignedPermit,
  expected: { owner: Address; spender: Address; value: bigint },
): void {
  if (
    permit.owner.toLowerCase() !== expected.owner.toLowerCase() ||
    permit.spender.toLowerCase() !== expected.spender.toLowerCase() ||
    permit.value !== expected.value
  )
    throw new BaseError('NFC_PROTOCOL', 'the permit is not for what was asked', {
      details: {
        owner: permit.owner,
        spender: permit.spender,
        value: permit.value.toString(),
        expected: { ...expected, value: expected.value.toString() },
      },
    })
}

export type TerminalPayment = {
  readonly wallet: Address
  readonly amount: bigint
  readonly permit: SignedPermit
  readonly txHashes: Hash[]
  /** The certificate's identity when the terminal authenticated the car. */
  readonly vehicle?: ValidatedIdentity
}

/** What a parking terminal needs: who is paid (its `clients.walletClient` redeems), in what. */
export type ParkingTerminalParameters = {
  readonly card: CardChannel
  readonly token: Address
  readonly amount: bigint
  readonly memo?: string
  /** The payee's clients: it redeems the permit. */
  readonly clients: ChannelClients
  /** Authenticate the car against these OEM roots first (two more reads and a signature). */
  readonly authenticate?: { trustAnchors: TrustAnchors }
}

/** A parking payment over NFC: SELECT, GET CHALLENGE, PAY (one-shot), then the permit redeemed. */
export async function payParkingOverNfc(parameters: ParkingTerminalParameters): Promise<TerminalPayment> {
  const card = walletCard(parameters.card)
  const { wallet } = await card.select()
  const vehicle = parameters.authenticate
    ? await authenticateCar(card, { trustAnchors: parameters.authenticate.trustAnchors, wallet })
    : undefined
  const payee = parameters.clients.walletClient.account.address
  const permit = await card.pay({
    kind: 'one-shot',
    nonce: await card.paymentNonce(),
    token: parameters.token,
    payee,
    amount: parameters.amount,
    ...(parameters.memo ? { memo: parameters.memo } : {}),
  })
  checkPermit(permit, { owner: wallet, spender: payee, value: parameters.amount })
  const { txHashes } = await redeemPaymentPermit(parameters.clients, { token: parameters.token, permit })
  return { wallet, amount: parameters.amount, permit, txHashes, ...(vehicle ? { vehicle } : {}) }
}

export type ChargingTerminalParameters = {
  readonly card: CardChannel
  /** The charger's registered secp256k1 key: signs the tariff and the meter reading. */
  readonly signer: LocalAccount
  readonly evseId: string
  readonly domain: PaymentsDomain
  readonly tariff: Omit<Tariff, 'evseId' | 'validUntil'> & { readonly validForSec?: number }
  /**
   * Delivers energy for the session named by the card's nonce and resolves with the Wh delivered
   * (the meter); the car is in the field while it runs (a tap, plug, charge and pay).
   */
  readonly deliver: (sessionId: Hex) => Promise<bigint>
  /** The CPO's clients: it redeems the permit (the charger's registered CPO is the payee). */
  readonly clients: ChannelClients
  readonly authenticate?: { trustAnchors: TrustAnchors }
  readonly now?: () => number
}

/**
 * The charger's exchange with the card, SELECT to the payment answer: GET CHALLENGE (the card's
 * nonce is the session id the meter readings are signed for), the energy delivered, then PAY
 * with the signed tariff and the signed final reading. The tariff does not depend on the nonce,
 * so it is signed while the first commands travel. Returns the checked permit, not yet redeemed.
 */
export async function collectChargingPermit(
  parameters: Omit<ChargingTerminalParameters, 'clients'> & { readonly payee: Address },
): Promise<Omit<TerminalPayment, 'txHashes'> & { energyWh: bigint; tariff: Tariff }> {
  const now = parameters.now ?? Date.now
  const tariff: Tariff = {
    evseId: parameters.evseId,
    token: parameters.tariff.token,
    pricePerKWh: parameters.tariff.pricePerKWh,
    sessionFee: parameters.tariff.sessionFee,
    validUntil: BigInt(Math.floor(now() / 1000) + (parameters.tariff.validForSec ?? 600)),
  }
  const tariffSigned = signTariff(parameters.signer, parameters.domain, tariff)
  // handled here too: when the card refuses early, nobody awaits the signature
  tariffSigned.then(undefined, (error: unknown) => log.warn({ err: error }, 'signing the tariff failed'))
  const card = walletCard(parameters.card)
  const { wallet } = await card.select()
  const vehicle = parameters.authenticate
    ? await authenticateCar(card, { trustAnchors: parameters.authenticate.trustAnchors, wallet })
    : undefined
  const nonce = await card.paymentNonce()
  const sessionId = `0x${Buffer.from(nonce).toString('hex')}` as Hex
  const energyWh = await parameters.deliver(sessionId)
  const timeMs = BigInt(now())
  const amount = sessionCost(tariff, energyWh)
  const [tariffSignature, readingSignature] = await Promise.all([
    tariffSigned,
    signMeterReading(parameters.signer, parameters.domain, {
      evseId: parameters.evseId,
      sessionId,
      sessionWh: energyWh,
      timeMs,
    }),
  ])
  const permit = await card.pay({
    kind: 'charging',
    nonce,
    token: tariff.token,
    amount,
    charger: parameters.signer.address,
    tariff,
    tariffSignature,
    sessionWh: energyWh,
    timeMs,
    readingSignature,
  })
  checkPermit(permit, { owner: wallet, spender: parameters.payee, value: amount })
  return { wallet, amount, permit, energyWh, tariff, ...(vehicle ? { vehicle } : {}) }
}

/** A charging payment over NFC (`collectChargingPermit`), then the CPO redeems the permit. */
export async function chargeOverNfc(
  parameters: ChargingTerminalParameters,
): Promise<TerminalPayment & { energyWh: bigint }> {
  const payee = parameters.clients.walletClient.account.address
  const { tariff, ...collected } = await collectChargingPermit({ ...parameters, payee })
  const { txHashes } = await redeemPaymentPermit(parameters.clients, {
    token: tariff.token,
    permit: collected.permit,
  })
  return { ...collected, txHashes }
}
