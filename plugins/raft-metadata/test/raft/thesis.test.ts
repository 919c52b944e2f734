/**
 * Tier 1: the thesis rules (Ongaro 2014) beyond the paper: pre-vote (§9.6), check-quorum and the leader
 * lease for votes (§6.2, §4.2.3), leadership transfer (§3.10), ReadIndex (§6.4).
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { CAMPAIGN_TRANSFER_CONTEXT, MessageType, StateType } from '../../src/raft/index.js'
import { Network, bytes, str } from './network.js'
import { msg, newNode, newStorage, ofType, persist, readMessages, storageWithLog } from './helpers.js'

// ---------------------------------------------------------------- pre-vote

test('thesis §9.6 a pre-candidate does not increase its term; it asks for votes for term+1', () => {
  const s = newStorage(['a', 'b', 'c'])
  const n = newNode('a', s, { preVote: true })
  n.campaign()
  const st = n.status()
  assert.is(st.state, StateType.PreCandidate)
  assert.is(st.term, 1)
  assert.is(st.vote, '')
  const pv = ofType(readMessages(n, s), MessageType.PreVote)
  assert.equal(pv.map(m => m.term), [2, 2])
  assert.is(s.initialState().hardState.term, 1, 'nothing about the pre-vote is persisted')
})

test('thesis §9.6 a pre-candidate that wins the pre-vote starts a real election at term+1', () => {
  const s = newStorage(['a', 'b', 'c'])
  const n = newNode('a', s, { preVote: true })
  n.campaign()
  n.step(msg({ type: MessageType.PreVoteResp, from: 'b', to: 'a', term: 2 }))
  assert.is(n.status().state, StateType.Candidate)
  assert.is(n.status().term, 2)
  assert.equal(ofType(readMessages(n, s), MessageType.Vote).map(m => m.term), [2, 2])
})

test('thesis §9.6 granting a pre-vote does not change the voter\'s term or vote', () => {
  const s = newStorage(['a', 'b', 'c'])
  const n = newNode('b', s, { preVote: true })
  n.step(msg({ type: MessageType.PreVote, from: 'a', to: 'b', term: 2, index: 1, logTerm: 1 }))
  const [r] = ofType(readMessages(n, s), MessageType.PreVoteResp)
  assert.not.ok(r.reject)
  assert.is(r.term, 2)
  assert.is(n.status().term, 1)
  assert.is(n.status().vote, '')
})

test('thesis §9.6 a server that heard from a leader within the election timeout ignores pre-votes', () => {
  const s = newStorage(['a', 'b', 'c'])
  const n = newNode('b', s, { preVote: true })
  n.step(msg({ type: MessageType.Heartbeat, from: 'c', to: 'b', term: 2 }))
  persist(n, s)
  n.step(msg({ type: MessageType.PreVote, from: 'a', to: 'b', term: 3, index: 1, logTerm: 1 }))
  assert.is(ofType(readMessages(n, s), MessageType.PreVoteResp).length, 0)
  for (let i = 0; i < 10; i++) n.tick()
  n.step(msg({ type: MessageType.PreVote, from: 'a', to: 'b', term: 3, index: 1, logTerm: 1 }))
  const [r] = ofType(readMessages(n, s), MessageType.PreVoteResp)
  assert.ok(r !== undefined && !r.reject, 'granted once the leader has been silent for a timeout')
})

test('thesis §9.6 a partitioned node rejoining does not disrupt the leader (pre-vote)', () => {
  const net = new Network(['a', 'b', 'c'], { preVote: true })
  net.elect('a')
  const term = net.raw('a').status().term
  net.isolate('c')
  net.tickAll(100)
  assert.is(net.raw('c').status().term, term, 'the isolated node never bumped its term')
  assert.is(net.raw('c').status().state, StateType.PreCandidate)
  net.recover()
  net.tickAll(5)
  assert.is(net.raw('a').status().state, StateType.Leader)
  assert.is(net.raw('a').status().term, term)
  assert.is(net.raw('c').status().lead, 'a')
  net.propose('a', 'after')
  assert.equal(net.node('c').applied, ['after'])
})

test('thesis §9.6 control: without pre-vote a rejoining node does disrupt the leader', () => {
  const net = new Network(['a', 'b', 'c'])
  net.elect('a')
  const term = net.raw('a').status().term
  net.isolate('c')
  net.tickAll(100)
  assert.ok(net.raw('c').status().term > term)
  net.recover()
  net.tickAll(30)
  assert.ok(net.raw('a').status().term > term, 'the leader was forced out of its term')
})

// ---------------------------------------------------------------- check-quorum

test('thesis §6.2 check-quorum: a leader that does not hear from a quorum within an election timeout steps down', () => {
  const net = new Network(['a', 'b', 'c'], { checkQuorum: true })
  net.elect('a')
  net.isolate('a')
  for (let i = 0; i < 25; i++) net.tickAll()
  assert.is(net.raw('a').status().state, StateType.Follower)
  assert.is(net.raw('a').status().lead, '')
})

test('thesis §6.2 check-quorum: a leader that hears from a quorum stays leader', () => {
  const net = new Network(['a', 'b', 'c'], { checkQuorum: true })
  net.elect('a')
  net.cut('a', 'c')
  net.tickAll(50)
  assert.is(net.raw('a').status().state, StateType.Leader)
})

test('thesis §4.2.3 with check-quorum a follower that heard from its leader ignores a higher-term vote request', () => {
  const s = newStorage(['a', 'b', 'c'])
  const n = newNode('b', s, { checkQuorum: true })
  n.step(msg({ type: MessageType.Heartbeat, from: 'a', to: 'b', term: 2 }))
  persist(n, s)
  n.step(msg({ type: MessageType.Vote, from: 'c', to: 'b', term: 3, index: 1, logTerm: 1 }))
  assert.is(n.status().term, 2)
  assert.is(ofType(readMessages(n, s), MessageType.VoteResp).length, 0)
  // A leadership-transfer campaign is exempt (thesis §3.10).
  n.step(msg({ type: MessageType.Vote, from: 'c', to: 'b', term: 3, index: 1, logTerm: 1, context: CAMPAIGN_TRANSFER_CONTEXT }))
  assert.is(n.status().term, 3)
  assert.is(n.status().vote, 'c')
})

test('thesis §4.2.3 with check-quorum an isolated node that raised its term rejoins: the leader learns the term from an AppResp and a new leader is elected', () => {
  const net = new Network(['a', 'b', 'c'], { checkQuorum: true })
  net.elect('a')
  net.isolate('c')
  net.tickAll(60)
  const cTerm = net.raw('c').status().term
  assert.ok(cTerm > net.raw('a').status().term)
  net.recover()
  net.tickAll(60)
  const l = net.leader()
  assert.ok(l !== undefined)
  for (const id of ['a', 'b', 'c']) assert.ok(net.raw(id).status().term >= cTerm, id)
  net.propose(l, 'ok')
  assert.equal(net.node('c').applied, ['ok'])
})

// ---------------------------------------------------------------- leadership transfer

test('thesis §3.10 transfer to an up-to-date follower: TimeoutNow, it campaigns at once and becomes leader', () => {
  const net = new Network(['a', 'b', 'c'], { checkQuorum: true, preVote: true })
  net.elect('a')
  const term = net.raw('a').status().term
  net.raw('a').transferLeadership('b')
  net.deliver()
  assert.ok(net.sent.some(m => m.type === MessageType.TimeoutNow && m.to === 'b'))
  assert.is(net.raw('b').status().state, StateType.Leader)
  assert.is(net.raw('b').status().term, term + 1)
  assert.is(net.raw('a').status().lead, 'b')
})

test('thesis §3.10 transfer to a lagging follower: the leader first brings it up to date', () => {
  const net = new Network(['a', 'b', 'c'])
  net.elect('a')
  net.cut('a', 'c')
  for (let i = 0; i < 5; i++) net.propose('a', `x${i}`)
  net.recover()
  net.raw('a').transferLeadership('c')
  net.deliver()
  assert.is(net.raw('c').status().state, StateType.Leader)
  assert.equal(net.node('c').applied, ['x0', 'x1', 'x2', 'x3', 'x4'])
})

test('thesis §3.10 while transferring the leader drops proposals; the transfer aborts after an election timeout', () => {
  const net = new Network(['a', 'b', 'c'])
  net.elect('a')
  net.isolate('b')
  net.raw('a').transferLeadership('b')
  net.deliver()
  assert.is(net.raw('a').status().leadTransferee, 'b')
  try {
    net.raw('a').propose(bytes('no'))
    assert.unreachable('proposal should be dropped')
  } catch (err) {
    assert.is((err as Error).name, 'ProposalDropped')
  }
  net.tickAll(10)
  assert.is(net.raw('a').status().leadTransferee, '')
  assert.is(net.raw('a').status().state, StateType.Leader)
  net.propose('a', 'yes')
  assert.equal(net.node('a').applied, ['yes'])
})

test('a proposal a follower forwarded during a transfer is answered with a drop notice, which no core forwards', () => {
  const net = new Network(['a', 'b', 'c'])
  net.elect('a')
  net.isolate('b')
  net.raw('a').transferLeadership('b')
  net.deliver()
  net.raw('c').propose(bytes('fwd'))
  net.deliver()
  const notice = net.sent.find((m) => m.type === MessageType.Prop && m.reject && m.from === 'a' && m.to === 'c')
  assert.ok(notice !== undefined, 'the leader tells c its proposal was dropped')
  assert.equal(notice.entries.map((e) => str(e.data)), ['fwd'])
  // c's core ignores the notice (its driver re-proposes): it is not forwarded back as a proposal
  const before = net.sent.length
  net.raw('c').step(notice)
  net.deliver()
  assert.not.ok(net.sent.slice(before).some((m) => m.type === MessageType.Prop), 'nothing forwarded for a notice')
  net.tickAll(10)
  assert.equal(net.node('a').applied, [], 'nothing was appended')
})

test('a follower marks a proposal it forwards with its term; the leader appends it in that term and no other', () => {
  const net = new Network(['a', 'b', 'c'])
  net.elect('a')
  const term = net.raw('a').status().term
  assert.is(net.raw('c').propose(bytes('marked')), term, 'propose returns the term the entry will carry')
  net.flushReadys()
  const fwd = net.queue.find((m) => m.type === MessageType.Prop && m.from === 'c' && m.to === 'a')
  assert.ok(fwd !== undefined, 'c forwards to the leader')
  assert.equal(fwd.entries.map((e) => e.term), [term])
  net.deliver()
  const applied = net.node('a').committed.find((e) => str(e.data) === 'marked')
  assert.ok(applied !== undefined, 'the leader appended and committed it')
  assert.is(applied.term, term)

  // A proposal meant for an earlier term (its proposer's leader has since been replaced, here by the
  // same node re-elected) is refused with a drop notice, not appended in the new term.
  const stale = msg({ type: MessageType.Prop, from: 'c', to: 'a', entries: [{ term: term - 1, index: 0, type: 0, data: bytes('stale') }] })
  net.raw('a').step(stale)
  net.deliver()
  const notice = net.sent.find((m) => m.type === MessageType.Prop && m.reject && m.to === 'c' && str(m.entries[0].data) === 'stale')
  assert.ok(notice !== undefined, 'c is told its proposal was dropped')
  assert.is(notice.entries[0].term, term - 1, 'the notice names the term it was meant for')
  net.tickAll(5)
  assert.not.ok(net.node('a').applied.includes('stale'), 'never appended')

  // A proposal whose entries disagree on their term is malformed and ignored.
  const before = net.sent.length
  net.raw('a').step(msg({
    type: MessageType.Prop,
    from: 'c',
    to: 'a',
    entries: [{ term, index: 0, type: 0, data: bytes('m1') }, { term: term + 1, index: 0, type: 0, data: bytes('m2') }]
  }))
  net.deliver()
  assert.not.ok(net.sent.slice(before).some((m) => m.type === MessageType.Prop), 'no notice either')
  assert.not.ok(net.node('a').applied.includes('m1'))
})

test('a proposal a follower passes on for another keeps the mark its proposer gave it', () => {
  const net = new Network(['a', 'b', 'c'])
  net.elect('a')
  const term = net.raw('a').status().term
  // b forwards c's marked proposal as is (c's term, not b's)
  net.raw('b').step(msg({ type: MessageType.Prop, from: 'c', to: 'b', entries: [{ term, index: 0, type: 0, data: bytes('via-b') }] }))
  net.flushReadys()
  const passed = net.queue.find((m) => m.type === MessageType.Prop && m.from === 'b' && m.to === 'a')
  assert.ok(passed !== undefined)
  assert.equal(passed.entries.map((e) => e.term), [term])
  // b's own proposals are marked with b's term
  net.raw('b').propose(bytes('own'))
  net.flushReadys()
  const own = net.queue.find((m) => m.type === MessageType.Prop && m.from === 'b' && str(m.entries[0].data) === 'own')
  assert.ok(own !== undefined)
  assert.is(own.entries[0].term, net.raw('b').status().term)
  // the leader's own proposals need no mark: propose returns its term
  assert.is(net.raw('a').propose(bytes('local')), term)
})

test('thesis §3.10 a follower forwards a transfer request to the leader; transfers to a learner or to itself are ignored', () => {
  const net = new Network(['a', 'b', 'c'])
  net.elect('a')
  net.raw('c').transferLeadership('c')
  net.deliver()
  assert.is(net.raw('c').status().state, StateType.Leader)
  net.raw('c').transferLeadership('c')
  net.raw('c').transferLeadership('zz')
  net.deliver()
  assert.is(net.raw('c').status().state, StateType.Leader)
  assert.is(net.raw('c').status().leadTransferee, '')
})

// ---------------------------------------------------------------- ReadIndex

test('thesis §6.4 ReadIndex: the leader records its commit index and answers after a heartbeat quorum', () => {
  const net = new Network(['a', 'b', 'c'])
  net.elect('a')
  net.propose('a', 'x')
  const commit = net.raw('a').status().commit
  net.raw('a').readIndex(bytes('r1'))
  net.flushReadys()
  assert.equal(net.node('a').readStates, [], 'not before the heartbeat round')
  const hbs = net.queue.filter(m => m.type === MessageType.Heartbeat)
  assert.is(hbs.length, 2)
  for (const h of hbs) assert.is(str(h.context ?? new Uint8Array()), 'r1')
  net.deliver()
  assert.equal(net.node('a').readStates.map(r => [r.index, str(r.context)]), [[commit, 'r1']])
})

test('thesis §6.4 ReadIndex: a leader cut off from a quorum never answers', () => {
  const net = new Network(['a', 'b', 'c'])
  net.elect('a')
  net.isolate('a')
  net.raw('a').readIndex(bytes('r1'))
  net.tickAll(5)
  assert.equal(net.node('a').readStates, [])
  net.recover()
  net.tickAll(2)
  assert.is(net.node('a').readStates.length, 1, 'answered once heartbeats get through (context retried)')
})

test('thesis §6.4 ReadIndex: a follower forwards the request and gets the leader\'s read index', () => {
  const net = new Network(['a', 'b', 'c'])
  net.elect('a')
  net.propose('a', 'x')
  net.raw('b').readIndex(bytes('fr'))
  net.deliver()
  assert.equal(net.node('b').readStates.map(r => [r.index, str(r.context)]), [[net.raw('a').status().commit, 'fr']])
})

test('thesis §6.4 ReadIndex: a new leader defers reads until it has committed an entry of its term', () => {
  const ids = ['a', 'b', 'c']
  const s = storageWithLog(ids, [2, 2], 2)
  const n = newNode('a', s)
  n.campaign()
  n.step(msg({ type: MessageType.VoteResp, from: 'b', to: 'a', term: 3 }))
  persist(n, s)
  n.readIndex(bytes('early'))
  assert.is(ofType(readMessages(n, s), MessageType.Heartbeat).length, 0, 'no heartbeat round yet')
  n.step(msg({ type: MessageType.AppResp, from: 'b', to: 'a', term: 3, index: 4 }))
  const hbs = ofType(readMessages(n, s), MessageType.Heartbeat)
  assert.ok(hbs.length > 0 && str(hbs[0].context ?? new Uint8Array()) === 'early')
  n.step(msg({ type: MessageType.HeartbeatResp, from: 'b', to: 'a', term: 3, context: bytes('early') }))
  const rd = persist(n, s)
  assert.equal(rd.readStates.map(r => [r.index, str(r.context)]), [[4, 'early']])
})

test('thesis §6.4 ReadIndex: a single-voter leader answers at once', () => {
  const s = newStorage(['a'])
  const n = newNode('a', s)
  n.campaign()
  persist(n, s)
  n.readIndex(bytes('solo'))
  assert.equal(persist(n, s).readStates.map(r => r.index), [2])
})

test.run()
