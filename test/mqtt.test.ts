/**
 * Uploads over MQTT against the local Mosquitto: the demo fleet publishes its batches, the node
 * ingests them and acknowledges on each car's acks topic; a forged batch is refused with a code.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { loadConfig } from '../src/config.ts'
import { createBatch } from '../src/ledger/batch.ts'
import { createEventChain } from '../src/ledger/envelope.ts'
import { aP256Signer } from '../src/ledger/testing.ts'
import { connectMqtt } from '../src/node/mqtt.ts'
import { startSystem } from '../src/sim/system.ts'
import { mqttBatchTransport } from '../src/vehicle/ledger.ts'
import { requirePart } from './skip.ts'

const MQTT_URL = process.env.CARCHAIN_TEST_MQTT_URL ?? 'mqtt://127.0.0.1:1883'
const dataDir = mkdtempSync(join(tmpdir(), 'carchain-mqtt-'))
after(() => rmSync(dataDir, { recursive: true, force: true }))

const brokerUp = () =>
  new Promise<boolean>((resolve) => {
    const url = new URL(MQTT_URL)
    const socket = connect(Number(url.port || 1883), url.hostname)
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })

test('the fleet uploads over MQTT and the node acknowledges durable batches', async (t) => {
  if (!requirePart(t, await brokerUp(), `no MQTT broker at ${MQTT_URL} (apt-get install mosquitto)`)) return
  const node = await startSystem({
    config: loadConfig({ flags: { data: dataDir, port: 0, vehicles: 1, mqtt: MQTT_URL }, env: {} }),
  })
  try {
    const [car] = node.fleet!.vehicles()
    let events = 0
    for (let i = 0; i < 60 && events < 5; i++) {
      await new Promise((resolve) => setTimeout(resolve, 500))
      events = (await (await fetch(`${node.url}/v1/vehicles/${car!.vehicle}`)).json()).events
    }
    assert.ok(events >= 5, `only ${events} events arrived over MQTT`)

    // A batch signed by a key that is not the car's certified one: refused, with the code.
    const client = await connectMqtt(MQTT_URL, 'carchain-test-forger')
    const transport = await mqttBatchTransport(
      client,
      car!.vehicle,
      node.context.clients.account.address,
      10_000,
    )
    const forged = createEventChain({ vehicle: car!.vehicle }).append({
      kind: 'telemetry',
      time: Date.now(),
      data: {},
    })
    await assert.rejects(
      transport.send(await createBatch({ events: [forged], signer: aP256Signer().signer })),
      (error: unknown) => (error as { code?: string }).code === 'EVENT_BAD_SIGNATURE',
    )
    await transport.close?.()
  } finally {
    await node.stop()
  }
})
