import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { fillFraction } from '@dfs/api'
import { CLUSTERS, MiB, Rand, assertMostRegions, eligible, node, placementPolicySuite, randomRequest } from '@dfs/api/testing'
import { DefaultPlacement } from '../../src/index.js'

placementPolicySuite('default', () => new DefaultPlacement())

const policy = new DefaultPlacement()

test('spreads copies over as many regions as the eligible nodes allow', () => {
  for (let seed = 1; seed <= CLUSTERS; seed++) {
    const request = randomRequest(seed)
    assertMostRegions(request, policy.place(request), seed)
  }
})

test('within each region it takes the least full eligible nodes', () => {
  for (let seed = 1; seed <= CLUSTERS; seed++) {
    const request = randomRequest(seed)
    const chosen = new Set(policy.place(request))
    const regions = new Set(request.nodes.map((n) => n.region))
    for (const region of regions) {
      const inRegion = eligible(request).filter((n) => n.region === region)
      const taken = inRegion.filter((n) => chosen.has(n.id)).map(fillFraction)
      const left = inRegion.filter((n) => !chosen.has(n.id)).map(fillFraction)
      if (taken.length > 0 && left.length > 0) {
        assert.ok(Math.max(...taken) <= Math.min(...left), `seed ${seed}: a fuller node of ${region} was taken over an emptier one`)
      }
    }
  }
})

test('prefers a new region over a less full node in a region that has a copy', () => {
  const nodes = [node('a', 'east', 1), node('b', 'east', 2), node('c', 'west', 8), node('d', 'east', 0)]
  assert.equal(policy.place({ extent: { id: 'x', size: MiB, replicas: [] }, replicationFactor: 2, nodes }), ['d', 'c'])
  assert.equal(policy.place({ extent: { id: 'x', size: MiB, replicas: [] }, replicationFactor: 3, nodes }), ['d', 'c', 'a'])
  // repair of a copy lost in west: the only west node is the fullest, and still the one chosen
  assert.equal(policy.place({ extent: { id: 'x', size: MiB, replicas: ['a', 'b'] }, replicationFactor: 3, nodes }), ['c'])
})

test('equal nodes share new extents evenly instead of the first taking them all', () => {
  const nodes = ['n1', 'n2', 'n3', 'n4', 'n5', 'n6'].map((id) => node(id, 'one', 3))
  const counts = new Map(nodes.map((n) => [n.id, 0]))
  const rand = new Rand(7)
  const extents = 1200
  for (let i = 0; i < extents; i++) {
    for (const id of policy.place({ extent: { id: rand.uuid(), size: MiB, replicas: [] }, replicationFactor: 3, nodes })) {
      counts.set(id, (counts.get(id) as number) + 1)
    }
  }
  // 600 expected each; a binomial standard deviation is about 17
  for (const [id, count] of counts) assert.ok(count > 500 && count < 700, `${id} got ${count} of ${extents * 3} copies`)
})

test.run()
