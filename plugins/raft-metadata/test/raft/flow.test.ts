/**
 * Tier 1: limits and flow control (etcd-style Progress), and the conf-change guard on elections.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { ConfChangeType, EntryType, MessageType, StateType, encodeConfChange } from '../../src/raft/index.js'
import { Network, bytes } from './network.js'
import { msg, newNode, newStorage, ofType, persist, readMessages } from './helpers.js'

function leaderOfTwo (opts = {}): { n: ReturnType<typeof newNode>, s: ReturnType<typeof newStorage> } {
  const s = newStorage(['a', 'b'])
  const n = newNode('a', s, opts)
  n.campaign()
  n.step(msg({ type: MessageType.VoteResp, from: 'b', to: 'a', term: 2 }))
  assert.is(n.status().state, StateType.Leader)
  persist(n, s)
  return { n, s }
}

test('limits: proposals beyond maxUncommittedEntriesSize are dropped until entries commit', () => {
  const { n, s } = leaderOfTwo({ maxUncommittedEntriesSize: 100 })
  n.propose(new Uint8Array(60))
  try {
    n.propose(new Uint8Array(60))
    assert.unreachable()
  } catch (err) {
    assert.is((err as Error).name, 'ProposalDropped')
  }
  n.step(msg({ type: MessageType.AppResp, from: 'b', to: 'a', term: 2, index: 3 }))
  persist(n, s)
  n.propose(new Uint8Array(60))
  // a single entry larger than the limit is accepted when nothing is uncommitted
  const { n: n2 } = leaderOfTwo({ maxUncommittedEntriesSize: 10 })
  n2.propose(new Uint8Array(50))
})

test('limits: maxCommittedSizePerReady splits committed entries over several Readys, in order', () => {
  const s = newStorage(['a'])
  const n = newNode('a', s, { maxCommittedSizePerReady: 200 })
  n.campaign()
  persist(n, s)
  for (let i = 0; i < 10; i++) n.propose(new Uint8Array(100))
  const got: number[] = []
  for (let k = 0; k < 20 && n.hasReady(); k++) {
    const rd = persist(n, s)
    assert.ok(rd.committedEntries.length <= 2)
    got.push(...rd.committedEntries.map(e => e.index))
  }
  assert.equal(got, [3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
})

test('flow control: an App that only moves the commit index to a follower that acknowledged everything asks for no answer', () => {
  const { n, s } = leaderOfTwo()
  n.step(msg({ type: MessageType.AppResp, from: 'b', to: 'a', term: 2, index: 2 }))
  readMessages(n, s)
  n.propose(bytes('x'))
  const app = ofType(readMessages(n, s), MessageType.App)
  assert.is(app.length, 1)
  assert.is(app[0].entries.length, 1)
  assert.not.ok(app[0].quiet, 'an App with entries wants its acknowledgement')
  // b acknowledges: the entry commits, and b hears the new commit index with nothing to answer
  n.step(msg({ type: MessageType.AppResp, from: 'b', to: 'a', term: 2, index: 3 }))
  const commit = ofType(readMessages(n, s), MessageType.App)
  assert.is(commit.length, 1)
  assert.equal([commit[0].entries.length, commit[0].commit, commit[0].index, commit[0].quiet], [0, 3, 3, true])
  // with an App still unacknowledged, an empty App is not quiet: its answer is still needed
  n.propose(bytes('y'))
  readMessages(n, s)
  n.step(msg({ type: MessageType.HeartbeatResp, from: 'b', to: 'a', term: 2 }))
  for (const m of ofType(readMessages(n, s), MessageType.App)) assert.not.ok(m.quiet === true && m.index < 4)

  // the follower's side: a quiet App that matches is not answered; one that does not is rejected
  const fs = newStorage(['a', 'b'])
  const f = newNode('b', fs)
  f.step(msg({ type: MessageType.App, from: 'a', to: 'b', term: 2, index: 1, logTerm: 1, entries: [{ term: 2, index: 2, type: EntryType.Normal, data: new Uint8Array(0) }], commit: 1 }))
  assert.is(ofType(readMessages(f, fs), MessageType.AppResp).length, 1)
  f.step(msg({ type: MessageType.App, from: 'a', to: 'b', term: 2, index: 2, logTerm: 2, entries: [], commit: 2, quiet: true }))
  const rd = persist(f, fs)
  assert.is(ofType(rd.messages, MessageType.AppResp).length, 0, 'nothing to say')
  assert.is(rd.hardState?.commit, 2, 'but the commit index moved')
  f.step(msg({ type: MessageType.App, from: 'a', to: 'b', term: 2, index: 5, logTerm: 2, entries: [], commit: 2, quiet: true }))
  const rej = ofType(readMessages(f, fs), MessageType.AppResp)
  assert.is(rej.length, 1)
  assert.is(rej[0].reject, true, 'a log that does not match is still reported')
})

test('flow control: a rejection in replicate state falls back to probing from match+1', () => {
  const { n, s } = leaderOfTwo()
  n.step(msg({ type: MessageType.AppResp, from: 'b', to: 'a', term: 2, index: 2 }))
  n.propose(bytes('x'))
  n.propose(bytes('y'))
  readMessages(n, s)
  assert.is(n.status().progress?.b.state, 'Replicate')
  n.step(msg({ type: MessageType.AppResp, from: 'b', to: 'a', term: 2, index: 3, reject: true, rejectHint: 2, logTerm: 2 }))
  assert.is(n.status().progress?.b.state, 'Probe')
  const [app] = ofType(readMessages(n, s), MessageType.App)
  assert.is(app.index, 2, 'probe right after match')
})

test('flow control: reportUnreachable switches a replicating follower to probe', () => {
  const { n } = leaderOfTwo()
  n.step(msg({ type: MessageType.AppResp, from: 'b', to: 'a', term: 2, index: 2 }))
  assert.is(n.status().progress?.b.state, 'Replicate')
  n.reportUnreachable('b')
  assert.is(n.status().progress?.b.state, 'Probe')
})

test('flow control: a heartbeat response frees a slot of a full window, so lost Apps cannot stall replication', () => {
  const { n, s } = leaderOfTwo({ maxInflightMsgs: 2 })
  n.step(msg({ type: MessageType.AppResp, from: 'b', to: 'a', term: 2, index: 2 }))
  for (let i = 0; i < 4; i++) n.propose(bytes(`x${i}`))
  readMessages(n, s)
  n.propose(bytes('more'))
  assert.is(ofType(readMessages(n, s), MessageType.App).length, 0, 'window full')
  n.step(msg({ type: MessageType.HeartbeatResp, from: 'b', to: 'a', term: 2 }))
  assert.is(ofType(readMessages(n, s), MessageType.App).length, 1)
})

test('§6 a node with a committed but unapplied conf change does not campaign until it applied it', () => {
  const s = newStorage(['a', 'b', 'c'])
  s.append([{ index: 2, term: 2, type: EntryType.ConfChange, data: encodeConfChange({ type: ConfChangeType.RemoveNode, node: 'c' }) }])
  s.setHardState({ term: 2, vote: '', commit: 2 })
  const n = newNode('a', s)
  n.campaign()
  assert.is(n.status().state, StateType.Follower)
  const rd = n.ready()
  assert.is(rd.committedEntries.length, 1)
  n.applyConfChange({ type: ConfChangeType.RemoveNode, node: 'c' })
  n.advance(rd)
  n.campaign()
  assert.is(n.status().state, StateType.Candidate)
  assert.equal(ofType(readMessages(n, s), MessageType.Vote).map(m => m.to), ['b'])
})

test('§5.2 a candidate drops proposals; a follower that knows the leader forwards them', () => {
  const net = new Network(['a', 'b', 'c'])
  net.raw('a').campaign()
  try {
    net.raw('a').propose(bytes('x'))
    assert.unreachable()
  } catch (err) {
    assert.is((err as Error).name, 'ProposalDropped')
  }
  net.deliver()
  net.raw('b').propose(bytes('fwd'))
  net.flushReadys()
  assert.ok(net.queue.some(m => m.type === MessageType.Prop && m.to === 'a' && m.from === 'b'))
  net.deliver()
  assert.equal(net.node('c').applied, ['fwd'])
})

test('input filtering: malformed messages (gapped entries, term-less protocol messages, local types from the wire) are ignored', () => {
  const s = newStorage(['a', 'b', 'c'])
  const n = newNode('a', s)
  const e = (index: number, term: number): { index: number, term: number, type: EntryType, data: Uint8Array } => ({ index, term, type: EntryType.Normal, data: bytes('x') })
  n.step(msg({ type: MessageType.App, from: 'b', to: 'a', term: 2, index: 1, logTerm: 1, entries: [e(3, 2)] }))
  n.step(msg({ type: MessageType.App, from: 'b', to: 'a', term: 2, index: 1, logTerm: 1, entries: [e(2, 5)] }))
  n.step(msg({ type: MessageType.App, from: 'b', to: 'a', term: 0, index: 1, logTerm: 1, entries: [] }))
  n.step(msg({ type: MessageType.Hup, from: 'b', to: 'a', term: 7 }))
  assert.is(n.status().term, 1)
  assert.is(n.status().state, StateType.Follower)
  assert.is(n.hasReady(), false)
})

test('input filtering: a Prop without entries from a peer is ignored by a leader and by a follower (found by fuzzing)', () => {
  const { n, s } = leaderOfTwo()
  // before the filter, the leader's core asserted "a proposal must carry entries" and its group failed for good
  n.step(msg({ type: MessageType.Prop, from: 'b', to: 'a', term: 0, entries: [] }))
  assert.is(n.status().state, StateType.Leader)
  n.propose(bytes('after'))
  persist(n, s)
  const f = newNode('c', newStorage(['a', 'c']))
  f.step(msg({ type: MessageType.Prop, from: 'a', to: 'c', term: 0, entries: [] }))
  assert.is(f.hasReady(), false)
})

test.run()
