/**
 * Storage: one shared suite run against MemoryStorage and LevelStorage (a real LevelDB in a temp dir),
 * then LevelStorage persistence across close/reopen.
 */
import { cp, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { EntryType, LevelStorage, MemoryStorage, RaftLogDb, RawNode, StateType, mustSync } from '../../src/raft/index.js'
import type { ConfState, Entry, HardState, Snapshot, Storage } from '../../src/raft/index.js'
import { ent } from './helpers.js'
import { bytes, seededRand } from './network.js'

const CS: ConfState = { voters: ['a', 'b', 'c'], learners: [] }

/** The write side both storages offer, made async so one suite drives both. */
interface Subject {
  s: Storage
  save: (rd: { hardState?: HardState, entries: Entry[], snapshot?: Snapshot }) => Promise<void>
  createSnapshot: (i: number, cs: ConfState, d: Uint8Array) => Promise<Snapshot>
  compact: (i: number) => Promise<void>
  done: () => Promise<void>
}

const dirs: string[] = []
async function tempDir (): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'dfs-raft-'))
  dirs.push(d)
  return d
}

/** A copy of a live log's directory: what a crash at this point would leave on disk. */
async function copyDir (dir: string): Promise<string> {
  const to = await tempDir()
  await cp(dir, to, { recursive: true })
  return to
}

const subjects: Record<string, () => Promise<Subject>> = {
  memory: async () => {
    const m = new MemoryStorage({ confState: CS })
    return {
      s: m,
      save: async rd => {
        if (rd.snapshot !== undefined) m.applySnapshot(rd.snapshot)
        m.append(rd.entries)
        if (rd.hardState !== undefined) m.setHardState(rd.hardState)
      },
      createSnapshot: async (i, cs, d) => m.createSnapshot(i, cs, d),
      compact: async i => { m.compact(i) },
      done: async () => {}
    }
  },
  level: async () => {
    const l = await LevelStorage.open(await tempDir(), { confState: CS })
    return {
      s: l,
      save: async rd => { await l.saveReady(rd) },
      createSnapshot: async (i, cs, d) => await l.createSnapshot(i, cs, d),
      compact: async i => { await l.compact(i) },
      done: async () => { await l.close() }
    }
  }
}

const terms = (s: Storage): number[] => s.entries(s.firstIndex(), s.lastIndex() + 1).map(e => e.term)

async function rejects (p: Promise<unknown>, name: string | RegExp): Promise<void> {
  try {
    await p
  } catch (err) {
    if (typeof name === 'string') assert.is((err as Error).name, name)
    else assert.match((err as Error).message, name)
    return
  }
  assert.unreachable('expected a rejection')
}

for (const [kind, make] of Object.entries(subjects)) {
  test(`storage(${kind}): a new group starts from the genesis snapshot`, async () => {
    const t = await make()
    assert.equal(t.s.initialState(), { hardState: { term: 1, vote: '', commit: 1 }, confState: CS })
    assert.is(t.s.firstIndex(), 2)
    assert.is(t.s.lastIndex(), 1)
    assert.is(t.s.term(1), 1)
    await t.done()
  })

  test(`storage(${kind}): append truncates a conflicting suffix (paper §5.3)`, async () => {
    const t = await make()
    await t.save({ entries: [ent(2, 2), ent(3, 2), ent(4, 2), ent(5, 2)], hardState: { term: 2, vote: 'a', commit: 3 } })
    await t.save({ entries: [ent(4, 3)] })
    assert.equal(terms(t.s), [2, 2, 3])
    assert.is(t.s.lastIndex(), 4)
    await t.save({ entries: [ent(2, 2), ent(3, 2)] })
    assert.equal(terms(t.s), [2, 2], 'a re-sent prefix also truncates what follows (the driver only sends what the core decided)')
    await rejects(t.save({ entries: [ent(9, 3)] }), /missing log entries/)
    await t.done()
  })

  test(`storage(${kind}): snapshot, compaction and a leader's snapshot replacing the log (paper §7)`, async () => {
    const t = await make()
    await t.save({ entries: [2, 3, 4, 5, 6].map(i => ent(i, 2)), hardState: { term: 2, vote: '', commit: 6 } })
    const snap = await t.createSnapshot(5, { voters: ['a', 'b'], learners: ['c'] }, bytes('S5'))
    assert.equal(snap.metadata, { index: 5, term: 2, confState: { voters: ['a', 'b'], learners: ['c'] } })
    await rejects(t.createSnapshot(4, CS, bytes('')), 'SnapshotOutOfDate')
    await rejects(t.compact(6), /after the snapshot index/)
    await t.compact(4)
    assert.is(t.s.firstIndex(), 5)
    assert.is(t.s.term(4), 2)
    assert.throws(() => t.s.entries(4, 6), (e: Error) => e.name === 'Compacted')
    assert.equal(terms(t.s), [2, 2])
    const leaderSnap: Snapshot = { metadata: { index: 20, term: 5, confState: CS }, data: bytes('S20') }
    await t.save({ snapshot: leaderSnap, entries: [ent(21, 5)], hardState: { term: 5, vote: '', commit: 20 } })
    assert.is(t.s.firstIndex(), 21)
    assert.is(t.s.lastIndex(), 21)
    assert.is(t.s.term(20), 5)
    assert.equal(t.s.snapshot(), leaderSnap)
    await t.done()
  })
}

