/**
 * The device's side of the link (a phone, a delivery agent's scanner, `carchain key unlock`):
 * wait for the car's challenge, sign AccessRequest over it, send the request, read the result.
 */
import type { Hex } from 'viem'
import WebSocket from 'ws'
import { BaseError } from '../errors.ts'
import { signAccessRequest, type TypedDataSigner } from './grant.ts'
import {
  type ChallengeMessage,
  MAX_LINK_MESSAGE_BYTES,
  type PasskeyRequestMessage,
  parseCarMessage,
  type RequestMessage,
  type ResultMessage,
} from './link-protocol.ts'
import { passkeyChallenge, type WireAssertion } from './passkey.ts'
import {
  hashAccessRequest,
  type KeyDomain,
  type SignedGrant,
  type SignedPasskeyGrant,
  ZERO_GRANT_ID,
} from './typed-data.ts'

type Waiter = {
  resolve: (message: ChallengeMessage | ResultMessage) => void
  reject: (error: unknown) => void
}

/** An open link to one car. */
export class LinkClient {
  readonly #socket: WebSocket
  readonly #inbox: (ChallengeMessage | ResultMessage)[] = []
  readonly #waiters: Waiter[] = []
  #closed: BaseError | undefined

  private constructor(socket: WebSocket) {
    this.#socket = socket
    socket.on('message', (data) => {
      let message: ChallengeMessage | ResultMessage
      try {
        message = parseCarMessage(String(data))
      } catch {
        return // not a car message: ignore, as a radio would ignore noise
      }
      const waiter = this.#waiters.shift()
      if (waiter) waiter.resolve(message)
      else this.#inbox.push(message)
    })
    socket.on('close', () => {
      this.#closed = new BaseError('CHAIN_UNREACHABLE', 'the link closed')
      for (const waiter of this.#waiters.splice(0)) waiter.reject(this.#closed)
    })
  }

  /** Connects to a car's link URL (`ws://…`). */
  static async connect(url: string, timeoutMs = 5000): Promise<LinkClient> {
    const socket = new WebSocket(url, { maxPayload: MAX_LINK_MESSAGE_BYTES, handshakeTimeout: timeoutMs })
    const client = new LinkClient(socket)
    await new Promise<void>((resolve, reject) => {
      socket.once('open', resolve)
      socket.once('error', (error) =>
        reject(new BaseError('NOT_FOUND', `no car answers at ${url}`, { details: { url }, cause: error })),
      )
    })
    return client
  }

  /** The next message from the car (challenge or result). */
  next(timeoutMs = 10_000): Promise<ChallengeMessage | ResultMessage> {
    const queued = this.#inbox.shift()
    if (queued) return Promise.resolve(queued)
    if (this.#closed) return Promise.reject(this.#closed)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.#waiters.indexOf(waiter)
        if (i >= 0) this.#waiters.splice(i, 1)
        reject(new BaseError('TIMEOUT', 'the car did not answer in time'))
      }, timeoutMs)
      const waiter: Waiter = {
        resolve: (m) => {
          clearTimeout(timer)
          resolve(m)
        },
        reject: (e) => {
          clearTimeout(timer)
          reject(e)
        },
      }
      this.#waiters.push(waiter)
    })
  }

  /** The next challenge, skipping stale results. */
  async challenge(timeoutMs?: number): Promise<ChallengeMessage> {
    for (;;) {
      const message = await this.next(timeoutMs)
      if (message.type === 'challenge') return message
    }
  }

  /** The next result, skipping challenges (tests that send raw frames). */
  async result(timeoutMs?: number): Promise<ResultMessage> {
    for (;;) {
      const message = await this.next(timeoutMs)
      if (message.type === 'result') return message
    }
  }

  /** Sends a raw frame (tests of malformed input). */
  sendRaw(text: string): void {
    this.#socket.send(text)
  }

  /** Sends a request. */
  send(request: RequestMessage | PasskeyRequestMessage): void {
    this.#socket.send(JSON.stringify(request))
  }

  close(): void {
    this.#socket.close()
  }
}

/** Builds the signed request for `challenge` (the phone's work between challenge and answer). */
export async function buildRequest(parameters: {
  signer: TypedDataSigner
  domain: KeyDomain
  grant: SignedGrant | null
  action: number
  challenge: Hex
}): Promise<RequestMessage> {
  const { signer, domain, grant, action, challenge } = parameters
  const grantId = grant?.grant.grantId ?? ZERO_GRANT_ID
  const signature = await signAccessRequest(signer, domain, { grantId, action, challenge })
  return {
    type: 'request',
    grant: grant?.grant ?? null,
    grantSignature: grant?.signature ?? null,
    action,
    signature,
  }
}

/**
 * Builds a passkey key's request for `challenge`: `authenticate` gets the WebAuthn challenge
 * (base64url of the AccessRequest hash, docs/keys.md "Passkey keys") and answers the assertion,
 * as `navigator.credentials.get` would.
 */
export async function buildPasskeyRequest(parameters: {
  domain: KeyDomain
  grant: SignedPasskeyGrant
  action: number
  challenge: Hex
  authenticate: (webauthnChallenge: string) => WireAssertion | Promise<WireAssertion>
}): Promise<PasskeyRequestMessage> {
  const { domain, grant, action, challenge } = parameters
  const hash = hashAccessRequest(domain, { grantId: grant.grant.grantId, action, challenge })
  const assertion = await parameters.authenticate(passkeyChallenge(Buffer.from(hash.slice(2), 'hex')))
  return { type: 'request', grant: grant.grant, grantSignature: grant.signature, action, assertion }
}

export type RequestAccessParameters = {
  /** The car's link URL, or an open client to reuse. */
  link: string | LinkClient
  signer: TypedDataSigner
  domain: KeyDomain
  /** The signed grant, or null for a renter (ERC-4907 user). */
  grant: SignedGrant | null
  action: number
  timeoutMs?: number
}

/** One attempt end to end: challenge → signed request → result. */
export async function requestAccess(parameters: RequestAccessParameters): Promise<ResultMessage> {
  const client =
    typeof parameters.link === 'string' ? await LinkClient.connect(parameters.link) : parameters.link
  try {
    const challenge = await client.challenge(parameters.timeoutMs)
    client.send(await buildRequest({ ...parameters, challenge: challenge.challenge }))
    return await client.result(parameters.timeoutMs)
  } finally {
    if (typeof parameters.link === 'string') client.close()
  }
}
