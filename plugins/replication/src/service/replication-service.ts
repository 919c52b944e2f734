/**
 * The default ReplicationService: RF copies of every extent, written to a quorum, read from the
 * nearest good copy, and kept at RF by a repair coordinator and a per-node scrub.
 *
 * - write: the cluster's placement policy picks up to RF healthy nodes with room; the bytes go to all
 *   of them in parallel (each fsyncs before it answers) and the write succeeds when a majority of
 *   the nodes placed (`sync: 'all'`: every one) acknowledged, else it fails with NoQuorum (as a
 *   write through a node cut off from a majority does). Only acknowledged copies are recorded;
 *   the rest count as under-replication and repair completes them. Placement is decided by the
 *   coordinating node from its view of the cluster, not by a Raft round, so a 4 KiB put costs one
 *   parallel fan-out and one metadata commit.
 * - read: the local copy first, then healthy replicas in this node's region, then other healthy,
 *   suspected and failed ones; every copy is verified, and a corrupt local copy is rewritten from the
 *   good one (ExtentPeers.read).
 * - repair: the leader of the metadata system group is the cluster's one repair coordinator (a new
 *   leader takes over; everything it needs is in metadata, so repair resumes after any restart).
 *   Every `repairEveryMs` it finds extents with fewer live copies than RF — a copy is live while its
 *   node is a member not Failed for longer than the repair delay — and, fewest live copies first,
 *   at most `repairsInFlightMax` at a time, has new nodes pull a copy from a live one, then records
 *   the new replica set in metadata. Copies on removed or long-failed nodes are dropped from it.
 * - scrub: every node re-reads its own copies at `scrubBytesPerSecond`, verifying checksums, and
 *   re-fetches a copy that is corrupt, or that metadata says it holds but it lacks, from the other
 *   replicas.
 * - release: copies of extents metadata dropped are deleted on every replica (remote ones after a
 *   grace period, so a reader on another node that is still streaming the old version finishes).
 * - rebalance and drain: any node plans moves and records each as an intent on its extent record
 *   (StartMove); the coordinator (the same system-group leader) executes intents, at most
 *   `movesInFlightMax` at once and `moveBytesPerSecond` overall, in two phases: the target pulls and
 *   verifies a copy, MigrateExtent switches the replica set through Raft (clearing the intent), then
 *   the source's copy is deleted. A crash before the switch leaves the intent, which a new coordinator
 *   finishes (the copy already on the target verifies and is kept); a crash after it leaves at most a
 *   copy metadata no longer lists on the source, which that node's start-up sweep frees. A target that
 *   became unhealthy, draining or full is re-checked at execution and its move cancelled.
 * - draining members are offered to the policies as suspected: nothing places a copy on them, and
 *   their existing copies still count as live.
 */
import { setMaxListeners } from 'node:events'
import {
  CLUSTER_CONFIG_DEFAULTS, DfsError, NoQuorumError, NotFoundError, REPAIR_DELAY_MS_DEFAULT, UnavailableError, extentChecksum, hasRoomFor
} from '@dfs/api'
import type {
  CallOptions, ClusterConfig, ClusterNode, DrainResult, ExtentRecord, Logger, MemberRecord, MoveProgress, PeerIdString,
  RebalanceMove, RebalanceOptions, RebalanceResult, ReplicatedWrite, ReplicatedWriteOptions, ReplicationService,
  ReplicationServiceInit, ReplicationStatus, UndrainResult
} from '@dfs/api'

export const REPAIR_EVERY_MS_DEFAULT = 5_000
export const REPAIRS_IN_FLIGHT_MAX_DEFAULT = 4

/** An early repair pass for a node whose repair delay runs out runs this much after it (clock granularity, failure detector updates). */
const REPAIR_EXPIRY_SLACK_MS = 50

/** How often the coordinator looks at its members' health for a repair delay running out (cheap: no extents). */
const FAILED_WATCH_MS = 500

/**
 * A write on the coordinator that recorded a copy missing asks for a repair pass this much later (at
 * most once per repair period: under an overload that cuts copies off, a pass over every extent
 * each second would add to the load).
 */
const MISSING_COPY_REPAIR_AFTER_MS = 1_000
/** Repair copies at most this many bytes per second (cluster-wide: one coordinator). */
export const REPAIR_BYTES_PER_SECOND_DEFAULT = 64 * 1024 * 1024
export const SCRUB_EVERY_MS_DEFAULT = 60_000
export const SCRUB_BYTES_PER_SECOND_DEFAULT = 16 * 1024 * 1024
/** Pause before remote copies of a dropped extent are deleted (readers elsewhere finish first). */
export const RELEASE_GRACE_MS_DEFAULT = 10_000
/** Deadline of one repair copy (a 4 MiB extent pulled from a live replica). */
const REPAIR_COPY_TIMEOUT_MS = 60_000
/** How often the coordinator looks for recorded moves (and right after a node records some). */
export const MOVE_EVERY_MS_DEFAULT = 1_000
export const MOVES_IN_FLIGHT_MAX_DEFAULT = 2
/** Moves copy at most this many bytes per second, leaving room for client traffic and repair. */
export const MOVE_BYTES_PER_SECOND_DEFAULT = 32 * 1024 * 1024
/**
 * A write that has its quorum gives the other copies at least this long to acknowledge too, so that
 * a replica that is merely slower (a loaded node, a busy disk) still gets its copy recorded and only
 * one that is hung or failing is left to repair…
 */
