import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { EXTENT_SIZE_MAX, INLINE_FILE_BYTES_MAX } from '@dfs/api'
import type { MetadataOp, MetadataResult } from '@dfs/api'
import { MetadataStateMachine } from '../../src/state-machine/index.js'
import { decodeCbor, encodeCbor } from '../../src/codec.js'
import { checksumOf, extent, member, putFile, uuid } from './fixtures.js'
import { throwsNamed } from '../throws-named.js'

/** The snapshot without its applied index: equal iff the states are equal. */
function stateBytes (sm: MetadataStateMachine): Uint8Array {
  const snap = decodeCbor(sm.snapshot()) as Record<string, unknown>
  delete snap.appliedIndex
  return encodeCbor(snap)
}

function apply (sm: MetadataStateMachine, op: unknown): MetadataResult {
  return sm.apply(op as MetadataOp, sm.appliedIndex() + 1)
}

function ok (sm: MetadataStateMachine, op: unknown): MetadataResult & { ok: true } {
  const result = apply(sm, op)
  if (!result.ok) {
    assert.unreachable(`expected ${JSON.stringify(op).slice(0, 200)} to succeed, got ${result.error.name}: ${result.error.message}`)
  }
  return result as MetadataResult & { ok: true }
}

/** Applies `op`, expects the error `name`, and checks that nothing but the applied index changed. */
function rejects (sm: MetadataStateMachine, op: unknown, name: string): void {
  const before = stateBytes(sm)
  const index = sm.appliedIndex() + 1
  const result = apply(sm, op)
  if (result.ok) {
    assert.unreachable(`expected ${JSON.stringify(op).slice(0, 200)} to fail with ${name}`)
  } else {
    assert.is(result.error.name, name, result.error.message)
    assert.type(result.error.message, 'string')
    assert.type(result.error.details, 'object')
  }
  assert.is(result.index, index)
  assert.is(sm.appliedIndex(), index, 'a rejected op still consumes its index')
  assert.equal(stateBytes(sm), before, 'a rejected op changes nothing')
}


const init: MetadataOp = { type: 'InitCluster', clusterId: 'c-1', createdAtMs: 1700000000000, admin: 'alice', member: member('n1') }

// ------------------------------------------------------------------------------------------------
// empty state and indices

test('an empty state machine has an empty root and nothing else', () => {
  const sm = new MetadataStateMachine()
  assert.equal(sm.list('/'), [])
  assert.is(sm.appliedIndex(), 0)
  assert.is(sm.cluster(), undefined)
  assert.equal(sm.members(), [])
  assert.equal([...sm.extentIds()], [])
  assert.is(sm.getFile('/a'), undefined)
})

test('apply asserts that indices increase (the caller\'s invariant)', () => {
  const sm = new MetadataStateMachine()
  sm.apply(init, 5)
  assert.is(sm.appliedIndex(), 5)
  assert.throws(() => sm.apply(init, 5))
  assert.throws(() => sm.apply(init, 4))
  assert.throws(() => sm.apply(init, 6.5))
  // indices may jump (after a snapshot, Raft applies from the snapshot's index)
  sm.apply({ type: 'PutMember', member: member('n2') }, 9)
  assert.is(sm.appliedIndex(), 9)
})

test('results carry the index of the op', () => {
  const sm = new MetadataStateMachine()
  assert.is(sm.apply(init, 3).index, 3)
  assert.is(sm.apply(init, 4).index, 4)
})

// ------------------------------------------------------------------------------------------------
// cluster, members, roles

test('InitCluster sets the cluster record, adds the member and makes the admin an admin', () => {
  const sm = new MetadataStateMachine()
  const r = ok(sm, init)
  assert.equal(r, { ok: true, index: 1 })
  assert.equal(sm.cluster(), { clusterId: 'c-1', createdAtMs: 1700000000000 })
  assert.equal(sm.members(), [member('n1')])
  assert.is(sm.role('alice'), 'admin')
  assert.is(sm.role('bob'), undefined)
})

test('InitCluster works only once', () => {
  const sm = new MetadataStateMachine()
  ok(sm, init)
  rejects(sm, { ...init, clusterId: 'other', admin: 'mallory' }, 'AlreadyExists')
  assert.is(sm.cluster()?.clusterId, 'c-1')
  assert.is(sm.role('mallory'), undefined)
})

