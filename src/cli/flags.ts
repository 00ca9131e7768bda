/** Typed readers for parsed flags; a wrong form is a CLI_USAGE error naming the flag. */
import { BaseError } from '../errors.ts'
import type { ParsedFlags } from './command.ts'

export function stringFlag(flags: ParsedFlags, name: string): string | undefined {
  const value = flags[name]
  if (value === undefined) return undefined
  if (typeof value !== 'string')
    throw new BaseError('CLI_USAGE', `--${name} needs a value`, { details: { flag: name } })
  return value
}

export function requiredStringFlag(flags: ParsedFlags, name: string): string {
  const value = stringFlag(flags, name)
  if (value === undefined || value === '')
    throw new BaseError('CLI_USAGE', `--${name} is required`, { details: { flag: name } })
  return value
}

export function integerFlag(
  flags: ParsedFlags,
  name: string,
  range: { min?: number; max?: number } = {},
): number | undefined {
  const raw = stringFlag(flags, name)
  if (raw === undefined) return undefined
  const value = Number(raw)
  const { min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER } = range
  if (!/^-?\d+$/.test(raw) || !Number.isSafeInteger(value) || value < min || value > max)
    throw new BaseError('CLI_USAGE', `--${name} must be an integer from ${min} to ${max}, not "${raw}"`, {
      details: { flag: name, value: raw, min, max },
    })
  return value
}

export function booleanFlag(flags: ParsedFlags, name: string): boolean {
  return flags[name] === true
}

/** A repeatable string flag (`multiple: true`): its values in order, [] when absent. */
export function listFlag(flags: ParsedFlags, name: string): string[] {
  const value = flags[name]
  if (value === undefined) return []
  if (typeof value === 'boolean')
    throw new BaseError('CLI_USAGE', `--${name} needs a value`, { details: { flag: name } })
  return typeof value === 'string' ? [value] : value
}
