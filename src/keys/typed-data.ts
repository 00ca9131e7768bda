/**
 * The EIP-712 typed data of digital keys (docs/spec.md "Digital keys"), exactly as outside parties
 * sign it: any wallet, or `cast wallet sign --data --from-file typed.json --private-key K`.
 *
 * - Domain `{name:"Carchain", version:"1", chainId, verifyingContract: <KeyRegistry>}`.
 * - `KeyGrant(address vehicle,address grantee,uint32 scopes,uint64 notBefore,uint64 notAfter,uint32 maxUses,uint64 epoch,bytes32 grantId,string purpose)`
 *   signed by the vehicle's owner or a manager.
 * - `AccessRequest(bytes32 grantId,uint32 action,bytes32 challenge)` signed by the grantee (or,
 *   with grantId zero, by the title's ERC-4907 user).
 * - `PasskeyGrant(address vehicle,bytes passkey,string rpId,uint32 scopes,uint64 notBefore,uint64 notAfter,uint32 maxUses,uint64 epoch,bytes32 grantId,string purpose)`
 *   signed by the owner or a manager: the grantee is a P-256 public key (a WebAuthn passkey), which
 *   answers the car with a WebAuthn assertion (passkey.ts) instead of an AccessRequest signature.
 *
 * In JSON (the link, grant files, share links) addresses and bytes32 are `0x`-hex strings and
 * integers JSON numbers; parsing here is strict and normalises addresses to lowercase.
 */
import { keccak_256 } from '@noble/hashes/sha3.js'
import { type Address, type Hex, hashDomain, hashTypedData, sha256, type TypedDataDomain } from 'viem'
import { BaseError } from '../errors.ts'
import { keccak256 } from './keccak.ts'

/** Action and scope bits (docs/spec.md "Scope and action bits"): a grant's `scopes` is an OR of them; a request names one. */
export const Scope = {
  UNLOCK: 1,
  LOCK: 2,
  OPEN_TRUNK: 4,
  START: 8,
  OPEN_CHARGE_PORT: 16,
} as const

/** The name of one action bit. */
export type ActionName = keyof typeof Scope

/** Every defined bit; a grant naming any other bit is malformed. */
export const ALL_SCOPES = 31

/** What the title's ERC-4907 user (a renter) may do without a grant. */
export const RENTAL_SCOPES = Scope.UNLOCK | Scope.LOCK | Scope.START

/** bytes32 zero: the grantId of a renter's AccessRequest. */
export const ZERO_GRANT_ID: Hex = `0x${'0'.repeat(64)}`

/** The signed fields of a key, in their JSON form. */
export type KeyGrant = {
  vehicle: Address
  grantee: Address
  /** OR of {@link Scope} bits. */
  scopes: number
  /** Unix seconds, inclusive. */
  notBefore: number
  /** Unix seconds, inclusive. */
  notAfter: number
  /** 0 means unlimited. */
  maxUses: number
  /** The vehicle's KeyRegistry epoch the grant is valid for. */
  epoch: number
  grantId: Hex
  purpose: string
}

/** A grant and the owner's (or manager's) 65-byte signature over it. */
export type SignedGrant = { grant: KeyGrant; signature: Hex }

/**
 * A key whose grantee is a P-256 public key (a WebAuthn passkey, or a phone's secure-element key)
 * instead of an Ethereum address: the fields of a {@link KeyGrant} less `grantee`, plus the key
 * and the WebAuthn relying party it was made for.
 */
export type PasskeyGrant = Omit<KeyGrant, 'grantee'> & {
  /** The uncompressed SEC1 public key, `0x04‖X‖Y` (65 bytes), lowercase hex. */
  passkey: Hex
  /** The WebAuthn RP ID the passkey belongs to (a domain, e.g. `keys.example.com` or `localhost`). */
  rpId: string
}

/** A passkey grant and the owner's (or manager's) 65-byte signature over it. */
export type SignedPasskeyGrant = { grant: PasskeyGrant; signature: Hex }

/** Either kind of grant. */
export type AnyGrant = KeyGrant | PasskeyGrant
/** Either kind of signed grant. */
export type AnySignedGrant = { grant: AnyGrant; signature: Hex }

/** Whether a grant names a passkey (rather than an address) as its grantee. */
export function isPasskeyGrant(grant: AnyGrant): grant is PasskeyGrant {
  return 'passkey' in grant
}

