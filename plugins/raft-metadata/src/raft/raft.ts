/**
 * The Raft state machine of one node: pure and synchronous. Inputs are messages (network and local) and
 * ticks; outputs are queued in `msgs` and `readStates` and in the log's unstable tail, and leave through
 * RawNode.ready(). References: "In Search of an Understandable Consensus Algorithm" (Ongaro, Ousterhout,
 * the paper, §n) and "Consensus: Bridging Theory and Practice" (Ongaro, the thesis, thesis §n).
 *
 * The role is a swappable step function (stepLeader / stepCandidate / stepFollower) and tick function
 * (tickElection / tickHeartbeat), so each role's rules read in one place.
 */
import { applyToConfState, decodeConfChange, removesLastVoter } from './conf-change.js'
import {
  CAMPAIGN_TRANSFER_CONTEXT, DEFAULT_MAX_COMMITTED_SIZE_PER_READY, DEFAULT_MAX_INFLIGHT_BYTES,
  DEFAULT_MAX_INFLIGHT_MSGS, DEFAULT_MAX_PENDING_READ_INDEX, DEFAULT_MAX_SIZE_PER_MSG,
  DEFAULT_MAX_UNCOMMITTED_SIZE, MAX_QUEUED_MESSAGES
} from './constants.js'
import { ProposalDroppedError, assert } from './errors.js'
import { RaftLog } from './log.js'
import { ProgressTracker, VoteResult } from './progress.js'
import { ReadOnly } from './read-only.js'
import { ConfChangeType, EntryType, MessageType, ProgressStateType, StateType } from './types.js'
import type {
  ConfChange, ConfState, Entry, HardState, Message, ProgressStatus, RaftConfig, RaftStatus, ReadState, Snapshot,
  SoftState
} from './types.js'
import { bytesEqual, entrySize, holdsConfChange, isEmptyHardState, makeMessage, payloadSize } from './util.js'

type StepFn = (r: Raft, m: Message) => void
type TickFn = (r: Raft) => void

enum CampaignType { PreElection, Election, Transfer }

const EMPTY = new Uint8Array(0)

export class Raft {
  readonly id: string
  /** Paper figure 2 currentTerm: the latest term this node has seen; never decreases. */
  term = 0
  /** Paper figure 2 votedFor: whom this node voted for in `term`; '' if nobody (reset when term changes). */
  vote = ''
  readonly log: RaftLog
  /** Membership and (on the leader) each member's replication progress. */
  readonly trk: ProgressTracker
  state: StateType = StateType.Follower
  /** The leader of `term` as far as this node knows; '' when unknown. Equals `id` iff state is Leader. */
  lead = ''
  /** Whether this node is a learner in its current configuration (it then never campaigns). */
  isLearner = false
  /** Messages to send, in order; the driver sends them after persisting the Ready that carries them. */
  msgs: Message[] = []
  /** Completed ReadIndex requests of this node, handed out in the next Ready. */
  readStates: ReadState[] = []
  /** Leader only: the node leadership is being transferred to (thesis §3.10); '' when none. */
  leadTransferee = ''
  /**
   * Leader only: the log index of the latest conf change (or of the leader's first no-op); a new conf
   * change may be proposed only once it is applied (one change at a time, thesis §4.1, and only after
   * the leader committed an entry of its term: Ongaro's fix to single-server changes, raft-dev 2015).
   */
  pendingConfIndex = 0
  /**
   * Leader only: the index of a conf change that takes this node out of the voters (it steps down
   * when it applies it, thesis §4.2.2), 0 when none. Until then it appends nothing else: its
   * followers may never learn that the change committed, and an old leader whose log ran past the
   * change would refuse the vote of every follower that still counts it as a voter (they would need
   * it), so the group could never elect a leader again.
   */
  leavingIndex = 0
  /** Leader only: payload bytes of entries appended in this term and not yet applied. */
  uncommittedSize = 0
  /** Leader only: ReadIndex requests waiting for their heartbeat quorum. */
  readonly readOnly: ReadOnly
  /** Leader only: ReadIndex requests that arrived before the leader committed an entry of its term (thesis §6.4 step 1). */
  pendingReadIndexMessages: Message[] = []
  /**
   * Followers and candidates: ticks since the last valid message from a leader or the last vote
   * granted. Leader: ticks since the last check-quorum round.
   */
  electionElapsed = 0
  /** Leader only: ticks since the last heartbeat broadcast. */
  heartbeatElapsed = 0
  /** config.electionTick: the base election timeout in ticks (> heartbeatTimeout). */
  readonly electionTimeout: number
  /** config.heartbeatTick: ticks between a leader's heartbeats (> 0). */
  readonly heartbeatTimeout: number
  /** In [electionTimeout, 2*electionTimeout), drawn from config.rand on every role change (paper §5.2). */
  randomizedElectionTimeout = 0
  /** Thesis §6.2 check-quorum, and the vote lease of thesis §4.2.3. */
  readonly checkQuorum: boolean
  /** Thesis §9.6 pre-vote. */
  readonly preVote: boolean
  /** Bytes of entries (entrySize) per App message; at least one entry is always sent. */
  readonly maxMsgSize: number
  /** Bound on uncommittedSize; proposals beyond it are dropped. */
  readonly maxUncommittedSize: number
  /** Bound on pendingReadIndexMessages and on the ReadOnly queue. */
  readonly maxPendingReadIndex: number
  /** The only source of randomness (seeded by the driver, so runs replay). */
  private readonly rand: () => number
  /** The current role's message handler. */
  private stepFn: StepFn = stepFollower
  /** The current role's tick handler. */
  private tickFn: TickFn = tickElection