test('LevelStorage: hard state, entries, snapshot and compaction survive close and reopen', async () => {
  const dir = await tempDir()
  let l = await LevelStorage.open(dir, { confState: CS })
  const cc = { ...ent(4, 2), type: EntryType.ConfChange, data: bytes('cc') }
  await l.saveReady({ entries: [ent(2, 2), ent(3, 2), cc, ent(5, 2), ent(6, 2)], hardState: { term: 2, vote: 'b', commit: 5 } })
  await l.saveReady({ entries: [ent(6, 3), ent(7, 3)], hardState: { term: 3, vote: 'c', commit: 5 } })
  await l.createSnapshot(4, { voters: ['a', 'b', 'c', 'd'], learners: [] }, bytes('state@4'))
  await l.compact(3)
  await l.close()

  l = await LevelStorage.open(dir, { confState: { voters: ['ignored'], learners: [] } })
  assert.equal(l.initialState(), { hardState: { term: 3, vote: 'c', commit: 5 }, confState: { voters: ['a', 'b', 'c', 'd'], learners: [] } })
  assert.is(l.firstIndex(), 4)
  assert.is(l.lastIndex(), 7)
  assert.is(l.term(3), 2)
  assert.equal(l.entries(4, 8).map(e => [e.index, e.term, e.type]), [[4, 2, 1], [5, 2, 0], [6, 3, 0], [7, 3, 0]])
  assert.equal(Array.from(l.entries(4, 5)[0].data), Array.from(bytes('cc')))
  assert.equal(l.snapshot().data, bytes('state@4'))
  // A leader's snapshot replaces everything, durably.
  await l.saveReady({ snapshot: { metadata: { index: 30, term: 4, confState: CS }, data: bytes('S30') }, entries: [], hardState: { term: 4, vote: '', commit: 30 } })
  await l.close()
  l = await LevelStorage.open(dir)
  assert.is(l.firstIndex(), 31)
  assert.is(l.lastIndex(), 30)
  assert.is(l.snapshot().metadata.index, 30)
  assert.is(l.initialState().hardState.commit, 30)
  await l.close()
})

test('LevelStorage: entries, snapshots, term and vote are written fsync\'d; a commit-only hard state is kept in memory until the next write or close', async () => {
  const dir = await tempDir()
  const l = await LevelStorage.open(dir, { confState: CS })
  await l.saveReady({ entries: [ent(2, 2)], hardState: { term: 2, vote: 'a', commit: 1 } })
  assert.equal(l.stats, { batches: 1, syncedBatches: 1, commitOnlyKept: 0 })
  await l.saveReady({ entries: [], hardState: { term: 2, vote: 'a', commit: 2 } })
  assert.equal(l.stats, { batches: 1, syncedBatches: 1, commitOnlyKept: 1 }, 'commit only: no write')
  assert.is(l.initialState().hardState.commit, 2, 'but the commit index is current in memory')
  // a crash now (no close) leaves the last written commit index: it is re-learnt from the leader
  const crashed = await LevelStorage.open(await copyDir(dir))
  assert.equal(crashed.initialState().hardState, { term: 2, vote: 'a', commit: 1 })
  await crashed.close()
  await l.saveReady({ entries: [], hardState: { term: 3, vote: '', commit: 2 } })
  assert.equal(l.stats, { batches: 2, syncedBatches: 2, commitOnlyKept: 1 }, 'a new term is written, with the kept commit index')
  await l.saveReady({ entries: [], hardState: { term: 3, vote: 'b', commit: 2 } })
  assert.equal(l.stats, { batches: 3, syncedBatches: 3, commitOnlyKept: 1 }, 'a vote is written')
  await l.saveReady({ entries: [], hardState: { term: 3, vote: 'b', commit: 3 } })
  await l.close()
  const again = await LevelStorage.open(dir)
  assert.equal(again.initialState().hardState, { term: 3, vote: 'b', commit: 3 }, 'close writes the kept commit index')
  await again.close()
})

