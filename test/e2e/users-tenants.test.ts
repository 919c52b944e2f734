import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { RpcMethodName } from '@dfs/api'
import { DfsClient } from '../../src/client/index.js'
import { putFile } from '../../src/client/files.js'
import { peerIdString, readKeyFile } from '../../src/net/keys.js'
import { countExtents } from './extents-on-disk.js'
import { Sandbox, waitFor, type NodeHandle } from './harness.js'

/**
 * Users, roles, tenants, quotas and rate limits on one three-node cluster of real `dfs` processes:
 * every role against a representative set of fs and cluster calls (over real libp2p, as each
 * identity), tenant isolation both ways, quotas at the boundary with no extents left behind, a grant
 * and a revocation taking effect on another node within a second, and RateLimited past a rate.
 */
const test = suite('e2e: users, roles and tenants')
const FAST = ['--heartbeat-ms', '200', '--failure-timeout-ms', '1500']

let sb: Sandbox
const nodes: NodeHandle[] = []
/** Key file and PeerId of each identity by name (`admin` is the sandbox's, which created the cluster). */
const ids = new Map<string, { path: string, id: string }>()
const clients: DfsClient[] = []
/** When the last file was removed or replaced: other nodes delete its copies after a grace (10 s). */
let lastReleaseAtMs = 0

test.before(async () => { sb = await Sandbox.create() })
test.after(async () => {
  for (const c of clients) await c.close().catch(() => {})
  for (const n of nodes) await n.stop()
  await sb.cleanup()
})

async function identity (name: string): Promise<{ path: string, id: string }> {
  let known = ids.get(name)
  if (known === undefined) {
    const path = name === 'admin' ? sb.env.DFS_IDENTITY as string : await sb.identity(name)
    known = { path, id: peerIdString(await readKeyFile(path)) }
    ids.set(name, known)
  }
  return known
}

/** An in-process session of identity `name` (a key file path also works) with `node`. */
async function session (name: string, node: NodeHandle = nodes[0]): Promise<DfsClient> {
  const identityPath = name.includes('/') ? name : (await identity(name)).path
  const c = await DfsClient.open({ node: node.addr, identityPath, dataDir: sb.dir, timeoutMs: 10_000 })
  clients.push(c)
  return c
}

/** `dfs ARGS --json` as identity `name` through the first node. */
async function dfs (name: string, args: string[]): Promise<{ code: number | null, json: any, stderr: string }> {
  return await sb.run([...args, '--json', '--node', nodes[0].addr], { env: { DFS_IDENTITY: (await identity(name)).path } })
}

/** The error name a call fails with, or 'ok'. */
async function outcome (c: DfsClient, method: RpcMethodName, params: Record<string, unknown>): Promise<string> {
  return await c.rpc.callUnchecked(method, params, { timeoutMs: 10_000 }).then(() => 'ok', (err: Error) => err.name)
}

async function put (c: DfsClient, remote: string, bytes: Uint8Array, tenant?: string): Promise<string> {
  const local = join(sb.dir, `put-${randomBytes(4).toString('hex')}`)
  await writeFile(local, bytes)
  return await putFile(c, local, remote, undefined, tenant !== undefined ? { tenant } : {}).then(() => 'ok', (err: Error) => err.name)
}

test('a cluster of three; a member\'s key is not a user', async () => {
  nodes.push(await sb.startNode({ args: ['--name', 'n1', ...FAST] }))
  const t = await sb.run(['cluster', 'token', 'create', '--uses', '2', '--json', '--node', nodes[0].addr])
  assert.is(t.code, 0, t.stderr)
  for (const name of ['n2', 'n3']) nodes.push(await sb.startNode({ args: ['--name', name, '--peers', nodes[0].addr, '--join-token', t.json.token, ...FAST] }))
  await waitFor(async () => {
    const r = await sb.run(['cluster', 'nodes', '--json', '--node', nodes[0].addr])
    const ns = r.json?.nodes ?? []
    return ns.length === 3 && ns.every((n: any) => n.voter && n.health === 'healthy') ? true : undefined
  }, 30_000, 'three healthy voters')

  // n2's own key used as a client of n1: node work only
  const m = await session(join(nodes[1].dataDir, 'node.key'), nodes[0])
  for (const [method, params] of [['fs.ls', { path: '/' }], ['cluster.status', {}], ['cluster.config.set', { key: 'fill-limit', value: '0.8' }], ['user.list', {}]] as const) {
    assert.is(await outcome(m, method, params), 'PermissionDenied', `${method} with a member's key`)
  }
  await m.close()
  // and node work is for members only: not even the cluster's admin asks it
  assert.is(await outcome(await session('admin', nodes[1]), 'node.replication', {}), 'PermissionDenied')
  // the nodes' own questions to each other still work (a node that is not the coordinator asks it)
  for (const n of nodes) {
    const r = await sb.run(['cluster', 'replication', '--json', '--node', n.addr])
    assert.is(r.code, 0, r.stderr)
  }
})

