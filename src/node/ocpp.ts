/**
 * The node as a CSMS (docs/ocpp.md): OCPP 2.0.1 stations connect to `/ocpp/{stationId}` on the
 * node's port (the port's upgrade router hands those upgrades to the CSMS); the node's operator
 * account is the CPO whose vouchers the CSMS keeps (the operator's voucher book, migration 0012)
 * and claims every `claimEveryMs`. The API:
 *
 *   GET  /v1/ocpp/stations                                   stations, connectors, status
 *   POST /v1/ocpp/stations                   (operator)      register one: {stationId, password?} → its password
 *   POST /v1/ocpp/stations/{stationId}/revoke (operator)     refused from now on, disconnected now
 *   GET  /v1/ocpp/transactions?stationId&state&limit         newest first
 *   GET  /v1/ocpp/stations/{stationId}/transactions/{id}     one, with its meter values
 *   POST /v1/ocpp/stations/{stationId}/calls/{action} (operator) RequestStartTransaction,
 *        RequestStopTransaction, GetVariables, SetVariables, Reset, SetChargingProfile, … → the answer
 *
 * The operator is the node's operator account signed in with SIWE (`Authorization: Bearer`).
 */

import { readFileSync } from 'node:fs'
import type { Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { NodeConfig } from '../config.ts'
import { BaseError } from '../errors.ts'
import { logger } from '../log.ts'
import { CSMS_CALLS, type Csms, createCsms, listenCsmsTls } from '../ocpp/csms.ts'
import {
  checkStationId,
  getTransaction,
  listStations,
  listTransactions,
  registerStation,
  revokeStation,
} from '../ocpp/stations.ts'
import { databaseVoucherBook } from '../station/database-voucher-book.ts'
import { sessionAddress } from './auth.ts'
import type { NodeContext } from './context.ts'
import type { NodeRoutes } from './server.ts'

const log = logger('node.ocpp')

export type NodeCsms = {
  readonly csms: Csms
  readonly routes: NodeRoutes
  /** Serves the CSMS over TLS too (profiles 2 and 3); PEM files from the configuration. */
  listenTls(tls: NonNullable<NodeConfig['ocppTls']>, host: string): Promise<number>
  stop(): Promise<void>
}

/** The node's CSMS and its routes; `stop` ends the claim scheduler and closes every station's connection. */
export function createNodeCsms(context: NodeContext, options: { claimEveryMs?: number } = {}): NodeCsms {
  const { db, clients, contracts } = context
  const csms = createCsms({
    db,
    payments: {
      publicClient: clients.publicClient,
      domain: { chainId: clients.chain.id, verifyingContract: contracts.ChargingChannels },
      payee: clients.account.address,
      tokens: [contracts.Token],
      vehicleRegistry: contracts.VehicleRegistry,
      book: databaseVoucherBook(db),
      settlement: { publicClient: clients.publicClient, walletClient: clients.walletClient },
    },
    onChange: (change) =>
      context.events.publish('charging', {
        ...change,
        evseId: change.stationId,
        kind: `ocpp.${change.kind}`,
      }),
  })
  let claiming: Promise<unknown> = Promise.resolve()
  const timer = setInterval(() => {
    claiming = claiming.then(() =>
      csms.claim().then(
        (outcomes) => {
          for (const outcome of outcomes)
            if (!outcome.ok)
              log.warn(
                { channelId: outcome.channelId, code: outcome.code },
                'a claim failed; retried next round',
              )
        },
        (error: unknown) => log.error({ err: error }, 'claiming the CSMS’s vouchers failed'),
      ),
    )
  }, options.claimEveryMs ?? 10_000)
  timer.unref()
  let tlsServer: Server | undefined
  return {
    csms,
    routes: (app) => {
      app.upgrades.add(csms.upgrade)
      ocppRoutes(app, context, csms)
    },
    async listenTls(tls, host) {
      const read = (path: string) => {
        try {
          return readFileSync(path, 'utf8')
        } catch (error) {
          throw new BaseError('CONFIG_INVALID', `cannot read ${path} for the CSMS over TLS`, {
            details: { path },
            cause: error,
          })
        }
      }
      tlsServer = await listenCsmsTls(csms, {
        port: tls.port,
        host,
        cert: read(tls.cert),
        key: read(tls.key),
        ...(tls.clientCa ? { clientCa: read(tls.clientCa) } : {}),
      })
      return (tlsServer.address() as AddressInfo).port
    },
    async stop() {
      clearInterval(timer)
      await claiming
      await csms.close()
      tlsServer?.close()
    },
  }
}

async function requireOperator(context: NodeContext, request: FastifyRequest): Promise<void> {
  const address = await sessionAddress(context.db, request)
  if (!address)
    throw new BaseError('UNAUTHENTICATED', 'sign in with the node operator’s account (Authorization: Bearer)')
  if (address.toLowerCase() !== context.clients.account.address.toLowerCase())
    throw new BaseError('FORBIDDEN', 'only the node’s operator manages its charging stations', {
      details: { address },
    })
}

const stationIdParam = { type: 'string', pattern: '^[A-Za-z0-9._~*-]{1,48}$' } as const
const nullable = (type: string) => ({ type: [type, 'null'] }) as const
const stationSchema = {
  type: 'object',
  properties: {
    stationId: { type: 'string' },
    connected: { type: 'boolean' },
    revoked: { type: 'boolean' },
    securityProfile: nullable('integer'),
    vendorName: nullable('string'),
    model: nullable('string'),
    serialNumber: nullable('string'),
    firmwareVersion: nullable('string'),
    bootedAt: nullable('string'),
    lastSeenAt: nullable('string'),
    connectors: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          evseId: { type: 'integer' },
          connectorId: { type: 'integer' },
          status: { type: 'string' },
          updatedAt: { type: 'string' },
        },
      },
    },
  },
} as const
const transactionProperties = {
  stationId: { type: 'string' },
  transactionId: { type: 'string' },
  evseId: nullable('integer'),
  connectorId: nullable('integer'),
  idToken: nullable('string'),
  idTokenType: nullable('string'),
  vehicle: nullable('string'),
  channelId: nullable('string'),
  authorizationStatus: nullable('string'),
  state: { type: 'string', enum: ['active', 'ended'] },
  startedAt: { type: 'string' },
  updatedAt: { type: 'string' },
  endedAt: nullable('string'),
  seqNo: { type: 'integer' },
  triggerReason: nullable('string'),
  stoppedReason: nullable('string'),
  energyWh: { type: 'integer' },
  amount: { type: 'string', description: 'what the transaction’s vouchers pay, token base units' },
  cumulativeAmount: nullable('string'),
  vouchers: { type: 'integer' },
} as const

