import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { TRANSFERS_MAX, toInternalPath } from '@dfs/api'
import type { ExtentRecord, MetadataResult } from '@dfs/api'
import { MetadataStateMachine } from '../../src/state-machine/index.js'
import { groupOfShard, shardOfPath } from '../../src/shards/index.js'
import { errorName, extent, machine, member, prng, putFile, stateOf, uuid } from './fixtures.js'

const test = suite('state machine: shared extents (CopyFile) and transfers across groups')

const ids = (records: ExtentRecord[] | undefined): string[] => (records ?? []).map((e) => e.id).sort()

test('CopyFile shares the extents: removing either file frees nothing until the last one goes', () => {
  const { sm, apply } = machine()
  assert.ok(apply(putFile('/b/src', [extent(1), extent(2)], 10)).ok)
  const copied = apply({ type: 'CopyFile', from: '/b/src', to: '/b/dst', mtimeMs: 20 })
  assert.ok(copied.ok)
  assert.equal(copied.ok && copied.file, { path: '/b/dst', size: 20, mtimeMs: 20, version: 1, extents: [uuid(1), uuid(2)] })
  assert.equal(copied.ok && copied.freed, [])
  assert.is(sm.extentRefs(uuid(1)), 2)
  // a DeleteExtent of a shared extent is refused
  assert.is(errorName(apply({ type: 'DeleteExtent', id: uuid(1) })), 'InvalidArgument')
  const first = apply({ type: 'DeleteFile', path: '/b/src' })
  assert.equal(first.ok && first.freed, [], 'the copy still lists them')
  assert.ok(sm.getExtent(uuid(1)) !== undefined)
  // a put over the copy keeping one extent frees only the other
  const put = apply(putFile('/b/dst', [extent(2), extent(3)], 30))
  assert.equal(put.ok && ids(put.freed), [uuid(1)])
  const last = apply({ type: 'DeleteFile', path: '/b/dst' })
  assert.equal(last.ok && ids(last.freed), [uuid(2), uuid(3)])
  assert.equal(sm.extentIds(), [])
})

test('CopyFile: metadata kept or replaced, versions, conflicts and quotas as a put', () => {
  const { sm, apply } = machine()
  assert.ok(apply({ ...putFile('/b/src', [extent(1)]), meta: { contentType: 'text/plain', user: { k: 'v' } } }).ok)
  assert.ok(apply({ type: 'CopyFile', from: '/b/src', to: '/b/kept', mtimeMs: 1 }).ok)
  assert.equal(sm.getFile('/b/kept')?.meta, { contentType: 'text/plain', user: { k: 'v' } })
  assert.ok(apply({ type: 'CopyFile', from: '/b/src', to: '/b/kept', mtimeMs: 2, meta: { contentType: 'a/b' }, replace: true }).ok)
  assert.equal([sm.getFile('/b/kept')?.meta, sm.getFile('/b/kept')?.version], [{ contentType: 'a/b' }, 2])
  assert.ok(apply(putFile('/b/dir/x', [extent(2)])).ok)
  const before = stateOf(sm)
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ from: '/b/src', to: '/b/kept', replace: false }, 'AlreadyExists'],
    [{ from: '/b/src', to: '/b/dir' }, 'IsADirectory'],
    [{ from: '/b/dir', to: '/b/y' }, 'IsADirectory'],
    [{ from: '/b/none', to: '/b/y' }, 'NotFound'],
    [{ from: '/b/src', to: '/b/src/under' }, 'NotADirectory'],
    [{ from: '/b/src', to: '/b/src' }, 'InvalidArgument'],
    [{ from: '/', to: '/b/y' }, 'InvalidArgument'],
    [{ from: '/b/src', to: '/b/y', replace: 'yes' }, 'InvalidArgument'],
    [{ from: '/b/src', to: toInternalPath('acme', '/y') }, 'InvalidArgument']
  ]
  for (const [fields, name] of cases) {
    assert.is(errorName(apply({ type: 'CopyFile', mtimeMs: 3, ...fields })), name, JSON.stringify(fields))
    assert.equal(stateOf(sm), before, `${JSON.stringify(fields)} changed nothing`)
  }
  // a tenant's quota counts the copy's bytes (and file)
  assert.ok(apply({ type: 'PutTenant', tenant: { name: 'acme', quotaBytes: 15, quotaFiles: null, requestRate: null }, create: true }).ok)
  const t = (p: string): string => toInternalPath('acme', p)
  assert.ok(apply(putFile(t('/a'), [extent(10)])).ok)
  assert.is(errorName(apply({ type: 'CopyFile', from: t('/a'), to: t('/b'), mtimeMs: 4 })), 'QuotaExceeded')
  assert.equal(sm.tenant('acme')?.usedBytes, 10)
})