export const QUORUM_GRACE_MS_MIN = 1_000
/** …or four times as long as the quorum took, if longer… */
export const QUORUM_GRACE_FACTOR = 4
/** …but never more than this. */
export const QUORUM_GRACE_MS_MAX = 10_000
/** A move that failed this many times on one coordinator is cancelled (a later plan may retry it). */
const MOVE_ATTEMPTS_MAX = 5
/** Intents recorded at once while recording a plan. */
const RECORD_CONCURRENCY = 8
/** How often a waiting rebalance or drain looks at metadata again. */
const WAIT_POLL_MS = 250
/** A waiting drain plans moves again for copies whose move was cancelled, at most this often. */
const DRAIN_REPLAN_MS = 2_000

export interface ReplicationTuning {
  repairEveryMs?: number
  repairsInFlightMax?: number
  repairBytesPerSecond?: number
  scrubEveryMs?: number
  scrubBytesPerSecond?: number
  releaseGraceMs?: number
  moveEveryMs?: number
  movesInFlightMax?: number
  moveBytesPerSecond?: number
}

interface ExtentHealth {
  extent: ExtentRecord
  live: PeerIdString[]
}

export class DefaultReplication implements ReplicationService {
  readonly #init: ReplicationServiceInit
  readonly #log: Logger
  readonly #repairDelayMs: number
  readonly #tuning: Required<ReplicationTuning>
  readonly #repairing = new Set<string>()
  readonly #stopping = new AbortController()
  readonly #timers: Array<ReturnType<typeof setInterval>> = []
  #scanning = false
  /** Failed members whose repair delay has run out, as #watchFailed last saw them. */
  readonly #expired = new Set<PeerIdString>()
  /** When a write last asked for an early pass for a copy it recorded missing (epoch ms). */
  #missingKickAt = 0
  /** A repair pass asked for while one ran: run another as soon as it ends. */
  #rescan = false
  /** The one-shot timer of an early repair pass (see #repairSoon), and when it fires (epoch ms). */
  #soon: { timer: ReturnType<typeof setTimeout>, at: number } | undefined
  #scrubbing = false
  /** Extents whose move this coordinator is executing now. */
  readonly #moving = new Set<string>()
  readonly #moveFailures = new Map<string, number>()
  #movePassRunning = false
  readonly #releases = new Set<ReturnType<typeof setTimeout>>()

  constructor (init: ReplicationServiceInit & ReplicationTuning) {
    this.#init = init
    this.#log = init.logger
    this.#repairDelayMs = init.repairDelayMs ?? REPAIR_DELAY_MS_DEFAULT
    this.#tuning = {
      repairEveryMs: init.repairEveryMs ?? REPAIR_EVERY_MS_DEFAULT,
      repairsInFlightMax: init.repairsInFlightMax ?? REPAIRS_IN_FLIGHT_MAX_DEFAULT,
      repairBytesPerSecond: init.repairBytesPerSecond ?? REPAIR_BYTES_PER_SECOND_DEFAULT,
      scrubEveryMs: init.scrubEveryMs ?? SCRUB_EVERY_MS_DEFAULT,
      scrubBytesPerSecond: init.scrubBytesPerSecond ?? SCRUB_BYTES_PER_SECOND_DEFAULT,
      releaseGraceMs: init.releaseGraceMs ?? RELEASE_GRACE_MS_DEFAULT,
      moveEveryMs: init.moveEveryMs ?? MOVE_EVERY_MS_DEFAULT,
      movesInFlightMax: init.movesInFlightMax ?? MOVES_IN_FLIGHT_MAX_DEFAULT,
      moveBytesPerSecond: init.moveBytesPerSecond ?? MOVE_BYTES_PER_SECOND_DEFAULT
    }
    for (const [k, v] of Object.entries(this.#tuning)) {
      if (!(Number.isFinite(v) && v >= 0)) throw new TypeError(`${k} must be a number ≥ 0, got ${v}`)
    }
  }

