/**
 * The seeded randomized simulation of a Raft group.
 *
 * A discrete-event simulation in virtual time (TICK time units per Raft tick). Each step pops the
 * earliest event (a node's tick, the delivery of one message, a client operation, a fault) from a
 * heap ordered by (time, insertion sequence), runs it, lets the nodes' drivers handle their Ready
 * batches, then checks the properties. Every random choice comes from one seeded Rng, so a seed
 * replays the same run; the trace of every step is hashed to prove it.
 *
 * A run has two phases. In the chaos phase (`steps` steps) messages are delayed, reordered, lost and
 * duplicated, partitions form and heal, nodes crash and restart from their disk, membership changes
 * (learner added, promoted, voters removed including the leader) and nodes snapshot and compact their
 * logs. Then faults stop: the network heals, crashed nodes restart, and within LIVENESS_TIMEOUTS
 * election timeouts a leader must exist and every proposal accepted by a leader that stayed leader
 * must be applied on every live member.
 */
import { Checker } from './checker.js'
import { SimViolation } from './errors.js'
import { fnvString, hex32 } from './hash.js'
import { EventHeap } from './heap.js'
import { SimNode } from './node.js'
import {
  ConfChangeType, EntryType, MemoryStorage, MessageType, RawNode, StateType, decodeConfChange,
  type ConfChange, type ConfState, type Entry, type Message, type Ready, type Snapshot
} from './raft-api.js'
import { Rng } from './rng.js'
import { StateMachine, decodeWrite, encodeWrite, entryHash } from './state-machine.js'

/** Virtual time units per Raft tick. Message delays are a fraction of a tick up to a few ticks. */
export const TICK = 10
/** After the heal, a leader must make accepted proposals durable everywhere within this many timeouts. */
export const LIVENESS_TIMEOUTS = 20

export interface SimOptions {
  seed: number
  /** Size of the initial group (all voters). */
  nodes: number
  /** Steps of the chaos phase; the quiet phase that checks liveness follows. */
  steps: number
  electionTick?: number
  /** Fault families, all on by default. */
  crashes?: boolean
  partitions?: boolean
  membership?: boolean
  snapshots?: boolean
  /** Receives every trace line (slow; for --verbose and debugging). */
  onTrace?: (line: string) => void
  /** How many trace lines a violation report carries. */
  traceTail?: number
  /**
   * Deliberately break the driver, to show the checks catch real bugs: 'early-reads' serves ReadIndex
   * reads before the state machine caught up with the read index; 'forget-votes' persists hard states
   * without the vote, so a restarted node may vote twice in one term; 'eager-retry' proposes a write
   * again as soon as its proposer's term passed the write's, instead of once an entry of a later term
   * is applied without it, so a write its old leader did replicate may be applied twice.
   */
  sabotage?: 'none' | 'early-reads' | 'forget-votes' | 'eager-retry'
}

export interface SimStats {
  seed: number
  nodes: number
  steps: number
  ticks: number
  elections: number
  proposals: number
  proposalsDropped: number
  /** Writes proposed again by their proposer once an entry of a later term was applied without them. */
  proposalsRetried: number
  writesApplied: number
  writesAcked: number
  reads: number
  readsIssued: number
  snapshotsSent: number
  snapshotsInstalled: number
  compactions: number
  confChanges: number
  crashes: number
  restarts: number
  partitions: number
  leaderTransfers: number
  messagesSent: number
  messagesDelivered: number
  messagesDropped: number
  /** Ticks from the heal until liveness held. */
  livenessTicks: number
  preVote: boolean
  checkQuorum: boolean
  /** FNV-1a over every trace line: equal for equal runs. */
  traceHash: string
}

type SimEvent =
  | { kind: 'tick', node: string, inc: number, time: number, seq: number }
  | { kind: 'deliver', msg: Message, time: number, seq: number }
  | { kind: 'snapStatus', from: string, inc: number, to: string, ok: boolean, time: number, seq: number }
  | { kind: 'client', time: number, seq: number }
  | { kind: 'fault', time: number, seq: number }
  | { kind: 'decommission', node: string, time: number, seq: number }
  | { kind: 'crash', node: string, inc: number, time: number, seq: number }
  | { kind: 'restart', node: string, inc: number, time: number, seq: number }

/** An event before the heap gives it its insertion number. */
type Unsequenced<T> = T extends unknown ? Omit<T, 'seq'> : never

interface Proposal {
  id: string
  node: string
  inc: number
  term: number
  /** The node was leader of `term` when it accepted the proposal. */
  asLeader: boolean
  acked: boolean
  /**
   * Its proposer restored a snapshot while it was outstanding, so it may be applied inside it: the
   * driver never proposes it again (RaftGroup does the same).
   */
  uncertain: boolean
}

