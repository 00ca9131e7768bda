/**
 * Fuzzing the parsers that take untrusted input (docs/reliability.md, part 4): certificates as
 * PEM and DER, the charging protocol's messages over their NDJSON framing, and the car's
 * short-range link. Random input from fast-check plus mutants of valid messages. The rule: no
 * crash, no hang, and every refusal a typed error whose code maps to a 4xx status.
 *
 * Short mode (npm test): a few hundred to a couple of thousand cases per target. Soak
 * (`CARCHAIN_SOAK=1`): 100,000 per target. `CARCHAIN_SEED` replays a run.
 */
import assert from 'node:assert/strict'
import { duplexPair } from 'node:stream'
import { after, before, test } from 'node:test'
import fc from 'fast-check'
import type { Address } from 'viem'
import WebSocket from 'ws'
import { BaseError, errorCodes } from '../../src/errors.ts'
import { parseCertificate, toPem } from '../../src/identity/certificate.ts'
import { aPki, type TestPki } from '../../src/identity/pki.testkit.ts'
import { validateCertificate } from '../../src/identity/validate.ts'
import { AccessController } from '../../src/keys/access-control.ts'
import { buildRequest, requestAccess } from '../../src/keys/link-client.ts'
import { LinkServer } from '../../src/keys/link-server.ts'
import { MemoryAccessRecorder } from '../../src/keys/recorder.ts'
import { aGrant, FakeKeyState, testAccount } from '../../src/keys/testing.ts'
import { type KeyDomain, Scope } from '../../src/keys/typed-data.ts'
import { MemoryUseCounter } from '../../src/keys/use-counter.ts'
import {
  PROTOCOL_VERSION,
  parseOffer,
  parseReading,
  parseStart,
  parseVoucher,
} from '../../src/payments/protocol.ts'
import { ndjsonTransport } from '../../src/payments/transport.ts'
import { seed, seededRandom, soak } from './harness.ts'
import { interestingValues, mutateBytes, mutateJson, mutateText } from './mutate.ts'

/** Short-mode count, or the soak count (100,000 per target; fewer of the costly extras). */
const runs = (short: number, soakRuns = 100_000) => (soak ? soakRuns : short)

