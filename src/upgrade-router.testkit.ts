/**
 * For tests of a server's upgrade router: one WebSocket upgrade sent by hand over a raw (or TLS)
 * socket, so a test sees exactly what the server answers and whether it closes the connection.
 */
import { connect as connectTcp } from 'node:net'
import { connect as connectTls } from 'node:tls'

export type RawUpgradeAnswer = {
  /** The HTTP status the server answered, or 0 when it answered nothing before `waitMs`. */
  readonly status: number
  /** Whether the server closed the connection within `waitMs`. */
  readonly closed: boolean
  /** Milliseconds from sending to the close (or to giving up). */
  readonly ms: number
}

const handshake: Record<string, string> = {
  Connection: 'Upgrade',
  Upgrade: 'websocket',
  'Sec-WebSocket-Version': '13',
  'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
}

/**
 * Sends `GET path` as a WebSocket upgrade to `127.0.0.1:port` (over TLS with `tls`); `headers`
 * replace the handshake's own, `null` drops one (a malformed handshake). Waits at most `waitMs`
 * for the server to close the connection.
 */
export function rawUpgrade(
  port: number,
  path: string,
  options: { headers?: Partial<Record<string, string | null>>; tls?: { ca: string }; waitMs?: number } = {},
): Promise<RawUpgradeAnswer> {
  const fields = { Host: `127.0.0.1:${port}`, ...handshake, ...options.headers }
  const request = `GET ${path} HTTP/1.1\r\n${Object.entries(fields)
    .filter(([, value]) => typeof value === 'string')
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('')}\r\n`
  const started = Date.now()
  return new Promise((resolve, reject) => {
    const socket = options.tls
      ? connectTls({ host: '127.0.0.1', port, ca: options.tls.ca })
      : connectTcp({ host: '127.0.0.1', port })
    let answer = ''
    const finish = (closed: boolean) => {
      clearTimeout(timer)
      socket.destroy()
      const status = /^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1]
      resolve({ status: status ? Number(status) : 0, closed, ms: Date.now() - started })
    }
    const timer = setTimeout(() => finish(false), options.waitMs ?? 2000)
    socket.once(options.tls ? 'secureConnect' : 'connect', () => socket.write(request))
    socket.on('data', (data: Buffer) => {
      answer += data.toString('latin1')
    })
    socket.once('close', () => finish(true))
    socket.once('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
  })
}
