import { constants } from 'node:fs'
import { join } from 'node:path'
import { logger } from '@libp2p/logger'
import { FailedPreconditionError, IsADirectoryError, NotFoundError, type DirEntry } from '@dfs/api'
import { TtlCache } from './cache.js'
import { BadHandleError, CrossDeviceError, ReadOnlyMountError, StaleFileError, TooManyOpenFilesError } from './errors.js'
import { Spool } from './spool.js'
import type { RemoteAttr, RemoteCapacity, RemoteFs, RemoteRead } from './remote.js'

const log = logger('dfs:mount:ops')

/** How long attributes, listings and capacity are believed (the kernel's own caches use the same). */
export const MOUNT_CACHE_TTL_MS = 1000
/** Most paths whose attributes are cached. */
export const ATTR_CACHE_ENTRIES_MAX = 100_000
/** Most directories whose listing is cached. */
export const DIR_CACHE_ENTRIES_MAX = 256
/**
 * How long a directory found to hold more than one fs.ls page is not listed to answer a lookup of a
 * missing name (its first page would cost more than the stats it saves). Only a cost: never a result.
 */
export const BIG_DIR_MEMORY_MS = 60_000
/**
 * A new file's spool (create, or open with O_TRUNC) holds its bytes in memory up to this size, and a
 * commit of at most this many bytes sends them from memory: a small file touches no disk and its
 * commit is one upload. Memory for spools is at most this × MOUNT_HANDLES_MAX (256 MiB).
 */
export const SMALL_COMMIT_BYTES_MAX = 64 * 1024
/** Most files open through the mount at once (EMFILE past it); each writer holds one spool file. */
export const MOUNT_HANDLES_MAX = 4096
/** Most entries of one directory the mount lists (EIO past it, rather than an endless listing). */
export const READDIR_ENTRIES_MAX = 1_000_000
/**
 * A sequential reader's window (one default extent): one range read, aligned to a multiple of its
 * size, so the kernel's concurrent read-ahead requests share windows rather than each fetching.
 */
export const READ_AHEAD_BYTES = 4 * 1024 * 1024
/** Windows fetched ahead of a sequential reader's position. */
export const READ_AHEAD_WINDOWS = 2
/** Windows one reader keeps (fetched or in flight): memory per reader is at most this × READ_AHEAD_BYTES. */
export const READ_WINDOWS_MAX = 4
/**
 * Window buffers the mount reuses (64 MiB: four sequential readers' windows). Past them a window gets
 * a buffer of its own, which the garbage collector frees. Reuse is what keeps the mount's reads cheap:
 * a fresh 4 MiB buffer per window outlives young-generation collections, and V8 answers that much
 * external memory with a full collection every few windows (142 mark-compacts per GiB read, ~0.8 s
 * more CPU per 256 MiB than with reused buffers: 2 mark-compacts).
 */
export const READ_BUFFERS_MAX = 16

/**
 * A read-ahead window: one range read into a buffer of READ_AHEAD_BYTES. A pooled buffer goes back to
 * the pool only when nothing can still touch it: the window left its reader's set (`evicted`), its
 * range read settled (no more bytes land in it) and no read is copying out of it (`readers`).
 */
interface Window {
  read: Promise<RemoteRead>
  buffer: Uint8Array | undefined
  readers: number
  settled: boolean
  evicted: boolean
}

/** Buffers of one size, handed out to one holder at a time and reused. */
export class BufferPool {
  readonly #free: Uint8Array[] = []
  #out = 0
  readonly #size: number
  readonly #max: number

  constructor (size: number, max: number) {
    this.#size = size
    this.#max = max
  }

