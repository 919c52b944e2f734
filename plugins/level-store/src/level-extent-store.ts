import { createHash } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { Level } from 'level'
import {
  throwIfAborted,
  AlreadyExistsError,
  ConfigError,
  CorruptExtentError,
  DataDirLockedError,
  DfsError,
  EXTENT_ID_PATTERN,
  EXTENT_SIZE_MAX,
  InvalidArgumentError,
  NotFoundError,
  StorageFullError,
  UnavailableError
} from '@dfs/api'
import type {
  CallOptions,
  Checksum,
  ExtentInfo,
  ExtentStore,
  ExtentStoreInit,
  ExtentStoreUsage,
  Logger
} from '@dfs/api'

/*
 * Key layout, format version 2 (keys are utf8, values are raw bytes):
 *
 *   m/format     {"format":"dfs-level-store","version":2}   written once, checked on open
 *   h/<id>       header: utf8 JSON {"seq":S,"size":N,"checksum":"sha256:<hex>"}
 *   b/<seq>      the extent's bytes, exactly as given to put (no framing); <seq> is S of the header
 *                as 16 lower-case hex digits, so the keys sort in the order the bytes were written
 *
 * WHY the bytes are keyed by a write sequence number and not by the extent id: extent ids are random
 * UUIDs, so with `b/<id>` (format version 1) every memtable flush produced a level-0 table whose key
 * range overlapped all of level 1, and LevelDB's compactions rewrote all earlier extents' bytes again
 * and again. Measured here: 3 successive rounds of 64 × 4 MiB fsync'd puts into one store ran at
 * 259 → 142 → 57 MiB/s. With keys that increase monotonically a flushed table overlaps nothing below
 * it and compaction is a trivial move (a rename in the manifest, no bytes rewritten): 183 → 191 →
 * 197 MiB/s. Puts allocate S from an in-memory counter right before their batch, so later puts get
 * larger keys.
 *
 * S is never reused for a different extent while any header names it: on open the counter restarts
 * at 1 + the larger of the largest `b/` key and the largest S of any header (the usage scan reads
 * every header anyway). A header whose bytes are gone (damage) therefore keeps its S reserved, and a
 * new extent can never alias it. The S of a deleted extent may be handed out again after a restart
 * (if it was the largest), which is harmless: its header and bytes were deleted in one batch, so no
 * header names it any more, and no read that started before the restart can still be running.
 *
 * Header and bytes of one extent are always written and deleted together, in one batch with
 * `sync: true`, so they appear and disappear atomically and durably. They live under separate keys
 * for two reasons:
 * - `list` and the usage scan on open iterate only the `h/` range, whose values are a few dozen bytes,
 *   so neither pages 4 MiB extents through memory.
 * - The header is the "expected" half of the pair assertion and the bytes are the "actual" half: a
 *   flipped bit in `b/<seq>` (what the tests inject by rewriting that one value) leaves the header
 *   intact, and `get` reports both checksums.
 * A read of one extent needs two lookups (the header names the bytes key), made from one explicit
 * LevelDB snapshot: a concurrent delete (or delete and re-put, or heal) of the same id cannot slip in
 * between them, so a read never sees a header without its bytes unless the store is damaged.
 */
const HEADER_PREFIX = 'h/'
const BYTES_PREFIX = 'b/'
/** The key just past every header / every bytes key: '0' is the character after '/'. */
const HEADER_RANGE_END = 'h0'
const BYTES_RANGE_END = 'b0'
const SEQ_DIGITS = 16
const BYTES_KEY_PATTERN = /^b\/[0-9a-f]{16}$/
const FORMAT_KEY = 'm/format'
const FORMAT_NAME = 'dfs-level-store'
const FORMAT_VERSION = 2

/** Where an extent's header and bytes live; exported for tests that corrupt stored values. */
export const extentKeys = Object.freeze({
  header: (id: string): string => HEADER_PREFIX + id,
  /** The bytes key of write sequence number `seq` (the `seq` of the extent's header). */
  bytes: (seq: number): string => BYTES_PREFIX + seq.toString(16).padStart(SEQ_DIGITS, '0'),
  format: FORMAT_KEY
})

