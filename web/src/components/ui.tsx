/** Small presentational pieces shared by the views. */
import type { ReactNode } from 'react'
import type { Loadable } from '../api.ts'
import { shortHex } from '../lib/hex.ts'

export function Card(props: {
  title?: ReactNode
  actions?: ReactNode
  children: ReactNode
  className?: string
}) {
  return (
    <section className={`card ${props.className ?? ''}`}>
      {(props.title || props.actions) && (
        <header className="card-header">
          <h2>{props.title}</h2>
          {props.actions && <div className="card-actions">{props.actions}</div>}
        </header>
      )}
      <div className="card-body">{props.children}</div>
    </section>
  )
}

/** Renders a Loadable: a spinner, a "not available yet" note, an error, or `children(data)`. */
export function Load<T>(props: { value: Loadable<T>; what: string; children: (data: T) => ReactNode }) {
  const { value } = props
  if (value.state === 'loading') return <div className="state state-loading">Loading {props.what}…</div>
  if (value.state === 'unavailable')
    return (
      <div className="state state-unavailable" data-testid="unavailable">
        <strong>{capitalise(props.what)} not available.</strong> {value.message}.
      </div>
    )
  if (value.state === 'error')
    return (
      <div className="state state-error" role="alert">
        <strong>Could not load {props.what}.</strong> {value.message}
        {value.code ? ` (${value.code})` : ''}
      </div>
    )
  return <>{props.children(value.data)}</>
}

export function Empty(props: { children: ReactNode }) {
  return <div className="state state-empty">{props.children}</div>
}

export function Address(props: { value: string | null | undefined; keep?: number }) {
  return (
    <code className="hex" title={props.value ?? ''}>
      {shortHex(props.value, props.keep)}
    </code>
  )
}

export function Badge(props: {
  tone: 'good' | 'warn' | 'bad' | 'neutral' | 'info'
  children: ReactNode
  title?: string
}) {
  return (
    <span className={`badge badge-${props.tone}`} title={props.title}>
      {props.children}
    </span>
  )
}

export function Stat(props: { label: string; value: ReactNode; hint?: ReactNode; testId?: string }) {
  return (
    <div className="stat" data-testid={props.testId}>
      <div className="stat-label">{props.label}</div>
      <div className="stat-value">{props.value}</div>
      {props.hint && <div className="stat-hint">{props.hint}</div>}
    </div>
  )
}

const capitalise = (text: string) => text.charAt(0).toUpperCase() + text.slice(1)

/** "3 s ago", "5 min ago", or a date for anything older than a day. */
export function ago(timeMs: number, nowMs = Date.now()): string {
  const seconds = Math.round((nowMs - timeMs) / 1000)
  if (seconds < 5) return 'just now'
  if (seconds < 60) return `${seconds} s ago`
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ago`
  return new Date(timeMs).toLocaleDateString()
}

export function formatTime(timeMs: number): string {
  return new Date(timeMs).toLocaleString(undefined, {
    month: 'short',
    day: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  })
}

/** A token amount in base units (decimal string or bigint) as a decimal with `digits` places. */
export function formatUnits(amount: bigint | string, decimals: number, digits = 2): string {
  const value = typeof amount === 'bigint' ? amount : BigInt(amount)
  const negative = value < 0n
  const abs = negative ? -value : value
  const scale = 10n ** BigInt(decimals)
  const whole = abs / scale
  const fraction = ((abs % scale) * 10n ** BigInt(digits)) / scale
  const text = `${whole.toLocaleString('en-US')}${digits > 0 ? `.${fraction.toString().padStart(digits, '0')}` : ''}`
  return negative ? `-${text}` : text
}

/** Human label for an event kind: `door.unlocked` → "Door unlocked". */
export function kindLabel(kind: string): string {
  return capitalise(kind.replace(/[._]/g, ' '))
}

/** A colour family per kind of event, for the timeline's dots. */
export function kindTone(kind: string): string {
  const family = kind.split('.')[0] ?? ''
  return (
    {
      door: 'blue',
      trunk: 'blue',
      access: 'violet',
      trip: 'green',
      navigation: 'green',
      parking: 'slate',
      rental: 'amber',
      charging: 'teal',
      payment: 'teal',
      telemetry: 'slate',
      driving: 'green',
      odometer: 'slate',
    }[family] ?? 'slate'
  )
}
