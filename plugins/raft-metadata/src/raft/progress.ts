/**
 * The leader's view of each member (etcd's Progress and tracker) and quorum arithmetic for a single
 * configuration (membership changes are single-server, thesis §4.1, so there is never a joint quorum).
 */
import { assert } from './errors.js'
import { ProgressStateType } from './types.js'
import type { ConfState, NodeId } from './types.js'

/** A bounded window of in-flight App messages to one follower, each remembered by its last index. */
export class Inflights {
  /** Last indexes of in-flight Apps, ascending; length <= maxCount. */
  private readonly items: Array<{ index: number, bytes: number }> = []
  /** Sum of items[].bytes. */
  private bytes = 0
  readonly maxCount: number
  /** 0 = no byte limit. */
  readonly maxBytes: number

  constructor (maxCount: number, maxBytes: number) {
    assert(maxCount > 0, 'maxInflightMsgs must be > 0')
    this.maxCount = maxCount
    this.maxBytes = maxBytes
  }

  add (index: number, bytes: number): void {
    assert(!this.full(), 'cannot add to a full inflight window')
    const last = this.items[this.items.length - 1]
    assert(last === undefined || index > last.index, `inflight index ${index} is not after ${last?.index ?? 0}`)
    this.items.push({ index, bytes })
    this.bytes += bytes
  }

  /** Frees every in-flight message whose last index is <= `to` (the follower acknowledged them). */
  freeLE (to: number): void {
    let n = 0
    while (n < this.items.length && this.items[n].index <= to) {
      this.bytes -= this.items[n].bytes
      n++
    }
    if (n > 0) this.items.splice(0, n)
  }

  freeFirstOne (): void {
    const first = this.items.shift()
    if (first !== undefined) this.bytes -= first.bytes
  }

  full (): boolean {
    return this.items.length >= this.maxCount || (this.maxBytes > 0 && this.bytes >= this.maxBytes)
  }

  count (): number {
    return this.items.length
  }

  reset (): void {
    this.items.length = 0
    this.bytes = 0
  }
}

export class Progress {
  /** Highest index known to be replicated on the follower (paper figure 2 matchIndex). */
  match: number
  /** Next index to send (paper figure 2 nextIndex); match < next always. */
  next: number
  state: ProgressStateType = ProgressStateType.Probe
  /** In Snapshot state: the index of the snapshot in flight; 0 otherwise. */
  pendingSnapshot = 0
  /** The follower responded since the last check-quorum round (thesis §6.2). The leader itself is always active. */
  recentActive = false
  /** In Probe state: an App was sent and no response came yet, so the leader waits (no flooding). */
  probeSent = false
  /** In Replicate state: the Apps sent and not yet acknowledged. */
  readonly inflights: Inflights
  /** A learner receives the log but never votes nor counts in a quorum (thesis §4.2.1). */
  isLearner: boolean

  constructor (match: number, next: number, inflights: Inflights, isLearner: boolean) {
    this.match = match
    this.next = next
    this.inflights = inflights
    this.isLearner = isLearner
  }

  private resetState (state: ProgressStateType): void {
    this.probeSent = false
    this.pendingSnapshot = 0
    this.state = state
    this.inflights.reset()
  }

  becomeProbe (): void {
    if (this.state === ProgressStateType.Snapshot) {
      // The snapshot may have been applied: probe right after it.
      const pending = this.pendingSnapshot
      this.resetState(ProgressStateType.Probe)
      this.next = Math.max(this.match + 1, pending + 1)
    } else {
      this.resetState(ProgressStateType.Probe)
      this.next = this.match + 1
    }
  }

  becomeReplicate (): void {
    this.resetState(ProgressStateType.Replicate)
    this.next = this.match + 1
  }

  becomeSnapshot (snapshotIndex: number): void {
    this.resetState(ProgressStateType.Snapshot)
    this.pendingSnapshot = snapshotIndex
  }

  /** Bookkeeping after an App carrying `count` entries (last index `lastIndex`, `bytes`) was sent. */
  sentEntries (count: number, lastIndex: number, bytes: number): void {
    switch (this.state) {
      case ProgressStateType.Replicate:
        if (count > 0) {
          // Pipelining: assume the App arrives and go on from after it (thesis §10.2.2).
          this.next = lastIndex + 1
          this.inflights.add(lastIndex, bytes)
        }
        break
      case ProgressStateType.Probe:
        this.probeSent = true
        break
      case ProgressStateType.Snapshot:
        assert(false, 'sending entries to a follower in snapshot state')
    }
  }