  constructor (c: RaftConfig) {
    assert(typeof c.id === 'string' && c.id.length > 0, 'config.id must be a non-empty string')
    assert(Number.isInteger(c.heartbeatTick) && c.heartbeatTick > 0, 'config.heartbeatTick must be a positive integer')
    assert(Number.isInteger(c.electionTick) && c.electionTick > c.heartbeatTick, 'config.electionTick must be an integer > heartbeatTick')
    assert(typeof c.rand === 'function', 'config.rand must be a function')
    this.id = c.id
    this.electionTimeout = c.electionTick
    this.heartbeatTimeout = c.heartbeatTick
    this.rand = c.rand
    this.checkQuorum = c.checkQuorum ?? false
    this.preVote = c.preVote ?? false
    this.maxMsgSize = c.maxSizePerMsg ?? DEFAULT_MAX_SIZE_PER_MSG
    this.maxUncommittedSize = c.maxUncommittedEntriesSize ?? DEFAULT_MAX_UNCOMMITTED_SIZE
    this.maxPendingReadIndex = c.maxPendingReadIndex ?? DEFAULT_MAX_PENDING_READ_INDEX
    this.readOnly = new ReadOnly(this.maxPendingReadIndex)
    this.trk = new ProgressTracker(c.maxInflightMsgs ?? DEFAULT_MAX_INFLIGHT_MSGS,
      c.maxInflightBytes ?? DEFAULT_MAX_INFLIGHT_BYTES)
    this.log = new RaftLog(c.storage, c.maxCommittedSizePerReady ?? DEFAULT_MAX_COMMITTED_SIZE_PER_READY)

    const { hardState, confState } = c.storage.initialState()
    this.switchToConfig(confState)
    if (!isEmptyHardState(hardState)) this.loadState(hardState)
    if (c.applied !== undefined && c.applied > 0) {
      assert(c.applied <= this.log.committed, `config.applied ${c.applied} is beyond the commit index ${this.log.committed}`)
      this.log.appliedTo(c.applied)
    }
    this.becomeFollower(this.term, '')
  }

  loadState (hs: HardState): void {
    assert(hs.commit >= this.log.committed && hs.commit <= this.log.lastIndex(),
      `hard state commit ${hs.commit} is out of range [${this.log.committed}, ${this.log.lastIndex()}]`)
    this.log.committed = hs.commit
    this.term = hs.term
    this.vote = hs.vote
  }

  // ---------------------------------------------------------------- state snapshots for Ready / status

  softState (): SoftState {
    return { lead: this.lead, state: this.state }
  }

