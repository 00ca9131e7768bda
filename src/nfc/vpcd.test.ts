/**
 * The card's side of vsmartcard's protocol against a hostile reader: a TCP server plays the vpcd
 * driver, asks for the ATR, powers the card, and sends well-formed and random frames, split at
 * random points. Every APDU gets one framed answer, in order; the card neither crashes nor pays.
 */
import assert from 'node:assert/strict'
import { createServer, type Socket } from 'node:net'
import { test } from 'node:test'
import fc from 'fast-check'
import { encodeCommand, SW, splitResponse, WALLET_AID } from './apdu.ts'
import type { WalletApplet } from './applet.ts'
import { CONTACTLESS_ATR, insertVirtualCard } from './vpcd.ts'

/** A reader-side connection: frames out, frames in. */
function readerSide(socket: Socket) {
  let buffer = Buffer.alloc(0)
  const frames: Buffer[] = []
  const waiting: (() => void)[] = []
  socket.on('data', (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk])
    while (buffer.length >= 2 && buffer.length >= 2 + buffer.readUInt16BE(0)) {
      frames.push(buffer.subarray(2, 2 + buffer.readUInt16BE(0)))
      buffer = buffer.subarray(2 + buffer.readUInt16BE(0))
      waiting.shift()?.()
    }
  })
  return {
    send(payload: Uint8Array, splitAt?: number) {
      const header = Buffer.alloc(2)
      header.writeUInt16BE(payload.length)
      const frame = Buffer.concat([header, payload])
      if (splitAt === undefined) socket.write(frame)
      else {
        socket.write(frame.subarray(0, splitAt % (frame.length + 1)))
        socket.write(frame.subarray(splitAt % (frame.length + 1)))
      }
    },
    async next(): Promise<Buffer> {
      if (frames.length === 0) await new Promise<void>((resolve) => waiting.push(resolve))
      return frames.shift() as Buffer
    },
  }
}

test('the virtual card answers every frame in order, and a hostile reader cannot crash it or make it pay', async () => {
  let paid = 0
  let resets = 0
  // A stand-in applet that counts: the real one is tested on its own (applet.test.ts); here the
  // framing is under test. It "pays" only for a well-formed PAY, which random frames never are.
  const applet: WalletApplet = {
    async process(apdu) {
      if (apdu[0] === 0x80 && apdu[1] === 0x50 && apdu.length === 6 && apdu[4] === 1 && apdu[5] === 0xaa)
        paid++
      if (apdu[1] === 0xa4 && Buffer.from(apdu.subarray(5, 15)).equals(WALLET_AID))
        return Uint8Array.of(0x90, 0x00)
      return Uint8Array.of(SW.INS_NOT_SUPPORTED >> 8, 0x00)
    },
    reset() {
      resets++
    },
  }
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve))
  const card = await insertVirtualCard({ applet, port })
  const reader = readerSide(await accepted)
  try {
    reader.send(Uint8Array.of(0x04)) // ATR
    assert.deepEqual([...(await reader.next())], [...CONTACTLESS_ATR])
    reader.send(Uint8Array.of(0x01)) // power on
    reader.send(encodeCommand(0x00, 0xa4, 0x04, 0x00, WALLET_AID, 256))
    assert.equal(splitResponse(await reader.next()).sw, SW.OK)
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 2, maxLength: 400 }), fc.nat(), async (apdu, split) => {
        reader.send(apdu, split)
        const answer = await reader.next()
        assert.equal(answer.length, 2)
      }),
      { numRuns: 150 },
    )
    reader.send(Uint8Array.of(0x07)) // an unknown control code is ignored
    reader.send(Uint8Array.of(0x02)) // reset
    reader.send(Uint8Array.of(0x00)) // power off
    reader.send(Uint8Array.of(0x00, 0xb0, 0x00, 0x00, 0x00))
    assert.equal(splitResponse(await reader.next()).sw, SW.INS_NOT_SUPPORTED)
    assert.equal(paid, 0)
    assert.ok(resets >= 3)
  } finally {
    await card.remove()
    server.close()
  }
})

test('no reader listening: NFC_UNAVAILABLE after the connect timeout', async () => {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  server.close()
  const applet: WalletApplet = { process: async () => Uint8Array.of(0x90, 0x00), reset: () => {} }
  await assert.rejects(insertVirtualCard({ applet, port, connectTimeoutMs: 200 }), {
    code: 'NFC_UNAVAILABLE',
  })
})
