/**
 * The shape of a `carchain` command. The CLI is a lookup table from a command path
 * (`pki issue vehicle`) to a handler that calls the library; the handler returns data, and the
 * CLI prints it — as JSON with `--json`, otherwise as the handler's text.
 */
import type { BaseError } from '../errors.ts'

export type FlagSpec = {
  readonly type: 'string' | 'boolean'
  readonly description: string
  /** Placeholder in usage lines, e.g. `DIR`. */
  readonly value?: string
  readonly default?: string | boolean
  /** May be given more than once (collects into an array). */
  readonly multiple?: boolean
  /** Required: missing gives CLI_USAGE. */
  readonly required?: boolean
}

export type ParsedFlags = Record<string, string | boolean | string[] | undefined>

/** Where a command talks to the person or program running it. */
export type CommandIo = {
  /** `--json` was given: print nothing but the result on stdout. */
  readonly json: boolean
  /** A progress or status line for people: to stderr, so stdout stays parseable. */
  progress(message: string): void
  /** A line of output while the command runs (long-running commands: `up`); stdout. */
  print(line: string): void
  /** Resolves when the process is asked to stop (SIGINT/SIGTERM): long-running commands await it. */
  readonly stopSignal: AbortSignal
}

export type CommandResult = {
  /** The machine-readable result (printed with `--json`). */
  readonly data: unknown
  /** The human-readable result (printed without `--json`); defaults to YAML-ish JSON. */
  readonly text?: string
  /** Process exit code; default 0. A domain verdict such as "invalid" may use 1. */
  readonly exitCode?: number
}

export type Command = {
  /** The words that select it, e.g. `['pki', 'issue', 'vehicle']`. */
  readonly path: readonly string[]
  readonly summary: string
  readonly flags: Readonly<Record<string, FlagSpec>>
  /** Positional arguments it takes, for usage lines, e.g. `['FILE']`. */
  readonly positionals?: readonly string[]
  run(input: { flags: ParsedFlags; positionals: string[]; io: CommandIo }): Promise<CommandResult>
}

/** The `--json` error output and the text a person sees. */
export type CommandError = ReturnType<BaseError['toJSON']>
