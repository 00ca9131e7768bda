/**
 * The ledger: envelopes (RFC 8785), the RFC 9162 Merkle log, the store, ingest, anchoring and verification (docs/ledger.md).
 * The public library surface for integrators (package export `carchain/ledger`).
 */

export * from './ack.ts'
export * from './anchor.ts'
export * from './batch.ts'
export * from './bytes.ts'
export * from './data-grant.ts'
export * from './envelope.ts'
export * from './ingest.ts'
export * from './jcs.ts'
export * from './local-log.ts'
export * from './merkle.ts'
export * from './note.ts'
export * from './payload-access.ts'
export * from './shards.ts'
export * from './store.ts'
export * from './tiles.ts'
export * from './tiles-verify.ts'
export * from './timeline.ts'
export * from './topics.ts'
export * from './vehicle-proof.ts'
export * from './verify.ts'