  /** A buffer nobody else holds, or undefined when `max` are out (the caller then uses its own). */
  take (): Uint8Array | undefined {
    if (this.#out >= this.#max) return undefined
    this.#out += 1
    return this.#free.pop() ?? Buffer.allocUnsafe(this.#size)
  }

  /** Gives back a buffer `take` handed out; its holder must not touch it any more. */
  give (buffer: Uint8Array): void {
    this.#out -= 1
    this.#free.push(buffer)
  }

  /** Buffers handed out and not given back. */
  get out (): number { return this.#out }
}

/**
 * Files the kernel's high-level FUSE library hides an open file under when it is unlinked; it
 * removes them at release, so their bytes are never worth a put.
 */
const HIDDEN_PREFIX = '.fuse_hidden'

/** The access mode bits of open(2)'s flags (O_RDONLY, O_WRONLY, O_RDWR); Node does not export it. */
const O_ACCMODE = 3

/** What getattr answers: the mount adds owner, permissions and block counts. */
export interface MountAttr {
  type: 'file' | 'dir'
  size: number
  mtimeMs: number
}

/** statfs: sizes in bytes; the FUSE layer turns them into blocks. */
export type MountCapacity = RemoteCapacity

export interface MountOpsInit {
  remote: RemoteFs
  /** Where spool files go (the mount's own temporary directory). */
  spoolDir: string
  readOnly?: boolean
  cacheTtlMs?: number
  now?: () => number
}

/** One open file. Invariant: a handle has a spool iff it was opened for writing. */
interface Handle {
  fd: number
  /** Its path now: a rename through the mount moves its open handles with it. */
  path: string
  spool: Spool | undefined
  /** The spool holds bytes not committed yet (a write or truncate since the last commit, or a create). */
  dirty: boolean
  /** Made by create and not committed yet: the file exists only in this mount (listed, renamed, unlinked here). */
  created: boolean
  /** Unlinked while open: nothing is committed any more. */
  unlinked: boolean
  /** Spool writes, truncates and commits run one at a time, in arrival order. */
  lock: Promise<unknown>
  /** A reader's size when opened (close-to-open: a reader sees the version it opened). */
  size: number
  /** A reader's windows by their first byte (a multiple of READ_AHEAD_BYTES), oldest first, at most READ_WINDOWS_MAX. */
  windows: Map<number, Window>
  /** Where the reader's last read ended: a read starting near it is sequential. */
  nextOffset: number
  /** The file version a reader's first range read saw: every later one must see the same. */
  version: string | undefined
}

/** The top-level directory of a canonical path (`/a/b` → `a`): dfs renames within one only. */
function topLevelOf (path: string): string {
  const end = path.indexOf('/', 1)
  return path.slice(1, end < 0 ? undefined : end)
}

function parentOf (path: string): string {
  const i = path.lastIndexOf('/')
  return i <= 0 ? '/' : path.slice(0, i)
}

function baseOf (path: string): string {
  return path.slice(path.lastIndexOf('/') + 1)
}

/** What getattr answers for every directory. */
const DIR_ATTR: MountAttr = { type: 'dir', size: 0, mtimeMs: 0 }

/** A directory's listing by name: complete when it was fetched, then changed only as the mount changes the directory. */
type Listing = Map<string, DirEntry>

/** One fs.ls of a directory under way: a change the mount makes there meanwhile makes its answer `stale`, never cached. */
interface ListingInFlight {
  dir: string
  stale: boolean
}

/** A file's entry in its directory's listing, as the mount's own commit of `size` bytes left it. */
function fileEntry (path: string, size: number): DirEntry {
  return { path, name: baseOf(path), type: 'file', size }
}

/** Whether `path` is `root` or inside it. */
function within (path: string, root: string): boolean {
  return path === root || path.startsWith(root === '/' ? '/' : root + '/')
}

/**
 * The file system the mount serves, as plain async calls on kernel paths (what FUSE's high-level API
 * hands over); fuse.ts binds them to the kernel. Semantics:
 * - Reads: attributes and listings are cached for `cacheTtlMs`, counted from when the cluster
 *   answered them. The mount's own changes update a cached listing (a commit, unlink, mkdir, rmdir or
 *   rename that succeeded adds or removes its name) and drop what they cannot update (attributes,
 *   listings a failed change may or may not have touched), so its own changes always show and a
 *   change made elsewhere shows once the TTL passed. A lookup of a name missing from a fresh listing
 *   of its directory is answered ENOENT from it; the first miss in a directory with no fresh listing
 *   lists it (when it fits one fs.ls page), so a loop creating files asks no stat per file.
 *   A reader reads in range reads: aligned READ_AHEAD_BYTES windows, READ_AHEAD_WINDOWS
 *   ahead while it reads sequentially. It reads the file as it was when opened (close-to-open): up to
 *   the size it had, and only bytes of the version its first read saw; a file replaced under an open
 *   reader answers ESTALE (StaleFile) rather than a mix of two versions.
 * - Writes: a file opened for writing is spooled to a local temporary file (an existing file is
 *   first downloaded whole, unless opened with O_TRUNC; a new or truncated one is held in memory
 *   while it fits SMALL_COMMIT_BYTES_MAX) and committed as one `fs.put` on flush
 *   (every close), fsync and release: other readers see the old bytes or the new, never a mix.
 *   A file made by create exists only in the mount (listed, renamed, unlinked there) until its
 *   first commit puts it, so creating a small file costs one put.
 * - chmod and chown are accepted and ignored (dfs keeps no owners or modes: every file shows as the
 *   mounting user's, 0644, every directory 0755). utimens sets a file's mtime (fs.utime), after
 *   committing what its open handles wrote (a later commit is a later put, with its own time); a
 *   directory's is accepted and not kept (dfs directories have no time).
 * - rename across top-level directories is CrossDevice (EXDEV: `mv` copies instead).
 */
export class MountOps {
  readonly #remote: RemoteFs
  readonly #spoolDir: string
  readonly #readOnly: boolean
  readonly #attrs: TtlCache<string, MountAttr | null>
  readonly #dirs: TtlCache<string, Listing>
  /** Directories known to hold more than one fs.ls page (BIG_DIR_MEMORY_MS). */
  readonly #bigDirs: TtlCache<string, true>
  /** The fs.ls listings under way: at most one per caller waiting on one (bounded by the kernel's requests). */
  readonly #listing = new Set<ListingInFlight>()
  readonly #capacity: TtlCache<'cluster', RemoteCapacity>
  readonly #handles = new Map<number, Handle>()
  readonly #buffers = new BufferPool(READ_AHEAD_BYTES, READ_BUFFERS_MAX)
  #nextFd = 1
  #spoolSeq = 0

  constructor (init: MountOpsInit) {
    this.#remote = init.remote
    this.#spoolDir = init.spoolDir
    this.#readOnly = init.readOnly === true
    const ttlMs = init.cacheTtlMs ?? MOUNT_CACHE_TTL_MS
    const now = init.now ?? Date.now
    this.#attrs = new TtlCache({ ttlMs, entriesMax: ATTR_CACHE_ENTRIES_MAX, now })
    this.#dirs = new TtlCache({ ttlMs, entriesMax: DIR_CACHE_ENTRIES_MAX, now })
    this.#bigDirs = new TtlCache({ ttlMs: BIG_DIR_MEMORY_MS, entriesMax: DIR_CACHE_ENTRIES_MAX, now })
    this.#capacity = new TtlCache({ ttlMs, entriesMax: 1, now })
  }

  /** Files open now. */
  get openHandles (): number {
    return this.#handles.size
  }

  async getattr (path: string): Promise<MountAttr> {
    if (path === '/') return DIR_ATTR
    // a file being written has the size of its spool, also before its first commit (a handle open
    // for writing that wrote nothing yet shows the file as the cluster has it: `touch` opens, then sets a time)
    for (const h of this.#handles.values()) {
      if (h.spool !== undefined && !h.unlinked && h.path === path && (h.dirty || h.created)) return { type: 'file', size: h.spool.size, mtimeMs: Date.now() }
    }
    const cached = this.#attrs.get(path)
    if (cached === null) throw new NotFoundError(`no file or directory at ${path}`, { path })
    if (cached !== undefined) return cached
    const parent = parentOf(path)
    const listed = this.#dirs.get(parent)
    if (listed !== undefined) {
      const e = listed.get(baseOf(path))
      // a fresh listing holds every name of its directory: a missing name is a miss without a stat
      if (e === undefined) throw new NotFoundError(`no file or directory at ${path}`, { path })
      if (e.type === 'dir') return DIR_ATTR
      // a file it lists: its attributes (the cluster's mtime) were dropped by a change, stat says them
    }
    let attr: RemoteAttr
    try {
      attr = await this.#remote.stat(path)
    } catch (err) {
      if ((err as Error)?.name !== 'NotFound') throw err
      // a miss is remembered too: a `cp` looks its target up before it creates it
      this.#attrs.set(path, null)
      // and the directory is listed, so the next names looked up there (a loop of creates) cost no stat
      if (listed === undefined && this.#bigDirs.get(parent) === undefined) {
        await this.#list(parent, { pagesMax: 1 }).catch((listErr: unknown) => {
          log('listing %s after a miss in it failed: %s', parent, (listErr as Error)?.message)
        })
      }
      throw err
    }
    this.#attrs.set(path, attr)
    return attr
  }

