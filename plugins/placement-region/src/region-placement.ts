import { createHash } from 'node:crypto'
import { checkPlacementRequest, fillFraction, hasRoomFor } from '@dfs/api'
import type { PeerIdString, PlacementNode, PlacementPolicy, PlacementRequest } from '@dfs/api'

/** A region that can still take a copy: its eligible nodes, least full first. */
interface RegionChoice {
  region: string
  /** Copies of the extent in the region, counting those chosen so far. */
  copies: number
  /** Bytes used over capacity of all the region's healthy nodes. */
  fill: number
  rank: string
  nodes: PlacementNode[]
}

/**
 * Placement policy `region`: regions are the failure domains, and copies are counted per region.
 *
 * Each copy goes to the region that holds the fewest copies of the extent so far, among regions with
 * an eligible node (healthy, no copy yet, room for one more); so while there are at least as many such
 * regions as copies, every copy is in a region of its own. With fewer regions than copies it does not
 * leave the extent short: the remaining copies go round the regions again, so no region holds more
 * than one copy above any other that could still take one (RF 3 over two regions: two and one).
 * Regions holding equally many copies are ordered by how full the region is as a whole (its healthy
 * nodes' bytes over their capacity), so new data flows to the emptiest region, not merely to the
 * emptiest node; within a region the least full node takes the copy. Remaining ties are broken by a
 * hash of the extent id with the region or node name, so equal choices share the load.
 */
export class RegionPlacement implements PlacementPolicy {
  place (request: PlacementRequest): PeerIdString[] {
    const nodes = checkPlacementRequest(request)
    const { extent } = request
    const missing = request.replicationFactor - extent.replicas.length
    if (missing <= 0) return []

    const held = new Set(extent.replicas)
    const copies = new Map<string, number>()
    for (const id of extent.replicas) {
      const region = (nodes.get(id) as PlacementNode).region
      copies.set(region, (copies.get(region) ?? 0) + 1)
    }
    const used = new Map<string, { used: number, capacity: number }>()
    const eligible = new Map<string, PlacementNode[]>()
    for (const node of request.nodes) {
      if (node.health !== 'healthy') continue
      const total = used.get(node.region) ?? { used: 0, capacity: 0 }
      total.used += node.usedBytes
      total.capacity += node.capacityBytes
      used.set(node.region, total)
      if (held.has(node.id) || !hasRoomFor(node, extent.size)) continue
      eligible.set(node.region, [...(eligible.get(node.region) ?? []), node])
    }
    const regions: RegionChoice[] = [...eligible].map(([region, list]) => {
      const total = used.get(region) as { used: number, capacity: number }
      const ranked = list.map((node) => ({ node, fill: fillFraction(node), rank: tieRank(extent.id, node.id) }))
      ranked.sort((a, b) => a.fill - b.fill || compare(a.rank, b.rank) || compare(a.node.id, b.node.id))
      return {
        region,
        copies: copies.get(region) ?? 0,
        fill: total.used / total.capacity,
        rank: tieRank(extent.id, region),
        nodes: ranked.map((r) => r.node)
      }
    })

    const chosen: PeerIdString[] = []
    while (chosen.length < missing && regions.length > 0) {
      regions.sort((a, b) => a.copies - b.copies || a.fill - b.fill || compare(a.rank, b.rank) || compare(a.region, b.region))
      const region = regions[0]
      chosen.push((region.nodes.shift() as PlacementNode).id)
      region.copies += 1
      if (region.nodes.length === 0) regions.shift()
    }
    return chosen
  }
}

/** Rendezvous rank of `name` for `extent`: the first 8 bytes of SHA-256 over both, as hex. */
function tieRank (extent: string, name: string): string {
  return createHash('sha256').update(extent).update('\n').update(name).digest('hex').slice(0, 16)
}

function compare (a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}
