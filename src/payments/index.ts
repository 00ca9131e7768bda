/**
 * Payments: typed data, pricing, the car wallet and its policy, channels, charging sessions and one-shot payments (docs/payments.md).
 * The public library surface for integrators (package export `carchain/payments`).
 */

export * from './channels.ts'
export * from './charger-check.ts'
export * from './pay.ts'
export * from './permit.ts'
export * from './pricing.ts'
export * from './protocol.ts'
export * from './session.ts'
export * from './transport.ts'
export * from './typed-data.ts'
export * from './verify-voucher.ts'
export * from './wallet.ts'
