import { mkdir, open, readFile, readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { Level } from 'level'
import {
  throwIfAborted,
  AlreadyExistsError,
  ConfigError,
  CorruptExtentError,
  DataDirLockedError,
  DfsError,
  EXTENT_CODECS,
  EXTENT_ID_PATTERN,
  EXTENT_SIZE_MAX,
  InvalidArgumentError,
  decodeExtent,
  extentChecksum,
  extentChecksumAsync,
  isExtentCodec,
  NotFoundError,
  StorageFullError,
  UnavailableError,
  alignUp,
  syncDir
} from '@dfs/api'
import { ExtentFiles, coalesced, crc32, removeQuietly } from './extent-files.js'
import { DeferredWrites, type Deferred } from './deferred-writes.js'
import type {
  CallOptions,
  Checksum,
  EncodedExtentRead,
  ExtentCodec,
  ExtentInfo,
  ExtentPutOptions,
  ExtentReadOptions,
  ExtentStore,
  ExtentStoreInit,
  ExtentStoreUsage,
  Logger
} from '@dfs/api'

/*
 * On-disk layout, format version 5. A store is a LevelDB in the store's own directory (the "index"),
 * a directory `files/` of extent files, and a second LevelDB in `large/` (the "large" database,
 * where format versions 3 and 4 kept large extents' bytes; still read, no longer written). Keys are
 * utf8, values raw bytes.
 *
 *   index:  m/format     {"format":"dfs-level-store","version":5}   written on open, checked on open
 *           h/<id>       header: utf8 JSON {"seq":S,"size":N,"checksum":"sha256:<hex>"[,"file":true]
 *                        [,"large":true][,"codec":"zstd"|"lz4","stored":M][,"crc":C]}
 *           b/<seq>      the stored bytes of an extent of fewer than LARGE_EXTENT_BYTES_MIN stored bytes
 *           p/<seq>      marker: bytes `b/<seq>` in the large database may exist without a header
 *                        naming them; the open deletes them (see "Atomicity" below)
 *   files:  <seq>        the stored bytes of an extent of LARGE_EXTENT_BYTES_MIN or more ("file": true),
 *                        followed by zeros up to a multiple of 4 KiB (see extent-files.ts)
 *   large:  b/<seq>      the stored bytes of a large extent written by format version 3 or 4 ("large": true)
 *
 * Codecs (format version 4). N and the checksum are always those of the extent's logical bytes. A
 * header with "codec" says the bytes value holds the logical bytes encoded with that codec, M bytes
 * long (M < N: an extent is only stored encoded when that saves space); a header without one (every
 * header of versions 2 and 3) says they are the logical bytes themselves. A flipped bit in encoded
 * bytes is CorruptExtent like one in raw bytes, whether it makes them undecodable or decode to other
 * bytes. The usage totals count stored bytes (M, else N): what fills the disk.
 *
 * Checksums. C (in headers written since; absent in older ones, and on a Node without zlib.crc32)
 * is the CRC-32 of the stored bytes, computed when they were written — after the put verified the
 * logical checksum, or was given it by a coordinator that did (`checksumTrusted`). A read whose
 * stored bytes have that CRC returns them (decoded) without hashing them: a CRC-32 finds every burst
 * of up to 32 flipped bits and all but 2^-32 of other damage, which is what a disk does to bytes at
 * rest (Ceph's BlueStore and HDFS check crc32c the same way). It costs ~0.2 ms of CPU per MiB here
 * where sha256 cost ~0.65 ms plus ~0.25 for WebCrypto's copy of the input and its wipe, ~13 % of
 * all the CPU a 256 MiB get spent. A read without C, with a CRC that does not match, or asked to be
 * `deep` (the scrub's) decodes and hashes the logical bytes, and the error names both checksums.
 * The client checks the sha256 of every whole extent it reads in any case.
 *
 * <seq> is the header's S as 16 lower-case hex digits: a write sequence number from one counter for
 * keys and file names, so the keys of each database sort in the order the bytes were written.
 *
 * WHY sequential bytes keys: extent ids are random UUIDs, so with `b/<id>` (format version 1) every
 * memtable flush produced a level-0 table whose key range overlapped all of level 1, and LevelDB's
 * compactions rewrote all earlier extents' bytes again and again (3 successive rounds of 64 × 4 MiB
 * fsync'd puts: 259 → 142 → 57 MiB/s; with `b/<seq>`: 183 → 191 → 197 MiB/s).
 *
 * WHY files for large extents (format version 5): a file per extent is written once, where LevelDB
 * wrote every byte twice (its log, then a table) and spent CPU on both; with direct I/O (see
 * extent-files.ts) a replica of a 256 MiB put spent ~1.5 ms of CPU per MiB on storing it instead of
 * ~6.5. Deleting an extent frees its space at once, with no compaction, as Garage's block files do.
 * Small extents stay in the index with their header (one batch, one fsync: a small put's latency is
 * its fsync).
 *
 * WHY a second database for large extents (format version 3, superseded by files): in one database the small `h/`
 * headers, which arrive with every flush at random ids, still made each flushed table's key range
 * ([b/…, h/…]) overlap the newest table below it, so compaction kept rewriting up to a table's worth
 * of 4 MiB values per flush. Measured with raw LevelDB (this store's options, 4 rounds of 64 × 4 MiB
 * fsync'd batches): bytes keys alone 4.2–4.3 ms of CPU per MiB at ~300 MiB/s; with a random 90-byte
 * header in each batch 6.3–6.9 ms per MiB at ~190 MiB/s, and correspondingly more bytes written to
 * disk. In a database of its own, large bytes are only ever appended in key order, every flushed
 * table lies past all others, and compaction moves tables down without rewriting them. Small
 * extents stay in the index with their header (one batch, one fsync: a small put's latency is its
 * fsync).
 *
 * Atomicity. A small extent's header and bytes are written and deleted together, in one batch: a write
 * with `sync: true` (unless the put says `durable: false`), a delete without (a crash may undo it,
 * bringing the whole unreferenced extent back for the start-up sweep). A file extent is written in
 * three steps: 1. create `files/<seq>` (exclusively), write it and fdatasync it; 2. fsync the `files/`
 * directory (overlapping puts share these fsyncs); 3. index: put h/<id> (fsync'd). It is deleted in
 * two: 1. index: del h/<id> (fsync'd) 2. remove the file. So the header names a file only once file
 * and name are durable, and a crash anywhere leaves at most a file no header names: the open removes
 * every file in `files/` whose seq no header names (no write runs while a store opens).
 *
 * A format-4 large extent spans two databases, so it was written in three fsync'd steps
 *   1. index: put p/<seq>   2. large: put b/<seq>   3. index: put h/<id>, del p/<seq>
 * and deleted in three: 1. index: del h/<id>, put p/<seq> (fsync'd)  2. large: del b/<seq>
 * 3. index: del p/<seq>. The header appears and disappears atomically and durably in one index
 * batch, and it names bytes only once they are durable; a crash at any other point leaves a marker,
 * and the open deletes the bytes every marker names (and the marker). So nothing a put acknowledged
 * is lost and no bytes leak, without ever scanning the large database (every key of which sits next
 * to a 4 MiB value). The two extra fsyncs are small index writes, a few per cent of a 4 MiB put.
 *
 * S is never reused for a different extent while any header or marker names it: on open the counter
 * restarts at 1 + the largest of every `b/` key (both databases), every header's S, every marker's S
 * and every file's. The S of a deleted extent may be handed out again after a restart (if it was the
 * largest), which is harmless: no header names it any more, and no read that started before the
 * restart can still be running.
 *
 * Header and bytes live under separate keys because `list` and the usage scan on open iterate only
 * the `h/` range, whose values are a few dozen bytes, and because the header is the "expected" half
 * of the pair assertion and the bytes the "actual" half: a flipped bit in a bytes value (what the
 * tests inject by rewriting that one value) leaves the header intact, and `get` reports both
 * checksums. A read takes the header and a small extent's bytes from one index snapshot, so a
 * concurrent delete (or delete and re-put, or heal) of the same id cannot slip in between; a large
 * extent's bytes are read after the snapshot, and a read that finds them gone looks at the header
 * again (a delete or heal may have run in between) before it calls the copy corrupt.
 *
 * Deferred writes. A put with `durable: false` of an extent stored in the index (fewer than
 * LARGE_EXTENT_BYTES_MIN stored bytes) is not written when it resolves: the store keeps a copy in
 * memory (DeferredWrites), answers reads from it, and writes such extents together, one unsynced
 * batch per 100 ms or per 8 MiB, each with a new S as any write. Deleting one that waits drops it;
 * `list`, `sync` and `close` write what waits first. A crash loses what waited, as it may lose any
 * unsynced write: the caller keeps those bytes durable elsewhere until `sync` (the Raft log that
 * carried a small file's bytes, which a restarted node applies again). WHY: every replica stores a
 * copy of each small file as it applies its commit; written one by one, each copy was a LevelDB write
 * through the thread pool, and on this 2-core machine a 4 KiB put's p50 via a node other than the
 * group leader was 1.74–1.82 ms with them and 1.56 batched (scripts-only measurement, 3,000 warm puts).
 *
 * Format version 2 (one database, every extent's bytes in it) is read as it is: its headers have no
 * "large"; versions 3 and 4 are read as they are too: their headers have no "file" (nor, in 3,
 * "codec"). The open rewrites the format record to version 5, after which older builds refuse the
 * store rather than miss its file extents or hand out encoded bytes as logical ones.
 */
const HEADER_PREFIX = 'h/'
const BYTES_PREFIX = 'b/'
const MARKER_PREFIX = 'p/'
/** A key below every key of the layout: `sync` compacts the empty range [it, it], which only flushes the memtable. */
const SYNC_RANGE_KEY = '\u0000'
/** The key just past every header / bytes key / marker: '0' is the character after '/'. */
const HEADER_RANGE_END = 'h0'
const BYTES_RANGE_END = 'b0'
const MARKER_RANGE_END = 'p0'
const SEQ_DIGITS = 16
const SEQ_KEY_PATTERN = /^[bp]\/[0-9a-f]{16}$/
const FORMAT_KEY = 'm/format'
const FORMAT_NAME = 'dfs-level-store'
const FORMAT_VERSION = 5
/** Format versions this build opens (2 to 4 are read as they are and upgraded to 5). */
const FORMAT_VERSIONS_READ: readonly number[] = [2, 3, 4, 5]
/** The large database's directory, inside the store's (LevelDB leaves names it does not own alone). */
const LARGE_DIR = 'large'
/** The directory of extent files, inside the store's. */
const FILES_DIR = 'files'
const FILE_NAME_PATTERN = /^[0-9a-f]{16}$/

/**
 * Extents of at least this many stored bytes keep them in a file (see the layout). Below it a put is
 * one fsync'd batch; at or above, three fsyncs (file, directory, index). 256 KiB, not more: a 4 MiB
 * extent of log-like text is stored zstd-encoded in ~0.9 MiB, and with 1 MiB those went through
 * LevelDB's log and tables, costing the copy holders of a 256 MiB text put ~1 ms of CPU per logical MiB.
 */
export const LARGE_EXTENT_BYTES_MIN = 256 * 1024

function seqKey (prefix: string, seq: number): string {
  return prefix + seq.toString(16).padStart(SEQ_DIGITS, '0')
}

/** Where an extent's header and bytes live; exported for tests that corrupt stored values. */
export const extentKeys = Object.freeze({
  header: (id: string): string => HEADER_PREFIX + id,
  /** The key of the bytes of write sequence number `seq` (the `seq` of the extent's header). */
  bytes: (seq: number): string => seqKey(BYTES_PREFIX, seq),
  /** The index key of the marker of write sequence number `seq`. */
  marker: (seq: number): string => seqKey(MARKER_PREFIX, seq),
  format: FORMAT_KEY
})

/** The directory of the large database of the store in `dir`. */
export function largeDirOf (dir: string): string {
  return join(dir, LARGE_DIR)
}

/** The file that holds the bytes of write sequence number `seq` of a file extent of the store in `dir`. */
export function extentFileOf (dir: string, seq: number): string {
  return join(dir, FILES_DIR, seq.toString(16).padStart(SEQ_DIGITS, '0'))
}

/**
 * Where the bytes of extent `id` are, read from its header in the store's index database `db` (open)
 * of the store in `dir`: their key, and whether it is in the large database (`largeDirOf`) rather
 * than the index — or, for a file extent, `file`, the path of its file (whose first `stored` bytes
 * are the extent's); undefined if there is no such extent or its header names no sequence number.
 * For tests and tools that inspect or damage stored values.
 */
export async function bytesKeyOf (db: Level<string, Uint8Array>, id: string, dir?: string): Promise<{ key: string, large: boolean, file?: string, stored?: number } | undefined> {
  const raw = await db.get(extentKeys.header(id))
  if (raw === undefined) return undefined
  const header = parseHeader(raw)
  const seq = header?.seq ?? salvageSeq(raw)
  if (seq === undefined) return undefined
  if (header?.file === true) {
    if (dir === undefined) throw new InvalidArgumentError(`extent ${id} is in a file: bytesKeyOf needs the store's directory`, { id })
    return { key: extentKeys.bytes(seq), large: false, file: extentFileOf(dir, seq), stored: header.stored }
  }
  return { key: extentKeys.bytes(seq), large: header?.large === true }
}

/**
 * Opens the LevelDB in `dir` (a closed store's index, or its large database) as a disk-level tool
 * would, runs `fn` on it, closes it. For tests and tools.
 */
export async function withClosedDb<T> (dir: string, fn: (db: Level<string, Uint8Array>) => Promise<T>): Promise<T> {
  const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' })
  await db.open()
  try {
    return await fn(db)
  } finally {
    await db.close()
  }
}

/**
 * The stored bytes of extent `id` in the closed store in `dir` (encoded ones as they are stored),
 * wherever they live, or undefined if it has no header naming bytes, or they are missing. For tests
 * and tools that inspect stored values.
 */
export async function readStoredBytes (dir: string, id: string): Promise<Uint8Array | undefined> {
  const where = await withClosedDb(dir, async (db) => await bytesKeyOf(db, id, dir))
  if (where === undefined) return undefined
  if (where.file !== undefined) {
    try {
      return (await readFile(where.file)).subarray(0, where.stored)
    } catch (err) {
      if ((err as { code?: unknown }).code === 'ENOENT') return undefined
      throw err
    }
  }
  return await withClosedDb(where.large ? largeDirOf(dir) : dir, async (db) => await db.get(where.key))
}

/**
 * Replaces the stored bytes of extent `id` in the closed store in `dir` with `bytes` (durably),
 * leaving its header as it is: what a disk that returns other bytes does. For tests that inject
 * damage. Throws if the extent has no header naming bytes.
 */
export async function writeStoredBytes (dir: string, id: string, bytes: Uint8Array): Promise<void> {
  const where = await withClosedDb(dir, async (db) => await bytesKeyOf(db, id, dir))
  if (where === undefined) throw new NotFoundError(`extent ${id} in ${dir} has no header naming its bytes`, { id, dir })
  if (where.file !== undefined) {
    const file = await open(where.file, 'r+')
    try {
      // the header's length counts: bytes past it in the file are padding
      await file.truncate(0)
      await file.write(bytes, 0, bytes.byteLength, 0)
      await file.truncate(alignUp(bytes.byteLength))
      await file.sync()
    } finally {
      await file.close()
    }
    return
  }
  await withClosedDb(where.large ? largeDirOf(dir) : dir, async (db) => { await db.put(where.key, bytes, { sync: true }) })
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
  /** Read and write extent files with O_DIRECT where the file system allows (default: on Linux); see extent-files.ts. */
  directIo?: boolean
}

type State = 'new' | 'opening' | 'open' | 'closing' | 'closed'

interface Header {
  /** Write sequence number: the bytes live at `extentKeys.bytes(seq)`. */
  seq: number
  /** Logical size. */
  size: number
  /** Checksum of the logical bytes. */
  checksum: Checksum
  /** The bytes are in the large database (format 3 or 4). */
  large: boolean
  /** The bytes are in the file `extentFileOf(dir, seq)`. */
  file: boolean
  /** The stored bytes are the logical ones encoded with this codec (absent: raw). */
  codec?: ExtentCodec
  /** Length of the stored bytes: `size` when raw, less when encoded. */
  stored: number
  /** CRC-32 of the stored bytes as they were written (absent in headers written before it was). */
  crc?: number
}

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

export const sha256 = extentChecksum

/** sha256 of an extent, off the event loop for large ones (see extentChecksumAsync). */
const sha256Async = extentChecksumAsync

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
  /** Every codec this build decodes: encoded puts are kept as they are (see the layout). */
  readonly codecs = EXTENT_CODECS
  readonly #log: Logger
  readonly #node: string | undefined
  readonly #writeBufferBytes: number
  readonly #maxFileBytes: number
  /** The index database (headers, small extents' bytes, markers) and the large database; see the layout. */
  #db: Level<string, Uint8Array> | undefined
  #large: Level<string, Uint8Array> | undefined
  #state: State = 'new'
  #closing: Promise<void> | undefined
  /** Tail of the queue of mutations per extent id; an entry exists only while one is queued or runs. */
  readonly #locks = new Map<string, Promise<void>>()
  /** Calls that use the db right now; close waits for them before it closes the db. */
  readonly #inflight = new Set<Promise<unknown>>()
  /**
   * Running totals. Invariant: equal to the sum over all `h/` headers (rebuilt by the scan on open);
   * `#bytes` counts stored bytes (see the layout).
   */
  #extents = 0
  #bytes = 0
  /** The write sequence number the next bytes get; see the key layout. */
  #nextSeq = 1
  /** A memtable flush, shared by overlapping `sync` calls. */
  readonly #flushShared = coalesced(async () => { await this.#flush() })
  /** An fsync of `files/`, shared by overlapping file writes. */
  readonly #syncFilesDir = coalesced(async () => { await syncDir(join(this.dir, FILES_DIR)) })
  readonly #files: ExtentFiles
  /** Small extents of `durable: false` puts not written yet (see "Deferred writes" in the layout). */
  readonly #deferred: DeferredWrites

  constructor (init: LevelExtentStoreInit) {
    if (typeof init?.dir !== 'string' || init.dir.length === 0) {
      throw new InvalidArgumentError('a level extent store needs a directory', { dir: init?.dir })
    }
    this.dir = init.dir
    this.#log = init.logger
    this.#node = init.node
    this.#writeBufferBytes = init.writeBufferBytes ?? WRITE_BUFFER_BYTES_DEFAULT
    this.#maxFileBytes = init.maxFileBytes ?? MAX_FILE_BYTES_DEFAULT
    this.#files = new ExtentFiles({
      direct: init.directIo,
      onBuffered: (reason) => { this.#log('extent files in %s: the file system refused direct I/O (%s); reading and writing them buffered', this.dir, reason) }
    })
    this.#deferred = new DeferredWrites({
      write: async (entries) => { await this.#writeDeferred(entries) },
      onError: (err, entries) => {
        this.#log.error('writing %d deferred extents in %s failed (they wait for the next batch): %s', entries, this.dir, (err as Error)?.message ?? err)
      }
    })
  }

  async open (options: CallOptions = {}): Promise<void> {
    throwIfAborted(options.signal)
    if (this.#state === 'open') return
    if (this.#state !== 'new') {
      throw new UnavailableError(`extent store in ${this.dir} is ${this.#state}; a closed store cannot be reopened`, { dir: this.dir, state: this.#state })
    }
    this.#state = 'opening'
    const dbOptions = {
      keyEncoding: 'utf8',
      valueEncoding: 'view',
      writeBufferSize: this.#writeBufferBytes,
      maxFileSize: this.#maxFileBytes,
      // extents are opaque, often already compressed bytes: Snappy would try every block in vain
      compression: false
    } as const
    const db = new Level<string, Uint8Array>(this.dir, dbOptions)
    const large = new Level<string, Uint8Array>(largeDirOf(this.dir), dbOptions)
    try {
      await mkdir(this.dir, { recursive: true })
      await db.open()
      await this.#checkFormat(db)
      await large.open()
      await mkdir(join(this.dir, FILES_DIR), { recursive: true })
      const { extents, bytes, maxSeq, fileSeqs } = await scanUsage(db, this.#log)
      const largest = Math.max(maxSeq, await largestSeq(db, BYTES_PREFIX, BYTES_RANGE_END, this.dir),
        await largestSeq(db, MARKER_PREFIX, MARKER_RANGE_END, this.dir), await largestSeq(large, BYTES_PREFIX, BYTES_RANGE_END, this.dir),
        await this.#dropUnnamedFiles(fileSeqs))
      await this.#dropMarked(db, large)
      this.#extents = extents
      this.#bytes = bytes
      this.#nextSeq = largest + 1
    } catch (err) {
      this.#state = 'new'
      await Promise.allSettled([db.close(), large.close()])
      throw this.#openError(err)
    }
    this.#db = db
    this.#large = large
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
      this.#deferred.stop()
      // what waits is written before the database closes (a failure loses only unsynced copies)
      await this.#deferred.settle().catch(() => {})
      await Promise.allSettled([...this.#inflight])
      try {
        await Promise.all([this.#db?.close(), this.#large?.close()])
      } finally {
        this.#db = undefined
        this.#large = undefined
        this.#state = 'closed'
      }
    })()
    await this.#closing
  }

  async put (id: string, bytes: Uint8Array, options: ExtentPutOptions = {}): Promise<ExtentInfo> {
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
      const { codec } = options
      const trusted = options.checksumTrusted === true
      if (trusted && given === undefined) throw new InvalidArgumentError(`a put of extent ${id} with checksumTrusted needs the checksum`, { id })
      let logical = bytes
      let size = bytes.byteLength
      if (codec !== undefined) {
        if (!isExtentCodec(codec)) throw new InvalidArgumentError(`extent codec ${JSON.stringify(codec)} is not one of ${EXTENT_CODECS.join(', ')}`, { id, codec })
        const logicalSize = options.size
        if (typeof logicalSize !== 'number' || !Number.isSafeInteger(logicalSize) || logicalSize < 0 || logicalSize > EXTENT_SIZE_MAX) {
          throw new InvalidArgumentError(`an encoded extent needs its logical size (0 to ${EXTENT_SIZE_MAX}), got ${String(logicalSize)}`, { id, size: logicalSize ?? null })
        }
        if (bytes.byteLength >= logicalSize) {
          throw new InvalidArgumentError(`extent ${id} encoded with ${codec} is ${bytes.byteLength} bytes, not fewer than its ${logicalSize} logical bytes`, { id, codec, size: logicalSize, storedSize: bytes.byteLength })
        }
        size = logicalSize
        // undecodable bytes, or bytes of another length, are CorruptExtent: nothing is stored
        if (!trusted) logical = decodeExtent({ id, size, checksum: given }, codec, bytes, this.#details({ reason: 'the encoded bytes given with put do not decode' }))
      }
      // Pair assertion, first half: the checksum of the logical bytes is computed before anything
      // is written, and a checksum the sender computed must agree with it (bytes damaged in transit
      // are not stored) — unless the caller vouches for it (`checksumTrusted`: a coordinator that
      // just computed it, a replica that received it from one over Noise); reads verify either way.
      const checksum = trusted ? given as Checksum : await sha256Async(logical)
      if (given !== undefined && given !== checksum) {
        throw new CorruptExtentError(id, given, checksum, this.#details({ reason: 'checksum given with put does not match the bytes' }))
      }
      const info: ExtentInfo = codec === undefined
        ? { id, size, checksum }
        : { id, size, checksum, codec, storedSize: bytes.byteLength }

      return await this.#withLock(id, async () => {
        throwIfAborted(options.signal)
        this.#assertOpen()
        // held in memory, not yet written (see "Deferred writes")
        const held = this.#deferred.get(id)
        if (held !== undefined) {
          if (held.info.checksum !== checksum || held.info.size !== info.size) {
            throw new AlreadyExistsError(`extent ${id} exists with different bytes; extents are immutable`, {
              id, existingChecksum: held.info.checksum, existingSize: held.info.size, checksum, size: info.size
            })
          }
          // a durable put of a waiting extent writes it now, synced, rather than leave it to the
          // batch; one already being written is then as any written unsynced copy (as before batching)
          if (options.durable === false || !await this.#deferred.remove(id)) return held.info
          this.#extents -= 1
          this.#bytes -= held.stored.byteLength
        }
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
          const stored = await this.#storedOf(db, header)
          if (stored !== undefined && this.#verifies(id, header, stored)) {
            // the copy here stays as it is stored, whatever form this put's bytes were in
            return infoOf(id, header)
          }
          // The same bytes again, but the stored copy is damaged or missing: the caller hands us a
          // verified good copy, so heal it. The healed bytes get a new seq like any other write (the
          // keys stay monotonic) and the new header replaces the old one. The totals do not change.
          this.#log.error('healing corrupt extent %s in %s with re-put bytes', id, this.dir)
          await this.#write(db, id, info, bytes, options.durable !== false, header)
          this.#bytes += bytes.byteLength - header.stored
          return info
        }
        const deferred = options.durable === false && bytes.byteLength < LARGE_EXTENT_BYTES_MIN && this.#deferred.add(id, info, bytes)
        if (!deferred) await this.#write(db, id, info, bytes, options.durable !== false)
        this.#extents += 1
        this.#bytes += bytes.byteLength
        return info
      })
    })
  }

  async get (id: string, options: ExtentReadOptions = {}): Promise<Uint8Array> {
    return (await this.#read('get', id, options)).logical
  }

  async getEncoded (id: string, options: ExtentReadOptions = {}): Promise<EncodedExtentRead> {
    const { info, stored } = await this.#read('getEncoded', id, options)
    return { info, bytes: stored }
  }

  /** One verified read: the extent's header as info, its stored bytes and its logical (decoded) bytes. */
  async #read (op: string, id: string, options: ExtentReadOptions): Promise<{ info: ExtentInfo, stored: Uint8Array, logical: Uint8Array }> {
    return await this.#call(op, id, options, async (db) => {
      const held = this.#deferred.get(id)
      if (held !== undefined) return this.#readDeferred(held)
      // Header and a small extent's bytes are two lookups; one snapshot makes them one point in time,
      // so a concurrent delete (and re-put, or heal) of this id is either wholly seen or not at all.
      // A large extent's bytes are in the other database, read after it (see the layout).
      for (let attempt = 1; ; attempt++) {
        const snapshot = db.snapshot()
        let rawHeader: Uint8Array | undefined
        let stored: Uint8Array | undefined
        let header: Header | null
        let seq: number | undefined
        /** The CRC-32 of `stored`, when reading them computed it on the way. */
        const read: { crc?: number } = {}
        try {
          rawHeader = await db.get(extentKeys.header(id), { snapshot })
          if (rawHeader === undefined) throw notFound(id)
          header = parseHeader(rawHeader)
          seq = header?.seq ?? salvageSeq(rawHeader)
          if (seq !== undefined && header?.large !== true && header?.file !== true) stored = await db.get(extentKeys.bytes(seq), { snapshot })
        } finally {
          await snapshot.close()
        }
        // a file or format-4 large extent's bytes, or a damaged header's that are not in the index
        if (seq !== undefined && stored === undefined && (header == null || header.large || header.file)) {
          stored = header == null
            ? (await this.#largeDb().get(extentKeys.bytes(seq))) ?? await this.#readFile(seq)
            : await this.#storedOf(db, header, read)
          if (stored === undefined && header != null && attempt === 1) {
            // gone since the snapshot? A delete leaves no header, a heal a header with another seq
            const now = await db.get(extentKeys.header(id))
            if (now === undefined) throw notFound(id)
            if (parseHeader(now)?.seq !== header.seq) continue
          }
        }
        if (header == null) {
          const actual = stored === undefined ? 'missing' : await sha256Async(stored)
          throw new CorruptExtentError(id, 'unreadable-header', seq === undefined ? 'unknown' : actual, this.#details({ reason: 'the header of the extent cannot be decoded' }))
        }
        if (stored === undefined) {
          throw new CorruptExtentError(id, header.checksum, 'missing', this.#details({ expectedSize: header.stored, actualSize: null, seq: header.seq }))
        }
        // LevelDB hands out a Buffer; callers get the plain Uint8Array the interface names (no copy)
        const view = new Uint8Array(stored.buffer, stored.byteOffset, stored.byteLength)
        if (view.byteLength !== header.stored) {
          const actual = header.codec === undefined ? await sha256Async(view) : 'unknown'
          throw new CorruptExtentError(id, header.checksum, actual, this.#details({ expectedSize: header.stored, actualSize: view.byteLength, seq: header.seq, codec: header.codec ?? null }))
        }
        // The stored bytes are those that were written when their CRC-32 is the one recorded then,
        // and what was written was verified (or vouched for by the coordinator that verified it)
        // against the checksum: enough for a read (see "Checksums" in the layout). Any doubt, or a
        // deep read, takes the full check below, which names both checksums if it fails.
        if (options.deep !== true && header.crc !== undefined && crc32 !== undefined && (read.crc ?? crc32(view)) === header.crc) {
          const logical = header.codec === undefined
            ? view
            : decodeExtent({ id, size: header.size, checksum: header.checksum }, header.codec, view, this.#details({ seq: header.seq }))
          if (logical.byteLength === header.size) return { info: infoOf(id, header), stored: view, logical }
        }
        // undecodable encoded bytes are CorruptExtent too
        const logical = header.codec === undefined
          ? view
          : decodeExtent({ id, size: header.size, checksum: header.checksum }, header.codec, view, this.#details({ seq: header.seq }))
        // Pair assertion, second half: never hand out bytes whose checksum was not just verified.
        const actual = await sha256Async(logical)
        if (actual !== header.checksum || logical.byteLength !== header.size) {
          throw new CorruptExtentError(id, header.checksum, actual, this.#details({ expectedSize: header.size, actualSize: logical.byteLength, seq: header.seq, codec: header.codec ?? null }))
        }
        return { info: infoOf(id, header), stored: view, logical }
      }
    })
  }

  async has (id: string, options: CallOptions = {}): Promise<boolean> {
    return await this.#call('has', id, options, async (db) => {
      return this.#deferred.get(id) !== undefined || (await db.get(extentKeys.header(id))) !== undefined
    })
  }

  async stat (id: string, options: CallOptions = {}): Promise<ExtentInfo> {
    return await this.#call('stat', id, options, async (db) => {
      const held = this.#deferred.get(id)
      if (held !== undefined) return held.info
      const rawHeader = await db.get(extentKeys.header(id))
      if (rawHeader === undefined) throw notFound(id)
      const header = parseHeader(rawHeader)
      if (header == null) {
        throw new CorruptExtentError(id, 'unreadable-header', 'unknown', this.#details({ reason: 'the header of the extent cannot be decoded' }))
      }
      return infoOf(id, header)
    })
  }

  async delete (id: string, options: CallOptions = {}): Promise<boolean> {
    return await this.#call('delete', id, options, async (db) => {
      return await this.#withLock(id, async () => {
        throwIfAborted(options.signal)
        this.#assertOpen()
        const held = this.#deferred.get(id)
        if (held !== undefined && await this.#deferred.remove(id)) {
          this.#extents -= 1
          this.#bytes -= held.stored.byteLength
          return true
        }
        const rawHeader = await db.get(extentKeys.header(id))
        if (rawHeader === undefined) return false
        const header = parseHeader(rawHeader)
        const seq = header?.seq ?? salvageSeq(rawHeader)
        if (seq === undefined) {
          this.#log.error('deleting extent %s in %s whose header names no bytes key; its bytes (if any) stay orphaned', id, this.dir)
        }
        // small bytes go with the header; a file goes after it; format-4 large ones behind a marker,
        // then from the large database (a damaged header's bytes may be any of these)
        const marked = seq !== undefined && (header == null || header.large)
        const inFile = seq !== undefined && (header == null || header.file)
        // A small extent's header and bytes go in one batch that is not fsync'd: a crash that loses
        // it brings back the whole extent, header and bytes, which nothing references any more and
        // the start-up sweep frees (ExtentGc.sweep); the next synced write of the store makes it
        // durable anyway (LevelDB's log is written in order). An fsync per delete made every
        // overwrite of a small file wait for one on the node that cut it. A file or a marker is
        // removed after its header, which must then be durable first: those batches stay synced.
        await db.batch([
          { type: 'del', key: extentKeys.header(id) },
          ...(seq === undefined ? [] : [{ type: 'del' as const, key: extentKeys.bytes(seq) }]),
          ...(marked ? [{ type: 'put' as const, key: extentKeys.marker(seq), value: MARKER_VALUE }] : [])
        ], { sync: marked || inFile || header == null })
        if (marked) await this.#unmark(db, seq)
        if (inFile) await this.#dropFile(seq)
        this.#extents -= 1
        this.#bytes -= header?.stored ?? 0
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
    this.#assertOpen()
    if (limit === 0) return
    // the extents of deferred puts are listed once written
    await this.#settleDeferred('list')
    const db = this.#assertOpen()
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
          yield infoOf(id, header)
        }
      }
    } finally {
      await iterator.close().catch(() => {})
    }
  }

  /**
   * Makes every put that resolved before it durable, `durable: false` ones included: LevelDB's
   * compactRange writes the memtable to a table file and fsyncs it and the manifest, so what any
   * earlier write put in a log file — the current one, or one LevelDB has since switched from while
   * its memtable waits to be flushed — is then in a synced file. (A sync'd write would fsync only the
   * current log file.) The range holds no key, so nothing else is compacted. It writes at most one
   * memtable (WRITE_BUFFER_BYTES_DEFAULT); the node calls it before a metadata snapshot.
   */
  async sync (options: CallOptions = {}): Promise<void> {
    throwIfAborted(options.signal)
    this.#assertOpen()
    // the deferred puts that resolved before this call are written, then the memtable flushed with them
    await this.#settleDeferred('sync')
    // Calls that overlap share flushes (`coalesced`): concurrent syncs (a node's data groups may
    // snapshot together) cost at most two flushes and hold at most one thread-pool thread, not one each.
    await this.#flushShared()
  }

  /** Writes every deferred put now (see DeferredWrites.settle); a failure is mapped like any write's. */
  async #settleDeferred (op: string): Promise<void> {
    try {
      await this.#deferred.settle()
    } catch (err) {
      throw this.#mapError(err, op)
    }
  }

  /**
   * The batch of deferred puts (see "Deferred writes"): each extent's header and bytes under a new
   * seq, as `#write` writes a small one, in one batch, not fsync'd.
   */
  async #writeDeferred (entries: readonly Deferred[]): Promise<void> {
    const db = this.#db
    if (db === undefined) throw new UnavailableError(`extent store in ${this.dir} is ${this.#state}`, { dir: this.dir, state: this.#state })
    const ops: Array<{ type: 'put', key: string, value: Uint8Array }> = []
    for (const { id, info, stored } of entries) {
      const seq = this.#nextSeq++
      ops.push({ type: 'put', key: extentKeys.header(id), value: encodeHeader(info, seq, false, crc32?.(stored)) },
        { type: 'put', key: extentKeys.bytes(seq), value: stored })
    }
    const running = db.batch(ops, { sync: false })
    this.#inflight.add(running)
    try {
      await running
    } finally {
      this.#inflight.delete(running)
    }
  }

  /**
   * A read of an extent that waits to be written: its bytes from memory, checked against its
   * checksum like any read's (decoded first if encoded), and copies (the held ones are still to be written).
   */
  #readDeferred ({ id, info, stored }: Deferred): { info: ExtentInfo, stored: Uint8Array, logical: Uint8Array } {
    const copy = stored.slice()
    const logical = info.codec === undefined
      ? copy
      : decodeExtent(info, info.codec, copy, this.#details({ reason: 'deferred bytes do not decode' }))
    const actual = sha256(logical)
    if (actual !== info.checksum || logical.byteLength !== info.size) {
      throw new CorruptExtentError(id, info.checksum, actual, this.#details({ expectedSize: info.size, actualSize: logical.byteLength, deferred: true }))
    }
    return { info, stored: copy, logical }
  }

  /** One memtable flush (see `sync`). */
  async #flush (): Promise<void> {
    const db = this.#assertOpen()
    // `level` on Node is classic-level, whose compactRange its Level type does not declare
    const compactRange = (db as unknown as { compactRange?: (start: string, end: string) => Promise<void> }).compactRange
    if (typeof compactRange !== 'function') throw new UnavailableError(`the extent store in ${this.dir} cannot flush its memtable (no compactRange)`, { dir: this.dir })
    const running = compactRange.call(db, SYNC_RANGE_KEY, SYNC_RANGE_KEY)
    this.#inflight.add(running)
    try {
      await running
    } catch (err) {
      throw this.#mapError(err, 'sync')
    } finally {
      this.#inflight.delete(running)
    }
  }

  async usage (options: CallOptions = {}): Promise<ExtentStoreUsage> {
    throwIfAborted(options.signal)
    this.#assertOpen()
    return { extents: this.#extents, bytes: this.#bytes }
  }

  held (): ExtentStoreUsage {
    return { extents: this.#deferred.size, bytes: this.#deferred.bytes }
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

  /** Whether `stored` are good bytes of the extent `header` describes (decoded, when encoded, and hashed). */
  #verifies (id: string, header: Header, stored: Uint8Array): boolean {
    if (stored.byteLength !== header.stored) return false
    let logical = stored
    if (header.codec !== undefined) {
      try {
        logical = decodeExtent({ id, size: header.size }, header.codec, stored)
      } catch {
        return false
      }
    }
    return logical.byteLength === header.size && sha256(logical) === header.checksum
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

  #largeDb (): Level<string, Uint8Array> {
    this.#assertOpen()
    return this.#large as Level<string, Uint8Array>
  }

  /**
   * Writes extent `id` under a new seq, durably, as the layout's "Atomicity" describes; with
   * `replacing` (a heal), the new header replaces that one and the bytes it named are freed.
   * `sync` false (a put with `durable: false`): a small extent's batch is not fsync'd (see `sync`);
   * a large one's steps always are.
   */
  async #write (db: Level<string, Uint8Array>, id: string, info: ExtentInfo, bytes: Uint8Array, sync: boolean, replacing?: Header): Promise<void> {
    // by stored length: where the bytes go depends on what is written, not on what it decodes to
    const inFile = bytes.byteLength >= LARGE_EXTENT_BYTES_MIN
    // The seq is taken before anything is written (no await in between), so writes of different
    // ids reach LevelDB in seq order as far as this process can tell.
    const seq = this.#nextSeq++
    const header = (crc: number | undefined): { type: 'put', key: string, value: Uint8Array } =>
      ({ type: 'put', key: extentKeys.header(id), value: encodeHeader(info, seq, inFile, crc) })
    // the bytes a heal replaces: small ones go in the batch that writes the new header, format-4
    // large ones behind a marker, a file after it (both freed below)
    const old = replacing === undefined || replacing.file
      ? []
      : replacing.large
        ? [{ type: 'put' as const, key: extentKeys.marker(replacing.seq), value: MARKER_VALUE }]
        : [{ type: 'del' as const, key: extentKeys.bytes(replacing.seq) }]
    if (!inFile) {
      await db.batch([header(crc32?.(bytes)), { type: 'put', key: extentKeys.bytes(seq), value: bytes }, ...old], { sync })
    } else {
      try {
        // the CRC is computed while the bytes are copied for the write
        const crc = await this.#files.write(extentFileOf(this.dir, seq), bytes)
        await this.#syncFilesDir()
        await db.batch([header(crc), ...old], { sync: true })
      } catch (err) {
        // no header names this file: take it back now (or the next open does)
        await this.#dropFile(seq)
        throw err
      }
    }
    if (replacing?.large === true) await this.#unmark(db, replacing.seq)
    if (replacing?.file === true) await this.#dropFile(replacing.seq)
  }

  /**
   * The stored bytes `header` names, wherever they live; undefined if they are not there. A file's
   * CRC-32, computed while reading it, goes to `read.crc`.
   */
  async #storedOf (db: Level<string, Uint8Array>, header: Header, read: { crc?: number } = {}): Promise<Uint8Array | undefined> {
    if (header.file) return await this.#readFile(header.seq, header.stored, read)
    return await (header.large ? this.#largeDb() : db).get(extentKeys.bytes(header.seq))
  }

  /**
   * The first `stored` bytes of the file of `seq` (fewer if it is shorter; all of it without
   * `stored`, for a damaged header), or undefined if there is no such file.
   */
  async #readFile (seq: number, stored?: number, read: { crc?: number } = {}): Promise<Uint8Array | undefined> {
    this.#assertOpen()
    const path = extentFileOf(this.dir, seq)
    try {
      // never more than one byte past the largest extent, whatever a damaged header or file says:
      // enough to see the length is wrong
      const { bytes, crc } = await this.#files.read(path, Math.min(stored ?? (await stat(path)).size, EXTENT_SIZE_MAX + 1))
      if (crc !== undefined) read.crc = crc
      return bytes
    } catch (err) {
      if ((err as { code?: unknown }).code === 'ENOENT') return undefined
      throw err
    }
  }

  /** Removes the file of `seq` if it is there. A failure is logged and left to the next open. */
  async #dropFile (seq: number): Promise<void> {
    const err = await removeQuietly(extentFileOf(this.dir, seq))
    if (err !== undefined) this.#log.error('removing extent file %d in %s failed (the next open removes it): %s', seq, this.dir, err.message)
  }

  /**
   * On open: removes every extent file whose seq no header names (writes and deletes a crash cut
   * short, see the layout); returns the largest seq of any file found (0 if none). A name that is
   * not a seq is left alone and logged.
   */
  async #dropUnnamedFiles (named: ReadonlySet<number>): Promise<number> {
    let largest = 0
    let dropped = 0
    for (const name of await readdir(join(this.dir, FILES_DIR))) {
      if (!FILE_NAME_PATTERN.test(name)) {
        this.#log.error('%s holds %s, which is not an extent file; left as it is', join(this.dir, FILES_DIR), name)
        continue
      }
      const seq = Number.parseInt(name, 16)
      largest = Math.max(largest, seq)
      if (named.has(seq)) continue
      const err = await removeQuietly(join(this.dir, FILES_DIR, name))
      if (err !== undefined) throw err
      dropped += 1
    }
    if (dropped > 0) this.#log('removed %d extent files in %s that no header named (writes or deletes cut short)', dropped, this.dir)
    return largest
  }

  /**
   * Frees the large bytes of a marked seq, then the marker. Neither needs an fsync: until the marker
   * is gone for good, the next open does it again. A failure is logged and left to that open.
   */
  async #unmark (db: Level<string, Uint8Array>, seq: number): Promise<void> {
    try {
      await this.#largeDb().del(extentKeys.bytes(seq))
      await db.del(extentKeys.marker(seq))
    } catch (err) {
      this.#log.error('freeing large bytes %d in %s failed (the next open frees them): %s', seq, this.dir, (err as Error)?.message ?? err)
    }
  }

  /** On open: frees the large bytes every marker names, then the markers (see the layout). */
  async #dropMarked (db: Level<string, Uint8Array>, large: Level<string, Uint8Array>): Promise<void> {
    const markers = await db.keys({ gt: MARKER_PREFIX, lt: MARKER_RANGE_END }).all()
    if (markers.length === 0) return
    await large.batch(markers.map((key) => ({ type: 'del' as const, key: BYTES_PREFIX + key.slice(MARKER_PREFIX.length) })), { sync: true })
    await db.batch(markers.map((key) => ({ type: 'del' as const, key })), { sync: true })
    this.#log('freed %d large bytes values in %s that no header named (writes or deletes cut short)', markers.length, this.dir)
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
    if (f?.format !== FORMAT_NAME || typeof f.version !== 'number' || !FORMAT_VERSIONS_READ.includes(f.version)) {
      throw new ConfigError(`extent store in ${this.dir} has format ${JSON.stringify(f ?? null)}; this build reads ${FORMAT_NAME} versions ${FORMAT_VERSIONS_READ.join(', ')}`, { dir: this.dir, found: f ?? null, version: FORMAT_VERSION })
    }
    if (f.version !== FORMAT_VERSION) {
      // versions 2 to 4 are version 5 without file extents: from now on older builds must refuse the store
      await db.put(FORMAT_KEY, encoder.encode(JSON.stringify({ format: FORMAT_NAME, version: FORMAT_VERSION })), { sync: true })
      this.#log('extent store in %s: format %d → %d', this.dir, f.version, FORMAT_VERSION)
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
    // eslint-disable-next-line @typescript-eslint/no-base-to-string -- a cause of any type, shown as it is
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


/** The value of a marker (only its key matters). */
const MARKER_VALUE = new Uint8Array(0)

/** The seq of the largest key in [prefix, end) of `db`, or 0 if there is none (one reverse seek). */
async function largestSeq (db: Level<string, Uint8Array>, prefix: string, end: string, dir: string): Promise<number> {
  const [last] = await db.keys({ gt: prefix, lt: end, reverse: true, limit: 1 }).all()
  if (last === undefined) return 0
  const seq = SEQ_KEY_PATTERN.test(last) ? Number.parseInt(last.slice(prefix.length), 16) : NaN
  if (!Number.isSafeInteger(seq)) {
    throw new ConfigError(`extent store in ${dir} holds key ${JSON.stringify(last)}, which this build cannot read`, { dir, key: last })
  }
  return seq
}

function notFound (id: string): NotFoundError {
  return new NotFoundError(`extent ${id} does not exist`, { id })
}

/**
 * seq first: a header cut short (the likely damage) still names its bytes key, see salvageSeq. A raw
 * extent's header is exactly what format version 3 wrote.
 */
function encodeHeader (info: ExtentInfo, seq: number, file: boolean, crc: number | undefined): Uint8Array {
  const header: Record<string, unknown> = { seq, size: info.size, checksum: info.checksum }
  if (file) header.file = true
  if (info.codec !== undefined) {
    header.codec = info.codec
    header.stored = info.storedSize
  }
  if (crc !== undefined) header.crc = crc
  return encoder.encode(JSON.stringify(header))
}

/** What `stat`, `list` and a read say of an extent with `header`. */
function infoOf (id: string, header: Header): ExtentInfo {
  return header.codec === undefined
    ? { id, size: header.size, checksum: header.checksum }
    : { id, size: header.size, checksum: header.checksum, codec: header.codec, storedSize: header.stored }
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
  if (h.large !== undefined && h.large !== true) return null
  if (h.file !== undefined && (h.file !== true || h.large === true)) return null
  if (h.crc !== undefined && !(Number.isSafeInteger(h.crc) && h.crc >= 0 && h.crc <= 0xffffffff)) return null
  const where = { large: h.large === true, file: h.file === true, ...(h.crc !== undefined ? { crc: h.crc } : {}) }
  // no codec: raw (every header of format versions 2 and 3); a codec this build does not know is
  // unreadable, never raw
  if (h.codec === undefined) {
    if (h.stored !== undefined) return null
    return { seq: h.seq, size: h.size, checksum: h.checksum, ...where, stored: h.size }
  }
  if (!isExtentCodec(h.codec)) return null
  if (typeof h.stored !== 'number' || !Number.isSafeInteger(h.stored) || h.stored < 0 || h.stored >= h.size) return null
  return { seq: h.seq, size: h.size, checksum: h.checksum, ...where, codec: h.codec, stored: h.stored }
}

/**
 * Totals over all headers, the largest seq any header names (0 if none), and the seqs whose files
 * must stay: those of file headers, and those a damaged header may name.
 */
async function scanUsage (db: Level<string, Uint8Array>, log: Logger): Promise<ExtentStoreUsage & { maxSeq: number, fileSeqs: Set<number> }> {
  let extents = 0
  let bytes = 0
  let maxSeq = 0
  const fileSeqs = new Set<number>()
  for await (const [key, value] of db.iterator({ gt: HEADER_PREFIX, lt: HEADER_RANGE_END })) {
    extents += 1
    const header = parseHeader(value)
    if (header == null) {
      log.error('extent %s has an unreadable header; counted with size 0', key.slice(HEADER_PREFIX.length))
      const salvaged = salvageSeq(value)
      if (salvaged !== undefined) fileSeqs.add(salvaged)
      maxSeq = Math.max(maxSeq, salvaged ?? 0)
      continue
    }
    bytes += header.stored
    maxSeq = Math.max(maxSeq, header.seq)
    if (header.file) fileSeqs.add(header.seq)
  }
  return { extents, bytes, maxSeq, fileSeqs }
}
