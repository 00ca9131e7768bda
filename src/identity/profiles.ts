/**
 * The certificate profiles of Carchain's two hierarchies (docs/identity.md):
 *
 *   OEM root CA (pathLen 1) → OEM sub-CA (pathLen 0) → vehicle   (CN = VIN, SAN did:pkh wallet)
 *                                                    → component (CN = name, serialNumber = VIN)
 *   CPO root CA (pathLen 1) → CPO sub-CA (pathLen 0) → charger   (CN = EVSE ID)
 *
 * All keys ECDSA P-256, signatures ecdsa-with-SHA256. CAs: keyUsage keyCertSign + cRLSign
 * (critical), basicConstraints cA (critical). Leaves: keyUsage digitalSignature + keyAgreement
 * (critical), basicConstraints without cA (critical), the role's policy OID.
 */
import type { Address } from 'viem'
import { BaseError } from '../errors.ts'
import {
  type Certificate,
  type Hierarchy,
  issueCertificate,
  type NameAttribute,
  rolePolicy,
  type Signer,
} from './certificate.ts'
import { EVSE_ID_PATTERN, VIN_PATTERN } from './validate.ts'

const DAY_MS = 86_400_000
const YEAR_MS = 365 * DAY_MS

/** Default lifetimes; a leaf never outlives its issuer (its notAfter is clipped). */
export const DEFAULT_VALIDITY_MS = {
  root: 30 * YEAR_MS,
  subCa: 10 * YEAR_MS,
  vehicle: 10 * YEAR_MS,
  component: 10 * YEAR_MS,
  charger: 2 * YEAR_MS,
} as const

/** Backdating tolerates clocks a little behind (RFC 5280 leaves notBefore to the issuer). */
const BACKDATE_MS = 5 * 60_000

function window(now: Date, lifetimeMs: number, issuer?: Certificate): { notBefore: Date; notAfter: Date } {
  const notBefore = new Date(Math.floor((now.getTime() - BACKDATE_MS) / 1000) * 1000)
  let notAfter = new Date(notBefore.getTime() + lifetimeMs)
  if (issuer && notAfter > issuer.notAfter) notAfter = issuer.notAfter
  return { notBefore, notAfter }
}

function invalid(message: string, details: Record<string, unknown>): never {
  throw new BaseError('INVALID_ARGUMENT', message, { details })
}

export type CaSubject = { readonly organization: string; readonly country?: string }

function caName(hierarchy: Hierarchy, subject: CaSubject, kind: 'Root' | 'Sub'): NameAttribute[] {
  return [
    ...(subject.country ? [{ type: 'C' as const, value: subject.country }] : []),
    { type: 'O', value: subject.organization },
    { type: 'CN', value: `${subject.organization} ${hierarchy.toUpperCase()} ${kind} CA` },
  ]
}

export type IssueRootParameters = {
  readonly hierarchy: Hierarchy
  readonly subject: CaSubject
  /** The root's own key (P-256) — it signs itself. */
  readonly signer: Signer
  readonly now?: Date
  readonly lifetimeMs?: number
}

export async function issueRootCa(parameters: IssueRootParameters): Promise<Certificate> {
  const now = parameters.now ?? new Date()
  return issueCertificate(
    {
      subject: caName(parameters.hierarchy, parameters.subject, 'Root'),
      subjectPublicKey: await parameters.signer.store.publicKey(parameters.signer.ref),
      issuer: 'self',
      ...window(now, parameters.lifetimeMs ?? DEFAULT_VALIDITY_MS.root),
      ca: { pathLen: 1 },
      keyUsage: ['keyCertSign', 'cRLSign'],
    },
    parameters.signer,
  )
}

export type IssueSubCaParameters = {
  readonly hierarchy: Hierarchy
  readonly subject: CaSubject
  readonly subjectPublicKey: Uint8Array
  readonly issuer: Certificate
  readonly signer: Signer
  readonly now?: Date
  readonly lifetimeMs?: number
  /** Default 0: a sub-CA issues only end entities. */
  readonly pathLen?: number
}

export function issueSubCa(parameters: IssueSubCaParameters): Promise<Certificate> {
  return issueCertificate(
    {
      subject: caName(parameters.hierarchy, parameters.subject, 'Sub'),
      subjectPublicKey: parameters.subjectPublicKey,
      issuer: parameters.issuer,
      ...window(
        parameters.now ?? new Date(),
        parameters.lifetimeMs ?? DEFAULT_VALIDITY_MS.subCa,
        parameters.issuer,
      ),
      ca: { pathLen: parameters.pathLen ?? 0 },
      keyUsage: ['keyCertSign', 'cRLSign'],
    },
    parameters.signer,
  )
}

