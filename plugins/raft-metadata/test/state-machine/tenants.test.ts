import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { fromInternalPath, tenantRootPath, toInternalPath } from '@dfs/api'
import type { MetadataResult, TenantRecord } from '@dfs/api'
import { decodeCbor } from '../../src/codec.js'
import { MetadataStateMachine } from '../../src/state-machine/index.js'
import { groupOfShard, shardOfPath } from '../../src/shards/index.js'
import { extent, prng, putFile } from './fixtures.js'

const test = suite('state machine: tenants and quotas')

function tenant (name: string, quotaBytes: number | null = null, quotaFiles: number | null = null, requestRate: number | null = null): TenantRecord {
  return { name, quotaBytes, quotaFiles, requestRate }
}

function errorOf (r: MetadataResult): { name: string, details?: Record<string, unknown> } | undefined {
  return r.ok ? undefined : r.error
}

function machine (): { sm: MetadataStateMachine, apply: (op: any) => MetadataResult } {
  const sm = new MetadataStateMachine()
  let index = 0
  return { sm, apply: (op) => sm.apply(op, ++index) }
}

const at = (t: string, p: string): string => toInternalPath(t, p)

/** The state of a snapshot without its applied index (which every applied op, even a refused one, moves). */
function stateOf (bytes: Uint8Array): unknown {
  const { appliedIndex: _, ...rest } = decodeCbor(bytes) as Record<string, unknown>
  return rest
}

test('PutTenant creates (AlreadyExists twice) and sets (NotFound when absent); tenants() sorted with usage', () => {
  const { sm, apply } = machine()
  assert.is(errorOf(apply({ type: 'PutTenant', tenant: tenant('zeta'), create: false }))?.name, 'NotFound')
  assert.ok(apply({ type: 'PutTenant', tenant: tenant('zeta', 100), create: true }).ok)
  assert.ok(apply({ type: 'PutTenant', tenant: tenant('acme', null, 5, 10), create: true }).ok)
  assert.is(errorOf(apply({ type: 'PutTenant', tenant: tenant('acme'), create: true }))?.name, 'AlreadyExists')
  assert.equal(sm.tenant('acme'), { ...tenant('acme', null, 5, 10), usedBytes: 0, usedFiles: 0 })
  assert.ok(apply({ type: 'PutTenant', tenant: tenant('acme', 1000, null, null), create: false }).ok)
  assert.equal(sm.view.tenants(), [
    { ...tenant('acme', 1000), usedBytes: 0, usedFiles: 0 },
    { ...tenant('zeta', 100), usedBytes: 0, usedFiles: 0 }
  ])
  assert.is(sm.tenant('nope'), undefined)
  assert.is(sm.tenant('NOT VALID'), undefined)
})

test('malformed tenants are InvalidArgument and change nothing', () => {
  const { sm, apply } = machine()
  const before = sm.snapshot()
  const bad: unknown[] = [
    tenant('Acme'), tenant(''), tenant('-a'), tenant('a'.repeat(64)),
    tenant('a', -1), tenant('a', 1.5), tenant('a', 2 ** 53), tenant('a', null, -1),
    tenant('a', null, null, 0), tenant('a', null, null, 1_000_001), tenant('a', null, null, 2.5),
    { name: 'a', quotaBytes: null, quotaFiles: null }, // requestRate missing
    null
  ]
  let n = 0
  for (const t of bad) {
    assert.is(errorOf(apply({ type: 'PutTenant', tenant: t, create: true }))?.name, 'InvalidArgument', JSON.stringify(t))
    n++
  }
  assert.is(errorOf(apply({ type: 'PutTenant', tenant: tenant('a'), create: 'yes' }))?.name, 'InvalidArgument')
  assert.is(errorOf(apply({ type: 'RemoveTenant', name: 'A!' }))?.name, 'InvalidArgument')
  n += 2
  assert.equal(stateOf(sm.snapshot()), stateOf(before))
  assert.equal(sm.tenants(), [])
  assert.is(sm.appliedIndex(), n)
  // the edges are accepted
  assert.ok(apply({ type: 'PutTenant', tenant: tenant('a', 0, 0, 1), create: true }).ok)
  assert.ok(apply({ type: 'PutTenant', tenant: tenant('a', Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, 1_000_000), create: false }).ok)
})

