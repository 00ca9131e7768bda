import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, test } from 'node:test'
import { isErrorCode } from '../errors.ts'
import {
  decodeShareLink,
  encodeShareLink,
  SHARE_LINK_PREFIX,
  sharedKey,
  sharedKeyDomain,
} from './share-link.ts'
import { aGrant, testAccount } from './testing.ts'
import type { KeyDomain } from './typed-data.ts'

const domain: KeyDomain = { chainId: 31337, keyRegistry: '0x5fbdb2315678afecb367f032d93f642f64180aa3' }
const vehicle = '0x00000000000000000000000000000000000000c1'

const aSigned = (purpose = 'family') =>
  aGrant({ signer: testAccount(1), domain, vehicle, grantee: testAccount(2).address, purpose })

describe('the share-link codec (Node and the dashboard)', () => {
  test('a link is the base64url of the grant file’s JSON, as links already handed out are', async () => {
    const signed = await aSigned('Paketbote – Tür hinten 🚚')
    const link = encodeShareLink(domain, signed)
    const json = JSON.stringify(sharedKey(domain, signed))
    assert.equal(link, SHARE_LINK_PREFIX + Buffer.from(json).toString('base64url'))
    const shared = decodeShareLink(link)
    assert.deepEqual(shared, sharedKey(domain, signed))
    assert.deepEqual(sharedKeyDomain(shared), domain)
    // A grant file's text decodes the same, and a padded link too.
    assert.deepEqual(decodeShareLink(` ${json}\n`), shared)
    const unpadded = Buffer.from(json).toString('base64url')
    const padded = unpadded + '='.repeat((4 - (unpadded.length % 4)) % 4)
    assert.deepEqual(decodeShareLink(SHARE_LINK_PREFIX + padded), shared)
  })

  test('anything else is INVALID_ARGUMENT', async () => {
    const link = encodeShareLink(domain, await aSigned())
    const body = link.slice(SHARE_LINK_PREFIX.length)
    for (const bad of [
      `${SHARE_LINK_PREFIX}${body.slice(0, 5)}!${body.slice(5)}`, // not base64url
      `${SHARE_LINK_PREFIX}${body.slice(0, -7)}`, // cut short
      `${SHARE_LINK_PREFIX}${Buffer.from([0x7b, 0xff, 0x7d]).toString('base64url')}`, // not UTF-8
      `${SHARE_LINK_PREFIX}${Buffer.from('[1]').toString('base64url')}`, // not an object
      `${SHARE_LINK_PREFIX}`,
      'carchain-key',
    ])
      assert.throws(
        () => decodeShareLink(bad),
        (e) => isErrorCode(e, 'INVALID_ARGUMENT'),
        bad,
      )
  })

  test('uses no Node built-in, so the dashboard bundles the same code', () => {
    const source = readFileSync(new URL('./share-link.ts', import.meta.url), 'utf8')
    assert.doesNotMatch(source, /from 'node:|\bBuffer\b|\bprocess\./)
    const dashboard = readFileSync(new URL('../../web/src/views/Keys.tsx', import.meta.url), 'utf8')
    assert.match(dashboard, /from '\.\.\/\.\.\/\.\.\/src\/keys\/share-link\.ts'/)
    assert.doesNotMatch(dashboard, /carchain-key:|btoa\(/, 'no codec of its own')
  })
})
