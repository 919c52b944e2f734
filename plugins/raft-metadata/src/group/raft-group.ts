/**
 * RaftGroup: the driver of one Raft group (after etcd's raftexample / etcdserver raft loop). It owns a
 * RawNode, the group's durable log storage, a ticker, its registration on the transport and the
 * application's state machine, and runs ONE loop that alone touches the core:
 *
 *   1. step everything that arrived (ticks, inbound messages, send reports, proposals, read requests);
 *   2. if the core has a Ready: persist its snapshot / entries / hard state in one durable write
 *      (LevelStorage.saveReady: one fsync'd batch) BEFORE sending the messages that depend on it
 *      (a leader's App and Heartbeat messages go first, see #sendsEarly; a write of nothing but the
 *      commit index overlaps the rest), restore a snapshot from the leader (and await the state
 *      machine's `restored`: the messages acknowledge it), send the rest, apply the committed entries
 *      (ConfChange entries via applyConfChange),
 *      record read states, advance; then serve reads whose index is applied and snapshot/compact
 *      every `snapshotEvery` applied entries;
 *   3. otherwise sleep until something arrives.
 *
 * Group commit: while step 2 awaits its fsync, new proposals only queue; the next turn steps them all
 * and they share the next Ready, so there is one fsync per loop turn, not one per proposal.
 *
 * propose(data): the payload is wrapped in an envelope with a unique id (envelope.ts) and proposed to
 * the core (a follower's core forwards it to the leader as a Prop message). The call resolves with the
 * state machine's result when this node applies the entry. While no leader is known (an election) it
 * waits and is proposed once one is, retried on every tick. A proposal its leader refused, that the
 * transport could not send, or that was lost with its term's leader (an entry of a later term was
 * applied before it: #retryLost) is proposed again; none of these can be applied twice. It rejects
 * with Aborted when its signal is aborted, and at its deadline (the signal's TimeoutError, or
 * `callTimeoutMs`) with NoQuorum when no leader is known by then (with check-quorum a leader without a
 * quorum steps down within an election timeout, so a minority partition knows no leader), else
 * DeadlineExceeded. After a deadline or an abort the entry may still be committed later: the outcome
 * is unknown, as with any timed-out write.
 *
 * read(fn): linearizable via ReadIndex (Raft thesis §6.4): request a read index (retried each election
 * timeout while no answer comes), wait for the read state, then for applied ≥ that index, then run fn
 * in the loop, between two applies.
 */
import { randomBytes } from 'node:crypto'
import {
  AbortedError, DeadlineExceededError, InvalidArgumentError, NoQuorumError, UnavailableError
} from '@dfs/api'
import type { Logger } from '@dfs/api'
import { EntryType, MessageType, RawNode, StateType, decodeConfChange, holdsConfChange, mustSync } from '../raft/index.js'
import type { ConfChange, ConfState, Entry, HardState, Message, NodeId, ProgressStatus, Rand, Ready, Snapshot } from '../raft/index.js'
import type { GroupTransport, RaftTransportHandler } from '../transport/index.js'
import {
  CALL_TIMEOUT_MS_DEFAULT, ELECTION_TICK_DEFAULT, HEARTBEAT_TICK_DEFAULT, INBOX_MESSAGES_MAX_DEFAULT,
  PENDING_MAX_DEFAULT, PENDING_TICKS_MAX, PROPOSAL_BYTES_MAX_DEFAULT, RESTORED_WAIT_MS_MAX, SNAPSHOT_BYTES_DEFAULT, SNAPSHOT_EVERY_DEFAULT, SNAPSHOT_RETRY_MS,
  SNAPSHOT_KEEP_ENTRIES_DEFAULT, TICK_MS_DEFAULT
} from './constants.js'
import { NONCE_BYTES, openEnvelope, sealEnvelope } from './envelope.js'
import type { DurableStorage } from './storage.js'
import { subscribeTicks, systemClock, timeoutSignal } from './clock.js'
import { mutations } from '../mutations.js'
import type { Clock, TimerHandle } from './clock.js'

/** The application side of a group. Every replica applies the same payloads in the same order. */
export interface GroupStateMachine<R> {
  /** Applies the payload committed at `index` (indexes increase strictly; some are skipped). */
  apply: (payload: Uint8Array, index: number) => R
  /** The state as of the last applied index. */
  snapshot: () => Uint8Array
  /** Replaces the state with a snapshot taken at `index` (empty bytes: the initial state). */
  restore: (data: Uint8Array, index: number) => void
  /**
   * Resolves once what apply started outside the state (e.g. storing bytes an entry carried) is
   * durable for every entry applied so far. A snapshot waits for it, since a restarted node applies
   * only the entries after its snapshot; a rejection postpones the snapshot (SNAPSHOT_RETRY_MS).
   */
  settle?: () => Promise<void>
  /**
   * Called after `restore` of a snapshot the leader sent (not of the node's own snapshot at start):
   * resolves once what the state refers to and the node keeps outside it is in place — e.g. bytes
   * that travelled only in the log entries the snapshot replaced. The group acknowledges the snapshot
   * (so the leader counts this node as caught up) only then, or at the latest after
   * RESTORED_WAIT_MS_MAX, when `signal` aborts; a rejection is logged and the snapshot acknowledged.
   */
  restored?: (index: number, signal: AbortSignal) => Promise<void>
}

