/**
 * Versioned migrations: `src/db/migrations/NNNN_name.sql`, applied in order, each in its own
 * transaction, recorded in `schema_migrations`. Several node processes may start at once against
 * one PostgreSQL: an advisory lock lets one migrate while the others wait.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { BaseError } from '../errors.ts'
import type { Database } from './database.ts'

export type Migration = { version: number; name: string; sql: string }

const migrationsDir = new URL('./migrations/', import.meta.url)
// Arbitrary but fixed: "carchain" in ASCII, as a 63-bit key for pg_advisory_lock.
const MIGRATION_LOCK_KEY = 0x636172636861696en

/** The migrations shipped with this version of Carchain, in order. */
export function loadMigrations(): Migration[] {
  return readdirSync(migrationsDir)
    .filter((file) => /^\d{4}_[a-z0-9_]+\.sql$/.test(file))
    .sort()
    .map((file) => ({
      version: Number(file.slice(0, 4)),
      name: file.slice(5, -4),
      sql: readFileSync(new URL(file, migrationsDir), 'utf8'),
    }))
}

export type MigrateReturnType = { applied: Migration[]; version: number }

/** Brings the schema up to date; refuses a database migrated by a newer Carchain. */
export async function migrate(db: Database, migrations = loadMigrations()): Promise<MigrateReturnType> {
  return db.transaction(async (tx) => {
    // Transaction-scoped: released on commit or rollback, also if this process dies.
    await tx.query('select pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY])
    await tx.exec(`create table if not exists schema_migrations (
      version integer primary key,
      name text not null,
      applied_at timestamptz not null default now()
    )`)
    const { rows } = await tx.query<{ version: number }>(
      'select version from schema_migrations order by version',
    )
    const done = new Set(rows.map((row) => row.version))
    const latest = migrations.at(-1)?.version ?? 0
    const newest = rows.at(-1)?.version ?? 0
    if (newest > latest) {
      throw new BaseError(
        'DB_SCHEMA_NEWER',
        `the database is at schema ${newest}; this Carchain knows up to ${latest}`,
        {
          details: { databaseVersion: newest, knownVersion: latest },
        },
      )
    }
    const applied: Migration[] = []
    for (const migration of migrations) {
      if (done.has(migration.version)) continue
      try {
        await tx.exec(migration.sql)
      } catch (error) {
        throw new BaseError(
          'DB_MIGRATION_FAILED',
          `migration ${migration.version}_${migration.name} failed`,
          {
            details: { version: migration.version, name: migration.name },
            cause: error,
          },
        )
      }
      await tx.query('insert into schema_migrations (version, name) values ($1, $2)', [
        migration.version,
        migration.name,
      ])
      applied.push(migration)
    }
    return { applied, version: Math.max(newest, latest) }
  })
}
