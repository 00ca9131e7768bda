/**
 * The log's Ed25519 note key on a PKCS#11 token (SoftHSM2): made in the token on the node's first
 * start, reused on restart, never in the data dir, not extractable, and the checkpoints it signs
 * through CKM_EDDSA verify with the verifier key `GET /v1/chain` publishes. A data dir whose log
 * already signs with a file key is refused when the token has none. `carchain witness` keeps its
 * cosigner key on a token the same way (one code path, `openTokenNoteKey`).
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { loadConfig } from '../src/config.ts'
import { BaseError } from '../src/errors.ts'
import { Pkcs11KeyStore } from '../src/identity/pkcs11-keystore.ts'
import { createSoftHsmToken, type SoftHsmToken, softHsmAvailable } from '../src/identity/softhsm.testkit.ts'
import {
  noteTextOf,
  openCheckpointNote,
  signCheckpointNote,
  verifierKey,
  verifyCosignatures,
} from '../src/ledger/note.ts'
import { loadNoteKey, NOTE_KEY_FILE, NOTE_KEY_LABEL, openTokenNoteKey } from '../src/node/transparency.ts'
import { startWitness, WITNESS_KEY_FILE, WITNESS_KEY_LABEL } from '../src/node/witness-server.ts'
import { addCheckpointBody } from '../src/node/witnesses.ts'
import { startSystem } from '../src/sim/system.ts'
import { cli } from './cli.ts'
import { requirePart } from './skip.ts'

const hasCode = (code: string) => (error: unknown) => error instanceof BaseError && error.code === code

describe('the log note key on a PKCS#11 token', () => {
  let token: SoftHsmToken | undefined
  const dirs: string[] = []
  const tempDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'carchain-note-pkcs11-'))
    dirs.push(dir)
    return dir
  }
  before(async () => {
    if (softHsmAvailable) token = await createSoftHsmToken('carchain-node')
  })
  after(async () => {
    await token?.cleanup()
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
  })

  it('is made on first start, reused on restart, and signs checkpoints that verify with /v1/chain’s key', async (t) => {
    if (!requirePart(t, softHsmAvailable, 'SoftHSM2 is not installed')) return
    const dataDir = tempDir()
    const config = loadConfig({
      flags: { data: dataDir, port: 0, noSim: true, logOrigin: 'fleet.example/hsm-log' },
      env: {
        CARCHAIN_PKCS11_MODULE: token!.module,
        CARCHAIN_PKCS11_SLOT: String(token!.slot),
        CARCHAIN_PKCS11_PIN: token!.pin,
      },
    })
    const run = async () => {
      const messages: string[] = []
      const node = await startSystem({ config, progress: (message) => messages.push(message) })
      try {
        const chain = await (await fetch(`${node.url}/v1/chain`)).json()
        const note = await (await fetch(`${node.url}/log/checkpoint`)).text()
        const head = openCheckpointNote(note, chain.log.verifierKey)
        assert.equal(head.origin, 'fleet.example/hsm-log')
        return { verifierKey: chain.log.verifierKey as string, messages }
      } finally {
        await node.stop()
      }
    }
    const first = await run()
    assert.ok(
      first.messages.some((m) =>
        m.startsWith('made the log note key pkcs11:token=carchain-node;object=carchain-log-note'),
      ),
      first.messages.join('\n'),
    )
    assert.equal(existsSync(join(dataDir, NOTE_KEY_FILE)), false, 'no key file in the data dir')
    const second = await run()
    assert.equal(second.verifierKey, first.verifierKey, 'the restart signs with the same key')
    assert.ok(
      second.messages.some((m) => m.startsWith('log note key pkcs11:')),
      second.messages.join('\n'),
    )

    const store = await Pkcs11KeyStore.open({ module: token!.module, slot: token!.slot, pin: token!.pin })
    try {
      const ref = await store.find(NOTE_KEY_LABEL)
      assert.ok(ref)
      assert.equal(await store.privateKeyIsProtected(ref), true, 'sensitive and not extractable')
      const key = store.ed25519Key(NOTE_KEY_LABEL)
      assert.equal(key.created, false)
      assert.equal(verifierKey('fleet.example/hsm-log', key.publicKey), first.verifierKey)
    } finally {
      await store.close()
    }
  })

  it('signs with the token through the same signer interface as a file key', async (t) => {
    if (!requirePart(t, softHsmAvailable, 'SoftHSM2 is not installed')) return
    const options = { module: token!.module, slot: token!.slot, pin: token!.pin }
    const key = await openTokenNoteKey(options, tempDir(), 'fleet.example/hsm-unit')
    try {
      const note = signCheckpointNote({ treeSize: 7, rootHash: new Uint8Array(32).fill(7) }, key.signer)
      const head = openCheckpointNote(note, verifierKey(key.signer.name, key.signer.publicKey))
      assert.equal(head.treeSize, 7)
      // A different key of the same name is refused: the signature is the token's.
      const impostor = loadNoteKey(tempDir(), 'fleet.example/hsm-unit').signer
      assert.throws(
        () => openCheckpointNote(note, verifierKey(impostor.name, impostor.publicKey)),
        hasCode('NOTE_INVALID'),
      )
    } finally {
      await key.close()
    }
  })

  it('refuses to replace a data dir’s file key, or to make a key for a joining node', async (t) => {
    if (!requirePart(t, softHsmAvailable, 'SoftHSM2 is not installed')) return
    const fresh = await createSoftHsmToken('carchain-empty', '5678')
    try {
      await assert.rejects(
        openTokenNoteKey(
          { module: fresh.module, slot: fresh.slot, pin: fresh.pin },
          tempDir(),
          'fleet.example/joined',
          {
            mustExist: true,
          },
        ),
        hasCode('CONFIG_INVALID'),
        'a node joining a deployment (--join) does not make a key',
      )
      const dataDir = tempDir()
      loadNoteKey(dataDir, 'fleet.example/file-log')
      await assert.rejects(
        openTokenNoteKey(
          { module: fresh.module, slot: fresh.slot, pin: fresh.pin },
          dataDir,
          'fleet.example/file-log',
        ),
        hasCode('CONFIG_INVALID'),
      )
      const store = await Pkcs11KeyStore.open({ module: fresh.module, slot: fresh.slot, pin: fresh.pin })
      try {
        assert.equal(await store.find(NOTE_KEY_LABEL), undefined, 'no key was made')
      } finally {
        await store.close()
      }
    } finally {
      await fresh.cleanup()
    }
  })

  it('attack: refuses a wrong PIN and a key under the label that is not Ed25519', async (t) => {
    if (!requirePart(t, softHsmAvailable, 'SoftHSM2 is not installed')) return
    const fresh = await createSoftHsmToken('carchain-other', '4321')
    try {
      const options = { module: fresh.module, slot: fresh.slot, pin: fresh.pin }
      await assert.rejects(
        openTokenNoteKey({ ...options, pin: '0000' }, tempDir(), 'fleet.example/other'),
        hasCode('KEYSTORE_LOCKED'),
      )
      const store = await Pkcs11KeyStore.open(options)
      try {
        await store.generate('p256', NOTE_KEY_LABEL)
      } finally {
        await store.close()
      }
      await assert.rejects(
        openTokenNoteKey(options, tempDir(), 'fleet.example/other'),
        hasCode('KEYSTORE_CORRUPT'),
      )
    } finally {
      await fresh.cleanup()
    }
  })

  it('carchain witness keeps its cosigner key on the token: made on first start, reused, not extractable, cosignatures verify', async (t) => {
    if (!requirePart(t, softHsmAvailable, 'SoftHSM2 is not installed')) return
    // The tests before made (and removed) tokens of their own: SoftHSM2 reads this at C_Initialize.
    process.env.SOFTHSM2_CONF = token!.conf
    const options = { module: token!.module, slot: token!.slot, pin: token!.pin }
    const dataDir = tempDir()
    const log = loadNoteKey(tempDir(), 'fleet.example/witnessed').signer
    const logKey = verifierKey(log.name, log.publicKey)
    const start = () =>
      startWitness({ dataDir, name: 'witness.example/hsm', logs: [logKey], pkcs11: options })
    const first = await start()
    let verifierKeyText: string
    try {
      assert.equal(first.created, true)
      assert.equal(first.key, `pkcs11:token=carchain-node;object=${WITNESS_KEY_LABEL}`)
      assert.equal(existsSync(join(dataDir, WITNESS_KEY_FILE)), false, 'no key file in the data dir')
      verifierKeyText = first.witness.verifierKey
      const note = signCheckpointNote({ treeSize: 0, rootHash: createHash('sha256').digest() }, log)
      const answer = await fetch(`${first.url}/add-checkpoint`, {
        method: 'POST',
        body: addCheckpointBody(0, [], note),
      })
      assert.equal(answer.status, 200)
      const lines = verifyCosignatures(await answer.text(), noteTextOf(note), verifierKeyText)
      assert.equal(lines.length, 1, 'the token’s cosignature verifies with the witness’s verifier key')
    } finally {
      await first.stop()
    }
    const second = await start()
    try {
      assert.equal(second.created, false)
      assert.equal(second.witness.verifierKey, verifierKeyText, 'the restart cosigns with the same key')
    } finally {
      await second.stop()
    }
    const store = await Pkcs11KeyStore.open(options)
    try {
      const ref = await store.find(WITNESS_KEY_LABEL)
      assert.ok(ref)
      assert.equal(await store.privateKeyIsProtected(ref), true, 'sensitive and not extractable')
      assert.ok(await store.find(NOTE_KEY_LABEL), 'the node’s note key is another key on the same token')
    } finally {
      await store.close()
    }
  })

  it('attack: a witness whose data dir cosigns with witness-key.pem is refused a new token key; the CLI wants a PIN', async (t) => {
    if (!requirePart(t, softHsmAvailable, 'SoftHSM2 is not installed')) return
    const fresh = await createSoftHsmToken('carchain-witness-empty', '2468')
    try {
      const dataDir = tempDir()
      loadNoteKey(dataDir, 'witness.example/file', { file: WITNESS_KEY_FILE })
      await assert.rejects(
        startWitness({
          dataDir,
          name: 'witness.example/file',
          logs: [],
          pkcs11: { module: fresh.module, slot: fresh.slot, pin: fresh.pin },
        }),
        hasCode('CONFIG_INVALID'),
      )
      const store = await Pkcs11KeyStore.open({ module: fresh.module, slot: fresh.slot, pin: fresh.pin })
      try {
        assert.equal(await store.find(WITNESS_KEY_LABEL), undefined, 'no key was made')
      } finally {
        await store.close()
      }
      const noPin = await cli(
        'witness',
        '--name',
        'witness.example/cli',
        '--log',
        'x',
        '--data',
        tempDir(),
        '--pkcs11-module',
        fresh.module,
      )
      assert.equal(noPin.status, 2)
      assert.equal(noPin.json.code, 'CLI_USAGE')
    } finally {
      await fresh.cleanup()
    }
  })

  it('refuses a PKCS#11 module without a PIN', () => {
    assert.throws(
      () => loadConfig({ flags: {}, env: { CARCHAIN_PKCS11_MODULE: '/usr/lib/softhsm/libsofthsm2.so' } }),
      hasCode('CONFIG_INVALID'),
    )
    assert.throws(
      () =>
        loadConfig({
          flags: {},
          env: { CARCHAIN_PKCS11_MODULE: '/x.so', CARCHAIN_PKCS11_PIN: '1', CARCHAIN_PKCS11_SLOT: 'one' },
        }),
      hasCode('CONFIG_INVALID'),
    )
  })
})
