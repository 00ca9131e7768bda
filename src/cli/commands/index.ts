/**
 * The command table. Each domain contributes its commands from its own file; this is the only
 * list of them.
 */
import type { Command } from '../command.ts'
import { benchCommands } from './bench.ts'
import { chargeCommands } from './charge.ts'
import { keyCommands } from './key.ts'
import { ledgerCommands } from './ledger.ts'
import { pkiCommands } from './pki.ts'
import { nodeCommands } from './up.ts'
import { witnessCommands } from './witness.ts'

export const commands: readonly Command[] = [
  ...nodeCommands,
  ...pkiCommands,
  ...keyCommands,
  ...chargeCommands,
  ...ledgerCommands,
  ...benchCommands,
  ...witnessCommands,
]
