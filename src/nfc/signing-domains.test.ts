/**
 * No two protocols' signed messages by the car's keys can coincide (issue 15): every message the
 * car's P-256 identity key signs (ECDSA over SHA-256 of the message) and every preimage its
 * secp256k1 wallet key signs (ECDSA over Keccak-256) carries its own domain label, type or
 * length, so a signature asked for in one protocol is never valid in another — in particular a
 * terminal that picks a ledger leaf hash as its NFC challenge gets no checkpoint signature.
 *
 * Each protocol's messages come from the real encoders, on random inputs; a classifier that knows
 * only each protocol's framing must put every message in exactly its own protocol.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import {
  concat,
  getTypesForEIP712Domain,
  type Hex,
  hashDomain,
  hashStruct,
  hexToBytes,
  serializeTransaction,
  toBytes,
  toPrefixedMessage,
} from 'viem'
import { componentChallengeMessage } from '../identity/components.ts'
import { bindingMessage } from '../identity/tls.ts'
import { signCheckpoint } from '../ledger/envelope.ts'
import { permitTypes } from '../payments/permit.ts'
import { meterReadingTypes, paymentsDomain, tariffTypes, voucherTypes } from '../payments/typed-data.ts'
import { NFC_AUTH_LABEL, nfcAuthMessage } from './applet.ts'

const bytes32 = fc.uint8Array({ minLength: 32, maxLength: 32 })
const ascii = (s: string) => Buffer.from(s, 'ascii')
const startsWith = (m: Uint8Array, prefix: Uint8Array) =>
  Buffer.from(m.subarray(0, prefix.length)).equals(prefix)

/** Captures the message a P-256 signer is asked to sign. */
async function checkpointMessage(leafHash: Uint8Array): Promise<Uint8Array> {
  let seen: Uint8Array | undefined
  await signCheckpoint(
    {
      sign: async (message) => {
        seen = message
        return new Uint8Array(64)
      },
    },
    leafHash,
  )
  return seen as Uint8Array
}

// ---------------------------------------------------------------- the P-256 identity key

const p256Protocols = {
  'ledger checkpoint': {
    messages: bytes32.map((leaf) => checkpointMessage(leaf)),
    framing: (m: Uint8Array) => m.length === 32,
  },
  'TLS channel binding': {
    messages: fc
      .tuple(fc.constantFrom('client' as const, 'server' as const), bytes32)
      .map(async ([side, x]) => bindingMessage(side, x)),
    framing: (m: Uint8Array) => startsWith(m, ascii('carchain/tls-binding/v1\0')),
  },
  'component challenge': {
    messages: fc
      .record({ vin: fc.string({ maxLength: 17 }), name: fc.string({ maxLength: 40 }), nonce: bytes32 })
      .map(async (challenge) => componentChallengeMessage(challenge)),
    framing: (m: Uint8Array) => startsWith(m, ascii('carchain/component-auth/v1\0')),
  },
  'NFC INTERNAL AUTHENTICATE': {
    messages: bytes32.map(async (challenge) => nfcAuthMessage(challenge)),
    framing: (m: Uint8Array) => m.length === 52 && startsWith(m, ascii(NFC_AUTH_LABEL)),
  },
}

test('the identity key: checkpoints, TLS binding, component challenges and NFC authentication never share a message', async () => {
  for (const [name, protocol] of Object.entries(p256Protocols))
    await fc.assert(
      fc.asyncProperty(protocol.messages, async (pending) => {
        const message = await pending
        const matches = Object.entries(p256Protocols)
          .filter(([, other]) => other.framing(message))
          .map(([n]) => n)
        assert.deepEqual(matches, [name])
      }),
      { numRuns: 200 },
    )
})

test('an NFC challenge that is a leaf hash gets a signature over another message than the checkpoint’s', async () => {
  await fc.assert(
    fc.asyncProperty(bytes32, async (leaf) => {
      assert.notDeepEqual(nfcAuthMessage(leaf), await checkpointMessage(leaf))
    }),
  )
})

// ---------------------------------------------------------------- the secp256k1 wallet key

const address = fc
  .uint8Array({ minLength: 20, maxLength: 20 })
  .map((b) => `0x${Buffer.from(b).toString('hex')}` as Hex)
const uint = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })
const domain = { chainId: 31337, verifyingContract: '0x5FbDB2315678afecb367f032d93F642f64180aa3' as Hex }
const typed = (
  types: Record<string, readonly { name: string; type: string }[]>,
  primaryType: string,
  message: Record<string, unknown>,
) =>
  concat([
    '0x1901',
    hashDomain({
      domain: paymentsDomain(domain) as never,
      types: { EIP712Domain: getTypesForEIP712Domain({ domain: paymentsDomain(domain) }), ...types },
    }),
    hashStruct({ data: message, primaryType, types }),
  ])
const typeHashOf = (types: Record<string, readonly { name: string; type: string }[]>, primaryType: string) =>
  `${primaryType}(${(types[primaryType] ?? []).map((f) => `${f.type} ${f.name}`).join(',')})`

test('the wallet key: EIP-712 types, EIP-191 messages and transactions have disjoint preimages', async () => {
  // EIP-712 (0x19 0x01 ‖ domain ‖ struct): the struct hash starts from the type hash, so two
  // types never share a struct hash; every type the car's wallet signs has its own name.
  const types = [
    typeHashOf(voucherTypes, 'Voucher'),
    typeHashOf(permitTypes, 'Permit'),
    typeHashOf(tariffTypes, 'Tariff'),
    typeHashOf(meterReadingTypes, 'MeterReading'),
  ]
  assert.equal(new Set(types).size, types.length)
  const preimages = fc.oneof(
    fc.record({ channelId: bytes32, cumulativeAmount: uint, meterWh: uint }).map((v) => ({
      kind: 'eip712',
      m: hexToBytes(
        typed(voucherTypes, 'Voucher', {
          ...v,
          channelId: `0x${Buffer.from(v.channelId).toString('hex')}`,
        }),
      ),
    })),
    fc
      .record({ owner: address, spender: address, value: uint, nonce: uint, deadline: uint })
      .map((p) => ({ kind: 'eip712', m: hexToBytes(typed(permitTypes, 'Permit', p)) })),
    fc.string().map((text) => ({ kind: 'eip191', m: toBytes(toPrefixedMessage(text)) })),
    fc.record({ to: address, nonce: fc.nat(), value: uint }).map((tx) => ({
      kind: 'transaction',
      m: hexToBytes(
        serializeTransaction({
          ...tx,
          chainId: 31337,
          type: 'eip1559',
          maxFeePerGas: 1n,
          maxPriorityFeePerGas: 1n,
          gas: 21000n,
        }),
      ),
    })),
  )
  const framing = {
    eip712: (m: Uint8Array) => m.length === 66 && m[0] === 0x19 && m[1] === 0x01,
    eip191: (m: Uint8Array) => m[0] === 0x19 && m[1] === 0x45, // "\x19Ethereum Signed Message:\n"
    transaction: (m: Uint8Array) => m[0] === 0x02 || m[0] === 0x01 || (m[0] ?? 0) >= 0xc0,
  }
  fc.assert(
    fc.property(preimages, ({ kind, m }) => {
      assert.deepEqual(
        Object.entries(framing)
          .filter(([, f]) => f(m))
          .map(([k]) => k),
        [kind],
      )
    }),
    { numRuns: 400 },
  )
})