  hardState (): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed }
  }

  status (): RaftStatus {
    const s: RaftStatus = {
      id: this.id,
      term: this.term,
      vote: this.vote,
      commit: this.log.committed,
      applied: this.log.applied,
      lead: this.lead,
      state: this.state,
      confState: this.trk.confState()
    }
    if (this.state === StateType.Leader) {
      const progress: Record<string, ProgressStatus> = {}
      for (const [id, pr] of this.trk.progress) progress[id] = { match: pr.match, next: pr.next, state: pr.state, recentActive: pr.recentActive }
      s.progress = progress
      s.leadTransferee = this.leadTransferee
    }
    return s
  }

  /** Whether this node may campaign: it is a voter of its current configuration. */
  promotable (): boolean {
    return this.trk.isVoter(this.id)
  }

  // ---------------------------------------------------------------- sending

  send (m: Message): void {
    // A forwarded TransferLeader keeps `from` = the transferee; everything else is from this node.
    if (m.type !== MessageType.TransferLeader) m.from = this.id
    if (m.type === MessageType.Vote || m.type === MessageType.VoteResp ||
        m.type === MessageType.PreVote || m.type === MessageType.PreVoteResp) {
      // Vote messages carry the term they are about (a pre-vote: the next term), set by the caller.
      assert(m.term !== 0, `${m.type} must carry a term`)
    } else if (m.type === MessageType.Prop || m.type === MessageType.ReadIndex ||
               m.type === MessageType.TransferLeader) {
      // Forwarded requests carry no term: they are not part of the protocol proper and are
      // accepted like local requests (the leader checks them itself).
      m.term = 0
    } else {
      m.term = this.term
    }
    assert(this.msgs.length < MAX_QUEUED_MESSAGES, 'message queue overflow: the driver does not call ready()')
    this.msgs.push(m)
  }

  /** Sends an App (or a Snap when the needed entries were compacted) to `to` if flow control allows. */
  maybeSendAppend (to: string, sendIfEmpty: boolean): boolean {
    const pr = this.trk.progress.get(to)
    if (pr === undefined || to === this.id || pr.isPaused()) return false
    const prevIndex = pr.next - 1
    const prevTerm = this.log.termOrUndefined(prevIndex)
    let ents: Entry[] | undefined
    if (prevTerm !== undefined) {
      try {
        ents = this.log.entriesFrom(pr.next, this.maxMsgSize)
      } catch (err) {
        if ((err as Error).name !== 'Compacted') throw err
      }
    }
    if (prevTerm === undefined || ents === undefined) {
      // Paper §7: the follower needs entries the leader discarded: send the snapshot instead.
      return this.sendSnapshot(to)
    }
    if (ents.length === 0 && !sendIfEmpty) return false
    let bytes = 0
    for (const e of ents) bytes += entrySize(e)
    // An empty App to a replicating follower whose match is already prevIndex only carries the
    // commit index: its acknowledgement would tell nothing new, so none is asked for (else every
    // commit advance would cost each follower an AppResp and the leader a step of it).
    const quiet = ents.length === 0 && pr.state === ProgressStateType.Replicate && pr.match === prevIndex
    this.send(makeMessage({
      type: MessageType.App,
      to,
      index: prevIndex,
      logTerm: prevTerm,
      entries: ents,
      commit: this.log.committed,
      ...(quiet ? { quiet } : {})
    }))
    pr.sentEntries(ents.length, prevIndex + ents.length, bytes)
    return true
  }

  sendAppend (to: string): void {
    this.maybeSendAppend(to, true)
  }

  sendSnapshot (to: string): boolean {
    const pr = this.trk.progress.get(to)
    assert(pr !== undefined, `no progress for ${to}`)
    // Only to a follower known to be alive: a snapshot is large (etcd does the same).
    if (!pr.recentActive) return false
    let snap
    try {
      snap = this.log.snapshot()
    } catch (err) {
      if ((err as Error).name === 'SnapshotTemporarilyUnavailable') return false
      throw err
    }
    assert(snap.metadata.index > 0, 'the log is compacted but the storage has no snapshot')
    pr.becomeSnapshot(snap.metadata.index)
    this.send(makeMessage({ type: MessageType.Snap, to, snapshot: snap }))
    return true
  }

  sendHeartbeat (to: string, context: Uint8Array | undefined): void {
    const pr = this.trk.progress.get(to)
    assert(pr !== undefined, `no progress for ${to}`)
    // The follower may not have the entries up to our commit yet: never tell it more than its match.
    const commit = Math.min(pr.match, this.log.committed)
    this.send(makeMessage({ type: MessageType.Heartbeat, to, commit, context }))
  }

  bcastAppend (): void {
    for (const id of this.trk.progress.keys()) {
      if (id !== this.id) this.sendAppend(id)
    }
  }

  bcastHeartbeat (context?: Uint8Array): void {
    const ctx = context ?? this.readOnly.lastPendingContext()
    for (const id of this.trk.progress.keys()) {
      if (id !== this.id) this.sendHeartbeat(id, ctx)
    }
  }

  // ---------------------------------------------------------------- role changes

  reset (term: number): void {
    if (this.term !== term) {
      this.term = term
      this.vote = ''
    }
    this.lead = ''
    this.electionElapsed = 0
    this.heartbeatElapsed = 0
    this.resetRandomizedElectionTimeout()
    this.abortLeaderTransfer()
    this.trk.resetVotes()
    const last = this.log.lastIndex()
    for (const [id, pr] of this.trk.progress) {
      const fresh = this.trk.newProgress(0, last + 1, pr.isLearner)
      if (id === this.id) fresh.match = last
      this.trk.progress.set(id, fresh)
    }
    this.pendingConfIndex = 0
    this.leavingIndex = 0
    this.uncommittedSize = 0
    this.readOnly.reset()
    this.pendingReadIndexMessages = []
  }

  /**
   * Paper §5.2: a random timeout, here in (electionTimeout, 2·electionTimeout] ticks. Starting one
   * tick past the base timeout matters with pre-vote and check-quorum: a follower grants a (pre-)vote
   * only when it has not heard from a leader for electionTimeout ticks (thesis §9.6, §4.2.3), so the
   * first follower to time out must already be past every other follower's lease — with [T, 2T) it
   * could fire one tick early and be ignored, delaying failover by a whole extra timeout.
   */
  resetRandomizedElectionTimeout (): void {
    const x = this.rand()
    assert(x >= 0 && x < 1, `config.rand returned ${x}, not in [0, 1)`)
    this.randomizedElectionTimeout = this.electionTimeout + 1 + Math.floor(x * this.electionTimeout)
  }

  becomeFollower (term: number, lead: string): void {
    this.stepFn = stepFollower
    this.tickFn = tickElection
    this.reset(term)
    this.lead = lead
    this.state = StateType.Follower
  }

  becomeCandidate (): void {
    assert(this.state !== StateType.Leader, 'a leader cannot become a candidate')
    this.stepFn = stepCandidate
    this.tickFn = tickElection
    // Paper §5.2: increment currentTerm and vote for self.
    this.reset(this.term + 1)
    this.vote = this.id
    this.state = StateType.Candidate
  }

  becomePreCandidate (): void {
    assert(this.state !== StateType.Leader, 'a leader cannot become a pre-candidate')
    // Thesis §9.6: a pre-candidate changes neither its term nor its vote.
    this.stepFn = stepCandidate
    this.tickFn = tickElection
    this.trk.resetVotes()
    this.lead = ''
    this.state = StateType.PreCandidate
  }

  becomeLeader (): void {
    assert(this.state === StateType.Candidate, `only a candidate can become leader (state ${this.state})`)
    this.stepFn = stepLeader
    this.tickFn = tickHeartbeat
    this.reset(this.term)
    this.lead = this.id
    this.state = StateType.Leader
    const self = this.trk.progress.get(this.id)
    assert(self !== undefined, 'a leader must be a member of its configuration')
    self.becomeReplicate()
    self.recentActive = true
    // Paper §5.4.2 / thesis §6.4: the leader cannot count replicas of earlier terms' entries, so it
    // appends an empty entry of its own term; committing it commits everything before it.
    const ok = this.appendEntries([{ term: 0, index: 0, type: EntryType.Normal, data: EMPTY }])
    assert(ok, 'the leader could not append its empty entry')
    this.pendingConfIndex = this.log.lastIndex()
    // A change taking this node out of the voters may already be in its log, unapplied (proposed in
    // an earlier term of its own, or of another leader): until it is applied, append nothing more
    // (see leavingIndex). Without its precondition known here, any AddLearner or RemoveNode of this
    // node counts; a change that turns out to be a no-op only delays proposals until it is applied.
    // (reset() above cleared leavingIndex.)
    const first = Math.max(this.log.applied + 1, this.log.firstIndex())
    for (const e of this.log.slice(first, this.log.lastIndex() + 1)) {
      if (e.type !== EntryType.ConfChange) continue
      let cc: ConfChange
      try {
        cc = decodeConfChange(e.data)
      } catch {
        continue
      }
      if (cc.node === this.id && cc.type !== ConfChangeType.AddVoter) this.leavingIndex = e.index
    }
  }

  // ---------------------------------------------------------------- ticks

  tick (): void {
    this.tickFn(this)
  }

  pastElectionTimeout (): boolean {
    return this.electionElapsed >= this.randomizedElectionTimeout
  }

  // ---------------------------------------------------------------- elections

  hup (transfer: boolean): void {
    if (this.state === StateType.Leader) return
    if (!this.promotable()) return
    // A committed but unapplied conf change may change who votes: wait until it is applied.
    if (this.hasUnappliedConfChanges()) return
    if (this.preVote && !transfer) this.campaign(CampaignType.PreElection)
    else this.campaign(transfer ? CampaignType.Transfer : CampaignType.Election)
  }

  hasUnappliedConfChanges (): boolean {
    let lo = Math.max(this.log.applied + 1, this.log.firstIndex())
    const hi = this.log.committed + 1
    while (lo < hi) {
      const ents = this.log.slice(lo, hi, this.log.maxApplyingSize)
      if (holdsConfChange(ents)) return true
      lo += ents.length
    }
    return false
  }

  campaign (t: CampaignType): void {
    let voteType: MessageType
    let term: number
    if (t === CampaignType.PreElection) {
      this.becomePreCandidate()
      voteType = MessageType.PreVote
      // Thesis §9.6: ask whether we could win the next term, without moving to it.
      term = this.term + 1
    } else {
      this.becomeCandidate()
      voteType = MessageType.Vote
      term = this.term
    }
    this.trk.recordVote(this.id, true)
    if (this.trk.voteResult().result === VoteResult.Won) {
      // A single voter wins at once.
      if (t === CampaignType.PreElection) this.campaign(CampaignType.Election)
      else this.becomeLeader()
      return
    }
    const lastIndex = this.log.lastIndex()
    const lastTerm = this.log.lastTerm()
    for (const id of [...this.trk.voters].sort()) {
      if (id === this.id) continue
      this.send(makeMessage({
        type: voteType,
        to: id,
        term,
        index: lastIndex,
        logTerm: lastTerm,
        context: t === CampaignType.Transfer ? CAMPAIGN_TRANSFER_CONTEXT : undefined
      }))
    }
  }

  poll (from: string, granted: boolean): VoteResult {
    this.trk.recordVote(from, granted)
    return this.trk.voteResult().result
  }

  // ---------------------------------------------------------------- step

  step (m: Message): void {
    if (!wellFormed(m)) return
    // A dropped-proposal notice (see dropProposal) is for the driver, never a proposal to forward.
    if (m.type === MessageType.Prop && m.reject) return
    if (m.term === 0) {
      // Local message (or a forwarded request): no term rules.
    } else if (m.term > this.term) {
      if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
        const force = bytesEqual(m.context, CAMPAIGN_TRANSFER_CONTEXT)
        const inLease = this.lead !== '' && this.electionElapsed < this.electionTimeout
        // Thesis §4.2.3: with check-quorum, a server that heard from a leader within the minimum
        // election timeout ignores vote requests (the leader's lease). Thesis §9.6: pre-votes are
        // granted only by servers that have not heard from a leader within that timeout.
        // A leadership transfer's campaign (thesis §3.10) is exempt: the leader asked for it.
        if (!force && inLease && (this.checkQuorum || m.type === MessageType.PreVote)) return
      }
      if (m.type === MessageType.PreVote) {
        // Thesis §9.6: a pre-vote never changes our term.
      } else if (m.type === MessageType.PreVoteResp && !m.reject) {
        // The pre-candidate moves to the new term only when it wins the pre-election.
      } else if (m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap) {
        // Paper §5.1: a higher term makes us a follower; only a leader sends these.
        this.becomeFollower(m.term, m.from)
      } else if (m.type === MessageType.Vote && !this.log.isUpToDate(m.index, m.logTerm)) {
        // Paper §5.2 (figure 2): the election timer restarts on a vote granted, not on one refused.
        // A candidate whose log is behind ours moves us to its term but keeps our timer running;
        // restarting it on every such request let a node with a stale log, campaigning again and
        // again, keep the one whose log could win from ever timing out (core simulation, seed
        // 9102767: no leader 200 ticks after the heal).
        const elapsed = this.electionElapsed
        const timeout = this.randomizedElectionTimeout
        this.becomeFollower(m.term, '')
        this.electionElapsed = elapsed
        this.randomizedElectionTimeout = timeout
      } else {
        this.becomeFollower(m.term, '')
      }
    } else if (m.term < this.term) {
      if ((this.checkQuorum || this.preVote) &&
          (m.type === MessageType.App || m.type === MessageType.Heartbeat)) {
        // A stale leader (or a node whose term we passed while partitioned, if check-quorum keeps us
        // from adopting its term through votes): answer with our term so it steps down (paper §5.1).
        this.send(makeMessage({ type: MessageType.AppResp, to: m.from }))
      } else if (m.type === MessageType.PreVote) {
        // Tell a lagging pre-candidate our term so it can catch up (thesis §9.6).
        this.send(makeMessage({ type: MessageType.PreVoteResp, to: m.from, term: this.term, reject: true }))
      } else if (m.type === MessageType.Vote) {
        // Paper §5.1: a request with a stale term is rejected, and the reply carries our term. Without
        // it a candidate whose term fell behind a voter with a stale configuration (one that will not
        // campaign towards it) never learns the term it must exceed, and no one is elected.
        this.send(makeMessage({ type: MessageType.VoteResp, to: m.from, term: this.term, reject: true }))
      }
      // Paper §5.1: otherwise a stale message is ignored.
      return
    }

    switch (m.type) {
      case MessageType.Hup:
        this.hup(false)
        return
      case MessageType.Vote:
      case MessageType.PreVote: {
        const respType = m.type === MessageType.Vote ? MessageType.VoteResp : MessageType.PreVoteResp
        // Paper §5.2: one vote per term, first come first served; a pre-vote for a future term is free.
        const canVote = this.vote === m.from ||
          (this.vote === '' && this.lead === '') ||
          (m.type === MessageType.PreVote && m.term > this.term)
        // Paper §5.4.1: only for a candidate whose log is at least as up-to-date as ours.
        if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
          this.send(makeMessage({ type: respType, to: m.from, term: m.term }))
          if (m.type === MessageType.Vote) {
            this.electionElapsed = 0
            this.vote = m.from
          }
        } else {
          // The refusal also says how far this node knows the log committed (see learnCommit).
          const c = this.log.committed
          this.send(makeMessage({ type: respType, to: m.from, term: this.term, reject: true, commit: c, logTerm: this.log.termOrUndefined(c) ?? 0 }))
        }
        return
      }
      default:
        this.stepFn(this, m)
    }
  }

  /**
   * A peer that refused a vote said it knows the log committed up to `index`, whose entry has `term`.
   * If this log holds the same entry there, its prefix up to `index` is identical (log matching,
   * paper §5.3) and so committed: the commit index moves there. Without it a voter whose config
   * lagged could wait forever: after a group shrank to one voter, the remaining voter that never
   * learnt the change committed still counts the demoted node, which — with a longer log, and no
   * longer a voter in its own view — neither grants its vote nor campaigns. Learning the commit lets
   * it apply the change and lead alone. (Not in etcd's raft; sound because "committed" is a fact
   * about the group, and only ever raised here for entries this log provably shares.)
   */
  learnCommit (index: number, term: number): void {
    // maybeCommit moves only forward, and only to an index whose entry here has `term`
    if (term !== 0) this.log.maybeCommit(index, term)
  }

  /**
   * A proposal that is not appended: a local one throws ProposalDropped; a forwarded one is answered
   * with the same Prop marked `reject`, so the follower's driver knows nothing was appended and may
   * propose it again (without the notice it would wait for an apply that never comes).
   */
  dropProposal (m: Message, reason: string): void {
    if (m.from === '' || m.from === this.id) throw new ProposalDroppedError(reason)
    if (m.reject) return // never answer a notice
    this.send(makeMessage({ type: MessageType.Prop, to: m.from, entries: m.entries, reject: true }))
  }

  // ---------------------------------------------------------------- leader helpers

  /** Appends entries of the current term to the leader's log; false if the uncommitted limit refuses them. */
  appendEntries (es: Entry[]): boolean {
    const last = this.log.lastIndex()
    const ents = es.map((e, i) => ({ term: this.term, index: last + 1 + i, type: e.type, data: e.data }))
    const size = payloadSize(ents)
    // Always accept when nothing is uncommitted, so a single large entry still makes progress.
    if (this.uncommittedSize > 0 && size > 0 && this.uncommittedSize + size > this.maxUncommittedSize) return false
    this.uncommittedSize += size
    const li = this.log.append(ents)
    const self = this.trk.progress.get(this.id)
    assert(self !== undefined, 'the leader has no progress of its own')
    self.maybeUpdate(li)
    this.maybeCommit()
    return true
  }

  reduceUncommittedSize (ents: Entry[]): void {
    this.uncommittedSize = Math.max(0, this.uncommittedSize - payloadSize(ents))
  }

  /** Advances the commit index to what a quorum holds (paper §5.3, §5.4.2); true if it moved. */
  maybeCommit (): boolean {
    if (!this.log.maybeCommit(this.trk.committed(), this.term)) return false
    this.releasePendingReadIndex()
    return true
  }

  committedEntryInCurrentTerm (): boolean {
    return this.log.termOrUndefined(this.log.committed) === this.term
  }

  private releasePendingReadIndex (): void {
    if (this.pendingReadIndexMessages.length === 0 || !this.committedEntryInCurrentTerm()) return
    const pending = this.pendingReadIndexMessages
    this.pendingReadIndexMessages = []
    for (const m of pending) this.startReadIndex(m)
  }

  /** Thesis §6.4 steps 1–2: record the commit index, then confirm leadership with a heartbeat round. */
  startReadIndex (m: Message): void {
    const context = m.context ?? EMPTY
    if (this.trk.voters.size === 1 && this.trk.isVoter(this.id)) {
      // A single voter is a quorum by itself.
      this.respondToReadIndex(this.log.committed, m.from, context)
      return
    }
    if (this.readOnly.add(this.log.committed, m.from, context)) {
      this.readOnly.recvAck(this.id, context)
      this.bcastHeartbeat(context)
    }
  }

  respondToReadIndex (index: number, from: string, context: Uint8Array): void {
    if (from === '' || from === this.id) {
      this.readStates.push({ index, context })
    } else {
      this.send(makeMessage({ type: MessageType.ReadIndexResp, to: from, index, context }))
    }
  }

  /** Passes a request on to the leader (followers: proposals, reads, transfers). */
  forward (m: Message): void {
    this.send({ ...m, to: this.lead })
  }

  sendTimeoutNow (to: string): void {
    this.send(makeMessage({ type: MessageType.TimeoutNow, to }))
  }

  abortLeaderTransfer (): void {
    this.leadTransferee = ''
  }

  // ---------------------------------------------------------------- follower helpers

  handleAppend (m: Message): void {
    if (m.index < this.log.committed) {
      // Everything up to our commit index matches the leader (Log Matching): say how far we are.
      this.send(makeMessage({ type: MessageType.AppResp, to: m.from, index: this.log.committed }))
      return
    }
    const lastNew = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries)
    if (lastNew !== undefined) {
      if (m.quiet !== true || m.entries.length > 0) this.send(makeMessage({ type: MessageType.AppResp, to: m.from, index: lastNew }))
      return
    }
    // Paper §5.3: the consistency check failed. Thesis §5.3 optimisation: also return the last
    // index that could match (our last entry at or below m.index whose term is <= m.logTerm).
    const hint = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm)
    this.send(makeMessage({
      type: MessageType.AppResp,
      to: m.from,
      index: m.index,
      reject: true,
      rejectHint: hint.index,
      logTerm: hint.term
    }))
  }

  handleHeartbeat (m: Message): void {
    this.log.commitTo(Math.min(m.commit, this.log.lastIndex()))
    this.send(makeMessage({ type: MessageType.HeartbeatResp, to: m.from, context: m.context }))
  }

  handleSnapshot (m: Message): void {
    const s = m.snapshot
    if (s === undefined) return
    if (this.restore(s)) {
      this.send(makeMessage({ type: MessageType.AppResp, to: m.from, index: this.log.lastIndex() }))
    } else {
      this.send(makeMessage({ type: MessageType.AppResp, to: m.from, index: this.log.committed }))
    }
  }

  /** Paper §7: install a leader's snapshot unless our log already covers it. */
  restore (s: Snapshot): boolean {
    const { index, term } = s.metadata
    if (index <= this.log.committed) return false
    if (this.log.matchTerm(index, term)) {
      // Our log has the snapshot's last entry: keep the log, just learn that it is committed.
      this.log.commitTo(index)
      return false
    }
    this.log.restore(s)
    this.switchToConfig(s.metadata.confState)
    const last = this.log.lastIndex()
    for (const [id, pr] of this.trk.progress) {
      this.trk.progress.set(id, this.trk.newProgress(id === this.id ? last : 0, last + 1, pr.isLearner))
    }
    return true
  }

  // ---------------------------------------------------------------- membership

  /** Applies a committed conf change (called by the driver when it applies the entry). */
  applyConfChange (cc: ConfChange): ConfState {
    const next = applyToConfState(this.trk.confState(), cc)
    this.switchToConfig(next)
    return this.trk.confState()
  }

  switchToConfig (cs: ConfState): void {
    const voters = new Set(cs.voters)
    const learners = new Set(cs.learners)
    for (const l of learners) assert(!voters.has(l), `${l} is both a voter and a learner`)
    this.trk.voters = voters
    this.trk.learners = learners
    const last = this.log.lastIndex()
    for (const id of [...cs.voters, ...cs.learners].sort()) {
      let pr = this.trk.progress.get(id)
      if (pr === undefined) {
        pr = this.trk.newProgress(id === this.id ? last : 0, last + 1, learners.has(id))
        // A new member counts as active so check-quorum does not fire before it had a chance to answer.
        pr.recentActive = true
        this.trk.progress.set(id, pr)
      }
      pr.isLearner = learners.has(id)
    }
    for (const id of [...this.trk.progress.keys()]) {
      if (voters.has(id) || learners.has(id)) continue
      if (this.state === StateType.Leader && id !== this.id) {
        // Tell the removed node, once, how far the log is committed, so it can apply its own removal
        // and stop campaigning (thesis §4.2.3 disruptive servers).
        this.sendHeartbeat(id, undefined)
      }
      this.trk.progress.delete(id)
    }
    this.isLearner = learners.has(this.id)
    if ((this.state === StateType.Candidate || this.state === StateType.PreCandidate) && !voters.has(this.id)) {
      // Removed or demoted while campaigning (a refused vote told it how far the log is committed, see
      // learnCommit): it may not win, whatever votes are still on their way (stack simulation, seed
      // 9100585: a removed node won a term and failed the leader's own-membership invariant).
      this.becomeFollower(this.term, '')
      return
    }
    if (this.state !== StateType.Leader) return
    if (!voters.has(this.id)) {
      // Thesis §4.2.2: a leader removed from the configuration steps down once the change is committed
      // (here: applied). It is no longer promotable, so it will not campaign again.
      this.becomeFollower(this.term, '')
      return
    }
    if (this.leadTransferee !== '' && !voters.has(this.leadTransferee)) this.abortLeaderTransfer()
    // The quorum changed: the commit index may move, and new members need the log.
    if (this.maybeCommit()) {
      this.bcastAppend()
    } else {
      for (const id of this.trk.progress.keys()) if (id !== this.id) this.maybeSendAppend(id, false)
    }
  }
}