  /** The names in a directory, every page of it; each entry's attributes are cached on the way (`ls -l`). */
  async readdir (path: string): Promise<DirEntry[]> {
    const listed = this.#dirs.get(path) ?? await this.#list(path)
    return this.#withCreated(path, [...listed.values()])
  }

  /** A listing with the files this mount created in `path` that are not committed yet (they exist for its users). */
  #withCreated (path: string, entries: DirEntry[]): DirEntry[] {
    const names = new Set(entries.map((e) => e.name))
    const created: DirEntry[] = []
    for (const h of this.#handles.values()) {
      const name = baseOf(h.path)
      if (!h.created || h.unlinked || parentOf(h.path) !== path || names.has(name)) continue
      names.add(name)
      created.push({ path: h.path, name, type: 'file', size: h.spool?.size ?? 0 })
    }
    return created.length === 0 ? entries : [...entries, ...created]
  }

  /**
   * Every page of a directory from the cluster, cached with its entries' attributes unless the mount
   * changed the directory meanwhile (the answer may predate the change: it is returned, not kept).
   * With `pagesMax`, a directory longer than that is not cached but remembered as big.
   */
  async #list (path: string, options: { pagesMax?: number } = {}): Promise<Listing> {
    const entries: Listing = new Map()
    const inFlight: ListingInFlight = { dir: path, stale: false }
    this.#listing.add(inFlight)
    try {
      let after: string | undefined
      for (let pages = 1; ; pages++) {
        const page = await this.#remote.list(path, after)
        for (const e of page.entries) {
          // fs.ls of a file lists the file itself: the kernel asks only directories, so that is a race
          if (e.path === path && e.type === 'file') throw new NotFoundError(`${path} is no longer a directory`, { path })
          entries.set(e.name, e)
        }
        if (entries.size > READDIR_ENTRIES_MAX) {
          throw new FailedPreconditionError(`${path} holds more than ${READDIR_ENTRIES_MAX} entries: list it with dfs fs ls --limit`, { path })
        }
        if (!page.more || page.entries.length === 0) break
        if (options.pagesMax !== undefined && pages >= options.pagesMax) {
          this.#bigDirs.set(path, true)
          return entries
        }
        after = page.entries[page.entries.length - 1].name
      }
    } finally {
      this.#listing.delete(inFlight)
    }
    if (inFlight.stale) return entries
    for (const e of entries.values()) {
      this.#attrs.set(join(path, e.name), e.type === 'dir' ? DIR_ATTR : { type: 'file', size: e.size, mtimeMs: e.mtimeMs ?? 0 })
    }
    this.#dirs.set(path, entries)
    return entries
  }

  async statfs (): Promise<MountCapacity> {
    const cached = this.#capacity.get('cluster')
    if (cached !== undefined) return cached
    const c = await this.#remote.capacity()
    this.#capacity.set('cluster', c)
    return c
  }

  /** Opens an existing file; `flags` as open(2) takes them. Returns the handle's number (never 0). */
  async open (path: string, flags: number): Promise<number> {
    const writable = (flags & O_ACCMODE) !== constants.O_RDONLY
    if (writable) this.#writable(path)
    this.#roomForHandle(path)
    const attr = await this.getattr(path)
    if (attr.type === 'dir' && writable) throw new IsADirectoryError(`${path} is a directory`, { path })
    const truncate = (flags & constants.O_TRUNC) !== 0
    const spoolPath = this.#spoolPath()
    // a file created here and not committed yet has its bytes only in its creator's spool
    const creator = this.#created(path)[0]?.spool
    if (creator !== undefined) {
      if (!truncate) await creator.copyTo(spoolPath)
      const fd = this.#add(path, await Spool.open(spoolPath, { keep: !truncate, memoryBytesMax: SMALL_COMMIT_BYTES_MAX }), 0)
      this.#handle(fd).dirty = writable && truncate
      return fd
    }
    if (!writable) return this.#add(path, undefined, attr.size)
    let spool: Spool
    if (!truncate && attr.size > 0) {
      // the spool starts as the file's committed bytes: a write at an offset changes only those
      await this.#remote.download(path, spoolPath)
      spool = await Spool.open(spoolPath, { keep: true })
    } else {
      spool = await Spool.open(spoolPath, { memoryBytesMax: SMALL_COMMIT_BYTES_MAX })
    }
    const fd = this.#add(path, spool, 0)
    // an O_TRUNC of a non-empty file is a change to commit even if nothing is written
    if (truncate && attr.size > 0) this.#handle(fd).dirty = true
    return fd
  }

  /** Creates `path` empty (committed at once) and opens it for writing. */
  async create (path: string): Promise<number> {
    this.#writable(path)
    this.#roomForHandle(path)
    const spool = await Spool.open(this.#spoolPath(), { memoryBytesMax: SMALL_COMMIT_BYTES_MAX })
    // its directory's listing gets its name at its first commit; until then the handle shows it
    this.#attrs.delete(path)
    const fd = this.#add(path, spool, 0)
    const h = this.#handle(fd)
    // nothing is put yet: the first commit (close, fsync) puts the file, empty or not
    h.created = true
    h.dirty = true
    return fd
  }

  /** Reads into `into` from `offset`; the count is short only at the end of the file. */
  async read (fd: number, into: Uint8Array, offset: number): Promise<number> {
    const h = this.#handle(fd)
    const spool = h.spool
    if (spool !== undefined) return await this.#locked(h, async () => await spool.read(into, offset))
    return await this.#readRemote(h, into, offset)
  }

  async write (fd: number, bytes: Uint8Array, offset: number): Promise<number> {
    const h = this.#handle(fd)
    const spool = h.spool
    if (spool === undefined) throw new BadHandleError(`handle ${fd} of ${h.path} is not open for writing`, { fd, path: h.path })
    const n = await this.#locked(h, async () => await spool.write(bytes, offset))
    h.dirty = true
    return n
  }

  /** close(2) of a descriptor of the handle: commits its writes, and says so if that failed. */
  async flush (fd: number): Promise<void> {
    await this.#commit(this.#handle(fd))
  }

  async fsync (fd: number): Promise<void> {
    await this.#commit(this.#handle(fd))
  }

  /** The last close of a handle: commits what is left (flush normally did) and lets go of its spool. */
  async release (fd: number): Promise<void> {
    const h = this.#handles.get(fd)
    if (h === undefined) return
    try {
      await this.#commit(h)
    } catch (err) {
      // the kernel ignores release's answer: this line is all that says the last writes are lost
      log.error('could not commit %s at its last close, its last writes are lost: %s', h.path, (err as Error)?.message)
      throw err
    } finally {
      this.#handles.delete(fd)
      this.#dropWindows(h)
      await h.spool?.discard()
    }
  }

  async truncate (path: string, size: number): Promise<void> {
    this.#writable(path)
    const writers = [...this.#handles.values()].filter((h) => h.spool !== undefined && h.path === path)
    if (writers.length > 0) {
      // the open writers' spools change; their close commits it
      for (const h of writers) await this.ftruncate(h.fd, size)
      return
    }
    const attr = await this.getattr(path)
    if (attr.type === 'dir') throw new IsADirectoryError(`${path} is a directory`, { path })
    if (attr.size === size) return
    const spoolPath = this.#spoolPath()
    let spool: Spool
    if (size > 0 && attr.size > 0) {
      await this.#remote.download(path, spoolPath)
      spool = await Spool.open(spoolPath, { keep: true })
    } else {
      spool = await Spool.open(spoolPath, { memoryBytesMax: SMALL_COMMIT_BYTES_MAX })
    }
    let done = false
    try {
      await spool.truncate(size)
      await this.#put(path, spool)
      done = true
    } finally {
      this.#changed(path, done ? fileEntry(path, size) : undefined)
      await spool.discard()
    }
  }

  async ftruncate (fd: number, size: number): Promise<void> {
    const h = this.#handle(fd)
    const spool = h.spool
    if (spool === undefined) {
      await this.truncate(h.path, size)
      return
    }
    await this.#locked(h, async () => { await spool.truncate(size) })
    h.dirty = true
  }

  async unlink (path: string): Promise<void> {
    this.#writable(path)
    const created = this.#created(path)
    let gone = false
    try {
      await this.#remote.remove(path)
      gone = true
    } catch (err) {
      // a file created here and not committed yet exists only here; the library's hidden names go at release
      const localOnly = created.length > 0 || baseOf(path).startsWith(HIDDEN_PREFIX)
      if (!(localOnly && (err as Error)?.name === 'NotFound')) throw err
      gone = true
    } finally {
      this.#changed(path, gone ? null : undefined)
    }
    for (const h of created) h.unlinked = true
  }

  async mkdir (path: string): Promise<void> {
    this.#writable(path)
    let made = false
    try {
      await this.#remote.mkdir(path)
      made = true
    } finally {
      this.#changed(path, made ? { path, name: baseOf(path), type: 'dir', size: 0 } : undefined)
    }
  }

  async rmdir (path: string): Promise<void> {
    this.#writable(path)
    let removed = false
    try {
      await this.#remote.rmdir(path)
      removed = true
    } finally {
      this.#changed(path, removed ? null : undefined, { subtree: true })
    }
  }

  async rename (from: string, to: string): Promise<void> {
    this.#writable(from)
    if (topLevelOf(from) !== topLevelOf(to)) {
      throw new CrossDeviceError(`${from} and ${to} are in different top-level directories`, { from, to })
    }
    // what the listings say of `to` after the move: what `from` was (unknown: `to`'s listing is dropped)
    let moved: DirEntry | undefined
    try {
      // a file created here and not committed yet moves here only: its commit puts it at `to` (a file
      // the cluster may hold at `from` stays there, so both listings are asked again)
      if (this.#created(from).length === 0) {
        const was = this.#dirs.get(parentOf(from))?.get(baseOf(from))
        await this.#remote.rename(from, to)
        if (was !== undefined) moved = { ...was, path: to, name: baseOf(to) }
      }
    } finally {
      this.#changed(from, moved !== undefined ? null : undefined, { subtree: true })
      this.#changed(to, moved, { subtree: true })
    }
    // open files move with their path: their next commit goes where they are now
    for (const h of this.#handles.values()) {
      if (within(h.path, from)) h.path = to + h.path.slice(from.length)
    }
  }

  /** chmod and chown: accepted on an existing path and not kept (see the class comment). */
  async setattr (path: string): Promise<void> {
    this.#writable(path)
    await this.getattr(path)
  }

  /** utimens: a file's mtime is kept (see the class comment); a directory's is accepted. */
  async utimens (path: string, mtimeMs: number): Promise<void> {
    this.#writable(path)
    const attr = await this.getattr(path)
    if (attr.type === 'dir') return
    // what the handles wrote goes first: otherwise their commit would come after, with its own time
    for (const h of [...this.#handles.values()]) if (h.path === path && !h.unlinked) await this.#commit(h)
    try {
      await this.#remote.utime(path, Math.max(0, Math.floor(mtimeMs)))
    } finally {
      this.#attrs.delete(path)
    }
  }

  /** Commits every handle with uncommitted writes (at unmount), returning how many failed. */
  async commitAll (): Promise<number> {
    let failed = 0
    for (const h of [...this.#handles.values()]) {
      try {
        await this.#commit(h)
      } catch (err) {
        failed += 1
        log.error('could not commit %s: %s', h.path, (err as Error)?.message)
      }
    }
    return failed
  }

  /** Lets go of every handle's spool, committed or not (after commitAll, at unmount). */
  async discardAll (): Promise<void> {
    for (const h of [...this.#handles.values()]) {
      this.#handles.delete(h.fd)
      this.#dropWindows(h)
      await h.spool?.discard()
    }
  }

  #writable (path: string): void {
    if (this.#readOnly) throw new ReadOnlyMountError(`the mount is read-only: ${path} cannot change`, { path })
  }

  #roomForHandle (path: string): void {
    if (this.#handles.size >= MOUNT_HANDLES_MAX) {
      throw new TooManyOpenFilesError(`${MOUNT_HANDLES_MAX} files are open through the mount`, { path, handlesMax: MOUNT_HANDLES_MAX })
    }
  }

  #add (path: string, spool: Spool | undefined, size: number): number {
    // numbers are reused only after 2^31 opens, and never one still open (0 means "none" to FUSE)
    let fd = this.#nextFd
    while (this.#handles.has(fd)) fd = fd >= 0x7fffffff ? 1 : fd + 1
    this.#nextFd = fd >= 0x7fffffff ? 1 : fd + 1
    this.#handles.set(fd, { fd, path, spool, dirty: false, created: false, unlinked: false, lock: Promise.resolve(), size, windows: new Map(), nextOffset: 0, version: undefined })
    return fd
  }

  /** The open handles of files created at `path` by this mount and not committed yet. */
  #created (path: string): Handle[] {
    return [...this.#handles.values()].filter((h) => h.created && !h.unlinked && h.path === path)
  }

  #handle (fd: number): Handle {
    const h = this.#handles.get(fd)
    if (h === undefined) throw new BadHandleError(`no open file with handle ${fd}`, { fd })
    return h
  }

  #spoolPath (): string {
    this.#spoolSeq += 1
    return join(this.#spoolDir, `spool-${this.#spoolSeq}`)
  }

  /** Runs `fn` after every earlier locked call of `h`; a failure fails only its own caller. */
  async #locked<T> (h: Handle, fn: () => Promise<T>): Promise<T> {
    const run = h.lock.then(fn, fn)
    h.lock = run.catch(() => {})
    return await run
  }

  async #commit (h: Handle): Promise<void> {
    const spool = h.spool
    if (spool === undefined) return
    await this.#locked(h, async () => {
      if (!h.dirty) return
      h.dirty = false
      if (h.unlinked || baseOf(h.path).startsWith(HIDDEN_PREFIX)) return
      const path = h.path
      let done = false
      try {
        await this.#put(path, spool)
        h.created = false
        done = true
      } catch (err) {
        // still to commit: a later flush, fsync or release tries again
        h.dirty = true
        throw err
      } finally {
        this.#changed(path, done ? fileEntry(path, spool.size) : undefined)
      }
    })
  }

  /** The spool's bytes as the file at `path`: a small spool is read whole and sent from memory. */
  async #put (path: string, spool: Spool): Promise<void> {
    const size = spool.size
    if (size <= SMALL_COMMIT_BYTES_MAX || spool.inMemory) await this.#remote.put(path, await spool.bytes(), size)
    else await this.#remote.put(path, spool.path, size)
  }

  /**
   * Records a change the mount made at `path`: what the caches say of it (its attributes, its own
   * listing; with `subtree`, everything under it) is dropped, and an fs.ls under way in its directory
   * or below it is not kept. `now` is what its directory's cached listing says of it after the change:
   * its entry, null when it is gone, or undefined when the change may or may not have happened (a
   * failed call): then that listing is dropped and the next lookup asks the cluster. The listing
   * keeps the expiry it had: a change made elsewhere still shows once it expires.
   */
  #changed (path: string, now: DirEntry | null | undefined, options: { subtree?: boolean } = {}): void {
    const parent = parentOf(path)
    this.#attrs.delete(path)
    this.#dirs.delete(path)
    this.#capacity.clear()
    if (options.subtree === true) {
      this.#attrs.deleteWhere((k) => within(k, path))
      this.#dirs.deleteWhere((k) => within(k, path))
    }
    for (const l of this.#listing) if (l.dir === parent || within(l.dir, path)) l.stale = true
    const listed = this.#dirs.get(parent)
    if (listed === undefined) return
    if (now === undefined || (now !== null && listed.size >= READDIR_ENTRIES_MAX)) this.#dirs.delete(parent)
    else if (now === null) listed.delete(baseOf(path))
    else listed.set(now.name, now)
  }

  /**
   * A reader's read: sequential ones (starting at 0 or near where the last ended; the kernel sends its
   * read-ahead concurrently, so not exactly there) are served from aligned windows with
   * READ_AHEAD_WINDOWS more in flight; a random one fetches just its range.
   */
  async #readRemote (h: Handle, into: Uint8Array, offset: number): Promise<number> {
    const want = Math.max(0, Math.min(into.byteLength, h.size - offset))
    const sequential = offset === 0 || (offset >= h.nextOffset - READ_AHEAD_BYTES && offset <= h.nextOffset + READ_AHEAD_WINDOWS * READ_AHEAD_BYTES)
    let done = 0
    while (done < want) {
      const at = offset + done
      const aligned = at - (at % READ_AHEAD_BYTES)
      let n: number
      if (sequential || h.windows.has(aligned)) {
        const w = this.#window(h, aligned)
        w.readers += 1
        try {
          n = this.#copy(this.#sameVersion(h, await w.read), at - aligned, into, done, want - done)
        } finally {
          w.readers -= 1
          this.#recycle(w)
        }
      } else {
        n = this.#copy(this.#sameVersion(h, await this.#remote.read(h.path, at, want - done)), 0, into, done, want - done)
      }
      // the file ended early (it shrank since it was opened): a short read
      if (n === 0) break
      done += n
    }
    h.nextOffset = offset + done
    if (sequential) {
      const here = h.nextOffset - (h.nextOffset % READ_AHEAD_BYTES)
      for (let k = 1; k <= READ_AHEAD_WINDOWS; k++) {
        const next = here + k * READ_AHEAD_BYTES
        if (next < h.size) this.#window(h, next)
      }
    }
    return done
  }

  /** The bytes of a range read, if it read the version the handle's reader has seen (else StaleFile). */
  #sameVersion (h: Handle, read: RemoteRead): Uint8Array {
    h.version ??= read.version
    if (read.version !== h.version) {
      throw new StaleFileError(`${h.path} was replaced (version ${read.version}) while open for reading version ${h.version}`,
        { path: h.path, opened: h.version, now: read.version })
    }
    return read.bytes
  }

  /** Copies up to `most` bytes of `bytes` from `from` into `into` at `at`; how many (0 past its end). */
  #copy (bytes: Uint8Array, from: number, into: Uint8Array, at: number, most: number): number {
    if (from >= bytes.byteLength) return 0
    const n = Math.min(most, bytes.byteLength - from)
    into.set(bytes.subarray(from, from + n), at)
    return n
  }

  /**
   * The reader's window at `start`, fetched now unless it is already there or in flight. A caller that
   * reads its bytes after an await counts itself in `readers` first (synchronously, so the window's
   * buffer cannot be reused under it).
   */
  #window (h: Handle, start: number): Window {
    const known = h.windows.get(start)
    if (known !== undefined) return known
    const buffer = this.#buffers.take()
    const w: Window = { read: this.#remote.read(h.path, start, READ_AHEAD_BYTES, buffer), buffer, readers: 0, settled: false, evicted: false }
    h.windows.set(start, w)
    w.read.then(() => {
      w.settled = true
      this.#recycle(w)
    }, () => {
      // a failed window is forgotten (the next read tries again); its rejection is its reader's
      w.settled = true
      if (h.windows.get(start) === w) h.windows.delete(start)
      this.#evict(w)
    })
    for (const [k, old] of h.windows) {
      if (h.windows.size <= READ_WINDOWS_MAX) break
      h.windows.delete(k)
      this.#evict(old)
    }
    return w
  }

  /** A window that left its reader's set: its buffer goes back once nothing can touch it. */
  #evict (w: Window): void {
    w.evicted = true
    this.#recycle(w)
  }

  #recycle (w: Window): void {
    if (!w.evicted || !w.settled || w.readers > 0 || w.buffer === undefined) return
    const buffer = w.buffer
    w.buffer = undefined
    this.#buffers.give(buffer)
  }

  /** Lets go of a handle's windows (at its release). */
  #dropWindows (h: Handle): void {
    for (const w of h.windows.values()) this.#evict(w)
    h.windows.clear()
  }

  /** Window buffers in use, for tests: 0 once every reader is released and every read settled. */
  get readBuffersInUse (): number { return this.#buffers.out }
}
