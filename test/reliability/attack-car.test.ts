/**
 * Attacks on the car's side (issue 19 #10 #11 #12 #14, docs/reliability.md "Security review
 * (issue 19): the car"): link floods, a stale or never-synced key cache, concurrent online
 * unlocks of a one-use grant, forged upload acknowledgements. A real anvil with the contracts,
 * the car's real link and ledger, the local Mosquitto.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { type Address, createPublicClient, http } from 'viem'
import { buildRequest } from '../../src/keys/link-client.ts'
import { OnlineKeyService } from '../../src/keys/online.ts'
import { aGrant, testAccount } from '../../src/keys/testing.ts'
import { type KeyDomain, Scope } from '../../src/keys/typed-data.ts'
import { startTestChain, type TestChain } from '../chain.ts'

const owner = testAccount(1)
const courier = testAccount(3)
const nodeAccount = testAccount(0)
const vehicle = testAccount(10).address.toLowerCase() as Address

let chain: TestChain
let domain: KeyDomain

before(async () => {
  chain = await startTestChain()
  await chain.registerVehicle(vehicle, owner.address)
  domain = { chainId: chain.clients.chain.id, keyRegistry: chain.deployment.contracts.KeyRegistry.address }
})

after(async () => {
  await chain?.stop()
})

describe('#12 the online key path counts uses atomically', () => {
  test('N concurrent requests on a one-use grant: exactly one command', async () => {
    // JSON-RPC batching (a common client setting) answers the concurrent chain reads together,
    // so every request reaches the use check in the same turn of the event loop.
    const client = createPublicClient({ transport: http(chain.anvil.rpcUrl, { batch: true }) })
    const service = new OnlineKeyService({
      client,
      domain,
      vehicleRegistry: chain.deployment.contracts.VehicleRegistry.address,
      signer: nodeAccount,
    })
    const grant = await aGrant({
      signer: owner,
      domain,
      vehicle,
      grantee: courier.address.toLowerCase() as Address,
      scopes: Scope.OPEN_TRUNK,
      maxUses: 1,
    })
    const requests = await Promise.all(
      Array.from({ length: 8 }, async () => {
        const { challenge } = service.challenge(vehicle)
        const request = await buildRequest({
          signer: courier,
          domain,
          grant,
          action: Scope.OPEN_TRUNK,
          challenge,
        })
        return { ...request, vehicle, challenge, grantSignature: grant.signature, grant: grant.grant }
      }),
    )
    const outcomes = await Promise.allSettled(requests.map((request) => service.decide(request)))
    const granted = outcomes.filter((o) => o.status === 'fulfilled')
    const refused = outcomes.flatMap((o) =>
      o.status === 'rejected' ? [(o.reason as { code: string }).code] : [],
    )
    assert.equal(granted.length, 1, `granted ${granted.length} commands for a one-use grant`)
    assert.deepEqual(new Set(refused), new Set(['GRANT_USED_UP']))
  })
})
