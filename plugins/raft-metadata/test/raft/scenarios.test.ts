/**
 * Tier 2: scripted scenarios on the in-memory network (drop, cut, isolate, recover).
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { ConfChangeType, MessageType, StateType } from '../../src/raft/index.js'
import { Network, bytes } from './network.js'

const opts = { preVote: true, checkQuorum: true }

test('partitioned leader: the majority elects a new leader; the old one steps down, rejoins, and loses its uncommitted entries', () => {
  const net = new Network(['a', 'b', 'c', 'd', 'e'], { ...opts, seed: 5 })
  net.elect('a')
  net.propose('a', 'committed')
  const oldTerm = net.raw('a').status().term
  net.isolate('a')
  net.raw('a').propose(bytes('lost'))
  net.deliver()
  const l = net.tickUntilLeader(500, ['b', 'c', 'd', 'e'])
  net.tickAll(10) // an election timeout at most
  assert.is(net.raw('a').status().state, StateType.Follower, 'check-quorum made the old leader step down')
  assert.is(net.raw('a').status().term, oldTerm, 'pre-vote kept the isolated node\'s term')
  net.propose(l, 'new')
  net.recover()
  net.tickAll(5)
  assert.is(net.raw('a').status().lead, l)
  assert.is(net.leader(), l, 'the rejoining node did not disrupt the new leader')
  for (const id of ['a', 'b', 'c', 'd', 'e']) assert.equal(net.node(id).applied, ['committed', 'new'], id)
})

test('symmetric partition 2/3: the minority commits nothing, the majority carries on, then they converge', () => {
  const net = new Network(['a', 'b', 'c', 'd', 'e'], { ...opts, seed: 9 })
  net.elect('a')
  for (const x of ['a', 'b']) for (const y of ['c', 'd', 'e']) net.cut(x, y)
  net.raw('a').propose(bytes('minority'))
  net.tickAll(40)
  assert.not.ok(net.node('a').applied.includes('minority'))
  const l = net.tickUntilLeader(500, ['c', 'd', 'e'])
  net.propose(l, 'majority')
  net.recover()
  net.tickAll(10)
  for (const id of net.nodes.keys()) assert.equal(net.node(id).applied, ['majority'], id)
})

test('lossy links: with 30% of messages dropped every proposal that was committed is applied everywhere', () => {
  const net = new Network(['a', 'b', 'c'], { ...opts, seed: 21 })
  let x = 12345
  const rand = (): number => { x = (x * 1103515245 + 12345) % 2147483648; return x / 2147483648 }
  net.dropIf = () => rand() < 0.3
  const proposed: string[] = []
  for (let i = 0; i < 40; i++) {
    net.tickAll()
    const l = net.leader()
    if (l !== undefined) {
      try { net.raw(l).propose(bytes(`p${i}`)); proposed.push(`p${i}`) } catch { /* dropped: no leader */ }
      net.deliver()
    }
  }
  net.recover()
  net.tickAll(30)
  const a = net.node('a').applied
  assert.ok(a.length > 5, `only ${a.length} applied`)
  for (const id of ['b', 'c']) assert.equal(net.node(id).applied, a, id)
  for (const v of a) assert.ok(proposed.includes(v))
  assert.is(new Set(a).size, a.length, 'nothing applied twice')
})

test('lagging follower gets a snapshot, then normal replication, while the others keep committing', () => {
  const net = new Network(['a', 'b', 'c'], opts)
  net.elect('a')
  net.isolate('c')
  for (let i = 0; i < 30; i++) net.propose('a', `v${i}`)
  net.tickAll(1)
  net.snapshot('a')
  net.snapshot('b')
  net.recover()
  net.tickAll(3)
  assert.is(net.sent.filter(m => m.type === MessageType.Snap && m.to === 'c').length, 1)
  net.propose('a', 'tail')
  assert.equal(net.node('c').applied, net.node('a').applied)
  assert.is(net.node('c').applied.length, 31)
})

test('transfer to a lagging follower under check-quorum and pre-vote: it catches up, then wins', () => {
  const net = new Network(['a', 'b', 'c'], opts)
  net.elect('a')
  net.cut('a', 'c')
  for (let i = 0; i < 10; i++) net.propose('a', `v${i}`)
  net.snapshot('a')
  net.recover()
  net.raw('a').transferLeadership('c')
  net.deliver()
  assert.is(net.leader(), 'c')
  assert.is(net.node('c').applied.length, 10)
  net.propose('c', 'from-c')
  assert.equal(net.node('a').applied.at(-1), 'from-c')
})

test('removing the leader while a follower is cut off: the remaining majority still elects', () => {
  const net = new Network(['a', 'b', 'c', 'd'], opts)
  net.elect('a')
  net.confChange('a', ConfChangeType.RemoveNode, 'a')
  assert.is(net.raw('a').status().state, StateType.Follower)
  net.isolate('d')
  const l = net.tickUntilLeader(500, ['b', 'c'])
  net.propose(l, 'ok')
  net.recover()
  net.tickAll(5)
  for (const id of ['b', 'c', 'd']) assert.equal(net.node(id).applied, ['ok'], id)
  assert.equal(net.raw('d').status().confState.voters, ['b', 'c', 'd'])
})

test('a node restarted during an election keeps its vote and the cluster converges on one leader per term', () => {
  const net = new Network(['a', 'b', 'c'], { seed: 4 })
  net.raw('a').campaign()
  net.flushReadys()
  net.deliver()
  net.restart('b')
  net.tickAll(50)
  const byTerm = new Map<number, Set<string>>()
  for (const m of net.sent) {
    if (m.type === MessageType.VoteResp && !m.reject) {
      const voters = byTerm.get(m.term) ?? new Set()
      const key = `${m.from}->${m.to}`
      voters.add(key)
      byTerm.set(m.term, voters)
    }
  }
  for (const [term, grants] of byTerm) {
    const perVoter = new Map<string, string>()
    for (const g of grants) {
      const [from, to] = g.split('->')
      const prev = perVoter.get(from)
      assert.ok(prev === undefined || prev === to, `${from} voted twice in term ${term}`)
      perVoter.set(from, to)
    }
  }
  assert.is(net.leaders().length, 1)
})

test.run()