interface IssuedRead {
  node: string
  inc: number
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

function isProposalDropped (err: unknown): boolean {
  return err instanceof Error && /ProposalDropped/.test(err.name)
}

function cloneEntry (e: Entry): Entry {
  return { term: e.term, index: e.index, type: e.type, data: e.data }
}

function cloneConfState (cs: ConfState): ConfState {
  return { voters: cs.voters.slice(), learners: cs.learners.slice() }
}

function cloneSnapshot (s: Snapshot): Snapshot {
  return {
    metadata: { index: s.metadata.index, term: s.metadata.term, confState: cloneConfState(s.metadata.confState) },
    data: s.data
  }
}

/** A copy of a message as a wire codec would deliver it: no object is shared between two nodes. */
function cloneMessage (m: Message): Message {
  const c: Message = { ...m, entries: m.entries.map(cloneEntry) }
  if (m.snapshot !== undefined) c.snapshot = cloneSnapshot(m.snapshot)
  if (m.context !== undefined) c.context = m.context.slice()
  return c
}

export class Simulation {
  readonly opts: Required<Omit<SimOptions, 'onTrace'>> & { onTrace?: (line: string) => void }
  readonly checker: Checker
  readonly stats: SimStats

  private readonly rng: Rng
  private readonly netRng: Rng
  private readonly faultRng: Rng
  private readonly clientRng: Rng
  private readonly driverRng: Rng
  private readonly nodeRng: Rng

  private readonly heap = new EventHeap<SimEvent>()
  private seq = 0
  private now = 0
  private step = 0
  private traceHash = 0x811c9dc5
  private readonly tail: string[] = []

  readonly nodes = new Map<string, SimNode>()
  /** Node ids in creation order (iteration order of every per-node loop). */
  private readonly order: string[] = []
  private nextNodeNo: number
  private readonly heartbeatTick: number
  private readonly preVote: boolean
  private readonly checkQuorum: boolean
  private readonly maxSizePerMsg: number
  private readonly maxInflightMsgs: number

  // network
  private lossRate = 0
  private dupRate = 0
  private partition: Map<string, number> | null = null

  // clients
  private nextWrite = 0
  private nextRead = 0
  private readonly proposals = new Map<string, Proposal>()
  private readonly reads = new Map<string, IssuedRead>()
  private readonly appliedWrites = new Set<string>()

  // membership
  private nextConf = 0
  private pendingConf: { id: string, time: number } | null = null
  private readonly appliedConf = new Set<string>()

  // nodes touched by the current step (their role may have changed)
  private readonly touched = new Set<string>()
  /** Highest index whose commitment the checker was told about. */
  private commitScanned = 0

  private phase: 'chaos' | 'quiet' = 'chaos'
  private healTime = 0
  private readonly markers = new Set<string>()

  constructor (options: SimOptions) {
    this.opts = {
      electionTick: 10,
      crashes: true,
      partitions: true,
      membership: true,
      snapshots: true,
      traceTail: 40,
      sabotage: 'none',
      ...options
    }
    this.rng = new Rng(options.seed)
    this.netRng = this.rng.fork()
    this.faultRng = this.rng.fork()
    this.clientRng = this.rng.fork()
    this.driverRng = this.rng.fork()
    this.nodeRng = this.rng.fork()
    this.heartbeatTick = this.rng.pick([1, 2, 3])
    this.preVote = this.rng.chance(0.75)
    this.checkQuorum = this.rng.chance(0.75)
    this.maxSizePerMsg = this.rng.pick([256, 4096, 1 << 20])
    this.maxInflightMsgs = this.rng.pick([2, 16, 256])
    this.nextNodeNo = this.opts.nodes + 1
    this.checker = new Checker({
      seed: options.seed,
      step: () => this.step,
      traceTail: () => this.tail.slice()
    })
    this.stats = {
      seed: options.seed,
      nodes: options.nodes,
      steps: 0,
      ticks: 0,
      elections: 0,
      proposals: 0,
      proposalsDropped: 0,
      proposalsRetried: 0,
      writesApplied: 0,
      writesAcked: 0,
      reads: 0,
      readsIssued: 0,
      snapshotsSent: 0,
      snapshotsInstalled: 0,
      compactions: 0,
      confChanges: 0,
      crashes: 0,
      restarts: 0,
      partitions: 0,
      leaderTransfers: 0,
      messagesSent: 0,
      messagesDelivered: 0,
      messagesDropped: 0,
      livenessTicks: 0,
      preVote: this.preVote,
      checkQuorum: this.checkQuorum,
      traceHash: ''
    }
  }

  // ---------------------------------------------------------------- run

