/**
 * WalLogStore: the LogStore under a node's Raft logs (RaftLogDb) as an append-only write-ahead log of
 * our own, in etcd's manner, instead of a LevelDB.
 *
 * WHY. Every Raft write is one fsync'd batch that is read back only when the node starts: the log is
 * held in memory (MemoryStorage) and compacted there. LevelDB made each batch cost more than its
 * write and fsync: a memtable insert, then a flush of the memtable into a table file, compactions of
 * those files, and a fresh log file every 4 MiB — every byte written several times through the page
 * cache. On this VM a page-cache page is costly the first time it is touched (the hypervisor backs
 * it then: ext4's zeroing of a new block showed as 4 % of all node CPU of a 4 KiB put workload, and
 * LevelDB's background work another 4 %). This log writes each batch once, with O_DIRECT from a
 * buffer of its own that stays resident, and O_DSYNC, so a batch is one write(2) and no fsync call.
 *
 * FORMAT. A directory of segments `<seq as 16 hex digits>.wal`, replayed in order of seq. A segment
 * starts with a 16-byte header (MAGIC, then seq as a little-endian u64) followed by records, each at
 * an offset that is a multiple of 8:
 *   u32 length of the payload · u32 flags · u32 CRC-32 (zlib's) of the length, the flags and the
 *   payload · u32 zero · payload · zeros up to a multiple of 8
 * A payload is the batch's operations, each: u8 kind (1 put, 2 del) · u32 key length · key (UTF-8)
 * · for a put, u32 value length · value. A record with FLAG_CHECKPOINT holds every live key: replay
 * clears what it has before applying it. A length of zero ends the segment (a segment's file is its
 * written bytes padded with zeros to a multiple of 4 KiB).
 *
 * WRITES. Direct I/O needs an aligned buffer, offset and length, so each write rewrites the last,
 * partial 4 KiB block of the segment (the bytes written before it, unchanged) followed by the new
 * record, padded with zeros to the block's end. A torn write therefore leaves the earlier bytes of
 * that block as they were on every sector (a sector is written whole or not at all, which is what
 * LevelDB's and etcd's logs assume when the page cache writes back a partial page). Where the file
 * system refuses O_DIRECT (tmpfs), the same writes go through the page cache with O_DSYNC.
 *
 * REPLAY. Records are applied until the first one that is not whole: a zero length, a length past
 * the file, or a CRC mismatch. In the newest segment that is a write torn by a crash, never
 * acknowledged: the segment is cut there and appending resumes at that point. Anywhere else, or when
 * a valid record follows the damage (a bad sector amid acknowledged writes, not a torn tail), the
 * log is corrupt (CorruptLogError: the node refuses to start rather than forget acknowledged writes).
 *
 * ROTATION. Once a segment has taken `segmentBytes` of records (and at least as many bytes as the
 * live keys hold, so rewriting them costs at most as much as what was appended), the next segment is
 * started with one checkpoint record of every live key; once that is durable (and the directory
 * fsync'd), the older segments are deleted. A crash between the two leaves older segments that the
 * checkpoint supersedes at replay.
 */
