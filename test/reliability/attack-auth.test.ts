/**
 * Attack tests for the node's sign-in, live stream and upload limits (issue 19 #1, #9, #13;
 * docs/reliability.md "Security review (issue 19)", items 1, 9 and 13).
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import { connect } from 'node:net'
import { after, before, test } from 'node:test'
import type { LocalAccount } from 'viem'
import { createSiweMessage } from 'viem/siwe'
import { developmentAccount } from '../../src/chain/clients.ts'
import { createBatch } from '../../src/ledger/batch.ts'
import { createEventChain } from '../../src/ledger/envelope.ts'
import { captureLogs } from '../../src/log.ts'
import { MAX_STREAM_BUFFERED_BYTES } from '../../src/node/stream.ts'
import { type SeededFleet, seedFleet } from '../fleet-fixture.ts'
import { type Answer, call, signIn, startTestNode, type TestNode, waitFor } from './harness.ts'

let node: TestNode
let fleet: SeededFleet
const owner = developmentAccount(1)

/** Small upload budgets, so the #9 tests reach them: per vehicle, and per client whatever the path. */
const INGEST = { vehicle: 10, client: 60 }

before(async () => {
  node = await startTestNode({
    env: {
      CARCHAIN_RATE_LIMIT_INGEST: String(INGEST.vehicle),
      CARCHAIN_RATE_LIMIT_INGEST_CLIENT: String(INGEST.client),
    },
  })
  // Car 0 belongs to development account 1, car 1 to account 2 (test/fleet-fixture.ts).
  fleet = await seedFleet(node, 2)
})

after(async () => {
  await fleet?.cleanup()
  await node?.cleanup()
})

/** A POST with a Host header of the caller's choice (fetch does not let a caller set it). */
function postWithHost(url: string, host: string, body: unknown): Promise<Pick<Answer, 'status' | 'body'>> {
  const payload = JSON.stringify(body)
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      {
        method: 'POST',
        headers: { host, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      },
      (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (chunk) => {
          text += chunk
        })
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }))
      },
    )
    req.on('error', reject)
    req.end(payload)
  })
}

type SiweFields = Partial<Parameters<typeof createSiweMessage>[0]>

/** A fresh nonce from the node and a message signed by `account`, with `fields` overriding. */
async function signedMessage(account: LocalAccount, fields: SiweFields) {
  const { body } = await call(`${node.url}/v1/auth/nonce`)
  const message = createSiweMessage({
    address: account.address,
    chainId: node.chain.chainId,
    domain: new URL(node.url).host,
    nonce: body.nonce,
    uri: node.url,
    version: '1',
    ...fields,
  })
  return { message, signature: await account.signMessage({ message }) }
}

test('#1 a SIWE message for a phishing domain, posted with its Host header, gets no token', async () => {
  const phished = await signedMessage(owner, { domain: 'evil.com', uri: 'https://evil.com', chainId: 1 })
  const answer = await postWithHost(`${node.url}/v1/auth/siwe`, 'evil.com', phished)
  assert.equal(answer.status, 401, JSON.stringify(answer.body))
  assert.equal(answer.body.code, 'SIWE_DOMAIN_MISMATCH')
  assert.equal(answer.body.token, undefined)
})

test('#1 sign-in is bound to the node’s own origin and chain, and to the validity window', async () => {
  const refusals: [string, SiweFields][] = [
    ['SIWE_DOMAIN_MISMATCH', { domain: 'evil.com' }],
    ['SIWE_DOMAIN_MISMATCH', { uri: 'https://evil.com/login' }],
    ['SIWE_CHAIN_MISMATCH', { chainId: 1 }],
    ['SIWE_OUTSIDE_VALIDITY', { expirationTime: new Date(Date.now() - 60_000) }],
    ['SIWE_OUTSIDE_VALIDITY', { notBefore: new Date(Date.now() + 3_600_000) }],
  ]
  for (const [code, fields] of refusals) {
    const attempt = await signedMessage(owner, fields)
    const answer = await call(`${node.url}/v1/auth/siwe`, { json: attempt })
    assert.equal(answer.status, 401, `${JSON.stringify(fields)}: ${JSON.stringify(answer.body)}`)
    assert.equal(answer.body.code, code, JSON.stringify(fields))
    assert.equal(answer.body.token, undefined)
    // The nonce was spent by the refused attempt: correcting the message does not reuse it.
    const nonce = /Nonce: (\w+)/.exec(attempt.message)![1]!
    const corrected = await signedMessage(owner, { nonce })
    const again = await call(`${node.url}/v1/auth/siwe`, { json: corrected })
    assert.equal(again.body.code, 'UNAUTHENTICATED')
  }
  // The node's own origin, within the window, and the loopback name of the same port: signed in.
  const within = await signedMessage(owner, {
    notBefore: new Date(Date.now() - 60_000),
    expirationTime: new Date(Date.now() + 60_000),
  })
  assert.equal((await call(`${node.url}/v1/auth/siwe`, { json: within })).status, 200)
  const port = new URL(node.url).port
  const localhost = await signedMessage(owner, {
    domain: `localhost:${port}`,
    uri: `http://localhost:${port}/#/keys`,
  })
  assert.equal((await call(`${node.url}/v1/auth/siwe`, { json: localhost })).status, 200)
  const harness = await signIn(node.url, node.chain.chainId, owner)
  assert.equal(harness.answer.status, 200, JSON.stringify(harness.answer.body))
})