  run (): SimStats {
    const ids: string[] = []
    for (let i = 1; i <= this.opts.nodes; i++) ids.push(`n${i}`)
    this.trace(`start seed=${this.opts.seed} nodes=${ids.join(',')} hb=${this.heartbeatTick} preVote=${this.preVote} ` +
      `checkQuorum=${this.checkQuorum} maxSize=${this.maxSizePerMsg} inflight=${this.maxInflightMsgs}`)
    for (const id of ids) {
      const confState: ConfState = { voters: ids.slice(), learners: [] }
      this.addNode(id, new MemoryStorage({ confState: cloneConfState(confState) }), confState)
    }
    this.schedule({ kind: 'client', time: this.clientRng.range(1, 20) })
    this.schedule({ kind: 'fault', time: this.faultRng.range(5, 30) * TICK })

    const deadlineTicks = LIVENESS_TIMEOUTS * this.opts.electionTick
    for (;;) {
      const ev = this.heap.pop()
      if (ev === undefined) this.checker.fail('liveness', 'no events left: every node is down')
      if (this.isStale(ev)) continue
      this.step++
      this.now = ev.time
      this.touched.clear()
      try {
        this.handle(ev)
        this.processReadies()
        this.checkLeaders()
      } catch (err) {
        if (err instanceof SimViolation) throw err
        const e = err as Error
        this.checker.fail('core-exception', `${e.name}: ${e.message}\n${(e.stack ?? '').split('\n').slice(1, 6).join('\n')}`)
      }
      if (this.phase === 'chaos' && this.step >= this.opts.steps) this.heal()
      if (this.phase === 'quiet' && ev.kind === 'tick') {
        if (this.livenessHolds()) {
          this.stats.livenessTicks = Math.ceil((this.now - this.healTime) / TICK)
          break
        }
        if (this.now - this.healTime > deadlineTicks * TICK) {
          this.checker.fail('liveness', `no progress ${deadlineTicks} ticks after the heal: ${this.describeNodes()}`)
        }
      }
    }

    this.stats.steps = this.step
    this.stats.elections = this.checker.elections
    this.stats.writesApplied = this.appliedWrites.size
    this.stats.writesAcked = this.checker.ackedCount
    this.stats.traceHash = hex32(this.traceHash)
    return this.stats
  }

  private schedule (ev: Unsequenced<SimEvent>): void {
    this.heap.push({ ...ev, seq: this.seq++ })
  }

  private isStale (ev: SimEvent): boolean {
    if (ev.kind === 'tick') {
      const n = this.nodes.get(ev.node)
      return n === undefined || !n.up || n.incarnation !== ev.inc
    }
    if (ev.kind === 'fault' || ev.kind === 'client') return this.phase !== 'chaos'
    return false
  }

  private trace (line: string): void {
    const l = `${this.step} @${this.now} ${line}`
    this.traceHash = fnvString(l, this.traceHash)
    this.tail.push(l)
    if (this.tail.length > this.opts.traceTail) this.tail.shift()
    this.opts.onTrace?.(l)
  }

  // ---------------------------------------------------------------- nodes

  private addNode (id: string, disk: MemoryStorage, confState: ConfState): SimNode {
    const node = new SimNode(id, disk, confState, this.nodeRng.fork())
    node.sm = StateMachine.restore(disk.snapshot())
    this.checker.observeRestore(id, node.sm.appliedIndex, node.sm.fingerprint, true)
    node.snapEvery = this.driverRng.range(10, 60)
    this.nodes.set(id, node)
    this.order.push(id)
    this.boot(node, 0)
    return node
  }

  /** Builds the RawNode over the node's disk and starts its clock. */
  private boot (node: SimNode, applied: number): void {
    node.incarnation++
    node.raft = new RawNode({
      id: node.id,
      electionTick: this.opts.electionTick,
      heartbeatTick: this.heartbeatTick,
      storage: node.disk,
      rand: node.rng.fork().asRand(),
      applied,
      preVote: this.preVote,
      checkQuorum: this.checkQuorum,
      maxSizePerMsg: this.maxSizePerMsg,
      maxInflightMsgs: this.maxInflightMsgs
    })
    node.hsTerm = node.disk.initialState().hardState.term
    this.schedule({ kind: 'tick', node: node.id, inc: node.incarnation, time: this.now + 1 + this.nodeRng.int(TICK) })
  }

  private crash (node: SimNode, why: 'crash' | 'decommission'): void {
    this.trace(`${why} ${node.id}`)
    if (why === 'crash') this.stats.crashes++
    node.role = ''
    node.raft = null
    node.incarnation++
    node.pendingReads = []
    this.checker.observeNotLeader(node.id)
  }

  /**
   * Restarts a crashed node from what its disk holds: the state machine from the disk's snapshot, then
   * either the core re-delivers the committed entries after it (applied = snapshot index), or the driver
   * re-applies them itself and tells the core (applied = commit) when none of them is a ConfChange (the
   * core takes the membership from the disk, so ConfChanges after the snapshot must go through it).
   */
  private restart (node: SimNode): void {
    const { hardState, confState } = node.disk.initialState()
    const snap = node.disk.snapshot()
    const sm = StateMachine.restore(snap)
    if (sm.appliedIndex !== snap.metadata.index) {
      throw new Error(`snapshot on ${node.id}'s disk at ${snap.metadata.index} holds state at ${sm.appliedIndex}`)
    }
    node.sm = sm
    node.confState = cloneConfState(confState)
    node.appliedSinceSnap = 0
    this.checker.resetNode(node.id)
    this.checker.observeRestore(node.id, sm.appliedIndex, sm.fingerprint, true)
    let applied = sm.appliedIndex
    if (hardState.commit > applied && this.driverRng.chance(0.5)) {
      const ents = node.disk.entries(applied + 1, hardState.commit + 1)
      if (ents.every(e => e.type !== EntryType.ConfChange)) {
        node.hsTerm = hardState.term
        for (const e of ents) this.applyEntry(node, e, null)
        applied = hardState.commit
      }
    }
    this.stats.restarts++
    this.trace(`restart ${node.id} applied=${applied} commit=${hardState.commit} term=${hardState.term}`)
    this.boot(node, applied)
  }

