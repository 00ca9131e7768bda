/**
 * The node's CSMS: OCPP 2.0.1 (OCPP-J, JSON over WebSocket, subprotocol `ocpp2.0.1`) on
 * `/ocpp/{stationId}`, on `ocpp-rpc` in strict mode, which validates every message against OCA's
 * JSON schemas both ways (an invalid inbound call is answered with the schema's CALLERROR and
 * never reaches a handler; an invalid answer of ours becomes an InternalError).
 *
 * The handshake refuses an unknown or revoked station, a wrong password, and HTTP Basic over plain
 * WebSocket from anywhere but loopback (security profile 1 is for the demo on one machine; a
 * station elsewhere uses TLS: profile 2 or 3, docs/ocpp.md). Before a BootNotification was
 * accepted every other call is a SecurityError (OCPP 2.0.1 B02.FR.09). A TransactionEvent that
 * continues a transaction never started, or one already ended, is a PropertyConstraintViolation.
 *
 * The car-wallet payment (src/ocpp/payment.ts) is checked against the chain: a Carchain IdToken is
 * Accepted only for a registered, unrevoked vehicle with an open channel to this CPO that can still
 * pay; every voucher a station reports is verified (payer's signature, this channel, not below the
 * newest, within the deposit) and kept in the operator's voucher book, from which `claim()`
 * settles on chain. The cost the CSMS answers to TransactionEvent Ended is what the vouchers pay.
 */
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import type { TLSSocket } from 'node:tls'
import type { Address, Chain, Hex, PublicClient, Transport } from 'viem'
import { hexToBytes, zeroHash } from 'viem'
import { vehicleRegistryAbi } from '../chain/generated/index.ts'
import type { Queryable } from '../db/database.ts'
import { BaseError, toBaseError } from '../errors.ts'
import { logger } from '../log.ts'
import { type ChannelClients, type ChannelKey, channelIdOf, readChannel } from '../payments/channels.ts'
import type { PaymentsDomain } from '../payments/typed-data.ts'
import { createVoucherVerifier } from '../payments/verify-voucher.ts'
import { type ClaimOutcome, claimPending, type VoucherBook } from '../station/vouchers.ts'
import { routeUpgrades, type UpgradeRoute } from '../upgrade-router.ts'
import {
  costResponse,
  type IdToken,
  parseBaseCustomData,
  parseCarIdToken,
  parseVoucherCustomData,
} from './payment.ts'
import { type RpcPeer, rpcError, rpcServer } from './rpc.ts'
import { checkStationLogin } from './stations.ts'

const log = logger('ocpp.csms')

export const OCPP_PROTOCOL = 'ocpp2.0.1'

/** What the CSMS needs to take car-wallet payments: the chain, the CPO and its voucher book. */
export type CsmsPayments = {
  readonly publicClient: PublicClient<Transport, Chain>
  readonly domain: PaymentsDomain
  /** The CPO: the payee every channel must name. */
  readonly payee: Address
  /** Tokens a channel may be in; the first is the one costs are stated in. */
  readonly tokens: readonly Address[]
  readonly vehicleRegistry: Address
  readonly book: VoucherBook
  /** The CPO's account that claims (payee); required for `claim()`. */
  readonly settlement?: ChannelClients
  /** A channel must stay open this long (default 1 h), so its claims land in time. */
  readonly minChannelValiditySec?: number
  readonly now?: () => number
}

export type CreateCsmsParameters = {
  readonly db: Queryable
  readonly payments?: CsmsPayments
  /** HeartbeatInterval the BootNotificationResponse sets (default 60 s). */
  readonly heartbeatIntervalSec?: number
  /** Answer timeout for calls to stations (default 30 s). */
  readonly callTimeoutMs?: number
  /** Told of every change a dashboard shows (station status, transactions). */
  readonly onChange?: (change: Record<string, unknown>) => void
}

