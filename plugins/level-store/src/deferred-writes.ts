import type { ExtentInfo } from '@dfs/api'

/**
 * Deferred puts are written in a batch this long after the first of them waits, at the latest…
 */
export const DEFERRED_WRITE_MS_DEFAULT = 100
/** …or as soon as this many stored bytes wait… */
export const DEFERRED_BYTES_MAX_DEFAULT = 8 * 1024 * 1024
/**
 * …or this many extents. While twice as many bytes or extents are held (a batch still being written
 * and more waiting), a further put is not deferred: the store writes it at once, as it would any.
 */
export const DEFERRED_EXTENTS_MAX_DEFAULT = 2048

/** A small extent a `durable: false` put left in memory until the batch that writes it has. */
export interface Deferred {
  readonly id: string
  readonly info: ExtentInfo
  /** The stored bytes: a copy, so the caller's buffer is its own again once the put resolves. */
  readonly stored: Uint8Array
  /** Set while the batch that writes it runs; settles (never rejects) once that batch has. */
  writing?: Promise<void>
}

export interface DeferredWritesInit {
  /** Writes `entries` in one atomic batch, not fsync'd; a batch that fails wrote none of them. */
  write: (entries: readonly Deferred[]) => Promise<void>
  /** A batch failed: its entries wait for the next one. */
  onError: (err: unknown, entries: number) => void
  writeAfterMs?: number
  bytesMax?: number
  extentsMax?: number
}

/**
 * The extents of `durable: false` puts a store keeps in memory and writes together, in one batch per
 * DEFERRED_WRITE_MS_DEFAULT or per DEFERRED_BYTES_MAX_DEFAULT / DEFERRED_EXTENTS_MAX_DEFAULT, instead
 * of one write each (see the store's "Deferred writes"). An entry stays here, and reads are answered
 * from it, until its batch has been written; one whose batch failed waits for the next. Bounded:
 * `add` refuses an extent while twice the limits are held, and the caller writes it itself.
 */
export class DeferredWrites {
  readonly #init: Required<DeferredWritesInit>
  readonly #entries = new Map<string, Deferred>()
  /** Entries not yet in a batch, in the order they came (an entry removed meanwhile is skipped). */
  #waiting: Deferred[] = []
  #waitingBytes = 0
  /** Stored bytes of every entry held (waiting or being written). */
  #bytes = 0
  #timer: ReturnType<typeof setTimeout> | undefined
  /** Batches being written (each rejects if its write failed). */
  readonly #batches = new Set<Promise<void>>()
  #stopped = false

  constructor (init: DeferredWritesInit) {
    this.#init = {
      writeAfterMs: DEFERRED_WRITE_MS_DEFAULT,
      bytesMax: DEFERRED_BYTES_MAX_DEFAULT,
      extentsMax: DEFERRED_EXTENTS_MAX_DEFAULT,
      ...init
    }
  }

  /** The entry of extent `id`, if one is held. */
  get (id: string): Deferred | undefined {
    return this.#entries.get(id)
  }

  /** Extents held (waiting or being written). */
  get size (): number {
    return this.#entries.size
  }

  /** Stored bytes of the extents held. */
  get bytes (): number {
    return this.#bytes
  }

  /**
   * Holds a copy of `stored` as extent `id` for a later batch; false (nothing held) when the caller
   * must write it itself: too much is held, or writes were stopped. The caller checked that the id
   * is new (neither held nor written) under its own lock for the id.
   */
  add (id: string, info: ExtentInfo, stored: Uint8Array): boolean {
    const { bytesMax, extentsMax } = this.#init
    if (this.#stopped || this.#entries.size >= 2 * extentsMax || this.#bytes + stored.byteLength > 2 * bytesMax) return false
    const entry: Deferred = { id, info, stored: stored.slice() }
    this.#entries.set(id, entry)
    this.#waiting.push(entry)
    this.#waitingBytes += stored.byteLength
    this.#bytes += stored.byteLength
    if (this.#waiting.length >= extentsMax || this.#waitingBytes >= bytesMax) this.#writeWaiting()
    else this.#schedule()
    return true
  }

  /**
   * Drops the entry of extent `id` if it has not been written: true if one was dropped, false if none
   * is held (the extent is written, or never was). An entry being written is waited for first (it is
   * then written, or waits again and is dropped). The caller holds its lock for the id.
   */
  async remove (id: string): Promise<boolean> {
    for (;;) {
      const entry = this.#entries.get(id)
      if (entry === undefined) return false
      if (entry.writing === undefined) {
        this.#entries.delete(id)
        this.#waitingBytes -= entry.stored.byteLength
        this.#bytes -= entry.stored.byteLength
        return true
      }
      await entry.writing
    }
  }

  /**
   * Writes every waiting entry now and waits for every batch being written; rejects with a batch's
   * error if one failed (its entries wait again).
   */
  async settle (): Promise<void> {
    this.#writeWaiting()
    await Promise.all([...this.#batches])
  }

  /** Writes nothing more on its own (no timer): `add` refuses from now on; `settle` still writes what is held. */
  stop (): void {
    this.#stopped = true
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
  }

  /** Writes what waits once the delay has passed, unless a write is already due or writes were stopped. */
  #schedule (): void {
    if (this.#stopped || this.#timer !== undefined) return
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      this.#writeWaiting()
    }, this.#init.writeAfterMs)
    this.#timer.unref?.()
  }

  /** Starts the batch of every waiting entry, if there is one. */
  #writeWaiting (): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    const batch = this.#waiting.filter((e) => this.#entries.get(e.id) === e)
    this.#waiting = []
    this.#waitingBytes = 0
    if (batch.length === 0) return
    const written = (async () => {
      try {
        await this.#init.write(batch)
      } catch (err) {
        // nothing of the batch was written: its entries (those not dropped meanwhile) wait again
        for (const e of batch) {
          if (this.#entries.get(e.id) !== e) continue
          e.writing = undefined
          this.#waiting.push(e)
          this.#waitingBytes += e.stored.byteLength
        }
        this.#init.onError(err, batch.length)
        if (this.#waiting.length > 0) this.#schedule()
        throw err
      }
      for (const e of batch) {
        if (this.#entries.get(e.id) !== e) continue
        this.#entries.delete(e.id)
        this.#bytes -= e.stored.byteLength
      }
    })()
    const settled = written.then(() => {}, () => {})
    for (const e of batch) e.writing = settled
    this.#batches.add(written)
    void settled.then(() => { this.#batches.delete(written) })
  }
}
