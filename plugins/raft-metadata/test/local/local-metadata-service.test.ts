import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { firstBrokenAuditEntry, toInternalPath } from '@dfs/api'
import type { MetadataOp } from '@dfs/api'
import { LocalMetadataService } from '../../src/local/index.js'
import type { LocalMetadataServiceInit } from '../../src/local/index.js'
import { LOG_END, LOG_START } from '../../src/local/keys.js'
import { extent, member, putFile, randomOps } from '../state-machine/fixtures.js'

interface Ctx { dir: string, services: LocalMetadataService[] }

const test = suite<Ctx>('LocalMetadataService', { dir: '', services: [] })

test.before.each(async (ctx) => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'dfs-meta-'))
  ctx.services = []
})

test.after.each(async (ctx) => {
  for (const s of ctx.services) {
    await s.stop().catch(() => {})
    await s.db?.close().catch(() => {})
  }
  await rm(ctx.dir, { recursive: true, force: true })
})

function open (ctx: Ctx, extra: Partial<LocalMetadataServiceInit> = {}): LocalMetadataService {
  const logger = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false })
  const s = new LocalMetadataService({ dir: join(ctx.dir, 'meta'), nodeId: 'node-1', logger, ...extra })
  ctx.services.push(s)
  return s
}

async function started (ctx: Ctx, extra: Partial<LocalMetadataServiceInit> = {}): Promise<LocalMetadataService> {
  const s = open(ctx, extra)
  await s.start()
  return s
}

async function rejectsWith (p: Promise<unknown>, name: string): Promise<Error> {
  try {
    await p
  } catch (err) {
    assert.is((err as Error).name, name, (err as Error).message)
    return err as Error
  }
  assert.unreachable(`expected ${name}`)
  throw new Error('unreachable')
}

async function snapshotOf (s: LocalMetadataService): Promise<Uint8Array> {
  return await s.read((view) => (view as unknown as { snapshot?: () => Uint8Array }).snapshot?.() ?? new Uint8Array())
}

/** The full state, through the public view only. */
async function stateOf (s: LocalMetadataService): Promise<unknown> {
  return await s.read((v) => {
    const files: unknown[] = []
    const walk = (dir: string): void => {
      for (const e of v.list(dir)) {
        if (e.type === 'dir') {
          walk(e.path)
        } else {
          files.push(v.getFile(e.path))
        }
      }
    }
    walk('/')
    return {
      applied: v.appliedIndex(),
      cluster: v.cluster(),
      members: v.members(),
      files,
      extents: [...v.extentIds()].sort().map((id) => v.getExtent(id))
    }
  })
}

async function logKeys (s: LocalMetadataService): Promise<number> {
  let n = 0
  for await (const _ of s.db!.keys({ gte: LOG_START, lt: LOG_END })) {
    n++
  }
  return n
}

test('propose applies and resolves with the result; read sees it; status counts', async (ctx) => {
  const s = await started(ctx)
  assert.equal(s.status(), { leader: 'node-1', term: 1, commitIndex: 0, appliedIndex: 0 })
  const r = await s.propose({ type: 'InitCluster', clusterId: 'c', createdAtMs: 1, admin: 'alice', member: member('node-1') })
  assert.equal(r, { ok: true, index: 1 })
  const p = await s.propose(putFile('/docs/a', [extent(1)]))
  assert.is(p.index, 2)
  assert.is(p.file?.version, 1)
  assert.equal(await s.read((v) => v.list('/docs')), [{ path: '/docs/a', name: 'a', type: 'file', size: 10 }])
  assert.is(await s.read((v) => v.role('alice')), 'admin')
  assert.equal(s.status(), { leader: 'node-1', term: 1, commitIndex: 2, appliedIndex: 2 })
  assert.is(await snapshotOf(s).then((b) => b.byteLength), 0, 'the view exposes no snapshot/apply')
})

test('a rejected op rejects with its typed error, consumes its index, and replays as rejected', async (ctx) => {
  const s = await started(ctx)
  await s.propose(putFile('/f', [extent(1)]))
  const err = await rejectsWith(s.propose(putFile('/f/g', [extent(2)])), 'NotADirectory')
  assert.is((err as unknown as { details: Record<string, unknown> }).details.index, 2)
  await rejectsWith(s.propose({ type: 'DeleteFile', path: '/nope' }), 'NotFound')
  const r = await s.propose(putFile('/h', [extent(3)]))
  assert.is(r.index, 4, 'rejected ops consumed indices 2 and 3')
  const before = await stateOf(s)
  await s.stop()
  const t = await started(ctx)
  assert.equal(t.status(), { leader: 'node-1', term: 1, commitIndex: 4, appliedIndex: 4 })
  assert.equal(await stateOf(t), before)
  assert.is(await t.read((v) => v.getExtent(extent(2).id)), undefined)
  assert.is((await t.propose(putFile('/i', []))).index, 5)
})

