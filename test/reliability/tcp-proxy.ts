/**
 * A TCP proxy on 127.0.0.1 that a test can cut and restore: stands in for a network failure
 * between the node and its chain or database without touching the server behind it (which other
 * tests may share). Cut: every open connection is reset and new ones are refused at once.
 */
import { connect, createServer, type Server, type Socket } from 'node:net'

export type TcpProxy = {
  readonly port: number
  /** Resets every connection and refuses new ones until `restore()`. */
  cut(): void
  restore(): void
  readonly isCut: boolean
  /** Connections accepted so far (a sign the node really goes through the proxy). */
  readonly connections: number
  close(): Promise<void>
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const open = new Set<Socket>()
  let isCut = false
  let connections = 0
  const server: Server = createServer((client) => {
    client.on('error', () => {})
    if (isCut) {
      client.resetAndDestroy()
      return
    }
    connections++
    const upstream = connect(target.port, target.host)
    open.add(client)
    open.add(upstream)
    const drop = () => {
      client.destroy()
      upstream.destroy()
      open.delete(client)
      open.delete(upstream)
    }
    client.on('error', drop)
    upstream.on('error', drop)
    client.on('close', drop)
    upstream.on('close', drop)
    client.pipe(upstream)
    upstream.pipe(client)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const address = server.address()
  if (!address || typeof address === 'string') throw new Error('the proxy has no port')
  return {
    port: address.port,
    cut() {
      isCut = true
      for (const socket of open) socket.resetAndDestroy()
      open.clear()
    },
    restore() {
      isCut = false
    },
    get isCut() {
      return isCut
    },
    get connections() {
      return connections
    },
    async close() {
      for (const socket of open) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