test('tenants and grants through the CLI; a tenant admin manages its tenant only', async () => {
  const admin = 'admin'
  let r = await dfs(admin, ['tenant', 'create', 'acme', '--quota-bytes', '20000', '--quota-files', '3'])
  assert.is(r.code, 0, r.stderr)
  assert.equal(r.json, { name: 'acme', quotaBytes: 20000, quotaFiles: 3, requestRate: null })
  for (const name of ['beta', 'gamma']) assert.is((await dfs(admin, ['tenant', 'create', name])).code, 0)
  assert.is((await dfs(admin, ['tenant', 'set', 'gamma', '--quota-files', '1'])).json.quotaFiles, 1)
  assert.is((await dfs(admin, ['tenant', 'create', 'acme'])).json.error.name, 'AlreadyExists')

  const grants: Array<[string, string, string?]> = [['alice', 'user'], ['rita', 'readonly'], ['tadmin', 'admin', 'acme'], ['buser', 'user', 'beta']]
  for (const [name, role, tenant] of grants) {
    r = await dfs(admin, ['user', 'grant', (await identity(name)).id, role, ...(tenant !== undefined ? ['--tenant', tenant] : [])])
    assert.is(r.code, 0, r.stderr)
    assert.equal(r.json, { id: (await identity(name)).id, role, tenant: tenant ?? null })
  }
  assert.is((await dfs(admin, ['user', 'grant', (await identity('x')).id, 'user', '--tenant', 'nope'])).json.error.name, 'NotFound')
  assert.is((await dfs(admin, ['user', 'grant', 'not-a-peer-id', 'user'])).json.error.name, 'InvalidArgument')

  // the tenant admin grants into its own tenant (by default), and nowhere else
  r = await dfs('tadmin', ['user', 'grant', (await identity('tuser')).id, 'user'])
  assert.equal(r.json, { id: (await identity('tuser')).id, role: 'user', tenant: 'acme' })
  assert.is((await dfs('tadmin', ['user', 'grant', (await identity('y')).id, 'user', '--tenant', 'beta'])).json.error.name, 'PermissionDenied')
  assert.is((await dfs('tadmin', ['user', 'grant', (await identity('alice')).id, 'readonly', '--tenant', 'acme'])).json.error.name, 'PermissionDenied',
    'a user of another namespace is not its to change')
  assert.is((await dfs('tadmin', ['user', 'revoke', (await identity('alice')).id])).json.error.name, 'PermissionDenied')
  r = await dfs('tadmin', ['user', 'list'])
  assert.equal(r.json.users.map((u: any) => u.tenant), ['acme', 'acme'])
  assert.is((await dfs('tadmin', ['tenant', 'list'])).json.error.name, 'PermissionDenied')
  assert.is((await dfs('tadmin', ['tenant', 'create', 'mine'])).json.error.name, 'PermissionDenied')

  r = await dfs(admin, ['user', 'list'])
  assert.is(r.json.users.length, 6)
  const adminId = (await identity('admin')).id
  assert.ok(r.json.users.some((u: any) => u.id === adminId && u.role === 'admin' && u.tenant === null))
  // the last cluster-wide admin stays
  assert.is((await dfs(admin, ['user', 'revoke', (await identity('admin')).id])).json.error.name, 'FailedPrecondition')
})