function ocppRoutes(app: FastifyInstance, context: NodeContext, csms: Csms): void {
  const { db } = context
  app.get(
    '/v1/ocpp/stations',
    {
      schema: {
        summary: 'OCPP 2.0.1 charging stations of this CSMS, their connectors and status',
        response: {
          200: {
            type: 'object',
            required: ['stations'],
            properties: { stations: { type: 'array', items: stationSchema } },
          },
        },
      },
    },
    async () => ({ stations: await listStations(db) }),
  )

  app.post(
    '/v1/ocpp/stations',
    {
      schema: {
        summary: 'Register a charging station (operator); answers its HTTP Basic password once',
        body: {
          type: 'object',
          required: ['stationId'],
          additionalProperties: false,
          properties: {
            stationId: stationIdParam,
            password: { type: 'string', minLength: 16, maxLength: 40 },
          },
        },
        response: {
          200: {
            type: 'object',
            required: ['stationId', 'password'],
            properties: { stationId: { type: 'string' }, password: { type: 'string' } },
          },
        },
      },
    },
    async (request) => {
      await requireOperator(context, request)
      const body = request.body as { stationId: string; password?: string }
      return registerStation(db, body.stationId, body.password)
    },
  )

  app.post(
    '/v1/ocpp/stations/:stationId/revoke',
    {
      schema: {
        summary: 'Revoke a charging station (operator): refused at the handshake, disconnected now',
        params: {
          type: 'object',
          required: ['stationId'],
          properties: { stationId: stationIdParam },
        },
        response: {
          200: {
            type: 'object',
            properties: { stationId: { type: 'string' }, revoked: { type: 'boolean' } },
          },
        },
      },
    },
    async (request) => {
      await requireOperator(context, request)
      const { stationId } = request.params as { stationId: string }
      await revokeStation(db, stationId)
      await csms.disconnect(stationId, 'revoked')
      return { stationId, revoked: true }
    },
  )

  app.get(
    '/v1/ocpp/transactions',
    {
      schema: {
        summary: 'OCPP transactions, newest first, with what their vouchers paid',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            stationId: stationIdParam,
            state: { type: 'string', enum: ['active', 'ended'] },
            limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
          },
        },
        response: {
          200: {
            type: 'object',
            required: ['transactions'],
            properties: {
              transactions: { type: 'array', items: { type: 'object', properties: transactionProperties } },
            },
          },
        },
      },
    },
    async (request) => {
      const query = request.query as { stationId?: string; state?: 'active' | 'ended'; limit?: number }
      return { transactions: await listTransactions(db, query) }
    },
  )

  app.get(
    '/v1/ocpp/stations/:stationId/transactions/:transactionId',
    {
      schema: {
        summary: 'One OCPP transaction with its meter values (signed ones as the station sent them)',
        params: {
          type: 'object',
          required: ['stationId', 'transactionId'],
          properties: { stationId: stationIdParam, transactionId: { type: 'string', maxLength: 36 } },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              ...transactionProperties,
              meterValues: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    sampledAt: { type: 'string' },
                    energyWh: nullable('integer'),
                    signed: { type: 'boolean' },
                    meterValue: { type: 'object', additionalProperties: true },
                  },
                },
              },
            },
          },
        },
      },
    },
    async (request) => {
      const { stationId, transactionId } = request.params as { stationId: string; transactionId: string }
      return getTransaction(db, stationId, transactionId)
    },
  )

  app.post(
    '/v1/ocpp/stations/:stationId/calls/:action',
    {
      schema: {
        summary:
          'Send an OCPP 2.0.1 call to a connected station (operator); the body is the request payload, validated against the OCA schema',
        params: {
          type: 'object',
          required: ['stationId', 'action'],
          properties: { stationId: stationIdParam, action: { type: 'string', enum: [...CSMS_CALLS] } },
        },
        body: { type: 'object', additionalProperties: true },
        response: { 200: { type: 'object', additionalProperties: true } },
      },
    },
    async (request) => {
      await requireOperator(context, request)
      const { stationId, action } = request.params as {
        stationId: string
        action: (typeof CSMS_CALLS)[number]
      }
      checkStationId(stationId)
      return csms.call(stationId, action, (request.body ?? {}) as Record<string, unknown>)
    },
  )
}