import { constants } from 'node:fs'
import { mkdir, open, readdir, readFile, rename, unlink, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { crc32 } from 'node:zlib'
import { CorruptLogError } from './errors.js'
import type { BatchOp, LogStore } from './level-storage.js'

// the part of the WebAssembly API used here (the project's TypeScript libs leave WebAssembly out)
declare const WebAssembly: { Memory: new (descriptor: { initial: number, maximum: number }) => { buffer: ArrayBuffer } }

/** First 8 bytes of every segment: "dfswal" and format version 1. */
const MAGIC = Uint8Array.from([0x64, 0x66, 0x73, 0x77, 0x61, 0x6c, 0x00, 0x01])
const SEGMENT_HEADER_BYTES = 16
const RECORD_HEADER_BYTES = 16
/** Alignment of direct I/O: buffer address, file offset and length. */
const ALIGN = 4096
/** Records start at multiples of this. */
const RECORD_ALIGN = 8
/** A record's payload may not exceed this (the u32 length, and a bound on what replay allocates). */
export const WAL_RECORD_BYTES_MAX = 1024 * 1024 * 1024
/** Records that hold every live key: replay starts over from them. */
const FLAG_CHECKPOINT = 1
const OP_PUT = 1
const OP_DEL = 2
/** Bytes of records a segment takes before the next one starts (see ROTATION above). */
export const WAL_SEGMENT_BYTES_DEFAULT = 64 * 1024 * 1024
/** The aligned write buffer kept for ordinary records; a larger record gets one of its own for its write. */
const WRITE_BUFFER_BYTES = 1024 * 1024
const SEGMENT_SUFFIX = '.wal'
/** Name of a segment being written before it is renamed into place (a migration's first segment). */
const TEMP_SUFFIX = '.tmp'
/** After a failed rotation, appends go on in the old segment and the next rotation is tried this much later. */
const ROTATE_RETRY_MS = 10_000

const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a

function segmentName (seq: bigint): string {
  return seq.toString(16).padStart(16, '0') + SEGMENT_SUFFIX
}

/** An aligned buffer of at least `bytes` (a WebAssembly memory is page-aligned). */
function alignedBuffer (bytes: number): Uint8Array {
  const pages = Math.max(1, Math.ceil(bytes / 65536))
  return new Uint8Array(new WebAssembly.Memory({ initial: pages, maximum: pages }).buffer)
}

/** The record bytes (header and payload, unpadded) of `ops`, written into `out` at `at`; returns the record's length. */
function encodeRecord (ops: Array<{ key: string, value?: Uint8Array }>, flags: number, out: Uint8Array, at: number): number {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength)
  let p = at + RECORD_HEADER_BYTES
  for (const op of ops) {
    out[p] = op.value === undefined ? OP_DEL : OP_PUT
    const keyLen = Buffer.byteLength(op.key)
    view.setUint32(p + 1, keyLen, true)
    p += 5
    p += Buffer.from(out.buffer, out.byteOffset + p, keyLen).write(op.key, 'utf8')
    if (op.value !== undefined) {
      view.setUint32(p, op.value.byteLength, true)
      out.set(op.value, p + 4)
      p += 4 + op.value.byteLength
    }
  }
  const payload = p - at - RECORD_HEADER_BYTES
  view.setUint32(at, payload, true)
  view.setUint32(at + 4, flags, true)
  view.setUint32(at + 12, 0, true)
  view.setUint32(at + 8, crc32(out.subarray(at + RECORD_HEADER_BYTES, p), crc32(out.subarray(at, at + 8))) >>> 0, true)
  return p - at
}

function recordBytes (ops: Array<{ key: string, value?: Uint8Array }>): number {
  let n = RECORD_HEADER_BYTES
  for (const op of ops) n += 5 + Buffer.byteLength(op.key) + (op.value === undefined ? 0 : 4 + op.value.byteLength)
  return n
}

type Parsed = { kind: 'record', end: number, flags: number, ops: Array<{ key: string, value?: Uint8Array }> } | { kind: 'end' } | { kind: 'bad', why: string }

/** The record at `at` of `buf` (a whole segment), if it is whole. */
function parseRecord (buf: Uint8Array, at: number): Parsed {
  if (at + RECORD_HEADER_BYTES > buf.byteLength) return { kind: 'end' }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  const length = view.getUint32(at, true)
  if (length === 0) return { kind: 'end' }
  if (length > WAL_RECORD_BYTES_MAX || at + RECORD_HEADER_BYTES + length > buf.byteLength) return { kind: 'bad', why: `record length ${length} runs past the segment` }
  const payload = buf.subarray(at + RECORD_HEADER_BYTES, at + RECORD_HEADER_BYTES + length)
  const want = view.getUint32(at + 8, true)
  if ((crc32(payload, crc32(buf.subarray(at, at + 8))) >>> 0) !== want || view.getUint32(at + 12, true) !== 0) return { kind: 'bad', why: 'checksum mismatch' }
  const ops: Array<{ key: string, value?: Uint8Array }> = []
  const pv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength)
  let p = 0
  const need = (n: number): void => { if (p + n > payload.byteLength) throw new Error('operation runs past its record') }
  try {
    while (p < payload.byteLength) {
      need(5)
      const kind = payload[p]
      const keyLen = pv.getUint32(p + 1, true)
      p += 5
      need(keyLen)
      const key = Buffer.from(payload.buffer, payload.byteOffset + p, keyLen).toString('utf8')
      p += keyLen
      if (kind === OP_PUT) {
        need(4)
        const valueLen = pv.getUint32(p, true)
        p += 4
        need(valueLen)
        // a copy (and a plain Uint8Array, as LevelDB gave): the segment's buffer is dropped after replay
        ops.push({ key, value: new Uint8Array(payload.subarray(p, p + valueLen)) })
        p += valueLen
      } else if (kind === OP_DEL) {
        ops.push({ key })
      } else {
        throw new Error(`unknown operation ${kind}`)
      }
    }
  } catch (err) {
    // a record whose checksum holds but whose contents do not parse was written wrong: not a torn write
    throw new CorruptLogError(`wal@${at}`, (err as Error).message)
  }
  return { kind: 'record', end: alignUp(at + RECORD_HEADER_BYTES + length, RECORD_ALIGN), flags: view.getUint32(at + 4, true), ops }
}

