import { checkRebalanceRequest, fillFraction, hasRoomFor, imbalance } from '@dfs/api'
import type { PeerIdString, PlacementNode, RebalanceExtent, RebalanceMove, RebalancePlan, RebalancePolicy, RebalanceRequest } from '@dfs/api'

/**
 * The default rebalancing policy (`rebalance default`).
 *
 * It plans on a copy of the healthy nodes' usage, one move at a time: the fullest node that can give
 * gives its busiest extent that can move (heat, then size, descending) to the emptiest node that can
 * take it. A move is allowed only if the target holds no copy, has room (`hasRoomFor`), the extent
 * keeps as many distinct regions, and afterwards the target is no fuller than the source — so no move
 * overshoots and makes the target the new fullest node. Suspected and failed nodes neither give nor take:
 * their copies are repair's business.
 *
 * Planning starts only past the threshold and stops at half of it (so the next check does not fire
 * again on the next few writes), when nothing can move, or at `movesMax`. The plan is then cut to the
 * prefix with the lowest imbalance: with nodes of different capacities a single move can raise the
 * mean fill, and a plan must never end less balanced than it started.
 */
export class DefaultRebalance implements RebalancePolicy {
  plan (request: RebalanceRequest): RebalancePlan {
    const { nodes, extents, imbalanceThreshold, movesMax } = checkRebalanceRequest(request)
    const healthy = [...nodes.values()].filter((n) => n.health === 'healthy').map((n) => ({ ...n }))
    const before = imbalance(healthy)
    const unchanged = { imbalance: before, imbalanceAfter: before, imbalanceThreshold, moves: [] }
    if (!(before > imbalanceThreshold)) return unchanged

    const state = new PlanState(healthy, nodes, extents)
    const moves: RebalanceMove[] = []
    let best = { imbalance: before, moves: 0 }
    while (moves.length < movesMax) {
      const move = state.nextMove()
      if (move == null) break
      moves.push(move)
      const now = imbalance(healthy)
      if (now < best.imbalance) best = { imbalance: now, moves: moves.length }
      if (now <= imbalanceThreshold / 2) break
    }
    if (best.moves === 0) return unchanged
    return { imbalance: before, imbalanceAfter: best.imbalance, imbalanceThreshold, moves: moves.slice(0, best.moves) }
  }
}

/** The cluster as it will be after the moves planned so far. */
class PlanState {
  readonly #healthy: PlacementNode[]
  readonly #regionOf: Map<PeerIdString, string>
  /** Replicas of each extent, updated by planned moves. */
  readonly #replicas = new Map<string, Set<PeerIdString>>()
  /** Extents each healthy node can give, busiest first. */
  readonly #onNode = new Map<PeerIdString, RebalanceExtent[]>()
  /** Extents already moved by this plan: one move per extent keeps the two-phase moves independent. */
  readonly #moved = new Set<string>()

  constructor (healthy: PlacementNode[], nodes: ReadonlyMap<PeerIdString, PlacementNode>, extents: RebalanceExtent[]) {
    this.#healthy = healthy
    this.#regionOf = new Map([...nodes.values()].map((n) => [n.id, n.region]))
    for (const node of healthy) this.#onNode.set(node.id, [])
    for (const extent of extents) {
      this.#replicas.set(extent.id, new Set(extent.replicas))
      for (const id of extent.replicas) this.#onNode.get(id)?.push(extent)
    }
    for (const list of this.#onNode.values()) list.sort(busiestFirst)
  }

  /** Finds and applies the next move, or returns undefined when none is allowed. */
  nextMove (): RebalanceMove | undefined {
    const byFill = [...this.#healthy].sort(byFillThenId)
    for (let s = byFill.length - 1; s > 0; s--) {
      const source = byFill[s]
      for (const extent of this.#onNode.get(source.id) as RebalanceExtent[]) {
        if (this.#moved.has(extent.id)) continue
        for (let t = 0; t < s; t++) {
          const target = byFill[t]
          if (this.#allowed(extent, source, target)) return this.#apply(extent, source, target)
        }
      }
    }
    return undefined
  }

  #allowed (extent: RebalanceExtent, source: PlacementNode, target: PlacementNode): boolean {
    const replicas = this.#replicas.get(extent.id) as Set<PeerIdString>
    if (replicas.has(target.id) || !hasRoomFor(target, extent.size)) return false
    const sourceAfter = (source.usedBytes - extent.size) / source.capacityBytes
    const targetAfter = (target.usedBytes + extent.size) / target.capacityBytes
    if (targetAfter > sourceAfter) return false
    const after = [...replicas].filter((id) => id !== source.id).concat(target.id)
    return this.#regionCount(after) >= this.#regionCount(replicas)
  }

  #apply (extent: RebalanceExtent, source: PlacementNode, target: PlacementNode): RebalanceMove {
    source.usedBytes -= extent.size
    target.usedBytes += extent.size
    const replicas = this.#replicas.get(extent.id) as Set<PeerIdString>
    replicas.delete(source.id)
    replicas.add(target.id)
    this.#moved.add(extent.id)
    return { extent: extent.id, from: source.id, to: target.id, bytes: extent.size }
  }

  #regionCount (ids: Iterable<PeerIdString>): number {
    return new Set([...ids].map((id) => this.#regionOf.get(id))).size
  }
}

function busiestFirst (a: RebalanceExtent, b: RebalanceExtent): number {
  const heat = (b.heat ?? 0) - (a.heat ?? 0)
  if (heat !== 0) return heat
  if (a.size !== b.size) return b.size - a.size
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0
}

function byFillThenId (a: PlacementNode, b: PlacementNode): number {
  const fill = fillFraction(a) - fillFraction(b)
  if (fill !== 0) return fill
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0
}
