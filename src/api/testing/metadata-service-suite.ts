/**
 * The conformance suite of the MetadataService contract (../metadata.ts). Every implementation runs
 * it on one started node: `metadataServiceSuite('local', makeHarness)`. It uses the public interface
 * only and matches errors on `.name`. It checks what any implementation must keep, whatever its
 * replication: the state machine's rules as seen through `propose` and `read`, typed refusals that
 * change nothing, read-your-writes, durability across a restart, and the refusal of calls after stop.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { AUDIT_RETENTION_MAX, AUDIT_RETENTION_MIN, CLUSTER_CONFIG_DEFAULTS } from '../index.js'
import type { ExtentRecord, JoinTokenRecord, MemberRecord, MetadataOp, MetadataService, MetadataView, S3KeyRecord } from '../index.js'
import { rejects } from './extent-store-suite.js'

/**
 * One started single-node service on a fresh directory, made for every test.
 *
 * - `service` is started and empty (no InitCluster yet); `nodeId` is the PeerId it runs as.
 * - `reopen` stops the current service (if it still runs) and starts a new instance over the same
 *   directory (a restart), sets `service` to it and returns it. The suite reads `harness.service`
 *   again after calling it.
 * - `cleanup` stops whatever runs and removes what the harness created; it must tolerate being called
 *   after a failed test and after the suite stopped the service itself.
 */
export interface MetadataServiceHarness {
  service: MetadataService
  nodeId: string
  reopen: () => Promise<MetadataService>
  cleanup: () => Promise<void>
}

const ADMIN = 'suite-admin'

/** A deterministic lower-case UUID for a small number. */
function uuid (n: number): string {
  return `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`
}

function extent (n: number, size: number, replicas: string[]): ExtentRecord {
  return { id: uuid(n), size, checksum: 'sha256:' + n.toString(16).padStart(64, '0'), replicas }
}

function memberOf (id: string): MemberRecord {
  return { id, name: 'suite-node', region: 'suite', addrs: ['/ip4/127.0.0.1/tcp/4001'] }
}

function putFile (path: string, extents: ExtentRecord[], mtimeMs = 1000): MetadataOp {
  return { type: 'PutFile', path, size: extents.reduce((s, e) => s + e.size, 0), mtimeMs, extents }
}

function token (id: string, createdAtMs: number, expiresAtMs: number, extra: Partial<JoinTokenRecord> = {}): JoinTokenRecord {
  return { id, secretHash: 'sha256:' + 'ab'.repeat(32), createdAtMs, expiresAtMs, createdBy: ADMIN, ...extra }
}

/** Everything the public view shows about files, extents, members, roles, tokens and settings (no indices). */
function stateOf (v: MetadataView, tokenIds: string[] = []): unknown {
  const files: unknown[] = []
  const dirs: string[] = []
  const walk = (dir: string): void => {
    for (const e of v.list(dir)) {
      if (e.type === 'dir') {
        dirs.push(e.path)
        walk(e.path)
      } else {
        files.push({ entry: e, file: v.getFile(e.path) })
      }
    }
  }
  walk('/')
  return {
    cluster: v.cluster(),
    members: [...v.members()].sort((a, b) => a.id < b.id ? -1 : 1),
    admin: v.role(ADMIN),
    config: v.config(),
    tokens: tokenIds.map((id) => v.joinToken(id) ?? null),
    files,
    dirs,
    extents: [...v.extentIds()].sort().map((id) => v.getExtent(id))
  }
}

