import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { MessageType } from '../../src/raft/index.js'
import { plain, waitFor } from '../transport/libp2p-network.js'
import { Cluster, enc } from './cluster.js'
import type { GroupOptions, Result } from './cluster.js'

interface Ctx { cluster: Cluster | undefined }
const test = suite<Ctx>('RaftGroup: 3 nodes over libp2p with LevelStorage', { cluster: undefined })

test.after.each(async (ctx) => {
  await ctx.cluster?.destroy()
  ctx.cluster = undefined
})

async function cluster (ctx: Ctx, options: GroupOptions = {}): Promise<Cluster> {
  ctx.cluster = await Cluster.start(3, options)
  return ctx.cluster
}

async function rejectsWith (p: Promise<unknown>, names: string[]): Promise<Error> {
  try {
    await p
  } catch (err) {
    assert.ok(names.includes((err as Error).name), `expected ${names.join('|')}, got ${(err as Error).name}: ${(err as Error).message}`)
    return err as Error
  }
  assert.unreachable(`expected ${names.join('|')}`)
  throw new Error('unreachable')
}

/** Waits until every running node applied (at least) `items`, in that order, at the start of its list. */
async function allApplied (c: Cluster, items: string[], timeoutMs = 5000): Promise<void> {
  await waitFor(() => c.running().every((i) => c.members[i].sm.items.length >= items.length), timeoutMs, `${items.length} items applied everywhere`)
  for (const i of c.running()) assert.equal(c.members[i].sm.items.slice(0, items.length), items, `node ${i}`)
}

test('elects a leader; a proposal on any node is applied on all three', plain(async (ctx) => {
  const c = await cluster(ctx)
  const lead = await c.leader()
  const order: string[] = []
  for (let i = 0; i < 3; i++) {
    const r: Result = await c.group(i).propose(enc(`from-${i}`))
    assert.is(r.length, i + 1, `node ${i} proposal result`)
    order.push(`from-${i}`)
  }
  await allApplied(c, order)
  const st = c.group(lead).status()
  assert.is(st.leader, c.members[lead].id)
  assert.ok(st.commit >= st.applied && st.applied > 1)
}))

test('concurrent proposals are group-committed (far fewer fsync batches than proposals)', plain(async (ctx) => {
  const c = await cluster(ctx)
  const lead = await c.leader()
  await c.group(lead).propose(enc('warm-up'))
  const before = c.group(lead).stats.persistBatches
  const n = 400
  const started = Date.now()
  const results = await Promise.all(Array.from({ length: n }, (_, k) => c.group((lead + k) % 3).propose(enc(`p${k}`))))
  const ms = Date.now() - started
  const batches = c.group(lead).stats.persistBatches - before
  assert.is(new Set(results.map((r) => r.index)).size, n, 'every proposal got its own index')
  assert.ok(batches < n / 4, `${batches} fsync'd batches for ${n} proposals`)
  await waitFor(() => c.running().every((i) => c.members[i].sm.items.length === n + 1), 5000, 'all applied')
  assert.equal(c.members[0].sm.items, c.members[1].sm.items)
  assert.equal(c.members[1].sm.items, c.members[2].sm.items)
  console.log(`    ${n} proposals from 3 nodes in ${ms} ms, ${batches} fsync'd batches on the leader`)
}))

test('a linearizable read after a write sees the write, on every node', plain(async (ctx) => {
  const c = await cluster(ctx)
  await c.leader()
  for (let k = 0; k < 5; k++) {
    const writer = k % 3
    await c.group(writer).propose(enc(`w${k}`))
    for (let reader = 0; reader < 3; reader++) {
      const seen = await c.group(reader).read(() => c.members[reader].sm.items.slice())
      assert.ok(seen.includes(`w${k}`), `node ${reader} reads w${k} after it was written on node ${writer}`)
    }
  }
}))

test('stopping the leader: a new leader is elected, proposals succeed, nothing acknowledged is lost', plain(async (ctx) => {
  const c = await cluster(ctx)
  const lead = await c.leader()
  const acked: string[] = []
  for (let k = 0; k < 20; k++) {
    await c.group(k % 3).propose(enc(`before-${k}`))
    acked.push(`before-${k}`)
  }
  const stoppedAt = Date.now()
  await c.stop(lead)
  const survivor = c.running()[0]
  await c.group(survivor).propose(enc('after-0'), { timeoutMs: 5000 })
  acked.push('after-0')
  const failoverMs = Date.now() - stoppedAt
  const newLead = await c.leader()
  assert.is.not(newLead, lead)
  for (let k = 1; k < 10; k++) {
    await c.group(c.running()[k % 2]).propose(enc(`after-${k}`))
    acked.push(`after-${k}`)
  }
  await allApplied(c, acked)
  assert.ok(failoverMs < 5000, `fail-over took ${failoverMs} ms`)
  // The old leader comes back as a follower and catches up.
  await c.restart(lead)
  await allApplied(c, acked)
}))

