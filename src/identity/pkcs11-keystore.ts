/**
 * The PKCS#11 backend of `KeyStore`: keys are generated inside an HSM or secure element
 * (CKM_EC_KEY_PAIR_GEN) as sensitive, non-extractable token objects and used through CKM_ECDSA,
 * which signs a digest the caller computed. SoftHSM2 stands in for the car's secure element in
 * tests; a car maker points `module` at its vendor's PKCS#11 library (docs/identity.md).
 *
 * A session is not safe for concurrent operations (PKCS#11 v2.40 §5.6), so every call on the
 * token runs through one queue.
 */
import { randomBytes } from 'node:crypto'
import pkcs11js from 'pkcs11js'
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
  normaliseLowS,
} from './keystore.ts'

export type Pkcs11KeyStoreOptions = {
  /** Path of the vendor's PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so. */
  readonly module: string
  /** The slot ID as the module reports it (`pkcs11-tool -L`), or, if no slot has that ID, its index. */
  readonly slot: number
  /** The token's user PIN. */
  readonly pin: string
}

/** DER-encoded named-curve OIDs for CKA_EC_PARAMS. */
const EC_PARAMS: Record<Curve, Buffer> = {
  // 1.2.840.10045.3.1.7 prime256v1
  p256: Buffer.from('06082a8648ce3d030107', 'hex'),
  // 1.3.132.0.10 secp256k1
  secp256k1: Buffer.from('06052b8104000a', 'hex'),
}

/**
 * Ed25519 on a token (PKCS#11 3.0; pkcs11js names none of these): key type CKK_EC_EDWARDS, made
 * by CKM_EC_EDWARDS_KEY_PAIR_GEN, signing with CKM_EDDSA (pure Ed25519 without parameters).
 */
const CKK_EC_EDWARDS = 0x40
const CKM_EC_EDWARDS_KEY_PAIR_GEN = 0x1055
const CKM_EDDSA = 0x1057
/** CKA_EC_PARAMS of Ed25519: the OID 1.3.101.112 (RFC 8410), or the printable string "edwards25519". */
const ED25519_PARAMS = Buffer.from('06032b6570', 'hex')
const ED25519_PARAMS_NAMED = Buffer.from(`130c${Buffer.from('edwards25519').toString('hex')}`, 'hex')

/** An Ed25519 key on the token, signing synchronously on a session of its own. */
export type Pkcs11Ed25519Key = {
  readonly ref: KeyRef
  /** The raw 32-byte public key (CKA_EC_POINT). */
  readonly publicKey: Uint8Array
  /** Whether this call made the key. */
  readonly created: boolean
  /** The 64-byte Ed25519 signature of `message` (C_Sign, CKM_EDDSA). */
  sign(message: Uint8Array): Uint8Array
}

/** One loaded module per path: C_Initialize is process-wide, so stores share it and count users. */
const loaded = new Map<string, { lib: pkcs11js.PKCS11; users: number }>()

function pkcs11Error(action: string, error: unknown): BaseError {
  if (error instanceof BaseError) return error
  const code = (error as { code?: number }).code
  const locked = code === pkcs11js.CKR_PIN_INCORRECT || code === pkcs11js.CKR_PIN_LOCKED
  return new BaseError(
    locked ? 'KEYSTORE_LOCKED' : 'PKCS11_FAILED',
    `PKCS#11 ${action}: ${(error as Error).message}`,
    {
      details: { action, ...(code === undefined ? {} : { ckr: code }) },
      cause: error,
    },
  )
}

function pct(value: string): string {
  return value.replace(/[^A-Za-z0-9._~-]/g, (c) =>
    Array.from(Buffer.from(c, 'utf8'), (b) => `%${b.toString(16).padStart(2, '0').toUpperCase()}`).join(''),
  )
}

/** Parses the `object=` attribute of an RFC 7512 PKCS#11 URI. */
export function labelOfPkcs11Uri(ref: KeyRef): string {
  const match = /^pkcs11:(.*)$/.exec(ref)
  const attribute = match?.[1]?.split(';').find((part) => part.startsWith('object='))
  if (!attribute)
    throw new BaseError('KEY_NOT_FOUND', `"${ref}" is not a PKCS#11 key reference`, { details: { ref } })
  return decodeURIComponent(attribute.slice('object='.length))
}

/** Strips the DER OCTET STRING wrapper from CKA_EC_POINT (PKCS#11 v2.40 says DER; some tokens send raw). */
export function unwrapEcPoint(value: Buffer): Uint8Array {
  if (value.length === 65 && value[0] === 0x04) return Uint8Array.from(value)
  if (value[0] === 0x04 && value[1] === 65 && value.length === 67) return Uint8Array.from(value.subarray(2))
  if (value[0] === 0x04 && value[1] === 0x81 && value[2] === 65 && value.length === 68)
    return Uint8Array.from(value.subarray(3))
  throw new BaseError('KEYSTORE_CORRUPT', 'CKA_EC_POINT is not an uncompressed point', {
    details: { length: value.length },
  })
}