  private upNodes (): SimNode[] {
    const out: SimNode[] = []
    for (const id of this.order) {
      const n = this.nodes.get(id) as SimNode
      if (n.up) out.push(n)
    }
    return out
  }

  /** The live leader with the highest term, if any. */
  private leader (): SimNode | undefined {
    let best: SimNode | undefined
    let bestTerm = -1
    for (const n of this.upNodes()) {
      const st = (n.raft as RawNode).status()
      if (st.state === StateType.Leader && st.term > bestTerm) {
        best = n
        bestTerm = st.term
      }
    }
    return best
  }

  // ---------------------------------------------------------------- events

  private handle (ev: SimEvent): void {
    switch (ev.kind) {
      case 'tick': {
        const n = this.nodes.get(ev.node) as SimNode
        this.stats.ticks++
        ;(n.raft as RawNode).tick()
        this.touched.add(n.id)
        const jitter = this.nodeRng.chance(0.1) ? this.nodeRng.range(-2, 2) : 0
        this.schedule({ kind: 'tick', node: n.id, inc: n.incarnation, time: ev.time + TICK + jitter })
        if (this.phase === 'quiet') this.quietTick()
        return
      }
      case 'deliver':
        this.deliver(ev.msg, ev.time)
        return
      case 'snapStatus': {
        const n = this.nodes.get(ev.from)
        this.trace(`snapStatus ${ev.from}->${ev.to} ${ev.ok ? 'ok' : 'failed'}`)
        if (n?.up === true && n.incarnation === ev.inc) {
          ;(n.raft as RawNode).reportSnapshot(ev.to, ev.ok)
          this.touched.add(n.id)
        }
        return
      }
      case 'client':
        this.clientOp()
        this.schedule({ kind: 'client', time: ev.time + this.clientRng.range(2, 25) })
        return
      case 'fault':
        this.fault()
        this.schedule({ kind: 'fault', time: ev.time + this.faultRng.range(3, 20) * TICK })
        return
      case 'crash': {
        const n = this.nodes.get(ev.node) as SimNode
        if (n.up && n.incarnation === ev.inc && this.phase === 'chaos') {
          this.crash(n, 'crash')
          // A process bounce: back within a few ticks, while its peers' messages are still in flight.
          this.schedule({ kind: 'restart', node: n.id, inc: n.incarnation, time: this.now + this.driverRng.range(1, 3 * TICK) })
        }
        return
      }
      case 'restart': {
        const n = this.nodes.get(ev.node) as SimNode
        if (!n.up && !n.decommissioned && n.incarnation === ev.inc) this.restart(n)
        return
      }
      case 'decommission': {
        const n = this.nodes.get(ev.node) as SimNode
        if (!n.decommissioned) {
          n.decommissioned = true
          if (n.up) this.crash(n, 'decommission')
          else this.trace(`decommission ${n.id} (down)`)
        }
      }
    }
  }

  // ---------------------------------------------------------------- network

  private partitioned (a: string, b: string): boolean {
    const p = this.partition
    if (p === null) return false
    return (p.get(a) ?? 0) !== (p.get(b) ?? 0)
  }

  private send (from: SimNode, m: Message): void {
    this.stats.messagesSent++
    if (m.type === MessageType.Snap) this.stats.snapshotsSent++
    // A forwarded proposal is never duplicated: RaftTransport writes a frame once and never sends it
    // again (a duplicated Prop would be appended twice by any Raft; telling them apart is the
    // application's business). Every other message may be.
    const duplicated = this.netRng.chance(this.dupRate)
    const copies = duplicated && m.type !== MessageType.Prop ? 2 : 1
    for (let c = 0; c < copies; c++) {
      if (this.netRng.chance(this.lossRate)) {
        this.stats.messagesDropped++
        if (m.type === MessageType.Snap) {
          this.schedule({ kind: 'snapStatus', from: from.id, inc: from.incarnation, to: m.to, ok: false, time: this.now + TICK })
        }
        continue
      }
      const delay = this.netRng.chance(0.05) ? this.netRng.range(TICK, 6 * TICK) : this.netRng.range(1, 2 * TICK)
      this.schedule({ kind: 'deliver', msg: cloneMessage(m), time: this.now + delay })
    }
  }

  private deliver (m: Message, time: number): void {
    const desc = `${m.type} ${m.from}->${m.to} t${m.term} i${m.index} lt${m.logTerm} c${m.commit} n${m.entries.length}` +
      `${m.reject ? ` rej${m.rejectHint}` : ''}${m.snapshot !== undefined ? ` snap${m.snapshot.metadata.index}` : ''}`
    const to = this.nodes.get(m.to)
    const from = this.nodes.get(m.from)
    if (to === undefined || !to.up || this.partitioned(m.from, m.to)) {
      this.stats.messagesDropped++
      this.trace(`drop ${desc}`)
      // The sender's transport notices (not always: a dead peer may look merely slow).
      if (from?.up === true && this.netRng.chance(0.5)) {
        ;(from.raft as RawNode).reportUnreachable(m.to)
        this.touched.add(from.id)
      }
      if (m.type === MessageType.Snap && from?.up === true) {
        this.schedule({ kind: 'snapStatus', from: from.id, inc: from.incarnation, to: m.to, ok: false, time: time + 1 })
      }
      return
    }
    this.stats.messagesDelivered++
    this.trace(desc)
    try {
      ;(to.raft as RawNode).step(m)
    } catch (err) {
      if (!isProposalDropped(err)) throw err
    }
    this.touched.add(to.id)
    if (m.type === MessageType.Snap && from?.up === true) {
      this.schedule({ kind: 'snapStatus', from: from.id, inc: from.incarnation, to: m.to, ok: true, time: time + 1 })
    }
  }

