/**
 * The RFC 9162 Merkle tree conformance vectors CI provides beside the repository
 * (`../shared/vectors/rfc9162`): one JSON case per file, hashes and proofs in base64.
 */
import { existsSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const vectorsDir = fileURLToPath(new URL('../../shared/vectors/rfc9162/', import.meta.url))
export const haveVectors = existsSync(vectorsDir)

/** Every `.json` case below `dir`. */
export function vectorFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? vectorFiles(path) : name.endsWith('.json') ? [path] : []
  })
}

/** The leaf inputs the vector trees are built from, in order (the vectors' README). */
export const vectorLeaves: Uint8Array[] = [
  '',
  '00',
  '10',
  '2021',
  '3031',
  '40414243',
  '5051525354555657',
  '606162636465666768696a6b6c6d6e6f',
].map((h) => new Uint8Array(Buffer.from(h, 'hex')))
