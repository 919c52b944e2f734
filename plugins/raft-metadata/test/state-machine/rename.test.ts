import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { RENAME_FILES_MAX, toInternalPath } from '@dfs/api'
import type { MetadataOp, MetadataView, TenantInfo } from '@dfs/api'
import { MetadataStateMachine } from '../../src/state-machine/index.js'
import { groupOfShard, shardOfPath } from '../../src/shards/index.js'
import { errorName, extent, machine, prng, putFile, stateOf, uuid } from './fixtures.js'

const test = suite('state machine: RenameFile')

/** Every file path under `dir`, by walking the listing (what a reader sees). */
function walk (v: MetadataView, dir = '/'): string[] {
  const out: string[] = []
  for (const e of v.list(dir)) {
    if (e.type === 'dir') out.push(...walk(v, e.path))
    else out.push(e.path)
  }
  return out
}

/** Usage of each tenant recomputed from its files, to compare with what the state machine keeps. */
function usageByWalk (sm: MetadataStateMachine, tenants: string[]): Array<{ name: string, usedBytes: number, usedFiles: number }> {
  return tenants.map((name) => {
    const root = toInternalPath(name, '/')
    const files = sm.isDirectory(root) ? walk(sm.view, root) : []
    return { name, usedBytes: files.reduce((s, p) => s + (sm.getFile(p)?.size ?? 0), 0), usedFiles: files.length }
  })
}

const usageOf = (t: TenantInfo[]): Array<{ name: string, usedBytes: number, usedFiles: number }> =>
  t.map(({ name, usedBytes, usedFiles }) => ({ name, usedBytes, usedFiles }))

test('a file moves with its record: same extents, size and mtime, version kept; the old path is gone', () => {
  const { sm, apply } = machine()
  assert.ok(apply(putFile('/docs/a', [extent(1), extent(2, 5)], 77)).ok)
  assert.ok(apply(putFile('/docs/a', [extent(3), extent(4, 5)], 78)).ok) // version 2
  const r = apply({ type: 'RenameFile', from: '/docs/a', to: '/docs/deep/er/b' })
  assert.ok(r.ok)
  assert.equal(r.ok && r.file, { path: '/docs/deep/er/b', size: 15, mtimeMs: 78, version: 2, extents: [uuid(3), uuid(4)] })
  assert.equal(r.ok && r.freed, [])
  assert.is(sm.getFile('/docs/a'), undefined)
  assert.equal(sm.getFile('/docs/deep/er/b'), r.ok ? r.file : undefined)
  assert.equal(walk(sm.view), ['/docs/deep/er/b'])
  assert.equal(sm.getExtent(uuid(3))?.size, 10)
  // and back up, out of the directories it made, which go with it
  assert.ok(apply({ type: 'RenameFile', from: '/docs/deep/er/b', to: '/docs/c', replace: false }).ok)
  assert.equal(sm.list('/docs').map((e) => e.name), ['c'])
  assert.is(sm.isDirectory('/docs/deep'), false)
})

test('the moved extents belong to the new path: its delete frees them, another file cannot take them', () => {
  const { sm, apply } = machine()
  assert.ok(apply(putFile('/d/a', [extent(1)])).ok)
  assert.ok(apply({ type: 'RenameFile', from: '/d/a', to: '/d/b' }).ok)
  assert.is(errorName(apply(putFile('/d/other', [extent(1)]))), 'AlreadyExists')
  assert.ok(apply(putFile('/d/b', [extent(1), extent(2)])).ok, 'a new version at the new path may keep it')
  const del = apply({ type: 'DeleteFile', path: '/d/b' })
  assert.equal(del.ok && del.freed?.map((e) => e.id), [uuid(1), uuid(2)])
  assert.is(sm.counts().extents, 0)
})

