/**
 * Certificate path validation for Carchain's hierarchies (RFC 5280 §6, narrowed to this profile).
 * The checks run in a fixed order and the first failure is reported with its stable code:
 *
 *  1. size of every certificate ≤ 800 bytes ............................ CERT_TOO_LARGE
 *  2. well-formed X.509 v3 DER/PEM ...................................... CERT_MALFORMED
 *  3. ECDSA P-256 keys, ecdsa-with-SHA256 signatures .................... CERT_UNSUPPORTED_KEY
 *  4. a path to a trusted root (by SHA-256 fingerprint) ................ CERT_UNTRUSTED
 *     … of the hierarchy the role needs (OEM or CPO) .................... CERT_WRONG_ROLE
 *  5. every signature on the path ....................................... CERT_BAD_SIGNATURE
 *  6. validity periods .................................. CERT_EXPIRED / CERT_NOT_YET_VALID
 *  7. basicConstraints, pathLen, keyUsage, unknown critical extensions .. CERT_CONSTRAINTS
 *  8. the leaf's role (policy OID and subject form) ..................... CERT_WRONG_ROLE
 *  9. CRLs of the issuing CAs (signature, freshness, entries) ... CRL_INVALID / CERT_REVOKED
 * 10. the on-chain registry's revocation (injected) ..................... CERT_REVOKED
 */
import { BaseError, type ErrorCode } from '../errors.ts'
import {
  type Certificate,
  formatName,
  type Hierarchy,
  hierarchyOf,
  MAX_CERTIFICATE_BYTES,
  nameValue,
  parseCertificate,
  type Role,
  rolePolicy,
  toDer,
} from './certificate.ts'
import { type Crl, parseCrl } from './crl.ts'
import { OID, verifyP256 } from './signature.ts'

/** A trust anchor: a root certificate (DER or PEM), or the 64-hex SHA-256 fingerprint of one. */
export type TrustAnchor = Uint8Array | string

/**
 * Trusted roots per hierarchy. A root given only by fingerprint (as the on-chain registry stores
 * it) must be presented in the chain; one given as a certificate need not be.
 */
export type TrustAnchors = { readonly [H in Hierarchy]?: readonly TrustAnchor[] }

export type ValidateCertificateParameters = {
  /** The end-entity certificate (DER or PEM). */
  readonly certificate: Uint8Array | string
  /** Intermediate certificates (and optionally the root), any order. */
  readonly chain?: readonly (Uint8Array | string)[]
  /** The role the caller expects the holder to have. */
  readonly role: Role
  readonly trustAnchors: TrustAnchors
  /** CRLs of the CAs on the path (DER or PEM); each is checked against its issuer. */
  readonly crls?: readonly (Uint8Array | string)[]
  /** Every non-root CA on the path must have a CRL here (default false: check those given). */
  readonly requireCrls?: boolean
  /** The on-chain registry's revocation check, by certificate fingerprint (lowercase hex). */
  readonly isRevoked?: (fingerprint: string) => Promise<boolean>
  readonly now?: Date
}

/** What a valid certificate says about its holder. */
export type ValidatedIdentity = {
  readonly role: Role
  readonly fingerprint: string
  /** The leaf's CN: the VIN, the EVSE ID or the component's name. */
  readonly commonName: string
  /** The vehicle (for a vehicle or component certificate). */
  readonly vin?: string
  /** The wallet bound by a vehicle certificate (`did:pkh:eip155:<chainId>:<address>`). */
  readonly wallet?: { readonly chainId: number; readonly address: `0x${string}` }
  /** P-256 public key of the holder (65 bytes). */
  readonly publicKey: Uint8Array
  /** The certificates from the leaf to the root. */
  readonly path: readonly Certificate[]
}