  /** An AppResp acknowledged index n; returns whether match advanced. */
  maybeUpdate (n: number): boolean {
    let updated = false
    if (this.match < n) {
      this.match = n
      updated = true
      this.probeSent = false
    }
    this.next = Math.max(this.next, n + 1)
    return updated
  }

  /**
   * A rejection of the App whose previous index was `rejected`; `matchHint` is where the logs may
   * match (fast back-off). Returns false when the rejection is stale (out of order).
   */
  maybeDecrTo (rejected: number, matchHint: number): boolean {
    if (this.state === ProgressStateType.Replicate) {
      // In Replicate the only acceptable rejections are of Apps after match.
      if (rejected <= this.match) return false
      this.next = this.match + 1
      return true
    }
    // In Probe, only a rejection of the App we last sent counts.
    if (this.next - 1 !== rejected) return false
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1)
    this.probeSent = false
    return true
  }

  /** Whether the leader must hold back Apps to this follower (flow control). */
  isPaused (): boolean {
    switch (this.state) {
      case ProgressStateType.Probe: return this.probeSent
      case ProgressStateType.Replicate: return this.inflights.full()
      case ProgressStateType.Snapshot: return true
    }
  }
}

export enum VoteResult { Pending, Won, Lost }

/** Membership and per-member progress of one node (leaders use progress; everyone uses the config). */
export class ProgressTracker {
  /** Voters of the current configuration (the quorum counts only these). */
  voters = new Set<NodeId>()
  /** Learners; disjoint from voters. */
  learners = new Set<NodeId>()
  /** One Progress per voter and learner (exactly the members). */
  readonly progress = new Map<NodeId, Progress>()
  /** Votes received in the current (pre-)election, voters only. */
  readonly votes = new Map<NodeId, boolean>()
  readonly maxInflight: number
  readonly maxInflightBytes: number

  constructor (maxInflight: number, maxInflightBytes: number) {
    this.maxInflight = maxInflight
    this.maxInflightBytes = maxInflightBytes
  }

  newProgress (match: number, next: number, isLearner: boolean): Progress {
    return new Progress(match, next, new Inflights(this.maxInflight, this.maxInflightBytes), isLearner)
  }

  confState (): ConfState {
    return { voters: [...this.voters].sort(), learners: [...this.learners].sort() }
  }

  isVoter (id: NodeId): boolean {
    return this.voters.has(id)
  }

  quorum (): number {
    return Math.floor(this.voters.size / 2) + 1
  }

  /**
   * The largest index replicated on a quorum of voters (paper §5.3: an entry is committed once
   * replicated on a majority). Learners are not counted (thesis §4.2.1).
   */
  committed (): number {
    if (this.voters.size === 0) return 0
    const matches: number[] = []
    for (const id of this.voters) matches.push(this.progress.get(id)?.match ?? 0)
    matches.sort((a, b) => b - a)
    return matches[this.quorum() - 1]
  }

  recordVote (id: NodeId, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted)
  }

  resetVotes (): void {
    this.votes.clear()
  }

  /** Paper §5.2: a candidate wins with votes from a majority of voters, loses once that is impossible. */
  voteResult (): { result: VoteResult, granted: number, rejected: number } {
    let granted = 0; let rejected = 0
    for (const id of this.voters) {
      const v = this.votes.get(id)
      if (v === true) granted++
      else if (v === false) rejected++
    }
    const q = this.quorum()
    if (granted >= q) return { result: VoteResult.Won, granted, rejected }
    if (rejected > this.voters.size - q) return { result: VoteResult.Lost, granted, rejected }
    return { result: VoteResult.Pending, granted, rejected }
  }

  /** Whether a quorum of voters is in `acked`. */
  hasQuorum (acked: Set<NodeId>): boolean {
    let n = 0
    for (const id of this.voters) if (acked.has(id)) n++
    return n >= this.quorum()
  }

  /** Check-quorum (thesis §6.2): whether a quorum of voters responded recently. */
  quorumActive (self: NodeId): boolean {
    let n = 0
    for (const id of this.voters) {
      if (id === self || this.progress.get(id)?.recentActive === true) n++
    }
    return n >= this.quorum()
  }
}
