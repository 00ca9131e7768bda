/**
 * Identity: key stores (software, PKCS#11), the PKI, validation, component authentication and mutual TLS (docs/identity.md).
 * The public library surface for integrators (package export `carchain/identity`).
 */

export * from './account.ts'
export * from './certificate.ts'
export * from './components.ts'
export * from './crl.ts'
export * from './keystore.ts'
export * from './pkcs11-keystore.ts'
export * from './pki-directory.ts'
export * from './profiles.ts'
export * from './registry-revocation.ts'
export * from './secp256k1-fixed.ts'
export * from './signature.ts'
export * from './software-keystore.ts'
export * from './tls.ts'
export * from './validate.ts'
export * from './vehicle-certificate.ts'
export * from './vehicle-registration.ts'
