/**
 * The seeded simulation of the Raft stack a node runs: RaftGroup (the production driver), LevelStorage
 * and RaftLogDb (several groups in one log with group commit) on a simulated disk that loses what was
 * not fsync'd, and RaftTransport (queues, drop reports, back-off) over a simulated network. Only the
 * disk, the network and the clock are simulated; what runs on them is the code that ships.
 *
 * A run: nodes start (3 voters, 5 voters, or one voter with learners), clients propose and read in
 * every group, and faults strike — kill -9 and power loss of one node or of every node at once,
 * partitions (both ways or one way), writes that fail before or after their bytes left, slow disks,
 * membership changes (add, promote, demote, remove, and a removed node re-added with its old disk).
 * Then the faults stop; within a deadline every group must have a leader and every acknowledged write
 * must be applied on every live member. Checked after every event:
 *  - election safety: one leader per term and group;
 *  - state machine safety: one write per index and group, on every node, across restarts;
 *  - at most once: no write applied at two indexes;
 *  - a crashed node always restarts, and no group stops itself (a broken invariant, a failed write);
 *  - reads see every write acknowledged before they began, never go back for one client, and never
 *    return a write that later vanishes;
 *  - durability: after the heal, every acknowledged write is on every live member.
 */
import { RaftGroup } from '../../../../src/group/raft-group.js'
import type { GroupStateMachine } from '../../../../src/group/raft-group.js'
import { processClock, SimDisk, SimNetwork, World } from './world.js'
import { LevelStorage, RaftLogDb } from '../../../../src/raft/level-storage.js'
import { ConfChangeType, StateType } from '../../../../src/raft/types.js'
import { roleOf } from '../../../../src/raft/conf-change.js'
import type { ConfChange, ConfState } from '../../../../src/raft/types.js'
import { RaftTransport } from '../../../../src/transport/raft-transport.js'
import { mutations } from '../../../../src/mutations.js'
import type { Mutation } from '../../../../src/mutations.js'
import { SimViolation } from '../errors.js'
import type { Property } from '../errors.js'
import { fnvString, hex32 } from '../hash.js'
import { Rng } from '../rng.js'

/** Raft groups every node runs, sharing its one log database (as the system group and data groups do). */
export const STACK_GROUPS = 2
const TICK_MS = 100
const ELECTION_TICK = 10
/** After the heal, every group must be live and durable within this much virtual time. */
export const STACK_LIVENESS_MS = 60_000

export const STACK_LAYOUTS = ['3 voters', '5 voters', '1 voter + 2 learners', '1 voter'] as const
export type StackLayout = typeof STACK_LAYOUTS[number]

export type StackSabotage = 'none' | 'commit-behind-snapshot' | 'lonely-early-send' | 'in-flight-dropped'
const SABOTAGE: Record<Exclude<StackSabotage, 'none'>, Mutation> = {
  'commit-behind-snapshot': 'commitBehindSnapshot',
  'lonely-early-send': 'lonelyEarlySend',
  'in-flight-dropped': 'inFlightReportedDropped'
}

export interface StackSimOptions {
  seed: number
  /** Events of the fault phase. */
  steps: number
  /** Put back a known defect (src/mutations.ts): the run should fail. */
  sabotage?: StackSabotage
  /** The initial membership (default: drawn from the seed, 3 voters most often). */
  layout?: StackLayout
  onTrace?: (line: string) => void
  traceTail?: number
}

export interface StackSimStats {
  seed: number
  layout: string
  steps: number
  virtualMs: number
  proposals: number
  acked: number
  retried: number
  requeued: number
  reads: number
  crashes: number
  powerLosses: number
  wholeClusterCrashes: number
  restarts: number
  partitions: number
  membershipChanges: number
  snapshots: number
  snapshotsRestored: number
  earlySends: number
  diskBatchesLost: number
  writesFailedAfter: number
  livenessMs: number
  traceHash: string
}

const enc = new TextEncoder()
const dec = new TextDecoder()

