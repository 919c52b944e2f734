import { DfsError } from '@dfs/api'
import type {
  CallOptions, ClusterConfig, ExtentRecord, Logger, PeerIdString, ReplicationStatus
} from '@dfs/api'
import { REPAIR_COPY_TIMEOUT_MS, REPAIR_EXPIRY_SLACK_MS } from './constants.js'
import { allExtents, clusterConfig, coordinatorPool, errorFields, isCoordinator, policyNodes, report, scopedLogger } from './context.js'
import type { ReplicationContext } from './context.js'
import type { ReadPath } from './read-path.js'

interface ExtentHealth {
  extent: ExtentRecord
  live: PeerIdString[]
}

/**
 * The repair coordinator (`dfs:replication:repair`). Only the leader of the metadata system group
 * repairs (a new leader takes over; everything it needs is in metadata, so repair resumes after any
 * restart). Every `repairEveryMs` it finds extents with fewer live copies than RF — a copy is live
 * while its node is a member not Failed for longer than the repair delay — and, fewest live copies
 * first, at most `repairsInFlightMax` at a time and `repairBytesPerSecond` overall, has new nodes
 * pull a copy from a live one, then records the new replica set in metadata. Copies on removed or
 * long-failed nodes are dropped from it. An extent that is being moved is left to its move.
 */
export class Repair {
  readonly #ctx: ReplicationContext
  readonly #log: Logger
  readonly #reads: ReadPath
  /** Whether the move executor is moving an extent now (MoveExecutor.isMoving). */
  readonly #isMoving: (id: string) => boolean
  /** Extents this coordinator is repairing now. */
  readonly #repairing = new Set<string>()
  #scanning = false
  /** Extents the running pass has still to repair (0 between passes). */
  #queued = 0
  /** Failed members whose repair delay has run out, as watchFailed last saw them. */
  readonly #expired = new Set<PeerIdString>()
  /** A repair pass asked for while one ran: run another as soon as it ends. */
  #rescan = false
  /** The one-shot timer of an early repair pass (see soon), and when it fires (epoch ms); cleared by stop. */
  #soon: { timer: ReturnType<typeof setTimeout>, at: number } | undefined

  constructor (ctx: ReplicationContext, reads: ReadPath, isMoving: (id: string) => boolean) {
    this.#ctx = ctx
    this.#log = scopedLogger(ctx.init.logger, 'repair')
    this.#reads = reads
    this.#isMoving = isMoving
  }

  get log (): Logger {
    return this.#log
  }

  isRepairing (id: string): boolean {
    return this.#repairing.has(id)
  }

