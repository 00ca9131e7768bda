/**
 * Carchain's one structured logger (pino, the logger fastify is built on): JSON lines on stderr,
 * each with a `component` naming the part that logged. Every background failure is logged here,
 * never swallowed: `const log = logger('indexer'); log.error({ err }, 'sync failed')`.
 *
 * The level comes from `CARCHAIN_LOG_LEVEL` (default `info`; `silent` turns logging off). Tests
 * read what was logged with `captureLogs()`.
 */
import { type Logger, pino } from 'pino'

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace'
type LogFn = (fields: Record<string, unknown>, message: string) => void

/** A component's logger: one method per level, taking structured fields and a message. */
export type ComponentLogger = Record<Level, LogFn>

const levels: Level[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace']

let root: Logger = pino(
  { level: process.env.CARCHAIN_LOG_LEVEL ?? 'info', base: undefined },
  pino.destination({ fd: 2, sync: true }),
)

/**
 * The logger of one component (`'indexer'`, `'ledger.ingest'`, …). It writes through whatever
 * root is current, so `captureLogs()` also sees loggers made before it.
 */
export function logger(component: string): ComponentLogger {
  const log = {} as ComponentLogger
  for (const level of levels) log[level] = (fields, message) => root[level]({ component, ...fields }, message)
  return log
}

export type LogRecord = { level: number; component: string; msg: string; err?: { message: string } } & Record<
  string,
  unknown
>

/** Collects every record logged until `restore()` (for tests); nothing reaches stderr meanwhile. */
export function captureLogs(): { records: LogRecord[]; restore: () => void } {
  const previous = root
  const records: LogRecord[] = []
  root = pino(
    { level: 'trace', base: undefined },
    { write: (line: string) => void records.push(JSON.parse(line)) },
  )
  return {
    records,
    restore: () => {
      root = previous
    },
  }
}
