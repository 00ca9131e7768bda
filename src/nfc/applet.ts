/**
 * The car's wallet as an ISO/IEC 7816-4 contactless application (docs/nfc.md): a terminal (a
 * charger or a parking terminal on PC/SC) selects it by AID, reads the vehicle's certificate
 * chain and wallet address, authenticates the car, and asks it to pay. The car decides under
 * its wallet policy exactly as over TCP (the same `CarWallet`: caps booked write-ahead, token,
 * prices, the charger's registration) and answers with an EIP-2612 permit the payee redeems on
 * chain; a refusal is a status word, never a silent success.
 *
 * The applet is transport-free: `process(apdu)` takes a command APDU and returns the response
 * APDU, so the same object serves vsmartcard's virtual reader (`vpcd.ts`), a test, or a real
 * secure element's bridge. It never throws: every failure is a status word and a log line.
 */
import { createHash, randomBytes } from 'node:crypto'
import {
  type Address,
  bytesToHex,
  type Chain,
  getAddress,
  type Hex,
  type PublicClient,
  type Transport,
} from 'viem'
import { BaseError, toBaseError } from '../errors.ts'
import type { KeyRef, KeyStore } from '../identity/keystore.ts'
import { logger } from '../log.ts'
import { signPaymentPermit } from '../payments/pay.ts'
import {
  type PermitDomain,
  readPermitDomain,
  readPermitNonce,
  type SignedPermit,
} from '../payments/permit.ts'
import { plausibleEnergyWh, sessionCost } from '../payments/pricing.ts'
import { type Tariff, verifyMeterReading, verifyTariff } from '../payments/typed-data.ts'
import type { CarWallet, ChargerIdentity } from '../payments/wallet.ts'
import { type CommandApdu, parseCommand, readTlvs, response, SW, swHex, tlv, WALLET_AID } from './apdu.ts'

const log = logger('nfc.applet')

/** The label INTERNAL AUTHENTICATE signs in front of the terminal's challenge (never the bare challenge). */
export const NFC_AUTH_LABEL = 'carchain/nfc/auth/v1'

/** Instructions (CLA 00 unless said). */
export const INS = {
  SELECT: 0xa4,
  GET_DATA: 0xca,
  INTERNAL_AUTHENTICATE: 0x88,
  GET_CHALLENGE: 0x84,
  GET_RESPONSE: 0xc0,
  /** Proprietary, CLA 80 (90 while chaining). */
  PAY: 0x50,
} as const

/** GET DATA tags (P1 P2). */
export const DATA_TAG = {
  /** The vehicle certificate chain: DER certificates back to back, leaf first. */
  CERTIFICATE_CHAIN: 0x7f21,
  /** The wallet's 20-byte Ethereum address. */
  WALLET_ADDRESS: 0xdf02,
} as const

/** PAY P1: what kind of payment. */
export const PAY_KIND = { CHARGING: 0x01, ONE_SHOT: 0x02 } as const

/** The PAY request's TLV tags (one byte each; docs/nfc.md "PAY"). */
export const PAY_TAG = {
  NONCE: 0x01,
  TOKEN: 0x02,
  PAYEE: 0x03,
  AMOUNT: 0x04,
  MEMO: 0x05,
  EVSE_ID: 0x10,
  CHARGER: 0x11,
  PRICE_PER_KWH: 0x12,
  SESSION_FEE: 0x13,
  VALID_UNTIL: 0x14,
  TARIFF_SIGNATURE: 0x15,
  SESSION_WH: 0x16,
  TIME_MS: 0x17,
  READING_SIGNATURE: 0x18,
} as const

/** The applet's version in its FCI. */
export const APPLET_VERSION = 1

/** The most a chained command may carry (a charging PAY is about 400 bytes). */
const MAX_COMMAND_BYTES = 2048
/** Payment nonces (GET CHALLENGE) the card keeps at once; the oldest is dropped beyond. */
const MAX_NONCES = 16
/** How long a payment nonce stays usable: a charging session is paid at its end. */
const NONCE_LIFETIME_MS = 24 * 3_600_000
/** A meter reading may be this far ahead of the car's clock, and before the nonce was drawn. */
const CLOCK_SKEW_MS = 30_000
/** Permits the car signs are valid this long (the payee redeems at once). */
const PERMIT_LIFETIME_SEC = 600n

