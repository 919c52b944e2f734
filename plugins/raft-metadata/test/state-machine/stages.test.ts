import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { STAGE_BATCH_MAX, STAGES_MAX, toInternalPath } from '@dfs/api'
import type { ExtentRecord } from '@dfs/api'
import { decodeCbor, encodeCbor } from '../../src/codec.js'
import { MetadataStateMachine } from '../../src/state-machine/index.js'
import { FILE_EXTENTS_MAX } from '../../src/state-machine/limits.js'
import { groupOfShard, shardOfPath } from '../../src/shards/index.js'
import { errorName, extent, machine, member, putFile, stateOf, uuid } from './fixtures.js'
import { throwsNamed } from '../throws-named.js'

const test = suite('state machine: staged commits (StageExtents, PutFile { stage }, DropStage)')

const STAGE = uuid(0xa000)

function extents (from: number, count: number, size = 10): ExtentRecord[] {
  return Array.from({ length: count }, (_, i) => extent(from + i, size))
}

function stageOp (from: number, count: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { type: 'StageExtents', stage: STAGE, path: '/d/f', node: 'n1', createdAtMs: 100, extents: extents(from, count), ...extra }
}

test('several batches then a commit: the file is the stage\'s extents then the op\'s, atomically', () => {
  const { sm, apply } = machine()
  assert.ok(apply(putFile('/d/f', [extent(1)])).ok)
  for (let b = 0; b < 3; b++) assert.ok(apply(stageOp(1000 + b * STAGE_BATCH_MAX, STAGE_BATCH_MAX)).ok)
  // between stages the old version is what readers see, and every staged extent is referenced
  assert.equal(sm.getFile('/d/f')?.extents, [uuid(1)])
  assert.is(sm.stages()[0].extents.length, 3 * STAGE_BATCH_MAX)
  assert.ok(sm.extentIds().includes(uuid(1000 + 3 * STAGE_BATCH_MAX - 1)))
  const tail = extents(9000, 2)
  const total = 3 * STAGE_BATCH_MAX + 2
  const r = apply({ type: 'PutFile', path: '/d/f', size: total * 10, mtimeMs: 5, extents: tail, stage: STAGE })
  assert.ok(r.ok)
  const file = sm.getFile('/d/f')
  assert.is(file?.extents.length, total)
  assert.is(file?.extents[0], uuid(1000))
  assert.is(file?.extents[total - 1], uuid(9001))
  assert.is(file?.version, 2)
  assert.equal(r.ok ? r.freed : undefined, [extent(1)])
  assert.equal(sm.stages(), [])
})

test('a refused commit leaves the stage; DropStage frees its extents; both refuse unknown stages and other paths', () => {
  const { sm, apply } = machine()
  assert.ok(apply({ type: 'MakeDir', path: '/d/dir' }).ok)
  assert.ok(apply(stageOp(10, 3, { path: '/d/dir' })).ok)
  const before = stateOf(sm)
  assert.is(errorName(apply({ type: 'PutFile', path: '/d/dir', size: 30, mtimeMs: 1, extents: [], stage: STAGE })), 'IsADirectory')
  assert.is(errorName(apply({ type: 'PutFile', path: '/d/other', size: 30, mtimeMs: 1, extents: [], stage: STAGE })), 'InvalidArgument')
  assert.is(errorName(apply({ type: 'PutFile', path: '/d/dir', size: 30, mtimeMs: 1, extents: [], stage: uuid(0xb000) })), 'NotFound')
  assert.is(errorName(apply({ type: 'PutFile', path: '/d/dir', size: 30, mtimeMs: 1, extents: [], stage: 'not-a-uuid' })), 'InvalidArgument')
  assert.is(errorName(apply({ type: 'DropStage', stage: STAGE, path: '/d/other' })), 'InvalidArgument')
  assert.is(errorName(apply({ type: 'DropStage', stage: uuid(0xb000), path: '/d/dir' })), 'NotFound')
  assert.is(errorName(apply({ type: 'DeleteExtent', id: uuid(10) })), 'InvalidArgument')
  assert.is(errorName(apply({ type: 'CreateExtent', extent: extent(10) })), 'AlreadyExists')
  assert.equal(stateOf(sm), before, 'the refusals changed nothing')
  const r = apply({ type: 'DropStage', stage: STAGE, path: '/d/dir' })
  assert.equal(r.ok ? r.freed : undefined, extents(10, 3))
  assert.equal([sm.stages(), sm.extentIds()], [[], []])
})