export type AuthorizationStatus =
  | 'Accepted'
  | 'Blocked'
  | 'ConcurrentTx'
  | 'Expired'
  | 'Invalid'
  | 'NoCredit'
  | 'NotAllowedTypeEVSE'
  | 'NotAtThisLocation'
  | 'NotAtThisTime'
  | 'Unknown'

export type Csms = {
  /**
   * The CSMS's route for a server's upgrade router (src/upgrade-router.ts): WebSocket upgrades of
   * `/ocpp/{stationId}`; the router answers other paths.
   */
  readonly upgrade: UpgradeRoute
  /** Station ids connected now. */
  connected(): string[]
  /** Sends a CSMS-initiated call (RequestStartTransaction, Reset, …) to a connected station. */
  call(stationId: string, method: CsmsCall, params: Record<string, unknown>): Promise<Record<string, unknown>>
  /** Disconnects a station (after a revocation). */
  disconnect(stationId: string, reason: string): Promise<void>
  /** Whether the chain authorizes this IdToken at this CPO now (what Authorize answers). */
  authorize(idToken: IdToken): Promise<AuthorizationStatus>
  /** Claims the newest voucher of every channel with unclaimed value. */
  claim(): Promise<ClaimOutcome[]>
  close(): Promise<void>
}

/** The calls an operator sends to a station through the API. */
export const CSMS_CALLS = [
  'RequestStartTransaction',
  'RequestStopTransaction',
  'GetVariables',
  'SetVariables',
  'Reset',
  'SetChargingProfile',
  'GetTransactionStatus',
  'TriggerMessage',
] as const
export type CsmsCall = (typeof CSMS_CALLS)[number]

type ServerClient = RpcPeer & { session: Session }

type Session = { stationId: string; securityProfile: 1 | 2 | 3; booted: boolean }

const isLoopback = (address: string | undefined) =>
  address !== undefined && (/^(::ffff:)?127\./.test(address) || address === '::1')

/** The Energy.Active.Import.Register of a meter value in Wh, if it has one. */
function energyWhOf(meterValue: Record<string, unknown>): bigint | undefined {
  for (const sample of (meterValue.sampledValue as Record<string, unknown>[]) ?? []) {
    const measurand = (sample.measurand as string | undefined) ?? 'Energy.Active.Import.Register'
    if (measurand !== 'Energy.Active.Import.Register') continue
    const unit = (sample.unitOfMeasure as { unit?: string; multiplier?: number } | undefined) ?? {}
    const multiplier = 10 ** (unit.multiplier ?? 0)
    const value = Number(sample.value) * multiplier * ((unit.unit ?? 'Wh') === 'kWh' ? 1000 : 1)
    if (Number.isFinite(value) && value >= 0) return BigInt(Math.round(value))
  }
  return undefined
}

const hasSignedValue = (meterValue: Record<string, unknown>) =>
  ((meterValue.sampledValue as Record<string, unknown>[]) ?? []).some((s) => s.signedMeterValue !== undefined)

