/**
 * The byte sizes of the ledger's formats (docs/ledger.md), one constant per fact. No imports, so
 * the dashboard (web/src) uses the same ones in the browser; `envelope.ts` exports them too.
 */

/** Bytes of a payload salt: `commit = SHA-256(salt ‖ JCS(data))`. */
export const SALT_BYTES = 16

/** Bytes of a raw P-256 signature r‖s (IEEE P1363), as a vehicle signs its checkpoints. */
export const SIGNATURE_BYTES = 64
