/**
 * The log's checkpoint as a C2SP signed note (c2sp.org/signed-note, c2sp.org/tlog-checkpoint),
 * signed with an Ed25519 note key — the form Go's checksum database, Sunlight, Tessera and the
 * witness network read. This module is the signing side, which needs the key (node:crypto or
 * PKCS#11); parsing and verifying are src/ledger/signed-note.ts, which the dashboard runs too, and
 * are re-exported here. docs/transparency.md shows the bytes.
 */
import { createPrivateKey, createPublicKey, type KeyObject, sign } from 'node:crypto'
import { BaseError } from '../errors.ts'
import {
  type CheckpointNote,
  COSIGNATURE_BYTES,
  COSIGNATURE_TYPE,
  checkLogOrigin,
  checkpointNoteText,
  cosignedMessage,
  noteBase64,
  noteKeyId,
} from './signed-note.ts'

export {
  type CheckpointNote,
  COSIGNATURE_TYPE,
  checkLogOrigin,
  checkpointNoteText,
  MAX_NOTE_BYTES,
  type NoteVerifier,
  noteKeyId,
  noteTextOf,
  openCheckpointNote,
  openNote,
  parseCheckpointText,
  parseVerifierKey,
  verifierKey,
  verifyCosignatures,
} from './signed-note.ts'

/**
 * An Ed25519 note key: `sign` makes the 64-byte Ed25519 signature of a message, the name and
 * public key identify it. The key itself stays wherever `sign` reaches it: a KeyObject
 * (`noteSigner`) or a PKCS#11 token (src/identity/pkcs11-note-key.ts).
 */
export type NoteSigner = {
  readonly name: string
  readonly publicKey: Uint8Array
  readonly sign: (message: Uint8Array) => Uint8Array
}

/** The raw 32-byte public key of an Ed25519 KeyObject (private or public). */
export function ed25519PublicKey(key: KeyObject): Uint8Array {
  const jwk = (key.type === 'private' ? createPublicKey(key) : key).export({ format: 'jwk' })
  if (jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string')
    throw new BaseError('INVALID_ARGUMENT', 'the note key is not an Ed25519 key')
  return new Uint8Array(Buffer.from(jwk.x, 'base64url'))
}

/** A signer named `name` from an Ed25519 private key (PKCS#8 PEM or KeyObject). */
export function noteSigner(name: string, privateKey: KeyObject | string): NoteSigner {
  checkLogOrigin(name)
  const key = typeof privateKey === 'string' ? createPrivateKey(privateKey) : privateKey
  return {
    name,
    publicKey: ed25519PublicKey(key),
    sign: (message) => new Uint8Array(sign(null, message, key)),
  }
}

/** Signs `text` (which must end in a newline) and returns the signed note. */
export function signNote(text: string, signer: NoteSigner): string {
  if (!text.endsWith('\n')) throw new BaseError('INVALID_ARGUMENT', 'a note text ends with a newline')
  const signature = signer.sign(new TextEncoder().encode(text))
  const blob = new Uint8Array(4 + signature.length)
  blob.set(noteKeyId(signer.name, signer.publicKey), 0)
  blob.set(signature, 4)
  return `${text}\n— ${signer.name} ${noteBase64(blob)}\n`
}

/** The signed checkpoint (c2sp.org/tlog-checkpoint) of a tree head. */
export function signCheckpointNote(checkpoint: Omit<CheckpointNote, 'origin'>, signer: NoteSigner): string {
  return signNote(checkpointNoteText({ ...checkpoint, origin: signer.name }), signer)
}

/**
 * A witness's cosignature line on a checkpoint's note text, timestamped `timestamp` (POSIX
 * seconds, > 0): `— <name> base64(key id ‖ u64 big-endian timestamp ‖ Ed25519 signature)\n`, the
 * key id of type 0x04.
 */
export function cosignatureLine(checkpointText: string, timestamp: number, signer: NoteSigner): string {
  if (!Number.isSafeInteger(timestamp) || timestamp < 1)
    throw new BaseError('INVALID_ARGUMENT', 'a cosignature timestamp is a positive number of seconds')
  const blob = new Uint8Array(COSIGNATURE_BYTES)
  blob.set(noteKeyId(signer.name, signer.publicKey, COSIGNATURE_TYPE), 0)
  new DataView(blob.buffer).setBigUint64(4, BigInt(timestamp))
  blob.set(signer.sign(cosignedMessage(checkpointText, timestamp)), 12)
  return `— ${signer.name} ${noteBase64(blob)}\n`
}