test('a file at the target is AlreadyExists without replace, and replaced with it: its extents freed, version above', () => {
  const { sm, apply } = machine()
  assert.ok(apply(putFile('/d/src', [extent(1)], 5)).ok)
  for (let i = 0; i < 3; i++) assert.ok(apply(putFile('/d/dst', [extent(10 + i, 4)], 6)).ok) // version 3, extent 12 left
  const before = stateOf(sm)
  for (const replace of [undefined, false]) {
    const r = apply({ type: 'RenameFile', from: '/d/src', to: '/d/dst', ...(replace !== undefined ? { replace } : {}) })
    assert.is(errorName(r), 'AlreadyExists')
    assert.equal(stateOf(sm), before, 'a refused rename changes nothing')
  }
  const r = apply({ type: 'RenameFile', from: '/d/src', to: '/d/dst', replace: true })
  assert.ok(r.ok)
  assert.equal(r.ok && r.freed?.map((e) => e.id), [uuid(12)])
  assert.equal(sm.getFile('/d/dst'), { path: '/d/dst', size: 10, mtimeMs: 5, version: 4, extents: [uuid(1)] })
  assert.is(sm.getExtent(uuid(12)), undefined)
  assert.equal(walk(sm.view), ['/d/dst'])
  // replacing a file of a lower version keeps the moved file's own
  for (let i = 0; i < 6; i++) assert.ok(apply(putFile('/d/new', [extent(20 + i)])).ok) // version 6
  assert.ok(apply({ type: 'RenameFile', from: '/d/new', to: '/d/dst', replace: true }).ok)
  assert.is(sm.getFile('/d/dst')?.version, 6)
})

test('conflicts follow a put\'s rules; each refusal is typed and changes nothing', () => {
  const { sm, apply } = machine()
  assert.ok(apply(putFile('/t/f', [extent(1)])).ok)
  assert.ok(apply(putFile('/t/g', [extent(2)])).ok)
  assert.ok(apply(putFile('/t/dir/x', [extent(3)])).ok)
  const before = stateOf(sm)
  const cases: Array<[unknown, string]> = [
    [{ from: '/t/f', to: '/t/dir' }, 'IsADirectory'],
    [{ from: '/t/f', to: '/t/dir', replace: true }, 'IsADirectory'],
    [{ from: '/t/f', to: '/t', replace: true }, 'IsADirectory'],
    [{ from: '/t/f', to: '/t/g/under' }, 'NotADirectory'],
    [{ from: '/t/f', to: '/t/f/under', replace: true }, 'NotADirectory'],
    [{ from: '/t/none', to: '/t/h' }, 'NotFound'],
    [{ from: '/t/none', to: '/t/none' }, 'NotFound'],
    [{ from: '/', to: '/t/x' }, 'InvalidArgument'],
    [{ from: '/t/f', to: '/' }, 'InvalidArgument'],
    [{ from: '/t/f', to: '/t/../f' }, 'InvalidArgument'],
    [{ from: '/t/f', to: '' }, 'InvalidArgument'],
    [{ from: 5, to: '/t/h' }, 'InvalidArgument'],
    [{ from: '/t/f' }, 'InvalidArgument'],
    [{ from: '/t/f', to: '/t/h', replace: 'yes' }, 'InvalidArgument'],
    [{ from: '/t/f', to: '/t/h', replace: null }, 'InvalidArgument'],
    [{ from: '/t/f', to: 'x'.repeat(5000) }, 'InvalidArgument']
  ]
  for (const [fields, name] of cases) {
    const r = apply({ type: 'RenameFile', ...(fields as object) })
    assert.is(errorName(r), name, JSON.stringify(fields).slice(0, 100))
    assert.equal(stateOf(sm), before, `${JSON.stringify(fields).slice(0, 100)} changed nothing`)
  }
})

