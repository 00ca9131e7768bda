/**
 * Mutual TLS 1.3 between car and charger (ISO 15118-20 runs its sessions over TLS 1.3 with
 * mutual authentication). After the handshake each side validates the peer with Carchain's own
 * validator for the role it expects (vehicle or charger), plus the on-chain hooks, before any
 * application data is read.
 *
 * Two modes, one result (a `SecureSession`):
 *
 * - `certificate`: the identity certificates are the TLS certificates. node:tls must hold the
 *   private key, so this works only with the software key store.
 * - `channel-binding`: for keys in a secure element (PKCS#11), which node:tls cannot use. The TLS
 *   server runs with a throw-away certificate; then each side sends its certificate chain and a
 *   signature, made in its secure element, over the session's exporter value
 *   (RFC 8446 §7.5, label EXPORTER-carchain-identity-v1; cf. RFC 9266 tls-exporter). A
 *   man in the middle terminates two TLS sessions with two different exporter values, so it
 *   cannot forward a valid proof. A car's production TLS stack would instead let the secure
 *   element sign CertificateVerify through an OpenSSL provider/engine; see docs/identity.md.
 */
import { createHash, createPrivateKey } from 'node:crypto'
import { connect, createServer, type Server, type TLSSocket } from 'node:tls'
import { p256 } from '@noble/curves/nist.js'
import type { Address } from 'viem'
import { BaseError, toBaseError } from '../errors.ts'
import { type Certificate, issueCertificate, type Role, toPem } from './certificate.ts'
import type { Curve, KeyInfo, KeyRef, KeyStore } from './keystore.ts'
import { verifyP256 } from './signature.ts'
import { SoftwareKeyStore } from './software-keystore.ts'
import { type TrustAnchors, type ValidatedIdentity, validateCertificate } from './validate.ts'

export const EXPORTER_LABEL = 'EXPORTER-carchain-identity-v1'
const BINDING_DOMAIN = 'carchain/tls-binding/v1'
const MAX_FRAME_BYTES = 8192

/** Who this endpoint is: its P-256 identity key and certificate chain. */
export type TlsIdentity = {
  readonly store: KeyStore
  readonly keyRef: KeyRef
  /** Own leaf certificate (DER). */
  readonly certificate: Uint8Array
  /** Own intermediates (DER), leaf's issuer first. */
  readonly chain: readonly Uint8Array[]
}

/** Whom this endpoint accepts. */
export type PeerPolicy = {
  readonly role: Role
  readonly trustAnchors: TrustAnchors
  readonly crls?: readonly (Uint8Array | string)[]
  /** On-chain revocation by fingerprint. */
  readonly isRevoked?: (fingerprint: string) => Promise<boolean>
  /** On-chain registration (VehicleRegistry): false refuses with VEHICLE/CHARGER_NOT_REGISTERED. */
  readonly isRegistered?: (peer: ValidatedIdentity) => Promise<boolean>
}

export type TlsMode = 'certificate' | 'channel-binding'

export type TlsEndpointOptions = {
  readonly identity: TlsIdentity
  readonly peer: PeerPolicy
  /** Default: `certificate` for a software key store, `channel-binding` otherwise. Both ends must agree. */
  readonly mode?: TlsMode
  /** Bound on the identity exchange after the handshake; default 5000 ms. */
  readonly timeoutMs?: number
}

export type SecureSession = {
  readonly socket: TLSSocket
  readonly peer: ValidatedIdentity
  readonly mode: TlsMode
}

function modeOf(options: TlsEndpointOptions): TlsMode {
  return (
    options.mode ?? (options.identity.store instanceof SoftwareKeyStore ? 'certificate' : 'channel-binding')
  )
}

function pemChain(identity: TlsIdentity): string {
  return [identity.certificate, ...identity.chain].map((der) => toPem('CERTIFICATE', der)).join('')
}