/** The car's identity on the card: the vehicle certificate's key in the key store (a PKCS#11 secure element where configured). */
export type AppletIdentity = {
  readonly store: KeyStore
  readonly keyRef: KeyRef
  /** The vehicle certificate, DER. */
  readonly certificate: Uint8Array
  /** Its intermediates, DER, leaf side first. */
  readonly chain: readonly Uint8Array[]
}

export type CreateWalletAppletParameters = {
  readonly identity: AppletIdentity
  readonly wallet: CarWallet
  /** Reads the token's EIP-712 domain and permit nonce. */
  readonly publicClient: PublicClient<Transport, Chain>
  /** Called after each payment the card signed (the demo and tests observe it). */
  readonly onPayment?: (payment: AppletPayment) => void
}

/** A payment the card signed. */
export type AppletPayment = {
  readonly kind: 'charging' | 'one-shot'
  readonly to: Address
  readonly token: Address
  readonly amount: bigint
  readonly permit: SignedPermit
  readonly eventId: string
}

export type WalletApplet = {
  /** Takes one command APDU, returns the response APDU; never throws. */
  process(apdu: Uint8Array): Promise<Uint8Array>
  /** Power off, on or reset: deselects and drops a pending chain or answer (nonces survive). */
  reset(): void
}

/** A refusal the card answers with a status word (and logs with its reason). */
class Refusal extends Error {
  readonly sw: number
  constructor(sw: number, message: string) {
    super(message)
    this.sw = sw
  }
}

const refuse = (sw: number, message: string): never => {
  throw new Refusal(sw, message)
}

/** The status word for a BaseError the wallet raised while deciding a payment. */
function statusOf(error: BaseError): number {
  switch (error.code) {
    case 'POLICY_DENIED':
    case 'INSUFFICIENT_FUNDS':
      return SW.POLICY_REFUSED
    case 'NFC_BAD_DATA':
    case 'TARIFF_INVALID':
    case 'METER_INVALID':
    case 'INVALID_ARGUMENT':
      return SW.BAD_DATA
    default:
      return SW.UNKNOWN
  }
}

/** The FCI the card answers SELECT with: `6F { 84 AID, A5 { 50 label, DF01 version, DF02 wallet } }`. */
export function walletFci(wallet: Address): Uint8Array {
  const proprietary = Buffer.concat([
    tlv(0x50, Buffer.from('CARCHAIN WALLET', 'ascii')),
    tlv(0xdf01, Uint8Array.of(APPLET_VERSION)),
    tlv(0xdf02, Buffer.from(wallet.slice(2), 'hex')),
  ])
  return tlv(0x6f, Buffer.concat([tlv(0x84, WALLET_AID), tlv(0xa5, proprietary)]))
}

/** The digest INTERNAL AUTHENTICATE signs: SHA-256("carchain/nfc/auth/v1" ‖ challenge). */
export function nfcAuthDigest(challenge: Uint8Array): Uint8Array {
  return createHash('sha256').update(nfcAuthMessage(challenge)).digest()
}

/** The message INTERNAL AUTHENTICATE signs (52 bytes: the label, then the 32-byte challenge). */
export function nfcAuthMessage(challenge: Uint8Array): Uint8Array {
  return Uint8Array.from(Buffer.concat([Buffer.from(NFC_AUTH_LABEL, 'ascii'), challenge]))
}

