/**
 * Runs the `carchain` CLI in a child process, as a user would, for tests that check its answers.
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

const main = new URL('../src/cli/main.ts', import.meta.url).pathname

/** `carchain <args> --json`: the exit status, the JSON it printed (an error's too) and its progress lines (stderr). */
export async function cli(
  ...args: string[]
  // biome-ignore lint/suspicious/noExplicitAny: tests read the JSON answers field by field
): Promise<{ status: number; json: Record<string, any>; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [main, ...args, '--json'])
    return { status: 0, json: JSON.parse(stdout), stderr }
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string }
    return { status: e.code, json: JSON.parse(e.stdout), stderr: e.stderr }
  }
}