/** A one-process, in-memory P-256 key for the throw-away TLS certificate of channel-binding mode. */
class EphemeralKey implements KeyStore {
  readonly kind = 'software' as const
  readonly #secret = p256.utils.randomSecretKey()
  readonly info: KeyInfo = {
    ref: 'ephemeral:tls',
    label: 'tls',
    curve: 'p256',
    publicKey: p256.getPublicKey(this.#secret, false),
  }
  generate(_curve: Curve, _label: string): Promise<KeyRef> {
    return Promise.reject(new BaseError('INTERNAL', 'an ephemeral key store holds one key'))
  }
  describe = async () => this.info
  publicKey = async () => this.info.publicKey
  ethereumAddress(): Promise<Address> {
    return Promise.reject(new BaseError('INVALID_ARGUMENT', 'not a wallet key'))
  }
  find = async () => undefined
  signDigest = async (_ref: KeyRef, digest: Uint8Array) => p256.sign(digest, this.#secret, { prehash: false })
  close = async () => {}
  pkcs8Pem(): string {
    const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64url')
    return createPrivateKey({
      format: 'jwk',
      key: {
        kty: 'EC',
        crv: 'P-256',
        d: b64(this.#secret),
        x: b64(this.info.publicKey.subarray(1, 33)),
        y: b64(this.info.publicKey.subarray(33)),
      },
    })
      .export({ format: 'pem', type: 'pkcs8' })
      .toString()
  }
}

/** A self-signed, one-day certificate for a throw-away key (channel-binding mode's TLS layer only). */
async function ephemeralCredentials(): Promise<{ cert: string; key: string }> {
  const key = new EphemeralKey()
  const now = Date.now()
  const cert: Certificate = await issueCertificate(
    {
      subject: [{ type: 'CN', value: 'carchain ephemeral TLS key' }],
      subjectPublicKey: key.info.publicKey,
      issuer: 'self',
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 86_400_000),
      keyUsage: ['digitalSignature'],
    },
    { store: key, ref: key.info.ref },
  )
  return { cert: toPem('CERTIFICATE', cert.der), key: key.pkcs8Pem() }
}

async function tlsKeyMaterial(options: TlsEndpointOptions): Promise<{ cert: string; key: string }> {
  if (modeOf(options) === 'channel-binding') return ephemeralCredentials()
  const { store, keyRef } = options.identity
  if (!(store instanceof SoftwareKeyStore))
    throw new BaseError(
      'CONFIG_INVALID',
      'certificate mode needs the key in node:tls; use channel-binding for PKCS#11 keys',
    )
  const key = (await store.tlsPrivateKey(keyRef)).export({ format: 'pem', type: 'pkcs8' }).toString()
  return { cert: pemChain(options.identity), key }
}

/** node:tls options for the server side (the charger). */
export async function tlsServerOptions(options: TlsEndpointOptions) {
  const { cert, key } = await tlsKeyMaterial(options)
  return {
    cert,
    key,
    minVersion: 'TLSv1.3' as const,
    // Certificate mode asks for the client's certificate; the verdict is ours, not OpenSSL's,
    // because only Carchain's validator knows roles, CRLs and the chain registry.
    requestCert: modeOf(options) === 'certificate',
    rejectUnauthorized: false,
  }
}

/** node:tls options for the client side (the car). */
export async function tlsClientOptions(options: TlsEndpointOptions) {
  const { cert, key } = await tlsKeyMaterial(options)
  return {
    ...(modeOf(options) === 'certificate' ? { cert, key } : {}),
    minVersion: 'TLSv1.3' as const,
    rejectUnauthorized: false,
    // Identity is the validated certificate's role and CN, not a DNS name.
    checkServerIdentity: () => undefined,
  }
}

/** What each side's identity key signs to bind its certificate to the TLS session (exported for the domain-separation test). */
export function bindingMessage(side: 'client' | 'server', exporter: Uint8Array): Uint8Array {
  return Uint8Array.from(Buffer.concat([Buffer.from(`${BINDING_DOMAIN}\0${side}\0`, 'utf8'), exporter]))
}

function writeFrame(socket: TLSSocket, payload: unknown): void {
  const body = Buffer.from(JSON.stringify(payload), 'utf8')
  const header = Buffer.alloc(4)
  header.writeUInt32BE(body.length)
  socket.write(Buffer.concat([header, body]))
}

/** Reads one length-prefixed frame; any bytes after it are put back for the application. */
function readFrame(socket: TLSSocket, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0)
    const finish = (error?: Error, frame?: Buffer) => {
      clearTimeout(timer)
      socket.pause()
      socket.off('data', onData)
      socket.off('close', onClose)
      socket.off('error', onError)
      if (error) reject(error)
      else resolve(frame as Buffer)
    }
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk])
      if (buffered.length < 4) return
      const length = buffered.readUInt32BE(0)
      if (length > MAX_FRAME_BYTES)
        return finish(new BaseError('UNAUTHENTICATED', 'identity frame too large', { details: { length } }))
      if (buffered.length < 4 + length) return
      // Stop reading first: unshifting into a flowing stream would hand the bytes back to us.
      finish(undefined, buffered.subarray(4, 4 + length))
      const rest = buffered.subarray(4 + length)
      if (rest.length) socket.unshift(rest)
    }
    const onClose = () =>
      finish(new BaseError('UNAUTHENTICATED', 'the peer closed before proving its identity'))
    const onError = (error: Error) => finish(toBaseError(error, 'UNAUTHENTICATED'))
    const timer = setTimeout(
      () => finish(new BaseError('TIMEOUT', `no identity proof within ${timeoutMs} ms`)),
      timeoutMs,
    )
    socket.on('data', onData)
    socket.once('close', onClose)
    socket.once('error', onError)
    socket.resume()
  })
}

/** The peer's certificates as node:tls received them, leaf first. */
function peerChainFromTls(socket: TLSSocket): Uint8Array[] {
  const out: Uint8Array[] = []
  let cert = socket.getPeerCertificate(true)
  while (cert?.raw && out.length < 5) {
    out.push(Uint8Array.from(cert.raw))
    if (
      !cert.issuerCertificate ||
      cert.issuerCertificate === cert ||
      cert.issuerCertificate.raw?.equals(cert.raw)
    )
      break
    cert = cert.issuerCertificate
  }
  return out
}

