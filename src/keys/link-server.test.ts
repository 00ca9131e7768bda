import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { Address } from 'viem'
import WebSocket from 'ws'
import { AccessController } from './access-control.ts'
import { buildRequest, LinkClient, requestAccess } from './link-client.ts'
import { type GrantedHandler, LinkServer } from './link-server.ts'
import { type AccessRecorder, MemoryAccessRecorder } from './recorder.ts'
import { aGrant, FakeKeyState, testAccount } from './testing.ts'
import { type KeyDomain, Scope } from './typed-data.ts'
import { MemoryUseCounter } from './use-counter.ts'

const domain: KeyDomain = { chainId: 31337, keyRegistry: '0xe7f1725e7734ce288f8367e1bb143e90bb3f0512' }
const vehicle = '0x00000000000000000000000000000000000c0de2' as Address
const owner = testAccount(1)
const grantee = testAccount(2)

async function car(
  options: {
    recorder?: AccessRecorder
    challengeTtlMs?: number
    relayBoundMs?: number
    onGranted?: GrantedHandler
  } = {},
) {
  const state = new FakeKeyState()
  state.owner = owner.address.toLowerCase() as Address
  const controller = new AccessController({ vehicle, domain, state, uses: new MemoryUseCounter() })
  const recorder = new MemoryAccessRecorder(vehicle)
  const acted: number[] = []
  const server = new LinkServer({
    vehicle,
    controller,
    recorder: options.recorder ?? recorder,
    challengeTtlMs: options.challengeTtlMs,
    relayBoundMs: options.relayBoundMs,
    onGranted:
      options.onGranted ??
      ((decision) => {
        acted.push(decision.action)
      }),
  })
  const url = await server.listen()
  return { server, url, recorder, acted }
}

describe('the link server', () => {
  test('an answer to a challenge that expired and was replaced is CHALLENGE_EXPIRED', async (t) => {
    const { server, url } = await car({ challengeTtlMs: 150, relayBoundMs: 100 })
    t.after(() => server.close())
    const grant = await aGrant({ signer: owner, domain, vehicle, grantee: grantee.address })
    const client = await LinkClient.connect(url)
    t.after(() => client.close())
    const first = await client.challenge()
    const request = await buildRequest({
      signer: grantee,
      domain,
      grant,
      action: Scope.UNLOCK,
      challenge: first.challenge,
    })
    const second = await client.challenge() // the car replaced the first after 150 ms
    assert.notEqual(second.challenge, first.challenge)
    client.send(request)
    assert.equal((await client.result()).code, 'CHALLENGE_EXPIRED')
    assert.equal(
      (await requestAccess({ link: url, signer: grantee, domain, grant, action: Scope.UNLOCK })).code,
      'OK',
    )
  })

  test('binary frames and floods of garbage are answered, then the connection is closed', async (t) => {
    const { server, url, recorder } = await car()
    t.after(() => server.close())
    const socket = new WebSocket(url)
    const messages: string[] = []
    const closed = new Promise<number>((resolve) => socket.on('close', (code) => resolve(code)))
    socket.on('message', (data) => messages.push(String(data)))
    await new Promise((resolve) => socket.once('open', resolve))
    socket.send(Buffer.from([1, 2, 3]))
    for (let i = 0; i < 5; i++) socket.send('{')
    assert.equal(await closed, 1008)
    const results = messages.map((m) => JSON.parse(m)).filter((m) => m.type === 'result')
    assert.ok(results.length >= 5)
    assert.ok(results.every((r) => r.code === 'INVALID_ARGUMENT' && r.ok === false))
    assert.ok(recorder.dataOf('access.denied').length >= 5)
  })

  test('a recorder failure answers INTERNAL and the car does not act', async (t) => {
    const grant = await aGrant({ signer: owner, domain, vehicle, grantee: grantee.address })
    const failing = new MemoryAccessRecorder(vehicle)
    failing.recordNow = () => {
      throw new Error('disk full')
    }
    // one that records at once (the link answers without yielding), one that only records async
    for (const recorder of [failing, { record: async () => Promise.reject(new Error('disk full')) }]) {
      const { server, url, acted } = await car({ recorder })
      t.after(() => server.close())
      const result = await requestAccess({ link: url, signer: grantee, domain, grant, action: Scope.UNLOCK })
      assert.deepEqual([result.ok, result.code, result.eventId], [false, 'INTERNAL', null])
      assert.deepEqual(acted, [])
    }
  })

  test('an action that fails or waits is answered after it, with the access event named', async (t) => {
    const grant = await aGrant({ signer: owner, domain, vehicle, grantee: grantee.address })
    for (const [onGranted, code] of [
      [
        () => {
          throw new Error('actuator stuck')
        },
        'INTERNAL',
      ],
      [() => Promise.reject(new Error('actuator stuck')), 'INTERNAL'],
      [() => new Promise<void>((resolve) => setTimeout(resolve, 20)), 'OK'],
    ] as const) {
      const { server, url, recorder } = await car({ onGranted })
      t.after(() => server.close())
      const result = await requestAccess({ link: url, signer: grantee, domain, grant, action: Scope.UNLOCK })
      assert.deepEqual([result.ok, result.code], [code === 'OK', code])
      assert.equal(result.eventId, recorder.events.at(-1)?.id)
      assert.equal(recorder.events.at(-1)?.envelope.kind, 'access.used')
    }
  })

  test('a relay bound longer than the challenge lifetime is a configuration error', () => {
    assert.throws(
      () =>
        new LinkServer({
          vehicle,
          controller: {} as AccessController,
          recorder: new MemoryAccessRecorder(vehicle),
          relayBoundMs: 6000,
          challengeTtlMs: 5000,
        }),
      { code: 'CONFIG_INVALID' },
    )
  })
})
