import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { S3_KEYS_MAX, toInternalPath } from '@dfs/api'
import type { MetadataOp, MetadataView, S3KeyRecord, TenantInfo } from '@dfs/api'
import { decodeCbor, encodeCbor } from '../../src/codec.js'
import { MetadataStateMachine } from '../../src/state-machine/index.js'
import { groupOfShard, shardOfPath } from '../../src/shards/index.js'
import { errorName, extent, machine, member, prng, putFile, stateOf, uuid } from './fixtures.js'
import { throwsNamed } from '../throws-named.js'

const test = suite('state machine: explicit directories, ComposeFile, file metadata, S3 keys')

/** Every file path under `dir`, by walking the listing (what a reader sees). */
function walk (v: MetadataView, dir = '/'): string[] {
  const out: string[] = []
  for (const e of v.list(dir)) {
    if (e.type === 'dir') out.push(...walk(v, e.path))
    else out.push(e.path)
  }
  return out
}

const usageOf = (t: TenantInfo[]): Array<{ name: string, usedBytes: number, usedFiles: number }> =>
  t.map(({ name, usedBytes, usedFiles }) => ({ name, usedBytes, usedFiles }))

function usageByWalk (sm: MetadataStateMachine, tenants: string[]): Array<{ name: string, usedBytes: number, usedFiles: number }> {
  return tenants.map((name) => {
    const root = toInternalPath(name, '/')
    const files = sm.isDirectory(root) ? walk(sm.view, root) : []
    return { name, usedBytes: files.reduce((s, p) => s + (sm.getFile(p)?.size ?? 0), 0), usedFiles: files.length }
  })
}

const tenant = (name: string, quotaFiles: number | null = null, quotaBytes: number | null = null): MetadataOp =>
  ({ type: 'PutTenant', tenant: { name, quotaBytes, quotaFiles, requestRate: null }, create: true })

test('MakeDir: parents made implicit, idempotent, the directory outlives its entries; RemoveDir prunes the implicit ones above', () => {
  const { sm, apply } = machine()
  assert.ok(apply({ type: 'MakeDir', path: '/a/b/c' }).ok)
  assert.ok(apply({ type: 'MakeDir', path: '/a/b/c' }).ok)
  assert.equal(sm.list('/a/b'), [{ path: '/a/b/c', name: 'c', type: 'dir', size: 0 }])
  assert.ok(apply(putFile('/a/b/c/f', [extent(1)])).ok)
  assert.ok(apply({ type: 'DeleteFile', path: '/a/b/c/f' }).ok)
  assert.equal(sm.list('/a/b/c'), [])
  assert.is(errorName(apply({ type: 'RemoveDir', path: '/a/b' })), 'DirectoryNotEmpty')
  assert.ok(apply({ type: 'RemoveDir', path: '/a/b/c' }).ok)
  assert.equal(sm.list('/'), [], 'the implicit parents went with it')
  assert.is(sm.counts().dirs, 1)
  assert.is(errorName(apply({ type: 'RemoveDir', path: '/a/b/c' })), 'NotFound')
  // a directory with explicit parents keeps them
  assert.ok(apply({ type: 'MakeDir', path: '/p' }).ok)
  assert.ok(apply({ type: 'MakeDir', path: '/p/q' }).ok)
  assert.ok(apply({ type: 'RemoveDir', path: '/p/q' }).ok)
  assert.equal(sm.list('/'), [{ path: '/p', name: 'p', type: 'dir', size: 0 }])
  assert.is(errorName(apply({ type: 'MakeDir', path: '/a/../b' })), 'InvalidArgument')
})

test('a renamed directory takes its explicit directories along, the empty ones too; a file renamed out leaves an explicit one', () => {
  const { sm, apply } = machine()
  assert.ok(apply({ type: 'MakeDir', path: '/r/d/empty' }).ok)
  assert.ok(apply({ type: 'MakeDir', path: '/r/d/full' }).ok)
  assert.ok(apply({ type: 'MakeDir', path: '/r/d' }).ok)
  assert.ok(apply(putFile('/r/d/full/f', [extent(1)])).ok)
  assert.ok(apply(putFile('/r/d/implicit/g', [extent(2)])).ok)
  assert.ok(apply({ type: 'RenameFile', from: '/r/d', to: '/r/e/moved' }).ok)
  assert.is(sm.isDirectory('/r/d'), false)
  assert.equal(sm.list('/r/e/moved').map((e) => [e.name, e.size]), [['empty', 0], ['full', 1], ['implicit', 1]])
  assert.ok(apply({ type: 'RenameFile', from: '/r/e/moved/full/f', to: '/r/f' }).ok)
  assert.equal(sm.list('/r/e/moved/full'), [], 'an explicit directory stays when a rename takes its last file')
  assert.ok(apply({ type: 'RenameFile', from: '/r/e/moved/implicit/g', to: '/r/g' }).ok)
  assert.is(sm.isDirectory('/r/e/moved/implicit'), false, 'an implicit one goes')
  // the moved tree is the same after a restore
  assert.equal(stateOf(MetadataStateMachine.restore(sm.snapshot())), stateOf(sm))
  assert.ok(apply({ type: 'RemoveDir', path: '/r/e/moved/empty' }).ok)
  assert.ok(apply({ type: 'RemoveDir', path: '/r/e/moved/full' }).ok)
  assert.ok(apply({ type: 'RemoveDir', path: '/r/e/moved' }).ok)
  assert.equal(sm.list('/r').map((e) => e.name), ['f', 'g'])
})

