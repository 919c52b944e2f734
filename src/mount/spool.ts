import { copyFile, open, unlink, writeFile, type FileHandle } from 'node:fs/promises'

export interface SpoolOptions {
  /** Take the file at the path as it is (e.g. a downloaded copy of the file being changed) rather than start empty. */
  keep?: boolean
  /**
   * A new spool keeps its bytes in memory while they fit this many, and moves them to its file when
   * a write or truncate goes past it (default 0: on disk from the start). Ignored with `keep`.
   */
  memoryBytesMax?: number
}

/**
 * What holds a file opened for writing through the mount until it is committed as one `fs.put`
 * (close, fsync): a local temporary file, mode 0600 (it holds the user's data); a small new file's
 * bytes stay in memory (`memoryBytesMax`) until they outgrow it, so a small create touches no disk.
 * Writes at any offset, reads of what was written (a file opened read-write reads its own writes),
 * truncation. `size` is the file's logical size: the largest end written, or the size truncated to.
 *
 * Invariants: until discard, exactly one of #fh and #mem is set; once on disk, a spool stays there;
 * #mem.byteLength <= memoryBytesMax, and its bytes past #size are zeros (a later write past the end
 * leaves a hole that must read as zeros).
 */
export class Spool {
  readonly path: string
  #fh: FileHandle | undefined
  #mem: Buffer | undefined
  readonly #memoryBytesMax: number
  #size: number
  #closed = false

  private constructor (path: string, fh: FileHandle | undefined, size: number, memoryBytesMax: number) {
    this.path = path
    this.#fh = fh
    this.#mem = fh === undefined ? Buffer.alloc(0) : undefined
    this.#size = size
    this.#memoryBytesMax = memoryBytesMax
  }

  /** Opens the spool at `path`: created empty (in memory while it fits `memoryBytesMax`), or taken as it is when `keep`. */
  static async open (path: string, options: SpoolOptions = {}): Promise<Spool> {
    const memoryBytesMax = options.memoryBytesMax ?? 0
    if (!(Number.isSafeInteger(memoryBytesMax) && memoryBytesMax >= 0)) throw new Error(`spool memoryBytesMax ${memoryBytesMax}`)
    if (options.keep !== true && memoryBytesMax > 0) return new Spool(path, undefined, 0, memoryBytesMax)
    const fh = await open(path, options.keep === true ? 'r+' : 'w+', 0o600)
    // a spool made here starts empty ('w+' truncates): only a kept file's size is asked
    if (options.keep !== true) return new Spool(path, fh, 0, 0)
    try {
      const { size } = await fh.stat()
      return new Spool(path, fh, size, 0)
    } catch (err) {
      await fh.close().catch(() => {})
      throw err
    }
  }

  get size (): number {
    return this.#size
  }

  /** Whether the bytes are in memory (no file at `path` yet). */
  get inMemory (): boolean {
    return this.#mem !== undefined
  }

  /** Writes `bytes` at `offset` (a hole before it reads as zeros); returns the bytes written. */
  async write (bytes: Uint8Array, offset: number): Promise<number> {
    this.#check()
    const end = offset + bytes.byteLength
    if (this.#mem !== undefined && end <= this.#memoryBytesMax) {
      this.#grow(end)
      this.#mem.set(bytes, offset)
      this.#size = Math.max(this.#size, end)
      return bytes.byteLength
    }
    const fh = await this.#onDisk()
    let done = 0
    while (done < bytes.byteLength) {
      const { bytesWritten } = await fh.write(bytes, done, bytes.byteLength - done, offset + done)
      done += bytesWritten
    }
    this.#size = Math.max(this.#size, end)
    return done
  }

