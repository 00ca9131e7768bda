import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { BaseError } from '../errors.ts'
import { rpc, startAnvil } from './anvil.ts'

const send = (rpcUrl: string) =>
  rpc<string>(rpcUrl, 'eth_sendTransaction', [
    {
      from: '0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266',
      to: '0x000000000000000000000000000000000000dead',
      value: '0xde0b6b3a7640000',
    },
  ])

const balanceOfDead = async (rpcUrl: string) =>
  BigInt(
    await rpc<string>(rpcUrl, 'eth_getBalance', ['0x000000000000000000000000000000000000dead', 'latest']),
  )

test('state survives a clean stop and restart', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'carchain-anvil-'))
  try {
    const first = await startAnvil({ stateDir: dir })
    await send(first.rpcUrl)
    await first.stop()
    const second = await startAnvil({ stateDir: dir })
    try {
      assert.equal(await balanceOfDead(second.rpcUrl), 10n ** 18n)
      assert.equal(BigInt(await rpc<string>(second.rpcUrl, 'eth_blockNumber')), 1n)
    } finally {
      await second.stop()
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('a SIGKILL loses at most the last snapshot interval, and no anvil is left behind', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'carchain-anvil-'))
  try {
    // A separate process owns anvil; we SIGKILL that process, as a crash would.
    const script = `
      import { startAnvil, rpc } from ${JSON.stringify(new URL('./anvil.ts', import.meta.url).href)}
      const anvil = await startAnvil({ stateDir: ${JSON.stringify(dir)}, snapshotIntervalMs: 200 })
      await rpc(anvil.rpcUrl, 'eth_sendTransaction', [{ from: '0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266', to: '0x000000000000000000000000000000000000dead', value: '0xde0b6b3a7640000' }])
      await new Promise((r) => setTimeout(r, 1000))
      process.stdout.write(anvil.rpcUrl + ' ' + anvil.pid + '\\n')
      await new Promise(() => {})
    `
    const { spawn } = await import('node:child_process')
    const owner = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    const line = await new Promise<string>((resolve) =>
      owner.stdout.once('data', (d: Buffer) => resolve(d.toString())),
    )
    const [rpcUrl] = line.trim().split(' ')
    owner.kill('SIGKILL')
    // The guard notices the closed pipe and stops anvil.
    let alive = true
    for (let i = 0; i < 50 && alive; i++) {
      await new Promise((r) => setTimeout(r, 100))
      alive = await rpc(rpcUrl!, 'eth_chainId', [], 200).then(
        () => true,
        () => false,
      )
    }
    assert.equal(alive, false, 'anvil outlived its owner')
    const restarted = await startAnvil({ stateDir: dir })
    try {
      assert.equal(await balanceOfDead(restarted.rpcUrl), 10n ** 18n)
    } finally {
      await restarted.stop()
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('a damaged snapshot is refused with DATA_DIR_INVALID and left in place', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'carchain-anvil-'))
  try {
    writeFileSync(join(dir, 'state.json.gz.hex'), 'not a snapshot')
    await assert.rejects(
      startAnvil({ stateDir: dir }),
      (e: unknown) => e instanceof BaseError && e.code === 'DATA_DIR_INVALID',
    )
    assert.equal(execFileSync('cat', [join(dir, 'state.json.gz.hex')]).toString(), 'not a snapshot')
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