/** ISO 3779 VIN: 17 characters, no I, O or Q. */
export const VIN_PATTERN = /^[A-HJ-NPR-Z0-9]{17}$/
/** ISO 15118-2 / eMI3 EVSE ID, e.g. DE*ABC*E123456*1 (separators optional). */
export const EVSE_ID_PATTERN = /^[A-Z]{2}\*?[A-Z0-9]{3}\*?E[A-Z0-9][A-Z0-9*]{0,30}$/
export const DID_PKH_PATTERN = /^did:pkh:eip155:(\d{1,18}):(0x[0-9a-fA-F]{40})$/

function fail(code: ErrorCode, message: string, details: Record<string, unknown> = {}): never {
  throw new BaseError(code, message, { details })
}

function same(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  return a !== undefined && b !== undefined && Buffer.from(a).equals(b)
}

function isSelfIssued(cert: Certificate): boolean {
  return same(cert.subject.der, cert.issuer.der)
}

/** Whether `issuer` may have issued `cert`: names match and, when both are present, key ids. */
function couldIssue(issuer: Certificate, cert: Certificate): boolean {
  if (!same(issuer.subject.der, cert.issuer.der)) return false
  if (cert.authorityKeyId && issuer.subjectKeyId) return same(cert.authorityKeyId, issuer.subjectKeyId)
  return true
}

function parseAll(inputs: readonly (Uint8Array | string)[], what: string): Certificate[] {
  return inputs.map((input, index) => {
    let der: Uint8Array
    try {
      der = toDer(input)
    } catch (error) {
      throw new BaseError('CERT_MALFORMED', `${what} ${index} is not PEM/DER`, {
        details: { index },
        cause: error,
      })
    }
    if (der.length > MAX_CERTIFICATE_BYTES)
      fail('CERT_TOO_LARGE', `${what} ${index} is ${der.length} bytes (max ${MAX_CERTIFICATE_BYTES})`, {
        index,
        bytes: der.length,
      })
    return parseCertificate(der)
  })
}

type Anchor = {
  readonly hierarchy: Hierarchy
  readonly fingerprint: string
  readonly certificate?: Certificate
}

function readAnchors(anchors: TrustAnchors): Anchor[] {
  const out: Anchor[] = []
  for (const hierarchy of ['oem', 'cpo'] as const)
    for (const anchor of anchors[hierarchy] ?? []) {
      if (typeof anchor === 'string' && /^(0x)?[0-9a-fA-F]{64}$/.test(anchor))
        out.push({ hierarchy, fingerprint: anchor.replace(/^0x/, '').toLowerCase() })
      else {
        const certificate = parseCertificate(anchor)
        out.push({ hierarchy, fingerprint: certificate.fingerprint, certificate })
      }
    }
  return out
}

/** Builds leaf → … → root using the given intermediates and anchors (step 4). */
function buildPath(leaf: Certificate, pool: Certificate[], anchors: Anchor[], role: Role): Certificate[] {
  const path = [leaf]
  let current = leaf
  for (let depth = 0; depth < 5; depth++) {
    if (isSelfIssued(current)) {
      const anchor = anchors.find((a) => a.fingerprint === current.fingerprint)
      if (!anchor)
        fail('CERT_UNTRUSTED', `the root "${formatName(current.subject)}" is not a trusted anchor`, {
          fingerprint: current.fingerprint,
        })
      if (anchor.hierarchy !== hierarchyOf[role])
        fail(
          'CERT_WRONG_ROLE',
          `the chain leads to a ${anchor.hierarchy} root, but a ${role} needs ${hierarchyOf[role]}`,
          {
            root: anchor.hierarchy,
            role,
          },
        )
      return path
    }
    const issuer =
      anchors.find((a) => a.certificate && couldIssue(a.certificate, current))?.certificate ??
      pool.find((c) => couldIssue(c, current) && !path.includes(c))
    if (!issuer)
      fail('CERT_UNTRUSTED', `no trusted issuer for "${formatName(current.subject)}"`, {
        issuer: formatName(current.issuer),
      })
    path.push(issuer)
    current = issuer
  }
  return fail('CERT_UNTRUSTED', 'the chain is too long', { length: path.length })
}

