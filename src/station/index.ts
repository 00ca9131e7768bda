/**
 * The charging-station agent: tariff, simulated meter, voucher book, claims and its sessions view (docs/payments.md).
 * The public library surface for integrators (package export `carchain/station`).
 */

export * from './database-voucher-book.ts'
export * from './meter.ts'
export * from './routes.ts'
export * from './station.ts'
export * from './vouchers.ts'
