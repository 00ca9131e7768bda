/**
 * The bench harness: repeated timing with a warm-up, medians with their spread, targets, the
 * machine, and the two outputs (a table for people, `{"machine","results"}` JSON for programs).
 *
 * The machines are shared and noisy, so each figure is a median over rounds, and every ratio
 * is taken per round from two timings made back to back in the same process (then the median
 * of the per-round ratios), never from timings made minutes apart.
 */
import { cpus, freemem, totalmem } from 'node:os'

/** How a figure is judged: `>=` or `<=` a value, and where the target was set. */
export type Target = { readonly op: '>=' | '<='; readonly value: number; readonly source: string }

/** The groups a run can be limited to (`--only`); the chain group holds every on-chain figure. */
export type BenchGroup =
  | 'merkle'
  | 'tiles'
  | 'vouchers'
  | 'ingest'
  | 'postgres'
  | 'nodes'
  | 'scale'
  | 'chain'
  | 'nfc'
  | 'startup'
export const benchGroups: readonly BenchGroup[] = [
  'merkle',
  'tiles',
  'vouchers',
  'ingest',
  'postgres',
  'nodes',
  'scale',
  'chain',
  'nfc',
  'startup',
]

export type Status = 'met' | 'missed' | 'info' | 'skipped'

/** One line of the report. `value` is null when the figure was skipped. */
export type BenchResult = {
  readonly name: string
  readonly value: number | null
  readonly unit: string
  readonly detail: Record<string, unknown> & { status: Status }
}

/** The samples of a figure, summarised. */
export type Summary = { median: number; min: number; max: number; runs: number }

export type BenchOptions = {
  /** A fast smoke run: fewer rounds, smaller workloads; figures are indicative only. */
  readonly quick: boolean
  /** PostgreSQL for `ledger.ingest_events_per_s_postgres`; skipped when undefined. */
  readonly databaseUrl: string | undefined
  /** Progress lines for people (stderr). */
  readonly progress: (message: string) => void
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

export function summarize(samples: readonly number[]): Summary {
  return {
    median: median(samples),
    min: Math.min(...samples),
    max: Math.max(...samples),
    runs: samples.length,
  }
}

/** Runs `round` `warmup` times unmeasured, then `rounds` times; resolves with every result. */
export async function repeat<T>(rounds: number, warmup: number, round: (i: number) => T | Promise<T>) {
  for (let i = 0; i < warmup; i++) await round(-1 - i)
  const results: T[] = []
  for (let i = 0; i < rounds; i++) results.push(await round(i))
  return results
}

/** Milliseconds taken by `fn`. */
export async function timeMs(fn: () => unknown): Promise<number> {
  const started = performance.now()
  await fn()
  return performance.now() - started
}

/** met / missed against a target; `info` when the figure has none. */
export function judge(value: number, target: Target | undefined): Status {
  if (target === undefined) return 'info'
  return (target.op === '>=' ? value >= target.value : value <= target.value) ? 'met' : 'missed'
}

/** A result from samples: the median is the value, the spread goes in the detail. */
export function resultOf(
  name: string,
  unit: string,
  samples: readonly number[],
  target: Target | undefined,
  detail: Record<string, unknown> = {},
): BenchResult {
  const summary = summarize(samples)
  return {
    name,
    value: round3(summary.median),
    unit,
    detail: {
      status: judge(summary.median, target),
      ...(target ? { target: `${target.op} ${target.value}`, targetSource: target.source } : {}),
      min: round3(summary.min),
      max: round3(summary.max),
      runs: summary.runs,
      ...detail,
    },
  }
}

/** A count that does not depend on the machine (gas): one measurement is the figure. */
export function countResult(
  name: string,
  unit: string,
  value: number,
  target: Target | undefined,
  detail: Record<string, unknown> = {},
): BenchResult {
  return {
    name,
    value: round3(value),
    unit,
    detail: {
      status: judge(value, target),
      ...(target ? { target: `${target.op} ${target.value}`, targetSource: target.source } : {}),
      deterministic: true,
      ...detail,
    },
  }
}

export function skipped(name: string, unit: string, reason: string, target?: Target): BenchResult {
  return {
    name,
    value: null,
    unit,
    detail: {
      status: 'skipped',
      reason,
      ...(target ? { target: `${target.op} ${target.value}`, targetSource: target.source } : {}),
    },
  }
}

/** A benchmark group that failed: each of its figures is reported as missing, with the error. */
export function failed(names: readonly { name: string; unit: string }[], error: unknown): BenchResult[] {
  const message = error instanceof Error ? error.message.split('\n')[0]! : String(error)
  return names.map(({ name, unit }) => ({
    name,
    value: null,
    unit,
    detail: { status: 'missed', error: message },
  }))
}

export function round3(value: number): number {
  if (!Number.isFinite(value)) return value
  const magnitude = Math.abs(value)
  const digits = magnitude >= 1000 ? 0 : magnitude >= 10 ? 2 : 3
  return Number(value.toFixed(digits))
}

export type Machine = {
  cpu: string
  cores: number
  memoryGb: number
  freeMemoryGb: number
  node: string
  platform: string
  quick: boolean
  date: string
}

export function machine(quick: boolean): Machine {
  const list = cpus()
  return {
    cpu: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    memoryGb: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    freeMemoryGb: Math.round((freemem() / 2 ** 30) * 10) / 10,
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    quick,
    date: new Date().toISOString(),
  }
}

function formatValue(value: number | null): string {
  if (value === null) return '—'
  return value.toLocaleString('en-US', { maximumFractionDigits: 3 })
}

/** The readable table: name, value, unit, target, verdict, spread. */
export function formatTable(results: readonly BenchResult[]): string {
  const rows = results.map((r) => {
    const d = r.detail
    const spread =
      typeof d.min === 'number' && typeof d.max === 'number'
        ? `${formatValue(d.min)}–${formatValue(d.max)} (${d.runs} runs)`
        : d.deterministic
          ? 'exact (gas)'
          : String(d.reason ?? d.error ?? '')
    return [r.name, formatValue(r.value), r.unit, String(d.target ?? '—'), d.status, spread]
  })
  const header = ['name', 'value', 'unit', 'target', 'status', 'spread (min–max)']
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)))
  const line = (cells: string[]) =>
    cells.map((cell, i) => (i === 1 ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ')
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n')
}

/** The same table in Markdown (docs/performance.md). */
export function formatMarkdown(results: readonly BenchResult[]): string {
  const lines = [
    '| name | value | unit | target | status | spread (min–max, runs) |',
    '|---|--:|---|---|---|---|',
  ]
  for (const r of results) {
    const d = r.detail
    const spread =
      typeof d.min === 'number' && typeof d.max === 'number'
        ? `${formatValue(d.min)}–${formatValue(d.max)} (${d.runs})`
        : d.deterministic
          ? 'exact (gas)'
          : String(d.reason ?? d.error ?? '')
    lines.push(
      `| \`${r.name}\` | ${formatValue(r.value)} | ${r.unit} | ${d.target ?? '—'} | ${d.status} | ${spread} |`,
    )
  }
  return lines.join('\n')
}