// ------------------------------------------------------------------ role step functions

function stepLeader (r: Raft, m: Message): void {
  switch (m.type) {
    case MessageType.Beat:
      r.bcastHeartbeat()
      return
    case MessageType.CheckQuorum: {
      // Thesis §6.2: a leader that has not heard from a quorum within an election timeout steps down.
      if (!r.trk.quorumActive(r.id)) r.becomeFollower(r.term, '')
      for (const [id, pr] of r.trk.progress) if (id !== r.id) pr.recentActive = false
      return
    }
    case MessageType.Prop:
      leaderPropose(r, m)
      return
    case MessageType.ReadIndex:
      if (!r.committedEntryInCurrentTerm()) {
        // Thesis §6.4 step 1: until the leader has committed an entry of its term it does not know the
        // latest commit index; hold the request (bounded) until its no-op commits.
        if (r.pendingReadIndexMessages.length < r.maxPendingReadIndex) r.pendingReadIndexMessages.push(m)
        return
      }
      r.startReadIndex(m)
      return
    case MessageType.TransferLeader:
      leaderTransfer(r, m)
      return
    default:
      break
  }

  const pr = r.trk.progress.get(m.from)
  if (pr === undefined) return // not a member (any more): ignore
  switch (m.type) {
    case MessageType.AppResp: {
      pr.recentActive = true
      if (m.reject) {
        // Thesis §5.3 fast back-off: skip every index whose term cannot match.
        let nextProbe = m.rejectHint
        if (m.logTerm > 0) nextProbe = r.log.findConflictByTerm(m.rejectHint, m.logTerm).index
        if (pr.maybeDecrTo(m.index, nextProbe)) {
          if (pr.state === ProgressStateType.Replicate) pr.becomeProbe()
          r.sendAppend(m.from)
        }
        return
      }
      const oldPaused = pr.isPaused()
      const updated = pr.maybeUpdate(m.index)
      // A probe answered at exactly our match also proves where the logs agree.
      if (!updated && !(pr.state === ProgressStateType.Probe && pr.match === m.index)) return
      if (pr.state === ProgressStateType.Probe) {
        pr.becomeReplicate()
      } else if (pr.state === ProgressStateType.Snapshot && pr.match + 1 >= r.log.firstIndex()) {
        // The follower restored the snapshot (or caught up otherwise): replicate from its match.
        pr.becomeProbe()
        pr.becomeReplicate()
      } else if (pr.state === ProgressStateType.Replicate) {
        pr.inflights.freeLE(m.index)
      }
      if (r.maybeCommit()) {
        r.bcastAppend()
      } else if (oldPaused) {
        r.sendAppend(m.from)
      }
      // Pipelining (thesis §10.2.2): fill the inflight window.
      let guard = r.trk.maxInflight + 1
      while (guard-- > 0 && r.maybeSendAppend(m.from, false)) { /* keep sending */ }
      if (m.from === r.leadTransferee && pr.match === r.log.lastIndex()) {
        // Thesis §3.10: the target is up to date: tell it to campaign now.
        r.sendTimeoutNow(m.from)
      }
      return
    }
    case MessageType.HeartbeatResp: {
      pr.recentActive = true
      pr.probeSent = false
      // Messages may have been lost: free one slot so replication cannot stall on a full window.
      if (pr.state === ProgressStateType.Replicate && pr.inflights.full()) pr.inflights.freeFirstOne()
      if (pr.match < r.log.lastIndex()) r.sendAppend(m.from)
      if (m.context === undefined || m.context.byteLength === 0) return
      const acks = r.readOnly.recvAck(m.from, m.context)
      if (acks === undefined || !r.trk.hasQuorum(acks)) return
      // Thesis §6.4 step 3: leadership confirmed for this request and every earlier one.
      for (const rs of r.readOnly.advance(m.context)) r.respondToReadIndex(rs.index, rs.from, rs.context)
      return
    }
    case MessageType.SnapStatus: {
      if (pr.state !== ProgressStateType.Snapshot) return
      if (m.reject) pr.pendingSnapshot = 0
      pr.becomeProbe()
      // Wait for the follower's AppResp (or a heartbeat response) before probing again.
      pr.probeSent = true
      return
    }
    case MessageType.Unreachable:
      // Optimistic pipelining is pointless to an unreachable peer: probe instead.
      if (pr.state === ProgressStateType.Replicate) pr.becomeProbe()
      return
    default:
      // Vote responses after winning, stale ReadIndexResp etc.: nothing to do.
  }
}