/** Who a grant is made out to: the grantee address, or the passkey's public key. */
export function grantHolder(grant: AnyGrant): Hex {
  return isPasskeyGrant(grant) ? grant.passkey : grant.grantee
}

/** The grantee's (or renter's) request for one action, bound to the car's fresh challenge. */
export type AccessRequest = { grantId: Hex; action: number; challenge: Hex }

/** The EIP-712 domain of digital keys for a chain and its KeyRegistry. */
export type KeyDomain = { chainId: number; keyRegistry: Address }

/** EIP-712 struct definitions, field order exactly as docs/spec.md. */
export const keyTypes = {
  KeyGrant: [
    { name: 'vehicle', type: 'address' },
    { name: 'grantee', type: 'address' },
    { name: 'scopes', type: 'uint32' },
    { name: 'notBefore', type: 'uint64' },
    { name: 'notAfter', type: 'uint64' },
    { name: 'maxUses', type: 'uint32' },
    { name: 'epoch', type: 'uint64' },
    { name: 'grantId', type: 'bytes32' },
    { name: 'purpose', type: 'string' },
  ],
  AccessRequest: [
    { name: 'grantId', type: 'bytes32' },
    { name: 'action', type: 'uint32' },
    { name: 'challenge', type: 'bytes32' },
  ],
  // Its own primary type: a car that knows only KeyGrant can never read one as the other (its
  // type hash differs, so the signature recovers to nobody), and its wire form has two more fields.
  PasskeyGrant: [
    { name: 'vehicle', type: 'address' },
    { name: 'passkey', type: 'bytes' },
    { name: 'rpId', type: 'string' },
    { name: 'scopes', type: 'uint32' },
    { name: 'notBefore', type: 'uint64' },
    { name: 'notAfter', type: 'uint64' },
    { name: 'maxUses', type: 'uint32' },
    { name: 'epoch', type: 'uint64' },
    { name: 'grantId', type: 'bytes32' },
    { name: 'purpose', type: 'string' },
  ],
} as const

/** The viem domain object. */
export function typedDataDomain(domain: KeyDomain): TypedDataDomain {
  return { name: 'Carchain', version: '1', chainId: domain.chainId, verifyingContract: domain.keyRegistry }
}

/** The typed data of a grant, for viem's `signTypedData` / `hashTypedData`. */
export function grantTypedData(domain: KeyDomain, grant: KeyGrant) {
  return {
    domain: typedDataDomain(domain),
    types: { KeyGrant: keyTypes.KeyGrant },
    primaryType: 'KeyGrant' as const,
    // viem types uint64 as bigint; the values are the same
    message: {
      ...grant,
      notBefore: BigInt(grant.notBefore),
      notAfter: BigInt(grant.notAfter),
      epoch: BigInt(grant.epoch),
    },
  }
}

/** The typed data of a passkey grant, for viem's `signTypedData` / `hashTypedData`. */
export function passkeyGrantTypedData(domain: KeyDomain, grant: PasskeyGrant) {
  return {
    domain: typedDataDomain(domain),
    types: { PasskeyGrant: keyTypes.PasskeyGrant },
    primaryType: 'PasskeyGrant' as const,
    message: {
      ...grant,
      notBefore: BigInt(grant.notBefore),
      notAfter: BigInt(grant.notAfter),
      epoch: BigInt(grant.epoch),
    },
  }
}

/** The typed data of either kind of grant. */
export function anyGrantTypedData(domain: KeyDomain, grant: AnyGrant) {
  return isPasskeyGrant(grant) ? passkeyGrantTypedData(domain, grant) : grantTypedData(domain, grant)
}

/** The typed data of an access request, for viem's `signTypedData` / `hashTypedData`. */
export function accessRequestTypedData(domain: KeyDomain, request: AccessRequest) {
  return {
    domain: typedDataDomain(domain),
    types: { AccessRequest: keyTypes.AccessRequest },
    primaryType: 'AccessRequest' as const,
    message: request,
  }
}

const eip712DomainType = [
  { name: 'name', type: 'string' },
  { name: 'version', type: 'string' },
  { name: 'chainId', type: 'uint256' },
  { name: 'verifyingContract', type: 'address' },
] as const

/**
 * The full typed-data JSON a wallet or `cast wallet sign --data --from-file` signs (with the
 * `EIP712Domain` type spelled out, as eth_signTypedData_v4 expects).
 */