  // ---------------------------------------------------------------- driver

  private processReadies (): void {
    for (const id of this.order) {
      const n = this.nodes.get(id) as SimNode
      if (!n.up || !(n.raft as RawNode).hasReady()) continue
      // A driver is sometimes slow: the Ready waits, and a crash now loses its unstable part.
      if (this.phase === 'chaos' && !this.driverRng.chance(0.8)) continue
      this.handleReady(n)
      this.touched.add(id)
    }
  }

  /** One Ready, in the order types.ts prescribes: persist, send, apply, serve reads, advance. */
  private handleReady (node: SimNode): void {
    const raft = node.raft as RawNode
    const disk = node.disk
    const rd: Ready = raft.ready()
    const snap = rd.snapshot !== undefined && rd.snapshot.metadata.index > 0 ? rd.snapshot : undefined

    // 1. persist: snapshot, entries, hard state.
    if (snap !== undefined) {
      disk.applySnapshot(snap)
    }
    if (rd.entries.length > 0) {
      const first = rd.entries[0]
      let prevTerm: number
      try {
        prevTerm = disk.term(first.index - 1)
      } catch {
        prevTerm = -1
      }
      for (const e of rd.entries) {
        this.checker.observeAppend(node.id, e.index, e.term, entryHash(e), prevTerm)
        prevTerm = e.term
      }
      disk.append(rd.entries)
    }
    if (rd.hardState !== undefined) {
      const hs = rd.hardState
      this.checker.observeCommitIndex(node.id, hs.commit, disk.lastIndex())
      disk.setHardState({ term: hs.term, vote: this.opts.sabotage === 'forget-votes' ? '' : hs.vote, commit: hs.commit })
      // Crash soon after casting a vote sometimes: the vote must have been durable (Raft §5.2).
      if (hs.vote !== '' && hs.vote !== node.id && this.phase === 'chaos' && this.opts.crashes &&
          this.driverRng.chance(0.05)) {
        this.schedule({ kind: 'crash', node: node.id, inc: node.incarnation, time: this.now + this.driverRng.range(1, TICK) })
      }
      node.hsTerm = hs.term
      // Tell the checker about entries this node is the first to know committed.
      const lo = Math.max(this.commitScanned + 1, disk.firstIndex())
      if (hs.commit >= lo) {
        for (const e of disk.entries(lo, hs.commit + 1)) {
          this.checker.observeCommitted(e.index, e.term, entryHash(e), hs.term)
        }
      }
      if (hs.commit > this.commitScanned) this.commitScanned = hs.commit
    }

    // 2. send.
    for (const m of rd.messages) this.send(node, m)

    // 3. apply: snapshot, then committed entries.
    if (snap !== undefined) {
      const sm = StateMachine.restore(snap)
      if (sm.appliedIndex !== snap.metadata.index) {
        this.checker.fail('state-machine-safety', `snapshot for ${node.id} at index ${snap.metadata.index} ` +
          `carries state at ${sm.appliedIndex}`)
      }
      this.checker.observeRestore(node.id, sm.appliedIndex, sm.fingerprint, false)
      for (const p of this.proposals.values()) {
        if (p.node === node.id && p.inc === node.incarnation && !p.acked) p.uncertain = true
      }
      node.sm = sm
      node.confState = cloneConfState(snap.metadata.confState)
      node.appliedSinceSnap = 0
      this.stats.snapshotsInstalled++
      this.trace(`${node.id} installs snapshot ${snap.metadata.index}/${snap.metadata.term}`)
    }
    const termBefore = node.sm.appliedTerm
    for (const e of rd.committedEntries) this.applyEntry(node, e, raft)
    const termNow = this.opts.sabotage === 'eager-retry' ? raft.status().term : node.sm.appliedTerm
    if (termNow > termBefore) this.retryLost(node, raft, termNow)

    // 4. reads.
    for (const rs of rd.readStates) node.pendingReads.push(rs)
    this.serveReads(node)

    // 5. advance.
    raft.advance(rd)

    this.maybeSnapshot(node)
  }

  /**
   * What RaftGroup does: a write this node proposed for a term before the one of the entries it just
   * applied, and did not apply, can never commit (committed terms never decrease along the log), so it
   * is proposed again. The checker's at-most-once property holds the rule to that. `term` is the term
   * of the last applied entry (with the 'eager-retry' sabotage: the node's current term).
   */
  private retryLost (node: SimNode, raft: RawNode, term: number): void {
    for (const p of this.proposals.values()) {
      if (p.node !== node.id || p.inc !== node.incarnation || p.acked || p.uncertain || p.term >= term) continue
      try {
        p.term = raft.propose(encodeWrite(p.id))
      } catch (err) {
        if (!isProposalDropped(err)) throw err
        continue // tried again after the next entry of a later term
      }
      p.asLeader = raft.status().state === StateType.Leader
      this.stats.proposalsRetried++
      this.trace(`retry w${p.id} at ${node.id} t${p.term}`)
    }
  }

