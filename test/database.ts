/**
 * The database fixtures: every store suite runs on PGlite always, and on the PostgreSQL server
 * when `DATABASE_URL` is set (CI sets it), each test on a fresh schema.
 */
import { randomBytes } from 'node:crypto'
import { type Database, openDatabase } from '../src/db/database.ts'
import { type Migration, migrate } from '../src/db/migrate.ts'

export type Engine = 'pglite' | 'postgres'

/** The engines to run store suites on here. */
export const engines: Engine[] = process.env.DATABASE_URL ? ['pglite', 'postgres'] : ['pglite']

/**
 * A migrated, empty database on `engine` (`migrations`: only these, e.g. to test a later
 * migration on older data). PostgreSQL: a fresh schema (dropped on close), so tests never see
 * each other's rows.
 */
export async function freshDatabase(engine: Engine, migrations?: Migration[]): Promise<Database> {
  if (engine === 'pglite') {
    const db = await openDatabase({ engine: 'pglite' })
    await migrate(db, migrations)
    return db
  }
  const schema = `test_${randomBytes(6).toString('hex')}`
  const admin = await openDatabase({ engine: 'postgres', url: process.env.DATABASE_URL!, maxConnections: 1 })
  await admin.exec(`create schema ${schema}`)
  await admin.close()
  const url = new URL(process.env.DATABASE_URL!)
  url.searchParams.set('options', `-c search_path=${schema}`)
  const db = await openDatabase({ engine: 'postgres', url: url.toString(), maxConnections: 4 })
  await migrate(db, migrations)
  const close = db.close
  return {
    ...db,
    async close() {
      await db.exec(`drop schema ${schema} cascade`)
      await close()
    },
  }
}
