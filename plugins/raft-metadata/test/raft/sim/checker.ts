/**
 * The property checker. It knows nothing about RawNode: the simulator (or a test feeding it a made-up
 * history) reports observations, and every observation is checked against what was seen before. A
 * broken property throws SimViolation at once, so the failing step is the step that broke it.
 *
 * Global knowledge it keeps:
 *  - leaderOfTerm: term → the one node seen leading it (election safety);
 *  - logKeys: (index, term) → entry hash and the term of the entry before it, over every entry any node
 *    ever persisted. If two logs share (i, t) but differ below i, the highest differing index j < i has
 *    either a different entry at (j, t') or a different prevTerm at (j+1, t''): so uniqueness of these two
 *    values is exactly log matching (Raft §5.3), checked in O(1) per appended entry;
 *  - committed: index → entry (term, hash) and the term in which it was known committed (an upper bound
 *    on the real commit term, which keeps the leader-completeness check sound);
 *  - applied: index → entry and state fingerprint after applying it (state machine safety);
 *  - acked writes in acknowledgement order, for read linearizability.
 */
import { SimViolation, type Property } from './errors.js'

export interface CheckContext {
  seed: number
  /** The number of the step being checked. */
  step: () => number
  /** The last lines of the trace, for the violation report. */
  traceTail: () => string[]
}

/** What the checker needs to see of one node's log (persisted entries, plus its snapshot boundary). */
export interface LogView {
  /** Entries below this index are compacted into the node's snapshot. */
  firstIndex: () => number
  lastIndex: () => number
  /** The entry's term and hash, or undefined if the log has no entry at i (i ≥ firstIndex). */
  entryAt: (i: number) => { term: number, hash: number } | undefined
}

interface CommittedEntry {
  term: number
  hash: number
  /** A term in which the entry was already committed (≥ the term it was really committed in). */
  commitTerm: number
}

interface AppliedEntry {
  term: number
  hash: number
  fingerprint: number
  node: string
}

interface PendingRead {
  node: string
  /** How many writes were acknowledged when the read was issued. */
  ackedAtIssue: number
}

/** Key of (index, term) in one number; terms stay far below 2^20 in any simulated run. */
function key (index: number, term: number): number {
  return index * 1048576 + term
}

export class Checker {
  private readonly ctx: CheckContext
  private readonly leaderOfTerm = new Map<number, string>()
  private readonly logKeys = new Map<number, { hash: number, prevTerm: number, node: string }>()
  private readonly committed = new Map<number, CommittedEntry>()
  private readonly applied = new Map<number, AppliedEntry>()
  private readonly nodeApplied = new Map<string, number>()
  private readonly nodeCommit = new Map<string, number>()
  private readonly currentLeaders = new Map<string, { term: number, log: LogView }>()
  private readonly acked: string[] = []
  private readonly ackedSet = new Set<string>()
  private readonly reads = new Map<string, PendingRead>()

  /** Number of distinct (term, leader) pairs seen. */
  elections = 0
  readsChecked = 0

  constructor (ctx: CheckContext) {
    this.ctx = ctx
  }

  fail (property: Property, detail: string): never {
    throw new SimViolation(property, this.ctx.seed, this.ctx.step(), detail, this.ctx.traceTail())
  }

  // ---- election safety and leader completeness ----

  /**
   * `node` is leader of `term` right now. Checks that no other node led that term and, the first time
   * the pair is seen, that its log holds every entry committed in an earlier term.
   */
  observeLeader (node: string, term: number, log: LogView): void {
    const prev = this.leaderOfTerm.get(term)
    if (prev !== undefined && prev !== node) {
      this.fail('election-safety', `two leaders in term ${term}: ${prev} and ${node}`)
    }
    const cur = this.currentLeaders.get(node)
    this.currentLeaders.set(node, { term, log })
    if (prev === undefined) {
      this.leaderOfTerm.set(term, node)
      this.elections++
    }
    if (cur?.term === term) return
    for (const [index, c] of this.committed) {
      if (c.commitTerm < term) this.checkHas(node, term, log, index, c)
    }
  }

  /** `node` is no longer leader (stepped down, crashed or was observed in another state). */
  observeNotLeader (node: string): void {
    this.currentLeaders.delete(node)
  }

  private checkHas (node: string, term: number, log: LogView, index: number, c: CommittedEntry): void {
    if (index < log.firstIndex()) return // in the leader's snapshot; snapshots are checked on install
    const e = log.entryAt(index)
    if (e === undefined) {
      this.fail('leader-completeness', `leader ${node} of term ${term} lacks entry ${index} (term ${c.term}) ` +
        `committed by term ${c.commitTerm}; its log is [${log.firstIndex()}, ${log.lastIndex()}]`)
    }
    if (e.term !== c.term || e.hash !== c.hash) {
      this.fail('leader-completeness', `leader ${node} of term ${term} has entry ${index} with term ${e.term} ` +
        `hash ${e.hash}, but entry ${index} term ${c.term} hash ${c.hash} was committed by term ${c.commitTerm}`)
    }
  }

  // ---- log matching ----

