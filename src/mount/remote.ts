import { Writable } from 'node:stream'
import type { Consistency, DirEntry } from '@dfs/api'
import { getFile, putFile } from '../client/files.js'
import type { DfsClient } from '../client/index.js'
import type { NodePool } from './failover.js'

/** An upload body of one chunk. */
async function * once (bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes
}

/** Most entries one `fs.ls` page asks for. */
export const LIST_PAGE_ENTRIES = 1000
/** Most bytes one range read returns (a read-ahead window is at most this). */
export const READ_BYTES_MAX = 16 * 1024 * 1024

/** What the mount knows of a path: a file's size and mtime, or that it is a directory. */
export interface RemoteAttr {
  type: 'file' | 'dir'
  size: number
  mtimeMs: number
}

/** A range read: its bytes, and which version of the file they are from. */
export interface RemoteRead {
  bytes: Uint8Array
  /**
   * The file version's identity: its version number and mtime (a file removed and put again may
   * start its versions over, never at the same mtime); '' when the range was past the end.
   */
  version: string
}

/** The cluster's total capacity and use, summed over the members that reported theirs. */
export interface RemoteCapacity {
  usedBytes: number
  capacityBytes: number
}

/**
 * The file calls the mount makes, in the caller's namespace: the RPC contract's fs.* and
 * cluster.nodes, with the mount's consistency and tenant. Errors are the typed dfs errors the nodes
 * answer. An in-memory implementation backs the unit tests of MountOps.
 */
export interface RemoteFs {
  /** A file's attributes, or `type: 'dir'` for a directory; NotFound when neither is there. */
  stat: (path: string) => Promise<RemoteAttr>
  /** One page of a directory, after the name `after`. */
  list: (path: string, after?: string) => Promise<{ entries: DirEntry[], more: boolean }>
  /**
   * Bytes [offset, offset + length) of a file, clipped at its end (empty at or past the end), and its
   * version. With `into` (at least `length` bytes, the caller's to reuse once this settles) the bytes
   * are read into it and answered as a view of it.
   */
  read: (path: string, offset: number, length: number, into?: Uint8Array) => Promise<RemoteRead>
  /** The whole file into the local file `local`. */
  download: (path: string, local: string) => Promise<void>
  /** The local file at the path `from`, or the bytes `from`, (`size` bytes) as the file at `path`, in one atomic put. */
  put: (path: string, from: string | Uint8Array, size: number) => Promise<void>
  remove: (path: string) => Promise<void>
  rename: (from: string, to: string) => Promise<void>
  /** Sets a file's modification time. */
  utime: (path: string, mtimeMs: number) => Promise<void>
  mkdir: (path: string) => Promise<void>
  rmdir: (path: string) => Promise<void>
  capacity: () => Promise<RemoteCapacity>
}

export interface ClusterFsInit {
  pool: NodePool<DfsClient>
  consistency?: Consistency
  tenant?: string
}

/**
 * RemoteFs through a NodePool of client sessions. Reads and puts move to another node when theirs
 * fails (a put's spool still holds every byte, and putting the same bytes twice leaves one file);
 * rm, mv, mkdir and rmdir do not (they may have happened), so a node failure fails them (EIO).
 */
export class ClusterFs implements RemoteFs {
  readonly #pool: NodePool<DfsClient>
  readonly #consistency: Consistency | undefined
  readonly #tenant: { tenant?: string }

  constructor (init: ClusterFsInit) {
    this.#pool = init.pool
    this.#consistency = init.consistency
    this.#tenant = init.tenant !== undefined ? { tenant: init.tenant } : {}
  }

