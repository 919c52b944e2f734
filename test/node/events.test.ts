import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { EVENTS_LIMIT_MAX, EVENTS_WAIT_MS_MAX, EVENT_TEXT_CHARS_MAX, type ClusterEvent } from '@dfs/api'
import { EventLog, watchLeaders } from '../../src/node/events.js'
import { parseEventsParams } from '../../src/node/handlers/events.js'
import { formatEvent } from '../../src/commands/cluster/events.js'

const joined = (node: string): { kind: 'node.joined', node: string } => ({ kind: 'node.joined', node })

function errorName (fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    return (err as Error).name
  }
  return undefined
}

async function rejection (p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p
  } catch (err) {
    return (err as Error).name
  }
  return undefined
}

test('events are numbered from 1 with their time; the newest come without after, the next ones with it', () => {
  const log = new EventLog({ now: () => Date.UTC(2026, 0, 2, 3, 4, 5) })
  assert.equal(log.read(), { events: [], next: 0 })
  for (const n of ['a', 'b', 'c', 'd']) log.record(joined(n))
  const all = log.read()
  assert.equal(all.events.map((e) => e.seq), [1, 2, 3, 4])
  assert.is(all.events[0].at, '2026-01-02T03:04:05.000Z')
  assert.is(all.next, 4)
  assert.equal(log.read({ limit: 2 }).events.map((e) => e.seq), [3, 4], 'without after: the newest')
  const page = log.read({ after: 1, limit: 2 })
  assert.equal(page.events.map((e) => e.seq), [2, 3], 'with after: the oldest after it')
  assert.is(page.next, 3)
  assert.equal(log.read({ after: 4 }), { events: [], next: 4 }, 'nothing newer: next stays')
})

test('the ring keeps the last `capacity` events and says how many a reader missed', () => {
  const log = new EventLog({ capacity: 3 })
  for (let i = 0; i < 10; i++) log.record(joined(`n${i}`))
  assert.is(log.oldest, 8)
  assert.is(log.newest, 10)
  const r = log.read({ after: 2 })
  assert.equal(r.events.map((e) => e.seq), [8, 9, 10])
  assert.is(r.dropped, 5, 'seqs 3..7 are gone')
  assert.equal(r.events.map((e) => e.kind === 'node.joined' ? e.node : ''), ['n7', 'n8', 'n9'])
  assert.is(log.read({ after: 7 }).dropped, undefined, 'nothing missed')
})

test('a seq past the newest (the node restarted) reads from the start', () => {
  const log = new EventLog()
  log.record(joined('a'))
  const r = log.read({ after: 500 })
  assert.equal(r.events.map((e) => e.seq), [1])
  assert.is(r.next, 1)
  assert.equal(log.read({ after: 0 }).events.length, 1)
})

test('limits: answers hold at most EVENTS_LIMIT_MAX; long texts are cut', () => {
  const log = new EventLog()
  for (let i = 0; i < EVENTS_LIMIT_MAX + 10; i++) log.record(joined(`n${i}`))
  assert.is(log.read({ after: 0, limit: 10_000 }).events.length, EVENTS_LIMIT_MAX)
  const e = log.record({ kind: 'repair.failed', extent: 'x', bytes: 1, target: 'p', error: 'NodeUnreachable', message: 'y'.repeat(10_000) })
  assert.ok(e.kind === 'repair.failed' && e.message !== undefined && e.message.length === EVENT_TEXT_CHARS_MAX)
})

test('listeners hear every event; one that throws does not stop the others', () => {
  const log = new EventLog()
  const heard: number[] = []
  log.subscribe(() => { throw new Error('a buggy listener') })
  const off = log.subscribe((e) => { heard.push(e.seq) })
  log.record(joined('a'))
  off()
  log.record(joined('b'))
  assert.equal(heard, [1])
  assert.is(log.newest, 2)
})

test('poll answers at once when events after `after` are held', async () => {
  const log = new EventLog()
  log.record(joined('a'))
  const started = Date.now()
  const r = await log.poll({ after: 0, waitMs: 10_000 })
  assert.equal(r.events.map((e) => e.seq), [1])
  assert.ok(Date.now() - started < 1000)
})

test('poll waits for the next event and answers with it', async () => {
  const log = new EventLog()
  log.record(joined('a'))
  const waiting = log.poll({ after: 1, waitMs: 10_000 })
  assert.is(log.waiting, 1)
  setTimeout(() => { log.record(joined('b')) }, 20)
  const r = await waiting
  assert.equal(r.events.map((e) => e.seq), [2])
  assert.is(r.next, 2)
  assert.is(log.waiting, 0)
})