test('one group (here the `all` scope) renames across top-level directories: a file, a directory, a whole top-level one', () => {
  const { sm, apply } = machine()
  assert.ok(apply(putFile('/t/f', [extent(1)])).ok)
  assert.ok(apply(putFile('/t/dir/x', [extent(2)])).ok)
  assert.ok(apply({ type: 'RenameFile', from: '/t/f', to: '/u/f' }).ok)
  assert.ok(apply({ type: 'RenameFile', from: '/t/dir', to: '/u/dir' }).ok)
  assert.ok(apply({ type: 'RenameFile', from: '/u', to: '/v' }).ok)
  assert.equal([sm.getFile('/v/f')?.extents, sm.getFile('/v/dir/x')?.extents, sm.isDirectory('/t'), sm.isDirectory('/u')], [[uuid(1)], [uuid(2)], false, false])
})

test('from === to changes nothing and succeeds (for a file and a directory); a non-canonical spelling counts as the same', () => {
  const { sm, apply } = machine()
  assert.ok(apply(putFile('/s/a/f', [extent(1)])).ok)
  const before = stateOf(sm)
  const r = apply({ type: 'RenameFile', from: '/s/a/f', to: 's/a/f/' })
  assert.ok(r.ok)
  assert.is(r.ok && r.file?.version, 1)
  assert.ok(apply({ type: 'RenameFile', from: '/s/a', to: '/s/a' }).ok)
  assert.equal(stateOf(sm), before)
})

test('a directory moves with every file under it, to a target that does not exist', () => {
  const { sm, apply } = machine()
  const files = ['/p/src/a', '/p/src/b/c', '/p/src/b/d/e', '/p/keep']
  files.forEach((p, i) => assert.ok(apply(putFile(p, [extent(i + 1, i + 1)], 100 + i)).ok))
  const r = apply({ type: 'RenameFile', from: '/p/src', to: '/p/x/moved' })
  assert.ok(r.ok)
  assert.equal(r.ok && r.freed, [])
  assert.equal(walk(sm.view), ['/p/keep', '/p/x/moved/a', '/p/x/moved/b/c', '/p/x/moved/b/d/e'])
  assert.equal(sm.getFile('/p/x/moved/b/d/e'), { path: '/p/x/moved/b/d/e', size: 3, mtimeMs: 102, version: 1, extents: [uuid(3)] })
  assert.is(sm.isDirectory('/p/src'), false)
  // the extents follow their files
  const del = apply({ type: 'DeleteFile', path: '/p/x/moved/b/c' })
  assert.equal(del.ok && del.freed?.map((e) => e.id), [uuid(2)])
  // up into an ancestor's sibling, and the directories left empty go
  assert.ok(apply({ type: 'RenameFile', from: '/p/x/moved/b', to: '/p/b2' }).ok)
  assert.equal(walk(sm.view), ['/p/b2/d/e', '/p/keep', '/p/x/moved/a'])
})

test('a directory rename: into itself, onto a directory or file, or under a file is refused and changes nothing', () => {
  const { sm, apply } = machine()
  for (const [i, p] of ['/q/d/a', '/q/d/b/c', '/q/e/x', '/q/f'].entries()) assert.ok(apply(putFile(p, [extent(i + 1)])).ok)
  const before = stateOf(sm)
  const cases: Array<[unknown, string]> = [
    [{ from: '/q/d', to: '/q/d/b/inside' }, 'InvalidArgument'],
    [{ from: '/q/d', to: '/q/d/new' }, 'InvalidArgument'],
    [{ from: '/q/d', to: '/q/e' }, 'AlreadyExists'],
    [{ from: '/q/d', to: '/q/e', replace: true }, 'AlreadyExists'],
    [{ from: '/q/d/b', to: '/q/d' }, 'AlreadyExists'],
    [{ from: '/q/d', to: '/q/f' }, 'NotADirectory'],
    [{ from: '/q/d', to: '/q/f', replace: true }, 'NotADirectory'],
    [{ from: '/q/d', to: '/q/f/under' }, 'NotADirectory'],
    [{ from: '/q/d', to: '/q/d/a/under' }, 'InvalidArgument'],
    [{ from: '/q', to: '/q/new' }, 'InvalidArgument']
  ]
  for (const [fields, name] of cases) {
    assert.is(errorName(apply({ type: 'RenameFile', ...(fields as object) })), name, JSON.stringify(fields))
    assert.equal(stateOf(sm), before, `${JSON.stringify(fields)} changed nothing`)
  }
})

