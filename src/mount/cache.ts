/**
 * A map whose entries expire `ttlMs` after they were set, holding at most `entriesMax` (the oldest
 * set goes first). The mount keeps attributes and directory listings in these for a short TTL
 * (MOUNT_CACHE_TTL_MS): a change made elsewhere (`dfs fs put`) shows within the TTL, and the mount's
 * own changes update (a listing, changed in place: it keeps its expiry) or delete the entries they
 * touch at once, so its own writes are never hidden.
 */
export class TtlCache<K, V> {
  readonly ttlMs: number
  readonly entriesMax: number
  readonly #now: () => number
  /** Insertion order is expiry order: every entry has the same TTL and a set moves it to the end. */
  readonly #entries = new Map<K, { value: V, expiresAtMs: number }>()

  constructor (init: { ttlMs: number, entriesMax: number, now?: () => number }) {
    if (!(init.ttlMs >= 0)) throw new Error(`cache ttlMs ${init.ttlMs} must be >= 0`)
    if (!(Number.isSafeInteger(init.entriesMax) && init.entriesMax > 0)) throw new Error(`cache entriesMax ${init.entriesMax} must be an integer > 0`)
    this.ttlMs = init.ttlMs
    this.entriesMax = init.entriesMax
    this.#now = init.now ?? Date.now
  }

  get size (): number {
    return this.#entries.size
  }

  /** The live value at `key`, or undefined (an expired entry is dropped on the way). */
  get (key: K): V | undefined {
    const e = this.#entries.get(key)
    if (e === undefined) return undefined
    if (this.#now() >= e.expiresAtMs) {
      this.#entries.delete(key)
      return undefined
    }
    return e.value
  }

  set (key: K, value: V): void {
    if (this.ttlMs === 0) return
    this.#entries.delete(key)
    this.#entries.set(key, { value, expiresAtMs: this.#now() + this.ttlMs })
    // drop expired entries from the front, then the oldest while over the bound
    const now = this.#now()
    for (const [k, e] of this.#entries) {
      if (this.#entries.size <= this.entriesMax && e.expiresAtMs > now) break
      this.#entries.delete(k)
    }
  }

  delete (key: K): void {
    this.#entries.delete(key)
  }

  /** Deletes every key `match` accepts (a renamed or removed directory's whole subtree). */
  deleteWhere (match: (key: K) => boolean): void {
    for (const k of [...this.#entries.keys()]) if (match(k)) this.#entries.delete(k)
  }

  clear (): void {
    this.#entries.clear()
  }
}
