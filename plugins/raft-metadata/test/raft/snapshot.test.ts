/**
 * Tier 1 and 2: log compaction and snapshots (paper §7), restarts from storage, and MemoryStorage.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { ConfChangeType, MemoryStorage, MessageType, StateType } from '../../src/raft/index.js'
import { Network, bytes } from './network.js'
import { ent, logTerms, msg, newNode, newStorage, ofType, persist, readMessages, storageWithLog } from './helpers.js'
import { throwsNamed as expectError } from '../throws-named.js'


test('MemoryStorage: genesis, append with truncation of a conflicting suffix, term/entries bounds', () => {
  const s = newStorage(['a', 'b'])
  assert.is(s.firstIndex(), 2)
  assert.is(s.lastIndex(), 1)
  assert.is(s.term(1), 1)
  s.append([ent(2, 2), ent(3, 2), ent(4, 2)])
  s.append([ent(3, 3)])
  assert.equal(logTerms(s), [[2, 2], [3, 3]])
  expectError(() => s.term(0), 'Compacted')
  expectError(() => s.term(4), 'Unavailable')
  expectError(() => s.entries(1, 3), 'Compacted')
  assert.is(s.entries(2, 4, 1).length, 1, 'at least one entry under maxSize')
  assert.throws(() => s.append([ent(9, 3)]), /missing log entries/)
})

test('MemoryStorage: createSnapshot, compact and applySnapshot', () => {
  const s = storageWithLog(['a', 'b'], [2, 2, 2, 3])
  s.setHardState({ term: 3, vote: '', commit: 4 })
  const snap = s.createSnapshot(4, { voters: ['a', 'b'], learners: ['c'] }, bytes('state@4'))
  assert.equal(snap.metadata, { index: 4, term: 2, confState: { voters: ['a', 'b'], learners: ['c'] } })
  expectError(() => s.createSnapshot(3, { voters: ['a'], learners: [] }, bytes('')), 'SnapshotOutOfDate')
  assert.throws(() => s.compact(5), /after the snapshot index/)
  s.compact(3)
  assert.is(s.firstIndex(), 4)
  assert.is(s.term(3), 2)
  expectError(() => s.compact(3), 'Compacted')
  assert.equal(s.initialState().confState, { voters: ['a', 'b'], learners: ['c'] })
  s.applySnapshot({ metadata: { index: 9, term: 4, confState: { voters: ['a'], learners: [] } }, data: bytes('x') })
  assert.is(s.firstIndex(), 10)
  assert.is(s.lastIndex(), 9)
  assert.is(s.term(9), 4)
  expectError(() => s.applySnapshot(snap), 'SnapshotOutOfDate')
})

test('§7 a leader sends its snapshot to a follower whose next entries were compacted', () => {
  const net = new Network(['a', 'b', 'c'])
  net.elect('a')
  net.isolate('c')
  for (let i = 0; i < 10; i++) net.propose('a', `v${i}`)
  net.snapshot('a')
  assert.ok(net.node('a').storage.firstIndex() > 3)
  net.recover()
  // The probe is rejected, then the snapshot goes out.
  net.tickAll(1)
  const snaps = net.sent.filter(m => m.type === MessageType.Snap && m.to === 'c')
  assert.is(snaps.length, 1)
  net.tickAll(3)
  const c = net.node('c')
  assert.equal(c.applied, [...Array(10).keys()].map(i => `v${i}`))
  assert.is(c.storage.snapshot().metadata.index, snaps[0].snapshot?.metadata.index)
  assert.equal(c.confState, { voters: ['a', 'b', 'c'], learners: [] })
  net.propose('a', 'after')
  assert.equal(c.applied.at(-1), 'after')
  assert.is(net.raw('a').status().progress?.c.state, 'Replicate')
})

test('§7 while a snapshot is in flight the follower gets nothing else; a failed snapshot is retried', () => {
  const net = new Network(['a', 'b', 'c'])
  net.elect('a')
  net.isolate('c')
  for (let i = 0; i < 5; i++) net.propose('a', `v${i}`)
  net.snapshot('a')
  net.recover()
  let failed = 0
  net.dropIf = m => m.type === MessageType.Snap && failed++ < 2
  net.tickAll(1)
  assert.is(failed, 1)
  assert.is(net.raw('a').status().progress?.c.state, 'Probe', 'a failed send reported by the transport goes back to probing')
  net.tickAll(6)
  assert.ok(failed >= 3, 'retried')
  assert.equal(net.node('c').applied, ['v0', 'v1', 'v2', 'v3', 'v4'])
})

test('§7 a follower ignores a snapshot that its committed log already covers', () => {
  const s = storageWithLog(['a', 'b'], [2, 2, 2])
  s.setHardState({ term: 2, vote: '', commit: 4 })
  const n = newNode('b', s)
  n.step(msg({ type: MessageType.Snap, from: 'a', to: 'b', term: 2, snapshot: { metadata: { index: 3, term: 2, confState: { voters: ['a', 'b'], learners: [] } }, data: bytes('old') } }))
  const rd = persist(n, s)
  assert.is(rd.snapshot, undefined)
  const [r] = ofType(rd.messages, MessageType.AppResp)
  assert.is(r.index, 4)
  assert.is(s.lastIndex(), 4)
})

test('§7 a follower restores a newer snapshot: its log is replaced, membership taken from the snapshot', () => {
  const s = storageWithLog(['a', 'b'], [2, 2])
  const n = newNode('b', s)
  const snap = { metadata: { index: 10, term: 3, confState: { voters: ['a', 'b', 'z'], learners: ['l'] } }, data: bytes('S') }
  n.step(msg({ type: MessageType.Snap, from: 'a', to: 'b', term: 3, snapshot: snap }))
  const rd = n.ready()
  assert.equal(rd.snapshot, snap)
  assert.equal(rd.committedEntries, [], 'nothing to apply before the snapshot')
  assert.is(rd.hardState?.commit, 10)
  assert.equal(ofType(rd.messages, MessageType.AppResp)[0].index, 10)
  s.applySnapshot(rd.snapshot!)
  s.setHardState(rd.hardState!)
  n.advance(rd)
  assert.is(n.status().applied, 10)
  assert.equal(n.status().confState, { voters: ['a', 'b', 'z'], learners: ['l'] })
  // Entries after the snapshot now append normally.
  n.step(msg({ type: MessageType.App, from: 'a', to: 'b', term: 3, index: 10, logTerm: 3, entries: [ent(11, 3)], commit: 11 }))
  const rd2 = persist(n, s)
  assert.equal(rd2.committedEntries.map(e => e.index), [11])
})

test('§7 a node restarts from storage: hard state, snapshot and entries; it re-applies from the snapshot', () => {
  const net = new Network(['a', 'b', 'c'])
  net.elect('a')
  for (let i = 0; i < 4; i++) net.propose('a', `v${i}`)
  net.snapshot('b', 4)
  for (let i = 4; i < 6; i++) net.propose('a', `v${i}`)
  const before = net.raw('b').status()
  const b = net.restart('b')
  const after = b.raw.status()
  assert.is(after.term, before.term)
  assert.is(after.vote, before.vote)
  assert.is(after.commit, before.commit)
  assert.is(after.applied, b.storage.snapshot().metadata.index)
  net.tickAll(3)
  assert.equal(net.node('b').applied, ['v0', 'v1', 'v2', 'v3', 'v4', 'v5'])
})

test('§5.2 a restarted node remembers its vote for the term (persisted before the VoteResp is sent)', () => {
  const s = newStorage(['a', 'b', 'c'])
  const n = newNode('b', s)
  n.step(msg({ type: MessageType.Vote, from: 'a', to: 'b', term: 2, index: 1, logTerm: 1 }))
  const rd = n.ready()
  assert.equal(rd.hardState, { term: 2, vote: 'a', commit: 1 }, 'the vote travels in the same Ready as the response')
  assert.ok(rd.messages.some(m => m.type === MessageType.VoteResp && !m.reject))
  s.setHardState(rd.hardState!)
  n.advance(rd)
  const n2 = newNode('b', s)
  n2.step(msg({ type: MessageType.Vote, from: 'c', to: 'b', term: 2, index: 1, logTerm: 1 }))
  const [r] = ofType(readMessages(n2, s), MessageType.VoteResp)
  assert.ok(r.reject)
})

test('§7 a learner joining after compaction catches up from a snapshot and can be promoted', () => {
  const net = new Network(['a', 'b', 'c'])
  net.elect('a')
  for (let i = 0; i < 8; i++) net.propose('a', `v${i}`)
  for (const id of ['a', 'b', 'c']) net.snapshot(id)
  net.addNode('d', new MemoryStorage())
  net.confChange('a', ConfChangeType.AddLearner, 'd')
  net.tickAll(3)
  assert.is(net.node('d').applied.length, 8)
  net.confChange('a', ConfChangeType.AddVoter, 'd')
  assert.equal(net.raw('d').status().confState.voters, ['a', 'b', 'c', 'd'])
  net.isolate('a')
  const l = net.tickUntilLeader(500, ['b', 'c', 'd'])
  assert.ok(l !== 'a')
  net.propose(l, 'post')
  assert.equal(net.node('d').applied.at(-1), 'post')
})

test('tier 2: leader crash and restart mid-replication keeps every acknowledged entry', () => {
  const net = new Network(['a', 'b', 'c'], { preVote: true, checkQuorum: true, seed: 11 })
  net.elect('a')
  const acked: string[] = []
  for (let i = 0; i < 5; i++) { net.propose('a', `v${i}`); acked.push(`v${i}`) }
  net.raw('a').propose(bytes('maybe'))
  net.flushReadys() // persisted locally, messages lost with the crash
  net.queue = []
  net.restart('a')
  const l = net.tickUntilLeader(500)
  net.propose(l, 'next')
  net.tickAll(3)
  for (const id of ['a', 'b', 'c']) {
    const applied = net.node(id).applied
    assert.equal(applied.slice(0, 5), acked, id)
    assert.is(applied.at(-1), 'next')
  }
  // all nodes agree
  assert.equal(net.node('a').applied, net.node('b').applied)
  assert.equal(net.node('b').applied, net.node('c').applied)
  assert.ok(net.leaders().length === 1 && net.raw(net.leaders()[0]).status().state === StateType.Leader)
})

test.run()