test('InitCluster validates every field', () => {
  const sm = new MetadataStateMachine()
  rejects(sm, { ...init, clusterId: '' }, 'InvalidArgument')
  rejects(sm, { ...init, clusterId: 'x'.repeat(129) }, 'InvalidArgument')
  rejects(sm, { ...init, clusterId: 7 }, 'InvalidArgument')
  rejects(sm, { ...init, createdAtMs: -1 }, 'InvalidArgument')
  rejects(sm, { ...init, createdAtMs: 1.5 }, 'InvalidArgument')
  rejects(sm, { ...init, createdAtMs: '1' }, 'InvalidArgument')
  rejects(sm, { ...init, admin: '' }, 'InvalidArgument')
  rejects(sm, { ...init, admin: 'has space' }, 'InvalidArgument')
  rejects(sm, { ...init, member: null }, 'InvalidArgument')
  rejects(sm, { ...init, member: { ...member('n1'), addrs: 'x' } }, 'InvalidArgument')
  rejects(sm, { ...init, member: { ...member('n1'), addrs: [''] } }, 'InvalidArgument')
  rejects(sm, { ...init, member: { ...member('n1'), region: 'r'.repeat(65) } }, 'InvalidArgument')
  rejects(sm, { ...init, member: { ...member('n1'), name: 5 } }, 'InvalidArgument')
  assert.is(sm.cluster(), undefined)
})

test('PutMember adds and replaces; members() is sorted by id', () => {
  const sm = new MetadataStateMachine()
  ok(sm, { type: 'PutMember', member: member('n3') })
  ok(sm, { type: 'PutMember', member: member('n1') })
  ok(sm, { type: 'PutMember', member: { ...member('n3'), region: 'us', addrs: [] } })
  assert.equal(sm.members().map((m) => m.id), ['n1', 'n3'])
  assert.is(sm.members()[1].region, 'us')
  assert.equal(sm.members()[1].addrs, [])
})

test('PutMember keeps only known fields', () => {
  const sm = new MetadataStateMachine()
  ok(sm, { type: 'PutMember', member: { ...member('n1'), extra: 'x' } })
  assert.equal(Object.keys(sm.members()[0]).sort(), ['addrs', 'id', 'name', 'region'])
})

test('RemoveMember removes; a missing member is NotFound', () => {
  const sm = new MetadataStateMachine()
  ok(sm, { type: 'PutMember', member: member('n1') })
  ok(sm, { type: 'RemoveMember', id: 'n1' })
  assert.equal(sm.members(), [])
  rejects(sm, { type: 'RemoveMember', id: 'n1' }, 'NotFound')
  rejects(sm, { type: 'RemoveMember', id: 42 }, 'InvalidArgument')
})

test('SetRole sets, replaces and (with null) removes a role', () => {
  const sm = new MetadataStateMachine()
  ok(sm, { type: 'SetRole', peer: 'bob', role: 'user' })
  assert.is(sm.role('bob'), 'user')
  ok(sm, { type: 'SetRole', peer: 'bob', role: 'readonly' })
  assert.is(sm.role('bob'), 'readonly')
  ok(sm, { type: 'SetRole', peer: 'bob', role: null })
  assert.is(sm.role('bob'), undefined)
  rejects(sm, { type: 'SetRole', peer: 'bob', role: null }, 'NotFound')
  rejects(sm, { type: 'SetRole', peer: 'bob', role: 'root' }, 'InvalidArgument')
  rejects(sm, { type: 'SetRole', peer: 'bob' }, 'InvalidArgument')
  rejects(sm, { type: 'SetRole', peer: '', role: 'user' }, 'InvalidArgument')
  assert.equal(sm.roles(), [])
})

// ------------------------------------------------------------------------------------------------
// extents

test('CreateExtent creates a record and returns it; a second create is AlreadyExists', () => {
  const sm = new MetadataStateMachine()
  const r = ok(sm, { type: 'CreateExtent', extent: extent(1) })
  assert.equal(r.extent, extent(1))
  assert.equal(sm.getExtent(uuid(1)), extent(1))
  assert.equal([...sm.extentIds()], [uuid(1)])
  rejects(sm, { type: 'CreateExtent', extent: extent(1, 20) }, 'AlreadyExists')
})

