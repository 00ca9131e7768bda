/**
 * The terminal's reader: a PC/SC reader through pcsc-lite, with the `smartcard` binding from npm
 * (N-API, so one build serves every Node version). The same code drives vsmartcard's virtual
 * reader in tests and the demo, and an ACR122U or any CCID contactless reader in the field:
 * which one is configuration (`--reader NAME`, default the first reader pcscd lists), not code.
 */
import type { ContextInterface, CardInterface as PcscCardHandle } from 'smartcard'
import { BaseError } from '../errors.ts'
import { logger } from '../log.ts'
import type { CardChannel } from './terminal.ts'

const log = logger('nfc.pcsc')

type Binding = typeof import('smartcard')
let binding: Promise<Binding> | undefined

/**
 * The binding, loaded on first use: it is an optional dependency (its native part builds at
 * `npm install` against libpcsclite-dev), so a machine without it runs everything but NFC.
 */
function loadBinding(): Promise<Binding> {
  binding ??= import('smartcard').catch((error: unknown) => {
    binding = undefined
    throw new BaseError(
      'NFC_UNAVAILABLE',
      'the smartcard PC/SC binding is not installed (it builds against libpcsclite-dev)',
      {
        cause: error,
      },
    )
  })
  return binding
}

/** A PC/SC context; NFC_UNAVAILABLE when pcscd does not run. */
async function openContext(): Promise<{ pcsc: Binding; context: ContextInterface }> {
  const pcsc = await loadBinding()
  try {
    return { pcsc, context: new pcsc.Context() }
  } catch (error) {
    throw new BaseError('NFC_UNAVAILABLE', 'the PC/SC service (pcscd) is not running', { cause: error })
  }
}

/** A card in a reader's field, connected. */
export type PcscCard = CardChannel & {
  /** The reader's name, as pcscd lists it. */
  readonly reader: string
  /** Disconnects (leaving the card powered) and releases the PC/SC context. */
  close(): void
}

export type WaitForCardParameters = {
  /** The reader's name (exact); default the first reader pcscd lists. */
  readonly reader?: string
  /** How long to wait for a reader and a card (default 10 s): NFC_UNAVAILABLE / NFC_NO_CARD. */
  readonly timeoutMs?: number
}

/**
 * PC/SC return codes that mean the card left the field or was reset under us. A contactless card
 * that stops answering mid-command (SCARD_E_NOT_TRANSACTED, "Transaction failed") has left the
 * field as far as the terminal can tell: nothing it sent after that counts.
 */
const GONE = new Set([0x80100069, 0x8010000c, 0x80100068, 0x80100067, 0x80100066, 0x80100016])

function pcscFailure(error: unknown, what: string): BaseError {
  const code = (error as { code?: number }).code
  const message = error instanceof Error ? error.message : String(error)
  if (typeof code === 'number' && GONE.has(code >>> 0))
    return new BaseError('NFC_CARD_REMOVED', 'the card left the field', { details: { what }, cause: error })
  if (/removed|no smart ?card|reset|transaction failed/i.test(message))
    return new BaseError('NFC_CARD_REMOVED', 'the card left the field', { details: { what }, cause: error })
  return new BaseError('NFC_UNAVAILABLE', `${what} failed: ${message}`, { cause: error })
}

/** The names of the readers pcscd lists (NFC_UNAVAILABLE when pcscd does not run). */
export async function listReaders(): Promise<string[]> {
  const { context } = await openContext()
  try {
    return context.listReaders().map((reader) => reader.name)
  } finally {
    context.close()
  }
}

/** The reader named `name` among `readers`, or the first when no name is given. */
function pickReader<R extends { name: string }>(readers: R[], name: string | undefined): R | undefined {
  return name ? readers.find((r) => r.name === name) : readers[0]
}

/** Waits for a card in the reader and connects to it (shared mode, T=0 or T=1). */
export async function waitForCard(parameters: WaitForCardParameters = {}): Promise<PcscCard> {
  const deadline = Date.now() + (parameters.timeoutMs ?? 10_000)
  const { pcsc, context } = await openContext()
  try {
    for (;;) {
      const readers = context.listReaders()
      const reader = pickReader(readers, parameters.reader)
      const left = deadline - Date.now()
      if (reader && reader.state & pcsc.SCARD_STATE_PRESENT) {
        let handle: PcscCardHandle
        try {
          handle = await reader.connect(
            pcsc.SCARD_SHARE_SHARED,
            pcsc.SCARD_PROTOCOL_T0 | pcsc.SCARD_PROTOCOL_T1,
          )
        } catch (error) {
          // the card left again before we connected: wait for the next one
          log.debug({ err: error, reader: reader.name }, 'connect failed')
          if (left <= 0) throw pcscFailure(error, 'connect')
          await new Promise((resolve) => setTimeout(resolve, 20))
          continue
        }
        return connectedCard(pcsc, context, reader.name, handle)
      }
      if (left <= 0) {
        const names = readers.map((r) => r.name)
        if (!reader)
          throw new BaseError(
            'NFC_UNAVAILABLE',
            parameters.reader ? `no reader named "${parameters.reader}"` : 'pcscd lists no reader',
            { details: { readers: names, wanted: parameters.reader ?? null } },
          )
        throw new BaseError('NFC_NO_CARD', `no card in ${reader.name} in time`, {
          details: { reader: reader.name },
        })
      }
      await context.waitForChange(
        readers.map((r) => ({ name: r.name, state: r.state, changed: false, atr: null })),
        Math.min(left, 1000),
      )
    }
  } catch (error) {
    context.close()
    throw error
  }
}

/** Waits until the reader's field is empty (the car drove off); NFC_NO_CARD is not an error here, TIMEOUT is. */
export async function waitForRemoval(parameters: WaitForCardParameters = {}): Promise<void> {
  const deadline = Date.now() + (parameters.timeoutMs ?? 10_000)
  const { pcsc, context } = await openContext()
  try {
    for (;;) {
      const readers = context.listReaders()
      const reader = pickReader(readers, parameters.reader)
      if (!reader || !(reader.state & pcsc.SCARD_STATE_PRESENT)) return
      const left = deadline - Date.now()
      if (left <= 0)
        throw new BaseError('TIMEOUT', `a card stays in ${reader.name}`, { details: { reader: reader.name } })
      await context.waitForChange(
        [{ name: reader.name, state: reader.state, changed: false, atr: null }],
        Math.min(left, 1000),
      )
    }
  } finally {
    context.close()
  }
}

function connectedCard(
  pcsc: Binding,
  context: ContextInterface,
  reader: string,
  handle: PcscCardHandle,
): PcscCard {
  return {
    reader,
    async transmit(apdu) {
      let answer: Buffer
      try {
        answer = await handle.transmit(Buffer.from(apdu), { maxRecvLength: 4096 })
      } catch (error) {
        throw pcscFailure(error, `transmit on ${reader}`)
      }
      // A reader whose card vanished mid-command may answer nothing at all (vpcd does).
      if (answer.length === 0)
        throw new BaseError('NFC_CARD_REMOVED', 'the card left the field', {
          details: { what: 'transmit', reader },
        })
      return Uint8Array.from(answer)
    },
    close() {
      try {
        if (handle.connected) handle.disconnect(pcsc.SCARD_LEAVE_CARD)
      } catch (error) {
        // the card may have left already; the context is released either way
        log.debug({ err: error, reader }, 'disconnect failed')
      }
      context.close()
    },
  }
}