  /** Applies one committed entry (`raft` null while restarting: then no ConfChange may come). */
  private applyEntry (node: SimNode, e: Entry, raft: RawNode | null): void {
    if (e.index !== node.sm.appliedIndex + 1) {
      this.checker.fail('apply-order', `${node.id} is handed committed entry ${e.index} after applying ${node.sm.appliedIndex}`)
    }
    const hash = entryHash(e)
    const again = e.type === EntryType.Normal ? decodeWrite(e.data) : undefined
    if (again !== undefined && node.sm.has(again)) {
      this.checker.fail('at-most-once', `${node.id} applies write ${again} a second time, at ${e.index}`)
    }
    const w = node.sm.apply(e, hash)
    this.checker.observeApply(node.id, e.index, e.term, hash, node.sm.fingerprint, node.hsTerm)
    node.appliedSinceSnap++
    if (e.type === EntryType.ConfChange && e.data.length > 0) {
      if (raft === null) throw new Error('ConfChange re-applied without a RawNode')
      const cc = decodeConfChange(e.data)
      node.confState = cloneConfState(raft.applyConfChange(cc))
      this.onConfApplied(node, e.index, cc)
    }
    if (w !== undefined) {
      this.appliedWrites.add(w)
      const p = this.proposals.get(w)
      if (p !== undefined && !p.acked && p.node === node.id && p.inc === node.incarnation) {
        p.acked = true
        this.checker.observeWriteAcked(w)
      }
    }
  }

  private onConfApplied (node: SimNode, index: number, cc: ConfChange): void {
    const ctx = cc.context !== undefined ? decoder.decode(cc.context) : ''
    if (!this.appliedConf.has(ctx)) {
      this.appliedConf.add(ctx)
      this.stats.confChanges++
      this.trace(`conf ${ConfChangeType[cc.type]} ${cc.node} applied at ${index} (${ctx}) first by ${node.id}`)
      if (this.pendingConf?.id === ctx) this.pendingConf = null
      if (cc.type === ConfChangeType.RemoveNode) {
        // Operators shut a removed node down; until then it may still disturb the group.
        const target = this.nodes.get(cc.node)
        if (target !== undefined && !target.decommissioned) {
          this.schedule({ kind: 'decommission', node: cc.node, time: this.now + this.driverRng.range(2, 40) * TICK })
        }
      }
    }
  }

  private serveReads (node: SimNode): void {
    if (node.pendingReads.length === 0) return
    const keep = []
    for (const rs of node.pendingReads) {
      if (rs.index > node.sm.appliedIndex && this.opts.sabotage !== 'early-reads') {
        keep.push(rs)
        continue
      }
      const id = decoder.decode(rs.context)
      const r = this.reads.get(id)
      if (r === undefined || r.node !== node.id || r.inc !== node.incarnation) continue
      this.reads.delete(id)
      this.stats.reads++
      const sm = node.sm
      this.checker.completeRead(id, node.id, w => sm.has(w), sm.appliedIndex)
    }
    node.pendingReads = keep
  }

  /** Every snapEvery applied entries a node snapshots its state at `applied` and compacts its log. */
  private maybeSnapshot (node: SimNode): void {
    if (!this.opts.snapshots || node.appliedSinceSnap < node.snapEvery) return
    const disk = node.disk
    const index = node.sm.appliedIndex
    if (index <= disk.snapshot().metadata.index || index > disk.lastIndex()) return
    disk.createSnapshot(index, cloneConfState(node.confState), node.sm.snapshotData())
    // Keep a few entries so that slightly lagging followers catch up from the log.
    const compactTo = index - this.driverRng.int(8)
    if (compactTo >= disk.firstIndex()) {
      disk.compact(compactTo)
      this.stats.compactions++
    }
    node.appliedSinceSnap = 0
    node.snapEvery = this.driverRng.range(10, 60)
  }

  // ---------------------------------------------------------------- checks

  private checkLeaders (): void {
    for (const id of this.touched) {
      const n = this.nodes.get(id) as SimNode
      if (!n.up) continue
      const st = (n.raft as RawNode).status()
      const role = `${st.state} t${st.term}`
      if (role !== n.role) {
        n.role = role
        this.trace(`${id} is ${role}${st.lead !== '' ? ` lead=${st.lead}` : ''}`)
      }
      if (st.state === StateType.Leader) this.checker.observeLeader(id, st.term, n.logView())
      else this.checker.observeNotLeader(id)
    }
  }

  // ---------------------------------------------------------------- clients