/** Whether a whole record starts anywhere in `buf` from `from` on (damage amid acknowledged records, not a torn tail). */
function wholeRecordAfter (buf: Uint8Array, from: number): boolean {
  for (let at = alignUp(from + 1, RECORD_ALIGN); at + RECORD_HEADER_BYTES <= buf.byteLength; at += RECORD_ALIGN) {
    try {
      if (parseRecord(buf, at).kind === 'record') return true
    } catch {
      // a checksum that holds over bytes that do not parse: count it as a record
      return true
    }
  }
  return false
}

/** Sector a device writes whole or not at all (the smallest in use). */
const SECTOR = 512

/**
 * Whether the bad record at `at` (the newest segment's last) is a write torn by a crash rather than
 * damage to one that was written whole. Every byte past the log's end is zero before a write (a
 * segment is padded with zeros and cut at replay), and a device writes a sector whole or not at
 * all, so a torn write lost whole sectors, which read as zeros from their start; or it never
 * extended the file as far as the record's length says. A record without either was written whole
 * and then changed: that is damage, and the node refuses to start on it rather than drop a write it
 * acknowledged.
 */
function torn (buf: Uint8Array, at: number): boolean {
  const end = at + RECORD_HEADER_BYTES + new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getUint32(at, true)
  if (end > buf.byteLength) return true
  for (let s = alignUp(at + 1, SECTOR); s < end; s += SECTOR) {
    let zero = true
    for (let i = s; i < Math.min(s + SECTOR, end); i++) {
      if (buf[i] !== 0) { zero = false; break }
    }
    if (zero) return true
  }
  return false
}

async function syncDir (dir: string): Promise<void> {
  const d = await open(dir, 'r')
  try { await d.sync() } finally { await d.close() }
}

/** Whether `err` is the kernel refusing direct I/O (unsupported file system, misaligned buffer). */
function refusesDirect (err: unknown): boolean {
  return (err as { code?: unknown })?.code === 'EINVAL'
}

export interface WalOptions {
  /** Use O_DIRECT where the file system allows it (default: on Linux). */
  direct?: boolean
  /** Bytes of records a segment takes before the next one starts. */
  segmentBytes?: number
  /** Told when the file system refused O_DIRECT and writes went through the page cache. */
  onBuffered?: (reason: string) => void
  /** Told of a failure the log survives (a segment that could not be started yet). */
  onWarning?: (message: string) => void
}

/** The segment being appended: its seq, file, length of valid bytes, and bytes of records appended since it started. */
interface Segment { seq: bigint, file: FileHandle, size: number, appended: number }

/** Directories with a WalLogStore open in this process (another process is kept out by the node's data dir lock). */
const openDirs = new Set<string>()

export class WalLogStore implements LogStore {
  readonly dir: string
  readonly #live = new Map<string, Uint8Array>()
  /** Bytes of keys and values in #live (what a checkpoint writes). */
  #liveBytes = 0
  readonly #segmentBytes: number
  readonly #onBuffered: (reason: string) => void
  #direct: boolean
  #buffer: Uint8Array
  /** The segment being appended: its seq, file, length of valid bytes, and bytes of records appended since it started. */
  #seg: Segment | undefined
  /** Older segments still on disk (deleted after the next checkpoint). */
  #older: bigint[] = []
  #closed = false
  /** After a failed rotation, the next attempt waits until then (performance.now()). */
  #rotateNotBefore = 0
  /** Set when the directory could not be fsync'd after a new segment was named: no write is safe any more. */
  #broken: Error | undefined
  readonly #onWarning: (message: string) => void
  /** Writes run one at a time (RaftLogDb issues one at a time; this keeps it so for any caller). */
  #tail: Promise<void> = Promise.resolve()
  readonly stats = { records: 0, checkpoints: 0, bytes: 0 }

