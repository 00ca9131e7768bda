/**
 * Component (ECU) authentication: the vehicle challenges each component to sign a fresh nonce
 * with the key its certificate certifies. A component is accepted only if its certificate is a
 * valid component certificate of the OEM hierarchy, names *this* vehicle's VIN, is not revoked,
 * and its answer verifies. Every refusal is COMPONENT_REJECTED with a reason, and is reported
 * rather than thrown, so the vehicle agent can log each one and carry on with the rest.
 *
 * Signed message (ECDSA P-256/SHA-256, raw r ‖ s):
 *   "carchain/component-auth/v1" 0x00 VIN 0x00 component-name 0x00 nonce(32 bytes)
 * Binding the VIN and name means an answer is useless for any other vehicle or slot.
 */
import { createHash, randomBytes } from 'node:crypto'
import { BaseError, type ErrorCode } from '../errors.ts'
import type { KeyRef, KeyStore } from './keystore.ts'
import { verifyP256 } from './signature.ts'
import { type TrustAnchors, type ValidatedIdentity, validateCertificate } from './validate.ts'

const DOMAIN = 'carchain/component-auth/v1'

export type ComponentChallenge = {
  readonly vin: string
  /** The component name the vehicle expects in this slot (its certificate's CN). */
  readonly name: string
  /** 32 fresh random bytes. */
  readonly nonce: Uint8Array
}

/** The bytes a component signs for a challenge. */
export function componentChallengeMessage(challenge: ComponentChallenge): Uint8Array {
  const text = (s: string) => Buffer.from(s, 'utf8')
  const zero = Buffer.of(0)
  return Uint8Array.from(
    Buffer.concat([
      text(DOMAIN),
      zero,
      text(challenge.vin),
      zero,
      text(challenge.name),
      zero,
      challenge.nonce,
    ]),
  )
}

/** The component side: signs a challenge with its key (in its secure element). Returns r ‖ s. */
export function answerComponentChallenge(
  store: KeyStore,
  ref: KeyRef,
  challenge: ComponentChallenge,
): Promise<Uint8Array> {
  const digest = createHash('sha256').update(componentChallengeMessage(challenge)).digest()
  return store.signDigest(ref, digest)
}

/** A component as the vehicle sees it on its bus. */
export type ComponentEndpoint = {
  /** The name the vehicle expects (e.g. from its build list), checked against the certificate's CN. */
  readonly name: string
  readonly certificate: Uint8Array | string
  /** Intermediates; default: the vehicle's own chain. */
  readonly chain?: readonly (Uint8Array | string)[]
  /** Asks the component to sign; resolves with its raw r ‖ s signature. */
  respond(challenge: ComponentChallenge): Promise<Uint8Array>
}

export type ComponentRejectionReason =
  | Extract<
      ErrorCode,
      | 'CERT_MALFORMED'
      | 'CERT_UNSUPPORTED_KEY'
      | 'CERT_EXPIRED'
      | 'CERT_NOT_YET_VALID'
      | 'CERT_UNTRUSTED'
      | 'CERT_BAD_SIGNATURE'
      | 'CERT_WRONG_ROLE'
      | 'CERT_CONSTRAINTS'
      | 'CERT_REVOKED'
      | 'CERT_TOO_LARGE'
      | 'CRL_INVALID'
    >
  /** The certificate is for another vehicle's component. */
  | 'FOREIGN_COMPONENT'
  /** The certificate names another component than the slot expects. */
  | 'WRONG_COMPONENT'
  /** The answer does not verify with the certified key (a cloned certificate). */
  | 'BAD_RESPONSE'
  /** No answer within the timeout. */
  | 'NO_RESPONSE'

export type ComponentReport =
  | {
      readonly name: string
      readonly ok: true
      readonly fingerprint: string
      readonly identity: ValidatedIdentity
    }
  | {
      readonly name: string
      readonly ok: false
      readonly code: 'COMPONENT_REJECTED'
      readonly reason: ComponentRejectionReason
      readonly message: string
      readonly fingerprint?: string
    }

export type AuthenticateComponentsParameters = {
  /** This vehicle's VIN. */
  readonly vin: string
  readonly components: readonly ComponentEndpoint[]
  readonly trustAnchors: TrustAnchors
  /** Default intermediates (the OEM sub-CA). */
  readonly chain?: readonly (Uint8Array | string)[]
  readonly crls?: readonly (Uint8Array | string)[]
  readonly isRevoked?: (fingerprint: string) => Promise<boolean>
  /** Per-component answer timeout; default 2000 ms. */
  readonly timeoutMs?: number
  readonly now?: Date
}