test('CreateExtent validates the record', () => {
  const sm = new MetadataStateMachine()
  const e = extent(1)
  for (const bad of [
    null, [], 'x',
    { ...e, id: 'not-a-uuid' },
    { ...e, id: '0000000A-0000-4000-8000-00000000000B' },
    { ...e, size: -1 },
    { ...e, size: EXTENT_SIZE_MAX + 1 },
    { ...e, size: 1.5 },
    { ...e, size: '10' },
    { ...e, checksum: 'deadbeef' },
    { ...e, checksum: 'sha256:XYZ' },
    { ...e, checksum: 5 },
    { ...e, replicas: [] },
    { ...e, replicas: ['n1', 'n1'] },
    { ...e, replicas: 'n1' },
    { ...e, replicas: ['n1', 7] },
    { ...e, replicas: Array.from({ length: 17 }, (_, i) => `n${i}`) },
    { id: e.id, size: e.size, checksum: e.checksum }
  ]) {
    rejects(sm, { type: 'CreateExtent', extent: bad }, 'InvalidArgument')
  }
  ok(sm, { type: 'CreateExtent', extent: { ...e, size: EXTENT_SIZE_MAX } })
})

test('DeleteExtent removes a standalone extent and frees it', () => {
  const sm = new MetadataStateMachine()
  ok(sm, { type: 'CreateExtent', extent: extent(1) })
  const r = ok(sm, { type: 'DeleteExtent', id: uuid(1) })
  assert.equal(r.freed, [extent(1)])
  assert.is(sm.getExtent(uuid(1)), undefined)
  rejects(sm, { type: 'DeleteExtent', id: uuid(1) }, 'NotFound')
  rejects(sm, { type: 'DeleteExtent', id: 'nope' }, 'InvalidArgument')
})

test('DeleteExtent refuses an extent that a file references', () => {
  const sm = new MetadataStateMachine()
  ok(sm, putFile('/f', [extent(1)]))
  rejects(sm, { type: 'DeleteExtent', id: uuid(1) }, 'InvalidArgument')
  assert.ok(sm.getExtent(uuid(1)))
})

test('UpdateReplication replaces the replica set', () => {
  const sm = new MetadataStateMachine()
  ok(sm, { type: 'CreateExtent', extent: extent(1) })
  const r = ok(sm, { type: 'UpdateReplication', id: uuid(1), replicas: ['n4', 'n5'] })
  assert.equal(r.extent, { ...extent(1), replicas: ['n4', 'n5'] })
  assert.equal(sm.getExtent(uuid(1))?.replicas, ['n4', 'n5'])
  rejects(sm, { type: 'UpdateReplication', id: uuid(2), replicas: ['n4'] }, 'NotFound')
  rejects(sm, { type: 'UpdateReplication', id: uuid(1), replicas: [] }, 'InvalidArgument')
  rejects(sm, { type: 'UpdateReplication', id: uuid(1), replicas: ['n4', 'n4'] }, 'InvalidArgument')
  rejects(sm, { type: 'UpdateReplication', id: uuid(1) }, 'InvalidArgument')
})

test('UpdateReplication works on a file\'s extent', () => {
  const sm = new MetadataStateMachine()
  ok(sm, putFile('/f', [extent(1)]))
  ok(sm, { type: 'UpdateReplication', id: uuid(1), replicas: ['n9'] })
  assert.equal(sm.getExtent(uuid(1))?.replicas, ['n9'])
  // the file still owns it: a delete frees the updated record
  assert.equal(ok(sm, { type: 'DeleteFile', path: '/f' }).freed, [{ ...extent(1), replicas: ['n9'] }])
})

test('MigrateExtent replaces from with to, in place', () => {
  const sm = new MetadataStateMachine()
  ok(sm, { type: 'CreateExtent', extent: extent(1) })
  const r = ok(sm, { type: 'MigrateExtent', id: uuid(1), from: 'n2', to: 'n7' })
  assert.equal(r.extent?.replicas, ['n1', 'n7', 'n3'])
  assert.equal(sm.getExtent(uuid(1))?.replicas, ['n1', 'n7', 'n3'])
})

