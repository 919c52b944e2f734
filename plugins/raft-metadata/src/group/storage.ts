/**
 * What the group driver needs from its log storage: the core's synchronous Storage plus durable
 * writes. LevelStorage is one (production); `durableMemoryStorage` wraps a MemoryStorage for unit tests.
 */
import { MemoryStorage } from '../raft/index.js'
import type { ConfState, Entry, HardState, Snapshot, Storage } from '../raft/index.js'

export interface DurableStorage extends Storage {
  /**
   * Persists a Ready's snapshot, entries and hard state, durably (one fsync'd batch for LevelStorage).
   * A hard state that only moves the commit index may be kept in memory until the next write, unless
   * `committedEntries` (the entries the Ready applies) hold a conf change: then it is written too.
   */
  saveReady: (rd: { hardState?: HardState, entries: Entry[], snapshot?: Snapshot, committedEntries?: Entry[] }) => Promise<void>
  /** Records an application snapshot at an applied index. */
  createSnapshot: (index: number, confState: ConfState, data: Uint8Array) => Promise<Snapshot> | Snapshot
  /** Drops the entries up to `index` (covered by the snapshot). */
  compact: (index: number) => Promise<void> | void
}

/** A MemoryStorage with the DurableStorage writes (nothing is durable: tests only). */
export function durableMemoryStorage (mem: MemoryStorage = new MemoryStorage()): DurableStorage {
  return {
    initialState: () => mem.initialState(),
    entries: (lo, hi, maxSize) => mem.entries(lo, hi, maxSize),
    term: (i) => mem.term(i),
    firstIndex: () => mem.firstIndex(),
    lastIndex: () => mem.lastIndex(),
    snapshot: () => mem.snapshot(),
    saveReady: async (rd) => {
      if (rd.snapshot !== undefined) mem.applySnapshot(rd.snapshot)
      mem.append(rd.entries)
      if (rd.hardState !== undefined) mem.setHardState(rd.hardState)
    },
    createSnapshot: (index, confState, data) => mem.createSnapshot(index, confState, data),
    compact: (index) => { mem.compact(index) }
  }
}
