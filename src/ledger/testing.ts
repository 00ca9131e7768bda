/**
 * Test fixtures for the ledger (used by tests and benches, not by the app): a software P-256
 * signer over node:crypto, standing in for the identity key store's signers.
 */
import { generateKeyPairSync, sign } from 'node:crypto'
import type { P256Signer } from './envelope.ts'

/** A fresh P-256 key: its signer (raw r‖s over SHA-256(message)) and raw public point. */
export function aP256Signer(): { signer: P256Signer; publicKey: Uint8Array } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const jwk = publicKey.export({ format: 'jwk' })
  const raw = Buffer.concat([
    Buffer.from([4]),
    Buffer.from(jwk.x!, 'base64url'),
    Buffer.from(jwk.y!, 'base64url'),
  ])
  return {
    signer: {
      sign: async (message) =>
        new Uint8Array(sign('sha256', message, { key: privateKey, dsaEncoding: 'ieee-p1363' })),
    },
    publicKey: new Uint8Array(raw),
  }
}