test(`a directory of more than RENAME_FILES_MAX (${RENAME_FILES_MAX}) files is FailedPrecondition; exactly that many move`, () => {
  const { sm, apply } = machine()
  for (let i = 0; i < RENAME_FILES_MAX; i++) assert.ok(apply(putFile(`/big/d/${i % 7}/f${i}`, [])).ok)
  assert.ok(apply({ type: 'RenameFile', from: '/big/d', to: '/big/e' }).ok)
  assert.is(sm.list('/big/e/3').length, Math.ceil((RENAME_FILES_MAX - 3) / 7))
  assert.ok(apply(putFile('/big/e/one-more', [])).ok)
  const before = stateOf(sm)
  const r = apply({ type: 'RenameFile', from: '/big/e', to: '/big/d' })
  assert.is(errorName(r), 'FailedPrecondition')
  assert.is(!r.ok && r.error.details?.filesMax, RENAME_FILES_MAX)
  assert.equal(stateOf(sm), before)
})

test('tenants: a rename inside one leaves its usage exact; crossing namespaces is refused; a replace gives back usage', () => {
  const { sm, apply } = machine()
  assert.ok(apply({ type: 'PutTenant', tenant: { name: 'acme', quotaBytes: 100, quotaFiles: 2, requestRate: null }, create: true }).ok)
  assert.ok(apply({ type: 'PutTenant', tenant: { name: 'other', quotaBytes: null, quotaFiles: null, requestRate: null }, create: true }).ok)
  const at = (p: string): string => toInternalPath('acme', p)
  assert.ok(apply(putFile(at('/a/x'), [extent(1, 30)])).ok)
  assert.ok(apply(putFile(at('/b/y'), [extent(2, 50)])).ok) // at its files quota
  const used = (): unknown => usageOf(sm.tenants())
  const check = (): void => { assert.equal(used(), usageByWalk(sm, ['acme', 'other'])) }
  check()
  // any two paths of a tenant share its root: a rename between its "top-level" directories works,
  // and at a full quota too, since it adds nothing
  assert.ok(apply({ type: 'RenameFile', from: at('/a/x'), to: at('/c/deeper/x') }).ok)
  assert.ok(apply({ type: 'RenameFile', from: at('/b'), to: at('/z/b') }).ok)
  check()
  assert.equal(used(), [{ name: 'acme', usedBytes: 80, usedFiles: 2 }, { name: 'other', usedBytes: 0, usedFiles: 0 }])
  const before = stateOf(sm)
  for (const [from, to] of [
    [at('/c/deeper/x'), '/c/deeper/x'],
    [at('/c/deeper/x'), toInternalPath('other', '/x')],
    [at('/c'), toInternalPath('other', '/c')],
    [at('/c/deeper/x'), at('/')],
    [at('/'), at('/moved')]
  ]) {
    assert.is(errorName(apply({ type: 'RenameFile', from, to, replace: true })), 'InvalidArgument', `${from} -> ${to}`)
  }
  assert.equal(stateOf(sm), before)
  const r = apply({ type: 'RenameFile', from: at('/c/deeper/x'), to: at('/z/b/y'), replace: true })
  assert.equal(r.ok && r.freed?.map((e) => e.id), [uuid(2)])
  check()
  assert.equal(used(), [{ name: 'acme', usedBytes: 30, usedFiles: 1 }, { name: 'other', usedBytes: 0, usedFiles: 0 }])
  // what a restore rebuilds from the files is what apply kept
  assert.equal(usageOf(MetadataStateMachine.restore(sm.snapshot()).tenants()), used())
})

