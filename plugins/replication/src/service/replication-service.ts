/**
 * The default ReplicationService: RF copies of every extent, written to a quorum, read from the
 * nearest good copy, and kept at RF by a repair coordinator and a per-node scrub.
 *
 * - write: the cluster's placement policy picks up to RF healthy nodes with room; the bytes go to all
 *   of them in parallel (each fsyncs before it answers) and the write succeeds when a majority of
 *   the nodes placed (`sync: 'all'`: every one) acknowledged. Only acknowledged copies are recorded;
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
 */
import {
  CLUSTER_CONFIG_DEFAULTS, DfsError, REPAIR_DELAY_MS_DEFAULT, UnavailableError, extentChecksum
} from '@dfs/api'
import type {
  CallOptions, ClusterConfig, ClusterNode, ExtentRecord, Logger, PeerIdString, ReplicatedWrite,
  ReplicatedWriteOptions, ReplicationService, ReplicationServiceInit, ReplicationStatus
} from '@dfs/api'

export const REPAIR_EVERY_MS_DEFAULT = 5_000
export const REPAIRS_IN_FLIGHT_MAX_DEFAULT = 4
/** Repair copies at most this many bytes per second (cluster-wide: one coordinator). */
export const REPAIR_BYTES_PER_SECOND_DEFAULT = 64 * 1024 * 1024
export const SCRUB_EVERY_MS_DEFAULT = 60_000
export const SCRUB_BYTES_PER_SECOND_DEFAULT = 16 * 1024 * 1024
/** Pause before remote copies of a dropped extent are deleted (readers elsewhere finish first). */
export const RELEASE_GRACE_MS_DEFAULT = 10_000
/** Deadline of one repair copy (a 4 MiB extent pulled from a live replica). */
const REPAIR_COPY_TIMEOUT_MS = 60_000

export interface ReplicationTuning {
  repairEveryMs?: number
  repairsInFlightMax?: number
  repairBytesPerSecond?: number
  scrubEveryMs?: number
  scrubBytesPerSecond?: number
  releaseGraceMs?: number
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
  #scrubbing = false
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
      releaseGraceMs: init.releaseGraceMs ?? RELEASE_GRACE_MS_DEFAULT
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
    every(this.#tuning.scrubEveryMs, async () => { await this.#scrubPass() })
  }

  async stop (): Promise<void> {
    this.#stopping.abort(new UnavailableError('replication is stopping'))
    for (const t of this.#timers) clearInterval(t)
    for (const t of this.#releases) clearTimeout(t)
    this.#releases.clear()
  }

  #config (): ClusterConfig {
    const m = this.#init.metadata
    return m.staleRead?.((v) => v.config()) ?? CLUSTER_CONFIG_DEFAULTS
  }

  /** The cluster as placement sees it, with the configured fill limit. */
  #nodes (config: ClusterConfig): ClusterNode[] {
    return this.#init.cluster.nodes().map((n) => ({ ...n, fillLimit: config.fillLimit }))
  }

  async write (id: string, bytes: Uint8Array, options: ReplicatedWriteOptions = {}): Promise<ReplicatedWrite> {
    const config = this.#config()
    const nodes = this.#nodes(config)
    const targets = this.#init.placement(config.placementPolicy).place({
      extent: { id, size: bytes.byteLength, replicas: [] },
      replicationFactor: config.replicationFactor,
      nodes
    })
    if (targets.length === 0) {
      throw new UnavailableError('no healthy node has room for a copy of the extent', { extent: id, nodes: nodes.length })
    }
    const quorum = options.sync === 'all' ? targets.length : Math.floor(targets.length / 2) + 1
    const checksum = extentChecksum(bytes)
    const identity = { id, size: bytes.byteLength, checksum }
    const results = await Promise.allSettled(targets.map(async (peer) => {
      await this.#init.peers.put(peer, identity, bytes, { signal: options.signal })
    }))
    const acked = targets.filter((_, i) => results[i].status === 'fulfilled')
    const missing = targets.filter((_, i) => results[i].status === 'rejected')
    if (acked.length < quorum) {
      // nothing will reference these copies: take them back (the start-up sweep catches any left)
      void Promise.allSettled(acked.map(async (peer) => { await this.#init.peers.delete(peer, id) }))
      const failures = missing.map((peer) => {
        const r = results[targets.indexOf(peer)] as PromiseRejectedResult
        return { node: peer, error: (r.reason as Error)?.name ?? 'Error', message: (r.reason as Error)?.message ?? String(r.reason) }
      })
      options.signal?.throwIfAborted()
      throw new UnavailableError(`only ${acked.length} of ${targets.length} replicas stored extent ${id}; ${quorum} needed`,
        { extent: id, acked, quorum, failures })
    }
    if (missing.length > 0) this.#log('extent %s: copies on %o missing, left to repair', id, missing)
    return { extent: { id, size: bytes.byteLength, checksum, replicas: acked }, missing }
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
      extents: [...v.extentIds()].map((id) => v.getExtent(id)).filter((e): e is ExtentRecord => e !== undefined)
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

  /** Each extent's live copies: on a member that is not Failed for longer than the repair delay. */
  #health (extents: ExtentRecord[]): ExtentHealth[] {
    const nodes = new Map(this.#init.cluster.nodes().map((n) => [n.id, n]))
    const alive = (id: PeerIdString): boolean => {
      const n = nodes.get(id)
      return n !== undefined && !(n.health === 'failed' && n.failedForMs >= this.#repairDelayMs)
    }
    return extents.map((extent) => ({ extent, live: extent.replicas.filter(alive) }))
  }

  /** One pass of the repair coordinator (only on the system group's leader). */
  async #repairPass (): Promise<void> {
    const { metadata, nodeId } = this.#init
    if (this.#scanning || metadata.status().leader !== nodeId || metadata.staleRead === undefined) return
    this.#scanning = true
    try {
      const config = this.#config()
      const extents = metadata.staleRead((v) => [...v.extentIds()].map((id) => v.getExtent(id)).filter((e): e is ExtentRecord => e !== undefined))
      const todo = this.#health(extents)
        .filter((h) => h.live.length < Math.max(config.replicationFactor, 1) || h.live.length < h.extent.replicas.length)
        .filter((h) => !this.#repairing.has(h.extent.id))
        .sort((a, b) => a.live.length - b.live.length || (a.extent.id < b.extent.id ? -1 : 1))
      // a pool of repairsInFlightMax workers over the whole list, at most repairBytesPerSecond
      const started = Date.now()
      let bytes = 0
      let next = 0
      const worker = async (): Promise<void> => {
        while (next < todo.length && !this.#stopping.signal.aborted && metadata.status().leader === nodeId) {
          const h = todo[next++]
          await this.#repair(h, config)
          bytes += h.extent.size
          const wait = started + (bytes / Math.max(1, this.#tuning.repairBytesPerSecond)) * 1000 - Date.now()
          if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait).unref?.())
        }
      }
      await Promise.all(Array.from({ length: Math.max(1, this.#tuning.repairsInFlightMax) }, worker))
    } finally {
      this.#scanning = false
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
      const mine = metadata.staleRead((v) => [...v.extentIds()].map((id) => v.getExtent(id))
        .filter((e): e is ExtentRecord => e !== undefined && e.replicas.includes(nodeId)))
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
