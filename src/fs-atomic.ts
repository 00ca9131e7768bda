/** Crash-safe file writes: a reader sees the old file or the new one, never a torn mix. */
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, statSync, writeSync } from 'node:fs'
import { dirname } from 'node:path'

/** fsyncs a directory, so the names created or renamed in it survive a crash. */
function fsyncDir(path: string): void {
  const dir = openSync(path, 'r')
  try {
    fsyncSync(dir)
  } finally {
    closeSync(dir)
  }
}

/**
 * Writes `path` via a temporary file, fsync and rename (and fsyncs the directory). `mode` is the
 * new file's (default 0600: most callers write keys and state; published files pass 0644).
 */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): void {
  const temporary = `${path}.tmp-${process.pid}`
  const fd = openSync(temporary, 'w', mode)
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(temporary, path)
  fsyncDir(dirname(path))
}

/**
 * `mkdir -p` whose result survives a crash: each directory it creates is fsynced into its parent
 * before a file is written below it.
 */
export function makeDirDurable(path: string): void {
  const missing: string[] = []
  for (let dir = path; ; dir = dirname(dir)) {
    try {
      if (statSync(dir).isDirectory()) break
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    }
    missing.push(dir)
    if (dirname(dir) === dir) break
  }
  for (const dir of missing.reverse()) {
    mkdirSync(dir)
    fsyncDir(dirname(dir))
  }
}
