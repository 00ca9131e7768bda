/**
 * Carchain's errors: one base class and one registry of stable codes.
 *
 * A code is part of the public contract (CLI exit output, HTTP `{code, message, details}`,
 * link `result.code`): never rename one; add new ones. Each entry says what the caller should do
 * next (`retryable`) and the HTTP status the node maps it to (read only by `src/node/`).
 */

/** How a failure should be treated by whoever sees it. */
export type ErrorCodeInfo = {
  /** HTTP status the node answers with. */
  readonly httpStatus: number
  /** The same call may succeed later without a change of input. */
  readonly retryable: boolean
  /** One line for docs and `carchain help errors`. */
  readonly summary: string
}

const code = (httpStatus: number, summary: string, retryable = false): ErrorCodeInfo => ({
  httpStatus,
  retryable,
  summary,
})

/** The registry: every code Carchain emits, grouped by domain. */
export const errorCodes = {
  // generic
  INTERNAL: code(500, 'An unexpected failure inside Carchain; a bug to report.'),
  INVALID_ARGUMENT: code(400, 'An argument or field is missing or malformed.'),
  NOT_FOUND: code(404, 'The thing asked for does not exist.'),
  UNAUTHENTICATED: code(401, 'The caller did not prove who it is.'),
  FORBIDDEN: code(403, 'The caller may not do this.'),
  RATE_LIMITED: code(429, 'Too many requests; slow down.', true),
  TIMEOUT: code(504, 'An operation did not finish in time.', true),
  SIWE_DOMAIN_MISMATCH: code(401, 'The sign-in message names another site than this node; sign in here.'),
  SIWE_CHAIN_MISMATCH: code(401, "The sign-in message names another chain than this node's."),
  SIWE_OUTSIDE_VALIDITY: code(401, 'The sign-in message is expired or not yet valid; sign a new one.'),
  // CLI and configuration
  CLI_USAGE: code(400, 'Unknown command or flag, or a flag value of the wrong form.'),
  CONFIG_INVALID: code(400, 'A configuration value (flag or environment variable) is invalid.'),
  DATA_DIR_INVALID: code(500, 'The data directory is unreadable, corrupt or from an incompatible version.'),
  DATA_DIR_LOCKED: code(409, 'Another Carchain process is using this data directory.', true),
  PORT_IN_USE: code(409, 'The port is already taken.', true),
  PASSPHRASE_REQUIRED: code(
    400,
    'A key store needs its passphrase from --passphrase or CARCHAIN_PASSPHRASE; the public development one serves only the embedded demo.',
  ),
  DEMO_FLEET_REFUSED: code(
    400,
    'The demo fleet registers development-mnemonic owners; on an external chain it runs only with --demo-fleet-on-external-chain.',
  ),
  DEVELOPMENT_KEY_REFUSED: code(
    400,
    'A publicly known development-mnemonic key may act only on the development chain (id 31337); set your own key.',
  ),
  // chain
  NODE_UNREACHABLE: code(503, 'The Carchain node does not answer.', true),
  CHAIN_UNREACHABLE: code(503, 'The Ethereum JSON-RPC endpoint does not answer.', true),
  CHAIN_START_FAILED: code(500, 'The embedded anvil process could not be started.'),
  CHAIN_MISMATCH: code(409, 'The chain is not the one the data directory was deployed to.'),
  CHAIN_TX_FAILED: code(502, 'A transaction reverted or was dropped.', true),
  DEPLOYMENT_FAILED: code(500, 'Deploying the contracts failed.'),
  DEPLOYMENT_OUTDATED: code(
    409,
    'The recorded contracts are from another version of Carchain; use a fresh data directory or chain.',
  ),
  DEPLOYMENT_MISSING: code(404, 'No Carchain contracts are deployed on this chain; run `carchain deploy`.'),
  ARTIFACTS_STALE: code(500, 'Generated contract artifacts are out of date; run `npm run generate`.'),
  TITLES_BEHIND: code(
    503,
    'The node has not indexed the vehicle’s latest title transfer yet; try again shortly.',
    true,
  ),
  // database
  DB_UNREACHABLE: code(503, 'The database does not answer.', true),
  DB_MIGRATION_FAILED: code(500, 'A database migration failed; nothing after it was applied.'),
  DB_SCHEMA_NEWER: code(500, 'The database was migrated by a newer Carchain.'),
  // identity
  KEYSTORE_LOCKED: code(401, 'The key store needs its passphrase or PIN.'),
  KEYSTORE_CORRUPT: code(500, 'The key store file or token is unreadable.'),
  KEY_NOT_FOUND: code(404, 'No key with this reference in the key store.'),
  PKCS11_FAILED: code(500, 'The PKCS#11 module reported an error.'),
  CERT_MALFORMED: code(400, 'The certificate is not valid PEM/DER X.509.'),
  CERT_UNSUPPORTED_KEY: code(400, 'The certificate key is not ECDSA P-256.'),
  CERT_EXPIRED: code(403, 'The certificate is past its notAfter.'),
  CERT_NOT_YET_VALID: code(403, 'The certificate is before its notBefore.'),
  CERT_UNTRUSTED: code(403, 'The chain does not lead to a trusted root of the expected role.'),
  CERT_BAD_SIGNATURE: code(403, 'A certificate signature does not verify.'),
  CERT_WRONG_ROLE: code(403, 'The certificate is not for the expected role.'),
  CERT_CONSTRAINTS: code(403, 'basicConstraints, pathLen or keyUsage is violated.'),
  CERT_REVOKED: code(403, 'The certificate is revoked (CRL or on-chain registry).'),
  CERT_TOO_LARGE: code(400, 'The certificate exceeds the size limit.'),
  CRL_INVALID: code(403, 'A CRL is malformed, not signed by the certificate issuer, or past its nextUpdate.'),
  COMPONENT_REJECTED: code(403, 'A component (ECU) failed authentication.'),
  VEHICLE_NOT_REGISTERED: code(403, 'The vehicle is not registered on chain.'),
  CHARGER_NOT_REGISTERED: code(403, 'The charger is not registered on chain.'),
  // ledger
  EVENT_MALFORMED: code(400, 'An event envelope or payload is malformed.'),
  EVENT_BAD_SIGNATURE: code(400, 'The checkpoint signature does not verify.'),
  EVENT_GAP: code(409, 'The batch does not continue the vehicle’s chain (missing seq).'),
  EVENT_FORK: code(409, 'The batch conflicts with events already accepted (kept as evidence).'),
  EVENT_TIME_REGRESSION: code(400, 'An event’s time is earlier than the previous one.'),
  ODOMETER_ROLLBACK: code(400, 'An odometer reading is lower than the last one (tamper alert).'),
  EVENT_VEHICLE_MISMATCH: code(403, 'The batch is for another vehicle.'),
  PAYLOAD_ERASED: code(410, 'The payload was erased.'),
  DATA_GRANT_STALE: code(
    409,
    'The DataGrant is not newer than one the node accepted for this reader or than its removal; sign a new one.',
  ),
  PROOF_INVALID: code(400, 'An inclusion or consistency proof does not verify.'),
  TREE_SIZE_INVALID: code(400, 'A tree size is beyond the log or out of order.'),
  ANCHOR_MISMATCH: code(409, 'The log does not match the root anchored on chain.'),
  SHARDS_MISMATCH: code(
    409,
    'The shard count differs from the one the deployment’s log was created with, or a vehicle’s events were sent to a shard it does not belong to.',
  ),
  LEDGER_PARTITION_MISSING: code(
    503,
    'The leaf table has no partition for the next leaves yet; the store makes it and tries again (retry).',
  ),
  LOG_CORRUPT: code(500, 'The local log file is damaged beyond its recoverable tail.'),
  LOG_UNTRUSTED: code(
    403,
    'The log named (by a bundle, or its operator on chain) is not the one the verifier pinned (--node, or --rpc with --contract, --log-id, --operator).',
  ),
  DISCLOSURE_UNSIGNED: code(
    400,
    'The disclosure carries no checkpoint signature and certificate of the vehicle; make a new one with `carchain ledger disclose`.',
  ),
  ANCHOR_LOG_TAKEN: code(
    409,
    'Another account operates this log id on LedgerAnchor, or the id is bound to another account; the node cannot anchor under it.',
  ),
  NOTE_INVALID: code(
    400,
    'A signed note (checkpoint) or verifier key is malformed, or carries no valid signature by the expected key.',
  ),
  TILE_TOO_LARGE: code(
    502,
    'A tiles server sent a checkpoint or tile larger than the C2SP formats allow; it is not read further. Use another copy of the tiles.',
  ),
  WITNESS_REFUSED: code(
    502,
    'A witness did not cosign the log’s checkpoint (unreachable, refused, or no valid cosignature); the checkpoint is published without its cosignature and submitted again with the next one.',
    true,
  ),
  WITNESS_LOG_UNKNOWN: code(
    404,
    'The witness is not configured for this log’s origin (`carchain witness --log`).',
  ),
  WITNESS_SIGNATURE_INVALID: code(
    403,
    'The checkpoint carries no valid signature by the key the witness trusts for its origin.',
  ),
  WITNESS_SIZE_CONFLICT: code(
    409,
    'The old size is not the size the witness last cosigned for this log; the body names that size, send the proof from there.',
  ),
  WITNESS_INCONSISTENT: code(
    422,
    'The checkpoint is not consistent with what the witness cosigned: a bad consistency proof, or another root for the same size (a fork).',
  ),
  ACK_INVALID: code(
    502,
    'The node’s acknowledgement of a batch is not signed by the configured node or not for that batch; the car keeps the events and sends them again.',
    true,
  ),
  // digital keys (also the link's `result.code`)
  GRANT_BAD_SIGNATURE: code(403, 'The grant is not signed by the vehicle’s owner or a manager.'),
  GRANT_WRONG_VEHICLE: code(403, 'The grant is for another vehicle.'),
  GRANT_EPOCH: code(403, 'The grant is from an old epoch (revokeAll or a sale voided it).'),
  GRANT_REVOKED: code(403, 'The grant was revoked.'),
  GRANT_NOT_YET_VALID: code(403, 'The grant is not valid yet.'),
  GRANT_EXPIRED: code(403, 'The grant has expired.'),
  GRANT_SCOPE: code(403, 'The action is outside the grant’s scopes.'),
  GRANT_USED_UP: code(403, 'The grant has no uses left.'),
  REQUEST_BAD_SIGNATURE: code(403, 'The access request is not signed by the grantee.'),
  CHALLENGE_UNKNOWN: code(403, 'The challenge is unknown or already used.'),
  CHALLENGE_EXPIRED: code(403, 'The answer came too late (relay-attack bound).'),
  RENTAL_NOT_ACTIVE: code(403, 'The signer is not the title’s current ERC-4907 user.'),
  PASSKEY_CLIENT_DATA: code(
    403,
    'The WebAuthn client data is malformed or not from navigator.credentials.get (type "webauthn.get").',
  ),
  PASSKEY_RP_MISMATCH: code(
    403,
    'The passkey answered for another relying party (RP ID) than the grant names.',
  ),
  PASSKEY_USER_ABSENT: code(
    403,
    'The authenticator did not report the user present (UP), or verified (UV) where the car requires it.',
  ),
  PASSKEY_ORIGIN: code(403, 'The WebAuthn assertion was made on a web origin the car does not accept.'),
  PASSKEY_COUNTER: code(
    403,
    'The passkey’s signature counter did not increase: a cloned authenticator or a replayed assertion.',
  ),
  GRANT_EXISTS: code(409, 'The node already keeps another grant with this grantId for the vehicle.'),
  KEYS_NOT_SYNCED: code(
    503,
    'The car has not yet read its owner, managers and revocations from the chain; try again once it has been online.',
    true,
  ),
  KEYS_STALE: code(
    503,
    'The car has been offline past its staleness bound: only keys signed by the owner open it until it syncs again.',
    true,
  ),
  // payments and charging
  POLICY_DENIED: code(403, 'The owner’s wallet policy refuses this payment.'),
  TARIFF_INVALID: code(400, 'The tariff is unsigned, expired or above the policy’s price.'),
  METER_INVALID: code(400, 'A meter reading is unsigned or does not add up.'),
  VOUCHER_INVALID: code(400, 'A voucher is unsigned, for another channel, stale or above the deposit.'),
  CHANNEL_STATE: code(409, 'The channel is not in a state that allows this.'),
  INSUFFICIENT_FUNDS: code(402, 'The wallet or channel does not hold enough.'),
  PEER_CLOSED: code(502, 'The other side of a session closed the connection or stopped answering.', true),
  CHANNEL_BUSY: code(
    409,
    'Another session is open on this channel at this operator; start again when it ended.',
    true,
  ),
  PAYER_NOT_PEER: code(403, 'The channel’s payer is not the wallet the car’s certificate binds.'),
  // OCPP 2.0.1 (docs/ocpp.md)
  OCPP_NOT_AUTHORIZED: code(
    403,
    'The CSMS did not authorize the car’s IdToken (no registered vehicle, no open funded channel to this operator); its status in details.',
  ),
  OCPP_BOOT_REJECTED: code(403, 'The CSMS refused the station (handshake or BootNotification).'),
  OCPP_CALL_FAILED: code(
    502,
    'An OCPP call between station and CSMS failed: a CALLERROR (its OCPP error code in details) or no answer.',
    true,
  ),
  OCPP_STATION_OFFLINE: code(409, 'The charging station is not connected to this CSMS.', true),
  // NFC (docs/nfc.md)
  NFC_UNAVAILABLE: code(503, 'No PC/SC service (pcscd) or no reader: NFC is off on this machine.', true),
  NFC_NO_CARD: code(504, 'No card came into the reader’s field in time.', true),
  NFC_CARD_REMOVED: code(
    409,
    'The card left the field before the exchange finished; nothing was paid.',
    true,
  ),
  NFC_REFUSED: code(403, 'The card answered a command with a refusal status word (details.sw).'),
  NFC_BAD_DATA: code(400, 'A command to the card is malformed (the card answers 6A80).'),
  NFC_PROTOCOL: code(502, 'The card’s answer does not follow docs/nfc.md.'),
} as const satisfies Record<string, ErrorCodeInfo>