test('tenants: directories need the tenant and count against no quota; its root cannot be made; a tenant holding directories stays', () => {
  const { sm, apply } = machine()
  const inT = (p: string): string => toInternalPath('t', p)
  assert.is(errorName(apply({ type: 'MakeDir', path: inT('/d') })), 'NotFound')
  assert.ok(apply(tenant('t', 1)).ok)
  assert.is(errorName(apply({ type: 'MakeDir', path: inT('/') })), 'InvalidArgument')
  for (let i = 0; i < 5; i++) assert.ok(apply({ type: 'MakeDir', path: inT(`/d${i}`) }).ok)
  assert.ok(apply(putFile(inT('/d0/f'), [extent(1)])).ok, 'directories took none of the one file allowed')
  assert.equal(usageOf(sm.tenants()), [{ name: 't', usedBytes: 10, usedFiles: 1 }])
  assert.ok(apply({ type: 'DeleteFile', path: inT('/d0/f') }).ok)
  assert.is(errorName(apply({ type: 'RemoveTenant', name: 't' })), 'FailedPrecondition')
  for (let i = 0; i < 5; i++) assert.ok(apply({ type: 'RemoveDir', path: inT(`/d${i}`) }).ok)
  assert.ok(apply({ type: 'RemoveTenant', name: 't' }).ok)
})

test('ComposeFile: the extents move, nothing is freed but a replaced file; usage keeps its bytes and loses files', () => {
  const { sm, apply } = machine()
  const inT = (p: string): string => toInternalPath('t', p)
  assert.ok(apply(tenant('t', 4, 100)).ok)
  assert.ok(apply(putFile(inT('/u/1'), [extent(1, 10), extent(2, 10)])).ok)
  assert.ok(apply(putFile(inT('/u/2'), [extent(3, 5)])).ok)
  assert.ok(apply(putFile(inT('/obj'), [extent(4, 7)])).ok)
  assert.equal(usageOf(sm.tenants()), [{ name: 't', usedBytes: 32, usedFiles: 3 }])
  const r = apply({ type: 'ComposeFile', to: inT('/obj'), parts: [inT('/u/1'), inT('/u/2')], mtimeMs: 9, replace: true })
  assert.ok(r.ok)
  assert.equal(r.ok && r.freed?.map((e) => e.id), [uuid(4)])
  assert.equal(r.ok && r.file, { path: inT('/obj'), size: 25, mtimeMs: 9, version: 2, extents: [uuid(1), uuid(2), uuid(3)] })
  assert.equal(usageOf(sm.tenants()), [{ name: 't', usedBytes: 25, usedFiles: 1 }])
  assert.equal(usageOf(sm.tenants()), usageByWalk(sm, ['t']))
  assert.is(sm.isDirectory(inT('/u')), false, 'the parts\' directory went with them')
  assert.is(sm.counts().extents, 3)
  // across namespaces or top-level directories: refused
  assert.ok(apply(putFile('/plain/p', [extent(5)])).ok)
  assert.is(errorName(apply({ type: 'ComposeFile', to: inT('/x'), parts: ['/plain/p'], mtimeMs: 1 })), 'InvalidArgument')
  assert.is(errorName(apply({ type: 'ComposeFile', to: '/other/x', parts: ['/plain/p'], mtimeMs: 1 })), 'InvalidArgument')
  assert.is(errorName(apply({ type: 'ComposeFile', to: inT('/'), parts: [inT('/obj')], mtimeMs: 1 })), 'InvalidArgument')
  assert.is(errorName(apply({ type: 'ComposeFile', to: '/plain/x', parts: ['/plain/p'], mtimeMs: 1, replace: 'yes' })), 'InvalidArgument')
  assert.is(errorName(apply({ type: 'ComposeFile', to: '/plain/x', parts: ['/plain/p'], mtimeMs: -1 })), 'InvalidArgument')
  assert.is(errorName(apply({ type: 'ComposeFile', to: '/plain/x', parts: Array.from({ length: 10_001 }, (_, i) => `/plain/${i}`), mtimeMs: 1 })), 'InvalidArgument')
  assert.is(errorName(apply({ type: 'ComposeFile', to: '/plain/x', parts: ['/plain/p'], mtimeMs: 1, meta: { etag: 'NOPE' } })), 'InvalidArgument')
  // a compose of one part is a rename that sets mtime and metadata
  const one = apply({ type: 'ComposeFile', to: '/plain/x', parts: ['/plain/p'], mtimeMs: 3, meta: { contentType: 'a/b' } })
  assert.equal(one.ok && one.file, { path: '/plain/x', size: 10, mtimeMs: 3, version: 1, extents: [uuid(5)], meta: { contentType: 'a/b' } })
})

