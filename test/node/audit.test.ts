import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { AUDIT_BATCH_MAX, AUDIT_GENESIS_HASH, InvalidArgumentError, NoQuorumError, auditEntryHash } from '@dfs/api'
import type { AuditCheckpoint, AuditEntry, AuditPage, AuditRecord, AuditVerification, MetadataOp, MetadataView, RpcCallInfo, RpcCallOutcome } from '@dfs/api'
import { AUDIT_DROPPED_OPERATION, AuditRecorder, auditResource, isAudited, type AuditRecorderInit } from '../../src/node/audit.js'
import { AUDIT_PAGE_BYTES_MAX, auditMethods, parseAuditQuery } from '../../src/node/handlers/audit.js'
import type { UnaryMethod } from '../../src/net/rpc/types.js'
import { parseSince } from '../../src/commands/cluster/audit.js'

const NODE = '12D3KooWNode'
const MEMBER = '12D3KooWMember'
const ADMIN = '12D3KooWAdmin'
const TENANT_USER = '12D3KooWTenantUser'
const STRANGER = '12D3KooWStranger'

/** Metadata as the recorder uses it: AppendAudit proposals land in `log`, and can be made to fail. */
class MetadataDouble {
  readonly log: AuditRecord[] = []
  readonly batches: number[] = []
  /** Each proposal takes the next failure (if any) instead of succeeding. */
  readonly failures: Error[] = []
  proposals = 0

  readonly propose = async (op: MetadataOp): Promise<{ ok: true, index: number }> => {
    this.proposals++
    await new Promise((resolve) => setImmediate(resolve))
    const failure = this.failures.shift()
    if (failure !== undefined) throw failure
    if (op.type !== 'AppendAudit') throw new Error(`unexpected op ${op.type}`)
    assert.ok(op.records.length <= AUDIT_BATCH_MAX, 'a batch is at most AUDIT_BATCH_MAX records')
    this.batches.push(op.records.length)
    // the log keeps a copy: later changes to a proposed record must not reach it
    this.log.push(...op.records.map((r) => ({ ...r })))
    return { ok: true, index: this.proposals }
  }

  readonly staleRead = <T>(fn: (view: MetadataView) => T): T => fn({
    user: (peer: string) => peer === ADMIN
      ? { id: ADMIN, role: 'admin', tenant: null }
      : peer === TENANT_USER ? { id: TENANT_USER, role: 'user', tenant: 'acme' } : undefined,
    members: () => [{ id: NODE, name: 'n1', region: 'default', addrs: [] }, { id: MEMBER, name: 'n2', region: 'default', addrs: [] }]
  } as unknown as MetadataView)
}

function recorder (metadata: MetadataDouble, init: Partial<AuditRecorderInit> = {}): AuditRecorder {
  return new AuditRecorder({ nodeId: NODE, metadata, flushIntervalMs: 20, retryDelayMsMin: 5, retryDelayMsMax: 40, stopTimeoutMs: 1000, ...init })
}

let clock = 1_000_000
function call (peer: string, method: string, action: string, params?: unknown): RpcCallInfo {
  return { peer, method, action, kind: 'unary', params, startedAtMs: clock++ }
}
const ok: RpcCallOutcome = { ok: true, durationMs: 3, bytesIn: 10, bytesOut: 10 }
function failed (name: string): RpcCallOutcome {
  return { ok: false, error: { name, message: name }, durationMs: 1, bytesIn: 10, bytesOut: 0 }
}