/**
 * The key of the bytes of extent `id` in an open LevelDB of this store (read from its header), or
 * undefined if there is no such extent or its header names no sequence number. For tests and tools
 * that inspect or damage stored values.
 */
export async function bytesKeyOf (db: Level<string, Uint8Array>, id: string): Promise<string | undefined> {
  const raw = await db.get(extentKeys.header(id))
  if (raw === undefined) return undefined
  const seq = parseHeader(raw)?.seq ?? salvageSeq(raw)
  return seq === undefined ? undefined : extentKeys.bytes(seq)
}

/** The only checksum algorithm this store computes and knows how to verify. */
const CHECKSUM_PATTERN = /^sha256:[0-9a-f]{64}$/

/**
 * LevelDB's memtable size. The default (4 MiB) is one extent, so every 4 MiB put flushed a memtable
 * to a level-0 table and kept compaction busy: 64 sequential 4 MiB fsync'd puts ran at about
 * 85 MiB/s; with 32 MiB they run at about 220 MiB/s. Cost: up to two memtables (64 MiB) of memory.
 */
const WRITE_BUFFER_BYTES_DEFAULT = 32 * 1024 * 1024

/**
 * LevelDB's `maxFileSize`: the size at which compaction starts a new output table (a memtable flush
 * writes one table whatever its size). LevelDB's default, 2 MiB, is less than one extent, so
 * compaction wrote one table per 4 MiB value; and the small `h/` headers, which arrive with every
 * flush at random ids, keep each new table overlapping the newest tables of the level below, so
 * those still get merged. Measured with the bench (3 rounds of 64 × 4 MiB fsync'd puts into one
 * store, two runs each, sequential `b/<seq>` keys): 2 MiB gave 146 → 131 → 85 and 228 → 203 →
 * 95 MiB/s; 64 MiB gave 221 → 207 → 232 and 137 → 194 → 211 MiB/s. Cost: a compaction that does
 * merge works in bigger pieces (longer, rarer stalls), and fewer, larger files (fewer open files).
 */
const MAX_FILE_BYTES_DEFAULT = 64 * 1024 * 1024

/** Upper bound of `list({ limit })`; a caller that wants more pages with `after`. */
const LIST_LIMIT_MAX = 1_000_000

export interface LevelExtentStoreInit extends ExtentStoreInit {
  /** Name of this node, quoted in CorruptExtent errors so a cluster-wide report says where. */
  node?: string
  /** LevelDB memtable size; see WRITE_BUFFER_BYTES_DEFAULT. */
  writeBufferBytes?: number
  /** LevelDB table file size of compaction output; see MAX_FILE_BYTES_DEFAULT. */
  maxFileBytes?: number
}

type State = 'new' | 'opening' | 'open' | 'closing' | 'closed'

interface Header {
  /** Write sequence number: the bytes live at `extentKeys.bytes(seq)`. */
  seq: number
  size: number
  checksum: Checksum
}

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

export function sha256 (bytes: Uint8Array): Checksum {
  return 'sha256:' + createHash('sha256').update(bytes).digest('hex')
}

/** Extents this large are hashed off the event loop (WebCrypto runs in libuv's thread pool). */
const HASH_OFF_LOOP_BYTES_MIN = 256 * 1024

/**
 * sha256 of an extent without blocking the event loop for large ones: hashing 4 MiB takes ~4 ms of
 * CPU, which a node serving a stream of puts would otherwise spend instead of receiving the next one.
 */
export async function sha256Async (bytes: Uint8Array): Promise<Checksum> {
  if (bytes.byteLength < HASH_OFF_LOOP_BYTES_MIN) return sha256(bytes)
  const digest = await globalThis.crypto.subtle.digest('SHA-256', bytes)
  return 'sha256:' + Buffer.from(digest).toString('hex')
}

/**
 * ExtentStore on LevelDB; see the key layout above and the contract in @dfs/api.
 *
 * Concurrency: mutations (put, delete) of one id queue behind each other on a per-id lock, so the
 * read-check-write of a put and the running totals never race; different ids run concurrently and
 * LevelDB groups their fsyncs. Reads take no lock: they read header and bytes from one explicit
 * snapshot, and every batch is atomic, so a read sees an extent whole or not at all.
 */