export function typedDataJson(
  domain: KeyDomain,
  primary: { KeyGrant: KeyGrant } | { PasskeyGrant: PasskeyGrant } | { AccessRequest: AccessRequest },
): Record<string, unknown> {
  const [primaryType, message] = Object.entries(primary)[0] as [keyof typeof keyTypes, unknown]
  return {
    types: { EIP712Domain: eip712DomainType, [primaryType]: keyTypes[primaryType] },
    primaryType,
    domain: typedDataDomain(domain),
    message,
  }
}

/** The EIP-712 digest of a grant of either kind (what its signer signed). */
export function hashGrant(domain: KeyDomain, grant: AnyGrant): Hex {
  return isPasskeyGrant(grant)
    ? hashTypedData(passkeyGrantTypedData(domain, grant))
    : hashTypedData(grantTypedData(domain, grant))
}

/** The EIP-712 digest of an access request, via viem (reference implementation). */
export function hashAccessRequest(domain: KeyDomain, request: AccessRequest): Hex {
  return hashTypedData(accessRequestTypedData(domain, request))
}

const ACCESS_REQUEST_TYPEHASH = keccak_256(
  new TextEncoder().encode('AccessRequest(bytes32 grantId,uint32 action,bytes32 challenge)'),
)

/**
 * A precomputed hasher of access requests for one domain: the car hashes one per attempt, so
 * the domain separator and type hash are computed once and the rest is two Keccak-256 calls
 * over fixed-size buffers (EIP-712 §encodeData: bytes32 and uint32 are each one 32-byte word),
 * with the unrolled permutation of keccak.ts.
 */
export function accessRequestHasher(
  domain: KeyDomain,
): (request: { grantId: Uint8Array; action: number; challenge: Uint8Array }) => Uint8Array {
  const separator = Buffer.from(
    hashDomain({
      domain: {
        name: 'Carchain',
        version: '1',
        chainId: BigInt(domain.chainId),
        verifyingContract: domain.keyRegistry,
      },
      types: { EIP712Domain: eip712DomainType },
    }).slice(2),
    'hex',
  )
  const struct = new Uint8Array(128)
  struct.set(ACCESS_REQUEST_TYPEHASH, 0)
  const view = new DataView(struct.buffer)
  const outer = new Uint8Array(66)
  outer[0] = 0x19
  outer[1] = 0x01
  outer.set(separator, 2)
  return ({ grantId, action, challenge }) => {
    struct.set(grantId, 32)
    struct.fill(0, 64, 96)
    view.setUint32(92, action >>> 0)
    struct.set(challenge, 96)
    outer.set(keccak256(struct), 34)
    return keccak256(outer)
  }
}

// ---------------------------------------------------------------------------------------------
// Strict JSON parsing

const addressPattern = /^0x[0-9a-fA-F]{40}$/
const bytes32Pattern = /^0x[0-9a-fA-F]{64}$/
const signaturePattern = /^0x[0-9a-fA-F]{130}$/
const grantKeys = [
  'epoch',
  'grantId',
  'grantee',
  'maxUses',
  'notAfter',
  'notBefore',
  'purpose',
  'scopes',
  'vehicle',
] as const

/** Longest `purpose` a car accepts (bytes of UTF-8): keeps link messages small. */
export const MAX_PURPOSE_BYTES = 256

function invalid(message: string, field: string, value?: unknown): BaseError {
  return new BaseError('INVALID_ARGUMENT', message, {
    details: { field, ...(value === undefined ? {} : { value: String(value).slice(0, 140) }) },
  })
}

/** An address from JSON, lowercased; INVALID_ARGUMENT naming `field` otherwise. */
export function parseAddress(value: unknown, field: string): Address {
  if (typeof value !== 'string' || !addressPattern.test(value))
    throw invalid(`${field} must be an address (0x + 40 hex)`, field, value)
  return value.toLowerCase() as Address
}

/** A bytes32 from JSON, lowercased. */
export function parseBytes32(value: unknown, field: string): Hex {
  if (typeof value !== 'string' || !bytes32Pattern.test(value))
    throw invalid(`${field} must be bytes32 (0x + 64 hex)`, field, value)
  return value.toLowerCase() as Hex
}