test('a restarted node catches up from its log, and via a snapshot after compaction', plain(async (ctx) => {
  const c = await cluster(ctx, { snapshotEvery: 20, snapshotKeepEntries: 0 })
  const lead = await c.leader()
  const follower = (lead + 1) % 3
  const items: string[] = []
  for (let k = 0; k < 10; k++) { await c.group(lead).propose(enc(`a${k}`)); items.push(`a${k}`) }
  await allApplied(c, items)
  await c.stop(follower)
  // Restart with its own log (no snapshot needed: the leader still has every entry it lacks).
  await c.restart(follower)
  await allApplied(c, items)
  assert.is(c.group(follower).stats.snapshotsRestored, 0)

  await c.stop(follower)
  const writers = c.running()
  for (let k = 0; k < 60; k++) { await c.group(writers[k % 2]).propose(enc(`b${k}`)); items.push(`b${k}`) }
  await waitFor(() => writers.every((i) => c.group(i).stats.snapshotsCreated > 0), 3000, 'snapshots on the running nodes')
  await c.restart(follower)
  await allApplied(c, items)
  assert.ok(c.group(follower).stats.snapshotsRestored >= 1, 'the follower was sent a snapshot')
  // And it keeps applying new entries after the snapshot.
  await c.group(follower).propose(enc('c0'))
  items.push('c0')
  await allApplied(c, items)
}))

test('a snapshot waits for the state machine to settle; one that cannot settle postpones it and loses nothing', plain(async (ctx) => {
  const c = await cluster(ctx, { snapshotEvery: 10, snapshotKeepEntries: 0 })
  for (const m of c.members) m.sm.settleWith = async () => { throw new Error('not stored yet') }
  const lead = await c.leader()
  const items: string[] = []
  for (let k = 0; k < 25; k++) { await c.group(lead).propose(enc(`a${k}`)); items.push(`a${k}`) }
  await allApplied(c, items)
  await waitFor(() => c.members.every((m) => m.sm.settleCalls > 0), 3000, 'snapshot attempts')
  for (const i of c.running()) assert.is(c.group(i).stats.snapshotsCreated, 0, `node ${i} snapshotted before it settled`)
  // settled: the next attempt (at most SNAPSHOT_RETRY_MS later) snapshots
  for (const m of c.members) m.sm.settleWith = async () => {}
  for (let k = 0; k < 3; k++) { await c.group(lead).propose(enc(`b${k}`)); items.push(`b${k}`) }
  await new Promise((resolve) => setTimeout(resolve, 1100))
  await c.group(lead).propose(enc('c0'))
  items.push('c0')
  await waitFor(() => c.running().every((i) => c.group(i).stats.snapshotsCreated > 0), 3000, 'snapshots once settled')
  await allApplied(c, items)
}))

test('a snapshot is also taken once the entries applied since the last one hold snapshotBytes', plain(async (ctx) => {
  const c = await cluster(ctx, { snapshotEvery: 1_000_000, snapshotBytes: 2000, snapshotKeepEntries: 0 })
  const lead = await c.leader()
  const items: string[] = []
  for (let k = 0; k < 5; k++) { await c.group(lead).propose(enc(`small${k}`)); items.push(`small${k}`) }
  await allApplied(c, items)
  for (const i of c.running()) assert.is(c.group(i).stats.snapshotsCreated, 0)
  for (let k = 0; k < 8; k++) { const item = `${k}`.padEnd(300, 'x'); await c.group(lead).propose(enc(item)); items.push(item) }
  await waitFor(() => c.running().every((i) => c.group(i).stats.snapshotsCreated > 0), 3000, 'snapshots by bytes')
  await allApplied(c, items)
}))

test('with 2 of 3 nodes stopped, a proposal on the survivor fails with NoQuorum within its deadline', plain(async (ctx) => {
  const c = await cluster(ctx)
  const lead = await c.leader()
  await c.group(lead).propose(enc('x'))
  // Stop the leader and one follower, so the survivor is a follower; then also try with a leader survivor.
  const survivor = (lead + 1) % 3
  for (const i of [0, 1, 2]) if (i !== survivor) await c.stop(i)
  const started = Date.now()
  await rejectsWith(c.group(survivor).propose(enc('y'), { timeoutMs: 1500 }), ['NoQuorum'])
  const ms = Date.now() - started
  assert.ok(ms >= 1400 && ms < 2500, `answered after ${ms} ms`)
  await rejectsWith(c.group(survivor).read(() => 1, { signal: AbortSignal.timeout(800) }), ['NoQuorum'])
  // A pending proposal is rejected (not left hanging) when its group stops.
  const pending = rejectsWith(c.group(survivor).propose(enc('z')), ['Unavailable'])
  const ac = new AbortController()
  ac.abort()
  const p2 = c.group(survivor).propose(enc('z'), { signal: ac.signal })
  await rejectsWith(p2, ['Aborted'])
  const ac3 = new AbortController()
  const p3 = c.group(survivor).propose(enc('w'), { signal: ac3.signal })
  ac3.abort()
  await rejectsWith(p3, ['Aborted'])
  await c.stop(survivor)
  await pending
}))