/** Builds the applet over a car's identity key and wallet. */
export function createWalletApplet(parameters: CreateWalletAppletParameters): WalletApplet {
  const { identity, wallet } = parameters
  let selected = false
  /** The pending chained command: its header and the data so far. */
  let chain: { header: string; data: Uint8Array[]; length: number } | undefined
  /** The rest of an answer longer than one response, for GET RESPONSE. */
  let pending: Uint8Array | undefined
  const nonces = new Map<string, number>()
  const chainDer = Buffer.concat([identity.certificate, ...identity.chain])
  /** Each token's permit domain, read once (it never changes). */
  const domains = new Map<string, Promise<PermitDomain>>()
  /**
   * The chain reads of a PAY whose first blocks arrived (its token, a charger's registration)
   * start while the rest of the command travels: the car's work hides in the round trips. Only
   * reads: nothing is decided or signed before the whole command is in.
   */
  let prefetched:
    | {
        token: string
        charger?: string
        reads: Promise<[PermitDomain, bigint]>
        check?: Promise<ChargerIdentity>
      }
    | undefined
  const observed = <T>(promise: Promise<T>): Promise<T> => {
    // handled here (a refused or abandoned PAY never awaits it); whoever awaits it sees the failure
    promise.then(undefined, (error: unknown) => log.debug({ err: error }, 'a prefetched read failed'))
    return promise
  }
  const permitReads = (token: Address) =>
    Promise.all([permitDomainOf(token), readPermitNonce(parameters.publicClient, token, wallet.address)])
  const speculate = (parts: readonly Uint8Array[]) => {
    if (prefetched) return
    const fields = leadingTlvs(Buffer.concat(parts))
    const token = fields.get(PAY_TAG.TOKEN)
    if (token?.length !== 20) return
    const tokenAddress = address(token)
    if (!wallet.policy.tokens.some((t) => t.toLowerCase() === tokenAddress.toLowerCase())) return
    const charger = fields.get(PAY_TAG.CHARGER)
    const chargerAddress = charger?.length === 20 ? address(charger) : undefined
    prefetched = {
      token: tokenAddress.toLowerCase(),
      reads: observed(permitReads(tokenAddress)),
      ...(chargerAddress
        ? {
            charger: chargerAddress.toLowerCase(),
            check: observed(wallet.checkCharger({ address: chargerAddress })),
          }
        : {}),
    }
  }
  const permitDomainOf = (token: Address): Promise<PermitDomain> => {
    const key = token.toLowerCase()
    let domain = domains.get(key)
    if (!domain) {
      domain = readPermitDomain(parameters.publicClient, token)
      domains.set(key, domain)
      domain.catch(() => domains.delete(key)) // a failed read is retried next time; the caller sees the failure
    }
    return domain
  }

  const answer = (data: Uint8Array, ne: number | undefined): Uint8Array => {
    const max = ne ?? 256
    if (data.length <= max) {
      pending = undefined
      return response(SW.OK, data)
    }
    pending = data.slice(max)
    return response(SW.MORE | (Math.min(pending.length, 256) % 256), data.subarray(0, max))
  }

  const select = (command: CommandApdu): Uint8Array => {
    if (command.p1 !== 0x04 || (command.p2 & 0xf3) !== 0x00) refuse(SW.INCORRECT_P1P2, 'SELECT by AID only')
    if (!Buffer.from(command.data).equals(WALLET_AID)) {
      selected = false
      return refuse(SW.NOT_FOUND, 'unknown AID')
    }
    selected = true
    return answer(walletFci(wallet.address), command.ne)
  }

  const getData = (command: CommandApdu): Uint8Array => {
    if (command.data.length > 0) refuse(SW.WRONG_LENGTH, 'GET DATA takes no data')
    const tag = (command.p1 << 8) | command.p2
    if (tag === DATA_TAG.CERTIFICATE_CHAIN) return answer(chainDer, command.ne)
    if (tag === DATA_TAG.WALLET_ADDRESS)
      return answer(Buffer.from(wallet.address.slice(2), 'hex'), command.ne)
    return refuse(SW.DATA_NOT_FOUND, `no data object ${tag.toString(16)}`)
  }

  const internalAuthenticate = async (command: CommandApdu): Promise<Uint8Array> => {
    if (command.p1 !== 0 || command.p2 !== 0)
      refuse(SW.INCORRECT_P1P2, 'INTERNAL AUTHENTICATE takes P1 P2 00 00')
    if (command.data.length !== 32) refuse(SW.WRONG_LENGTH, 'the challenge must be 32 bytes')
    const signature = await identity.store.signDigest(identity.keyRef, nfcAuthDigest(command.data))
    return answer(signature, command.ne)
  }

  const getChallenge = (command: CommandApdu): Uint8Array => {
    if (command.p1 !== 0 || command.p2 !== 0) refuse(SW.INCORRECT_P1P2, 'GET CHALLENGE takes P1 P2 00 00')
    if (command.data.length > 0 || (command.ne !== 32 && command.ne !== 256))
      refuse(SW.WRONG_LENGTH, 'GET CHALLENGE answers 32 bytes')
    const now = wallet.now()
    for (const [nonce, issued] of nonces) if (now - issued > NONCE_LIFETIME_MS) nonces.delete(nonce)
    while (nonces.size >= MAX_NONCES) nonces.delete(nonces.keys().next().value as string)
    const nonce = randomBytes(32)
    nonces.set(nonce.toString('hex'), now)
    return answer(nonce, 32)
  }

  const pay = async (command: CommandApdu, data: Uint8Array): Promise<Uint8Array> => {
    if (command.p2 !== 0 || (command.p1 !== PAY_KIND.CHARGING && command.p1 !== PAY_KIND.ONE_SHOT))
      refuse(SW.INCORRECT_P1P2, 'PAY takes P1 01 (charging) or 02 (one-shot), P2 00')
    const request = parsePayRequest(command.p1, data)
    const nonceKey = Buffer.from(request.nonce).toString('hex')
    const issuedAt = nonces.get(nonceKey)
    if (issuedAt === undefined || wallet.now() - issuedAt > NONCE_LIFETIME_MS)
      refuse(SW.NONCE_UNUSABLE, 'the payment nonce is not one this card issued, or it was used or expired')
    // A token outside the policy is refused before anything is read for it.
    wallet.authorizeSpend(0n, 0n, request.token)
    // The chain reads the permit needs run while the car decides (its work hides in one round trip).
    const early = prefetched?.token === request.token.toLowerCase() ? prefetched : undefined
    prefetched = undefined
    const reads = early?.reads ?? permitReads(request.token)
    let to: Address
    let amount: bigint
    try {
      if (request.kind === 'charging') {
        const checked = early?.charger === request.charger.toLowerCase() ? early.check : undefined
        ;({ to, amount } = await decideCharging(wallet, request, issuedAt as number, checked))
      } else {
        to = request.payee
        amount = request.amount
      }
    } finally {
      // settled either way: a refusal must not leave a read's failure unobserved
      await Promise.allSettled([reads])
    }
    const [tokenDomain, permitNonce] = await reads
    // The nonce is spent before the signature exists: one request, at most one payment.
    if (!nonces.delete(nonceKey)) refuse(SW.NONCE_UNUSABLE, 'the payment nonce was used meanwhile')
    const { permit, eventId } = await signPaymentPermit({ publicClient: parameters.publicClient }, wallet, {
      token: request.token,
      to,
      amount,
      tokenDomain,
      nonce: permitNonce,
      // On-chain time, not the wallet's clock: the token checks the deadline against the block.
      deadline: BigInt(Math.floor(Date.now() / 1000)) + PERMIT_LIFETIME_SEC,
      memo: request.kind === 'charging' ? `charging ${request.tariff.evseId}` : request.memo,
    })
    parameters.onPayment?.({ kind: request.kind, to, token: request.token, amount, permit, eventId })
    return answer(encodePermit(permit), command.ne)
  }

  const dispatch = async (command: CommandApdu, data: Uint8Array): Promise<Uint8Array> => {
    const cla = command.cla & ~0x10
    if (command.ins === INS.GET_RESPONSE && cla === 0x00) {
      if (!pending) return refuse(SW.CONDITIONS, 'no answer is waiting')
      if (command.p1 !== 0 || command.p2 !== 0) refuse(SW.INCORRECT_P1P2, 'GET RESPONSE takes P1 P2 00 00')
      return answer(pending, command.ne)
    }
    pending = undefined
    if (command.ins === INS.SELECT && cla === 0x00) return select(command)
    if (cla !== 0x00 && cla !== 0x80) return refuse(SW.CLA_NOT_SUPPORTED, 'unknown class')
    if (!selected) return refuse(SW.CONDITIONS, 'the wallet applet is not selected')
    if (cla === 0x00 && command.ins === INS.GET_DATA) return getData(command)
    if (cla === 0x00 && command.ins === INS.INTERNAL_AUTHENTICATE) return internalAuthenticate(command)
    if (cla === 0x00 && command.ins === INS.GET_CHALLENGE) return getChallenge(command)
    if (cla === 0x80 && command.ins === INS.PAY) return pay(command, data)
    return refuse(SW.INS_NOT_SUPPORTED, 'unknown instruction')
  }

  /** Collects a chained command; returns its whole data once the last block came. */
  const collect = (command: CommandApdu): Uint8Array | undefined => {
    const header = `${command.cla & ~0x10}:${command.ins}:${command.p1}:${command.p2}`
    const chaining = (command.cla & 0x10) !== 0
    if (chain && chain.header !== header) {
      chain = undefined
      refuse(SW.CHAIN_EXPECTED, 'a chained command was interrupted by another')
    }
    const parts = chain ? [...chain.data, command.data] : [command.data]
    const length = (chain?.length ?? 0) + command.data.length
    if (length > MAX_COMMAND_BYTES) {
      chain = undefined
      refuse(SW.WRONG_LENGTH, `a command may carry at most ${MAX_COMMAND_BYTES} bytes`)
    }
    if (chaining) {
      if (command.ins !== INS.PAY) refuse(SW.INS_NOT_SUPPORTED, 'only PAY may be chained')
      chain = { header, data: parts, length }
      if (command.p1 === PAY_KIND.CHARGING || command.p1 === PAY_KIND.ONE_SHOT) speculate(parts)
      return undefined
    }
    chain = undefined
    return Uint8Array.from(Buffer.concat(parts))
  }

  return {
    async process(apdu) {
      try {
        const command = parseCommand(apdu)
        if (!command) {
          chain = undefined
          return response(SW.WRONG_LENGTH)
        }
        const data = collect(command)
        if (data === undefined) return response(SW.OK)
        return await dispatch(command, data)
      } catch (error) {
        if (error instanceof Refusal) {
          log.info({ sw: swHex(error.sw), reason: error.message }, 'the card refused a command')
          return response(error.sw)
        }
        const failure = toBaseError(error)
        const sw = statusOf(failure)
        if (sw === SW.UNKNOWN)
          log.error({ err: failure, sw: swHex(sw) }, 'the card could not decide a payment')
        else
          log.info(
            { code: failure.code, reason: failure.shortMessage, details: failure.details, sw: swHex(sw) },
            'the card refused a payment',
          )
        return response(sw)
      }
    },
    reset() {
      selected = false
      chain = undefined
      pending = undefined
      prefetched = undefined
    },
  }
}

