/**
 * The data directory and its single-owner lock: PGlite and the chain snapshot must have one
 * writer. The lock file holds the owner's pid; a lock whose process is gone is stale and taken
 * over (the previous owner crashed).
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { BaseError } from './errors.ts'

export type DataDirLock = { release(): void }

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Creates the data dir if needed and takes its lock. */
export function lockDataDir(dataDir: string): DataDirLock {
  try {
    mkdirSync(dataDir, { recursive: true })
  } catch (error) {
    throw new BaseError('DATA_DIR_INVALID', `cannot create the data directory ${dataDir}`, {
      details: { dataDir },
      cause: error,
    })
  }
  const path = join(dataDir, 'carchain.lock')
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(path, `${process.pid}\n`, { flag: 'wx' })
      return {
        release() {
          rmSync(path, { force: true })
        },
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST')
        throw new BaseError('DATA_DIR_INVALID', `cannot write in ${dataDir}`, {
          details: { dataDir },
          cause: error,
        })
      const owner = Number(readFileSync(path, 'utf8').trim())
      if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && alive(owner))
        throw new BaseError('DATA_DIR_LOCKED', `${dataDir} is in use by process ${owner}`, {
          details: { dataDir, pid: owner },
        })
      rmSync(path, { force: true }) // stale: its owner is gone
    }
  }
  throw new BaseError('DATA_DIR_LOCKED', `cannot take the lock on ${dataDir}`, { details: { dataDir } })
}