  private clientOp (): void {
    const up = this.upNodes()
    if (up.length === 0) return
    const rng = this.clientRng
    const lead = rng.chance(0.7) ? this.leader() : undefined
    const node = lead ?? rng.pick(up)
    const raft = node.raft as RawNode
    if (rng.chance(0.65)) {
      const id = `${this.nextWrite++}`
      const st = raft.status()
      let term: number
      try {
        term = raft.propose(encodeWrite(id))
      } catch (err) {
        if (!isProposalDropped(err)) throw err
        this.stats.proposalsDropped++
        this.trace(`propose w${id} at ${node.id} dropped`)
        return
      }
      this.proposals.set(id, { id, node: node.id, inc: node.incarnation, term, asLeader: st.state === StateType.Leader, acked: false, uncertain: false })
      this.stats.proposals++
      this.trace(`propose w${id} at ${node.id} (${st.state} t${st.term})`)
    } else {
      const id = `r${this.nextRead++}`
      this.checker.beginRead(id, node.id)
      this.reads.set(id, { node: node.id, inc: node.incarnation })
      try {
        raft.readIndex(encoder.encode(id))
      } catch (err) {
        if (!isProposalDropped(err)) throw err
        this.reads.delete(id)
        this.trace(`read ${id} at ${node.id} dropped`)
        return
      }
      this.stats.readsIssued++
      this.trace(`read ${id} at ${node.id}`)
    }
    this.touched.add(node.id)
  }

  // ---------------------------------------------------------------- faults

  private fault (): void {
    const rng = this.faultRng
    const up = this.upNodes()
    const down = this.order.map(id => this.nodes.get(id) as SimNode).filter(n => !n.up && !n.decommissioned)
    const voters = this.leader()?.confState.voters.length ?? this.opts.nodes
    const choices: Array<[number, () => void]> = []
    if (this.opts.partitions) {
      if (this.partition === null) choices.push([12, () => this.partitionRandom()])
      else choices.push([14, () => this.healPartition()])
    }
    if (this.opts.crashes) {
      if (down.length < Math.floor((voters - 1) / 2) + (rng.chance(0.1) ? 1 : 0) && up.length > 1) {
        choices.push([10, () => this.crash(rng.chance(0.3) ? (this.leader() ?? rng.pick(up)) : rng.pick(up), 'crash')])
      }
      if (down.length > 0) choices.push([12, () => this.restart(rng.pick(down))])
    }
    if (this.opts.membership) choices.push([12, () => this.membershipChange()])
    choices.push([5, () => {
      this.lossRate = rng.pick([0, 0, 0.01, 0.05, 0.15])
      this.dupRate = rng.pick([0, 0.02, 0.1])
      this.trace(`net loss=${this.lossRate} dup=${this.dupRate}`)
    }])
    choices.push([4, () => this.transferLeader()])
    if (up.length > 0) choices.push([2, () => {
      const n = rng.pick(up)
      this.trace(`campaign ${n.id}`)
      ;(n.raft as RawNode).campaign()
      this.touched.add(n.id)
    }])
    let total = 0
    for (const [w] of choices) total += w
    let r = rng.int(total)
    for (const [w, f] of choices) {
      if (r < w) {
        f()
        return
      }
      r -= w
    }
  }

  private partitionRandom (): void {
    const rng = this.faultRng
    const ids = this.order.filter(id => !(this.nodes.get(id) as SimNode).decommissioned)
    const p = new Map<string, number>()
    const lead = this.leader()
    if (lead !== undefined && rng.chance(0.5)) {
      for (const id of ids) p.set(id, id === lead.id ? 1 : 0)
      this.trace(`partition: isolate leader ${lead.id}`)
    } else {
      const shuffled = rng.shuffle(ids)
      const cut = rng.range(1, shuffled.length - 1)
      shuffled.forEach((id, i) => p.set(id, i < cut ? 0 : 1))
      this.trace(`partition: ${shuffled.slice(0, cut).join(',')} | ${shuffled.slice(cut).join(',')}`)
    }
    this.partition = p
    this.stats.partitions++
  }

  private healPartition (): void {
    this.partition = null
    this.trace('partition healed')
  }

  private transferLeader (): void {
    const lead = this.leader()
    if (lead === undefined) return
    const others = lead.confState.voters.filter(v => v !== lead.id)
    if (others.length === 0) return
    const to = this.faultRng.pick(others)
    this.trace(`transfer leadership ${lead.id} -> ${to}`)
    ;(lead.raft as RawNode).transferLeadership(to)
    this.stats.leaderTransfers++
    this.touched.add(lead.id)
  }