export class LevelExtentStore implements ExtentStore {
  readonly dir: string
  readonly #log: Logger
  readonly #node: string | undefined
  readonly #writeBufferBytes: number
  readonly #maxFileBytes: number
  #db: Level<string, Uint8Array> | undefined
  #state: State = 'new'
  #closing: Promise<void> | undefined
  /** Tail of the queue of mutations per extent id; an entry exists only while one is queued or runs. */
  readonly #locks = new Map<string, Promise<void>>()
  /** Calls that use the db right now; close waits for them before it closes the db. */
  readonly #inflight = new Set<Promise<unknown>>()
  /** Running totals. Invariant: equal to the sum over all `h/` headers (rebuilt by the scan on open). */
  #extents = 0
  #bytes = 0
  /** The write sequence number the next bytes get; see the key layout. */
  #nextSeq = 1

  constructor (init: LevelExtentStoreInit) {
    if (typeof init?.dir !== 'string' || init.dir.length === 0) {
      throw new InvalidArgumentError('a level extent store needs a directory', { dir: init?.dir })
    }
    this.dir = init.dir
    this.#log = init.logger
    this.#node = init.node
    this.#writeBufferBytes = init.writeBufferBytes ?? WRITE_BUFFER_BYTES_DEFAULT
    this.#maxFileBytes = init.maxFileBytes ?? MAX_FILE_BYTES_DEFAULT
  }

