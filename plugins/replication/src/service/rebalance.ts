import { DfsError, NotFoundError } from '@dfs/api'
import type {
  CallOptions, DrainResult, Logger, MoveProgress, PeerIdString, RebalanceMove, RebalanceOptions, RebalanceResult,
  UndrainResult
} from '@dfs/api'
import { DRAIN_REPLAN_MS, RECORD_CONCURRENCY, WAIT_POLL_MS } from './constants.js'
import { allExtents, policyNodes, scopedLogger, sleep } from './context.js'
import type { ReplicationContext } from './context.js'

/**
 * Rebalance and drain planning (`dfs:replication:rebalance`), on any node: the rebalance policy (or,
 * for a drain, the placement policy) plans moves, which are recorded as intents on their extent
 * records (StartMove) for the coordinator's MoveExecutor to carry out; with `wait`, the call
 * follows them in metadata until none is pending. A draining member is offered to the policies as
 * suspected: nothing places a copy on it, and its existing copies still count as live.
 */
export class Rebalancer {
  readonly #ctx: ReplicationContext
  readonly #log: Logger
  /** Asks the move executor for a pass now (MoveExecutor.kick). */
  readonly #kickMoves: () => void

  constructor (ctx: ReplicationContext, kickMoves: () => void) {
    this.#ctx = ctx
    this.#log = scopedLogger(ctx.init.logger, 'rebalance')
    this.#kickMoves = kickMoves
  }

  async rebalance (options: RebalanceOptions = {}): Promise<RebalanceResult> {
    const { init } = this.#ctx
    const { signal } = options
    const { config, extents, members } = await init.metadata.read((v) => ({
      config: v.config(), members: v.members(), extents: allExtents(v)
    }), { signal, scope: { system: true, extents: true } })
    const nodes = policyNodes(init, config, members)
    const known = new Set(nodes.map((n) => n.id))
    // an extent already moving keeps its one move; one with a copy on a node that left is repair's
    const movable = extents.filter((e) => e.move === undefined && e.replicas.every((p) => known.has(p)))
    const plan = init.rebalance(config.rebalancePolicy).plan({
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
    const { metadata } = this.#ctx.init
    const { signal } = options
    const present = await metadata.read((v) => v.members().some((m) => m.id === node), { signal, scope: { system: true } })
    if (!present) throw new NotFoundError(`no member ${node}`, { node })
    await metadata.propose({ type: 'SetDraining', id: node, draining: true }, { signal })
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
    const { metadata } = this.#ctx.init
    const { signal } = options
    const present = await metadata.read((v) => v.members().some((m) => m.id === node), { signal, scope: { system: true } })
    if (!present) throw new NotFoundError(`no member ${node}`, { node })
    await metadata.propose({ type: 'SetDraining', id: node, draining: false }, { signal })
    // read after the flag is down: no drain (this node's or another's) plans a move off it any more
    const moving = await metadata.read((v) => allExtents(v).filter((e) => e.move?.from === node).map((e) => e.id),
      { signal, scope: { extents: true } })
    let cancelled = 0
    for (const id of moving) {
      try {
        await metadata.propose({ type: 'CancelMove', id }, { signal })
        cancelled++
      } catch (err) {
        // the coordinator finished (or cancelled) it meanwhile
        if (!(err instanceof DfsError && err.name === 'NotFound')) throw err
      }
    }
    this.#log('drain of %s cancelled: %d moves', node, cancelled)
    return { node, cancelled }
  }

  async moveProgress (moves: ReadonlyArray<Omit<RebalanceMove, 'bytes'>>, options: CallOptions = {}): Promise<MoveProgress> {
    return await this.#ctx.init.metadata.read((v) => {
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

  /**
   * Records a move for every copy on `node` that has none: the placement policy picks one new node
   * for the extent's other copies (the draining node shows as suspected, so it is never picked).
   * Moves onto the node are cancelled.
   */
  async #planDrain (node: PeerIdString, signal?: AbortSignal): Promise<RebalanceMove[]> {
    const { init } = this.#ctx
    const { config, extents, members } = await init.metadata.read((v) => ({
      config: v.config(), members: v.members(), extents: allExtents(v)
    }), { signal, scope: { system: true, extents: true } })
    const nodes = policyNodes(init, config, members)
    const known = new Set(nodes.map((n) => n.id))
    const placement = init.placement(config.placementPolicy)
    const planned: RebalanceMove[] = []
    for (const e of extents) {
      if (e.move?.to === node) {
        await init.metadata.propose({ type: 'CancelMove', id: e.id }, { signal }).catch((err) => { this.#log('drain: cancel of %s: %s', e.id, (err as Error).message) })
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
    return await this.#ctx.init.metadata.read((v) => allExtents(v).filter((e) => e.replicas.includes(node)).length,
      { signal, scope: { extents: true } })
  }

  /** Records moves as intents (StartMove); returns those recorded (a move that no longer fits is left out). */
  async #record (moves: RebalanceMove[], signal?: AbortSignal): Promise<RebalanceMove[]> {
    const { metadata } = this.#ctx.init
    const recorded: RebalanceMove[] = []
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < moves.length) {
        const m = moves[next++]
        try {
          await metadata.propose({ type: 'StartMove', id: m.extent, from: m.from, to: m.to }, { signal })
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
    if (recorded.length > 0) this.#kickMoves()
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
}
