/** Export snapshot: any change of the payments and station public API shows up in review here. */
import assert from 'node:assert/strict'
import { test } from 'node:test'

const expected: Record<string, string[]> = {
  'payments/typed-data': [
    'describeValue',
    'meterReadingDigest',
    'meterReadingTypes',
    'paymentsDomain',
    'readAddress',
    'readAmount',
    'readBytes32',
    'readSignature',
    'readUint64',
    'recoverVoucherSigner',
    'signMeterReading',
    'signTariff',
    'signVoucher',
    'tariffDigest',
    'tariffFromJson',
    'tariffToJson',
    'tariffTypes',
    'verifyMeterReading',
    'verifyTariff',
    'voucherDigest',
    'voucherFromJson',
    'voucherToJson',
    'voucherTypes',
  ],
  'payments/pricing': ['ZERO_BASE', 'minAmount', 'plausibleEnergyWh', 'sessionCost', 'voucherFor'],
  'payments/permit': ['permitTypes', 'readPermitDomain', 'readPermitNonce', 'signPermit'],
  'payments/wallet': ['createCarWallet', 'isPolicyDenied', 'openCarWallet'],
  'payments/charger-check': ['createChargerChecker', 'evseIdHash'],
  'payments/channels': [
    'channelIdOf',
    'channelKeyOf',
    'claimVoucher',
    'closeChannel',
    'ensureChannel',
    'openChannel',
    'readChannel',
    'reclaimChannel',
    'toChannelError',
    'topUpChannel',
  ],
  'payments/protocol': [
    'PROTOCOL_VERSION',
    'isOkStop',
    'parseOffer',
    'parseReading',
    'parseStart',
    'parseVoucher',
    'sendStop',
    'stopError',
    'stopMessage',
  ],
  'payments/transport': ['memoryTransportPair', 'ndjsonTransport', 'tlsTransport'],
  'payments/session': ['runChargingSession'],
  'payments/verify-voucher': ['createVoucherVerifier'],
  'identity/secp256k1-fixed': ['fixedTable', 'invertMod', 'verifyRecoverable', 'verifyRecoverableBatch'],
  'payments/pay': ['pay', 'redeemPaymentPermit', 'signPaymentPermit'],
  'payments/gas': ['measureChargingGas', 'measureVoucherVerification'],
  'station/station': ['createChargingStation'],
  'station/meter': ['simulatedMeter', 'virtualClock'],
  'station/vouchers': ['channelBusy', 'claimPending', 'fileVoucherBook', 'memoryVoucherBook'],
  'station/database-voucher-book': ['databaseVoucherBook'],
  'station/routes': ['chargingRoutes', 'sessionToJson'],
}

test('the public API of src/payments and src/station', async () => {
  for (const [path, names] of Object.entries(expected)) {
    const module = (await import(`../${path}.ts`)) as Record<string, unknown>
    assert.deepEqual(Object.keys(module).sort(), names, path)
  }
})