test('a put under a missing tenant is NotFound; at the tenant root it is InvalidArgument; both change nothing', () => {
  const { sm, apply } = machine()
  const empty = sm.snapshot()
  const r = apply(putFile(at('acme', '/x'), [extent(1)]))
  assert.is(errorOf(r)?.name, 'NotFound')
  assert.equal(stateOf(sm.snapshot()), stateOf(empty))
  assert.match((r as any).error.message, 'tenant acme does not exist')
  assert.ok(apply({ type: 'PutTenant', tenant: tenant('acme'), create: true }).ok)
  assert.is(errorOf(apply(putFile(tenantRootPath('acme'), [extent(1)])))?.name, 'InvalidArgument')
  assert.is(sm.getExtent(extent(1).id), undefined)
  assert.equal(sm.extentIds(), [])
  assert.ok(apply(putFile(at('acme', '/x'), [extent(1)])).ok)
  // a path in the default namespace is not a tenant's
  assert.ok(apply(putFile('/acme/x', [extent(2)])).ok)
  assert.equal(sm.tenant('acme'), { ...tenant('acme'), usedBytes: 10, usedFiles: 1 })
})

test('byte quota at the boundary: equal passes, one byte over fails and changes nothing; replace counts the delta; delete frees', () => {
  const { sm, apply } = machine()
  apply({ type: 'PutTenant', tenant: tenant('acme', 100), create: true })
  assert.ok(apply(putFile(at('acme', '/a'), [extent(1, 60)])).ok)
  assert.ok(apply(putFile(at('acme', '/b'), [extent(2, 40)])).ok) // exactly 100
  assert.equal(sm.tenant('acme'), { ...tenant('acme', 100), usedBytes: 100, usedFiles: 2 })
  const before = sm.snapshot()
  const over = apply(putFile(at('acme', '/c'), [extent(3, 1)]))
  assert.is(errorOf(over)?.name, 'QuotaExceeded')
  assert.equal(errorOf(over)?.details, { tenant: 'acme', quotaBytes: 100, usedBytes: 100, wanted: 1 })
  assert.is(sm.getExtent(extent(3).id), undefined)
  assert.is(sm.getFile(at('acme', '/c')), undefined)
  assert.equal(stateOf(sm.snapshot()), stateOf(before), 'nothing but the applied index changed')
  // replace counts the delta: /a 60 → 61 is one byte over, 60 → 59 frees one
  const beforeReplace = sm.snapshot()
  assert.is(errorOf(apply(putFile(at('acme', '/a'), [extent(4, 61)])))?.name, 'QuotaExceeded')
  assert.equal(stateOf(sm.snapshot()), stateOf(beforeReplace))
  assert.ok(apply(putFile(at('acme', '/a'), [extent(5, 59)])).ok)
  assert.equal(sm.tenant('acme')?.usedBytes, 99)
  assert.ok(apply(putFile(at('acme', '/c'), [extent(6, 1)])).ok)
  assert.equal(sm.tenant('acme'), { ...tenant('acme', 100), usedBytes: 100, usedFiles: 3 })
  // delete frees
  assert.ok(apply({ type: 'DeleteFile', path: at('acme', '/b') }).ok)
  assert.equal(sm.tenant('acme'), { ...tenant('acme', 100), usedBytes: 60, usedFiles: 2 })
  assert.ok(apply(putFile(at('acme', '/d/e'), [extent(7, 40)])).ok)
  assert.equal(sm.tenant('acme')?.usedBytes, 100)
})

test('file quota at the boundary; a lowered quota refuses only puts that add', () => {
  const { sm, apply } = machine()
  apply({ type: 'PutTenant', tenant: tenant('acme', null, 2), create: true })
  assert.ok(apply(putFile(at('acme', '/a'), [extent(1)])).ok)
  assert.ok(apply(putFile(at('acme', '/b'), [])).ok) // an empty file counts as a file
  const over = apply(putFile(at('acme', '/c'), []))
  assert.equal(errorOf(over)?.details, { tenant: 'acme', quotaFiles: 2, usedFiles: 2, wanted: 1 })
  assert.ok(apply(putFile(at('acme', '/a'), [extent(2, 500)])).ok) // a replace adds no file
  // lower the quotas below the usage: allowed; shrinking puts still work, growing ones do not
  assert.ok(apply({ type: 'PutTenant', tenant: tenant('acme', 100, 1), create: false }).ok)
  assert.equal(sm.tenant('acme'), { ...tenant('acme', 100, 1), usedBytes: 500, usedFiles: 2 })
  assert.is(errorOf(apply(putFile(at('acme', '/a'), [extent(3, 501)])))?.name, 'QuotaExceeded')
  assert.ok(apply(putFile(at('acme', '/a'), [extent(4, 400)])).ok)
  assert.is(errorOf(apply(putFile(at('acme', '/z'), [])))?.name, 'QuotaExceeded')
})