test('compose of parts that share extents counts every reference; snapshots keep the counts', () => {
  const { sm, apply } = machine()
  assert.ok(apply(putFile('/b/p1', [extent(1)])).ok)
  assert.ok(apply({ type: 'CopyFile', from: '/b/p1', to: '/b/p2', mtimeMs: 1 }).ok)
  const composed = apply({ type: 'ComposeFile', to: '/b/whole', parts: ['/b/p1', '/b/p2'], mtimeMs: 2 })
  assert.ok(composed.ok)
  assert.equal(sm.getFile('/b/whole')?.extents, [uuid(1), uuid(1)])
  assert.is(sm.extentRefs(uuid(1)), 2)
  assert.ok(apply({ type: 'CopyFile', from: '/b/whole', to: '/b/again', mtimeMs: 3 }).ok)
  const restored = MetadataStateMachine.restore(sm.snapshot())
  assert.equal(stateOf(restored), stateOf(sm))
  assert.is(restored.extentRefs(uuid(1)), 4)
  const a = restored.apply({ type: 'DeleteFile', path: '/b/whole' }, sm.appliedIndex() + 1)
  assert.equal(a.ok && a.freed, [])
  const b = restored.apply({ type: 'DeleteFile', path: '/b/again' }, sm.appliedIndex() + 2)
  assert.equal(b.ok && ids(b.freed), [uuid(1)])
})

/** Two data groups of two, and a top-level name in each. */
function twoGroups (): { a: ReturnType<typeof machine>, b: ReturnType<typeof machine>, inA: string, inB: string } {
  const nameIn = (group: number): string => {
    for (let i = 0; ; i++) if (groupOfShard(shardOfPath(`/t${i}`), 2) === group) return `/t${i}`
  }
  return {
    a: machine(new MetadataStateMachine({ kind: 'data', group: 1, groups: 2 })),
    b: machine(new MetadataStateMachine({ kind: 'data', group: 2, groups: 2 })),
    inA: nameIn(1),
    inB: nameIn(2)
  }
}

const TX = uuid(0xbeef)

test('a transfer moves a file between groups: frozen, staged, accepted, finished; no extent freed anywhere', () => {
  const { a, b, inA, inB } = twoGroups()
  const from = `${inA}/f`
  const to = `${inB}/g`
  const records = [extent(1, 10), extent(2, 5)]
  assert.ok(a.apply({ ...putFile(from, records, 77), meta: { etag: 'abc' } }).ok)
  assert.ok(a.apply(putFile(from, records, 78)).ok) // version 2
  const begun = a.apply({ type: 'BeginTransfer', tx: TX, from, to, node: 'n1', createdAtMs: 5 })
  assert.ok(begun.ok)
  assert.equal(a.sm.transfers().out, [{ tx: TX, from, to, node: 'n1', createdAtMs: 5 }])
  // frozen: readable, but nothing changes it or its extents
  assert.ok(a.sm.getFile(from) !== undefined)
  const frozen = stateOf(a.sm)
  for (const op of [
    putFile(from, [extent(3)]),
    { type: 'DeleteFile', path: from },
    { type: 'RenameFile', from, to: `${inA}/h` },
    { type: 'RenameFile', from: inA, to: `${inA}2x` },
    { type: 'CopyFile', from, to: `${inA}/h`, mtimeMs: 1 },
    { type: 'ComposeFile', to: `${inA}/h`, parts: [from], mtimeMs: 1 },
    { type: 'UpdateReplication', id: uuid(1), replicas: ['n9'] },
    { type: 'StartMove', id: uuid(1), from: 'n1', to: 'n9' },
    { type: 'BeginTransfer', tx: uuid(0xbee0), from, to, node: 'n1', createdAtMs: 6 }
  ]) {
    const r = a.apply(op)
    assert.is(r.ok, false, op.type)
    if (op.type !== 'RenameFile' || op.from === from) assert.is(errorName(r), 'FailedPrecondition', op.type)
    assert.equal(stateOf(a.sm), frozen, `${op.type} changed nothing`)
  }
  assert.ok(a.sm.extentInTransfer(uuid(1)))
  // the target stages the records, then accepts
  assert.ok(b.apply({ type: 'StageExtents', stage: TX, path: to, node: 'n1', createdAtMs: 5, transfer: from, extents: records }).ok)
  assert.ok(b.sm.extentInTransfer(uuid(2)), 'staged for a transfer: not the live record yet')
  assert.is(errorName(b.apply({ ...putFile(to, []), size: 15, stage: TX })), 'InvalidArgument', 'a put cannot commit a transfer stage')
  const accept = { type: 'AcceptTransfer', tx: TX, from, to, size: 15, mtimeMs: 78, version: 2, createdAtMs: 5, meta: undefined }
  const accepted = b.apply(accept)
  assert.ok(accepted.ok)
  assert.equal(accepted.ok && accepted.file, { path: to, size: 15, mtimeMs: 78, version: 2, extents: [uuid(1), uuid(2)] })
  assert.equal(accepted.ok && accepted.accepted, true)
  assert.is(b.sm.extentInTransfer(uuid(1)), false, 'the target\'s record is live')
  // idempotent; a fence after the accept answers accepted
  assert.equal(b.apply(accept).ok, true)
  const fence = b.apply({ type: 'RefuseTransfer', tx: TX, from, to, createdAtMs: 9 })
  assert.equal(fence.ok && fence.accepted, true)
  // the source ends it: the file goes, nothing is freed
  const finished = a.apply({ type: 'FinishTransfer', tx: TX, from })
  assert.equal(finished.ok && finished.freed, [])
  assert.equal([a.sm.getFile(from), a.sm.extentIds(), a.sm.transfers().out], [undefined, [], []])
  assert.is(errorName(a.apply({ type: 'FinishTransfer', tx: TX, from })), 'NotFound')
  assert.ok(b.apply({ type: 'ForgetTransfer', tx: TX, to }).ok)
  assert.equal(b.sm.transfers().in, [])
  assert.equal(b.sm.getExtent(uuid(1)), extent(1, 10))
})

