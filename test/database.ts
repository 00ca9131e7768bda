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
  const schema = await freshSchema()
  const db = await openDatabase({ engine: 'postgres', url: schema.url, maxConnections: 4 })
  await migrate(db, migrations)
  const close = db.close
  return {
    ...db,
    async close() {
      await db.exec(`drop schema ${schema.name} cascade`)
      await close()
    },
  }
}

/**
 * A fresh schema on the PostgreSQL server of `DATABASE_URL`, and the URL whose connections use it
 * (for a node started on it); `drop` removes it.
 */
export async function freshSchema(): Promise<{ name: string; url: string; drop: () => Promise<void> }> {
  const name = `test_${randomBytes(6).toString('hex')}`
  const admin = () => openDatabase({ engine: 'postgres', url: process.env.DATABASE_URL!, maxConnections: 1 })
  const creator = await admin()
  await creator.exec(`create schema ${name}`)
  await creator.close()
  const url = new URL(process.env.DATABASE_URL!)
  url.searchParams.set('options', `-c search_path=${name}`)
  return {
    name,
    url: url.toString(),
    drop: async () => {
      const dropper = await admin()
      await dropper.exec(`drop schema ${name} cascade`)
      await dropper.close()
    },
  }
}