type LeafCommon = {
  readonly subjectPublicKey: Uint8Array
  /** The sub-CA's certificate and key. */
  readonly issuer: Certificate
  readonly signer: Signer
  readonly now?: Date
  readonly lifetimeMs?: number
}

function organizationOf(issuer: Certificate): NameAttribute[] {
  const o = issuer.subject.attributes.find((a) => a.type === 'O')
  return o ? [o] : []
}

/** A vehicle certificate: CN = VIN, subjectAltName URI did:pkh:eip155:<chainId>:<wallet>. */
export function issueVehicleCertificate(
  parameters: LeafCommon & { readonly vin: string; readonly chainId: number; readonly wallet: Address },
): Promise<Certificate> {
  if (!VIN_PATTERN.test(parameters.vin))
    invalid(`"${parameters.vin}" is not a VIN (ISO 3779)`, { vin: parameters.vin })
  if (!/^0x[0-9a-fA-F]{40}$/.test(parameters.wallet))
    invalid('wallet is not an address', { wallet: parameters.wallet })
  if (!Number.isSafeInteger(parameters.chainId) || parameters.chainId <= 0)
    invalid('chainId must be a positive integer', { chainId: parameters.chainId })
  return issueCertificate(
    {
      subject: [...organizationOf(parameters.issuer), { type: 'CN', value: parameters.vin }],
      subjectPublicKey: parameters.subjectPublicKey,
      issuer: parameters.issuer,
      ...window(
        parameters.now ?? new Date(),
        parameters.lifetimeMs ?? DEFAULT_VALIDITY_MS.vehicle,
        parameters.issuer,
      ),
      keyUsage: ['digitalSignature', 'keyAgreement'],
      subjectAltNameUris: [`did:pkh:eip155:${parameters.chainId}:${parameters.wallet}`],
      policy: rolePolicy.vehicle,
    },
    parameters.signer,
  )
}

/** A component (ECU) certificate: CN = component name, serialNumber = the vehicle's VIN. */
export function issueComponentCertificate(
  parameters: LeafCommon & { readonly vin: string; readonly name: string },
): Promise<Certificate> {
  if (!VIN_PATTERN.test(parameters.vin))
    invalid(`"${parameters.vin}" is not a VIN (ISO 3779)`, { vin: parameters.vin })
  if (!/^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$/.test(parameters.name))
    invalid(`component name "${parameters.name}" must be 1–64 of [A-Za-z0-9 ._-]`, { name: parameters.name })
  return issueCertificate(
    {
      subject: [
        ...organizationOf(parameters.issuer),
        { type: 'CN', value: parameters.name },
        { type: 'serialNumber', value: parameters.vin },
      ],
      subjectPublicKey: parameters.subjectPublicKey,
      issuer: parameters.issuer,
      ...window(
        parameters.now ?? new Date(),
        parameters.lifetimeMs ?? DEFAULT_VALIDITY_MS.component,
        parameters.issuer,
      ),
      keyUsage: ['digitalSignature', 'keyAgreement'],
      policy: rolePolicy.component,
    },
    parameters.signer,
  )
}

/** A charger certificate: CN = EVSE ID (ISO 15118-2 SECC certificate). */
export function issueChargerCertificate(
  parameters: LeafCommon & { readonly evseId: string },
): Promise<Certificate> {
  if (!EVSE_ID_PATTERN.test(parameters.evseId))
    invalid(`"${parameters.evseId}" is not an EVSE ID (e.g. DE*ABC*E123456)`, { evseId: parameters.evseId })
  return issueCertificate(
    {
      subject: [...organizationOf(parameters.issuer), { type: 'CN', value: parameters.evseId }],
      subjectPublicKey: parameters.subjectPublicKey,
      issuer: parameters.issuer,
      ...window(
        parameters.now ?? new Date(),
        parameters.lifetimeMs ?? DEFAULT_VALIDITY_MS.charger,
        parameters.issuer,
      ),
      keyUsage: ['digitalSignature', 'keyAgreement'],
      policy: rolePolicy.charger,
    },
    parameters.signer,
  )
}