test('RemoveTenant: NotFound when absent, FailedPrecondition while it holds files', () => {
  const { sm, apply } = machine()
  assert.is(errorOf(apply({ type: 'RemoveTenant', name: 'acme' }))?.name, 'NotFound')
  apply({ type: 'PutTenant', tenant: tenant('acme'), create: true })
  apply(putFile(at('acme', '/a/b'), [extent(1)]))
  const r = apply({ type: 'RemoveTenant', name: 'acme' })
  assert.is(errorOf(r)?.name, 'FailedPrecondition')
  assert.equal(errorOf(r)?.details, { tenant: 'acme', usedFiles: 1, usedBytes: 10 })
  assert.ok(sm.tenant('acme') !== undefined)
  apply({ type: 'DeleteFile', path: at('acme', '/a/b') })
  assert.ok(apply({ type: 'RemoveTenant', name: 'acme' }).ok)
  assert.is(sm.tenant('acme'), undefined)
  assert.equal(sm.tenants(), [])
  // gone: puts under it are refused again
  assert.is(errorOf(apply(putFile(at('acme', '/a'), [extent(2)])))?.name, 'NotFound')
})

test('usage is exact after snapshot and restore (recomputed from the files)', () => {
  const { sm, apply } = machine()
  apply({ type: 'PutTenant', tenant: tenant('acme', 1000, 10), create: true })
  apply({ type: 'PutTenant', tenant: tenant('beta'), create: true })
  apply(putFile(at('acme', '/a'), [extent(1, 7), extent(2, 8)]))
  apply(putFile(at('acme', '/d/b'), [extent(3, 100)]))
  apply(putFile(at('acme', '/a'), [extent(1, 7)]))
  apply(putFile(at('beta', '/x'), [extent(4, 3)]))
  apply(putFile('/plain', [extent(5, 50)]))
  apply({ type: 'DeleteFile', path: at('acme', '/d/b') })
  apply(putFile(at('acme', '/e'), [extent(6, 20)]))
  const expected = [
    { ...tenant('acme', 1000, 10), usedBytes: 27, usedFiles: 2 },
    { ...tenant('beta'), usedBytes: 3, usedFiles: 1 }
  ]
  assert.equal(sm.tenants(), expected)
  const restored = MetadataStateMachine.restore(sm.snapshot())
  assert.equal(restored.tenants(), expected)
  assert.ok(Buffer.from(restored.snapshot()).equals(Buffer.from(sm.snapshot())))
  // and the restored machine keeps enforcing from there
  assert.ok(restored.apply(putFile(at('acme', '/f'), [extent(7, 973)]), sm.appliedIndex() + 1).ok)
  assert.is(restored.apply(putFile(at('acme', '/g'), [extent(8, 1)]), sm.appliedIndex() + 2).ok, false)
})

test('a data group owns the tenants of its shards: others are WrongShard, so is the system group', () => {
  const groups = 4
  const owner = groupOfShard(shardOfPath(tenantRootPath('acme')), groups)
  const other = owner === 1 ? 2 : 1
  const mine = new MetadataStateMachine({ kind: 'data', group: owner, groups })
  const theirs = new MetadataStateMachine({ kind: 'data', group: other, groups })
  const system = new MetadataStateMachine({ kind: 'system' })
  const op = { type: 'PutTenant', tenant: tenant('acme'), create: true } as const
  assert.ok(mine.apply(op, 1).ok)
  assert.is(errorOf(theirs.apply(op, 1))?.name, 'WrongShard')
  assert.is(errorOf(system.apply(op, 1))?.name, 'WrongShard')
  assert.is(errorOf(theirs.apply({ type: 'RemoveTenant', name: 'acme' }, 2))?.name, 'WrongShard')
  assert.ok(mine.apply(putFile(at('acme', '/a'), [extent(1)]), 2).ok)
  assert.ok(mine.apply({ type: 'DeleteFile', path: at('acme', '/a') }, 3).ok)
  assert.ok(mine.apply({ type: 'RemoveTenant', name: 'acme' }, 4).ok)
  const restored = MetadataStateMachine.restore(mine.snapshot(), { kind: 'data', group: owner, groups })
  assert.equal(restored.tenants(), [])
})