test('a PutFile carrying inline bytes is refused before it is logged (nothing here would store them)', async (ctx) => {
  const s = await started(ctx)
  assert.is('inlineVoters' in s, false)
  await rejectsWith(s.propose({ ...putFile('/small', [extent(1, 3)]), inline: [new Uint8Array(3)] }), 'InvalidArgument')
  assert.equal(s.status().appliedIndex, 0, 'not logged')
  assert.is(await s.read((v) => v.getFile('/small')), undefined)
})

test('state survives stop and start', async (ctx) => {
  const s = await started(ctx)
  const ops = randomOps(3, 300)
  for (const op of ops) {
    await s.propose(op).catch(() => {})
  }
  const before = await stateOf(s)
  await s.stop()
  const t = await started(ctx)
  assert.equal(await stateOf(t), before)
  assert.is(t.status().appliedIndex, 300)
})

test('a crash (db closed under the service, no stop) loses no resolved proposal', async (ctx) => {
  const s = await started(ctx)
  for (let i = 0; i < 50; i++) {
    await s.propose(putFile(`/a/${i}`, [extent(i)]))
  }
  // 200 more in flight, then the "crash": close the handle without stop()
  const resolved: number[] = []
  const inflight = Array.from({ length: 200 }, async (_, i) =>
    await s.propose(putFile(`/b/${i}`, [extent(1000 + i)])).then((r) => { resolved.push(r.index) }, (err) => err))
  await new Promise((resolve) => setImmediate(resolve))
  await new Promise((resolve) => setImmediate(resolve))
  await s.db!.close()
  const outcomes = await Promise.all(inflight)
  for (const o of outcomes) {
    if (o instanceof Error) {
      assert.is(o.name, 'Unavailable')
    }
  }
  await rejectsWith(s.propose(putFile('/c', [])), 'Unavailable')

  const t = await started(ctx)
  const applied = t.status().appliedIndex
  assert.ok(applied >= 50 + resolved.length, `recovered ${applied}, resolved ${50 + resolved.length}`)
  const listed = await t.read((v) => v.list('/a').length)
  assert.is(listed, 50)
  for (const index of resolved) {
    const i = index - 51 // /b/i was proposed in order, right after the first 50
    assert.ok(await t.read((v) => v.getFile(`/b/${i}`)), `resolved /b/${i} at ${index} must survive`)
  }
})

test('group commit: 500 concurrent proposals go to disk in far fewer batches', async (ctx) => {
  const s = await started(ctx)
  const results = await Promise.all(Array.from({ length: 500 }, async (_, i) => await s.propose(putFile(`/g/${i}`, []))))
  assert.equal(results.map((r) => r.index), Array.from({ length: 500 }, (_, i) => i + 1), 'indices follow proposal order')
  assert.is(s.stats.ops, 500)
  assert.ok(s.stats.batches <= 5, `${s.stats.batches} batches`)
  assert.is(await s.read((v) => v.list('/g').length), 500)
})

test('group commit respects batchOpsMax', async (ctx) => {
  const s = await started(ctx, { batchOpsMax: 16 })
  await Promise.all(Array.from({ length: 100 }, async (_, i) => await s.propose(putFile(`/g/${i}`, []))))
  assert.is(s.stats.batchOpsLargest, 16)
  assert.ok(s.stats.batches >= 7)
})

test('proposers that keep proposing share batches', async (ctx) => {
  const s = await started(ctx)
  let n = 0
  await Promise.all(Array.from({ length: 16 }, async (_, w) => {
    for (let i = 0; i < 20; i++) {
      await s.propose(putFile(`/w${w}/${i}`, []))
      n++
    }
  }))
  assert.is(n, 320)
  assert.ok(s.stats.batches < 80, `${s.stats.batches} batches for 320 ops`)
})

