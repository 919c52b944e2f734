/**
 * The default ReplicationService: RF copies of every extent, written to a quorum, read from the
 * nearest good copy, and kept at RF by a repair coordinator and a per-node scrub. This class is a
 * facade: it resolves the settings, owns the periodic timers (start registers them, stop aborts the
 * shared `stopping` signal and clears every timer, its modules' included) and delegates each job to
 * one module, each logging under its own namespace below the node's `dfs:replication`:
 *
 * - write-path.ts (`:write`): placement by the cluster's policy from this node's view, a parallel
 *   fan-out, success at a majority of the copies the cluster can hold (`sync: 'all'`: every one);
 *   copies not acknowledged are left to repair.
 * - read-path.ts: the order copies are read in — local, same region, other healthy, suspected, failed.
 * - repair.ts (`:repair`): on the system group's leader, re-creates copies of extents with fewer live
 *   copies than RF, fewest first, pooled and throttled; also the replication status.
 * - scrub.ts (`:scrub`): every node re-verifies its own copies and re-fetches a bad or missing one.
 * - release.ts: deletes other nodes' copies of dropped extents after a grace period.
 * - rebalance.ts (`:rebalance`): rebalance and drain plans, recorded as move intents on any node.
 * - moves.ts (`:moves`): on the system group's leader, executes recorded moves in two phases (copy
 *   and verify, then switch the replica set through Raft and delete the source).
 *
 * Shared helpers (the policies' view of the cluster, the coordinator pool) are in context.ts;
 * defaults and limits in constants.ts.
 */
import { setMaxListeners } from 'node:events'
import { REPAIR_DELAY_MS_DEFAULT, UnavailableError } from '@dfs/api'
import type {
  CallOptions, DrainResult, ExtentRecord, Logger, MoveProgress, PeerIdString, RebalanceMove, RebalanceOptions,
  RebalanceResult, ReplicatedWrite, ReplicatedWriteOptions, ReplicationService, ReplicationServiceInit, ReplicationStatus,
  UndrainResult
} from '@dfs/api'
import {
  FAILED_WATCH_MS, MOVE_BYTES_PER_SECOND_DEFAULT, MOVE_EVERY_MS_DEFAULT, MOVES_IN_FLIGHT_MAX_DEFAULT,
  RELEASE_GRACE_MS_DEFAULT, REPAIR_BYTES_PER_SECOND_DEFAULT, REPAIR_EVERY_MS_DEFAULT, REPAIRS_IN_FLIGHT_MAX_DEFAULT,
  SCRUB_BYTES_PER_SECOND_DEFAULT, SCRUB_EVERY_MS_DEFAULT
} from './constants.js'
import type { ReplicationContext, ReplicationTuning } from './context.js'
import { MoveExecutor } from './moves.js'
import { ReadPath } from './read-path.js'
import { Rebalancer } from './rebalance.js'
import { Release } from './release.js'
import { Repair } from './repair.js'
import { Scrub } from './scrub.js'
import { WritePath } from './write-path.js'

export {
  MOVE_BYTES_PER_SECOND_DEFAULT, MOVE_EVERY_MS_DEFAULT, MOVES_IN_FLIGHT_MAX_DEFAULT, QUORUM_GRACE_FACTOR,
  QUORUM_GRACE_MS_MAX, QUORUM_GRACE_MS_MIN, RELEASE_GRACE_MS_DEFAULT, REPAIR_BYTES_PER_SECOND_DEFAULT,
  REPAIR_EVERY_MS_DEFAULT, REPAIRS_IN_FLIGHT_MAX_DEFAULT, SCRUB_BYTES_PER_SECOND_DEFAULT, SCRUB_EVERY_MS_DEFAULT
} from './constants.js'
export type { ReplicationTuning } from './context.js'