class Rejected extends Error {
  readonly reason: ComponentRejectionReason
  readonly fingerprint: string | undefined
  constructor(reason: ComponentRejectionReason, message: string, fingerprint?: string) {
    super(message)
    this.reason = reason
    this.fingerprint = fingerprint
  }
}

async function withTimeout<T>(promise: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Rejected('NO_RESPONSE', `no answer within ${timeoutMs} ms`)),
          timeoutMs,
        )
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}

async function authenticateOne(
  component: ComponentEndpoint,
  parameters: AuthenticateComponentsParameters,
): Promise<ComponentReport> {
  let identity: ValidatedIdentity
  try {
    identity = await validateCertificate({
      certificate: component.certificate,
      chain: component.chain ?? parameters.chain ?? [],
      role: 'component',
      trustAnchors: parameters.trustAnchors,
      ...(parameters.crls ? { crls: parameters.crls } : {}),
      ...(parameters.isRevoked ? { isRevoked: parameters.isRevoked } : {}),
      ...(parameters.now ? { now: parameters.now } : {}),
    })
  } catch (error) {
    if (error instanceof BaseError && (error.code.startsWith('CERT_') || error.code === 'CRL_INVALID'))
      throw new Rejected(error.code as ComponentRejectionReason, error.shortMessage)
    throw error
  }
  if (identity.vin !== parameters.vin)
    throw new Rejected(
      'FOREIGN_COMPONENT',
      `certified for vehicle ${identity.vin}, not ${parameters.vin}`,
      identity.fingerprint,
    )
  if (identity.commonName !== component.name)
    throw new Rejected(
      'WRONG_COMPONENT',
      `certified as "${identity.commonName}", expected "${component.name}"`,
      identity.fingerprint,
    )
  const challenge = { vin: parameters.vin, name: component.name, nonce: Uint8Array.from(randomBytes(32)) }
  let answer: Uint8Array
  try {
    answer = await withTimeout(component.respond(challenge), parameters.timeoutMs ?? 2000)
  } catch (error) {
    if (error instanceof Rejected) throw new Rejected(error.reason, error.message, identity.fingerprint)
    throw new Rejected(
      'NO_RESPONSE',
      `the component failed to answer: ${(error as Error).message}`,
      identity.fingerprint,
    )
  }
  if (!verifyP256(identity.publicKey, componentChallengeMessage(challenge), answer, 'p1363'))
    throw new Rejected(
      'BAD_RESPONSE',
      'the answer does not verify with the certified key',
      identity.fingerprint,
    )
  return { name: component.name, ok: true, fingerprint: identity.fingerprint, identity }
}

/**
 * Challenges every component (concurrently) and returns one report per component, in order.
 * Never throws for a component's failure; unexpected internal errors do propagate.
 */
export async function authenticateComponents(parameters: AuthenticateComponentsParameters): Promise<{
  readonly reports: readonly ComponentReport[]
  readonly rejected: readonly Extract<ComponentReport, { ok: false }>[]
}> {
  const reports = await Promise.all(
    parameters.components.map((component) =>
      authenticateOne(component, parameters).catch((error: unknown): ComponentReport => {
        if (!(error instanceof Rejected)) throw error
        return {
          name: component.name,
          ok: false,
          code: 'COMPONENT_REJECTED',
          reason: error.reason,
          message: `component "${component.name}" rejected: ${error.message}`,
          ...(error.fingerprint ? { fingerprint: error.fingerprint } : {}),
        }
      }),
    ),
  )
  return { reports, rejected: reports.filter((r): r is Extract<ComponentReport, { ok: false }> => !r.ok) }
}

/** Throws COMPONENT_REJECTED (details: name, reason) if any component was refused. */
export function assertComponentsAccepted(reports: readonly ComponentReport[]): void {
  const first = reports.find((r) => !r.ok)
  if (first && !first.ok)
    throw new BaseError('COMPONENT_REJECTED', first.message, {
      details: { name: first.name, reason: first.reason, rejected: reports.filter((r) => !r.ok).length },
    })
}