  /** `node` persisted entry (index, term) whose predecessor in its log has term `prevTerm` (-1: unknown). */
  observeAppend (node: string, index: number, term: number, hash: number, prevTerm: number): void {
    const k = key(index, term)
    const seen = this.logKeys.get(k)
    if (seen === undefined) {
      this.logKeys.set(k, { hash, prevTerm, node })
      return
    }
    if (seen.hash !== hash) {
      this.fail('log-matching', `entry (index ${index}, term ${term}) differs: ${seen.node} has hash ${seen.hash}, ` +
        `${node} has hash ${hash}`)
    }
    if (prevTerm >= 0 && seen.prevTerm >= 0 && prevTerm !== seen.prevTerm) {
      this.fail('log-matching', `entry (index ${index}, term ${term}) follows term ${seen.prevTerm} on ${seen.node} ` +
        `but term ${prevTerm} on ${node}: the logs differ at index ${index - 1}`)
    }
    if (seen.prevTerm < 0 && prevTerm >= 0) seen.prevTerm = prevTerm
  }

  // ---- commit ----

  /** `node` persisted a hard state with this commit index; checks it only grows and stays in its log. */
  observeCommitIndex (node: string, commit: number, lastIndex: number): void {
    const before = this.nodeCommit.get(node) ?? 0
    if (commit < before) this.fail('commit-index', `${node} persisted commit ${commit} after ${before}`)
    if (commit > lastIndex) this.fail('commit-index', `${node} persisted commit ${commit} beyond its last index ${lastIndex}`)
    this.nodeCommit.set(node, commit)
  }

  /** A node restarted from its disk, or its disk was replaced: its commit history starts over. */
  resetNode (node: string): void {
    this.nodeApplied.delete(node)
    this.currentLeaders.delete(node)
  }

  /** Entry (index, term, hash) is committed; `commitTerm` is a term in which it already was. */
  observeCommitted (index: number, term: number, hash: number, commitTerm: number): void {
    const c = this.committed.get(index)
    if (c !== undefined) {
      if (c.term !== term || c.hash !== hash) {
        this.fail('state-machine-safety', `two different entries committed at index ${index}: ` +
          `term ${c.term} hash ${c.hash}, then term ${term} hash ${hash}`)
      }
      if (commitTerm < c.commitTerm) c.commitTerm = commitTerm
      return
    }
    const entry = { term, hash, commitTerm }
    this.committed.set(index, entry)
    for (const [node, l] of this.currentLeaders) {
      if (l.term > commitTerm) this.checkHas(node, l.term, l.log, index, entry)
    }
  }

  isCommitted (index: number): boolean {
    return this.committed.has(index)
  }

  // ---- state machine safety ----

  /**
   * `node` applied entry (index, term, hash), giving state fingerprint `fingerprint`. Checks order (the
   * node's previous applied index is index − 1) and agreement with every other node at this index.
   */
  observeApply (node: string, index: number, term: number, hash: number, fingerprint: number, commitTerm: number): void {
    const last = this.nodeApplied.get(node)
    if (last !== undefined && index !== last + 1) {
      this.fail('apply-order', `${node} applied index ${index} right after ${last}`)
    }
    this.nodeApplied.set(node, index)
    const a = this.applied.get(index)
    if (a === undefined) {
      this.applied.set(index, { term, hash, fingerprint, node })
    } else if (a.term !== term || a.hash !== hash) {
      this.fail('state-machine-safety', `index ${index}: ${a.node} applied term ${a.term} hash ${a.hash}, ` +
        `${node} applied term ${term} hash ${hash}`)
    } else if (a.fingerprint !== fingerprint) {
      this.fail('state-machine-safety', `index ${index}: state after applying differs between ${a.node} ` +
        `(${a.fingerprint}) and ${node} (${fingerprint})`)
    }
    this.observeCommitted(index, term, hash, commitTerm)
  }

  /**
   * `node` restored its state machine from a snapshot at `index` with state fingerprint `fingerprint`
   * (`restart`: while restarting from its own disk, rather than a snapshot received from a leader).
   */
  observeRestore (node: string, index: number, fingerprint: number, restart: boolean): void {
    const last = this.nodeApplied.get(node)
    if (!restart && last !== undefined && index <= last) {
      this.fail('apply-order', `${node} was handed a snapshot at ${index} but had already applied ${last}`)
    }
    const a = this.applied.get(index)
    if (index > 0 && a !== undefined && a.fingerprint !== fingerprint) {
      this.fail('state-machine-safety', `${node} restored a snapshot at ${index} whose state (${fingerprint}) ` +
        `differs from what ${a.node} applied (${a.fingerprint})`)
    }
    this.nodeApplied.set(node, index)
  }

  // ---- client writes and linearizable reads ----

  /** A client got the answer that its write was applied. */
  observeWriteAcked (writeId: string): void {
    if (this.ackedSet.has(writeId)) return
    this.ackedSet.add(writeId)
    this.acked.push(writeId)
  }

  /** A client issued a linearizable read. */
  beginRead (readId: string, node: string): void {
    this.reads.set(readId, { node, ackedAtIssue: this.acked.length })
  }

  /** The read was served on `node`, whose state contains the writes for which `has` is true. */
  completeRead (readId: string, node: string, has: (writeId: string) => boolean, appliedIndex: number): void {
    const r = this.reads.get(readId)
    if (r === undefined) this.fail('read-linearizability', `read ${readId} completed on ${node} but was never issued`)
    this.reads.delete(readId)
    for (let i = 0; i < r.ackedAtIssue; i++) {
      const w = this.acked[i]
      if (!has(w)) {
        this.fail('read-linearizability', `read ${readId} served on ${node} at applied index ${appliedIndex} misses ` +
          `write ${w}, acknowledged before the read was issued (stale read)`)
      }
    }
    this.readsChecked++
  }

  get ackedCount (): number {
    return this.acked.length
  }
}