  /** Reads into `into` from `offset`; returns the bytes read (0 at or past the end). */
  async read (into: Uint8Array, offset: number): Promise<number> {
    this.#check()
    const want = Math.max(0, Math.min(into.byteLength, this.#size - offset))
    if (want === 0) return 0
    if (this.#mem !== undefined) {
      // #mem may be shorter than #size after a truncate up: the rest is a hole
      const have = Math.max(0, Math.min(want, this.#mem.byteLength - offset))
      into.set(this.#mem.subarray(offset, offset + have))
      if (have < want) into.fill(0, have, want)
      return want
    }
    const fh = this.#fh as FileHandle
    let done = 0
    while (done < want) {
      const { bytesRead } = await fh.read(into, done, want - done, offset + done)
      if (bytesRead === 0) break
      done += bytesRead
    }
    // bytes the file does not hold (the tail of a hole made by truncate up) read as zeros
    if (done < want) into.fill(0, done, want)
    return want
  }

  /** Every byte of the spool, as a copy: for small spools only (the caller bounds `size`). */
  async bytes (): Promise<Uint8Array> {
    const into = Buffer.alloc(this.#size)
    const n = await this.read(into, 0)
    if (n !== this.#size) throw new Error(`spool ${this.path} read ${n} of its ${this.#size} bytes`)
    return into
  }

  async truncate (size: number): Promise<void> {
    this.#check()
    if (!(Number.isSafeInteger(size) && size >= 0)) throw new Error(`spool truncate to ${size}`)
    if (this.#mem !== undefined && size <= this.#memoryBytesMax) {
      // what is cut off reads as zeros if the file grows again
      if (size < this.#size) this.#mem.fill(0, size, Math.min(this.#size, this.#mem.byteLength))
      this.#size = size
      return
    }
    const fh = await this.#onDisk()
    await fh.truncate(size)
    this.#size = size
  }

  /** Writes a copy of the spool's bytes, as they are now, to the file `dest` (another handle's spool). */
  async copyTo (dest: string): Promise<void> {
    this.#check()
    if (this.#mem !== undefined) {
      // the copy is taken before the first await: a write after this call is not in it
      const bytes = Buffer.alloc(this.#size)
      bytes.set(this.#mem.subarray(0, this.#size))
      await writeFile(dest, bytes, { mode: 0o600 })
    } else {
      await copyFile(this.path, dest)
    }
  }

  /** Closes and deletes the spool file (forgets the bytes in memory); safe to call twice. */
  async discard (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#mem = undefined
    const fh = this.#fh
    this.#fh = undefined
    if (fh === undefined) return
    await fh.close().catch(() => {})
    await unlink(this.path).catch(() => {})
  }

  /** Makes #mem at least `end` bytes (at most memoryBytesMax), zeros past what it held. */
  #grow (end: number): void {
    const mem = this.#mem as Buffer
    if (end <= mem.byteLength) return
    const grown = Buffer.alloc(Math.min(this.#memoryBytesMax, Math.max(end, 2 * mem.byteLength)))
    grown.set(mem)
    this.#mem = grown
  }

  /** The spool's file, made from the bytes in memory the first time they outgrow it. */
  async #onDisk (): Promise<FileHandle> {
    if (this.#fh !== undefined) return this.#fh
    const mem = this.#mem as Buffer
    const fh = await open(this.path, 'w+', 0o600)
    try {
      let done = 0
      const size = Math.min(this.#size, mem.byteLength)
      while (done < size) {
        const { bytesWritten } = await fh.write(mem, done, size - done, done)
        done += bytesWritten
      }
      // a truncate up past what memory held is a hole at the file's end
      if (this.#size > size) await fh.truncate(this.#size)
    } catch (err) {
      await fh.close().catch(() => {})
      await unlink(this.path).catch(() => {})
      throw err
    }
    if (this.#closed) {
      // discarded while the file was made
      await fh.close().catch(() => {})
      await unlink(this.path).catch(() => {})
      throw new Error(`spool ${this.path} used after discard`)
    }
    this.#fh = fh
    this.#mem = undefined
    return fh
  }

  #check (): void {
    if (this.#closed) throw new Error(`spool ${this.path} used after discard`)
  }
}