type StreamMessage = { name: string; data: Record<string, unknown> }

/** A reader of `/v1/stream` that collects messages until one matches. */
async function openStream(query = '') {
  const controller = new AbortController()
  const response = await fetch(`${node.url}/v1/stream${query}`, { signal: controller.signal })
  const messages: StreamMessage[] = []
  const reader = response.body?.getReader()
  const decoder = new TextDecoder()
  let buffer = ''
  return {
    response,
    messages,
    async until(done: (message: StreamMessage) => boolean) {
      for (;;) {
        const { value, done: ended } = await reader!.read()
        if (ended) throw new Error('the stream ended')
        buffer += decoder.decode(value, { stream: true })
        const blocks = buffer.split('\n\n')
        buffer = blocks.pop()!
        for (const block of blocks) {
          const name = /^event: (.*)$/m.exec(block)?.[1]
          const data = /^data: (.*)$/m.exec(block)?.[1]
          if (!name || !data) continue
          const message = { name, data: JSON.parse(data) }
          messages.push(message)
          if (done(message)) return
        }
      }
    },
    close: () => controller.abort(),
  }
}

test('#13 an anonymous stream reader gets no grantee, issuer or purpose; an owner gets its own car’s', async () => {
  const [mine, theirs] = fleet.cars.map((car) => car.vehicle.toLowerCase())
  const { token } = await signIn(node.url, node.chain.chainId, owner)
  await node.context.indexer.sync() // the titles the seeding just registered
  const anonymous = await openStream()
  const signedIn = await openStream(`?token=${token}`)
  try {
    assert.equal(signedIn.response.headers.get('access-control-allow-origin'), null)
    const who = { subject: developmentAccount(5).address, issuer: owner.address, purpose: 'parcel: dentist' }
    const decision = {
      ok: true,
      code: 'OK',
      action: 1,
      grantId: `0x${'ab'.repeat(32)}`,
      rental: false,
      ...who,
    }
    for (const vehicle of [mine, theirs]) {
      node.context.events.publish('access', { vehicle, decision, code: 'OK', eventId: null, elapsedMs: 3 })
      node.context.events.publish('access', {
        vehicle,
        notice: true,
        grantee: who.subject,
        purpose: who.purpose,
        action: 'unlock',
      })
      node.context.events.publish('charging', {
        evseId: 'EVSE-1',
        kind: 'session.started',
        data: { vehicle, wallet: who.subject, amountWei: '5' },
      })
    }
    node.context.events.publish('alert', { vehicle: mine!, code: 'END', message: 'end of the test' })
    const isEnd = (message: StreamMessage) => message.name === 'alert' && message.data.code === 'END'
    await anonymous.until(isEnd)
    await signedIn.until(isEnd)

    const personal = /grantee|subject|issuer|purpose|grantId|wallet|amountWei|dentist/
    const access = anonymous.messages.filter((m) => m.name === 'access')
    assert.equal(access.length, 2, 'the decisions, not the owner’s notices')
    for (const message of anonymous.messages) assert.doesNotMatch(JSON.stringify(message.data), personal)
    assert.deepEqual(access[0]!.data, {
      vehicle: mine,
      code: 'OK',
      decision: { ok: true, code: 'OK', action: 1, rental: false },
    })
    // The owner: everything about its own car, the public view of the other.
    const about = (vehicle: string) =>
      signedIn.messages.filter((m) => JSON.stringify(m.data).includes(vehicle) && m.name !== 'alert')
    assert.equal(about(mine!).length, 3)
    assert.match(JSON.stringify(about(mine!)), /dentist/)
    assert.match(JSON.stringify(about(mine!)), /amountWei/)
    for (const message of about(theirs!)) assert.doesNotMatch(JSON.stringify(message.data), personal)
    const forged = await call(`${node.url}/v1/stream?token=a-token-nobody-issued`)
    assert.equal(forged.status, 401)
    assert.equal(forged.body.code, 'UNAUTHENTICATED')
  } finally {
    anonymous.close()
    signedIn.close()
  }
})

