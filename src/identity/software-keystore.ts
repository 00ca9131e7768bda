/**
 * The development key store: one Ethereum keystore v3 file per key in a directory
 * (`<dir>/<label>.json`), encrypted with a passphrase — scrypt KDF, AES-128-CTR, Keccak-256 MAC,
 * as geth and every Ethereum wallet read it. Carchain adds a `carchain` member (label, curve,
 * public key) so P-256 keys fit the same format and a key can be described without the passphrase.
 *
 * Keys are decrypted on first use and kept in memory until `close()`; that is the weakness a
 * secure element removes, which is why this backend is for development only.
 */
import {
  createCipheriv,
  createDecipheriv,
  randomBytes,
  randomUUID,
  scrypt,
  timingSafeEqual,
} from 'node:crypto'
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { p256 } from '@noble/curves/nist.js'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { keccak_256 } from '@noble/hashes/sha3.js'
import type { Address } from 'viem'
import { BaseError } from '../errors.ts'
import {
  assertDigest,
  assertLabel,
  type Curve,
  ethereumAddressOfKey,
  type KeyInfo,
  type KeyRef,
  type KeyStore,
} from './keystore.ts'

/** scrypt cost parameters. geth's "standard" is N=2^18; the default here (2^15) unlocks in ~0.1 s. */
export type ScryptParams = { readonly n: number; readonly r: number; readonly p: number }

export const DEFAULT_SCRYPT: ScryptParams = { n: 2 ** 15, r: 8, p: 1 }

export type SoftwareKeyStoreOptions = {
  /** Directory holding the `<label>.json` files (created if missing). */
  readonly dir: string
  /** Passphrase that encrypts every key in the directory. */
  readonly passphrase: string
  /** KDF cost for new keys; existing files carry their own. */
  readonly scrypt?: ScryptParams
}

/** The keystore v3 JSON, with Carchain's `carchain` member. */
export type KeystoreV3File = {
  version: 3
  id: string
  /** Ethereum address without 0x (secp256k1 keys only). */
  address?: string
  crypto: {
    cipher: 'aes-128-ctr'
    cipherparams: { iv: string }
    ciphertext: string
    kdf: 'scrypt'
    kdfparams: { dklen: 32; n: number; r: number; p: number; salt: string }
    mac: string
  }
  carchain: { label: string; curve: Curve; publicKey: string }
}

const REF_PREFIX = 'keystore:'

const curves = { p256, secp256k1 } as const

function deriveKey(passphrase: string, salt: Buffer, params: ScryptParams): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(
      passphrase.normalize('NFKC'),
      salt,
      32,
      { N: params.n, r: params.r, p: params.p, maxmem: 256 * params.n * params.r + 1024 * 1024 },
      (error, key) => (error ? reject(error) : resolve(key)),
    ),
  )
}

function mac(derived: Buffer, ciphertext: Buffer): Buffer {
  return Buffer.from(keccak_256(Buffer.concat([derived.subarray(16, 32), ciphertext])))
}

/** Encrypts a 32-byte secret into a keystore v3 file. */
export async function encryptKeystore(
  secret: Uint8Array,
  passphrase: string,
  meta: { label: string; curve: Curve; publicKey: Uint8Array; address?: Address },
  params: ScryptParams = DEFAULT_SCRYPT,
): Promise<KeystoreV3File> {
  const salt = randomBytes(32)
  const iv = randomBytes(16)
  const derived = await deriveKey(passphrase, salt, params)
  const cipher = createCipheriv('aes-128-ctr', derived.subarray(0, 16), iv)
  const ciphertext = Buffer.concat([cipher.update(secret), cipher.final()])
  return {
    version: 3,
    id: randomUUID(),
    ...(meta.address ? { address: meta.address.slice(2).toLowerCase() } : {}),
    crypto: {
      cipher: 'aes-128-ctr',
      cipherparams: { iv: iv.toString('hex') },
      ciphertext: ciphertext.toString('hex'),
      kdf: 'scrypt',
      kdfparams: { dklen: 32, n: params.n, r: params.r, p: params.p, salt: salt.toString('hex') },
      mac: mac(derived, ciphertext).toString('hex'),
    },
    carchain: {
      label: meta.label,
      curve: meta.curve,
      publicKey: Buffer.from(meta.publicKey).toString('hex'),
    },
  }
}

/** Decrypts a keystore v3 file; KEYSTORE_LOCKED when the passphrase is wrong (MAC mismatch). */
export async function decryptKeystore(file: KeystoreV3File, passphrase: string): Promise<Uint8Array> {
  const { crypto } = file
  if (crypto?.kdf !== 'scrypt' || crypto.cipher !== 'aes-128-ctr')
    throw new BaseError('KEYSTORE_CORRUPT', 'only scrypt + aes-128-ctr keystores are supported', {
      details: { kdf: crypto?.kdf, cipher: crypto?.cipher },
    })
  const { n, r, p, salt } = crypto.kdfparams
  const derived = await deriveKey(passphrase, Buffer.from(salt, 'hex'), { n, r, p })
  const ciphertext = Buffer.from(crypto.ciphertext, 'hex')
  const expected = Buffer.from(crypto.mac, 'hex')
  const actual = mac(derived, ciphertext)
  if (expected.length !== actual.length || !timingSafeEqual(expected, actual))
    throw new BaseError('KEYSTORE_LOCKED', 'wrong passphrase for the key store (MAC mismatch)', {
      details: { label: file.carchain?.label },
    })
  const decipher = createDecipheriv(
    'aes-128-ctr',
    derived.subarray(0, 16),
    Buffer.from(crypto.cipherparams.iv, 'hex'),
  )
  return Uint8Array.from(Buffer.concat([decipher.update(ciphertext), decipher.final()]))
}

