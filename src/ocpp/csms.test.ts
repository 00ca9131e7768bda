/**
 * The node's CSMS against an independent OCPP 2.0.1 station (the `ocpp-rpc` library's own client,
 * strict mode: every message both ways validated against OCA's schemas), and Carchain's station
 * against it, on a real anvil, on PGlite and PostgreSQL. The car pays with vouchers on its channel;
 * the CSMS authorizes its IdToken from the chain, keeps the vouchers, claims them, and answers the
 * cost to the base unit. Refusals: unknown, revoked and wrong-password stations at the handshake;
 * an IdToken of an unregistered car, with no channel or an exhausted one; malformed and out-of-order
 * messages (a CALLERROR with the right code, and the CSMS serves on).
 */
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { RPCClient } from 'ocpp-rpc'
import { keccak256, stringToBytes, toHex } from 'viem'
import { engines, freshDatabase } from '../../test/database.ts'
import { vehicleRegistryAbi } from '../chain/generated/index.ts'
import type { Database } from '../db/database.ts'
import { BaseError } from '../errors.ts'
import { openChannel } from '../payments/channels.ts'
import { aChargingWorld, type ChargingWorld, TOKEN } from '../payments/payments.testkit.ts'
import { signVoucher } from '../payments/typed-data.ts'
import { databaseVoucherBook } from '../station/database-voucher-book.ts'
import { routeUpgrades } from '../upgrade-router.ts'
import { type Csms, createCsms } from './csms.ts'
import { baseCustomData, carIdToken, voucherCustomData } from './payment.ts'
import type { RpcPeer } from './rpc.ts'
import { connectOcppStation } from './station-client.ts'
import { getTransaction, listStations, registerStation, revokeStation } from './stations.ts'

let world: ChargingWorld
before(async () => {
  world = await aChargingWorld()
  const { walletClient, publicClient } = world.chain.clients
  const hash = await walletClient.writeContract({
    address: world.registry,
    abi: vehicleRegistryAbi,
    functionName: 'setOem',
    args: [walletClient.account.address, true],
  })
  await publicClient.waitForTransactionReceipt({ hash })
})
after(async () => {
  await world?.stop()
})

let vins = 0
/** A car registered on chain (its wallet as the vehicle address), with money. */
async function aRegisteredCar() {
  const car = await world.aCar()
  const { walletClient, publicClient } = world.chain.clients
  const hash = await walletClient.writeContract({
    address: world.registry,
    abi: vehicleRegistryAbi,
    functionName: 'registerVehicle',
    args: [
      car.account.address,
      walletClient.account.address,
      keccak256(stringToBytes(`cert-${car.account.address}`)),
      keccak256(stringToBytes(`VIN-${++vins}-${Date.now()}`)),
    ],
  })
  await publicClient.waitForTransactionReceipt({ hash })
  return car
}

/** Strict: every call and answer validated against the OCA 2.0.1 schemas; a failure fails the test. */
function strictStation(url: string, identity: string, password?: string) {
  const failures: unknown[] = []
  // The library's own client and validator: nothing of Carchain's OCPP code on this side.
  const client = new RPCClient({
    endpoint: url,
    identity,
    protocols: ['ocpp2.0.1'],
    strictMode: true,
    reconnect: false,
    ...(password ? { password } : {}),
  } as never) as unknown as RpcPeer
  client.on('strictValidationFailure', (event) => failures.push(event))
  return { client, failures }
}

const ocppCode = async (promise: Promise<unknown>, code: string, why?: string) => {
  await assert.rejects(promise, (error: { rpcErrorCode?: string; message?: string }) => {
    assert.equal(error.rpcErrorCode, code, `${why ?? ''} ${error.message}`)
    return true
  })
}

const triggers = { Started: 'Authorized', Updated: 'MeterValuePeriodic', Ended: 'StopAuthorized' } as const

/** A TransactionEvent as a station sends it: now, with the trigger its event type usually has. */
function transactionEvent(
  client: RpcPeer,
  eventType: keyof typeof triggers,
  seqNo: number,
  transactionInfo: Record<string, unknown>,
  more: Record<string, unknown> = {},
) {
  return client.call('TransactionEvent', {
    eventType,
    timestamp: new Date().toISOString(),
    triggerReason: triggers[eventType],
    seqNo,
    transactionInfo,
    ...more,
  }) as Promise<{ idTokenInfo?: { status: string }; totalCost?: number; customData?: Record<string, string> }>
}