function checkRoleProfile(
  leaf: Certificate,
  role: Role,
): Pick<ValidatedIdentity, 'commonName' | 'vin' | 'wallet'> {
  const wrong = (why: string): never =>
    fail('CERT_WRONG_ROLE', `not a ${role} certificate: ${why}`, { role, subject: formatName(leaf.subject) })
  if (!leaf.policies.includes(rolePolicy[role])) wrong('its policy is not the role’s')
  const commonName = nameValue(leaf.subject, 'CN') ?? wrong('no CN')
  const serial = nameValue(leaf.subject, 'serialNumber')
  switch (role) {
    case 'vehicle': {
      if (!VIN_PATTERN.test(commonName)) wrong('CN is not a VIN')
      const uri = leaf.subjectAltNameUris.find((u) => u.startsWith('did:pkh:'))
      const match = uri ? DID_PKH_PATTERN.exec(uri) : null
      if (!match) return wrong('no did:pkh:eip155 wallet in subjectAltName')
      return {
        commonName,
        vin: commonName,
        wallet: { chainId: Number(match[1]), address: match[2] as `0x${string}` },
      }
    }
    case 'component':
      if (!serial || !VIN_PATTERN.test(serial)) wrong('serialNumber is not the vehicle’s VIN')
      return { commonName, vin: serial }
    case 'charger':
      if (!EVSE_ID_PATTERN.test(commonName)) wrong('CN is not an EVSE ID')
      return { commonName }
  }
}

/**
 * Validates a certificate for a role; returns the holder's identity or throws a BaseError with
 * one of the codes listed at the top of this file.
 */