test('deterministic: puts, deletes, renames, directories and composes give the same results and state on two replicas, exact usage, and a restore of that state', () => {
  for (const seed of [1, 7, 99]) {
    const rnd = prng(seed)
    const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)]
    const top = ['/a', toInternalPath('t', '/')]
    const randomPath = (root = pick(top)): string => root + '/' + Array.from({ length: 1 + Math.floor(rnd() * 2) }, () => pick(['x', 'y', 'z'])).join('/')
    const ops: MetadataOp[] = [tenant('t', 30, 2000)]
    for (let i = 0; i < 800; i++) {
      const r = rnd()
      if (r < 0.35) {
        const n = Math.floor(rnd() * 100)
        // some files are put where composes take their parts from
        const path = rnd() < 0.4 ? `${pick(top)}/p/${Math.floor(rnd() * 4)}` : randomPath()
        ops.push({ ...putFile(path, [extent(n, 1 + (n % 13))], i), ...(rnd() < 0.3 ? { meta: { etag: `${i}` } } : {}) })
      } else if (r < 0.45) {
        ops.push({ type: 'DeleteFile', path: randomPath() })
      } else if (r < 0.6) {
        ops.push({ type: 'MakeDir', path: randomPath() })
      } else if (r < 0.7) {
        ops.push({ type: 'RemoveDir', path: randomPath() })
      } else if (r < 0.8) {
        const root = pick(top)
        ops.push({ type: 'RenameFile', from: randomPath(root), to: randomPath(root), replace: rnd() < 0.5 })
      } else {
        const root = pick(top)
        const parts = Array.from({ length: 1 + Math.floor(rnd() * 2) }, () => `${root}/p/${Math.floor(rnd() * 4)}`)
        ops.push({ type: 'ComposeFile', to: randomPath(root), parts, mtimeMs: i, replace: rnd() < 0.7 })
      }
    }
    const a = machine()
    const b = machine()
    const done = new Map<string, number>()
    for (const op of ops) {
      const ra = a.apply(op)
      assert.equal(b.apply(structuredClone(op)), ra, `seed ${seed}`)
      if (ra.ok) done.set(op.type, (done.get(op.type) ?? 0) + 1)
      assert.equal(usageOf(a.sm.tenants()), usageByWalk(a.sm, ['t']), `seed ${seed}: usage after ${op.type}`)
    }
    for (const type of ['MakeDir', 'RemoveDir', 'ComposeFile']) assert.ok((done.get(type) ?? 0) > 5, `seed ${seed}: ${done.get(type) ?? 0} ${type} succeeded`)
    const bytes = a.sm.snapshot()
    assert.equal(b.sm.snapshot(), bytes, `seed ${seed}`)
    const back = MetadataStateMachine.restore(bytes)
    assert.equal(back.snapshot(), bytes, `seed ${seed}: a restore rebuilds the same state`)
    assert.equal(usageOf(back.tenants()), usageOf(a.sm.tenants()))
    // every extent belongs to exactly one file
    const listed = walk(a.sm.view).flatMap((p) => a.sm.getFile(p)?.extents ?? [])
    assert.is(new Set(listed).size, listed.length, `seed ${seed}: no extent is listed twice`)
    assert.equal([...listed].sort(), a.sm.extentIds().sort(), `seed ${seed}: no extent is left without a file`)
  }
})

