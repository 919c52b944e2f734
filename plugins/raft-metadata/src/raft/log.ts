/**
 * The Raft log of one node: the part the driver has persisted (Storage) followed by an unstable tail
 * (entries, or a snapshot, that the core has accepted but the driver has not yet persisted).
 *
 *        snapshot/compacted | stable entries (storage)  | unstable entries (core)
 *   ... firstIndex-1        | firstIndex .. offset-1     | offset .. lastIndex
 *
 * applied <= committed <= lastIndex always; committed only grows (paper figure 2).
 */
import { CompactedError, UnavailableError, assert } from './errors.js'
import { limitSize } from './util.js'
import type { Entry, Snapshot, Storage } from './types.js'

/** Entries and/or a snapshot not yet persisted by the driver. */
export class Unstable {
  /** A snapshot received from the leader and not yet persisted; it precedes `entries`. */
  snapshot: Snapshot | undefined
  /** Not yet persisted entries; entries[i].index === offset + i. */
  entries: Entry[] = []
  /** Index of entries[0] (or of the next entry to come when entries is empty). */
  offset: number

  constructor (offset: number) {
    this.offset = offset
  }

  maybeFirstIndex (): number | undefined {
    return this.snapshot !== undefined ? this.snapshot.metadata.index + 1 : undefined
  }

  maybeLastIndex (): number | undefined {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1
    if (this.snapshot !== undefined) return this.snapshot.metadata.index
    return undefined
  }

  maybeTerm (i: number): number | undefined {
    if (i < this.offset) {
      if (this.snapshot !== undefined && this.snapshot.metadata.index === i) return this.snapshot.metadata.term
      return undefined
    }
    const last = this.maybeLastIndex()
    if (last === undefined || i > last) return undefined
    return this.entries[i - this.offset].term
  }

  /** The driver persisted entries up to (i, t): drop them from the tail, unless the tail was rewritten since. */
  stableTo (i: number, t: number): void {
    const gt = this.maybeTerm(i)
    if (gt === undefined || gt !== t || i < this.offset) return
    this.entries = this.entries.slice(i + 1 - this.offset)
    this.offset = i + 1
  }

  stableSnapTo (i: number): void {
    if (this.snapshot !== undefined && this.snapshot.metadata.index === i) this.snapshot = undefined
  }

  restore (s: Snapshot): void {
    this.offset = s.metadata.index + 1
    this.entries = []
    this.snapshot = s
  }

  /** Appends, replacing any entries from ents[0].index on (a conflicting suffix, paper §5.3). */
  truncateAndAppend (ents: Entry[]): void {
    const after = ents[0].index
    if (after === this.offset + this.entries.length) {
      this.entries = this.entries.concat(ents)
    } else if (after <= this.offset) {
      // The new entries replace everything unstable and part of the stable log: the driver's
      // storage.append truncates the stable suffix when it persists them.
      this.offset = after
      this.entries = ents.slice()
    } else {
      this.entries = this.entries.slice(0, after - this.offset).concat(ents)
    }
  }

  slice (lo: number, hi: number): Entry[] {
    assert(lo >= this.offset && hi <= this.offset + this.entries.length && lo <= hi,
      `unstable slice [${lo},${hi}) out of [${this.offset},${this.offset + this.entries.length})`)
    return this.entries.slice(lo - this.offset, hi - this.offset)
  }
}

export class RaftLog {
  readonly storage: Storage
  readonly unstable: Unstable
  /** Highest index known to be committed (paper figure 2 commitIndex); never decreases. */
  committed: number
  /** Highest index handed to the application in a Ready (applied <= applying <= committed). */
  applying: number
  /** Highest index the application has applied (acknowledged by advance); applied <= committed. */
  applied: number
  /** Bound on the bytes of committed entries handed out in one Ready. */
  readonly maxApplyingSize: number

  constructor (storage: Storage, maxApplyingSize: number) {
    this.storage = storage
    this.maxApplyingSize = maxApplyingSize
    const first = storage.firstIndex()
    const last = storage.lastIndex()
    this.unstable = new Unstable(last + 1)
    // Everything up to the snapshot is committed and applied (the state machine restarts from it).
    // Entries between the compaction point and the snapshot may still be in the log.
    const base = Math.max(first - 1, storage.snapshot().metadata.index)
    assert(base <= last, `snapshot index ${base} is after the last index ${last}`)
    this.committed = base
    this.applying = base
    this.applied = base
  }