  async open (options: CallOptions = {}): Promise<void> {
    throwIfAborted(options.signal)
    if (this.#state === 'open') return
    if (this.#state !== 'new') {
      throw new UnavailableError(`extent store in ${this.dir} is ${this.#state}; a closed store cannot be reopened`, { dir: this.dir, state: this.#state })
    }
    this.#state = 'opening'
    const db = new Level<string, Uint8Array>(this.dir, {
      keyEncoding: 'utf8',
      valueEncoding: 'view',
      writeBufferSize: this.#writeBufferBytes,
      maxFileSize: this.#maxFileBytes,
      // extents are opaque, often already compressed bytes: Snappy would try every block in vain
      compression: false
    })
    try {
      await mkdir(this.dir, { recursive: true })
      await db.open()
      await this.#checkFormat(db)
      const { extents, bytes, maxSeq } = await scanUsage(db, this.#log)
      this.#extents = extents
      this.#bytes = bytes
      this.#nextSeq = Math.max(maxSeq, await this.#largestBytesSeq(db)) + 1
    } catch (err) {
      this.#state = 'new'
      await db.close().catch(() => {})
      throw this.#openError(err)
    }
    this.#db = db
    this.#state = 'open'
    this.#log('opened extent store in %s: %d extents, %d bytes, next seq %d', this.dir, this.#extents, this.#bytes, this.#nextSeq)
  }

  async close (): Promise<void> {
    if (this.#state === 'closed') return
    if (this.#closing != null) return await this.#closing
    if (this.#state !== 'open') {
      // 'new' or 'opening': nothing to release yet; an open in progress is not interrupted here
      this.#state = 'closed'
      return
    }
    this.#state = 'closing'
    this.#closing = (async () => {
      await Promise.allSettled([...this.#inflight])
      try {
        await this.#db?.close()
      } finally {
        this.#db = undefined
        this.#state = 'closed'
      }
    })()
    await this.#closing
  }

  async put (id: string, bytes: Uint8Array, options: CallOptions & { checksum?: Checksum } = {}): Promise<ExtentInfo> {
    return await this.#call('put', id, options, async (db) => {
      if (!(bytes instanceof Uint8Array)) {
        throw new InvalidArgumentError('extent bytes must be a Uint8Array', { id, type: typeof bytes })
      }
      if (bytes.byteLength > EXTENT_SIZE_MAX) {
        throw new InvalidArgumentError(`extent ${id} is ${bytes.byteLength} bytes, more than the maximum ${EXTENT_SIZE_MAX}`, { id, size: bytes.byteLength, sizeMax: EXTENT_SIZE_MAX })
      }
      const given = options.checksum
      if (given !== undefined && (typeof given !== 'string' || !CHECKSUM_PATTERN.test(given))) {
        throw new InvalidArgumentError(`checksum ${JSON.stringify(given)} of extent ${id} is not sha256:<64 lower-case hex digits>`, { id, checksum: given })
      }
      // Pair assertion, first half: the checksum is computed before anything is written, and a
      // checksum the sender computed must agree with it (bytes damaged in transit are not stored).
      const checksum = await sha256Async(bytes)
      if (given !== undefined && given !== checksum) {
        throw new CorruptExtentError(id, given, checksum, this.#details({ reason: 'checksum given with put does not match the bytes' }))
      }
      const info: ExtentInfo = { id, size: bytes.byteLength, checksum }

      return await this.#withLock(id, async () => {
        throwIfAborted(options.signal)
        this.#assertOpen()
        // No other mutation of this id runs (the lock), so the two reads cannot be torn apart. Read
        // synchronously: a new id (nearly every put) is answered by the memtable and the tables'
        // bloom filters without touching the disk, and a trip through the thread pool cost a small
        // put a tenth of its time on a busy node.
        const rawHeader = db.getSync(extentKeys.header(id))
        if (rawHeader !== undefined) {
          const header = parseHeader(rawHeader)
          if (header == null || header.checksum !== checksum || header.size !== info.size) {
            throw new AlreadyExistsError(`extent ${id} exists with different bytes; extents are immutable`, {
              id, existingChecksum: header?.checksum ?? null, existingSize: header?.size ?? null, checksum, size: info.size
            })
          }
          const stored = await db.get(extentKeys.bytes(header.seq))
          if (stored !== undefined && stored.byteLength === info.size && sha256(stored) === checksum) {
            return info
          }
          // The same bytes again, but the stored copy is damaged or missing: the caller hands us a
          // verified good copy, so heal it. The healed bytes get a new seq like any other write (the
          // keys stay monotonic) and replace the old ones in one batch. The totals do not change.
          this.#log.error('healing corrupt extent %s in %s with re-put bytes', id, this.dir)
          const seq = this.#nextSeq++
          await db.batch([
            { type: 'put', key: extentKeys.header(id), value: encodeHeader(info, seq) },
            { type: 'put', key: extentKeys.bytes(seq), value: bytes },
            { type: 'del', key: extentKeys.bytes(header.seq) }
          ], { sync: true })
          return info
        }
        // The seq is taken right before the batch is queued (no await in between), so puts of
        // different ids reach LevelDB in seq order as far as this process can tell.
        const seq = this.#nextSeq++
        await db.batch([
          { type: 'put', key: extentKeys.header(id), value: encodeHeader(info, seq) },
          { type: 'put', key: extentKeys.bytes(seq), value: bytes }
        ], { sync: true })
        this.#extents += 1
        this.#bytes += info.size
        return info
      })
    })
  }

  async get (id: string, options: CallOptions = {}): Promise<Uint8Array> {
    return await this.#call('get', id, options, async (db) => {
      // Header and bytes are two lookups; one snapshot makes them one point in time, so a
      // concurrent delete (and re-put, or heal) of this id is either wholly seen or not at all.
      const snapshot = db.snapshot()
      let rawHeader: Uint8Array | undefined
      let stored: Uint8Array | undefined
      let header: Header | null
      let seq: number | undefined
      try {
        rawHeader = await db.get(extentKeys.header(id), { snapshot })
        if (rawHeader === undefined) throw notFound(id)
        header = parseHeader(rawHeader)
        seq = header?.seq ?? salvageSeq(rawHeader)
        stored = seq === undefined ? undefined : await db.get(extentKeys.bytes(seq), { snapshot })
      } finally {
        await snapshot.close()
      }
      // Pair assertion, second half: never hand out bytes whose checksum was not just verified.
      const actual = stored === undefined ? 'missing' : await sha256Async(stored)
      if (header == null) {
        throw new CorruptExtentError(id, 'unreadable-header', seq === undefined ? 'unknown' : actual, this.#details({ reason: 'the header of the extent cannot be decoded' }))
      }
      if (stored === undefined || actual !== header.checksum || stored.byteLength !== header.size) {
        throw new CorruptExtentError(id, header.checksum, actual, this.#details({ expectedSize: header.size, actualSize: stored?.byteLength ?? null, seq: header.seq }))
      }
      // LevelDB hands out a Buffer; callers get the plain Uint8Array the interface names (no copy)
      return new Uint8Array(stored.buffer, stored.byteOffset, stored.byteLength)
    })
  }

  async has (id: string, options: CallOptions = {}): Promise<boolean> {
    return await this.#call('has', id, options, async (db) => {
      return (await db.get(extentKeys.header(id))) !== undefined
    })
  }

  async stat (id: string, options: CallOptions = {}): Promise<ExtentInfo> {
    return await this.#call('stat', id, options, async (db) => {
      const rawHeader = await db.get(extentKeys.header(id))
      if (rawHeader === undefined) throw notFound(id)
      const header = parseHeader(rawHeader)
      if (header == null) {
        throw new CorruptExtentError(id, 'unreadable-header', 'unknown', this.#details({ reason: 'the header of the extent cannot be decoded' }))
      }
      return { id, size: header.size, checksum: header.checksum }
    })
  }

