/**
 * Seeded random clusters for property tests of placement and rebalancing policies. A failing
 * property prints its seed; `randomCluster(seed)` with that seed rebuilds the same cluster.
 */
import type { NodeHealth, PlacementExtent, PlacementNode, RebalanceExtent } from '../index.js'

export const MiB = 1024 * 1024
export const GiB = 1024 * MiB

/** Floats in [0, 1) from a 32-bit counter through a murmur3-style mixer; the same seed gives the same sequence. */
export function seededRandom (seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x9E3779B9) >>> 0
    let z = state
    z = Math.imul(z ^ (z >>> 16), 0x85EBCA6B)
    z = Math.imul(z ^ (z >>> 13), 0xC2B2AE35)
    return ((z ^ (z >>> 16)) >>> 0) / 4294967296
  }
}

export class Rand {
  readonly next: () => number
  constructor (readonly seed: number) { this.next = seededRandom(seed) }
  /** An integer in [lo, hi]. */
  int (lo: number, hi: number): number { return lo + Math.floor(this.next() * (hi - lo + 1)) }
  pick<T> (items: readonly T[]): T { return items[Math.floor(this.next() * items.length)] }
  /** `k` distinct items in random order. */
  sample<T> (items: readonly T[], k: number): T[] {
    const pool = [...items]
    for (let i = pool.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [pool[i], pool[j]] = [pool[j], pool[i]]
    }
    return pool.slice(0, k)
  }

  /** A UUID-shaped id made from the generator (not a random UUID: it must replay). */
  uuid (): string {
    const hex = Array.from({ length: 32 }, () => Math.floor(this.next() * 16).toString(16)).join('')
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-8${hex.slice(17, 20)}-${hex.slice(20)}`
  }
}

export interface ClusterOptions {
  nodesMin?: number
  nodesMax?: number
  regionsMax?: number
  /** Chance that a node is not healthy (half suspected, half failed). */
  unhealthy?: number
}

/**
 * 1 to 9 nodes (by default) in up to 4 regions, of different capacities and fill limits, some
 * suspected or failed, some past their fill limit, some exactly equal to another.
 */
export function randomNodes (rand: Rand, options: ClusterOptions = {}): PlacementNode[] {
  const count = rand.int(options.nodesMin ?? 1, options.nodesMax ?? 9)
  const regions = Array.from({ length: rand.int(1, options.regionsMax ?? 4) }, (_, i) => `region-${i}`)
  const unhealthy = options.unhealthy ?? 0.25
  const nodes: PlacementNode[] = []
  for (let i = 0; i < count; i++) {
    const id = `node-${String(i).padStart(2, '0')}-${rand.int(0, 1e6)}`
    if (i > 0 && rand.next() < 0.1) {
      // a twin of an earlier node: equal fills are where tie-breaking matters
      nodes.push({ ...rand.pick(nodes), id })
      continue
    }
    const capacityBytes = rand.int(1, 64) * 256 * MiB
    const roll = rand.next()
    const health: NodeHealth = roll < unhealthy / 2 ? 'failed' : roll < unhealthy ? 'suspected' : 'healthy'
    nodes.push({
      id,
      region: rand.pick(regions),
      health,
      usedBytes: Math.floor(rand.next() * capacityBytes),
      capacityBytes,
      fillLimit: rand.pick([0.5, 0.8, 0.9, 0.95, 1])
    })
  }
  return nodes
}

/** An extent of up to 8 MiB with up to `replicasMax` existing replicas among `nodes` (of any health). */
export function randomExtent (rand: Rand, nodes: readonly PlacementNode[], replicasMax: number): PlacementExtent {
  const replicas = rand.sample(nodes.map((n) => n.id), rand.int(0, Math.min(replicasMax, nodes.length)))
  return { id: rand.uuid(), size: rand.int(0, 8 * MiB), replicas }
}

/**
 * A cluster with data for rebalancing: 2 to 8 nodes, `extents` extents of 64 KiB to 4 MiB with 1 to 3
 * replicas each, and every node's usedBytes the sum of the copies it holds. Some nodes are new (empty)
 * and capacities differ, so the cluster is often unbalanced.
 */
export function randomLoadedCluster (rand: Rand, extentsMax = 300): { nodes: PlacementNode[], extents: RebalanceExtent[] } {
  const nodes = randomNodes(rand, { nodesMin: 2, nodesMax: 8, unhealthy: 0.15 }).map((n) => ({ ...n, usedBytes: 0 }))
  const ids = nodes.map((n) => n.id)
  const fresh = new Set(rand.sample(ids, rand.int(0, 2)))
  const holders = ids.filter((id) => !fresh.has(id))
  const extents: RebalanceExtent[] = []
  const count = holders.length === 0 ? 0 : rand.int(0, extentsMax)
  for (let i = 0; i < count; i++) {
    const replicas = rand.sample(holders, rand.int(1, Math.min(3, holders.length)))
    const extent: RebalanceExtent = { id: rand.uuid(), size: rand.int(1, 64) * 64 * 1024, replicas }
    if (rand.next() < 0.5) extent.heat = rand.int(0, 1000)
    extents.push(extent)
  }
  const byId = new Map(nodes.map((n) => [n.id, n]))
  for (const extent of extents) {
    for (const id of extent.replicas) (byId.get(id) as PlacementNode).usedBytes += extent.size
  }
  // small capacities, so fills are far from zero and fill limits bite
  for (const node of nodes) node.capacityBytes = Math.max(node.usedBytes, 64 * MiB) + rand.int(0, 512) * MiB
  return { nodes, extents }
}

/** The same items in another order, for checking that a policy does not depend on input order. */
export function shuffled<T> (rand: Rand, items: readonly T[]): T[] {
  return rand.sample(items, items.length)
}
