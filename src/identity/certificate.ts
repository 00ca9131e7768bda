/**
 * X.509 v3 certificates (RFC 5280) in Carchain's ISO 15118-2-style profile: ECDSA P-256 keys,
 * ecdsa-with-SHA256 signatures, at most 800 bytes. `parseCertificate` reads any well-formed
 * certificate so the validator can say precisely what is wrong with it; `issueCertificate`
 * writes only the profile, signing through a key store.
 */
import { createHash } from 'node:crypto'
import { BaseError } from '../errors.ts'
import {
  bitString,
  booleanTrue,
  children,
  contextTag,
  type DerNode,
  decode,
  expectTag,
  ia5String,
  integer,
  octetString,
  oid,
  printableString,
  readBitString,
  readInteger,
  readOid,
  readString,
  readTime,
  sequence,
  set,
  Tag,
  time,
  utf8String,
} from './der.ts'
import type { KeyRef, KeyStore } from './keystore.ts'
import { OID, rawToDerSignature, subjectPublicKeyInfo } from './signature.ts'

/** Certificates larger than this are refused (CERT_TOO_LARGE): ISO 15118-2 caps them at 800 bytes. */
export const MAX_CERTIFICATE_BYTES = 800

/** The end-entity roles. */
export type Role = 'vehicle' | 'component' | 'charger'
/** The CA hierarchies: the car maker's (vehicles, components) and the charge-point operator's. */
export type Hierarchy = 'oem' | 'cpo'

export const hierarchyOf: Record<Role, Hierarchy> = { vehicle: 'oem', component: 'oem', charger: 'cpo' }

/**
 * Carchain's certificate-policy arc: a UUID OID (ITU-T X.667, 2.25.<uuid>), which needs no
 * registration. Each leaf carries the policy of its role, so a role is stated, not guessed.
 */
export const POLICY_ARC = '2.25.206949785101524264357198505997708034926'
export const rolePolicy: Record<Role, string> = {
  vehicle: `${POLICY_ARC}.1.1`,
  component: `${POLICY_ARC}.1.2`,
  charger: `${POLICY_ARC}.1.3`,
}

export type KeyUsage = 'digitalSignature' | 'keyAgreement' | 'keyCertSign' | 'cRLSign'
const keyUsageBit: Record<KeyUsage, number> = {
  digitalSignature: 0,
  keyAgreement: 4,
  keyCertSign: 5,
  cRLSign: 6,
}

export type NameAttributeType = 'C' | 'O' | 'OU' | 'CN' | 'serialNumber'
export type NameAttribute = { readonly type: NameAttributeType; readonly value: string }

const attributeOid: Record<NameAttributeType, string> = {
  C: '2.5.4.6',
  O: '2.5.4.10',
  OU: '2.5.4.11',
  CN: '2.5.4.3',
  serialNumber: '2.5.4.5',
}
const attributeByOid = new Map(Object.entries(attributeOid).map(([k, v]) => [v, k as NameAttributeType]))

export const EXT = {
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  crlNumber: '2.5.29.20',
  certificatePolicies: '2.5.29.32',
  authorityKeyIdentifier: '2.5.29.35',
} as const

export type Name = {
  /** The Name's DER, compared byte for byte when chaining (our issuers write one encoding). */
  readonly der: Uint8Array
  readonly attributes: readonly NameAttribute[]
}

export type Certificate = {
  readonly der: Uint8Array
  /** SHA-256 of the DER, lowercase hex without 0x: the fingerprint the on-chain registry stores. */
  readonly fingerprint: string
  readonly tbs: Uint8Array
  readonly serialNumber: bigint
  readonly signatureAlgorithm: string
  /** DER Ecdsa-Sig-Value. */
  readonly signature: Uint8Array
  readonly issuer: Name
  readonly subject: Name
  readonly notBefore: Date
  readonly notAfter: Date
  readonly publicKeyAlgorithm: string
  /** Named curve OID of an EC key, if any. */
  readonly publicKeyCurve: string | undefined
  /** The subjectPublicKey bits (an uncompressed point for EC keys). */
  readonly publicKey: Uint8Array
  readonly basicConstraints:
    | { readonly ca: boolean; readonly pathLen?: number; readonly critical: boolean }
    | undefined
  readonly keyUsage:
    | { readonly usages: ReadonlySet<KeyUsage | 'other'>; readonly critical: boolean }
    | undefined
  readonly subjectKeyId: Uint8Array | undefined
  readonly authorityKeyId: Uint8Array | undefined
  readonly subjectAltNameUris: readonly string[]
  readonly policies: readonly string[]
  /** Critical extensions this profile does not know (RFC 5280 §4.2: must be refused). */
  readonly unknownCriticalExtensions: readonly string[]
}

