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

/**
 * The cluster as it will be after the moves planned so far.
 *
 * Whether a copy may go from s to t splits in two. The static part — t holds no copy, the extent
 * keeps its regions — never changes during a plan, because only extents already moved change their
 * replicas, and those never move again; so a cursor per (s, t) skips such copies once for good. The
 * dynamic part — t has room, and ends no fuller than s — is a bound on the copy's size that moves
 * change (checked exactly per copy); a pair whose bound is below the smallest copy on s is passed
 * over without a scan. This
 * keeps a plan over 100,000 extents to a few linear passes rather than one per move.
 */
class PlanState {
  readonly #healthy: PlacementNode[]
  readonly #regionOf: Map<PeerIdString, string>
  /** Extents each healthy node can give, busiest first. */
  readonly #onNode = new Map<PeerIdString, RebalanceExtent[]>()
  /** Smallest copy each healthy node held when planning started (a lower bound of what it can give). */
  readonly #sizeMin = new Map<PeerIdString, number>()
  /** Per `source\ntarget`: copies on the source before this index are moved or statically barred. */
  readonly #cursor = new Map<string, number>()
  /** Extents already moved by this plan: one move per extent keeps the two-phase moves independent. */
  readonly #moved = new Set<string>()

  constructor (healthy: PlacementNode[], nodes: ReadonlyMap<PeerIdString, PlacementNode>, extents: RebalanceExtent[]) {
    this.#healthy = healthy
    this.#regionOf = new Map([...nodes.values()].map((n) => [n.id, n.region]))
    for (const node of healthy) this.#onNode.set(node.id, [])
    for (const extent of extents) {
      for (const id of extent.replicas) this.#onNode.get(id)?.push(extent)
    }
    for (const [id, list] of this.#onNode) {
      list.sort(busiestFirst)
      this.#sizeMin.set(id, list.reduce((min, e) => Math.min(min, e.size), Infinity))
    }
  }

  /**
   * Finds and applies the next move, or returns undefined when none is allowed: the fullest source
   * that can give, its busiest copy that can move, to the emptiest target that can take that copy.
   */
  nextMove (): RebalanceMove | undefined {
    const byFill = [...this.#healthy].sort(byFillThenId)
    for (let s = byFill.length - 1; s > 0; s--) {
      const source = byFill[s]
      const list = this.#onNode.get(source.id) as RebalanceExtent[]
      let best: { index: number, target: PlacementNode } | undefined
      for (let t = 0; t < s; t++) {
        const target = byFill[t]
        const bound = sizeBound(source, target)
        if (bound < (this.#sizeMin.get(source.id) as number)) continue
        const index = this.#firstMovable(list, source, target, bound, best?.index ?? list.length)
        if (index >= 0) best = { index, target }
      }
      if (best != null) return this.#apply(list[best.index], source, best.target)
    }
    return undefined
  }

  /** Index of the first copy in `list` before `end` that may move from source to target, or -1. */
  #firstMovable (list: RebalanceExtent[], source: PlacementNode, target: PlacementNode, bound: number, end: number): number {
    const key = `${source.id}\n${target.id}`
    let i = this.#cursor.get(key) ?? 0
    while (i < list.length && this.#barred(list[i], source, target)) i++
    this.#cursor.set(key, i)
    for (; i < end; i++) {
      if (list[i].size <= bound && fits(list[i].size, source, target) && !this.#barred(list[i], source, target)) return i
    }
    return -1
  }

  /** The static part: moved already, the target holds a copy, or the extent would lose a region. */
  #barred (extent: RebalanceExtent, source: PlacementNode, target: PlacementNode): boolean {
    if (this.#moved.has(extent.id) || extent.replicas.includes(target.id)) return true
    if (source.region === target.region) return false
    let sourceRegionElsewhere = false
    let targetRegionHeld = false
    for (const id of extent.replicas) {
      const region = this.#regionOf.get(id)
      if (id !== source.id && region === source.region) sourceRegionElsewhere = true
      if (region === target.region) targetRegionHeld = true
    }
    // leaving the source's region costs a region unless another copy is there or the target adds one
    return !sourceRegionElsewhere && targetRegionHeld
  }

  #apply (extent: RebalanceExtent, source: PlacementNode, target: PlacementNode): RebalanceMove {
    source.usedBytes -= extent.size
    target.usedBytes += extent.size
    this.#moved.add(extent.id)
    return { extent: extent.id, from: source.id, to: target.id, bytes: extent.size }
  }
}

/** The dynamic part, exactly: the target has room and ends no fuller than the source. */
function fits (bytes: number, source: PlacementNode, target: PlacementNode): boolean {
  return hasRoomFor(target, bytes) &&
    (target.usedBytes + bytes) / target.capacityBytes <= (source.usedBytes - bytes) / source.capacityBytes
}

/**
 * Largest copy that may go from source to target now: the target stays within its fill limit, and
 * ends no fuller than the source, (us − b) / cs ≥ (ut + b) / ct, so b ≤ (fs − ft) / (1/cs + 1/ct).
 */
function sizeBound (source: PlacementNode, target: PlacementNode): number {
  const room = target.fillLimit * target.capacityBytes - target.usedBytes
  const even = (fillFraction(source) - fillFraction(target)) / (1 / source.capacityBytes + 1 / target.capacityBytes)
  return Math.min(room, even)
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
