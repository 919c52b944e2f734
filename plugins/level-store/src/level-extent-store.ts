import { createHash } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { Level } from 'level'
import {
  AbortedError,
  AlreadyExistsError,
  ConfigError,
  CorruptExtentError,
  DataDirLockedError,
  DeadlineExceededError,
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
 * Key layout (keys are utf8, values are raw bytes):
 *
 *   m/format     {"format":"dfs-level-store","version":1}   written once, checked on open
 *   h/<id>       header: utf8 JSON {"size":N,"checksum":"sha256:<hex>"}
 *   b/<id>       the extent's bytes, exactly as given to put (no framing)
 *
 * Header and bytes of one extent are always written and deleted together, in one batch with
 * `sync: true`, so they appear and disappear atomically and durably. They live under separate keys
 * for two reasons:
 * - `list` and the usage scan on open iterate only the `h/` range, whose values are a few dozen bytes,
 *   so neither pages 4 MiB extents through memory.
 * - The header is the "expected" half of the pair assertion and the bytes are the "actual" half: a
 *   flipped bit in `b/<id>` (what the tests inject by rewriting that one value) leaves the header
 *   intact, and `get` reports both checksums.
 * Reads of one extent fetch both keys with one `getMany`, which LevelDB answers from one implicit
 * snapshot, so a read never sees a header without its bytes even while a delete runs.
 */
const HEADER_PREFIX = 'h/'
const BYTES_PREFIX = 'b/'
/** The key just past every header: '0' is the character after '/'. */
const HEADER_RANGE_END = 'h0'
const FORMAT_KEY = 'm/format'
const FORMAT_NAME = 'dfs-level-store'
const FORMAT_VERSION = 1

/** Where an extent's header and bytes live; exported for tests that corrupt stored values. */
export const extentKeys = Object.freeze({
  header: (id: string): string => HEADER_PREFIX + id,
  bytes: (id: string): string => BYTES_PREFIX + id,
  format: FORMAT_KEY
})

/** The only checksum algorithm this store computes and knows how to verify. */
const CHECKSUM_PATTERN = /^sha256:[0-9a-f]{64}$/

/**
 * LevelDB's memtable size. The default (4 MiB) is one extent, so every 4 MiB put flushed a memtable
 * to a level-0 table and kept compaction busy: 64 sequential 4 MiB fsync'd puts ran at about
 * 85 MiB/s; with 32 MiB they run at about 220 MiB/s. Cost: up to two memtables (64 MiB) of memory.
 */
const WRITE_BUFFER_BYTES_DEFAULT = 32 * 1024 * 1024

/** Upper bound of `list({ limit })`; a caller that wants more pages with `after`. */
const LIST_LIMIT_MAX = 1_000_000

export interface LevelExtentStoreInit extends ExtentStoreInit {
  /** Name of this node, quoted in CorruptExtent errors so a cluster-wide report says where. */
  node?: string
  /** LevelDB memtable size; see WRITE_BUFFER_BYTES_DEFAULT. */
  writeBufferBytes?: number
}

type State = 'new' | 'opening' | 'open' | 'closing' | 'closed'

interface Header {
  size: number
  checksum: Checksum
}

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

export function sha256 (bytes: Uint8Array): Checksum {
  return 'sha256:' + createHash('sha256').update(bytes).digest('hex')
}

/**
 * ExtentStore on LevelDB; see the key layout above and the contract in @dfs/api.
 *
 * Concurrency: mutations (put, delete) of one id queue behind each other on a per-id lock, so the
 * read-check-write of a put and the running totals never race; different ids run concurrently and
 * LevelDB groups their fsyncs. Reads take no lock: one `getMany` reads header and bytes from one
 * snapshot, and every batch is atomic, so a read sees an extent whole or not at all.
 */
export class LevelExtentStore implements ExtentStore {
  readonly dir: string
  readonly #log: Logger
  readonly #node: string | undefined
  readonly #writeBufferBytes: number
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

  constructor (init: LevelExtentStoreInit) {
    if (typeof init?.dir !== 'string' || init.dir.length === 0) {
      throw new InvalidArgumentError('a level extent store needs a directory', { dir: init?.dir })
    }
    this.dir = init.dir
    this.#log = init.logger
    this.#node = init.node
    this.#writeBufferBytes = init.writeBufferBytes ?? WRITE_BUFFER_BYTES_DEFAULT
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
      writeBufferSize: this.#writeBufferBytes
    })
    try {
      await mkdir(this.dir, { recursive: true })
      await db.open()
      await this.#checkFormat(db)
      const { extents, bytes } = await scanUsage(db, this.#log)
      this.#extents = extents
      this.#bytes = bytes
    } catch (err) {
      this.#state = 'new'
      await db.close().catch(() => {})
      throw this.#openError(err)
    }
    this.#db = db
    this.#state = 'open'
    this.#log('opened extent store in %s: %d extents, %d bytes', this.dir, this.#extents, this.#bytes)
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
      const checksum = sha256(bytes)
      if (given !== undefined && given !== checksum) {
        throw new CorruptExtentError(id, given, checksum, this.#details({ reason: 'checksum given with put does not match the bytes' }))
      }
      const info: ExtentInfo = { id, size: bytes.byteLength, checksum }

      return await this.#withLock(id, async () => {
        throwIfAborted(options.signal)
        this.#assertOpen()
        const [rawHeader, stored] = await db.getMany([extentKeys.header(id), extentKeys.bytes(id)])
        if (rawHeader !== undefined) {
          const header = parseHeader(rawHeader)
          if (header == null || header.checksum !== checksum || header.size !== info.size) {
            throw new AlreadyExistsError(`extent ${id} exists with different bytes; extents are immutable`, {
              id, existingChecksum: header?.checksum ?? null, existingSize: header?.size ?? null, checksum, size: info.size
            })
          }
          if (stored !== undefined && stored.byteLength === info.size && sha256(stored) === checksum) {
            return info
          }
          // The same bytes again, but the stored copy is damaged: the caller hands us a verified
          // good copy, so heal in place. The totals do not change (the header did not).
          this.#log.error('healing corrupt extent %s in %s with re-put bytes', id, this.dir)
          await db.put(extentKeys.bytes(id), bytes, { sync: true })
          return info
        }
        await db.batch([
          { type: 'put', key: extentKeys.header(id), value: encodeHeader(info) },
          { type: 'put', key: extentKeys.bytes(id), value: bytes }
        ], { sync: true })
        this.#extents += 1
        this.#bytes += info.size
        return info
      })
    })
  }

  async get (id: string, options: CallOptions = {}): Promise<Uint8Array> {
    return await this.#call('get', id, options, async (db) => {
      const [rawHeader, stored] = await db.getMany([extentKeys.header(id), extentKeys.bytes(id)])
      if (rawHeader === undefined) throw notFound(id)
      const header = parseHeader(rawHeader)
      // Pair assertion, second half: never hand out bytes whose checksum was not just verified.
      const actual = stored === undefined ? 'missing' : sha256(stored)
      if (header == null) {
        throw new CorruptExtentError(id, 'unreadable-header', actual, this.#details({ reason: 'the header of the extent cannot be decoded' }))
      }
      if (stored === undefined || actual !== header.checksum || stored.byteLength !== header.size) {
        throw new CorruptExtentError(id, header.checksum, actual, this.#details({ expectedSize: header.size, actualSize: stored?.byteLength ?? null }))
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
        await db.batch([
          { type: 'del', key: extentKeys.header(id) },
          { type: 'del', key: extentKeys.bytes(id) }
        ], { sync: true })
        const header = parseHeader(rawHeader)
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

function throwIfAborted (signal: AbortSignal | undefined): void {
  if (signal?.aborted !== true) return
  const reason: unknown = signal.reason
  if (reason instanceof Error && reason.name === 'TimeoutError') {
    throw new DeadlineExceededError('the deadline of the call passed before it started')
  }
  throw new AbortedError()
}

function notFound (id: string): NotFoundError {
  return new NotFoundError(`extent ${id} does not exist`, { id })
}

function encodeHeader (info: ExtentInfo): Uint8Array {
  return encoder.encode(JSON.stringify({ size: info.size, checksum: info.checksum }))
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
  return { size: h.size, checksum: h.checksum }
}

async function scanUsage (db: Level<string, Uint8Array>, log: Logger): Promise<ExtentStoreUsage> {
  let extents = 0
  let bytes = 0
  for await (const [key, value] of db.iterator({ gt: HEADER_PREFIX, lt: HEADER_RANGE_END })) {
    extents += 1
    const header = parseHeader(value)
    if (header == null) {
      log.error('extent %s has an unreadable header; counted with size 0', key.slice(HEADER_PREFIX.length))
      continue
    }
    bytes += header.size
  }
  return { extents, bytes }
}