  private constructor (dir: string, options: WalOptions) {
    this.dir = dir
    this.#segmentBytes = options.segmentBytes ?? WAL_SEGMENT_BYTES_DEFAULT
    this.#direct = options.direct ?? process.platform === 'linux'
    this.#onBuffered = options.onBuffered ?? (() => {})
    this.#onWarning = options.onWarning ?? (() => {})
    this.#buffer = alignedBuffer(WRITE_BUFFER_BYTES)
  }

  /** Whether `dir` holds a write-ahead log (a segment). */
  static async exists (dir: string): Promise<boolean> {
    const names = await readdir(dir).catch(() => [] as string[])
    return names.some((n) => n.endsWith(SEGMENT_SUFFIX))
  }

  /**
   * Opens the log in `dir` (created if needed) and replays it. `initial`: for a directory without a
   * log, the keys its first segment starts with, written as a checkpoint under a temporary name that is
   * renamed into place once durable (a migration: a crash before the rename leaves no log here).
   */
  static async open (dir: string, options: WalOptions = {}, initial?: AsyncIterable<[string, Uint8Array]>): Promise<WalLogStore> {
    if (openDirs.has(dir)) throw Object.assign(new Error(`the Raft log ${dir} is already open in this process`), { code: 'WAL_LOCKED' })
    openDirs.add(dir)
    const wal = new WalLogStore(dir, options)
    try {
      await mkdir(dir, { recursive: true })
      await wal.#replay()
      if (wal.#seg === undefined) await wal.#start(1n, initial)
      return wal
    } catch (err) {
      await wal.#seg?.file.close().catch(() => {})
      openDirs.delete(dir)
      throw err
    }
  }

  async #replay (): Promise<void> {
    const names = await readdir(this.dir)
    // leftovers of a start or migration that never completed
    for (const n of names.filter((x) => x.endsWith(SEGMENT_SUFFIX + TEMP_SUFFIX))) await unlink(join(this.dir, n))
    const seqs = names.filter((n) => /^[0-9a-f]{16}\.wal$/.test(n)).map((n) => BigInt('0x' + n.slice(0, 16))).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    for (let i = 0; i < seqs.length; i++) {
      const seq = seqs[i]
      const newest = i === seqs.length - 1
      const path = join(this.dir, segmentName(seq))
      const buf = await readFile(path)
      const headerOk = buf.byteLength >= SEGMENT_HEADER_BYTES && MAGIC.every((b, k) => buf[k] === b) &&
        new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getBigUint64(8, true) === seq
      // a segment gets its name only once its header is durable (#start), so a bad one is damage
      if (!headerOk) throw new CorruptLogError(path, 'segment header is not valid')
      let at = SEGMENT_HEADER_BYTES
      let appended = 0
      while (true) {
        const r = parseRecord(buf, at)
        if (r.kind === 'end' && (at + RECORD_HEADER_BYTES > buf.byteLength || !wholeRecordAfter(buf, at))) break
        if (r.kind !== 'record') {
          const why = r.kind === 'bad' ? r.why : 'zero length'
          if (!newest || wholeRecordAfter(buf, at)) throw new CorruptLogError(`${path}@${at}`, `${why}, with acknowledged records after it`)
          if (r.kind === 'bad' && !torn(buf, at)) throw new CorruptLogError(`${path}@${at}`, `${why} in the last record, which was written whole (no sector of it is missing)`)
          break // a torn tail: never acknowledged
        }
        if ((r.flags & FLAG_CHECKPOINT) !== 0) {
          this.#live.clear()
          this.#liveBytes = 0
        } else {
          appended += r.end - at
        }
        for (const op of r.ops) this.#apply(op.key, op.value)
        at = r.end
      }
      if (newest) {
        const file = await this.#openSegment(path, false)
        this.#seg = { seq, file, size: at, appended }
        // cut a torn tail, and zero the rest of the last block so that nothing stale follows the next record
        if (at < buf.byteLength) await this.#cutAt(at, buf)
      } else {
        this.#older.push(seq)
      }
    }
  }