test('every role on fs and cluster calls', async () => {
  const sessions = new Map<string, DfsClient>()
  for (const name of ['admin', 'alice', 'rita', 'tadmin', 'tuser', 'buser']) sessions.set(name, await session(name))
  const s = (name: string): DfsClient => sessions.get(name) as DfsClient
  assert.is(await put(s('admin'), '/docs/a.txt', Buffer.from('default namespace')), 'ok')
  const calls: Array<[string, RpcMethodName, Record<string, unknown>]> = [
    ['ls', 'fs.ls', { path: '/' }],
    ['stat', 'fs.stat', { path: '/docs/a.txt' }],
    ['status', 'cluster.status', {}],
    ['nodes', 'cluster.nodes', {}],
    ['config set', 'cluster.config.set', { key: 'fill-limit', value: '0.9' }],
    ['users', 'user.list', {}]
  ]
  const expected: Record<string, string[]> = {
    // ls, stat, status, nodes, config set, users
    admin: ['ok', 'ok', 'ok', 'ok', 'ok', 'ok'],
    alice: ['ok', 'ok', 'ok', 'ok', 'PermissionDenied', 'PermissionDenied'],
    rita: ['ok', 'ok', 'ok', 'ok', 'PermissionDenied', 'PermissionDenied'],
    // a tenant's users do not see /docs/a.txt: it is in the default namespace
    tadmin: ['ok', 'NotFound', 'ok', 'ok', 'PermissionDenied', 'ok'],
    tuser: ['ok', 'NotFound', 'ok', 'ok', 'PermissionDenied', 'PermissionDenied']
  }
  for (const [name, want] of Object.entries(expected)) {
    const got = []
    for (const [, method, params] of calls) got.push(await outcome(s(name), method, params))
    assert.equal(got, want, `${name}: ${calls.map((c) => c[0]).join(', ')}`)
  }
  // writes
  assert.is(await put(s('alice'), '/alice/x', Buffer.from('x')), 'ok')
  assert.is(await outcome(s('alice'), 'fs.rm', { path: '/alice/x' }), 'ok')
  assert.is(await put(s('rita'), '/rita/x', Buffer.from('x')), 'PermissionDenied')
  assert.is(await outcome(s('rita'), 'fs.rm', { path: '/docs/a.txt' }), 'PermissionDenied')
  assert.is(await put(s('tadmin'), '/by-admin', Buffer.from('a')), 'ok')
  // naming a tenant: cluster-wide admins only, and a tenant's users only their own
  assert.is(await outcome(s('alice'), 'fs.ls', { path: '/', tenant: 'acme' }), 'PermissionDenied')
  assert.is(await outcome(s('tuser'), 'fs.ls', { path: '/', tenant: 'beta' }), 'PermissionDenied')
  assert.is(await outcome(s('tuser'), 'fs.ls', { path: '/', tenant: 'acme' }), 'ok')
  assert.is(await outcome(s('admin'), 'fs.ls', { path: '/', tenant: 'nope' }), 'NotFound')
  // no client path names a tenant's root directly
  assert.is(await outcome(s('admin'), 'fs.ls', { path: '/\u0001acme' }), 'InvalidArgument')
  assert.is(await put(s('admin'), '/\u0001acme/sneaky', Buffer.from('x')), 'InvalidArgument')
})

/**
 * Every method a node serves against every kind of caller. Authorization runs before a call's params
 * are read, so params that no method accepts (a string) tell the two apart without changing anything:
 * an authorized call fails with InvalidArgument, a refused one with PermissionDenied. The table below
 * is the rules written out again, not read from src/security.
 */
