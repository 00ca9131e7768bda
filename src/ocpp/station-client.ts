/**
 * A Carchain charging station as an OCPP 2.0.1 station: connects to a CSMS at `{csmsUrl}/{stationId}`
 * (subprotocol `ocpp2.0.1`, `ocpp-rpc` in strict mode: nothing leaves or is taken that fails OCA's
 * schemas), boots, reports its connectors, heartbeats, and reports every car's session as a
 * transaction: Authorize with the car's IdToken, TransactionEvent Started, Updated per delivered
 * increment (meter value with the charger's signed reading, the car's voucher in `customData`),
 * Ended. Its `report` plugs into `createChargingStation` (src/station/station.ts). It answers the
 * CSMS's RequestStopTransaction, RequestStartTransaction (refused: a car starts a session by paying),
 * GetVariables/SetVariables (a small device model), Reset, SetChargingProfile, GetTransactionStatus
 * and TriggerMessage. The mapping is in docs/ocpp.md.
 */
import { randomUUID } from 'node:crypto'
import { BaseError } from '../errors.ts'
import { logger } from '../log.ts'
import type { SessionReport, SessionReportHandle } from '../station/station.ts'
import { OCPP_PROTOCOL } from './csms.ts'
import {
  baseCustomData,
  CARCHAIN_VENDOR_ID,
  carIdToken,
  parseCostResponse,
  voucherCustomData,
} from './payment.ts'
import { rpcClient, rpcError } from './rpc.ts'

const log = logger('ocpp.station')

export type ConnectOcppStationParameters = {
  /** The CSMS's OCPP endpoint; the station connects to `{csmsUrl}/{stationId}`. */
  readonly csmsUrl: string
  readonly stationId: string
  /** HTTP Basic password (security profiles 1 and 2). */
  readonly password?: string
  /** TLS options for `wss:` (profile 2: `ca`; profile 3: also `cert` and `key`). */
  readonly tls?: { ca?: string | string[]; cert?: string; key?: string }
  readonly vendorName?: string
  readonly model?: string
  readonly serialNumber?: string
  readonly firmwareVersion?: string
  /** EVSEs with one connector each (default 1). */
  readonly evses?: number
  /** Answer timeout for calls to the CSMS (default 30 s). */
  readonly callTimeoutMs?: number
  /** Reconnect after a lost connection (default true). */
  readonly reconnect?: boolean
}

export type OcppStation = {
  readonly stationId: string
  /** What the CSMS answered to BootNotification. */
  readonly boot: { status: string; interval: number; currentTime: string }
  /** Plugs into `createChargingStation({report})`. */
  readonly report: SessionReport
  /** The transactions running now. */
  transactions(): string[]
  /** The CSMS’s cost answer to each ended transaction (exact, token base units), newest last (the last 1,000). */
  readonly costs: { transactionId: string; totalCost: number | undefined; amount: bigint | undefined }[]
  close(): Promise<void>
}

const uint = (value: bigint) => value.toString()