/** A 65-byte Ethereum signature r ‖ s ‖ v from JSON, lowercased. */
export function parseSignatureHex(value: unknown, field: string): Hex {
  if (typeof value !== 'string' || !signaturePattern.test(value))
    throw invalid(`${field} must be a 65-byte signature (0x + 130 hex)`, field, value)
  return value.toLowerCase() as Hex
}

function parseUint(value: unknown, field: string, bits: 32 | 64): number {
  const max = bits === 32 ? 0xffffffff : Number.MAX_SAFE_INTEGER
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > max)
    throw invalid(`${field} must be an integer from 0 to ${max}`, field, value)
  return value
}

/** An action from JSON: exactly one defined bit. */
export function parseAction(value: unknown, field = 'action'): number {
  const action = parseUint(value, field, 32)
  if (action === 0 || (action & (action - 1)) !== 0 || (action & ALL_SCOPES) !== action)
    throw invalid(`${field} must be one action bit (1, 2, 4, 8 or 16)`, field, value)
  return action
}

/**
 * A KeyGrant from JSON: exactly its nine fields with their types; `scopes` only defined bits,
 * `notBefore ≤ notAfter`. Throws INVALID_ARGUMENT naming the field.
 */
/** No Node built-ins in parsing: the dashboard checks the grants a node hands it with this too. */
const utf8 = new TextEncoder()

export function parseGrant(value: unknown): KeyGrant {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw invalid('a grant must be a JSON object', 'grant')
  const record = value as Record<string, unknown>
  const keys = Object.keys(record).sort()
  if (keys.length !== grantKeys.length || keys.some((key, i) => key !== grantKeys[i]))
    throw new BaseError('INVALID_ARGUMENT', `a grant has exactly the fields ${grantKeys.join(', ')}`, {
      details: { field: 'grant', keys: keys.slice(0, 20) },
    })
  const scopes = parseUint(record.scopes, 'grant.scopes', 32)
  if ((scopes & ALL_SCOPES) !== scopes)
    throw invalid('grant.scopes has undefined bits', 'grant.scopes', scopes)
  const purpose = record.purpose
  // Well-formed Unicode only: a lone surrogate has no UTF-8 form, so the car could not record
  // the attempt (JCS refuses it) and EIP-712 would hash a different string than the one shown.
  if (
    typeof purpose !== 'string' ||
    utf8.encode(purpose).length > MAX_PURPOSE_BYTES ||
    !purpose.isWellFormed()
  )
    throw invalid(
      `grant.purpose must be well-formed Unicode of at most ${MAX_PURPOSE_BYTES} bytes`,
      'grant.purpose',
    )
  const grant: KeyGrant = {
    vehicle: parseAddress(record.vehicle, 'grant.vehicle'),
    grantee: parseAddress(record.grantee, 'grant.grantee'),
    scopes,
    notBefore: parseUint(record.notBefore, 'grant.notBefore', 64),
    notAfter: parseUint(record.notAfter, 'grant.notAfter', 64),
    maxUses: parseUint(record.maxUses, 'grant.maxUses', 32),
    epoch: parseUint(record.epoch, 'grant.epoch', 64),
    grantId: parseBytes32(record.grantId, 'grant.grantId'),
    purpose,
  }
  if (grant.notBefore > grant.notAfter)
    throw invalid('grant.notBefore is after grant.notAfter', 'grant.notBefore', grant.notBefore)
  return grant
}

/** `{grant, signature}` from JSON (a grant file). */
export function parseSignedGrant(value: unknown): SignedGrant {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw invalid('a signed grant must be a JSON object {grant, signature}', 'signedGrant')
  const record = value as Record<string, unknown>
  return { grant: parseGrant(record.grant), signature: parseSignatureHex(record.signature, 'signature') }
}

const passkeyGrantKeys = [
  'epoch',
  'grantId',
  'maxUses',
  'notAfter',
  'notBefore',
  'passkey',
  'purpose',
  'rpId',
  'scopes',
  'vehicle',
] as const

const passkeyPattern = /^0x04[0-9a-fA-F]{128}$/
// A WebAuthn RP ID is a domain (no scheme, port or path): lowercase labels of letters, digits
// and hyphens, at most 253 characters.
const rpIdPattern = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/

/** An uncompressed P-256 public key from JSON (`0x04‖X‖Y`), lowercased; the point is not checked here. */
export function parsePasskey(value: unknown, field: string): Hex {
  if (typeof value !== 'string' || !passkeyPattern.test(value))
    throw invalid(`${field} must be an uncompressed P-256 public key (0x04 + 128 hex)`, field, value)
  return value.toLowerCase() as Hex
}

