/**
 * npm run bench:raft [-- --entries N] [--seeds N]
 *
 * Benchmarks of the pure Raft core on an in-memory 3-node group without faults:
 *  1. committed proposals per second: the leader is handed batches of 64-byte proposals, messages are
 *     delivered synchronously, and a proposal counts once the leader has applied it;
 *  2. ticks from leader loss to a new leader: the leader is isolated and all nodes tick in lockstep
 *     until another node is leader (one sample per seed).
 * Prints tables; never asserts (tests never assert timings, benchmarks never fail on them).
 */
import { parseArgs } from 'node:util'
import { MemoryStorage, RawNode, StateType, type Message } from '../test/raft/sim/raft-api.js'
import { Rng } from '../test/raft/sim/rng.js'

const { values } = parseArgs({
  options: {
    entries: { type: 'string', default: '100000' },
    seeds: { type: 'string', default: '200' }
  },
  strict: true
})
const ENTRIES = Number(values.entries)
const SEEDS = Number(values.seeds)
const ENTRY_BYTES = 64

interface Options {
  seed: number
  preVote: boolean
  checkQuorum: boolean
  electionTick?: number
  heartbeatTick?: number
}

/** A synchronous in-memory group: every Ready is handled at once, every message delivered at once. */
class Group {
  readonly ids = ['n1', 'n2', 'n3']
  readonly nodes = new Map<string, RawNode>()
  readonly disks = new Map<string, MemoryStorage>()
  readonly applied = new Map<string, number>()
  /** Nodes whose traffic (both ways) is dropped. */
  readonly isolated = new Set<string>()
  private queue: Message[] = []

  constructor (o: Options) {
    const rng = new Rng(o.seed)
    for (const id of this.ids) {
      const disk = new MemoryStorage({ confState: { voters: this.ids.slice(), learners: [] } })
      this.disks.set(id, disk)
      this.applied.set(id, 0)
      this.nodes.set(id, new RawNode({
        id,
        electionTick: o.electionTick ?? 10,
        heartbeatTick: o.heartbeatTick ?? 1,
        storage: disk,
        rand: rng.fork().asRand(),
        preVote: o.preVote,
        checkQuorum: o.checkQuorum,
        maxSizePerMsg: 1 << 20,
        maxInflightMsgs: 256,
        maxUncommittedEntriesSize: 1 << 30,
        maxCommittedSizePerReady: 1 << 30
      }))
    }
  }

  node (id: string): RawNode {
    return this.nodes.get(id) as RawNode
  }

  /** Handles Readies and delivers messages until nothing moves. */
  pump (): void {
    for (;;) {
      let moved = false
      for (const id of this.ids) {
        const rn = this.node(id)
        while (rn.hasReady()) {
          moved = true
          const rd = rn.ready()
          const disk = this.disks.get(id) as MemoryStorage
          if (rd.snapshot !== undefined && rd.snapshot.metadata.index > 0) {
            disk.applySnapshot(rd.snapshot)
            this.applied.set(id, rd.snapshot.metadata.index)
          }
          if (rd.entries.length > 0) disk.append(rd.entries)
          if (rd.hardState !== undefined) disk.setHardState(rd.hardState)
          for (const m of rd.messages) this.queue.push(m)
          const n = rd.committedEntries.length
          if (n > 0) this.applied.set(id, (rd.committedEntries[n - 1] as { index: number }).index)
          rn.advance(rd)
        }
      }
      if (this.queue.length > 0) {
        moved = true
        const q = this.queue
        this.queue = []
        for (const m of q) {
          if (this.isolated.has(m.from) || this.isolated.has(m.to)) continue
          this.node(m.to).step(m)
        }
      }
      if (!moved) return
    }
  }

  tickAll (): void {
    for (const id of this.ids) this.node(id).tick()
    this.pump()
  }

  leader (exclude?: string): string | undefined {
    for (const id of this.ids) {
      if (id === exclude) continue
      if (this.node(id).status().state === StateType.Leader) return id
    }
    return undefined
  }

  /** Ticks until a leader (other than `exclude`) exists; returns the number of ticks, or -1. */
  ticksToLeader (maxTicks: number, exclude?: string): number {
    for (let t = 1; t <= maxTicks; t++) {
      this.tickAll()
      const l = this.leader(exclude)
      if (l !== undefined && !this.isolated.has(l)) return t
    }
    return -1
  }

  /** Compacts every disk below the smallest applied index, keeping memory flat in long runs. */
  compact (): void {
    for (const id of this.ids) {
      const disk = this.disks.get(id) as MemoryStorage
      const a = this.applied.get(id) as number
      if (a - 1000 > disk.firstIndex()) {
        // compaction needs a snapshot at or after the compaction point (the state machine here is a
        // counter, so the snapshot's data is empty)
        disk.createSnapshot(a - 1000, disk.initialState().confState, new Uint8Array(0))
        disk.compact(a - 1000)
      }
    }
  }
}