test('MigrateExtent rejects a missing source, a present target, a no-op and a missing extent', () => {
  const sm = new MetadataStateMachine()
  ok(sm, { type: 'CreateExtent', extent: extent(1) })
  rejects(sm, { type: 'MigrateExtent', id: uuid(1), from: 'n9', to: 'n7' }, 'NotFound')
  rejects(sm, { type: 'MigrateExtent', id: uuid(1), from: 'n1', to: 'n2' }, 'AlreadyExists')
  rejects(sm, { type: 'MigrateExtent', id: uuid(1), from: 'n1', to: 'n1' }, 'InvalidArgument')
  rejects(sm, { type: 'MigrateExtent', id: uuid(2), from: 'n1', to: 'n7' }, 'NotFound')
  rejects(sm, { type: 'MigrateExtent', id: uuid(1), from: 'n1' }, 'InvalidArgument')
  rejects(sm, { type: 'MigrateExtent', id: uuid(1), from: 'n1', to: '' }, 'InvalidArgument')
})

// ------------------------------------------------------------------------------------------------
// files

test('PutFile creates version 1, its extents and its implicit directories', () => {
  const sm = new MetadataStateMachine()
  const r = ok(sm, putFile('/docs/2024/a.bin', [extent(1, 10), extent(2, 5)], 1234))
  assert.equal(r.file, { path: '/docs/2024/a.bin', size: 15, mtimeMs: 1234, version: 1, extents: [uuid(1), uuid(2)] })
  assert.equal(r.freed, [])
  assert.equal(sm.getFile('/docs/2024/a.bin'), r.file)
  assert.equal(sm.getExtent(uuid(2)), extent(2, 5))
  assert.equal(sm.list('/'), [{ path: '/docs', name: 'docs', type: 'dir', size: 1 }])
  assert.equal(sm.list('/docs'), [{ path: '/docs/2024', name: '2024', type: 'dir', size: 1 }])
  assert.equal(sm.list('/docs/2024'), [{ path: '/docs/2024/a.bin', name: 'a.bin', type: 'file', size: 15 }])
})

test('PutFile normalizes the path', () => {
  const sm = new MetadataStateMachine()
  const r = ok(sm, putFile('docs/a/', [extent(1)]))
  assert.is(r.file?.path, '/docs/a')
  assert.ok(sm.getFile('/docs/a'))
  assert.ok(sm.getFile('docs/a'))
  for (const bad of ['', '/a/../b', '/a/./b', '/a//b', 'a\0b', 7, null, '/' + 'x'.repeat(256)]) {
    rejects(sm, putFile(bad as string, [extent(9)]), 'InvalidArgument')
  }
})

test('PutFile atomically replaces a file: version + 1, old extents freed and removed', () => {
  const sm = new MetadataStateMachine()
  ok(sm, putFile('/f', [extent(1), extent(2)]))
  const r = ok(sm, putFile('/f', [extent(3, 7)], 2000))
  assert.equal(r.file, { path: '/f', size: 7, mtimeMs: 2000, version: 2, extents: [uuid(3)] })
  assert.equal(r.freed, [extent(1), extent(2)])
  assert.is(sm.getExtent(uuid(1)), undefined)
  assert.is(sm.getExtent(uuid(2)), undefined)
  assert.equal([...sm.extentIds()], [uuid(3)])
  assert.is(ok(sm, putFile('/f', [extent(4)])).file?.version, 3)
  assert.equal(sm.list('/'), [{ path: '/f', name: 'f', type: 'file', size: 10 }])
})

test('PutFile with inline bytes: the state keeps the records and none of the bytes', () => {
  const sm = new MetadataStateMachine()
  const bytes = new Uint8Array(10).fill(7)
  const plain = new MetadataStateMachine()
  ok(plain, putFile('/small', [extent(1)]))
  const r = ok(sm, { ...putFile('/small', [extent(1)]), inline: [bytes] })
  assert.equal(r.file, plain.getFile('/small'))
  assert.equal(sm.getExtent(uuid(1)), extent(1))
  // the same state as the same put without the bytes: the snapshot holds no copy of them
  assert.equal(stateBytes(sm), stateBytes(plain))
  const max = new Uint8Array(INLINE_FILE_BYTES_MAX)
  ok(sm, { ...putFile('/max', [extent(2, INLINE_FILE_BYTES_MAX)]), inline: [max] })
})