  async delete (id: string, options: CallOptions = {}): Promise<boolean> {
    return await this.#call('delete', id, options, async (db) => {
      return await this.#withLock(id, async () => {
        throwIfAborted(options.signal)
        this.#assertOpen()
        const rawHeader = await db.get(extentKeys.header(id))
        if (rawHeader === undefined) return false
        const header = parseHeader(rawHeader)
        const seq = header?.seq ?? salvageSeq(rawHeader)
        if (seq === undefined) {
          this.#log.error('deleting extent %s in %s whose header names no bytes key; its bytes (if any) stay orphaned', id, this.dir)
        }
        await db.batch([
          { type: 'del', key: extentKeys.header(id) },
          ...(seq === undefined ? [] : [{ type: 'del' as const, key: extentKeys.bytes(seq) }])
        ], { sync: true })
        this.#extents -= 1
        this.#bytes -= header?.size ?? 0
        return true
      })
    })
  }

  list (options: CallOptions & { after?: string, limit?: number } = {}): AsyncIterable<ExtentInfo> {
    // Validated when called (not on the first `next()`), so a bad argument fails at the call site.
    const { after, limit } = options
    if (after !== undefined && typeof after !== 'string') {
      throw new InvalidArgumentError('list: after must be an extent id', { after })
    }
    if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 0 || limit > LIST_LIMIT_MAX)) {
      throw new InvalidArgumentError(`list: limit must be an integer from 0 to ${LIST_LIMIT_MAX}`, { limit })
    }
    return this.#list(after, limit, options.signal)
  }

  async * #list (after: string | undefined, limit: number | undefined, signal: AbortSignal | undefined): AsyncGenerator<ExtentInfo> {
    throwIfAborted(signal)
    const db = this.#assertOpen()
    if (limit === 0) return
    const iterator = db.iterator({
      gt: after === undefined ? HEADER_PREFIX : extentKeys.header(after),
      lt: HEADER_RANGE_END,
      ...(limit === undefined ? {} : { limit })
    })
    try {
      while (true) {
        throwIfAborted(signal)
        this.#assertOpen()
        let entry: [string, Uint8Array] | undefined
        try {
          entry = await iterator.next()
        } catch (err) {
          throw this.#mapError(err, 'list')
        }
        if (entry === undefined) return
        const id = entry[0].slice(HEADER_PREFIX.length)
        const header = parseHeader(entry[1])
        if (header == null) {
          // Still listed, so a scrub walking the list reaches it; `get` reports it as corrupt.
          this.#log.error('extent %s in %s has an unreadable header', id, this.dir)
          yield { id, size: 0, checksum: 'unreadable-header' }
        } else {
          yield { id, size: header.size, checksum: header.checksum }
        }
      }
    } finally {
      await iterator.close().catch(() => {})
    }
  }

  async usage (options: CallOptions = {}): Promise<ExtentStoreUsage> {
    throwIfAborted(options.signal)
    this.#assertOpen()
    return { extents: this.#extents, bytes: this.#bytes }
  }

  /** Common frame of every per-extent call: abort, state and id checks, in-flight tracking, error mapping. */
  async #call<T> (op: string, id: string, options: CallOptions, fn: (db: Level<string, Uint8Array>) => Promise<T>): Promise<T> {
    throwIfAborted(options.signal)
    const db = this.#assertOpen()
    if (typeof id !== 'string' || !EXTENT_ID_PATTERN.test(id)) {
      throw new InvalidArgumentError(`${JSON.stringify(id)} is not an extent id (a lower-case UUID)`, { id })
    }
    const running = fn(db)
    this.#inflight.add(running)
    try {
      return await running
    } catch (err) {
      throw this.#mapError(err, op, id)
    } finally {
      this.#inflight.delete(running)
    }
  }

  /** Runs `fn` after every earlier queued call of the same id has finished. */
  async #withLock<T> (id: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#locks.get(id) ?? Promise.resolve()
    let release!: () => void
    const mine = new Promise<void>((resolve) => { release = resolve })
    this.#locks.set(id, mine)
    await previous
    try {
      return await fn()
    } finally {
      release()
      if (this.#locks.get(id) === mine) this.#locks.delete(id)
    }
  }

  #assertOpen (): Level<string, Uint8Array> {
    if (this.#state !== 'open' || this.#db == null) {
      throw new UnavailableError(`extent store in ${this.dir} is ${this.#state === 'open' ? 'unusable' : this.#state}`, { dir: this.dir, state: this.#state })
    }
    return this.#db
  }

  #details (extra: Record<string, unknown>): Record<string, unknown> {
    return this.#node === undefined ? extra : { node: this.#node, ...extra }
  }

  #mapError (err: unknown, op: string, id?: string): unknown {
    if (err instanceof DfsError) return err
    if (this.#state !== 'open' && hasCode(err, /^LEVEL_(DATABASE|ITERATOR)_NOT_OPEN$/)) {
      return new UnavailableError(`extent store in ${this.dir} closed during ${op}`, { dir: this.dir, op, id })
    }
    const mapped = mapLevelError(err, { dir: this.dir, op, id })
    this.#log.error('%s of extent %s in %s failed: %s', op, id ?? '-', this.dir, (err as Error)?.message ?? err)
    return mapped
  }

  #openError (err: unknown): unknown {
    if (err instanceof DfsError) return err
    if (hasCode(err, /^LEVEL_LOCKED$/)) {
      return new DataDirLockedError(`extent store directory ${this.dir} is in use by another process or store instance`, { dir: this.dir })
    }
    const mapped = mapLevelError(err, { dir: this.dir, op: 'open' })
    this.#log.error('opening extent store in %s failed: %s', this.dir, (err as Error)?.message ?? err)
    return mapped
  }

  /** The seq of the largest `b/` key, or 0 if there is none (one reverse seek). */
  async #largestBytesSeq (db: Level<string, Uint8Array>): Promise<number> {
    const [last] = await db.keys({ gt: BYTES_PREFIX, lt: BYTES_RANGE_END, reverse: true, limit: 1 }).all()
    if (last === undefined) return 0
    const seq = BYTES_KEY_PATTERN.test(last) ? Number.parseInt(last.slice(BYTES_PREFIX.length), 16) : NaN
    if (!Number.isSafeInteger(seq)) {
      throw new ConfigError(`extent store in ${this.dir} holds bytes key ${JSON.stringify(last)}, which this build cannot read`, { dir: this.dir, key: last })
    }
    return seq
  }

  async #checkFormat (db: Level<string, Uint8Array>): Promise<void> {
    const raw = await db.get(FORMAT_KEY)
    if (raw === undefined) {
      const empty = (await db.keys({ limit: 1 }).all()).length === 0
      if (!empty) {
        throw new ConfigError(`${this.dir} holds a LevelDB database that is not a dfs extent store`, { dir: this.dir })
      }
      await db.put(FORMAT_KEY, encoder.encode(JSON.stringify({ format: FORMAT_NAME, version: FORMAT_VERSION })), { sync: true })
      return
    }
    let format: unknown
    try {
      format = JSON.parse(decoder.decode(raw))
    } catch {
      format = undefined
    }
    const f = format as { format?: unknown, version?: unknown } | undefined
    if (f?.format !== FORMAT_NAME || f.version !== FORMAT_VERSION) {
      throw new ConfigError(`extent store in ${this.dir} has format ${JSON.stringify(f ?? null)}; this build reads ${FORMAT_NAME} version ${FORMAT_VERSION}`, { dir: this.dir, found: f ?? null, version: FORMAT_VERSION })
    }
  }
}