test('a full queue fails proposals with Unavailable', async (ctx) => {
  const s = await started(ctx, { queueMax: 10 })
  const outcomes = await Promise.all(Array.from({ length: 25 }, async (_, i) =>
    await s.propose(putFile(`/q/${i}`, [])).then(() => 'ok', (err: Error) => err.name)))
  assert.is(outcomes.filter((o) => o === 'ok').length, 10)
  assert.is(outcomes.filter((o) => o === 'Unavailable').length, 15)
  assert.ok((await s.propose(putFile('/q/after', []))).index > 0, 'the queue drains')
})

test('compaction writes a snapshot, drops the log, and a restart restores the same state', async (ctx) => {
  const s = await started(ctx, { compactEvery: 100 })
  for (const op of randomOps(9, 350)) {
    await s.propose(op).catch(() => {})
  }
  assert.is(s.stats.compactions, 3)
  assert.is(await logKeys(s), 50, 'only the entries after the last snapshot remain')
  const before = await stateOf(s)
  await s.stop()
  const t = await started(ctx, { compactEvery: 100 })
  assert.equal(await stateOf(t), before)
  assert.equal(t.status(), { leader: 'node-1', term: 1, commitIndex: 350, appliedIndex: 350 })
  // and it keeps going from there
  assert.is((await t.propose(putFile('/after', []))).index, 351)
})

test('users, tenants with quotas, audit and tokens work on one log and survive compaction and a restart', async (ctx) => {
  const s = await started(ctx, { compactEvery: 10 })
  const at = (p: string): string => toInternalPath('acme', p)
  await s.propose({ type: 'InitCluster', clusterId: 'c1', createdAtMs: 1, admin: 'root', member: member('node-1') })
  await s.propose({ type: 'SetRole', peer: 'alice', role: 'admin', tenant: 'acme' })
  await rejectsWith(s.propose({ type: 'SetRole', peer: 'root', role: 'readonly' }), 'FailedPrecondition')
  await s.propose({ type: 'PutTenant', tenant: { name: 'acme', quotaBytes: 50, quotaFiles: null, requestRate: 5 }, create: true })
  for (let k = 0; k < 5; k++) await s.propose(putFile(at(`/f${k}`), [extent(k)]))
  await rejectsWith(s.propose(putFile(at('/over'), [extent(9, 1)])), 'QuotaExceeded')
  await s.propose({ type: 'SetConfig', key: 'auditRetention', value: 100 })
  for (let k = 0; k < 3; k++) {
    await s.propose({ type: 'AppendAudit', records: Array.from({ length: 50 }, (_, i) => ({ timeMs: k * 50 + i, user: 'alice', role: 'admin', tenant: 'acme', operation: 'fs.put', resource: `/f${i}`, success: true, error: null, count: 1, node: 'node-1' })) })
  }
  await s.propose({ type: 'CreateJoinToken', token: { id: '0123456789abcdef', secretHash: 'sha256:' + 'cd'.repeat(32), createdAtMs: 1, expiresAtMs: 1e12, createdBy: 'root', usesLeft: 2 } })
  await s.propose({ type: 'UseJoinToken', id: '0123456789abcdef', peer: 'n2', nowMs: 10 })
  const read = async (t: LocalMetadataService): Promise<unknown> => await t.read((v) => ({
    users: v.users(), tenants: v.tenants(), audit: v.audit(), tokens: v.joinTokens(), config: v.config()
  }))
  const before = await read(s)
  assert.equal((before as any).tenants, [{ name: 'acme', quotaBytes: 50, quotaFiles: null, requestRate: 5, usedBytes: 50, usedFiles: 5 }])
  assert.is((before as any).audit.checkpoint.seq, 50)
  assert.is((before as any).tokens[0].usesLeft, 1)
  assert.ok(s.stats.compactions >= 1)
  await s.stop()
  const t = await started(ctx)
  assert.equal(await read(t), before)
  const audit = await t.read((v) => v.audit())
  assert.is(firstBrokenAuditEntry(audit.checkpoint, audit.entries), undefined)
  await t.propose({ type: 'DeleteFile', path: at('/f0') })
  await t.propose(putFile(at('/new'), [extent(20)]))
  assert.is(await t.read((v) => v.tenant('acme')?.usedBytes), 50)
})

test('compaction under concurrent load keeps every proposal', async (ctx) => {
  const s = await started(ctx, { compactEvery: 64 })
  await Promise.all(Array.from({ length: 400 }, async (_, i) => await s.propose(putFile(`/c/${i}`, [extent(i)]))))
  const before = await stateOf(s)
  await s.stop() // waits for the compaction that follows the last batch
  assert.ok(s.stats.compactions >= 1)
  const t = await started(ctx)
  assert.equal(await stateOf(t), before)
  assert.is(await t.read((v) => v.list('/c').length), 400)
})

