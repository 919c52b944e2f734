import { existsSync, readFileSync } from 'node:fs'
import { open, readFile, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { DataDirLockedError } from '@dfs/api'

/**
 * An exclusive lock on a data dir: a LOCK file created with O_EXCL naming its owner. A lock left by
 * a process that no longer runs is taken over; one held by a live process is refused.
 *
 * The owner is named as `<pid> <boot id> <start time>` (Linux: /proc/sys/kernel/random/boot_id and
 * field 22 of /proc/<pid>/stat), not by its pid alone, because a pid outlives its process in two
 * ways that left a node unable to start until someone deleted the file by hand:
 * - after a crash and a reboot, the pid in the file may belong to any other process by now: a
 *   different boot id or start time says the owner is gone;
 * - a process killed with SIGKILL stays a zombie until its parent reaps it, and `kill(pid, 0)`
 *   succeeds on a zombie (a node started from a shell without a reaping init, then killed and
 *   restarted at once, was refused): a zombie holds nothing, so it counts as gone.
 * Where /proc is missing, or the file holds a bare pid (an older build), `kill(pid, 0)` decides.
 * The stores inside the data dir hold LevelDB's own kernel locks as well, so two processes that
 * both took over one stale file still cannot open the same store.
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
        await fh.writeFile(`${ownerOf(process.pid)}\n`)
        await fh.sync()
        await fh.close()
        return new DataDirLock(path)
      } catch (err) {
        if ((err as NodeJS.ErrnoException)?.code !== 'EEXIST') throw err
      }
      const { pid, boot, start } = await readOwner(path)
      if (Number.isInteger(pid) && pid > 0 && isAlive(pid, boot, start)) {
        throw new DataDirLockedError(`data dir ${dataDir} is in use by another dfs process (pid ${pid})`, { dataDir, pid })
      }
      // stale: its owner is gone
      await unlink(path).catch(() => {})
    }
    throw new DataDirLockedError(`could not lock data dir ${dataDir}`, { dataDir })
  }

  async release (): Promise<void> {
    if ((await readOwner(this.path)).pid === process.pid) await unlink(this.path).catch(() => {})
  }
}

/** The owner a lock file names (pid NaN if it names none). */
async function readOwner (path: string): Promise<{ pid: number, boot: string | undefined, start: string | undefined }> {
  const [pid, boot, start] = (await readFile(path, 'utf8').catch(() => '')).trim().split(/\s+/)
  return { pid: Number.parseInt(pid ?? '', 10), boot, start }
}

/** Linux's /proc is there: owners are named by boot id and start time too. */
const HAVE_PROC = existsSync('/proc/self/stat')

/** What a lock file says of process `pid`: `<pid> <boot id> <start time>`, or the bare pid without /proc. */
export function ownerOf (pid: number): string {
  const boot = bootId()
  const proc = procStat(pid)
  return boot === undefined || proc == null ? String(pid) : `${pid} ${boot} ${proc.start}`
}

function bootId (): string | undefined {
  if (!HAVE_PROC) return undefined
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()
  } catch {
    return undefined
  }
}

/** State and start time of `pid` from /proc; null if there is no such process, undefined without /proc. */
function procStat (pid: number): { state: string, start: string } | null | undefined {
  if (!HAVE_PROC) return undefined
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch (err) {
    return (err as NodeJS.ErrnoException)?.code === 'ENOENT' ? null : undefined
  }
  // the command name (field 2) is in parentheses and may hold spaces: fields 3… follow the last ')'
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
  return { state: fields[0], start: fields[19] }
}

/** Whether the process a lock file names still runs: see the class comment. */
function isAlive (pid: number, boot: string | undefined, start: string | undefined): boolean {
  const proc = procStat(pid)
  if (proc === null) return false
  if (proc !== undefined) {
    if (proc.state === 'Z' || proc.state === 'X') return false
    const currentBoot = bootId()
    if (boot !== undefined && currentBoot !== undefined && boot !== currentBoot) return false
    if (start !== undefined && start !== proc.start) return false
    return true
  }
  if (pid === process.pid) return true
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException)?.code === 'EPERM'
  }
}
