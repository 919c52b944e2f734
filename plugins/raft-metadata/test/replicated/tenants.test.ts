import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { PrivateKey } from '@libp2p/interface'
import { auditEntryHash, AUDIT_GENESIS_HASH, firstBrokenAuditEntry, tenantRootPath, toInternalPath } from '@dfs/api'
import type { TenantRecord } from '@dfs/api'
import { RaftMetadataService } from '../../src/replicated/index.js'
import type { RaftMetadataServiceInit } from '../../src/replicated/index.js'
import { extent, member, putFile } from '../state-machine/fixtures.js'
import { groupOfShard, shardOfPath } from '../../src/shards/index.js'
import { newKey, plain, startHost, stopQuietly, testLogger, waitFor } from '../transport/libp2p-network.js'
import type { TestHost } from '../transport/libp2p-network.js'

interface Node { key: PrivateKey, port: number, host?: TestHost, service?: RaftMetadataService }
interface Ctx { dir: string, nodes: Node[] }

const test = suite<Ctx>('RaftMetadataService: users, tenants, audit over 3 nodes', { dir: '', nodes: [] })

test.before.each(async (ctx) => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'dfs-raft-tenants-'))
  ctx.nodes = []
})

test.after.each(async (ctx) => {
  for (const n of ctx.nodes) {
    await n.service?.stop().catch(() => {})
    await stopQuietly(n.host?.node)
  }
  await rm(ctx.dir, { recursive: true, force: true })
})

/** Starts (or, with the nodes already in ctx, restarts) three services on the same keys, ports and dirs. */
async function start (ctx: Ctx, extra: Partial<RaftMetadataServiceInit> = {}): Promise<RaftMetadataService[]> {
  if (ctx.nodes.length === 0) for (let i = 0; i < 3; i++) ctx.nodes.push({ key: await newKey(), port: 0 })
  for (const n of ctx.nodes) { n.host = await startHost(n.key, n.port); n.port = n.host.port }
  const peers = ctx.nodes.map((m) => ({ id: m.host?.id ?? '', addrs: m.host?.addrs ?? [] }))
  const out = ctx.nodes.map((n, i) => {
    const host = n.host as TestHost
    n.service = new RaftMetadataService({
      dir: join(ctx.dir, `node-${i}`), nodeId: host.id, logger: testLogger(`[m${i}]`), network: host.network, peers, tickMs: 20, ...extra
    })
    return n.service
  })
  await Promise.all(out.map(async (s) => { await s.start() }))
  await waitFor(() => new Set(out.map((s) => s.status().leader)).size === 1 && out[0].status().leader !== undefined, 5000, 'a leader')
  return out
}

async function stopAll (ctx: Ctx): Promise<void> {
  for (const n of ctx.nodes) {
    await n.service?.stop()
    await n.host?.node.stop()
    n.service = undefined
    n.host = undefined
  }
}

/** A tenant name whose root lies in a shard that data group `group` (of `groups`) owns. */
function tenantIn (group: number, groups = 3, skip = 0): string {
  let found = 0
  for (let i = 0; ; i++) {
    if (groupOfShard(shardOfPath(tenantRootPath(`t${i}`)), groups) === group && found++ === skip) return `t${i}`
  }
}

function tenant (name: string, quotaBytes: number | null = null, quotaFiles: number | null = null): TenantRecord {
  return { name, quotaBytes, quotaFiles, requestRate: null }
}

async function rejectsNamed (p: Promise<unknown>, name: string): Promise<Error & { details?: Record<string, unknown> }> {
  try {
    await p
  } catch (err) {
    assert.is((err as Error).name, name, (err as Error).message)
    return err as Error & { details?: Record<string, unknown> }
  }
  assert.unreachable(`expected ${name}`)
  throw new Error('unreachable')
}