export function metadataServiceSuite (name: string, make: () => Promise<MetadataServiceHarness>): void {
  const test = suite<{ h?: MetadataServiceHarness }>(`MetadataService contract: ${name}`, {})

  test.before.each(async (ctx) => {
    ctx.h = await make()
  })
  test.after.each(async (ctx) => {
    const h = ctx.h
    ctx.h = undefined
    await h?.cleanup()
  })

  const harness = (ctx: { h?: MetadataServiceHarness }): MetadataServiceHarness => {
    if (ctx.h === undefined) throw new Error('the harness was not made')
    return ctx.h
  }
  const init = async (h: MetadataServiceHarness): Promise<void> => {
    await h.service.propose({ type: 'InitCluster', clusterId: 'suite-cluster', createdAtMs: 1, admin: ADMIN, member: memberOf(h.nodeId) })
  }

  test('InitCluster, then the cluster record, its member, its admin and default settings are read; a second InitCluster is AlreadyExists', async (ctx) => {
    const h = harness(ctx)
    const s = h.service
    assert.is(await s.read((v) => v.cluster()), undefined, 'a fresh service has no cluster')
    const r = await s.propose({ type: 'InitCluster', clusterId: 'suite-cluster', createdAtMs: 7, admin: ADMIN, member: memberOf(h.nodeId) })
    assert.is(r.ok, true)
    assert.ok(Number.isSafeInteger(r.index) && r.index > 0, 'a result carries its log index')
    const seen = await s.read((v) => ({ cluster: v.cluster(), members: v.members(), role: v.role(ADMIN), other: v.role('nobody'), config: v.config() }))
    assert.is(seen.cluster?.clusterId, 'suite-cluster')
    assert.is(seen.cluster?.createdAtMs, 7)
    assert.equal(seen.members.map((m) => ({ id: m.id, name: m.name, region: m.region, addrs: m.addrs })), [memberOf(h.nodeId)])
    assert.is(seen.role, 'admin')
    assert.is(seen.other, undefined)
    assert.equal(seen.config, { ...CLUSTER_CONFIG_DEFAULTS })
    await rejects(s.propose({ type: 'InitCluster', clusterId: 'other', createdAtMs: 8, admin: 'x', member: memberOf('other-node') }), 'AlreadyExists')
    assert.is(await s.read((v) => v.cluster()?.clusterId), 'suite-cluster', 'the refused InitCluster changed nothing')
    assert.is(await s.read((v) => v.role('x')), undefined)
  })

  test('files: implicit directories appear and vanish with the files under them; list is sorted and typed', async (ctx) => {
    const s = harness(ctx).service
    await init(harness(ctx))
    const put = await s.propose(putFile('/docs/b/c.txt', [extent(1, 10, ['n1'])], 1234))
    assert.equal(put.file, { path: '/docs/b/c.txt', size: 10, mtimeMs: 1234, version: 1, extents: [uuid(1)] })
    await s.propose(putFile('/docs/a.txt', [extent(2, 3, ['n1']), extent(3, 4, ['n1'])]))
    await s.propose(putFile('/top', []))
    const seen = await s.read((v) => ({
      root: v.list('/'),
      docs: v.list('/docs'),
      b: v.list('/docs/b'),
      dirs: ['/', '/docs', '/docs/b', '/docs/b/c.txt', '/top', '/nope'].map((p) => v.isDirectory(p)),
      file: v.getFile('/docs/a.txt'),
      missing: v.getFile('/docs/none')
    }))
    assert.equal(seen.root, [
      { path: '/docs', name: 'docs', type: 'dir', size: 2 },
      { path: '/top', name: 'top', type: 'file', size: 0 }
    ])
    assert.equal(seen.docs, [
      { path: '/docs/a.txt', name: 'a.txt', type: 'file', size: 7 },
      { path: '/docs/b', name: 'b', type: 'dir', size: 1 }
    ])
    assert.equal(seen.b, [{ path: '/docs/b/c.txt', name: 'c.txt', type: 'file', size: 10 }])
    assert.equal(seen.dirs, [true, true, true, false, false, false])
    assert.equal(seen.file, { path: '/docs/a.txt', size: 7, mtimeMs: 1000, version: 1, extents: [uuid(2), uuid(3)] })
    assert.is(seen.missing, undefined)
    await s.read((v) => {
      assert.throws(() => v.list('/nope'), (err: Error) => err.name === 'NotFound')
      assert.throws(() => v.list('/top'), (err: Error) => err.name === 'NotADirectory')
    })
    await s.propose({ type: 'DeleteFile', path: '/docs/b/c.txt' })
    const after = await s.read((v) => ({ b: v.isDirectory('/docs/b'), docs: v.list('/docs').map((e) => e.name) }))
    assert.equal(after, { b: false, docs: ['a.txt'] }, 'a directory exists only while something is under it')
  })

  test('conflicts: a file where a directory is, a path under a file, deleting a directory or a missing file; each refusal changes nothing', async (ctx) => {
    const s = harness(ctx).service
    await init(harness(ctx))
    await s.propose(putFile('/d/f', [extent(1, 5, ['n1'])]))
    const before = await s.read((v) => stateOf(v))
    await rejects(s.propose(putFile('/d', [extent(2, 5, ['n1'])])), 'IsADirectory')
    await rejects(s.propose(putFile('/d/f/g', [extent(3, 5, ['n1'])])), 'NotADirectory')
    await rejects(s.propose({ type: 'DeleteFile', path: '/d' }), 'IsADirectory')
    await rejects(s.propose({ type: 'DeleteFile', path: '/d/none' }), 'NotFound')
    // bad input: a size that is not the sum of the extents, a `..` segment, an unknown operation
    await rejects(s.propose({ type: 'PutFile', path: '/d/x', size: 99, mtimeMs: 1, extents: [extent(4, 5, ['n1'])] }), 'InvalidArgument')
    await rejects(s.propose(putFile('/d/../x', [extent(5, 5, ['n1'])])), 'InvalidArgument')
    await rejects(s.propose({ type: 'NoSuchOp' } as unknown as MetadataOp), 'InvalidArgument')
    // an extent of another file cannot be taken over
    await rejects(s.propose(putFile('/e', [extent(1, 5, ['n1'])])), 'AlreadyExists')
    assert.equal(await s.read((v) => stateOf(v)), before)
    for (const n of [2, 3, 4, 5]) assert.is(await s.read((v) => v.getExtent(uuid(n))), undefined, `no extent of a refused put is left (${n})`)
  })

  test('versions increase by one per put; size and mtime are kept; a replace and a delete return the freed extents', async (ctx) => {
    const s = harness(ctx).service
    await init(harness(ctx))
    const a = extent(1, 4, ['n1', 'n2'])
    const b = extent(2, 6, ['n1'])
    const c = extent(3, 1, ['n2'])
    const v1 = await s.propose(putFile('/f', [a, b], 100))
    assert.is(v1.file?.version, 1)
    assert.equal(v1.freed ?? [], [])
    const v2 = await s.propose(putFile('/f', [a, c], 200))
    assert.is(v2.file?.version, 2)
    assert.equal((v2.freed ?? []).map((x) => x.id), [b.id], 'the replaced version frees the extent it no longer lists, keeps the shared one')
    const seen = await s.read((v) => ({ f: v.getFile('/f'), a: v.getExtent(a.id), b: v.getExtent(b.id), c: v.getExtent(c.id) }))
    assert.equal(seen.f, { path: '/f', size: 5, mtimeMs: 200, version: 2, extents: [a.id, c.id] })
    assert.equal(seen.a, a)
    assert.equal(seen.c, c)
    assert.is(seen.b, undefined)
    for (let i = 3; i <= 5; i++) assert.is((await s.propose(putFile('/f', [a], i))).file?.version, i)
    const del = await s.propose({ type: 'DeleteFile', path: '/f' })
    assert.equal(del.freed, [a])
    assert.is(await s.read((v) => v.getFile('/f')), undefined)
    assert.is(await s.read((v) => v.getExtent(a.id)), undefined)
    // a new file at the same path starts again at version 1
    assert.is((await s.propose(putFile('/f', []))).file?.version, 1)
  })

  test('RenameFile: a file moves with its extents, size, mtime and version; a replace frees; conflicts refused; it survives a restart', async (ctx) => {
    const h = harness(ctx)
    await init(h)
    const s = h.service
    await s.propose(putFile('/r/a', [extent(1, 4, ['n1']), extent(2, 5, ['n1'])], 50))
    await s.propose(putFile('/r/a', [extent(3, 6, ['n1'])], 60))
    const moved = await s.propose({ type: 'RenameFile', from: '/r/a', to: '/r/sub/b' })
    assert.equal(moved.file, { path: '/r/sub/b', size: 6, mtimeMs: 60, version: 2, extents: [uuid(3)] })
    assert.equal(moved.freed ?? [], [])
    assert.equal(await s.read((v) => ({ a: v.getFile('/r/a'), r: v.list('/r').map((e) => e.name), e: v.getExtent(uuid(3)) })),
      { a: undefined, r: ['sub'], e: extent(3, 6, ['n1']) })
    await s.propose(putFile('/r/c', [extent(4, 2, ['n1'])], 70))
    const before = await s.read((v) => stateOf(v))
    await rejects(s.propose({ type: 'RenameFile', from: '/r/sub/b', to: '/r/c' }), 'AlreadyExists')
    await rejects(s.propose({ type: 'RenameFile', from: '/r/c', to: '/r/sub' }), 'IsADirectory')
    await rejects(s.propose({ type: 'RenameFile', from: '/r/sub/b', to: '/r/c/d' }), 'NotADirectory')
    await rejects(s.propose({ type: 'RenameFile', from: '/r/none', to: '/r/x' }), 'NotFound')
    // across top-level directories: one operation when one group holds both, refused otherwise
    const oneGroup = s.groupOf === undefined || s.groupOf('/r/c') === s.groupOf('/other/c')
    if (!oneGroup) await rejects(s.propose({ type: 'RenameFile', from: '/r/c', to: '/other/c' }), 'InvalidArgument')
    await rejects(s.propose({ type: 'RenameFile', from: '/r/c', to: '/r/x', replace: 1 } as unknown as MetadataOp), 'InvalidArgument')
    await rejects(s.propose({ type: 'RenameFile', from: '/r/sub', to: '/r/sub/deeper' }), 'InvalidArgument')
    assert.equal(await s.read((v) => stateOf(v)), before, 'the refused renames changed nothing')
    if (oneGroup) {
      await s.propose({ type: 'RenameFile', from: '/r/c', to: '/other/c' })
      await s.propose({ type: 'RenameFile', from: '/other/c', to: '/r/c' })
    }
    const replaced = await s.propose({ type: 'RenameFile', from: '/r/sub/b', to: '/r/c', replace: true })
    assert.equal(replaced.freed, [extent(4, 2, ['n1'])])
    assert.equal(replaced.file, { path: '/r/c', size: 6, mtimeMs: 60, version: 2, extents: [uuid(3)] })
    await s.propose({ type: 'RenameFile', from: '/r/c', to: '/r/c' })
    // a directory moves with everything under it
    await s.propose(putFile('/r/dir/x', [extent(5, 1, ['n1'])], 80))
    await s.propose(putFile('/r/dir/y/z', [extent(6, 1, ['n1'])], 90))
    await s.propose({ type: 'RenameFile', from: '/r/dir', to: '/r/moved' })
    const after = await s.read((v) => stateOf(v))
    assert.equal(await s.read((v) => [v.isDirectory('/r/dir'), v.getFile('/r/moved/y/z')?.extents]), [false, [uuid(6)]])
    assert.equal(await (await h.reopen()).read((v) => stateOf(v)), after, 'renames survive a restart')
  })

  test('file metadata: kept with a put, replaced by the next, kept by a rename; bad metadata is InvalidArgument; it survives a restart', async (ctx) => {
    const h = harness(ctx)
    await init(h)
    const s = h.service
    const meta = { contentType: 'text/plain; charset=utf-8', etag: 'd41d8cd98f00b204e9800998ecf8427e', user: { b: '2', a: 'x y' } }
    const put = await s.propose({ ...putFile('/m/a', [extent(1, 3, ['n1'])]), meta } as MetadataOp)
    assert.equal(put.file?.meta, meta)
    assert.equal(Object.keys(put.file?.meta?.user ?? {}), ['a', 'b'], 'user keys are kept sorted')
    await s.propose({ type: 'RenameFile', from: '/m/a', to: '/m/b' })
    assert.equal(await s.read((v) => v.getFile('/m/b')?.meta), meta, 'a rename keeps the metadata')
    const before = await s.read((v) => stateOf(v))
    const bad: unknown[] = [
      { contentType: 'a\nb' }, { contentType: 'x'.repeat(257) }, { etag: 'XYZ' }, { etag: 'a'.repeat(129) },
      { user: { Upper: 'v' } }, { user: { k: 'a\u0007' } }, { user: { k: 'x'.repeat(2048) } },
      { user: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, ''])) }, { other: 1 }, 'text'
    ]
    for (const m of bad) await rejects(s.propose({ ...putFile('/m/c', []), meta: m } as unknown as MetadataOp), 'InvalidArgument')
    assert.equal(await s.read((v) => stateOf(v)), before, 'the refused puts changed nothing')
    const plain = await s.propose(putFile('/m/b', [extent(2, 1, ['n1'])]))
    assert.is(plain.file !== undefined && 'meta' in plain.file, false, 'a put without metadata leaves none, also of the version it replaces')
    await s.propose({ ...putFile('/m/d', []), meta: { user: {} } } as MetadataOp)
    assert.is(await s.read((v) => v.getFile('/m/d')?.meta), undefined, 'empty metadata is none')
    await s.propose({ ...putFile('/m/e', []), meta: { contentType: 'image/png' } } as MetadataOp)
    const after = await s.read((v) => stateOf(v))
    assert.equal(await (await h.reopen()).read((v) => stateOf(v)), after)
    assert.equal(await h.service.read((v) => v.getFile('/m/e')?.meta), { contentType: 'image/png' })
  })

  test('explicit directories: MakeDir makes one that stays when emptied; RemoveDir removes it empty only; conflicts refused; it survives a restart', async (ctx) => {
    const h = harness(ctx)
    await init(h)
    const s = h.service
    await s.propose({ type: 'MakeDir', path: '/x/y/z' })
    assert.equal(await s.read((v) => ({ x: v.list('/x'), z: v.list('/x/y/z'), dirs: ['/x', '/x/y', '/x/y/z'].map((p) => v.isDirectory(p)) })),
      { x: [{ path: '/x/y', name: 'y', type: 'dir', size: 1 }], z: [], dirs: [true, true, true] })
    await s.propose({ type: 'MakeDir', path: '/x/y/z' }) // idempotent
    await s.propose(putFile('/x/y/z/f', [extent(1, 2, ['n1'])]))
    await rejects(s.propose({ type: 'RemoveDir', path: '/x/y/z' }), 'DirectoryNotEmpty')
    await s.propose({ type: 'DeleteFile', path: '/x/y/z/f' })
    assert.equal(await s.read((v) => [v.isDirectory('/x/y/z'), v.list('/x/y/z')]), [true, []], 'an explicit directory stays when its last entry goes')
    await s.propose(putFile('/w/implicit/f', []))
    await s.propose({ type: 'MakeDir', path: '/w' }) // an existing (implicit) directory becomes explicit
    await s.propose({ type: 'DeleteFile', path: '/w/implicit/f' })
    assert.equal(await s.read((v) => [v.isDirectory('/w'), v.isDirectory('/w/implicit')]), [true, false], 'implicit directories still vanish')
    await s.propose(putFile('/file', []))
    const before = await s.read((v) => stateOf(v))
    await rejects(s.propose({ type: 'MakeDir', path: '/file' }), 'AlreadyExists')
    await rejects(s.propose({ type: 'MakeDir', path: '/file/sub' }), 'NotADirectory')
    await rejects(s.propose({ type: 'MakeDir', path: '/' }), 'InvalidArgument')
    await rejects(s.propose(putFile('/x/y/z', [])), 'IsADirectory')
    await rejects(s.propose({ type: 'RemoveDir', path: '/x/y' }), 'DirectoryNotEmpty')
    await rejects(s.propose({ type: 'RemoveDir', path: '/nope' }), 'NotFound')
    await rejects(s.propose({ type: 'RemoveDir', path: '/file' }), 'NotADirectory')
    assert.equal(await s.read((v) => stateOf(v)), before, 'the refusals changed nothing')
    // a renamed directory takes its explicit directories along
    await s.propose({ type: 'RenameFile', from: '/x/y', to: '/x/moved' })
    assert.equal(await s.read((v) => [v.isDirectory('/x/y'), v.list('/x/moved/z')]), [false, []])
    const after = await s.read((v) => stateOf(v))
    assert.equal(await (await h.reopen()).read((v) => stateOf(v)), after, 'explicit directories survive a restart')
    const again = h.service
    await again.propose({ type: 'RemoveDir', path: '/x/moved/z' })
    assert.equal(await again.read((v) => [v.isDirectory('/x/moved'), v.isDirectory('/x'), v.list('/').map((e) => e.name)]),
      [false, false, ['file', 'w']], 'removing the last explicit directory prunes the implicit ones above it')
  })

  test('ComposeFile: the parts\' extents in order make the file, the parts go, a replaced file is freed; conflicts refused; it survives a restart', async (ctx) => {
    const h = harness(ctx)
    await init(h)
    const s = h.service
    await s.propose(putFile('/up/p1', [extent(1, 5, ['n1']), extent(2, 5, ['n1'])]))
    await s.propose(putFile('/up/p2', [extent(3, 2, ['n1'])]))
    await s.propose(putFile('/up/t/old', [extent(9, 1, ['n1'])]))
    await s.propose(putFile('/other/p', [extent(4, 1, ['n1'])]))
    const before = await s.read((v) => stateOf(v))
    await rejects(s.propose({ type: 'ComposeFile', to: '/up/t/old', parts: ['/up/p1'], mtimeMs: 1 }), 'AlreadyExists')
    await rejects(s.propose({ type: 'ComposeFile', to: '/up/x', parts: ['/up/p1', '/other/p'], mtimeMs: 1 }), 'InvalidArgument')
    await rejects(s.propose({ type: 'ComposeFile', to: '/up/x', parts: ['/up/p1', '/up/p1'], mtimeMs: 1 }), 'InvalidArgument')
    await rejects(s.propose({ type: 'ComposeFile', to: '/up/p1', parts: ['/up/p1'], mtimeMs: 1 }), 'InvalidArgument')
    await rejects(s.propose({ type: 'ComposeFile', to: '/up/x', parts: [], mtimeMs: 1 }), 'InvalidArgument')
    await rejects(s.propose({ type: 'ComposeFile', to: '/up/x', parts: ['/up/none'], mtimeMs: 1 }), 'NotFound')
    await rejects(s.propose({ type: 'ComposeFile', to: '/up/t', parts: ['/up/p1'], mtimeMs: 1 }), 'IsADirectory')
    await rejects(s.propose({ type: 'ComposeFile', to: '/up/p2/x', parts: ['/up/p1'], mtimeMs: 1 }), 'NotADirectory')
    assert.equal(await s.read((v) => stateOf(v)), before, 'the refused composes changed nothing')
    const r = await s.propose({ type: 'ComposeFile', to: '/up/t/old', parts: ['/up/p2', '/up/p1'], mtimeMs: 77, meta: { etag: 'abc-2' }, replace: true })
    assert.equal(r.file, { path: '/up/t/old', size: 12, mtimeMs: 77, version: 2, extents: [uuid(3), uuid(1), uuid(2)], meta: { etag: 'abc-2' } })
    assert.equal(r.freed, [extent(9, 1, ['n1'])], 'only the replaced file\'s extents are freed')
    assert.equal(await s.read((v) => ({ p1: v.getFile('/up/p1'), p2: v.getFile('/up/p2'), e: v.getExtent(uuid(1)), up: v.list('/up').map((e) => e.name) })),
      { p1: undefined, p2: undefined, e: extent(1, 5, ['n1']), up: ['t'] })
    await rejects(s.propose(putFile('/up/q', [extent(1, 5, ['n1'])])), 'AlreadyExists') // the extent is the new file's
    const after = await s.read((v) => stateOf(v))
    assert.equal(await (await h.reopen()).read((v) => stateOf(v)), after, 'a compose survives a restart')
    const del = await h.service.propose({ type: 'DeleteFile', path: '/up/t/old' })
    assert.equal(del.freed?.map((e) => e.id), [uuid(3), uuid(1), uuid(2)], 'deleting the composed file frees the parts\' extents')
  })

  test('S3 keys: recorded for a user, read, listed sorted, revoked; a duplicate, a user without a role or a bad record is refused; they survive a restart', async (ctx) => {
    const h = harness(ctx)
    await init(h)
    const s = h.service
    const key = (id: string, user = ADMIN): S3KeyRecord => ({ accessKeyId: id, secretAccessKey: 'A'.repeat(39) + '/', user, createdAtMs: 5 })
    const k1 = key('DFS00000000000000002')
    const k2 = key('DFS00000000000000001')
    await s.propose({ type: 'PutS3Key', key: k1 })
    await s.propose({ type: 'PutS3Key', key: k2 })
    assert.equal(await s.read((v) => ({ one: v.s3Key(k1.accessKeyId), all: v.s3Keys() })), { one: k1, all: [k2, k1] })
    await rejects(s.propose({ type: 'PutS3Key', key: { ...k1, secretAccessKey: 'B'.repeat(40) } }), 'AlreadyExists')
    await rejects(s.propose({ type: 'PutS3Key', key: key('DFS00000000000000003', 'nobody') }), 'FailedPrecondition')
    for (const bad of [key('AKIA0000000000000000'), { ...key('DFS00000000000000004'), secretAccessKey: 'short' }, { ...key('DFS00000000000000005'), createdAtMs: -1 }]) {
      await rejects(s.propose({ type: 'PutS3Key', key: bad }), 'InvalidArgument')
    }
    await rejects(s.propose({ type: 'RevokeS3Key', accessKeyId: 'DFS00000000000000009' }), 'NotFound')
    assert.equal(await s.read((v) => v.s3Keys().map((k) => k.accessKeyId)), [k2.accessKeyId, k1.accessKeyId], 'the refusals changed nothing')
    await s.propose({ type: 'RevokeS3Key', accessKeyId: k2.accessKeyId })
    assert.is(await s.read((v) => v.s3Key(k2.accessKeyId)), undefined)
    await s.propose({ type: 'SetRole', peer: 'peer-k', role: 'user' })
    await s.propose({ type: 'PutS3Key', key: key('DFS00000000000000007', 'peer-k') })
    assert.equal(await (await h.reopen()).read((v) => v.s3Keys().map((k) => k.accessKeyId)), [k1.accessKeyId, 'DFS00000000000000007'], 'keys survive a restart')
    await h.service.propose({ type: 'SetRole', peer: 'peer-k', role: null })
    assert.equal(await h.service.read((v) => v.s3Keys()), [k1], 'revoking a user\'s role revokes its keys')
  })

  test('read sees every write that resolved before it, also with many proposals in flight', async (ctx) => {
    const s = harness(ctx).service
    await init(harness(ctx))
    for (let i = 0; i < 5; i++) {
      await s.propose(putFile(`/seq/${i}`, [extent(100 + i, i + 1, ['n1'])], i))
      assert.is(await s.read((v) => v.getFile(`/seq/${i}`)?.size), i + 1)
    }
    const n = 40
    await Promise.all(Array.from({ length: n }, async (_, i) => await s.propose(putFile(`/many/d${i % 4}/f${i}`, [extent(200 + i, 1, ['n1'])], i))))
    const seen = await s.read((v) => [0, 1, 2, 3].flatMap((d) => v.list(`/many/d${d}`).map((e) => e.name)))
    assert.is(seen.length, n)
    if (s.staleRead !== undefined) {
      assert.is(s.staleRead((v) => v.getFile(`/many/d0/f${n - 4}`)?.version), 1, 'a stale read on the writer sees what it applied')
      await s.propose(putFile('/stale', [extent(300, 3, ['n1'])], 5))
      assert.equal(s.staleRead((v) => v.getFile('/stale')), await s.read((v) => v.getFile('/stale')), 'staleRead agrees with read after a write')
    }
  })

  test('SetConfig: a valid value is read back (defaults filled in); a bad key or value is InvalidArgument and changes nothing', async (ctx) => {
    const s = harness(ctx).service
    await init(harness(ctx))
    await s.propose({ type: 'SetConfig', key: 'replicationFactor', value: 2 })
    await s.propose({ type: 'SetConfig', key: 'placementPolicy', value: 'my-policy' })
    await s.propose({ type: 'SetConfig', key: 'fillLimit', value: 0.75 })
    const expected = { ...CLUSTER_CONFIG_DEFAULTS, replicationFactor: 2, placementPolicy: 'my-policy', fillLimit: 0.75 }
    assert.equal(await s.read((v) => v.config()), expected)
    const bad: Array<[string, unknown]> = [
      ['replicationFactor', 0], ['replicationFactor', 17], ['replicationFactor', 1.5], ['replicationFactor', '3'],
      ['fillLimit', 0], ['fillLimit', 1.5], ['imbalanceThreshold', -1], ['placementPolicy', 'Bad Name'],
      ['noSuchSetting', 1]
    ]
    for (const [key, value] of bad) {
      await rejects(s.propose({ type: 'SetConfig', key, value } as unknown as MetadataOp), 'InvalidArgument')
    }
    assert.equal(await s.read((v) => v.config()), expected, 'the refused settings changed nothing')
    // setting a default again reads back as the default
    await s.propose({ type: 'SetConfig', key: 'replicationFactor', value: CLUSTER_CONFIG_DEFAULTS.replicationFactor })
    assert.is(await s.read((v) => v.config().replicationFactor), CLUSTER_CONFIG_DEFAULTS.replicationFactor)
  })

  test('join tokens: created, read, revoked; a duplicate, an unknown revocation or a bad record is refused; expired ones are dropped', async (ctx) => {
    const s = harness(ctx).service
    await init(harness(ctx))
    const t1 = token('0123456789abcdef', 1000, 5000)
    await s.propose({ type: 'CreateJoinToken', token: t1 })
    assert.equal(await s.read((v) => { const t = v.joinToken(t1.id); return t === undefined ? undefined : { ...t } }), t1)
    await rejects(s.propose({ type: 'CreateJoinToken', token: { ...t1, createdAtMs: 1100 } }), 'AlreadyExists')
    await rejects(s.propose({ type: 'CreateJoinToken', token: token('fedcba9876543210', 5000, 4000) }), 'InvalidArgument')
    await rejects(s.propose({ type: 'CreateJoinToken', token: token('NOT-HEX', 1, 2) }), 'InvalidArgument')
    await rejects(s.propose({ type: 'CreateJoinToken', token: { ...token('1111111111111111', 1, 2), secretHash: 'plain' } }), 'InvalidArgument')
    assert.is(await s.read((v) => v.joinToken('fedcba9876543210')), undefined)
    // a token created after t1 expired drops t1
    const t2 = token('2222222222222222', 6000, 9000)
    await s.propose({ type: 'CreateJoinToken', token: t2 })
    assert.is(await s.read((v) => v.joinToken(t1.id)), undefined, 'a token expired before the newest one was created is gone')
    await s.propose({ type: 'RevokeJoinToken', id: t2.id })
    assert.is(await s.read((v) => v.joinToken(t2.id)), undefined)
    await rejects(s.propose({ type: 'RevokeJoinToken', id: t2.id }), 'NotFound')
  })

  test('join token uses: counted down, refused when unknown, for another peer or expired (changing nothing); the last use drops it', async (ctx) => {
    const s = harness(ctx).service
    await init(harness(ctx))
    const two = token('4444444444444444', 1000, 5000, { usesLeft: 2 })
    const mine = token('5555555555555555', 1000, 5000, { usesLeft: 1, forPeer: 'peer-a' })
    await s.propose({ type: 'CreateJoinToken', token: two })
    await s.propose({ type: 'CreateJoinToken', token: mine })
    assert.equal(await s.read((v) => v.joinTokens().map((t) => t.id)), [two.id, mine.id], 'joinTokens lists every live token sorted by id')
    await rejects(s.propose({ type: 'UseJoinToken', id: '6666666666666666', peer: 'peer-a', nowMs: 2000 }), 'InvalidToken')
    await rejects(s.propose({ type: 'UseJoinToken', id: mine.id, peer: 'peer-b', nowMs: 2000 }), 'InvalidToken')
    await rejects(s.propose({ type: 'UseJoinToken', id: two.id, peer: 'peer-a', nowMs: 5000 }), 'TokenExpired')
    assert.is(await s.read((v) => v.joinToken(two.id)?.usesLeft), 2, 'refused uses spent nothing')
    assert.is(await s.read((v) => v.joinToken(mine.id)?.usesLeft), 1)
    await s.propose({ type: 'UseJoinToken', id: two.id, peer: 'peer-a', nowMs: 2000 })
    assert.is(await s.read((v) => v.joinToken(two.id)?.usesLeft), 1)
    await s.propose({ type: 'UseJoinToken', id: mine.id, peer: 'peer-a', nowMs: 2000 })
    await s.propose({ type: 'UseJoinToken', id: two.id, peer: 'peer-b', nowMs: 2001 })
    assert.equal(await s.read((v) => v.joinTokens()), [], 'a used-up token is dropped')
    await rejects(s.propose({ type: 'UseJoinToken', id: two.id, peer: 'peer-c', nowMs: 2002 }), 'InvalidToken')
  })

  test('users: grants are listed sorted with their tenant; the last cluster-wide admin cannot be revoked; settings of audit and rate', async (ctx) => {
    const s = harness(ctx).service
    await init(harness(ctx))
    await s.propose({ type: 'SetRole', peer: 'peer-u', role: 'user' })
    await s.propose({ type: 'SetRole', peer: 'peer-r', role: 'readonly', tenant: null })
    assert.equal(await s.read((v) => v.users().map((u) => ({ ...u }))), [
      { id: 'peer-r', role: 'readonly', tenant: null },
      { id: 'peer-u', role: 'user', tenant: null },
      { id: ADMIN, role: 'admin', tenant: null }
    ].sort((a, b) => a.id < b.id ? -1 : 1))
    assert.equal(await s.read((v) => { const u = v.user(ADMIN); return u === undefined ? undefined : { ...u } }), { id: ADMIN, role: 'admin', tenant: null })
    await rejects(s.propose({ type: 'SetRole', peer: ADMIN, role: null }), 'FailedPrecondition')
    await rejects(s.propose({ type: 'SetRole', peer: ADMIN, role: 'user' }), 'FailedPrecondition')
    assert.is(await s.read((v) => v.role(ADMIN)), 'admin', 'the refused revocations changed nothing')
    await s.propose({ type: 'SetRole', peer: 'peer-u', role: 'admin' })
    await s.propose({ type: 'SetRole', peer: ADMIN, role: null })
    assert.is(await s.read((v) => v.user(ADMIN)), undefined, 'another admin exists, so this one can go')
    await rejects(s.propose({ type: 'SetRole', peer: 'peer-x', role: 'root' } as unknown as MetadataOp), 'InvalidArgument')
    await s.propose({ type: 'SetConfig', key: 'auditRetention', value: AUDIT_RETENTION_MIN })
    await s.propose({ type: 'SetConfig', key: 'userRequestRate', value: 50 })
    for (const [key, value] of [['auditRetention', AUDIT_RETENTION_MIN - 1], ['auditRetention', AUDIT_RETENTION_MAX + 1], ['userRequestRate', -1]] as const) {
      await rejects(s.propose({ type: 'SetConfig', key, value }), 'InvalidArgument')
    }
    assert.equal(await s.read((v) => [v.config().auditRetention, v.config().userRequestRate]), [AUDIT_RETENTION_MIN, 50])
  })

  test('the state survives a stop and a reopen on the same directory, and writes go on from it', async (ctx) => {
    const h = harness(ctx)
    await init(h)
    const s = h.service
    await s.propose(putFile('/keep/a', [extent(1, 4, ['n1'])], 11))
    await s.propose(putFile('/keep/a', [extent(2, 5, ['n1'])], 12))
    await s.propose(putFile('/keep/b/c', [extent(3, 6, ['n1'])], 13))
    await s.propose(putFile('/gone', [extent(4, 1, ['n1'])], 14))
    await s.propose({ type: 'DeleteFile', path: '/gone' })
    await s.propose({ type: 'SetConfig', key: 'replicationFactor', value: 5 })
    await s.propose({ type: 'CreateJoinToken', token: token('3333333333333333', 1, 9_999_999_999_999) })
    await s.propose({ type: 'CreateExtent', extent: extent(5, 7, ['n1']) })
    await rejects(s.propose(putFile('/keep', [])), 'IsADirectory')
    const tokens = ['3333333333333333']
    const before = await s.read((v) => stateOf(v, tokens))
    const again = await h.reopen()
    assert.ok(again === h.service, 'reopen sets harness.service')
    assert.equal(await again.read((v) => stateOf(v, tokens)), before)
    assert.is((await again.propose(putFile('/keep/a', [extent(6, 2, ['n1'])], 15))).file?.version, 3, 'versions go on after the restart')
    assert.is(await again.read((v) => v.getExtent(uuid(2))), undefined, 'the replaced extent was freed')
    // a second restart right after a write keeps it too
    const third = await h.reopen()
    assert.equal(await third.read((v) => v.getFile('/keep/a')), { path: '/keep/a', size: 2, mtimeMs: 15, version: 3, extents: [uuid(6)] })
  })

  test('staged commits: StageExtents across ops then PutFile { stage } commits atomically; DropStage frees; refusals; it survives a restart', async (ctx) => {
    const h = harness(ctx)
    await init(h)
    const s = h.service
    const stage = uuid(900)
    const stageOp = (from: number, count: number, extra: Partial<{ path: string, node: string, stage: string }> = {}): MetadataOp =>
      ({ type: 'StageExtents', stage, path: '/big/f', node: 'n1', createdAtMs: 5, extents: Array.from({ length: count }, (_, i) => extent(from + i, 3, ['n1'])), ...extra })
    await s.propose(putFile('/big/f', [extent(1, 2, ['n1'])], 10))
    await s.propose(stageOp(100, 3))
    await s.propose(stageOp(103, 2))
    // a stat between stages shows the old file; the staged extents are referenced (no sweep frees them)
    assert.equal(await s.read((v) => [v.getFile('/big/f')?.extents, v.getExtent(uuid(104))?.size, v.stages?.().map((t) => [t.path, t.extents.length])]),
      [[uuid(1)], 3, [['/big/f', 5]]])
    const before = await s.read((v) => [stateOf(v), v.stages?.()])
    await rejects(s.propose({ type: 'DeleteExtent', id: uuid(100) }), 'InvalidArgument')
    await rejects(s.propose(stageOp(104, 1)), 'AlreadyExists') // staged already
    await rejects(s.propose(stageOp(1, 1)), 'AlreadyExists') // a file's
    await rejects(s.propose(stageOp(200, 1, { node: 'n2' })), 'InvalidArgument')
    await rejects(s.propose(stageOp(200, 1, { path: '/big/g' })), 'InvalidArgument')
    await rejects(s.propose(stageOp(200, 0)), 'InvalidArgument')
    await rejects(s.propose(stageOp(200, 1025)), 'InvalidArgument')
    await rejects(s.propose({ ...putFile('/big/g', [extent(7, 1, ['n1'])]), stage } as MetadataOp), 'InvalidArgument')
    await rejects(s.propose({ ...putFile('/big/f', [extent(7, 1, ['n1'])]), stage: uuid(901) } as MetadataOp), 'NotFound')
    await rejects(s.propose({ ...putFile('/big/f', [extent(7, 1, ['n1'])]), stage } as MetadataOp), 'InvalidArgument') // size misses the stage's
    await rejects(s.propose(putFile('/big/h', [extent(100, 3, ['n1'])])), 'AlreadyExists') // a staged extent in another put
    await rejects(s.propose({ type: 'DropStage', stage: uuid(901), path: '/big/f' }), 'NotFound')
    assert.equal(await s.read((v) => [stateOf(v), v.stages?.()]), before, 'the refusals changed nothing')
    const staged = await h.reopen()
    assert.equal(await staged.read((v) => [stateOf(v), v.stages?.()]), before, 'a stage survives a restart')
    const done = await staged.propose({ type: 'PutFile', path: '/big/f', size: 16, mtimeMs: 20, extents: [extent(7, 1, ['n1'])], stage })
    assert.equal(done.file?.extents, [100, 101, 102, 103, 104, 7].map(uuid), 'the stage\'s extents, then the op\'s')
    assert.equal(done.file?.version, 2)
    assert.equal(done.freed, [extent(1, 2, ['n1'])])
    assert.equal(await staged.read((v) => v.stages?.()), [], 'the commit ends the stage')
    await rejects(staged.propose({ ...putFile('/big/f', []), stage } as MetadataOp), 'NotFound')
    // a dropped stage frees its extents
    const other = uuid(902)
    await staged.propose({ type: 'StageExtents', stage: other, path: '/big/x', node: 'n1', createdAtMs: 6, extents: [extent(300, 4, ['n1', 'n2'])] })
    const dropped = await staged.propose({ type: 'DropStage', stage: other, path: '/big/x' })
    assert.equal(dropped.freed, [extent(300, 4, ['n1', 'n2'])])
    assert.equal(await staged.read((v) => [v.getExtent(uuid(300)), v.getFile('/big/x'), v.stages?.()]), [undefined, undefined, []])
    await rejects(staged.propose({ type: 'DropStage', stage: other, path: '/big/x' }), 'NotFound')
  })

  test('after stop, propose and read are refused with a typed error; stop again is harmless', async (ctx) => {
    const h = harness(ctx)
    await init(h)
    const s = h.service
    await s.stop()
    const err = await rejects(s.propose(putFile('/late', [])), 'Unavailable')
    assert.ok(err.message.length > 0)
    await rejects(s.read((v) => v.cluster()), 'Unavailable')
    await s.stop()
    // nothing was written: a reopened service has no /late
    const again = await h.reopen()
    assert.is(await again.read((v) => v.getFile('/late')), undefined)
    assert.is(await again.read((v) => v.cluster()?.clusterId), 'suite-cluster')
  })

  test.run()
}