/**
 * Marks a proposal this follower forwards with the term whose leader it goes to: the leader appends it
 * only in that term, so its entry, if any, carries exactly that term. Once the proposer applies an
 * entry of a later term without having applied its proposal, the proposal can never commit (committed
 * terms never decrease along the log) and proposing it again cannot apply it twice. A proposal
 * already marked (passed on by a follower that lost track of the leader) keeps its mark.
 */
function stampProposal (m: Message, term: number): Message {
  if (m.entries.length === 0 || m.entries[0].term !== 0) return m
  return { ...m, entries: m.entries.map((e) => ({ ...e, term })) }
}

function leaderPropose (r: Raft, m: Message): void {
  assert(m.entries.length > 0, 'a proposal must carry entries')
  if (!r.trk.progress.has(r.id)) { r.dropProposal(m, 'the leader was removed from the group'); return }
  // Thesis §3.10: while transferring leadership the leader accepts no new entries.
  if (r.leadTransferee !== '') { r.dropProposal(m, `leadership transfer to ${r.leadTransferee} in progress`); return }
  if (r.leavingIndex > r.log.applied) { r.dropProposal(m, `the leader is leaving the voters (change at index ${r.leavingIndex})`); return }
  // A forwarded proposal is meant for the term its proposer knew this node to lead (stampProposal):
  // appended in any other term, its proposer could not tell when it can no longer commit.
  const meant = m.entries[0].term
  if (meant !== 0 && meant !== r.term) { r.dropProposal(m, `proposed for term ${meant}, this is term ${r.term}`); return }
  let confChanges = 0
  let leaving = false
  for (const e of m.entries) {
    if (e.type !== EntryType.ConfChange) continue
    confChanges++
    if (confChanges > 1) { r.dropProposal(m, 'more than one conf change in one proposal'); return }
    // Thesis §4.1: one membership change at a time: the previous one must be applied.
    if (r.pendingConfIndex > r.log.applied) {
      r.dropProposal(m, `a conf change is pending (index ${r.pendingConfIndex}, applied ${r.log.applied})`)
      return
    }
    let cc: ConfChange
    try {
      cc = decodeConfChange(e.data)
    } catch {
      r.dropProposal(m, 'invalid conf change'); return
    }
    // The previous change is applied, so the entry will be applied to this very ConfState. A change
    // whose precondition (basedOn) fails here is still appended: it applies as a no-op everywhere,
    // which answers its proposer, who then looks at the membership again.
    const cs = r.trk.confState()
    if (removesLastVoter(cs, cc)) { r.dropProposal(m, 'cannot remove the last voter'); return }
    leaving = cs.voters.includes(r.id) && !applyToConfState(cs, cc).voters.includes(r.id)
  }
  const first = r.log.lastIndex() + 1
  if (!r.appendEntries(m.entries)) {
    r.dropProposal(m, `uncommitted entries exceed ${r.maxUncommittedSize} bytes`)
    return
  }
  m.entries.forEach((e, i) => {
    if (e.type !== EntryType.ConfChange) return
    r.pendingConfIndex = first + i
    if (leaving) r.leavingIndex = first + i
  })
  r.bcastAppend()
}

