import { DfsError, hasRoomFor } from '@dfs/api'
import type { ExtentRecord, Logger } from '@dfs/api'
import { MOVE_ATTEMPTS_MAX, REPAIR_COPY_TIMEOUT_MS } from './constants.js'
import { allExtents, clusterConfig, coordinatorPool, errorFields, isCoordinator, policyNodes, report, scopedLogger } from './context.js'
import type { ReplicationContext } from './context.js'
import type { ReadPath } from './read-path.js'

/**
 * The move executor (`dfs:replication:moves`). Any node records moves as intents on their extent
 * records (Rebalancer); the coordinator (the system group's leader, as for repair) executes them,
 * at most `movesInFlightMax` at once and `moveBytesPerSecond` overall, in two phases: the target
 * pulls and verifies a copy, MigrateExtent switches the replica set through Raft (clearing the
 * intent), then the source's copy is deleted. A crash before the switch leaves the intent, which a
 * new coordinator finishes (the copy already on the target verifies and is kept); a crash after it
 * leaves at most a copy metadata no longer lists on the source, which that node's start-up sweep
 * frees. A target that became unhealthy, draining or full is re-checked at execution and its move
 * cancelled. An extent under repair is left to repair until it is done.
 */
export class MoveExecutor {
  readonly #ctx: ReplicationContext
  readonly #log: Logger
  readonly #reads: ReadPath
  /** Whether the repair coordinator is repairing an extent now (Repair.isRepairing). */
  readonly #isRepairing: (id: string) => boolean
  /** Extents whose move this coordinator is executing now. */
  readonly #moving = new Set<string>()
  /** Failed attempts per extent on this coordinator; MOVE_ATTEMPTS_MAX cancels the move. */
  readonly #failures = new Map<string, number>()
  #passRunning = false

  constructor (ctx: ReplicationContext, reads: ReadPath, isRepairing: (id: string) => boolean) {
    this.#ctx = ctx
    this.#log = scopedLogger(ctx.init.logger, 'moves')
    this.#reads = reads
    this.#isRepairing = isRepairing
  }

  get log (): Logger {
    return this.#log
  }

  isMoving (id: string): boolean {
    return this.#moving.has(id)
  }

  /** Moves this coordinator is executing now. */
  get inFlight (): number {
    return this.#moving.size
  }

  /** A pass now, without waiting for it (after a node recorded moves); its error is logged. */
  kick (): void {
    void this.pass().catch((err) => { this.#log('%s', (err as Error).message) })
  }

  /** One pass of the move executor (only on the system group's leader): every recorded move, pooled and throttled. */
  async pass (): Promise<void> {
    const { init, tuning } = this.#ctx
    const { metadata } = init
    if (this.#passRunning || !isCoordinator(init) || metadata.staleRead === undefined) return
    this.#passRunning = true
    try {
      const todo = metadata.staleRead((v) => allExtents(v).filter((e) => e.move !== undefined))
        .filter((e) => !this.#moving.has(e.id) && !this.#isRepairing(e.id))
      await coordinatorPool(this.#ctx, todo, tuning.movesInFlightMax, tuning.moveBytesPerSecond,
        (extent) => extent.size, async (extent) => { await this.#move(extent) })
    } finally {
      this.#passRunning = false
    }
  }

  /** Executes one recorded move: copy and verify on the target, switch in metadata, delete the source. */
  async #move (recorded: ExtentRecord): Promise<void> {
    const { init, stopping } = this.#ctx
    const { metadata, peers } = init
    this.#moving.add(recorded.id)
    /** The move as it was started (for the events of its end). */
    let started: { extent: string, bytes: number, from: string, to: string } | undefined
    try {
      // the record as applied now: the move may have finished or been cancelled since the scan
      const extent = metadata.staleRead?.((v) => v.getExtent(recorded.id))
      const move = extent?.move
      if (extent === undefined || move === undefined) return
      const target = policyNodes(init, clusterConfig(init)).find((n) => n.id === move.to)
      if (target === undefined || !hasRoomFor(target, extent.size)) {
        const reason = `the target is ${target === undefined ? 'not a member' : `${target.health} or full`}`
        this.#log('move of %s to %s cancelled: %s', extent.id, move.to, reason)
        await metadata.propose({ type: 'CancelMove', id: extent.id }, { signal: stopping })
        report(this.#ctx, { kind: 'move.cancelled', extent: extent.id, bytes: extent.size, from: move.from, to: move.to, reason }, this.#log)
        return
      }
      started = { extent: extent.id, bytes: extent.size, from: move.from, to: move.to }
      report(this.#ctx, { kind: 'move.started', ...started }, this.#log)
      const signal = AbortSignal.any([stopping, AbortSignal.timeout(REPAIR_COPY_TIMEOUT_MS)])
      await peers.replicate(move.to, extent, this.#reads.order(extent.replicas), { signal })
      try {
        await metadata.propose({ type: 'MigrateExtent', id: extent.id, from: move.from, to: move.to, recorded: true }, { signal: stopping })
      } catch (err) {
        // rejected (not merely unanswered): the replica set changed under the move, so unless the
        // target is now listed its fresh copy is garbage
        if (err instanceof DfsError && (err.name === 'NotFound' || err.name === 'AlreadyExists')) {
          const now = metadata.staleRead?.((v) => v.getExtent(extent.id))
          if (now === undefined || !now.replicas.includes(move.to)) await peers.delete(move.to, extent.id, { signal: stopping }).catch(() => {})
        }
        throw err
      }
      this.#failures.delete(extent.id)
      // a source that is down frees the copy at its start-up sweep: metadata no longer lists it there
      await peers.delete(move.from, extent.id, { signal: stopping }).catch((err) => {
        this.#log('move of %s: deleting the source copy on %s: %s', extent.id, move.from, (err as Error).message)
      })
      this.#log('moved %s from %s to %s', extent.id, move.from, move.to)
      report(this.#ctx, { kind: 'move.finished', ...started }, this.#log)
    } catch (err) {
      if (stopping.aborted) return
      const failures = (this.#failures.get(recorded.id) ?? 0) + 1
      this.#failures.set(recorded.id, failures)
      this.#log('move of %s failed (%d): %s', recorded.id, failures, (err as Error).message)
      if (started !== undefined) report(this.#ctx, { kind: 'move.failed', ...started, ...errorFields(err) }, this.#log)
      if (failures >= MOVE_ATTEMPTS_MAX) {
        this.#failures.delete(recorded.id)
        await metadata.propose({ type: 'CancelMove', id: recorded.id }, { signal: stopping }).catch(() => {})
        if (started !== undefined) report(this.#ctx, { kind: 'move.cancelled', ...started, reason: `failed ${failures} times` }, this.#log)
      }
    } finally {
      this.#moving.delete(recorded.id)
    }
  }
}