// ---------------------------------------------------------------- PAY

type PayRequestBase = { readonly nonce: Uint8Array; readonly token: Address }
export type ChargingPayRequest = PayRequestBase & {
  readonly kind: 'charging'
  readonly amount: bigint
  readonly charger: Address
  readonly tariff: Tariff
  readonly tariffSignature: Hex
  readonly sessionWh: bigint
  readonly timeMs: bigint
  readonly readingSignature: Hex
}
export type OneShotPayRequest = PayRequestBase & {
  readonly kind: 'one-shot'
  readonly payee: Address
  readonly amount: bigint
  readonly memo?: string
}
export type PayRequest = ChargingPayRequest | OneShotPayRequest

const bad = (message: string): never => {
  throw new BaseError('NFC_BAD_DATA', message)
}

function field(tlvs: Map<number, Uint8Array>, tag: number, length: number | [number, number]): Uint8Array {
  const value = tlvs.get(tag)
  if (!value) return bad(`tag ${tag.toString(16).padStart(2, '0')} is missing`)
  const [min, max] = typeof length === 'number' ? [length, length] : length
  if (value.length < min || value.length > max)
    bad(`tag ${tag.toString(16).padStart(2, '0')} must be ${min === max ? min : `${min}–${max}`} bytes`)
  return value
}

