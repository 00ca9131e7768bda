/**
 * The one place that touches `ocpp-rpc` (OCPP-J over WebSocket, strict schema validation): typed
 * as Carchain uses it, so the rest of src/ocpp never sees the library's loose types.
 */
import { createRequire } from 'node:module'
import { createRPCError, createValidator, RPCClient, RPCServer } from 'ocpp-rpc'

export type RpcCall<P> = { method: string; params: P; messageId: string }

/** One end of an OCPP-J connection (a station's client, or the CSMS's view of a station). */
export type RpcPeer = {
  readonly identity: string
  session: unknown
  handle<P = Record<string, unknown>>(method: string, handler: (call: RpcCall<P>) => unknown): void
  handle(handler: (call: RpcCall<unknown>) => unknown): void
  call(method: string, params: unknown): Promise<unknown>
  connect(): Promise<unknown>
  close(options?: { code?: number; reason?: string; force?: boolean }): Promise<unknown>
  sendRaw(message: string): void
  on<E = Record<string, unknown>>(event: string, listener: (event: E) => void): void
}

export type RpcHandshake = {
  identity: string
  password: Buffer | undefined
  remoteAddress: string | undefined
  request: import('node:http').IncomingMessage
}

export type RpcServerLike = {
  auth(
    callback: (
      accept: (session: unknown, protocol: string) => void,
      reject: (code: number, message: string) => void,
      handshake: RpcHandshake,
    ) => unknown,
  ): void
  on<E = Record<string, unknown>>(event: string, listener: (event: E) => void): void
  handleUpgrade(request: unknown, socket: unknown, head: unknown): void
  close(options?: { code?: number; reason?: string; force?: boolean }): Promise<unknown>
}

type Validator = { subprotocol: string; validate(schemaId: string, params: unknown): boolean }

/**
 * The library's OCPP 2.0.1 validator (OCA's schemas), with one fix: for a missing required field
 * (and the other occurrence constraints) it answers OCPP 1.6's misspelt `OccurenceConstraintViolation`
 * under 2.0.1 too, where OCPP-J 2.0.1 names the code `OccurrenceConstraintViolation`; and for an
 * action 2.0.1 does not define it answers ProtocolError, where OCPP-J says NotImplemented.
 */
const ocpp201: Validator = (() => {
  const schemas = createRequire(import.meta.url)('ocpp-rpc/lib/schemas/ocpp2_0_1.json')
  const library = createValidator('ocpp2.0.1', schemas) as unknown as Validator
  return {
    subprotocol: 'ocpp2.0.1',
    validate(schemaId, params) {
      try {
        return library.validate(schemaId, params)
      } catch (error) {
        const e = error as Error & { rpcErrorCode?: string; details?: Record<string, unknown> }
        if (e.rpcErrorCode === 'OccurenceConstraintViolation')
          throw createRPCError('OccurrenceConstraintViolation', e.message, e.details ?? {})
        // An action 2.0.1 does not define: OCPP-J's NotImplemented, not the library's ProtocolError.
        if (e.rpcErrorCode === 'ProtocolError' && /^Schema '.*' is missing/.test(e.message))
          throw createRPCError(
            'NotImplemented',
            `${schemaId.replace(/^urn:|\.(req|conf)$/g, '')} is not an OCPP 2.0.1 action`,
          )
        throw error
      }
    },
  }
})()

const strict = { strictMode: true, strictModeValidators: [ocpp201] }

/** A strict OCPP 2.0.1 client (a station's end). */
export const rpcClient = (options: Record<string, unknown>): RpcPeer =>
  new RPCClient({ ...options, ...strict } as never) as unknown as RpcPeer

/** A strict OCPP 2.0.1 server (the CSMS's end). */
export const rpcServer = (options: Record<string, unknown>): RpcServerLike =>
  new RPCServer({ ...options, ...strict } as never) as unknown as RpcServerLike

/** A CALLERROR with an OCPP-J error code (`SecurityError`, `PropertyConstraintViolation`, …). */
export const rpcError = (code: string, message: string, details: Record<string, unknown> = {}): Error =>
  createRPCError(code, message, details) as Error
