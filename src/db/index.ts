/**
 * The database: PGlite or PostgreSQL behind one interface, and the versioned migrations.
 * The public library surface for integrators (package export `carchain/db`).
 */
export * from './database.ts'
export * from './migrate.ts'