test('the role table: every method against every kind of caller', async () => {
  const everyone = ['cluster.join']
  const allowed: Record<string, string[]> = {
    admin: ['fs.read', 'fs.write', 'cluster.read', 'cluster.admin', 'user.admin', 'audit.read'],
    alice: ['fs.read', 'fs.write', 'cluster.read'],
    rita: ['fs.read', 'cluster.read'],
    tadmin: ['fs.read', 'fs.write', 'cluster.read', 'user.admin', 'audit.read'],
    tuser: ['fs.read', 'fs.write', 'cluster.read'],
    member: ['extent.read', 'extent.write', 'node.peer'],
    stranger: []
  }
  // every method of the contract but test.partition (registered only with the fault hook), by action
  const methods: Array<[RpcMethodName, 'unary' | 'upload' | 'download', string]> = [
    ['fs.put', 'upload', 'fs.write'], ['fs.put.encoded', 'upload', 'fs.write'], ['fs.get', 'download', 'fs.read'], ['fs.stat', 'unary', 'fs.read'],
    ['fs.ls', 'unary', 'fs.read'], ['fs.rm', 'unary', 'fs.write'],
    ['cluster.status', 'unary', 'cluster.read'], ['cluster.nodes', 'unary', 'cluster.read'], ['cluster.shards', 'unary', 'cluster.read'],
    ['cluster.replication', 'unary', 'cluster.read'], ['cluster.config', 'unary', 'cluster.read'],
    ['cluster.rebalance.progress', 'unary', 'cluster.read'], ['node.info', 'unary', 'cluster.read'],
    ['cluster.config.set', 'unary', 'cluster.admin'], ['cluster.policy.set', 'unary', 'cluster.admin'],
    ['cluster.rebalance', 'unary', 'cluster.admin'], ['cluster.drain', 'unary', 'cluster.admin'], ['cluster.undrain', 'unary', 'cluster.admin'],
    ['cluster.token.create', 'unary', 'cluster.admin'], ['cluster.token.list', 'unary', 'cluster.admin'],
    ['cluster.token.revoke', 'unary', 'cluster.admin'], ['cluster.nodes.remove', 'unary', 'cluster.admin'],
    ['tenant.create', 'unary', 'cluster.admin'], ['tenant.set', 'unary', 'cluster.admin'], ['tenant.list', 'unary', 'cluster.admin'],
    ['tenant.remove', 'unary', 'cluster.admin'],
    ['user.grant', 'unary', 'user.admin'], ['user.revoke', 'unary', 'user.admin'], ['user.list', 'unary', 'user.admin'],
    ['cluster.audit', 'unary', 'audit.read'],
    ['cluster.join', 'unary', 'cluster.join'], ['cluster.identify', 'unary', 'cluster.join'],
    ['node.replication', 'unary', 'node.peer'],
    ['extent.get', 'download', 'extent.read'], ['extent.put', 'upload', 'extent.write'],
    ['extent.replicate', 'unary', 'extent.write'], ['extent.delete', 'unary', 'extent.write']
  ]
  const callers: Record<string, DfsClient> = {}
  for (const name of ['admin', 'alice', 'rita', 'tadmin', 'tuser', 'stranger']) callers[name] = await session(name)
  callers.member = await session(join(nodes[1].dataDir, 'node.key'), nodes[0])
  const opts = { timeoutMs: 10_000 }
  const attempt = async (c: DfsClient, method: string, kind: string): Promise<string> => {
    const call = kind === 'unary'
      ? c.rpc.callUnchecked(method, 'not params', opts)
      : kind === 'upload'
        ? c.rpc.uploadUnchecked(method, 'not params', (async function * () {})(), opts)
        : c.rpc.downloadUnchecked(method, 'not params', opts)
    return await call.then(() => 'ok', (err: Error) => err.name)
  }
  const wrong: string[] = []
  for (const [name, c] of Object.entries(callers)) {
    for (const [method, kind, action] of methods) {
      const want = everyone.includes(action) || allowed[name].includes(action) ? 'InvalidArgument' : 'PermissionDenied'
      const got = await attempt(c, method, kind)
      if (got !== want) wrong.push(`${name} ${method}: ${got}, expected ${want}`)
    }
  }
  // n2's key is connected from this process too: n1 would send its own calls to n2 down this
  // connection (one PeerId, two connections), so close it at once
  await callers.member.close()
  assert.equal(wrong, [])
})

test('tenant isolation both ways; a cluster-wide admin acts in a tenant with --tenant', async () => {
  const tuser = await session('tuser')
  const buser = await session('buser', nodes[2])
  assert.is(await put(tuser, '/t.txt', Buffer.alloc(100, 1)), 'ok')
  // each namespace sees its own
  const names = async (c: DfsClient, path = '/', tenant?: string): Promise<string[]> =>
    ((await c.rpc.callUnchecked('fs.ls', { path, ...(tenant !== undefined ? { tenant } : {}) }, { timeoutMs: 10_000 })) as any).entries.map((e: any) => `${e.path as string}`)
  assert.equal(await names(tuser), ['/by-admin', '/t.txt'])
  assert.equal(await names(buser), [], 'an empty tenant lists its root')
  assert.is(await outcome(buser, 'fs.stat', { path: '/t.txt' }), 'NotFound')
  assert.is(await outcome(tuser, 'fs.stat', { path: '/docs/a.txt' }), 'NotFound')
  const admin = await session('admin', nodes[1])
  assert.equal(await names(admin), ['/docs'], 'the default namespace hides tenants\' roots')
  assert.equal(await names(admin, '/', 'acme'), ['/by-admin', '/t.txt'])
  // through the CLI: the same, and paths come back in the caller's namespace
  let r = await dfs('admin', ['fs', 'ls', '/', '--tenant', 'acme'])
  assert.equal(r.json.entries.map((e: any) => e.name), ['by-admin', 't.txt'])
  r = await dfs('tuser', ['fs', 'stat', '/t.txt'])
  assert.is(r.json.path, '/t.txt')
  r = await dfs('admin', ['fs', 'rm', '/by-admin', '--tenant', 'acme'])
  assert.equal(r.json, { path: '/by-admin', freed: 1 })
  lastReleaseAtMs = Date.now()
  r = await dfs('tuser', ['fs', 'get', '/docs/a.txt', join(sb.dir, 'nope')])
  assert.is(r.json.error.name, 'NotFound')
  const answer = r.stderr + JSON.stringify(r.json)
  assert.not.ok(answer.includes('\u0001') || answer.includes('\\u0001'), 'no answer names a tenant\'s internal root')
})