function leaderTransfer (r: Raft, m: Message): void {
  const transferee = m.from
  // Only a voter can become leader.
  if (!r.trk.isVoter(transferee)) return
  if (r.leadTransferee !== '') {
    if (r.leadTransferee === transferee) return // already in progress
    r.abortLeaderTransfer()
  }
  if (transferee === r.id) return // already the leader
  // Thesis §3.10: the transfer is aborted if it does not finish within an election timeout.
  r.electionElapsed = 0
  r.leadTransferee = transferee
  const pr = r.trk.progress.get(transferee)
  assert(pr !== undefined, `no progress for voter ${transferee}`)
  if (pr.match === r.log.lastIndex()) r.sendTimeoutNow(transferee)
  else r.sendAppend(transferee)
}

function stepCandidate (r: Raft, m: Message): void {
  // A pre-candidate counts PreVoteResp, a candidate VoteResp; the other kind is stale.
  const myResp = r.state === StateType.PreCandidate ? MessageType.PreVoteResp : MessageType.VoteResp
  switch (m.type) {
    case MessageType.Prop:
      r.dropProposal(m, 'no leader (election in progress)')
      return
    case MessageType.App:
      // Paper §5.2: a candidate that hears from the leader of its term returns to follower.
      r.becomeFollower(m.term, m.from)
      r.handleAppend(m)
      return
    case MessageType.Heartbeat:
      r.becomeFollower(m.term, m.from)
      r.handleHeartbeat(m)
      return
    case MessageType.Snap:
      r.becomeFollower(m.term, m.from)
      r.handleSnapshot(m)
      return
    case myResp: {
      if (m.reject) r.learnCommit(m.commit, m.logTerm)
      const result = r.poll(m.from, !m.reject)
      if (result === VoteResult.Won && (!r.promotable() || r.hasUnappliedConfChanges())) {
        // hup's rule again: a refused vote may have told it of a committed conf change it has not
        // applied, so its votes were counted in a configuration that may no longer be the group's
        r.becomeFollower(r.term, '')
        return
      }
      if (result === VoteResult.Won) {
        if (r.state === StateType.PreCandidate) {
          r.campaign(CampaignType.Election)
        } else {
          r.becomeLeader()
          r.bcastAppend()
        }
      } else if (result === VoteResult.Lost) {
        r.becomeFollower(r.term, '')
      }
      return
    }
    default:
      // TimeoutNow, ReadIndex … : a candidate has no leader to act for.
  }
}