export async function validateCertificate(
  parameters: ValidateCertificateParameters,
): Promise<ValidatedIdentity> {
  const now = parameters.now ?? new Date()
  // 1–2
  const [leaf] = parseAll([parameters.certificate], 'certificate') as [Certificate]
  const pool = parseAll(parameters.chain ?? [], 'chain certificate')
  const anchors = readAnchors(parameters.trustAnchors)
  // 3
  for (const cert of [leaf, ...pool]) {
    if (
      cert.publicKeyAlgorithm !== OID.ecPublicKey ||
      cert.publicKeyCurve !== OID.prime256v1 ||
      cert.publicKey.length !== 65
    )
      fail('CERT_UNSUPPORTED_KEY', `"${formatName(cert.subject)}" does not have an ECDSA P-256 key`, {
        algorithm: cert.publicKeyAlgorithm,
        curve: cert.publicKeyCurve,
      })
    if (cert.signatureAlgorithm !== OID.ecdsaWithSha256)
      fail('CERT_UNSUPPORTED_KEY', `"${formatName(cert.subject)}" is not signed with ecdsa-with-SHA256`, {
        algorithm: cert.signatureAlgorithm,
      })
  }
  // 4
  const path = buildPath(leaf, pool, anchors, parameters.role)
  // 5
  path.forEach((cert, i) => {
    const issuer = path[i + 1] ?? cert
    if (!verifyP256(issuer.publicKey, cert.tbs, cert.signature, 'der'))
      fail('CERT_BAD_SIGNATURE', `the signature on "${formatName(cert.subject)}" does not verify`, {
        index: i,
        fingerprint: cert.fingerprint,
      })
  })
  // 6
  path.forEach((cert, i) => {
    if (now > cert.notAfter)
      fail('CERT_EXPIRED', `"${formatName(cert.subject)}" expired at ${cert.notAfter.toISOString()}`, {
        index: i,
        notAfter: cert.notAfter.toISOString(),
      })
    if (now < cert.notBefore)
      fail(
        'CERT_NOT_YET_VALID',
        `"${formatName(cert.subject)}" is valid from ${cert.notBefore.toISOString()}`,
        {
          index: i,
          notBefore: cert.notBefore.toISOString(),
        },
      )
  })
  // 7
  path.forEach((cert, i) => {
    const constraint = (why: string): never =>
      fail('CERT_CONSTRAINTS', `"${formatName(cert.subject)}": ${why}`, {
        index: i,
        fingerprint: cert.fingerprint,
      })
    if (cert.unknownCriticalExtensions.length)
      constraint(`unknown critical extension ${cert.unknownCriticalExtensions[0]}`)
    const usages = cert.keyUsage?.usages ?? constraint('no keyUsage')
    if (i === 0) {
      if (cert.basicConstraints?.ca) constraint('an end-entity certificate must not be a CA')
      if (!usages.has('digitalSignature')) constraint('keyUsage lacks digitalSignature')
      if (usages.has('keyCertSign') || usages.has('cRLSign'))
        constraint('an end-entity certificate may not sign certificates')
      return
    }
    if (!cert.basicConstraints?.ca) constraint('an issuer is not a CA (basicConstraints)')
    if (!usages.has('keyCertSign')) constraint('an issuer lacks keyCertSign')
    // RFC 5280 §6.1.4 (l, m): CA certificates below this one on the path, self-issued ones not counted.
    const below = path.slice(1, i).filter((c) => !isSelfIssued(c)).length
    const pathLen = cert.basicConstraints?.pathLen
    if (pathLen !== undefined && below > pathLen)
      constraint(`pathLen ${pathLen} exceeded (${below} CAs below)`)
  })
  // 8
  const profile = checkRoleProfile(leaf, parameters.role)
  // 9
  const crls: Crl[] = (parameters.crls ?? []).map((crl) => parseCrl(crl))
  for (let i = 0; i < path.length - 1; i++) {
    const cert = path[i] as Certificate
    const issuer = path[i + 1] as Certificate
    const crl = crls.find(
      (c) =>
        same(c.issuer.der, issuer.subject.der) &&
        (!c.authorityKeyId || same(c.authorityKeyId, issuer.subjectKeyId)),
    )
    if (!crl) {
      if (parameters.requireCrls)
        fail('CRL_INVALID', `no CRL from "${formatName(issuer.subject)}"`, { index: i + 1 })
      continue
    }
    if (
      crl.signatureAlgorithm !== OID.ecdsaWithSha256 ||
      !verifyP256(issuer.publicKey, crl.tbs, crl.signature, 'der')
    )
      fail('CRL_INVALID', `the CRL of "${formatName(issuer.subject)}" is not signed by it`, {
        crl: crl.fingerprint,
      })
    if (issuer.keyUsage && !issuer.keyUsage.usages.has('cRLSign'))
      fail('CRL_INVALID', `"${formatName(issuer.subject)}" may not sign CRLs`, { crl: crl.fingerprint })
    if (crl.nextUpdate && now > crl.nextUpdate)
      fail(
        'CRL_INVALID',
        `the CRL of "${formatName(issuer.subject)}" is stale since ${crl.nextUpdate.toISOString()}`,
        {
          nextUpdate: crl.nextUpdate.toISOString(),
        },
      )
    const revokedAt = crl.revoked.get(cert.serialNumber.toString(16))
    if (revokedAt)
      fail('CERT_REVOKED', `"${formatName(cert.subject)}" was revoked at ${revokedAt.toISOString()} (CRL)`, {
        index: i,
        source: 'crl',
        fingerprint: cert.fingerprint,
      })
  }
  // 10
  if (parameters.isRevoked)
    for (const [i, cert] of path.slice(0, -1).entries())
      if (await parameters.isRevoked(cert.fingerprint))
        fail('CERT_REVOKED', `"${formatName(cert.subject)}" is revoked on chain`, {
          index: i,
          source: 'chain',
          fingerprint: cert.fingerprint,
        })
  return { role: parameters.role, fingerprint: leaf.fingerprint, publicKey: leaf.publicKey, path, ...profile }
}
