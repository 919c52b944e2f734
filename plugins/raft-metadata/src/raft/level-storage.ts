/**
 * LevelStorage: the production Storage of the Raft core, on a RaftLogDb (a key-value LogStore: on a
 * node the write-ahead log of wal-log-store.ts; LevelDB until 2026-12, still read once to move an
 * older directory over; the name stayed). Every Ready is persisted in ONE batch made durable (O_DSYNC
 * or fsync) before the driver sends its messages. Reads
 * are synchronous, served from an in-memory copy of the persisted log (a MemoryStorage) that is only
 * updated after the write succeeded, so the core never sees anything that is not durable.
 *
 * Several groups may share one log (RaftLogDb: group commit, one durable write for concurrent writes
 * of different groups); each group's keys then start with its prefix (`g<group>/`).
 *
 * Layout of one group (utf8 keys after the prefix, byte values; each value is CBOR followed by a
 * big-endian CRC-32 of that CBOR, computed before writing and verified after reading):
 *   m/hs         hard state            { t, v, c }
 *   m/snap       newest snapshot       { i, t, v: voters, l: learners, d: data }
 *   m/compacted  last compacted entry  { i, t }   (<= snapshot index)
 *   e/<index>    one entry             { i, t, y, d }   index as 16 hex digits, so keys sort by index
 */