test('a data group takes a rename within its own shards only (WrongShard otherwise); the system group none', () => {
  const groups = 3
  const nameIn = (group: number): string => {
    for (let i = 0; ; i++) if (groupOfShard(shardOfPath(`/r${i}`), groups) === group) return `r${i}`
  }
  const g1 = machine(new MetadataStateMachine({ kind: 'data', group: 1, groups }))
  const mine = nameIn(1)
  const theirs = nameIn(2)
  assert.ok(g1.apply(putFile(`/${mine}/a`, [extent(1)])).ok)
  assert.ok(g1.apply({ type: 'RenameFile', from: `/${mine}/a`, to: `/${mine}/b` }).ok)
  const wrong = g1.apply({ type: 'RenameFile', from: `/${theirs}/a`, to: `/${theirs}/b` })
  assert.is(errorName(wrong), 'WrongShard')
  // to another group's shard: a transfer's business (see transfers.test.ts)
  assert.is(errorName(g1.apply({ type: 'RenameFile', from: `/${mine}/b`, to: `/${theirs}/b` })), 'WrongShard')
  assert.ok(g1.sm.getFile(`/${mine}/b`) !== undefined)
  const system = machine(new MetadataStateMachine({ kind: 'system' }))
  assert.is(errorName(system.apply({ type: 'RenameFile', from: `/${mine}/b`, to: `/${mine}/c` })), 'WrongShard')
})

/** Random puts, deletes and renames (files and directories, some refused) over a small namespace. */
function randomFileOps (seed: number, count: number): MetadataOp[] {
  const rnd = prng(seed)
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]
  const top = ['/a', '/b', toInternalPath('t', '/')]
  const randomPath = (): string => pick(top) + '/' + Array.from({ length: 1 + Math.floor(rnd() * 3) }, () => pick(['x', 'y', 'z'])).join('/')
  const ops: MetadataOp[] = [{ type: 'PutTenant', tenant: { name: 't', quotaBytes: 200, quotaFiles: 8, requestRate: null }, create: true }]
  for (let i = 0; i < count; i++) {
    const r = rnd()
    if (r < 0.4) {
      const n = Math.floor(rnd() * 80)
      ops.push(putFile(randomPath(), rnd() < 0.2 ? [] : [extent(n, 1 + (n % 13))], i))
    } else if (r < 0.55) {
      ops.push({ type: 'DeleteFile', path: randomPath() })
    } else {
      const from = randomPath()
      const other = randomPath()
      const to = rnd() < 0.8 ? from.split('/').slice(0, 2).join('/') + other.slice(other.indexOf('/', 1)) : other
      // sometimes the file's directory (a top-level one too, which can only be refused)
      const parent = from.slice(0, from.lastIndexOf('/'))
      ops.push({ type: 'RenameFile', from: rnd() < 0.3 && parent !== '' ? parent : from, to, replace: rnd() < 0.6 })
    }
  }
  return ops
}

test('deterministic: the same ops give the same results and state on two replicas, and a restore of that state', () => {
  for (const seed of [1, 2, 3, 42, 1234]) {
    const a = machine()
    const b = machine()
    const ops = randomFileOps(seed, 600)
    let renamed = 0
    for (const op of ops) {
      const ra = a.apply(op)
      assert.equal(b.apply(structuredClone(op)), ra, `seed ${seed}`)
      if (op.type === 'RenameFile' && ra.ok) renamed++
    }
    assert.ok(renamed > 20, `seed ${seed}: ${renamed} renames succeeded`)
    const bytes = a.sm.snapshot()
    assert.equal(b.sm.snapshot(), bytes, `seed ${seed}`)
    const back = MetadataStateMachine.restore(bytes)
    assert.equal(back.snapshot(), bytes, `seed ${seed}: a restore rebuilds the same state`)
    assert.equal(usageOf(back.tenants()), usageOf(a.sm.tenants()), `seed ${seed}: usage is exact`)
    assert.equal(usageOf(a.sm.tenants()), usageByWalk(a.sm, ['t']))
  }
})

test.run()
