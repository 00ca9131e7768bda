/**
 * The ledger's public API (runtime exports per module): a change here is a change other parts
 * and integrators see, so it must show up in review. Update the list deliberately.
 */
import assert from 'node:assert/strict'
import { it } from 'node:test'

const expected: Record<string, string[]> = {
  bytes: ['equalBytes', 'fromBase64', 'fromHex', 'toBareHex', 'toBase64', 'toHex'],
  'data-grant': ['dataGrantTypedData', 'dataGrantTypes', 'recoverDataGrantSigner'],
  envelope: [
    'GENESIS_PREV',
    'P256_PUBLIC_KEY_BYTES',
    'SALT_BYTES',
    'SIGNATURE_BYTES',
    'buildEvent',
    'computeCommit',
    'createEventChain',
    'createPayload',
    'encodeEnvelope',
    'envelopeLeafHash',
    'eventId',
    'eventKinds',
    'isVehicleAddress',
    'odometerKm',
    'p256PublicKey',
    'parseEnvelope',
    'parseEnvelopeBytes',
    'parsePayload',
    'payloadToJson',
    'signCheckpoint',
    'verifyCheckpointSignature',
    'verifyP256',
    'verifyPayload',
  ],
  batch: ['MAX_BATCH_EVENTS', 'createBatch', 'parseBatch', 'verifyBatch'],
  ingest: ['createBatchIngester', 'ingestBatch'],
  jcs: ['JCS_MAX_DEPTH', 'canonicalize', 'canonicalizeToBytes'],
  'local-log': ['MAX_RECORD_BYTES', 'openLocalLog'],
  merkle: [
    'EMPTY_ROOT',
    'HASH_BYTES',
    'buildMerkleTree',
    'consistencyProofPlan',
    'foldNodes',
    'hashChildren',
    'hashLeaf',
    'inclusionProofPlan',
    'rangeNodes',
    'resolvePlan',
    'rootFromInclusionProof',
    'sha256',
    'splitPoint',
    'verifyConsistency',
    'verifyInclusion',
  ],
  'payload-access': [
    'MAX_GRANT_CLOCK_SKEW_MS',
    'OPEN_PERIOD_END_MS',
    'admitReader',
    'inPeriods',
    'payloadAccess',
    'recordTitleTransfers',
    'removeReader',
    'titlePeriods',
  ],
  store: [
    'MAX_ENTRIES_PAGE',
    'MAX_UNWRITTEN_EVIDENCE',
    'appendBatch',
    'appendBatches',
    'createLedgerStore',
    'erasePayload',
    'eraseVehicle',
    'getAlerts',
    'getCheckpoint',
    'getConsistencyProof',
    'getEntries',
    'getEvent',
    'getInclusionProof',
    'getPayload',
    'getRootAt',
    'getVehicleHead',
    'unwrittenEvidence',
    'writeUnwrittenEvidence',
  ],
  'vehicle-proof': ['parseVehicleProof', 'readVehicleSignature', 'verifyVehicleSignature'],
  verify: ['createDisclosure', 'verifyDisclosure', 'verifyEvent'],
}

it('the ledger modules export exactly the reviewed API', async () => {
  for (const [name, exports] of Object.entries(expected)) {
    const module = await import(`./${name}.ts`)
    assert.deepEqual(Object.keys(module).sort(), exports, name)
  }
})
