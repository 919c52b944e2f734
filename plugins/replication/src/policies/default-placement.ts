import { checkPlacementRequest, fillFraction, hasRoomFor } from '@dfs/api'
import type { PeerIdString, PlacementNode, PlacementPolicy, PlacementRequest } from '@dfs/api'
import { tieRank } from './tie-break.js'

interface Candidate {
  node: PlacementNode
  fill: number
  rank: string
}

/**
 * The default placement policy (`placement default`).
 *
 * Of the healthy nodes that hold no copy and have room for one more, it picks greedily: a node in a
 * region none of the extent's copies is in yet, if there is one, else any; among those the least full
 * (by fill fraction), equal fills ordered by `tieRank`. Taking a new region whenever one is left gives
 * the most distinct regions possible, because each pick can add at most one.
 */
export class DefaultPlacement implements PlacementPolicy {
  place (request: PlacementRequest): PeerIdString[] {
    const nodes = checkPlacementRequest(request)
    const { extent } = request
    const missing = request.replicationFactor - extent.replicas.length
    if (missing <= 0) return []

    const held = new Set(extent.replicas)
    const regions = new Set(extent.replicas.map((id) => (nodes.get(id) as PlacementNode).region))
    const candidates: Candidate[] = request.nodes
      .filter((node) => !held.has(node.id) && hasRoomFor(node, extent.size))
      .map((node) => ({ node, fill: fillFraction(node), rank: tieRank(extent.id, node.id) }))
      .sort(leastFullFirst)

    const chosen: PeerIdString[] = []
    while (chosen.length < missing && candidates.length > 0) {
      const fresh = candidates.findIndex((c) => !regions.has(c.node.region))
      const [pick] = candidates.splice(fresh >= 0 ? fresh : 0, 1)
      chosen.push(pick.node.id)
      regions.add(pick.node.region)
    }
    return chosen
  }
}

function leastFullFirst (a: Candidate, b: Candidate): number {
  if (a.fill !== b.fill) return a.fill - b.fill
  if (a.rank !== b.rank) return a.rank < b.rank ? -1 : 1
  return a.node.id < b.node.id ? -1 : a.node.id > b.node.id ? 1 : 0
}
