/**
 * Typed errors of the Raft core. Callers and tests match on `.name`, never on message text.
 * A broken invariant is not one of these: it is a plain Error thrown by `assert` (a bug, crash).
 */

/** A proposal (entry, conf change) was not accepted; the caller may retry later, possibly elsewhere. */
export class ProposalDroppedError extends Error {
  static readonly code = 'ProposalDropped'
  /** Why it was dropped, e.g. 'no leader', 'leader transfer in progress'. */
  readonly reason: string
  constructor (reason: string) {
    super(`raft proposal dropped: ${reason}`)
    this.name = 'ProposalDropped'
    this.reason = reason
  }
}

/** The requested index lies before the first entry still in the log (it was compacted into a snapshot). */
export class CompactedError extends Error {
  static readonly code = 'Compacted'
  readonly index: number
  readonly firstIndex: number
  constructor (index: number, firstIndex: number) {
    super(`raft log index ${index} is compacted (first available index is ${firstIndex})`)
    this.name = 'Compacted'
    this.index = index
    this.firstIndex = firstIndex
  }
}

/** The requested index lies after the last entry of the log. */
export class UnavailableError extends Error {
  static readonly code = 'Unavailable'
  readonly index: number
  readonly lastIndex: number
  constructor (index: number, lastIndex: number) {
    super(`raft log index ${index} is unavailable (last index is ${lastIndex})`)
    this.name = 'Unavailable'
    this.index = index
    this.lastIndex = lastIndex
  }
}

/** The storage cannot produce a snapshot right now; the leader retries on a later heartbeat. */
export class SnapshotTemporarilyUnavailableError extends Error {
  static readonly code = 'SnapshotTemporarilyUnavailable'
  constructor () {
    super('raft snapshot is temporarily unavailable')
    this.name = 'SnapshotTemporarilyUnavailable'
  }
}

/** A snapshot older than (or as old as) the one the storage already holds. */
export class SnapshotOutOfDateError extends Error {
  static readonly code = 'SnapshotOutOfDate'
  readonly index: number
  readonly currentIndex: number
  constructor (index: number, currentIndex: number) {
    super(`raft snapshot at index ${index} is out of date (storage holds a snapshot at ${currentIndex})`)
    this.name = 'SnapshotOutOfDate'
    this.index = index
    this.currentIndex = currentIndex
  }
}

/** Bytes that should be an encoded ConfChange are not one (a corrupt or foreign log entry). */
export class InvalidConfChangeError extends Error {
  static readonly code = 'InvalidConfChange'
  constructor (detail: string) {
    super(`invalid raft conf change: ${detail}`)
    this.name = 'InvalidConfChange'
  }
}

/** A persisted record failed its checksum or could not be decoded (LevelStorage). */
export class CorruptLogError extends Error {
  static readonly code = 'CorruptLog'
  readonly key: string
  constructor (key: string, detail: string) {
    super(`raft log record ${key} is corrupt: ${detail}`)
    this.name = 'CorruptLog'
    this.key = key
  }
}

/** Asserts an invariant of the core; a failure is a bug, never an operating error. */
export function assert (condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(`raft invariant violated: ${message}`)
}
