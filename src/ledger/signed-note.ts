/**
 * C2SP signed notes (c2sp.org/signed-note) and checkpoints (c2sp.org/tlog-checkpoint) as pure
 * code, the same in Node and in the browser (no node:* import, no Buffer): verifier keys, key ids,
 * opening a note with a verifier key (Ed25519 by @noble/curves, RFC 8032 strict), checkpoint
 * texts, and witness cosignatures (c2sp.org/tlog-cosignature). Signing needs the note key, which
 * only the node holds: src/ledger/note.ts. docs/transparency.md shows the bytes.
 *
 *     <origin>\n<tree size, decimal>\n<base64 root hash>\n
 *     \n
 *     — <key name> <base64(4-byte key id ‖ 64-byte Ed25519 signature)>\n
 *
 * key id = SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ 32-byte public key)[:4]; the verifier key is the text
 * `<key name>+<8 hex key id>+<base64(0x01 ‖ public key)>`. The key name is the origin.
 */
import { ed25519 } from '@noble/curves/ed25519.js'
import { BaseError } from '../errors.ts'
import { equalBytes } from './bytes.ts'
import { HASH_BYTES, portableMerkle } from './rfc9162.ts'

/** The signed-note signature type of Ed25519 (c2sp.org/signed-note "Signature types"). */
const ED25519_TYPE = 0x01
const ED25519_PUBLIC_BYTES = 32
const ED25519_SIGNATURE_BYTES = 64
/** A note larger than this is refused before parsing (a checkpoint with 16 signatures is ~2 KiB). */
export const MAX_NOTE_BYTES = 16 * 1024
/** Origins and key names: printable ASCII, no space, no '+' (signed-note key names), ≤ 255 bytes. */
const ORIGIN_PATTERN = /^[!-*,-~]{1,255}$/
const BASE64_PATTERN = /^[A-Za-z0-9+/]*={0,2}$/

const utf8 = new TextEncoder()

function invalid(message: string, details: Record<string, unknown> = {}): BaseError {
  return new BaseError('NOTE_INVALID', message, { details })
}

/** Standard base64 of `bytes` (small inputs: keys, signatures, roots). */
export function noteBase64(bytes: Uint8Array): string {
  let binary = ''
  for (const byte of bytes) binary += String.fromCharCode(byte)
  return btoa(binary)
}

const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')

/** Ed25519 verification, RFC 8032 strict (no ZIP-215 leniency), as OpenSSL and Go's crypto/ed25519. */
function ed25519Verifies(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  if (signature.length !== ED25519_SIGNATURE_BYTES || publicKey.length !== ED25519_PUBLIC_BYTES) return false
  try {
    return ed25519.verify(signature, message, publicKey, { zip215: false })
  } catch {
    // A public key or R that is not a curve point: no signature verifies under it.
    return false
  }
}

/** Throws CONFIG_INVALID unless `origin` can be a checkpoint origin and a note key name. */
export function checkLogOrigin(origin: string): string {
  if (!ORIGIN_PATTERN.test(origin))
    throw new BaseError(
      'CONFIG_INVALID',
      `the log origin must be 1–255 printable ASCII characters without spaces or '+', e.g. fleet.example/log; got ${JSON.stringify(origin.slice(0, 300))}`,
      { details: { origin: origin.slice(0, 300) } },
    )
  return origin
}

function decodeBase64(value: string, what: string): Uint8Array {
  if (!BASE64_PATTERN.test(value) || value.length % 4 !== 0) throw invalid(`${what} is not base64`)
  const bytes = Uint8Array.from(atob(value), (c) => c.charCodeAt(0))
  // Only the canonical encoding: one byte string, one text.
  if (noteBase64(bytes) !== value) throw invalid(`${what} is not canonical base64`)
  return bytes
}

/**
 * The 4-byte key id of an Ed25519 key: SHA-256(name ‖ 0x0A ‖ type ‖ public key)[:4], type 0x01 for
 * a note key, 0x04 for a cosigner (witness) key.
 */
export function noteKeyId(name: string, publicKey: Uint8Array, type: number = ED25519_TYPE): Uint8Array {
  const nameBytes = utf8.encode(name)
  const input = new Uint8Array(nameBytes.length + 2 + publicKey.length)
  input.set(nameBytes, 0)
  input[nameBytes.length] = 0x0a
  input[nameBytes.length + 1] = type
  input.set(publicKey, nameBytes.length + 2)
  return portableMerkle.sha256(input).slice(0, 4)
}

/** A verifier key parsed from its text form. */
export type NoteVerifier = {
  readonly name: string
  readonly keyId: Uint8Array
  readonly publicKey: Uint8Array
}