test('scope: MakeDir, RemoveDir and ComposeFile go to the data group of their path; S3 keys to the system group', () => {
  const GROUPS = 3
  const nameIn = (group: number): string => { for (let i = 0; ; i++) if (groupOfShard(shardOfPath(`/d${i}`), GROUPS) === group) return `d${i}` }
  const g1 = new MetadataStateMachine({ kind: 'data', group: 1, groups: GROUPS })
  const mine = `/${nameIn(1)}`
  const theirs = `/${nameIn(2)}`
  assert.is(g1.apply({ type: 'MakeDir', path: `${mine}/x` }, 1).ok, true)
  assert.is(g1.apply({ type: 'MakeDir', path: `${theirs}/x` }, 2).ok, false)
  const rm = g1.apply({ type: 'RemoveDir', path: `${theirs}/x` }, 3)
  assert.is(!rm.ok && rm.error.name, 'WrongShard')
  const compose = g1.apply({ type: 'ComposeFile', to: `${theirs}/x`, parts: [`${theirs}/y`], mtimeMs: 1 }, 4)
  assert.is(!compose.ok && compose.error.name, 'WrongShard')
  const key: S3KeyRecord = { accessKeyId: 'DFSAAAAAAAAAAAAAAAAA', secretAccessKey: 'x'.repeat(40), user: 'u', createdAtMs: 1 }
  const put = g1.apply({ type: 'PutS3Key', key }, 5)
  assert.is(!put.ok && put.error.name, 'WrongShard')
  const sys = new MetadataStateMachine({ kind: 'system' })
  assert.is(sys.apply({ type: 'SetRole', peer: 'u', role: 'user' }, 1).ok, true)
  assert.is(sys.apply({ type: 'PutS3Key', key }, 2).ok, true)
  assert.is(sys.apply({ type: 'MakeDir', path: '/a' }, 3).ok, false)
})

test('S3 keys: at most S3_KEYS_MAX; the secret is in no error; revoking a role drops only that user\'s keys', () => {
  const { sm, apply } = machine()
  assert.ok(apply({ type: 'InitCluster', clusterId: 'c', createdAtMs: 1, admin: 'root', member: member('n1') }).ok)
  assert.ok(apply({ type: 'SetRole', peer: 'u', role: 'user' }).ok)
  const id = (n: number): string => 'DFS' + n.toString(36).toUpperCase().padStart(17, '0')
  const secret = 'S3cret+/'.repeat(5)
  for (let n = 0; n < S3_KEYS_MAX; n++) {
    assert.ok(apply({ type: 'PutS3Key', key: { accessKeyId: id(n), secretAccessKey: secret, user: n % 2 === 0 ? 'u' : 'root', createdAtMs: n } }).ok)
  }
  const full = apply({ type: 'PutS3Key', key: { accessKeyId: id(S3_KEYS_MAX), secretAccessKey: secret, user: 'u', createdAtMs: 1 } })
  assert.is(errorName(full), 'FailedPrecondition')
  const dup = apply({ type: 'PutS3Key', key: { accessKeyId: id(0), secretAccessKey: secret, user: 'u', createdAtMs: 1 } })
  assert.is(errorName(dup), 'AlreadyExists')
  assert.not.ok(JSON.stringify([full, dup]).includes(secret), 'no refusal carries the secret')
  assert.ok(apply({ type: 'SetRole', peer: 'u', role: null }).ok)
  assert.is(sm.s3Keys().length, S3_KEYS_MAX / 2)
  assert.ok(sm.s3Keys().every((k) => k.user === 'root'))
  const back = MetadataStateMachine.restore(sm.snapshot())
  assert.equal(back.s3Keys(), sm.s3Keys())
})

test('snapshots: files\' metadata and explicit directories round-trip; a version 4 snapshot restores with none; bad ones are refused', () => {
  const { sm, apply } = machine()
  assert.ok(apply({ ...putFile('/a/f', [extent(1)]), meta: { contentType: 'text/plain', user: { k: 'v' } } }).ok)
  assert.ok(apply({ type: 'MakeDir', path: '/a/d' }).ok)
  assert.ok(apply({ type: 'MakeDir', path: '/b' }).ok)
  const back = MetadataStateMachine.restore(sm.snapshot())
  assert.equal(back.getFile('/a/f')?.meta, { contentType: 'text/plain', user: { k: 'v' } })
  assert.equal(stateOf(back), stateOf(sm))
  assert.ok(back.isDirectory('/b'))
  const snap = decodeCbor(sm.snapshot()) as Record<string, any>
  const v4: Record<string, any> = { ...snap, v: 4, files: snap.files.map(({ meta: _, ...f }: Record<string, unknown>) => f) }
  delete v4.dirs
  delete v4.s3Keys
  const old = MetadataStateMachine.restore(encodeCbor(v4))
  assert.is(old.getFile('/a/f')?.meta, undefined)
  assert.is(old.isDirectory('/b'), false)
  assert.equal(old.list('/a').map((e) => e.name), ['f'])
  for (const dirs of [['/a/f/x'], ['/a/f'], ['/b', '/b'], ['/'], ['b'], [toInternalPath('t', '/')]]) {
    throwsNamed(() => MetadataStateMachine.restore(encodeCbor({ ...snap, dirs })), 'InvalidArgument')
  }
  throwsNamed(() => MetadataStateMachine.restore(encodeCbor({ ...snap, files: [{ ...snap.files[0], meta: { etag: 'XX' } }] })), 'InvalidArgument')
})

test.run()
