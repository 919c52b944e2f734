/**
 * MemoryStorage: the Storage of tests and of the simulator, and the in-memory copy LevelStorage serves
 * reads from. The driver writes it in the order a Ready prescribes (snapshot, entries, hard state).
 */
import { cloneConfState } from './conf-change.js'
import { CompactedError, SnapshotOutOfDateError, UnavailableError, assert } from './errors.js'
import { EMPTY_HARD_STATE, limitSize } from './util.js'
import type { ConfState, Entry, HardState, Snapshot, Storage } from './types.js'

/** The parts of a persisted log, used to rebuild a MemoryStorage after a restart (LevelStorage). */
export interface StorageParts {
  hardState: HardState
  snapshot: Snapshot
  /** Index and term of the last compacted entry (<= snapshot.metadata.index). */
  compacted: { index: number, term: number }
  /** Entries from compacted.index + 1 on, contiguous. */
  entries: Entry[]
}

/**
 * A brand-new group's bootstrap: the initial membership is the "genesis" snapshot at index 1, term 1
 * (like etcd's bootstrap, which commits the initial configuration at term 1). Every founding node starts
 * with the same genesis, so their logs match; a node that joins later starts empty and receives the
 * genesis or a later snapshot from the leader, so it always learns the full membership.
 */
export const GENESIS_INDEX = 1
export const GENESIS_TERM = 1

export class MemoryStorage implements Storage {
  /** The last persisted hard state. */
  private hardState: HardState
  /**
   * The newest snapshot; ents[0].index <= its index <= lastIndex() (only entries a snapshot covers are
   * compacted; entries after the compaction point may be kept for lagging followers).
   */
  private snap: Snapshot
  /**
   * ents[0] is a dummy holding the index and term of the last compacted entry (firstIndex() - 1);
   * ents[i].index === ents[0].index + i for all i (contiguous).
   */
  private ents: Entry[]

  constructor (init?: { confState?: ConfState }) {
    const cs = init?.confState
    if (cs !== undefined && cs.voters.length > 0) {
      this.snap = {
        metadata: { index: GENESIS_INDEX, term: GENESIS_TERM, confState: cloneConfState(cs) },
        data: new Uint8Array(0)
      }
      this.hardState = { term: GENESIS_TERM, vote: '', commit: GENESIS_INDEX }
      this.ents = [dummy(GENESIS_INDEX, GENESIS_TERM)]
    } else {
      this.snap = { metadata: { index: 0, term: 0, confState: { voters: [], learners: [] } }, data: new Uint8Array(0) }
      this.hardState = { ...EMPTY_HARD_STATE }
      this.ents = [dummy(0, 0)]
    }
  }

  /** Rebuilds a storage from persisted parts (LevelStorage.open). */
  static fromParts (p: StorageParts): MemoryStorage {
    const s = new MemoryStorage()
    assert(p.compacted.index <= p.snapshot.metadata.index, 'compacted index is after the snapshot index')
    s.hardState = { ...p.hardState }
    s.snap = p.snapshot
    s.ents = [dummy(p.compacted.index, p.compacted.term)]
    for (const e of p.entries) {
      assert(e.index === s.lastIndex() + 1, `persisted entries are not contiguous at index ${e.index}`)
      s.ents.push(e)
    }
    return s
  }

  initialState (): { hardState: HardState, confState: ConfState } {
    return { hardState: { ...this.hardState }, confState: cloneConfState(this.snap.metadata.confState) }
  }

  hardStateNow (): HardState {
    return { ...this.hardState }
  }

  setHardState (hs: HardState): void {
    this.hardState = { ...hs }
  }

  /** Entries in [lo, hi), at most maxSize bytes (entrySize) but at least one if any. */
  entries (lo: number, hi: number, maxSize?: number): Entry[] {
    const offset = this.ents[0].index
    if (lo <= offset) throw new CompactedError(lo, offset + 1)
    if (hi > this.lastIndex() + 1) throw new UnavailableError(hi - 1, this.lastIndex())
    if (lo >= hi) return []
    return limitSize(this.ents.slice(lo - offset, hi - offset), maxSize)
  }

  term (i: number): number {
    const offset = this.ents[0].index
    if (i < offset) throw new CompactedError(i, offset + 1)
    if (i - offset >= this.ents.length) throw new UnavailableError(i, this.lastIndex())
    return this.ents[i - offset].term
  }

  firstIndex (): number {
    return this.ents[0].index + 1
  }

  lastIndex (): number {
    return this.ents[0].index + this.ents.length - 1
  }

  snapshot (): Snapshot {
    return this.snap
  }

  /** Replaces the whole log with the snapshot (a follower restoring a snapshot from its leader). */
  applySnapshot (snap: Snapshot): void {
    const cur = this.snap.metadata.index
    if (snap.metadata.index <= cur) throw new SnapshotOutOfDateError(snap.metadata.index, cur)
    this.snap = snap
    this.ents = [dummy(snap.metadata.index, snap.metadata.term)]
  }

  /**
   * An application-made snapshot of its state at `index` (which it has applied). Does not compact;
   * call compact() afterwards to drop the entries it covers.
   */
  createSnapshot (index: number, confState: ConfState, data: Uint8Array): Snapshot {
    if (index <= this.snap.metadata.index) throw new SnapshotOutOfDateError(index, this.snap.metadata.index)
    if (index > this.lastIndex()) {
      throw new Error(`raft storage: snapshot index ${index} is after the last index ${this.lastIndex()}`)
    }
    const snap: Snapshot = {
      metadata: { index, term: this.term(index), confState: cloneConfState(confState) },
      data
    }
    this.snap = snap
    return snap
  }

  /**
   * Discards entries up to and including `index`, which a snapshot must cover (index <= the snapshot's
   * index, hence applied and committed).
   */
  compact (index: number): void {
    const offset = this.ents[0].index
    if (index <= offset) throw new CompactedError(index, offset + 1)
    if (index > this.snap.metadata.index) {
      throw new Error(`raft storage: compact index ${index} is after the snapshot index ${this.snap.metadata.index}: create a snapshot first`)
    }
    if (index > this.lastIndex()) {
      throw new Error(`raft storage: compact index ${index} is after the last index ${this.lastIndex()}`)
    }
    if (index > this.hardState.commit) {
      throw new Error(`raft storage: compact index ${index} is after the persisted commit ${this.hardState.commit}`)
    }
    const i = index - offset
    const head = dummy(this.ents[i].index, this.ents[i].term)
    this.ents = [head, ...this.ents.slice(i + 1)]
  }

  /**
   * Appends entries, first discarding any suffix of the log from the first new index on (a conflicting
   * suffix the leader overwrote, paper §5.3). Entries already compacted are skipped.
   */
  append (entries: Entry[]): void {
    if (entries.length === 0) return
    const first = this.firstIndex()
    const last = entries[0].index + entries.length - 1
    if (last < first) return
    let es = entries
    if (first > es[0].index) es = es.slice(first - es[0].index)
    const offset = es[0].index - this.ents[0].index
    if (offset > this.ents.length) {
      throw new Error(`raft storage: missing log entries: appending at ${es[0].index} after last index ${this.lastIndex()}`)
    }
    for (let i = 1; i < es.length; i++) {
      assert(es[i].index === es[0].index + i, 'appended entries are not contiguous')
    }
    this.ents = this.ents.slice(0, offset).concat(es)
  }
}

function dummy (index: number, term: number): Entry {
  return { index, term, type: 0, data: new Uint8Array(0) }
}