/**
 * A passkey's fingerprint, for people to compare: the owner's console shows it beside each passkey
 * grant and the key app beside each passkey it made. SHA-256 of the 65-byte uncompressed P-256 key,
 * its first 8 bytes as four colon-separated groups of hex (`1a2b:3c4d:5e6f:7081`). A display aid,
 * not an identifier: grants name the whole key.
 */
export function passkeyFingerprint(passkey: Hex): string {
  const digest = sha256(parsePasskey(passkey, 'passkey'))
  return (digest.slice(2, 18).match(/.{4}/g) ?? []).join(':')
}

/**
 * A PasskeyGrant from JSON: exactly its ten fields (the nine of a KeyGrant less `grantee`, plus
 * `passkey` and `rpId`), checked as {@link parseGrant} checks the shared ones.
 */
export function parsePasskeyGrant(value: unknown): PasskeyGrant {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw invalid('a grant must be a JSON object', 'grant')
  const record = value as Record<string, unknown>
  const keys = Object.keys(record).sort()
  if (keys.length !== passkeyGrantKeys.length || keys.some((key, i) => key !== passkeyGrantKeys[i]))
    throw new BaseError(
      'INVALID_ARGUMENT',
      `a passkey grant has exactly the fields ${passkeyGrantKeys.join(', ')}`,
      { details: { field: 'grant', keys: keys.slice(0, 20) } },
    )
  if (typeof record.rpId !== 'string' || !rpIdPattern.test(record.rpId))
    throw invalid('grant.rpId must be a lowercase domain name', 'grant.rpId', record.rpId)
  // The shared fields, checked by the one parser of them (a placeholder grantee is dropped again).
  const { passkey, rpId, ...rest } = record
  const { grantee: _, ...shared } = parseGrant({ ...rest, grantee: `0x${'0'.repeat(40)}` })
  return { ...shared, passkey: parsePasskey(passkey, 'grant.passkey'), rpId: rpId as string }
}

/** A grant of either kind from JSON: a passkey grant when it has a `passkey` field. */
export function parseAnyGrant(value: unknown): AnyGrant {
  const isPasskey = typeof value === 'object' && value !== null && 'passkey' in value
  return isPasskey ? parsePasskeyGrant(value) : parseGrant(value)
}

/** `{grant, signature}` of either kind from JSON. */
export function parseAnySignedGrant(value: unknown): AnySignedGrant {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw invalid('a signed grant must be a JSON object {grant, signature}', 'signedGrant')
  const record = value as Record<string, unknown>
  const grant = parseAnyGrant(record.grant)
  const signature = parseSignatureHex(record.signature, 'signature')
  return { grant, signature }
}

/** A stable string of a grant's fields, for cache keys (cheaper than hashing it). */
export function grantCacheKey(grant: KeyGrant, signature: Hex): string {
  return `${signature}|${grant.vehicle}|${grant.grantee}|${grant.scopes}|${grant.notBefore}|${grant.notAfter}|${grant.maxUses}|${grant.epoch}|${grant.grantId}|${grant.purpose}`
}

/** Names of the bits set in `scopes`, e.g. `["UNLOCK","LOCK"]`. */
export function scopeNames(scopes: number): ActionName[] {
  return (Object.keys(Scope) as ActionName[]).filter((name) => (scopes & Scope[name]) !== 0)
}

/** Parses `UNLOCK|LOCK`, `unlock,start` or a number into scope bits. */
export function parseScopes(text: string): number {
  if (/^\d+$/.test(text)) {
    const value = Number(text)
    if ((value & ALL_SCOPES) !== value || value === 0)
      throw invalid('scopes has undefined bits', 'scopes', text)
    return value
  }
  let bits = 0
  for (const word of text.split(/[|,+\s]+/).filter(Boolean)) {
    const name = word.toUpperCase().replace(/-/g, '_') as ActionName
    if (!(name in Scope)) throw invalid(`unknown scope "${word}"`, 'scopes', text)
    bits |= Scope[name]
  }
  if (bits === 0) throw invalid('no scope named', 'scopes', text)
  return bits
}

/** Parses one action name (`unlock`, `OPEN_TRUNK`) or bit into its bit. */
export function parseActionName(text: string): number {
  const bits = parseScopes(text)
  return parseAction(bits)
}