/** A random mix of tenant, file and grant operations over three tenants (some never created). */
function randomTenantOps (seed: number, count: number): any[] {
  const rnd = prng(seed)
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)]
  const names = ['acme', 'beta', 'gone']
  const quota = (): number | null => pick([null, 0, 20, 50, 200])
  return Array.from({ length: count }, (_, i) => {
    const r = rnd()
    const name = pick(names)
    const path = toInternalPath(name, '/' + pick(['a', 'b', 'c', 'd/e', 'd/f']))
    if (r < 0.1) return { type: 'PutTenant', tenant: tenant(name, quota(), pick([null, 1, 3, 10])), create: rnd() < 0.5 }
    if (r < 0.15) return { type: 'RemoveTenant', name }
    if (r < 0.6) return putFile(rnd() < 0.05 ? tenantRootPath(name) : path, [extent(i, 1 + Math.floor(rnd() * 30))])
    if (r < 0.85) return { type: 'DeleteFile', path }
    if (r < 0.95) return { type: 'SetRole', peer: pick(['p1', 'p2', 'p3']), role: pick(['admin', 'user', null]), tenant: pick([null, name]) }
    return { type: 'AppendAudit', records: [{ timeMs: i, user: 'p1', role: 'user', tenant: name, operation: 'x', resource: path, success: true, error: null, count: 1, node: 'n1' }] }
  })
}

/** Usage computed the slow way: every file under each tenant root. */
function naiveUsage (sm: MetadataStateMachine): Map<string, { bytes: number, files: number }> {
  const out = new Map<string, { bytes: number, files: number }>()
  const walk = (dir: string, name: string): void => {
    for (const e of sm.list(dir)) {
      if (e.type === 'dir') { walk(e.path, name); continue }
      const u = out.get(name) ?? { bytes: 0, files: 0 }
      out.set(name, { bytes: u.bytes + e.size, files: u.files + 1 })
    }
  }
  for (const e of sm.list('/')) if (e.path.startsWith('/\u0001')) walk(e.path, e.path.slice(2))
  return out
}

test('random runs: deterministic, usage always equals a scan of the files and never passes a quota by adding, and restore keeps it', () => {
  for (const seed of [3, 17, 99]) {
    const ops = randomTenantOps(seed, 800)
    const a = new MetadataStateMachine()
    const b = new MetadataStateMachine()
    a.apply({ type: 'InitCluster', clusterId: 'c', createdAtMs: 0, admin: 'root', member: { id: 'n1', name: 'n1', region: 'r', addrs: [] } }, 1)
    b.apply({ type: 'InitCluster', clusterId: 'c', createdAtMs: 0, admin: 'root', member: { id: 'n1', name: 'n1', region: 'r', addrs: [] } }, 1)
    let refusedQuota = 0
    ops.forEach((op, i) => {
      const before = op.type === 'PutFile' ? a.tenant(fromInternalPath(op.path).tenant ?? '') : undefined
      const ra = a.apply(op, i + 2)
      assert.equal(b.apply(op, i + 2), ra)
      if (!ra.ok && ra.error.name === 'QuotaExceeded') refusedQuota++
      const after = op.type === 'PutFile' && ra.ok ? a.tenant(fromInternalPath(op.path).tenant ?? '') : undefined
      if (before !== undefined && after !== undefined) {
        if (after.quotaBytes !== null && after.usedBytes > before.usedBytes) assert.ok(after.usedBytes <= after.quotaBytes, `seed ${seed} op ${i}`)
        if (after.quotaFiles !== null && after.usedFiles > before.usedFiles) assert.ok(after.usedFiles <= after.quotaFiles, `seed ${seed} op ${i}`)
      }
      if (i % 100 === 99) {
        const naive = naiveUsage(a)
        for (const t of a.tenants()) {
          assert.equal([t.usedBytes, t.usedFiles], [naive.get(t.name)?.bytes ?? 0, naive.get(t.name)?.files ?? 0], `seed ${seed} op ${i} ${t.name}`)
        }
        const restored = MetadataStateMachine.restore(a.snapshot())
        assert.equal(restored.tenants(), a.tenants())
        assert.ok(Buffer.from(restored.snapshot()).equals(Buffer.from(a.snapshot())))
      }
    })
    assert.ok(Buffer.from(a.snapshot()).equals(Buffer.from(b.snapshot())))
    assert.ok(refusedQuota > 0, 'the run hit a quota')
    assert.ok(a.tenants().some((t) => t.usedFiles > 0), 'the run stored tenant files')
  }
})

test.run()