async function until (cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

test('what is recorded: mutating calls, success or not, and refusals of any call; not reads, node traffic or test hooks', () => {
  assert.ok(isAudited(call(ADMIN, 'fs.put', 'fs.write'), ok))
  assert.ok(isAudited(call(ADMIN, 'fs.rm', 'fs.write'), failed('NotFound')))
  assert.ok(isAudited(call(ADMIN, 'cluster.config.set', 'cluster.admin'), ok))
  assert.ok(isAudited(call(ADMIN, 'user.grant', 'user.admin'), ok))
  assert.ok(isAudited(call(STRANGER, 'cluster.join', 'cluster.join'), failed('InvalidToken')))
  assert.not.ok(isAudited(call(ADMIN, 'fs.get', 'fs.read'), ok))
  assert.not.ok(isAudited(call(ADMIN, 'fs.stat', 'fs.read'), failed('NotFound')))
  assert.not.ok(isAudited(call(ADMIN, 'cluster.audit', 'audit.read'), ok))
  assert.not.ok(isAudited(call(MEMBER, 'extent.put', 'extent.write'), ok))
  assert.not.ok(isAudited(call(MEMBER, 'extent.get', 'extent.read'), ok))
  assert.not.ok(isAudited(call(ADMIN, 'test.partition', 'cluster.admin'), ok))
  assert.not.ok(isAudited(call(STRANGER, 'cluster.identify', 'cluster.join'), ok))
  assert.ok(isAudited(call(STRANGER, 'cluster.identify', 'cluster.join'), failed('RateLimited')))
  for (const refusal of ['PermissionDenied', 'InvalidToken', 'TokenExpired', 'QuotaExceeded', 'RateLimited']) {
    assert.ok(isAudited(call(STRANGER, 'fs.get', 'fs.read'), failed(refusal)), refusal)
    assert.ok(isAudited(call(STRANGER, 'extent.put', 'extent.write'), failed(refusal)), refusal)
  }
})

test('the resource is what the params name, never a secret, and is cut to the field limit', () => {
  assert.is(auditResource(undefined), '')
  assert.is(auditResource({}), '')
  assert.is(auditResource({ path: '/docs/a.bin', sync: 'quorum' }), '/docs/a.bin')
  assert.is(auditResource({ path: '/a', tenant: 'acme' }), 'acme:/a')
  assert.is(auditResource({ src: '/a', dst: '/b' }), '/a -> /b')
  assert.is(auditResource({ key: 'replicationFactor', value: 2 }), 'replicationFactor=2')
  assert.is(auditResource({ kind: 'placement', name: 'zone' }), 'placement zone')
  assert.is(auditResource({ peer: '12D3KooWX', role: 'user', tenant: 'acme' }), 'acme:12D3KooWX')
  assert.is(auditResource({ id: 'tok1' }), 'tok1')
  assert.is(auditResource({ node: 'n2', wait: true }), 'n2')
  assert.is(auditResource({ token: 'secret', name: 'n4', region: 'r', addrs: [] }), 'n4')
  const long = auditResource({ path: '/' + 'x'.repeat(2000) })
  assert.is(long.length, 512)
  assert.ok(long.endsWith('…'))
})

test('records carry who (role and tenant from applied state), what, the outcome and this node', async () => {
  const md = new MetadataDouble()
  const r = recorder(md)
  r.start()
  r.after(call(ADMIN, 'fs.put', 'fs.write', { path: '/a' }), ok)
  r.after(call(TENANT_USER, 'fs.rm', 'fs.write', { path: '/b' }), failed('NotFound'))
  r.after(call(MEMBER, 'cluster.config.set', 'cluster.admin'), failed('PermissionDenied'))
  r.after(call(STRANGER, 'fs.ls', 'fs.read'), failed('PermissionDenied'))
  r.after(call(ADMIN, 'fs.get', 'fs.read', { path: '/a' }), ok)
  await until(() => md.log.length === 4, 'four records')
  await r.stop()
  const [put, rm, member, stranger] = md.log
  assert.equal(put, { timeMs: put.timeMs, user: ADMIN, role: 'admin', tenant: null, operation: 'fs.put', resource: '/a', success: true, error: null, count: 1, node: NODE })
  assert.ok(put.timeMs > 1_000_000)
  assert.equal([rm.role, rm.tenant, rm.success, rm.error, rm.resource], ['user', 'acme', false, 'NotFound', '/b'])
  assert.equal([member.role, member.error, member.resource], ['node', 'PermissionDenied', ''])
  assert.equal([stranger.role, stranger.tenant, stranger.operation], [null, null, 'fs.ls'])
})

test('refusals are coalesced per (user, operation, error) within a window, in order with the rest', async () => {
  const md = new MetadataDouble()
  const r = recorder(md, { flushIntervalMs: 60_000 })
  r.start()
  r.after(call(ADMIN, 'fs.put', 'fs.write', { path: '/1' }), ok)
  for (let i = 0; i < 500; i++) r.after(call(STRANGER, 'fs.put', 'fs.write'), failed('PermissionDenied'))
  for (let i = 0; i < 7; i++) r.after(call(STRANGER, 'fs.ls', 'fs.read'), failed('PermissionDenied'))
  for (let i = 0; i < 3; i++) r.after(call(TENANT_USER, 'fs.put', 'fs.write', { path: '/q' }), failed('QuotaExceeded'))
  // failures that are not refusals are each their own record
  for (let i = 0; i < 2; i++) r.after(call(ADMIN, 'fs.rm', 'fs.write', { path: '/none' }), failed('NotFound'))
  // …but a stranger's are, whatever the error
  for (let i = 0; i < 40; i++) r.after(call(STRANGER, 'cluster.join', 'cluster.join'), failed('InvalidArgument'))
  r.after(call(ADMIN, 'fs.put', 'fs.write', { path: '/2' }), ok)
  await r.stop()
  assert.equal(md.log.map((e) => [e.user, e.operation, e.error, e.count]), [
    [ADMIN, 'fs.put', null, 1],
    [STRANGER, 'fs.put', 'PermissionDenied', 500],
    [STRANGER, 'fs.ls', 'PermissionDenied', 7],
    [TENANT_USER, 'fs.put', 'QuotaExceeded', 3],
    [ADMIN, 'fs.rm', 'NotFound', 1],
    [ADMIN, 'fs.rm', 'NotFound', 1],
    [STRANGER, 'cluster.join', 'InvalidArgument', 40],
    [ADMIN, 'fs.put', null, 1]
  ])
})

test('a flood of refusals costs one record per window', async () => {
  const md = new MetadataDouble()
  const r = recorder(md, { flushIntervalMs: 10 })
  r.start()
  for (let burst = 0; burst < 5; burst++) {
    for (let i = 0; i < 1000; i++) r.after(call(STRANGER, 'cluster.config.set', 'cluster.admin'), failed('PermissionDenied'))
    const before = md.log.length
    await until(() => md.log.length > before, 'the burst written')
  }
  await r.stop()
  assert.is(md.log.length, 5)
  assert.is(md.log.reduce((n, e) => n + e.count, 0), 5000)
})

test('batches are at most AUDIT_BATCH_MAX records, proposed in order, and a full batch does not wait for the interval', async () => {
  const md = new MetadataDouble()
  const r = recorder(md, { flushIntervalMs: 60_000 })
  r.start()
  const n = AUDIT_BATCH_MAX * 2 + 10
  for (let i = 0; i < n; i++) r.after(call(ADMIN, 'fs.put', 'fs.write', { path: `/f${i}` }), ok)
  // the interval is a minute: only a full window wakes the loop
  await until(() => md.log.length >= AUDIT_BATCH_MAX * 2, 'the full batches')
  await r.stop()
  assert.is(md.log.length, n)
  assert.ok(md.batches.every((b) => b <= AUDIT_BATCH_MAX))
  assert.equal(md.log.map((e) => e.resource), Array.from({ length: n }, (_, i) => `/f${i}`))
})

test('past the queue bound, records become per-(user, operation, error) counters, and what exceeds those is counted as dropped', async () => {
  const md = new MetadataDouble()
  // no quorum for a while: the queue fills
  for (let i = 0; i < 5; i++) md.failures.push(new NoQuorumError('no quorum'))
  const r = recorder(md, { queueMax: 10, countersMax: 2, flushIntervalMs: 5, retryDelayMsMin: 30 })
  r.start()
  for (let i = 0; i < 10; i++) r.after(call(ADMIN, 'fs.put', 'fs.write', { path: `/f${i}` }), ok)
  assert.is(r.pending, 10)
  for (let i = 0; i < 1000; i++) r.after(call(ADMIN, 'fs.put', 'fs.write', { path: `/over${i}` }), ok)
  for (let i = 0; i < 1000; i++) r.after(call(STRANGER, 'fs.put', 'fs.write'), failed('PermissionDenied'))
  // a third key finds no counter left
  for (let i = 0; i < 4; i++) r.after(call(TENANT_USER, 'fs.rm', 'fs.write'), failed('NotFound'))
  assert.is(r.pending, 2010, 'ten queued and two counters')
  await until(() => md.log.reduce((n, e) => n + e.count, 0) === 2014, 'everything written or counted')
  await r.stop()
  assert.equal(md.log.slice(0, 10).map((e) => e.resource), Array.from({ length: 10 }, (_, i) => `/f${i}`))
  const rest = md.log.slice(10).map((e) => [e.user, e.operation, e.error, e.count])
  assert.equal(rest, [
    [ADMIN, 'fs.put', null, 1000],
    [STRANGER, 'fs.put', 'PermissionDenied', 1000],
    [NODE, AUDIT_DROPPED_OPERATION, null, 4]
  ])
})

test('a proposal without quorum is retried with backoff, keeping order; one the log refuses is dropped and counted', async () => {
  const md = new MetadataDouble()
  md.failures.push(new NoQuorumError('no quorum'), new NoQuorumError('no quorum'), new NoQuorumError('no quorum'))
  const r = recorder(md)
  r.start()
  r.after(call(ADMIN, 'fs.put', 'fs.write', { path: '/1' }), ok)
  await until(() => md.proposals >= 2, 'a retry')
  r.after(call(ADMIN, 'fs.put', 'fs.write', { path: '/2' }), ok)
  await until(() => md.log.length === 2, 'both written')
  assert.equal(md.log.map((e) => e.resource), ['/1', '/2'])
  assert.ok(md.proposals >= 4)

  md.failures.push(new InvalidArgumentError('bad record'))
  r.after(call(ADMIN, 'fs.put', 'fs.write', { path: '/3' }), ok)
  r.after(call(STRANGER, 'fs.put', 'fs.write'), failed('PermissionDenied'))
  r.after(call(STRANGER, 'fs.put', 'fs.write'), failed('PermissionDenied'))
  await until(() => md.log.some((e) => e.operation === AUDIT_DROPPED_OPERATION), 'the dropped count')
  await r.stop()
  const dropped = md.log[md.log.length - 1]
  assert.equal([dropped.operation, dropped.count, dropped.user, dropped.role], [AUDIT_DROPPED_OPERATION, 3, NODE, 'node'])
})

test('stop writes what is queued, and gives up at its deadline when there is no quorum', async () => {
  const md = new MetadataDouble()
  const r = recorder(md, { flushIntervalMs: 60_000 })
  r.start()
  for (let i = 0; i < 3; i++) r.after(call(ADMIN, 'fs.put', 'fs.write', { path: `/${i}` }), ok)
  await r.stop()
  assert.is(md.log.length, 3)
  await r.stop()

  const down = new MetadataDouble()
  for (let i = 0; i < 1000; i++) down.failures.push(new NoQuorumError('no quorum'))
  const r2 = recorder(down, { flushIntervalMs: 60_000, stopTimeoutMs: 100 })
  r2.start()
  r2.after(call(ADMIN, 'fs.put', 'fs.write', { path: '/x' }), ok)
  const t0 = Date.now()
  await r2.stop()
  assert.ok(Date.now() - t0 < 2000, 'stop keeps to its deadline')
  assert.is(down.log.length, 0)
  assert.is(r2.pending, 1)
})

test('after is synchronous and never throws, also when looking up the caller fails', () => {
  const md = new MetadataDouble()
  const r = new AuditRecorder({
    nodeId: NODE,
    metadata: { propose: md.propose, staleRead: () => { throw new Error('not ready') } }
  })
  const result = r.after(call(STRANGER, 'fs.put', 'fs.write'), failed('PermissionDenied')) as unknown
  assert.is(result, undefined)
  assert.is(r.pending, 1)
})

/** A chain of `n` entries after `checkpoint`, as the state machine appends them. */
function chain (checkpoint: AuditCheckpoint, records: AuditRecord[]): AuditEntry[] {
  const out: AuditEntry[] = []
  let prev = checkpoint
  for (const r of records) {
    const unhashed = { ...r, seq: prev.seq + 1 }
    const e = { ...unhashed, hash: auditEntryHash(prev.hash, unhashed) }
    out.push(e)
    prev = e
  }
  return out
}

function rec (i: number, over: Partial<AuditRecord> = {}): AuditRecord {
  return { timeMs: 1000 + i, user: ADMIN, role: 'admin', tenant: null, operation: 'fs.put', resource: `/f${i}`, success: true, error: null, count: 1, node: NODE, ...over }
}

/** `cluster.audit` over a log held in memory (the view the handler reads, linearizable or not). */
function auditHandler (log: { checkpoint: AuditCheckpoint, entries: AuditEntry[] }): (peer: string, raw: unknown) => Promise<AuditPage | AuditVerification> {
  const view = {
    audit: () => log,
    user: (peer: string) => peer === TENANT_USER ? { id: TENANT_USER, role: 'admin', tenant: 'acme' } : peer === ADMIN ? { id: ADMIN, role: 'admin', tenant: null } : undefined
  } as unknown as MetadataView
  const [method] = auditMethods({ nodeId: NODE, metadata: { read: async (fn) => fn(view) } }) as Array<UnaryMethod<unknown, AuditPage | AuditVerification>>
  return async (peer, raw) => await method.handle({ peer, params: method.params(raw), signal: AbortSignal.timeout(5000) })
}

test('cluster.audit params: defaults, bounds and types are checked', () => {
  assert.equal(parseAuditQuery({}), { limit: 100, failed: false, verify: false })
  assert.equal(parseAuditQuery(undefined), { limit: 100, failed: false, verify: false })
  assert.equal(parseAuditQuery({ limit: 10_000, sinceMs: 5, user: ADMIN, failed: true, beforeSeq: 9 }),
    { limit: 10_000, failed: true, verify: false, sinceMs: 5, user: ADMIN, beforeSeq: 9 })
  for (const bad of [{ limit: 0 }, { limit: 10_001 }, { limit: 1.5 }, { sinceMs: -1 }, { user: 7 }, { failed: 'yes' }, { beforeSeq: 0 }, { verify: 1 }, [], 'x']) {
    assert.throws(() => parseAuditQuery(bad), (err: Error) => err.name === 'InvalidArgument', JSON.stringify(bad))
  }
})

test('cluster.audit answers the newest matching entries, newest last, and filters by time, user, outcome and the caller\'s tenant', async () => {
  const records = Array.from({ length: 30 }, (_, i) => rec(i, i % 3 === 0
    ? { user: STRANGER, role: null, success: false, error: 'PermissionDenied' }
    : i % 3 === 1 ? { user: TENANT_USER, role: 'admin', tenant: 'acme' } : {}))
  const log = { checkpoint: { seq: 0, hash: AUDIT_GENESIS_HASH }, entries: chain({ seq: 0, hash: AUDIT_GENESIS_HASH }, records) }
  const call = auditHandler(log)
  const all = await call(ADMIN, {}) as AuditPage
  assert.is(all.entries.length, 30)
  assert.equal([all.more, all.node], [false, NODE])
  const last5 = await call(ADMIN, { limit: 5 }) as AuditPage
  assert.equal(last5.entries.map((e) => e.seq), [26, 27, 28, 29, 30])
  const older = await call(ADMIN, { limit: 3, beforeSeq: 26 }) as AuditPage
  assert.equal(older.entries.map((e) => e.seq), [23, 24, 25])
  const failed = await call(ADMIN, { failed: true }) as AuditPage
  assert.ok(failed.entries.length === 10 && failed.entries.every((e) => e.user === STRANGER))
  const byUser = await call(ADMIN, { user: ADMIN }) as AuditPage
  assert.ok(byUser.entries.length === 10 && byUser.entries.every((e) => e.user === ADMIN))
  const since = await call(ADMIN, { sinceMs: 1025 }) as AuditPage
  assert.equal(since.entries.map((e) => e.seq), [26, 27, 28, 29, 30])
  // a tenant's admin sees its tenant's entries only, whatever it asks
  const tenant = await call(TENANT_USER, { user: STRANGER }) as AuditPage
  assert.equal(tenant.entries, [])
  const own = await call(TENANT_USER, {}) as AuditPage
  assert.ok(own.entries.length === 10 && own.entries.every((e) => e.tenant === 'acme'))
})

test('cluster.audit pages an answer that would not fit a frame', async () => {
  const long = 'é'.repeat(500)
  const records = Array.from({ length: 2000 }, (_, i) => rec(i, { operation: long, resource: long }))
  const log = { checkpoint: { seq: 0, hash: AUDIT_GENESIS_HASH }, entries: chain({ seq: 0, hash: AUDIT_GENESIS_HASH }, records) }
  const call = auditHandler(log)
  const first = await call(ADMIN, { limit: 2000 }) as AuditPage
  assert.ok(first.more)
  assert.ok(first.entries.length < 2000 && first.entries.length > 100)
  assert.ok(Buffer.byteLength(JSON.stringify(first.entries)) <= AUDIT_PAGE_BYTES_MAX * 1.1)
  assert.is(first.entries[first.entries.length - 1].seq, 2000)
  let seen = first.entries.length
  let before = first.entries[0].seq
  while (true) {
    const page = await call(ADMIN, { limit: 2000 - seen, beforeSeq: before }) as AuditPage
    seen += page.entries.length
    assert.is(page.entries[page.entries.length - 1].seq, before - 1, 'pages join up')
    if (!page.more) break
    before = page.entries[0].seq
  }
  assert.is(seen, 2000)
})

test('cluster.audit --verify checks the chain from its checkpoint and names the first bad entry', async () => {
  const checkpoint = { seq: 41, hash: 'a'.repeat(64) }
  const entries = chain(checkpoint, Array.from({ length: 10 }, (_, i) => rec(i)))
  const log = { checkpoint, entries }
  const call = auditHandler(log)
  assert.equal(await call(ADMIN, { verify: true }), { verified: true, entries: 10, head: entries[9].hash, node: NODE })
  // a tenant's admin checks the whole chain too
  assert.equal(await call(TENANT_USER, { verify: true }), { verified: true, entries: 10, head: entries[9].hash, node: NODE })
  assert.equal(await auditHandler({ checkpoint, entries: [] })(ADMIN, { verify: true }), { verified: true, entries: 0, head: checkpoint.hash, node: NODE })

  log.entries = entries.map((e) => e.seq === 45 ? { ...e, resource: '/innocent' } : e)
  try {
    await call(ADMIN, { verify: true })
    assert.unreachable('a changed entry verifies')
  } catch (err) {
    assert.is((err as Error).name, 'AuditChainBroken')
    assert.is((err as { details: { seq: number } }).details.seq, 45)
  }
  // a removed entry breaks the chain at the next one
  log.entries = entries.filter((e) => e.seq !== 47)
  await call(ADMIN, { verify: true }).then(() => assert.unreachable(), (err: { name: string, details: { seq: number } }) => {
    assert.equal([err.name, err.details.seq], ['AuditChainBroken', 48])
  })
})

test('--since takes an ISO 8601 time or a duration back from now', () => {
  const now = Date.parse('2026-03-01T12:00:00Z')
  assert.is(parseSince('10m', now), now - 600_000)
  assert.is(parseSince('1h30m', now), now - 5_400_000)
  assert.is(parseSince('2026-03-01T11:00:00Z', now), now - 3_600_000)
  assert.is(parseSince('2026-03-01', now), Date.parse('2026-03-01'))
  for (const bad of ['yesterday', '10 minutes', '', 'm10', '2026-13-45T99:00:00Z']) {
    assert.throws(() => parseSince(bad, now), (err: Error) => err.name === 'InvalidArgument', bad)
  }
})

test.run()