test('limits: a batch of 1..STAGE_BATCH_MAX, a stage of FILE_EXTENTS_MAX, STAGES_MAX stages per group', () => {
  const { sm, apply } = machine()
  assert.is(errorName(apply(stageOp(1, 0))), 'InvalidArgument')
  assert.is(errorName(apply(stageOp(1, STAGE_BATCH_MAX + 1))), 'InvalidArgument')
  assert.is(errorName(apply(stageOp(1, 1, { createdAtMs: -1 }))), 'InvalidArgument')
  assert.is(errorName(apply(stageOp(1, 1, { path: '/' }))), 'IsADirectory')
  assert.is(errorName(apply(stageOp(1, 2, { extents: [extent(1), extent(1)] }))), 'InvalidArgument')
  // a stage full up to FILE_EXTENTS_MAX refuses one more
  let n = 0
  while (n < FILE_EXTENTS_MAX) {
    assert.ok(apply(stageOp(100_000 + n, STAGE_BATCH_MAX)).ok)
    n += STAGE_BATCH_MAX
  }
  assert.is(errorName(apply(stageOp(900_000, 1))), 'FailedPrecondition')
  // a commit of more than FILE_EXTENTS_MAX extents in all is refused
  assert.is(errorName(apply({ type: 'PutFile', path: '/d/f', size: (n + 1) * 10, mtimeMs: 1, extents: [extent(900_001)], stage: STAGE })), 'InvalidArgument')
  assert.ok(apply({ type: 'DropStage', stage: STAGE, path: '/d/f' }).ok)
  assert.is(sm.extentIds().length, 0)
  for (let i = 0; i < STAGES_MAX; i++) assert.ok(apply({ ...stageOp(2_000_000 + i, 1), stage: uuid(3_000_000 + i) }).ok)
  assert.is(errorName(apply({ ...stageOp(1, 1), stage: uuid(4_000_000) })), 'FailedPrecondition')
  // an existing stage still takes more
  assert.ok(apply({ ...stageOp(5_000_000, 1), stage: uuid(3_000_000) }).ok)
})

test('a snapshot carries stages; one of version 5 restores with none; bad stages in a snapshot are refused', () => {
  const { sm, apply } = machine()
  assert.ok(apply(putFile('/d/g', [extent(1)])).ok)
  assert.ok(apply(stageOp(10, 2)).ok)
  const snap = sm.snapshot()
  const back = MetadataStateMachine.restore(snap)
  assert.equal(back.stages(), sm.stages())
  assert.equal(stateOf(back), stateOf(sm))
  // the restored stage goes on and commits
  const m = machine(back)
  assert.ok(m.apply(stageOp(12, 1)).ok)
  assert.ok(m.apply({ type: 'PutFile', path: '/d/f', size: 30, mtimeMs: 1, extents: [], stage: STAGE }).ok)
  assert.equal(back.getFile('/d/f')?.extents, [uuid(10), uuid(11), uuid(12)])

  const decoded = decodeCbor(snap) as Record<string, any>
  const { stages: _, ...rest } = decoded
  const v5 = { ...rest, v: 5, extents: decoded.extents.filter((e: ExtentRecord) => e.id === uuid(1)) }
  assert.equal(MetadataStateMachine.restore(encodeCbor(v5)).stages(), [])
  const bad = (edit: (s: Record<string, any>) => void): void => {
    const s = structuredClone(decoded)
    edit(s)
    throwsNamed(() => MetadataStateMachine.restore(encodeCbor(s)), 'InvalidArgument')
  }
  bad((s) => { s.stages[0].extents.push(uuid(999)) }) // a missing extent
  bad((s) => { s.stages[0].extents.push(uuid(1)) }) // a file's
  bad((s) => { s.stages.push({ ...s.stages[0] }) }) // twice
  bad((s) => { s.stages[0].path = '/d/../f' })
  bad((s) => { s.stages[0].stage = 'x' })
})

test('scope: stages route by path; a data group refuses another\'s stage (WrongShard)', () => {
  const groups = 3
  const path = '/stage-scope/f'
  const owner = groupOfShard(shardOfPath(toInternalPath(null, path)), groups)
  const other = owner === 1 ? 2 : 1
  const mine = machine(new MetadataStateMachine({ kind: 'data', group: owner, groups }))
  const theirs = machine(new MetadataStateMachine({ kind: 'data', group: other, groups }))
  const system = machine(new MetadataStateMachine({ kind: 'system' }))
  assert.ok(system.apply({ type: 'PutMember', member: member('n1') }).ok)
  const op = stageOp(1, 1, { path })
  assert.is(errorName(theirs.apply(op)), 'WrongShard')
  assert.is(errorName(system.apply(op)), 'WrongShard')
  assert.ok(mine.apply(op).ok)
  assert.is(errorName(theirs.apply({ type: 'DropStage', stage: STAGE, path })), 'WrongShard')
  assert.ok(mine.apply({ type: 'DropStage', stage: STAGE, path }).ok)
})

test.run()
