import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { logger } from '@libp2p/logger'
import { errnoOf } from './errno.js'
import { MountFailedError } from './errors.js'
import { lazyUnmount, loadFuse, prepareMountpoint, type FuseCallback, type FuseInstance, type FuseOperations, type LoadedFuse } from './fuse-loader.js'
import { MOUNT_CACHE_TTL_MS, MountOps, type MountAttr, type MountCapacity } from './ops.js'
import type { RemoteFs } from './remote.js'

export { MountOps } from './ops.js'
export { errnoOf } from './errno.js'

const log = logger('dfs:mount')

/**
 * Backstop deadline of one kernel request (the binding answers ETIMEDOUT past it). Every RPC under a
 * request has its own, shorter deadline; this bounds what no deadline covers, and is long enough for
 * the commit of a large file on close.
 */
export const FUSE_OP_TIMEOUT_MS = 10 * 60_000
/** The kernel's caches of names, attributes and misses, in seconds: the mount's own TTL (MOUNT_CACHE_TTL_MS). */
const KERNEL_CACHE_S = MOUNT_CACHE_TTL_MS / 1000
/**
 * Options given to libfuse with the file system's name: 128 KiB writes (FUSE 2 otherwise sends 4 KiB
 * at a time), and the kernel believes names, attributes and misses (negative_timeout: libfuse's default
 * is 0, asking again at every lookup of a missing name) for as long as the mount's caches do, so a change
 * made elsewhere shows within the same TTL. The kernel updates its caches on the mount's own changes.
 * The binding passes only options it knows, so these ride in `fsname`'s value.
 */
const FSNAME = `dfs,big_writes,max_write=131072,entry_timeout=${KERNEL_CACHE_S},attr_timeout=${KERNEL_CACHE_S},negative_timeout=${KERNEL_CACHE_S}`
/**
 * The time utimens gives, in ms. libfuse 2 hands over UTIME_NOW (and UTIME_OMIT) as a timespec of 0 s
 * and ~1.07e9 ns, about 1073 ms here: that is now. (@cocalc/fuse-native 2.4.3 passes the access time
 * in the modification time's place too; `touch`, `cp -p` and `rsync -t` set both to one value.)
 */
export function mtimeOf (value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 2000 ? value : Date.now()
}

/** Block size reported by stat and statfs. */
const BLOCK_BYTES = 4096

export interface MountInit {
  mountpoint: string
  remote: RemoteFs
  readOnly?: boolean
  /** Libfuse's trace of every request on stderr. */
  debug?: boolean
  /**
   * Where the mount makes its spool directory (default: the system's temporary directory). Open
   * writers' files live there until committed: it wants room, and a disk rather than tmpfs.
   */
  spoolParent?: string
  /** The binding, when the caller checked for FUSE first (loadFuse); the mount then owns its cleanup. */
  fuse?: LoadedFuse
}

export interface Mounted {
  mountpoint: string
  /** A dead mount left on the point was detached first. */
  recovered: boolean
  ops: MountOps
  /** Commits open files' writes, then unmounts; resolves how many files could not be committed. */
  unmount: () => Promise<{ uncommitted: number }>
}

/**
 * Mounts `remote` on `mountpoint` through FUSE and serves it until `unmount()`. Throws FuseUnavailable
 * (saying what to install) where FUSE cannot be used, MountFailed when the point cannot take a mount.
 */
export async function mount (init: MountInit): Promise<Mounted> {
  const mountpoint = resolve(init.mountpoint)
  const fuse = init.fuse ?? await loadFuse()
  let spoolDir: string | undefined
  try {
    const { recovered } = await prepareMountpoint(mountpoint, fuse.fusermount)
    spoolDir = await mkdtemp(join(init.spoolParent ?? tmpdir(), 'dfs-mount-'))
    const ops = new MountOps({ remote: init.remote, spoolDir, readOnly: init.readOnly })
    const instance = new fuse.Fuse(mountpoint, fuseOperations(ops), {
      fsname: FSNAME,
      timeout: FUSE_OP_TIMEOUT_MS,
      ...(init.debug === true ? { debug: true } : {})
    })
    await new Promise<void>((resolveMount, reject) => {
      instance.mount((err) => {
        if (err != null) reject(new MountFailedError(`cannot mount on ${mountpoint}: ${err.message}`, { mountpoint }))
        else resolveMount()
      })
    })
    const dir = spoolDir
    let unmounting: Promise<{ uncommitted: number }> | undefined
    const unmount = async (): Promise<{ uncommitted: number }> => {
      unmounting ??= (async () => {
        const uncommitted = await ops.commitAll()
        try {
          await unmountFuse(instance, fuse.fusermount, mountpoint)
        } finally {
          await ops.discardAll()
          await rm(dir, { recursive: true, force: true })
          await fuse.cleanup()
        }
        return { uncommitted }
      })()
      return await unmounting
    }
    return { mountpoint, recovered, ops, unmount }
  } catch (err) {
    if (spoolDir !== undefined) await rm(spoolDir, { recursive: true, force: true })
    await fuse.cleanup()
    throw err
  }
}

/** The binding's unmount (`fusermount -uz`, then its own teardown), else a lazy unmount of our own. */
async function unmountFuse (instance: FuseInstance, fusermount: string, mountpoint: string): Promise<void> {
  try {
    await new Promise<void>((resolveUnmount, reject) => {
      instance.unmount((err) => { if (err != null) reject(err); else resolveUnmount() })
    })
  } catch (err) {
    log.error('unmount of %s failed (%s): trying fusermount -uz', mountpoint, (err as Error)?.message)
    try {
      await lazyUnmount(fusermount, mountpoint)
    } catch (again) {
      throw new MountFailedError(`could not unmount ${mountpoint}: ${(again as Error).message}`, { mountpoint })
    }
  }
}