/** The software backend of `KeyStore`. */
export class SoftwareKeyStore implements KeyStore {
  readonly kind = 'software' as const
  readonly dir: string
  readonly #passphrase: string
  readonly #scrypt: ScryptParams
  readonly #secrets = new Map<string, Promise<Uint8Array>>()

  constructor(options: SoftwareKeyStoreOptions) {
    this.dir = options.dir
    this.#passphrase = options.passphrase
    this.#scrypt = options.scrypt ?? DEFAULT_SCRYPT
  }

  async generate(curve: Curve, label: string): Promise<KeyRef> {
    assertLabel(label)
    const impl = curves[curve]
    if (!impl) throw new BaseError('INVALID_ARGUMENT', `unknown curve "${curve}"`, { details: { curve } })
    const secret = impl.utils.randomSecretKey()
    const publicKey = impl.getPublicKey(secret, false)
    const ref = REF_PREFIX + label
    const meta = { label, curve, publicKey }
    const address = curve === 'secp256k1' ? ethereumAddressOfKey({ ref, label, curve, publicKey }) : undefined
    const file = await encryptKeystore(secret, this.#passphrase, { ...meta, address }, this.#scrypt)
    await mkdir(this.dir, { recursive: true, mode: 0o700 })
    try {
      await writeFile(this.#path(label), `${JSON.stringify(file, null, 2)}\n`, { flag: 'wx', mode: 0o600 })
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST')
        throw new BaseError('KEYSTORE_CORRUPT', `a key labelled "${label}" already exists`, {
          details: { label },
        })
      throw error
    }
    this.#secrets.set(label, Promise.resolve(secret))
    return ref
  }

  async describe(ref: KeyRef): Promise<KeyInfo> {
    const file = await this.#read(ref)
    const { label, curve, publicKey } = file.carchain
    return { ref, label, curve, publicKey: Uint8Array.from(Buffer.from(publicKey, 'hex')) }
  }

  async publicKey(ref: KeyRef): Promise<Uint8Array> {
    return (await this.describe(ref)).publicKey
  }

  async ethereumAddress(ref: KeyRef): Promise<Address> {
    return ethereumAddressOfKey(await this.describe(ref))
  }

  async find(label: string): Promise<KeyRef | undefined> {
    let names: string[]
    try {
      names = await readdir(this.dir)
    } catch {
      return undefined
    }
    return names.includes(`${label}.json`) ? REF_PREFIX + label : undefined
  }

  async signDigest(ref: KeyRef, digest: Uint8Array): Promise<Uint8Array> {
    assertDigest(digest)
    const info = await this.describe(ref)
    const secret = await this.#unlock(ref)
    // prehash: false — the caller hashed; lowS: always for secp256k1 (EIP-2), harmless for P-256.
    return curves[info.curve].sign(digest, secret, { prehash: false, lowS: info.curve === 'secp256k1' })
  }

  /**
   * The P-256 private key as a KeyObject for node:tls, which cannot sign through a callback.
   * Software backend only (see docs/identity.md, "TLS and secure elements").
   */
  async tlsPrivateKey(ref: KeyRef): Promise<import('node:crypto').KeyObject> {
    const { createPrivateKey } = await import('node:crypto')
    const info = await this.describe(ref)
    if (info.curve !== 'p256')
      throw new BaseError('INVALID_ARGUMENT', 'TLS keys are P-256', { details: { ref, curve: info.curve } })
    const secret = await this.#unlock(ref)
    const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64url')
    return createPrivateKey({
      format: 'jwk',
      key: {
        kty: 'EC',
        crv: 'P-256',
        d: b64(secret),
        x: b64(info.publicKey.subarray(1, 33)),
        y: b64(info.publicKey.subarray(33, 65)),
      },
    })
  }

  async close(): Promise<void> {
    for (const pending of this.#secrets.values()) (await pending.catch(() => undefined))?.fill(0)
    this.#secrets.clear()
  }

  #labelOf(ref: KeyRef): string {
    if (!ref.startsWith(REF_PREFIX))
      throw new BaseError('KEY_NOT_FOUND', `"${ref}" is not a software key store reference`, {
        details: { ref },
      })
    const label = ref.slice(REF_PREFIX.length)
    assertLabel(label)
    return label
  }

  #path(label: string): string {
    return join(this.dir, `${label}.json`)
  }

  async #read(ref: KeyRef): Promise<KeystoreV3File> {
    const label = this.#labelOf(ref)
    let text: string
    try {
      text = await readFile(this.#path(label), 'utf8')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT')
        throw new BaseError('KEY_NOT_FOUND', `no key "${label}" in ${this.dir}`, { details: { ref } })
      throw new BaseError('KEYSTORE_CORRUPT', `cannot read key "${label}"`, {
        details: { ref },
        cause: error,
      })
    }
    try {
      const file = JSON.parse(text) as KeystoreV3File
      if (file.version !== 3 || !file.carchain || !(file.carchain.curve in curves))
        throw new TypeError('shape')
      return file
    } catch (error) {
      throw new BaseError('KEYSTORE_CORRUPT', `key file "${label}.json" is not a Carchain keystore v3 file`, {
        details: { ref },
        cause: error,
      })
    }
  }

  #unlock(ref: KeyRef): Promise<Uint8Array> {
    const label = this.#labelOf(ref)
    let pending = this.#secrets.get(label)
    if (!pending) {
      pending = this.#read(ref).then((file) => decryptKeystore(file, this.#passphrase))
      // A failed unlock (wrong passphrase) must not be cached.
      pending.catch(() => this.#secrets.delete(label))
      this.#secrets.set(label, pending)
    }
    return pending
  }
}
