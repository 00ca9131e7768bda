/**
 * Sharing a signed key: the grant file (`SharedKey` as JSON) and the share link / QR payload
 * `carchain-key:<base64url of that JSON>`. One codec for Node (the CLI, the library) and the
 * browser (the dashboard, web/src): no Node built-ins here, base64url by `btoa`/`atob`.
 */
import type { Address, Hex } from 'viem'
import { BaseError } from '../errors.ts'
import {
  type AnyGrant,
  type AnySignedGrant,
  type KeyDomain,
  parseAddress,
  parseAnyGrant,
  parseSignatureHex,
} from './typed-data.ts'

/**
 * What a grantee needs: the domain (to sign requests) and the signed grant, a KeyGrant or a
 * PasskeyGrant (docs/keys.md).
 */
export type SharedKey = { chainId: number; keyRegistry: Address; grant: AnyGrant; signature: Hex }

/** The prefix of a share link. */
export const SHARE_LINK_PREFIX = 'carchain-key:'

/** The JSON form of a shared key (a grant file). */
export function sharedKey(domain: KeyDomain, signed: AnySignedGrant): SharedKey {
  return { chainId: domain.chainId, keyRegistry: domain.keyRegistry, ...signed }
}

/** `carchain-key:<base64url of the shared key's JSON>` — short enough for one QR code. */
export function encodeShareLink(domain: KeyDomain, signed: AnySignedGrant): string {
  return SHARE_LINK_PREFIX + toBase64Url(new TextEncoder().encode(JSON.stringify(sharedKey(domain, signed))))
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
    grant: parseAnyGrant(record.grant),
    signature: parseSignatureHex(record.signature, 'signature'),
  }
}

/** Parses a share link, or a grant file's text (JSON). */
export function decodeShareLink(text: string): SharedKey {
  const trimmed = text.trim()
  let json: unknown
  try {
    json = trimmed.startsWith(SHARE_LINK_PREFIX)
      ? JSON.parse(
          new TextDecoder('utf-8', { fatal: true }).decode(
            fromBase64Url(trimmed.slice(SHARE_LINK_PREFIX.length)),
          ),
        )
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

/** RFC 4648 §5 base64url without padding. */
export function toBase64Url(bytes: Uint8Array): string {
  let binary = ''
  for (const byte of bytes) binary += String.fromCharCode(byte)
  return btoa(binary).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '')
}

/** The bytes of base64url text (padding optional); throws on any other character. */
export function fromBase64Url(text: string): Uint8Array {
  if (!/^[A-Za-z0-9_-]*={0,2}$/.test(text)) throw new SyntaxError('not base64url')
  const bare = text.replace(/=+$/, '')
  const binary = atob(
    bare.replaceAll('-', '+').replaceAll('_', '/') + '='.repeat((4 - (bare.length % 4)) % 4),
  )
  return Uint8Array.from(binary, (char) => char.charCodeAt(0))
}
