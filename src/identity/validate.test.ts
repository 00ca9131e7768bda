import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { isErrorCode } from '../errors.ts'
import {
  type Certificate,
  issueCertificate,
  MAX_CERTIFICATE_BYTES,
  rolePolicy,
  toPem,
} from './certificate.ts'
import { issueCrl } from './crl.ts'
import { aCa, aPki, aVin, type TestPki } from './pki.testkit.ts'
import { issueSubCa, issueVehicleCertificate } from './profiles.ts'
import { type TrustAnchors, validateCertificate } from './validate.ts'

const DAY = 86_400_000

describe('certificate issuing and validation', () => {
  let pki: TestPki
  let anchors: TrustAnchors
  let tmp: string
  before(async () => {
    pki = await aPki()
    anchors = { oem: [pki.oem.root.der], cpo: [pki.cpo.root.der] }
    tmp = await mkdtemp(join(tmpdir(), 'carchain-openssl-'))
  })
  after(async () => {
    await pki.cleanup()
    await rm(tmp, { recursive: true, force: true })
  })

  const rejects = async (promise: Promise<unknown>, code: Parameters<typeof isErrorCode>[1]) =>
    assert.rejects(promise, (error) => {
      assert.ok(
        isErrorCode(error, code),
        `expected ${code}, got ${(error as { code?: string }).code}: ${error}`,
      )
      return true
    })

  async function opensslVerify(root: Certificate, sub: Certificate, leaf: Certificate): Promise<string> {
    const files = { root: join(tmp, 'root.pem'), sub: join(tmp, 'sub.pem'), leaf: join(tmp, 'leaf.pem') }
    await writeFile(files.root, toPem('CERTIFICATE', root.der))
    await writeFile(files.sub, toPem('CERTIFICATE', sub.der))
    await writeFile(files.leaf, toPem('CERTIFICATE', leaf.der))
    return execFileSync(
      'openssl',
      ['verify', '-x509_strict', '-CAfile', files.root, '-untrusted', files.sub, files.leaf],
      {
        encoding: 'utf8',
      },
    )
  }

  it('issues vehicle, component and charger chains that validate and pass openssl -x509_strict', async () => {
    const vin = aVin()
    const vehicle = await pki.aVehicle({ vin })
    const identity = await validateCertificate({
      certificate: toPem('CERTIFICATE', vehicle.cert.der),
      chain: [pki.oem.sub.der],
      role: 'vehicle',
      trustAnchors: anchors,
    })
    assert.equal(identity.vin, vin)
    assert.equal(identity.wallet?.chainId, 31337)
    assert.equal(identity.wallet?.address, await pki.store.ethereumAddress(vehicle.walletRef))
    assert.equal(identity.path.length, 3)
    const component = await pki.aComponent({ vin, name: 'BMS' })
    const c = await validateCertificate({
      certificate: component.cert.der,
      chain: [pki.oem.sub.der],
      role: 'component',
      trustAnchors: anchors,
    })
    assert.deepEqual([c.commonName, c.vin], ['BMS', vin])
    const charger = await pki.aCharger()
    const e = await validateCertificate({
      certificate: charger.cert.der,
      chain: [pki.cpo.sub.der],
      role: 'charger',
      trustAnchors: anchors,
    })
    assert.equal(e.commonName, 'DE*CCH*E1234567')
    for (const cert of [
      pki.oem.root,
      pki.oem.sub,
      vehicle.cert,
      component.cert,
      pki.cpo.root,
      pki.cpo.sub,
      charger.cert,
    ])
      assert.ok(cert.der.length <= MAX_CERTIFICATE_BYTES, `${cert.der.length} bytes`)
    assert.match(await opensslVerify(pki.oem.root, pki.oem.sub, vehicle.cert), /leaf.pem: OK/)
    assert.match(await opensslVerify(pki.oem.root, pki.oem.sub, component.cert), /leaf.pem: OK/)
    assert.match(await opensslVerify(pki.cpo.root, pki.cpo.sub, charger.cert), /leaf.pem: OK/)
  })

  it('accepts a root given by fingerprint (as on chain) when the chain presents it', async () => {
    const { cert } = await pki.aVehicle()
    const identity = await validateCertificate({
      certificate: cert.der,
      chain: [pki.oem.root.der, pki.oem.sub.der],
      role: 'vehicle',
      trustAnchors: { oem: [`0x${pki.oem.root.fingerprint}`] },
    })
    assert.equal(identity.fingerprint, cert.fingerprint)
  })

  it('CERT_MALFORMED: bad PEM and truncated DER', async () => {
    const { cert } = await pki.aVehicle()
    const base = { chain: [pki.oem.sub.der], role: 'vehicle' as const, trustAnchors: anchors }
    await rejects(
      validateCertificate({
        ...base,
        certificate: '-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----',
      }),
      'CERT_MALFORMED',
    )
    await rejects(validateCertificate({ ...base, certificate: 'not a certificate' }), 'CERT_MALFORMED')
    await rejects(
      validateCertificate({ ...base, certificate: cert.der.subarray(0, cert.der.length - 10) }),
      'CERT_MALFORMED',
    )
  })

  it('CERT_UNSUPPORTED_KEY: a secp256k1 certificate', async () => {
    const key = join(tmp, 'k1.key')
    const pem = execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:secp256k1',
        '-nodes',
        '-subj',
        '/CN=WDB00000000000001',
        '-keyout',
        key,
        '-days',
        '1',
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
    )
    await rejects(
      validateCertificate({ certificate: pem, role: 'vehicle', trustAnchors: anchors }),
      'CERT_UNSUPPORTED_KEY',
    )
  })

  it('CERT_TOO_LARGE: an RSA-3072 certificate, and issuing past 800 bytes', async () => {
    const pem = execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:3072',
        '-nodes',
        '-subj',
        '/CN=big',
        '-keyout',
        join(tmp, 'rsa.key'),
        '-days',
        '1',
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
    )
    await rejects(
      validateCertificate({ certificate: pem, role: 'vehicle', trustAnchors: anchors }),
      'CERT_TOO_LARGE',
    )
    const publicKey = await pki.store.publicKey(pki.oem.subSigner.ref)
    await rejects(
      issueCertificate(
        {
          subject: [{ type: 'CN', value: 'x' }],
          subjectPublicKey: publicKey,
          issuer: pki.oem.sub,
          notBefore: new Date(),
          notAfter: new Date(Date.now() + DAY),
          keyUsage: ['digitalSignature'],
          subjectAltNameUris: Array.from(
            { length: 20 },
            (_, i) => `urn:carchain:padding:${i}:${'x'.repeat(20)}`,
          ),
        },
        pki.oem.subSigner,
      ),
      'CERT_TOO_LARGE',
    )
  })

  it('CERT_EXPIRED and CERT_NOT_YET_VALID', async () => {
    const { cert } = await pki.aVehicle({ lifetimeMs: DAY })
    const base = {
      certificate: cert.der,
      chain: [pki.oem.sub.der],
      role: 'vehicle' as const,
      trustAnchors: anchors,
    }
    await rejects(validateCertificate({ ...base, now: new Date(Date.now() + 2 * DAY) }), 'CERT_EXPIRED')
    await rejects(validateCertificate({ ...base, now: new Date(Date.now() - DAY) }), 'CERT_NOT_YET_VALID')
  })

  it('CERT_WRONG_ROLE and CERT_UNTRUSTED: wrong hierarchy, wrong profile, wrong issuer', async () => {
    const charger = await pki.aCharger()
    await rejects(
      validateCertificate({
        certificate: charger.cert.der,
        chain: [pki.cpo.sub.der],
        role: 'vehicle',
        trustAnchors: anchors,
      }),
      'CERT_WRONG_ROLE',
    )
    const component = await pki.aComponent()
    await rejects(
      validateCertificate({
        certificate: component.cert.der,
        chain: [pki.oem.sub.der],
        role: 'vehicle',
        trustAnchors: anchors,
      }),
      'CERT_WRONG_ROLE',
    )
    const vehicle = await pki.aVehicle()
    await rejects(
      validateCertificate({
        certificate: vehicle.cert.der,
        chain: [pki.cpo.sub.der],
        role: 'vehicle',
        trustAnchors: anchors,
      }),
      'CERT_UNTRUSTED',
    )
    await rejects(
      validateCertificate({
        certificate: vehicle.cert.der,
        chain: [pki.oem.sub.der],
        role: 'vehicle',
        trustAnchors: { cpo: anchors.cpo! },
      }),
      'CERT_UNTRUSTED',
    )
  })

  it('CERT_UNTRUSTED: an impostor root with the same subject name', async () => {
    const impostor = await aCa(pki.store, 'oem', 'Carchain Test Motors')
    assert.deepEqual(impostor.root.subject.der, pki.oem.root.subject.der)
    const cert = await issueVehicleCertificate({
      vin: aVin(),
      chainId: 1,
      wallet: '0x0000000000000000000000000000000000000001',
      subjectPublicKey: await pki.store.publicKey(impostor.subSigner.ref),
      issuer: impostor.sub,
      signer: impostor.subSigner,
    })
    for (const chain of [[impostor.sub.der], [impostor.sub.der, impostor.root.der]])
      await rejects(
        validateCertificate({ certificate: cert.der, chain, role: 'vehicle', trustAnchors: anchors }),
        'CERT_UNTRUSTED',
      )
  })

  it('CERT_BAD_SIGNATURE: a tampered signature', async () => {
    const { cert } = await pki.aVehicle()
    const tampered = Uint8Array.from(cert.der)
    tampered[tampered.length - 1]! ^= 0x01 // last byte of s: still DER, no longer a signature
    await rejects(
      validateCertificate({
        certificate: tampered,
        chain: [pki.oem.sub.der],
        role: 'vehicle',
        trustAnchors: anchors,
      }),
      'CERT_BAD_SIGNATURE',
    )
  })

  it('CERT_CONSTRAINTS: pathLen violated by a sub-sub-CA', async () => {
    const subSubSigner = { store: pki.store, ref: await pki.store.generate('p256', `subsub-${process.pid}`) }
    const subSub = await issueSubCa({
      hierarchy: 'oem',
      subject: { organization: 'Rogue' },
      subjectPublicKey: await pki.store.publicKey(subSubSigner.ref),
      issuer: pki.oem.sub,
      signer: pki.oem.subSigner,
    })
    const leaf = await issueVehicleCertificate({
      vin: aVin(),
      chainId: 1,
      wallet: '0x0000000000000000000000000000000000000001',
      subjectPublicKey: await pki.store.publicKey(subSubSigner.ref),
      issuer: subSub,
      signer: subSubSigner,
    })
    await rejects(
      validateCertificate({
        certificate: leaf.der,
        chain: [subSub.der, pki.oem.sub.der],
        role: 'vehicle',
        trustAnchors: anchors,
      }),
      'CERT_CONSTRAINTS',
    )
  })

  it('CERT_CONSTRAINTS: keyUsage violated (a leaf without digitalSignature)', async () => {
    const leaf = await issueCertificate(
      {
        subject: [{ type: 'CN', value: aVin() }],
        subjectPublicKey: await pki.store.publicKey(pki.oem.subSigner.ref),
        issuer: pki.oem.sub,
        notBefore: new Date(Date.now() - DAY),
        notAfter: new Date(Date.now() + DAY),
        keyUsage: ['keyAgreement'],
        subjectAltNameUris: ['did:pkh:eip155:1:0x0000000000000000000000000000000000000001'],
        policy: rolePolicy.vehicle,
      },
      pki.oem.subSigner,
    )
    await rejects(
      validateCertificate({
        certificate: leaf.der,
        chain: [pki.oem.sub.der],
        role: 'vehicle',
        trustAnchors: anchors,
      }),
      'CERT_CONSTRAINTS',
    )
  })

  it('CERT_REVOKED: by the sub-CA’s CRL (which openssl also reads) and by the on-chain registry', async () => {
    const { cert } = await pki.aVehicle()
    const crl = await issueCrl(
      {
        issuer: pki.oem.sub,
        revoked: [{ serialNumber: cert.serialNumber, revokedAt: new Date() }],
        thisUpdate: new Date(Date.now() - 1000),
        nextUpdate: new Date(Date.now() + DAY),
        crlNumber: 1n,
      },
      pki.oem.subSigner,
    )
    const base = {
      certificate: cert.der,
      chain: [pki.oem.sub.der],
      role: 'vehicle' as const,
      trustAnchors: anchors,
    }
    await rejects(validateCertificate({ ...base, crls: [toPem('X509 CRL', crl.der)] }), 'CERT_REVOKED')
    await writeFile(join(tmp, 'sub.crl.pem'), toPem('X509 CRL', crl.der))
    await writeFile(join(tmp, 'sub.pem'), toPem('CERTIFICATE', pki.oem.sub.der))
    const text = execFileSync(
      'openssl',
      ['crl', '-in', join(tmp, 'sub.crl.pem'), '-CAfile', join(tmp, 'sub.pem'), '-noout', '-text'],
      {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
    assert.match(text, new RegExp(cert.serialNumber.toString(16).toUpperCase()))
    const asked: string[] = []
    await rejects(
      validateCertificate({
        ...base,
        isRevoked: async (fingerprint) => {
          asked.push(fingerprint)
          return fingerprint === cert.fingerprint
        },
      }),
      'CERT_REVOKED',
    )
    assert.equal(asked[0], cert.fingerprint)
    const other = await pki.aVehicle()
    await validateCertificate({
      ...base,
      certificate: other.cert.der,
      crls: [crl.der],
      isRevoked: async () => false,
    })
  })

  it('CRL_INVALID: a stale CRL or one not signed by the issuer', async () => {
    const { cert } = await pki.aVehicle()
    const base = {
      certificate: cert.der,
      chain: [pki.oem.sub.der],
      role: 'vehicle' as const,
      trustAnchors: anchors,
    }
    const stale = await issueCrl(
      {
        issuer: pki.oem.sub,
        revoked: [],
        thisUpdate: new Date(Date.now() - 2 * DAY),
        nextUpdate: new Date(Date.now() - DAY),
        crlNumber: 1n,
      },
      pki.oem.subSigner,
    )
    await rejects(validateCertificate({ ...base, crls: [stale.der] }), 'CRL_INVALID')
    const forged = await issueCrl(
      {
        issuer: pki.oem.sub,
        revoked: [],
        thisUpdate: new Date(),
        nextUpdate: new Date(Date.now() + DAY),
        crlNumber: 2n,
      },
      pki.cpo.subSigner,
    )
    await rejects(validateCertificate({ ...base, crls: [forged.der] }), 'CRL_INVALID')
    await rejects(validateCertificate({ ...base, requireCrls: true }), 'CRL_INVALID')
  })

  it('prints like an ISO 15118 profile under openssl x509 -text', () => {
    const text = execFileSync('openssl', ['x509', '-noout', '-text'], {
      input: toPem('CERTIFICATE', pki.oem.sub.der),
      encoding: 'utf8',
    })
    assert.match(text, /CA:TRUE, pathlen:0/)
    assert.match(text, /Certificate Sign, CRL Sign/)
  })
})