const uint = (bytes: Uint8Array): bigint => BigInt(`0x${Buffer.from(bytes).toString('hex') || '0'}`)
const address = (bytes: Uint8Array): Address => getAddress(bytesToHex(bytes))
const utf8 = (bytes: Uint8Array, what: string): string => {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    return bad(`${what} is not UTF-8`)
  }
}

/** The complete TLVs at the start of a partial PAY request (for prefetching; never trusted). */
function leadingTlvs(bytes: Uint8Array): Map<number, Uint8Array> {
  const out = new Map<number, Uint8Array>()
  let i = 0
  while (i + 2 <= bytes.length) {
    const length = bytes[i + 1] as number
    if (length >= 0x80) break // only the short fields a prefetch needs
    if (i + 2 + length > bytes.length) break
    out.set(bytes[i] as number, bytes.subarray(i + 2, i + 2 + length))
    i += 2 + length
  }
  return out
}

/** Parses a PAY request (P1 says which kind); NFC_BAD_DATA for anything but exactly the documented tags. */
export function parsePayRequest(p1: number, data: Uint8Array): PayRequest {
  const tlvs = readTlvs(data)
  const allowed =
    p1 === PAY_KIND.CHARGING
      ? [0x01, 0x02, 0x04, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18]
      : [0x01, 0x02, 0x03, 0x04, 0x05]
  for (const tag of tlvs.keys())
    if (!allowed.includes(tag)) bad(`tag ${tag.toString(16)} is not allowed here`)
  const base = { nonce: field(tlvs, PAY_TAG.NONCE, 32), token: address(field(tlvs, PAY_TAG.TOKEN, 20)) }
  const amount = uint(field(tlvs, PAY_TAG.AMOUNT, 32))
  if (p1 === PAY_KIND.ONE_SHOT) {
    if (amount === 0n) bad('the amount must be positive')
    const memo = tlvs.has(PAY_TAG.MEMO) ? utf8(field(tlvs, PAY_TAG.MEMO, [1, 64]), 'the memo') : undefined
    return {
      kind: 'one-shot',
      ...base,
      payee: address(field(tlvs, PAY_TAG.PAYEE, 20)),
      amount,
      ...(memo === undefined ? {} : { memo }),
    }
  }
  const evseId = utf8(field(tlvs, PAY_TAG.EVSE_ID, [1, 64]), 'the EVSE ID')
  return {
    kind: 'charging',
    ...base,
    amount,
    charger: address(field(tlvs, PAY_TAG.CHARGER, 20)),
    tariff: {
      evseId,
      token: base.token,
      pricePerKWh: uint(field(tlvs, PAY_TAG.PRICE_PER_KWH, 32)),
      sessionFee: uint(field(tlvs, PAY_TAG.SESSION_FEE, 32)),
      validUntil: uint(field(tlvs, PAY_TAG.VALID_UNTIL, 8)),
    },
    tariffSignature: bytesToHex(field(tlvs, PAY_TAG.TARIFF_SIGNATURE, 65)),
    sessionWh: uint(field(tlvs, PAY_TAG.SESSION_WH, 8)),
    timeMs: uint(field(tlvs, PAY_TAG.TIME_MS, 8)),
    readingSignature: bytesToHex(field(tlvs, PAY_TAG.READING_SIGNATURE, 65)),
  }
}