export interface RaftGroupInit<R> {
  /** This node's id (its PeerId string). */
  id: NodeId
  /** The group's number on the transport (0: the system group). */
  group?: number
  storage: DurableStorage
  transport: GroupTransport
  stateMachine: GroupStateMachine<R>
  tickMs?: number
  electionTick?: number
  heartbeatTick?: number
  snapshotEvery?: number
  /** Also snapshot once the entries applied since the last snapshot hold this many bytes (the log is kept in memory). */
  snapshotBytes?: number
  snapshotKeepEntries?: number
  /** Deadline of propose / read when the caller's signal does not end them sooner. */
  callTimeoutMs?: number
  pendingMax?: number
  inboxMessagesMax?: number
  proposalBytesMax?: number
  preVote?: boolean
  checkQuorum?: boolean
  rand?: Rand
  logger?: Logger
  /**
   * Who may talk to the group besides its current members. A node's applied membership lags: a
   * learner that restored an old snapshot does not yet know the leader that sent it, and would drop
   * the very messages that tell it. A service running several groups passes the members it knows
   * from all of them (and from its member list). Default: nobody else.
   */
  isPeer?: (id: NodeId) => boolean
  /** Ticks, deadlines and snapshot retries run on this clock (default: the system clock). */
  clock?: Clock
  /**
   * The id that makes this instance's proposals and reads unique (default: NONCE_BYTES random bytes,
   * new for every instance). The simulator passes seeded ones so that a run replays.
   */
  nonce?: Uint8Array
}

export interface GroupCallOptions {
  signal?: AbortSignal
  /** Overrides callTimeoutMs for this call. */
  timeoutMs?: number
}

export interface RaftGroupStatus {
  id: NodeId
  /** The leader this node knows of, or undefined. */
  leader: NodeId | undefined
  state: StateType
  term: number
  commit: number
  applied: number
  confState: ConfState
}

export interface RaftGroupStats {
  /** Ready batches handled. */
  readies: number
  /** Durable writes of Ready content (LevelStorage: fsync'd batches). */
  persistBatches: number
  entriesPersisted: number
  proposals: number
  proposalsApplied: number
  entriesApplied: number
  /** Committed Normal entries that were not an envelope (skipped on every replica alike). */
  foreignEntries: number
  snapshotsCreated: number
  snapshotsRestored: number
  /** Forwarded proposals proposed again because the transport dropped them unsent or the leader refused them. */
  proposalsRequeued: number
  /**
   * Proposals proposed again because an entry of a later term was applied before them: their term's
   * leader lost them (it died or stepped down before they committed), so they can never commit.
   */
  proposalsRetried: number
  /**
   * Proposals (normal and membership changes) that ended in an error: refused at once (the group is
   * not running, too many calls wait) or rejected later (deadline, abort, the group stopping or failing).
   * A refused one is not counted in `proposals`.
   */
  proposalsFailed: number
  /** Inbound messages dropped: inbox full, or from a node that is not a member. */
  messagesDropped: number
  /** Leader messages (App, Heartbeat) sent before the Ready they came with was durable. */
  messagesSentEarly: number
}

type GroupState = 'new' | 'running' | 'stopping' | 'stopped' | 'failed'

interface Waiter {
  done: boolean
  reject: (err: Error) => void
  timer?: TimerHandle
  signal?: AbortSignal
  onAbort?: () => void
  timeoutMs: number
}

interface PendingProposal<R> extends Waiter {
  seq: number
  /** Normal proposals: the sealed entry. Conf changes: the sealed envelope, carried in `cc.context`. */
  entry: Uint8Array
  /** Set for a membership change; resolved with the ConfState after it is applied. */
  cc?: ConfChange
  submitted: boolean
  /** The term its entry carries if it is appended (RawNode.propose), set when it is submitted. */
  term: number
  /**
   * A snapshot restored while it was submitted may hold it applied: it is never proposed again on the
   * evidence of a later term (it waits for its deadline, which says it may still be applied).
   */
  uncertain: boolean
  resolve: (result: R) => void
  resolveConf?: (cs: ConfState) => void
}

interface PendingRead extends Waiter {
  key: string
  context: Uint8Array
  /** The read index, once the read state arrived. */
  index: number | undefined
  /** Tick count when the read index was last requested. */
  requestedAt: number | undefined
  run: () => void
}

type Report =
  | { kind: 'unreachable', peer: NodeId }
  | { kind: 'snapshot', peer: NodeId, ok: boolean }
  | { kind: 'dropped', peer: NodeId, messages: Message[] }
  | { kind: 'transfer', to: NodeId }

const noop = (): void => {}
const silentLogger: Logger = Object.assign(noop, { error: noop, trace: noop, enabled: false })

function positiveInt (value: number | undefined, fallback: number, what: string): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value < 1) throw new InvalidArgumentError(`${what} must be a positive integer`, { [what]: value })
  return value
}

function hex (b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')
}

export class RaftGroup<R> {
  readonly id: NodeId
  readonly group: number
  readonly stats: RaftGroupStats = {
    readies: 0, persistBatches: 0, entriesPersisted: 0, proposals: 0, proposalsApplied: 0, entriesApplied: 0,
    foreignEntries: 0, snapshotsCreated: 0, snapshotsRestored: 0, proposalsRequeued: 0, proposalsRetried: 0, proposalsFailed: 0, messagesDropped: 0,
    messagesSentEarly: 0
  }