test('poll ends empty at waitMs, at its signal, and when the log stops', async () => {
  const log = new EventLog()
  assert.equal(await log.poll({ after: 0, waitMs: 30 }), { events: [], next: 0 })
  const ac = new AbortController()
  const aborted = log.poll({ after: 0, waitMs: 10_000, signal: ac.signal })
  ac.abort()
  assert.equal(await aborted, { events: [], next: 0 })
  const stopped = log.poll({ after: 0, waitMs: 10_000 })
  log.stop()
  assert.equal(await stopped, { events: [], next: 0 })
  assert.is(log.waiting, 0)
  // once stopped, a poll answers at once
  const started = Date.now()
  await log.poll({ after: 0, waitMs: 10_000 })
  assert.ok(Date.now() - started < 1000)
})

test('without after a poll never waits; waitMs is capped', async () => {
  const log = new EventLog()
  const started = Date.now()
  assert.equal(await log.poll({ waitMs: 10_000 }), { events: [], next: 0 })
  assert.ok(Date.now() - started < 1000)
})

test('at most waitersMax polls wait; the next is refused with Unavailable', async () => {
  const log = new EventLog({ waitersMax: 2 })
  const a = log.poll({ after: 0, waitMs: 10_000 })
  const b = log.poll({ after: 0, waitMs: 10_000 })
  assert.is(await rejection(log.poll({ after: 0, waitMs: 10_000 })), 'Unavailable')
  // a poll that need not wait is still answered
  log.record(joined('a'))
  await Promise.all([a, b])
  assert.is((await log.poll({ after: 0, waitMs: 10_000 })).events.length, 1)
})

test('the leader watch records the known leaders, then each change of leader or term', async () => {
  const log = new EventLog()
  const groups = [{ group: 0, leader: undefined as string | undefined, term: 1 }, { group: 1, leader: 'p2' as string | undefined, term: 4 }]
  const stop = watchLeaders(log, () => groups.map((g) => ({ ...g })), 10)
  try {
    const leaders = (): unknown[] => log.read({ after: 0 }).events.map((e) => e.kind === 'raft.leader' ? [e.group, e.leader, e.term] : e.kind)
    assert.equal(leaders(), [[1, 'p2', 4]], 'a group without a leader yet is not news')
    groups[0].leader = 'p1'
    groups[1].term = 5
    await waitUntil(() => log.newest === 3)
    groups[1].leader = undefined
    await waitUntil(() => log.newest === 4)
    assert.equal(leaders(), [[1, 'p2', 4], [0, 'p1', 1], [1, 'p2', 5], [1, null, 5]])
    // nothing changes: nothing recorded
    await new Promise((resolve) => setTimeout(resolve, 50))
    assert.is(log.newest, 4)
  } finally {
    stop()
  }
})

test('the leader watch survives a metadata service that is not running', () => {
  const log = new EventLog()
  const stop = watchLeaders(log, () => { throw new Error('not running') }, 10_000)
  stop()
  assert.is(log.newest, 0)
})

test('cluster.events params are checked', () => {
  assert.equal(parseEventsParams({}), {})
  assert.equal(parseEventsParams({ after: 3, waitMs: 1000, limit: 10 }), { after: 3, waitMs: 1000, limit: 10 })
  assert.is(errorName(() => parseEventsParams({ waitMs: EVENTS_WAIT_MS_MAX + 1 })), 'InvalidArgument')
  assert.is(errorName(() => parseEventsParams({ limit: 0 })), 'InvalidArgument')
  assert.is(errorName(() => parseEventsParams({ limit: EVENTS_LIMIT_MAX + 1 })), 'InvalidArgument')
  assert.is(errorName(() => parseEventsParams({ after: -1 })), 'InvalidArgument')
  assert.is(errorName(() => parseEventsParams({ after: '1' })), 'InvalidArgument')
  assert.is(errorName(() => parseEventsParams([])), 'InvalidArgument')
})

test('events read as lines for people', () => {
  const at = '2026-01-02T03:04:05.000Z'
  const names = (id: string): string => id === 'p3' ? 'n3' : id
  const line = (e: ClusterEvent): string => formatEvent(e, names)
  assert.is(line({ seq: 7, at, kind: 'node.health', node: 'p3', from: 'healthy', to: 'suspected' }), `${at}  #7  node n3 is suspected (was healthy)`)
  assert.is(line({ seq: 8, at, kind: 'raft.leader', group: 0, leader: null, term: 3 }), `${at}  #8  group 0: no leader (term 3)`)
  assert.match(line({ seq: 9, at, kind: 'repair.finished', extent: 'e1', bytes: 256 * 1024, target: 'p3' }), /repair of extent e1 \(256 KiB\) onto n3 finished$/)
  assert.match(line({ seq: 10, at, kind: 'move.cancelled', extent: 'e1', bytes: 1536, from: 'p1', to: 'p3', reason: 'failed 5 times' }), /from p1 to n3 cancelled: failed 5 times$/)
  assert.match(line({ seq: 11, at, kind: 'scrub.error', extent: 'e2', error: 'CorruptExtent', repaired: true }), /copy of extent e2 is corrupt; fetched again$/)
})

async function waitUntil (cond: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

test.run()