function findObject(
  lib: pkcs11js.PKCS11,
  session: Buffer,
  label: string,
  objectClass: number,
): Buffer | null {
  lib.C_FindObjectsInit(session, [
    { type: pkcs11js.CKA_CLASS, value: objectClass },
    { type: pkcs11js.CKA_LABEL, value: label },
  ])
  try {
    return lib.C_FindObjects(session)
  } finally {
    lib.C_FindObjectsFinal(session)
  }
}

export class Pkcs11KeyStore implements KeyStore {
  readonly kind = 'pkcs11' as const
  readonly #lib: pkcs11js.PKCS11
  readonly #modulePath: string
  readonly #session: Buffer
  readonly #tokenLabel: string
  readonly #slot: Buffer
  /** Sessions of Ed25519 keys (`ed25519Key`), closed with the store. */
  readonly #ownSessions: Buffer[] = []
  #queue: Promise<unknown> = Promise.resolve()
  #closed = false

  private constructor(
    lib: pkcs11js.PKCS11,
    modulePath: string,
    slot: Buffer,
    session: Buffer,
    tokenLabel: string,
  ) {
    this.#lib = lib
    this.#slot = slot
    this.#modulePath = modulePath
    this.#session = session
    this.#tokenLabel = tokenLabel
  }

  /** Loads the module, opens a read-write session on the slot and logs in as user. */
  static async open(options: Pkcs11KeyStoreOptions): Promise<Pkcs11KeyStore> {
    let entry = loaded.get(options.module)
    if (!entry) {
      const lib = new pkcs11js.PKCS11()
      try {
        lib.load(options.module)
        lib.C_Initialize()
      } catch (error) {
        if ((error as { code?: number }).code !== pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED)
          throw pkcs11Error(`loading ${options.module}`, error)
      }
      entry = { lib, users: 0 }
      loaded.set(options.module, entry)
    }
    const { lib } = entry
    entry.users += 1
    try {
      const slots = lib.C_GetSlotList(true)
      const slot =
        slots.find((s) => s.readBigUInt64LE(0) === BigInt(options.slot)) ??
        (options.slot >= 0 && options.slot < slots.length ? slots[options.slot] : undefined)
      if (!slot)
        throw new BaseError('PKCS11_FAILED', `no token in slot ${options.slot}`, {
          details: { slot: options.slot, slots: slots.map((s) => s.readBigUInt64LE(0).toString()) },
        })
      const tokenLabel = lib.C_GetTokenInfo(slot).label.trim()
      const session = lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION)
      try {
        lib.C_Login(session, pkcs11js.CKU_USER, options.pin)
      } catch (error) {
        if ((error as { code?: number }).code !== pkcs11js.CKR_USER_ALREADY_LOGGED_IN) {
          lib.C_CloseSession(session)
          throw error
        }
      }
      return new Pkcs11KeyStore(lib, options.module, slot, session, tokenLabel)
    } catch (error) {
      Pkcs11KeyStore.#release(options.module)
      throw pkcs11Error('opening the token', error)
    }
  }

  static #release(modulePath: string): void {
    const entry = loaded.get(modulePath)
    if (!entry) return
    entry.users -= 1
    if (entry.users > 0) return
    loaded.delete(modulePath)
    try {
      entry.lib.C_Finalize()
      entry.lib.close()
    } catch {
      // finalising a module that failed to initialise; nothing left to release
    }
  }

  async generate(curve: Curve, label: string): Promise<KeyRef> {
    assertLabel(label)
    if (!(curve in EC_PARAMS))
      throw new BaseError('INVALID_ARGUMENT', `unknown curve "${curve}"`, { details: { curve } })
    return this.#run('generating a key', async () => {
      if (this.#findObject(label, pkcs11js.CKO_PRIVATE_KEY))
        throw new BaseError('KEYSTORE_CORRUPT', `a key labelled "${label}" already exists on the token`, {
          details: { label },
        })
      const id = randomBytes(16)
      const common = [
        { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_EC },
        { type: pkcs11js.CKA_TOKEN, value: true },
        { type: pkcs11js.CKA_LABEL, value: label },
        { type: pkcs11js.CKA_ID, value: id },
      ]
      await this.#lib.C_GenerateKeyPairAsync(
        this.#session,
        { mechanism: pkcs11js.CKM_EC_KEY_PAIR_GEN },
        [
          ...common,
          { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY },
          { type: pkcs11js.CKA_VERIFY, value: true },
          { type: pkcs11js.CKA_EC_PARAMS, value: EC_PARAMS[curve] },
        ],
        [
          ...common,
          { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
          { type: pkcs11js.CKA_PRIVATE, value: true },
          { type: pkcs11js.CKA_SIGN, value: true },
          { type: pkcs11js.CKA_SENSITIVE, value: true },
          { type: pkcs11js.CKA_EXTRACTABLE, value: false },
        ],
      )
      return this.#refOf(label)
    })
  }

  async describe(ref: KeyRef): Promise<KeyInfo> {
    const label = labelOfPkcs11Uri(ref)
    return this.#run('reading a public key', async () => {
      const handle = this.#findObject(label, pkcs11js.CKO_PUBLIC_KEY)
      if (!handle)
        throw new BaseError('KEY_NOT_FOUND', `no key "${label}" on the token`, { details: { ref } })
      const [params, point] = this.#lib.C_GetAttributeValue(this.#session, handle, [
        { type: pkcs11js.CKA_EC_PARAMS },
        { type: pkcs11js.CKA_EC_POINT },
      ])
      const curve = (Object.keys(EC_PARAMS) as Curve[]).find((c) => params?.value.equals(EC_PARAMS[c]))
      if (!curve || !point)
        throw new BaseError('KEYSTORE_CORRUPT', `key "${label}" is not on a supported curve`, {
          details: { ref },
        })
      return { ref: this.#refOf(label), label, curve, publicKey: unwrapEcPoint(point.value) }
    })
  }

  async publicKey(ref: KeyRef): Promise<Uint8Array> {
    return (await this.describe(ref)).publicKey
  }

  async ethereumAddress(ref: KeyRef): Promise<Address> {
    return ethereumAddressOfKey(await this.describe(ref))
  }

  async find(label: string): Promise<KeyRef | undefined> {
    assertLabel(label)
    return this.#run('finding a key', async () =>
      this.#findObject(label, pkcs11js.CKO_PRIVATE_KEY) ? this.#refOf(label) : undefined,
    )
  }

  async signDigest(ref: KeyRef, digest: Uint8Array): Promise<Uint8Array> {
    assertDigest(digest)
    const info = await this.describe(ref)
    const signature = await this.#run('signing', async () => {
      const handle = this.#findObject(info.label, pkcs11js.CKO_PRIVATE_KEY)
      if (!handle)
        throw new BaseError('KEY_NOT_FOUND', `no private key "${info.label}" on the token`, {
          details: { ref },
        })
      this.#lib.C_SignInit(this.#session, { mechanism: pkcs11js.CKM_ECDSA }, handle)
      return this.#lib.C_SignAsync(this.#session, Buffer.from(digest), Buffer.alloc(128))
    })
    if (signature.length !== 64)
      throw new BaseError(
        'PKCS11_FAILED',
        'CKM_ECDSA returned a signature that is not r‖s of 32 bytes each',
        {
          details: { length: signature.length },
        },
      )
    const raw = Uint8Array.from(signature)
    return info.curve === 'secp256k1' ? normaliseLowS(raw) : raw
  }

  /**
   * Whether the token reports the private key as sensitive and non-extractable (for tests and
   * audits: proves the key cannot leave the token through PKCS#11).
   */
  async privateKeyIsProtected(ref: KeyRef): Promise<boolean> {
    const label = labelOfPkcs11Uri(ref)
    return this.#run('reading key attributes', async () => {
      const handle = this.#findObject(label, pkcs11js.CKO_PRIVATE_KEY)
      if (!handle) throw new BaseError('KEY_NOT_FOUND', `no private key "${label}"`, { details: { ref } })
      const [sensitive, extractable] = this.#lib.C_GetAttributeValue(this.#session, handle, [
        { type: pkcs11js.CKA_SENSITIVE },
        { type: pkcs11js.CKA_EXTRACTABLE },
      ])
      return sensitive?.value[0] === 1 && extractable?.value[0] === 0
    })
  }

  /**
   * The Ed25519 key labelled `label` (a signed-note key: docs/transparency.md), made on the token
   * if it has none: sensitive and non-extractable, used through CKM_EDDSA. It gets a session of its
   * own (the login is the application's, PKCS#11 v2.40 §5.6), so its synchronous `sign` never
   * overlaps the store's queued calls; the session closes with the store.
   */
  ed25519Key(label: string): Pkcs11Ed25519Key {
    assertLabel(label)
    if (this.#closed) throw new BaseError('PKCS11_FAILED', 'the PKCS#11 key store is closed')
    const lib = this.#lib
    let session: Buffer
    try {
      session = lib.C_OpenSession(this.#slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION)
    } catch (error) {
      throw pkcs11Error('opening a session for an Ed25519 key', error)
    }
    this.#ownSessions.push(session)
    let created = false
    let handles: { privateKey: Buffer; publicKey: Buffer }
    let attributes: ReturnType<pkcs11js.PKCS11['C_GetAttributeValue']>
    try {
      const privateKey = findObject(lib, session, label, pkcs11js.CKO_PRIVATE_KEY)
      const publicKey = findObject(lib, session, label, pkcs11js.CKO_PUBLIC_KEY)
      if (privateKey && publicKey) handles = { privateKey, publicKey }
      else if (privateKey || publicKey)
        throw new BaseError(
          'KEYSTORE_CORRUPT',
          `the token holds only half of the key pair "${label}"; restore it or delete it to make a new one`,
          { details: { label } },
        )
      else {
        const common = [
          { type: pkcs11js.CKA_KEY_TYPE, value: CKK_EC_EDWARDS },
          { type: pkcs11js.CKA_TOKEN, value: true },
          { type: pkcs11js.CKA_LABEL, value: label },
          { type: pkcs11js.CKA_ID, value: randomBytes(16) },
        ]
        handles = lib.C_GenerateKeyPair(
          session,
          { mechanism: CKM_EC_EDWARDS_KEY_PAIR_GEN },
          [
            ...common,
            { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY },
            { type: pkcs11js.CKA_VERIFY, value: true },
            { type: pkcs11js.CKA_EC_PARAMS, value: ED25519_PARAMS },
          ],
          [
            ...common,
            { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
            { type: pkcs11js.CKA_PRIVATE, value: true },
            { type: pkcs11js.CKA_SIGN, value: true },
            { type: pkcs11js.CKA_SENSITIVE, value: true },
            { type: pkcs11js.CKA_EXTRACTABLE, value: false },
          ],
        )
        created = true
      }
      attributes = lib.C_GetAttributeValue(session, handles.publicKey, [
        { type: pkcs11js.CKA_KEY_TYPE },
        { type: pkcs11js.CKA_EC_PARAMS },
        { type: pkcs11js.CKA_EC_POINT },
      ])
    } catch (error) {
      throw pkcs11Error(`finding or making the Ed25519 key "${label}"`, error)
    }
    const [keyType, params, point] = attributes
    const ed25519 =
      keyType?.value.length === 8 &&
      keyType.value.readBigUInt64LE(0) === BigInt(CKK_EC_EDWARDS) &&
      (params?.value.equals(ED25519_PARAMS) || params?.value.equals(ED25519_PARAMS_NAMED))
    // CKA_EC_POINT: the 32 bytes in a DER OCTET STRING (PKCS#11 3.0), or raw from some tokens.
    const raw = point?.value
    const publicKey =
      raw?.length === 34 && raw[0] === 0x04 && raw[1] === 32
        ? raw.subarray(2)
        : raw?.length === 32
          ? raw
          : undefined
    if (!ed25519 || !publicKey)
      throw new BaseError('KEYSTORE_CORRUPT', `the token's key "${label}" is not an Ed25519 key`, {
        details: { label },
      })
    const privateKey = handles.privateKey
    return {
      ref: this.#refOf(label),
      publicKey: Uint8Array.from(publicKey),
      created,
      sign: (message) => {
        if (this.#closed) throw new BaseError('PKCS11_FAILED', 'the PKCS#11 key store is closed')
        let signature: Buffer
        try {
          lib.C_SignInit(session, { mechanism: CKM_EDDSA }, privateKey)
          signature = lib.C_Sign(session, Buffer.from(message), Buffer.alloc(64))
        } catch (error) {
          throw pkcs11Error(`signing with "${label}"`, error)
        }
        if (signature.length !== 64)
          throw new BaseError('PKCS11_FAILED', 'CKM_EDDSA returned a signature that is not 64 bytes', {
            details: { length: signature.length },
          })
        return Uint8Array.from(signature)
      },
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await Promise.allSettled([this.#queue]) // only to close after it: each failure went to its caller
    for (const session of [...this.#ownSessions, this.#session])
      try {
        this.#lib.C_CloseSession(session)
      } catch {
        // the session may already be gone with the module
      }
    Pkcs11KeyStore.#release(this.#modulePath)
  }

  #refOf(label: string): KeyRef {
    return `pkcs11:token=${pct(this.#tokenLabel)};object=${pct(label)}`
  }

  #findObject(label: string, objectClass: number): Buffer | null {
    return findObject(this.#lib, this.#session, label, objectClass)
  }

  /** Runs `task` after every earlier call on this session has finished. */
  #run<T>(action: string, task: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new BaseError('PKCS11_FAILED', 'the PKCS#11 key store is closed'))
    const next = this.#queue.then(task, task).catch((error: unknown) => {
      throw pkcs11Error(action, error)
    })
    this.#queue = Promise.allSettled([next]) // the queue only orders: each failure went to its caller
    return next
  }
}