import { readdir, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { crc32 } from 'node:zlib'
import { decode, encode } from 'cborg'
import { Level } from 'level'
import { cloneConfState } from './conf-change.js'
import { CompactedError, CorruptLogError, SnapshotOutOfDateError } from './errors.js'
import { MemoryStorage } from './memory-storage.js'
import { EntryType } from './types.js'
import type { ConfState, Entry, HardState, Snapshot, Storage } from './types.js'
import { STRICT_CBOR_DECODE_OPTIONS, holdsConfChange, mustSync } from './util.js'
import { WalLogStore, type WalOptions } from './wal-log-store.js'
import { mutations } from '../mutations.js'

const KEY_HARD_STATE = 'm/hs'
const KEY_SNAPSHOT = 'm/snap'
const KEY_COMPACTED = 'm/compacted'
const ENTRY_PREFIX = 'e/'
/** Largest number of entry keys deleted or written in one batch (a limit against runaway batches). */
const MAX_BATCH_OPS = 10_000_000

function entryKey (index: number): string {
  return ENTRY_PREFIX + index.toString(16).padStart(16, '0')
}

const decodeOptions = STRICT_CBOR_DECODE_OPTIONS

/** CBOR + CRC-32 (pair assertion: computed before writing, verified after reading). */
function seal (value: unknown): Uint8Array {
  const body = encode(value)
  const out = new Uint8Array(body.byteLength + 4)
  out.set(body, 0)
  new DataView(out.buffer).setUint32(body.byteLength, crc32(body) >>> 0, false)
  return out
}

function unseal (key: string, bytes: Uint8Array): Record<string, unknown> {
  if (bytes.byteLength < 5) throw new CorruptLogError(key, `record of ${bytes.byteLength} bytes is too short`)
  const body = bytes.subarray(0, bytes.byteLength - 4)
  const stored = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(bytes.byteLength - 4, false)
  const actual = crc32(body) >>> 0
  if (stored !== actual) throw new CorruptLogError(key, `checksum mismatch: stored ${stored.toString(16)}, computed ${actual.toString(16)}`)
  let v: unknown
  try {
    v = decode(body, decodeOptions)
  } catch (err) {
    throw new CorruptLogError(key, `not CBOR: ${(err as Error).message}`)
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new CorruptLogError(key, 'not a map')
  return v as Record<string, unknown>
}

function num (key: string, v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new CorruptLogError(key, `${field} is not a non-negative integer`)
  return v
}

function str (key: string, v: unknown, field: string): string {
  if (typeof v !== 'string') throw new CorruptLogError(key, `${field} is not a string`)
  return v
}

function bytesOf (key: string, v: unknown, field: string): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new CorruptLogError(key, `${field} is not bytes`)
  return v
}

function strList (key: string, v: unknown, field: string): string[] {
  if (!Array.isArray(v)) throw new CorruptLogError(key, `${field} is not a list`)
  return v.map((x, i) => str(key, x, `${field}[${i}]`))
}

const encodeHardState = (hs: HardState): Uint8Array => seal({ t: hs.term, v: hs.vote, c: hs.commit })
function decodeHardState (key: string, b: Uint8Array): HardState {
  const v = unseal(key, b)
  return { term: num(key, v.t, 'term'), vote: str(key, v.v, 'vote'), commit: num(key, v.c, 'commit') }
}

const encodeSnapshot = (s: Snapshot): Uint8Array => seal({
  i: s.metadata.index,
  t: s.metadata.term,
  v: s.metadata.confState.voters,
  l: s.metadata.confState.learners,
  d: s.data
})
function decodeSnapshot (key: string, b: Uint8Array): Snapshot {
  const v = unseal(key, b)
  return {
    metadata: {
      index: num(key, v.i, 'index'),
      term: num(key, v.t, 'term'),
      confState: { voters: strList(key, v.v, 'voters'), learners: strList(key, v.l, 'learners') }
    },
    data: bytesOf(key, v.d, 'data')
  }
}

const encodeCompacted = (c: { index: number, term: number }): Uint8Array => seal({ i: c.index, t: c.term })
function decodeCompacted (key: string, b: Uint8Array): { index: number, term: number } {
  const v = unseal(key, b)
  return { index: num(key, v.i, 'index'), term: num(key, v.t, 'term') }
}

const encodeEntry = (e: Entry): Uint8Array => seal({ i: e.index, t: e.term, y: e.type, d: e.data })
function decodeEntry (key: string, b: Uint8Array): Entry {
  const v = unseal(key, b)
  const typeNumber = num(key, v.y, 'type')
  const type = typeNumber as EntryType
  if (type !== EntryType.Normal && type !== EntryType.ConfChange) throw new CorruptLogError(key, `unknown entry type ${typeNumber}`)
  return { index: num(key, v.i, 'index'), term: num(key, v.t, 'term'), type, data: bytesOf(key, v.d, 'data') }
}

export type BatchOp = { type: 'put', key: string, value: Uint8Array } | { type: 'del', key: string }

function sameHardState (a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit
}

interface PendingWrite {
  ops: BatchOp[]
  sync: boolean
  resolve: () => void
  reject: (err: Error) => void
}

/**
 * The key-value store under a RaftLogDb: a WalLogStore on a node (LevelDB, `levelLogStore`, in
 * directories of older builds, read once to move them over), a simulated disk that loses unsynced
 * writes in the simulator. `batch` is atomic, and batches become durable in the order they were
 * written.
 */
export interface LogStore {
  get: (key: string) => Promise<Uint8Array | undefined>
  /** Every key in [gte, lt) with its value, in key order. */
  range: (gte: string, lt: string) => AsyncIterable<[string, Uint8Array]>
  batch: (ops: BatchOp[], options: { sync: boolean }) => Promise<void>
  close: () => Promise<void>
}

/** Whether `dir` holds a LevelDB (the Raft log of builds before the write-ahead log). */
async function isLevelDb (dir: string): Promise<boolean> {
  return await stat(join(dir, 'CURRENT')).then(() => true, () => false)
}

/** Removes a LevelDB's files from `dir` (after its keys moved into the write-ahead log there). */
async function removeLevelDbFiles (dir: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[])
  const leveldb = names.filter((n) => n === 'CURRENT' || n === 'LOCK' || n === 'LOG' || n === 'LOG.old' || n.startsWith('MANIFEST-') || /^\d+\.(ldb|log|sst|dbtmp)$/.test(n))
  if (leveldb.length === 0) return
  // CURRENT first: a crash midway leaves a directory that is no LevelDB any more
  leveldb.sort((a, b) => Number(b === 'CURRENT') - Number(a === 'CURRENT'))
  for (const n of leveldb) await rm(join(dir, n), { force: true })
}

/**
 * Writes `ops` as one atomic LevelDB batch through a chained batch. The array form (`db.batch(ops)`)
 * clones every operation with the call's options and looks up its encodings in JavaScript before the
 * native batch is built; classic-level's chained batch adds each operation to a native batch at
 * once. On this machine that was ~28 µs against ~17 µs of the main thread for 2 operations, and
 * ~147 against ~26 µs for 30 — per Raft write, on every node.
 */
