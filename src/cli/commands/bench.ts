/**
 * `carchain bench`: the performance figures of issue 8 (the same run as `npm run bench`, see
 * bench/run.ts and docs/performance.md), each marked met or missed against its target.
 */
import { writeFileSync } from 'node:fs'
import type { BenchGroup } from '../../../bench/harness.ts'
import { BaseError } from '../../errors.ts'
import type { Command } from '../command.ts'
import { booleanFlag, stringFlag } from '../flags.ts'

const bench: Command = {
  path: ['bench'],
  summary: 'Measure every performance target (ingest, Merkle, anchoring, unlock, charging gas, start-up).',
  flags: {
    quick: {
      type: 'boolean',
      description: 'A fast smoke run: small workloads, few rounds (indicative only).',
    },
    out: { type: 'string', value: 'FILE', description: 'Also write {"machine","results"} JSON to FILE.' },
    only: {
      type: 'string',
      value: 'GROUPS',
      description:
        'Comma-separated groups to run: merkle, tiles, vouchers, ingest, postgres, scale, chain, startup.',
    },
    database: {
      type: 'string',
      value: 'URL',
      description: 'PostgreSQL for the PostgreSQL ingest figure (env DATABASE_URL).',
    },
  },
  async run({ flags, io }) {
    // Loaded on use, and only in a source checkout: the bench (bench/, test fixtures, dev-only
    // packages such as OpenZeppelin's tree) is not part of the npm package.
    let harness: typeof import('../../../bench/harness.ts')
    let runner: typeof import('../../../bench/run.ts')
    try {
      harness = await import('../../../bench/harness.ts')
      runner = await import('../../../bench/run.ts')
    } catch (error) {
      throw new BaseError(
        'NOT_FOUND',
        'the bench runs from a source checkout: git clone, npm install, npm run bench',
        {
          cause: error,
        },
      )
    }
    const { benchGroups, formatTable } = harness
    const only = stringFlag(flags, 'only')
    const groups = only?.split(',').map((g) => g.trim()) as BenchGroup[] | undefined
    const unknown = groups?.filter((g) => !benchGroups.includes(g)) ?? []
    if (unknown.length > 0)
      throw new BaseError('CLI_USAGE', `unknown bench group(s) ${unknown.join(', ')}`, {
        details: { groups: unknown, known: benchGroups },
      })
    const report = await runner.runBench({
      quick: booleanFlag(flags, 'quick'),
      databaseUrl: stringFlag(flags, 'database') ?? (process.env.DATABASE_URL || undefined),
      progress: io.progress,
      groups,
    })
    const out = stringFlag(flags, 'out')
    if (out !== undefined) writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`)
    return { data: report, text: formatTable(report.results) }
  },
}

export const benchCommands: readonly Command[] = [bench]
