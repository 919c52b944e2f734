import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { IMBALANCE_THRESHOLD_DEFAULT, fillFraction, hasRoomFor, imbalance } from '@dfs/api'
import type { PlacementNode, RebalanceExtent, RebalancePlan, RebalanceRequest } from '@dfs/api'
import { GiB, MiB, Rand, randomLoadedCluster, shuffled } from '@dfs/api/testing'
import { DefaultRebalance } from '../../src/index.js'

const CLUSTERS = 300
const policy = new DefaultRebalance()

function randomRequest (seed: number): RebalanceRequest {
  const rand = new Rand(seed)
  const { nodes, extents } = randomLoadedCluster(rand)
  const request: RebalanceRequest = { nodes, extents }
  if (rand.next() < 0.3) request.imbalanceThreshold = rand.pick([0.05, 0.2, 1, 2])
  if (rand.next() < 0.3) request.movesMax = rand.int(1, 20)
  return request
}

/**
 * Replays `plan` on a copy of the cluster, asserting every move is allowed at the moment it runs,
 * and returns the healthy nodes as they end up.
 */
function replay (request: RebalanceRequest, plan: RebalancePlan, seed: number): PlacementNode[] {
  const nodes = new Map(request.nodes.map((n) => [n.id, { ...n }]))
  const extents = new Map(request.extents.map((e) => [e.id, { ...e, replicas: [...e.replicas] }]))
  const regions = (ids: string[]): number => new Set(ids.map((id) => nodes.get(id)?.region)).size
  const moved = new Set<string>()
  for (const move of plan.moves) {
    const what = `seed ${seed}: move ${JSON.stringify(move)}`
    const extent = extents.get(move.extent) as RebalanceExtent
    const from = nodes.get(move.from) as PlacementNode
    const to = nodes.get(move.to) as PlacementNode
    assert.ok(extent != null && from != null && to != null, `${what} names something unknown`)
    assert.not.ok(moved.has(extent.id), `${what} moves an extent twice`)
    assert.is(move.bytes, extent.size, `${what} has the wrong size`)
    assert.is(from.health, 'healthy', `${what} gives from a ${from.health} node`)
    assert.ok(extent.replicas.includes(from.id), `${what}: the source holds no copy`)
    assert.not.ok(extent.replicas.includes(to.id), `${what}: the target holds a copy already`)
    assert.ok(hasRoomFor(to, extent.size), `${what}: the target is unhealthy or has no room`)
    const after = extent.replicas.filter((id) => id !== from.id).concat(to.id)
    assert.ok(regions(after) >= regions(extent.replicas), `${what} loses a region`)
    from.usedBytes -= extent.size
    to.usedBytes += extent.size
    assert.ok(fillFraction(to) <= fillFraction(from), `${what} overshoots: the target ends fuller than the source`)
    extent.replicas = after
    moved.add(extent.id)
  }
  return [...nodes.values()].filter((n) => n.health === 'healthy')
}

test('every move of every plan is allowed, and a plan with moves lowers the imbalance', () => {
  let plans = 0
  for (let seed = 1; seed <= CLUSTERS; seed++) {
    const request = randomRequest(seed)
    const plan = policy.plan(request)
    const healthy = request.nodes.filter((n) => n.health === 'healthy')
    const threshold = request.imbalanceThreshold ?? IMBALANCE_THRESHOLD_DEFAULT
    assert.is(plan.imbalanceThreshold, threshold)
    assert.is(plan.imbalance, imbalance(healthy), `seed ${seed}`)
    assert.ok(plan.moves.length <= (request.movesMax ?? 256), `seed ${seed}: too many moves`)
    if (plan.imbalance <= threshold) assert.is(plan.moves.length, 0, `seed ${seed}: moves below the threshold`)
    const after = imbalance(replay(request, plan, seed))
    assert.ok(Math.abs(after - plan.imbalanceAfter) < 1e-9, `seed ${seed}: imbalanceAfter ${plan.imbalanceAfter} but the moves give ${after}`)
    if (plan.moves.length > 0) {
      plans++
      assert.ok(after < plan.imbalance, `seed ${seed}: imbalance ${plan.imbalance} → ${after}`)
    }
  }
  assert.ok(plans > CLUSTERS / 3, `only ${plans} of ${CLUSTERS} clusters got moves: the generator is too tame`)
})