/** One process's state machine of one group: the writes it applied, at their indexes. */
class WriteLog implements GroupStateMachine<string> {
  /** write id → index applied at. */
  writes = new Map<string, number>()
  last = 0

  constructor (private readonly onApply: (id: string, index: number, log: WriteLog) => void) {}

  apply (payload: Uint8Array, index: number): string {
    const id = dec.decode(payload)
    this.onApply(id, index, this)
    this.writes.set(id, index)
    this.last = index
    return id
  }

  snapshot (): Uint8Array {
    return enc.encode(JSON.stringify({ last: this.last, writes: [...this.writes] }))
  }

  restore (data: Uint8Array, index: number): void {
    if (data.byteLength === 0) {
      this.writes = new Map()
      this.last = 0
      return
    }
    const v = JSON.parse(dec.decode(data)) as { last: number, writes: Array<[string, number]> }
    this.writes = new Map(v.writes)
    this.last = v.last
    if (this.last > index) throw new Error(`a snapshot at ${index} holds writes up to ${this.last}`)
  }
}

interface Proc {
  log: RaftLogDb
  transport: RaftTransport
  groups: Array<RaftGroup<string>>
  sms: WriteLog[]
  storages: LevelStorage[]
}

interface SimNode {
  id: string
  disk: SimDisk
  incarnation: number
  proc: Proc | undefined
  /** Booting (its storage is being opened). */
  booting: boolean
  /** Removed from every group and shut down; may be re-added later with its disk. */
  decommissioned: boolean
  /** Founded with the initial membership (else it joined and learns the membership by snapshot). */
  founding: boolean
}

interface Client {
  /** Writes this client saw in its last completed read, per group. */
  seen: Array<Set<string>>
}

export class StackSimulation {
  readonly stats: StackSimStats
  readonly #opts: Required<Omit<StackSimOptions, 'onTrace' | 'layout'>> & Pick<StackSimOptions, 'onTrace' | 'layout'>
  readonly #world = new World()
  readonly #rng: Rng
  readonly #net: SimNetwork
  readonly #faultRng: Rng
  readonly #clientRng: Rng
  readonly #nodeRng: Rng
  readonly #nodes = new Map<string, SimNode>()
  readonly #order: string[] = []
  #nextNode = 1
  #step = 0
  #traceHash = 0x811c9dc5
  readonly #tail: string[] = []
  #phase: 'chaos' | 'quiet' = 'chaos'

  // what every group has applied anywhere: index → write, write → index
  readonly #appliedAt: Array<Map<number, string>> = []
  readonly #indexOf: Array<Map<string, number>> = []
  readonly #acked: Array<Set<string>> = []
  /** Writes some read returned: they must never vanish. */
  readonly #readSeen: Array<Set<string>> = []
  readonly #leaderOfTerm: Array<Map<number, string>> = []
  readonly #clients: Client[] = []
  #nextWrite = 0
  /** One membership change at a time, per group. */
  readonly #confBusy: boolean[] = []
  #failure: Error | undefined
  readonly #heartbeatTick: number

  constructor (options: StackSimOptions) {
    this.#opts = { sabotage: 'none', traceTail: 60, ...options }
    this.#rng = new Rng(options.seed)
    this.#net = new SimNetwork(this.#world, this.#rng.fork())
    this.#faultRng = this.#rng.fork()
    this.#clientRng = this.#rng.fork()
    this.#nodeRng = this.#rng.fork()
    this.#heartbeatTick = this.#rng.pick([1, 2, 3])
    for (let g = 0; g < STACK_GROUPS; g++) {
      this.#appliedAt.push(new Map())
      this.#indexOf.push(new Map())
      this.#acked.push(new Set())
      this.#readSeen.push(new Set())
      this.#leaderOfTerm.push(new Map())
      this.#confBusy.push(false)
    }
    for (let c = 0; c < 3; c++) this.#clients.push({ seen: Array.from({ length: STACK_GROUPS }, () => new Set<string>()) })
    this.stats = {
      seed: options.seed, layout: '', steps: 0, virtualMs: 0, proposals: 0, acked: 0, retried: 0, requeued: 0, reads: 0,
      crashes: 0, powerLosses: 0, wholeClusterCrashes: 0, restarts: 0, partitions: 0, membershipChanges: 0,
      snapshots: 0, snapshotsRestored: 0, earlySends: 0, diskBatchesLost: 0, writesFailedAfter: 0, livenessMs: 0, traceHash: ''
    }
  }

