/**
 * Tier-2 test helper: a deterministic in-memory network of RawNodes with MemoryStorage. It runs the
 * driver loop exactly as types.ts prescribes (persist, send, apply, advance), and can drop, cut,
 * isolate and recover links. Nothing is asynchronous: deliver() runs until the network is quiet.
 */
import {
  ConfChangeType, EntryType, MemoryStorage, MessageType, RawNode, StateType, decodeConfChange
} from '../../src/raft/index.js'
import type { ConfState, Entry, Message, RaftConfig, ReadState, Snapshot } from '../../src/raft/index.js'

/** mulberry32: a small seeded generator in [0, 1). */
export function seededRand (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const enc = new TextEncoder()
const dec = new TextDecoder()
export const bytes = (s: string): Uint8Array => enc.encode(s)
export const str = (b: Uint8Array): string => dec.decode(b)

export interface TestNode {
  id: string
  raw: RawNode
  storage: MemoryStorage
  /** The state machine: data of applied Normal entries, in order (no-ops skipped). */
  applied: string[]
  /** Index of the last applied entry (or snapshot). */
  appliedIndex: number
  confState: ConfState
  readStates: ReadState[]
  /** Every committed entry handed out, for assertions. */
  committed: Entry[]
}

export type NetOptions = Partial<Omit<RaftConfig, 'id' | 'storage' | 'rand'>> & { seed?: number }

export class Network {
  readonly nodes = new Map<string, TestNode>()
  /** Messages sent and not yet delivered, in send order. */
  queue: Message[] = []
  /** Every message ever sent (after filtering), for assertions. */
  readonly sent: Message[] = []
  /** Links cut in both directions, as 'a|b' with a < b. */
  private readonly cuts = new Set<string>()
  /** Extra predicate: return true to drop a message. */
  dropIf: ((m: Message) => boolean) | undefined
  readonly opts: NetOptions
  private seed: number

  /** A fresh group of `ids` (each with a genesis storage), or the given storages. */
  constructor (ids: string[], opts: NetOptions = {}, storages: Record<string, MemoryStorage> = {}) {
    this.opts = opts
    this.seed = opts.seed ?? 1
    const cs = { voters: ids.slice(), learners: [] }
    for (const id of ids) this.addNode(id, storages[id] ?? new MemoryStorage({ confState: cs }))
  }

  config (id: string, storage: MemoryStorage, applied?: number): RaftConfig {
    const { seed: _seed, ...rest } = this.opts
    return {
      electionTick: 10,
      heartbeatTick: 1,
      ...rest,
      id,
      storage,
      rand: seededRand(this.seed++ * 7919),
      ...(applied !== undefined ? { applied } : {})
    }
  }

  /** Adds (or restarts) a node over `storage` (a new empty one: a joining node). */
  addNode (id: string, storage = new MemoryStorage()): TestNode {
    const raw = new RawNode(this.config(id, storage))
    const snap = storage.snapshot()
    const node: TestNode = {
      id,
      raw,
      storage,
      applied: snap.data.byteLength > 0 ? JSON.parse(str(snap.data)) as string[] : [],
      appliedIndex: snap.metadata.index,
      confState: storage.initialState().confState,
      readStates: [],
      committed: []
    }
    this.nodes.set(id, node)
    return node
  }

  /** Crash and restart: volatile state is lost, the storage survives; the state machine restarts from the snapshot. */
  restart (id: string): TestNode {
    const old = this.node(id)
    this.queue = this.queue.filter(m => m.to !== id)
    return this.addNode(id, old.storage)
  }

  remove (id: string): void {
    this.nodes.delete(id)
  }

  node (id: string): TestNode {
    const n = this.nodes.get(id)
    if (n === undefined) throw new Error(`no node ${id}`)
    return n
  }

  raw (id: string): RawNode {
    return this.node(id).raw
  }

  cut (a: string, b: string): void {
    this.cuts.add(a < b ? `${a}|${b}` : `${b}|${a}`)
  }

  isolate (a: string): void {
    for (const b of this.nodes.keys()) if (b !== a) this.cut(a, b)
  }

  recover (): void {
    this.cuts.clear()
    this.dropIf = undefined
  }

  private isCut (a: string, b: string): boolean {
    return this.cuts.has(a < b ? `${a}|${b}` : `${b}|${a}`)
  }

  /** Handles one Ready of node `id` in the documented order. Returns whether there was one. */
  processReady (id: string): boolean {
    const n = this.node(id)
    if (!n.raw.hasReady()) return false
    const rd = n.raw.ready()
    // 1. persist
    if (rd.snapshot !== undefined) n.storage.applySnapshot(rd.snapshot)
    n.storage.append(rd.entries)
    if (rd.hardState !== undefined) n.storage.setHardState(rd.hardState)
    // 2. send
    for (const m of rd.messages) {
      if (m.from !== id) throw new Error(`node ${id} sent a message from ${m.from}`)
      this.queue.push(m)
    }
    // 3. apply
    if (rd.snapshot !== undefined) this.applySnapshot(n, rd.snapshot)
    for (const e of rd.committedEntries) {
      if (e.index !== n.appliedIndex + 1) throw new Error(`node ${id} applies ${e.index} after ${n.appliedIndex}`)
      n.committed.push(e)
      if (e.type === EntryType.ConfChange) {
        n.confState = n.raw.applyConfChange(decodeConfChange(e.data))
      } else if (e.data.byteLength > 0) {
        n.applied.push(str(e.data))
      }
      n.appliedIndex = e.index
    }
    // 4. reads
    n.readStates.push(...rd.readStates)
    n.raw.advance(rd)
    return true
  }

  private applySnapshot (n: TestNode, s: Snapshot): void {
    n.applied = s.data.byteLength > 0 ? JSON.parse(str(s.data)) as string[] : []
    n.appliedIndex = s.metadata.index
    n.confState = s.metadata.confState
  }

  /** The application snapshots its state at its applied index and compacts the log up to `compactTo` (default: that index). */
  snapshot (id: string, compactTo?: number): Snapshot {
    const n = this.node(id)
    const snap = n.storage.createSnapshot(n.appliedIndex, n.confState, bytes(JSON.stringify(n.applied)))
    n.storage.compact(compactTo ?? n.appliedIndex)
    return snap
  }

  /** Delivers one message (or drops it). */
  private deliverOne (m: Message): void {
    const target = this.nodes.get(m.to)
    const sender = this.nodes.get(m.from)
    const dropped = target === undefined || this.isCut(m.from, m.to) || (this.dropIf?.(m) ?? false)
    if (m.type === MessageType.Snap && sender !== undefined) {
      // The transport reports the outcome of a snapshot send (required by the core).
      if (dropped) sender.raw.reportSnapshot(m.to, false)
    }
    if (dropped) return
    this.sent.push(m)
    target.raw.step(m)
    if (m.type === MessageType.Snap && sender !== undefined) sender.raw.reportSnapshot(m.to, true)
  }

  /** Runs Readys and deliveries until nothing is left (bounded). */
  deliver (maxRounds = 10_000): void {
    for (let round = 0; round < maxRounds; round++) {
      let busy = false
      for (const id of [...this.nodes.keys()]) while (this.processReady(id)) busy = true
      const q = this.queue
      this.queue = []
      for (const m of q) { busy = true; this.deliverOne(m) }
      if (!busy) return
    }
    throw new Error('network did not quiesce')
  }

  /** Processes Readys but does not deliver: the sent messages stay in `queue`. */
  flushReadys (): void {
    for (const id of [...this.nodes.keys()]) while (this.processReady(id)) { /* drain */ }
  }

  tick (id: string, n = 1): void {
    for (let i = 0; i < n; i++) this.raw(id).tick()
  }

  /** Ticks every node once and delivers, `n` times. */
  tickAll (n = 1): void {
    for (let i = 0; i < n; i++) {
      for (const node of this.nodes.values()) node.raw.tick()
      this.deliver()
    }
  }

  /** Makes `id` campaign and delivers everything. */
  elect (id: string): void {
    this.raw(id).campaign()
    this.deliver()
  }

  propose (id: string, data: string): void {
    this.raw(id).propose(bytes(data))
    this.deliver()
  }

  leaders (): string[] {
    return [...this.nodes.values()].filter(n => n.raw.status().state === StateType.Leader).map(n => n.id)
  }

  /** The one leader of the highest term, if any. */
  leader (): string | undefined {
    let best: { id: string, term: number } | undefined
    for (const n of this.nodes.values()) {
      const s = n.raw.status()
      if (s.state === StateType.Leader && (best === undefined || s.term > best.term)) best = { id: n.id, term: s.term }
    }
    return best?.id
  }

  /** Ticks until some node is leader (bounded). */
  tickUntilLeader (maxTicks = 500, among?: string[]): string {
    for (let i = 0; i < maxTicks; i++) {
      const l = this.leader()
      if (l !== undefined && (among === undefined || among.includes(l)) && this.raw(l).status().commit >= this.raw(l).raft.log.lastIndex()) return l
      this.tickAll()
    }
    throw new Error('no leader elected')
  }

  confChange (id: string, type: ConfChangeType, node: string): void {
    this.raw(id).proposeConfChange({ type, node })
    this.deliver()
  }
}