/** Connects, boots (BootNotification accepted, connectors Available) and starts heartbeats. */
export async function connectOcppStation(parameters: ConnectOcppStationParameters): Promise<OcppStation> {
  const { stationId } = parameters
  const evses = parameters.evses ?? 1
  const client = rpcClient({
    endpoint: parameters.csmsUrl.replace(/\/+$/, ''),
    identity: stationId,
    protocols: [OCPP_PROTOCOL],
    strictMode: true,
    callTimeoutMs: parameters.callTimeoutMs ?? 30_000,
    reconnect: parameters.reconnect ?? true,
    ...(parameters.password ? { password: parameters.password } : {}),
    ...(parameters.tls ? { wsOpts: parameters.tls } : {}),
  })
  client.on('strictValidationFailure', (event: Record<string, unknown>) =>
    log.warn(
      { stationId, method: event.method, outbound: event.outbound, err: event.error },
      'an OCPP message failed the 2.0.1 schema',
    ),
  )
  client.on('socketError', (error: Error) =>
    log.warn({ stationId, err: error }, 'the CSMS connection failed'),
  )

  const variables = new Map<string, string>([
    ['OCPPCommCtrlr.HeartbeatInterval', '60'],
    ['SecurityCtrlr.SecurityProfile', parameters.csmsUrl.startsWith('wss:') ? '2' : '1'],
    ['AuthCtrlr.AuthorizeRemoteStart', 'false'],
    ['SampledDataCtrlr.TxUpdatedMeasurands', 'Energy.Active.Import.Register'],
    ['SampledDataCtrlr.SignReadings', 'true'],
    ['ChargingStation.Model', parameters.model ?? 'Carchain station'],
  ])
  const writable = new Set(['OCPPCommCtrlr.HeartbeatInterval'])
  const active = new Map<string, { controller: AbortController; evseId: number }>()
  const chargingProfiles = new Map<number, unknown>()
  const costs: OcppStation['costs'] = []
  let heartbeat: NodeJS.Timeout | undefined

  const call = async (method: string, params: Record<string, unknown>): Promise<Record<string, unknown>> => {
    try {
      return (await client.call(method, params)) as Record<string, unknown>
    } catch (error) {
      const e = error as { rpcErrorCode?: string; message?: string }
      throw new BaseError('OCPP_CALL_FAILED', `${method} to the CSMS failed: ${e.message}`, {
        details: { stationId, method, ocppErrorCode: e.rpcErrorCode ?? null },
        cause: error,
      })
    }
  }

  const startHeartbeat = (intervalSec: number) => {
    if (heartbeat) clearInterval(heartbeat)
    variables.set('OCPPCommCtrlr.HeartbeatInterval', String(intervalSec))
    heartbeat = setInterval(() => {
      call('Heartbeat', {}).catch((err: unknown) => log.warn({ stationId, err }, 'heartbeat failed'))
    }, intervalSec * 1000)
    heartbeat.unref()
  }

  const status = (evseId: number, connectorStatus: string) =>
    call('StatusNotification', {
      timestamp: new Date().toISOString(),
      connectorStatus,
      evseId,
      connectorId: 1,
    })

  async function bootNotification(reason: string) {
    for (let attempt = 0; ; attempt++) {
      const answer = await call('BootNotification', {
        reason,
        chargingStation: {
          vendorName: parameters.vendorName ?? 'Carchain',
          model: parameters.model ?? 'Carchain station',
          ...(parameters.serialNumber ? { serialNumber: parameters.serialNumber } : {}),
          ...(parameters.firmwareVersion ? { firmwareVersion: parameters.firmwareVersion } : {}),
        },
      })
      const boot = answer as OcppStation['boot']
      if (boot.status === 'Accepted') {
        startHeartbeat(boot.interval > 0 ? boot.interval : 60)
        for (let evse = 1; evse <= evses; evse++)
          await status(evse, [...active.values()].some((t) => t.evseId === evse) ? 'Occupied' : 'Available')
        return boot
      }
      if (boot.status === 'Rejected' || attempt >= 5)
        throw new BaseError('OCPP_BOOT_REJECTED', `the CSMS answered ${boot.status} to BootNotification`, {
          details: { stationId, status: boot.status },
        })
      await new Promise((resolve) => setTimeout(resolve, Math.min(boot.interval || 5, 30) * 1000))
    }
  }

  client.handle<{ transactionId: string }>('RequestStopTransaction', ({ params }) => {
    const transaction = active.get(params.transactionId)
    if (!transaction) return { status: 'Rejected' }
    transaction.controller.abort()
    return { status: 'Accepted' }
  })
  client.handle('RequestStartTransaction', () => ({
    // A Carchain station starts a session when a car connects and pays over its channel.
    status: 'Rejected',
    statusInfo: { reasonCode: 'CarStartsSession', additionalInfo: 'a car starts a session by paying' },
  }))
  type VariableRequest = {
    component: { name: string; instance?: string }
    variable: { name: string; instance?: string }
    attributeValue?: string
  }
  client.handle<{ getVariableData: VariableRequest[] }>('GetVariables', ({ params }) => ({
    getVariableResult: params.getVariableData.map(({ component, variable }) => {
      const value = variables.get(`${component.name}.${variable.name}`)
      return value === undefined
        ? {
            attributeStatus: [...variables.keys()].some((k) => k.startsWith(`${component.name}.`))
              ? 'UnknownVariable'
              : 'UnknownComponent',
            component,
            variable,
          }
        : { attributeStatus: 'Accepted', attributeValue: value, component, variable }
    }),
  }))
  client.handle<{ setVariableData: VariableRequest[] }>('SetVariables', ({ params }) => ({
    setVariableResult: params.setVariableData.map(({ component, variable, attributeValue }) => {
      const name = `${component.name}.${variable.name}`
      if (!variables.has(name)) return { attributeStatus: 'UnknownVariable', component, variable }
      if (!writable.has(name) || !/^[1-9][0-9]{0,5}$/.test(attributeValue ?? ''))
        return { attributeStatus: 'Rejected', component, variable }
      startHeartbeat(Number(attributeValue))
      return { attributeStatus: 'Accepted', component, variable }
    }),
  }))
  client.handle<{ type: string }>('Reset', ({ params }) => {
    if (active.size > 0 && params.type === 'OnIdle') return { status: 'Scheduled' }
    for (const transaction of active.values()) transaction.controller.abort()
    setTimeout(() => {
      bootNotification('RemoteReset').catch((err: unknown) =>
        log.error({ stationId, err }, 'booting again after a Reset failed'),
      )
    }, 100).unref()
    return { status: 'Accepted' }
  })
  client.handle(
    'SetChargingProfile',
    ({ params }: { params: { evseId: number; chargingProfile: unknown } }) => {
      if (params.evseId < 0 || params.evseId > evses)
        return { status: 'Rejected', statusInfo: { reasonCode: 'UnknownEVSE' } }
      chargingProfiles.set(params.evseId, params.chargingProfile)
      return { status: 'Accepted' }
    },
  )
  client.handle<{ transactionId?: string }>('GetTransactionStatus', ({ params }) => ({
    ...(params.transactionId ? { ongoingIndicator: active.has(params.transactionId) } : {}),
    messagesInQueue: false,
  }))
  client.handle<{ requestedMessage: string }>('TriggerMessage', ({ params }) => {
    if (params.requestedMessage === 'Heartbeat') {
      setImmediate(() =>
        call('Heartbeat', {}).catch((err: unknown) =>
          log.warn({ stationId, err }, 'triggered heartbeat failed'),
        ),
      )
      return { status: 'Accepted' }
    }
    return { status: 'NotImplemented' }
  })
  client.handle(({ method }) => {
    throw rpcError('NotImplemented', `the station does not handle ${method}`)
  })

  try {
    await client.connect()
  } catch (error) {
    throw new BaseError(
      'OCPP_BOOT_REJECTED',
      `the CSMS refused the connection: ${(error as Error).message}`,
      {
        details: { stationId, csmsUrl: parameters.csmsUrl },
        cause: error,
      },
    )
  }
  let boot: OcppStation['boot']
  try {
    boot = await bootNotification('PowerUp')
  } catch (error) {
    await client.close({ force: true })
    throw error
  }
  client.on('open', () => {
    // After a reconnect the CSMS sees a new connection: boot again.
    bootNotification('Unknown').catch((err: unknown) =>
      log.error({ stationId, err }, 'booting again after a reconnect failed'),
    )
  })

  const refuse = (status: string, step: string): never => {
    throw new BaseError('OCPP_NOT_AUTHORIZED', `the CSMS answered ${status} to ${step}`, {
      details: { stationId, status },
    })
  }

  const report: SessionReport = {
    async authorize(car) {
      const answer = await call('Authorize', {
        idToken: carIdToken({
          vehicle: car.vehicle,
          channel: { channelId: car.channelId, nonce: car.nonce },
        }),
      })
      const verdict = (answer.idTokenInfo as { status: string }).status
      if (verdict !== 'Accepted') refuse(verdict, 'Authorize')
    },
    async started(session): Promise<SessionReportHandle> {
      const busy = new Set([...active.values()].map((t) => t.evseId))
      const evseId = Array.from({ length: evses }, (_, i) => i + 1).find((id) => !busy.has(id)) ?? 1
      const transactionId = randomUUID()
      const controller = new AbortController()
      const idToken = carIdToken({
        vehicle: session.vehicle,
        channel: { channelId: session.channelId, nonce: session.nonce },
      })
      let seqNo = 0
      let lastWh = 0n
      const event = (
        eventType: 'Started' | 'Updated' | 'Ended',
        fields: Record<string, unknown>,
        info: Record<string, unknown> = {},
      ) =>
        call('TransactionEvent', {
          eventType,
          timestamp: new Date().toISOString(),
          seqNo: seqNo++,
          transactionInfo: { transactionId, ...info },
          ...fields,
        })
      const energy = (wh: bigint, context: string, signed?: Record<string, unknown>) => [
        {
          timestamp: new Date().toISOString(),
          sampledValue: [
            {
              value: Number(wh),
              context,
              measurand: 'Energy.Active.Import.Register',
              unitOfMeasure: { unit: 'Wh' },
              ...(signed ? { signedMeterValue: signed } : {}),
            },
          ],
        },
      ]
      await status(evseId, 'Occupied')
      active.set(transactionId, { controller, evseId })
      const checkAnswer = (answer: Record<string, unknown>, step: string) => {
        const verdict = (answer.idTokenInfo as { status?: string } | undefined)?.status
        if (verdict !== undefined && verdict !== 'Accepted') {
          controller.abort()
          refuse(verdict, step)
        }
      }
      try {
        checkAnswer(
          await event(
            'Started',
            {
              triggerReason: 'Authorized',
              evse: { id: evseId, connectorId: 1 },
              idToken,
              meterValue: energy(0n, 'Transaction.Begin'),
              customData: baseCustomData(session.base),
            },
            { chargingState: 'Charging' },
          ),
          'TransactionEvent Started',
        )
      } catch (error) {
        active.delete(transactionId)
        // Deauthorized at Started: the transaction ends there, with no energy (as OCPP's E05).
        if (error instanceof BaseError && error.code === 'OCPP_NOT_AUTHORIZED')
          await event(
            'Ended',
            { triggerReason: 'Deauthorized', meterValue: energy(0n, 'Transaction.End') },
            { chargingState: 'Idle', stoppedReason: 'DeAuthorized' },
          ).catch((err: unknown) => log.warn({ stationId, err }, 'could not end a deauthorized transaction'))
        await status(evseId, 'Available').catch((err: unknown) =>
          log.warn({ stationId, err }, 'status failed'),
        )
        throw error
      }
      return {
        signal: controller.signal,
        async metered({ reading, voucher }) {
          lastWh = reading.sessionWh
          const signedMeterData = Buffer.from(
            JSON.stringify({
              evseId: reading.evseId,
              sessionId: reading.sessionId,
              sessionWh: uint(reading.sessionWh),
              timeMs: uint(reading.timeMs),
              signature: reading.signature,
            }),
          ).toString('base64')
          checkAnswer(
            await event(
              'Updated',
              {
                triggerReason: 'MeterValuePeriodic',
                meterValue: energy(reading.sessionWh, 'Sample.Periodic', {
                  signedMeterData,
                  signingMethod: 'EIP712-secp256k1',
                  encodingMethod: 'Carchain-MeterReading-v1',
                  publicKey: Buffer.from(reading.signer.slice(2), 'hex').toString('base64'),
                }),
                customData: voucherCustomData(voucher),
              },
              { chargingState: 'Charging' },
            ),
            'TransactionEvent Updated',
          )
        },
        async ended({ energyWh, amount, code }) {
          active.delete(transactionId)
          const stoppedReason = controller.signal.aborted
            ? code === 'OCPP_NOT_AUTHORIZED'
              ? 'DeAuthorized'
              : 'Remote'
            : code === 'OK'
              ? 'Local'
              : 'Other'
          try {
            const answer = await event(
              'Ended',
              {
                triggerReason: stoppedReason === 'Remote' ? 'RemoteStop' : 'StopAuthorized',
                meterValue: energy(energyWh > lastWh ? energyWh : lastWh, 'Transaction.End'),
                customData: { vendorId: CARCHAIN_VENDOR_ID, amount: amount.toString(), code },
              },
              { chargingState: 'Idle', stoppedReason },
            )
            if (costs.length >= 1000) costs.shift()
            costs.push({
              transactionId,
              totalCost: answer.totalCost as number | undefined,
              amount: parseCostResponse(answer.customData as Record<string, unknown> | undefined),
            })
          } finally {
            await status(evseId, 'Available')
          }
        },
      }
    },
  }

  return {
    stationId,
    boot,
    report,
    transactions: () => [...active.keys()],
    costs,
    async close() {
      if (heartbeat) clearInterval(heartbeat)
      await client.close({ code: 1000, reason: 'station stopping' })
    },
  }
}