/** Tallies outcomes; fails on anything but success or a 4xx-coded BaseError. */
class Outcomes {
  readonly codes = new Map<string, number>()
  accepted = 0
  cases = 0
  maxMs = 0
  record(error: unknown, startedMs: number, input: unknown): void {
    this.cases++
    this.maxMs = Math.max(this.maxMs, performance.now() - startedMs)
    if (error === undefined) {
      this.accepted++
      return
    }
    if (!(error instanceof BaseError))
      assert.fail(`not a typed error: ${String(error)} for ${JSON.stringify(String(input)).slice(0, 300)}`)
    const info = errorCodes[error.code as keyof typeof errorCodes]
    if (!Object.hasOwn(errorCodes, error.code) || info.httpStatus < 400 || info.httpStatus >= 500)
      assert.fail(`code ${error.code} is not a 4xx code, for ${JSON.stringify(String(input)).slice(0, 300)}`)
    this.codes.set(error.code, (this.codes.get(error.code) ?? 0) + 1)
  }
  summary(): string {
    const codes = [...this.codes].sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c}×${n}`)
    return `${this.cases} cases, ${this.accepted} accepted, slowest ${this.maxMs.toFixed(1)} ms; refused: ${codes.join(' ')}`
  }
}

let pki: TestPki
let vehicleDer: Uint8Array
let chainDers: Uint8Array[]

before(async () => {
  pki = await aPki()
  vehicleDer = (await pki.aVehicle()).cert.der
  chainDers = [pki.oem.sub.der, pki.oem.root.der]
})
after(() => pki?.cleanup())

test('certificates: random and mutated DER and PEM never crash the parser or the validator', async (t) => {
  const outcomes = new Outcomes()
  const random = seededRandom(seed)
  const anchors = { oem: [pki.oem.root.fingerprint] }
  const tryParse = (input: Uint8Array | string) => {
    const started = performance.now()
    let error: unknown
    try {
      parseCertificate(input)
    } catch (thrown) {
      error = thrown
    }
    outcomes.record(error, started, input)
  }
  // Random bytes and text, from fast-check.
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 1200 }), fc.string({ maxLength: 600 })), (input) => {
      tryParse(input)
    }),
    { numRuns: runs(1000), seed },
  )
  // Mutants of a real certificate, as DER and as PEM.
  for (let i = 0; i < runs(1500); i++) {
    const der = mutateBytes(random, vehicleDer)
    tryParse(der)
    tryParse(
      random() < 0.5 ? toPem('CERTIFICATE', der) : mutateText(random, toPem('CERTIFICATE', vehicleDer)),
    )
  }
  // The full validation the node runs at registration, on mutants of the leaf and the chain.
  for (let i = 0; i < runs(300, 20_000); i++) {
    const started = performance.now()
    const leaf = random() < 0.7 ? mutateBytes(random, vehicleDer) : vehicleDer
    const chain = chainDers.map((der) => (random() < 0.3 ? mutateBytes(random, der) : der))
    let error: unknown
    await validateCertificate({ certificate: leaf, chain, role: 'vehicle', trustAnchors: anchors }).catch(
      (thrown) => {
        error = thrown
      },
    )
    outcomes.record(error, started, leaf)
  }
  t.diagnostic(`certificates: ${outcomes.summary()}`)
  assert.ok(outcomes.cases >= runs(300, 20_000) + 2 * runs(1500))
})

/** Valid messages of each type (docs/payments.md "Session protocol"). */
function chargingMessages() {
  const hex = (bytes: number, digit = 'a') => `0x${digit.repeat(bytes * 2)}`
  return [
    {
      type: 'offer',
      version: PROTOCOL_VERSION,
      evseId: 'DE*CCH*E0001*1',
      charger: hex(20, '1'),
      certificate: toPem('CERTIFICATE', vehicleDer),
      chain: chainDers.map((der) => toPem('CERTIFICATE', der)),
      tariff: {
        evseId: 'DE*CCH*E0001*1',
        token: hex(20, '2'),
        pricePerKWh: '390000000000000000',
        sessionFee: '0',
        validUntil: 1_900_000_000,
      },
      tariffSignature: hex(65, '3'),
    },
    {
      type: 'start',
      sessionId: hex(32, '4'),
      vehicle: hex(20, '5'),
      channelId: hex(32, '6'),
      nonce: '16045690984833335023',
      base: { cumulativeAmount: '1000', meterWh: 12, signature: null },
      maxWh: 20_000,
    },
    {
      type: 'reading',
      sessionWh: 1500,
      timeMs: 1_763_000_000_000,
      due: '585000000000000000',
      signature: hex(65, '7'),
    },
    {
      type: 'voucher',
      channelId: hex(32, '6'),
      cumulativeAmount: '585000000000000000',
      meterWh: 1512,
      signature: hex(65, '8'),
    },
    { type: 'stop', code: 'OK', message: 'done' },
  ]
}

const parsers: Record<string, (message: never) => unknown> = {
  offer: parseOffer,
  start: parseStart,
  reading: parseReading,
  voucher: parseVoucher,
}

test('charging protocol: mutated and random lines over the NDJSON framing give typed refusals', async (t) => {
  const outcomes = new Outcomes()
  const random = seededRandom(seed + 1)
  const valid = chargingMessages()
  const types = Object.keys(parsers)
  /** Feeds one line to a fresh transport and parses what comes out as the expected message. */
  const feed = async (line: string, expected: string) => {
    if (line.split('\n')[0]!.trim() === '') return // nothing sent: the framing waits, rightly
    const [ours, theirs] = duplexPair()
    const transport = ndjsonTransport(ours)
    const started = performance.now()
    let error: unknown
    try {
      theirs.write(`${line}\n`)
      const message = await transport.receive(5000)
      // A peer's stop carries its own code (or PEER_CLOSED): the peer's verdict, passed on.
      if (message.type === 'stop') {
        try {
          parsers[expected]!(message as never)
        } catch (thrown) {
          assert.ok(thrown instanceof BaseError, 'a peer stop became an untyped error')
          assert.ok(Object.hasOwn(errorCodes, thrown.code), `a peer stop became code "${thrown.code}"`)
        }
      } else parsers[expected]!(message as never)
    } catch (thrown) {
      error = thrown
    } finally {
      transport.close()
      theirs.destroy()
    }
    outcomes.record(error, started, line)
  }
  for (let i = 0; i < runs(1500); i++) {
    const base = valid[Math.floor(random() * valid.length)]!
    const expected = base.type === 'stop' ? types[i % types.length]! : base.type
    await feed(mutateJson(random, base), expected)
  }
  // A dictionary sweep: every field of every message set to every value of the dictionary.
  for (const base of valid)
    for (const field of Object.keys(base))
      for (const value of interestingValues) {
        const expected = base.type === 'stop' ? 'offer' : base.type
        await feed(JSON.stringify({ ...base, [field]: value }), expected)
      }
  await fc.assert(
    fc.asyncProperty(fc.jsonValue({ maxDepth: 3 }), fc.constantFrom(...types), async (value, expected) => {
      const line = JSON.stringify(value).replace(/\n/g, ' ')
      await feed(line, expected)
    }),
    { numRuns: runs(500, 20_000), seed },
  )
  t.diagnostic(`charging messages: ${outcomes.summary()}`)
})

test('link: mutated requests to a car answer a result with a 4xx code, and the car still opens', async (t) => {
  const domain: KeyDomain = { chainId: 31337, keyRegistry: '0xe7f1725e7734ce288f8367e1bb143e90bb3f0512' }
  const vehicle = '0x00000000000000000000000000000000000c0de9' as Address
  const owner = testAccount(1)
  const grantee = testAccount(2)
  const state = new FakeKeyState()
  state.owner = owner.address.toLowerCase() as Address
  const server = new LinkServer({
    vehicle,
    controller: new AccessController({ vehicle, domain, state, uses: new MemoryUseCounter() }),
    recorder: process.env.FUZZ_DEBUG
      ? new (class extends MemoryAccessRecorder {
          override async record(...args: Parameters<MemoryAccessRecorder['record']>) {
            try {
              return await super.record(...args)
            } catch (error) {
              console.error('RECORD FAILED', error, JSON.stringify(args))
              throw error
            }
          }
        })(vehicle)
      : new MemoryAccessRecorder(vehicle),
    // Answers come from a loaded machine: the relay bound must not turn fuzz cases into timeouts.
    challengeTtlMs: 30_000,
    relayBoundMs: 30_000,
    // Every mutant is a refusal from one peer: this test is about parsing, not the flood bound.
    deniedAttempts: { perPeer: 1_000_000, total: 1_000_000 },
  })
  const url = await server.listen()
  t.after(() => server.close())
  const grant = await aGrant({ signer: owner, domain, vehicle, grantee: grantee.address })
  const outcomes = new Outcomes()
  const random = seededRandom(seed + 2)

  /** A connection that yields each challenge and each result in order. */
  const connect = async () => {
    const socket = new WebSocket(url)
    const inbox: Record<string, unknown>[] = []
    let wake: (() => void) | undefined
    let closed = false
    socket.on('message', (data) => {
      inbox.push(JSON.parse(String(data)))
      wake?.()
    })
    socket.on('close', () => {
      closed = true
      wake?.()
    })
    await new Promise((resolve, reject) => {
      socket.once('open', resolve)
      socket.once('error', reject)
    })
    const next = async (type: string) => {
      const deadline = Date.now() + 10_000
      for (;;) {
        const i = inbox.findIndex((m) => m.type === type)
        if (i >= 0) return inbox.splice(i, 1)[0]!
        if (closed) return undefined
        if (Date.now() > deadline) assert.fail(`no ${type} from the car within 10 s: a hang`)
        await new Promise<void>((resolve) => {
          wake = resolve
          setTimeout(resolve, 200)
        })
      }
    }
    return { socket, next, isClosed: () => closed }
  }

  let link = await connect()
  const total = runs(600)
  for (let i = 0; i < total; i++) {
    const challenge = await link.next('challenge')
    if (!challenge) {
      link = await connect() // the car closes after too many malformed frames: a fresh session
      i--
      continue
    }
    const valid = await buildRequest({
      signer: grantee,
      domain,
      grant,
      action: random() < 0.5 ? Scope.UNLOCK : Scope.LOCK,
      challenge: challenge.challenge as `0x${string}`,
    })
    const text = random() < 0.03 ? JSON.stringify(valid) : mutateJson(random, valid)
    const started = performance.now()
    link.socket.send(text)
    const result = await link.next('result')
    if (!result) {
      // Closed right after the answer to the last malformed frame: counted on the next session.
      link = await connect()
      continue
    }
    assert.equal(typeof result.ok, 'boolean')
    assert.equal(result.ok, result.code === 'OK')
    outcomes.record(
      result.ok ? undefined : new BaseError(result.code as keyof typeof errorCodes, 'link result'),
      started,
      text,
    )
  }
  link.socket.close()
  // After all that, the grantee still opens the car.
  const answer = await requestAccess({ link: url, signer: grantee, domain, grant, action: Scope.UNLOCK })
  assert.equal(answer.code, 'OK')
  t.diagnostic(`link requests: ${outcomes.summary()}`)
  assert.ok(outcomes.cases >= total * 0.9)
})
