/**
 * Public types of the dfs Raft core (the contract between the core, its storage, its drivers and the
 * simulation tester). The core is pure: no I/O, no clock, no Math.random.
 *
 * Node ids are strings (PeerIds in production, short names in tests).
 */

export type NodeId = string

export enum EntryType {
  /** An application command (`data` is opaque to Raft). An empty Normal entry is the leader's no-op. */
  Normal = 0,
  /** A membership change; `data` is encodeConfChange(ConfChange). */
  ConfChange = 1
}

export interface Entry {
  term: number
  index: number
  type: EntryType
  data: Uint8Array
}

/** What must survive a crash (Raft paper figure 2: currentTerm, votedFor) plus the commit index. */
export interface HardState {
  term: number
  /** '' when no vote was cast in `term`. */
  vote: NodeId
  commit: number
}

/** Membership. A node is either a voter or a learner, never both. */
export interface ConfState {
  voters: NodeId[]
  learners: NodeId[]
}

export interface SnapshotMetadata {
  index: number
  term: number
  confState: ConfState
}

export interface Snapshot {
  metadata: SnapshotMetadata
  /** The application's state at `metadata.index`, opaque to Raft. */
  data: Uint8Array
}

export enum ConfChangeType {
  AddVoter = 0,
  AddLearner = 1,
  RemoveNode = 2
}

/** The role a node has in a ConfState. */
export type MemberRole = 'absent' | 'learner' | 'voter'

/** One membership change at a time (single-server changes, thesis §4.1). */
export interface ConfChange {
  type: ConfChangeType
  node: NodeId
  /**
   * The role `node` had in the membership the proposer built the change from. When set, the change
   * applies only if `node` still has that role in the ConfState it is applied to, and is a no-op
   * otherwise; every replica applies it to the same ConfState, so all decide alike. It keeps a change
   * proposed again after a timeout from undoing one committed meanwhile (a retried AddLearner would
   * demote the voter its node was promoted to). Unset: the change applies whatever the role.
   */
  basedOn?: MemberRole
  /** Opaque to Raft, e.g. the node's addresses. */
  context?: Uint8Array
}

export enum MessageType {
  /** Local: start an election (campaign). Never sent on the wire. */
  Hup = 'Hup',
  /** Local: leader sends heartbeats. Never sent on the wire. */
  Beat = 'Beat',
  /** Local: a proposal (entries to append). Followers forward it to the leader when they know it. */
  Prop = 'Prop',
  App = 'App',
  AppResp = 'AppResp',
  Vote = 'Vote',
  VoteResp = 'VoteResp',
  PreVote = 'PreVote',
  PreVoteResp = 'PreVoteResp',
  Snap = 'Snap',
  Heartbeat = 'Heartbeat',
  HeartbeatResp = 'HeartbeatResp',
  /** Local report from the driver: sending to `from` failed / the peer is unreachable. */
  Unreachable = 'Unreachable',
  /** Local report from the driver: a snapshot send to `from` finished (reject = failed). */
  SnapStatus = 'SnapStatus',
  /** Leader-side check-quorum tick (local). */
  CheckQuorum = 'CheckQuorum',
  TransferLeader = 'TransferLeader',
  TimeoutNow = 'TimeoutNow',
  ReadIndex = 'ReadIndex',
  ReadIndexResp = 'ReadIndexResp'
}

/**
 * One Raft message. Fields not used by a type are left at their zero values (0, '', [], false).
 * The wire codec (written later for libp2p) encodes every field.
 */
export interface Message {
  type: MessageType
  to: NodeId
  from: NodeId
  term: number
  /** App: index of the entry before `entries`; AppResp: the follower's match (or rejected) index. */
  index: number
  /**
   * App: term of the entry at `index`. Vote / PreVote: term of the candidate's last entry.
   * AppResp on reject: the term of the follower's entry at `rejectHint` (fast back-off, thesis §5.3).
   */
  logTerm: number
  entries: Entry[]
  /** App / Heartbeat: the leader's commit index (Heartbeat: min(commit, follower match)). */
  commit: number
  reject: boolean
  /** AppResp on reject: a hint of the follower's last index at or below `index` (fast back-off). */
  rejectHint: number
  snapshot?: Snapshot
  /** ReadIndex / Heartbeat: the request context, echoed back. */
  context?: Uint8Array
  /**
   * App without entries: the leader already holds the follower's acknowledgement of `index` (the
   * message only moves the commit index), so the follower answers only if it has to reject.
   */
  quiet?: boolean
}

/** A completed ReadIndex: reads may be served once the local applied index reaches `index`. */
export interface ReadState {
  index: number
  context: Uint8Array
}

export enum StateType {
  Follower = 'Follower',
  PreCandidate = 'PreCandidate',
  Candidate = 'Candidate',
  Leader = 'Leader'
}

/** Volatile state that changes often, reported in Ready when it changed. */
export interface SoftState {
  lead: NodeId
  state: StateType
}

