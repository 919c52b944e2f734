/**
 * Tier 1 and 2: membership changes (paper §6, thesis §4: single-server changes, one at a time, learners,
 * removing the leader).
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { encode } from 'cborg'
import {
  ConfChangeType, EntryType, MemoryStorage, MessageType, StateType, applyToConfState, decodeConfChange, encodeConfChange
} from '../../src/raft/index.js'
import type { ConfChange } from '../../src/raft/index.js'
import { removesLastVoter } from '../../src/raft/conf-change.js'
import { Network, bytes } from './network.js'
import { newNode, newStorage, persist } from './helpers.js'

function dropped (fn: () => void): string {
  try {
    fn()
  } catch (err) {
    assert.is((err as Error).name, 'ProposalDropped')
    return (err as Error).message
  }
  assert.unreachable('expected ProposalDropped')
  return ''
}

test('conf change codec round-trips and rejects garbage', () => {
  const cc = { type: ConfChangeType.AddLearner, node: 'peer-1', context: bytes('addr') }
  assert.equal(decodeConfChange(encodeConfChange(cc)), cc)
  assert.equal(decodeConfChange(encodeConfChange({ type: ConfChangeType.RemoveNode, node: 'x' })), { type: ConfChangeType.RemoveNode, node: 'x' })
  for (const bad of [new Uint8Array([0xff]), bytes('hello'), encodeConfChange({ type: ConfChangeType.AddVoter, node: 'x' }).slice(0, 3)]) {
    try {
      decodeConfChange(bad)
      assert.unreachable()
    } catch (err) {
      assert.is((err as Error).name, 'InvalidConfChange')
    }
  }
})

test('a conf change based on a role applies only while the node still has it, and is a no-op otherwise', () => {
  const { AddVoter, AddLearner, RemoveNode } = ConfChangeType
  const learner = { voters: ['a'], learners: ['x'] }
  const voter = { voters: ['a', 'x'], learners: [] }
  const absent = { voters: ['a'], learners: [] }
  // without a precondition: unconditional (AddLearner of a voter demotes it)
  assert.equal(applyToConfState(voter, { type: AddLearner, node: 'x' }), learner)
  // with one that holds: the change as before
  assert.equal(applyToConfState(absent, { type: AddLearner, node: 'x', basedOn: 'absent' }), learner)
  assert.equal(applyToConfState(learner, { type: AddVoter, node: 'x', basedOn: 'learner' }), voter)
  assert.equal(applyToConfState(voter, { type: RemoveNode, node: 'x', basedOn: 'voter' }), absent)
  // with one that no longer holds: nothing changes
  assert.equal(applyToConfState(voter, { type: AddLearner, node: 'x', basedOn: 'absent' }), voter, 'a stale AddLearner does not demote')
  assert.equal(applyToConfState(absent, { type: AddVoter, node: 'x', basedOn: 'learner' }), absent)
  assert.equal(applyToConfState(voter, { type: RemoveNode, node: 'x', basedOn: 'learner' }), voter)
  // the leader does not refuse as "removing the last voter" a change that would change nothing
  assert.ok(removesLastVoter({ voters: ['a'], learners: [] }, { type: RemoveNode, node: 'a' }))
  assert.not.ok(removesLastVoter({ voters: ['a'], learners: [] }, { type: RemoveNode, node: 'a', basedOn: 'learner' }))
  assert.ok(removesLastVoter({ voters: ['a'], learners: [] }, { type: RemoveNode, node: 'a', basedOn: 'voter' }))
})

test('a conf change\'s precondition round-trips; an entry without one decodes as before; a bad one is refused', () => {
  for (const basedOn of ['absent', 'learner', 'voter'] as const) {
    const cc: ConfChange = { type: ConfChangeType.AddVoter, node: 'peer-1', basedOn, context: bytes('id') }
    assert.equal(decodeConfChange(encodeConfChange(cc)), cc)
  }
  assert.equal(decodeConfChange(encode({ t: ConfChangeType.AddLearner, n: 'x' })), { type: ConfChangeType.AddLearner, node: 'x' })
  for (const b of ['nobody', 1, null, bytes('voter')]) {
    try {
      decodeConfChange(encode({ t: ConfChangeType.AddLearner, n: 'x', b }))
      assert.unreachable(`basedOn ${String(b)} accepted`)
    } catch (err) {
      assert.is((err as Error).name, 'InvalidConfChange')
    }
  }
  try {
    encodeConfChange({ type: ConfChangeType.AddLearner, node: 'x', basedOn: 'member' as unknown as 'voter' })
    assert.unreachable('encoded a bad basedOn')
  } catch (err) {
    assert.is((err as Error).name, 'InvalidConfChange')
  }
})

test('an AddLearner retried after a timeout and committed after the node\'s promotion leaves it a voter', () => {
  const net = new Network(['a', 'b', 'c'])
  net.elect('a')
  net.addNode('d')
  // b adds d as a learner; its first attempt is slow, so b proposes it again, from the membership
  // it saw (d absent), and the retry is still on its way to the leader when the first one commits
  const add: ConfChange = { type: ConfChangeType.AddLearner, node: 'd', basedOn: 'absent' }
  net.raw('b').proposeConfChange(add)
  net.raw('b').proposeConfChange(add)
  net.flushReadys()
  const props = net.queue.filter(m => m.type === MessageType.Prop && m.from === 'b')
  assert.is(props.length, 2)
  net.queue = net.queue.filter(m => m !== props[1])
  net.deliver()
  assert.equal(net.raw('a').status().confState, { voters: ['a', 'b', 'c'], learners: ['d'] })
  // the leader promotes the learner
  net.raw('a').proposeConfChange({ type: ConfChangeType.AddVoter, node: 'd', basedOn: 'learner' })
  net.deliver()
  assert.equal(net.raw('a').status().confState, { voters: ['a', 'b', 'c', 'd'], learners: [] })
  // the retry arrives, is appended and commits: d stays a voter everywhere
  const committedBefore = net.node('b').committed.length
  net.queue.push(props[1])
  net.deliver()
  for (const id of ['a', 'b', 'c', 'd']) {
    assert.equal(net.node(id).confState, { voters: ['a', 'b', 'c', 'd'], learners: [] }, `membership on ${id}`)
  }
  const late = net.node('b').committed.slice(committedBefore).filter(e => e.type === EntryType.ConfChange)
  assert.equal(late.map(e => decodeConfChange(e.data)), [add], 'the retry committed (as a no-op)')
  // and the group still commits with the quorum of four voters
  net.isolate('c')
  net.propose('a', 'after')
  assert.ok(net.node('d').applied.includes('after'))
})

test('thesis §4.2.1 a learner receives the log but is not counted in the quorum', () => {
  const net = new Network(['a', 'b', 'c'])
  net.elect('a')
  net.addNode('d')
  net.confChange('a', ConfChangeType.AddLearner, 'd')
  net.propose('a', 'x')
  assert.equal(net.node('d').applied, ['x'], 'the learner got the log')
  assert.equal(net.raw('a').status().confState, { voters: ['a', 'b', 'c'], learners: ['d'] })
  assert.equal(net.raw('d').status().confState, { voters: ['a', 'b', 'c'], learners: ['d'] }, 'the joining node learnt the membership')
  // With b and c down, a and the learner d are not a quorum.
  net.isolate('b'); net.isolate('c')
  net.raw('a').propose(bytes('y'))
  net.deliver()
  assert.not.ok(net.node('a').applied.includes('y'))
  assert.ok(net.node('d').storage.lastIndex() >= net.node('a').storage.lastIndex(), 'the learner still receives entries')
})

test('thesis §4.2.1 a learner never campaigns nor grants… its vote is never asked', () => {
  const net = new Network(['a', 'b', 'c'])
  net.elect('a')
  net.addNode('d')
  net.confChange('a', ConfChangeType.AddLearner, 'd')
  net.isolate('d')
  net.tickAll(100)
  assert.is(net.raw('d').status().state, StateType.Follower)
  assert.not.ok(net.sent.some(m => m.type === MessageType.Vote && m.to === 'd'))
  net.recover()
  net.isolate('a')
  net.tickAll(60)
  const l = net.leader()
  assert.ok(l === 'b' || l === 'c')
  assert.not.ok(net.sent.some(m => (m.type === MessageType.Vote || m.type === MessageType.PreVote) && m.to === 'd'))
})

test('thesis §4.2.1 AddVoter on a learner promotes it; it then counts in the quorum', () => {
  const net = new Network(['a', 'b', 'c'])
  net.elect('a')
  net.addNode('d')
  net.confChange('a', ConfChangeType.AddLearner, 'd')
  net.confChange('a', ConfChangeType.AddVoter, 'd')
  assert.equal(net.raw('a').status().confState, { voters: ['a', 'b', 'c', 'd'], learners: [] })
  assert.equal(net.raw('d').status().confState, { voters: ['a', 'b', 'c', 'd'], learners: [] })
  // 4 voters: quorum 3. With b and c down, a and d cannot commit; with only c down they can.
  net.isolate('b'); net.isolate('c')
  net.raw('a').propose(bytes('no'))
  net.deliver()
  assert.not.ok(net.node('a').applied.includes('no'))
  net.recover()
  net.isolate('c')
  net.tickAll(3)
  assert.ok(net.node('a').applied.includes('no'))
})

test('thesis §4.1 one membership change at a time: a second is dropped until the first is applied', () => {
  const net = new Network(['a', 'b', 'c'])
  net.elect('a')
  net.cut('a', 'b'); net.cut('a', 'c')
  net.raw('a').proposeConfChange({ type: ConfChangeType.AddLearner, node: 'd' })
  net.deliver()
  dropped(() => net.raw('a').proposeConfChange({ type: ConfChangeType.AddLearner, node: 'e' }))
  net.recover()
  net.tickAll(2)
  assert.equal(net.raw('a').status().confState.learners, ['d'])
  net.raw('a').proposeConfChange({ type: ConfChangeType.AddLearner, node: 'e' })
  net.deliver()
  assert.equal(net.raw('a').status().confState.learners, ['d', 'e'])
})

test('thesis §4.1 (Ongaro\'s fix) a new leader accepts no conf change before its own no-op is applied', () => {
  const s = newStorage(['a', 'b', 'c'])
  const n = newNode('a', s)
  n.campaign()
  n.step({ type: MessageType.VoteResp, from: 'b', to: 'a', term: 2, index: 0, logTerm: 0, entries: [], commit: 0, reject: false, rejectHint: 0 })
  assert.is(n.status().state, StateType.Leader)
  dropped(() => n.proposeConfChange({ type: ConfChangeType.RemoveNode, node: 'c' }))
  persist(n, s)
  n.step({ type: MessageType.AppResp, from: 'b', to: 'a', term: 2, index: 2, logTerm: 0, entries: [], commit: 0, reject: false, rejectHint: 0 })
  const rd = persist(n, s)
  assert.equal(rd.committedEntries.map(e => e.index), [2])
  n.proposeConfChange({ type: ConfChangeType.RemoveNode, node: 'c' })
})

test('§6 a removed follower is no longer sent messages and the quorum shrinks', () => {
  const net = new Network(['a', 'b', 'c', 'd'])
  net.elect('a')
  net.confChange('a', ConfChangeType.RemoveNode, 'd')
  assert.equal(net.raw('a').status().confState.voters, ['a', 'b', 'c'])
  const before = net.sent.length
  net.isolate('c')
  net.propose('a', 'x')
  net.tickAll(5)
  assert.ok(net.node('a').applied.includes('x'), 'a and b are a quorum of 3')
  assert.not.ok(net.sent.slice(before).some(m => m.to === 'd'), 'nothing sent to the removed node')
  assert.equal(net.raw('d').status().confState.voters, ['a', 'b', 'c'], 'd applied its own removal')
  net.tickAll(100)
  assert.is(net.raw('d').status().state, StateType.Follower, 'a removed node never campaigns')
})

test('thesis §4.2.2 removing the leader: it steps down once the change is applied; the rest elect a new leader', () => {
  const net = new Network(['a', 'b', 'c'], { preVote: true, checkQuorum: true })
  net.elect('a')
  net.propose('a', 'before')
  net.confChange('a', ConfChangeType.RemoveNode, 'a')
  assert.is(net.raw('a').status().state, StateType.Follower)
  assert.equal(net.raw('b').status().confState.voters, ['b', 'c'])
  const l = net.tickUntilLeader(500, ['b', 'c'])
  net.propose(l, 'after')
  assert.equal(net.node('b').applied, ['before', 'after'])
  assert.equal(net.node('c').applied, ['before', 'after'])
  net.tickAll(100)
  assert.is(net.raw('a').status().state, StateType.Follower, 'the removed leader stays out')
  assert.equal(net.leaders(), [l])
})

test('thesis §4.2.2 a leader cannot remove the last voter', () => {
  const net = new Network(['a'])
  net.elect('a')
  dropped(() => net.raw('a').proposeConfChange({ type: ConfChangeType.RemoveNode, node: 'a' }))
})

test('§6 a proposal forwarded by a follower is committed by the leader; a follower without a leader drops it', () => {
  const net = new Network(['a', 'b', 'c'])
  dropped(() => net.raw('b').propose(bytes('x')))
  net.elect('a')
  net.propose('c', 'via-c')
  assert.equal(net.node('a').applied, ['via-c'])
})

test('§6 a joining node grows a 1-node group to 3 and the group survives the loss of the founder', () => {
  const net = new Network(['a'], { preVote: true, checkQuorum: true })
  net.elect('a')
  net.propose('a', 'one')
  for (const id of ['b', 'c']) {
    net.addNode(id)
    net.confChange('a', ConfChangeType.AddLearner, id)
    net.confChange('a', ConfChangeType.AddVoter, id)
  }
  assert.equal(net.raw('c').status().confState.voters, ['a', 'b', 'c'])
  net.isolate('a')
  const l = net.tickUntilLeader(500, ['b', 'c'])
  net.propose(l, 'two')
  assert.equal(net.node('b').applied, ['one', 'two'])
  assert.equal(net.node('c').applied, ['one', 'two'])
})

test('a leader that takes itself out of the voters appends nothing after that change, so the others can elect a leader', () => {
  // Found by the stack simulation (seed 10): the leader appended client entries after its own
  // demotion, stepped down when applying it, and its follower never learnt the commit. The follower
  // (a voter in its view, which still counts the old leader) then needed the old leader's vote, and
  // the old leader refused it forever: its log was longer.
  const n = new Network(['a', 'b'])
  n.elect('a')
  n.propose('a', 'x')
  const cc = n.raw('a').raft.log.lastIndex() + 1
  // b gets the change but nothing after it, and never hears that it committed
  n.dropIf = (m) => m.from === 'a' && m.to === 'b' && (m.commit >= cc || m.entries.some((e) => e.index > cc))
  n.raw('a').proposeConfChange({ type: ConfChangeType.AddLearner, node: 'a' })
  const why = dropped(() => { n.raw('a').propose(bytes('y')) })
  assert.match(why, /leaving the voters/)
  n.deliver()
  assert.equal(n.raw('a').status().confState, { voters: ['b'], learners: ['a'] }, 'a applied its demotion')
  assert.is(n.raw('a').status().state, StateType.Follower)
  assert.ok(n.raw('b').status().commit < cc, 'b does not know the change committed')
  n.recover()
  assert.is(n.tickUntilLeader(), 'b')
})

test('a node elected again while its own removal is unapplied in its log appends nothing after that change', () => {
  const n = new Network(['a', 'b', 'c'])
  n.elect('b')
  n.propose('b', 'x')
  const cc = n.raw('b').raft.log.lastIndex() + 1
  // the removal reaches a and c, but b never hears back, so it never commits it
  n.dropIf = (m) => m.type === MessageType.AppResp && m.to === 'b'
  n.raw('b').proposeConfChange({ type: ConfChangeType.RemoveNode, node: 'b' })
  n.deliver()
  assert.ok(n.raw('b').status().commit < cc)
  n.restart('b')
  n.elect('b') // votes pass; appends are still not acknowledged
  assert.is(n.raw('b').status().state, StateType.Leader, 'b leads again, its removal still pending')
  const why = dropped(() => { n.raw('b').propose(bytes('y')) })
  assert.match(why, /leaving the voters/)
  n.recover()
  n.tickAll()
  n.deliver()
  assert.equal(n.raw('a').status().confState.voters, ['a', 'c'], 'the removal applied')
  assert.ok(['a', 'c'].includes(n.tickUntilLeader()))
})

for (const preVote of [false, true]) {
  test(`a voter left alone learns from a refused vote that its group shrank to it, and leads (preVote ${preVote})`, () => {
    // Found by the stack simulation (seed 737 of 1000): b demoted itself, a never heard that the
    // change committed, then a led a term whose first entry only b kept (a lost it in a power cut
    // before its fsync; its term and vote were durable). a still counted b as a voter and needed its
    // vote; b, with the longer log, refused it and, a learner in its own view, never campaigned.
    const n = new Network(['a', 'b'], { preVote })
    n.elect('b')
    n.propose('b', 'x')
    const cc = n.raw('b').raft.log.lastIndex() + 1
    n.dropIf = (m) => m.from === 'b' && m.to === 'a' && m.commit >= cc
    n.raw('b').proposeConfChange({ type: ConfChangeType.AddLearner, node: 'b' })
    n.deliver()
    assert.equal(n.raw('b').status().confState, { voters: ['a'], learners: ['b'] })
    assert.ok(n.raw('a').status().commit < cc, 'a does not know the change committed')
    // a leads the next term; b keeps a's first entry of it, a's copy and b's acknowledgement are lost
    n.dropIf = (m) => m.from === 'b' && m.to === 'a' && m.type === MessageType.AppResp
    n.elect('a')
    assert.is(n.raw('a').status().state, StateType.Leader)
    const a = n.node('a').storage
    const last = a.lastIndex()
    assert.is(n.node('b').storage.lastIndex(), last, 'b holds the new leader\'s entry')
    const first = a.firstIndex()
    n.node('a').storage = MemoryStorage.fromParts({
      hardState: a.hardStateNow(),
      snapshot: a.snapshot(),
      compacted: { index: first - 1, term: a.term(first - 1) },
      entries: a.entries(first, last)
    })
    n.restart('a')
    n.recover()
    assert.is(n.tickUntilLeader(), 'a')
    assert.equal(n.raw('a').status().confState, { voters: ['a'], learners: ['b'] })
  })
}


for (const applied of [true, false]) {
  test(`a node that learns mid-campaign that its own removal committed cannot win, however the votes come (${applied ? 'applied' : 'not yet applied'})`, () => {
    // Found by the stack simulation (seed 9100585): d, removed but never told that the removal
    // committed, campaigned; a refused pre-vote told it the commit index (learnCommit), it applied its
    // removal while a pre-candidate, and the pre-votes and votes granted after that made it leader of a
    // configuration without it: the group stopped on the leader's own-membership invariant.
    const n = new Network(['a', 'b', 'c', 'd'], { preVote: true })
    n.elect('a')
    n.propose('a', 'x')
    const cc = n.raw('a').raft.log.lastIndex() + 1
    n.dropIf = (m) => m.from === 'a' && m.to === 'd' && (m.commit >= cc || m.entries.some((e) => e.index > cc))
    n.raw('a').proposeConfChange({ type: ConfChangeType.RemoveNode, node: 'd' })
    n.deliver()
    assert.equal(n.raw('a').status().confState.voters, ['a', 'b', 'c'])
    const d = n.raw('d')
    assert.ok(d.status().commit < cc && d.raft.log.lastIndex() >= cc, 'd holds its removal, not knowing it committed')
    const term = d.status().term
    d.campaign()
    n.flushReadys()
    n.queue = []
    assert.is(d.status().state, StateType.PreCandidate)
    // a refuses (its answer carries how far the log is committed); b and c grant
    d.step({ type: MessageType.PreVoteResp, from: 'a', to: 'd', term, index: 0, logTerm: term, entries: [], commit: cc, reject: true, rejectHint: 0 })
    assert.ok(d.status().commit >= cc, 'd learnt that its removal committed')
    if (applied) {
      n.flushReadys()
      assert.equal(n.node('d').confState.voters, ['a', 'b', 'c'], 'd applied its removal')
      assert.is(d.status().state, StateType.Follower, 'and stopped campaigning')
    }
    const grant = (type: MessageType, from: string, t: number): void => {
      d.step({ type, from, to: 'd', term: t, index: 0, logTerm: 0, entries: [], commit: 0, reject: false, rejectHint: 0 })
    }
    grant(MessageType.PreVoteResp, 'b', term + 1)
    grant(MessageType.PreVoteResp, 'c', term + 1)
    grant(MessageType.VoteResp, 'b', term + 1)
    grant(MessageType.VoteResp, 'c', term + 1)
    // not even for a moment (unapplied, the removal would only make it step down when it applies it,
    // after its term had taken the group's leadership)
    assert.is(d.status().state, StateType.Follower)
    n.flushReadys()
    assert.is(d.status().state, StateType.Follower)
    assert.equal(n.node('d').confState.voters, ['a', 'b', 'c'])
    n.queue = []
    n.recover()
    n.tickAll(50)
    assert.is(n.leader(), 'a', 'the group keeps its leader')
  })
}

test.run()
