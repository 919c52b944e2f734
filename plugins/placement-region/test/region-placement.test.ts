import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { PlacementRequest } from '@dfs/api'
import { CLUSTERS, MiB, Rand, assertMostRegions, eligible, node, placementPolicySuite, randomRequest } from '@dfs/api/testing'
import { RegionPlacement } from '../src/index.js'

placementPolicySuite('region', () => new RegionPlacement())

const policy = new RegionPlacement()

/** Copies of the extent per region after placing `chosen`. */
function copiesByRegion (request: PlacementRequest, chosen: string[]): Map<string, number> {
  const regionOf = new Map(request.nodes.map((n) => [n.id, n.region]))
  const copies = new Map<string, number>()
  for (const id of [...request.extent.replicas, ...chosen]) {
    const region = regionOf.get(id) as string
    copies.set(region, (copies.get(region) ?? 0) + 1)
  }
  return copies
}

test('one copy per region while regions suffice: the most distinct regions possible', () => {
  for (let seed = 1; seed <= CLUSTERS; seed++) {
    const request = randomRequest(seed)
    assertMostRegions(request, policy.place(request), seed)
  }
})

test('with fewer regions than copies, a region gets another copy only when every region that could take one has as many', () => {
  for (let seed = 1; seed <= CLUSTERS; seed++) {
    const request = randomRequest(seed)
    const chosen = policy.place(request)
    const copies = copiesByRegion(request, chosen)
    const leftOver = new Set(eligible(request).filter((n) => !chosen.includes(n.id)).map((n) => n.region))
    const regionOf = new Map(request.nodes.map((n) => [n.id, n.region]))
    for (const region of new Set(chosen.map((id) => regionOf.get(id) as string))) {
      for (const other of leftOver) {
        // when `region` got its last copy it had the fewest; `other` can only have gained since
        assert.ok((copies.get(region) as number) - 1 <= (copies.get(other) ?? 0),
          `seed ${seed}: ${region} has ${copies.get(region)} copies while ${other} has ${copies.get(other) ?? 0} and room`)
      }
    }
  }
})

test('RF 5 over two regions: three and two copies, however full one region is', () => {
  const nodes = [
    node('a1', 'a', 1), node('a2', 'a', 1), node('a3', 'a', 1), node('a4', 'a', 1),
    node('b1', 'b', 7), node('b2', 'b', 7), node('b3', 'b', 8)
  ]
  const request = { extent: { id: 'x', size: MiB, replicas: [] }, replicationFactor: 5, nodes }
  const chosen = policy.place(request)
  assert.equal(copiesByRegion(request, chosen), new Map([['a', 3], ['b', 2]]))
  assert.equal(chosen.filter((id) => id.startsWith('b')).sort(), ['b1', 'b2'])
})

test('chooses the emptiest region as a whole, not the region of the emptiest node', () => {
  // region a has the emptiest node but is fuller overall; b and c are half-empty regions
  const nodes = [
    node('a1', 'a', 0), node('a2', 'a', 8), node('a3', 'a', 8),
    node('b1', 'b', 3), node('b2', 'b', 3),
    node('c1', 'c', 4)
  ]
  const [first, second] = policy.place({ extent: { id: 'x', size: MiB, replicas: [] }, replicationFactor: 2, nodes })
  assert.ok(first === 'b1' || first === 'b2', first)
  assert.is(second, 'c1')
  // once b and c hold a copy, the third goes to a, where the emptiest node is a1
  assert.equal(policy.place({ extent: { id: 'x', size: MiB, replicas: ['b2', 'c1'] }, replicationFactor: 3, nodes }), ['a1'])
})

test('regions of equal fill share new extents evenly', () => {
  const nodes = ['r1', 'r2', 'r3', 'r4'].map((region) => node(`${region}-n`, region, 2))
  const counts = new Map(nodes.map((n) => [n.id, 0]))
  const rand = new Rand(11)
  for (let i = 0; i < 800; i++) {
    for (const id of policy.place({ extent: { id: rand.uuid(), size: MiB, replicas: [] }, replicationFactor: 2, nodes })) {
      counts.set(id, (counts.get(id) as number) + 1)
    }
  }
  // 400 expected each; a binomial standard deviation is about 12
  for (const [id, count] of counts) assert.ok(count > 340 && count < 460, `${id} got ${count} of 1600 copies`)
})

test.run()
