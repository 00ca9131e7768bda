/**
 * The car's side on vsmartcard's virtual contactless reader (Debian `vsmartcard-vpcd`): the
 * reader driver inside pcscd listens on TCP (default 127.0.0.1:35963) and a virtual card connects
 * to it. Connecting is the card entering the reader's field; closing the connection is the card
 * leaving it. Every message either way is a 2-byte big-endian length and that many bytes; from
 * the reader, a 1-byte message is a control code (00 power off, 01 power on, 02 reset, 04 send
 * the ATR), anything longer a command APDU, answered with the response APDU (docs/nfc.md).
 */
import { Worker } from 'node:worker_threads'
import { BaseError } from '../errors.ts'
import { logger } from '../log.ts'
import type { WalletApplet } from './applet.ts'
import type { WorkerCommand, WorkerEvent } from './vpcd-worker.ts'

const log = logger('nfc.vpcd')

/** The vpcd driver's default port (its reader.conf CHANNELID 0x8C7B). */
export const VPCD_PORT = 35963

/**
 * The card's ATR, as PC/SC part 3 builds one for an ISO 14443-4 card without historical bytes:
 * TS 3B, T0 80 (TD1 follows), TD1 80 (TD2 follows; T=0), TD2 01 (T=1), TCK 01.
 */
export const CONTACTLESS_ATR = Uint8Array.from([0x3b, 0x80, 0x80, 0x01, 0x01])

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
  const { applet } = parameters
  applet.reset()
  // The socket lives on a worker thread (vpcd-worker.ts): see there why.
  // (the packed library runs compiled .js files: the worker's suffix follows this module's)
  const suffix = import.meta.url.endsWith('.ts') ? '.ts' : '.js'
  const worker = new Worker(new URL(`./vpcd-worker${suffix}`, import.meta.url), {
    workerData: {
      host,
      port,
      atr: parameters.atr ?? CONTACTLESS_ATR,
      connectTimeoutMs: parameters.connectTimeoutMs ?? 5000,
    },
  })
  let connected = false
  let removing = false
  let resolveRemoved: () => void = () => undefined
  const removed = new Promise<void>((resolve) => {
    resolveRemoved = resolve
  })
  const ready = new Promise<void>((resolve, reject) => {
    worker.on('message', (event: WorkerEvent) => {
      switch (event.type) {
        case 'connected':
          connected = true
          resolve()
          return
        case 'failed':
          if (!connected) {
            reject(
              new BaseError(
                'NFC_UNAVAILABLE',
                `no virtual reader listens on ${host}:${port} (is pcscd with vsmartcard-vpcd running?)`,
                {
                  details: { host, port, reason: event.message },
                },
              ),
            )
            void worker.terminate()
          } else log.warn({ reason: event.message }, 'the virtual reader connection failed')
          return
        case 'reset':
          applet.reset()
          return
        case 'apdu':
          parameters.onCommand?.(event.apdu)
          // a card taken out of the field does not run the command it was receiving
          if (removing) return
          void applet
            .process(event.apdu)
            .then((answer) =>
              worker.postMessage({ type: 'answer', id: event.id, answer } satisfies WorkerCommand),
            )
          return
        case 'closed':
          applet.reset()
          resolveRemoved()
          return
      }
    })
    worker.on('error', (error) => {
      log.error({ err: error }, 'the virtual card’s thread failed')
      reject(new BaseError('NFC_UNAVAILABLE', 'the virtual card could not start', { cause: error }))
      resolveRemoved()
    })
    worker.on('exit', () => resolveRemoved())
  })
  await ready
  return {
    removed,
    async remove() {
      removing = true
      worker.postMessage({ type: 'remove' } satisfies WorkerCommand)
      await removed
      await worker.terminate()
    },
  }
}
