/**
 * The PKCS#11 token flags the commands that keep keys on a token share (`carchain pki`,
 * `carchain up`, `carchain witness`): `--pkcs11-module`, `--pkcs11-slot`, `--pkcs11-pin`, or
 * CARCHAIN_PKCS11_MODULE, CARCHAIN_PKCS11_SLOT (default 0), CARCHAIN_PKCS11_PIN.
 */
import { BaseError } from '../errors.ts'
import type { Pkcs11KeyStoreOptions } from '../identity/pkcs11-keystore.ts'
import type { FlagSpec, ParsedFlags } from './command.ts'
import { integerFlag, stringFlag } from './flags.ts'

/** The three flags; `module` says what the token keeps. */
export function pkcs11Flags(module: string): Record<string, FlagSpec> {
  return {
    'pkcs11-module': {
      type: 'string',
      value: 'PATH',
      description: `PKCS#11 library: ${module} (env CARCHAIN_PKCS11_MODULE).`,
    },
    'pkcs11-slot': {
      type: 'string',
      value: 'N',
      description: 'PKCS#11 slot ID or index (env CARCHAIN_PKCS11_SLOT; default 0).',
    },
    'pkcs11-pin': {
      type: 'string',
      value: 'PIN',
      description: 'PKCS#11 user PIN (env CARCHAIN_PKCS11_PIN).',
    },
  }
}

/** The token the flags (or the environment) name; undefined without a module. CLI_USAGE without a PIN. */
export function pkcs11Options(flags: ParsedFlags): Pkcs11KeyStoreOptions | undefined {
  const module = stringFlag(flags, 'pkcs11-module') ?? process.env.CARCHAIN_PKCS11_MODULE
  if (!module) return undefined
  const slot =
    integerFlag(flags, 'pkcs11-slot', { min: 0 }) ??
    integerFlag({ 'pkcs11-slot': process.env.CARCHAIN_PKCS11_SLOT }, 'pkcs11-slot', { min: 0 }) ??
    0
  const pin = stringFlag(flags, 'pkcs11-pin') ?? process.env.CARCHAIN_PKCS11_PIN
  if (!pin)
    throw new BaseError(
      'CLI_USAGE',
      '--pkcs11-pin (or CARCHAIN_PKCS11_PIN) is required with a PKCS#11 module',
    )
  return { module, slot, pin }
}