async function writeBatch (db: Level<string, Uint8Array>, ops: BatchOp[], sync: boolean): Promise<void> {
  const batch = db.batch()
  try {
    for (const op of ops) {
      if (op.type === 'put') batch.put(op.key, op.value)
      else batch.del(op.key)
    }
  } catch (err) {
    await batch.close()
    throw err
  }
  await batch.write({ sync })
}

/** A LogStore on a LevelDB in `dir` (created if needed). */
export async function levelLogStore (dir: string): Promise<LogStore> {
  const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' })
  await db.open()
  return {
    get: async (key) => await db.get(key),
    range: (gte, lt) => db.iterator({ gte, lt }),
    batch: async (ops, options) => { await writeBatch(db, ops, options.sync) },
    close: async () => { await db.close() }
  }
}

/**
 * One log store that holds the Raft logs of several groups (each under its own key prefix), written
 * with group commit: writes submitted while a batch is being written go together in the next batch,
 * with one fsync. A node runs several Raft groups (the system group and the data groups); with a log
 * each, every group paid its own fsync per Ready — on a busy node several fsyncs at once, each a
 * LevelDB batch and a flush of the same disk. Shared, concurrent Readies of different groups share
 * one. A group's own writes keep their order (each LevelStorage issues one at a time), and a batch
 * is atomic, so merging changes nothing about what is durable when a write resolves.
 */
export class RaftLogDb {
  readonly store: LogStore
  #queue: PendingWrite[] = []
  #writing = false
  #closed = false
  /** Batches written and the writes they carried (writes / batches: how much group commit merged). */
  readonly stats = { batches: 0, writes: 0 }
  /** Told the seconds each fsync'd batch took (metrics); a listener that throws is ignored. */
  readonly #syncListeners = new Set<(seconds: number) => void>()

  constructor (store: LogStore) {
    this.store = store
  }

  /**
   * The log in `dir` (created if needed): a write-ahead log of our own (WalLogStore). A directory
   * that still holds the LevelDB of an older build is moved into one first: its keys become the
   * first segment's checkpoint, named only once durable, and only then are LevelDB's files removed
   * (a crash before that leaves the LevelDB to move again, one after it leaves files the next open
   * removes).
   */
  static async open (dir: string, options: WalOptions = {}): Promise<RaftLogDb> {
    if (await WalLogStore.exists(dir)) {
      await removeLevelDbFiles(dir)
      return new RaftLogDb(await WalLogStore.open(dir, options))
    }
    if (!(await isLevelDb(dir))) return new RaftLogDb(await WalLogStore.open(dir, options))
    const level = await levelLogStore(dir)
    let wal: WalLogStore
    try {
      wal = await WalLogStore.open(dir, options, level.range('', '\uffff'))
    } finally {
      await level.close()
    }
    await removeLevelDbFiles(dir)
    return new RaftLogDb(wal)
  }

  /** Whether the group under `prefix` has a log here (its hard state is written when it is created). */
  async has (prefix: string): Promise<boolean> {
    return (await this.store.get(prefix + KEY_HARD_STATE)) !== undefined
  }

