/**
 * Tier 1: one test per rule of the Raft paper (§5.1 terms, §5.2 election, §5.3 replication, §5.4 safety).
 * Logs start after the genesis snapshot at index 1 (term 1), so the first real entry has index 2.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { MessageType, StateType } from '../../src/raft/index.js'
import { Network, bytes, seededRand } from './network.js'
import { ent, logTerms, msg, newNode, newStorage, ofType, persist, readMessages, storageWithLog } from './helpers.js'

// ---------------------------------------------------------------- §5.1 terms

test('§5.1 a follower that sees a higher term adopts it and clears its vote', () => {
  const s = newStorage(['a', 'b', 'c'])
  s.setHardState({ term: 3, vote: 'a', commit: 1 })
  const n = newNode('a', s)
  n.step(msg({ type: MessageType.Heartbeat, from: 'b', to: 'a', term: 5 }))
  const st = n.status()
  assert.is(st.term, 5)
  assert.is(st.vote, '')
  assert.is(st.lead, 'b')
  assert.is(persist(n, s).hardState?.term, 5)
})

test('§5.1 a leader or candidate that sees a higher term reverts to follower', () => {
  const net = new Network(['a', 'b', 'c'])
  net.elect('a')
  const term = net.raw('a').status().term
  net.raw('a').step(msg({ type: MessageType.AppResp, from: 'b', to: 'a', term: term + 1 }))
  assert.is(net.raw('a').status().state, StateType.Follower)
  assert.is(net.raw('a').status().term, term + 1)

  const s = newStorage(['x', 'y', 'z'])
  const c = newNode('x', s)
  c.campaign()
  assert.is(c.status().state, StateType.Candidate)
  c.step(msg({ type: MessageType.VoteResp, from: 'y', to: 'x', term: c.status().term + 3, reject: true }))
  assert.is(c.status().state, StateType.Follower)
})

test('§5.1 a request with a stale term is rejected and changes nothing', () => {
  const s = newStorage(['a', 'b', 'c'])
  s.setHardState({ term: 4, vote: '', commit: 1 })
  const n = newNode('a', s)
  persist(n, s)
  n.step(msg({ type: MessageType.App, from: 'b', to: 'a', term: 3, index: 1, logTerm: 1, entries: [ent(2, 3)], commit: 2 }))
  n.step(msg({ type: MessageType.Vote, from: 'c', to: 'a', term: 3, index: 9, logTerm: 3 }))
  const rd = persist(n, s)
  assert.is(s.lastIndex(), 1, 'no entry appended')
  assert.is(n.status().term, 4)
  assert.is(n.status().vote, '')
  assert.is(rd.messages.filter(m => m.type === MessageType.VoteResp && !m.reject).length, 0)
  // the rejection tells the stale candidate the term it has to exceed
  const rejections = rd.messages.filter(m => m.type === MessageType.VoteResp && m.reject && m.to === 'c')
  assert.is(rejections.length, 1)
  assert.is(rejections[0].term, 4)
})

test('§5.1 a candidate learns the higher term from a stale-term rejection and wins the next election (pre-vote off)', () => {
  const net = new Network(['a', 'b', 'c'], { preVote: false, checkQuorum: false })
  // c, cut off, campaigns on its own and runs its term up; b stays unreachable throughout
  net.isolate('c')
  for (let i = 0; i < 3; i++) { net.raw('c').campaign(); net.deliver() }
  const termC = net.raw('c').status().term
  net.recover()
  net.isolate('b')
  net.raw('a').campaign()
  net.deliver()
  assert.ok(net.raw('a').status().term >= termC, `a learned c's term ${termC} from the rejection (has ${net.raw('a').status().term})`)
  net.raw('a').campaign()
  net.deliver()
  assert.is(net.raw('a').status().state, StateType.Leader)
})

// ---------------------------------------------------------------- §5.2 leader election

test('§5.2 a follower that hears nothing for an election timeout becomes candidate: term+1, votes for itself, asks every voter', () => {
  const s = newStorage(['a', 'b', 'c'])
  const n = newNode('a', s)
  for (let i = 0; i < 20; i++) n.tick()
  const st = n.status()
  assert.is(st.state, StateType.Candidate)
  assert.is(st.term, 2)
  assert.is(st.vote, 'a')
  const rd = persist(n, s)
  assert.equal(rd.hardState, { term: 2, vote: 'a', commit: 1 }, 'the vote for itself is persisted with the requests')
  const votes = ofType(rd.messages, MessageType.Vote)
  assert.equal(votes.map(m => m.to).sort(), ['b', 'c'])
  for (const v of votes) {
    assert.is(v.term, 2)
    assert.is(v.index, 1)
    assert.is(v.logTerm, 1)
  }
})

test('§5.2 election timeouts are randomized in (electionTick, 2*electionTick], past every follower\'s lease (thesis §9.6)', () => {
  const seen = new Set<number>()
  for (let seed = 1; seed <= 60; seed++) {
    const s = newStorage(['a', 'b', 'c'])
    const n = newNode('a', s, { rand: seededRand(seed) })
    let ticks = 0
    while (n.status().state === StateType.Follower) { n.tick(); ticks++; assert.ok(ticks < 100) }
    assert.ok(ticks >= 11 && ticks <= 20, `campaigned after ${ticks} ticks`)
    seen.add(ticks)
  }
  assert.ok(seen.size >= 5, `only ${seen.size} distinct timeouts`)
})

test('§5.2 a candidate becomes leader with votes from a majority, not before', () => {
  const cases: Array<{ voters: string[], grants: string[], rejects: string[], want: StateType }> = [
    { voters: ['a'], grants: [], rejects: [], want: StateType.Leader },
    { voters: ['a', 'b', 'c'], grants: ['b'], rejects: [], want: StateType.Leader },
    { voters: ['a', 'b', 'c'], grants: [], rejects: ['b'], want: StateType.Candidate },
    { voters: ['a', 'b', 'c'], grants: [], rejects: ['b', 'c'], want: StateType.Follower },
    { voters: ['a', 'b', 'c', 'd', 'e'], grants: ['b'], rejects: ['c'], want: StateType.Candidate },
    { voters: ['a', 'b', 'c', 'd', 'e'], grants: ['b', 'c'], rejects: ['d', 'e'], want: StateType.Leader },
    { voters: ['a', 'b', 'c', 'd', 'e'], grants: ['b'], rejects: ['c', 'd', 'e'], want: StateType.Follower },
    { voters: ['a', 'b', 'c', 'd'], grants: ['b'], rejects: ['c'], want: StateType.Candidate }
  ]
  for (const c of cases) {
    const n = newNode('a', newStorage(c.voters))
    n.campaign()
    const term = n.status().term
    for (const g of c.grants) n.step(msg({ type: MessageType.VoteResp, from: g, to: 'a', term }))
    for (const r of c.rejects) n.step(msg({ type: MessageType.VoteResp, from: r, to: 'a', term, reject: true }))
    assert.is(n.status().state, c.want, JSON.stringify(c))
  }
})

test('§5.2 a node votes for at most one candidate per term, first come first served', () => {
  const s = newStorage(['a', 'b', 'c'])
  const n = newNode('a', s)
  n.step(msg({ type: MessageType.Vote, from: 'b', to: 'a', term: 2, index: 1, logTerm: 1 }))
  n.step(msg({ type: MessageType.Vote, from: 'c', to: 'a', term: 2, index: 1, logTerm: 1 }))
  n.step(msg({ type: MessageType.Vote, from: 'b', to: 'a', term: 2, index: 1, logTerm: 1 }))
  const resp = ofType(readMessages(n, s), MessageType.VoteResp)
  assert.equal(resp.map(m => [m.to, m.reject]), [['b', false], ['c', true], ['b', false]])
  assert.equal(s.initialState().hardState.vote, 'b', 'the vote is persisted')
})

test('§5.2 a candidate that hears from a leader of its term becomes follower', () => {
  const s = newStorage(['a', 'b', 'c'])
  const n = newNode('a', s)
  n.campaign()
  const term = n.status().term
  n.step(msg({ type: MessageType.App, from: 'b', to: 'a', term, index: 1, logTerm: 1, entries: [ent(2, term)] }))
  assert.is(n.status().state, StateType.Follower)
  assert.is(n.status().lead, 'b')
})

test('§5.2 after a split vote a new election starts at the next timeout with a higher term', () => {
  const s = newStorage(['a', 'b', 'c', 'd'])
  const n = newNode('a', s)
  n.campaign()
  n.step(msg({ type: MessageType.VoteResp, from: 'b', to: 'a', term: 2 }))
  n.step(msg({ type: MessageType.VoteResp, from: 'c', to: 'a', term: 2, reject: true }))
  assert.is(n.status().state, StateType.Candidate)
  for (let i = 0; i < 20; i++) n.tick()
  assert.is(n.status().state, StateType.Candidate)
  assert.is(n.status().term, 3)
})

test('§5.2 leaders are elected in a 5-node network and there is one per term', () => {
  const net = new Network(['a', 'b', 'c', 'd', 'e'], { seed: 7 })
  const l = net.tickUntilLeader()
  const term = net.raw(l).status().term
  for (const id of net.nodes.keys()) {
    const st = net.raw(id).status()
    assert.is(st.term, term)
    assert.is(st.lead, l)
  }
  assert.equal(net.leaders(), [l])
})

// ---------------------------------------------------------------- §5.3 log replication

test('§5.3 the leader appends a proposal, replicates it, commits it on a majority and followers learn the commit', () => {
  const net = new Network(['a', 'b', 'c'])
  net.elect('a')
  net.cut('a', 'c')
  net.propose('a', 'x')
  assert.equal(net.node('a').applied, ['x'], 'committed with a and b')
  assert.equal(net.node('b').applied, ['x'])
  assert.equal(net.node('c').applied, [])
  net.recover()
  net.tickAll(2)
  assert.equal(net.node('c').applied, ['x'])
  const li = net.node('a').storage.lastIndex()
  for (const id of ['a', 'b', 'c']) assert.is(net.raw(id).status().commit, li)
})

test('§5.3 a follower rejects an App whose previous entry does not match and keeps its log', () => {
  const s = storageWithLog(['a', 'b', 'c'], [2, 2], 2)
  const n = newNode('a', s)
  n.step(msg({ type: MessageType.App, from: 'b', to: 'a', term: 3, index: 3, logTerm: 3, entries: [ent(4, 3)] }))
  const [r] = ofType(readMessages(n, s), MessageType.AppResp)
  assert.ok(r.reject)
  assert.is(r.index, 3)
  assert.is(r.rejectHint, 3, 'hint: last index whose term <= 3')
  assert.is(r.logTerm, 2)
  assert.equal(logTerms(s), [[2, 2], [3, 2]])
})

test('§5.3 a follower deletes a conflicting suffix and appends the leader\'s entries', () => {
  const s = storageWithLog(['a', 'b', 'c'], [2, 2, 2], 2)
  const n = newNode('a', s)
  n.step(msg({ type: MessageType.App, from: 'b', to: 'a', term: 3, index: 2, logTerm: 2, entries: [ent(3, 3)], commit: 3 }))
  const rd = persist(n, s)
  assert.equal(logTerms(s), [[2, 2], [3, 3]])
  const [r] = ofType(rd.messages, MessageType.AppResp)
  assert.not.ok(r.reject)
  assert.is(r.index, 3)
  assert.is(n.status().commit, 3, 'commit = min(leaderCommit, last new entry)')
  assert.equal(rd.committedEntries.map(e => e.index), [2, 3])
})

test('§5.3 figure 7: the leader brings every possible follower log to match its own', () => {
  const leader = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6]
  const followers: Record<string, number[]> = {
    a: [1, 1, 1, 4, 4, 5, 5, 6, 6],
    b: [1, 1, 1, 4],
    c: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
    d: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
    e: [1, 1, 1, 4, 4, 4, 4],
    f: [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3]
  }
  for (const [name, flog] of Object.entries(followers)) {
    const ids = ['L', 'F', 'X']
    const net = new Network(ids, {}, {
      L: storageWithLog(ids, leader, 7),
      X: storageWithLog(ids, leader, 7),
      F: storageWithLog(ids, flog, 7)
    })
    net.elect('L')
    assert.is(net.raw('L').status().state, StateType.Leader, name)
    net.tickAll(3)
    assert.equal(logTerms(net.node('F').storage), logTerms(net.node('L').storage), `follower ${name}`)
    assert.equal(net.node('F').storage.entries(2, net.node('F').storage.lastIndex() + 1).map(e => Array.from(e.data)),
      net.node('L').storage.entries(2, net.node('L').storage.lastIndex() + 1).map(e => Array.from(e.data)), `follower ${name} data`)
  }
})

test('§5.3 fast back-off: repairing a long divergent log takes one round per term, not per entry', () => {
  // F has 60 entries of term 3 that the leader never had; the leader has 60 of term 2 then its own.
  const ids = ['L', 'F', 'X']
  const lt = Array(60).fill(2) as number[]
  const ft = Array(60).fill(3) as number[]
  const net = new Network(ids, {}, {
    L: storageWithLog(ids, [...lt, 4], 4),
    X: storageWithLog(ids, [...lt, 4], 4),
    F: storageWithLog(ids, ft, 4)
  })
  net.elect('L')
  net.tickAll(2)
  const rejects = net.sent.filter(m => m.type === MessageType.AppResp && m.from === 'F' && m.reject)
  assert.ok(rejects.length <= 3, `${rejects.length} rejections`)
  assert.equal(logTerms(net.node('F').storage), logTerms(net.node('L').storage))
})

test('§5.3 batching: no App carries more than maxSizePerMsg bytes (beyond its first entry)', () => {
  const net = new Network(['a', 'b', 'c'], { maxSizePerMsg: 300 })
  net.elect('a')
  net.cut('a', 'b')
  for (let i = 0; i < 20; i++) net.propose('a', 'p'.repeat(100))
  net.recover()
  net.tickAll(3)
  const apps = net.sent.filter(m => m.type === MessageType.App && m.to === 'b' && m.entries.length > 0)
  assert.ok(apps.length >= 7, `${apps.length} Apps`)
  for (const m of apps) assert.ok(m.entries.length <= 3, `${m.entries.length} entries in one App`)
  assert.is(net.node('b').applied.length, 20)
})

test('§5.3 flow control: at most maxInflightMsgs unacknowledged Apps to a replicating follower, one to a probed one', () => {
  const s = newStorage(['a', 'b'])
  const n = newNode('a', s, { maxInflightMsgs: 3 })
  n.campaign()
  n.step(msg({ type: MessageType.VoteResp, from: 'b', to: 'a', term: 2 }))
  assert.is(n.status().state, StateType.Leader)
  let ms = readMessages(n, s)
  assert.is(ofType(ms, MessageType.App).length, 1, 'probe: one App')
  for (let i = 0; i < 3; i++) n.propose(bytes(`x${i}`))
  assert.is(ofType(readMessages(n, s), MessageType.App).length, 0, 'probe: wait for the answer')
  // b acknowledges the no-op: replicate state, pipelining within a window of 3.
  n.step(msg({ type: MessageType.AppResp, from: 'b', to: 'a', term: 2, index: 2 }))
  for (let i = 3; i < 10; i++) n.propose(bytes(`x${i}`))
  ms = ofType(readMessages(n, s), MessageType.App).filter(m => m.entries.length > 0)
  assert.is(ms.length, 3, 'three Apps in flight')
  assert.is(n.status().progress?.b.state, 'Replicate')
  // Acknowledging the first frees one slot.
  const firstLast = ms[0].entries[ms[0].entries.length - 1].index
  n.step(msg({ type: MessageType.AppResp, from: 'b', to: 'a', term: 2, index: firstLast }))
  n.propose(bytes('more'))
  assert.is(ofType(readMessages(n, s), MessageType.App).filter(m => m.entries.length > 0).length, 1)
})

// ---------------------------------------------------------------- §5.4 safety

test('§5.4.1 a node denies its vote to a candidate whose log is less up-to-date', () => {
  const cases: Array<{ index: number, logTerm: number, grant: boolean }> = [
    { index: 3, logTerm: 2, grant: true }, // equal
    { index: 4, logTerm: 2, grant: true }, // longer, same term
    { index: 2, logTerm: 3, grant: true }, // higher last term
    { index: 2, logTerm: 2, grant: false }, // shorter, same term
    { index: 9, logTerm: 1, grant: false } // longer but older last term
  ]
  for (const c of cases) {
    const s = storageWithLog(['a', 'b', 'c'], [2, 2], 2)
    const n = newNode('a', s)
    n.step(msg({ type: MessageType.Vote, from: 'b', to: 'a', term: 5, index: c.index, logTerm: c.logTerm }))
    const [r] = ofType(readMessages(n, s), MessageType.VoteResp)
    assert.is(!r.reject, c.grant, JSON.stringify(c))
  }
})

test('§5.2 the election timer restarts on a vote granted, not on one refused to a candidate whose log is behind', () => {
  // Core simulation seed 9102767: a node with a stale log campaigned again and again; each request
  // restarted the timer of the node whose log could win, which then never timed out.
  for (const upToDate of [false, true]) {
    const s = storageWithLog(['a', 'b', 'c'], [2, 2], 2)
    const n = newNode('a', s)
    const timeout = n.raft.randomizedElectionTimeout
    for (let i = 0; i < timeout - 1; i++) n.tick()
    assert.is(n.raft.electionElapsed, timeout - 1)
    n.step(msg({ type: MessageType.Vote, from: 'b', to: 'a', term: 5, index: upToDate ? 3 : 2, logTerm: 2 }))
    const [r] = ofType(readMessages(n, s), MessageType.VoteResp)
    assert.is(n.status().term, 5, 'the candidate\'s term is adopted either way')
    assert.is(!r.reject, upToDate)
    if (upToDate) {
      assert.is(n.raft.electionElapsed, 0, 'granted: the timer restarts')
      continue
    }
    assert.is(n.raft.electionElapsed, timeout - 1, 'refused: the timer runs on')
    n.tick()
    const votes = ofType(readMessages(n, s), MessageType.Vote)
    assert.is(n.status().state, StateType.Candidate, 'a campaigns at its own timeout')
    assert.equal(votes.map((v) => [v.to, v.term]), [['b', 6], ['c', 6]])
  }
})

test('§5.4.2 a leader never commits a previous-term entry by counting replicas', () => {
  // Figure 8: S1 (leader, term 4) has an entry of term 2 at index 3 replicated on a majority;
  // it must not be committed until an entry of term 4 is.
  const ids = ['a', 'b', 'c']
  const s = storageWithLog(ids, [2, 2], 3)
  const n = newNode('a', s)
  n.campaign()
  n.step(msg({ type: MessageType.VoteResp, from: 'b', to: 'a', term: 4 }))
  assert.is(n.status().state, StateType.Leader)
  persist(n, s)
  // b confirms it holds index 3 (term 2), but not the leader's no-op at index 4.
  n.step(msg({ type: MessageType.AppResp, from: 'b', to: 'a', term: 4, index: 3 }))
  assert.is(n.status().commit, 1, 'term-2 entries are not committed by counting')
  n.step(msg({ type: MessageType.AppResp, from: 'b', to: 'a', term: 4, index: 4 }))
  assert.is(n.status().commit, 4, 'the term-4 no-op commits, and with it everything before')
})

test('§5.4.2 a new leader appends an empty entry of its term at once', () => {
  const net = new Network(['a', 'b', 'c'])
  net.elect('b')
  const s = net.node('b').storage
  const last = s.entries(s.lastIndex(), s.lastIndex() + 1)[0]
  assert.is(last.term, net.raw('b').status().term)
  assert.is(last.data.byteLength, 0)
  assert.is(net.raw('b').status().commit, last.index)
})

test('§5.4.3 leader completeness: committed entries survive any sequence of leader changes', () => {
  const net = new Network(['a', 'b', 'c', 'd', 'e'], { seed: 3 })
  const committed: string[] = []
  for (let round = 0; round < 6; round++) {
    const l = net.tickUntilLeader()
    net.propose(l, `v${round}`)
    committed.push(`v${round}`)
    net.isolate(l)
    net.tickAll(30)
    net.recover()
    net.tickAll(5)
  }
  const l = net.tickUntilLeader()
  net.propose(l, 'end')
  net.tickAll(3)
  for (const n of net.nodes.values()) assert.equal(n.applied, [...committed, 'end'], n.id)
})

test.run()