test('quotas at the boundary', async () => {
  const tuser = await session('tuser', nodes[1])
  // acme: 100 bytes in 1 file of 20000 bytes and 3 files
  assert.is(await put(tuser, '/big', randomBytes(19_900)), 'ok', 'exactly at the byte quota')
  assert.is(await put(tuser, '/one-more', Buffer.alloc(1)), 'QuotaExceeded')
  await writeFile(join(sb.dir, 'big30k'), randomBytes(30_000))
  let r = await dfs('tuser', ['fs', 'put', join(sb.dir, 'big30k'), '/too-big'])
  assert.is(r.json.error.name, 'QuotaExceeded', 'refused before the upload (the size is declared)')
  assert.is(await put(tuser, '/big', randomBytes(19_000)), 'ok', 'a smaller replacement fits')
  lastReleaseAtMs = Date.now()
  r = await dfs('admin', ['tenant', 'list'])
  const acme = r.json.tenants.find((t: any) => t.name === 'acme')
  assert.equal(acme, { name: 'acme', quotaBytes: 20000, quotaFiles: 3, requestRate: null, usedBytes: 19_100, usedFiles: 2 })
  assert.is((await dfs('admin', ['tenant', 'remove', 'acme'])).json.error.name, 'FailedPrecondition')

})

test('a grant and a revocation take effect on another node within a second', async () => {
  const carl = await session('carl', nodes[2])
  assert.is(await outcome(carl, 'fs.ls', { path: '/' }), 'PermissionDenied')
  const admin = await session('admin', nodes[0])
  await admin.call('user.grant', { id: (await identity('carl')).id, role: 'readonly' })
  const granted = Date.now()
  await waitFor(async () => await outcome(carl, 'fs.ls', { path: '/' }) === 'ok' ? true : undefined, 5000, 'the grant on n3')
  assert.ok(Date.now() - granted < 1000, `granted on another node after ${Date.now() - granted} ms`)
  await admin.call('user.revoke', { id: (await identity('carl')).id })
  const revoked = Date.now()
  await waitFor(async () => await outcome(carl, 'fs.ls', { path: '/' }) === 'PermissionDenied' ? true : undefined, 5000, 'the revocation on n3')
  assert.ok(Date.now() - revoked < 1000, `revoked on another node after ${Date.now() - revoked} ms`)
})

test('past its tenant\'s request rate a user is refused with RateLimited', async () => {
  assert.is((await dfs('admin', ['tenant', 'create', 'slow', '--request-rate', '3'])).code, 0)
  await (await session('admin')).call('user.grant', { id: (await identity('ruser')).id, role: 'user', tenant: 'slow' })
  const ruser = await session('ruser', nodes[0])
  await waitFor(async () => await outcome(ruser, 'fs.ls', { path: '/' }) === 'ok' ? true : undefined, 5000, 'the grant')
  const results = await Promise.all(Array.from({ length: 12 }, async () =>
    await ruser.rpc.callUnchecked('fs.ls', { path: '/' }, { timeoutMs: 10_000 }).then(() => 'ok', (err: any) => err)))
  const limited = results.filter((r) => r !== 'ok')
  assert.ok(limited.length >= 8, `${limited.length} of 12 calls refused at 3/s`)
  for (const err of limited) {
    assert.is(err.name, 'RateLimited')
    assert.ok(err.details.retryAfterMs > 0)
  }
  // other users are not held back by it
  const alice = await session('alice')
  assert.is(await outcome(alice, 'fs.ls', { path: '/' }), 'ok')
  // users of no tenant (and of a tenant without its own rate) have the cluster's rate
  const admin = await session('admin')
  await admin.call('cluster.config.set', { key: 'user-request-rate', value: '2' })
  const burst = await Promise.all(Array.from({ length: 8 }, async () => await outcome(alice, 'fs.ls', { path: '/' })))
  assert.ok(burst.filter((o) => o === 'RateLimited').length >= 4, burst.join())
  await admin.call('cluster.config.set', { key: 'user-request-rate', value: '0' })
})