test('a refused transfer: the target\'s conflict aborts it; a fence before the accept refuses the accept; nothing freed', () => {
  const { a, b, inA, inB } = twoGroups()
  const from = `${inA}/f`
  const to = `${inB}/g`
  assert.ok(a.apply(putFile(from, [extent(1)])).ok)
  assert.ok(b.apply(putFile(to, [extent(9)])).ok)
  assert.ok(a.apply({ type: 'BeginTransfer', tx: TX, from, to, node: 'n1', createdAtMs: 5 }).ok)
  assert.ok(b.apply({ type: 'StageExtents', stage: TX, path: to, node: 'n1', createdAtMs: 5, transfer: from, extents: [extent(1)] }).ok)
  const accept = { type: 'AcceptTransfer', tx: TX, from, to, size: 10, mtimeMs: 1, version: 1, createdAtMs: 5 }
  assert.is(errorName(b.apply(accept)), 'AlreadyExists')
  // the coordinator (or whoever settles) fences and aborts
  const fence = b.apply({ type: 'RefuseTransfer', tx: TX, from, to, createdAtMs: 6 })
  assert.equal(fence.ok && [fence.accepted, fence.freed], [false, []])
  assert.is(b.sm.getExtent(uuid(1)), undefined, 'the staged copy of the record went')
  assert.is(errorName(b.apply({ ...accept, replace: true })), 'FailedPrecondition', 'a fenced transfer is never accepted')
  assert.ok(a.apply({ type: 'AbortTransfer', tx: TX, from }).ok)
  assert.ok(a.apply({ type: 'DeleteFile', path: from }).ok, 'thawed')
  assert.ok(b.apply({ type: 'ForgetTransfer', tx: TX, to }).ok)
  // a transfer stage dropped by the stale-stage check frees nothing either
  assert.ok(a.apply(putFile(from, [extent(2)])).ok)
  assert.ok(a.apply({ type: 'BeginTransfer', tx: uuid(0xbee1), from, to, node: 'n1', createdAtMs: 5 }).ok)
  assert.ok(b.apply({ type: 'StageExtents', stage: uuid(0xbee1), path: to, node: 'n1', createdAtMs: 5, transfer: from, extents: [extent(2)] }).ok)
  const dropped = b.apply({ type: 'DropStage', stage: uuid(0xbee1), path: to })
  assert.equal(dropped.ok && dropped.freed, [])
})

