/**
 * `carchain up` end to end, as a user runs it: a real process, the embedded anvil and PGlite in a
 * temp data dir; signals; restart on the same data dir.
 */
import assert from 'node:assert/strict'
import { type ChildProcessWithoutNullStreams, execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'

const main = new URL('../src/cli/main.ts', import.meta.url).pathname
const dataDir = mkdtempSync(join(tmpdir(), 'carchain-up-'))
after(() => rmSync(dataDir, { recursive: true, force: true }))

type Up = {
  child: ChildProcessWithoutNullStreams
  /** stderr so far: the progress lines. */
  stderr(): string
  info: { url: string; chain: { chainId: number; rpcUrl: string; contracts: Record<string, string> } }
}

/** `group`: in a process group of its own, as a shell runs a command at a terminal. */
function up(args: string[], { group = false } = {}): Promise<Up> {
  const child = spawn(
    process.execPath,
    [main, 'up', '--json', '--port', '0', '--no-sim', '--data', dataDir, ...args],
    {
      env: { ...process.env, DATABASE_URL: '' },
      detached: group,
    },
  )
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  return new Promise((resolve, reject) => {
    let stdout = ''
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString()
      const line = stdout.split('\n').find((l) => l.startsWith('{"event":"up"'))
      if (line) resolve({ child, stderr: () => stderr, info: JSON.parse(line) })
    })
    child.once('exit', (code) => reject(new Error(`up exited ${code}: ${stdout}\n${stderr}`)))
  })
}

const exited = (child: ChildProcessWithoutNullStreams) =>
  new Promise<number | null>((resolve) =>
    child.exitCode !== null ? resolve(child.exitCode) : child.once('exit', resolve),
  )

async function reachable(url: string): Promise<boolean> {
  return fetch(url, {
    method: 'POST',
    body: '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}',
    headers: { 'content-type': 'application/json' },
    signal: AbortSignal.timeout(500),
  }).then(
    () => true,
    () => false,
  )
}

let firstContracts: Record<string, string> = {}

test('up serves health, chain and OpenAPI; SIGINT stops everything it started', async () => {
  const { child, info } = await up([])
  const health = await (await fetch(`${info.url}/v1/health`)).json()
  assert.equal(health.status, 'ok')
  assert.deepEqual(health.parts, {
    chain: 'ok',
    database: 'ok',
    anchoring: 'ok',
    checkpoints: 'ok',
    evidence: 'ok',
  })
  const chain = await (await fetch(`${info.url}/v1/chain`)).json()
  assert.equal(chain.chainId, 31337)
  for (const name of ['VehicleRegistry', 'KeyRegistry', 'LedgerAnchor', 'ChargingChannels', 'Token'])
    assert.match(chain.contracts[name], /^0x[0-9a-fA-F]{40}$/, name)
  firstContracts = chain.contracts
  const openapi = await (await fetch(`${info.url}/openapi.json`)).json()
  assert.ok(openapi.paths['/v1/health'] && openapi.paths['/v1/chain'])
  const missing = await fetch(`${info.url}/v1/nope`)
  assert.equal(missing.status, 404)
  assert.equal((await missing.json()).code, 'NOT_FOUND')

  child.kill('SIGINT')
  assert.equal(await exited(child), 0)
  assert.equal(await reachable(info.chain.rpcUrl), false, 'anvil still answers after SIGINT')
})

test('Ctrl-C at a terminal (SIGINT to the whole group): the chain outlives the orderly stop', async () => {
  const { child, info, stderr } = await up([], { group: true })
  process.kill(-child.pid!, 'SIGINT')
  assert.equal(await exited(child), 0)
  // anvil is in a group of its own: the node stops it last, after the final snapshot
  assert.doesNotMatch(stderr(), /while stopping/)
  assert.equal(await reachable(info.chain.rpcUrl), false, 'anvil still answers after SIGINT')
})

test('a restart on the same data dir keeps the contracts', async () => {
  const { child, info } = await up([])
  assert.deepEqual(info.chain.contracts, firstContracts)
  child.kill('SIGTERM')
  assert.equal(await exited(child), 0)
})

