/**
 * RawNode: the driver-facing API of the Raft core (after etcd's rawnode). Synchronous and pure: the
 * driver feeds ticks, messages and proposals, takes a Ready, persists / sends / applies it in the order
 * documented on Ready, and calls advance().
 */
import { encodeConfChange } from './conf-change.js'
import { assert } from './errors.js'
import { Raft } from './raft.js'
import { EntryType, MessageType, StateType } from './types.js'
import type { ConfChange, ConfState, HardState, Message, NodeId, RaftConfig, RaftStatus, Ready, SoftState } from './types.js'
import { hardStateEquals, isEmptyHardState, makeMessage } from './util.js'

export class RawNode {
  readonly raft: Raft
  /** The soft state handed out in the last Ready (a Ready carries softState only when it changed). */
  private prevSoftState: SoftState
  /** The hard state handed out in the last Ready (or restored from storage). */
  private prevHardState: HardState

  constructor (config: RaftConfig) {
    this.raft = new Raft(config)
    this.prevSoftState = this.raft.softState()
    this.prevHardState = this.raft.hardState()
  }

  tick (): void {
    this.raft.tick()
  }

  /** Steps any message: one from the network, or a local one (Hup, Beat, Prop, Unreachable …). */
  step (m: Message): void {
    this.raft.step(m)
  }

  campaign (): void {
    this.raft.step(makeMessage({ type: MessageType.Hup, from: this.raft.id }))
  }

  /**
   * Proposes an application command. Throws ProposalDropped if it cannot be accepted. Returns the
   * term its entry will carry if it is ever appended: the leader's own term, or on a follower the term
   * of the leader it is forwarded to (which appends it in no other term). Once this node applies an
   * entry of a later term without having applied the proposal, the proposal can never commit.
   */
  propose (data: Uint8Array): number {
    this.raft.step(makeMessage({
      type: MessageType.Prop,
      from: this.raft.id,
      entries: [{ term: 0, index: 0, type: EntryType.Normal, data }]
    }))
    return this.raft.term
  }

  /** Proposes a membership change. Throws ProposalDropped as propose(), and while one is pending; returns as propose(). */
  proposeConfChange (cc: ConfChange): number {
    this.raft.step(makeMessage({
      type: MessageType.Prop,
      from: this.raft.id,
      entries: [{ term: 0, index: 0, type: EntryType.ConfChange, data: encodeConfChange(cc) }]
    }))
    return this.raft.term
  }

  /**
   * Requests a linearizable read point (thesis §6.4). The result arrives as a ReadState with the same
   * (non-empty, unique) context in a later Ready; a request with no leader known is silently dropped,
   * so callers retry after a timeout.
   */
  readIndex (context: Uint8Array): void {
    assert(context.byteLength > 0, 'readIndex context must be non-empty')
    this.raft.step(makeMessage({ type: MessageType.ReadIndex, from: this.raft.id, context }))
  }

  /** Asks the leader to hand leadership to `to` (thesis §3.10). Followers forward it to the leader. */
  transferLeadership (to: NodeId): void {
    this.raft.step(makeMessage({ type: MessageType.TransferLeader, from: to, to: this.raft.id }))
  }

  /** Called by the driver when it applies a committed ConfChange entry; returns the new membership. */
  applyConfChange (cc: ConfChange): ConfState {
    return this.raft.applyConfChange(cc)
  }

  reportUnreachable (id: NodeId): void {
    this.raft.step(makeMessage({ type: MessageType.Unreachable, from: id, to: this.raft.id }))
  }

  /** The driver finished sending a snapshot to `id` (ok) or gave up (not ok). Required after every Snap. */
  reportSnapshot (id: NodeId, ok: boolean): void {
    this.raft.step(makeMessage({ type: MessageType.SnapStatus, from: id, to: this.raft.id, reject: !ok }))
  }

  hasReady (): boolean {
    const r = this.raft
    const ss = r.softState()
    if (ss.lead !== this.prevSoftState.lead || ss.state !== this.prevSoftState.state) return true
    const hs = r.hardState()
    if (!isEmptyHardState(hs) && !hardStateEquals(hs, this.prevHardState)) return true
    if (r.log.unstable.snapshot !== undefined) return true
    if (r.log.unstable.entries.length > 0) return true
    if (r.msgs.length > 0 || r.readStates.length > 0) return true
    return r.log.hasNextCommittedEntries()
  }

  /**
   * Everything to do now. The messages and read states are handed out once (they are taken from the
   * core); entries stay unstable and committed entries stay unapplied until advance(rd).
   */
  ready (): Ready {
    const r = this.raft
    const rd: Ready = {
      entries: r.log.unstable.entries.slice(),
      committedEntries: r.log.nextCommittedEntries(),
      messages: r.msgs,
      readStates: r.readStates
    }
    const ss = r.softState()
    if (ss.lead !== this.prevSoftState.lead || ss.state !== this.prevSoftState.state) {
      rd.softState = ss
      this.prevSoftState = ss
    }
    const hs = r.hardState()
    if (!isEmptyHardState(hs) && !hardStateEquals(hs, this.prevHardState)) {
      rd.hardState = hs
      this.prevHardState = hs
    }
    if (r.log.unstable.snapshot !== undefined) rd.snapshot = r.log.unstable.snapshot
    r.msgs = []
    r.readStates = []
    const lastCommitted = rd.committedEntries[rd.committedEntries.length - 1]
    if (lastCommitted !== undefined) r.log.acceptApplying(lastCommitted.index)
    return rd
  }

  /** The driver has persisted, sent and applied `rd`. */
  advance (rd: Ready): void {
    const r = this.raft
    const lastEntry = rd.entries[rd.entries.length - 1]
    if (lastEntry !== undefined) r.log.unstable.stableTo(lastEntry.index, lastEntry.term)
    if (rd.snapshot !== undefined) {
      r.log.unstable.stableSnapTo(rd.snapshot.metadata.index)
      r.log.appliedTo(rd.snapshot.metadata.index)
    }
    const lastCommitted = rd.committedEntries[rd.committedEntries.length - 1]
    if (lastCommitted !== undefined) {
      r.log.appliedTo(lastCommitted.index)
      if (r.state === StateType.Leader) r.reduceUncommittedSize(rd.committedEntries)
    }
  }

  status (): RaftStatus {
    return this.raft.status()
  }
}
