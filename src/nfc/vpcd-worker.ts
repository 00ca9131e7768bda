/**
 * The virtual card's link to vpcd, on its own thread (`vpcd.ts`). pcscd powers the card and asks
 * for its ATR on pcscd's own schedule, and some PC/SC calls block the calling thread until pcscd
 * answers: with the card's socket on the main thread, a terminal in the same process (the demo,
 * the tests) could wait for pcscd while pcscd waits for the card. Here the control codes are
 * answered at once, and only command APDUs go to the main thread, whose answers come back.
 */
import { connect, type Socket } from 'node:net'
import { parentPort, workerData } from 'node:worker_threads'

type Input = { host: string; port: number; atr: Uint8Array; connectTimeoutMs: number }
/** To the main thread. */
export type WorkerEvent =
  | { type: 'connected' }
  | { type: 'failed'; message: string }
  | { type: 'reset' }
  | { type: 'apdu'; id: number; apdu: Uint8Array }
  | { type: 'closed' }
/** From the main thread. */
export type WorkerCommand = { type: 'answer'; id: number; answer: Uint8Array } | { type: 'remove' }

const { host, port, atr, connectTimeoutMs } = workerData as Input
const port_ = parentPort!
const post = (event: WorkerEvent) => port_.postMessage(event)

let socket: Socket | undefined
const send = (payload: Uint8Array) => {
  if (!socket || socket.destroyed) return
  const header = Buffer.alloc(2)
  header.writeUInt16BE(payload.length)
  socket.write(Buffer.concat([header, payload]))
}

/** Answers come back in order; one command at a time, as a card answers. */
let nextId = 0
const queue: Buffer[] = []
let busy = false
const pump = () => {
  if (busy) return
  const message = queue.shift()
  if (!message) return
  if (message.length === 1) {
    const code = message[0]
    if (code === 0x04) send(atr)
    else if (code === 0x00 || code === 0x01 || code === 0x02) post({ type: 'reset' })
    pump()
    return
  }
  busy = true
  post({ type: 'apdu', id: ++nextId, apdu: Uint8Array.from(message) })
}

port_.on('message', (command: WorkerCommand) => {
  if (command.type === 'remove') {
    socket?.destroy()
    return
  }
  if (command.id !== nextId) return
  send(command.answer)
  busy = false
  pump()
})

const deadline = Date.now() + connectTimeoutMs
const attempt = () => {
  const candidate = connect({ host, port })
  candidate.once('error', (error) => {
    if (Date.now() >= deadline) post({ type: 'failed', message: error.message })
    else setTimeout(attempt, 100)
  })
  candidate.once('connect', () => {
    candidate.removeAllListeners('error')
    socket = candidate
    socket.setNoDelay(true)
    let buffer = Buffer.alloc(0)
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk])
      while (buffer.length >= 2 && buffer.length >= 2 + buffer.readUInt16BE(0)) {
        const length = buffer.readUInt16BE(0)
        queue.push(Buffer.from(buffer.subarray(2, 2 + length)))
        buffer = buffer.subarray(2 + length)
      }
      pump()
    })
    // reported to the main thread, which logs it: the connection ends either way
    socket.on('error', (error) => post({ type: 'failed', message: error.message }))
    socket.on('close', () => {
      post({ type: 'closed' })
      port_.close()
    })
    post({ type: 'connected' })
  })
}
attempt()