  firstIndex (): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex()
  }

  lastIndex (): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex()
  }

  lastTerm (): number {
    const t = this.termOrUndefined(this.lastIndex())
    assert(t !== undefined, `term of the last index ${this.lastIndex()} is unknown`)
    return t
  }

  /** Term of entry i; undefined if i is compacted (before firstIndex - 1) or after lastIndex. */
  termOrUndefined (i: number): number | undefined {
    const dummyIndex = this.firstIndex() - 1
    if (i < dummyIndex || i > this.lastIndex()) return undefined
    const t = this.unstable.maybeTerm(i)
    if (t !== undefined) return t
    try {
      return this.storage.term(i)
    } catch (err) {
      if ((err as Error).name === 'Compacted' || (err as Error).name === 'Unavailable') return undefined
      throw err
    }
  }

  /** Term of entry i; throws Compacted or Unavailable. */
  term (i: number): number {
    const t = this.termOrUndefined(i)
    if (t !== undefined) return t
    if (i < this.firstIndex() - 1) throw new CompactedError(i, this.firstIndex())
    throw new UnavailableError(i, this.lastIndex())
  }

  matchTerm (i: number, t: number): boolean {
    return this.termOrUndefined(i) === t
  }

  /**
   * Paper §5.3 / figure 2 AppendEntries receiver: if our log has an entry at `index` with term
   * `logTerm`, append `ents` (deleting a conflicting suffix), advance commit to
   * min(leaderCommit, index of the last new entry), and return that last new index. Otherwise
   * undefined (the caller rejects).
   */
  maybeAppend (index: number, logTerm: number, leaderCommit: number, ents: Entry[]): number | undefined {
    if (!this.matchTerm(index, logTerm)) return undefined
    const lastNew = index + ents.length
    const ci = this.findConflict(ents)
    if (ci !== 0) {
      assert(ci > this.committed, `entry ${ci} conflicts with the committed prefix (committed ${this.committed})`)
      const offset = index + 1
      assert(ci - offset <= ents.length, 'conflict index out of the appended range')
      this.append(ents.slice(ci - offset))
    }
    this.commitTo(Math.min(leaderCommit, lastNew))
    return lastNew
  }

  /** Appends entries after (possibly overwriting) uncommitted ones; returns the new last index. */
  append (ents: Entry[]): number {
    if (ents.length === 0) return this.lastIndex()
    const after = ents[0].index - 1
    assert(after >= this.committed, `appending after ${after} would overwrite committed ${this.committed}`)
    assert(after <= this.lastIndex(), `appending at ${after + 1} leaves a gap after ${this.lastIndex()}`)
    this.unstable.truncateAndAppend(ents)
    return this.lastIndex()
  }

  /**
   * The index of the first entry of `ents` that is not in our log with the same term: 0 if all are
   * present, else either a conflicting index (<= lastIndex) or the first new one (> lastIndex).
   */
  findConflict (ents: Entry[]): number {
    for (const e of ents) {
      if (!this.matchTerm(e.index, e.term)) return e.index
    }
    return 0
  }

  /**
   * Fast back-off (thesis §5.3 optimisation): the largest index <= `index` whose term is <= `term`, with
   * that term. Every entry in (result, index] has a term > `term`, so none can match a log whose entry
   * at `index` has term `term`. Compacted indexes end the search (their entries are committed).
   */
  findConflictByTerm (index: number, term: number): { index: number, term: number } {
    let i = Math.min(index, this.lastIndex())
    for (;;) {
      const t = this.termOrUndefined(i)
      if (t === undefined) return { index: i, term: 0 }
      if (t <= term) return { index: i, term: t }
      i--
    }
  }

  /** Up to maxSize bytes of entries from i on (none when i > lastIndex). Throws Compacted. */
  entriesFrom (i: number, maxSize: number): Entry[] {
    if (i > this.lastIndex()) return []
    return this.slice(i, this.lastIndex() + 1, maxSize)
  }

  /** Entries in [lo, hi), limited to maxSize bytes (at least one). Throws Compacted if lo is compacted. */
  slice (lo: number, hi: number, maxSize?: number): Entry[] {
    if (lo >= hi) return []
    const first = this.firstIndex()
    if (lo < first) throw new CompactedError(lo, first)
    assert(hi <= this.lastIndex() + 1, `slice [${lo},${hi}) beyond last index ${this.lastIndex()}`)
    let out: Entry[] = []
    const off = this.unstable.offset
    if (lo < off) {
      out = this.storage.entries(lo, Math.min(hi, off), maxSize)
      // Storage may return fewer because of maxSize: then do not read the unstable part.
      if (out.length < Math.min(hi, off) - lo) return out
    }
    if (hi > off) {
      const u = this.unstable.slice(Math.max(lo, off), hi)
      out = out.length > 0 ? out.concat(u) : u
    }
    return limitSize(out, maxSize)
  }

  commitTo (tocommit: number): void {
    if (this.committed >= tocommit) return
    assert(tocommit <= this.lastIndex(), `commit ${tocommit} is beyond the last index ${this.lastIndex()}`)
    this.committed = tocommit
  }

  /**
   * Paper §5.4.2: a leader only commits by counting replicas an entry of its current term; the earlier
   * entries are then committed indirectly (Log Matching).
   */
  maybeCommit (maxIndex: number, term: number): boolean {
    if (maxIndex > this.committed && this.termOrUndefined(maxIndex) === term) {
      this.commitTo(maxIndex)
      return true
    }
    return false
  }

  /** Paper §5.4.1 election restriction: is a log ending at (lasti, term) at least as up-to-date as ours? */
  isUpToDate (lasti: number, term: number): boolean {
    const lt = this.lastTerm()
    return term > lt || (term === lt && lasti >= this.lastIndex())
  }

  /** Committed entries not yet handed to the application (none while a snapshot waits to be applied). */
  nextCommittedEntries (): Entry[] {
    if (this.unstable.snapshot !== undefined) return []
    const lo = Math.max(this.applying + 1, this.firstIndex())
    const hi = this.committed + 1
    if (lo >= hi) return []
    return this.slice(lo, hi, this.maxApplyingSize)
  }

  hasNextCommittedEntries (): boolean {
    if (this.unstable.snapshot !== undefined) return false
    return this.committed > Math.max(this.applying, this.firstIndex() - 1)
  }

  acceptApplying (i: number): void {
    assert(i <= this.committed, `applying ${i} beyond committed ${this.committed}`)
    if (i > this.applying) this.applying = i
  }

  appliedTo (i: number): void {
    if (i === 0 || i <= this.applied) return
    assert(i <= this.committed, `applied ${i} beyond committed ${this.committed}`)
    this.applied = i
    if (this.applying < i) this.applying = i
  }

  snapshot (): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot()
  }

  /** Replaces the log by a snapshot from the leader (paper §7: discard the entire log). */
  restore (s: Snapshot): void {
    this.committed = s.metadata.index
    this.unstable.restore(s)
  }
}