  /** Writes `ops` atomically (fsync'd when `sync`), possibly in one batch with other groups' writes. */
  async write (ops: BatchOp[], sync: boolean): Promise<void> {
    if (this.#closed) throw new Error('raft log is closed')
    if (ops.length > MAX_BATCH_OPS) throw new Error(`raft storage: batch of ${ops.length} operations exceeds ${MAX_BATCH_OPS}`)
    await new Promise<void>((resolve, reject) => {
      this.#queue.push({ ops, sync, resolve, reject })
      if (!this.#writing) void this.#drain()
    })
  }

  async #drain (): Promise<void> {
    this.#writing = true
    try {
      while (this.#queue.length > 0) {
        const q = this.#queue
        this.#queue = []
        const ops = q.length === 1 ? q[0].ops : q.flatMap((w) => w.ops)
        try {
          const sync = q.some((w) => w.sync)
          const started = performance.now()
          await this.store.batch(ops, { sync })
          if (sync) this.#synced((performance.now() - started) / 1000)
          this.stats.batches++
          this.stats.writes += q.length
          for (const w of q) w.resolve()
        } catch (err) {
          for (const w of q) w.reject(err as Error)
        }
      }
    } finally {
      this.#writing = false
    }
  }

  /** Calls `listener` with the seconds each fsync'd batch takes, until the returned function is called. */
  onSync (listener: (seconds: number) => void): () => void {
    this.#syncListeners.add(listener)
    return () => { this.#syncListeners.delete(listener) }
  }

  #synced (seconds: number): void {
    for (const l of this.#syncListeners) {
      try {
        l(seconds)
      } catch {
        // a metrics listener never fails a write
      }
    }
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.store.close()
  }
}

export class LevelStorage implements Storage {
  private readonly log: RaftLogDb
  /** This group's key prefix in the log ('' for a log of its own). */
  private readonly prefix: string
  /** Whether closing this storage closes the log (a log of its own). */
  private readonly ownsLog: boolean
  /**
   * What is durable in the log, for synchronous reads; updated only after a write succeeded. One
   * exception: the hard state's commit index may run ahead of `written` (see saveReady).
   */
  private readonly mem: MemoryStorage
  /** The hard state as last written to the log. */
  private written: HardState
  /** Serializes writes: each starts after the previous one finished (in call order). */
  private tail: Promise<void> = Promise.resolve()
  private closed = false
  /** Batches written by saveReady, and how many of them were fsync'd. */
  readonly stats = { batches: 0, syncedBatches: 0, commitOnlyKept: 0 }

  private constructor (log: RaftLogDb, prefix: string, ownsLog: boolean, mem: MemoryStorage) {
    this.log = log
    this.prefix = prefix
    this.ownsLog = ownsLog
    this.mem = mem
    this.written = { ...mem.hardStateNow() }
  }

  /**
   * Opens (creating if needed) a log of its own in `dir` and loads it. A new directory with
   * `init.confState` is a founding node of a new group (genesis snapshot, as MemoryStorage); without
   * it, a joining node.
   */
  static async open (dir: string, init?: { confState?: ConfState }): Promise<LevelStorage> {
    const log = await RaftLogDb.open(dir)
    try {
      return await LevelStorage.openIn(log, '', init, true)
    } catch (err) {
      await log.close()
      throw err
    }
  }

  /** Opens (creating if needed, as `open`) the log of the group under `prefix` in a shared log. */
  static async openIn (log: RaftLogDb, prefix: string, init?: { confState?: ConfState }, ownsLog = false): Promise<LevelStorage> {
    const db = log.store
    const K = (key: string): string => prefix + key
    const hsBytes = await db.get(K(KEY_HARD_STATE))
    if (hsBytes === undefined) {
      const mem = new MemoryStorage(init)
      const snap = mem.snapshot()
      await log.write([
        { type: 'put', key: K(KEY_SNAPSHOT), value: encodeSnapshot(snap) },
        { type: 'put', key: K(KEY_COMPACTED), value: encodeCompacted({ index: snap.metadata.index, term: snap.metadata.term }) },
        { type: 'put', key: K(KEY_HARD_STATE), value: encodeHardState(mem.hardStateNow()) }
      ], true)
      return new LevelStorage(log, prefix, ownsLog, mem)
    }
    const hardState = decodeHardState(K(KEY_HARD_STATE), hsBytes)
    const snapBytes = await db.get(K(KEY_SNAPSHOT))
    const compBytes = await db.get(K(KEY_COMPACTED))
    if (snapBytes === undefined) throw new CorruptLogError(K(KEY_SNAPSHOT), 'missing')
    if (compBytes === undefined) throw new CorruptLogError(K(KEY_COMPACTED), 'missing')
    const snapshot = decodeSnapshot(K(KEY_SNAPSHOT), snapBytes)
    const compacted = decodeCompacted(K(KEY_COMPACTED), compBytes)
    const entries: Entry[] = []
    for await (const [key, value] of db.range(K(ENTRY_PREFIX), K(ENTRY_PREFIX) + '\xff')) {
      const e = decodeEntry(key, value)
      const want = compacted.index + 1 + entries.length
      if (key !== K(entryKey(e.index)) || e.index !== want) throw new CorruptLogError(key, `expected entry ${want}, found ${e.index}`)
      entries.push(e)
    }
    if (compacted.index > snapshot.metadata.index) throw new CorruptLogError(K(KEY_COMPACTED), 'after the snapshot index')
    // A snapshot only ever holds committed state (the application takes one at an applied index; a
    // leader sends one of its own), so its index is a lower bound on the commit index. The commit
    // index itself is volatile (paper figure 2), so raising it to a known-committed index is safe.
    // createSnapshot writes the commit index with the snapshot; this repairs a log written before it
    // did, whose stored commit index may be behind its snapshot (the core refuses to start on that).
    if (hardState.commit < snapshot.metadata.index && !mutations.commitBehindSnapshot) hardState.commit = snapshot.metadata.index
    return new LevelStorage(log, prefix, ownsLog, MemoryStorage.fromParts({ hardState, snapshot, compacted, entries }))
  }