test('#13 a reader that stops reading is disconnected once it leaves too much unread', async () => {
  const socket = connect(Number(new URL(node.url).port), '127.0.0.1')
  let received = 0
  const headers = new Promise<void>((resolve) =>
    socket.once('data', (chunk) => {
      received += chunk.length
      resolve()
    }),
  )
  socket.write(`GET /v1/stream HTTP/1.1\r\nhost: ${new URL(node.url).host}\r\n\r\n`)
  await headers
  socket.pause() // a reader that never reads again: the kernel's buffers fill, then the node's
  let closed = false
  socket.on('close', () => {
    closed = true
  })
  const logs = captureLogs()
  try {
    const message = 'x'.repeat(64 * 1024)
    const count = 512 // 32 MiB: more than any kernel buffers on loopback
    for (let i = 0; i < count; i++)
      node.context.events.publish('alert', { vehicle: fleet.cars[0]!.vehicle, code: 'FLOOD', message })
    const dropped = logs.records.find((r) => r.component === 'node.stream' && /too slow/.test(r.msg))
    assert.ok(dropped, 'the slow reader is disconnected and logged')
    assert.ok((dropped.bufferedBytes as number) <= MAX_STREAM_BUFFERED_BYTES, JSON.stringify(dropped))
    // Reading what was left: the connection ends well before the flood's 32 MiB.
    socket.on('data', (chunk) => {
      received += chunk.length
    })
    socket.resume()
    await waitFor('the stream to end', async () => (closed ? true : undefined), 30_000)
    assert.ok(received < (count * message.length) / 2, `received ${received} bytes`)
  } finally {
    logs.restore()
    socket.destroy()
  }
})

const randomVehicle = () => `0x${randomBytes(20).toString('hex')}`

test('#9 an upload for an unregistered vehicle is refused before its body is read', async () => {
  const socket = connect(Number(new URL(node.url).port), '127.0.0.1')
  let answer = ''
  socket.setEncoding('utf8')
  socket.on('data', (chunk) => {
    answer += chunk
  })
  try {
    // 16 MB announced, 1 KiB sent: only an answer given without the body can arrive.
    socket.write(
      `POST /v1/vehicles/${randomVehicle()}/events HTTP/1.1\r\nhost: ${new URL(node.url).host}\r\n` +
        `content-type: application/json\r\ncontent-length: ${16_000_000}\r\n\r\n{"events":[${'0,'.repeat(512)}`,
    )
    await waitFor('an answer', async () => (answer.includes('\r\n\r\n{') ? true : undefined), 20_000)
    assert.match(answer, /^HTTP\/1.1 403/)
    assert.match(answer, /"code":"VEHICLE_NOT_REGISTERED"/)
  } finally {
    socket.destroy()
  }
})

test('#9 forged uploads on a car’s path do not spend its budget, and are refused before parsing', async () => {
  const [mine, theirs] = fleet.cars
  const upload = (body: unknown) => call(`${node.url}/v1/vehicles/${theirs!.vehicle}/events`, { json: body })
  // Car 1's name, car 0's signature: refused by the checkpoint signature, more often than car 1's budget.
  const impersonated = createEventChain({ vehicle: theirs!.vehicle, head: theirs!.chain.head() })
  const forged = await createBatch({
    events: [impersonated.append({ kind: 'door.unlocked', time: Date.now(), data: {} })],
    signer: { sign: mine!.sign },
  })
  for (let i = 0; i < INGEST.vehicle + 5; i++) {
    const answer = await upload(forged)
    assert.equal(answer.body.code, 'EVENT_BAD_SIGNATURE', JSON.stringify(answer.body))
  }
  // Events nobody could parse behind a checkpoint nobody signed: the signature is checked first.
  const junk = await upload({ ...forged, events: 'x'.repeat(1000) })
  assert.equal(junk.body.code, 'EVENT_BAD_SIGNATURE', JSON.stringify(junk.body))
  // The car's own batch goes through; its re-sends count against its own budget.
  const next = createEventChain({ vehicle: theirs!.vehicle, head: theirs!.chain.head() })
  const genuine = await createBatch({
    events: [next.append({ kind: 'telemetry', time: Date.now(), data: { ok: true } })],
    signer: { sign: theirs!.sign },
  })
  assert.equal((await upload(genuine)).status, 200)
  let limited: Answer | undefined
  for (let i = 0; i < INGEST.vehicle && !limited; i++) {
    const answer = await upload(genuine)
    if (answer.status === 429) limited = answer
    else assert.equal(answer.status, 200, JSON.stringify(answer.body))
  }
  assert.ok(limited, 'the car’s own budget never ran out')
  assert.equal(limited.body.code, 'RATE_LIMITED')
  assert.equal(limited.body.details.class, 'vehicle')
  assert.ok(Number(limited.headers.get('retry-after')) > 0)
})

test('#9 cycling the path’s vehicle does not escape the per-client upload budget', async () => {
  let limited: Answer | undefined
  for (let i = 0; i <= INGEST.client && !limited; i++) {
    const answer = await call(`${node.url}/v1/vehicles/${randomVehicle()}/events`, { json: {} })
    if (answer.status === 429) limited = answer
    else assert.equal(answer.body.code, 'VEHICLE_NOT_REGISTERED', JSON.stringify(answer.body))
  }
  assert.ok(limited, `no 429 after ${INGEST.client + 1} uploads to fresh paths`)
  assert.equal(limited.body.details.class, 'ingest')
  assert.equal(limited.body.details.limit, INGEST.client)
  // A registered car's path from the same client: the same budget.
  const car = await call(`${node.url}/v1/vehicles/${fleet.cars[0]!.vehicle}/events`, { json: {} })
  assert.equal(car.status, 429)
})