function stepFollower (r: Raft, m: Message): void {
  switch (m.type) {
    case MessageType.Prop:
      if (r.lead === '') { r.dropProposal(m, 'no leader'); return }
      r.forward(stampProposal(m, r.term))
      return
    case MessageType.App:
      r.electionElapsed = 0
      r.lead = m.from
      r.handleAppend(m)
      return
    case MessageType.Heartbeat:
      r.electionElapsed = 0
      r.lead = m.from
      r.handleHeartbeat(m)
      return
    case MessageType.Snap:
      r.electionElapsed = 0
      r.lead = m.from
      r.handleSnapshot(m)
      return
    case MessageType.TransferLeader:
      if (r.lead === '') return
      r.forward(m)
      return
    case MessageType.TimeoutNow:
      // Thesis §3.10: the leader asks us to start an election now, skipping pre-vote and the lease.
      r.hup(true)
      return
    case MessageType.ReadIndex:
      if (r.lead === '') return
      // Thesis §6.4: a follower asks the leader for the read index.
      r.forward(m)
      return
    case MessageType.ReadIndexResp:
      r.readStates.push({ index: m.index, context: m.context ?? EMPTY })
      return
    default:
  }
}

function tickElection (r: Raft): void {
  r.electionElapsed++
  if (r.promotable() && r.pastElectionTimeout()) {
    r.electionElapsed = 0
    r.step(makeMessage({ type: MessageType.Hup, from: r.id }))
  }
}

