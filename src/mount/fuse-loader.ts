import { execFile } from 'node:child_process'
import { constants } from 'node:fs'
import { access, mkdtemp, rm, stat, symlink } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { promisify } from 'node:util'
import { FuseUnavailableError, MountFailedError } from './errors.js'

/** The FUSE binding this mount uses: an optional dependency, compiled against Debian's libfuse-dev. */
export const FUSE_PACKAGE = '@cocalc/fuse-native'
/** Deadline of one `fusermount -uz`. */
const FUSERMOUNT_TIMEOUT_MS = 10_000

/** What the mount needs to be told to install, by what is missing. */
export const INSTALL_HINTS = {
  platform: 'dfs mount needs Linux (FUSE through libfuse 2)',
  device: 'no usable /dev/fuse: load the kernel module (`modprobe fuse`); in a container run it with `--device /dev/fuse --cap-add SYS_ADMIN`',
  fusermount: 'no fusermount or fusermount3 on PATH: install FUSE\'s tools (Debian: `apt-get install fuse3`)',
  binding: `the FUSE binding ${FUSE_PACKAGE} is not installed or did not build: install libfuse (Debian: \`apt-get install libfuse2 libfuse-dev\`), then \`npm install\` again`
} as const

/** The parts of the binding's Fuse class the mount uses (its own types are not needed to build without it). */
export interface FuseInstance {
  mount: (cb: (err: Error | null) => void) => void
  unmount: (cb: (err: Error | null) => void) => void
}

export type FuseCallback = (code: number, ...values: unknown[]) => void

/** Handlers by FUSE operation name, as the binding calls them (each ends with its callback). */
export type FuseOperations = Record<string, (...args: never[]) => void>

export interface FuseOptions {
  timeout?: number | false
  fsname?: string
  uid?: number
  gid?: number
  debug?: boolean
}

export type FuseClass = new (mnt: string, ops: FuseOperations, opts: FuseOptions) => FuseInstance

/** What `loadFuse` found: the binding, and how to unmount with this system's tools. */
export interface LoadedFuse {
  Fuse: FuseClass
  /** The fusermount binary used for `-uz` (fusermount, else fusermount3). */
  fusermount: string
  /** Removes the PATH shim (if one was made); the mount calls it after unmounting. */
  cleanup: () => Promise<void>
}

/** The first executable `name` on PATH, or undefined. */
async function which (name: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue
    const candidate = join(dir, name)
    try {
      await access(candidate, constants.X_OK)
      return candidate
    } catch {}
  }
  return undefined
}

/**
 * Checks that FUSE can be used here and loads the binding, else throws FuseUnavailable whose message
 * says what to install (details.missing: platform, device, fusermount or binding).
 *
 * The binding unmounts by running `fusermount -uz`. A system with only FUSE 3's tools (Debian's
 * `fuse3` without the `fuse` package) has `fusermount3` alone: then a private directory holding a
 * `fusermount` symlink to it is put first on this process's PATH (removed by `cleanup`).
 */
export async function loadFuse (): Promise<LoadedFuse> {
  if (process.platform !== 'linux') throw new FuseUnavailableError(INSTALL_HINTS.platform, { missing: 'platform', platform: process.platform })
  try {
    await access('/dev/fuse', constants.R_OK | constants.W_OK)
  } catch (err) {
    throw new FuseUnavailableError(INSTALL_HINTS.device, { missing: 'device', code: (err as NodeJS.ErrnoException)?.code })
  }
  let fusermount = await which('fusermount')
  let cleanup = async (): Promise<void> => {}
  if (fusermount === undefined) {
    const v3 = await which('fusermount3')
    if (v3 === undefined) throw new FuseUnavailableError(INSTALL_HINTS.fusermount, { missing: 'fusermount' })
    const shim = await mkdtemp(join(tmpdir(), 'dfs-fusermount-'))
    await symlink(v3, join(shim, 'fusermount'))
    process.env.PATH = `${shim}${delimiter}${process.env.PATH ?? ''}`
    fusermount = join(shim, 'fusermount')
    cleanup = async () => {
      process.env.PATH = (process.env.PATH ?? '').split(delimiter).filter((d) => d !== shim).join(delimiter)
      await rm(shim, { recursive: true, force: true })
    }
  }
  let Fuse: FuseClass
  try {
    Fuse = createRequire(import.meta.url)(FUSE_PACKAGE) as FuseClass
  } catch (err) {
    await cleanup()
    throw new FuseUnavailableError(`${INSTALL_HINTS.binding} (${(err as Error)?.message?.split('\n')[0]})`, { missing: 'binding' })
  }
  return { Fuse, fusermount, cleanup }
}

/** Runs `fusermount -uz MNT` (a lazy unmount: it detaches now, even with files open). */
export async function lazyUnmount (fusermount: string, mountpoint: string): Promise<void> {
  await promisify(execFile)(fusermount, ['-uz', mountpoint], { timeout: FUSERMOUNT_TIMEOUT_MS })
}

/**
 * Readies `mountpoint` for a mount: a mount left by a process that died ("Transport endpoint is not
 * connected") is detached with `fusermount -uz`; the point must then be a directory that nothing is
 * mounted on. Returns whether a stale mount was recovered.
 */
export async function prepareMountpoint (mountpoint: string, fusermount: string): Promise<{ recovered: boolean }> {
  let recovered = false
  let info
  try {
    info = await stat(mountpoint)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException)?.code
    if (code !== 'ENOTCONN' && code !== 'ECONNABORTED') {
      throw new MountFailedError(`cannot mount on ${mountpoint}: ${(err as Error).message}`, { mountpoint, code })
    }
    try {
      await lazyUnmount(fusermount, mountpoint)
    } catch (unmountErr) {
      throw new MountFailedError(`${mountpoint} holds a dead mount that fusermount -uz could not remove: ${(unmountErr as Error).message}`, { mountpoint })
    }
    recovered = true
    info = await stat(mountpoint)
  }
  if (!info.isDirectory()) throw new MountFailedError(`${mountpoint} is not a directory`, { mountpoint })
  const parent = await stat(dirname(mountpoint))
  if (parent.dev !== info.dev && dirname(mountpoint) !== mountpoint) {
    throw new MountFailedError(`something is mounted on ${mountpoint} already (unmount it with \`fusermount -u ${mountpoint}\`)`, { mountpoint })
  }
  return { recovered }
}