/** A getattr answer as the binding wants it: owned by the mounting user, 0644 files, 0755 directories. */
function statOf (a: MountAttr): Record<string, number | Date> {
  const time = new Date(a.mtimeMs)
  const dir = a.type === 'dir'
  return {
    mode: dir ? 0o40755 : 0o100644,
    uid: process.getuid?.() ?? 0,
    gid: process.getgid?.() ?? 0,
    size: dir ? BLOCK_BYTES : a.size,
    nlink: dir ? 2 : 1,
    blksize: BLOCK_BYTES,
    blocks: Math.ceil((dir ? BLOCK_BYTES : a.size) / 512),
    dev: 0,
    ino: 0,
    rdev: 0,
    atime: time,
    mtime: time,
    ctime: time
  }
}

/** statfs in blocks that fit the binding's 32-bit fields (the block grows with the cluster). */
function statfsOf (c: MountCapacity): Record<string, number> {
  let frsize = BLOCK_BYTES
  while (c.capacityBytes / frsize > 0xffffffff) frsize *= 2
  const blocks = Math.floor(c.capacityBytes / frsize)
  const free = Math.floor(Math.max(0, c.capacityBytes - c.usedBytes) / frsize)
  return { bsize: frsize, frsize, blocks, bfree: free, bavail: free, files: 0, ffree: 0, favail: 0, fsid: 0, flag: 0, namemax: 255 }
}

/**
 * The binding's operations over `ops`. Each answers through its callback once: 0 (and values), or a
 * negative errno (errnoOf). read and write answer the byte count in the code's place.
 */
export function fuseOperations (ops: MountOps): FuseOperations {
  /** Answers `cb` with `run`'s value, or its error as an errno. */
  const reply = <T>(cb: FuseCallback, run: () => Promise<T>, answer: (v: T) => unknown[] = () => []): void => {
    run().then((v) => { cb(0, ...answer(v)) }, (err: unknown) => {
      const code = errnoOf(err)
      log('%s', (err as Error)?.message)
      cb(code)
    })
  }
  /** read and write: the count is the answer. */
  const count = (cb: FuseCallback, run: () => Promise<number>): void => {
    run().then((n) => { cb(n) }, (err: unknown) => { log('%s', (err as Error)?.message); cb(errnoOf(err)) })
  }
  return {
    getattr: (path: string, cb: FuseCallback) => { reply(cb, async () => await ops.getattr(path), (a) => [statOf(a)]) },
    readdir: (path: string, cb: FuseCallback) => {
      reply(cb, async () => await ops.readdir(path), (entries) => [['.', '..', ...entries.map((e) => e.name)]])
    },
    statfs: (_path: string, cb: FuseCallback) => { reply(cb, async () => await ops.statfs(), (c) => [statfsOf(c)]) },
    open: (path: string, flags: number, cb: FuseCallback) => { reply(cb, async () => await ops.open(path, flags), (fd) => [fd]) },
    create: (path: string, _mode: number, cb: FuseCallback) => { reply(cb, async () => await ops.create(path), (fd) => [fd]) },
    read: (_path: string, fd: number, buf: Buffer, length: number, position: number, cb: FuseCallback) => {
      count(cb, async () => await ops.read(fd, buf.subarray(0, length), position))
    },
    write: (_path: string, fd: number, buf: Buffer, length: number, position: number, cb: FuseCallback) => {
      count(cb, async () => await ops.write(fd, buf.subarray(0, length), position))
    },
    flush: (_path: string, fd: number, cb: FuseCallback) => { reply(cb, async () => { await ops.flush(fd) }) },
    fsync: (_path: string, _dataSync: boolean, fd: number, cb: FuseCallback) => { reply(cb, async () => { await ops.fsync(fd) }) },
    release: (_path: string, fd: number, cb: FuseCallback) => { reply(cb, async () => { await ops.release(fd) }) },
    truncate: (path: string, size: number, cb: FuseCallback) => { reply(cb, async () => { await ops.truncate(path, size) }) },
    ftruncate: (_path: string, fd: number, size: number, cb: FuseCallback) => { reply(cb, async () => { await ops.ftruncate(fd, size) }) },
    unlink: (path: string, cb: FuseCallback) => { reply(cb, async () => { await ops.unlink(path) }) },
    mkdir: (path: string, _mode: number, cb: FuseCallback) => { reply(cb, async () => { await ops.mkdir(path) }) },
    rmdir: (path: string, cb: FuseCallback) => { reply(cb, async () => { await ops.rmdir(path) }) },
    rename: (from: string, to: string, cb: FuseCallback) => { reply(cb, async () => { await ops.rename(from, to) }) },
    utimens: (path: string, _atime: unknown, mtime: unknown, cb: FuseCallback) => { reply(cb, async () => { await ops.utimens(path, mtimeOf(mtime)) }) },
    chmod: (path: string, _mode: number, cb: FuseCallback) => { reply(cb, async () => { await ops.setattr(path) }) },
    chown: (path: string, _uid: number, _gid: number, cb: FuseCallback) => { reply(cb, async () => { await ops.setattr(path) }) }
  }
}
