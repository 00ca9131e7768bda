#!/usr/bin/env node
/**
 * `carchain` — the command-line entry point: finds the command in the table, parses its flags,
 * runs it, prints the result. Errors print `code: message` (or `{code, message, details}` with
 * `--json`) and exit non-zero: 2 for usage errors, 1 otherwise.
 */
import { parseArgs } from 'node:util'
import { BaseError, toBaseError } from '../errors.ts'
import type { Command, CommandIo, ParsedFlags } from './command.ts'
import { commands } from './commands/index.ts'

const globalFlags = {
  json: { type: 'boolean', description: 'Machine-readable output on stdout.' },
  help: { type: 'boolean', description: 'Show help for the command.' },
} as const

/** Finds the longest command path that prefixes `argv`. */
export function findCommand(argv: readonly string[]): { command: Command; rest: string[] } | undefined {
  let best: Command | undefined
  for (const command of commands) {
    const matches = command.path.every((word, i) => argv[i] === word)
    if (matches && (!best || command.path.length > best.path.length)) best = command
  }
  return best && { command: best, rest: argv.slice(best.path.length) }
}

export function usage(command: Command): string {
  const flags = Object.entries({ ...command.flags, ...globalFlags }).map(([name, spec]) => {
    const value = 'value' in spec && spec.value ? ` ${spec.value}` : ''
    const def = 'default' in spec && spec.default !== undefined ? ` (default ${spec.default})` : ''
    return `  --${name}${value}`.padEnd(28) + ` ${spec.description}${def}`
  })
  const positionals = command.positionals?.length ? ` ${command.positionals.join(' ')}` : ''
  return [`carchain ${command.path.join(' ')}${positionals} [flags]`, '', command.summary, '', ...flags].join(
    '\n',
  )
}

export function overview(): string {
  const width = Math.max(...commands.map((c) => c.path.join(' ').length)) + 2
  return [
    'carchain — a car as a member of an Ethereum network',
    '',
    'Usage: carchain <command> [flags]   (carchain <command> --help for its flags)',
    '',
    ...commands.map((c) => `  ${c.path.join(' ').padEnd(width)}${c.summary}`),
  ].join('\n')
}

export function parseCommandFlags(
  command: Command,
  rest: string[],
): { flags: ParsedFlags; positionals: string[] } {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = {}
  for (const [name, spec] of Object.entries({ ...command.flags, ...globalFlags }))
    options[name] = { type: spec.type, ...('multiple' in spec && spec.multiple ? { multiple: true } : {}) }
  let parsed: ReturnType<typeof parseArgs>
  try {
    parsed = parseArgs({ args: rest, options, allowPositionals: true, strict: true })
  } catch (error) {
    throw new BaseError('CLI_USAGE', (error as Error).message, {
      details: { command: command.path.join(' ') },
    })
  }
  const flags = parsed.values as ParsedFlags
  for (const [name, spec] of Object.entries(command.flags)) {
    if (flags[name] === undefined && spec.default !== undefined) flags[name] = spec.default
    if (spec.required && flags[name] === undefined && !flags.help)
      throw new BaseError('CLI_USAGE', `--${name} is required`, { details: { flag: name } })
  }
  const max = command.positionals?.length ?? 0
  if (parsed.positionals.length > max)
    throw new BaseError('CLI_USAGE', `unexpected argument "${parsed.positionals[max]}"`, {
      details: { command: command.path.join(' ') },
    })
  return { flags, positionals: parsed.positionals }
}

/** Runs the CLI with `argv` (without node and script); returns the exit code. */
export async function runCli(argv: string[], stopSignal: AbortSignal): Promise<number> {
  const json = argv.includes('--json')
  const io: CommandIo = {
    json,
    progress: (message) => process.stderr.write(`${message}\n`),
    print: (line) => process.stdout.write(`${line}\n`),
    stopSignal,
  }
  try {
    if (argv.length === 0 || argv[0] === 'help' || argv[0] === '--help') {
      process.stdout.write(`${overview()}\n`)
      return 0
    }
    const found = findCommand(argv)
    if (!found)
      throw new BaseError(
        'CLI_USAGE',
        `unknown command "${argv.filter((a) => !a.startsWith('-')).join(' ')}"; see carchain help`,
      )
    const { flags, positionals } = parseCommandFlags(found.command, found.rest)
    if (flags.help) {
      process.stdout.write(`${usage(found.command)}\n`)
      return 0
    }
    const result = await found.command.run({ flags, positionals, io })
    if (json) process.stdout.write(`${JSON.stringify(result.data, jsonReplacer)}\n`)
    else process.stdout.write(`${result.text ?? JSON.stringify(result.data, jsonReplacer, 2)}\n`)
    return result.exitCode ?? 0
  } catch (thrown) {
    const error = toBaseError(thrown)
    if (json) process.stdout.write(`${JSON.stringify(error.toJSON(), jsonReplacer)}\n`)
    else {
      process.stderr.write(`error ${error.code}: ${error.shortMessage}\n`)
      if (error.code === 'INTERNAL' && thrown instanceof Error && thrown.stack)
        process.stderr.write(`${thrown.stack}\n`)
    }
    return error.code === 'CLI_USAGE' ? 2 : 1
  }
}

/** bigint as decimal string; Uint8Array as 0x-hex. */
export function jsonReplacer(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString()
  if (value instanceof Uint8Array) return `0x${Buffer.from(value).toString('hex')}`
  return value
}

/** The process entry: wires signals to an AbortSignal and sets the exit code. */
export async function main(): Promise<void> {
  const controller = new AbortController()
  let signals = 0
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1
    if (signals > 1) {
      process.stderr.write(`\n${signal} again: exiting now\n`)
      process.exit(130)
    }
    controller.abort(signal)
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  process.exitCode = await runCli(process.argv.slice(2), controller.signal)
}

if (import.meta.main) await main()