test('LevelStorage: a commit-only hard state is written when the Ready applies a conf change, so a crash cannot take the configuration back', async () => {
  // Stack simulation seed 31002061: the last voter applied the removal of the other (its commit index
  // kept in memory), the removed node was shut down, and after a crash the survivor counted it again.
  const dir = await tempDir()
  const l = await LevelStorage.open(dir, { confState: CS })
  const cc: Entry = { index: 3, term: 2, type: EntryType.ConfChange, data: bytes('remove c') }
  await l.saveReady({ entries: [ent(2, 2), cc], hardState: { term: 2, vote: 'a', commit: 1 } })
  await l.saveReady({ entries: [], hardState: { term: 2, vote: 'a', commit: 2 }, committedEntries: [ent(2, 2)] })
  assert.equal(l.stats, { batches: 1, syncedBatches: 1, commitOnlyKept: 1 }, 'an ordinary entry: kept in memory')
  await l.saveReady({ entries: [], hardState: { term: 2, vote: 'a', commit: 3 }, committedEntries: [cc] })
  assert.equal(l.stats, { batches: 2, syncedBatches: 2, commitOnlyKept: 1 }, 'a conf change: written')
  const crashed = await LevelStorage.open(await copyDir(dir))
  assert.equal(crashed.initialState().hardState, { term: 2, vote: 'a', commit: 3 }, 'a crash keeps the commit index that covers it')
  await crashed.close()
  await l.close()
})

test('mustSync: entries, a snapshot, a new term or a new vote must be durable before messages; the commit index alone need not', () => {
  const hs: HardState = { term: 3, vote: 'a', commit: 5 }
  assert.is(mustSync({ entries: [], hardState: { ...hs, commit: 9 } }, hs), false)
  assert.is(mustSync({ entries: [] }, hs), false)
  assert.is(mustSync({ entries: [ent(6, 3)] }, hs), true)
  assert.is(mustSync({ entries: [], snapshot: { metadata: { index: 9, term: 3, confState: CS }, data: new Uint8Array(0) } }, hs), true)
  assert.is(mustSync({ entries: [], hardState: { ...hs, term: 4, vote: '' } }, hs), true)
  assert.is(mustSync({ entries: [], hardState: { term: 3, vote: 'b', commit: 5 } }, { term: 3, vote: '', commit: 5 }), true)
})

test('LevelStorage: a crash after a snapshot past the written commit index restarts (the commit index is at least the snapshot index)', async () => {
  const dir = await tempDir()
  const l = await LevelStorage.open(dir, { confState: CS })
  await l.saveReady({ entries: [ent(2, 2), ent(3, 2), ent(4, 2)], hardState: { term: 2, vote: 'a', commit: 1 } })
  // the commit index moves alone (kept in memory), the group applies and snapshots at 4, then compacts
  await l.saveReady({ entries: [], hardState: { term: 2, vote: 'a', commit: 4 } })
  await l.createSnapshot(4, CS, bytes('state@4'))
  await l.compact(4)
  // kill -9 now: no close, so nothing writes the kept commit index
  const crashed = await LevelStorage.open(await copyDir(dir))
  assert.is(crashed.snapshot().metadata.index, 4)
  assert.ok(crashed.initialState().hardState.commit >= 4, `commit ${crashed.initialState().hardState.commit} is behind the snapshot`)
  // and the core starts on it (it asserts snapshot index <= commit <= last index)
  const node = new RawNode({ id: 'a', storage: crashed, electionTick: 10, heartbeatTick: 1, rand: seededRand(1) })
  assert.is(node.status().commit, 4)
  await crashed.close()
  await l.close()
})