export function createCsms(parameters: CreateCsmsParameters): Csms {
  const { db, payments } = parameters
  const onChange = parameters.onChange ?? (() => {})
  const clients = new Map<string, ServerClient>()
  const verifier = payments ? createVoucherVerifier(payments.domain) : undefined
  const now = payments?.now ?? Date.now
  const server = rpcServer({
    protocols: [OCPP_PROTOCOL],
    strictMode: true,
    callTimeoutMs: parameters.callTimeoutMs ?? 30_000,
    // A station that sends nothing but garbage is dropped; one bad message is answered, not fatal.
    maxBadMessages: 10,
  })

  server.auth(async (accept, reject, handshake) => {
    const stationId = handshake.identity
    const socket = handshake.request.socket as TLSSocket
    const tls = socket.encrypted === true
    const peer = tls ? socket.getPeerCertificate?.() : undefined
    const mutual = tls && socket.authorized === true && peer !== undefined && Object.keys(peer).length > 0
    const securityProfile: 1 | 2 | 3 = mutual ? 3 : tls ? 2 : 1
    try {
      if (!/^[A-Za-z0-9._~*-]{1,48}$/.test(stationId)) return reject(400, 'malformed station id')
      if (securityProfile === 1 && !isLoopback(handshake.remoteAddress))
        return reject(403, 'security profile 1 (Basic over plain WebSocket) only from loopback; use TLS')
      if (securityProfile === 3 && peer?.subject?.CN !== stationId)
        return reject(401, 'the client certificate is not this station’s')
      const verdict = await checkStationLogin(db, stationId, handshake.password, securityProfile !== 3)
      if (!verdict.ok) {
        log.warn({ stationId, reason: verdict.reason, remote: handshake.remoteAddress }, 'station refused')
        return reject(verdict.status, verdict.reason)
      }
      const session: Session = { stationId, securityProfile, booted: false }
      accept(session, OCPP_PROTOCOL)
    } catch (error) {
      log.error({ err: error, stationId }, 'station handshake failed inside the CSMS')
      reject(500, 'internal error')
    }
  })

  server.on('client', (client: ServerClient) => onClient(client))
  server.on('error', (error: Error) => log.error({ err: error }, 'the OCPP WebSocket server failed'))

  const touch = (stationId: string) =>
    db.query('update ocpp_stations set last_seen_at = now() where station_id = $1', [stationId])

  /** Handlers are set at once (the station may call right away); the database learns of it meanwhile. */
  function onClient(client: ServerClient) {
    const { stationId } = client.session
    const previous = clients.get(stationId)
    clients.set(stationId, client)
    const ready = (async () => {
      if (previous) await previous.close({ code: 1000, reason: 'replaced by a new connection' })
      await db.query(
        'update ocpp_stations set connected = true, security_profile = $2, last_seen_at = now() where station_id = $1',
        [stationId, client.session.securityProfile],
      )
      onChange({ kind: 'station', stationId, connected: true })
    })()
    ready.catch((error: unknown) =>
      log.error({ err: error, stationId }, 'could not record a station’s connection'),
    )
    client.on('strictValidationFailure', (event) =>
      log.warn(
        { stationId, method: event.method, outbound: event.outbound, err: event.error },
        'an OCPP message failed the 2.0.1 schema',
      ),
    )
    client.on('badMessage', (event) =>
      log.warn({ stationId, err: event.error }, 'a station sent a message that is not OCPP-J'),
    )
    client.on('close', () => {
      if (clients.get(stationId) !== client) return
      clients.delete(stationId)
      ready
        .then(() => db.query('update ocpp_stations set connected = false where station_id = $1', [stationId]))
        .then(
          () => onChange({ kind: 'station', stationId, connected: false }),
          (error: unknown) => log.error({ err: error, stationId }, 'could not record a station’s disconnect'),
        )
    })
    const booted = (method: string, handler: (params: Record<string, unknown>) => Promise<unknown>) =>
      client.handle(method, async ({ params }) => {
        if (!client.session.booted)
          throw rpcError('SecurityError', `${method} before the CSMS accepted a BootNotification`)
        return guarded(method, async () => {
          await touch(stationId)
          return handler(params)
        })
      })
    /** A failure of ours is an InternalError to the station and an error in our log; never a crash. */
    const guarded = async (method: string, run: () => Promise<unknown>) => {
      try {
        return await run()
      } catch (error) {
        if ((error as { rpcErrorCode?: string }).rpcErrorCode) throw error
        const failure = toBaseError(error)
        if (failure.code === 'INVALID_ARGUMENT')
          throw rpcError('PropertyConstraintViolation', failure.shortMessage, failure.details)
        log.error({ err: error, stationId, method }, 'the CSMS failed on a station’s call')
        throw rpcError('InternalError', 'the CSMS failed on this call')
      }
    }

    client.handle('BootNotification', async ({ params }) =>
      guarded('BootNotification', async () => {
        const station = params.chargingStation as Record<string, string | undefined>
        await db.query(
          `update ocpp_stations set vendor_name = $2, model = $3, serial_number = $4, firmware_version = $5,
             boot_reason = $6, booted_at = now(), last_seen_at = now() where station_id = $1`,
          [
            stationId,
            station.vendorName,
            station.model,
            station.serialNumber ?? null,
            station.firmwareVersion ?? null,
            params.reason,
          ],
        )
        client.session.booted = true
        onChange({ kind: 'station', stationId, booted: true })
        return {
          currentTime: new Date().toISOString(),
          interval: parameters.heartbeatIntervalSec ?? 60,
          status: 'Accepted',
        }
      }),
    )
    booted('Heartbeat', async () => ({ currentTime: new Date().toISOString() }))
    booted('StatusNotification', async (params) => {
      await db.query(
        `insert into ocpp_connectors (station_id, evse_id, connector_id, status, updated_at) values ($1, $2, $3, $4, $5)
         on conflict (station_id, evse_id, connector_id) do update set status = excluded.status, updated_at = excluded.updated_at`,
        [
          stationId,
          params.evseId,
          params.connectorId,
          params.connectorStatus,
          new Date(params.timestamp as string),
        ],
      )
      onChange({
        kind: 'connector',
        stationId,
        evseId: params.evseId,
        connectorId: params.connectorId,
        status: params.connectorStatus,
      })
      return {}
    })
    booted('NotifyEvent', async (params) => {
      await db.query("insert into ocpp_events (station_id, kind, payload) values ($1, 'NotifyEvent', $2)", [
        stationId,
        JSON.stringify(params),
      ])
      return {}
    })
    booted('MeterValues', async (params) => {
      await db.query("insert into ocpp_events (station_id, kind, payload) values ($1, 'MeterValues', $2)", [
        stationId,
        JSON.stringify(params),
      ])
      return {}
    })
    booted('Authorize', async (params) => ({
      idTokenInfo: { status: await authorize(params.idToken as IdToken) },
    }))
    booted('TransactionEvent', (params) => transactionEvent(stationId, params))
    client.handle(({ method }) => {
      throw rpcError('NotImplemented', `the CSMS does not handle ${method}`)
    })
  }

  async function authorize(idToken: IdToken): Promise<AuthorizationStatus> {
    return (await authorizeCar(idToken)).status
  }

  type Authorization = {
    status: AuthorizationStatus
    vehicle?: Address
    key?: ChannelKey
    channelId?: Hex
  }

  /** The chain's verdict on an IdToken (see the file's comment). */
  async function authorizeCar(idToken: IdToken): Promise<Authorization> {
    if (!payments) return { status: 'Unknown' }
    let car: ReturnType<typeof parseCarIdToken>
    try {
      car = parseCarIdToken(idToken)
    } catch {
      return { status: 'Invalid' }
    }
    if (!car) return { status: 'Unknown' }
    const fingerprint = await payments.publicClient.readContract({
      address: payments.vehicleRegistry,
      abi: vehicleRegistryAbi,
      functionName: 'certFingerprintOf',
      args: [car.vehicle],
    })
    if (fingerprint === zeroHash) return { status: 'Unknown', vehicle: car.vehicle }
    const revoked = await payments.publicClient.readContract({
      address: payments.vehicleRegistry,
      abi: vehicleRegistryAbi,
      functionName: 'isCertRevoked',
      args: [fingerprint],
    })
    if (revoked) return { status: 'Blocked', vehicle: car.vehicle }
    if (!car.channel) return { status: 'NoCredit', vehicle: car.vehicle }
    const { channelId, nonce } = car.channel
    const key = payments.tokens
      .map((token): ChannelKey => ({ payer: car.vehicle, payee: payments.payee, token, nonce }))
      .find((k) => channelIdOf(k) === channelId)
    if (!key) return { status: 'Invalid', vehicle: car.vehicle }
    const onChain = await readChannel(payments.publicClient, {
      channels: payments.domain.verifyingContract,
      key,
    }).catch((error: unknown) => {
      if (error instanceof BaseError && error.code === 'CHANNEL_STATE') return undefined
      throw error
    })
    if (!onChain) return { status: 'NoCredit', vehicle: car.vehicle }
    const minSec = BigInt(Math.floor(now() / 1000) + (payments.minChannelValiditySec ?? 3600))
    if (onChain.closed || onChain.expiresAt < minSec)
      return { status: 'Expired', vehicle: car.vehicle, key, channelId }
    const newest = (await payments.book.newest(channelId))?.newest.cumulativeAmount ?? 0n
    const spent = newest > onChain.paid ? newest : onChain.paid
    if (onChain.deposit <= spent) return { status: 'NoCredit', vehicle: car.vehicle, key, channelId }
    return { status: 'Accepted', vehicle: car.vehicle, key, channelId }
  }

  type TransactionRow = {
    state: 'active' | 'ended'
    last_seq_no: number
    vehicle: Uint8Array | null
    channel_id: Uint8Array | null
    base_amount: string | null
    cumulative_amount: string | null
    energy_wh: string
    channel_token: Uint8Array | null
    channel_nonce: string | null
  }

  async function transactionEvent(stationId: string, params: Record<string, unknown>) {
    const info = params.transactionInfo as Record<string, unknown>
    const transactionId = info.transactionId as string
    const eventType = params.eventType as 'Started' | 'Updated' | 'Ended'
    const seqNo = params.seqNo as number
    const timestamp = new Date(params.timestamp as string)
    const evse = params.evse as { id: number; connectorId?: number } | undefined
    const idToken = params.idToken as IdToken | undefined
    const meterValues = (params.meterValue as Record<string, unknown>[] | undefined) ?? []
    const custom = params.customData as Record<string, unknown> | undefined
    const response: Record<string, unknown> = {}

    const existing = (
      await db.query<TransactionRow>(
        `select state, last_seq_no, vehicle, channel_id, base_amount, cumulative_amount, energy_wh, channel_token, channel_nonce
         from ocpp_transactions where station_id = $1 and transaction_id = $2`,
        [stationId, transactionId],
      )
    ).rows[0]
    if (eventType === 'Started') {
      if (existing) {
        if (existing.last_seq_no === seqNo) return response // the same event again (a retry)
        throw rpcError('PropertyConstraintViolation', `transaction ${transactionId} was already started`)
      }
      const auth = idToken ? await authorizeCar(idToken) : undefined
      const base = auth?.status === 'Accepted' ? parseBaseCustomData(custom) : undefined
      let status = auth?.status
      if (auth?.status === 'Accepted' && auth.channelId && payments) {
        // The session's vouchers count from `base`: it must not be below what the CPO already holds.
        const newest = (await payments.book.newest(auth.channelId))?.newest.cumulativeAmount ?? 0n
        if (!base || base.cumulativeAmount < newest) status = 'Invalid'
      }
      await db.query(
        `insert into ocpp_transactions (station_id, transaction_id, evse_id, connector_id, id_token, id_token_type,
           vehicle, channel_id, authorization_status, state, started_at, updated_at, last_seq_no, trigger_reason,
           base_amount, cumulative_amount, channel_token, channel_nonce)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'active', $10, $10, $11, $12, $13::numeric, $13::numeric, $14, $15::numeric)`,
        [
          stationId,
          transactionId,
          evse?.id ?? null,
          evse?.connectorId ?? null,
          idToken?.idToken ?? null,
          idToken?.type ?? null,
          status === 'Accepted' && auth?.vehicle ? hexToBytes(auth.vehicle) : null,
          status === 'Accepted' && auth?.channelId ? hexToBytes(auth.channelId) : null,
          status ?? null,
          timestamp,
          seqNo,
          params.triggerReason,
          base ? base.cumulativeAmount.toString() : null,
          status === 'Accepted' && auth?.key ? hexToBytes(auth.key.token) : null,
          status === 'Accepted' && auth?.key ? auth.key.nonce.toString() : null,
        ],
      )
      if (status) response.idTokenInfo = { status }
    } else {
      if (!existing)
        throw rpcError('PropertyConstraintViolation', `transaction ${transactionId} was never started`, {
          transactionId,
        })
      if (existing.state === 'ended')
        throw rpcError('PropertyConstraintViolation', `transaction ${transactionId} has ended`, {
          transactionId,
        })
      if (seqNo <= existing.last_seq_no) return response // a retry of an event already taken
      if (idToken && !existing.vehicle) {
        const status = await authorize(idToken)
        response.idTokenInfo = { status }
        await db.query(
          'update ocpp_transactions set id_token = $3, id_token_type = $4, authorization_status = $5 where station_id = $1 and transaction_id = $2',
          [stationId, transactionId, idToken.idToken, idToken.type, status],
        )
      }
    }

    for (const meterValue of meterValues) {
      const energy = energyWhOf(meterValue)
      await db.query(
        `insert into ocpp_meter_values (station_id, transaction_id, sampled_at, energy_wh, meter_value, signed)
         values ($1, $2, $3, $4::numeric, $5, $6)`,
        [
          stationId,
          transactionId,
          new Date(meterValue.timestamp as string),
          energy === undefined ? null : energy.toString(),
          JSON.stringify(meterValue),
          hasSignedValue(meterValue),
        ],
      )
      if (energy !== undefined)
        await db.query(
          'update ocpp_transactions set energy_wh = greatest(energy_wh, $3::numeric) where station_id = $1 and transaction_id = $2',
          [stationId, transactionId, energy.toString()],
        )
    }

    const voucher = parseVoucherCustomData(custom)
    if (voucher && eventType !== 'Started') {
      const verdict = await takeVoucher(existing!, voucher)
      if (verdict !== 'Accepted') response.idTokenInfo = { status: verdict }
      else
        await db.query(
          `update ocpp_transactions set cumulative_amount = $3::numeric, amount = $3::numeric - coalesce(base_amount, 0),
             vouchers = vouchers + 1 where station_id = $1 and transaction_id = $2`,
          [stationId, transactionId, voucher.cumulativeAmount.toString()],
        )
    }

    await db.query(
      `update ocpp_transactions set updated_at = $3, last_seq_no = greatest(last_seq_no, $4), trigger_reason = $5,
         state = $6, ended_at = case when $6 = 'ended' then $3 else ended_at end,
         stopped_reason = coalesce($7, stopped_reason)
       where station_id = $1 and transaction_id = $2`,
      [
        stationId,
        transactionId,
        timestamp,
        seqNo,
        params.triggerReason,
        eventType === 'Ended' ? 'ended' : 'active',
        (info.stoppedReason as string | undefined) ?? null,
      ],
    )
    const { rows } = await db.query<{ amount: string; vehicle: Uint8Array | null; energy_wh: string }>(
      'select amount, vehicle, energy_wh from ocpp_transactions where station_id = $1 and transaction_id = $2',
      [stationId, transactionId],
    )
    const row = rows[0]!
    if (eventType === 'Ended' && row.vehicle && payments)
      Object.assign(response, costResponse(BigInt(row.amount), payments.tokens[0]!))
    onChange({
      kind: 'transaction',
      stationId,
      transactionId,
      eventType,
      energyWh: Number(row.energy_wh),
      amount: row.amount,
    })
    return response
  }

  /** Verifies a reported voucher against the transaction's channel and keeps it; the verdict as an idToken status. */
  async function takeVoucher(
    transaction: TransactionRow,
    voucher: NonNullable<ReturnType<typeof parseVoucherCustomData>>,
  ): Promise<AuthorizationStatus> {
    if (!payments || !verifier || !transaction.vehicle || !transaction.channel_id) return 'Invalid'
    const channelId = `0x${Buffer.from(transaction.channel_id).toString('hex')}` as Hex
    if (voucher.channelId !== channelId) return 'Invalid'
    const payer = `0x${Buffer.from(transaction.vehicle).toString('hex')}` as Address
    if (!transaction.channel_token || transaction.channel_nonce === null) return 'Invalid'
    const key: ChannelKey = {
      payer,
      payee: payments.payee,
      token: `0x${Buffer.from(transaction.channel_token).toString('hex')}` as Address,
      nonce: BigInt(transaction.channel_nonce),
    }
    if (channelIdOf(key) !== channelId) return 'Invalid'
    const newest = (await payments.book.newest(channelId))?.newest.cumulativeAmount ?? 0n
    if (voucher.cumulativeAmount < newest) return 'Invalid'
    if (!verifier.verify(voucher, voucher.signature, payer)) return 'Invalid'
    const onChain = await readChannel(payments.publicClient, {
      channels: payments.domain.verifyingContract,
      key,
    })
    if (voucher.cumulativeAmount > onChain.deposit) return 'NoCredit'
    await payments.book.offer(voucher, key)
    return 'Accepted'
  }

  return {
    upgrade: {
      path: /^\/ocpp\/[^/]+$/,
      handle: (request, socket, head) => server.handleUpgrade(request, socket, head),
    },
    connected: () => [...clients.keys()],
    async call(stationId, method, params) {
      const client = clients.get(stationId)
      if (!client)
        throw new BaseError('OCPP_STATION_OFFLINE', `station ${stationId} is not connected`, {
          details: { stationId },
        })
      try {
        return (await client.call(method, params)) as Record<string, unknown>
      } catch (error) {
        const e = error as { rpcErrorCode?: string; message?: string; details?: unknown }
        throw new BaseError('OCPP_CALL_FAILED', `${method} to ${stationId} failed: ${e.message}`, {
          details: { stationId, method, ocppErrorCode: e.rpcErrorCode ?? null },
          cause: error,
        })
      }
    },
    async disconnect(stationId, reason) {
      await clients.get(stationId)?.close({ code: 1008, reason })
    },
    authorize,
    async claim() {
      if (!payments?.settlement)
        throw new BaseError('CONFIG_INVALID', 'the CSMS has no settlement account to claim with')
      return claimPending(payments.settlement, {
        channels: payments.domain.verifyingContract,
        book: payments.book,
      })
    },
    async close() {
      await server.close({ code: 1001, reason: 'CSMS stopping', force: true })
    },
  }
}