/** A stable error code. */
export type ErrorCode = keyof typeof errorCodes

export type BaseErrorParameters = {
  /** Structured context for machines (offending values). Must be JSON-serialisable. */
  details?: Record<string, unknown> | undefined
  /** The lower-level error that caused this one. */
  cause?: unknown
}

/**
 * The one error class Carchain throws. `shortMessage` is the one-line human message;
 * `code` is stable; `details` holds the offending values.
 */
export class BaseError extends Error {
  override name = 'CarchainError'
  readonly code: ErrorCode
  readonly shortMessage: string
  readonly details: Record<string, unknown>

  constructor(code: ErrorCode, shortMessage: string, parameters: BaseErrorParameters = {}) {
    super(shortMessage, parameters.cause === undefined ? undefined : { cause: parameters.cause })
    this.code = code
    this.shortMessage = shortMessage
    this.details = parameters.details ?? {}
  }

  /** Whether retrying the same call may succeed. */
  get retryable(): boolean {
    return errorCodes[this.code].retryable
  }

  /** The `{code, message, details}` shape of the HTTP API and `--json` output. */
  toJSON(): { code: ErrorCode; message: string; details: Record<string, unknown> } {
    return { code: this.code, message: this.shortMessage, details: this.details }
  }
}

/** Wraps anything thrown into a BaseError, keeping a BaseError as it is. */
export function toBaseError(error: unknown, fallback: ErrorCode = 'INTERNAL'): BaseError {
  if (error instanceof BaseError) return error
  const message = error instanceof Error ? error.message : String(error)
  return new BaseError(fallback, message, { cause: error })
}

/** Type guard for a BaseError with a given code. */
export function isErrorCode(error: unknown, code: ErrorCode): error is BaseError {
  return error instanceof BaseError && error.code === code
}