test('PutFile with malformed inline bytes is rejected and changes nothing', () => {
  const sm = new MetadataStateMachine()
  ok(sm, putFile('/f', [extent(1)]))
  const two = [extent(2, 4), extent(3, 6)]
  rejects(sm, { ...putFile('/g', two), inline: [new Uint8Array(4)] }, 'InvalidArgument') // one short
  rejects(sm, { ...putFile('/g', two), inline: [new Uint8Array(4), new Uint8Array(5)] }, 'InvalidArgument') // wrong size
  rejects(sm, { ...putFile('/g', two), inline: [new Uint8Array(4), 'xxxxxx'] }, 'InvalidArgument') // not bytes
  rejects(sm, { ...putFile('/g', two), inline: 'bytes' }, 'InvalidArgument')
  const big = INLINE_FILE_BYTES_MAX + 1
  rejects(sm, { ...putFile('/g', [extent(4, big)]), inline: [new Uint8Array(big)] }, 'InvalidArgument')
  rejects(sm, { ...putFile('/g', [extent(4, 5000), extent(5, 5000)]), inline: [new Uint8Array(5000), new Uint8Array(5000)] }, 'InvalidArgument')
  assert.is(sm.getFile('/g'), undefined)
})

test('PutFile that keeps some extents frees only the others', () => {
  const sm = new MetadataStateMachine()
  ok(sm, putFile('/f', [extent(1), extent(2)]))
  const r = ok(sm, putFile('/f', [extent(2, 10, ['n5']), extent(3)]))
  assert.equal(r.freed, [extent(1)])
  assert.equal(sm.getExtent(uuid(2))?.replicas, ['n5'])
  assert.equal([...sm.extentIds()].sort(), [uuid(2), uuid(3)])
})

test('PutFile of an empty file has no extents', () => {
  const sm = new MetadataStateMachine()
  const r = ok(sm, putFile('/empty', []))
  assert.is(r.file?.size, 0)
  assert.equal(r.file?.extents, [])
  rejects(sm, { type: 'PutFile', path: '/empty2', size: 1, mtimeMs: 0, extents: [] }, 'InvalidArgument')
})

test('PutFile validates size, extents and mtime', () => {
  const sm = new MetadataStateMachine()
  rejects(sm, { ...putFile('/f', [extent(1)]), size: 11 }, 'InvalidArgument')
  rejects(sm, { ...putFile('/f', [extent(1)]), size: -1 }, 'InvalidArgument')
  rejects(sm, { ...putFile('/f', [extent(1)]), mtimeMs: -5 }, 'InvalidArgument')
  rejects(sm, { ...putFile('/f', [extent(1)]), mtimeMs: Number.NaN }, 'InvalidArgument')
  rejects(sm, putFile('/f', [extent(1), extent(1)]), 'InvalidArgument')
  rejects(sm, putFile('/f', [{ ...extent(1), replicas: [] }]), 'InvalidArgument')
  rejects(sm, putFile('/f', [{ ...extent(1), replicas: ['n1', 'n1'] }]), 'InvalidArgument')
  rejects(sm, { ...putFile('/f', []), extents: 'x' }, 'InvalidArgument')
  rejects(sm, { ...putFile('/f', []), extents: [null] }, 'InvalidArgument')
  rejects(sm, { type: 'PutFile', path: '/f', mtimeMs: 0, extents: [] }, 'InvalidArgument')
  assert.is(sm.getFile('/f'), undefined)
})

test('PutFile refuses extents that another file references', () => {
  const sm = new MetadataStateMachine()
  ok(sm, putFile('/a', [extent(1)]))
  rejects(sm, putFile('/b', [extent(2), extent(1)]), 'AlreadyExists')
  assert.is(sm.getFile('/b'), undefined)
  assert.is(sm.getExtent(uuid(2)), undefined, 'a rejected put creates no extent')
})

