import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { DirEntry, FileRecord, MetadataResult } from '@dfs/api'
import { MetadataStateMachine } from '../../src/state-machine/index.js'
import { decodeCbor, encodeCbor, encodeOp, decodeOp } from '../../src/codec.js'
import { extent, member, putFile, randomOps, uuid } from './fixtures.js'
import { throwsNamed } from '../throws-named.js'

function run (seed: number, count: number): { sm: MetadataStateMachine, results: MetadataResult[] } {
  const sm = new MetadataStateMachine()
  const results = randomOps(seed, count).map((op, i) => sm.apply(op, i + 1))
  return { sm, results }
}


/** What list(dir) must return, computed by scanning every file (the slow, obvious way). */
function naiveList (files: FileRecord[], dir: string): DirEntry[] | string {
  if (files.some((f) => f.path === dir)) {
    return 'NotADirectory'
  }
  const prefix = dir === '/' ? '/' : dir + '/'
  const entries = new Map<string, DirEntry>()
  const below = new Map<string, Set<string>>()
  for (const f of files) {
    if (!f.path.startsWith(prefix)) {
      continue
    }
    const rest = f.path.slice(prefix.length).split('/')
    const name = rest[0]
    if (rest.length === 1) {
      entries.set(name, { path: prefix + name, name, type: 'file', size: f.size })
    } else {
      const set = below.get(name) ?? new Set()
      set.add(rest[1])
      below.set(name, set)
    }
  }
  for (const [name, set] of below) {
    entries.set(name, { path: prefix + name, name, type: 'dir', size: set.size })
  }
  if (entries.size === 0 && dir !== '/') {
    return 'NotFound'
  }
  return [...entries.values()].sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
}

test('two machines fed the same ops give byte-identical snapshots and equal results', () => {
  for (const seed of [1, 2, 3, 42, 1234]) {
    const a = run(seed, 1500)
    const b = run(seed, 1500)
    assert.equal(a.sm.snapshot(), b.sm.snapshot(), `seed ${seed}`)
    assert.equal(a.results, b.results, `seed ${seed}`)
    assert.ok(a.results.some((r) => r.ok) && a.results.some((r) => !r.ok), 'the mix has accepted and rejected ops')
  }
})

test('ops that went through the codec apply exactly like the originals', () => {
  const ops = randomOps(7, 1000)
  const a = new MetadataStateMachine()
  const b = new MetadataStateMachine()
  ops.forEach((op, i) => {
    assert.equal(b.apply(decodeOp(encodeOp(op)), i + 1), a.apply(op, i + 1))
  })
  assert.equal(a.snapshot(), b.snapshot())
})

test('restore(snapshot) gives the same state, the same bytes and the same future', () => {
  for (const seed of [5, 6, 7]) {
    const ops = randomOps(seed, 2000)
    const a = new MetadataStateMachine()
    ops.slice(0, 1000).forEach((op, i) => a.apply(op, i + 1))
    const bytes = a.snapshot()
    const b = MetadataStateMachine.restore(bytes)
    assert.equal(b.snapshot(), bytes)
    assert.is(b.appliedIndex(), 1000)
    assert.equal(b.cluster(), a.cluster())
    assert.equal(b.members(), a.members())
    assert.equal(b.roles(), a.roles())
    assert.equal([...b.extentIds()].sort(), [...a.extentIds()].sort())
    assert.equal(b.list('/'), a.list('/'))
    assert.equal(b.counts(), a.counts())
    ops.slice(1000).forEach((op, i) => {
      assert.equal(b.apply(op, 1001 + i), a.apply(op, 1001 + i), `seed ${seed} op ${1001 + i}`)
    })
    assert.equal(b.snapshot(), a.snapshot())
  }
})

test('snapshots do not depend on insertion order', () => {
  const a = new MetadataStateMachine()
  const b = new MetadataStateMachine()
  a.apply(putFile('/x', [extent(1)]), 1)
  a.apply(putFile('/y', [extent(2)]), 2)
  a.apply({ type: 'PutMember', member: member('n2') }, 3)
  a.apply({ type: 'PutMember', member: member('n1') }, 4)
  b.apply({ type: 'PutMember', member: member('n1') }, 1)
  b.apply(putFile('/y', [extent(2)]), 2)
  b.apply({ type: 'PutMember', member: member('n2') }, 3)
  b.apply(putFile('/x', [extent(1)]), 4)
  assert.equal(a.snapshot(), b.snapshot())
})

test('list agrees with a naive scan after every step of a random run', () => {
  for (const seed of [11, 12, 13]) {
    const sm = new MetadataStateMachine()
    const ops = randomOps(seed, 800)
    const dirs = ['/', '/a', '/b', '/c', '/dir', '/a/a', '/a/b', '/dir/c', '/b/dir', '/a/a/a']
    ops.forEach((op, i) => {
      sm.apply(op, i + 1)
      if (i % 10 !== 0) {
        return
      }
      const files = (decodeCbor(sm.snapshot()) as { files: FileRecord[] }).files
      for (const dir of dirs) {
        const expected = naiveList(files, dir)
        if (typeof expected === 'string') {
          throwsNamed(() => sm.list(dir), expected)
        } else {
          assert.equal(sm.list(dir), expected, `seed ${seed} step ${i} dir ${dir}`)
        }
      }
      // every extent a file lists exists; no extent is listed twice
      const listed = files.flatMap((f) => f.extents)
      assert.is(new Set(listed).size, listed.length)
      for (const id of listed) {
        assert.ok(sm.getExtent(id))
      }
    })
  }
})