test('BeginTransfer refuses: shared extents, one group, directories, other namespaces, past TRANSFERS_MAX', () => {
  const { a, inA, inB } = twoGroups()
  assert.ok(a.apply(putFile(`${inA}/f`, [extent(1)])).ok)
  assert.ok(a.apply({ type: 'CopyFile', from: `${inA}/f`, to: `${inA}/c`, mtimeMs: 1 }).ok)
  assert.ok(a.apply(putFile(`${inA}/d/x`, [extent(2)])).ok)
  const begin = (from: string, to: string, tx = TX): MetadataResult => a.apply({ type: 'BeginTransfer', tx, from, to, node: 'n1', createdAtMs: 1 })
  assert.is(errorName(begin(`${inA}/f`, `${inB}/f`)), 'FailedPrecondition', 'shared with the copy')
  assert.is(errorName(begin(`${inA}/d/x`, `${inA}/y`)), 'InvalidArgument', 'one group: a rename')
  assert.is(errorName(begin(`${inA}/d`, `${inB}/d`)), 'IsADirectory')
  assert.is(errorName(begin(`${inA}/none`, `${inB}/d`)), 'NotFound')
  assert.is(errorName(begin(`${inA}/d/x`, toInternalPath('acme', '/x'))), 'InvalidArgument')
  assert.is(errorName(a.apply({ type: 'BeginTransfer', tx: TX, from: `${inB}/q`, to: `${inA}/q`, node: 'n1', createdAtMs: 1 })), 'WrongShard')
  // the `all` scope holds every group: it never transfers
  const all = machine()
  assert.ok(all.apply(putFile('/x/f', [extent(1)])).ok)
  assert.is(errorName(all.apply({ type: 'BeginTransfer', tx: TX, from: '/x/f', to: '/y/f', node: 'n1', createdAtMs: 1 })), 'InvalidArgument')
  // the bound
  for (let i = 0; i < TRANSFERS_MAX; i++) {
    assert.ok(a.apply(putFile(`${inA}/m/${i}`, [extent(1000 + i)])).ok)
    assert.ok(begin(`${inA}/m/${i}`, `${inB}/m/${i}`, uuid(0x10000 + i)).ok)
  }
  assert.ok(a.apply(putFile(`${inA}/m/last`, [extent(9999)])).ok)
  assert.is(errorName(begin(`${inA}/m/last`, `${inB}/m/last`, uuid(0x20000))), 'FailedPrecondition')
})

test('transfers survive snapshots on both sides, and a seeded mix of copies, puts and deletes keeps counts exact', () => {
  const { a, b, inA, inB } = twoGroups()
  assert.ok(a.apply(putFile(`${inA}/f`, [extent(1), extent(2)])).ok)
  assert.ok(a.apply({ type: 'BeginTransfer', tx: TX, from: `${inA}/f`, to: `${inB}/f`, node: 'n1', createdAtMs: 5 }).ok)
  assert.ok(b.apply({ type: 'StageExtents', stage: TX, path: `${inB}/f`, node: 'n1', createdAtMs: 5, transfer: `${inA}/f`, extents: [extent(1), extent(2)] }).ok)
  const ra = MetadataStateMachine.restore(a.sm.snapshot(), a.sm.scope)
  const rb = MetadataStateMachine.restore(b.sm.snapshot(), b.sm.scope)
  assert.equal(stateOf(ra), stateOf(a.sm))
  assert.equal(stateOf(rb), stateOf(b.sm))
  assert.ok(ra.extentInTransfer(uuid(1)) && rb.extentInTransfer(uuid(1)))
  assert.is(errorName(ra.apply({ type: 'DeleteFile', path: `${inA}/f` }, a.sm.appliedIndex() + 1)), 'FailedPrecondition', 'still frozen')
  const accepted = rb.apply({ type: 'AcceptTransfer', tx: TX, from: `${inA}/f`, to: `${inB}/f`, size: 20, mtimeMs: 1, version: 1, createdAtMs: 5 }, b.sm.appliedIndex() + 1)
  assert.ok(accepted.ok)
  const rb2 = MetadataStateMachine.restore(rb.snapshot(), rb.scope)
  assert.equal(rb2.transfers().in, [{ tx: TX, from: `${inA}/f`, to: `${inB}/f`, accepted: true, createdAtMs: 5 }])

  // a seeded mix: whatever the history, an extent's count is how many times current files list it
  const rnd = prng(7)
  const { sm, apply } = machine()
  apply({ type: 'PutMember', member: member('n1') })
  const paths = ['/m/a', '/m/b', '/m/c', '/m/d']
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)]
  let next = 1
  for (let i = 0; i < 2000; i++) {
    const r = rnd()
    if (r < 0.3) apply(putFile(pick(paths), Array.from({ length: Math.floor(rnd() * 3) }, () => extent(next++))))
    else if (r < 0.6) apply({ type: 'CopyFile', from: pick(paths), to: pick(paths), mtimeMs: i })
    else if (r < 0.75) apply({ type: 'DeleteFile', path: pick(paths) })
    else if (r < 0.9) apply({ type: 'ComposeFile', to: pick(paths), parts: [pick(paths)], mtimeMs: i, replace: true })
    else apply({ type: 'RenameFile', from: pick(paths), to: pick(paths), replace: true })
    const counts = new Map<string, number>()
    for (const p of paths) for (const x of sm.getFile(p)?.extents ?? []) counts.set(x, (counts.get(x) ?? 0) + 1)
    for (const x of sm.extentIds()) assert.is(sm.extentRefs(x), counts.get(x) ?? 0, `step ${i}: count of ${x}`)
    assert.is(sm.extentIds().length, counts.size, `step ${i}: no record outlives its last reference`)
  }
  assert.equal(stateOf(MetadataStateMachine.restore(sm.snapshot())), stateOf(sm))
})

test.run()