test('tenant ops go to the data group of the tenant root; tenants() gathers every group; quotas hold; usage survives a restart', plain(async (ctx) => {
  const services = await start(ctx, { snapshotEvery: 8, snapshotKeepEntries: 2 })
  await services[0].propose({ type: 'InitCluster', clusterId: 'c1', createdAtMs: 1, admin: 'root', member: member('n1') })
  const names = [tenantIn(3), tenantIn(1), tenantIn(2), tenantIn(1, 3, 1)]
  for (const [i, name] of names.entries()) {
    await services[i % 3].propose({ type: 'PutTenant', tenant: tenant(name, 100, 3), create: true })
  }
  await rejectsNamed(services[1].propose({ type: 'PutTenant', tenant: tenant(names[0]), create: true }), 'AlreadyExists')
  await rejectsNamed(services[1].propose({ type: 'PutTenant', tenant: tenant('bad name'), create: true }), 'InvalidArgument')
  // each record sits in the state of its own group only
  const groups = services[0].groups()
  assert.is(groups.groups.filter((g) => g.kind === 'data').length, 3)
  for (const s of services) {
    const listed = await s.read((v) => v.tenants(), { scope: { paths: ['/'] } })
    assert.equal(listed.map((t) => t.name), [...names].sort())
    for (const name of names) {
      const one = await s.read((v) => v.tenant(name), { scope: { paths: [tenantRootPath(name)] } })
      assert.equal(one, { ...tenant(name, 100, 3), usedBytes: 0, usedFiles: 0 })
    }
  }
  // quotas: exactly 100 bytes fits, one more does not, and nothing of the refused put is left
  const acme = names[0]
  const at = (p: string): string => toInternalPath(acme, p)
  await services[1].propose(putFile(at('/a'), [extent(1, 60)]))
  await services[2].propose(putFile(at('/b'), [extent(2, 40)]))
  const err = await rejectsNamed(services[0].propose(putFile(at('/c'), [extent(3, 1)])), 'QuotaExceeded')
  assert.is(err.details?.tenant, acme)
  assert.is(err.details?.quotaBytes, 100)
  assert.is(await services[0].read((v) => v.getExtent(extent(3).id), { scope: { extents: true } }), undefined)
  await rejectsNamed(services[0].propose(putFile(toInternalPath('nobody', '/x'), [extent(4)])), 'NotFound')
  await rejectsNamed(services[0].propose({ type: 'RemoveTenant', name: acme }), 'FailedPrecondition')
  await services[0].propose({ type: 'DeleteFile', path: at('/b') })
  await services[0].propose(putFile(at('/a'), [extent(5, 70)])) // replace: 60 → 70
  for (let k = 0; k < 10; k++) await services[k % 3].propose(putFile(`/plain/${k}`, [extent(100 + k)])) // snapshots on the way
  await services[2].propose({ type: 'RemoveTenant', name: names[3] })
  const expected = await services[0].read((v) => v.tenants())
  assert.equal(expected.find((t) => t.name === acme), { ...tenant(acme, 100, 3), usedBytes: 70, usedFiles: 1 })
  assert.is(expected.length, 3)

  await stopAll(ctx)
  const again = await start(ctx)
  for (const s of again) {
    await waitFor(() => s.staleRead?.((v) => v.tenants().length) === 3, 10_000, 'the tenants after the restart')
    assert.equal(await s.read((v) => v.tenants()), expected)
  }
  await rejectsNamed(again[1].propose(putFile(at('/d'), [extent(6, 31)])), 'QuotaExceeded')
  await again[1].propose(putFile(at('/d'), [extent(7, 30)]))
  assert.is(await again[2].read((v) => v.tenant(acme)?.usedBytes, { scope: { paths: [tenantRootPath(acme)] } }), 100)
}))

test('users, join tokens, audit and the cluster key live in the system group and replicate', plain(async (ctx) => {
  const services = await start(ctx)
  const key = { publicKey: 'K'.repeat(43), privateKey: 'P'.repeat(64) }
  await services[0].propose({ type: 'InitCluster', clusterId: 'c1', createdAtMs: 1, admin: 'root', member: member('n1'), clusterKey: key })
  await services[1].propose({ type: 'SetRole', peer: 'alice', role: 'user', tenant: 'acme' })
  await rejectsNamed(services[2].propose({ type: 'SetRole', peer: 'root', role: null }), 'FailedPrecondition')
  const id = '00000000000000aa'
  await services[2].propose({
    type: 'CreateJoinToken',
    token: { id, secretHash: 'sha256:' + 'ab'.repeat(32), createdAtMs: 1000, expiresAtMs: 9000, createdBy: 'root', usesLeft: 1, forPeer: 'newbie' }
  })
  await rejectsNamed(services[0].propose({ type: 'UseJoinToken', id, peer: 'other', nowMs: 2000 }), 'InvalidToken')
  await services[0].propose({ type: 'UseJoinToken', id, peer: 'newbie', nowMs: 2000 })
  await rejectsNamed(services[1].propose({ type: 'UseJoinToken', id, peer: 'newbie', nowMs: 2000 }), 'InvalidToken')
  const record = { timeMs: 5, user: 'alice', role: 'user' as const, tenant: 'acme', operation: 'fs.put', resource: '/x', success: true, error: null, count: 1, node: 'n1' }
  await services[1].propose({ type: 'AppendAudit', records: [record, { ...record, success: false, error: 'QuotaExceeded' }] })
  for (const s of services) {
    const seen = await s.read((v) => ({ users: v.users(), tokens: v.joinTokens(), audit: v.audit(), key: v.clusterKey(), pub: v.cluster()?.publicKey }),
      { scope: { system: true } })
    assert.equal(seen.users, [{ id: 'alice', role: 'user', tenant: 'acme' }, { id: 'root', role: 'admin', tenant: null }])
    assert.equal(seen.tokens, [])
    assert.equal(seen.key, key)
    assert.is(seen.pub, key.publicKey)
    assert.equal(seen.audit.entries.map((e) => e.seq), [1, 2])
    assert.is(seen.audit.entries[0].hash, auditEntryHash(AUDIT_GENESIS_HASH, { ...record, seq: 1 }))
    assert.is(firstBrokenAuditEntry(seen.audit.checkpoint, seen.audit.entries), undefined)
  }
}))

test.run()