test('restore rejects bytes that are not a snapshot', () => {
  throwsNamed(() => MetadataStateMachine.restore(Uint8Array.of(0xff, 0x00)), 'MalformedFrame')
  throwsNamed(() => MetadataStateMachine.restore(encodeCbor([1, 2])), 'InvalidArgument')
  const good = new MetadataStateMachine()
  good.apply(putFile('/a/b', [extent(1)]), 1)
  const snap = decodeCbor(good.snapshot()) as Record<string, any>
  const bad = (mutate: (s: Record<string, any>) => void): Uint8Array => {
    const copy = structuredClone(snap)
    mutate(copy)
    return encodeCbor(copy)
  }
  for (const bytes of [
    bad((s) => { s.v = 99 }),
    bad((s) => { s.scope = { kind: 'system' } }), // taken in another scope
    bad((s) => { s.scope = { kind: 'data', group: 3, groups: 2 } }),
    bad((s) => { s.tokens = [{ id: 'nothex' }] }),
    bad((s) => { s.appliedIndex = -1 }),
    bad((s) => { s.extents = [] }), // the file lists a missing extent
    bad((s) => { s.files.push({ ...s.files[0], path: '/a' }) }), // /a is a dir
    bad((s) => { s.files.push({ ...s.files[0], path: '/a/b/c', extents: [] , size: 0 }) }), // under a file
    bad((s) => { s.v = 6; s.files.push({ ...s.files[0], path: '/z' }) }), // extent of two files before shared extents
    bad((s) => { s.transfers = { out: [{ tx: uuid(9), from: '/none', to: '/x/y', node: 'n1', createdAtMs: 1 }], in: [] } }), // a transfer without its file
    bad((s) => { s.transfers = { out: [], in: [{ tx: 'nope', from: '/a/b', to: '/x/y', accepted: true, createdAtMs: 1 }] } }),
    bad((s) => { s.files[0].size = 11 }),
    bad((s) => { s.files[0].path = 'a/b' }), // not canonical
    bad((s) => { s.files[0].version = 0 }),
    bad((s) => { s.extents.push(s.extents[0]) }),
    bad((s) => { s.roles = [['alice', 'root']] }),
    bad((s) => { s.members = [member('n1'), member('n1')] }),
    bad((s) => { s.cluster = { clusterId: '' , createdAtMs: 0 } })
  ]) {
    throwsNamed(() => MetadataStateMachine.restore(bytes), 'InvalidArgument')
  }
  assert.equal(MetadataStateMachine.restore(good.snapshot()).getFile('/a/b')?.extents, [uuid(1)])
})

test('a version 3 snapshot (before users had tenants) restores: grants cluster-wide, no tenants, audit or key', () => {
  const sm = new MetadataStateMachine()
  sm.apply({ type: 'InitCluster', clusterId: 'c1', createdAtMs: 5, admin: 'root', member: member('n1') }, 1)
  sm.apply({ type: 'SetRole', peer: 'bob', role: 'readonly' }, 2)
  sm.apply({ type: 'SetConfig', key: 'replicationFactor', value: 2 }, 3)
  sm.apply(putFile('/a/b', [extent(1)]), 4)
  // the version 3 encoding: roles as [peer, role] pairs; no tenants, audit or cluster key
  const v3 = decodeCbor(sm.snapshot()) as Record<string, any>
  v3.v = 3
  v3.roles = v3.roles.map((r: unknown[]) => r.slice(0, 2))
  delete v3.tenants
  delete v3.audit
  delete v3.clusterKey
  const restored = MetadataStateMachine.restore(encodeCbor(v3))
  assert.equal(restored.users(), [{ id: 'bob', role: 'readonly', tenant: null }, { id: 'root', role: 'admin', tenant: null }])
  assert.equal(restored.tenants(), [])
  assert.equal(restored.audit().entries, [])
  assert.is(restored.clusterKey(), undefined)
  assert.equal(restored.cluster(), { clusterId: 'c1', createdAtMs: 5 })
  assert.is(restored.config().replicationFactor, 2)
  assert.equal(restored.getFile('/a/b'), sm.getFile('/a/b'))
  // and it snapshots as the current version, equal to the machine it came from
  assert.ok(Buffer.from(restored.snapshot()).equals(Buffer.from(sm.snapshot())))
  // a version 3 snapshot with version 4 grants is refused
  const mixed = { ...v3, roles: [['root', 'admin', null]] }
  throwsNamed(() => MetadataStateMachine.restore(encodeCbor(mixed)), 'InvalidArgument')
})

test.run()