function malformed(message: string, details: Record<string, unknown> = {}): BaseError {
  return new BaseError('CERT_MALFORMED', message, { details })
}

export function fingerprintOf(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex')
}

/** The first value of a name attribute. */
export function nameValue(name: Name, type: NameAttributeType): string | undefined {
  return name.attributes.find((a) => a.type === type)?.value
}

export function formatName(name: Name): string {
  return name.attributes.map((a) => `${a.type}=${a.value}`).join(', ')
}

// ---- PEM ----

export function toPem(label: 'CERTIFICATE' | 'X509 CRL', der: Uint8Array): string {
  const body = Buffer.from(der)
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .replace(/\n$/, '')
  return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`
}

/** Every PEM block with `label` in `text`, decoded (CERT_MALFORMED if none or bad base64). */
export function fromPem(text: string, label: 'CERTIFICATE' | 'X509 CRL' = 'CERTIFICATE'): Uint8Array[] {
  const blocks = [...text.matchAll(new RegExp(`-----BEGIN ${label}-----([^-]*)-----END ${label}-----`, 'g'))]
  if (blocks.length === 0) throw malformed(`no ${label} PEM block found`)
  return blocks.map((block) => {
    const body = (block[1] as string).replace(/\s+/g, '')
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 !== 0)
      throw malformed(`bad base64 in ${label} PEM`)
    return Uint8Array.from(Buffer.from(body, 'base64'))
  })
}

/** Accepts DER bytes or PEM text (bytes or string) and returns DER. */
export function toDer(
  input: Uint8Array | string,
  label: 'CERTIFICATE' | 'X509 CRL' = 'CERTIFICATE',
): Uint8Array {
  if (typeof input !== 'string' && input[0] === Tag.SEQUENCE) return input
  const text = typeof input === 'string' ? input : Buffer.from(input).toString('latin1')
  const [first, ...rest] = fromPem(text, label)
  if (rest.length > 0) throw malformed(`expected one ${label}, found ${rest.length + 1}`)
  return first as Uint8Array
}

// ---- parsing ----

export function parseName(node: DerNode): Name {
  expectTag(node, Tag.SEQUENCE, 'Name')
  const attributes: NameAttribute[] = []
  for (const rdn of children(node)) {
    expectTag(rdn, Tag.SET, 'RelativeDistinguishedName')
    for (const atv of children(rdn)) {
      const [type, value] = children(expectTag(atv, Tag.SEQUENCE, 'AttributeTypeAndValue'))
      const known = attributeByOid.get(readOid(type, 'attribute type'))
      const text = readString(value, 'attribute value')
      if (known) attributes.push({ type: known, value: text })
    }
  }
  return { der: node.bytes, attributes }
}

function readAlgorithm(
  node: DerNode | undefined,
  what: string,
): { oid: string; parameters: DerNode | undefined } {
  const parts = children(expectTag(node, Tag.SEQUENCE, what))
  return { oid: readOid(parts[0], what), parameters: parts[1] }
}

type Extensions = Pick<
  Certificate,
  | 'basicConstraints'
  | 'keyUsage'
  | 'subjectKeyId'
  | 'authorityKeyId'
  | 'subjectAltNameUris'
  | 'policies'
  | 'unknownCriticalExtensions'
>

/** Reads the Extensions SEQUENCE (RFC 5280 §4.2); also used for CRL extensions. */
export function parseExtensions(node: DerNode | undefined): Extensions & { crlNumber?: bigint } {
  const uris: string[] = []
  const policies: string[] = []
  const unknownCritical: string[] = []
  const out: {
    -readonly [K in keyof Extensions]: Extensions[K]
  } & { crlNumber?: bigint } = {
    basicConstraints: undefined,
    keyUsage: undefined,
    subjectKeyId: undefined,
    authorityKeyId: undefined,
    subjectAltNameUris: uris,
    policies,
    unknownCriticalExtensions: unknownCritical,
  }
  if (!node) return out
  const seen = new Set<string>()
  for (const extension of children(expectTag(node, Tag.SEQUENCE, 'Extensions'))) {
    const parts = children(expectTag(extension, Tag.SEQUENCE, 'Extension'))
    const id = readOid(parts[0], 'extnID')
    if (seen.has(id)) throw malformed(`extension ${id} appears twice`)
    seen.add(id)
    let critical = false
    let valueNode = parts[1]
    if (valueNode?.tag === Tag.BOOLEAN) {
      // DER: a DEFAULT FALSE value is omitted, so a present flag must be TRUE (0xff).
      if (valueNode.content.length !== 1 || valueNode.content[0] !== 0xff)
        throw malformed('critical flag is not TRUE')
      critical = true
      valueNode = parts[2]
    }
    const value = decode(expectTag(valueNode, Tag.OCTET_STRING, 'extnValue').content)
    switch (id) {
      case EXT.basicConstraints: {
        const items = children(expectTag(value, Tag.SEQUENCE, 'basicConstraints'))
        let index = 0
        let ca = false
        if (items[index]?.tag === Tag.BOOLEAN) {
          if (items[index]?.content[0] !== 0xff)
            throw malformed('basicConstraints cA FALSE must be omitted (DER)')
          ca = true
          index++
        }
        const pathLen = items[index] ? Number(readInteger(items[index], 'pathLenConstraint')) : undefined
        if (pathLen !== undefined && (pathLen < 0 || pathLen > 16))
          throw malformed('pathLenConstraint out of range')
        out.basicConstraints = { ca, critical, ...(pathLen === undefined ? {} : { pathLen }) }
        break
      }
      case EXT.keyUsage: {
        const { bytes } = readBitString(value, 'keyUsage')
        const usages = new Set<KeyUsage | 'other'>()
        for (let bit = 0; bit < bytes.length * 8; bit++) {
          if (!(((bytes[bit >> 3] as number) >> (7 - (bit & 7))) & 1)) continue
          const name = (Object.keys(keyUsageBit) as KeyUsage[]).find((k) => keyUsageBit[k] === bit)
          usages.add(name ?? 'other')
        }
        out.keyUsage = { usages, critical }
        break
      }
      case EXT.subjectKeyIdentifier:
        out.subjectKeyId = expectTag(value, Tag.OCTET_STRING, 'subjectKeyIdentifier').content
        break
      case EXT.authorityKeyIdentifier: {
        const keyId = children(expectTag(value, Tag.SEQUENCE, 'authorityKeyIdentifier')).find(
          (c) => c.tag === 0x80,
        )
        out.authorityKeyId = keyId?.content
        break
      }
      case EXT.subjectAltName:
        for (const general of children(expectTag(value, Tag.SEQUENCE, 'subjectAltName')))
          if (general.tag === 0x86) uris.push(Buffer.from(general.content).toString('latin1'))
        break
      case EXT.certificatePolicies:
        for (const info of children(expectTag(value, Tag.SEQUENCE, 'certificatePolicies')))
          policies.push(readOid(children(expectTag(info, Tag.SEQUENCE, 'PolicyInformation'))[0], 'policy'))
        break
      case EXT.crlNumber:
        out.crlNumber = readInteger(value, 'cRLNumber')
        break
      default:
        if (critical) unknownCritical.push(id)
    }
  }
  return out
}

/** Parses a certificate from DER or PEM. Throws CERT_MALFORMED on anything that is not X.509 v3. */
export function parseCertificate(input: Uint8Array | string): Certificate {
  const der = toDer(input)
  try {
    const [tbsNode, outerAlgorithm, signatureNode, ...extra] = children(
      expectTag(decode(der), Tag.SEQUENCE, 'Certificate'),
    )
    if (extra.length) throw malformed('Certificate has extra elements')
    const tbsParts = children(expectTag(tbsNode, Tag.SEQUENCE, 'TBSCertificate'))
    const versionNode = expectTag(tbsParts[0], 0xa0, 'version')
    if (readInteger(decode(versionNode.content), 'version') !== 2n)
      throw malformed('not an X.509 v3 certificate')
    const [, serialNode, algorithmNode, issuerNode, validityNode, subjectNode, spkiNode, ...optional] =
      tbsParts
    const signatureAlgorithm = readAlgorithm(outerAlgorithm, 'signatureAlgorithm')
    if (!Buffer.from(algorithmNode?.bytes ?? []).equals(outerAlgorithm?.bytes ?? new Uint8Array()))
      throw malformed('the two signature algorithm fields differ')
    const serialNumber = readInteger(serialNode, 'serialNumber')
    if (serialNumber <= 0n || (serialNode?.content.length ?? 0) > 20)
      throw malformed('serialNumber must be positive, ≤ 20 bytes')
    const [notBeforeNode, notAfterNode] = children(expectTag(validityNode, Tag.SEQUENCE, 'Validity'))
    const [spkiAlgorithm, spkiKey] = children(expectTag(spkiNode, Tag.SEQUENCE, 'SubjectPublicKeyInfo'))
    const keyAlgorithm = readAlgorithm(spkiAlgorithm, 'SubjectPublicKeyInfo.algorithm')
    const publicKeyCurve =
      keyAlgorithm.oid === OID.ecPublicKey && keyAlgorithm.parameters?.tag === Tag.OID
        ? readOid(keyAlgorithm.parameters, 'namedCurve')
        : undefined
    const extensionsWrapper = optional.find((node) => node.tag === 0xa3)
    const extensions = parseExtensions(extensionsWrapper ? decode(extensionsWrapper.content) : undefined)
    return {
      der,
      fingerprint: fingerprintOf(der),
      tbs: (tbsNode as DerNode).bytes,
      serialNumber,
      signatureAlgorithm: signatureAlgorithm.oid,
      signature: readBitString(signatureNode, 'signatureValue').bytes,
      issuer: parseName(issuerNode as DerNode),
      subject: parseName(subjectNode as DerNode),
      notBefore: readTime(notBeforeNode, 'notBefore'),
      notAfter: readTime(notAfterNode, 'notAfter'),
      publicKeyAlgorithm: keyAlgorithm.oid,
      publicKeyCurve,
      publicKey: readBitString(spkiKey, 'subjectPublicKey').bytes,
      basicConstraints: extensions.basicConstraints,
      keyUsage: extensions.keyUsage,
      subjectKeyId: extensions.subjectKeyId,
      authorityKeyId: extensions.authorityKeyId,
      subjectAltNameUris: extensions.subjectAltNameUris,
      policies: extensions.policies,
      unknownCriticalExtensions: extensions.unknownCriticalExtensions,
    }
  } catch (error) {
    if (error instanceof BaseError && error.code === 'CERT_MALFORMED') throw error
    throw malformed('not a well-formed X.509 certificate', { cause: String(error) })
  }
}

// ---- issuing ----

export function encodeName(attributes: readonly NameAttribute[]): Uint8Array {
  return sequence(
    ...attributes.map(({ type, value }) => {
      // RFC 5280 App. A: countryName and serialNumber are PrintableString; the rest UTF8String.
      const printable = type === 'C' || type === 'serialNumber'
      if (printable && !/^[A-Za-z0-9 '()+,./:=?-]+$/.test(value))
        throw new BaseError('INVALID_ARGUMENT', `${type} "${value}" is not a PrintableString`, {
          details: { type, value },
        })
      return set(sequence(oid(attributeOid[type]), printable ? printableString(value) : utf8String(value)))
    }),
  )
}

/** RFC 7093 §2 method 1: the leftmost 160 bits of SHA-256 over the subjectPublicKey bits. */
export function keyIdentifier(publicKey: Uint8Array): Uint8Array {
  return Uint8Array.from(createHash('sha256').update(publicKey).digest().subarray(0, 20))
}

function keyUsageBits(usages: readonly KeyUsage[]): Uint8Array {
  const bits = usages.map((u) => keyUsageBit[u])
  const highest = Math.max(...bits)
  const bytes = new Uint8Array((highest >> 3) + 1)
  for (const bit of bits) bytes[bit >> 3]! |= 0x80 >> (bit & 7)
  // DER named bit lists drop trailing zero bits (X.690 §11.2.2).
  return bitString(bytes, 7 - (highest & 7))
}

function extension(id: string, critical: boolean, value: Uint8Array): Uint8Array {
  return sequence(oid(id), ...(critical ? [booleanTrue()] : []), octetString(value))
}

export type CertificateTemplate = {
  readonly subject: readonly NameAttribute[]
  /** P-256 public key of the subject (65-byte uncompressed point). */
  readonly subjectPublicKey: Uint8Array
  /** The issuing CA's certificate, or `self` for a root. */
  readonly issuer: Certificate | 'self'
  readonly notBefore: Date
  readonly notAfter: Date
  /** Present for a CA: basicConstraints cA with this pathLenConstraint. */
  readonly ca?: { readonly pathLen: number }
  readonly keyUsage: readonly KeyUsage[]
  readonly subjectAltNameUris?: readonly string[]
  readonly policy?: string
  /** Default: 16 random bytes, positive. */
  readonly serialNumber?: bigint
}

export type Signer = { readonly store: KeyStore; readonly ref: KeyRef }

export const ecdsaWithSha256 = () => sequence(oid(OID.ecdsaWithSha256))

export function randomSerialNumber(): bigint {
  const bytes = crypto.getRandomValues(new Uint8Array(16))
  bytes[0] = (bytes[0]! & 0x7f) | 0x40
  return BigInt(`0x${Buffer.from(bytes).toString('hex')}`)
}

/** SHA-256 a to-be-signed structure and sign it with `signer`; returns the DER signature. */
export async function signTbs(signer: Signer, tbs: Uint8Array): Promise<Uint8Array> {
  const digest = createHash('sha256').update(tbs).digest()
  return rawToDerSignature(await signer.store.signDigest(signer.ref, digest))
}

/** Issues a certificate in Carchain's profile, signed by `signer` (the issuer's key). */
export async function issueCertificate(template: CertificateTemplate, signer: Signer): Promise<Certificate> {
  const selfSigned = template.issuer === 'self'
  const issuerName = selfSigned ? encodeName(template.subject) : (template.issuer as Certificate).subject.der
  const subjectKeyId = keyIdentifier(template.subjectPublicKey)
  const authorityKeyId = selfSigned ? subjectKeyId : (template.issuer as Certificate).subjectKeyId
  if (!authorityKeyId)
    throw new BaseError('INVALID_ARGUMENT', 'the issuer certificate has no subjectKeyIdentifier')
  const extensions = [
    template.ca
      ? extension(EXT.basicConstraints, true, sequence(booleanTrue(), integer(template.ca.pathLen)))
      : extension(EXT.basicConstraints, true, sequence()),
    extension(EXT.keyUsage, true, keyUsageBits(template.keyUsage)),
    extension(EXT.subjectKeyIdentifier, false, octetString(subjectKeyId)),
    extension(EXT.authorityKeyIdentifier, false, sequence(contextTag(0, false, authorityKeyId))),
  ]
  if (template.subjectAltNameUris?.length)
    extensions.push(
      extension(
        EXT.subjectAltName,
        false,
        sequence(
          ...template.subjectAltNameUris.map((uri) => contextTag(6, false, ia5String(uri).subarray(2))),
        ),
      ),
    )
  if (template.policy)
    extensions.push(extension(EXT.certificatePolicies, false, sequence(sequence(oid(template.policy)))))
  const tbs = sequence(
    contextTag(0, true, integer(2)),
    integer(template.serialNumber ?? randomSerialNumber()),
    ecdsaWithSha256(),
    issuerName,
    sequence(time(template.notBefore), time(template.notAfter)),
    encodeName(template.subject),
    subjectPublicKeyInfo('p256', template.subjectPublicKey),
    contextTag(3, true, sequence(...extensions)),
  )
  const der = sequence(tbs, ecdsaWithSha256(), bitString(await signTbs(signer, tbs)))
  if (der.length > MAX_CERTIFICATE_BYTES)
    throw new BaseError(
      'CERT_TOO_LARGE',
      `the certificate would be ${der.length} bytes (max ${MAX_CERTIFICATE_BYTES})`,
      {
        details: { bytes: der.length },
      },
    )
  return parseCertificate(der)
}
