import assert from 'node:assert/strict'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import type { Server } from 'node:tls'
import { requirePart } from '../../test/skip.ts'
import { type BaseError, isErrorCode } from '../errors.ts'
import { Pkcs11KeyStore } from './pkcs11-keystore.ts'
import { aPki, aVin, type TestPki } from './pki.testkit.ts'
import { issueVehicleCertificate } from './profiles.ts'
import { createSoftHsmToken, type SoftHsmToken, softHsmAvailable } from './softhsm.testkit.ts'
import {
  connectIdentity,
  createIdentityServer,
  type SecureSession,
  type TlsEndpointOptions,
  type TlsIdentity,
} from './tls.ts'
import type { TrustAnchors } from './validate.ts'

type Harness = { server: Server; port: number; sessions: SecureSession[]; rejected: BaseError[] }

async function serve(options: TlsEndpointOptions): Promise<Harness> {
  const sessions: SecureSession[] = []
  const rejected: BaseError[] = []
  const server = await createIdentityServer(
    options,
    (session) => {
      sessions.push(session)
      session.socket.on('data', (chunk) => session.socket.write(`echo:${chunk}`))
      session.socket.resume()
    },
    (error) => rejected.push(error),
  )
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { server, port: (server.address() as AddressInfo).port, sessions, rejected }
}

async function echo(session: SecureSession, text: string): Promise<string> {
  session.socket.resume()
  session.socket.write(text)
  const [chunk] = await once(session.socket, 'data')
  return String(chunk)
}

async function waitFor(check: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !check(); i++) await new Promise((r) => setTimeout(r, 20))
}

describe('mutual TLS 1.3 between car and charger', () => {
  let pki: TestPki
  let anchors: TrustAnchors
  let car: TlsIdentity
  let carVin: string
  let charger: TlsIdentity
  let carPolicy: TlsEndpointOptions['peer']
  let chargerPolicy: TlsEndpointOptions['peer']
  const servers: Server[] = []

  before(async () => {
    pki = await aPki()
    anchors = { oem: [pki.oem.root.der], cpo: [pki.cpo.root.der] }
    carVin = aVin()
    const v = await pki.aVehicle({ vin: carVin })
    const c = await pki.aCharger()
    car = { store: pki.store, keyRef: v.keyRef, certificate: v.cert.der, chain: [pki.oem.sub.der] }
    charger = { store: pki.store, keyRef: c.keyRef, certificate: c.cert.der, chain: [pki.cpo.sub.der] }
    carPolicy = { role: 'charger', trustAnchors: anchors }
    chargerPolicy = { role: 'vehicle', trustAnchors: anchors }
  })
  after(async () => {
    for (const server of servers) server.close()
    await pki.cleanup()
  })

  it('certificate mode (software keys): both sides authenticate each other for the right role', async () => {
    const h = await serve({ identity: charger, peer: chargerPolicy })
    servers.push(h.server)
    const session = await connectIdentity({ identity: car, peer: carPolicy, host: '127.0.0.1', port: h.port })
    assert.equal(session.mode, 'certificate')
    assert.equal(session.socket.getProtocol(), 'TLSv1.3')
    assert.equal(session.peer.role, 'charger')
    assert.equal(session.peer.commonName, 'DE*CCH*E1234567')
    assert.equal(await echo(session, 'hello'), 'echo:hello')
    await waitFor(() => h.sessions.length === 1)
    assert.equal(h.sessions[0]?.peer.vin, carVin)
    session.socket.destroy()
  })

  it('refuses a peer of the wrong role and an unregistered one', async () => {
    // A charger certificate where the charger expects a vehicle.
    const h = await serve({ identity: charger, peer: chargerPolicy })
    servers.push(h.server)
    await connectIdentity({ identity: charger, peer: carPolicy, host: '127.0.0.1', port: h.port })
      .then((s) => once(s.socket, 'close'))
      .catch(() => undefined)
    await waitFor(() => h.rejected.length === 1)
    assert.equal(h.rejected[0]?.code, 'CERT_WRONG_ROLE')
    // The car refuses a charger the chain registry does not know.
    const h2 = await serve({ identity: charger, peer: chargerPolicy })
    servers.push(h2.server)
    await assert.rejects(
      connectIdentity({
        identity: car,
        peer: { ...carPolicy, isRegistered: async () => false },
        host: '127.0.0.1',
        port: h2.port,
      }),
      (e) => isErrorCode(e, 'CHARGER_NOT_REGISTERED'),
    )
  })

  it('channel-binding mode: proofs are bound to the session, a forwarded proof fails', async () => {
    const h = await serve({ identity: charger, peer: chargerPolicy, mode: 'channel-binding' })
    servers.push(h.server)
    const session = await connectIdentity({
      identity: car,
      peer: carPolicy,
      mode: 'channel-binding',
      host: '127.0.0.1',
      port: h.port,
    })
    assert.equal(session.peer.commonName, 'DE*CCH*E1234567')
    assert.equal(await echo(session, 'bound'), 'echo:bound')
    session.socket.destroy()
    // An impostor with the car's certificate but not its key cannot sign this session's exporter.
    const impostorKey = await pki.store.generate('p256', `impostor-${process.pid}`)
    await connectIdentity({
      identity: { ...car, keyRef: impostorKey },
      peer: carPolicy,
      mode: 'channel-binding',
      host: '127.0.0.1',
      port: h.port,
    }).catch(() => undefined)
    await waitFor(() => h.rejected.length === 1)
    assert.equal(h.rejected[0]?.code, 'UNAUTHENTICATED')
  })

  describe('with the car’s keys in a PKCS#11 token', () => {
    let token: SoftHsmToken | undefined
    let hsm: Pkcs11KeyStore | undefined
    before(async () => {
      if (!softHsmAvailable) return
      token = await createSoftHsmToken('carchain-tls')
      hsm = await Pkcs11KeyStore.open({ module: token.module, slot: token.slot, pin: token.pin })
    })
    after(async () => {
      await hsm?.close()
      await token?.cleanup()
    })

    it('authenticates over channel binding, the TLS default for a non-software store', async (t) => {
      if (!requirePart(t, softHsmAvailable, 'SoftHSM2 is not installed')) return
      const keyRef = await hsm!.generate('p256', 'vehicle-identity')
      const walletRef = await hsm!.generate('secp256k1', 'vehicle-wallet')
      const cert = await issueVehicleCertificate({
        vin: aVin(),
        chainId: 31337,
        wallet: await hsm!.ethereumAddress(walletRef),
        subjectPublicKey: await hsm!.publicKey(keyRef),
        issuer: pki.oem.sub,
        signer: pki.oem.subSigner,
      })
      const hsmCar: TlsIdentity = { store: hsm!, keyRef, certificate: cert.der, chain: [pki.oem.sub.der] }
      const h = await serve({ identity: charger, peer: chargerPolicy, mode: 'channel-binding' })
      servers.push(h.server)
      const session = await connectIdentity({
        identity: hsmCar,
        peer: carPolicy,
        host: '127.0.0.1',
        port: h.port,
      })
      assert.equal(session.mode, 'channel-binding')
      assert.equal(await echo(session, 'from the SE'), 'echo:from the SE')
      await waitFor(() => h.sessions.length === 1)
      assert.equal(h.sessions[0]?.peer.fingerprint, cert.fingerprint)
      assert.equal(h.sessions[0]?.peer.wallet?.address, await hsm!.ethereumAddress(walletRef))
      session.socket.destroy()
    })
  })
})