interface Throughput {
  perSec: number
  ms: number
  applied: number
  dropped: number
  /** Milliseconds from proposing a batch to the leader having applied it, one sample per batch. */
  batchMs: number[]
}

function throughput (batch: number, entries: number): Throughput {
  const g = new Group({ seed: 1, preVote: true, checkQuorum: true })
  g.node('n1').campaign()
  g.pump()
  const lead = g.leader()
  if (lead !== 'n1') throw new Error(`bench: expected n1 to lead, got ${String(lead)}`)
  const rn = g.node(lead)
  const start = g.applied.get(lead) as number
  const payload = new Uint8Array(ENTRY_BYTES).fill(0x61)
  let proposed = 0
  let dropped = 0
  const batchMs: number[] = []
  const t0 = performance.now()
  while (proposed < entries) {
    const b0 = performance.now()
    const n = Math.min(batch, entries - proposed)
    for (let i = 0; i < n; i++) {
      try {
        rn.propose(payload)
      } catch {
        dropped++
      }
    }
    proposed += n
    g.pump()
    batchMs.push(performance.now() - b0)
    if ((proposed / batch) % 50 === 0) g.compact()
  }
  const ms = performance.now() - t0
  const applied = (g.applied.get(lead) as number) - start
  return { perSec: applied / (ms / 1000), ms, applied, dropped, batchMs }
}

function percentile (sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]
}

function electionTicks (preVote: boolean, checkQuorum: boolean): { samples: number[], failed: number } {
  const samples: number[] = []
  let failed = 0
  for (let seed = 1; seed <= SEEDS; seed++) {
    const g = new Group({ seed, preVote, checkQuorum })
    if (g.ticksToLeader(200) < 0) {
      failed++
      continue
    }
    for (let t = 0; t < 20; t++) g.tickAll() // settle: heartbeats flow
    const old = g.leader() as string
    g.isolated.add(old)
    const ticks = g.ticksToLeader(500, old)
    if (ticks < 0) failed++
    else samples.push(ticks)
  }
  samples.sort((a, b) => a - b)
  return { samples, failed }
}

function table (title: string, header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map(r => (r[i] ?? '').length)))
  const line = (cells: string[]): string => cells.map((c, i) => c.padStart(widths[i])).join('  ')
  process.stdout.write(`\n${title}\n${line(header)}\n${widths.map(w => '-'.repeat(w)).join('  ')}\n`)
  for (const r of rows) process.stdout.write(`${line(r)}\n`)
}

// Warm-up so that the JIT has seen the hot paths before we time them.
throughput(100, 5000)

const tRows: string[][] = []
for (const batch of [1, 10, 100, 1000]) {
  const n = batch === 1 ? Math.min(ENTRIES, 20_000) : ENTRIES
  const runs = [throughput(batch, n), throughput(batch, n), throughput(batch, n)]
  const rates = runs.map(r => r.perSec).sort((a, b) => a - b)
  const lat = runs.flatMap(r => r.batchMs).sort((a, b) => a - b)
  tRows.push([String(batch), String(n), Math.round(percentile(rates, 0.5)).toLocaleString('en-US'),
    Math.round(rates[0]).toLocaleString('en-US'), percentile(lat, 0.5).toFixed(3), percentile(lat, 0.99).toFixed(3),
    `${runs.reduce((s, r) => s + r.applied, 0)}/${3 * n}`, String(runs.reduce((s, r) => s + r.dropped, 0))])
}
table(`committed proposals per second (3 nodes in memory, ${ENTRY_BYTES}-byte entries, applied on the leader; 3 runs each)`,
  ['batch', 'entries', 'median/s', 'min/s', 'batch ms p50', 'batch ms p99', 'applied', 'dropped'], tRows)

const eRows: string[][] = []
for (const [preVote, checkQuorum] of [[true, true], [false, false]] as Array<[boolean, boolean]>) {
  const { samples, failed } = electionTicks(preVote, checkQuorum)
  eRows.push([`preVote=${preVote} checkQuorum=${checkQuorum}`, String(samples.length), String(failed),
    String(percentile(samples, 0.5)), String(percentile(samples, 0.99)), String(samples[0] ?? NaN),
    String(samples[samples.length - 1] ?? NaN)])
}
table(`ticks from leader loss to a new leader (electionTick 10, heartbeatTick 1, ${SEEDS} seeds)`,
  ['config', 'samples', 'failed', 'median', 'p99', 'min', 'max'], eRows)