/**
 * Maps an error from LevelDB to a typed dfs error where one fits: a full disk (ENOSPC, which
 * LevelDB reports as LEVEL_IO_ERROR "… No space left on device") becomes StorageFull. Anything
 * else is returned unchanged: it is not an error this store knows how to explain.
 */
export function mapLevelError (err: unknown, context: Record<string, unknown> = {}): unknown {
  if (err instanceof DfsError) return err
  for (let e: unknown = err, depth = 0; e != null && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const message = e instanceof Error ? e.message : String(e)
    if ((e as { code?: unknown }).code === 'ENOSPC' || /No space left on device|ENOSPC/i.test(message)) {
      return new StorageFullError(`no space left for the extent store${typeof context.dir === 'string' ? ` in ${context.dir}` : ''}: ${message}`, { ...context, cause: message })
    }
  }
  return err
}

function hasCode (err: unknown, pattern: RegExp): boolean {
  for (let e: unknown = err, depth = 0; e != null && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string' && pattern.test(code)) return true
  }
  return false
}


function notFound (id: string): NotFoundError {
  return new NotFoundError(`extent ${id} does not exist`, { id })
}

/** seq first: a header cut short (the likely damage) still names its bytes key, see salvageSeq. */
function encodeHeader (info: ExtentInfo, seq: number): Uint8Array {
  return encoder.encode(JSON.stringify({ seq, size: info.size, checksum: info.checksum }))
}

