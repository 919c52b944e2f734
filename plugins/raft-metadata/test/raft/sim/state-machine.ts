/**
 * The tiny deterministic state machine each simulated node applies committed entries to: the ordered
 * list of client writes it applied (each write is a unique id), with its own applied index and a
 * fingerprint chained over every applied entry (writes, leader no-ops and membership changes alike), so
 * two nodes at the same applied index must have the same fingerprint.
 */
import { fnvBytes, fnvInt } from './hash.js'
import { EntryType } from './raft-api.js'
import type { Entry, Snapshot } from './raft-api.js'

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** Client writes are encoded as `w:<id>`; anything else (e.g. an empty no-op) is not a write. */
export function encodeWrite (writeId: string): Uint8Array {
  return encoder.encode(`w:${writeId}`)
}

export function decodeWrite (data: Uint8Array): string | undefined {
  if (data.length < 2 || data[0] !== 0x77 || data[1] !== 0x3a) return undefined
  return decoder.decode(data.subarray(2))
}

/** Hash of an entry's content (type and data), independent of its index and term. */
export function entryHash (e: Entry): number {
  return fnvBytes(e.data, fnvInt(e.type))
}

interface SnapshotData {
  index: number
  term: number
  fingerprint: number
  writes: string[]
}

export class StateMachine {
  /** Index of the last entry applied; entries are applied in order with no gaps. */
  appliedIndex = 0
  appliedTerm = 0
  /** Chained hash of every applied entry (index, term, content). */
  fingerprint = 0
  /** Writes in the order applied (a write proposed twice may be applied twice: Raft is at-least-once). */
  readonly writes: string[] = []
  private readonly writeSet = new Set<string>()

  /** Applies one committed entry and returns the write id it carried, if any. */
  apply (e: Entry, hash: number): string | undefined {
    if (e.index !== this.appliedIndex + 1) {
      throw new Error(`state machine: applying index ${e.index} after ${this.appliedIndex}`)
    }
    this.appliedIndex = e.index
    this.appliedTerm = e.term
    this.fingerprint = fnvInt(hash, fnvInt(e.term, fnvInt(e.index, this.fingerprint)))
    const w = e.type === EntryType.Normal ? decodeWrite(e.data) : undefined
    if (w !== undefined) {
      this.writes.push(w)
      this.writeSet.add(w)
    }
    return w
  }

  has (writeId: string): boolean {
    return this.writeSet.has(writeId)
  }

  snapshotData (): Uint8Array {
    const d: SnapshotData = { index: this.appliedIndex, term: this.appliedTerm, fingerprint: this.fingerprint, writes: this.writes }
    return encoder.encode(JSON.stringify(d))
  }

  /**
   * The state a snapshot holds. A snapshot with empty data is a group's genesis (the initial
   * membership at index 1, see MemoryStorage): an empty state at that index.
   */
  static restore (snap: Snapshot): StateMachine {
    const sm = new StateMachine()
    if (snap.data.length === 0) {
      sm.appliedIndex = snap.metadata.index
      sm.appliedTerm = snap.metadata.term
      return sm
    }
    const d = JSON.parse(decoder.decode(snap.data)) as SnapshotData
    sm.appliedIndex = d.index
    sm.appliedTerm = d.term
    sm.fingerprint = d.fingerprint
    for (const w of d.writes) {
      sm.writes.push(w)
      sm.writeSet.add(w)
    }
    return sm
  }
}