  readonly #storage: DurableStorage
  readonly #transport: GroupTransport
  readonly #sm: GroupStateMachine<R>
  readonly #log: Logger
  readonly #tickMs: number
  readonly #electionTick: number
  readonly #heartbeatTick: number
  readonly #snapshotEvery: number
  readonly #snapshotBytes: number
  readonly #snapshotKeep: number
  readonly #callTimeoutMs: number
  readonly #pendingMax: number
  readonly #inboxMax: number
  readonly #proposalBytesMax: number
  readonly #preVote: boolean
  readonly #checkQuorum: boolean
  readonly #rand: Rand
  readonly #isPeer: (id: NodeId) => boolean
  /** Random per group instance: proposal ids and read contexts of different lives never collide. */
  readonly #nonce: Uint8Array
  readonly #clock: Clock

  #state: GroupState = 'new'
  #failure: Error | undefined
  #node: RawNode | undefined
  #loop: Promise<void> | undefined
  /** Stops this group's ticks (see subscribeTicks). */
  #ticker?: () => void
  #wake: (() => void) | undefined
  #dirty = false

  // inputs, filled by callbacks, drained by the loop
  #pendingTicks = 0
  #inbox: Message[] = []
  #reports: Report[] = []
  #unsubmitted: Array<PendingProposal<R>> = []
  /** A proposal was dropped by the core: retry on the next tick or leader change, not on every wake. */
  #submitBlocked = false

  #proposals = new Map<number, PendingProposal<R>>()

  /** Proposals of this node waiting for their entry to apply (for metrics). */
  get pendingProposals (): number {
    return this.#proposals.size
  }
  #reads = new Map<string, PendingRead>()
  #seq = 0
  #ticks = 0
  #lead: NodeId = ''
  #role: StateType = StateType.Follower
  #applied = 0
  /** The term of the last entry applied (or of the restored snapshot; 0 until the first after a start). */
  #appliedTerm = 0
  #snapshotIndex = 0
  /** Bytes of the entries applied since the last snapshot. */
  #appliedBytes = 0
  /** No snapshot attempt before this time (epoch ms): set when the state machine could not settle. */
  #snapshotNotBefore = 0
  #confState: ConfState = { voters: [], learners: [] }
  #members = new Set<NodeId>()
  /** Term and vote as last made durable (a Ready that changes them sends nothing before its fsync). */
  #durable: HardState = { term: 0, vote: '', commit: 0 }