export type CsmsTlsParameters = {
  readonly port: number
  readonly host: string
  /** The CSMS's server certificate (chain) and key, PEM. */
  readonly cert: string
  readonly key: string
  /**
   * CA certificates (PEM) that issue stations' client certificates (the CPO PKI's sub-CA): with it,
   * a station may authenticate with its certificate (security profile 3, CN = station id); without,
   * only HTTP Basic over TLS (profile 2).
   */
  readonly clientCa?: string
}

/**
 * Serves the CSMS over TLS (security profiles 2 and 3) on its own port: an HTTPS server whose
 * upgrade router has the CSMS's route alone (any other path is answered 404); the CSMS sees the
 * TLS socket. A client certificate is
 * asked for but not required (a profile-2 station has none); the CSMS accepts it only when it
 * chains to `clientCa` and names the station.
 */
export async function listenCsmsTls(csms: Csms, parameters: CsmsTlsParameters): Promise<HttpsServer> {
  const server = createHttpsServer(
    {
      cert: parameters.cert,
      key: parameters.key,
      minVersion: 'TLSv1.2',
      ...(parameters.clientCa
        ? { ca: parameters.clientCa, requestCert: true, rejectUnauthorized: false }
        : {}),
    },
    (_request, response) => response.writeHead(404).end(),
  )
  routeUpgrades(server, [csms.upgrade])
  server.on('tlsClientError', (error) => log.warn({ err: error }, 'a TLS handshake with a station failed'))
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(parameters.port, parameters.host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  return server
}
