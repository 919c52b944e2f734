/**
 * The conformance suite of the PlacementPolicy contract (../placement.ts). Every placement
 * policy runs it: `placementPolicySuite('default', () => new DefaultPlacement())`. Properties are
 * checked over seeded random clusters; a failure names its seed, which rebuilds the same cluster.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { hasRoomFor } from '../index.js'
import type { PlacementNode, PlacementPolicy, PlacementRequest } from '../index.js'
import { GiB, MiB, Rand, randomExtent, randomNodes, shuffled } from './random-cluster.js'

/** Random clusters each property is checked over. */
export const CLUSTERS = 500

export function node (id: string, region: string, usedGiB: number, extra: Partial<PlacementNode> = {}): PlacementNode {
  return { id, region, health: 'healthy', usedBytes: usedGiB * GiB, capacityBytes: 10 * GiB, fillLimit: 0.9, ...extra }
}

/** A random request: seed `seed` always gives the same one. */
export function randomRequest (seed: number): PlacementRequest {
  const rand = new Rand(seed)
  const nodes = randomNodes(rand)
  const replicationFactor = rand.int(1, 5)
  return { extent: randomExtent(rand, nodes, replicationFactor + 1), replicationFactor, nodes }
}

/** Nodes that could take a copy: healthy, not a replica, with room. */
export function eligible (request: PlacementRequest): PlacementNode[] {
  const held = new Set(request.extent.replicas)
  return request.nodes.filter((n) => !held.has(n.id) && hasRoomFor(n, request.extent.size))
}

/**
 * Asserts that `chosen` puts the extent's copies in as many distinct regions as the eligible nodes
 * allow: each chosen node adds a region while any eligible region is still uncovered.
 */
export function assertMostRegions (request: PlacementRequest, chosen: string[], seed: number): void {
  const regionOf = new Map(request.nodes.map((n) => [n.id, n.region]))
  const before = new Set(request.extent.replicas.map((id) => regionOf.get(id)))
  const uncovered = new Set(eligible(request).map((n) => n.region).filter((r) => !before.has(r)))
  const after = new Set([...request.extent.replicas, ...chosen].map((id) => regionOf.get(id)))
  assert.is(after.size, before.size + Math.min(chosen.length, uncovered.size), `seed ${seed}: regions not spread as far as they could be`)
}

function throwsNamed (fn: () => unknown, name: string, what: string): void {
  try {
    fn()
  } catch (err) {
    assert.is((err as Error).name, name, `${what}: expected ${name}, got ${(err as Error).name}: ${(err as Error).message}`)
    return
  }
  assert.unreachable(`${what}: expected ${name}, but it returned`)
}