test('PutFile adopts a standalone extent with the same bytes, refuses one with other bytes', () => {
  const sm = new MetadataStateMachine()
  ok(sm, { type: 'CreateExtent', extent: extent(1) })
  ok(sm, { type: 'CreateExtent', extent: extent(2) })
  rejects(sm, putFile('/f', [{ ...extent(2), checksum: checksumOf(99) }]), 'AlreadyExists')
  rejects(sm, putFile('/f', [extent(2, 11)]), 'AlreadyExists')
  ok(sm, putFile('/f', [extent(1, 10, ['n8'])]))
  assert.equal(sm.getExtent(uuid(1))?.replicas, ['n8'])
  rejects(sm, { type: 'DeleteExtent', id: uuid(1) }, 'InvalidArgument')
})

test('PutFile conflicts: a directory at the path is IsADirectory, a file above it NotADirectory', () => {
  const sm = new MetadataStateMachine()
  ok(sm, putFile('/a/b/c', [extent(1)]))
  rejects(sm, putFile('/', [extent(2)]), 'IsADirectory')
  rejects(sm, putFile('/a', [extent(2)]), 'IsADirectory')
  rejects(sm, putFile('/a/b', [extent(2)]), 'IsADirectory')
  rejects(sm, putFile('/a/b/c/d', [extent(2)]), 'NotADirectory')
  rejects(sm, putFile('/a/b/c/d/e/f', [extent(2)]), 'NotADirectory')
  ok(sm, putFile('/a/b2', [extent(2)]))
  ok(sm, putFile('/a/b/c2', [extent(3)]))
})

test('DeleteFile removes the file and its extents, frees them and prunes empty directories', () => {
  const sm = new MetadataStateMachine()
  ok(sm, putFile('/x/y/z', [extent(1), extent(2)]))
  ok(sm, putFile('/x/w', [extent(3)]))
  const r = ok(sm, { type: 'DeleteFile', path: '/x/y/z' })
  assert.equal(r.freed, [extent(1), extent(2)])
  assert.is(sm.getFile('/x/y/z'), undefined)
  assert.equal([...sm.extentIds()], [uuid(3)])
  throwsNamed(() => sm.list('/x/y'), 'NotFound')
  assert.is(sm.view.isDirectory('/x/y'), false, 'a pruned directory is none')
  assert.equal(sm.list('/x'), [{ path: '/x/w', name: 'w', type: 'file', size: 10 }])
  assert.is(sm.view.isDirectory('/x'), true)
  assert.is(sm.view.isDirectory('x/'), true, 'paths are normalized')
  assert.is(sm.view.isDirectory('/x/w'), false, 'a file is not a directory')
  ok(sm, { type: 'DeleteFile', path: 'x/w' })
  assert.equal(sm.list('/'), [])
  assert.is(sm.view.isDirectory('/'), true, '/ always is')
  assert.is(sm.view.isDirectory('/x'), false)
  throwsNamed(() => sm.list('/x'), 'NotFound')
  // the path can hold a directory again, and vice versa
  ok(sm, putFile('/x', [extent(4)]))
  ok(sm, { type: 'DeleteFile', path: '/x' })
  ok(sm, putFile('/x/y/z', [extent(5)]))
})

test('DeleteFile: missing is NotFound, a directory (or /) is IsADirectory', () => {
  const sm = new MetadataStateMachine()
  ok(sm, putFile('/d/f', [extent(1)]))
  rejects(sm, { type: 'DeleteFile', path: '/nope' }, 'NotFound')
  rejects(sm, { type: 'DeleteFile', path: '/d/f/g' }, 'NotFound')
  rejects(sm, { type: 'DeleteFile', path: '/d' }, 'IsADirectory')
  rejects(sm, { type: 'DeleteFile', path: '/' }, 'IsADirectory')
  rejects(sm, { type: 'DeleteFile', path: '/d/../f' }, 'InvalidArgument')
  rejects(sm, { type: 'DeleteFile' }, 'InvalidArgument')
})

// ------------------------------------------------------------------------------------------------
// list

