/**
 * The skip policy of the test suite: a test that needs a part this machine lacks (a PostgreSQL
 * server, SoftHSM2, Chromium, the conformance vectors in `../shared/vectors`) skips with the
 * reason on a developer's clone, but fails under CI, where every part must be present.
 */
import type { TestContext } from 'node:test'

export const inCI = process.env.CI === 'true' || process.env.CI === '1'

/**
 * Returns true when the test may go on; otherwise skips it (or, in CI, fails it) with `reason`.
 */
export function requirePart(t: TestContext, available: boolean, reason: string): boolean {
  if (available) return true
  if (inCI) throw new Error(`missing in CI: ${reason}`)
  t.skip(reason)
  return false
}
