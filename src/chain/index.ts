/**
 * The chain: the embedded anvil, viem clients, deployment and the generated contract ABIs.
 * The public library surface for integrators (package export `carchain/chain`).
 */
export * from './anvil.ts'
export * from './clients.ts'
export * from './deploy.ts'
export * from './generated/index.ts'