  #read (): { consistency?: Consistency, tenant?: string } {
    return { ...(this.#consistency !== undefined ? { consistency: this.#consistency } : {}), ...this.#tenant }
  }

  async stat (path: string): Promise<RemoteAttr> {
    try {
      const s = await this.#pool.run(async (c) => await c.call('fs.stat', { path, ...this.#read() }), { retry: true })
      return { type: 'file', size: s.size, mtimeMs: s.mtimeMs }
    } catch (err) {
      // fs.stat answers IsADirectory for a directory: that is its attribute
      if ((err as Error)?.name === 'IsADirectory') return { type: 'dir', size: 0, mtimeMs: 0 }
      throw err
    }
  }

  async list (path: string, after?: string): Promise<{ entries: DirEntry[], more: boolean }> {
    const r = await this.#pool.run(async (c) => await c.call('fs.ls', {
      path, limit: LIST_PAGE_ENTRIES, ...(after !== undefined ? { after } : {}), ...this.#read()
    }), { retry: true })
    return { entries: r.entries, more: r.more }
  }

  async read (path: string, offset: number, length: number, buffer?: Uint8Array): Promise<RemoteRead> {
    const want = Math.min(length, READ_BYTES_MAX)
    return await this.#pool.run(async (c) => {
      // Each chunk is copied as it arrives into one buffer (the caller's, else one of the served
      // length) and dropped, so chunks die young (see MountOps' window buffers for why that matters)
      let into: Uint8Array | undefined
      let bytes = 0
      const sink = new Writable({
        write (chunk: Buffer, _encoding, done) {
          // getFile sends exactly the range it announced; more is a broken node, refused before it is kept
          if (into === undefined || bytes + chunk.byteLength > into.byteLength) { done(new Error(`fs.get of ${path} sent more than it announced`)); return }
          into.set(chunk, bytes)
          bytes += chunk.byteLength
          done()
        }
      })
      const onStart = (served: number): void => {
        const n = Math.min(served, want)
        into = buffer !== undefined && buffer.byteLength >= n ? buffer.subarray(0, n) : Buffer.allocUnsafe(n)
      }
      let version: string
      try {
        const got = await getFile(c, path, sink, onStart, undefined, { offset, length: want, ...this.#read() })
        version = `${got.version}@${got.mtimeMs}`
      } catch (err) {
        // a range that starts past the end (the file shrank since it was opened) reads as the end;
        // a reader that saw a version is told its file changed
        if ((err as Error)?.name === 'InvalidRange') return { bytes: new Uint8Array(0), version: '' }
        throw err
      }
      // getFile checked that exactly the announced bytes arrived
      return { bytes: into === undefined ? new Uint8Array(0) : into.subarray(0, bytes), version }
    }, { retry: true })
  }

  async download (path: string, local: string): Promise<void> {
    await this.#pool.run(async (c) => { await getFile(c, path, local, undefined, undefined, this.#read()) }, { retry: true })
  }

  async put (path: string, from: string | Uint8Array, size: number): Promise<void> {
    if (typeof from !== 'string' && from.byteLength !== size) throw new Error(`put of ${path}: ${from.byteLength} bytes given as ${size}`)
    await this.#pool.run(async (c) => {
      // bytes in memory go as one upload of them (putFile's path, without the local file's stat and stream)
      const r = typeof from === 'string'
        ? await putFile(c, from, path, undefined, this.#tenant)
        : await c.rpc.upload('fs.put', { path, size, ...this.#tenant }, once(from), { timeoutMs: c.timeoutMs })
      // the spool does not change while it is committed (the handle's lock): anything else is a bug
      if (r.size !== size) throw new Error(`put of ${path} stored ${r.size} bytes, the spool holds ${size}`)
    }, { retry: true })
  }

  async remove (path: string): Promise<void> {
    await this.#pool.run(async (c) => await c.call('fs.rm', { path, ...this.#tenant }), { retry: false })
  }

  async rename (from: string, to: string): Promise<void> {
    await this.#pool.run(async (c) => await c.call('fs.mv', { from, to, replace: true, ...this.#tenant }), { retry: false })
  }

  async utime (path: string, mtimeMs: number): Promise<void> {
    // setting a time twice leaves it set: safe to retry on another node
    await this.#pool.run(async (c) => await c.call('fs.utime', { path, mtimeMs, ...this.#tenant }), { retry: true })
  }

  async mkdir (path: string): Promise<void> {
    await this.#pool.run(async (c) => await c.call('fs.mkdir', { path, ...this.#tenant }), { retry: false })
  }

  async rmdir (path: string): Promise<void> {
    await this.#pool.run(async (c) => await c.call('fs.rmdir', { path, ...this.#tenant }), { retry: false })
  }

  async capacity (): Promise<RemoteCapacity> {
    const { nodes } = await this.#pool.run(async (c) => await c.call('cluster.nodes', {}), { retry: true })
    let usedBytes = 0
    let capacityBytes = 0
    for (const n of nodes) {
      if (n.health === 'failed') continue
      usedBytes += n.usedBytes
      capacityBytes += n.capacityBytes ?? 0
    }
    return { usedBytes, capacityBytes }
  }

  /** Every member's addresses (cluster.nodes), for the pool to fail over to. */
  async memberAddrs (): Promise<string[]> {
    const { nodes } = await this.#pool.run(async (c) => await c.call('cluster.nodes', {}), { retry: true })
    return nodes.flatMap((n) => n.addrs)
  }
}
