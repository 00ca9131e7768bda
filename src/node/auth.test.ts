/** The sign-in's origin rules without a node (issue 19 #1; the attack on a running node: test/reliability). */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { loadConfig } from '../config.ts'
import { isErrorCode } from '../errors.ts'
import { checkSiweMessage, signInOrigins } from './auth.ts'

const nowMs = Date.parse('2026-12-01T12:00:00Z')

test('the public URL, when set, is the only origin; else what the server listens on', () => {
  assert.deepEqual(signInOrigins({ publicUrl: 'https://Fleet.example/app/', host: '0.0.0.0', port: 8080 }), [
    'https://fleet.example',
  ])
  assert.deepEqual(signInOrigins({ publicUrl: undefined, host: '10.0.0.7', port: 8080 }), [
    'http://10.0.0.7:8080',
  ])
  assert.deepEqual(signInOrigins({ publicUrl: undefined, host: '127.0.0.1', port: 80 }), [
    'http://127.0.0.1',
    'http://localhost',
    'http://[::1]',
  ])
})

test('a message must name the public origin in domain, URI and scheme alike', () => {
  const origins = signInOrigins({ publicUrl: 'https://fleet.example', host: '127.0.0.1', port: 8080 })
  const good = { domain: 'fleet.example', uri: 'https://fleet.example/#/keys', chainId: 7 }
  assert.equal(checkSiweMessage(good, { origins, chainId: 7, nowMs }).origin, 'https://fleet.example')
  const refused = [
    { ...good, domain: '127.0.0.1:8080', uri: 'http://127.0.0.1:8080' },
    { ...good, domain: 'evil.com' },
    { ...good, uri: 'https://evil.com' },
    { ...good, uri: 'http://fleet.example' },
    { ...good, scheme: 'http' },
    { ...good, uri: 'not a uri' },
    { ...good, domain: undefined },
  ]
  for (const message of refused)
    assert.throws(
      () => checkSiweMessage(message, { origins, chainId: 7, nowMs }),
      (error) => isErrorCode(error, 'SIWE_DOMAIN_MISMATCH'),
      JSON.stringify(message),
    )
  assert.throws(
    () => checkSiweMessage({ ...good, chainId: 1 }, { origins, chainId: 7, nowMs }),
    (error) => isErrorCode(error, 'SIWE_CHAIN_MISMATCH'),
  )
})

test('expiration-time and not-before as EIP-4361 says: valid from not-before, until expiration', () => {
  const origins = ['https://fleet.example']
  const message = { domain: 'fleet.example', uri: 'https://fleet.example', chainId: 7 }
  const at = (fields: { notBefore?: Date; expirationTime?: Date }) =>
    checkSiweMessage({ ...message, ...fields }, { origins, chainId: 7, nowMs })
  at({ notBefore: new Date(nowMs), expirationTime: new Date(nowMs + 1) })
  for (const fields of [{ expirationTime: new Date(nowMs) }, { notBefore: new Date(nowMs + 1) }])
    assert.throws(
      () => at(fields),
      (error) => isErrorCode(error, 'SIWE_OUTSIDE_VALIDITY'),
    )
})

test('--public-url / CARCHAIN_PUBLIC_URL: an http(s) URL, the flag winning', () => {
  const load = (flag: string | undefined, env: string | undefined) =>
    loadConfig({ flags: { publicUrl: flag }, env: { CARCHAIN_PUBLIC_URL: env } }).publicUrl
  assert.equal(load(undefined, undefined), undefined)
  assert.equal(load(undefined, 'https://fleet.example'), 'https://fleet.example')
  assert.equal(load('http://localhost:5173', 'https://fleet.example'), 'http://localhost:5173')
  for (const bad of ['ftp://fleet.example', 'fleet.example'])
    assert.throws(
      () => load(bad, undefined),
      (error) => isErrorCode(error, 'CONFIG_INVALID'),
    )
})