function isSeq (value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0
}

/**
 * The seq of a header that does not parse, if its text still names one. Lets `delete` remove the
 * bytes of an extent with a damaged header, `get` report their checksum, and the open keep the seq
 * reserved (so it is never given to another extent).
 */
function salvageSeq (raw: Uint8Array): number | undefined {
  const match = /"seq":(\d{1,16})[,}]/.exec(new TextDecoder('utf-8').decode(raw))
  const seq = match == null ? NaN : Number(match[1])
  return isSeq(seq) ? seq : undefined
}

/** The header, or null if it cannot be decoded or names a checksum this build cannot verify. */
function parseHeader (raw: Uint8Array): Header | null {
  let value: unknown
  try {
    value = JSON.parse(decoder.decode(raw))
  } catch {
    return null
  }
  const h = value as Partial<Header> | null
  if (h == null || typeof h !== 'object') return null
  if (typeof h.size !== 'number' || !Number.isSafeInteger(h.size) || h.size < 0) return null
  if (typeof h.checksum !== 'string' || !CHECKSUM_PATTERN.test(h.checksum)) return null
  if (!isSeq(h.seq)) return null
  return { seq: h.seq, size: h.size, checksum: h.checksum }
}

/** Totals over all headers, and the largest seq any header names (0 if none). */
async function scanUsage (db: Level<string, Uint8Array>, log: Logger): Promise<ExtentStoreUsage & { maxSeq: number }> {
  let extents = 0
  let bytes = 0
  let maxSeq = 0
  for await (const [key, value] of db.iterator({ gt: HEADER_PREFIX, lt: HEADER_RANGE_END })) {
    extents += 1
    const header = parseHeader(value)
    if (header == null) {
      log.error('extent %s has an unreadable header; counted with size 0', key.slice(HEADER_PREFIX.length))
      maxSeq = Math.max(maxSeq, salvageSeq(value) ?? 0)
      continue
    }
    bytes += header.size
    maxSeq = Math.max(maxSeq, header.seq)
  }
  return { extents, bytes, maxSeq }
}