async function checkPeer(
  policy: PeerPolicy,
  certificate: Uint8Array,
  chain: Uint8Array[],
): Promise<ValidatedIdentity> {
  const peer = await validateCertificate({
    certificate,
    chain,
    role: policy.role,
    trustAnchors: policy.trustAnchors,
    ...(policy.crls ? { crls: policy.crls } : {}),
    ...(policy.isRevoked ? { isRevoked: policy.isRevoked } : {}),
  })
  if (policy.isRegistered && !(await policy.isRegistered(peer)))
    throw new BaseError(
      policy.role === 'charger' ? 'CHARGER_NOT_REGISTERED' : 'VEHICLE_NOT_REGISTERED',
      `${policy.role} ${peer.commonName} is not registered on chain`,
      { details: { fingerprint: peer.fingerprint } },
    )
  return peer
}

/**
 * Runs after the TLS handshake on either side: validates the peer for `options.peer.role` and,
 * in channel-binding mode, exchanges exporter-bound identity proofs. Throws a BaseError (the
 * validator's code, UNAUTHENTICATED, TIMEOUT or *_NOT_REGISTERED); the caller then destroys the socket.
 */
export async function authenticatePeer(
  socket: TLSSocket,
  options: TlsEndpointOptions,
  side: 'client' | 'server',
): Promise<ValidatedIdentity> {
  if (socket.getProtocol() !== 'TLSv1.3')
    throw new BaseError('UNAUTHENTICATED', 'TLS 1.3 is required', {
      details: { protocol: socket.getProtocol() },
    })
  if (modeOf(options) === 'certificate') {
    const [leaf, ...chain] = peerChainFromTls(socket)
    if (!leaf) throw new BaseError('UNAUTHENTICATED', 'the peer presented no certificate')
    return checkPeer(options.peer, leaf, chain)
  }
  const exporter = Uint8Array.from(socket.exportKeyingMaterial(32, EXPORTER_LABEL, Buffer.alloc(0)))
  const own = options.identity
  const digest = createHash('sha256').update(bindingMessage(side, exporter)).digest()
  const signature = await own.store.signDigest(own.keyRef, digest)
  const pending = readFrame(socket, options.timeoutMs ?? 5000)
  writeFrame(socket, {
    v: 1,
    chain: [own.certificate, ...own.chain].map((der) => Buffer.from(der).toString('base64')),
    signature: Buffer.from(signature).toString('base64'),
  })
  const frame = await pending
  let proof: { v: number; chain: string[]; signature: string }
  try {
    proof = JSON.parse(frame.toString('utf8'))
    if (proof.v !== 1 || !Array.isArray(proof.chain) || typeof proof.signature !== 'string')
      throw new TypeError('shape')
  } catch (error) {
    throw new BaseError('UNAUTHENTICATED', 'malformed identity proof', { cause: error })
  }
  const [leaf, ...chain] = proof.chain.map((b64) => Uint8Array.from(Buffer.from(b64, 'base64')))
  if (!leaf) throw new BaseError('UNAUTHENTICATED', 'the identity proof has no certificate')
  const peer = await checkPeer(options.peer, leaf, chain)
  const peerSide = side === 'client' ? 'server' : 'client'
  const peerSignature = Uint8Array.from(Buffer.from(proof.signature, 'base64'))
  if (!verifyP256(peer.publicKey, bindingMessage(peerSide, exporter), peerSignature, 'p1363'))
    throw new BaseError('UNAUTHENTICATED', 'the identity proof is not bound to this TLS session', {
      details: { fingerprint: peer.fingerprint },
    })
  return peer
}

/**
 * A TLS 1.3 server that hands out only authenticated sessions. Refused connections are destroyed
 * and reported through `onRejected`. The session's socket is handed over paused (as net's
 * `pauseOnConnect`): attach listeners, then `resume()` or pipe it.
 */
export async function createIdentityServer(
  options: TlsEndpointOptions,
  onSession: (session: SecureSession) => void,
  onRejected: (error: BaseError) => void = () => {},
): Promise<Server> {
  const server = createServer(await tlsServerOptions(options), (socket) => {
    socket.pause()
    authenticatePeer(socket, options, 'server').then(
      (peer) => onSession({ socket, peer, mode: modeOf(options) }),
      (error: unknown) => {
        socket.destroy()
        onRejected(toBaseError(error))
      },
    )
  })
  return server
}

/**
 * Connects as a client and returns the authenticated session (or throws, having closed the
 * socket). The socket is returned paused, like the server's.
 */
export async function connectIdentity(
  options: TlsEndpointOptions & { readonly host: string; readonly port: number },
): Promise<SecureSession> {
  const tlsOptions = await tlsClientOptions(options)
  const socket = await new Promise<TLSSocket>((resolve, reject) => {
    const s = connect({ ...tlsOptions, host: options.host, port: options.port }, () => resolve(s))
    s.once('error', reject)
  })
  socket.pause()
  try {
    return { socket, peer: await authenticatePeer(socket, options, 'client'), mode: modeOf(options) }
  } catch (error) {
    socket.destroy()
    throw toBaseError(error)
  }
}
