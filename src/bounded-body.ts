/**
 * Reading an untrusted HTTP answer without letting it choose how much memory it takes: the body is
 * read chunk by chunk and the read stops, the stream cancelled, as soon as it passes `max` bytes.
 * No node:* import or Buffer: the dashboard reads tiles with it too (src/ledger/tiles-verify.ts).
 */
import type { BaseError } from './errors.ts'

/** The body of `response`, at most `max` bytes; beyond, the error `tooLarge()` makes. */
export async function readBoundedBody(
  response: Response,
  max: number,
  tooLarge: () => BaseError,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = []
  let total = 0
  const reader = response.body?.getReader()
  for (let part = await reader?.read(); part && !part.done; part = await reader!.read()) {
    total += part.value.length
    if (total > max) {
      await reader!.cancel()
      throw tooLarge()
    }
    chunks.push(part.value)
  }
  const body = new Uint8Array(total)
  let offset = 0
  for (const chunk of chunks) {
    body.set(chunk, offset)
    offset += chunk.length
  }
  return body
}
