/**
 * Attack tests for the node's sign-in, live stream and upload limits (issue 19 #1, #9, #13;
 * docs/reliability.md "Security review (issue 19): sign-in, stream and upload limits").
 */
import assert from 'node:assert/strict'
import { request as httpRequest } from 'node:http'
import { after, before, test } from 'node:test'
import type { LocalAccount } from 'viem'
import { createSiweMessage } from 'viem/siwe'
import { developmentAccount } from '../../src/chain/clients.ts'
import { type Answer, call, signIn, startTestNode, type TestNode } from './harness.ts'

let node: TestNode
const owner = developmentAccount(1)

before(async () => {
  node = await startTestNode()
})

after(async () => {
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
