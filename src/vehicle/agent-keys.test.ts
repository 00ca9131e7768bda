/**
 * The agent composed with a key store (no chain: the RPC is unreachable from the start, so the
 * car starts offline with an empty cache and refuses every key, as it must).
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { createPublicClient, http } from 'viem'
import { SoftwareKeyStore } from '../identity/software-keystore.ts'
import { requestAccess } from '../keys/link-client.ts'
import { MemoryAccessRecorder } from '../keys/recorder.ts'
import { aGrant, testAccount } from '../keys/testing.ts'
import { Scope } from '../keys/typed-data.ts'
import { VehicleAgent } from './agent.ts'

test('the agent takes its address from the wallet key and starts offline from an empty cache', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'carchain-agent-keys-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const store = new SoftwareKeyStore({
    dir: join(dir, 'keys'),
    passphrase: 'test',
    scrypt: { n: 2 ** 10, r: 8, p: 1 },
  })
  t.after(() => store.close())
  const walletKey = await store.generate('secp256k1', 'wallet')
  const identityKey = await store.generate('p256', 'identity')
  const keyRegistry = '0xe7f1725e7734ce288f8367e1bb143e90bb3f0512'
  const agent = await VehicleAgent.create({
    dir: join(dir, 'vehicle'),
    keys: { store, identityKey, walletKey },
    chain: {
      client: createPublicClient({ transport: http('http://127.0.0.1:9', { retryCount: 0, timeout: 500 }) }),
      chainId: 31337,
      vehicleRegistry: '0x5fbdb2315678afecb367f032d93f642f64180aa3',
      keyRegistry,
    },
    recorder: new MemoryAccessRecorder((await store.ethereumAddress(walletKey)).toLowerCase()),
  })
  t.after(() => agent.stop())
  assert.equal(agent.vehicle, (await store.ethereumAddress(walletKey)).toLowerCase())
  assert.equal(agent.wallet().address, await store.ethereumAddress(walletKey))
  const url = await agent.start()
  assert.equal(agent.status().chain.online, false)
  const grant = await aGrant({
    signer: testAccount(1),
    domain: agent.domain,
    vehicle: agent.vehicle,
    grantee: testAccount(2).address,
  })
  const result = await requestAccess({
    link: url,
    signer: testAccount(2),
    domain: agent.domain,
    grant,
    action: Scope.UNLOCK,
  })
  assert.equal(result.code, 'KEYS_NOT_SYNCED') // no owner known yet: nobody's key works, and it says why
  assert.equal(agent.model.status().locked, true)
})
