import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { engines, freshDatabase } from '../../test/database.ts'
import { BaseError } from '../errors.ts'
import { openDatabase } from './database.ts'
import { loadMigrations, migrate } from './migrate.ts'

for (const engine of engines) {
  describe(`database on ${engine}`, () => {
    test('maps int8 to bigint, bytea to Uint8Array and rolls back a failed transaction', async () => {
      const db = await freshDatabase(engine)
      try {
        await db.exec('create table t (n int8, b bytea)')
        await db.query('insert into t values ($1, $2)', [2n ** 60n, new Uint8Array([1, 2, 3])])
        const { rows } = await db.query<{ n: bigint; b: Uint8Array }>('select n, b from t')
        assert.equal(rows[0]!.n, 2n ** 60n)
        assert.deepEqual([...rows[0]!.b], [1, 2, 3])
        await assert.rejects(
          db.transaction(async (tx) => {
            await tx.query('insert into t values (1, null)')
            throw new Error('boom')
          }),
          /boom/,
        )
        const count = await db.query<{ c: bigint }>('select count(*)::int8 as c from t')
        assert.equal(count.rows[0]!.c, 1n)
      } finally {
        await db.close()
      }
    })

    test('migrations are idempotent and recorded', async () => {
      const db = await freshDatabase(engine)
      try {
        const again = await migrate(db)
        assert.deepEqual(again.applied, [])
        assert.equal(again.version, loadMigrations().at(-1)!.version)
      } finally {
        await db.close()
      }
    })

    test('refuses a database migrated by a newer Carchain', async () => {
      const db = await freshDatabase(engine)
      try {
        await db.query("insert into schema_migrations (version, name) values (9999, 'future')")
        await assert.rejects(
          migrate(db),
          (error: unknown) => error instanceof BaseError && error.code === 'DB_SCHEMA_NEWER',
        )
      } finally {
        await db.close()
      }
    })

    test('a failing migration leaves nothing applied', async () => {
      const db = await freshDatabase(engine)
      try {
        const migrations = [
          ...loadMigrations(),
          { version: 9000, name: 'broken', sql: 'create table ok (x int); select nope;' },
        ]
        await assert.rejects(
          migrate(db, migrations),
          (error: unknown) => error instanceof BaseError && error.code === 'DB_MIGRATION_FAILED',
        )
        const { rows } = await db.query("select to_regclass('ok') as t")
        assert.equal(rows[0]!.t, null)
      } finally {
        await db.close()
      }
    })
  })
}

test('PGlite data persists across reopen of the same directory', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'carchain-db-'))
  try {
    const first = await openDatabase({ engine: 'pglite', dataDir: dir })
    await migrate(first)
    await first.query(`insert into node_settings (key, value) values ('k', '"v"')`)
    await first.close()
    const second = await openDatabase({ engine: 'pglite', dataDir: dir })
    const { rows } = await second.query<{ value: string }>("select value from node_settings where key = 'k'")
    assert.equal(rows[0]!.value, 'v')
    await second.close()
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('an unreachable PostgreSQL gives DB_UNREACHABLE with the password redacted', async () => {
  await assert.rejects(
    openDatabase({ engine: 'postgres', url: 'postgres://u:secret@127.0.0.1:1/x' }),
    (error: unknown) =>
      error instanceof BaseError && error.code === 'DB_UNREACHABLE' && !error.message.includes('secret'),
  )
})

test('a corrupt PGlite directory gives DATA_DIR_INVALID', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'carchain-db-'))
  try {
    writeFileSync(join(dir, 'PG_VERSION'), 'garbage')
    await assert.rejects(
      openDatabase({ engine: 'pglite', dataDir: dir }),
      (error: unknown) => error instanceof BaseError && error.code === 'DATA_DIR_INVALID',
    )
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