/**
 * Everything the core asks its driver to do, in one batch. The driver must, in this order:
 *  1. persist `snapshot` (if any), then `entries` (appending, truncating any conflicting suffix), then
 *     `hardState` (if any) — durably, in one fsync'd write where it can;
 *  2. send `messages` (they may depend on what step 1 persisted, e.g. a vote or appended entries);
 *  3. apply `snapshot` (if any) to the state machine, then apply `committedEntries` in order;
 *  4. serve `readStates` once applied index ≥ readState.index;
 *  5. call `advance(ready)`.
 * (A leader may send its App and Heartbeat messages before persisting, Raft thesis §10.2.1: it counts
 * itself towards a commit only once its entries are durable. The dfs driver does so while the term and
 * vote are already durable; see RaftGroup.)
 */
export interface Ready {
  /** The leader and role, when either changed since the last Ready. Volatile: never persisted. */
  softState?: SoftState
  /**
   * Term, vote and commit index, when any changed. Term and vote must be durable before `messages`
   * go out (paper figure 2); the commit index alone may be written later (a restarted node re-learns
   * it): `mustSync` says which.
   */
  hardState?: HardState
  /** Entries to append (replacing any conflicting suffix), durable before `messages` go out. */
  entries: Entry[]
  /** A snapshot from the leader to persist (replacing the log) and then restore; durable before `messages`. */
  snapshot?: Snapshot
  /**
   * Entries known committed, to apply in order after step 1 (they may include some of `entries`).
   * ConfChange entries go through RawNode.applyConfChange.
   */
  committedEntries: Entry[]
  /** Messages to send once step 1 is durable (a leader's App and Heartbeat may leave earlier, see above). */
  messages: Message[]
  /** ReadIndex answers: serve each once the applied index reaches its `index`. */
  readStates: ReadState[]
}

/** A deterministic random source in [0, 1). Tests and the simulator pass seeded ones. */
export type Rand = () => number

export interface RaftConfig {
  id: NodeId
  /** Ticks without hearing from a leader before a follower starts an election; randomized in (t, 2t]. */
  electionTick: number
  /** Ticks between heartbeats; must be < electionTick. */
  heartbeatTick: number
  storage: Storage
  rand: Rand
  /** Index of the last entry already applied by the state machine (on restart). */
  applied?: number
  /** Largest total bytes of entries in one App message. */
  maxSizePerMsg?: number
  /** Largest number of in-flight App messages to one follower (flow control). */
  maxInflightMsgs?: number
  /** Largest total bytes of uncommitted entries the leader accepts (beyond it proposals are dropped). */
  maxUncommittedEntriesSize?: number
  /** Largest total bytes of committed entries returned in one Ready. */
  maxCommittedSizePerReady?: number
  preVote?: boolean
  checkQuorum?: boolean
  /** Largest total bytes of entries in flight to one follower (0 = no byte limit; count still applies). */
  maxInflightBytes?: number
  /** Largest number of ReadIndex requests a leader queues before its first commit in its term. */
  maxPendingReadIndex?: number
}

/** Replication state of one follower as the leader tracks it (etcd's Progress states). */
export enum ProgressStateType {
  /** The leader does not know where the follower's log matches: one App at a time, then wait. */
  Probe = 'Probe',
  /** The follower's log is known to match up to `match`: Apps are pipelined within the inflight window. */
  Replicate = 'Replicate',
  /** The follower needs entries that were compacted: a snapshot is in flight, nothing else is sent. */
  Snapshot = 'Snapshot'
}

export interface ProgressStatus {
  match: number
  next: number
  state: ProgressStateType
  /** The member answered since the last check-quorum round (about an election timeout). */
  recentActive: boolean
}

/** A consistent view of one node's Raft state (RawNode.status()). */
export interface RaftStatus {
  id: NodeId
  term: number
  vote: NodeId
  commit: number
  applied: number
  /** The leader this node knows of in `term`; '' when none. */
  lead: NodeId
  state: StateType
  confState: ConfState
  /** Only on the leader: every member's replication progress. */
  progress?: Record<NodeId, ProgressStatus>
  /** Only on the leader: the node leadership is being transferred to; '' when none. */
  leadTransferee?: NodeId
}

/**
 * Read access to what is persisted, as the core needs it. Implementations: MemoryStorage (tests,
 * simulation) and LevelStorage (production, writes a Ready's persistence in one fsync'd batch).
 * The core reads synchronously; a persistent storage keeps the log it serves in memory (the unstable
 * tail lives in the core until the driver persists it).
 */
export interface Storage {
  initialState: () => { hardState: HardState, confState: ConfState }
  /** Entries in [lo, hi), at most maxSize bytes but always at least one if any exist. */
  entries: (lo: number, hi: number, maxSize?: number) => Entry[]
  /** Term of the entry at index i; i may be the snapshot's index. Throws Compacted / Unavailable. */
  term: (i: number) => number
  firstIndex: () => number
  lastIndex: () => number
  snapshot: () => Snapshot
}
