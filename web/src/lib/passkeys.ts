/**
 * Passkeys of this browser (WebAuthn, ES256): made with `navigator.credentials.create` for this
 * site's RP ID, kept as {credential id, public key} in local storage (the private key never leaves
 * the authenticator), and used with `navigator.credentials.get` to answer a car's challenge
 * (docs/keys.md "Passkey keys").
 */
import { fromBase64Url, toBase64Url } from '../../../src/keys/share-link.ts'
import { toHex } from './hex.ts'

export type StoredPasskey = {
  /** base64url credential id. */
  id: string
  /** `0x04‖X‖Y`, what the owner puts in the PasskeyGrant. */
  publicKey: `0x${string}`
  rpId: string
  name: string
  createdAt: number
}

const STORAGE_KEY = 'carchain.passkeys'

export function loadPasskeys(): StoredPasskey[] {
  try {
    const parsed = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? '[]') as StoredPasskey[]
    return Array.isArray(parsed) ? parsed : []
  } catch {
    return []
  }
}

function savePasskeys(passkeys: StoredPasskey[]): void {
  localStorage.setItem(STORAGE_KEY, JSON.stringify(passkeys))
}

/** The page's RP ID: its host name (WebAuthn refuses IP addresses; use `localhost` or a domain). */
export function pageRpId(): string {
  return window.location.hostname
}

/** Makes a new passkey on this device and keeps its id and public key. */
export async function createPasskey(name: string): Promise<StoredPasskey> {
  if (!window.PublicKeyCredential) throw new Error('this browser has no passkeys (WebAuthn)')
  const rpId = pageRpId()
  const credential = (await navigator.credentials.create({
    publicKey: {
      rp: { id: rpId, name: 'Carchain key' },
      user: { id: crypto.getRandomValues(new Uint8Array(16)), name, displayName: name },
      challenge: crypto.getRandomValues(new Uint8Array(32)),
      pubKeyCredParams: [{ type: 'public-key', alg: -7 }], // ES256: P-256, what the car verifies
      authenticatorSelection: { residentKey: 'preferred', userVerification: 'required' },
      attestation: 'none',
      timeout: 60_000,
    },
  })) as PublicKeyCredential | null
  if (!credential) throw new Error('no passkey was made')
  const response = credential.response as AuthenticatorAttestationResponse
  const spki = response.getPublicKey()
  if (!spki || response.getPublicKeyAlgorithm() !== -7)
    throw new Error('the authenticator did not make a P-256 (ES256) key')
  // An uncompressed P-256 key's SubjectPublicKeyInfo ends with its 65 bytes 04‖X‖Y.
  const point = new Uint8Array(spki).slice(-65)
  if (point[0] !== 4) throw new Error('unexpected public key encoding')
  const stored: StoredPasskey = {
    id: toBase64Url(new Uint8Array(credential.rawId)),
    publicKey: toHex(point) as `0x${string}`,
    rpId,
    name,
    createdAt: Date.now(),
  }
  savePasskeys([stored, ...loadPasskeys()])
  return stored
}

/** The bytes in an ArrayBuffer of their own (what WebAuthn takes). */
const bufferOf = (bytes: Uint8Array): ArrayBuffer => new Uint8Array(bytes).buffer

/** The assertion of `passkey` over a WebAuthn challenge (base64url), as the link carries it. */
export async function assertWithPasskey(passkey: StoredPasskey, challenge: string) {
  const credential = (await navigator.credentials.get({
    publicKey: {
      challenge: bufferOf(fromBase64Url(challenge)),
      rpId: passkey.rpId,
      allowCredentials: [{ type: 'public-key', id: bufferOf(fromBase64Url(passkey.id)) }],
      userVerification: 'required',
      timeout: 30_000,
    },
  })) as PublicKeyCredential | null
  if (!credential) throw new Error('the passkey did not answer')
  const response = credential.response as AuthenticatorAssertionResponse
  return {
    authenticatorData: toBase64Url(new Uint8Array(response.authenticatorData)),
    clientDataJSON: toBase64Url(new Uint8Array(response.clientDataJSON)),
    signature: toBase64Url(new Uint8Array(response.signature)),
  }
}
