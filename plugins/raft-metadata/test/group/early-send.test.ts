/**
 * The leader replicates while it fsyncs (Raft thesis §10.2.1), and durability still holds: three
 * RaftGroups over an in-memory transport, each on a MemoryStorage whose durable writes a test can hold.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { RaftGroup } from '../../src/group/index.js'
import { ConfChangeType, EntryType, MemoryStorage, MessageType, StateType } from '../../src/raft/index.js'
import type { NodeId } from '../../src/raft/index.js'
import { Hub, gated } from './hub.js'
import type { Gated } from './hub.js'
import { waitFor } from '../transport/libp2p-network.js'
import { ListMachine, enc } from './cluster.js'
import type { Result } from './cluster.js'

interface Node { id: NodeId, gate: Gated, sm: ListMachine, group: RaftGroup<Result> }
interface Ctx { nodes: Node[] }
const test = suite<Ctx>('RaftGroup: a leader sends before its fsync, and counts itself only after it', { nodes: [] })

test.after.each(async (ctx) => {
  for (const n of ctx.nodes) n.gate.release()
  for (const n of ctx.nodes) await n.group.stop()
  ctx.nodes = []
})

async function start (ctx: Ctx, hub: Hub): Promise<{ leader: Node, followers: Node[] }> {
  const ids = ['node-a', 'node-b', 'node-c']
  for (const id of ids) {
    const gate = gated(new MemoryStorage({ confState: { voters: ids, learners: [] } }))
    const sm = new ListMachine()
    // elections time out after 1–2 s: a leader whose write is held for a few hundred ms stays leader
    // (longer, and the followers would rightly elect one of them and commit the entry without it)
    const group = new RaftGroup<Result>({ id, storage: gate.storage, transport: hub.transport(id), stateMachine: sm, tickMs: 20, electionTick: 50 })
    ctx.nodes.push({ id, gate, sm, group })
  }
  for (const n of ctx.nodes) n.group.start()
  let leader: Node | undefined
  await waitFor(() => {
    leader = ctx.nodes.find((n) => n.group.status().state === StateType.Leader)
    return leader !== undefined && ctx.nodes.every((n) => n.group.status().leader === leader?.id)
  }, 10_000, 'a leader')
  const l = leader as Node
  // a first write, so that the term's no-op entry is committed everywhere
  await l.group.propose(enc('warm'))
  await waitFor(() => ctx.nodes.every((n) => n.sm.items.length === 1), 5000, 'the first write everywhere')
  return { leader: l, followers: ctx.nodes.filter((n) => n !== l) }
}

function appCarrying (hub: Hub, to: NodeId, payload: string): boolean {
  const needle = Buffer.from(payload)
  return hub.sent.some((m) => m.type === MessageType.App && m.to === to &&
    m.entries.some((e) => Buffer.from(e.data).includes(needle)))
}

test('the leader sends the entry while its own fsync is held; nothing commits until that fsync ends', async (ctx) => {
  const hub = new Hub()
  const { leader, followers } = await start(ctx, hub)
  leader.gate.hold()
  let applied = false
  const index = leader.group.status().commit + 1
  const p = leader.group.propose(enc('early')).then((r) => { applied = true; return r })
  p.catch(() => {}) // a failed assertion stops the group, which rejects p
  // both followers get the entry, persist it and acknowledge it, while the leader's write waits
  await waitFor(() => followers.every((f) => appCarrying(hub, f.id, 'early')), 5000, 'the entry sent to both followers')
  await waitFor(() => followers.every((f) => hub.sent.some((m) => m.type === MessageType.AppResp && m.from === f.id && m.to === leader.id &&
    !m.reject && m.index >= index)), 5000, 'both acknowledgements')
  await new Promise((resolve) => setTimeout(resolve, 100))
  assert.is(leader.gate.pending(), 1, "the leader's write is still held")
  assert.is(applied, false, 'a commit must not rest on the leader before its fsync')
  assert.is(ctx.nodes.some((n) => n.sm.items.includes('early')), false, 'applied nowhere yet')
  assert.ok(leader.group.stats.messagesSentEarly > 0)
  assert.ok(followers.every((f) => f.group.status().leader === leader.id), 'no election meanwhile')
  leader.gate.release()
  const r = await p
  assert.is(r.length, 2)
  await waitFor(() => ctx.nodes.every((n) => n.sm.items.join() === 'warm,early'), 5000, 'applied everywhere')
})

test('a follower acknowledges only what it has made durable', async (ctx) => {
  const hub = new Hub()
  const { leader, followers } = await start(ctx, hub)
  const [f] = followers
  f.gate.hold()
  // after the first write the log ends at the commit index: the new entry comes next
  const index = leader.group.status().commit + 1
  const p = leader.group.propose(enc('held'))
  p.catch(() => {}) // a failed assertion stops the group, which rejects p
  await waitFor(() => appCarrying(hub, f.id, 'held'), 5000, 'the entry sent to the held follower')
  await waitFor(() => f.gate.pending() === 1, 5000, "the follower's write waits")
  await new Promise((resolve) => setTimeout(resolve, 100))
  assert.is(hub.sent.some((m) => m.type === MessageType.AppResp && m.from === f.id && !m.reject && m.index >= index), false,
    'no acknowledgement before the fsync')
  // the other follower and the leader form a quorum meanwhile
  assert.is((await p).length, 2)
  f.gate.release()
  await waitFor(() => hub.sent.some((m) => m.type === MessageType.AppResp && m.from === f.id && !m.reject && m.index >= index), 5000,
    'the acknowledgement after the fsync')
})

test('a write of nothing but the commit index does not hold up applying', async (ctx) => {
  const hub = new Hub()
  const { leader, followers } = await start(ctx, hub)
  const [f] = followers
  const index = leader.group.status().commit + 1
  // hold only the follower's write that records the new entry's commit
  f.gate.hold((rd) => rd.entries.length === 0 && rd.snapshot === undefined && (rd.hardState?.commit ?? 0) >= index)
  await leader.group.propose(enc('commit-only'))
  await waitFor(() => f.gate.pending() === 1, 5000, "the follower's commit-only write waits")
  await waitFor(() => f.sm.items.includes('commit-only'), 5000, 'the follower applies meanwhile')
  f.gate.release()
  await waitFor(() => f.gate.pending() === 0, 5000, 'the write ends')
})

test('a conf change is applied only once the commit index that covers it is durable', async (ctx) => {
  // Stack simulation seed 31002061: a voter applied the removal of the other with that commit index
  // still in memory; the removed node was shut down and, after a crash, the voter counted it again.
  const hub = new Hub()
  const { leader, followers } = await start(ctx, hub)
  const [f] = followers
  // hold the follower's write of the Ready that applies a conf change (its commit index only)
  f.gate.hold((rd) => rd.entries.length === 0 && rd.committedEntries?.some((e) => e.type === EntryType.ConfChange) === true)
  const cs = await leader.group.proposeConfChange({ type: ConfChangeType.AddLearner, node: 'node-d' })
  assert.equal(cs.learners, ['node-d'])
  await waitFor(() => f.gate.pending() === 1, 5000, "the follower's write of that commit index waits")
  await new Promise((resolve) => setTimeout(resolve, 100))
  assert.equal(f.group.status().confState.learners, [], 'not applied while its commit index is not durable')
  f.gate.release()
  await waitFor(() => f.group.status().confState.learners.includes('node-d'), 5000, 'applied once it is')
})

test('durableHardState shows the term and vote a crash would keep, status() the core\'s', async (ctx) => {
  // The stack simulator counts a leadership only once its term and vote are durable (seed 31000230)
  const hub = new Hub()
  const { leader, followers } = await start(ctx, hub)
  const [f] = followers
  const term = leader.group.status().term
  assert.equal(f.group.durableHardState.term, term)
  // hold the follower's write of its candidacy: a new term and a vote for itself
  f.gate.hold((rd) => rd.hardState !== undefined && rd.hardState.term > term)
  leader.group.transferLeadership(f.id)
  await waitFor(() => f.gate.pending() === 1, 5000, "the follower's write of its new term waits")
  assert.is(f.group.status().term, term + 1, 'the core campaigns in the next term')
  assert.is(f.group.durableHardState.term, term, 'not durable yet')
  assert.is.not(f.group.durableHardState.vote, f.id)
  f.gate.release()
  await waitFor(() => f.group.durableHardState.term === term + 1, 5000, 'the term durable once the write ends')
  assert.is(f.group.durableHardState.vote, f.id)
})

test('a single voter never tells its learners a commit index its own fsync has not made durable', async (ctx) => {
  const hub = new Hub()
  const cs = { voters: ['node-a'], learners: ['node-b'] }
  for (const id of ['node-a', 'node-b']) {
    const gate = gated(new MemoryStorage({ confState: cs }))
    const sm = new ListMachine()
    const group = new RaftGroup<Result>({ id, storage: gate.storage, transport: hub.transport(id), stateMachine: sm, tickMs: 20, electionTick: 50 })
    ctx.nodes.push({ id, gate, sm, group })
  }
  for (const n of ctx.nodes) n.group.start()
  const [voter, learner] = ctx.nodes
  await waitFor(() => voter.group.status().state === StateType.Leader && learner.group.status().leader === voter.id, 10_000, 'the voter leads')
  await voter.group.propose(enc('warm'))
  await waitFor(() => learner.sm.items.length === 1, 5000, 'the first write on the learner')

  voter.gate.hold()
  const index = voter.group.status().commit + 1
  const p = voter.group.propose(enc('solo'))
  p.catch(() => {}) // a failed assertion stops the group, which rejects p
  await waitFor(() => voter.gate.pending() === 1, 5000, "the voter's write waits")
  // give heartbeats and any early App time to reach the learner
  await new Promise((resolve) => setTimeout(resolve, 300))
  const told = hub.sent.filter((m) => m.to === learner.id && m.commit >= index)
  assert.equal(told.map((m) => `${m.type} commit ${m.commit}`), [], 'no commit index beyond what is durable on the only voter')
  assert.is(learner.sm.items.includes('solo'), false, 'the learner must not apply an entry its voter may still lose')
  voter.gate.release()
  await p
  await waitFor(() => learner.sm.items.join() === 'warm,solo', 5000, 'applied on the learner after the fsync')
})

test.run()
