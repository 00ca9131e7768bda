/**
 * Attack tests for issue 19 #15: publicly known development secrets outside the embedded demo.
 * The CLI's key stores fell back to the development passphrase with only a warning, and
 * `carchain up --rpc` ran the demo fleet, registering development-mnemonic owners (public keys)
 * on an external chain. Each attack runs the real CLI against a real anvil that poses as an
 * external network (chain id 11155111).
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { type Anvil, startAnvil } from '../../src/chain/anvil.ts'
import { loadConfig } from '../../src/config.ts'
import { DEV_PASSPHRASE } from '../../src/identity/pki-directory.ts'
import { testPrivateKey } from '../../src/keys/testing.ts'

const main = new URL('../../src/cli/main.ts', import.meta.url).pathname
const scratch = mkdtempSync(join(tmpdir(), 'carchain-attack-ops-'))
let external: Anvil
before(async () => {
  external = await startAnvil({ chainId: 11155111 })
})
after(async () => {
  await external?.stop()
  rmSync(scratch, { recursive: true, force: true })
})

let dirs = 0
const freshDir = () => join(scratch, `d${dirs++}`)

/** Runs `carchain … --json` with no passphrase or key in the environment unless given. */
function carchain(args: string[], env: Record<string, string> = {}): { status: number; code: string } {
  const { CARCHAIN_PASSPHRASE: _p, CARCHAIN_OPERATOR_KEY: _k, CARCHAIN_RPC_URL: _r, ...clean } = process.env
  const result = spawnSync(process.execPath, [main, ...args, '--json'], {
    encoding: 'utf8',
    env: { ...clean, DATABASE_URL: '', ...env },
  })
  assert.ok(result.stdout, `no output (status ${result.status}): ${result.stderr}`)
  return { status: result.status ?? -1, code: JSON.parse(result.stdout).code }
}

test('pki: without a passphrase no key store is written under the development one', () => {
  const dir = freshDir()
  const out = carchain(['pki', 'init', '--dir', dir])
  assert.deepEqual(out, { status: 1, code: 'PASSPHRASE_REQUIRED' })
  assert.ok(!existsSync(join(dir, 'keystore')) || readdirSync(join(dir, 'keystore')).length === 0)
})

test('charge: no passphrase, and the public development passphrase on an external chain, are refused', () => {
  const common = ['--rpc', external.rpcUrl, '--data', freshDir(), '--keystore', freshDir(), '--wallet', 'car']
  assert.deepEqual(carchain(['charge', 'wallet', ...common]), { status: 1, code: 'PASSPHRASE_REQUIRED' })
  assert.deepEqual(carchain(['charge', 'wallet', ...common, '--passphrase', DEV_PASSPHRASE]), {
    status: 1,
    code: 'PASSPHRASE_REQUIRED',
  })
  assert.deepEqual(carchain(['charge', 'wallet', ...common], { CARCHAIN_PASSPHRASE: DEV_PASSPHRASE }), {
    status: 1,
    code: 'PASSPHRASE_REQUIRED',
  })
})

test('deploy: a development-mnemonic operator key on an external chain is refused, nothing deployed', () => {
  const data = freshDir()
  const out = carchain(['deploy', '--rpc', external.rpcUrl, '--data', data], {
    CARCHAIN_OPERATOR_KEY: testPrivateKey(0),
  })
  assert.deepEqual(out, { status: 1, code: 'DEVELOPMENT_KEY_REFUSED' })
  assert.ok(!existsSync(join(data, 'deployments', '11155111.json')))
})

test('up --rpc: the demo fleet is refused unless forced, and a development operator key too', () => {
  const data = freshDir()
  const upArgs = ['up', '--port', '0', '--rpc', external.rpcUrl, '--data', data]
  // Asked for explicitly: refused before anything starts.
  assert.deepEqual(carchain([...upArgs, '--vehicles', '3'], { CARCHAIN_OPERATOR_KEY: testPrivateKey(0) }), {
    status: 1,
    code: 'DEMO_FLEET_REFUSED',
  })
  assert.ok(!existsSync(data), 'nothing was created')
  // The operator is a development account: refused once the chain says it is not 31337.
  assert.deepEqual(carchain(upArgs, { CARCHAIN_OPERATOR_KEY: testPrivateKey(0) }), {
    status: 1,
    code: 'DEVELOPMENT_KEY_REFUSED',
  })
  assert.ok(!existsSync(join(data, 'deployments', '11155111.json')))
})

test('config: no demo fleet by default with --rpc; only the clearly named flag forces it', () => {
  const rpc = 'https://rpc.example'
  const embedded = loadConfig({ flags: {}, env: {} })
  assert.equal(embedded.sim, true)
  const externalConfig = loadConfig({ flags: { rpc }, env: {} })
  assert.equal(externalConfig.sim, false)
  assert.equal(externalConfig.vehicles, 0)
  const viaEnv = loadConfig({ flags: {}, env: { CARCHAIN_RPC_URL: rpc } })
  assert.equal(viaEnv.sim, false)
  const forced = loadConfig({ flags: { rpc, demoFleetOnExternalChain: true, vehicles: 2 }, env: {} })
  assert.equal(forced.sim, true)
  assert.equal(forced.vehicles, 2)
  assert.throws(() => loadConfig({ flags: { rpc, vehicles: 2 }, env: {} }), { code: 'DEMO_FLEET_REFUSED' })
  assert.equal(loadConfig({ flags: { rpc, vehicles: 2, noSim: true }, env: {} }).sim, false)
})
