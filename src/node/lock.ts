import { open, readFile, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { DataDirLockedError } from '@dfs/api'

/**
 * An exclusive lock on a data dir: a LOCK file created with O_EXCL holding the owner's pid. A lock
 * left by a process that no longer runs is taken over; one held by a live process is refused.
 */
export class DataDirLock {
  readonly path: string

  private constructor (path: string) {
    this.path = path
  }

  static async acquire (dataDir: string): Promise<DataDirLock> {
    const path = join(dataDir, 'LOCK')
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const fh = await open(path, 'wx', 0o600)
        await fh.writeFile(`${process.pid}\n`)
        await fh.sync()
        await fh.close()
        return new DataDirLock(path)
      } catch (err: any) {
        if (err?.code !== 'EEXIST') throw err
      }
      const pid = Number.parseInt((await readFile(path, 'utf8').catch(() => '')).trim(), 10)
      if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) {
        throw new DataDirLockedError(`data dir ${dataDir} is in use by another dfs process (pid ${pid})`, { dataDir, pid })
      }
      // stale: its owner is gone
      await unlink(path).catch(() => {})
    }
    throw new DataDirLockedError(`could not lock data dir ${dataDir}`, { dataDir })
  }

  async release (): Promise<void> {
    const owner = Number.parseInt((await readFile(this.path, 'utf8').catch(() => '')).trim(), 10)
    if (owner === process.pid) await unlink(this.path).catch(() => {})
  }
}

function isAlive (pid: number): boolean {
  if (pid === process.pid) return true
  try {
    process.kill(pid, 0)
    return true
  } catch (err: any) {
    return err?.code === 'EPERM'
  }
}
