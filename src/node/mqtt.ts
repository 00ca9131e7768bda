/**
 * Vehicle uploads over MQTT (`--mqtt URL`). A car publishes its batch (the same JSON as the HTTP
 * body) to `carchain/v1/vehicles/{vehicle}/events` with QoS 1; the node ingests it exactly as over
 * HTTP and answers on `carchain/v1/vehicles/{vehicle}/acks` with
 * `{"leafHash", "ok": true, "ids", "treeSize", "ack"}` or `{"leafHash", "ok": false, "code", "message"}`.
 * The broker's PUBACK only means the broker has it: a car counts a batch as stored only on the
 * node's ack, which is sent after the batch is durable. `leafHash` (the batch's checkpoint)
 * pairs an ack with its batch; `ack` is the node's signed statement (src/ledger/ack.ts), since
 * any client of the broker can publish on the acks topic.
 *
 * The nodes of one deployment share the subscription (`$share/carchain-<log id>/…`, MQTT 5) so
 * each batch is ingested once by that deployment; ingest is idempotent anyway, so a redelivery is
 * harmless. Another deployment on the same broker is its own group and does not take its batches.
 */
import mqtt, { type MqttClient } from 'mqtt'
import { BaseError, toBaseError } from '../errors.ts'
import type { VehicleAddress } from '../ledger/envelope.ts'
import { acksTopic, sharedEventsSubscription } from '../ledger/topics.ts'
import { ingestAck } from './ack.ts'
import type { NodeContext } from './context.ts'

const TOPIC = /^carchain\/v1\/vehicles\/(0x[0-9a-f]{40})\/events$/

/** Connects to a broker; CONFIG_INVALID / NODE_UNREACHABLE-style errors name the URL. */
export async function connectMqtt(url: string, clientId: string): Promise<MqttClient> {
  try {
    return await mqtt.connectAsync(url, {
      clientId,
      protocolVersion: 5,
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
    })
  } catch (error) {
    throw new BaseError(
      'CONFIG_INVALID',
      `cannot connect to the MQTT broker at ${url}: ${(error as Error).message}`,
      {
        details: { url },
        cause: error,
      },
    )
  }
}

export type MqttIngest = { stop(): Promise<void> }

/** Subscribes the node to every vehicle's events topic and ingests what arrives. */
export async function startMqttIngest(context: NodeContext, url: string): Promise<MqttIngest> {
  const client = await connectMqtt(url, `carchain-node-${process.pid}`)
  client.on('message', (topic, message) => {
    const vehicle = TOPIC.exec(topic)?.[1] as VehicleAddress | undefined
    if (!vehicle) return
    void (async () => {
      let leafHash: unknown
      let answer: Record<string, unknown>
      try {
        const batch = JSON.parse(message.toString('utf8')) as { checkpoint?: { leafHash?: unknown } }
        leafHash = batch?.checkpoint?.leafHash
        const result = await context.ingest.accept(batch, vehicle)
        const ack = await ingestAck(context, result)
        answer = { leafHash, ok: true, ids: result.ids, treeSize: result.treeSize, ack }
      } catch (error) {
        const base =
          error instanceof SyntaxError
            ? new BaseError('EVENT_MALFORMED', 'the batch is not JSON')
            : toBaseError(error)
        answer = { leafHash, ok: false, code: base.code, message: base.shortMessage }
      }
      client.publish(acksTopic(vehicle), JSON.stringify(answer), { qos: 1 })
    })()
  })
  await client.subscribeAsync(sharedEventsSubscription(context.logId), { qos: 1 })
  return { stop: () => client.endAsync() }
}