/**
 * `<name>+<hex key id>+<base64(type ‖ public key)>` (c2sp.org/signed-note "Verifier keys"); type
 * 0x01 for a note key, 0x04 (COSIGNATURE_TYPE) for a witness's cosigner key.
 */
export function verifierKey(name: string, publicKey: Uint8Array, type: number = ED25519_TYPE): string {
  const typed = new Uint8Array(1 + publicKey.length)
  typed[0] = type
  typed.set(publicKey, 1)
  return `${name}+${hex(noteKeyId(name, publicKey, type))}+${noteBase64(typed)}`
}

/**
 * Parses a verifier key; NOTE_INVALID unless it is a well-formed Ed25519 key of `type` (0x01 note
 * key, 0x04 cosigner key) whose id matches.
 */
export function parseVerifierKey(text: string, type: number = ED25519_TYPE): NoteVerifier {
  const parts = text.split('+')
  // The base64 part may itself hold '+': the name and id are the first two parts.
  if (parts.length < 3) throw invalid('a verifier key is <name>+<hex key id>+<base64 key>')
  const [name, hexId] = parts as [string, string]
  const keyText = parts.slice(2).join('+')
  if (!ORIGIN_PATTERN.test(name))
    throw invalid('the verifier key name is empty or holds spaces or control characters')
  if (!/^[0-9a-f]{8}$/.test(hexId)) throw invalid('the verifier key id must be 8 lowercase hex digits')
  const typed = decodeBase64(keyText, 'the verifier key')
  if (typed.length !== 1 + ED25519_PUBLIC_BYTES || typed[0] !== type)
    throw invalid(`the verifier key is not an Ed25519 key of type 0x0${type}`, { type: typed[0] })
  const publicKey = typed.slice(1)
  const keyId = noteKeyId(name, publicKey, type)
  if (hex(keyId) !== hexId)
    throw invalid('the verifier key id does not match its name and public key', { name })
  return { name, keyId, publicKey }
}

/**
 * The text of `note` once a signature by `verifier` verifies on it (c2sp.org/signed-note):
 * signatures by other keys are ignored; NOTE_INVALID when the note is malformed, holds no
 * signature by this key, or one that does not verify.
 */
export function openNote(note: string, verifier: NoteVerifier): string {
  if (utf8.encode(note).length > MAX_NOTE_BYTES)
    throw invalid(`the note is larger than ${MAX_NOTE_BYTES} bytes`)
  // biome-ignore lint/suspicious/noControlCharactersInRegex: a note holds no control character but \n
  if (/[\u0000-\u0009\u000b-\u001f]/.test(note)) throw invalid('the note holds control characters')
  if (!note.endsWith('\n')) throw invalid('the note does not end with a newline')
  const split = note.lastIndexOf('\n\n')
  if (split < 0) throw invalid('the note has no blank line before its signatures')
  const text = note.slice(0, split + 1)
  const lines = note.slice(split + 2, -1).split('\n')
  if (lines.length > 100) throw invalid('the note carries more than 100 signatures')
  let verified = false
  for (const line of lines) {
    const match = /^— ([^ ]+) ([^ ]+)$/.exec(line)
    if (!match) throw invalid('a signature line is not "— <name> <base64 signature>"')
    const blob = decodeBase64(match[2]!, 'a signature')
    if (blob.length < 4) throw invalid('a signature is shorter than its key id')
    // Only a signature whose name and key id both match is this key's; others are ignored.
    if (match[1] !== verifier.name || !equalBytes(blob.subarray(0, 4), verifier.keyId)) continue
    const ok = ed25519Verifies(blob.subarray(4), utf8.encode(text), verifier.publicKey)
    if (!ok) throw invalid(`the signature by ${verifier.name} does not verify`, { name: verifier.name })
    verified = true
  }
  if (!verified) throw invalid(`the note carries no signature by ${verifier.name}`, { name: verifier.name })
  return text
}

export type CheckpointNote = { origin: string; treeSize: number; rootHash: Uint8Array }

/** The checkpoint's note text: origin, tree size and base64 root hash, each line ending in \n. */
export function checkpointNoteText({ origin, treeSize, rootHash }: CheckpointNote): string {
  checkLogOrigin(origin)
  if (!Number.isSafeInteger(treeSize) || treeSize < 0 || rootHash.length !== HASH_BYTES)
    throw new BaseError('INVALID_ARGUMENT', 'a checkpoint needs a tree size ≥ 0 and a 32-byte root hash')
  return `${origin}\n${treeSize}\n${noteBase64(rootHash)}\n`
}

/**
 * The tree head a checkpoint's note text states (origin, size, root; NOTE_INVALID otherwise).
 * It checks no signature: callers open the note first (`openCheckpointNote`), or, like the tiles
 * directory reading back its own checkpoint, compare the head with the log.
 */
