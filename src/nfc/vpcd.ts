/**
 * The car's side on vsmartcard's virtual contactless reader (Debian `vsmartcard-vpcd`): the
 * reader driver inside pcscd listens on TCP (default 127.0.0.1:35963) and a virtual card connects
 * to it. Connecting is the card entering the reader's field; closing the connection is the card
 * leaving it. Every message either way is a 2-byte big-endian length and that many bytes; from
 * the reader, a 1-byte message is a control code (00 power off, 01 power on, 02 reset, 04 send
 * the ATR), anything longer a command APDU, answered with the response APDU (docs/nfc.md).
 */
import { connect, type Socket } from 'node:net'
import { BaseError } from '../errors.ts'
import { logger } from '../log.ts'
import type { WalletApplet } from './applet.ts'

const log = logger('nfc.vpcd')

/** The vpcd driver's default port (its reader.conf CHANNELID 0x8C7B). */
export const VPCD_PORT = 35963

/**
 * The card's ATR, as PC/SC part 3 builds one for an ISO 14443-4 card without historical bytes:
 * TS 3B, T0 80 (TD1 follows), TD1 80 (TD2 follows; T=0), TD2 01 (T=1), TCK 01.
 */
export const CONTACTLESS_ATR = Uint8Array.from([0x3b, 0x80, 0x80, 0x01, 0x01])

const CONTROL = { OFF: 0x00, ON: 0x01, RESET: 0x02, ATR: 0x04 } as const

export type VirtualCard = {
  /** Takes the card out of the field (closes the connection). */
  remove(): Promise<void>
  /** Resolves when the reader or `remove` ended the connection. */
  readonly removed: Promise<void>
}

export type InsertVirtualCardParameters = {
  readonly applet: WalletApplet
  readonly host?: string
  readonly port?: number
  readonly atr?: Uint8Array
  /** Keep trying to reach the reader this long (pcscd may be starting); default 5 s. */
  readonly connectTimeoutMs?: number
  /** Called before each command APDU is processed (tests pull the card out mid-exchange). */
  readonly onCommand?: (apdu: Uint8Array) => void
}

/** Puts the applet into the virtual reader's field; NFC_UNAVAILABLE when no reader listens. */
export async function insertVirtualCard(parameters: InsertVirtualCardParameters): Promise<VirtualCard> {
  const host = parameters.host ?? '127.0.0.1'
  const port = parameters.port ?? VPCD_PORT
  const atr = parameters.atr ?? CONTACTLESS_ATR
  const socket = await connectWithRetry(host, port, parameters.connectTimeoutMs ?? 5000)
  socket.setNoDelay(true)
  const { applet } = parameters
  applet.reset()
  let buffer = Buffer.alloc(0)
  let queue: Promise<void> = Promise.resolve()
  const send = (payload: Uint8Array) => {
    if (socket.destroyed) return
    const header = Buffer.alloc(2)
    header.writeUInt16BE(payload.length)
    socket.write(Buffer.concat([header, payload]))
  }
  const handle = async (message: Buffer) => {
    if (message.length === 1) {
      const code = message[0]
      if (code === CONTROL.ATR) send(atr)
      else if (code === CONTROL.OFF || code === CONTROL.ON || code === CONTROL.RESET) applet.reset()
      else log.warn({ code }, 'unknown vpcd control code')
      return
    }
    parameters.onCommand?.(message)
    if (socket.destroyed) return
    send(await applet.process(Uint8Array.from(message)))
  }
  socket.on('data', (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk])
    while (buffer.length >= 2) {
      const length = buffer.readUInt16BE(0)
      if (buffer.length < 2 + length) break
      const message = buffer.subarray(2, 2 + length)
      buffer = buffer.subarray(2 + length)
      // In order, one at a time, as a card answers; the applet never throws.
      queue = queue.then(() => handle(Buffer.from(message)))
    }
  })
  const removed = new Promise<void>((resolve) => {
    socket.on('close', () => {
      applet.reset()
      resolve()
    })
  })
  socket.on('error', (error) => log.warn({ err: error }, 'the virtual reader connection failed'))
  return {
    removed,
    async remove() {
      socket.destroy()
      await removed
    },
  }
}

async function connectWithRetry(host: string, port: number, timeoutMs: number): Promise<Socket> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      return await new Promise<Socket>((resolve, reject) => {
        const socket = connect({ host, port })
        socket.once('connect', () => {
          socket.off('error', reject)
          resolve(socket)
        })
        socket.once('error', reject)
      })
    } catch (error) {
      if (Date.now() >= deadline)
        throw new BaseError(
          'NFC_UNAVAILABLE',
          `no virtual reader listens on ${host}:${port} (is pcscd with vsmartcard-vpcd running?)`,
          {
            details: { host, port },
            cause: error,
          },
        )
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
}
