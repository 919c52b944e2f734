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
 * FORMAT. A directory of segments `<seq as 16 hex digits>.wal` and checkpoints `<seq>.ckpt`. Both
 * start with a 16-byte header (a magic of 8 bytes, then seq as a little-endian u64) followed by
 * records, each at an offset that is a multiple of 8:
 *   u32 length of the payload · u32 flags · u32 CRC-32 (zlib's) of the length, the flags and the
 *   payload · u32 zero · payload · zeros up to a multiple of 8
 * A payload is the batch's operations, each: u8 kind (1 put, 2 del) · u32 key length · key (UTF-8)
 * · for a put, u32 value length · value. A length of zero ends a segment (its file is its written
 * bytes padded with zeros to a multiple of 4 KiB). Checkpoint `<K>.ckpt` holds every live key as
 * it was before the first record of segment K, as puts, and ends with a record flagged FLAG_END
 * whose payload is the number of keys (u64): the log is checkpoint K (the newest) followed by
 * segments K, K+1, … (without a checkpoint: segments 1, 2, …), each of which must be there.
 *
 * WRITES. Direct I/O needs an aligned buffer, offset and length, so each write rewrites the last,
 * partial 4 KiB block of the segment (the bytes written before it, unchanged) followed by the new
 * record, padded with zeros to the block's end. A torn write therefore leaves the earlier bytes of
 * that block as they were on every sector (a sector is written whole or not at all, which is what
 * LevelDB's and etcd's logs assume when the page cache writes back a partial page). Where the file
 * system refuses O_DIRECT (tmpfs), the same writes go through the page cache with O_DSYNC. A segment
 * is kept zero-filled up to a megabyte ahead of its end (PREALLOC_BYTES), so that an append does not
 * change the file's size and O_DSYNC has no inode to write with it.
 *
 * REPLAY. Records are applied until the first one that is not whole: a zero length, a length past
 * the file, or a CRC mismatch. In the newest segment, a bad last record with nothing whole after it
 * is a write torn by a crash, never acknowledged, when it shows how a crash tears a write: the
 * file ends before the record does, or one of its sectors reads as all zeros (every byte past the
 * log's end is zero before a write). The segment is cut there and appending resumes at that point.
 * Anything else — a bad record before the last, or a last record written whole and changed since —
 * is damage: CorruptLogError, and the node refuses to start rather than forget acknowledged writes.
 *
 * ROTATION. Once a segment has taken `segmentBytes` of records (and at least as many bytes as the
 * live keys hold, so that rewriting them costs at most as much as what was appended), appends move
 * to a new segment K at once (its header is durable and its name fsync'd first), and the live keys
 * as they were then are written to checkpoint K in the background, under a temporary name renamed
 * once durable; after that the older segments and checkpoints are deleted. Raft writes never wait
 * for a checkpoint (one of every live key can be a hundred MiB: a stall that long would cost
 * elections). A crash before checkpoint K is named leaves the older checkpoint and segments, which
 * replay reads as before.
 */
import { constants } from 'node:fs'
import { mkdir, open, readdir, readFile, rename, unlink, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { crc32 } from 'node:zlib'
import { DIRECT_IO_ALIGN, alignUp, alignedMemory, refusesDirect, syncDir } from '@dfs/api'
import { CorruptLogError } from './errors.js'
import type { BatchOp, LogStore } from './level-storage.js'

/** First 8 bytes of every segment: "dfswal" and format version 1. */
const MAGIC = Uint8Array.from([0x64, 0x66, 0x73, 0x77, 0x61, 0x6c, 0x00, 0x01])
/** First 8 bytes of every checkpoint: "dfsckp" and format version 1. */
const CHECKPOINT_MAGIC = Uint8Array.from([0x64, 0x66, 0x73, 0x63, 0x6b, 0x70, 0x00, 0x01])
const SEGMENT_HEADER_BYTES = 16
const RECORD_HEADER_BYTES = 16
/** Alignment of direct I/O: buffer address, file offset and length. */
const ALIGN = DIRECT_IO_ALIGN
/** Records start at multiples of this. */
const RECORD_ALIGN = 8
/** A record's payload may not exceed this (the u32 length, and a bound on what replay allocates). */
export const WAL_RECORD_BYTES_MAX = 1024 * 1024 * 1024
/** The last record of a checkpoint: its payload is the number of keys before it (u64), not operations. */
const FLAG_END = 1
/** Operations per checkpoint record stop at this many payload bytes (a bigger value is a record of its own). */
const CHECKPOINT_RECORD_BYTES = 256 * 1024
const OP_PUT = 1
const OP_DEL = 2
/** Bytes of records a segment takes before the next one starts (see ROTATION above). */
export const WAL_SEGMENT_BYTES_DEFAULT = 64 * 1024 * 1024
/**
 * A segment is kept zero-filled this far ahead of its end, in steps this large: an O_DSYNC write
 * that extends a file must also write its inode (the new size), one within it need not. Appending a
 * 4.7 KB record took ~256 µs extending the file and ~180 µs inside a zero-filled one on this VM
 * (micro-benchmark; LevelDB's buffered append and fdatasync: ~360 µs).
 */
const PREALLOC_BYTES = 1024 * 1024
/** The aligned write buffer kept for ordinary records (and one for checkpoints); a larger record gets one of its own for its write. */
const WRITE_BUFFER_BYTES = 1024 * 1024
const SEGMENT_SUFFIX = '.wal'
const CHECKPOINT_SUFFIX = '.ckpt'
/** Name of a segment or checkpoint being written, before it is renamed into place once durable. */
const TEMP_SUFFIX = '.tmp'
/** After a failed rotation, appends go on in the old segment and the next rotation is tried this much later. */
const ROTATE_RETRY_MS = 10_000

function segmentName (seq: bigint): string {
  return seq.toString(16).padStart(16, '0') + SEGMENT_SUFFIX
}

function checkpointName (seq: bigint): string {
  return seq.toString(16).padStart(16, '0') + CHECKPOINT_SUFFIX
}

/** The seqs of the files in `names` named `<seq>` + `suffix`, ascending. */
function seqsOf (names: string[], suffix: string): bigint[] {
  return names.filter((n) => n.length === 16 + suffix.length && n.endsWith(suffix) && /^[0-9a-f]{16}$/.test(n.slice(0, 16)))
    .map((n) => BigInt('0x' + n.slice(0, 16))).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
}

/** Whether `buf` starts with the header of file `seq` of the kind `magic` says. */
function headerOk (buf: Uint8Array, magic: Uint8Array, seq: bigint): boolean {
  return buf.byteLength >= SEGMENT_HEADER_BYTES && magic.every((b, k) => buf[k] === b) &&
    new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getBigUint64(8, true) === seq
}

function writeHeader (out: Uint8Array, magic: Uint8Array, seq: bigint): void {
  out.set(magic, 0)
  new DataView(out.buffer, out.byteOffset, out.byteLength).setBigUint64(8, seq, true)
}

/** An aligned buffer of at least `bytes` (see alignedMemory). */
function alignedBuffer (bytes: number): Uint8Array {
  return new Uint8Array(alignedMemory(bytes))
}

/** The record bytes (header and payload, unpadded) of `ops`, written into `out` at `at`; returns the record's length. */
function encodeRecord (ops: Array<{ key: string, value?: Uint8Array }>, flags: number, out: Uint8Array, at: number, count?: number, valueAt?: number[]): number {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength)
  let p = at + RECORD_HEADER_BYTES
  if (count !== undefined) {
    view.setBigUint64(p, BigInt(count), true)
    p += 8
  }
  for (const op of ops) {
    out[p] = op.value === undefined ? OP_DEL : OP_PUT
    const keyLen = Buffer.byteLength(op.key)
    view.setUint32(p + 1, keyLen, true)
    p += 5
    p += Buffer.from(out.buffer, out.byteOffset + p, keyLen).write(op.key, 'utf8')
    if (op.value !== undefined) {
      view.setUint32(p, op.value.byteLength, true)
      out.set(op.value, p + 4)
      valueAt?.push(p + 4)
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

/** An operation as replay finds it: a put's value is `length` bytes at `at` of the file (a del has no `at`). */
interface ParsedOp { key: string, at?: number, length?: number }
type Parsed = { kind: 'record', end: number, flags: number, ops: ParsedOp[], count?: number } | { kind: 'end' } | { kind: 'bad', why: string }

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
  const flags = view.getUint32(at + 4, true)
  const end = alignUp(at + RECORD_HEADER_BYTES + length, RECORD_ALIGN)
  const pv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength)
  if ((flags & FLAG_END) !== 0) {
    if (length !== 8) throw new CorruptLogError(`wal@${at}`, `an end record of ${length} bytes`)
    return { kind: 'record', end, flags, ops: [], count: Number(pv.getBigUint64(0, true)) }
  }
  const ops: ParsedOp[] = []
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
        // where the value is in the file: values are read back only at start and for checkpoints
        ops.push({ key, at: at + RECORD_HEADER_BYTES + p, length: valueLen })
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
  return { kind: 'record', end, flags, ops }
}

/** Whether a whole record starts anywhere in `buf` from `from` on (damage amid acknowledged records, not a torn tail). */
function wholeRecordAfter (buf: Uint8Array, from: number): boolean {
  for (let at = alignUp(from + 1, RECORD_ALIGN); at + RECORD_HEADER_BYTES <= buf.byteLength; at += RECORD_ALIGN) {
    // a zero length is no record (a preallocated tail is a megabyte of them)
    if ((buf[at] | buf[at + 1] | buf[at + 2] | buf[at + 3]) === 0) continue
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

function allZero (buf: Uint8Array, from: number): boolean {
  for (let i = from; i < buf.byteLength; i++) if (buf[i] !== 0) return false
  return true
}

export interface WalOptions {
  /** Use O_DIRECT where the file system allows it (default: on Linux). */
  direct?: boolean
  /** Bytes of records a segment takes before the next one starts. */
  segmentBytes?: number
  /** Told when the file system refused O_DIRECT and writes went through the page cache. */
  onBuffered?: (reason: string) => void
  /** Told of a failure the log survives (a segment or a checkpoint that could not be written yet). */
  onWarning?: (message: string) => void
  /** Tests: awaited before a rotation's checkpoint is named (to look at the log while one is being written). */
  beforeCheckpointNamed?: () => Promise<void>
}

/** The segment being appended: its seq, file, length of valid bytes, and bytes of records appended since it started. */
interface Segment { seq: bigint, name: string, file: FileHandle, size: number, appended: number, zeroed: number }

/** Where a live key's value is: `length` bytes at `at` of the segment or checkpoint named `file`. */
interface Loc { file: string, at: number, length: number }

/** How long file contents read for `get`, `range` or replay stay cached after their last use. */
const READ_CACHE_MS = 2000

/** Directories with a WalLogStore open in this process (another process is kept out by the node's data dir lock). */
const openDirs = new Set<string>()

export class WalLogStore implements LogStore {
  readonly dir: string
  /**
   * Every live key and where its value is on disk. Values are not kept in memory: the Raft log is
   * held decoded by its MemoryStorage already, and is read back only at start (get, range) and by
   * checkpoints. Keeping a second copy here grew each node by the log's size (up to 32 MiB per group
   * between snapshots) and cost page faults on the growth, more than the copy saved.
   */
  readonly #live = new Map<string, Loc>()
  /** Bytes of keys and values in #live (what a checkpoint writes). */
  #liveBytes = 0
  /** Contents of files read for get, range, replay or a checkpoint, by name; dropped READ_CACHE_MS after the last use. */
  readonly #cache = new Map<string, Uint8Array>()
  #cacheTimer: ReturnType<typeof setTimeout> | undefined
  readonly #segmentBytes: number
  readonly #onBuffered: (reason: string) => void
  readonly #onWarning: (message: string) => void
  readonly #beforeCheckpointNamed: (() => Promise<void>) | undefined
  #direct: boolean
  /** Aligned; its front holds the current segment's last partial block between appends. */
  #buffer: Uint8Array
  #seg: Segment | undefined
  /** Zero-filling ahead of the current segment's end, if it is going on (see PREALLOC_BYTES). */
  #preallocating: Promise<void> | undefined
  #zeroBuffer: Uint8Array | undefined
  /** The checkpoint being written in the background, if one is. */
  #checkpointing: Promise<void> | undefined
  /** After a failed rotation or checkpoint, the next attempt waits until then (performance.now()). */
  #rotateNotBefore = 0
  /** Set when the directory could not be fsync'd after a new segment was named: no write is safe any more. */
  #broken: Error | undefined
  #closed = false
  /** Writes run one at a time (RaftLogDb issues one at a time; this keeps it so for any caller). */
  #tail: Promise<void> = Promise.resolve()
  readonly stats = { records: 0, checkpoints: 0, bytes: 0 }

  private constructor (dir: string, options: WalOptions) {
    this.dir = dir
    this.#segmentBytes = options.segmentBytes ?? WAL_SEGMENT_BYTES_DEFAULT
    this.#direct = options.direct ?? process.platform === 'linux'
    this.#onBuffered = options.onBuffered ?? (() => {})
    this.#onWarning = options.onWarning ?? (() => {})
    this.#beforeCheckpointNamed = options.beforeCheckpointNamed
    this.#buffer = alignedBuffer(WRITE_BUFFER_BYTES)
  }

  /** Whether `dir` holds a write-ahead log (a segment or a checkpoint). */
  static async exists (dir: string): Promise<boolean> {
    const names = await readdir(dir).catch(() => [] as string[])
    return seqsOf(names, SEGMENT_SUFFIX).length > 0 || seqsOf(names, CHECKPOINT_SUFFIX).length > 0
  }

  /**
   * Opens the log in `dir` (created if needed) and replays it. `initial`: for a directory without a
   * log, the keys it starts with (a migration), written as checkpoint 1 before segment 1 exists: a
   * crash before that checkpoint is named leaves no log here.
   */
  static async open (dir: string, options: WalOptions = {}, initial?: AsyncIterable<[string, Uint8Array]>): Promise<WalLogStore> {
    if (openDirs.has(dir)) throw Object.assign(new Error(`the Raft log ${dir} is already open in this process`), { code: 'WAL_LOCKED' })
    openDirs.add(dir)
    const wal = new WalLogStore(dir, options)
    try {
      await mkdir(dir, { recursive: true })
      const base = await wal.#replay()
      if (wal.#seg === undefined) {
        if (base === undefined && initial !== undefined) {
          const image: Array<[string, Uint8Array]> = []
          for await (const [key, value] of initial) image.push([key, value])
          const locs = await wal.#writeCheckpoint(1n, image)
          image.forEach(([key], i) => { wal.#apply(key, locs[i]) })
        }
        await wal.#newSegment(base ?? 1n)
      }
      return wal
    } catch (err) {
      await wal.#seg?.file.close().catch(() => {})
      openDirs.delete(dir)
      throw err
    }
  }

  /** Loads the newest checkpoint and replays the segments after it; resolves to the checkpoint's seq. */
  async #replay (): Promise<bigint | undefined> {
    let names = await readdir(this.dir)
    // leftovers of a segment or checkpoint that was never named
    for (const n of names.filter((x) => x.endsWith(TEMP_SUFFIX))) await unlink(join(this.dir, n))
    names = names.filter((x) => !x.endsWith(TEMP_SUFFIX))
    const checkpoints = seqsOf(names, CHECKPOINT_SUFFIX)
    const base = checkpoints.at(-1)
    if (base !== undefined) await this.#loadCheckpoint(base)
    const all = seqsOf(names, SEGMENT_SUFFIX)
    const segs = all.filter((q) => q >= (base ?? 1n))
    // what the checkpoint superseded (a crash came before they were deleted)
    const stale = [...all.filter((q) => q < (base ?? 1n)).map(segmentName), ...checkpoints.slice(0, -1).map(checkpointName)]
    for (let i = 0; i < segs.length; i++) {
      const want = (base ?? 1n) + BigInt(i)
      if (segs[i] !== want) throw new CorruptLogError(join(this.dir, segmentName(want)), `segment missing (the log goes on at ${segmentName(segs[i])})`)
      await this.#replaySegment(segs[i], i === segs.length - 1)
    }
    if (stale.length > 0) {
      for (const n of stale) await unlink(join(this.dir, n)).catch(() => {})
      await syncDir(this.dir)
    }
    return base
  }

  async #loadCheckpoint (seq: bigint): Promise<void> {
    const name = checkpointName(seq)
    const path = join(this.dir, name)
    const buf = await this.#fileBytes(name)
    // a checkpoint is named only once durable: anything wrong with it is damage
    if (!headerOk(buf, CHECKPOINT_MAGIC, seq)) throw new CorruptLogError(path, 'checkpoint header is not valid')
    let keys = 0
    for (let at = SEGMENT_HEADER_BYTES; ;) {
      const r = parseRecord(buf, at)
      if (r.kind !== 'record') throw new CorruptLogError(`${path}@${at}`, r.kind === 'bad' ? r.why : 'the checkpoint ends before its end record')
      if ((r.flags & FLAG_END) !== 0) {
        if (r.count !== keys) throw new CorruptLogError(path, `the checkpoint holds ${keys} keys, its end record says ${r.count}`)
        return
      }
      for (const op of r.ops) this.#apply(op.key, op.at === undefined ? undefined : { file: name, at: op.at, length: op.length as number })
      keys += r.ops.length
      at = r.end
    }
  }

  async #replaySegment (seq: bigint, newest: boolean): Promise<void> {
    const name = segmentName(seq)
    const path = join(this.dir, name)
    const buf = await this.#fileBytes(name)
    // a segment gets its name only once its header is durable (#newSegment), so a bad one is damage
    if (!headerOk(buf, MAGIC, seq)) throw new CorruptLogError(path, 'segment header is not valid')
    let at = SEGMENT_HEADER_BYTES
    let appended = 0
    while (true) {
      const r = parseRecord(buf, at)
      if (r.kind === 'end' && (at + RECORD_HEADER_BYTES > buf.byteLength || !wholeRecordAfter(buf, at))) break
      if (r.kind !== 'record' || (r.flags & FLAG_END) !== 0) {
        const why = r.kind === 'bad' ? r.why : r.kind === 'end' ? 'zero length' : 'an end record in a segment'
        if (!newest || wholeRecordAfter(buf, at)) throw new CorruptLogError(`${path}@${at}`, `${why}, with acknowledged records after it`)
        if (r.kind !== 'end' && !torn(buf, at)) throw new CorruptLogError(`${path}@${at}`, `${why} in the last record, which was written whole (no sector of it is missing)`)
        break // a torn tail: never acknowledged
      }
      for (const op of r.ops) this.#apply(op.key, op.at === undefined ? undefined : { file: name, at: op.at, length: op.length as number })
      appended += r.end - at
      at = r.end
    }
    if (!newest) return
    const flags = constants.O_WRONLY | constants.O_DSYNC
    const seg: Segment = { seq, name, file: await this.#openSegment(path, false), size: at, appended, zeroed: buf.byteLength }
    this.#seg = seg
    // appends land past `at`: the cached copy of this segment ends there (see #fileBytes)
    this.#cache.set(name, buf.subarray(0, at))
    // the next append rewrites the last partial block: its bytes go to the front of the write buffer
    const blockStart = at - (at % ALIGN)
    this.#buffer.fill(0, 0, ALIGN)
    this.#buffer.set(buf.subarray(blockStart, at))
    // a torn write left bytes after the end: cut them, and zero the rest of the last block, so that
    // nothing stale follows the next record (a preallocated tail is zeros already)
    if (!allZero(buf, at)) {
      if (at > blockStart) seg.file = await this.#writeAt(seg.file, this.#buffer.subarray(0, ALIGN), blockStart, path, flags)
      seg.zeroed = alignUp(at, ALIGN)
      await seg.file.truncate(seg.zeroed)
      await seg.file.sync()
    }
  }

  #apply (key: string, loc: Loc | undefined): void {
    const old = this.#live.get(key)
    if (old !== undefined) this.#liveBytes -= key.length + old.length
    if (loc === undefined) {
      this.#live.delete(key)
    } else {
      this.#live.set(key, loc)
      this.#liveBytes += key.length + loc.length
    }
  }

  /**
   * The contents of file `name`, cached. Of the segment being appended, only its valid bytes as
   * they are now are cached (the rest is zeros or a torn write, and later appends land there), so a
   * value that lies past them is read again.
   */
  async #fileBytes (name: string, need = 0): Promise<Uint8Array> {
    let buf = this.#cache.get(name)
    if (buf === undefined || buf.byteLength < need) {
      buf = await readFile(join(this.dir, name))
      this.#cache.set(name, name === this.#seg?.name ? buf.subarray(0, this.#seg.size) : buf)
    }
    if (this.#cacheTimer !== undefined) clearTimeout(this.#cacheTimer)
    this.#cacheTimer = setTimeout(() => { this.#cache.clear() }, READ_CACHE_MS)
    this.#cacheTimer.unref?.()
    return buf
  }

  /** A copy of the value of `key` as it is now, read from its file. */
  async #value (key: string): Promise<Uint8Array | undefined> {
    for (let attempt = 0; ; attempt++) {
      const loc = this.#live.get(key)
      if (loc === undefined) return undefined
      try {
        const buf = await this.#fileBytes(loc.file, loc.at + loc.length)
        if (buf.byteLength < loc.at + loc.length) throw new CorruptLogError(key, `${loc.file} ends before the value at ${loc.at}`)
        return new Uint8Array(buf.subarray(loc.at, loc.at + loc.length))
      } catch (err) {
        // a checkpoint moved the key and removed the file meanwhile: read where it is now
        if ((err as { code?: string }).code !== 'ENOENT' || attempt > 0) throw err
      }
    }
  }

  async #openFile (path: string, flags: number): Promise<FileHandle> {
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

  async #openSegment (path: string, create: boolean): Promise<FileHandle> {
    return await this.#openFile(path, constants.O_WRONLY | constants.O_DSYNC | (create ? constants.O_CREAT | constants.O_EXCL : 0))
  }

  #giveUpDirect (err: unknown): void {
    if (!this.#direct) return
    this.#direct = false
    this.#onBuffered((err as Error)?.message ?? String(err))
  }

  /**
   * Writes `bytes` (aligned buffer and length) at `position` (aligned) of `file` (at `path`),
   * however many calls it takes; resolves to the file handle, a new one if the write had to be
   * retried without O_DIRECT.
   */
  async #writeAt (file: FileHandle, bytes: Uint8Array, position: number, path?: string, flags?: number): Promise<FileHandle> {
    for (let done = 0; done < bytes.byteLength;) {
      let n: number
      try {
        n = (await file.write(bytes, done, bytes.byteLength - done, position + done)).bytesWritten
      } catch (err) {
        if (!this.#direct || !refusesDirect(err) || path === undefined || flags === undefined) throw err
        // a misaligned request on an odd device: reopen buffered and write the same bytes
        this.#giveUpDirect(err)
        await file.close()
        file = await open(path, flags & ~constants.O_CREAT & ~constants.O_EXCL, 0o644)
        continue
      }
      if (n <= 0) throw Object.assign(new Error(`short write to the Raft log in ${this.dir}`), { code: 'EIO' })
      done += n
    }
    return file
  }

  /** PREALLOC_BYTES of zeros, aligned (made on first use, never written to). */
  #zeros (): Uint8Array {
    this.#zeroBuffer ??= alignedBuffer(PREALLOC_BYTES).subarray(0, PREALLOC_BYTES)
    return this.#zeroBuffer
  }

  /**
   * Zero-fills the next PREALLOC_BYTES of `seg` past what is zero-filled, while appends go on below
   * it (an append that would reach past it waits for this first: the two never overlap). A failure
   * only means later appends extend the file themselves.
   */
  async #preallocate (seg: Segment): Promise<void> {
    const from = seg.zeroed
    try {
      const file = await this.#writeAt(seg.file, this.#zeros(), from)
      if (file === seg.file) seg.zeroed = Math.max(seg.zeroed, from + PREALLOC_BYTES)
    } catch (err) {
      this.#onWarning(`could not preallocate the Raft log segment ${seg.name}: ${(err as Error).message}`)
    } finally {
      this.#preallocating = undefined
    }
  }

  /**
   * Makes segment `seq` (its header durable under a temporary name, then renamed and the directory
   * fsync'd) the one appends go to. A failure before the rename changes nothing; after it, the log
   * is broken (the new name may not survive a crash, nor what would be appended there).
   */
  async #newSegment (seq: bigint): Promise<void> {
    const path = join(this.dir, segmentName(seq))
    const temp = path + TEMP_SUFFIX
    const header = this.#seg === undefined ? this.#buffer.subarray(0, ALIGN) : alignedBuffer(ALIGN).subarray(0, ALIGN)
    header.fill(0)
    writeHeader(header, MAGIC, seq)
    const flags = constants.O_WRONLY | constants.O_DSYNC | constants.O_CREAT | constants.O_EXCL
    let file = await this.#openFile(temp, flags)
    try {
      file = await this.#writeAt(file, header, 0, temp, flags)
      file = await this.#writeAt(file, this.#zeros().subarray(ALIGN), ALIGN, temp, flags)
      await rename(temp, path)
    } catch (err) {
      await file.close().catch(() => {})
      await unlink(temp).catch(() => {})
      throw err
    }
    const prev = this.#seg
    this.#seg = { seq, name: segmentName(seq), file, size: SEGMENT_HEADER_BYTES, appended: 0, zeroed: PREALLOC_BYTES }
    this.#buffer.set(header.subarray(0, SEGMENT_HEADER_BYTES))
    this.#buffer.fill(0, SEGMENT_HEADER_BYTES, ALIGN)
    await prev?.file.close().catch(() => {})
    try {
      await syncDir(this.dir)
    } catch (err) {
      this.#broken = err as Error
      throw err
    }
  }

  /**
   * Writes checkpoint `seq`: `image` (every live key as it was before the first record of segment
   * `seq`: values, or where they are in older files) in records of about CHECKPOINT_RECORD_BYTES, an
   * end record, one fdatasync, then the rename and the directory's fsync. Yields to the event loop at
   * every write. Resolves to where each value is in the checkpoint, in the order of `image`.
   */
  async #writeCheckpoint (seq: bigint, image: Array<[string, Uint8Array | Loc]>): Promise<Loc[]> {
    const name = checkpointName(seq)
    const path = join(this.dir, name)
    const temp = path + TEMP_SUFFIX
    // the older files the values are in (immutable: every Loc of the image is before segment seq)
    const sources = new Map<string, Uint8Array>()
    for (const [, v] of image) {
      if (v instanceof Uint8Array || sources.has(v.file)) continue
      sources.set(v.file, await readFile(join(this.dir, v.file)))
    }
    const valueOf = (key: string, v: Uint8Array | Loc): Uint8Array => {
      if (v instanceof Uint8Array) return v
      const buf = sources.get(v.file) as Uint8Array
      if (buf.byteLength < v.at + v.length) throw new CorruptLogError(key, `${v.file} ends before the value at ${v.at}`)
      return buf.subarray(v.at, v.at + v.length)
    }
    const locs: Loc[] = []
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL
    let file = await this.#openFile(temp, flags)
    try {
      let buf = alignedBuffer(WRITE_BUFFER_BYTES)
      buf.fill(0)
      writeHeader(buf, CHECKPOINT_MAGIC, seq)
      let fill = SEGMENT_HEADER_BYTES
      /** File offset of buf[0]. */
      let position = 0
      /** Writes the whole blocks of buf[0, fill) and keeps the partial one at its front. */
      const flushBlocks = async (): Promise<void> => {
        const whole = fill - (fill % ALIGN)
        if (whole === 0) return
        file = await this.#writeAt(file, buf.subarray(0, whole), position, temp, flags)
        position += whole
        buf.copyWithin(0, whole, fill)
        fill -= whole
        buf.fill(0, fill, whole + fill)
      }
      const add = async (ops: Array<{ key: string, value?: Uint8Array }>, recordFlags: number, count?: number): Promise<void> => {
        const size = alignUp(count !== undefined ? RECORD_HEADER_BYTES + 8 : recordBytes(ops), RECORD_ALIGN)
        if (fill + size > buf.byteLength) await flushBlocks()
        if (fill + size > buf.byteLength) {
          // one value larger than the buffer: a buffer of its own for this record
          const bigger = alignedBuffer(alignUp(fill + size, ALIGN))
          bigger.set(buf.subarray(0, fill))
          buf = bigger
        }
        buf.fill(0, fill, fill + size)
        const valueAt: number[] = []
        encodeRecord(ops, recordFlags, buf, fill, count, valueAt)
        ops.forEach((op, i) => { locs.push({ file: name, at: position + valueAt[i], length: (op.value as Uint8Array).byteLength }) })
        fill += size
      }
      let ops: Array<{ key: string, value: Uint8Array }> = []
      let bytes = 0
      for (const [key, v] of image) {
        const value = valueOf(key, v)
        ops.push({ key, value })
        bytes += 9 + key.length * 3 + value.byteLength
        if (bytes >= CHECKPOINT_RECORD_BYTES) {
          await add(ops, 0)
          ops = []
          bytes = 0
        }
      }
      if (ops.length > 0) await add(ops, 0)
      await add([], FLAG_END, image.length)
      const end = alignUp(fill, ALIGN)
      buf.fill(0, fill, end)
      file = await this.#writeAt(file, buf.subarray(0, end), position, temp, flags)
      await file.datasync()
      await file.close()
      if (seq > 1n) await this.#beforeCheckpointNamed?.()
      await rename(temp, path)
    } catch (err) {
      await file.close().catch(() => {})
      await unlink(temp).catch(() => {})
      throw err
    }
    await syncDir(this.dir)
    this.stats.checkpoints++
    return locs
  }

  /**
   * Appends go to segment seq+1 from now on, and checkpoint seq+1 (the live keys as they are now) is
   * written in the background; once it is durable, the keys not written since are read from it, and
   * the older segments and checkpoints go.
   */
  async #rotate (): Promise<void> {
    const seg = this.#seg as Segment
    const next = seg.seq + 1n
    const image = [...this.#live]
    await this.#preallocating
    try {
      await this.#newSegment(next)
    } catch (err) {
      if (this.#broken !== undefined) return // what was acknowledged is in the old segment, which replay still reads whole
      this.#rotateNotBefore = performance.now() + ROTATE_RETRY_MS
      this.#onWarning(`could not start a new segment of the Raft log in ${this.dir}: ${(err as Error).message}`)
      return
    }
    this.#checkpointing = (async () => {
      try {
        const locs = await this.#writeCheckpoint(next, image)
        image.forEach(([key, was], i) => { if (this.#live.get(key) === was) this.#live.set(key, locs[i]) })
        const names = await readdir(this.dir)
        const old = [...seqsOf(names, SEGMENT_SUFFIX).filter((q) => q < next).map(segmentName), ...seqsOf(names, CHECKPOINT_SUFFIX).filter((q) => q < next).map(checkpointName)]
        for (const n of old) {
          this.#cache.delete(n)
          await unlink(join(this.dir, n)).catch(() => {})
        }
        await syncDir(this.dir).catch(() => {})
      } catch (err) {
        // the older checkpoint and segments stay and are what replay reads; the next rotation tries again
        this.#rotateNotBefore = performance.now() + ROTATE_RETRY_MS
        this.#onWarning(`could not write a checkpoint of the Raft log in ${this.dir}: ${(err as Error).message}`)
      } finally {
        this.#checkpointing = undefined
      }
    })()
  }

  /** Resolves once no checkpoint is being written. */
  async settled (): Promise<void> {
    while (this.#checkpointing !== undefined) await this.#checkpointing
  }

  async get (key: string): Promise<Uint8Array | undefined> {
    this.#check()
    return await this.#value(key)
  }

  async * range (gte: string, lt: string): AsyncIterable<[string, Uint8Array]> {
    this.#check()
    const keys = [...this.#live.keys()].filter((k) => k >= gte && k < lt).sort()
    for (const k of keys) {
      const v = await this.#value(k)
      if (v !== undefined) yield [k, v]
    }
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
    // a BatchOp is the encoder's operation as it is (a del has no value): no copy per op
    const length = recordBytes(ops)
    if (length - RECORD_HEADER_BYTES > WAL_RECORD_BYTES_MAX) throw new Error(`raft log: a batch of ${length} bytes exceeds ${WAL_RECORD_BYTES_MAX}`)
    const blockStart = seg.size - (seg.size % ALIGN)
    const tailLen = seg.size - blockStart
    const end = tailLen + alignUp(length, RECORD_ALIGN)
    const padded = alignUp(end, ALIGN)
    let out = this.#buffer
    if (padded > out.byteLength) {
      out = alignedBuffer(padded)
      out.set(this.#buffer.subarray(0, tailLen))
    }
    const valueAt: number[] = []
    encodeRecord(ops, 0, out, tailLen, undefined, valueAt)
    out.fill(0, tailLen + length, padded)
    if (blockStart + padded > seg.zeroed && this.#preallocating !== undefined) await this.#preallocating
    seg.file = await this.#writeAt(seg.file, out.subarray(0, padded), blockStart, join(this.dir, segmentName(seg.seq)), constants.O_WRONLY | constants.O_DSYNC)
    // the new partial block goes to the front of the buffer for the next write
    const nextBlock = end - (end % ALIGN)
    if (out === this.#buffer) this.#buffer.copyWithin(0, nextBlock, end)
    else this.#buffer.set(out.subarray(nextBlock, end))
    seg.size = blockStart + end
    seg.zeroed = Math.max(seg.zeroed, blockStart + padded)
    seg.appended += alignUp(length, RECORD_ALIGN)
    this.stats.records++
    this.stats.bytes += padded
    let v = 0
    for (const op of ops) this.#apply(op.key, op.type === 'del' ? undefined : { file: seg.name, at: blockStart + valueAt[v++], length: op.value.byteLength })
    if (seg.zeroed - seg.size < PREALLOC_BYTES / 4 && this.#preallocating === undefined) this.#preallocating = this.#preallocate(seg)
    if (seg.appended >= Math.max(this.#segmentBytes, this.#liveBytes) && this.#checkpointing === undefined && performance.now() >= this.#rotateNotBefore) {
      // the batch is durable whatever happens now
      await this.#rotate()
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
    await this.settled()
    await this.#preallocating
    await this.#seg?.file.close()
    if (this.#cacheTimer !== undefined) clearTimeout(this.#cacheTimer)
    this.#cache.clear()
    openDirs.delete(this.dir)
  }
}
