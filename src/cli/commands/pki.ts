/**
 * `carchain pki …`: a development PKI in a directory (src/identity/pki-directory.ts).
 * Secrets come from flags or the environment, parsed here once and passed down typed:
 * CARCHAIN_PASSPHRASE, CARCHAIN_PKCS11_MODULE, CARCHAIN_PKCS11_SLOT, CARCHAIN_PKCS11_PIN.
 */
import { readFile } from 'node:fs/promises'
import type { Address } from 'viem'
import { BaseError, type ErrorCode } from '../../errors.ts'
import { fromPem } from '../../identity/certificate.ts'
import { PkiDirectory } from '../../identity/pki-directory.ts'
import type { Command, FlagSpec, ParsedFlags } from '../command.ts'
import { integerFlag, requiredStringFlag, stringFlag } from '../flags.ts'
import { keyStorePassphrase, passphraseFlag } from '../passphrase.ts'
import { pkcs11Flags, pkcs11Options } from '../pkcs11.ts'

const keyFlags: Record<string, FlagSpec> = {
  dir: { type: 'string', value: 'DIR', description: 'PKI directory.', required: true },
  passphrase: passphraseFlag,
  ...pkcs11Flags('new keys go to its token'),
}

/** The codes that mean "this certificate is not valid" rather than "the command failed". */
const VERDICT_CODES = new Set<ErrorCode>([
  'CERT_MALFORMED',
  'CERT_UNSUPPORTED_KEY',
  'CERT_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_BAD_SIGNATURE',
  'CERT_WRONG_ROLE',
  'CERT_CONSTRAINTS',
  'CERT_REVOKED',
  'CERT_TOO_LARGE',
  'CRL_INVALID',
])

function openDirectory(flags: ParsedFlags, usesKeys: boolean): PkiDirectory {
  if (!usesKeys) return new PkiDirectory({ dir: requiredStringFlag(flags, 'dir'), passphrase: '' })
  const passphrase = keyStorePassphrase(flags)
  const pkcs11 = pkcs11Options(flags)
  return new PkiDirectory({
    dir: requiredStringFlag(flags, 'dir'),
    passphrase,
    ...(pkcs11 ? { pkcs11 } : {}),
  })
}

async function withDirectory<T>(
  flags: ParsedFlags,
  task: (pki: PkiDirectory) => Promise<T>,
  usesKeys = true,
): Promise<T> {
  const pki = openDirectory(flags, usesKeys)
  try {
    return await task(pki)
  } finally {
    await pki.close()
  }
}

async function readPem(path: string, flag: string): Promise<string> {
  try {
    return await readFile(path, 'utf8')
  } catch (error) {
    throw new BaseError('NOT_FOUND', `cannot read --${flag} ${path}`, {
      details: { flag, path },
      cause: error,
    })
  }
}

const issuedText = (what: string, r: { cert: string; chain: string; key: string }) =>
  `${what}\n  cert  ${r.cert}\n  chain ${r.chain}\n  key   ${r.key}`

const init: Command = {
  path: ['pki', 'init'],
  summary: 'Create the OEM and CPO hierarchies (root + sub-CA + CRL) in a directory.',
  flags: keyFlags,
  async run({ flags }) {
    const paths = await withDirectory(flags, (pki) => pki.init())
    return {
      data: paths,
      text: `PKI created\n  OEM root ${paths.roots.oem}\n  OEM sub  ${paths.subCAs.oem}\n  CPO root ${paths.roots.cpo}\n  CPO sub  ${paths.subCAs.cpo}`,
    }
  },
}

const issueVehicle: Command = {
  path: ['pki', 'issue', 'vehicle'],
  summary: 'Issue a vehicle certificate (CN = VIN, wallet bound as did:pkh); generates its keys.',
  flags: {
    ...keyFlags,
    vin: { type: 'string', value: 'VIN', description: 'Vehicle identification number.', required: true },
    'chain-id': {
      type: 'string',
      value: 'N',
      description: 'Chain id of the wallet binding.',
      default: '31337',
    },
    wallet: {
      type: 'string',
      value: 'ADDR',
      description: 'Existing wallet address (else a key is generated).',
    },
  },
  async run({ flags }) {
    const wallet = stringFlag(flags, 'wallet')
    if (wallet !== undefined && !/^0x[0-9a-fA-F]{40}$/.test(wallet))
      throw new BaseError('CLI_USAGE', '--wallet must be a 0x-prefixed 20-byte address', {
        details: { wallet },
      })
    const result = await withDirectory(flags, (pki) =>
      pki.issueVehicle({
        vin: requiredStringFlag(flags, 'vin'),
        chainId: integerFlag(flags, 'chain-id', { min: 1 }) as number,
        ...(wallet ? { wallet: wallet as Address } : {}),
      }),
    )
    return { data: result, text: issuedText('vehicle certificate issued', result) }
  },
}

