/**
 * Certificate revocation lists (RFC 5280 §5), v2, issued by the sub-CAs over the certificates
 * they issued: authorityKeyIdentifier and cRLNumber extensions, ecdsa-with-SHA256.
 */
import { BaseError } from '../errors.ts'
import {
  type Certificate,
  EXT,
  ecdsaWithSha256,
  fingerprintOf,
  type Name,
  parseExtensions,
  parseName,
  type Signer,
  signTbs,
  toDer,
} from './certificate.ts'
import {
  bitString,
  children,
  contextTag,
  type DerNode,
  decode,
  expectTag,
  integer,
  octetString,
  oid,
  readBitString,
  readInteger,
  readOid,
  readTime,
  sequence,
  Tag,
  time,
} from './der.ts'

export type RevokedEntry = { readonly serialNumber: bigint; readonly revokedAt: Date }

export type Crl = {
  readonly der: Uint8Array
  readonly fingerprint: string
  readonly tbs: Uint8Array
  readonly signatureAlgorithm: string
  readonly signature: Uint8Array
  readonly issuer: Name
  readonly thisUpdate: Date
  readonly nextUpdate: Date | undefined
  readonly crlNumber: bigint | undefined
  readonly authorityKeyId: Uint8Array | undefined
  /** Revoked serial numbers (hex, lowercase) → revocation time. */
  readonly revoked: ReadonlyMap<string, Date>
}

function malformed(message: string): BaseError {
  return new BaseError('CRL_INVALID', `CRL: ${message}`)
}

/** Parses a CRL from DER or PEM; CRL_INVALID when it is not a well-formed v2 CRL. */
export function parseCrl(input: Uint8Array | string): Crl {
  let der: Uint8Array
  try {
    der = toDer(input, 'X509 CRL')
    const [tbsNode, algorithm, signatureNode, ...extra] = children(
      expectTag(decode(der), Tag.SEQUENCE, 'CertificateList'),
    )
    if (extra.length) throw malformed('extra elements')
    const parts = children(expectTag(tbsNode, Tag.SEQUENCE, 'TBSCertList'))
    if (readInteger(parts[0], 'version') !== 1n) throw malformed('not a v2 CRL')
    const [, innerAlgorithm, issuerNode, thisUpdateNode, ...rest] = parts
    if (!Buffer.from(innerAlgorithm?.bytes ?? []).equals(algorithm?.bytes ?? new Uint8Array()))
      throw malformed('the two signature algorithm fields differ')
    let index = 0
    let nextUpdate: Date | undefined
    if (rest[index]?.tag === Tag.UTC_TIME || rest[index]?.tag === Tag.GENERALIZED_TIME)
      nextUpdate = readTime(rest[index++], 'nextUpdate')
    const revoked = new Map<string, Date>()
    if (rest[index]?.tag === Tag.SEQUENCE) {
      for (const entry of children(rest[index++] as DerNode)) {
        const [serial, date] = children(expectTag(entry, Tag.SEQUENCE, 'revokedCertificate'))
        revoked.set(readInteger(serial, 'userCertificate').toString(16), readTime(date, 'revocationDate'))
      }
    }
    const extensionsWrapper = rest[index]?.tag === 0xa0 ? rest[index] : undefined
    const extensions = parseExtensions(extensionsWrapper ? decode(extensionsWrapper.content) : undefined)
    if (extensions.unknownCriticalExtensions.length) throw malformed('unknown critical CRL extension')
    return {
      der,
      fingerprint: fingerprintOf(der),
      tbs: (tbsNode as DerNode).bytes,
      signatureAlgorithm: readOid(children(expectTag(algorithm, Tag.SEQUENCE, 'algorithm'))[0], 'algorithm'),
      signature: readBitString(signatureNode, 'signature').bytes,
      issuer: parseName(issuerNode as DerNode),
      thisUpdate: readTime(thisUpdateNode, 'thisUpdate'),
      nextUpdate,
      crlNumber: extensions.crlNumber,
      authorityKeyId: extensions.authorityKeyId,
      revoked,
    }
  } catch (error) {
    if (error instanceof BaseError && error.code === 'CRL_INVALID') throw error
    throw new BaseError('CRL_INVALID', 'not a well-formed X.509 CRL', { cause: error })
  }
}

export type CrlTemplate = {
  /** The issuing CA's certificate (a sub-CA). */
  readonly issuer: Certificate
  readonly revoked: readonly RevokedEntry[]
  readonly thisUpdate: Date
  readonly nextUpdate: Date
  /** Monotonically increasing (RFC 5280 §5.2.3). */
  readonly crlNumber: bigint
}

/** Issues a CRL signed by the issuer's key. */
export async function issueCrl(template: CrlTemplate, signer: Signer): Promise<Crl> {
  const keyId = template.issuer.subjectKeyId
  if (!keyId) throw new BaseError('INVALID_ARGUMENT', 'the CRL issuer has no subjectKeyIdentifier')
  const entries = [...template.revoked]
    .sort((a, b) => (a.serialNumber < b.serialNumber ? -1 : 1))
    .map((entry) => sequence(integer(entry.serialNumber), time(entry.revokedAt)))
  const tbs = sequence(
    integer(1),
    ecdsaWithSha256(),
    template.issuer.subject.der,
    time(template.thisUpdate),
    time(template.nextUpdate),
    ...(entries.length ? [sequence(...entries)] : []),
    contextTag(
      0,
      true,
      sequence(
        sequence(oid(EXT.authorityKeyIdentifier), octetString(sequence(contextTag(0, false, keyId)))),
        sequence(oid(EXT.crlNumber), octetString(integer(template.crlNumber))),
      ),
    ),
  )
  return parseCrl(sequence(tbs, ecdsaWithSha256(), bitString(await signTbs(signer, tbs))))
}
