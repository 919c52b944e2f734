import { readFile, writeFile } from 'node:fs/promises'
import {
  AlreadyExistsError, DirectoryNotEmptyError, InvalidRangeError, IsADirectoryError, NotADirectoryError, NotFoundError, type DirEntry
} from '@dfs/api'
import type { RemoteAttr, RemoteCapacity, RemoteFs, RemoteRead } from '../../src/mount/remote.js'

/**
 * An in-memory cluster for MountOps' tests: files with bytes and mtimes, explicit directories, and
 * implicit ones above every file, with the typed errors the nodes answer. `calls` counts each call by
 * name; `failNext` makes the next call of a name throw.
 */
export class MemoryRemote implements RemoteFs {
  readonly files = new Map<string, { bytes: Buffer, mtimeMs: number, version: number }>()
  /** Range reads answered in a buffer the caller gave. */
  intoReads = 0
  #version = 0
  readonly dirs = new Set<string>()
  readonly calls = new Map<string, number>()
  /** Pages fs.ls answers at most this many entries. */
  pageSize = 2
  readonly #fail = new Map<string, Error>()
  capacityBytes = 1 << 30

  failNext (call: string, err: Error): void {
    this.#fail.set(call, err)
  }

  #call (name: string): void {
    this.calls.set(name, (this.calls.get(name) ?? 0) + 1)
    const err = this.#fail.get(name)
    if (err !== undefined) {
      this.#fail.delete(name)
      throw err
    }
  }

  count (name: string): number {
    return this.calls.get(name) ?? 0
  }

  isDir (path: string): boolean {
    if (path === '/' || this.dirs.has(path)) return true
    for (const p of [...this.files.keys(), ...this.dirs]) if (p.startsWith(path + '/')) return true
    return false
  }

  #parentsOk (path: string): void {
    for (let i = path.indexOf('/', 1); i > 0; i = path.indexOf('/', i + 1)) {
      const p = path.slice(0, i)
      if (this.files.has(p)) throw new NotADirectoryError(`${p} is a file`, { path: p })
    }
  }

  async stat (path: string): Promise<RemoteAttr> {
    this.#call('stat')
    const f = this.files.get(path)
    if (f !== undefined) return { type: 'file', size: f.bytes.byteLength, mtimeMs: f.mtimeMs }
    if (this.isDir(path)) return { type: 'dir', size: 0, mtimeMs: 0 }
    throw new NotFoundError(`no file at ${path}`, { path })
  }

  async list (path: string, after?: string): Promise<{ entries: DirEntry[], more: boolean }> {
    this.#call('list')
    if (!this.isDir(path)) throw new NotFoundError(`no directory at ${path}`, { path })
    const prefix = path === '/' ? '/' : path + '/'
    const names = new Map<string, DirEntry>()
    for (const [p, f] of this.files) {
      if (!p.startsWith(prefix)) continue
      const rest = p.slice(prefix.length)
      const name = rest.split('/')[0]
      names.set(name, rest.includes('/')
        ? { path: prefix + name, name, type: 'dir', size: 0 }
        : { path: p, name, type: 'file', size: f.bytes.byteLength, mtimeMs: f.mtimeMs })
    }
    for (const d of this.dirs) {
      if (!d.startsWith(prefix)) continue
      const name = d.slice(prefix.length).split('/')[0]
      if (!names.has(name)) names.set(name, { path: prefix + name, name, type: 'dir', size: 0 })
    }
    const sorted = [...names.values()].sort((a, b) => a.name < b.name ? -1 : 1).filter((e) => after === undefined || e.name > after)
    return { entries: sorted.slice(0, this.pageSize), more: sorted.length > this.pageSize }
  }

  async read (path: string, offset: number, length: number, into?: Uint8Array): Promise<RemoteRead> {
    this.#call('read')
    const f = this.files.get(path)
    if (f === undefined) throw new NotFoundError(`no file at ${path}`, { path })
    if (offset > f.bytes.byteLength) throw new InvalidRangeError('past the end', { offset })
    const bytes = f.bytes.subarray(offset, offset + length)
    const version = String(f.version)
    if (into === undefined || into.byteLength < bytes.byteLength) return { bytes: Uint8Array.from(bytes), version }
    // as over the network: the caller's buffer fills over time (half now, half a turn later) and holds
    // these bytes until the caller reuses it
    this.intoReads += 1
    const view = into.subarray(0, bytes.byteLength)
    const half = bytes.byteLength >> 1
    view.set(bytes.subarray(0, half))
    await new Promise((resolve) => setImmediate(resolve))
    view.set(bytes.subarray(half), half)
    await new Promise((resolve) => setImmediate(resolve))
    return { bytes: view, version }
  }

  async download (path: string, local: string): Promise<void> {
    this.#call('download')
    const f = this.files.get(path)
    if (f === undefined) throw new NotFoundError(`no file at ${path}`, { path })
    await writeFile(local, f.bytes)
  }

  async put (path: string, from: string | Uint8Array, size: number): Promise<void> {
    this.#call('put')
    this.#call(typeof from === 'string' ? 'putFromFile' : 'putFromMemory')
    if (this.isDir(path)) throw new IsADirectoryError(`${path} is a directory`, { path })
    this.#parentsOk(path)
    const bytes = typeof from === 'string' ? await readFile(from) : Buffer.from(from)
    if (bytes.byteLength !== size) throw new Error(`put of ${size} bytes read ${bytes.byteLength}`)
    this.files.set(path, { bytes, mtimeMs: Date.now(), version: ++this.#version })
  }

  async remove (path: string): Promise<void> {
    this.#call('remove')
    if (!this.files.delete(path)) {
      if (this.isDir(path)) throw new IsADirectoryError(`${path} is a directory`, { path })
      throw new NotFoundError(`no file at ${path}`, { path })
    }
  }

  async utime (path: string, mtimeMs: number): Promise<void> {
    this.#call('utime')
    const f = this.files.get(path)
    if (f === undefined) throw new NotFoundError(`no file at ${path}`, { path })
    f.mtimeMs = mtimeMs
  }

  async rename (from: string, to: string): Promise<void> {
    this.#call('rename')
    const f = this.files.get(from)
    if (f !== undefined) {
      this.files.delete(from)
      this.files.set(to, f)
      return
    }
    if (!this.isDir(from)) throw new NotFoundError(`no file at ${from}`, { path: from })
    if (this.isDir(to)) throw new AlreadyExistsError(`${to} exists`, { path: to })
    for (const [p, file] of [...this.files]) {
      if (p.startsWith(from + '/')) { this.files.delete(p); this.files.set(to + p.slice(from.length), file) }
    }
    for (const d of [...this.dirs]) {
      if (d === from || d.startsWith(from + '/')) { this.dirs.delete(d); this.dirs.add(to + d.slice(from.length)) }
    }
  }

  async mkdir (path: string): Promise<void> {
    this.#call('mkdir')
    if (this.files.has(path)) throw new AlreadyExistsError(`${path} is a file`, { path })
    this.#parentsOk(path)
    this.dirs.add(path)
  }

  async rmdir (path: string): Promise<void> {
    this.#call('rmdir')
    if (!this.isDir(path)) throw new NotFoundError(`no directory at ${path}`, { path })
    const inside = [...this.files.keys(), ...this.dirs].filter((p) => p.startsWith(path + '/')).length
    if (inside > 0) throw new DirectoryNotEmptyError(`${path} is not empty`, { entries: inside })
    this.dirs.delete(path)
  }

  async capacity (): Promise<RemoteCapacity> {
    this.#call('capacity')
    let used = 0
    for (const f of this.files.values()) used += f.bytes.byteLength
    return { usedBytes: used, capacityBytes: this.capacityBytes }
  }

  /** A file put "by another client" (dfs fs put), bypassing the mount. */
  async putDirect (path: string, bytes: Buffer): Promise<void> {
    this.files.set(path, { bytes, mtimeMs: Date.now(), version: ++this.#version })
  }
}