function tickHeartbeat (r: Raft): void {
  r.heartbeatElapsed++
  r.electionElapsed++
  if (r.electionElapsed >= r.electionTimeout) {
    r.electionElapsed = 0
    if (r.checkQuorum) r.step(makeMessage({ type: MessageType.CheckQuorum, from: r.id }))
    // Thesis §3.10: a transfer that did not finish within an election timeout is aborted.
    if (r.state === StateType.Leader && r.leadTransferee !== '') r.abortLeaderTransfer()
  }
  if (r.state !== StateType.Leader) return
  if (r.heartbeatElapsed >= r.heartbeatTimeout) {
    r.heartbeatElapsed = 0
    r.step(makeMessage({ type: MessageType.Beat, from: r.id }))
  }
}

/** Requests that carry no term: local ones, and requests a follower forwards to its leader. */
const TERMLESS = new Set<MessageType>([
  MessageType.Hup, MessageType.Beat, MessageType.CheckQuorum, MessageType.Unreachable, MessageType.SnapStatus,
  MessageType.Prop, MessageType.TransferLeader, MessageType.ReadIndex
])
/** Never sent on the wire: they must come with term 0. */
const LOCAL_ONLY = new Set<MessageType>([
  MessageType.Hup, MessageType.Beat, MessageType.CheckQuorum, MessageType.Unreachable, MessageType.SnapStatus
])

/**
 * Filters malformed input before the core's assertions see it: protocol messages carry a term, local
 * ones do not, an App's entries follow `index` contiguously with sane terms, and a Prop carries
 * entries of one term.
 */
function wellFormed (m: Message): boolean {
  if (!Number.isSafeInteger(m.term) || m.term < 0) return false
  if (m.term === 0 && !TERMLESS.has(m.type)) return false
  if (m.term !== 0 && LOCAL_ONLY.has(m.type)) return false
  // A proposal proposes something: an empty one from a peer would reach the leader's assertion.
  if (m.type === MessageType.Prop && m.entries.length === 0) return false
  for (let i = 0; i < m.entries.length; i++) {
    const e = m.entries[i]
    if (m.type === MessageType.App && (e.index !== m.index + 1 + i || e.term > m.term || e.term < m.logTerm)) return false
    // A proposal's entries are meant for one term (stampProposal), or for whichever term (0).
    if (m.type === MessageType.Prop && e.term !== m.entries[0].term) return false
  }
  return true
}