  // ---------------------------------------------------------------- Storage (synchronous, from memory)

  initialState (): { hardState: HardState, confState: ConfState } {
    return this.mem.initialState()
  }

  entries (lo: number, hi: number, maxSize?: number): Entry[] {
    return this.mem.entries(lo, hi, maxSize)
  }

  term (i: number): number {
    return this.mem.term(i)
  }

  firstIndex (): number {
    return this.mem.firstIndex()
  }

  lastIndex (): number {
    return this.mem.lastIndex()
  }

  snapshot (): Snapshot {
    return this.mem.snapshot()
  }

  // ---------------------------------------------------------------- writes

  private serialize<T> (fn: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new Error('raft storage is closed'))
    const run = this.tail.then(fn)
    this.tail = run.then(() => undefined, () => undefined)
    return run
  }

  /**
   * Persists a Ready in one fsync'd batch: the snapshot (replacing the whole log), then the entries
   * (deleting any conflicting suffix, paper §5.3), then the hard state.
   */
  async saveReady (rd: { hardState?: HardState, entries: Entry[], snapshot?: Snapshot, committedEntries?: Entry[] }): Promise<void> {
    return await this.serialize(async () => {
      const ops: BatchOp[] = []
      let first = this.mem.firstIndex()
      let last = this.mem.lastIndex()
      if (rd.snapshot !== undefined) {
        const s = rd.snapshot
        const cur = this.mem.snapshot().metadata.index
        if (s.metadata.index <= cur) throw new SnapshotOutOfDateError(s.metadata.index, cur)
        for (let i = first; i <= last; i++) ops.push({ type: 'del', key: this.prefix + entryKey(i) })
        ops.push({ type: 'put', key: this.prefix + KEY_SNAPSHOT, value: encodeSnapshot(s) })
        ops.push({ type: 'put', key: this.prefix + KEY_COMPACTED, value: encodeCompacted({ index: s.metadata.index, term: s.metadata.term }) })
        first = s.metadata.index + 1
        last = s.metadata.index
      }
      let es = rd.entries
      if (es.length > 0 && es[0].index + es.length - 1 >= first) {
        if (es[0].index < first) es = es.slice(first - es[0].index)
        const start = es[0].index
        if (start > last + 1) throw new Error(`raft storage: missing log entries: appending at ${start} after last index ${last}`)
        for (let i = 0; i < es.length; i++) {
          if (es[i].index !== start + i) throw new Error('raft storage: appended entries are not contiguous')
          ops.push({ type: 'put', key: this.prefix + entryKey(es[i].index), value: encodeEntry(es[i]) })
        }
        // The conflicting suffix beyond the new entries.
        for (let i = start + es.length; i <= last; i++) ops.push({ type: 'del', key: this.prefix + entryKey(i) })
      }
      // Only entries, a snapshot, the term and the vote must be on disk before messages go out (paper
      // figure 2: currentTerm, votedFor and log[] are the persistent state). The commit index is
      // volatile state a restarted node re-learns from the leader, so a Ready that only moves it
      // writes nothing: the new commit index is kept in memory and goes to disk with the next write
      // (or at close). On a busy group that is most Readies, and each would otherwise be a LevelDB
      // batch on every replica. Except when the Ready applies a conf change: the commit index that
      // covers it is written first, so a crash cannot take back a configuration the node already
      // acted on and showed — once a removed voter is shut down, nobody could teach it again
      // (stack simulation, seed 31002061: the last voter, restarted with the older commit index,
      // waited forever for the vote of the node it had seen removed).
      const prev = this.mem.hardStateNow()
      const hs = rd.hardState ?? prev
      const appliesConfChange = holdsConfChange(rd.committedEntries ?? [])
      if (ops.length === 0 && !appliesConfChange && !mustSync({ hardState: hs, entries: [] }, prev)) {
        if (rd.hardState !== undefined) {
          this.mem.setHardState(rd.hardState)
          this.stats.commitOnlyKept++
        }
        return
      }
      if (!sameHardState(hs, this.written)) ops.push({ type: 'put', key: this.prefix + KEY_HARD_STATE, value: encodeHardState(hs) })
      await this.log.write(ops, true)
      this.written = { ...hs }
      this.stats.batches++
      this.stats.syncedBatches++
      if (rd.snapshot !== undefined) this.mem.applySnapshot(rd.snapshot)
      this.mem.append(rd.entries)
      if (rd.hardState !== undefined) this.mem.setHardState(rd.hardState)
    })
  }