  // ------------------------------------------------------------------------------------ run

  async run (): Promise<StackSimStats> {
    const sabotage = this.#opts.sabotage
    const mutation = sabotage === 'none' ? undefined : SABOTAGE[sabotage]
    if (mutation !== undefined) mutations[mutation] = true
    try {
      return await this.#run()
    } finally {
      if (mutation !== undefined) mutations[mutation] = false
    }
  }

  async #run (): Promise<StackSimStats> {
    const drawn = this.#rng.pick(['3 voters', '3 voters', '5 voters', '1 voter + 2 learners', '1 voter'] as const)
    const layout: StackLayout = this.#opts.layout ?? drawn
    this.stats.layout = layout
    const count = layout === '5 voters' ? 5 : layout === '1 voter' ? 1 : 3
    const ids = Array.from({ length: count }, () => this.#newId())
    const voters = layout.startsWith('1 voter') ? [ids[0]] : ids.slice()
    const cs: ConfState = { voters: voters.slice().sort(), learners: ids.filter((id) => !voters.includes(id)).sort() }
    this.#trace(`start seed=${this.#opts.seed} layout=${layout} hb=${this.#heartbeatTick} voters=${cs.voters.join(',')} learners=${cs.learners.join(',')}`)
    for (const id of ids) this.#addNode(id, true, cs)
    this.#world.after(this.#clientRng.range(5, 50), () => { this.#clientOp() })
    this.#world.after(this.#faultRng.range(200, 1000), () => { this.#fault() })

    let healAt = 0
    for (;;) {
      if (!this.#world.runNext()) this.#fail('liveness', 'no events left')
      await flush()
      this.#step++
      if (this.#failure !== undefined) throw this.#failure
      this.#check()
      if (this.#phase === 'chaos' && this.#step >= this.#opts.steps) {
        this.#heal()
        healAt = this.#world.now
        await flush()
      }
      if (this.#phase === 'quiet' && this.#step % 50 === 0) {
        if (this.#live()) break
        if (this.#world.now - healAt > STACK_LIVENESS_MS) {
          const lost = this.#lostWrites()
          if (lost !== '') this.#fail('durability', `${lost}; ${this.#describe()}`)
          this.#fail('liveness', `not live ${STACK_LIVENESS_MS} ms after the heal: ${this.#describe()}`)
        }
      }
    }
    this.stats.livenessMs = this.#world.now - healAt
    this.stats.steps = this.#step
    this.stats.virtualMs = this.#world.now
    this.stats.writesFailedAfter = this.#net.stats.writesFailedAfter
    this.stats.acked = this.#acked.reduce((a, s) => a + s.size, 0)
    this.stats.traceHash = hex32(this.#traceHash)
    await this.#stopAll()
    return this.stats
  }

  #newId (): string {
    return `n${this.#nextNode++}`
  }

  #trace (line: string): void {
    const l = `${this.#step} @${this.#world.now} ${line}`
    this.#traceHash = fnvString(l, this.#traceHash)
    this.#tail.push(l)
    if (this.#tail.length > this.#opts.traceTail) this.#tail.shift()
    this.#opts.onTrace?.(l)
  }

  #fail (property: Property, detail: string): never {
    const v = new SimViolation(property, this.#opts.seed, this.#step, detail, this.#tail.slice())
    this.#failure = v
    throw v
  }

  /** Records a violation found in a callback (which must not throw into production code). */
  #violation (property: Property, detail: string): void {
    if (this.#failure !== undefined) return
    this.#failure = new SimViolation(property, this.#opts.seed, this.#step, detail, this.#tail.slice())
  }

  // ------------------------------------------------------------------------------------ processes

  #addNode (id: string, founding: boolean, cs?: ConfState): SimNode {
    const n: SimNode = { id, disk: new SimDisk(this.#world, this.#nodeRng.fork()), incarnation: 0, proc: undefined, booting: false, decommissioned: false, founding }
    this.#nodes.set(id, n)
    this.#order.push(id)
    this.#boot(n, cs)
    return n
  }

  /** Starts a process on the node's disk, as `dfs node start` on its data dir would. */
  #boot (n: SimNode, cs?: ConfState): void {
    n.incarnation++
    n.booting = true
    const incarnation = n.incarnation
    const rng = this.#nodeRng.fork()
    void (async () => {
      const alive = (): boolean => n.incarnation === incarnation
      const clock = processClock(this.#world, alive, rng.fork())
      const log = new RaftLogDb(n.disk.store())
      const storages: LevelStorage[] = []
      for (let g = 0; g < STACK_GROUPS; g++) {
        storages.push(await LevelStorage.openIn(log, `g${g}/`, n.founding && cs !== undefined ? { confState: cs } : undefined))
      }
      if (!alive()) return
      const transport = new RaftTransport({
        link: this.#net.up(n.id, incarnation), self: n.id, clock, writeTimeoutMs: 400, dialTimeoutMs: 300, backoffMsMin: 20, backoffMsMax: 400
      })
      await transport.start()
      const proc: Proc = { log, transport, groups: [], sms: [], storages }
      for (let g = 0; g < STACK_GROUPS; g++) {
        const sm = new WriteLog((id, index, wl) => { this.#onApply(n, g, id, index, wl) })
        const nonce = new Uint8Array(8)
        for (let i = 0; i < 8; i++) nonce[i] = rng.int(256)
        const group = new RaftGroup<string>({
          id: n.id,
          group: g,
          storage: storages[g],
          transport,
          stateMachine: sm,
          clock,
          nonce,
          rand: rng.fork().asRand(),
          tickMs: TICK_MS,
          electionTick: ELECTION_TICK,
          heartbeatTick: this.#heartbeatTick,
          snapshotEvery: rng.range(3, 30),
          snapshotKeepEntries: rng.range(0, 4),
          callTimeoutMs: 3000,
          isPeer: (peer) => this.#nodes.has(peer)
        })
        proc.groups.push(group)
        proc.sms.push(sm)
      }
      n.proc = proc
      n.booting = false
      for (const g of proc.groups) g.start()
      this.#trace(`${n.id} up (incarnation ${incarnation})`)
    })().catch((err: Error) => {
      if (n.incarnation !== incarnation) return
      this.#violation('restart', `${n.id} cannot start on its disk: ${err.name}: ${err.message}`)
    })
  }

  /** kill -9 (or a power loss, losing unsynced writes too): the process is gone, its disk stays. */
  #crash (n: SimNode, power: boolean, why = 'crash'): void {
    if (n.proc === undefined && !n.booting) return
    if (n.proc !== undefined) this.#count(n.proc)
    n.incarnation++
    n.booting = false
    n.proc = undefined
    this.#net.down(n.id)
    const d = n.disk.crash(power)
    this.stats.diskBatchesLost += d.lost
    if (why === 'crash') {
      this.stats.crashes++
      if (power) this.stats.powerLosses++
    }
    this.#trace(`${why} ${n.id}${power ? ' (power loss)' : ''}: disk kept ${d.kept}, lost ${d.lost} pending batches, ${d.unsyncedLost} unsynced`)
  }

  #restart (n: SimNode): void {
    if (n.proc !== undefined || n.booting || n.decommissioned) return
    this.stats.restarts++
    this.#trace(`restart ${n.id}`)
    this.#boot(n)
  }

  /** Adds a process's group counters to the run's (every process's, the crashed ones' too). */
  #count (p: Proc): void {
    for (const g of p.groups) {
      this.stats.snapshots += g.stats.snapshotsCreated
      this.stats.snapshotsRestored += g.stats.snapshotsRestored
      this.stats.retried += g.stats.proposalsRetried
      this.stats.requeued += g.stats.proposalsRequeued
      this.stats.earlySends += g.stats.messagesSentEarly
    }
  }

  async #stopAll (): Promise<void> {
    for (const n of this.#nodes.values()) {
      if (n.proc === undefined) continue
      const p = n.proc
      this.#count(p)
      n.incarnation++
      n.proc = undefined
      this.#net.down(n.id)
      // the stops wait for the loop's Ready in progress, whose disk write may never complete now
      void Promise.all(p.groups.map(async (g) => { await g.stop() })).catch(() => {})
    }
  }

  #up (): SimNode[] {
    const out: SimNode[] = []
    for (const id of this.#order) {
      const n = this.#nodes.get(id) as SimNode
      if (n.proc !== undefined) out.push(n)
    }
    return out
  }

  /** The up node that leads group `g` in the highest term. */
  #leader (g: number): SimNode | undefined {
    let best: SimNode | undefined
    let term = -1
    for (const n of this.#up()) {
      const st = (n.proc as Proc).groups[g].status()
      if (st.state === StateType.Leader && st.term > term) {
        best = n
        term = st.term
      }
    }
    return best
  }