test('list: entries sorted by name, dirs once with their child count, files with their bytes', () => {
  const sm = new MetadataStateMachine()
  ok(sm, putFile('/b.txt', [extent(1, 3)]))
  ok(sm, putFile('/a/1', [extent(2, 4)]))
  ok(sm, putFile('/a/2', [extent(3, 5)]))
  ok(sm, putFile('/a/sub/3', [extent(4, 6)]))
  ok(sm, putFile('/C', [extent(5, 7)]))
  ok(sm, putFile('/a b', []))
  assert.equal(sm.list('/'), [
    { path: '/C', name: 'C', type: 'file', size: 7 },
    { path: '/a', name: 'a', type: 'dir', size: 3 },
    { path: '/a b', name: 'a b', type: 'file', size: 0 },
    { path: '/b.txt', name: 'b.txt', type: 'file', size: 3 }
  ])
  assert.equal(sm.list('/a').map((e) => [e.name, e.type, e.size]), [['1', 'file', 4], ['2', 'file', 5], ['sub', 'dir', 1]])
  assert.equal(sm.list('a/'), sm.list('/a'))
  // the sorted cache follows changes
  ok(sm, putFile('/a/0', [extent(6, 1)]))
  ok(sm, { type: 'DeleteFile', path: '/a/2' })
  assert.equal(sm.list('/a').map((e) => e.name), ['0', '1', 'sub'])
  // a replace changes the size in the listing
  ok(sm, putFile('/a/1', [extent(7, 9)]))
  assert.equal(sm.list('/a')[1], { path: '/a/1', name: '1', type: 'file', size: 9 })
})

test('list: a file is NotADirectory, nothing there is NotFound, a bad path InvalidArgument', () => {
  const sm = new MetadataStateMachine()
  ok(sm, putFile('/d/f', [extent(1)]))
  throwsNamed(() => sm.list('/d/f'), 'NotADirectory')
  throwsNamed(() => sm.list('/e'), 'NotFound')
  throwsNamed(() => sm.list('/d/f/g'), 'NotFound')
  throwsNamed(() => sm.list('/d/../x'), 'InvalidArgument')
})

test('list is not a scan: 20,000 files, 2,000 lists of a small directory stay fast', () => {
  const sm = new MetadataStateMachine()
  for (let i = 0; i < 20000; i++) {
    ok(sm, putFile(`/big/${i}`, []))
  }
  ok(sm, putFile('/small/a', []))
  for (let i = 0; i < 2000; i++) {
    assert.is(sm.list('/small').length, 1)
  }
  assert.is(sm.list('/big').length, 20000)
  assert.equal(sm.list('/'), [
    { path: '/big', name: 'big', type: 'dir', size: 20000 },
    { path: '/small', name: 'small', type: 'dir', size: 1 }
  ])
})

// ------------------------------------------------------------------------------------------------
// untrusted input

test('malformed ops are rejected with InvalidArgument and change nothing', () => {
  const sm = new MetadataStateMachine()
  ok(sm, init)
  ok(sm, putFile('/f', [extent(1)]))
  for (const bad of [null, undefined, 7, 'PutFile', [], { type: 'Nope' }, { type: 7 }, {},
    { type: 'PutMember' }, { type: 'CreateExtent', extent: 'x' }, { type: 'DeleteFile', path: ['f'] },
    Object.create({ type: 'DeleteFile', path: '/f' })]) {
    rejects(sm, bad, 'InvalidArgument')
  }
  assert.ok(sm.getFile('/f'), 'an inherited (prototype) field is not a field')
})

test('returned records are frozen: a caller cannot change the state through them', () => {
  const sm = new MetadataStateMachine()
  const r = ok(sm, putFile('/f', [extent(1)]))
  assert.throws(() => { (r.file as { size: number }).size = 99 })
  assert.throws(() => { r.file?.extents.push('x') })
  assert.throws(() => { sm.getExtent(uuid(1))?.replicas.push('n9') })
  assert.is(sm.getFile('/f')?.size, 10)
})

test('the op object is not retained: mutating it after apply changes nothing', () => {
  const sm = new MetadataStateMachine()
  const e = extent(1)
  const op = putFile('/f', [e])
  ok(sm, op)
  e.replicas.push('n9')
  e.size = 1
  assert.equal(sm.getExtent(uuid(1)), extent(1))
})

test('view exposes reads only', () => {
  const sm = new MetadataStateMachine()
  ok(sm, putFile('/f', [extent(1)]))
  assert.is((sm.view as unknown as { apply?: unknown }).apply, undefined)
  assert.is(sm.view.getFile('/f')?.size, 10)
  assert.is(sm.view.appliedIndex(), 1)
  assert.equal(sm.view.list('/'), sm.list('/'))
})

test.run()
