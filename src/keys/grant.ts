/**
 * Issuing, sharing and verifying digital keys. An owner (or a manager the owner approved) signs a
 * KeyGrant with any Ethereum account; the grantee receives it as a file or a share link (QR
 * payload) and answers the car's challenges by signing AccessRequests.
 */
import { randomBytes } from 'node:crypto'
import type { Address, Hex, LocalAccount } from 'viem'
import { BaseError } from '../errors.ts'
import { recoverAddress } from './signatures.ts'
import {
  type AccessRequest,
  accessRequestTypedData,
  grantTypedData,
  hashGrant,
  type KeyDomain,
  type KeyGrant,
  parseAddress,
  parseGrant,
  parseSignatureHex,
  type SignedGrant,
} from './typed-data.ts'

/** An account that can sign EIP-712 data: a viem LocalAccount (private key, mnemonic, key store). */
export type TypedDataSigner = Pick<LocalAccount, 'address' | 'signTypedData'>

/** A fresh random grantId (32 bytes): unguessable, so a revocation names exactly one key. */
export function newGrantId(): Hex {
  return `0x${randomBytes(32).toString('hex')}`
}

export type IssueGrantParameters = {
  /** The owner's or manager's account. */
  signer: TypedDataSigner
  domain: KeyDomain
  vehicle: Address
  grantee: Address
  scopes: number
  /** Unix seconds; default now. */
  notBefore?: number
  /** Unix seconds. */
  notAfter: number
  /** 0 (default) means unlimited. */
  maxUses?: number
  /** The vehicle's current KeyRegistry epoch (read it with `epochOf`). */
  epoch: number
  /** Default a random one. */
  grantId?: Hex
  purpose?: string
}

/** Builds, checks and signs a grant. */
export async function issueGrant(parameters: IssueGrantParameters): Promise<SignedGrant> {
  const grant = parseGrant({
    vehicle: parameters.vehicle,
    grantee: parameters.grantee,
    scopes: parameters.scopes,
    notBefore: parameters.notBefore ?? Math.floor(Date.now() / 1000),
    notAfter: parameters.notAfter,
    maxUses: parameters.maxUses ?? 0,
    epoch: parameters.epoch,
    grantId: parameters.grantId ?? newGrantId(),
    purpose: parameters.purpose ?? '',
  })
  const signature = await parameters.signer.signTypedData(grantTypedData(parameters.domain, grant))
  return { grant, signature: parseSignatureHex(signature, 'signature') }
}

/** The address that signed a grant (lowercase), or undefined when the signature is malformed. */
export function grantSigner(domain: KeyDomain, signed: SignedGrant): Address | undefined {
  const digest = Buffer.from(hashGrant(domain, signed.grant).slice(2), 'hex')
  return recoverAddress(digest, Buffer.from(signed.signature.slice(2), 'hex'))
}

/** Signs an AccessRequest (the phone's side of the link). */
export async function signAccessRequest(
  signer: TypedDataSigner,
  domain: KeyDomain,
  request: AccessRequest,
): Promise<Hex> {
  return signer.signTypedData(accessRequestTypedData(domain, request))
}

// ---------------------------------------------------------------------------------------------
// Sharing: a grant file and a link / QR payload

/** What a grantee needs: the domain (to sign requests) and the signed grant. */
export type SharedKey = { chainId: number; keyRegistry: Address; grant: KeyGrant; signature: Hex }

/** The prefix of a share link. */
export const SHARE_LINK_PREFIX = 'carchain-key:'

/** The JSON form of a shared key (a grant file). */
export function sharedKey(domain: KeyDomain, signed: SignedGrant): SharedKey {
  return { chainId: domain.chainId, keyRegistry: domain.keyRegistry, ...signed }
}

/** `carchain-key:<base64url of the shared key's JSON>` — short enough for one QR code. */
export function encodeShareLink(domain: KeyDomain, signed: SignedGrant): string {
  return SHARE_LINK_PREFIX + Buffer.from(JSON.stringify(sharedKey(domain, signed))).toString('base64url')
}

/** Parses a shared key from its JSON object (grant file). INVALID_ARGUMENT naming the field. */
export function parseSharedKey(value: unknown): SharedKey {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new BaseError(
      'INVALID_ARGUMENT',
      'a shared key is a JSON object {chainId, keyRegistry, grant, signature}',
    )
  const record = value as Record<string, unknown>
  const chainId = record.chainId
  if (typeof chainId !== 'number' || !Number.isSafeInteger(chainId) || chainId <= 0)
    throw new BaseError('INVALID_ARGUMENT', 'chainId must be a positive integer', {
      details: { field: 'chainId' },
    })
  return {
    chainId,
    keyRegistry: parseAddress(record.keyRegistry, 'keyRegistry'),
    grant: parseGrant(record.grant),
    signature: parseSignatureHex(record.signature, 'signature'),
  }
}

/** Parses a share link, or a grant file's text (JSON). */
export function decodeShareLink(text: string): SharedKey {
  const trimmed = text.trim()
  let json: unknown
  try {
    json = trimmed.startsWith(SHARE_LINK_PREFIX)
      ? JSON.parse(Buffer.from(trimmed.slice(SHARE_LINK_PREFIX.length), 'base64url').toString('utf8'))
      : JSON.parse(trimmed)
  } catch (error) {
    throw new BaseError('INVALID_ARGUMENT', 'not a carchain-key: link or a grant JSON file', { cause: error })
  }
  return parseSharedKey(json)
}

/** The domain of a shared key. */
export function sharedKeyDomain(shared: SharedKey): KeyDomain {
  return { chainId: shared.chainId, keyRegistry: shared.keyRegistry }
}