  /** Records an application-made snapshot at an applied index (see MemoryStorage.createSnapshot). */
  async createSnapshot (index: number, confState: ConfState, data: Uint8Array): Promise<Snapshot> {
    return await this.serialize(async () => {
      const cur = this.mem.snapshot().metadata.index
      if (index <= cur) throw new SnapshotOutOfDateError(index, cur)
      if (index > this.mem.lastIndex()) throw new Error(`raft storage: snapshot index ${index} is after the last index ${this.mem.lastIndex()}`)
      const snap: Snapshot = { metadata: { index, term: this.mem.term(index), confState: cloneConfState(confState) }, data }
      const ops: BatchOp[] = [{ type: 'put', key: this.prefix + KEY_SNAPSHOT, value: encodeSnapshot(snap) }]
      // Invariant on disk: snapshot index <= stored commit index (the core starts only from such a
      // state). The snapshot's index is applied, so the commit index kept in memory is at least it;
      // it goes to disk in the same batch, else a crash would leave the commit index behind.
      const hs = this.mem.hardStateNow()
      if (hs.commit < index) throw new Error(`raft storage: snapshot index ${index} is after the commit index ${hs.commit}`)
      const withHardState = !sameHardState(hs, this.written) && !mutations.commitBehindSnapshot
      if (withHardState) ops.push({ type: 'put', key: this.prefix + KEY_HARD_STATE, value: encodeHardState(hs) })
      await this.log.write(ops, true)
      if (withHardState) this.written = hs
      return this.mem.createSnapshot(index, confState, data)
    })
  }

  /** Discards entries up to and including `index` (which the snapshot must cover). */
  async compact (index: number): Promise<void> {
    return await this.serialize(async () => {
      const first = this.mem.firstIndex()
      if (index < first) throw new CompactedError(index, first)
      const snapIndex = this.mem.snapshot().metadata.index
      if (index > snapIndex) throw new Error(`raft storage: compact index ${index} is after the snapshot index ${snapIndex}: create a snapshot first`)
      const ops: BatchOp[] = []
      for (let i = first; i <= index; i++) ops.push({ type: 'del', key: this.prefix + entryKey(i) })
      ops.push({ type: 'put', key: this.prefix + KEY_COMPACTED, value: encodeCompacted({ index, term: this.mem.term(index) }) })
      await this.log.write(ops, true)
      this.mem.compact(index)
    })
  }

  async close (): Promise<void> {
    if (this.closed) return
    await this.serialize(async () => {
      // the commit index kept in memory since the last write (a restart then replays up to it)
      const hs = this.mem.hardStateNow()
      if (!sameHardState(hs, this.written)) await this.log.write([{ type: 'put', key: this.prefix + KEY_HARD_STATE, value: encodeHardState(hs) }], true).catch(() => {})
      if (this.ownsLog) await this.log.close()
    })
    this.closed = true
  }
}