/** Encodes a PAY request (the terminal's side); the inverse of `parsePayRequest`. */
export function encodePayRequest(request: PayRequest): Uint8Array {
  const n = (value: bigint, bytes: number) => Buffer.from(value.toString(16).padStart(bytes * 2, '0'), 'hex')
  const hex = (value: Hex) => Buffer.from(value.slice(2), 'hex')
  const parts = [tlv(PAY_TAG.NONCE, request.nonce), tlv(PAY_TAG.TOKEN, hex(request.token))]
  if (request.kind === 'one-shot') {
    parts.push(tlv(PAY_TAG.PAYEE, hex(request.payee)), tlv(PAY_TAG.AMOUNT, n(request.amount, 32)))
    if (request.memo) parts.push(tlv(PAY_TAG.MEMO, Buffer.from(request.memo, 'utf8')))
  } else {
    parts.push(
      tlv(PAY_TAG.AMOUNT, n(request.amount, 32)),
      tlv(PAY_TAG.EVSE_ID, Buffer.from(request.tariff.evseId, 'utf8')),
      tlv(PAY_TAG.CHARGER, hex(request.charger)),
      tlv(PAY_TAG.PRICE_PER_KWH, n(request.tariff.pricePerKWh, 32)),
      tlv(PAY_TAG.SESSION_FEE, n(request.tariff.sessionFee, 32)),
      tlv(PAY_TAG.VALID_UNTIL, n(request.tariff.validUntil, 8)),
      tlv(PAY_TAG.TARIFF_SIGNATURE, hex(request.tariffSignature)),
      tlv(PAY_TAG.SESSION_WH, n(request.sessionWh, 8)),
      tlv(PAY_TAG.TIME_MS, n(request.timeMs, 8)),
      tlv(PAY_TAG.READING_SIGNATURE, hex(request.readingSignature)),
    )
  }
  return Uint8Array.from(Buffer.concat(parts))
}

/**
 * A charging payment, decided as over TCP: the tariff signed by the charger for its EVSE, the
 * charger registered and active (its CPO, read from the chain, is the payee), the tariff within
 * policy, the meter reading signed by the charger for this card's nonce as session id, not from
 * the future, no more energy than `maxPowerW` delivers since the nonce was drawn, and the amount
 * asked not above what the signed tariff gives for the signed energy. The car pays its own
 * `sessionCost`; the caps are checked when the permit is booked.
 */