test('the audit log holds the grants, tenants and refusals above; a tenant admin reads its tenant\'s only', async () => {
  const want: Array<[string, boolean, string | null]> = [
    ['user.grant', true, null], ['user.revoke', false, 'FailedPrecondition'], ['tenant.create', true, null],
    ['tenant.set', true, null], ['tenant.remove', false, 'FailedPrecondition'], ['fs.put.encoded', false, 'QuotaExceeded'],
    ['fs.ls', false, 'RateLimited'], ['cluster.config.set', false, 'PermissionDenied'], ['cluster.config.set', true, null]
  ]
  await waitFor(async () => {
    const r = await dfs('admin', ['cluster', 'audit', '--limit', '10000'])
    const es: any[] = r.json?.entries ?? []
    return want.every(([op, ok, err]) => es.some((e) => e.operation === op && e.success === ok && e.error === err)) ? true : undefined
  }, 10_000, `audit entries for ${want.map((w) => w.join(' ')).join(', ')}`)
  const mine = (await dfs('tadmin', ['cluster', 'audit', '--limit', '10000'])).json.entries
  assert.ok(mine.length > 0)
  assert.ok(mine.every((e: any) => e.tenant === 'acme'), 'a tenant admin sees its tenant\'s entries only')
  const verified = await dfs('admin', ['cluster', 'audit', '--verify'])
  assert.is(verified.json?.verified, true, JSON.stringify(verified.json))
})

test('a put refused by its commit leaves no extents behind: every node holds exactly what metadata gives it', async () => {
  // copies of files removed or replaced above go after a grace (10 s): let it pass first, so that
  // what is left on disk is what metadata references, and a refused put's copies (which must go at
  // once, not after a grace: stopping a node drops pending grace timers) would be counted
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, lastReleaseAtMs + 11_000 - Date.now())))
  // gamma holds at most one file: a put that passed the early check while the slot was free is
  // refused by the commit once another put took it, and the copies it wrote are deleted at once
  const admin = await session('admin', nodes[0])
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  let halfway: () => void = () => {}
  const sent = new Promise<void>((resolve) => { halfway = resolve })
  async function * slow (): AsyncGenerator<Uint8Array> {
    // more than the flow-control window (8 frames of 1 MiB): once it is sent, the node's handler has
    // passed its early checks and is storing extents (two of 4 MiB, on their replicas)
    for (let i = 0; i < 9; i++) yield randomBytes(1024 * 1024)
    halfway()
    await gate
    yield randomBytes(12_000)
  }
  const refused = admin.rpc.upload('fs.put', { path: '/a', tenant: 'gamma' }, slow(), { timeoutMs: 30_000 }).then(() => undefined, (err: any) => err)
  await sent
  assert.is(await put(await session('admin', nodes[2]), '/b', Buffer.from('b'), 'gamma'), 'ok')
  release()
  const err = await refused
  assert.is(err?.name, 'QuotaExceeded')
  assert.ok(err.details.index > 0, `refused by the commit (the state machine), not by the early check: ${JSON.stringify({ m: err.message, d: err.details })}`)
  assert.is((await dfs('admin', ['tenant', 'list'])).json.tenants.find((t: any) => t.name === 'gamma').usedFiles, 1)
  // what metadata places on each node, from every file of every namespace
  const expected = new Map<string, number>(nodes.map((n) => [n.id, 0]))
  const walk = async (dir: string, tenant?: string): Promise<void> => {
    const ls: any = await admin.rpc.callUnchecked('fs.ls', { path: dir, ...(tenant !== undefined ? { tenant } : {}) }, { timeoutMs: 10_000 })
    for (const e of ls.entries) {
      if (e.type === 'dir') { await walk(e.path, tenant); continue }
      const st: any = await admin.rpc.callUnchecked('fs.stat', { path: e.path, ...(tenant !== undefined ? { tenant } : {}) }, { timeoutMs: 10_000 })
      for (const x of st.extents) for (const p of x.replicas) expected.set(p, (expected.get(p) ?? 0) + 1)
    }
  }
  await walk('/')
  for (const t of ['acme', 'beta', 'gamma', 'slow']) await walk('/', t)
  for (const c of clients.splice(0)) await c.close().catch(() => {})
  for (const n of nodes) await n.stop()
  for (const n of nodes) {
    assert.is(await countExtents(join(n.dataDir, 'extents')), expected.get(n.id), `extents on ${n.id}`)
  }
})

test.run()