  constructor (init: RaftGroupInit<R>) {
    if (typeof init.id !== 'string' || init.id.length === 0) throw new InvalidArgumentError('id must be a node id', { id: init.id })
    this.id = init.id
    this.group = init.group ?? 0
    this.#storage = init.storage
    this.#transport = init.transport
    this.#sm = init.stateMachine
    this.#log = init.logger ?? silentLogger
    this.#tickMs = positiveInt(init.tickMs, TICK_MS_DEFAULT, 'tickMs')
    this.#electionTick = positiveInt(init.electionTick, ELECTION_TICK_DEFAULT, 'electionTick')
    this.#heartbeatTick = positiveInt(init.heartbeatTick, HEARTBEAT_TICK_DEFAULT, 'heartbeatTick')
    if (this.#heartbeatTick >= this.#electionTick) {
      throw new InvalidArgumentError('heartbeatTick must be less than electionTick', { heartbeatTick: this.#heartbeatTick, electionTick: this.#electionTick })
    }
    this.#snapshotEvery = positiveInt(init.snapshotEvery, SNAPSHOT_EVERY_DEFAULT, 'snapshotEvery')
    this.#snapshotBytes = positiveInt(init.snapshotBytes, SNAPSHOT_BYTES_DEFAULT, 'snapshotBytes')
    this.#snapshotKeep = init.snapshotKeepEntries === 0 ? 0 : positiveInt(init.snapshotKeepEntries, SNAPSHOT_KEEP_ENTRIES_DEFAULT, 'snapshotKeepEntries')
    this.#callTimeoutMs = positiveInt(init.callTimeoutMs, CALL_TIMEOUT_MS_DEFAULT, 'callTimeoutMs')
    this.#pendingMax = positiveInt(init.pendingMax, PENDING_MAX_DEFAULT, 'pendingMax')
    this.#inboxMax = positiveInt(init.inboxMessagesMax, INBOX_MESSAGES_MAX_DEFAULT, 'inboxMessagesMax')
    this.#proposalBytesMax = positiveInt(init.proposalBytesMax, PROPOSAL_BYTES_MAX_DEFAULT, 'proposalBytesMax')
    this.#preVote = init.preVote ?? true
    this.#checkQuorum = init.checkQuorum ?? true
    this.#rand = init.rand ?? Math.random
    this.#isPeer = init.isPeer ?? (() => false)
    this.#clock = init.clock ?? systemClock
    if (init.nonce !== undefined && init.nonce.byteLength !== NONCE_BYTES) {
      throw new InvalidArgumentError(`nonce must be ${NONCE_BYTES} bytes`, { bytes: init.nonce.byteLength })
    }
    this.#nonce = init.nonce ?? new Uint8Array(randomBytes(NONCE_BYTES))
  }

  // ---------------------------------------------------------------------------------------------
  // lifecycle

  /** Restores the state machine from the storage's snapshot and starts the loop and the ticker. */
  start (): void {
    if (this.#state !== 'new') throw new UnavailableError(`the raft group is ${this.#state} and cannot be started`, { state: this.#state })
    const snap = this.#storage.snapshot()
    if (snap.metadata.index > 0) {
      this.#sm.restore(snap.data, snap.metadata.index)
    }
    this.#applied = snap.metadata.index
    this.#snapshotIndex = snap.metadata.index
    const initial = this.#storage.initialState()
    this.#setConfState(initial.confState)
    this.#durable = { ...initial.hardState }
    this.#node = new RawNode({
      id: this.id,
      electionTick: this.#electionTick,
      heartbeatTick: this.#heartbeatTick,
      storage: this.#storage,
      rand: this.#rand,
      preVote: this.#preVote,
      checkQuorum: this.#checkQuorum
    })
    const handler: RaftTransportHandler = {
      receive: (from, messages) => { this.#receive(from, messages) },
      reportUnreachable: (peer) => { this.#report({ kind: 'unreachable', peer }) },
      reportSnapshot: (peer, ok) => { this.#report({ kind: 'snapshot', peer, ok }) },
      reportDroppedProposals: (peer, messages) => { this.#report({ kind: 'dropped', peer, messages }) }
    }
    this.#transport.register(this.group, handler)
    this.#state = 'running'
    // the only voter need not wait an election timeout to find out nobody else will campaign
    if (this.#confState.voters.length === 1 && this.#confState.voters[0] === this.id) this.#node.campaign()
    this.#ticker = subscribeTicks(this.#clock, this.#tickMs, () => {
      if (this.#pendingTicks < PENDING_TICKS_MAX) this.#pendingTicks++
      this.#signal()
    })
    this.#loop = this.#run()
    this.#log('raft group %d started on %s at applied %d, members %o', this.group, this.id, this.#applied, this.#confState)
  }

  /** Stops the loop (after the Ready in progress), the ticker and the transport registration. */
  async stop (): Promise<void> {
    if (this.#state === 'new') { this.#state = 'stopped'; return }
    if (this.#state === 'running') this.#state = 'stopping'
    this.#halt()
    await this.#loop
    this.#rejectAll(new UnavailableError('the raft group stopped', { group: this.group }))
    if (this.#state === 'stopping') this.#state = 'stopped'
  }

  #halt (): void {
    this.#ticker?.()
    this.#ticker = undefined
    this.#transport.unregister(this.group)
    this.#signal()
  }

  #fail (err: Error): void {
    if (this.#state === 'running') this.#state = 'failed'
    this.#failure = err
    this.#log.error('raft group %d on %s failed: %s', this.group, this.id, err.stack ?? err.message)
    this.#halt()
    this.#rejectAll(new UnavailableError(`the raft group failed: ${err.message}`, { group: this.group }))
  }

  #rejectAll (err: Error): void {
    for (const p of this.#proposals.values()) this.#settle(p, err)
    for (const r of this.#reads.values()) this.#settle(r, err)
    this.#proposals.clear()
    this.#reads.clear()
    this.#unsubmitted = []
  }

  /** Why the group stopped by itself (a failed write, a broken invariant); undefined otherwise. */
  get failure (): Error | undefined {
    return this.#failure
  }

  /**
   * The term, vote and commit index as last written durably (what a crash now would restart with);
   * `status()` shows the core's, which may be ahead while a write is in flight.
   */
  get durableHardState (): Readonly<HardState> {
    return { ...this.#durable }
  }

  status (): RaftGroupStatus {
    const node = this.#node
    const st = node?.status()
    return {
      id: this.id,
      leader: this.#lead === '' ? undefined : this.#lead,
      state: this.#role,
      term: st?.term ?? 0,
      commit: st?.commit ?? 0,
      applied: this.#applied,
      confState: { voters: [...this.#confState.voters], learners: [...this.#confState.learners] }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // calls

  propose (payload: Uint8Array, options: GroupCallOptions = {}): Promise<R> {
    const refused = this.#refuse(options)
    if (refused !== undefined) {
      this.stats.proposalsFailed++
      return Promise.reject(refused)
    }
    if (!(payload instanceof Uint8Array)) return Promise.reject(new InvalidArgumentError('a proposal is bytes'))
    if (payload.byteLength > this.#proposalBytesMax) {
      return Promise.reject(new InvalidArgumentError(`the proposal is ${payload.byteLength} bytes, more than ${this.#proposalBytesMax}`,
        { bytes: payload.byteLength, bytesMax: this.#proposalBytesMax }))
    }
    const seq = ++this.#seq
    const entry = sealEnvelope(this.#nonce, seq, payload)
    return new Promise<R>((resolve, reject) => {
      const p: PendingProposal<R> = {
        seq, entry, submitted: false, term: 0, uncertain: false, done: false, resolve, reject, timeoutMs: options.timeoutMs ?? this.#callTimeoutMs
      }
      this.#arm(p, options, 'proposal')
      this.#proposals.set(seq, p)
      this.#unsubmitted.push(p)
      this.stats.proposals++
      this.#signal()
    })
  }

  read<T> (fn: () => T, options: GroupCallOptions = {}): Promise<T> {
    const refused = this.#refuse(options)
    if (refused !== undefined) return Promise.reject(refused)
    const context = sealEnvelope(this.#nonce, ++this.#seq, new Uint8Array(0))
    const key = hex(context)
    return new Promise<T>((resolve, reject) => {
      const r: PendingRead = {
        key,
        context,
        index: undefined,
        requestedAt: undefined,
        done: false,
        reject,
        timeoutMs: options.timeoutMs ?? this.#callTimeoutMs,
        run: () => {
          try {
            resolve(fn())
          } catch (err) {
            reject(err)
          }
        }
      }
      this.#arm(r, options, 'read')
      this.#reads.set(key, r)
      this.#signal()
    })
  }

  /**
   * Proposes a membership change (one at a time: while an earlier one is not applied the core drops
   * it and it is retried on the next tick) and resolves with the membership once this node applied it.
   * The change's `context` carries the proposal id, so the proposer recognizes its own change.
   */
  proposeConfChange (cc: Omit<ConfChange, 'context'>, options: GroupCallOptions = {}): Promise<ConfState> {
    const refused = this.#refuse(options)
    if (refused !== undefined) {
      this.stats.proposalsFailed++
      return Promise.reject(refused)
    }
    const seq = ++this.#seq
    const entry = sealEnvelope(this.#nonce, seq, new Uint8Array(0))
    return new Promise<ConfState>((resolve, reject) => {
      const p: PendingProposal<R> = {
        seq,
        entry,
        cc: { type: cc.type, node: cc.node, ...(cc.basedOn !== undefined ? { basedOn: cc.basedOn } : {}), context: entry },
        submitted: false,
        term: 0,
        uncertain: false,
        done: false,
        resolve: () => { reject(new Error('a conf change resolved as a normal proposal')) },
        resolveConf: resolve,
        reject,
        timeoutMs: options.timeoutMs ?? this.#callTimeoutMs
      }
      this.#arm(p, options, 'membership change')
      this.#proposals.set(seq, p)
      this.#unsubmitted.push(p)
      this.stats.proposals++
      this.#signal()
    })
  }

  /**
   * On the leader: hands leadership to the voter `to` (Raft thesis §3.10). The core ignores it on a
   * follower, for a non-voter, or while another transfer runs; proposals are refused until the
   * transfer ends (at most an election timeout). Returns at once: watch status() for the outcome.
   */
  transferLeadership (to: NodeId): void {
    if (this.#state !== 'running' || typeof to !== 'string' || to.length === 0) return
    this.#report({ kind: 'transfer', to })
  }

  /** On the leader: every member's replication progress (match = highest index known replicated). */
  progress (): Record<NodeId, ProgressStatus> | undefined {
    return this.#node?.status().progress
  }

  #refuse (options: GroupCallOptions): Error | undefined {
    if (this.#state !== 'running') {
      return new UnavailableError(this.#state === 'failed'
        ? `the raft group failed: ${this.#failure?.message ?? 'unknown error'}`
        : `the raft group is ${this.#state}`, { group: this.group, state: this.#state })
    }
    if (options.signal?.aborted === true) return this.#abortError(options.signal, 'call', false)
    if (this.#proposals.size + this.#reads.size >= this.#pendingMax) {
      return new UnavailableError('too many raft proposals and reads are waiting', { pending: this.#proposals.size + this.#reads.size, pendingMax: this.#pendingMax })
    }
    return undefined
  }

  /** Starts a call's deadline timer and abort listener. */
  #arm (w: Waiter, options: GroupCallOptions, what: string): void {
    w.timer = this.#clock.setTimeout(() => { this.#expire(w, this.#deadlineError(w, what)) }, w.timeoutMs)
    const signal = options.signal
    if (signal !== undefined) {
      w.signal = signal
      w.onAbort = () => { this.#expire(w, this.#abortError(signal, what, true)) }
      signal.addEventListener('abort', w.onAbort, { once: true })
    }
  }

  #abortError (signal: AbortSignal, what: string, started: boolean): Error {
    const reason = signal.reason as Error | undefined
    if (reason?.name === 'TimeoutError') {
      return started ? this.#deadlineError(undefined, what) : new DeadlineExceededError(`the ${what}'s deadline had passed`)
    }
    return new AbortedError(`the ${what} was aborted${started ? '; it may still be applied' : ''}`)
  }

  /** At a deadline: NoQuorum when no leader is known (a minority), else DeadlineExceeded. */
  #deadlineError (w: Waiter | undefined, what: string): Error {
    const details = {
      group: this.group,
      node: this.id,
      leader: this.#lead === '' ? null : this.#lead,
      state: this.#role,
      voters: this.#confState.voters.length,
      timeoutMs: w?.timeoutMs ?? null,
      submitted: (w as PendingProposal<R> | undefined)?.submitted ?? null
    }
    if (this.#lead === '') {
      return new NoQuorumError(`the ${what} failed: no leader is elected (a quorum of the ${details.voters} voters is not reachable)`, details)
    }
    return new DeadlineExceededError(`the ${what} was not applied in time; it may still be applied`, details)
  }

  #expire (w: Waiter, err: Error): void {
    if (w.done) return
    this.#settle(w, err)
    if ('seq' in w) this.#proposals.delete((w as PendingProposal<R>).seq)
    if ('key' in w) this.#reads.delete((w as PendingRead).key)
  }

  /** Marks a call done, stops its timer and listener and rejects it if `err` is given. */
  #settle (w: Waiter, err?: Error): void {
    if (w.done) return
    w.done = true
    if (w.timer !== undefined) this.#clock.clearTimeout(w.timer)
    if (w.onAbort !== undefined) w.signal?.removeEventListener('abort', w.onAbort)
    if (err !== undefined && 'seq' in w) this.stats.proposalsFailed++
    if (err !== undefined) w.reject(err)
  }

  // ---------------------------------------------------------------------------------------------
  // transport callbacks

  #receive (from: NodeId, messages: Message[]): void {
    if (this.#state !== 'running') return
    // Only members may talk to the group (a node that joins knows no members until its first snapshot).
    const open = this.#members.size === 0
    for (const m of messages) {
      if (m.type === MessageType.Prop && m.reject && m.from === from && this.#knows(from)) {
        // the leader dropped proposals this node forwarded (a transfer, a pending membership
        // change): nothing was appended, so they are proposed again on the next tick
        this.#report({ kind: 'dropped', peer: from, messages: [m] })
        continue
      }
      if (!open && !this.#knows(from)) {
        this.stats.messagesDropped++
        continue
      }
      if (this.#inbox.length >= this.#inboxMax) {
        this.stats.messagesDropped++
        continue
      }
      this.#inbox.push(m)
    }
    this.#signal()
  }

  #knows (id: NodeId): boolean {
    return this.#members.has(id) || this.#isPeer(id)
  }

  #report (r: Report): void {
    if (this.#state !== 'running') return
    if (this.#reports.length < this.#inboxMax) this.#reports.push(r)
    this.#signal()
  }

  #signal (): void {
    this.#dirty = true
    const wake = this.#wake
    this.#wake = undefined
    wake?.()
  }

  // ---------------------------------------------------------------------------------------------
  // the loop

  async #run (): Promise<void> {
    const node = this.#node as RawNode
    try {
      while (this.#state === 'running') {
        this.#drain(node)
        if (node.hasReady()) {
          await this.#handleReady(node)
          continue
        }
        if (!this.#dirty) await new Promise<void>((resolve) => { this.#wake = resolve })
      }
    } catch (err) {
      this.#fail(err as Error)
    }
  }

  /** Steps every input that arrived since the last turn. */
  #drain (node: RawNode): void {
    this.#dirty = false
    const ticks = this.#pendingTicks
    this.#pendingTicks = 0
    for (let i = 0; i < ticks; i++) {
      node.tick()
      this.#ticks++
    }
    if (ticks > 0) this.#submitBlocked = false

    const inbox = this.#inbox
    this.#inbox = []
    for (const m of inbox) node.step(m)

    const reports = this.#reports
    this.#reports = []
    for (const r of reports) {
      if (r.kind === 'snapshot') node.reportSnapshot(r.peer, r.ok)
      else if (r.kind === 'unreachable') node.reportUnreachable(r.peer)
      else if (r.kind === 'transfer') node.transferLeadership(r.to)
      else this.#requeue(r.messages)
    }

    if (!this.#submitBlocked && this.#unsubmitted.length > 0) {
      let n = 0
      for (; n < this.#unsubmitted.length; n++) {
        const p = this.#unsubmitted[n]
        if (p.done) continue
        try {
          p.term = p.cc !== undefined ? node.proposeConfChange(p.cc) : node.propose(p.entry)
        } catch (err) {
          if ((err as Error).name !== 'ProposalDropped') throw err
          this.#submitBlocked = true
          break
        }
        p.submitted = true
      }
      this.#unsubmitted.splice(0, n)
    }

    if (this.#lead !== '') {
      for (const r of this.#reads.values()) {
        if (r.done || r.index !== undefined) continue
        if (r.requestedAt !== undefined && this.#ticks - r.requestedAt < this.#electionTick) continue
        r.requestedAt = this.#ticks
        node.readIndex(r.context)
      }
    }
  }

  /**
   * Proposals whose forwarding message was dropped before it was written (typically: forwarded to a
   * leader that just died) never reached any log, so proposing them again cannot apply them twice.
   * They are retried on the next tick, by then usually towards the new leader.
   */
  #requeue (messages: Message[]): void {
    for (const m of messages) {
      for (const e of m.entries) {
        const env = openEnvelope(e.data)
        if (env === undefined || Buffer.compare(env.nonce, this.#nonce) !== 0) continue
        const p = this.#proposals.get(env.seq)
        // The notice must be about its latest submission (the mark of its term): one about an earlier
        // submission, already proposed again, says nothing about the one that may be in a log now.
        if (p === undefined || p.done || !p.submitted || e.term !== p.term) continue
        p.submitted = false
        this.#unsubmitted.push(p)
        this.#submitBlocked = true
        this.stats.proposalsRequeued++
      }
    }
  }

  /**
   * Proposes again every submitted proposal meant for a term before the one of the last applied entry:
   * committed entries never go back to an earlier term, so once an entry of a later term is applied,
   * one of the proposal's term that was not applied before it never will be (its leader died or
   * stepped down before it committed). Without this, a forwarded proposal lost with its leader would
   * wait for its whole deadline and end as "may still be applied".
   */
  #retryLost (): void {
    for (const p of this.#proposals.values()) {
      if (p.done || !p.submitted || p.uncertain || p.term >= this.#appliedTerm) continue
      p.submitted = false
      this.#unsubmitted.push(p)
      this.stats.proposalsRetried++
      this.#log('raft group %d on %s: proposal %d of term %d was lost (term %d applied): proposed again', this.group, this.id, p.seq, p.term, this.#appliedTerm)
    }
  }

  async #handleReady (node: RawNode): Promise<void> {
    const rd: Ready = node.ready()
    this.stats.readies++
    if (rd.softState !== undefined) {
      const before = this.#lead
      this.#lead = rd.softState.lead
      this.#role = rd.softState.state
      if (before !== this.#lead) {
        this.#submitBlocked = false
        for (const r of this.#reads.values()) if (r.index === undefined) r.requestedAt = undefined
        this.#log('raft group %d on %s: leader %s (%s)', this.group, this.id, this.#lead === '' ? 'none' : this.#lead, this.#role)
      }
    }

    // 1. A leader's appends and heartbeats go out at once, replicating while it fsyncs.
    let late = rd.messages
    if (late.length > 0 && this.#sendsEarly(rd)) {
      const early = late.filter((m) => m.type === MessageType.App || m.type === MessageType.Heartbeat)
      if (early.length > 0) {
        late = late.filter((m) => m.type !== MessageType.App && m.type !== MessageType.Heartbeat)
        this.#transport.send(this.group, early)
        this.stats.messagesSentEarly += early.length
      }
    }

    // 2. Persist before sending anything that depends on it (votes, a follower's acknowledgements).
    //    A Ready that only moves the commit index holds nothing that messages or applying depend on
    //    (its committed entries came in earlier Readies, all durable by now): its write overlaps them.
    let saving: Promise<void> | undefined
    if (rd.snapshot !== undefined || rd.entries.length > 0 || rd.hardState !== undefined) {
      saving = this.#persist(rd)
      if (this.#commitOnly(rd)) {
        saving.catch(() => {}) // awaited before advance
      } else {
        await saving
        saving = undefined
      }
    }

    // 3. A snapshot from the leader is restored before this Ready's messages go out: they carry its
    //    acknowledgement, after which the leader counts this node as caught up, so what the state
    //    machine must fetch to be whole (GroupStateMachine.restored) comes first. Holding messages
    //    back is always safe; only sending them before their fsync would not be.
    const termBefore = this.#appliedTerm
    if (rd.snapshot !== undefined) await this.#restore(rd.snapshot)

    // 4. Send the rest.
    if (late.length > 0) this.#transport.send(this.group, late)

    // 5. Apply.
    for (const e of rd.committedEntries) this.#apply(node, e)
    if (this.#appliedTerm > termBefore) this.#retryLost()

    // 6. Read states.
    for (const rs of rd.readStates) {
      const r = this.#reads.get(hex(rs.context))
      if (r !== undefined && !r.done && r.index === undefined) r.index = rs.index
    }

    // 7. Advance, once everything of this Ready is durable.
    if (saving !== undefined) await saving
    node.advance(rd)

    this.#serveReads()
    if ((this.#applied - this.#snapshotIndex >= this.#snapshotEvery || this.#appliedBytes >= this.#snapshotBytes) &&
      this.#clock.now() >= this.#snapshotNotBefore) await this.#snapshot()
  }

  /** Replaces the state machine's state with a snapshot the leader sent, and lets it fetch what it lacks. */
  async #restore (s: Snapshot): Promise<void> {
    for (const p of this.#proposals.values()) if (p.submitted) p.uncertain = true
    this.#sm.restore(s.data, s.metadata.index)
    this.#applied = s.metadata.index
    this.#appliedTerm = s.metadata.term
    this.#snapshotIndex = s.metadata.index
    this.#appliedBytes = 0
    this.#setConfState(s.metadata.confState)
    this.stats.snapshotsRestored++
    this.#log('raft group %d on %s restored a snapshot at %d', this.group, this.id, s.metadata.index)
    if (this.#sm.restored === undefined) return
    const deadline = timeoutSignal(this.#clock, RESTORED_WAIT_MS_MAX, () => new DeadlineExceededError('the state machine did not finish restoring in time'))
    try {
      await Promise.race([
        this.#sm.restored(s.metadata.index, deadline.signal),
        new Promise<never>((_resolve, reject) => { deadline.signal.addEventListener('abort', () => { reject(deadline.signal.reason as Error) }, { once: true }) })
      ])
    } catch (err) {
      this.#log.error('raft group %d on %s: after restoring the snapshot at %d: %s (acknowledged all the same)', this.group, this.id, s.metadata.index, (err as Error).message)
    } finally {
      deadline.clear()
    }
  }

  async #persist (rd: Ready): Promise<void> {
    await this.#storage.saveReady(rd)
    if (rd.hardState !== undefined) this.#durable = { ...rd.hardState }
    this.stats.persistBatches++
    this.stats.entriesPersisted += rd.entries.length
  }

  /**
   * A Ready whose only durable change is the commit index (term and vote as already durable), and
   * which applies no conf change: a configuration is applied only once the commit index covering it
   * is durable. Otherwise a node could show (and an operator act on) a configuration that a crash
   * takes back — restarted with the older commit index, it counts a removed voter again and waits
   * for a vote that never comes once that node is shut down (stack simulation, seed 31002061).
   */
  #commitOnly (rd: Ready): boolean {
    return rd.hardState !== undefined && !mustSync(rd, this.#durable) && !holdsConfChange(rd.committedEntries)
  }

  /**
   * Whether this Ready's App and Heartbeat messages may be sent before its entries are durable
   * (Raft thesis §10.2.1: a leader may write its log in parallel with replicating it). Safe because
   * the leader counts itself towards a commit only for durable entries: acknowledgements are stepped
   * in a later loop turn, after this Ready's fsync completed, so no commit can rest on the leader's
   * unsynced copy. Only while the term and vote are already durable: a message of a term this node
   * might forget in a crash could let it lead that term twice (a single voter that campaigns and
   * wins in one Ready), and only without a snapshot to install.
   *
   * Never when the leader is the only voter: the core counts the leader's own entries at once, so a
   * lone voter's commit index covers this Ready's entries before they are durable, and every App or
   * Heartbeat carries that index. A learner told so early would apply — and answer a client for — an
   * entry the voter loses if it crashes before its fsync. With two or more voters a commit needs
   * another voter's acknowledgement, which is stepped only after this Ready's fsync (see above).
   */
  #sendsEarly (rd: Ready): boolean {
    if (this.#role !== StateType.Leader || rd.snapshot !== undefined) return false
    if (this.#confState.voters.length === 1 && !mutations.lonelyEarlySend) return false
    const hs = rd.hardState
    return hs === undefined || (hs.term === this.#durable.term && hs.vote === this.#durable.vote)
  }

  #apply (node: RawNode, e: Entry): void {
    if (e.index <= this.#applied) return
    this.#appliedTerm = e.term
    if (e.type === EntryType.ConfChange) {
      let cc
      try {
        cc = decodeConfChange(e.data)
      } catch (err) {
        // The leader validates conf changes before appending them; every replica skips this alike.
        this.#log.error('raft group %d: committed conf change at %d does not decode: %s', this.group, e.index, (err as Error).message)
      }
      if (cc !== undefined) {
        const cs = node.applyConfChange(cc)
        this.#setConfState(cs)
        this.#resolveOwn(cc.context === undefined ? undefined : openEnvelope(cc.context),
          (p) => { p.resolveConf?.({ voters: [...cs.voters], learners: [...cs.learners] }) })
      }
    } else if (e.data.byteLength > 0) {
      const env = openEnvelope(e.data)
      if (env === undefined) {
        this.stats.foreignEntries++
        this.#log.error('raft group %d: committed entry %d is not a proposal envelope: skipped', this.group, e.index)
      } else {
        const result = this.#sm.apply(env.payload, e.index)
        this.stats.entriesApplied++
        this.#appliedBytes += e.data.byteLength
        this.#resolveOwn(env, (p) => { p.resolve(result) })
      }
    }
    this.#applied = e.index
  }

  /** Completes the waiting call of this group instance's own proposal carried by `env`, if any. */
  #resolveOwn (env: { nonce: Uint8Array, seq: number } | undefined, complete: (p: PendingProposal<R>) => void): void {
    if (env === undefined || Buffer.compare(env.nonce, this.#nonce) !== 0) return
    const p = this.#proposals.get(env.seq)
    if (p === undefined) return
    this.#proposals.delete(env.seq)
    if (p.done) return
    this.#settle(p)
    this.stats.proposalsApplied++
    complete(p)
  }

  #serveReads (): void {
    for (const r of this.#reads.values()) {
      if (r.done || r.index === undefined || r.index > this.#applied) continue
      this.#reads.delete(r.key)
      this.#settle(r)
      r.run()
    }
  }

  /** Snapshots the state machine at the applied index and compacts the log before it. */
  async #snapshot (): Promise<void> {
    const index = this.#applied
    if (this.#sm.settle !== undefined) {
      try {
        await this.#sm.settle()
      } catch (err) {
        this.#snapshotNotBefore = this.#clock.now() + SNAPSHOT_RETRY_MS
        this.#log.error('raft group %d on %s: no snapshot at %d yet, the state machine has not settled: %s', this.group, this.id, index, (err as Error).message)
        return
      }
    }
    this.#appliedBytes = 0
    const data = this.#sm.snapshot()
    await this.#storage.createSnapshot(index, this.#confState, data)
    this.#snapshotIndex = index
    this.stats.snapshotsCreated++
    const compactTo = index - this.#snapshotKeep
    if (compactTo >= this.#storage.firstIndex()) await this.#storage.compact(compactTo)
    this.#log('raft group %d on %s: snapshot at %d (%d bytes), log compacted to %d', this.group, this.id, index, data.byteLength, compactTo)
  }

  #setConfState (cs: ConfState): void {
    this.#confState = { voters: [...cs.voters], learners: [...cs.learners] }
    this.#members = new Set([...cs.voters, ...cs.learners])
  }
}
