/**
 * The key store passphrase of a CLI command: from `--passphrase` or `CARCHAIN_PASSPHRASE`, never
 * a default. The development passphrase is public (the embedded demo's own key store uses it), so
 * a key store under it protects nothing: the CLI refuses to fall back to it, and refuses it
 * outright on any chain but the development chain.
 */
import { EMBEDDED_CHAIN_ID } from '../chain/anvil.ts'
import { BaseError } from '../errors.ts'
import { DEV_PASSPHRASE } from '../identity/pki-directory.ts'
import type { FlagSpec, ParsedFlags } from './command.ts'
import { stringFlag } from './flags.ts'

export const passphraseFlag: FlagSpec = {
  type: 'string',
  value: 'TEXT',
  description: 'Key store passphrase (env CARCHAIN_PASSPHRASE); required.',
}

/** The passphrase, or PASSPHRASE_REQUIRED; `chainId`: the chain the keys will act on, if any. */
export function keyStorePassphrase(flags: ParsedFlags, chainId?: number): string {
  const passphrase = stringFlag(flags, 'passphrase') ?? process.env.CARCHAIN_PASSPHRASE
  if (!passphrase)
    throw new BaseError(
      'PASSPHRASE_REQUIRED',
      'the key store needs a passphrase: pass --passphrase or set CARCHAIN_PASSPHRASE',
    )
  if (passphrase === DEV_PASSPHRASE && chainId !== undefined && chainId !== EMBEDDED_CHAIN_ID)
    throw new BaseError(
      'PASSPHRASE_REQUIRED',
      `the development passphrase is public and serves only the embedded demo, not chain ${chainId}: choose your own`,
      { details: { chainId } },
    )
  return passphrase
}