export function parseCheckpointText(text: string): CheckpointNote {
  const lines = text.split('\n')
  if (lines.length !== 4 || lines[3] !== '')
    throw invalid('a checkpoint is exactly origin, tree size and root hash')
  const [origin, size, root] = lines as [string, string, string]
  if (!ORIGIN_PATTERN.test(origin)) throw invalid('the checkpoint origin is not a key name')
  if (!/^(0|[1-9][0-9]{0,15})$/.test(size) || !Number.isSafeInteger(Number(size)))
    throw invalid('the checkpoint tree size is not a decimal without leading zeros')
  const rootHash = decodeBase64(root, 'the root hash')
  if (rootHash.length !== HASH_BYTES) throw invalid('the checkpoint root hash is not 32 bytes')
  return { origin, treeSize: Number(size), rootHash }
}

/** The text of a note (what its signatures sign), without checking any signature. */
export function noteTextOf(note: string): string {
  const split = note.lastIndexOf('\n\n')
  if (split < 0) throw invalid('the note has no blank line before its signatures')
  return note.slice(0, split + 1)
}

/**
 * The tree head a signed checkpoint states, once its signature by `verifier` verifies and its
 * origin is the verifier's name; NOTE_INVALID otherwise. Extension lines are refused (this log
 * writes none).
 */
export function openCheckpointNote(note: string, verifierKeyText: string): CheckpointNote {
  const verifier = parseVerifierKey(verifierKeyText)
  const checkpoint = parseCheckpointText(openNote(note, verifier))
  if (checkpoint.origin !== verifier.name)
    throw invalid(
      `the checkpoint's origin ${JSON.stringify(checkpoint.origin)} is not the key's name ${verifier.name}`,
    )
  return checkpoint
}

// ---------------------------------------------------------------------------------------------
// Witness cosignatures (c2sp.org/tlog-cosignature, Ed25519 cosignature/v1)

/** The signed-note type of timestamped Ed25519 checkpoint cosignatures. */
export const COSIGNATURE_TYPE = 0x04
export const COSIGNATURE_BYTES = 4 + 8 + ED25519_SIGNATURE_BYTES
/** The most signature lines a witness's answer may hold. */
const MAX_COSIGNATURE_LINES = 16

/** What a cosigner signs: `cosignature/v1\ntime <timestamp>\n` and the checkpoint's note text. */
export function cosignedMessage(checkpointText: string, timestamp: number): Uint8Array {
  return utf8.encode(`cosignature/v1\ntime ${timestamp}\n${checkpointText}`)
}

/**
 * The cosignature lines of `witness` (a type 0x04 verifier key) among `lines` (signature lines, as
 * a witness answers or a note carries them) that verify on `checkpointText`, with their
 * timestamps; lines of other keys are ignored. NOTE_INVALID when the lines are malformed or a line
 * of this key does not verify, or `timestamp` is zero.
 */
export function verifyCosignatures(
  lines: string,
  checkpointText: string,
  witness: string,
): { line: string; timestamp: number }[] {
  const verifier = parseVerifierKey(witness, COSIGNATURE_TYPE)
  if (utf8.encode(lines).length > MAX_NOTE_BYTES) throw invalid('the cosignatures are too large')
  const split = lines.endsWith('\n') ? lines.slice(0, -1).split('\n') : undefined
  if (split === undefined || split.length > MAX_COSIGNATURE_LINES)
    throw invalid(`cosignatures are 1–${MAX_COSIGNATURE_LINES} signature lines, each ending in a newline`)
  const verified: { line: string; timestamp: number }[] = []
  for (const line of split) {
    const match = /^— ([^ ]+) ([^ ]+)$/.exec(line)
    if (!match) throw invalid('a signature line is not "— <name> <base64 signature>"')
    const blob = decodeBase64(match[2]!, 'a cosignature')
    if (match[1] !== verifier.name || blob.length < 4 || !equalBytes(blob.subarray(0, 4), verifier.keyId))
      continue
    if (blob.length !== COSIGNATURE_BYTES)
      throw invalid(`the cosignature by ${verifier.name} is not 76 bytes`)
    const timestamp = new DataView(blob.buffer, blob.byteOffset).getBigUint64(4)
    if (timestamp === 0n || timestamp > BigInt(Number.MAX_SAFE_INTEGER))
      throw invalid(`the cosignature by ${verifier.name} has no usable timestamp`)
    const ok = ed25519Verifies(
      blob.subarray(12),
      cosignedMessage(checkpointText, Number(timestamp)),
      verifier.publicKey,
    )
    if (!ok) throw invalid(`the cosignature by ${verifier.name} does not verify`, { name: verifier.name })
    verified.push({ line: `${line}\n`, timestamp: Number(timestamp) })
  }
  return verified
}