  #apply (key: string, value: Uint8Array | undefined): void {
    const old = this.#live.get(key)
    if (old !== undefined) this.#liveBytes -= key.length + old.byteLength
    if (value === undefined) {
      this.#live.delete(key)
    } else {
      this.#live.set(key, value)
      this.#liveBytes += key.length + value.byteLength
    }
  }

  async #openSegment (path: string, create: boolean): Promise<FileHandle> {
    const flags = constants.O_WRONLY | constants.O_DSYNC | (create ? constants.O_CREAT | constants.O_EXCL : 0)
    if (this.#direct) {
      try {
        return await open(path, flags | constants.O_DIRECT, 0o644)
      } catch (err) {
        if (!refusesDirect(err)) throw err
        this.#giveUpDirect(err)
      }
    }
    return await open(path, flags, 0o644)
  }

  #giveUpDirect (err: unknown): void {
    if (!this.#direct) return
    this.#direct = false
    this.#onBuffered((err as Error)?.message ?? String(err))
  }

  /** Truncates the current segment (whose bytes are `current`) to whole blocks past `size` and zeroes the last block after it. */
  async #cutAt (size: number, current: Uint8Array): Promise<void> {
    const seg = this.#seg as Segment
    const end = alignUp(size, ALIGN)
    if (end > size) {
      const blockStart = end - ALIGN
      const block = this.#buffer.subarray(0, ALIGN)
      block.fill(0)
      block.set(current.subarray(blockStart, size))
      await this.#writeAt(seg.file, block, blockStart)
    }
    await seg.file.truncate(end)
    await seg.file.sync()
  }

  /** Writes `bytes` (aligned buffer and length) at `position` (aligned), however many calls it takes. */
  async #writeAt (file: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
    for (let done = 0; done < bytes.byteLength;) {
      let n: number
      try {
        n = (await file.write(bytes, done, bytes.byteLength - done, position + done)).bytesWritten
      } catch (err) {
        if (!this.#direct || !refusesDirect(err)) throw err
        // a misaligned request on an odd device: reopen buffered and write the same bytes
        this.#giveUpDirect(err)
        const seg = this.#seg as Segment
        await seg.file.close()
        seg.file = await this.#openSegment(join(this.dir, segmentName(seg.seq)), false)
        file = seg.file
        continue
      }
      if (n <= 0) throw Object.assign(new Error(`short write to the Raft log in ${this.dir}`), { code: 'EIO' })
      done += n
    }
  }

  /** Starts segment `seq` with a checkpoint of `initial` (or of the live keys), then deletes older segments. */
  async #start (seq: bigint, initial?: AsyncIterable<[string, Uint8Array]>): Promise<void> {
    const ops: Array<{ key: string, value: Uint8Array }> = []
    if (initial !== undefined) {
      for await (const [key, value] of initial) {
        ops.push({ key, value })
        this.#apply(key, value)
      }
    } else {
      for (const [key, value] of this.#live) ops.push({ key, value })
    }
    const path = join(this.dir, segmentName(seq))
    const temp = path + TEMP_SUFFIX
    const length = SEGMENT_HEADER_BYTES + alignUp(recordBytes(ops), RECORD_ALIGN)
    const out = alignUp(length, ALIGN) <= this.#buffer.byteLength ? this.#buffer : alignedBuffer(alignUp(length, ALIGN))
    const bytes = out.subarray(0, alignUp(length, ALIGN))
    bytes.fill(0)
    bytes.set(MAGIC, 0)
    new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).setBigUint64(8, seq, true)
    const recLen = ops.length > 0 ? encodeRecord(ops, FLAG_CHECKPOINT, bytes, SEGMENT_HEADER_BYTES) : 0
    const file = await this.#openSegment(temp, true)
    try {
      await this.#writeAt(file, bytes, 0)
      await rename(temp, path)
    } catch (err) {
      // nothing changed: the log goes on in the segment it has
      await file.close().catch(() => {})
      await unlink(temp).catch(() => {})
      throw err
    }
    // from here the new segment is the log: its checkpoint holds every live key, and at replay it
    // supersedes the older segments, so nothing may be appended to them any more
    const prev = this.#seg
    const size = SEGMENT_HEADER_BYTES + alignUp(recLen, RECORD_ALIGN)
    this.#seg = { seq, file, size, appended: 0 }
    // the next append rewrites the last partial block: it goes to the front of the write buffer
    const blockStart = size - (size % ALIGN)
    if (bytes.buffer === this.#buffer.buffer) this.#buffer.copyWithin(0, blockStart, size)
    else this.#buffer.set(bytes.subarray(blockStart, size))
    if (prev !== undefined) {
      this.#older.push(prev.seq)
      await prev.file.close().catch(() => {})
    }
    try {
      await syncDir(this.dir)
    } catch (err) {
      // the new segment's name may not survive a crash, and with it what would be appended there
      this.#broken = err as Error
      throw err
    }
    if (ops.length > 0) this.stats.checkpoints++
    // the checkpoint is durable: what came before it is not needed any more
    if (this.#older.length > 0) {
      for (const old of this.#older) await unlink(join(this.dir, segmentName(old))).catch(() => {})
      this.#older = []
      await syncDir(this.dir).catch(() => {})
    }
  }

  async get (key: string): Promise<Uint8Array | undefined> {
    this.#check()
    return this.#live.get(key)
  }

  async * range (gte: string, lt: string): AsyncIterable<[string, Uint8Array]> {
    this.#check()
    const keys = [...this.#live.keys()].filter((k) => k >= gte && k < lt).sort()
    for (const k of keys) {
      const v = this.#live.get(k)
      if (v !== undefined) yield [k, v]
    }
  }

  /** Every live key with its value, in key order. */
  entries (): AsyncIterable<[string, Uint8Array]> {
    return this.range('', '\uffff')
  }

  async batch (ops: BatchOp[], _options: { sync: boolean }): Promise<void> {
    this.#check()
    if (ops.length === 0) return
    const run = this.#tail.then(async () => { await this.#append(ops) })
    this.#tail = run.catch(() => {})
    await run
  }

  /** Appends one record of `ops` (durable when it resolves: O_DSYNC), then applies them in memory. */
  async #append (ops: BatchOp[]): Promise<void> {
    this.#check()
    const seg = this.#seg as Segment
    const list = ops.map((op) => op.type === 'put' ? { key: op.key, value: op.value } : { key: op.key })
    const length = recordBytes(list)
    if (length - RECORD_HEADER_BYTES > WAL_RECORD_BYTES_MAX) throw new Error(`raft log: a batch of ${length} bytes exceeds ${WAL_RECORD_BYTES_MAX}`)
    const blockStart = seg.size - (seg.size % ALIGN)
    const tailLen = seg.size - blockStart
    const padded = alignUp(tailLen + alignUp(length, RECORD_ALIGN), ALIGN)
    let out = this.#buffer
    if (padded > out.byteLength) {
      out = alignedBuffer(padded)
      out.set(this.#buffer.subarray(0, tailLen))
    }
    encodeRecord(list, 0, out, tailLen)
    out.fill(0, tailLen + length, padded)
    await this.#writeAt(seg.file, out.subarray(0, padded), blockStart)
    const end = tailLen + alignUp(length, RECORD_ALIGN)
    // the new partial block goes to the front of the buffer for the next write
    const nextBlock = end - (end % ALIGN)
    this.#buffer.copyWithin(0, nextBlock, end)
    if (out !== this.#buffer) this.#buffer.set(out.subarray(nextBlock, end))
    seg.size = blockStart + end
    seg.appended += alignUp(length, RECORD_ALIGN)
    this.stats.records++
    this.stats.bytes += padded
    for (const op of list) this.#apply(op.key, op.value)
    if (seg.appended >= Math.max(this.#segmentBytes, this.#liveBytes) && performance.now() >= this.#rotateNotBefore) {
      // the batch is durable whatever happens now: a failed rotation (a full disk) is tried again later
      try {
        await this.#start(seg.seq + 1n)
      } catch (err) {
        if (this.#broken !== undefined) return // this batch is in the old segment, which replay still reads whole
        this.#rotateNotBefore = performance.now() + ROTATE_RETRY_MS
        this.#onWarning(`could not start a new segment of the Raft log in ${this.dir}: ${(err as Error).message}`)
      }
    }
  }

  #check (): void {
    if (this.#closed) throw new Error(`the Raft log ${this.dir} is closed`)
    if (this.#broken !== undefined) throw new Error(`the Raft log ${this.dir} failed: ${this.#broken.message}`, { cause: this.#broken })
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#tail
    await this.#seg?.file.close()
    openDirs.delete(this.dir)
  }
}