export class DefaultReplication implements ReplicationService {
  /** See WritePath.write: with `encoded`, `bytes` are not read once the write settles. */
  readonly encodedWritesReleaseBytes = true
  /** Aborted by stop: every module's background work ends and none sets a new timer. */
  readonly #stopping = new AbortController()
  /** The periodic timers start registered; stop clears them. */
  readonly #timers: Array<ReturnType<typeof setInterval>> = []
  readonly #tuning: Required<ReplicationTuning>
  readonly #reads: ReadPath
  readonly #writes: WritePath
  readonly #repair: Repair
  readonly #scrub: Scrub
  readonly #release: Release
  readonly #moves: MoveExecutor
  readonly #rebalancer: Rebalancer

  constructor (init: ReplicationServiceInit & ReplicationTuning) {
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
    // every background call (release's deletes, repair's copies, moves) listens to it, 16 or more at once
    setMaxListeners(Infinity, this.#stopping.signal)
    const ctx: ReplicationContext = {
      init,
      tuning: this.#tuning,
      repairDelayMs: init.repairDelayMs ?? REPAIR_DELAY_MS_DEFAULT,
      stopping: this.#stopping.signal
    }
    this.#reads = new ReadPath(ctx)
    // repair and moves leave each other's extents alone; the lookups run only after construction
    this.#repair = new Repair(ctx, this.#reads, (id) => this.#moves.isMoving(id))
    this.#moves = new MoveExecutor(ctx, this.#reads, (id) => this.#repair.isRepairing(id))
    this.#writes = new WritePath(ctx, (ms) => { this.#repair.soon(ms) })
    this.#scrub = new Scrub(ctx, this.#reads)
    this.#release = new Release(ctx)
    this.#rebalancer = new Rebalancer(ctx, () => { this.#moves.kick() })
  }

  async start (): Promise<void> {
    const every = (ms: number, log: Logger, fn: () => Promise<void>): void => {
      const t = setInterval(() => { fn().catch((err) => { log('%s', (err as Error).message) }) }, ms)
      t.unref?.()
      this.#timers.push(t)
    }
    const repair = this.#repair
    every(this.#tuning.repairEveryMs, repair.log, async () => { await repair.pass() })
    // between passes, a cheap look at the members (no extents) for a repair delay about to run out
    every(Math.min(FAILED_WATCH_MS, this.#tuning.repairEveryMs), repair.log, async () => { repair.watchFailed() })
    every(this.#tuning.scrubEveryMs, this.#scrub.log, async () => { await this.#scrub.pass() })
    every(this.#tuning.moveEveryMs, this.#moves.log, async () => { await this.#moves.pass() })
  }

  async stop (): Promise<void> {
    this.#stopping.abort(new UnavailableError('replication is stopping'))
    for (const t of this.#timers) clearInterval(t)
    this.#repair.stop()
    this.#release.stop()
  }

  placeInline (id: string, size: number, voters: PeerIdString[]): PeerIdString[] | undefined {
    return this.#writes.placeInline(id, size, voters)
  }

  async write (id: string, bytes: Uint8Array, options: ReplicatedWriteOptions = {}): Promise<ReplicatedWrite> {
    return await this.#writes.write(id, bytes, options)
  }

  async read (extent: ExtentRecord, options: CallOptions = {}): Promise<Uint8Array> {
    return await this.#reads.read(extent, options)
  }

  release (extents: ExtentRecord[]): void {
    this.#release.release(extents)
  }

  async status (options: CallOptions = {}): Promise<ReplicationStatus> {
    return { ...await this.#repair.status(options), movesInFlight: this.#moves.inFlight }
  }

  async rebalance (options: RebalanceOptions = {}): Promise<RebalanceResult> {
    return await this.#rebalancer.rebalance(options)
  }

  async drain (node: PeerIdString, options: Omit<RebalanceOptions, 'dryRun'> = {}): Promise<DrainResult> {
    return await this.#rebalancer.drain(node, options)
  }

  async undrain (node: PeerIdString, options: CallOptions = {}): Promise<UndrainResult> {
    return await this.#rebalancer.undrain(node, options)
  }

  async moveProgress (moves: ReadonlyArray<Omit<RebalanceMove, 'bytes'>>, options: CallOptions = {}): Promise<MoveProgress> {
    return await this.#rebalancer.moveProgress(moves, options)
  }
}