  /** Clears the timer of an early pass; the facade has aborted `ctx.stopping` first, so no new one is set. */
  stop (): void {
    if (this.#soon !== undefined) clearTimeout(this.#soon.timer)
    this.#soon = undefined
  }

  /** `dfs cluster replication`: extents under RF or without a live copy, as this node sees its members. */
  async status (options: CallOptions = {}): Promise<ReplicationStatus> {
    const { config, extents } = await this.#ctx.init.metadata.read((v) => ({
      config: v.config(),
      extents: allExtents(v)
    }), { ...options, scope: { system: true, extents: true } })
    const health = this.#health(extents)
    return {
      replicationFactor: config.replicationFactor,
      extents: extents.length,
      underReplicated: health.filter((h) => h.live.length < config.replicationFactor).length,
      missing: health.filter((h) => h.live.length === 0).length,
      repairing: this.#repairing.size,
      repairQueued: this.#queued,
      movesRecorded: extents.filter((e) => e.move !== undefined).length
    }
  }

  /** Each extent's live copies: on a member that is not Failed for longer than the repair delay. */
  #health (extents: ExtentRecord[]): ExtentHealth[] {
    const nodes = new Map(this.#ctx.init.cluster.nodes().map((n) => [n.id, n]))
    const alive = (id: PeerIdString): boolean => {
      const n = nodes.get(id)
      return n !== undefined && !(n.health === 'failed' && n.failedForMs >= this.#ctx.repairDelayMs)
    }
    return extents.map((extent) => ({ extent, live: extent.replicas.filter(alive) }))
  }

  /**
   * Runs a repair pass `ms` from now, unless one is already due sooner; the periodic pass runs as
   * well. Without it a node whose repair delay ran out just after a pass waited up to repairEveryMs
   * more for its copies to be made again, and a copy a write recorded missing sat under-replicated
   * until the next periodic pass.
   */
  soon (ms: number): void {
    if (this.#ctx.stopping.aborted) return
    const at = Date.now() + ms
    if (this.#soon !== undefined && this.#soon.at <= at) return
    if (this.#soon !== undefined) clearTimeout(this.#soon.timer)
    const timer = setTimeout(() => {
      this.#soon = undefined
      this.pass(true).catch((err) => { this.#log('%s', (err as Error).message) })
    }, ms)
    timer.unref?.()
    this.#soon = { timer, at }
  }

  /**
   * On the coordinator: asks for a repair pass at the moment a failed member's repair delay runs
   * out (or now, for one whose delay ran out since the last look), so repair starts then rather
   * than at the next periodic pass.
   */
  watchFailed (): void {
    const { init, repairDelayMs } = this.#ctx
    if (!isCoordinator(init)) return
    const failed = init.cluster.nodes().filter((n) => n.health === 'failed')
    for (const id of this.#expired) if (!failed.some((n) => n.id === id)) this.#expired.delete(id)
    for (const n of failed) {
      const remaining = repairDelayMs - n.failedForMs
      if (remaining > 0) {
        this.soon(remaining + REPAIR_EXPIRY_SLACK_MS)
      } else if (!this.#expired.has(n.id)) {
        this.#expired.add(n.id)
        this.soon(0)
      }
    }
  }

  /** One pass of the repair coordinator (only on the system group's leader). `early`: asked for by soon. */
  async pass (early = false): Promise<void> {
    const { init, tuning } = this.#ctx
    const { metadata } = init
    if (!isCoordinator(init) || metadata.staleRead === undefined) return
    if (this.#scanning) {
      // an early pass has a reason the running one may have missed: run it after
      if (early) this.#rescan = true
      return
    }
    this.#scanning = true
    try {
      const config = clusterConfig(init)
      const extents = metadata.staleRead(allExtents)
      const todo = this.#health(extents)
        .filter((h) => h.live.length < Math.max(config.replicationFactor, 1) || h.live.length < h.extent.replicas.length)
        .filter((h) => !this.#repairing.has(h.extent.id) && !this.#isMoving(h.extent.id))
        .sort((a, b) => a.live.length - b.live.length || (a.extent.id < b.extent.id ? -1 : 1))
      this.#queued = todo.length
      await coordinatorPool(this.#ctx, todo, tuning.repairsInFlightMax, tuning.repairBytesPerSecond,
        (h) => h.extent.size, async (h) => {
          try {
            await this.#repair(h, config)
          } finally {
            this.#queued = Math.max(0, this.#queued - 1)
          }
        })
    } finally {
      this.#queued = 0
      this.#scanning = false
      if (this.#rescan) {
        this.#rescan = false
        this.soon(0)
      }
    }
  }

  async #repair ({ extent, live }: ExtentHealth, config: ClusterConfig): Promise<void> {
    if (live.length === 0) return // nothing to copy from: the extent waits for a node to return
    const { init, stopping } = this.#ctx
    this.#repairing.add(extent.id)
    /** Targets that hold a new copy, recorded in metadata only once the replica set is updated. */
    const added: PeerIdString[] = []
    try {
      const nodes = policyNodes(init, config)
      const known = new Set(nodes.map((n) => n.id))
      const targets = init.placement(config.placementPolicy).place({
        extent: { id: extent.id, size: extent.size, replicas: live.filter((p) => known.has(p)) },
        replicationFactor: config.replicationFactor,
        nodes
      })
      for (const target of targets) {
        if (stopping.aborted) return
        report(this.#ctx, { kind: 'repair.started', extent: extent.id, bytes: extent.size, target }, this.#log)
        try {
          const signal = AbortSignal.any([stopping, AbortSignal.timeout(REPAIR_COPY_TIMEOUT_MS)])
          await init.peers.replicate(target, extent, this.#reads.order(live), { signal })
          added.push(target)
        } catch (err) {
          this.#log('repair of %s onto %s failed: %s', extent.id, target, (err as Error).message)
          report(this.#ctx, { kind: 'repair.failed', extent: extent.id, bytes: extent.size, target, ...errorFields(err) }, this.#log)
        }
      }
      const replicas = [...live, ...added]
      if (added.length === 0 && replicas.length === extent.replicas.length) return
      await init.metadata.propose({ type: 'UpdateReplication', id: extent.id, replicas }, { signal: stopping })
      this.#log('repaired %s: %o -> %o', extent.id, extent.replicas, replicas)
      for (const target of added) report(this.#ctx, { kind: 'repair.finished', extent: extent.id, bytes: extent.size, target }, this.#log)
    } catch (err) {
      if (!(err instanceof DfsError && err.name === 'NotFound')) this.#log('repair of %s: %s', extent.id, (err as Error).message)
      // the copies made are not recorded: they count as failed (a later pass makes them again)
      for (const target of added) report(this.#ctx, { kind: 'repair.failed', extent: extent.id, bytes: extent.size, target, ...errorFields(err) }, this.#log)
    } finally {
      this.#repairing.delete(extent.id)
    }
  }
}
