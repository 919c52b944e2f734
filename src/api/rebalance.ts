import { InvalidArgumentError } from './errors.js'
import type { PeerIdString } from './metadata.js'
import { checkPlacementExtent, checkPlacementNodes, fillFraction } from './placement.js'
import type { PlacementExtent, PlacementNode, PolicyInit } from './placement.js'

/** Default imbalance (see `imbalance`) past which a rebalance plans moves: 50%. */
export const IMBALANCE_THRESHOLD_DEFAULT = 0.5

/** Default cap on the moves of one plan; the executor runs fewer at once, a new plan picks up the rest. */
export const REBALANCE_MOVES_MAX_DEFAULT = 256

/** Largest `movesMax` a request may ask for: a plan is recorded in metadata, so it stays bounded. */
export const REBALANCE_MOVES_LIMIT = 10_000

/** An extent as rebalancing sees it: placement's view plus how busy it is. */
export interface RebalanceExtent extends PlacementExtent {
  /**
   * How busy the extent is (reads per interval, or last access in ms: any measure where larger means
   * busier); busier extents move first. Omitted means 0: then larger extents move first.
   */
  heat?: number
}

/** One rebalancing question: given where the bytes are, which copies should move where. */
export interface RebalanceRequest {
  /** Every member, in any health; only `healthy` ones give or take copies. */
  nodes: PlacementNode[]
  /** Every extent with a copy on a listed node, each with its replicas (which must all be in `nodes`). */
  extents: RebalanceExtent[]
  /** Imbalance past which moves are planned; > 0, default IMBALANCE_THRESHOLD_DEFAULT. */
  imbalanceThreshold?: number
  /** Most moves in the plan; an integer in [1, REBALANCE_MOVES_LIMIT], default REBALANCE_MOVES_MAX_DEFAULT. */
  movesMax?: number
}

/** Move one copy of `extent` from node `from` to node `to`: copy and verify, switch, then delete. */
export interface RebalanceMove {
  extent: string
  from: PeerIdString
  to: PeerIdString
  /** Size of the copy moved. */
  bytes: number
}

export interface RebalancePlan {
  /** Imbalance of the healthy nodes before the plan. */
  imbalance: number
  /** Imbalance the plan leads to once every move is done (as `imbalance` when there are no moves). */
  imbalanceAfter: number
  /** The threshold the plan was made against. */
  imbalanceThreshold: number
  /** In the order they should run; empty when the cluster is balanced enough or nothing can move. */
  moves: RebalanceMove[]
}

/**
 * Plans moves that even out how full the healthy nodes are.
 *
 * Contract (checked by the policies' tests):
 * - No moves unless `imbalance` of the healthy nodes exceeds the threshold.
 * - Every move goes from a healthy node holding a copy to a healthy node holding none, which has
 *   room for it (`hasRoomFor`, counting earlier moves of the plan); no extent moves twice in a plan.
 * - No move lowers the number of distinct regions an extent's copies are in.
 * - The plan's moves, applied in order, leave the imbalance lower than before (unless there are none),
 *   and at most `movesMax` of them.
 * - Pure: the same request gives the same plan. Malformed requests throw InvalidArgument.
 */
export interface RebalancePolicy {
  plan: (request: RebalanceRequest) => RebalancePlan
}

export type RebalancePolicyFactory = (init: PolicyInit) => RebalancePolicy

/**
 * Imbalance of a set of nodes: (max fill − min fill) / mean fill, fills as `fillFraction`. 0 for
 * fewer than two nodes or when all are empty. 0.5 means the fullest node is fuller than the emptiest
 * by half the average fill: for example 60% and 30% full nodes, mean 45%, give (0.6 − 0.3) / 0.45 ≈ 0.67.
 */
export function imbalance (nodes: readonly PlacementNode[]): number {
  if (nodes.length < 2) return 0
  // summed in sorted order, so the same nodes in any order give the same float on every node
  const fills = nodes.map(fillFraction).sort((a, b) => a - b)
  const mean = fills.reduce((sum, f) => sum + f, 0) / fills.length
  return mean === 0 ? 0 : (fills[fills.length - 1] - fills[0]) / mean
}

/** The checked request with its defaults filled in, and the nodes by id. */
export interface CheckedRebalanceRequest {
  nodes: Map<PeerIdString, PlacementNode>
  extents: RebalanceExtent[]
  imbalanceThreshold: number
  movesMax: number
}

/**
 * Checks a rebalancing request (every policy calls it first) and fills in the defaults. Throws
 * InvalidArgument naming the field at fault.
 */
export function checkRebalanceRequest (request: RebalanceRequest): CheckedRebalanceRequest {
  if (request == null || typeof request !== 'object') throw new InvalidArgumentError('a rebalance request must be an object')
  const nodes = checkPlacementNodes(request.nodes)
  if (!Array.isArray(request.extents)) throw new InvalidArgumentError('extents must be an array', { field: 'extents' })
  const ids = new Set<string>()
  request.extents.forEach((extent, i) => {
    checkPlacementExtent(extent, nodes, `extents[${i}]`)
    if (ids.has(extent.id)) throw new InvalidArgumentError(`extent ${extent.id} is listed twice`, { field: `extents[${i}].id`, extent: extent.id })
    ids.add(extent.id)
    if (extent.heat !== undefined && !Number.isFinite(extent.heat)) {
      throw new InvalidArgumentError(`extents[${i}].heat must be a finite number`, { field: `extents[${i}].heat`, extent: extent.id })
    }
  })
  const imbalanceThreshold = request.imbalanceThreshold ?? IMBALANCE_THRESHOLD_DEFAULT
  if (typeof imbalanceThreshold !== 'number' || !(imbalanceThreshold > 0) || !Number.isFinite(imbalanceThreshold)) {
    throw new InvalidArgumentError('imbalanceThreshold must be a finite number > 0', { field: 'imbalanceThreshold', value: imbalanceThreshold })
  }
  const movesMax = request.movesMax ?? REBALANCE_MOVES_MAX_DEFAULT
  if (!Number.isInteger(movesMax) || movesMax < 1 || movesMax > REBALANCE_MOVES_LIMIT) {
    throw new InvalidArgumentError(`movesMax must be an integer from 1 to ${REBALANCE_MOVES_LIMIT}`, { field: 'movesMax', value: movesMax })
  }
  return { nodes, extents: request.extents, imbalanceThreshold, movesMax }
}