async function decideCharging(
  wallet: CarWallet,
  request: ChargingPayRequest,
  issuedAtMs: number,
  /** The charger check, started when the command's first block named the charger. */
  checked?: Promise<ChargerIdentity>,
): Promise<{ to: Address; amount: bigint }> {
  const { tariff } = request
  await verifyTariff(wallet.domain, { value: tariff, signature: request.tariffSignature }, request.charger)
  const identity = await (checked ?? wallet.checkCharger({ address: request.charger, evseId: tariff.evseId }))
  // As over TCP, a tariff may start a session until `validUntil` and its price holds for the
  // session: the session started when the card drew the nonce. The rest is the wallet's check.
  if (tariff.validUntil * 1000n <= BigInt(issuedAtMs))
    throw new BaseError(
      'TARIFF_INVALID',
      `the tariff expired at ${tariff.validUntil}, before the session began`,
      {
        details: { validUntil: Number(tariff.validUntil), sessionStartMs: issuedAtMs },
      },
    )
  wallet.checkTariff({ ...tariff, validUntil: BigInt(Math.floor(wallet.now() / 1000) + 1) })
  await verifyMeterReading(
    wallet.domain,
    {
      value: {
        evseId: tariff.evseId,
        sessionId: bytesToHex(request.nonce),
        sessionWh: request.sessionWh,
        timeMs: request.timeMs,
      },
      signature: request.readingSignature,
    },
    request.charger,
  )
  const details = { sessionWh: Number(request.sessionWh), timeMs: Number(request.timeMs) }
  if (request.timeMs > BigInt(wallet.now() + CLOCK_SKEW_MS))
    throw new BaseError('METER_INVALID', 'the meter reading is from the future', { details })
  const plausible = plausibleEnergyWh(
    wallet.policy.maxPowerW ?? 350_000,
    request.timeMs - BigInt(issuedAtMs - CLOCK_SKEW_MS),
  )
  if (request.sessionWh > plausible)
    throw new BaseError('METER_INVALID', 'more energy than the charger could deliver since the tap', {
      details: { ...details, plausibleWh: Number(plausible) },
    })
  const amount = sessionCost(tariff, request.sessionWh)
  if (amount === 0n) throw new BaseError('METER_INVALID', 'nothing was delivered', { details })
  if (request.amount > amount)
    throw new BaseError('TARIFF_INVALID', 'the charger asks for more than the signed tariff gives', {
      details: { due: request.amount.toString(), tariffAmount: amount.toString() },
    })
  return { to: identity.payee, amount }
}

// ---------------------------------------------------------------- the answer

/** PAY's answer: owner ‖ spender ‖ value ‖ nonce ‖ deadline ‖ r ‖ s ‖ v (20+20+32+32+8+65 = 177 bytes). */
export const PERMIT_BYTES = 177

export function encodePermit(permit: SignedPermit): Uint8Array {
  const n = (value: bigint, bytes: number) => Buffer.from(value.toString(16).padStart(bytes * 2, '0'), 'hex')
  return Uint8Array.from(
    Buffer.concat([
      Buffer.from(permit.owner.slice(2), 'hex'),
      Buffer.from(permit.spender.slice(2), 'hex'),
      n(permit.value, 32),
      n(permit.nonce, 32),
      n(permit.deadline, 8),
      Buffer.from(permit.signature.slice(2), 'hex'),
    ]),
  )
}

/** Decodes PAY's answer (NFC_PROTOCOL for anything but 177 bytes with v 27 or 28). */
export function decodePermit(bytes: Uint8Array): SignedPermit {
  if (bytes.length !== PERMIT_BYTES)
    throw new BaseError('NFC_PROTOCOL', `a permit is ${PERMIT_BYTES} bytes, not ${bytes.length}`)
  const v = bytes[176] as number
  if (v !== 27 && v !== 28) throw new BaseError('NFC_PROTOCOL', 'the permit signature’s v must be 27 or 28')
  const signature = bytesToHex(bytes.subarray(112, 177))
  return {
    owner: address(bytes.subarray(0, 20)),
    spender: address(bytes.subarray(20, 40)),
    value: uint(bytes.subarray(40, 72)),
    nonce: uint(bytes.subarray(72, 104)),
    deadline: uint(bytes.subarray(104, 112)),
    r: bytesToHex(bytes.subarray(112, 144)),
    s: bytesToHex(bytes.subarray(144, 176)),
    v,
    signature,
  }
}
