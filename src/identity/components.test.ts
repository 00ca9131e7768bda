import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { isErrorCode } from '../errors.ts'
import {
  answerComponentChallenge,
  assertComponentsAccepted,
  authenticateComponents,
  type ComponentEndpoint,
} from './components.ts'
import { aCa, aPki, aVin, type TestPki } from './pki.testkit.ts'
import { issueComponentCertificate } from './profiles.ts'
import type { TrustAnchors } from './validate.ts'

describe('component authentication', () => {
  let pki: TestPki
  let anchors: TrustAnchors
  before(async () => {
    pki = await aPki()
    anchors = { oem: [pki.oem.root.der], cpo: [pki.cpo.root.der] }
  })
  after(() => pki.cleanup())

  const endpoint = (
    name: string,
    cert: { der: Uint8Array },
    keyRef: string,
    chain = [pki.oem.sub.der],
  ): ComponentEndpoint => ({
    name,
    certificate: cert.der,
    chain,
    respond: (challenge) => answerComponentChallenge(pki.store, keyRef, challenge),
  })

  it('accepts the vehicle’s own components and refuses unknown, foreign, revoked, cloned and silent ones', async () => {
    const vin = aVin()
    const bms = await pki.aComponent({ vin, name: 'BMS' })
    const gateway = await pki.aComponent({ vin, name: 'Gateway' })
    const foreign = await pki.aComponent({ vin: aVin(), name: 'Inverter' })
    const revoked = await pki.aComponent({ vin, name: 'Telematics' })
    const rogueCa = await aCa(pki.store, 'oem', 'Rogue Parts')
    const unknownKey = await pki.store.generate('p256', `unknown-${process.pid}`)
    const unknown = await issueComponentCertificate({
      vin,
      name: 'Airbag',
      subjectPublicKey: await pki.store.publicKey(unknownKey),
      issuer: rogueCa.sub,
      signer: rogueCa.subSigner,
    })
    const { reports, rejected } = await authenticateComponents({
      vin,
      trustAnchors: anchors,
      isRevoked: async (fingerprint) => fingerprint === revoked.cert.fingerprint,
      timeoutMs: 200,
      components: [
        endpoint('BMS', bms.cert, bms.keyRef),
        endpoint('Inverter', foreign.cert, foreign.keyRef),
        endpoint('Telematics', revoked.cert, revoked.keyRef),
        endpoint('Airbag', unknown, unknownKey, [rogueCa.sub.der]),
        // a clone: Gateway's certificate answered by a different key
        endpoint('Gateway', gateway.cert, bms.keyRef),
        { ...endpoint('BMS', bms.cert, bms.keyRef), respond: () => new Promise(() => {}) },
        endpoint('Gateway2', gateway.cert, gateway.keyRef),
      ],
    })
    assert.deepEqual(
      reports.map((r) => [r.name, r.ok ? 'OK' : r.reason]),
      [
        ['BMS', 'OK'],
        ['Inverter', 'FOREIGN_COMPONENT'],
        ['Telematics', 'CERT_REVOKED'],
        ['Airbag', 'CERT_UNTRUSTED'],
        ['Gateway', 'BAD_RESPONSE'],
        ['BMS', 'NO_RESPONSE'],
        ['Gateway2', 'WRONG_COMPONENT'],
      ],
    )
    assert.equal(rejected.length, 6)
    for (const r of rejected) assert.equal(r.code, 'COMPONENT_REJECTED')
    assert.throws(
      () => assertComponentsAccepted(reports),
      (e) => isErrorCode(e, 'COMPONENT_REJECTED'),
    )
    assert.doesNotThrow(() => assertComponentsAccepted(reports.slice(0, 1)))
  })
})