/** What the CSMS answers a station's Authorize for `idToken`. */
const authorizeStatus = async (client: RpcPeer, idToken: unknown) =>
  ((await client.call('Authorize', { idToken })) as { idTokenInfo: { status: string } }).idTokenInfo.status

for (const engine of engines) {
  describe(`the CSMS on ${engine}`, () => {
    let db: Database
    let csms: Csms
    let http: Server
    let url: string
    const changes: Record<string, unknown>[] = []
    before(async () => {
      db = await freshDatabase(engine)
      csms = createCsms({
        db,
        payments: {
          publicClient: world.chain.clients.publicClient,
          domain: world.domain,
          payee: world.cpo.account.address,
          tokens: [world.token],
          vehicleRegistry: world.registry,
          book: databaseVoucherBook(db),
          settlement: world.cpo,
        },
        onChange: (change) => changes.push(change),
      })
      http = createServer((_request, response) => response.writeHead(404).end())
      routeUpgrades(http, [csms.upgrade])
      await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
      url = `ws://127.0.0.1:${(http.address() as AddressInfo).port}/ocpp`
    })
    after(async () => {
      await csms?.close()
      http?.close()
      await db?.close()
    })

    /** A station registered here, connected strictly (see strictStation) and booted. */
    const bootedStation = async (stationId: string) => {
      const { password } = await registerStation(db, stationId)
      const station = strictStation(url, stationId, password)
      await station.client.connect()
      const boot = (await station.client.call('BootNotification', {
        reason: 'PowerUp',
        chargingStation: { vendorName: 'ocpp-rpc test', model: 'independent' },
      })) as { status: string; interval: number }
      return { ...station, boot }
    }

    /** A week's channel from `car` to the CPO, and the IdToken that names it. */
    const channelToCpo = async (car: Awaited<ReturnType<typeof aRegisteredCar>>, deposit: bigint) => {
      const channel = await openChannel(car.clients, car.wallet, {
        channels: world.domain.verifyingContract,
        payee: world.cpo.account.address,
        token: world.token,
        deposit,
        expiresAt: BigInt(Math.floor(Date.now() / 1000) + 86_400 * 7),
      })
      const idToken = carIdToken({
        vehicle: car.account.address,
        channel: { channelId: channel.channelId, nonce: channel.nonce },
      })
      return { channel, idToken }
    }

    test('an independent station boots, authorizes a car’s IdToken and runs a paid transaction', async () => {
      const { client, failures, boot } = await bootedStation('LIB-STATION-1')
      assert.equal(boot.status, 'Accepted')
      await client.call('StatusNotification', {
        timestamp: new Date().toISOString(),
        connectorStatus: 'Available',
        evseId: 1,
        connectorId: 1,
      })
      await client.call('Heartbeat', {})

      const car = await aRegisteredCar()
      const deposit = 10n * TOKEN
      const { channel, idToken } = await channelToCpo(car, deposit)
      assert.ok(idToken.idToken.length <= 36)
      assert.equal(await authorizeStatus(client, idToken), 'Accepted')

      const transactionId = 'tx-lib-1'
      const started = await transactionEvent(
        client,
        'Started',
        0,
        { transactionId, chargingState: 'Charging' },
        {
          evse: { id: 1, connectorId: 1 },
          idToken,
          customData: baseCustomData({ cumulativeAmount: 0n, meterWh: 0n }),
        },
      )
      assert.equal(started.idTokenInfo?.status, 'Accepted')

      // Two vouchers, as a station reports them: 1 kWh then 2 kWh at 0.3/kWh + 0.5 fee.
      const vouchers = []
      for (const [i, wh] of [1000n, 2000n].entries()) {
        const cumulativeAmount = TOKEN / 2n + (3n * TOKEN * wh) / 10_000n
        const value = { channelId: channel.channelId, cumulativeAmount, meterWh: wh }
        const voucher = { ...value, signature: await signVoucher(car.account, world.domain, value) }
        vouchers.push(voucher)
        const answer = await transactionEvent(
          client,
          'Updated',
          i + 1,
          { transactionId, chargingState: 'Charging' },
          {
            meterValue: [
              {
                timestamp: new Date().toISOString(),
                sampledValue: [
                  {
                    value: Number(wh),
                    measurand: 'Energy.Active.Import.Register',
                    unitOfMeasure: { unit: 'Wh' },
                    signedMeterValue: {
                      signedMeterData: Buffer.from(`OCMF|{"RD":[{"RV":${wh}}]}|{"SD":"00"}`).toString(
                        'base64',
                      ),
                      signingMethod: 'ECDSA-secp256r1-SHA256',
                      encodingMethod: 'OCMF',
                      publicKey: Buffer.from('test-key').toString('base64'),
                    },
                  },
                ],
              },
            ],
            customData: voucherCustomData(voucher),
          },
        )
        assert.equal(answer.idTokenInfo, undefined, 'a good voucher is taken without a word')
      }
      const ended = await transactionEvent(client, 'Ended', 3, { transactionId, stoppedReason: 'Local' })
      const paid = vouchers[1]!.cumulativeAmount
      assert.equal(
        ended.customData?.amount,
        paid.toString(),
        'the cost is what the vouchers pay, to the base unit',
      )
      assert.equal(ended.totalCost, 1.1)
      assert.deepEqual(failures, [])

      const stored = await getTransaction(db, 'LIB-STATION-1', transactionId)
      assert.equal(stored.state, 'ended')
      assert.equal(stored.amount, paid.toString())
      assert.equal(stored.energyWh, 2000)
      assert.equal(stored.vouchers, 2)
      assert.equal(stored.vehicle, car.account.address)
      assert.equal(stored.meterValues?.filter((m) => m.signed).length, 2, 'signed meter values are kept')
      const [station] = (await listStations(db)).filter((s) => s.stationId === 'LIB-STATION-1')
      assert.equal(station?.connected, true)
      assert.equal(station?.vendorName, 'ocpp-rpc test')
      assert.deepEqual(
        station?.connectors.map((c) => c.status),
        ['Available'],
      )

      // The CSMS claims the newest voucher on chain: the CPO gets exactly the cost.
      const before = await world.balanceOf(world.cpo.account.address)
      const claims = await csms.claim()
      assert.ok(claims.every((c) => c.ok))
      assert.equal((await world.balanceOf(world.cpo.account.address)) - before, paid)

      // The channel can pay 10 − 1.1 more; a voucher for all of it exhausts it: then NoCredit.
      const all = { channelId: channel.channelId, cumulativeAmount: deposit, meterWh: 30_000n }
      await transactionEvent(
        client,
        'Started',
        0,
        { transactionId: 'tx-lib-2' },
        { idToken, customData: baseCustomData({ cumulativeAmount: paid, meterWh: 2000n }) },
      )
      await transactionEvent(
        client,
        'Ended',
        1,
        { transactionId: 'tx-lib-2' },
        {
          customData: voucherCustomData({
            ...all,
            signature: await signVoucher(car.account, world.domain, all),
          }),
        },
      )
      assert.equal(await authorizeStatus(client, idToken), 'NoCredit')
      await client.close()
    })

    test('IdTokens the chain does not back are refused: unregistered car, no channel, forged voucher', async () => {
      const { client, failures } = await bootedStation('LIB-STATION-2')
      const stranger = await world.aCar()
      const car = await aRegisteredCar()
      // A token claiming to be Carchain's but naming another wallet in customData.
      const twisted = carIdToken({ vehicle: car.account.address })
      twisted.customData = { ...twisted.customData, vehicle: stranger.account.address }
      const made = { channelId: keccak256(toHex('no such channel')), nonce: 7n }
      const refusals: [string, unknown, string][] = [
        ['a car not registered on chain', carIdToken({ vehicle: stranger.account.address }), 'Unknown'],
        ['a registered car with no channel', carIdToken({ vehicle: car.account.address }), 'NoCredit'],
        [
          'a channel that does not exist',
          carIdToken({ vehicle: car.account.address, channel: made }),
          'Invalid',
        ],
        ['not a Carchain token', { idToken: 'RFID-0042', type: 'ISO14443' }, 'Unknown'],
        ['customData naming another wallet', twisted, 'Invalid'],
      ]
      for (const [why, idToken, expected] of refusals)
        assert.equal(await authorizeStatus(client, idToken), expected, why)

      // A voucher not signed by the channel's payer is refused (the station must stop).
      const { channel, idToken } = await channelToCpo(car, 5n * TOKEN)
      await transactionEvent(
        client,
        'Started',
        0,
        { transactionId: 'tx-forged' },
        { idToken, customData: baseCustomData({ cumulativeAmount: 0n, meterWh: 0n }) },
      )
      const value = { channelId: channel.channelId, cumulativeAmount: TOKEN, meterWh: 1000n }
      const forged = { ...value, signature: await signVoucher(stranger.account, world.domain, value) }
      const answer = await transactionEvent(
        client,
        'Updated',
        1,
        { transactionId: 'tx-forged' },
        { customData: voucherCustomData(forged) },
      )
      assert.equal(answer.idTokenInfo?.status, 'Invalid')
      assert.equal((await getTransaction(db, 'LIB-STATION-2', 'tx-forged')).amount, '0')
      assert.deepEqual(failures, [])
      await client.close()
    })

    test('the handshake refuses unknown, revoked and wrong-password stations', async () => {
      const { password } = await registerStation(db, 'LIB-STATION-3')
      const refusals: [string, string, string, string | undefined, RegExp][] = [
        ['a wrong password', url, 'LIB-STATION-3', 'not-the-password-at-all', /Unauthorized/],
        ['no password', url, 'LIB-STATION-3', undefined, /Unauthorized/],
        ['an unknown station', url, 'NO-SUCH-STATION', password, /Unauthorized/],
        // Not under /ocpp/: not an OCPP endpoint.
        ['another path', url.replace('/ocpp', '/other'), 'LIB-STATION-3', password, /Not Found/],
      ]
      for (const [why, endpoint, stationId, secret, refused] of refusals)
        await assert.rejects(strictStation(endpoint, stationId, secret).client.connect(), refused, why)
      const { client } = strictStation(url, 'LIB-STATION-3', password)
      await client.connect()
      const closed = new Promise((resolve) => client.on('close', resolve))
      await revokeStation(db, 'LIB-STATION-3')
      await csms.disconnect('LIB-STATION-3', 'revoked')
      await closed
      await assert.rejects(strictStation(url, 'LIB-STATION-3', password).client.connect(), /Forbidden/)
    })

    test('malformed and out-of-order messages get a CALLERROR with the right code; the CSMS serves on', async () => {
      const { password } = await registerStation(db, 'LIB-STATION-4')
      // Not strict: this station sends what the schemas forbid, to see the CSMS refuse it.
      const loose = new RPCClient({
        endpoint: url,
        identity: 'LIB-STATION-4',
        password,
        protocols: ['ocpp2.0.1'],
        reconnect: false,
      } as never) as unknown as RpcPeer
      await loose.connect()
      const transaction = {
        eventType: 'Updated',
        timestamp: new Date().toISOString(),
        triggerReason: 'MeterValuePeriodic',
        seqNo: 1,
        transactionInfo: { transactionId: 'never-started' },
      }
      // Each refused with its OCPP-J error code: before an accepted boot, then after it.
      type Refusal = [why: string, action: string, params: Record<string, unknown>, code: string]
      const refuse = async (refusals: Refusal[]) => {
        for (const [why, action, params, code] of refusals)
          await ocppCode(loose.call(action, params), code, why)
      }
      const station = { vendorName: 'x', model: 'y' }
      await refuse([
        ['before BootNotification', 'TransactionEvent', transaction, 'SecurityError'],
        [
          'a boot missing its station',
          'BootNotification',
          { reason: 'PowerUp' },
          'OccurrenceConstraintViolation',
        ],
        [
          'a reason not among the enum’s values',
          'BootNotification',
          { reason: 'Sneezed', chargingStation: station },
          'FormatViolation',
        ],
        ['still not booted: the boots above were refused', 'Heartbeat', {}, 'SecurityError'],
      ])
      await loose.call('BootNotification', { reason: 'PowerUp', chargingStation: station })
      await refuse([
        ['a transaction never started', 'TransactionEvent', transaction, 'PropertyConstraintViolation'],
        ['a property the schema does not have', 'Heartbeat', { extra: 1 }, 'PropertyConstraintViolation'],
        ['an action OCPP 2.0.1 does not define', 'NoSuchAction', {}, 'NotImplemented'],
        [
          'a transaction id over 36 characters',
          'TransactionEvent',
          { ...transaction, eventType: 'Started', transactionInfo: { transactionId: 'x'.repeat(37) } },
          'FormatViolation',
        ],
      ])
      // A frame that is not OCPP-J at all: answered (RpcFrameworkError), not fatal.
      loose.sendRaw('[2,"m1"')
      loose.sendRaw('{"not":"an array"}')
      const beat = (await loose.call('Heartbeat', {})) as { currentTime: string }
      assert.ok(beat.currentTime)
      await loose.close()
    })

    test('Carchain’s station runs a paid session through this CSMS; RequestStopTransaction stops one', async () => {
      const { password } = await registerStation(db, 'CARCHAIN-1')
      const ocpp = await connectOcppStation({ csmsUrl: url, stationId: 'CARCHAIN-1', password, evses: 2 })
      const car = await aRegisteredCar()
      const { station } = await world.aCharger({ report: ocpp.report })
      const [result, session] = await world.charge(car, station, { stopAtWh: 3000 })
      assert.equal(session.code, 'OK')
      const [cost] = ocpp.costs
      assert.equal(cost?.amount, result.amount, 'the CSMS’s cost is what the car’s vouchers paid')
      const [stored] = (
        await db.query<{ transaction_id: string }>(
          "select transaction_id from ocpp_transactions where station_id = 'CARCHAIN-1'",
        )
      ).rows
      const transaction = await getTransaction(db, 'CARCHAIN-1', stored!.transaction_id)
      assert.equal(transaction.amount, result.amount.toString())
      assert.equal(transaction.vouchers, result.vouchers)
      assert.equal(transaction.energyWh, Number(result.energyWh))
      assert.ok(transaction.meterValues!.filter((m) => m.signed).length >= 1)

      // The operator stops the next session from the CSMS.
      const stopping = world.charge(car, station, { stopAtWh: 500_000 })
      while (ocpp.transactions().length === 0) await new Promise((resolve) => setTimeout(resolve, 20))
      const stop = await csms.call('CARCHAIN-1', 'RequestStopTransaction', {
        transactionId: ocpp.transactions()[0]!,
      })
      assert.equal(stop.status, 'Accepted')
      const [stoppedResult, stoppedSession] = await stopping
      assert.equal(stoppedSession.code, 'OK')
      assert.ok(stoppedResult.energyWh < 500_000n)
      assert.equal(ocpp.costs[1]?.amount, stoppedResult.amount)

      const variables = await csms.call('CARCHAIN-1', 'GetVariables', {
        getVariableData: [{ component: { name: 'OCPPCommCtrlr' }, variable: { name: 'HeartbeatInterval' } }],
      })
      assert.equal(
        (variables.getVariableResult as { attributeStatus: string }[])[0]?.attributeStatus,
        'Accepted',
      )
      await assert.rejects(csms.call('OFFLINE-STATION', 'Reset', { type: 'Immediate' }), (error) => {
        assert.ok(error instanceof BaseError)
        assert.equal(error.code, 'OCPP_STATION_OFFLINE')
        return true
      })
      await ocpp.close()
    })

    test('Carchain’s station refuses a car the CSMS does not authorize, before any energy', async () => {
      const { password } = await registerStation(db, 'CARCHAIN-2')
      const ocpp = await connectOcppStation({ csmsUrl: url, stationId: 'CARCHAIN-2', password })
      const car = await world.aCar() // not registered on chain
      const { station } = await world.aCharger({ report: ocpp.report })
      const [carOutcome, session] = await world.chargeOutcome(car, station, { stopAtWh: 3000 })
      assert.equal(session.code, 'OCPP_NOT_AUTHORIZED')
      assert.equal(carOutcome, 'OCPP_NOT_AUTHORIZED')
      assert.equal(session.energyWh, 0n)
      await ocpp.close()
    })
  })
}