test('a minority leader steps down: its proposals fail within the deadline', plain(async (ctx) => {
  const c = await cluster(ctx)
  const lead = await c.leader()
  for (const i of [0, 1, 2]) if (i !== lead) await c.stop(i)
  await rejectsWith(c.group(lead).propose(enc('y'), { timeoutMs: 1000 }), ['NoQuorum', 'DeadlineExceeded'])
  await waitFor(() => c.group(lead).status().leader === undefined, 2000, 'the lone leader to step down')
  await rejectsWith(c.group(lead).propose(enc('y'), { timeoutMs: 500 }), ['NoQuorum'])
}))

/** Times `items` appears in node i's applied list. */
function count (c: Cluster, i: number, item: string): number {
  return c.members[i].sm.items.filter((x) => x === item).length
}

test('a proposal forwarded to a leader that dies before appending it is proposed again and applied once', plain(async (ctx) => {
  const c = await cluster(ctx)
  const lead = await c.leader()
  await c.group(lead).propose(enc('first'))
  // The leader receives forwarded proposals and loses them (as a leader that dies right after
  // reading them would); everything else it handles as usual.
  const t = c.members[lead].transport
  const g = c.group(lead).group
  const h = t?.handlerOf(g)
  if (t === undefined || h === undefined) throw new Error('no transport handler')
  let swallowed = 0
  t.unregister(g)
  t.register(g, {
    ...h,
    receive: (from, ms) => {
      const kept = ms.filter((m) => m.type !== MessageType.Prop)
      swallowed += ms.length - kept.length
      h.receive(from, kept)
    }
  })
  const f = (lead + 1) % 3
  const started = Date.now()
  const pending = c.group(f).propose(enc('lost'), { timeoutMs: 20_000 })
  await waitFor(() => swallowed > 0, 2000, 'the forward to reach the leader')
  assert.is(count(c, f, 'lost'), 0)
  await c.stop(lead)
  const r = await pending
  const ms = Date.now() - started
  assert.ok(ms < 5000, `applied after ${ms} ms (a lost forward used to wait for its deadline)`)
  assert.ok(c.group(f).stats.proposalsRetried >= 1, 'proposed again on the evidence of a later term')
  await waitFor(() => c.running().every((i) => count(c, i, 'lost') === 1), 5000, 'applied on both survivors')
  assert.equal(c.members[c.running()[0]].sm.items, c.members[c.running()[1]].sm.items)
  assert.is(r.length, c.members[f].sm.items.indexOf('lost') + 1)
  // Applied once, also on the old leader once it is back.
  await c.restart(lead)
  await waitFor(() => c.members[lead].sm.items.length === c.members[f].sm.items.length, 5000, 'the old leader to catch up')
  for (const i of c.running()) assert.is(count(c, i, 'lost'), 1, `node ${i}`)
}))

test('a proposal its leader appended but could not replicate before losing the leadership is proposed again and applied once', plain(async (ctx) => {
  const c = await cluster(ctx)
  const lead = await c.leader()
  await c.group(lead).propose(enc('first'))
  // The leader's outbound messages are lost: it appends its own proposal, nobody else sees it, the
  // others elect a new leader, and the old one learns of it once its messages flow again.
  const t = c.members[lead].transport
  if (t === undefined) throw new Error('no transport')
  const send = t.send.bind(t)
  let cut = true
  t.send = (group, messages) => { if (!cut) send(group, messages) }
  const started = Date.now()
  const pending = c.group(lead).propose(enc('orphan'), { timeoutMs: 20_000 })
  const others = [0, 1, 2].filter((i) => i !== lead)
  await waitFor(() => others.every((i) => c.group(i).status().leader === c.members[others[0]].id) ||
    others.every((i) => c.group(i).status().leader === c.members[others[1]].id), 10_000, 'a new leader among the others')
  cut = false
  const r = await pending
  const ms = Date.now() - started
  assert.ok(ms < 8000, `applied after ${ms} ms`)
  assert.ok(c.group(lead).stats.proposalsRetried >= 1, 'proposed again on the evidence of a later term')
  await waitFor(() => c.running().every((i) => count(c, i, 'orphan') === 1), 5000, 'applied everywhere')
  for (const i of c.running()) assert.is(count(c, i, 'orphan'), 1, `node ${i}`)
  assert.is(r.length, c.members[lead].sm.items.indexOf('orphan') + 1)
}))

test.run()
