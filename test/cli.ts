/**
 * Runs the `carchain` CLI in a child process, as a user would, for tests that check its answers.
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

const main = new URL('../src/cli/main.ts', import.meta.url).pathname

/** `carchain <args> --json`: the exit status and the JSON it printed (an error's too). */
// biome-ignore lint/suspicious/noExplicitAny: tests read the JSON answers field by field
export async function cli(...args: string[]): Promise<{ status: number; json: Record<string, any> }> {
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [main, ...args, '--json'])
    return { status: 0, json: JSON.parse(stdout) }
  } catch (error) {
    const e = error as { code: number; stdout: string }
    return { status: e.code, json: JSON.parse(e.stdout) }
  }
}