  // ------------------------------------------------------------------------------------ checks

  #onApply (n: SimNode, g: number, id: string, index: number, wl: WriteLog): void {
    if (index <= wl.last) this.#violation('apply-order', `${n.id} group ${g} applies ${index} after ${wl.last}`)
    const there = this.#appliedAt[g].get(index)
    if (there !== undefined && there !== id) {
      this.#violation('state-machine-safety', `group ${g}: ${n.id} applies ${id} at ${index}, where ${there} was applied`)
    }
    const at = this.#indexOf[g].get(id)
    if (at !== undefined && at !== index) this.#violation('at-most-once', `group ${g}: ${n.id} applies ${id} at ${index}; it was applied at ${at}`)
    const own = wl.writes.get(id)
    if (own !== undefined && own !== index) this.#violation('at-most-once', `group ${g}: ${n.id} applies ${id} again at ${index} (at ${own} before)`)
    this.#appliedAt[g].set(index, id)
    this.#indexOf[g].set(id, index)
  }

  #check (): void {
    for (const n of this.#up()) {
      const p = n.proc as Proc
      for (let g = 0; g < STACK_GROUPS; g++) {
        const group = p.groups[g]
        if (group.failure !== undefined) this.#fail('restart', `${n.id} group ${g} stopped itself: ${group.failure.message}`)
        const st = group.status()
        if (st.state !== StateType.Leader) continue
        // A leadership counts once its term and self-vote are durable: before that the node sends
        // nothing of the term (RaftGroup #sendsEarly), so a crash erases it without trace and the
        // node may rightly vote again in that term after restarting.
        const durable = group.durableHardState
        if (durable.term !== st.term || durable.vote !== n.id) continue
        const other = this.#leaderOfTerm[g].get(st.term)
        if (other !== undefined && other !== n.id) this.#fail('election-safety', `group ${g}: ${other} and ${n.id} both lead term ${st.term}`)
        if (other === undefined) {
          this.#leaderOfTerm[g].set(st.term, n.id)
          this.#trace(`${n.id} leads group ${g} in term ${st.term}`)
        }
      }
    }
  }

  /** Every group has a leader, and every acknowledged write and marker is applied on its live members. */
  #live (): boolean {
    for (let g = 0; g < STACK_GROUPS; g++) {
      const lead = this.#leader(g)
      if (lead === undefined) return false
      const cs = (lead.proc as Proc).groups[g].status().confState
      const members = [...cs.voters, ...cs.learners].map((id) => this.#nodes.get(id)).filter((m): m is SimNode => m?.proc !== undefined)
      if (members.length < cs.voters.length) return false
      for (const m of members) {
        const writes = (m.proc as Proc).sms[g].writes
        for (const w of this.#acked[g]) if (!writes.has(w)) return false
        for (const w of this.#readSeen[g]) if (!writes.has(w)) return false
      }
    }
    return true
  }

  /** Acknowledged (or read) writes a group's leader, caught up with its commit index, does not have. */
  #lostWrites (): string {
    const out: string[] = []
    for (let g = 0; g < STACK_GROUPS; g++) {
      const lead = this.#leader(g)
      if (lead === undefined) continue
      const st = (lead.proc as Proc).groups[g].status()
      if (st.applied < st.commit) continue
      const writes = (lead.proc as Proc).sms[g].writes
      const missing = [...this.#acked[g], ...this.#readSeen[g]].filter((w) => !writes.has(w))
      if (missing.length > 0) out.push(`group ${g}: leader ${lead.id} lacks acknowledged or read writes ${[...new Set(missing)].slice(0, 10).join(',')}`)
    }
    return out.join('; ')
  }

  #describe (): string {
    const parts: string[] = []
    for (const id of this.#order) {
      const n = this.#nodes.get(id) as SimNode
      if (n.decommissioned) continue
      if (n.proc === undefined) { parts.push(`${id}: down`); continue }
      const gs = n.proc.groups.map((g, i) => {
        const st = g.status()
        const log = n.proc?.storages[i]
        const last = log === undefined ? '?' : `${log.lastIndex()}/t${log.term(log.lastIndex())} vote=${log.initialState().hardState.vote}`
        return `g${i} ${st.state} t${st.term} lead=${st.leader ?? '-'} last=${last} commit=${st.commit} applied=${st.applied} voters=${st.confState.voters.join(',')} learners=${st.confState.learners.join(',')} writes=${n.proc?.sms[i].writes.size ?? 0}`
      })
      parts.push(`${id}: ${gs.join(' | ')}`)
    }
    const acked = this.#acked.map((s) => s.size).join('/')
    return `${parts.join('; ')}; acked ${acked}`
  }

  // ------------------------------------------------------------------------------------ clients

  #clientOp (): void {
    if (this.#phase !== 'chaos') return
    this.#world.after(this.#clientRng.range(2, 40), () => { this.#clientOp() })
    const up = this.#up()
    if (up.length === 0) return
    const rng = this.#clientRng
    const g = rng.int(STACK_GROUPS)
    const n = rng.chance(0.6) ? (this.#leader(g) ?? rng.pick(up)) : rng.pick(up)
    const group = (n.proc as Proc).groups[g]
    if (rng.chance(0.75)) {
      const id = `w${this.#nextWrite++}`
      this.stats.proposals++
      this.#trace(`propose ${id} to group ${g} at ${n.id}`)
      group.propose(enc.encode(id)).then((got) => {
        if (got !== id) this.#violation('state-machine-safety', `proposal ${id} resolved with ${got}`)
        this.#acked[g].add(id)
        this.#trace(`ack ${id} (group ${g})`)
      }, () => { /* unknown outcome: it may still be applied */ })
    } else {
      const client = this.#clients[rng.int(this.#clients.length)]
      const before = new Set(this.#acked[g])
      // every read this client completed before this one began
      const prior = new Set(client.seen[g])
      const wl = () => n.proc?.sms[g]
      const incarnation = n.incarnation
      group.read(() => {
        const writes = wl()?.writes
        return writes === undefined ? undefined : new Set(writes.keys())
      }).then((seen) => {
        if (seen === undefined || n.incarnation !== incarnation) return
        this.stats.reads++
        for (const w of before) {
          if (!seen.has(w)) this.#violation('read-linearizability', `a read of group ${g} at ${n.id} misses ${w}, acknowledged before it began`)
        }
        for (const w of prior) {
          if (!seen.has(w)) this.#violation('read-linearizability', `a read of group ${g} at ${n.id} misses ${w}, which the same client read before`)
        }
        for (const w of seen) client.seen[g].add(w)
        for (const w of seen) this.#readSeen[g].add(w)
      }, () => {})
    }
  }

  // ------------------------------------------------------------------------------------ faults

  #fault (): void {
    if (this.#phase !== 'chaos') return
    const rng = this.#faultRng
    this.#world.after(rng.range(100, 1500), () => { this.#fault() })
    const live = this.#order.map((id) => this.#nodes.get(id) as SimNode).filter((n) => !n.decommissioned)
    const up = live.filter((n) => n.proc !== undefined)
    const down = live.filter((n) => n.proc === undefined && !n.booting)
    const choices: Array<[number, () => void]> = [
      [10, () => {
        // leaders half the time: their crashes are the ones that lose unsynced work others acted on
        const n = rng.chance(0.5) ? (this.#leader(rng.int(STACK_GROUPS)) ?? rng.pick(up)) : rng.pick(up)
        this.#crash(n, rng.chance(0.5))
        this.#world.after(rng.range(1, 1500), () => { this.#restart(n) })
      }],
      [2, () => {
        this.stats.wholeClusterCrashes++
        this.#trace('power loss of every node')
        for (const n of up) this.#crash(n, true)
        this.#world.after(rng.range(1, 2000), () => { for (const n of live) this.#restart(n) })
      }],
      [8, () => { this.#partition() }],
      [8, () => { this.#net.healAll(); this.#trace('partition healed') }],
      [4, () => {
        this.#net.failBeforeRate = rng.pick([0, 0, 0.01, 0.05])
        this.#net.failAfterRate = rng.pick([0, 0.02, 0.1, 0.3])
        this.#trace(`writes fail before ${this.#net.failBeforeRate}, after ${this.#net.failAfterRate}`)
      }],
      [6, () => {
        const n = rng.chance(0.5) ? (this.#leader(rng.int(STACK_GROUPS)) ?? rng.pick(live)) : rng.pick(live)
        n.disk.slowness = rng.pick([1, 1, 5, 30])
        this.#trace(`${n.id} disk slowness ${n.disk.slowness}`)
      }],
      [10, () => { this.#membership() }]
    ]
    if (down.length > 0) choices.push([8, () => { this.#restart(rng.pick(down)) }])
    if (up.length === 0) choices.splice(0, 2)
    let total = 0
    for (const [w] of choices) total += w
    let r = rng.int(total)
    for (const [w, f] of choices) {
      if (r < w) { f(); return }
      r -= w
    }
  }

  #partition (): void {
    const rng = this.#faultRng
    const ids = this.#order.filter((id) => !(this.#nodes.get(id) as SimNode).decommissioned)
    if (ids.length < 2) return
    this.#net.healAll()
    this.stats.partitions++
    if (rng.chance(0.3)) {
      const [a, b] = rng.shuffle(ids)
      this.#net.cut(a, b)
      this.#trace(`partition: ${a} -> ${b} cut one way`)
      return
    }
    const shuffled = rng.shuffle(ids)
    const k = rng.range(1, shuffled.length - 1)
    const left = shuffled.slice(0, k)
    const right = shuffled.slice(k)
    for (const a of left) for (const b of right) { this.#net.cut(a, b); this.#net.cut(b, a) }
    this.#trace(`partition: ${left.join(',')} | ${right.join(',')}`)
  }

  /**
   * One membership change in every group, through each group's leader: add a new node or re-add a
   * removed one (with its old disk) as a learner, promote a learner, demote a voter, or remove a member.
   */
  #membership (): void {
    const rng = this.#faultRng
    const lead = this.#leader(0)
    if (lead === undefined) return
    const cs = (lead.proc as Proc).groups[0].status().confState
    const members = [...cs.voters, ...cs.learners]
    const options: Array<() => void> = []
    if (members.length < 6) {
      options.push(() => {
        const gone = this.#order.map((id) => this.#nodes.get(id) as SimNode).filter((n) => n.decommissioned)
        let n: SimNode
        if (gone.length > 0 && rng.chance(0.5)) {
          n = rng.pick(gone)
          n.decommissioned = false
          this.#trace(`re-add ${n.id} with its old disk`)
          this.#restart(n)
        } else {
          n = this.#addNode(this.#newId(), false)
          this.#trace(`add ${n.id}`)
        }
        this.#changeAll({ type: ConfChangeType.AddLearner, node: n.id })
      })
    }
    if (cs.learners.length > 0) options.push(() => { this.#changeAll({ type: ConfChangeType.AddVoter, node: rng.pick(cs.learners) }) })
    if (cs.voters.length > 1) options.push(() => { this.#changeAll({ type: ConfChangeType.AddLearner, node: rng.pick(cs.voters) }) })
    if (members.length > 1) {
      options.push(() => {
        const victim = rng.pick(members)
        if (cs.voters.length === 1 && cs.voters[0] === victim) return
        this.#changeAll({ type: ConfChangeType.RemoveNode, node: victim }, () => {
          const n = this.#nodes.get(victim) as SimNode
          // removed everywhere: an operator shuts it down (its disk stays for a later re-add)
          const still = [...Array(STACK_GROUPS).keys()].some((g) => {
            const l = this.#leader(g)
            const c = l === undefined ? undefined : (l.proc as Proc).groups[g].status().confState
            return c === undefined || c.voters.includes(victim) || c.learners.includes(victim)
          })
          if (still || n.decommissioned) return
          // A careful operator shuts it down once every other member applied its removal. Not before:
          // a removed leader may hold the only knowledge that its removal committed, and the others,
          // which still count it as a voter, would wait for its vote forever.
          const shutDown = (): void => {
            if (n.decommissioned || this.#phase !== 'chaos') return
            const others = [...this.#nodes.values()].filter((m) => m !== n && !m.decommissioned)
            const known = others.every((m) => m.proc !== undefined && m.proc.groups.every((g) => {
              const c = g.status().confState
              return !c.voters.includes(victim) && !c.learners.includes(victim)
            }))
            if (!known) { this.#world.after(500, shutDown); return }
            n.decommissioned = true
            this.#crash(n, false, 'decommission')
          }
          this.#world.after(rng.range(500, 3000), shutDown)
        })
      })
    }
    if (options.length > 0) rng.pick(options)()
  }

  #changeAll (cc: Omit<ConfChange, 'context'>, after?: () => void): void {
    this.#trace(`conf ${ConfChangeType[cc.type]} ${cc.node}`)
    for (let g = 0; g < STACK_GROUPS; g++) {
      if (this.#confBusy[g]) continue
      const lead = this.#leader(g)
      if (lead === undefined) continue
      this.#confBusy[g] = true
      const group = (lead.proc as Proc).groups[g]
      // as an operator's tool does (changeMembership): based on the role the leader shows now
      const basedOn = roleOf(group.status().confState, cc.node)
      group.proposeConfChange({ ...cc, basedOn }, { timeoutMs: 3000 }).then(() => {
        this.stats.membershipChanges++
        this.#trace(`conf ${ConfChangeType[cc.type]} ${cc.node} applied in group ${g}`)
        after?.()
      }, () => {}).finally(() => { this.#confBusy[g] = false })
    }
  }

  // ------------------------------------------------------------------------------------ heal

  #heal (): void {
    this.#phase = 'quiet'
    this.#net.healAll()
    this.#net.failBeforeRate = 0
    this.#net.failAfterRate = 0
    this.#trace('heal: faults stop, the network heals, every node restarts')
    for (const n of this.#nodes.values()) {
      n.disk.slowness = 1
      if (!n.decommissioned) this.#restart(n)
    }
    // marker writes in every group (four rounds, a second apart, to whoever leads then): each must be
    // acknowledged and applied everywhere like any other write
    let rounds = 4
    const mark = (): void => {
      for (let g = 0; g < STACK_GROUPS; g++) {
        const lead = this.#leader(g)
        if (lead === undefined) continue
        const id = `m${this.#nextWrite++}`
        ;(lead.proc as Proc).groups[g].propose(enc.encode(id)).then(() => { this.#acked[g].add(id) }, () => {})
      }
      if (--rounds > 0) this.#world.after(1000, mark)
    }
    this.#world.after(500, mark)
  }
}

/** Lets every promise chain started by the last event run to its end (nothing in the stack waits on real I/O). */
async function flush (): Promise<void> {
  await new Promise<void>((resolve) => { setImmediate(resolve) })
}

export async function runStackSimulation (options: StackSimOptions): Promise<StackSimStats> {
  return await new StackSimulation(options).run()
}