test('LevelStorage: a data dir written before the fix (commit below the snapshot) opens with the snapshot index as its commit', async () => {
  const dir = await tempDir()
  const l = await LevelStorage.open(dir, { confState: CS })
  await l.saveReady({ entries: [ent(2, 2), ent(3, 2)], hardState: { term: 2, vote: 'a', commit: 3 } })
  await l.createSnapshot(3, CS, bytes('state@3'))
  await l.close()
  // rewrite the hard state as an older version left it: commit 1, below the snapshot at 3
  const { encode } = await import('cborg')
  const { crc32 } = await import('node:zlib')
  const body = encode({ t: 2, v: 'a', c: 1 })
  const sealed = new Uint8Array(body.byteLength + 4)
  sealed.set(body)
  new DataView(sealed.buffer).setUint32(body.byteLength, crc32(body) >>> 0, false)
  const log = await RaftLogDb.open(dir)
  await log.write([{ type: 'put', key: 'm/hs', value: sealed }], true)
  await log.close()
  const reopened = await LevelStorage.open(dir)
  assert.equal(reopened.initialState().hardState, { term: 2, vote: 'a', commit: 3 })
  const node = new RawNode({ id: 'a', storage: reopened, electionTick: 10, heartbeatTick: 1, rand: seededRand(1) })
  assert.is(node.status().commit, 3)
  await reopened.close()
})

test('LevelStorage: a joining node opens empty, reopens with what it wrote; a corrupted value is detected on open', async () => {
  const dir = await tempDir()
  const l = await LevelStorage.open(dir)
  assert.equal(l.initialState(), { hardState: { term: 0, vote: '', commit: 0 }, confState: { voters: [], learners: [] } })
  await l.saveReady({ entries: [], hardState: { term: 2, vote: '', commit: 0 } })
  await l.close()
  const again = await LevelStorage.open(dir)
  assert.equal(again.initialState().hardState, { term: 2, vote: '', commit: 0 })
  await again.close()
  // a value whose own CRC fails, in a log record that is whole (a record changed on disk is the log's
  // CorruptLog: wal-log-store.test.ts)
  const log = await RaftLogDb.open(dir)
  const v = await log.store.get('m/hs')
  assert.ok(v !== undefined)
  const bad = v.slice(); bad[1] ^= 0xff
  await log.write([{ type: 'put', key: 'm/hs', value: bad }], true)
  await log.close()
  await rejects(LevelStorage.open(dir), 'CorruptLog')
})

test('LevelStorage: a RawNode group on LevelDB elects, commits, and a node restarts from disk', async () => {
  const ids = ['a', 'b', 'c']
  const dirsBy: Record<string, string> = {}
  const stores: Record<string, LevelStorage> = {}
  const nodes: Record<string, RawNode> = {}
  const applied: Record<string, string[]> = { a: [], b: [], c: [] }
  const open = async (id: string): Promise<void> => {
    stores[id] = await LevelStorage.open(dirsBy[id], { confState: { voters: ids, learners: [] } })
    nodes[id] = new RawNode({ id, storage: stores[id], electionTick: 10, heartbeatTick: 1, rand: seededRand(id.charCodeAt(0)) })
    applied[id] = []
  }
  for (const id of ids) { dirsBy[id] = await tempDir(); await open(id) }
  const pump = async (): Promise<void> => {
    for (let round = 0; round < 100; round++) {
      let busy = false
      for (const id of ids) {
        const n = nodes[id]
        if (!n.hasReady()) continue
        busy = true
        const rd = n.ready()
        await stores[id].saveReady(rd)
        for (const m of rd.messages) nodes[m.to].step(m)
        for (const e of rd.committedEntries) {
          if (e.type === EntryType.Normal && e.data.byteLength > 0) applied[id].push(new TextDecoder().decode(e.data))
        }
        n.advance(rd)
      }
      if (!busy) return
    }
  }
  nodes.a.campaign()
  await pump()
  assert.is(nodes.a.status().state, StateType.Leader)
  nodes.a.propose(bytes('x'))
  nodes.a.propose(bytes('y'))
  await pump()
  for (const id of ids) nodes[id].tick()
  await pump()
  assert.equal(applied.c, ['x', 'y'])
  const before = nodes.c.status()
  await stores.c.close()
  await open('c')
  const after = nodes.c.status()
  assert.is(after.term, before.term)
  assert.is(after.commit, before.commit)
  for (let i = 0; i < 3; i++) { for (const id of ids) nodes[id].tick(); await pump() }
  assert.equal(applied.c, ['x', 'y'], 'c re-applies its committed log from index 2 after the restart')
  for (const id of ids) await stores[id].close()
})

test.after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})

test.run()
