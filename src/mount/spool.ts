import { open, unlink, type FileHandle } from 'node:fs/promises'

/**
 * The local temporary file that holds a file opened for writing through the mount until it is
 * committed as one `fs.put` (close, fsync): its bytes live on disk, never whole in memory. Writes at
 * any offset, reads of what was written (a file opened read-write reads its own writes), truncation.
 * `size` is the file's logical size: the largest end written, or the size truncated to.
 */
export class Spool {
  readonly path: string
  readonly #fh: FileHandle
  #size: number
  #closed = false

  private constructor (path: string, fh: FileHandle, size: number) {
    this.path = path
    this.#fh = fh
    this.#size = size
  }

  /**
   * Opens the spool file at `path` (created, or taken as it is when `keep` — e.g. a downloaded copy of
   * the file being changed); mode 0600: it holds the user's data.
   */
  static async open (path: string, options: { keep?: boolean } = {}): Promise<Spool> {
    const fh = await open(path, options.keep === true ? 'r+' : 'w+', 0o600)
    try {
      const { size } = await fh.stat()
      return new Spool(path, fh, size)
    } catch (err) {
      await fh.close().catch(() => {})
      throw err
    }
  }

  get size (): number {
    return this.#size
  }

  /** Writes `bytes` at `offset` (a hole before it reads as zeros); returns the bytes written. */
  async write (bytes: Uint8Array, offset: number): Promise<number> {
    this.#check()
    let done = 0
    while (done < bytes.byteLength) {
      const { bytesWritten } = await this.#fh.write(bytes, done, bytes.byteLength - done, offset + done)
      done += bytesWritten
    }
    this.#size = Math.max(this.#size, offset + bytes.byteLength)
    return done
  }

  /** Reads into `into` from `offset`; returns the bytes read (0 at or past the end). */
  async read (into: Uint8Array, offset: number): Promise<number> {
    this.#check()
    const want = Math.max(0, Math.min(into.byteLength, this.#size - offset))
    let done = 0
    while (done < want) {
      const { bytesRead } = await this.#fh.read(into, done, want - done, offset + done)
      if (bytesRead === 0) break
      done += bytesRead
    }
    // bytes the file does not hold (the tail of a hole made by truncate up) read as zeros
    if (done < want) into.fill(0, done, want)
    return want
  }

  async truncate (size: number): Promise<void> {
    this.#check()
    if (!(Number.isSafeInteger(size) && size >= 0)) throw new Error(`spool truncate to ${size}`)
    await this.#fh.truncate(size)
    this.#size = size
  }

  /** Closes and deletes the spool file; safe to call twice. */
  async discard (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#fh.close().catch(() => {})
    await unlink(this.path).catch(() => {})
  }

  #check (): void {
    if (this.#closed) throw new Error(`spool ${this.path} used after discard`)
  }
}