test('is deterministic, ignores the order of nodes and extents and leaves the request unchanged', () => {
  for (let seed = 1; seed <= CLUSTERS; seed++) {
    const request = randomRequest(seed)
    const copy = structuredClone(request)
    const plan = policy.plan(request)
    assert.equal(request, copy, `seed ${seed}: the request was modified`)
    assert.equal(new DefaultRebalance().plan(structuredClone(copy)), plan, `seed ${seed}: a second run differs`)
    const rand = new Rand(seed)
    assert.equal(policy.plan({ ...copy, nodes: shuffled(rand, copy.nodes), extents: shuffled(rand, copy.extents) }), plan,
      `seed ${seed}: the order of the input changed the plan`)
  }
})

/** Four nodes holding `perNode` 4 MiB extents, RF 3, and an empty fifth node: the scenario. */
function fifthNodeJoins (perNode: number, regions = ['r', 'r', 'r', 'r', 'r']): RebalanceRequest {
  const ids = ['n1', 'n2', 'n3', 'n4']
  const extents: RebalanceExtent[] = []
  for (let i = 0; i < (perNode * 4) / 3; i++) {
    extents.push({ id: `e${String(i).padStart(4, '0')}`, size: 4 * MiB, replicas: [0, 1, 2].map((k) => ids[(i + k) % 4]), heat: i % 10 })
  }
  const nodes = [...ids, 'n5'].map((id, i): PlacementNode => ({
    id,
    region: regions[i],
    health: 'healthy',
    usedBytes: extents.filter((e) => e.replicas.includes(id)).length * 4 * MiB,
    capacityBytes: 4 * GiB,
    fillLimit: 0.9
  }))
  return { nodes, extents }
}

test('a new empty node receives extents until the cluster is balanced, busiest first', () => {
  const request = fifthNodeJoins(300)
  const plan = policy.plan(request)
  assert.ok(plan.imbalance > 1, `imbalance ${plan.imbalance}`)
  assert.ok(plan.moves.length > 0)
  assert.ok(plan.moves.every((m) => m.to === 'n5'))
  assert.ok(plan.imbalanceAfter <= IMBALANCE_THRESHOLD_DEFAULT / 2, `imbalance after ${plan.imbalanceAfter}`)
  // and it stops there: without the last move the cluster was still past half the threshold
  const short = imbalance(replay(request, { ...plan, moves: plan.moves.slice(0, -1) }, 0))
  assert.ok(short > IMBALANCE_THRESHOLD_DEFAULT / 2, `moved on after reaching ${short}`)
  const heats = plan.moves.map((m) => (request.extents.find((e) => e.id === m.extent) as RebalanceExtent).heat as number)
  // each source gives its hottest extents first
  for (const from of ['n1', 'n2', 'n3', 'n4']) {
    const own = plan.moves.filter((m) => m.from === from).map((m) => heats[plan.moves.indexOf(m)])
    assert.equal(own, [...own].sort((a, b) => b - a), `${from} gave a cooler extent before a hotter one`)
  }
  // the new node ends up no fuller than any old one
  const after = replay(request, plan, 0)
  const n5 = after.find((n) => n.id === 'n5') as PlacementNode
  assert.ok(after.every((n) => fillFraction(n5) <= fillFraction(n)))
})

test('below the threshold nothing moves; a lower threshold makes the same cluster move', () => {
  const request = fifthNodeJoins(30)
  // the fifth node is not empty: 80 MiB against the others' 120 MiB gives an imbalance of 0.36
  request.nodes[4].usedBytes = 20 * 4 * MiB
  const plan = policy.plan(request)
  assert.ok(plan.imbalance > 0.3 && plan.imbalance < 0.5, `imbalance ${plan.imbalance}`)
  assert.equal(plan.moves, [])
  assert.is(plan.imbalanceAfter, plan.imbalance)
  assert.ok(policy.plan({ ...request, imbalanceThreshold: 0.3 }).moves.length > 0)
})

test('movesMax caps the plan', () => {
  const plan = policy.plan({ ...fifthNodeJoins(300), movesMax: 5 })
  assert.is(plan.moves.length, 5)
  assert.ok(plan.imbalanceAfter < plan.imbalance)
})