export function placementPolicySuite (name: string, makePolicy: () => PlacementPolicy): void {
  const test = suite(`PlacementPolicy conformance: ${name}`)
  const policy = makePolicy()

  test('chooses distinct, healthy nodes with room that hold no copy, as many as are missing or eligible', () => {
    for (let seed = 1; seed <= CLUSTERS; seed++) {
      const request = randomRequest(seed)
      const chosen = policy.place(request)
      const byId = new Map(request.nodes.map((n) => [n.id, n]))
      assert.is(new Set(chosen).size, chosen.length, `seed ${seed}: a node chosen twice`)
      for (const id of chosen) {
        const n = byId.get(id)
        assert.ok(n != null, `seed ${seed}: ${id} is not a node`)
        assert.is(n.health, 'healthy', `seed ${seed}: ${id} is ${n.health}`)
        assert.ok(n.usedBytes + request.extent.size <= n.fillLimit * n.capacityBytes, `seed ${seed}: ${id} would pass its fill limit`)
        assert.not.ok(request.extent.replicas.includes(id), `seed ${seed}: ${id} already holds a copy`)
      }
      const missing = Math.max(0, request.replicationFactor - request.extent.replicas.length)
      assert.is(chosen.length, Math.min(missing, eligible(request).length), `seed ${seed}: wrong number of nodes`)
    }
  })

  test('is deterministic, ignores the order of the nodes and leaves the request unchanged', () => {
    for (let seed = 1; seed <= CLUSTERS; seed++) {
      const request = randomRequest(seed)
      const copy = structuredClone(request)
      const first = policy.place(request)
      assert.equal(request, copy, `seed ${seed}: the request was modified`)
      assert.equal(makePolicy().place(structuredClone(request)), first, `seed ${seed}: a second run differs`)
      const reordered = { ...copy, nodes: shuffled(new Rand(seed), copy.nodes) }
      assert.equal(policy.place(reordered), first, `seed ${seed}: the order of the nodes changed the answer`)
    }
  })

  test('repair: given the surviving copies, adds only the ones missing', () => {
    const nodes = ['a', 'b', 'c', 'd', 'e'].map((id, i) => node(id, `r${i % 3}`, i))
    const extent = { id: '6f1c0c7e-3a1b-4c5d-8e9f-0a1b2c3d4e5f', size: 4 * MiB, replicas: ['b', 'd'] }
    const added = policy.place({ extent, replicationFactor: 3, nodes })
    assert.is(added.length, 1)
    assert.not.ok(['b', 'd'].includes(added[0]))
    assert.equal(policy.place({ extent, replicationFactor: 2, nodes }), [])
    assert.equal(policy.place({ extent: { ...extent, replicas: ['a', 'b', 'c', 'd'] }, replicationFactor: 3, nodes }), [])
  })

  test('with fewer usable nodes than RF it returns the ones it can', () => {
    const nodes = [
      node('a', 'r1', 1),
      node('b', 'r2', 1, { health: 'suspected' }),
      node('c', 'r3', 1, { health: 'failed' }),
      node('d', 'r1', 9), // 90% full: one more byte passes its 0.9 limit
      node('e', 'r2', 2)
    ]
    const chosen = policy.place({ extent: { id: 'e1', size: 1, replicas: [] }, replicationFactor: 3, nodes })
    assert.equal([...chosen].sort(), ['a', 'e'])
    assert.equal(policy.place({ extent: { id: 'e1', size: 1, replicas: ['a', 'e'] }, replicationFactor: 3, nodes }), [])
    assert.equal(policy.place({ extent: { id: 'e1', size: 0, replicas: ['a', 'e'] }, replicationFactor: 3, nodes }), ['d'])
  })

  test('counts the extent being placed against the fill limit', () => {
    const nodes = [node('a', 'r1', 0, { usedBytes: 9 * GiB - MiB }), node('b', 'r1', 5)]
    assert.equal(policy.place({ extent: { id: 'x', size: MiB, replicas: [] }, replicationFactor: 2, nodes }).sort(), ['a', 'b'])
    assert.equal(policy.place({ extent: { id: 'x', size: MiB + 1, replicas: [] }, replicationFactor: 2, nodes }), ['b'])
  })

  test('an empty cluster gets an empty answer', () => {
    assert.equal(policy.place({ extent: { id: 'x', size: 1, replicas: [] }, replicationFactor: 3, nodes: [] }), [])
  })

  test('malformed requests are InvalidArgument', () => {
    const good = (): PlacementRequest => ({ extent: { id: 'x', size: 1, replicas: ['a'] }, replicationFactor: 3, nodes: [node('a', 'r1', 1), node('b', 'r2', 1)] })
    const cases: Array<[string, (r: any) => void]> = [
      ['replicationFactor 0', (r) => { r.replicationFactor = 0 }],
      ['replicationFactor 1.5', (r) => { r.replicationFactor = 1.5 }],
      ['replicationFactor 17', (r) => { r.replicationFactor = 17 }],
      ['nodes not an array', (r) => { r.nodes = {} }],
      ['a node twice', (r) => { r.nodes.push(node('b', 'r3', 0)) }],
      ['an empty node id', (r) => { r.nodes[1].id = '' }],
      ['an unknown health', (r) => { r.nodes[1].health = 'sick' }],
      ['negative usedBytes', (r) => { r.nodes[1].usedBytes = -1 }],
      ['fractional usedBytes', (r) => { r.nodes[1].usedBytes = 0.5 }],
      ['zero capacity', (r) => { r.nodes[1].capacityBytes = 0 }],
      ['fillLimit 0', (r) => { r.nodes[1].fillLimit = 0 }],
      ['fillLimit 1.5', (r) => { r.nodes[1].fillLimit = 1.5 }],
      ['fillLimit NaN', (r) => { r.nodes[1].fillLimit = NaN }],
      ['a region that is not a string', (r) => { r.nodes[1].region = 7 }],
      ['no extent', (r) => { r.extent = null }],
      ['negative size', (r) => { r.extent.size = -1 }],
      ['a replica twice', (r) => { r.extent.replicas = ['a', 'a'] }],
      ['a replica that is not a node', (r) => { r.extent.replicas = ['z'] }]
    ]
    for (const [what, spoil] of cases) {
      const request = good()
      spoil(request)
      const before = structuredClone(request)
      throwsNamed(() => policy.place(request), 'InvalidArgument', what)
      assert.equal(request, before, `${what}: the request was modified`)
    }
    throwsNamed(() => policy.place(null as unknown as PlacementRequest), 'InvalidArgument', 'no request')
  })

  test.run()
}