const issueCharger: Command = {
  path: ['pki', 'issue', 'charger'],
  summary: 'Issue a charger certificate (CN = EVSE ID); generates its key.',
  flags: {
    ...keyFlags,
    evse: { type: 'string', value: 'ID', description: 'EVSE ID, e.g. DE*ABC*E123456.', required: true },
  },
  async run({ flags }) {
    const result = await withDirectory(flags, (pki) =>
      pki.issueCharger({ evseId: requiredStringFlag(flags, 'evse') }),
    )
    return { data: result, text: issuedText('charger certificate issued', result) }
  },
}

const issueComponent: Command = {
  path: ['pki', 'issue', 'component'],
  summary: 'Issue a component (ECU) certificate (CN = name, serialNumber = VIN); generates its key.',
  flags: {
    ...keyFlags,
    vehicle: {
      type: 'string',
      value: 'VIN',
      description: 'The vehicle the component belongs to.',
      required: true,
    },
    name: { type: 'string', value: 'NAME', description: 'Component name, e.g. BMS.', required: true },
  },
  async run({ flags }) {
    const result = await withDirectory(flags, (pki) =>
      pki.issueComponent({
        vin: requiredStringFlag(flags, 'vehicle'),
        name: requiredStringFlag(flags, 'name'),
      }),
    )
    return { data: result, text: issuedText('component certificate issued', result) }
  },
}

const verify: Command = {
  path: ['pki', 'verify'],
  summary: 'Validate a certificate for a role against the directory’s roots and CRLs (exit 1 if invalid).',
  flags: {
    ...keyFlags,
    cert: { type: 'string', value: 'PEM', description: 'The certificate.', required: true },
    chain: { type: 'string', value: 'PEM', description: 'Intermediate certificate(s).', required: true },
    role: { type: 'string', value: 'ROLE', description: 'vehicle | charger | component.', required: true },
  },
  async run({ flags }) {
    const role = requiredStringFlag(flags, 'role')
    if (role !== 'vehicle' && role !== 'charger' && role !== 'component')
      throw new BaseError('CLI_USAGE', '--role must be vehicle, charger or component', { details: { role } })
    const cert = await readPem(requiredStringFlag(flags, 'cert'), 'cert')
    const chainText = await readPem(requiredStringFlag(flags, 'chain'), 'chain')
    try {
      // Verifying needs no keys: no passphrase, no token.
      const identity = await withDirectory(
        flags,
        (pki) => pki.verify({ cert, chain: fromPem(chainText), role }),
        false,
      )
      return {
        data: { valid: true },
        text: `valid ${role} ${identity.commonName} (sha256 ${identity.fingerprint})`,
      }
    } catch (error) {
      if (!(error instanceof BaseError) || !VERDICT_CODES.has(error.code)) throw error
      return {
        data: { valid: false, code: error.code },
        text: `invalid: ${error.code} ${error.shortMessage}`,
        exitCode: 1,
      }
    }
  },
}

const revoke: Command = {
  path: ['pki', 'revoke'],
  summary: 'Revoke a certificate: add it to its sub-CA’s CRL and re-issue the CRL.',
  flags: {
    ...keyFlags,
    cert: { type: 'string', value: 'PEM', description: 'The certificate to revoke.', required: true },
  },
  async run({ flags }) {
    const cert = await readPem(requiredStringFlag(flags, 'cert'), 'cert')
    const result = await withDirectory(flags, (pki) => pki.revoke(cert))
    return {
      data: {
        revoked: true,
        serialNumber: result.serialNumber,
        fingerprint: result.fingerprint,
        crl: result.crl,
      },
      text: `revoked serial ${result.serialNumber}; CRL ${result.crl}`,
    }
  },
}

export const pkiCommands: readonly Command[] = [
  init,
  issueVehicle,
  issueCharger,
  issueComponent,
  verify,
  revoke,
]
