/**
 * A development PKI on disk — what `carchain pki …` drives. One directory holds both
 * hierarchies, their CRLs, the issued certificates and (by default) an encrypted software key
 * store; with a PKCS#11 token configured, new keys are generated in the token instead.
 *
 *   <dir>/pki.json                      state: key references, CRL numbers, revocations
 *   <dir>/keystore/<label>.json         keystore v3 files (software keys)
 *   <dir>/roots/{oem,cpo}.pem           root CA certificates (trust anchors)
 *   <dir>/subca/{oem,cpo}.pem           sub-CA certificates (the `chain` of every leaf)
 *   <dir>/crl/{oem,cpo}.crl.pem         the sub-CAs' CRLs
 *   <dir>/issued/vehicles/<VIN>.pem, issued/chargers/<EVSE>.pem, issued/components/<VIN>/<name>.pem
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { Address } from 'viem'
import { BaseError } from '../errors.ts'
import {
  type Certificate,
  formatName,
  type Hierarchy,
  parseCertificate,
  type Role,
  type Signer,
  toPem,
} from './certificate.ts'
import { issueCrl } from './crl.ts'
import type { KeyRef, KeyStore } from './keystore.ts'
import { Pkcs11KeyStore, type Pkcs11KeyStoreOptions } from './pkcs11-keystore.ts'
import {
  type CaSubject,
  issueChargerCertificate,
  issueComponentCertificate,
  issueRootCa,
  issueSubCa,
  issueVehicleCertificate,
} from './profiles.ts'
import { type ScryptParams, SoftwareKeyStore } from './software-keystore.ts'
import { type ValidatedIdentity, validateCertificate } from './validate.ts'

/** The documented development passphrase, used when neither --passphrase nor CARCHAIN_PASSPHRASE is set. */
export const DEV_PASSPHRASE = 'carchain-dev-passphrase'
/** Anvil's chain id: the default for the did:pkh wallet binding. */
export const DEFAULT_CHAIN_ID = 31337
/** CRLs of the development PKI are re-issued on every revocation and valid this long. */
export const CRL_LIFETIME_MS = 365 * 86_400_000

export type PkiDirectoryOptions = {
  readonly dir: string
  readonly passphrase: string
  /** Put new keys in this PKCS#11 token instead of the software key store. */
  readonly pkcs11?: Pkcs11KeyStoreOptions
  readonly scrypt?: ScryptParams
}

type RevokedRecord = { serialNumber: string; revokedAt: string; fingerprint: string; subject: string }
type HierarchyState = { rootKey: KeyRef; subKey: KeyRef; crlNumber: number; revoked: RevokedRecord[] }
type PkiState = { version: 1; hierarchies: Record<Hierarchy, HierarchyState> }

export type CaPaths = { roots: Record<Hierarchy, string>; subCAs: Record<Hierarchy, string> }
export type IssuedPaths = { cert: string; chain: string; key: KeyRef }

const SUBJECTS: Record<Hierarchy, CaSubject> = {
  oem: { organization: 'Carchain Dev Motors' },
  cpo: { organization: 'Carchain Dev Charging' },
}

/** File and label names may hold only [A-Za-z0-9._-]; EVSE IDs carry '*'. */
function safeName(value: string): string {
  return value.replace(/[^A-Za-z0-9._-]/g, '_')
}

async function writeAtomic(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true })
  const tmp = `${path}.${process.pid}.tmp`
  await writeFile(tmp, text, { mode: 0o644 })
  await rename(tmp, path)
}

export class PkiDirectory {
  readonly dir: string
  readonly #software: SoftwareKeyStore
  readonly #pkcs11Options: Pkcs11KeyStoreOptions | undefined
  #pkcs11: Promise<Pkcs11KeyStore> | undefined
  #state: PkiState | undefined