  /**
   * One membership change at a time, proposed to the leader: promote a learner, remove a voter (the
   * leader too) while keeping enough voters, remove a learner, or add a brand-new node as a learner.
   */
  private membershipChange (): void {
    const rng = this.faultRng
    if (this.pendingConf !== null && this.now - this.pendingConf.time < 50 * TICK) return
    const lead = this.leader()
    if (lead === undefined) return
    const cs = (lead.raft as RawNode).status().confState
    const minVoters = this.opts.nodes >= 5 ? 3 : 2
    const members = cs.voters.length + cs.learners.length
    const options: Array<() => ConfChange | undefined> = []
    const upLearners = cs.learners.filter(l => this.nodes.get(l)?.up === true)
    if (upLearners.length > 0) options.push(() => ({ type: ConfChangeType.AddVoter, node: rng.pick(upLearners) }))
    if (cs.voters.length > minVoters) {
      options.push(() => {
        const victim = rng.chance(0.3) ? lead.id : rng.pick(cs.voters)
        return { type: ConfChangeType.RemoveNode, node: victim }
      })
    }
    if (cs.learners.length > 0 && rng.chance(0.3)) {
      options.push(() => ({ type: ConfChangeType.RemoveNode, node: rng.pick(cs.learners) }))
    }
    if (members < this.opts.nodes + 1 && this.canAddNewNode()) {
      options.push(() => ({ type: ConfChangeType.AddLearner, node: `n${this.nextNodeNo}` }))
    }
    if (options.length === 0) return
    const cc = rng.pick(options)()
    if (cc === undefined) return
    const id = `cc${this.nextConf++}`
    cc.context = encoder.encode(id)
    try {
      ;(lead.raft as RawNode).proposeConfChange(cc)
    } catch (err) {
      if (!isProposalDropped(err)) throw err
      this.trace(`conf ${ConfChangeType[cc.type]} ${cc.node} (${id}) dropped by ${lead.id}`)
      return
    }
    this.touched.add(lead.id)
    this.pendingConf = { id, time: this.now }
    this.trace(`conf ${ConfChangeType[cc.type]} ${cc.node} (${id}) proposed to ${lead.id}`)
    if (cc.type === ConfChangeType.AddLearner) {
      this.nextNodeNo++
      // A new node starts with an empty disk and no membership; it learns both from a snapshot.
      this.addNode(cc.node, new MemoryStorage(), { voters: [], learners: [] })
    }
  }

  /**
   * A new node starts with an empty log and no membership, so it must learn the membership from a
   * snapshot, never from entries replayed from index 1 (the initial membership is not in the log).
   * MemoryStorage bootstraps founding nodes with a genesis snapshot at index 1, so that holds from the
   * start; this guard keeps the harness safe should that ever change.
   */
  private canAddNewNode (): boolean {
    for (const n of this.nodes.values()) {
      if (n.decommissioned || n.disk.lastIndex() === 0) continue
      if (n.disk.firstIndex() <= 1) return false
    }
    return true
  }

  // ---------------------------------------------------------------- quiet phase and liveness

  private heal (): void {
    this.phase = 'quiet'
    this.healTime = this.now
    this.partition = null
    this.lossRate = 0
    this.dupRate = 0
    this.trace('heal: faults stop, network heals, crashed nodes restart')
    for (const id of this.order) {
      const n = this.nodes.get(id) as SimNode
      if (!n.up && !n.decommissioned) this.restart(n)
    }
  }

  /** In the quiet phase, each new leader gets one marker proposal. */
  private quietTick (): void {
    const lead = this.leader()
    if (lead === undefined) return
    const st = (lead.raft as RawNode).status()
    const key = `${lead.id}/${lead.incarnation}/${st.term}`
    if (this.markers.has(key)) return
    const id = `m${this.markers.size}`
    try {
      ;(lead.raft as RawNode).propose(encodeWrite(id))
    } catch (err) {
      if (!isProposalDropped(err)) throw err
      return
    }
    this.markers.add(key)
    this.proposals.set(id, { id, node: lead.id, inc: lead.incarnation, term: st.term, asLeader: true, acked: false, uncertain: false })
    this.stats.proposals++
    this.touched.add(lead.id)
    this.trace(`marker ${id} proposed to ${lead.id} t${st.term}`)
  }

  /**
   * A leader exists that is a voter of its own configuration, it has a marker, and every proposal it
   * accepted as leader in its current term is applied on every live member of its configuration.
   */
  private livenessHolds (): boolean {
    const lead = this.leader()
    if (lead === undefined) return false
    const st = (lead.raft as RawNode).status()
    if (!st.confState.voters.includes(lead.id)) return false
    if (!this.markers.has(`${lead.id}/${lead.incarnation}/${st.term}`)) return false
    const members = [...st.confState.voters, ...st.confState.learners]
      .map(id => this.nodes.get(id))
      .filter((n): n is SimNode => n !== undefined && n.up)
    for (const p of this.proposals.values()) {
      if (!p.asLeader || p.node !== lead.id || p.inc !== lead.incarnation || p.term !== st.term) continue
      for (const m of members) if (!m.sm.has(p.id)) return false
    }
    return true
  }

  describeNodes (): string {
    const parts: string[] = []
    for (const id of this.order) {
      const n = this.nodes.get(id) as SimNode
      if (n.decommissioned) continue
      if (!n.up) {
        parts.push(`${id}: down`)
        continue
      }
      const st = (n.raft as RawNode).status()
      parts.push(`${id}: ${st.state} t${st.term} lead=${st.lead} commit=${st.commit} applied=${n.sm.appliedIndex} ` +
        `log=[${n.disk.firstIndex()},${n.disk.lastIndex()}] voters=${st.confState.voters.join(',')} ` +
        `learners=${st.confState.learners.join(',')}`)
    }
    return parts.join('; ')
  }
}

/** Runs one seeded simulation; throws SimViolation when a property breaks. */
export function runSimulation (options: SimOptions): SimStats {
  return new Simulation(options).run()
}