  async start (): Promise<void> {
    const every = (ms: number, fn: () => Promise<void>): void => {
      const t = setInterval(() => { fn().catch((err) => { this.#log('%s', (err as Error).message) }) }, ms)
      t.unref?.()
      this.#timers.push(t)
    }
    every(this.#tuning.repairEveryMs, async () => { await this.#repairPass() })
    // between passes, a cheap look at the members (no extents) for a repair delay about to run out
    every(Math.min(FAILED_WATCH_MS, this.#tuning.repairEveryMs), async () => { this.#watchFailed() })
    every(this.#tuning.scrubEveryMs, async () => { await this.#scrubPass() })
    every(this.#tuning.moveEveryMs, async () => { await this.#movePass() })
  }

  async stop (): Promise<void> {
    this.#stopping.abort(new UnavailableError('replication is stopping'))
    for (const t of this.#timers) clearInterval(t)
    if (this.#soon !== undefined) clearTimeout(this.#soon.timer)
    this.#soon = undefined
    for (const t of this.#releases) clearTimeout(t)
    this.#releases.clear()
  }

  #config (): ClusterConfig {
    const m = this.#init.metadata
    return m.staleRead?.((v) => v.config()) ?? CLUSTER_CONFIG_DEFAULTS
  }

  /**
   * The cluster as the policies see it, with the configured fill limit; a draining member shows as
   * suspected, so no policy gives it a copy while its own copies still count.
   */
  #nodes (config: ClusterConfig, members?: MemberRecord[]): ClusterNode[] {
    const list = members ?? this.#init.metadata.staleRead?.((v) => v.members()) ?? []
    const draining = new Set(list.filter((m) => m.draining === true).map((m) => m.id))
    return this.#init.cluster.nodes().map((n) => ({
      ...n,
      fillLimit: config.fillLimit,
      ...(draining.has(n.id) && n.health === 'healthy' ? { health: 'suspected' as const } : {})
    }))
  }

  placeInline (id: string, size: number, voters: PeerIdString[]): PeerIdString[] | undefined {
    if (!voters.includes(this.#init.nodeId)) return undefined
    const { targets } = this.#place(id, size)
    return targets.length === voters.length && targets.every((t) => voters.includes(t)) ? targets : undefined
  }

  #place (id: string, size: number): { targets: PeerIdString[], nodes: ClusterNode[], config: ClusterConfig } {
    const config = this.#config()
    const nodes = this.#nodes(config)
    const targets = this.#init.placement(config.placementPolicy).place({
      extent: { id, size, replicas: [] },
      replicationFactor: config.replicationFactor,
      nodes
    })
    return { targets, nodes, config }
  }

  async write (id: string, bytes: Uint8Array, options: ReplicatedWriteOptions = {}): Promise<ReplicatedWrite> {
    const { targets, nodes, config } = this.#place(id, bytes.byteLength)
    if (targets.length === 0) {
      throw new UnavailableError('no healthy node has room for a copy of the extent', { extent: id, nodes: nodes.length })
    }

    // The quorum is a majority of the copies the cluster can hold (RF, or every member when there
    // are fewer), not of the nodes placement found healthy: a node that is merely suspected must not
    // shrink it, or a loaded cluster would acknowledge writes that exist once.
    const want = Math.min(config.replicationFactor, nodes.length)
    const quorum = options.sync === 'all' ? want : Math.floor(want / 2) + 1
    const checksum = extentChecksum(bytes)
    const identity = { id, size: bytes.byteLength, checksum }
    const outcome = await this.#fanOut(targets, quorum, options.signal, async (peer, signal) => {
      await this.#init.peers.put(peer, identity, bytes, { signal })
    })
    const acked = targets.filter((_, i) => outcome[i] === 'acked')
    const missing = targets.filter((_, i) => outcome[i] !== 'acked')
    if (acked.length < quorum) {
      // nothing will reference these copies: take them back (the start-up sweep catches any left)
      void Promise.allSettled(targets.map(async (peer) => { await this.#init.peers.delete(peer, id) }))
      const failures = missing.map((peer) => {
        const r = outcome[targets.indexOf(peer)]
        const err = r instanceof Error ? r : undefined
        return { node: peer, error: err?.name ?? 'Unanswered', message: err?.message ?? 'no answer before the write gave up' }
      })
      options.signal?.throwIfAborted()
      throw new NoQuorumError(`only ${acked.length} of ${targets.length} replicas stored extent ${id}; ${quorum} needed`,
        { extent: id, acked, quorum, failures })
    }
    if (missing.length > 0) {
      this.#log('extent %s: copies on %o missing, left to repair', id, missing)
      // on the repair coordinator, a pass once the file has had time to commit (a pass before the
      // commit finds no reference to the extent yet); elsewhere the coordinator's next pass does it
      const now = Date.now()
      if (this.#init.metadata.status().leader === this.#init.nodeId && now - this.#missingKickAt >= this.#tuning.repairEveryMs) {
        this.#missingKickAt = now
        this.#repairSoon(MISSING_COPY_REPAIR_AFTER_MS)
      }
      // a copy that was cut off or failed late may still land: nothing lists it, so take it back
      void Promise.allSettled(missing.map(async (peer) => { await this.#init.peers.delete(peer, id) }))
    }
    return { extent: { id, size: bytes.byteLength, checksum, replicas: acked }, missing }
  }

  /**
   * Runs `put` on every target in parallel and settles once the write is decided: every target
   * answered, or a quorum acknowledged and the others had their grace (QUORUM_GRACE_FACTOR times as
   * long as the quorum took, at least QUORUM_GRACE_MS_MIN, at most QUORUM_GRACE_MS_MAX), or a quorum can no longer be
   * reached. A target still running then is cut off (its call aborted): a hung or overloaded replica
   * delays a write by the grace, not by the call's whole deadline, and its copy counts as missing.
   * Each outcome: 'acked', the error, or 'cut'.
   */
  async #fanOut (targets: PeerIdString[], quorum: number, signal: AbortSignal | undefined,
    put: (peer: PeerIdString, signal: AbortSignal) => Promise<void>): Promise<Array<'acked' | 'cut' | Error>> {
    const outcome: Array<'acked' | 'cut' | Error | undefined> = targets.map(() => undefined)
    const cut = new AbortController()
    setMaxListeners(Infinity, cut.signal)
    const onAbort = (): void => { cut.abort(signal?.reason) }
    signal?.addEventListener('abort', onAbort, { once: true })
    const started = Date.now()
    let grace: ReturnType<typeof setTimeout> | undefined
    try {
      await new Promise<void>((resolve) => {
        let acked = 0
        let failed = 0
        const settle = (i: number, r: 'acked' | Error): void => {
          if (outcome[i] !== undefined) return
          outcome[i] = r
          if (r === 'acked') acked++
          else failed++
          if (acked + failed === targets.length || targets.length - failed < quorum) {
            resolve()
          } else if (acked >= quorum && grace === undefined) {
            const ms = Math.min(QUORUM_GRACE_MS_MAX, Math.max(QUORUM_GRACE_MS_MIN, QUORUM_GRACE_FACTOR * (Date.now() - started)))
            grace = setTimeout(resolve, ms)
          }
        }
        const start = (peer: PeerIdString, i: number): void => {
          put(peer, cut.signal).then(() => { settle(i, 'acked') }, (err) => { settle(i, err instanceof Error ? err : new Error(String(err))) })
        }
        // this node's own copy first: its write (and fsync) then runs in the store's threads while
        // this thread encrypts and sends the remote copies, instead of after them
        const me = this.#init.nodeId
        targets.forEach((peer, i) => { if (peer === me) start(peer, i) })
        targets.forEach((peer, i) => { if (peer !== me) start(peer, i) })
      })
    } finally {
      if (grace !== undefined) clearTimeout(grace)
      signal?.removeEventListener('abort', onAbort)
    }
    const result = outcome.map((r) => r ?? 'cut')
    if (result.includes('cut')) cut.abort(new UnavailableError('the write was decided without this copy'))
    return result
  }

  async read (extent: ExtentRecord, options: CallOptions = {}): Promise<Uint8Array> {
    return await this.#init.peers.read(extent, { ...options, order: this.#readOrder(extent.replicas) })
  }

  /** Local first, then healthy replicas in this node's region, other healthy, suspected, failed. */
  #readOrder (replicas: PeerIdString[]): PeerIdString[] {
    const me = this.#init.nodeId
    const nodes = new Map(this.#init.cluster.nodes().map((n) => [n.id, n]))
    const region = nodes.get(me)?.region
    const rank = (id: PeerIdString): number => {
      if (id === me) return 0
      const n = nodes.get(id)
      if (n === undefined) return 5
      if (n.health === 'healthy') return n.region === region ? 1 : 2
      return n.health === 'suspected' ? 3 : 4
    }
    return replicas.map((id, i) => ({ id, i, r: rank(id) })).sort((a, b) => a.r - b.r || a.i - b.i).map((x) => x.id)
  }

  /** Deletes every copy of extents metadata dropped: the local one now, remote ones after the grace period. */
  release (extents: ExtentRecord[]): void {
    const remote = extents.flatMap((e) => e.replicas.filter((p) => p !== this.#init.nodeId).map((p) => ({ p, id: e.id })))
    if (remote.length === 0) return
    const t = setTimeout(() => {
      this.#releases.delete(t)
      void Promise.allSettled(remote.map(async ({ p, id }) => { await this.#init.peers.delete(p, id, { signal: this.#stopping.signal }) }))
    }, this.#tuning.releaseGraceMs)
    t.unref?.()
    this.#releases.add(t)
  }

  async status (options: CallOptions = {}): Promise<ReplicationStatus> {
    const { config, extents } = await this.#init.metadata.read((v) => ({
      config: v.config(),
      extents: allExtents(v)
    }), { ...options, scope: { system: true, extents: true } })
    const health = this.#health(extents)
    return {
      replicationFactor: config.replicationFactor,
      extents: extents.length,
      underReplicated: health.filter((h) => h.live.length < config.replicationFactor).length,
      missing: health.filter((h) => h.live.length === 0).length,
      repairing: this.#repairing.size
    }
  }

  async rebalance (options: RebalanceOptions = {}): Promise<RebalanceResult> {
    const { signal } = options
    const { config, extents, members } = await this.#init.metadata.read((v) => ({
      config: v.config(), members: v.members(), extents: allExtents(v)
    }), { signal, scope: { system: true, extents: true } })
    const nodes = this.#nodes(config, members)
    const known = new Set(nodes.map((n) => n.id))
    // an extent already moving keeps its one move; one with a copy on a node that left is repair's
    const movable = extents.filter((e) => e.move === undefined && e.replicas.every((p) => known.has(p)))
    const plan = this.#init.rebalance(config.rebalancePolicy).plan({
      nodes,
      extents: movable.map((e) => ({ id: e.id, size: e.size, replicas: e.replicas })),
      imbalanceThreshold: config.imbalanceThreshold
    })
    if (options.dryRun === true) return { planned: plan.moves.length, completed: 0, moves: plan.moves }
    const moves = await this.#record(plan.moves, signal)
    this.#log('rebalance: recorded %d of %d planned moves (imbalance %d -> %d)', moves.length, plan.moves.length, plan.imbalance, plan.imbalanceAfter)
    const completed = options.wait === true ? await this.#waitFor(moves, signal) : 0
    return { planned: moves.length, completed, moves }
  }

  async drain (node: PeerIdString, options: Omit<RebalanceOptions, 'dryRun'> = {}): Promise<DrainResult> {
    const { signal } = options
    const present = await this.#init.metadata.read((v) => v.members().some((m) => m.id === node), { signal, scope: { system: true } })
    if (!present) throw new NotFoundError(`no member ${node}`, { node })
    await this.#init.metadata.propose({ type: 'SetDraining', id: node, draining: true }, { signal })
    const moves = await this.#planDrain(node, signal)
    let remaining = await this.#remainingOn(node, signal)
    let completed = 0
    if (options.wait === true) {
      let replanned = Date.now()
      while (remaining > 0) {
        await sleep(WAIT_POLL_MS, signal)
        if (Date.now() - replanned >= DRAIN_REPLAN_MS) {
          moves.push(...await this.#planDrain(node, signal))
          replanned = Date.now()
        }
        remaining = await this.#remainingOn(node, signal)
      }
      completed = (await this.moveProgress(moves, { signal })).completed
    }
    return { node, planned: moves.length, completed, moves, remaining }
  }

  async undrain (node: PeerIdString, options: CallOptions = {}): Promise<UndrainResult> {
    const { signal } = options
    const present = await this.#init.metadata.read((v) => v.members().some((m) => m.id === node), { signal, scope: { system: true } })
    if (!present) throw new NotFoundError(`no member ${node}`, { node })
    await this.#init.metadata.propose({ type: 'SetDraining', id: node, draining: false }, { signal })
    // read after the flag is down: no drain (this node's or another's) plans a move off it any more
    const moving = await this.#init.metadata.read((v) => allExtents(v).filter((e) => e.move?.from === node).map((e) => e.id),
      { signal, scope: { extents: true } })
    let cancelled = 0
    for (const id of moving) {
      try {
        await this.#init.metadata.propose({ type: 'CancelMove', id }, { signal })
        cancelled++
      } catch (err) {
        // the coordinator finished (or cancelled) it meanwhile
        if (!(err instanceof DfsError && err.name === 'NotFound')) throw err
      }
    }
    this.#log('drain of %s cancelled: %d moves', node, cancelled)
    return { node, cancelled }
  }

  /**
   * Records a move for every copy on `node` that has none: the placement policy picks one new node
   * for the extent's other copies (the draining node shows as suspected, so it is never picked).
   * Moves onto the node are cancelled.
   */
  async #planDrain (node: PeerIdString, signal?: AbortSignal): Promise<RebalanceMove[]> {
    const { config, extents, members } = await this.#init.metadata.read((v) => ({
      config: v.config(), members: v.members(), extents: allExtents(v)
    }), { signal, scope: { system: true, extents: true } })
    const nodes = this.#nodes(config, members)
    const known = new Set(nodes.map((n) => n.id))
    const placement = this.#init.placement(config.placementPolicy)
    const planned: RebalanceMove[] = []
    for (const e of extents) {
      if (e.move?.to === node) {
        await this.#init.metadata.propose({ type: 'CancelMove', id: e.id }, { signal }).catch((err) => { this.#log('drain: cancel of %s: %s', e.id, (err as Error).message) })
        continue
      }
      if (!e.replicas.includes(node) || e.move !== undefined) continue
      const others = e.replicas.filter((p) => p !== node && known.has(p))
      const [to] = placement.place({ extent: { id: e.id, size: e.size, replicas: others }, replicationFactor: others.length + 1, nodes })
      if (to === undefined) continue // no node has room now: a later call (or --wait) tries again
      const target = nodes.find((n) => n.id === to)
      if (target !== undefined) target.usedBytes += e.size // later placements see this copy
      planned.push({ extent: e.id, from: node, to, bytes: e.size })
    }
    return await this.#record(planned, signal)
  }

  async #remainingOn (node: PeerIdString, signal?: AbortSignal): Promise<number> {
    return await this.#init.metadata.read((v) => allExtents(v).filter((e) => e.replicas.includes(node)).length,
      { signal, scope: { extents: true } })
  }

  async moveProgress (moves: ReadonlyArray<Omit<RebalanceMove, 'bytes'>>, options: CallOptions = {}): Promise<MoveProgress> {
    return await this.#init.metadata.read((v) => {
      let completed = 0
      let pending = 0
      for (const m of moves) {
        const e = v.getExtent(m.extent)
        if (e?.move?.from === m.from && e.move.to === m.to) pending++
        else if (e !== undefined && e.replicas.includes(m.to) && !e.replicas.includes(m.from)) completed++
      }
      return { completed, pending }
    }, { signal: options.signal, scope: { extents: true } })
  }

  /** Records moves as intents (StartMove); returns those recorded (a move that no longer fits is left out). */
  async #record (moves: RebalanceMove[], signal?: AbortSignal): Promise<RebalanceMove[]> {
    const recorded: RebalanceMove[] = []
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < moves.length) {
        const m = moves[next++]
        try {
          await this.#init.metadata.propose({ type: 'StartMove', id: m.extent, from: m.from, to: m.to }, { signal })
          recorded.push(m)
        } catch (err) {
          signal?.throwIfAborted()
          this.#log('move of %s from %s to %s not recorded: %s', m.extent, m.from, m.to, (err as Error).message)
        }
      }
    }
    await Promise.all(Array.from({ length: RECORD_CONCURRENCY }, worker))
    // in plan order, so the JSON lists moves as the policy ranked them
    const order = new Map(moves.map((m, i) => [m.extent, i]))
    recorded.sort((a, b) => (order.get(a.extent) ?? 0) - (order.get(b.extent) ?? 0))
    if (recorded.length > 0) void this.#movePass().catch((err) => { this.#log('%s', (err as Error).message) })
    return recorded
  }

  /** Resolves with the number completed once none of `moves` is pending. */
  async #waitFor (moves: RebalanceMove[], signal?: AbortSignal): Promise<number> {
    for (;;) {
      const p = await this.moveProgress(moves, { signal })
      if (p.pending === 0) return p.completed
      await sleep(WAIT_POLL_MS, signal)
    }
  }

  /**
   * Runs `run` over `todo` in order with `inFlight` workers, at most `bytesPerSecond` (by `size`)
   * overall, while this node is still the coordinator (the system group's leader) and not stopping.
   */
  async #coordinatorPool<T> (todo: T[], inFlight: number, bytesPerSecond: number, size: (item: T) => number,
    run: (item: T) => Promise<void>): Promise<void> {
    const { metadata, nodeId } = this.#init
    const started = Date.now()
    let bytes = 0
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < todo.length && !this.#stopping.signal.aborted && metadata.status().leader === nodeId) {
        const item = todo[next++]
        await run(item)
        bytes += size(item)
        const wait = started + (bytes / Math.max(1, bytesPerSecond)) * 1000 - Date.now()
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait).unref?.())
      }
    }
    await Promise.all(Array.from({ length: Math.max(1, inFlight) }, worker))
  }

  /** One pass of the move executor (only on the system group's leader): every recorded move, pooled and throttled. */
  async #movePass (): Promise<void> {
    const { metadata, nodeId } = this.#init
    if (this.#movePassRunning || metadata.status().leader !== nodeId || metadata.staleRead === undefined) return
    this.#movePassRunning = true
    try {
      const todo = metadata.staleRead((v) => allExtents(v).filter((e) => e.move !== undefined))
        .filter((e) => !this.#moving.has(e.id) && !this.#repairing.has(e.id))
      await this.#coordinatorPool(todo, this.#tuning.movesInFlightMax, this.#tuning.moveBytesPerSecond,
        (extent) => extent.size, async (extent) => { await this.#move(extent) })
    } finally {
      this.#movePassRunning = false
    }
  }

  /** Executes one recorded move: copy and verify on the target, switch in metadata, delete the source. */
  async #move (recorded: ExtentRecord): Promise<void> {
    const { metadata, peers } = this.#init
    this.#moving.add(recorded.id)
    try {
      // the record as applied now: the move may have finished or been cancelled since the scan
      const extent = metadata.staleRead?.((v) => v.getExtent(recorded.id))
      const move = extent?.move
      if (extent === undefined || move === undefined) return
      const target = this.#nodes(this.#config()).find((n) => n.id === move.to)
      if (target === undefined || !hasRoomFor(target, extent.size)) {
        this.#log('move of %s to %s cancelled: the target is %s', extent.id, move.to, target === undefined ? 'not a member' : `${target.health} or full`)
        await metadata.propose({ type: 'CancelMove', id: extent.id }, { signal: this.#stopping.signal })
        return
      }
      const signal = AbortSignal.any([this.#stopping.signal, AbortSignal.timeout(REPAIR_COPY_TIMEOUT_MS)])
      await peers.replicate(move.to, extent, this.#readOrder(extent.replicas), { signal })
      try {
        await metadata.propose({ type: 'MigrateExtent', id: extent.id, from: move.from, to: move.to, recorded: true }, { signal: this.#stopping.signal })
      } catch (err) {
        // rejected (not merely unanswered): the replica set changed under the move, so unless the
        // target is now listed its fresh copy is garbage
        if (err instanceof DfsError && (err.name === 'NotFound' || err.name === 'AlreadyExists')) {
          const now = metadata.staleRead?.((v) => v.getExtent(extent.id))
          if (now === undefined || !now.replicas.includes(move.to)) await peers.delete(move.to, extent.id, { signal: this.#stopping.signal }).catch(() => {})
        }
        throw err
      }
      this.#moveFailures.delete(extent.id)
      // a source that is down frees the copy at its start-up sweep: metadata no longer lists it there
      await peers.delete(move.from, extent.id, { signal: this.#stopping.signal }).catch((err) => {
        this.#log('move of %s: deleting the source copy on %s: %s', extent.id, move.from, (err as Error).message)
      })
      this.#log('moved %s from %s to %s', extent.id, move.from, move.to)
    } catch (err) {
      if (this.#stopping.signal.aborted) return
      const failures = (this.#moveFailures.get(recorded.id) ?? 0) + 1
      this.#moveFailures.set(recorded.id, failures)
      this.#log('move of %s failed (%d): %s', recorded.id, failures, (err as Error).message)
      if (failures >= MOVE_ATTEMPTS_MAX) {
        this.#moveFailures.delete(recorded.id)
        await metadata.propose({ type: 'CancelMove', id: recorded.id }, { signal: this.#stopping.signal }).catch(() => {})
      }
    } finally {
      this.#moving.delete(recorded.id)
    }
  }

  /** Each extent's live copies: on a member that is not Failed for longer than the repair delay. */
  #health (extents: ExtentRecord[]): ExtentHealth[] {
    const nodes = new Map(this.#init.cluster.nodes().map((n) => [n.id, n]))
    const alive = (id: PeerIdString): boolean => {
      const n = nodes.get(id)
      return n !== undefined && !(n.health === 'failed' && n.failedForMs >= this.#repairDelayMs)
    }
    return extents.map((extent) => ({ extent, live: extent.replicas.filter(alive) }))
  }

  /**
   * Runs a repair pass `ms` from now, unless one is already due sooner; the periodic pass runs as
   * well. Without it a node whose repair delay ran out just after a pass waited up to repairEveryMs
   * more for its copies to be made again, and a copy a write recorded missing sat under-replicated
   * until the next periodic pass.
   */
  #repairSoon (ms: number): void {
    if (this.#stopping.signal.aborted) return
    const at = Date.now() + ms
    if (this.#soon !== undefined && this.#soon.at <= at) return
    if (this.#soon !== undefined) clearTimeout(this.#soon.timer)
    const timer = setTimeout(() => {
      this.#soon = undefined
      this.#repairPass(true).catch((err) => { this.#log('%s', (err as Error).message) })
    }, ms)
    timer.unref?.()
    this.#soon = { timer, at }
  }

  /**
   * On the coordinator: asks for a repair pass at the moment a failed member's repair delay runs
   * out (or now, for one whose delay ran out since the last look), so repair starts then rather
   * than at the next periodic pass.
   */
  #watchFailed (): void {
    const { metadata, nodeId } = this.#init
    if (metadata.status().leader !== nodeId) return
    const failed = this.#init.cluster.nodes().filter((n) => n.health === 'failed')
    for (const id of this.#expired) if (!failed.some((n) => n.id === id)) this.#expired.delete(id)
    for (const n of failed) {
      const remaining = this.#repairDelayMs - n.failedForMs
      if (remaining > 0) {
        this.#repairSoon(remaining + REPAIR_EXPIRY_SLACK_MS)
      } else if (!this.#expired.has(n.id)) {
        this.#expired.add(n.id)
        this.#repairSoon(0)
      }
    }
  }

  /** One pass of the repair coordinator (only on the system group's leader). `early`: asked for by #repairSoon. */
  async #repairPass (early = false): Promise<void> {
    const { metadata, nodeId } = this.#init
    if (metadata.status().leader !== nodeId || metadata.staleRead === undefined) return
    if (this.#scanning) {
      // an early pass has a reason the running one may have missed: run it after
      if (early) this.#rescan = true
      return
    }
    this.#scanning = true
    try {
      const config = this.#config()
      const extents = metadata.staleRead(allExtents)
      const todo = this.#health(extents)
        .filter((h) => h.live.length < Math.max(config.replicationFactor, 1) || h.live.length < h.extent.replicas.length)
        .filter((h) => !this.#repairing.has(h.extent.id) && !this.#moving.has(h.extent.id))
        .sort((a, b) => a.live.length - b.live.length || (a.extent.id < b.extent.id ? -1 : 1))
      await this.#coordinatorPool(todo, this.#tuning.repairsInFlightMax, this.#tuning.repairBytesPerSecond,
        (h) => h.extent.size, async (h) => { await this.#repair(h, config) })
    } finally {
      this.#scanning = false
      if (this.#rescan) {
        this.#rescan = false
        this.#repairSoon(0)
      }
    }
  }

  async #repair ({ extent, live }: ExtentHealth, config: ClusterConfig): Promise<void> {
    if (live.length === 0) return // nothing to copy from: the extent waits for a node to return
    this.#repairing.add(extent.id)
    try {
      const nodes = this.#nodes(config)
      const known = new Set(nodes.map((n) => n.id))
      const targets = this.#init.placement(config.placementPolicy).place({
        extent: { id: extent.id, size: extent.size, replicas: live.filter((p) => known.has(p)) },
        replicationFactor: config.replicationFactor,
        nodes
      })
      const added: PeerIdString[] = []
      for (const target of targets) {
        if (this.#stopping.signal.aborted) return
        try {
          const signal = AbortSignal.any([this.#stopping.signal, AbortSignal.timeout(REPAIR_COPY_TIMEOUT_MS)])
          await this.#init.peers.replicate(target, extent, this.#readOrder(live), { signal })
          added.push(target)
        } catch (err) {
          this.#log('repair of %s onto %s failed: %s', extent.id, target, (err as Error).message)
        }
      }
      const replicas = [...live, ...added]
      if (added.length === 0 && replicas.length === extent.replicas.length) return
      await this.#init.metadata.propose({ type: 'UpdateReplication', id: extent.id, replicas }, { signal: this.#stopping.signal })
      this.#log('repaired %s: %o -> %o', extent.id, extent.replicas, replicas)
    } catch (err) {
      if (!(err instanceof DfsError && err.name === 'NotFound')) this.#log('repair of %s: %s', extent.id, (err as Error).message)
    } finally {
      this.#repairing.delete(extent.id)
    }
  }

  /**
   * Re-verifies this node's copies at a throttled rate; a corrupt copy, or one metadata lists here
   * but the store lacks, is fetched again from the other replicas.
   */
  async #scrubPass (): Promise<void> {
    const { metadata, store, nodeId } = this.#init
    if (this.#scrubbing || metadata.staleRead === undefined) return
    this.#scrubbing = true
    try {
      const mine = metadata.staleRead((v) => allExtents(v).filter((e) => e.replicas.includes(nodeId)))
      const started = Date.now()
      let bytes = 0
      for (const extent of mine) {
        if (this.#stopping.signal.aborted) return
        let bad = false
        try {
          if (!(await store.has(extent.id))) bad = true
          else bytes += (await store.get(extent.id, { signal: this.#stopping.signal })).byteLength
        } catch (err) {
          if (this.#stopping.signal.aborted) return
          bad = err instanceof DfsError && (err.name === 'CorruptExtent' || err.name === 'NotFound')
          if (!bad) this.#log('scrub of %s: %s', extent.id, (err as Error).message)
        }
        if (bad) {
          const sources = this.#readOrder(extent.replicas.filter((p) => p !== nodeId))
          try {
            await this.#init.peers.replicate(nodeId, extent, sources, { signal: this.#stopping.signal })
            this.#log('scrub: re-fetched copy of %s', extent.id)
          } catch (err) {
            this.#log('scrub: re-fetching %s failed: %s', extent.id, (err as Error).message)
          }
        }
        // throttle: never faster than scrubBytesPerSecond on average
        const due = started + (bytes / Math.max(1, this.#tuning.scrubBytesPerSecond)) * 1000
        const wait = due - Date.now()
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait).unref?.())
      }
    } finally {
      this.#scrubbing = false
    }
  }
}

/** Every extent record in a metadata view. */
function allExtents (v: { extentIds: () => Iterable<string>, getExtent: (id: string) => ExtentRecord | undefined }): ExtentRecord[] {
  return [...v.extentIds()].map((id) => v.getExtent(id)).filter((e): e is ExtentRecord => e !== undefined)
}

/** Resolves after `ms`, or rejects with the signal's reason once it aborts. */
async function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  signal?.throwIfAborted()
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => { clearTimeout(t); reject(signal?.reason) }
    const t = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve() }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
