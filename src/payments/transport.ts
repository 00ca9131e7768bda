/**
 * The session layer's transport: newline-delimited JSON messages over any byte stream — the
 * mutual-TLS socket between car and charger (src/identity/tls.ts), or an in-memory pair in tests.
 * One JSON object per line, UTF-8, at most `maxLineBytes`; a longer or malformed line closes
 * the transport with INVALID_ARGUMENT.
 *
 * Contract: `send` resolves once the line is handed to the stream (not delivered); `receive`
 * yields messages in order, TIMEOUT after `timeoutMs` (the message stays queued for the next
 * call), PEER_CLOSED once the stream ended and the queue is empty. Not for concurrent receivers.
 */
import { type Duplex, duplexPair } from 'node:stream'
import { BaseError } from '../errors.ts'
import type { SecureSession } from '../identity/tls.ts'

/** A protocol message: a JSON object with a `type`. */
export type Message = { readonly type: string; readonly [field: string]: unknown }

export interface MessageTransport {
  send(message: Message): Promise<void>
  receive(timeoutMs: number): Promise<Message>
  /** The peer's authenticated certificate (DER) when the stream is mutual TLS; else undefined. */
  readonly peerCertificate: Uint8Array | undefined
  /** The wallet that certificate binds (a vehicle's `did:pkh:eip155` subjectAltName), if any. */
  readonly peerWallet: PeerWallet | undefined
  close(): void
}

/** A wallet a certificate binds: `did:pkh:eip155:<chainId>:<address>`. */
export type PeerWallet = { readonly chainId: number; readonly address: `0x${string}` }

export type NdjsonTransportOptions = {
  readonly peerCertificate?: Uint8Array
  readonly peerWallet?: PeerWallet
  /** Default 64 KiB. */
  readonly maxLineBytes?: number
}

/** Wraps a duplex byte stream as a message transport. */
export function ndjsonTransport(stream: Duplex, options: NdjsonTransportOptions = {}): MessageTransport {
  const maxLineBytes = options.maxLineBytes ?? 64 * 1024
  const queue: Message[] = []
  let waiter: (() => void) | undefined
  let failure: BaseError | undefined
  let buffered = ''
  const wake = () => {
    const w = waiter
    waiter = undefined
    w?.()
  }
  const fail = (error: BaseError) => {
    failure ??= error
    wake()
  }
  stream.setEncoding?.('utf8')
  stream.on('data', (chunk: string | Buffer) => {
    buffered += typeof chunk === 'string' ? chunk : chunk.toString('utf8')
    let newline = buffered.indexOf('\n')
    while (newline >= 0) {
      const line = buffered.slice(0, newline).trim()
      buffered = buffered.slice(newline + 1)
      newline = buffered.indexOf('\n')
      if (line === '') continue
      let message: unknown
      try {
        message = JSON.parse(line)
      } catch {
        fail(new BaseError('INVALID_ARGUMENT', 'the peer sent a line that is not JSON'))
        stream.destroy()
        return
      }
      if (typeof message !== 'object' || message === null || typeof (message as Message).type !== 'string') {
        fail(new BaseError('INVALID_ARGUMENT', 'a message must be a JSON object with a string "type"'))
        stream.destroy()
        return
      }
      queue.push(message as Message)
    }
    if (Buffer.byteLength(buffered) > maxLineBytes) {
      fail(new BaseError('INVALID_ARGUMENT', `a message exceeds ${maxLineBytes} bytes`))
      stream.destroy()
      return
    }
    wake()
  })
  const closed = () => fail(new BaseError('PEER_CLOSED', 'the peer closed the connection'))
  stream.on('end', closed)
  stream.on('close', closed)
  stream.on('error', (error) =>
    fail(new BaseError('PEER_CLOSED', `the connection failed: ${error.message}`, { cause: error })),
  )
  return {
    peerCertificate: options.peerCertificate,
    peerWallet: options.peerWallet,
    send(message) {
      if (stream.destroyed || stream.writableEnded)
        return Promise.reject(new BaseError('PEER_CLOSED', 'the connection is closed'))
      return new Promise((resolve, reject) =>
        stream.write(`${JSON.stringify(message)}\n`, (error) =>
          error
            ? reject(new BaseError('PEER_CLOSED', `sending failed: ${error.message}`, { cause: error }))
            : resolve(),
        ),
      )
    },
    async receive(timeoutMs) {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const next = queue.shift()
        if (next) return next
        if (failure) throw failure
        const left = deadline - Date.now()
        if (left <= 0)
          throw new BaseError('TIMEOUT', `no message from the peer within ${timeoutMs} ms`, {
            details: { timeoutMs },
          })
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left)
          waiter = () => {
            clearTimeout(timer)
            resolve()
          }
        })
      }
    },
    close() {
      stream.end()
      setTimeout(() => stream.destroy(), 1000).unref()
    },
  }
}

/** Two connected in-memory transports (tests, simulator); `peerCertificate` as TLS would report it. */
export function memoryTransportPair(
  options: { carSeesCertificate?: Uint8Array; chargerSeesCertificate?: Uint8Array } = {},
): [car: MessageTransport, charger: MessageTransport] {
  const [a, b] = duplexPair()
  return [
    ndjsonTransport(a, options.carSeesCertificate ? { peerCertificate: options.carSeesCertificate } : {}),
    ndjsonTransport(
      b,
      options.chargerSeesCertificate ? { peerCertificate: options.chargerSeesCertificate } : {},
    ),
  ]
}

/**
 * The transport over an authenticated mutual-TLS session (src/identity/tls.ts): the peer's
 * validated leaf certificate becomes `peerCertificate`, the wallet it binds `peerWallet`, and the
 * paused socket is resumed.
 */
export function tlsTransport(
  session: SecureSession,
  options: { maxLineBytes?: number } = {},
): MessageTransport {
  const leaf = session.peer.path[0]
  const transport = ndjsonTransport(session.socket, {
    ...(leaf ? { peerCertificate: leaf.der } : {}),
    ...(session.peer.wallet ? { peerWallet: session.peer.wallet } : {}),
    ...(options.maxLineBytes ? { maxLineBytes: options.maxLineBytes } : {}),
  })
  session.socket.resume()
  return transport
}