test('after SIGKILL, a restart finds its chain and data again and no anvil was left behind', async () => {
  const first = await up([])
  first.child.kill('SIGKILL')
  await exited(first.child)
  let alive = true
  for (let i = 0; i < 50 && alive; i++) {
    await new Promise((r) => setTimeout(r, 100))
    alive = await reachable(first.info.chain.rpcUrl)
  }
  assert.equal(alive, false, 'anvil outlived a SIGKILLed node')
  const second = await up([]) // the stale lock of the dead process is taken over
  assert.deepEqual(second.info.chain.contracts, firstContracts)
  second.child.kill('SIGINT')
  await exited(second.child)
})

test('a second node on the same data dir is refused with DATA_DIR_LOCKED', async () => {
  const first = await up([])
  try {
    const out = runCli(['up', '--json', '--port', '0', '--no-sim', '--data', dataDir])
    assert.equal(out.status, 1)
    assert.equal(JSON.parse(out.stdout).code, 'DATA_DIR_LOCKED')
  } finally {
    first.child.kill('SIGINT')
    await exited(first.child)
  }
})

function runCli(args: string[], env: Record<string, string> = {}): { status: number; stdout: string } {
  try {
    const stdout = execFileSync(process.execPath, [main, ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, DATABASE_URL: '', ...env },
    })
    return { status: 0, stdout }
  } catch (error) {
    const e = error as { status: number; stdout: string }
    return { status: e.status, stdout: e.stdout }
  }
}

const emptyDir = () => mkdtempSync(join(tmpdir(), 'carchain-bad-'))

test('bad flags, an unreachable RPC or database: a code and a non-zero exit', () => {
  const operator = { CARCHAIN_OPERATOR_KEY: `0x${'11'.repeat(32)}` }
  const cases: Array<[string[], Record<string, string>, string, number]> = [
    [['up', '--json', '--port', 'x'], {}, 'CLI_USAGE', 2],
    [['up', '--json', '--bogus'], {}, 'CLI_USAGE', 2],
    [['nonsense', '--json'], {}, 'CLI_USAGE', 2],
    [['up', '--json', '--rpc', 'ftp://x'], {}, 'CONFIG_INVALID', 1],
    [
      ['up', '--json', '--no-sim', '--port', '0', '--data', emptyDir(), '--rpc', 'http://127.0.0.1:1'],
      {},
      'CONFIG_INVALID',
      1,
    ],
    [
      ['up', '--json', '--no-sim', '--port', '0', '--data', emptyDir(), '--rpc', 'http://127.0.0.1:1'],
      operator,
      'CHAIN_UNREACHABLE',
      1,
    ],
    [['deploy', '--json', '--rpc', 'http://127.0.0.1:1'], operator, 'CHAIN_UNREACHABLE', 1],
    [
      [
        'up',
        '--json',
        '--no-sim',
        '--port',
        '0',
        '--data',
        emptyDir(),
        '--database',
        'postgres://x:pw@127.0.0.1:1/x',
      ],
      {},
      'DB_UNREACHABLE',
      1,
    ],
  ]
  for (const [args, env, code, status] of cases) {
    const out = runCli(args, env)
    assert.equal(out.status, status, args.join(' '))
    assert.equal(JSON.parse(out.stdout).code, code, args.join(' '))
  }
})

test('a corrupt data dir is refused with DATA_DIR_INVALID and nothing is overwritten', () => {
  const dir = emptyDir()
  const record = join(dir, 'deployments', '31337.json')
  execFileSync('mkdir', ['-p', join(dir, 'deployments')])
  writeFileSync(record, '{"torn": ')
  const out = runCli(['up', '--json', '--no-sim', '--port', '0', '--data', dir])
  assert.equal(out.status, 1)
  assert.equal(JSON.parse(out.stdout).code, 'DATA_DIR_INVALID')
  assert.equal(execFileSync('cat', [record], { encoding: 'utf8' }), '{"torn": ')
  rmSync(dir, { recursive: true, force: true })
})
