/**
 * One SQL interface over the two engines Carchain runs on: PGlite (real Postgres compiled to
 * WASM, in the data dir) for one machine, and a PostgreSQL server (`DATABASE_URL`) at scale.
 * Both speak the same dialect and run the same migrations.
 *
 * Value types are the same on both: int8 → bigint, bytea → Uint8Array, timestamptz → Date,
 * numeric → string.
 */
import { PGlite, types as pgliteTypes } from '@electric-sql/pglite'
import pg from 'pg'
import { from as copyFromStdin } from 'pg-copy-streams'
import { BaseError } from '../errors.ts'
import { logger } from '../log.ts'

const log = logger('db')

/** Something SQL can be sent to: the database itself or an open transaction. */
export type Queryable = {
  /** One statement with `$1…` parameters. */
  query<Row = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<{ rows: Row[] }>
  /** Several statements, no parameters (migrations). */
  exec(sql: string): Promise<void>
  /**
   * `COPY target FROM … (format binary)`: bulk-loads rows given in PostgreSQL's binary COPY format
   * (`copy-binary.ts` writes it). `target` is a table and its columns, e.g. `t (a, b)`. Resolves
   * with the number of rows loaded.
   */
  copyFrom(target: string, data: Uint8Array): Promise<number>
}

export type Database = Queryable & {
  readonly engine: 'pglite' | 'postgres'
  /** Runs `fn` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>
  close(): Promise<void>
}

export type OpenDatabaseParameters =
  | {
      engine: 'pglite' /** Directory for the PGlite files; omitted: in memory. */
      dataDir?: string | undefined
    }
  | { engine: 'postgres'; url: string /** Pool size (default 10). */; maxConnections?: number }

/** Opens the database; does not migrate (see `migrate`). */
export async function openDatabase(parameters: OpenDatabaseParameters): Promise<Database> {
  return parameters.engine === 'pglite'
    ? openPglite(parameters.dataDir)
    : openPostgres(parameters.url, parameters.maxConnections ?? 10)
}

async function openPglite(dataDir: string | undefined): Promise<Database> {
  let db: PGlite
  try {
    db = await PGlite.create(dataDir ?? 'memory://', {
      parsers: {
        [pgliteTypes.INT8]: (value: string) => BigInt(value),
        [pgliteTypes.NUMERIC]: (value: string) => value,
      },
    })
  } catch (error) {
    throw new BaseError('DATA_DIR_INVALID', `cannot open the embedded database in ${dataDir}`, {
      details: { dataDir },
      cause: error,
    })
  }
  const wrap = (q: Pick<PGlite, 'query' | 'exec'>): Queryable => ({
    query: async <Row>(sql: string, params: readonly unknown[] = []) => {
      const result = await q.query<Row>(sql, params as unknown[])
      return { rows: result.rows }
    },
    exec: async (sql: string) => {
      await q.exec(sql)
    },
    // PGlite reads COPY input from its virtual /dev/blob device, filled from the `blob` option.
    copyFrom: async (target: string, data: Uint8Array) => {
      const result = await q.query(`copy ${target} from '/dev/blob' with (format binary)`, [], {
        blob: new Blob([data as Uint8Array<ArrayBuffer>]),
      })
      return result.affectedRows ?? 0
    },
  })
  return {
    engine: 'pglite',
    ...wrap(db),
    transaction: (fn) => db.transaction((tx) => fn(wrap(tx))),
    close: () => db.close(),
  }
}

const pgTypes = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === 20) return (value: string) => BigInt(value)
    return pg.types.getTypeParser(oid, format)
  },
}

async function openPostgres(url: string, maxConnections: number): Promise<Database> {
  const pool = new pg.Pool({
    connectionString: url,
    max: maxConnections,
    types: pgTypes as pg.CustomTypesConfig,
  })
  // An idle client losing its server must not crash the process; the next query reports it.
  pool.on('error', (error) =>
    log.warn({ err: error, url: redactUrl(url) }, 'an idle PostgreSQL connection failed'),
  )
  const redacted = redactUrl(url)
  const unreachable = (error: unknown) =>
    new BaseError('DB_UNREACHABLE', `cannot reach PostgreSQL at ${redacted}: ${(error as Error).message}`, {
      details: { url: redacted },
      cause: error,
    })
  try {
    await pool.query('select 1')
  } catch (error) {
    await pool
      .end()
      .catch((endError: unknown) => log.warn({ err: endError }, 'closing the PostgreSQL pool failed'))
    throw unreachable(error)
  }
  const wrap = (q: pg.Pool | pg.PoolClient): Queryable => ({
    query: async <Row>(sql: string, params: readonly unknown[] = []) => {
      try {
        const result = await q.query(sql, params as unknown[])
        return { rows: result.rows as Row[] }
      } catch (error) {
        throw isConnectionError(error) ? unreachable(error) : error
      }
    },
    exec: async (sql: string) => {
      try {
        await q.query(sql)
      } catch (error) {
        throw isConnectionError(error) ? unreachable(error) : error
      }
    },
    copyFrom: async (target: string, data: Uint8Array) => {
      const client =
        'release' in q ? q : await q.connect().catch((error) => Promise.reject(unreachable(error)))
      let lost: Error | undefined
      try {
        const stream = client.query(copyFromStdin(`copy ${target} from stdin with (format binary)`))
        await new Promise<void>((resolve, reject) => {
          stream.on('error', reject)
          stream.on('finish', resolve)
          stream.end(data)
        })
        return stream.rowCount
      } catch (error) {
        if (!isConnectionError(error)) throw error
        lost = error as Error
        throw unreachable(error)
      } finally {
        if (client !== q) client.release(lost)
      }
    },
  })
  return {
    engine: 'postgres',
    ...wrap(pool),
    async transaction(fn) {
      let client: pg.PoolClient
      try {
        client = await pool.connect()
      } catch (error) {
        throw unreachable(error)
      }
      let lost: Error | undefined
      // A checked-out client has no pool listener: a connection dying between two statements
      // would be an 'error' event nobody handles, which ends the process. The next statement
      // reports it instead.
      const onError = (error: Error) => {
        lost = error
      }
      client.on('error', onError)
      try {
        await client.query('begin')
        const result = await fn(wrap(client))
        await client.query('commit')
        return result
      } catch (error) {
        await client
          .query('rollback')
          .catch((rollbackError: unknown) =>
            log.warn({ err: rollbackError }, 'rollback failed; the connection is checked below'),
          )
        const cause = error instanceof BaseError ? error.cause : error
        if (!isConnectionError(cause)) throw error
        // The connection died (begin, a statement or commit): a retryable DB_UNREACHABLE, and the
        // client is discarded rather than handed to the next caller. A lost commit may have
        // succeeded; callers re-send idempotently.
        lost = cause as Error
        throw error instanceof BaseError ? error : unreachable(error)
      } finally {
        client.off('error', onError)
        client.release(lost)
      }
    },
    close: () => pool.end(),
  }
}

function isConnectionError(error: unknown): boolean {
  if (!(error instanceof Error)) return false
  // pg reports a connection closed under a query without a code.
  if (/^Connection terminated/.test(error.message)) return true
  const code = (error as { code?: string }).code ?? ''
  return [
    'ECONNREFUSED',
    'ECONNRESET',
    'ETIMEDOUT',
    'EPIPE',
    '57P01',
    '57P02',
    '57P03',
    '08006',
    '08001',
  ].includes(code)
}

/** The URL without its password, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.password) parsed.password = '***'
    return parsed.toString()
  } catch {
    return '<unparseable url>'
  }
}
