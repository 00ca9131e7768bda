/** End to end: `carchain pki …` as a user runs it (a child process per command). */
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { requirePart } from '../../../test/skip.ts'
import { createSoftHsmToken, type SoftHsmToken, softHsmAvailable } from '../../identity/softhsm.testkit.ts'

const root = join(import.meta.dirname, '../../..')
const node = join(root, 'node_modules/.bin/node')
const VIN = 'WDB11111111111111'

function carchain(
  args: string[],
  env: Record<string, string> = {},
): { status: number; json: Record<string, unknown> } {
  const result = spawnSync(node, [join(root, 'src/cli/main.ts'), 'pki', ...args, '--json'], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, CARCHAIN_PASSPHRASE: 'e2e-passphrase', ...env },
  })
  assert.ok(result.stdout, `no output (status ${result.status}): ${result.stderr}`)
  return { status: result.status ?? -1, json: JSON.parse(result.stdout) }
}

describe('carchain pki (end to end)', () => {
  let dir: string
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'carchain-cli-pki-'))
  })
  after(() => rm(dir, { recursive: true, force: true }))

  it('init, issue, verify, revoke', () => {
    const init = carchain(['init', '--dir', dir])
    assert.equal(init.status, 0)
    assert.deepEqual(Object.keys(init.json), ['roots', 'subCAs'])
    const roots = init.json.roots as Record<string, string>
    const subCAs = init.json.subCAs as Record<string, string>
    assert.deepEqual(Object.keys(roots), ['oem', 'cpo'])

    const vehicle = carchain(['issue', 'vehicle', '--vin', VIN, '--dir', dir, '--chain-id', '1'])
    assert.equal(vehicle.status, 0)
    assert.deepEqual(Object.keys(vehicle.json).sort(), ['cert', 'chain', 'key'])
    assert.equal(vehicle.json.chain, subCAs.oem)
    assert.equal(vehicle.json.key, `keystore:vehicle-${VIN}`)
    const charger = carchain(['issue', 'charger', '--evse', 'DE*CCH*E0001', '--dir', dir])
    assert.equal(charger.status, 0)
    const component = carchain(['issue', 'component', '--vehicle', VIN, '--name', 'BMS', '--dir', dir])
    assert.equal(component.status, 0)

    for (const [issued, hierarchy] of [
      [vehicle, 'oem'],
      [charger, 'cpo'],
      [component, 'oem'],
    ] as const) {
      const out = execFileSync(
        'openssl',
        [
          'verify',
          '-x509_strict',
          '-CAfile',
          roots[hierarchy]!,
          '-untrusted',
          subCAs[hierarchy]!,
          issued.json.cert as string,
        ],
        { encoding: 'utf8' },
      )
      assert.match(out, /: OK/)
    }

    const verify = (issued: typeof vehicle, role: string) =>
      carchain([
        'verify',
        '--cert',
        issued.json.cert as string,
        '--chain',
        issued.json.chain as string,
        '--role',
        role,
        '--dir',
        dir,
      ])
    assert.deepEqual(verify(vehicle, 'vehicle'), { status: 0, json: { valid: true } })
    assert.deepEqual(verify(charger, 'charger'), { status: 0, json: { valid: true } })
    assert.deepEqual(verify(component, 'component'), { status: 0, json: { valid: true } })
    assert.deepEqual(verify(charger, 'vehicle'), {
      status: 1,
      json: { valid: false, code: 'CERT_WRONG_ROLE' },
    })

    const revoke = carchain(['revoke', '--cert', vehicle.json.cert as string, '--dir', dir])
    assert.equal(revoke.status, 0)
    assert.equal(revoke.json.revoked, true)
    assert.deepEqual(verify(vehicle, 'vehicle'), { status: 1, json: { valid: false, code: 'CERT_REVOKED' } })
    assert.deepEqual(verify(component, 'component'), { status: 0, json: { valid: true } })
  })

  it('refuses a wrong passphrase and a bad role with stable codes', () => {
    const locked = carchain(['issue', 'charger', '--evse', 'DE*CCH*E0002', '--dir', dir], {
      CARCHAIN_PASSPHRASE: 'wrong',
    })
    assert.equal(locked.status, 1)
    assert.equal(locked.json.code, 'KEYSTORE_LOCKED')
    const usage = carchain(['verify', '--cert', 'x', '--chain', 'y', '--role', 'toaster', '--dir', dir])
    assert.equal(usage.status, 2)
    assert.equal(usage.json.code, 'CLI_USAGE')
  })

  describe('with a PKCS#11 token', () => {
    let token: SoftHsmToken | undefined
    before(async () => {
      if (softHsmAvailable) token = await createSoftHsmToken('carchain-cli')
    })
    after(() => token?.cleanup())

    it('generates the vehicle’s keys in the token', (t) => {
      if (!requirePart(t, softHsmAvailable, 'SoftHSM2 is not installed')) return
      const env = {
        SOFTHSM2_CONF: token!.conf,
        CARCHAIN_PKCS11_MODULE: token!.module,
        CARCHAIN_PKCS11_SLOT: String(token!.slot),
      }
      const vin = 'WDB22222222222222'
      const issued = carchain(
        ['issue', 'vehicle', '--vin', vin, '--dir', dir, '--pkcs11-pin', token!.pin],
        env,
      )
      assert.equal(issued.status, 0, JSON.stringify(issued.json))
      assert.equal(issued.json.key, `pkcs11:token=carchain-cli;object=vehicle-${vin}`)
      const verified = carchain(
        [
          'verify',
          '--cert',
          issued.json.cert as string,
          '--chain',
          issued.json.chain as string,
          '--role',
          'vehicle',
          '--dir',
          dir,
        ],
        env,
      )
      assert.deepEqual(verified, { status: 0, json: { valid: true } })
      const listed = execFileSync(
        'pkcs11-tool',
        [
          '--module',
          token!.module,
          '--slot',
          String(token!.slot),
          '--login',
          '--pin',
          token!.pin,
          '--list-objects',
        ],
        {
          encoding: 'utf8',
          env: { ...process.env, ...env },
          stdio: ['ignore', 'pipe', 'ignore'],
        },
      )
      assert.match(listed, new RegExp(`vehicle-${vin}-wallet`))
    })
  })
})
