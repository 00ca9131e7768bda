/**
 * For tests that run `carchain charge station` (and `charge session`) against a test PKI: the
 * command line, with the certificates it names written as PEM files, so every test starts the
 * station the same way whether it runs the CLI in process or as a child process.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { type Certificate, toPem } from '../../identity/certificate.ts'
import type { TestPki } from '../../identity/pki.testkit.ts'

/** `--identity-key K --cert <cert.pem> --chain <issuer.pem>`, the PEM files written into `dir` as `<name>.pem` and `<name>-issuer.pem`. */
export function identityArgs(
  dir: string,
  name: string,
  identity: { keyRef: string; cert: Certificate },
  issuer: Certificate,
): string[] {
  return [
    '--identity-key',
    identity.keyRef,
    '--cert',
    pemFile(dir, `${name}.pem`, identity.cert),
    '--chain',
    pemFile(dir, `${name}-issuer.pem`, issuer),
  ]
}

/** A PEM file of `cert` in `dir`; its path. */
export function pemFile(dir: string, name: string, cert: Certificate): string {
  const path = join(dir, name)
  writeFileSync(path, toPem('CERTIFICATE', cert.der))
  return path
}

/**
 * `charge station` for `charger` of `pki` at `evseId` on a free port: its wallet is the key store's
 * `charger-wallet`, its operator's key `cpo`, and it trusts the PKI's OEM root.
 */
export function chargeStationArgs(
  dir: string,
  pki: TestPki,
  charger: { keyRef: string; cert: Certificate },
  evseId: string,
): string[] {
  return [
    'charge',
    'station',
    '--wallet',
    'charger-wallet',
    '--cpo-key',
    'cpo',
    ...identityArgs(dir, 'charger', charger, pki.cpo.sub),
    '--oem-root',
    pemFile(dir, 'oem-root.pem', pki.oem.root),
    '--evse',
    evseId,
    '--port',
    '0',
  ]
}

/** What every command of these tests takes: the chain, data dir and key store, and JSON output. */
export function commonArgs(rpcUrl: string, dataDir: string, keystore: string): string[] {
  return ['--rpc', rpcUrl, '--data', dataDir, '--keystore', keystore, '--passphrase', 'test', '--json']
}

/** Collects what a command run in this process prints (`process.stdout`) until `restore()`. */
export function captureStdout(): { readonly text: string; clear(): void; restore(): void } {
  let text = ''
  const write = process.stdout.write.bind(process.stdout)
  process.stdout.write = ((chunk: string) => {
    text += chunk
    return true
  }) as typeof process.stdout.write
  return {
    get text() {
      return text
    },
    clear: () => {
      text = ''
    },
    restore: () => {
      process.stdout.write = write
    },
  }
}