test('never moves onto a node past its fill limit, nor from or to an unhealthy node', () => {
  const request = fifthNodeJoins(300)
  // n5 may take only three 4 MiB extents before its limit
  request.nodes[4].fillLimit = (3 * 4 * MiB) / request.nodes[4].capacityBytes
  let plan = policy.plan(request)
  assert.is(plan.moves.length, 3)
  request.nodes[4].health = 'suspected'
  plan = policy.plan(request)
  assert.ok(plan.moves.every((m) => m.to !== 'n5'))
  request.nodes[4].health = 'healthy'
  request.nodes[4].fillLimit = 0.9
  request.nodes[0].health = 'failed'
  plan = policy.plan(request)
  assert.ok(plan.moves.length > 0)
  assert.ok(plan.moves.every((m) => m.from !== 'n1' && m.to !== 'n1'))
})

test('keeps region spread: no move takes the only copy out of its region', () => {
  // every extent has one copy on n3 (alone in region b) and one on n1 or n2 (region a); n4 is new
  const extents: RebalanceExtent[] = Array.from({ length: 100 }, (_, i) => ({
    id: `e${String(i).padStart(3, '0')}`, size: 4 * MiB, replicas: ['n3', i % 2 === 0 ? 'n1' : 'n2']
  }))
  const cluster = (newRegion: string): RebalanceRequest => ({
    extents,
    nodes: [['n1', 'a', 50], ['n2', 'a', 50], ['n3', 'b', 100], ['n4', newRegion, 0]].map(([id, region, copies]) => ({
      id: id as string, region: region as string, health: 'healthy', usedBytes: (copies as number) * 4 * MiB, capacityBytes: GiB, fillLimit: 1
    }))
  })
  // n3 is the fullest, but a move to n4 in region a would leave the extent in region a alone
  let plan = policy.plan(cluster('a'))
  assert.ok(plan.moves.length > 0)
  assert.ok(plan.moves.every((m) => m.from !== 'n3' && m.to === 'n4'), JSON.stringify(plan.moves.slice(0, 3)))
  // with n4 in region b the fullest node may give to it
  plan = policy.plan(cluster('b'))
  assert.ok(plan.moves.some((m) => m.from === 'n3'))
  assert.ok(plan.moves.every((m) => m.from !== 'n3' || m.to === 'n4'))
})

test('a balanced cluster, a single node and an empty cluster get no moves', () => {
  const balanced = fifthNodeJoins(300)
  balanced.nodes.pop()
  assert.equal(policy.plan(balanced).moves, [])
  assert.equal(policy.plan({ nodes: [balanced.nodes[0]], extents: balanced.extents.filter((e) => e.replicas.includes('n1')).map((e) => ({ ...e, replicas: ['n1'] })) }).moves, [])
  assert.equal(policy.plan({ nodes: [], extents: [] }), { imbalance: 0, imbalanceAfter: 0, imbalanceThreshold: IMBALANCE_THRESHOLD_DEFAULT, moves: [] })
})

test('malformed requests are InvalidArgument and change nothing', () => {
  const good = (): RebalanceRequest => fifthNodeJoins(3)
  const cases: Array<[string, (r: any) => void]> = [
    ['extents not an array', (r) => { r.extents = null }],
    ['an extent twice', (r) => { r.extents.push({ ...r.extents[0] }) }],
    ['a replica that is not a node', (r) => { r.extents[0].replicas = ['zz'] }],
    ['heat Infinity', (r) => { r.extents[0].heat = Infinity }],
    ['threshold 0', (r) => { r.imbalanceThreshold = 0 }],
    ['threshold NaN', (r) => { r.imbalanceThreshold = NaN }],
    ['movesMax 0', (r) => { r.movesMax = 0 }],
    ['movesMax 2.5', (r) => { r.movesMax = 2.5 }],
    ['movesMax past the limit', (r) => { r.movesMax = 1e6 }],
    ['a node twice', (r) => { r.nodes.push({ ...r.nodes[0] }) }],
    ['negative usedBytes', (r) => { r.nodes[0].usedBytes = -5 }]
  ]
  for (const [what, spoil] of cases) {
    const request = good()
    spoil(request)
    const before = structuredClone(request)
    try {
      policy.plan(request)
      assert.unreachable(`${what}: expected InvalidArgument`)
    } catch (err) {
      assert.is((err as Error).name, 'InvalidArgument', `${what}: ${(err as Error).message}`)
    }
    assert.equal(request, before, `${what}: the request was modified`)
  }
})

test.run()