test('an aborted signal fails before anything is written', async (ctx) => {
  const s = await started(ctx)
  await rejectsWith(s.propose(putFile('/x', []), { signal: AbortSignal.abort() }), 'Aborted')
  const c = new AbortController()
  const p = s.propose(putFile('/y', []), { signal: c.signal })
  c.abort() // still queued: not written
  await rejectsWith(p, 'Aborted')
  assert.equal(s.status(), { leader: 'node-1', term: 1, commitIndex: 0, appliedIndex: 0 })
  assert.is((await s.propose(putFile('/z', []))).index, 1)
  await rejectsWith(s.read((v) => v, { signal: AbortSignal.abort() }), 'Aborted')
})

test('an op CBOR cannot carry, or one too large, is InvalidArgument and consumes no index', async (ctx) => {
  const s = await started(ctx, { opBytesMax: 1000 })
  await rejectsWith(s.propose({ type: 'PutFile', path: '/f', size: 0, mtimeMs: 0, extents: [], x: () => {} } as unknown as MetadataOp), 'InvalidArgument')
  await rejectsWith(s.propose(putFile('/f', Array.from({ length: 20 }, (_, i) => extent(i)))), 'InvalidArgument')
  assert.is(s.status().commitIndex, 0)
})

test('ops the log could not replay are refused before they are written', async (ctx) => {
  const s = await started(ctx)
  await rejectsWith(s.propose({ ...putFile('/f', []), mtimeMs: Number.NaN }), 'InvalidArgument')
  await rejectsWith(s.propose({ ...putFile('/f', []), extents: [undefined] } as unknown as MetadataOp), 'InvalidArgument')
  await rejectsWith(s.propose({ ...putFile('/f', []), size: 2n ** 70n } as unknown as MetadataOp), 'InvalidArgument')
  assert.is(s.status().commitIndex, 0)
  // an undefined property is an absent one: logged, then rejected by apply (consuming an index)
  await rejectsWith(s.propose({ type: 'SetRole', peer: 'bob', role: undefined } as unknown as MetadataOp), 'InvalidArgument')
  assert.is(s.status().commitIndex, 1)
  await s.stop()
  assert.is((await started(ctx)).status().appliedIndex, 1)
})

test('the caller may change its op object after propose: the logged bytes are what is applied', async (ctx) => {
  const s = await started(ctx)
  const op = putFile('/m', [extent(1)]) as MetadataOp & { path: string }
  const p = s.propose(op)
  op.path = '/other'
  assert.is((await p).file?.path, '/m')
  await s.stop()
  const t = await started(ctx)
  assert.ok(await t.read((v) => v.getFile('/m')))
})

test('read runs on applied state and passes on what fn throws', async (ctx) => {
  const s = await started(ctx)
  const a = s.propose(putFile('/r/1', []))
  const b = s.propose(putFile('/r/2', []))
  await a
  await b
  assert.is(await s.read((v) => v.list('/r').length), 2)
  await rejectsWith(s.read((v) => v.list('/missing')), 'NotFound')
})

test('stop waits for queued proposals; afterwards every call is Unavailable', async (ctx) => {
  const s = await started(ctx)
  const pending = Array.from({ length: 50 }, async (_, i) => await s.propose(putFile(`/s/${i}`, [])))
  await s.stop()
  assert.is((await Promise.all(pending)).length, 50)
  await rejectsWith(s.propose(putFile('/late', [])), 'Unavailable')
  await rejectsWith(s.read((v) => v.appliedIndex()), 'Unavailable')
  await rejectsWith(s.start(), 'Unavailable')
  await s.stop() // idempotent
  const t = await started(ctx)
  assert.is(t.status().appliedIndex, 50)
})

test('before start, calls are Unavailable', async (ctx) => {
  const s = open(ctx)
  await rejectsWith(s.propose(putFile('/x', [])), 'Unavailable')
  await rejectsWith(s.read((v) => v), 'Unavailable')
})

test('a second service on the same directory is DataDirLocked', async (ctx) => {
  await started(ctx)
  const t = open(ctx)
  await rejectsWith(t.start(), 'DataDirLocked')
})

test('start with an aborted signal is Aborted', async (ctx) => {
  const s = open(ctx)
  await rejectsWith(s.start({ signal: AbortSignal.abort() }), 'Aborted')
})

test.run()
