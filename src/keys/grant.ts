/**
 * Issuing, sharing and verifying digital keys. An owner (or a manager the owner approved) signs a
 * KeyGrant with any Ethereum account; the grantee receives it as a file or a share link (QR
 * payload, share-link.ts) and answers the car's challenges by signing AccessRequests.
 */
import { randomBytes } from 'node:crypto'
import type { Address, Hex, LocalAccount } from 'viem'
import { recoverAddress } from './signatures.ts'
import {
  type AccessRequest,
  type AnySignedGrant,
  accessRequestTypedData,
  grantTypedData,
  hashGrant,
  type KeyDomain,
  parseGrant,
  parsePasskeyGrant,
  parseSignatureHex,
  passkeyGrantTypedData,
  type SignedGrant,
  type SignedPasskeyGrant,
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

/** The fields every grant has, with their defaults filled in (checked by the grant's parser). */
function sharedFields(parameters: Omit<IssueGrantParameters, 'grantee'>) {
  return {
    vehicle: parameters.vehicle,
    scopes: parameters.scopes,
    notBefore: parameters.notBefore ?? Math.floor(Date.now() / 1000),
    notAfter: parameters.notAfter,
    maxUses: parameters.maxUses ?? 0,
    epoch: parameters.epoch,
    grantId: parameters.grantId ?? newGrantId(),
    purpose: parameters.purpose ?? '',
  }
}

/** Builds, checks and signs a grant. */
export async function issueGrant(parameters: IssueGrantParameters): Promise<SignedGrant> {
  const grant = parseGrant({ ...sharedFields(parameters), grantee: parameters.grantee })
  const signature = await parameters.signer.signTypedData(grantTypedData(parameters.domain, grant))
  return { grant, signature: parseSignatureHex(signature, 'signature') }
}

/**
 * Builds, checks and signs a passkey grant: the same fields as {@link issueGrant}, with a P-256
 * public key (`0x04‖X‖Y`) and its WebAuthn RP ID instead of a grantee address.
 */
export async function issuePasskeyGrant(
  parameters: Omit<IssueGrantParameters, 'grantee'> & { passkey: Hex; rpId: string },
): Promise<SignedPasskeyGrant> {
  const grant = parsePasskeyGrant({
    ...sharedFields(parameters),
    passkey: parameters.passkey,
    rpId: parameters.rpId,
  })
  const signature = await parameters.signer.signTypedData(passkeyGrantTypedData(parameters.domain, grant))
  return { grant, signature: parseSignatureHex(signature, 'signature') }
}

/** The address that signed a grant of either kind (lowercase), or undefined when malformed. */
export function grantSigner(domain: KeyDomain, signed: AnySignedGrant): Address | undefined {
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
