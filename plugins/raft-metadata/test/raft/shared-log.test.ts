import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtemp, readdir, rm, cp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LevelStorage, RaftLogDb, levelLogStore } from '../../src/raft/index.js'
import type { ConfState } from '../../src/raft/index.js'
import { migrateSeparateLogs } from '../../src/replicated/migrate-logs.js'
import { ent } from './helpers.js'

/** Several groups' logs in one LevelDB with group commit, and the migration from a LevelDB per group. */

const CS: ConfState = { voters: ['a', 'b', 'c'], learners: [] }
const noop = (): void => {}
const silent = Object.assign(noop, { error: noop, trace: noop, enabled: false })
const dirs: string[] = []
async function tempDir (): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'dfs-raft-log-'))
  dirs.push(d)
  return d
}
test.after(async () => { for (const d of dirs) await rm(d, { recursive: true, force: true }) })

test('groups in one log keep their own entries and hard state; concurrent writes of different groups share batches', async () => {
  const dir = await tempDir()
  const log = await RaftLogDb.open(dir)
  const groups = await Promise.all([0, 1, 2].map(async (g) => await LevelStorage.openIn(log, `g${g}/`, { confState: CS })))
  const before = { ...log.stats }
  // each group writes 20 Readies one after another, the three groups at once
  await Promise.all(groups.map(async (s, g) => {
    for (let i = 2; i < 22; i++) await s.saveReady({ entries: [ent(i, 1 + g)], hardState: { term: 1 + g, vote: 'a', commit: i - 1 } })
  }))
  const writes = log.stats.writes - before.writes
  const batches = log.stats.batches - before.batches
  assert.is(writes, 60)
  assert.ok(batches < writes, `${writes} writes in ${batches} batches: concurrent groups share fsyncs`)
  for (const s of groups) await s.close()
  await log.close()

  const again = await RaftLogDb.open(dir)
  try {
    assert.ok(await again.has('g1/'))
    assert.not.ok(await again.has('g7/'))
    for (const g of [0, 1, 2]) {
      const s = await LevelStorage.openIn(again, `g${g}/`)
      assert.is(s.lastIndex(), 21, `group ${g}`)
      assert.equal(s.entries(2, 22).map((e) => e.term), Array(20).fill(1 + g), `group ${g} reads only its own entries`)
      assert.equal(s.initialState().hardState, { term: 1 + g, vote: 'a', commit: 20 })
      await s.close()
    }
  } finally {
    await again.close()
  }
})

/** Legacy layout: a LevelDB per group (`raft`, `raft-g1` …), each with some entries. */
async function legacyNode (dir: string, groups: number): Promise<void> {
  for (let g = 0; g <= groups; g++) {
    // the LevelDB these builds wrote (LevelStorage.open makes a write-ahead log now)
    const s = await LevelStorage.openIn(new RaftLogDb(await levelLogStore(join(dir, g === 0 ? 'raft' : `raft-g${g}`))), '', { confState: CS }, true)
    await s.saveReady({ entries: [ent(2, 5), ent(3, 5 + g)], hardState: { term: 5 + g, vote: 'b', commit: 3 } })
    await s.close()
  }
}

test('migration moves every group of the old layout into the shared log and removes the old directories', async () => {
  const dir = await tempDir()
  await legacyNode(dir, 3)
  assert.is(await migrateSeparateLogs(dir, silent), 4)
  assert.equal((await readdir(dir)).sort(), ['raft-log'])
  const log = await RaftLogDb.open(join(dir, 'raft-log'))
  try {
    for (let g = 0; g <= 3; g++) {
      const s = await LevelStorage.openIn(log, `g${g}/`)
      assert.equal(s.entries(2, 4).map((e) => [e.index, e.term]), [[2, 5], [3, 5 + g]])
      assert.equal(s.initialState().hardState, { term: 5 + g, vote: 'b', commit: 3 })
      assert.equal(s.initialState().confState, CS)
      await s.close()
    }
  } finally {
    await log.close()
  }
  assert.is(await migrateSeparateLogs(dir, silent), 0, 'nothing left to migrate')
})

test('migration after a crash: a half-copied result is redone; old directories left after the rename are removed', async () => {
  const dir = await tempDir()
  await legacyNode(dir, 1)
  const pristine = await tempDir()
  await cp(dir, pristine, { recursive: true })
  // crash before the rename: a partial .migrating directory with garbage in it
  const partial = await RaftLogDb.open(join(dir, 'raft-log.migrating'))
  await partial.write([{ type: 'put', key: 'g0/m/hs', value: new Uint8Array([1, 2, 3]) }], true)
  await partial.close()
  assert.is(await migrateSeparateLogs(dir, silent), 2)
  const log = await RaftLogDb.open(join(dir, 'raft-log'))
  const s = await LevelStorage.openIn(log, 'g0/')
  assert.equal(s.initialState().hardState, { term: 5, vote: 'b', commit: 3 }, 'copied afresh, the garbage is gone')
  await s.close()
  await log.close()
  // crash after the rename, before the old directories were removed
  await cp(join(pristine, 'raft'), join(dir, 'raft'), { recursive: true })
  assert.is(await migrateSeparateLogs(dir, silent), 0)
  assert.equal((await readdir(dir)).sort(), ['raft-log'])
})

test.run()
