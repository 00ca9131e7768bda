/**
 * Test kit: builder fixtures for the two hierarchies (`aPki()`), on a software key store in a
 * temp dir with a cheap KDF. Not part of the library.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Certificate, Hierarchy, Signer } from './certificate.ts'
import {
  issueChargerCertificate,
  issueComponentCertificate,
  issueRootCa,
  issueSubCa,
  issueVehicleCertificate,
} from './profiles.ts'
import { SoftwareKeyStore } from './software-keystore.ts'

export type TestCa = { root: Certificate; sub: Certificate; rootSigner: Signer; subSigner: Signer }

export type TestPki = {
  store: SoftwareKeyStore
  dir: string
  oem: TestCa
  cpo: TestCa
  /** A fresh vehicle: identity key + wallet key + certificate. */
  aVehicle(options?: { vin?: string; now?: Date; lifetimeMs?: number }): Promise<{
    cert: Certificate
    keyRef: string
    walletRef: string
  }>
  aComponent(options?: { vin?: string; name?: string }): Promise<{ cert: Certificate; keyRef: string }>
  aCharger(options?: { evseId?: string }): Promise<{ cert: Certificate; keyRef: string }>
  cleanup(): Promise<void>
}

let counter = 0
const label = (kind: string) => `${kind}-${process.pid}-${++counter}`

/** A VIN for tests: WDB + 14 characters from the counter. */
export function aVin(n = ++counter): string {
  return `WDB${String(n).padStart(14, '0')}`
}

export async function aCa(
  store: SoftwareKeyStore,
  hierarchy: Hierarchy,
  organization: string,
): Promise<TestCa> {
  const rootSigner = { store, ref: await store.generate('p256', label(`${hierarchy}-root`)) }
  const root = await issueRootCa({ hierarchy, subject: { organization }, signer: rootSigner })
  const subSigner = { store, ref: await store.generate('p256', label(`${hierarchy}-sub`)) }
  const sub = await issueSubCa({
    hierarchy,
    subject: { organization },
    subjectPublicKey: await store.publicKey(subSigner.ref),
    issuer: root,
    signer: rootSigner,
  })
  return { root, sub, rootSigner, subSigner }
}

export async function aPki(): Promise<TestPki> {
  const dir = await mkdtemp(join(tmpdir(), 'carchain-pki-'))
  const store = new SoftwareKeyStore({ dir, passphrase: 'test', scrypt: { n: 1024, r: 8, p: 1 } })
  const oem = await aCa(store, 'oem', 'Carchain Test Motors')
  const cpo = await aCa(store, 'cpo', 'Carchain Test Charging')
  return {
    store,
    dir,
    oem,
    cpo,
    async aVehicle(options = {}) {
      const keyRef = await store.generate('p256', label('vehicle'))
      const walletRef = await store.generate('secp256k1', label('wallet'))
      const cert = await issueVehicleCertificate({
        vin: options.vin ?? aVin(),
        chainId: 31337,
        wallet: await store.ethereumAddress(walletRef),
        subjectPublicKey: await store.publicKey(keyRef),
        issuer: oem.sub,
        signer: oem.subSigner,
        ...(options.now ? { now: options.now } : {}),
        ...(options.lifetimeMs ? { lifetimeMs: options.lifetimeMs } : {}),
      })
      return { cert, keyRef, walletRef }
    },
    async aComponent(options = {}) {
      const keyRef = await store.generate('p256', label('component'))
      const cert = await issueComponentCertificate({
        vin: options.vin ?? aVin(),
        name: options.name ?? 'BMS',
        subjectPublicKey: await store.publicKey(keyRef),
        issuer: oem.sub,
        signer: oem.subSigner,
      })
      return { cert, keyRef }
    },
    async aCharger(options = {}) {
      const keyRef = await store.generate('p256', label('charger'))
      const cert = await issueChargerCertificate({
        evseId: options.evseId ?? 'DE*CCH*E1234567',
        subjectPublicKey: await store.publicKey(keyRef),
        issuer: cpo.sub,
        signer: cpo.subSigner,
      })
      return { cert, keyRef }
    },
    async cleanup() {
      await store.close()
      await rm(dir, { recursive: true, force: true })
    },
  }
}
