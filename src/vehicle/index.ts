/**
 * The in-car agent: the vehicle model, the agent composing keys, link and ledger, and the ledger uploader.
 * The public library surface for integrators (package export `carchain/vehicle`).
 */

export * from './agent.ts'
export * from './ledger.ts'
export * from './vehicle-model.ts'
