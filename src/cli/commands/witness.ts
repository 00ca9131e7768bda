/** `carchain witness`: a minimal c2sp.org/tlog-witness a second party runs to cosign a log's checkpoints. */
import { resolve } from 'node:path'
import { BaseError } from '../../errors.ts'
import { startWitness } from '../../node/witness-server.ts'
import type { Command } from '../command.ts'
import { integerFlag, listFlag, requiredStringFlag, stringFlag } from '../flags.ts'
import { pkcs11Flags, pkcs11Options } from '../pkcs11.ts'

const witness: Command = {
  path: ['witness'],
  summary:
    'Run a transparency-log witness (c2sp.org/tlog-witness): cosign checkpoints of the given logs that extend what it cosigned before.',
  flags: {
    data: {
      type: 'string',
      value: 'DIR',
      description:
        'Data directory: the cosigner key (witness-key.pem, made on first start) and one record per log.',
      default: './witness-data',
    },
    name: {
      type: 'string',
      value: 'NAME',
      description: 'The witness’s name (its key name), a schema-less URL such as witness.example/w1.',
      required: true,
    },
    log: {
      type: 'string',
      value: 'KEY',
      multiple: true,
      description:
        'The note verifier key of a log to witness (<origin>+<hex>+<base64>, GET /v1/chain → log.verifierKey; each shard is a log: log.shards[].verifierKey); repeatable.',
    },
    port: { type: 'string', value: 'N', description: 'HTTP port.', default: '8090' },
    host: { type: 'string', value: 'IP', description: 'Interface to bind.', default: '127.0.0.1' },
    ...pkcs11Flags(
      'its token keeps the cosigner key (carchain-witness), made there on first start, never extractable',
    ),
  },
  async run({ flags, io }) {
    const logs = listFlag(flags, 'log')
    if (logs.length === 0)
      throw new BaseError('CLI_USAGE', 'give at least one --log KEY', { details: { flag: 'log' } })
    const running = await startWitness({
      dataDir: resolve(stringFlag(flags, 'data') ?? './witness-data'),
      name: requiredStringFlag(flags, 'name'),
      logs,
      host: stringFlag(flags, 'host') ?? '127.0.0.1',
      port: integerFlag(flags, 'port', { min: 0, max: 65535 }) ?? 8090,
      pkcs11: pkcs11Options(flags),
    })
    const info = {
      event: 'witness',
      url: running.url,
      verifierKey: running.witness.verifierKey,
      key: running.key,
    }
    if (io.json) io.print(JSON.stringify(info))
    else
      io.print(
        [
          `witness ${running.created ? '(new key) ' : ''}listening on ${running.url}`,
          `  verifier key   ${running.witness.verifierKey}`,
          `  key            ${running.key}`,
          `  node flag      --witness ${running.url}=${running.witness.verifierKey}`,
          ...[...running.witness.logs.keys()].map((origin) => `  witnesses      ${origin}`),
        ].join('\n'),
      )
    await new Promise<void>((done) => {
      if (io.stopSignal.aborted) done()
      io.stopSignal.addEventListener('abort', () => done(), { once: true })
    })
    await running.stop()
    return { data: { event: 'stopped' }, text: 'witness stopped.' }
  },
}

export const witnessCommands: readonly Command[] = [witness]