  constructor(options: PkiDirectoryOptions) {
    this.dir = options.dir
    this.#software = new SoftwareKeyStore({
      dir: join(options.dir, 'keystore'),
      passphrase: options.passphrase,
      ...(options.scrypt ? { scrypt: options.scrypt } : {}),
    })
    this.#pkcs11Options = options.pkcs11
  }

  get paths(): CaPaths & { crls: Record<Hierarchy, string>; state: string } {
    const per = (f: (h: Hierarchy) => string) => ({ oem: f('oem'), cpo: f('cpo') })
    return {
      roots: per((h) => join(this.dir, 'roots', `${h}.pem`)),
      subCAs: per((h) => join(this.dir, 'subca', `${h}.pem`)),
      crls: per((h) => join(this.dir, 'crl', `${h}.crl.pem`)),
      state: join(this.dir, 'pki.json'),
    }
  }

  /** Creates both hierarchies (root + sub-CA + empty CRL each). Refuses an initialised directory. */
  async init(now = new Date()): Promise<CaPaths> {
    if (
      await this.#readState().then(
        () => true,
        () => false,
      )
    )
      throw new BaseError('INVALID_ARGUMENT', `${this.dir} already holds a PKI`, {
        details: { dir: this.dir },
      })
    const state: PkiState = { version: 1, hierarchies: {} as Record<Hierarchy, HierarchyState> }
    for (const hierarchy of ['oem', 'cpo'] as const) {
      const rootKey = await this.#generate('p256', `${hierarchy}-root-ca`)
      const subKey = await this.#generate('p256', `${hierarchy}-sub-ca`)
      const rootSigner = { store: await this.#storeFor(rootKey), ref: rootKey }
      const root = await issueRootCa({ hierarchy, subject: SUBJECTS[hierarchy], signer: rootSigner, now })
      const sub = await issueSubCa({
        hierarchy,
        subject: SUBJECTS[hierarchy],
        subjectPublicKey: await (await this.#storeFor(subKey)).publicKey(subKey),
        issuer: root,
        signer: rootSigner,
        now,
      })
      await writeAtomic(this.paths.roots[hierarchy], toPem('CERTIFICATE', root.der))
      await writeAtomic(this.paths.subCAs[hierarchy], toPem('CERTIFICATE', sub.der))
      state.hierarchies[hierarchy] = { rootKey, subKey, crlNumber: 0, revoked: [] }
      this.#state = state
      await this.#writeCrl(hierarchy, sub, now)
    }
    await this.#writeState()
    return { roots: this.paths.roots, subCAs: this.paths.subCAs }
  }

  /** Issues a vehicle certificate; generates its P-256 key and, without `wallet`, a secp256k1 wallet key. */
  async issueVehicle(parameters: {
    vin: string
    chainId?: number
    wallet?: Address
    now?: Date
  }): Promise<IssuedPaths> {
    const label = `vehicle-${safeName(parameters.vin)}`
    const key = await this.#keyFor('p256', label)
    const wallet =
      parameters.wallet ??
      (await (async () => {
        const walletKey = await this.#keyFor('secp256k1', `${label}-wallet`)
        return (await this.#storeFor(walletKey)).ethereumAddress(walletKey)
      })())
    const { sub, signer } = await this.#subCa('oem')
    const cert = await issueVehicleCertificate({
      vin: parameters.vin,
      chainId: parameters.chainId ?? DEFAULT_CHAIN_ID,
      wallet,
      subjectPublicKey: await (await this.#storeFor(key)).publicKey(key),
      issuer: sub,
      signer,
      ...(parameters.now ? { now: parameters.now } : {}),
    })
    return this.#saveLeaf(cert, join('vehicles', `${safeName(parameters.vin)}.pem`), 'oem', key)
  }

  async issueCharger(parameters: { evseId: string; now?: Date }): Promise<IssuedPaths> {
    const key = await this.#keyFor('p256', `charger-${safeName(parameters.evseId)}`)
    const { sub, signer } = await this.#subCa('cpo')
    const cert = await issueChargerCertificate({
      evseId: parameters.evseId,
      subjectPublicKey: await (await this.#storeFor(key)).publicKey(key),
      issuer: sub,
      signer,
      ...(parameters.now ? { now: parameters.now } : {}),
    })
    return this.#saveLeaf(cert, join('chargers', `${safeName(parameters.evseId)}.pem`), 'cpo', key)
  }

  async issueComponent(parameters: { vin: string; name: string; now?: Date }): Promise<IssuedPaths> {
    const key = await this.#keyFor(
      'p256',
      `component-${safeName(parameters.vin)}-${safeName(parameters.name)}`,
    )
    const { sub, signer } = await this.#subCa('oem')
    const cert = await issueComponentCertificate({
      vin: parameters.vin,
      name: parameters.name,
      subjectPublicKey: await (await this.#storeFor(key)).publicKey(key),
      issuer: sub,
      signer,
      ...(parameters.now ? { now: parameters.now } : {}),
    })
    const file = join('components', safeName(parameters.vin), `${safeName(parameters.name)}.pem`)
    return this.#saveLeaf(cert, file, 'oem', key)
  }

  /** Validates a certificate against this directory's roots and CRLs (plus an optional on-chain check). */
  async verify(parameters: {
    cert: Uint8Array | string
    chain: readonly (Uint8Array | string)[]
    role: Role
    isRevoked?: (fingerprint: string) => Promise<boolean>
    now?: Date
  }): Promise<ValidatedIdentity> {
    const [oem, cpo, oemCrl, cpoCrl] = await Promise.all(
      [this.paths.roots.oem, this.paths.roots.cpo, this.paths.crls.oem, this.paths.crls.cpo].map((p) =>
        this.#readFile(p),
      ),
    )
    return validateCertificate({
      certificate: parameters.cert,
      chain: parameters.chain,
      role: parameters.role,
      trustAnchors: { oem: [oem as string], cpo: [cpo as string] },
      crls: [oemCrl as string, cpoCrl as string],
      ...(parameters.isRevoked ? { isRevoked: parameters.isRevoked } : {}),
      ...(parameters.now ? { now: parameters.now } : {}),
    })
  }

  /** Revokes a certificate this PKI issued: adds it to its sub-CA's CRL and re-issues the CRL. */
  async revoke(
    certificate: Uint8Array | string,
    now = new Date(),
  ): Promise<{ serialNumber: string; fingerprint: string; crl: string; hierarchy: Hierarchy }> {
    const cert = parseCertificate(certificate)
    const state = await this.#readState()
    for (const hierarchy of ['oem', 'cpo'] as const) {
      const { sub, signer } = await this.#subCa(hierarchy)
      if (!Buffer.from(cert.issuer.der).equals(sub.subject.der)) continue
      if (
        cert.authorityKeyId &&
        sub.subjectKeyId &&
        !Buffer.from(cert.authorityKeyId).equals(sub.subjectKeyId)
      )
        continue
      const serialNumber = cert.serialNumber.toString(16)
      const revoked = state.hierarchies[hierarchy].revoked
      if (!revoked.some((r) => r.serialNumber === serialNumber))
        revoked.push({
          serialNumber,
          revokedAt: now.toISOString(),
          fingerprint: cert.fingerprint,
          subject: formatName(cert.subject),
        })
      await this.#writeCrl(hierarchy, sub, now, signer)
      await this.#writeState()
      return { serialNumber, fingerprint: cert.fingerprint, crl: this.paths.crls[hierarchy], hierarchy }
    }
    throw new BaseError(
      'CERT_UNTRUSTED',
      `"${formatName(cert.subject)}" was not issued by this PKI's sub-CAs`,
      {
        details: { issuer: formatName(cert.issuer) },
      },
    )
  }

  async close(): Promise<void> {
    await this.#software.close()
    if (this.#pkcs11) await (await this.#pkcs11.catch(() => undefined))?.close()
  }

  // ---- internals ----

  async #readFile(path: string): Promise<string> {
    try {
      return await readFile(path, 'utf8')
    } catch (error) {
      throw new BaseError('NOT_FOUND', `cannot read ${path}; run \`carchain pki init --dir ${this.dir}\``, {
        details: { path },
        cause: error,
      })
    }
  }

  async #readState(): Promise<PkiState> {
    if (this.#state) return this.#state
    const text = await this.#readFile(this.paths.state)
    try {
      const state = JSON.parse(text) as PkiState
      if (state.version !== 1 || !state.hierarchies?.oem || !state.hierarchies?.cpo)
        throw new TypeError('shape')
      this.#state = state
      return state
    } catch (error) {
      throw new BaseError('DATA_DIR_INVALID', `${this.paths.state} is not a Carchain PKI state file`, {
        cause: error,
      })
    }
  }

  async #writeState(): Promise<void> {
    await writeAtomic(this.paths.state, `${JSON.stringify(this.#state, null, 2)}\n`)
  }

  async #storeFor(ref: KeyRef): Promise<KeyStore> {
    if (ref.startsWith('pkcs11:')) return this.#pkcs11Store()
    return this.#software
  }

  #pkcs11Store(): Promise<Pkcs11KeyStore> {
    const options = this.#pkcs11Options
    if (!options)
      return Promise.reject(
        new BaseError(
          'CONFIG_INVALID',
          'this key lives in a PKCS#11 token: give --pkcs11-module, --pkcs11-slot and --pkcs11-pin',
        ),
      )
    this.#pkcs11 ??= Pkcs11KeyStore.open(options)
    return this.#pkcs11
  }

  /** New keys go to the token when one is configured, else to the software store. */
  async #generate(curve: 'p256' | 'secp256k1', label: string): Promise<KeyRef> {
    const store: KeyStore = this.#pkcs11Options ? await this.#pkcs11Store() : this.#software
    return store.generate(curve, label)
  }

  /** The key labelled `label` (re-certifying an existing identity), or a new one. */
  async #keyFor(curve: 'p256' | 'secp256k1', label: string): Promise<KeyRef> {
    const store: KeyStore = this.#pkcs11Options ? await this.#pkcs11Store() : this.#software
    const existing = await store.find(label)
    if (existing) {
      const info = await store.describe(existing)
      if (info.curve !== curve)
        throw new BaseError('KEYSTORE_CORRUPT', `key "${label}" exists on another curve`, {
          details: { label },
        })
      return existing
    }
    return store.generate(curve, label)
  }

  async #subCa(hierarchy: Hierarchy): Promise<{ sub: Certificate; signer: Signer }> {
    const state = await this.#readState()
    const sub = parseCertificate(await this.#readFile(this.paths.subCAs[hierarchy]))
    const ref = state.hierarchies[hierarchy].subKey
    return { sub, signer: { store: await this.#storeFor(ref), ref } }
  }

  async #writeCrl(hierarchy: Hierarchy, sub: Certificate, now: Date, signer?: Signer): Promise<void> {
    const state = this.#state as PkiState
    const entry = state.hierarchies[hierarchy]
    entry.crlNumber += 1
    const crl = await issueCrl(
      {
        issuer: sub,
        revoked: entry.revoked.map((r) => ({
          serialNumber: BigInt(`0x${r.serialNumber}`),
          revokedAt: new Date(r.revokedAt),
        })),
        thisUpdate: new Date(Math.floor(now.getTime() / 1000) * 1000 - 60_000),
        nextUpdate: new Date(now.getTime() + CRL_LIFETIME_MS),
        crlNumber: BigInt(entry.crlNumber),
      },
      signer ?? { store: await this.#storeFor(entry.subKey), ref: entry.subKey },
    )
    await writeAtomic(this.paths.crls[hierarchy], toPem('X509 CRL', crl.der))
  }

  async #saveLeaf(cert: Certificate, file: string, hierarchy: Hierarchy, key: KeyRef): Promise<IssuedPaths> {
    const path = join(this.dir, 'issued', file)
    await writeAtomic(path, toPem('CERTIFICATE', cert.der))
    return { cert: path, chain: this.paths.subCAs[hierarchy], key }
  }
}
