import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { peerIdString, readKeyFile } from '../../src/net/keys.js'
import { countExtents, readExtent } from './extents-on-disk.js'
import { Sandbox, sha256Hex, waitFor, type NodeHandle } from './harness.js'

/**
 * `dfs fs mv` through a three-node cluster of real processes (64 KiB extents, so files have
 * several): a rename within a directory and deeper, read back identical through another node, the
 * old path NotFound, a directory moved with its files, `--no-clobber`, a replace whose old extents
 * are deleted from every node's disk (after the release grace), `/` refused with nothing changed,
 * and a tenant's user renaming inside its namespace.
 */
const test = suite('e2e: rename')
const EXTENT = 64 * 1024
/** Replicas delete the copies of a freed extent after this grace (given to the nodes: --release-grace-ms). */
const RELEASE_GRACE_MS = 2000
const FAST = ['--heartbeat-ms', '200', '--failure-timeout-ms', '1500', '--extent-size', String(EXTENT), '--release-grace-ms', String(RELEASE_GRACE_MS)]

let sb: Sandbox
const nodes: NodeHandle[] = []
/** Extent ids freed by a replace: no node may hold them once the grace passed. */
const replacedIds: string[] = []
let lastReleaseAtMs = 0

test.before(async () => { sb = await Sandbox.create() })
test.after(async () => {
  for (const n of nodes) await n.stop()
  await sb.cleanup()
})

/** `dfs ARGS --json` through node `via` (as the sandbox's admin unless `identityPath`). */
async function dfs (args: string[], via = 0, identityPath?: string): Promise<{ code: number | null, json: any, stderr: string }> {
  const env = identityPath !== undefined ? { DFS_IDENTITY: identityPath } : undefined
  return await sb.run([...args, '--json', '--node', nodes[via].addr], env !== undefined ? { env } : {})
}

async function ok (args: string[], via = 0, identityPath?: string): Promise<any> {
  const r = await dfs(args, via, identityPath)
  assert.is(r.code, 0, `${args.join(' ')}: ${r.stderr}`)
  return r.json
}

async function errorName (args: string[], via = 0, identityPath?: string): Promise<string> {
  const r = await dfs(args, via, identityPath)
  assert.is.not(r.code, 0, `${args.join(' ')} should fail`)
  return r.json?.error?.name
}

async function putNew (remote: string, size: number, identityPath?: string, extra: string[] = []): Promise<Buffer> {
  const bytes = randomBytes(size)
  const local = join(sb.dir, `in-${randomBytes(4).toString('hex')}`)
  await writeFile(local, bytes)
  await ok(['fs', 'put', local, remote, ...extra], 0, identityPath)
  return bytes
}

/** The bytes of `remote` as `fs get` through node `via` writes them. */
async function get (remote: string, via: number, identityPath?: string, extra: string[] = []): Promise<Buffer> {
  const local = join(sb.dir, `out-${randomBytes(4).toString('hex')}`)
  await ok(['fs', 'get', remote, local, ...extra], via, identityPath)
  return await readFile(local)
}

test('a cluster of three voters', async () => {
  nodes.push(await sb.startNode({ args: ['--name', 'n1', ...FAST] }))
  const t = await ok(['cluster', 'token', 'create', '--uses', '2'])
  for (const name of ['n2', 'n3']) nodes.push(await sb.startNode({ args: ['--name', name, '--peers', nodes[0].addr, '--join-token', t.token, ...FAST] }))
  await waitFor(async () => {
    const ns = (await dfs(['cluster', 'nodes'])).json?.nodes ?? []
    return ns.length === 3 && ns.every((n: any) => n.voter && n.health === 'healthy') ? true : undefined
  }, 30_000, 'three healthy voters')
})

test('mv within a directory and deeper: same extents, identical bytes through another node, the old path NotFound', async () => {
  const bytes = await putNew('/docs/a.bin', 3 * EXTENT + 123)
  const before = await ok(['fs', 'stat', '/docs/a.bin'])
  assert.is(before.extents.length, 4)
  assert.equal(await ok(['fs', 'mv', '/docs/a.bin', '/docs/b.bin']), { from: '/docs/a.bin', to: '/docs/b.bin' })
  assert.equal(await ok(['fs', 'mv', 'docs/b.bin', '/docs/x/y/z.bin'], 1), { from: '/docs/b.bin', to: '/docs/x/y/z.bin' })
  const after = await ok(['fs', 'stat', '/docs/x/y/z.bin'], 2)
  assert.is(after.path, '/docs/x/y/z.bin')
  assert.equal(after.extents.map((e: any) => e.id), before.extents.map((e: any) => e.id), 'no byte moved')
  assert.equal([after.size, after.mtimeMs, after.version], [before.size, before.mtimeMs, before.version])
  assert.is(sha256Hex(await get('/docs/x/y/z.bin', 2)), sha256Hex(bytes))
  for (const old of ['/docs/a.bin', '/docs/b.bin']) assert.is(await errorName(['fs', 'stat', old], 1), 'NotFound', old)
  assert.equal((await ok(['fs', 'ls', '/docs'])).entries.map((e: any) => e.name), ['x'])
  assert.is(await errorName(['fs', 'mv', '/docs/a.bin', '/docs/c.bin']), 'NotFound')
})

test('a directory moves with every file under it', async () => {
  const small = await putNew('/docs/x/small', 100)
  assert.equal(await ok(['fs', 'mv', '/docs/x', '/docs/w']), { from: '/docs/x', to: '/docs/w' })
  assert.equal((await ok(['fs', 'ls', '/docs'], 2)).entries.map((e: any) => e.name), ['w'])
  assert.ok((await get('/docs/w/small', 1)).equals(small))
  assert.is((await ok(['fs', 'stat', '/docs/w/y/z.bin'])).size, 3 * EXTENT + 123)
})

test('a file at the target: refused with --no-clobber, replaced by default and its extents freed', async () => {
  const keep = await putNew('/docs/src.bin', EXTENT + 5)
  const replaced = await putNew('/docs/dst.bin', 2 * EXTENT + 7)
  const old = (await ok(['fs', 'stat', '/docs/dst.bin'])).extents.map((e: any) => e.id)
  assert.is(await errorName(['fs', 'mv', '/docs/src.bin', '/docs/dst.bin', '--no-clobber']), 'AlreadyExists')
  assert.ok((await get('/docs/dst.bin', 1)).equals(replaced), 'the refused rename changed nothing')
  assert.equal(await ok(['fs', 'mv', '/docs/src.bin', '/docs/dst.bin'], 2), { from: '/docs/src.bin', to: '/docs/dst.bin' })
  lastReleaseAtMs = Date.now()
  replacedIds.push(...old)
  assert.ok((await get('/docs/dst.bin', 0)).equals(keep))
  assert.is((await ok(['fs', 'stat', '/docs/dst.bin'])).version, 2, 'above the replaced version')
  assert.is(await errorName(['fs', 'stat', '/docs/src.bin']), 'NotFound')
})

test('/ is never renamed nor a target (InvalidArgument), and nothing changed; across top-level directories see transfers.test.ts', async () => {
  await putNew('/other/f', 10)
  const docs = await ok(['fs', 'stat', '/docs/dst.bin'])
  for (const [from, to] of [['/', '/x'], ['/docs/dst.bin', '/']]) {
    const r = await dfs(['fs', 'mv', from, to])
    assert.is(r.json?.error?.name, 'InvalidArgument', `${from} -> ${to}`)
  }
  assert.equal(await ok(['fs', 'stat', '/docs/dst.bin'], 1), docs)
  assert.equal((await ok(['fs', 'ls', '/'])).entries.map((e: any) => e.name), ['docs', 'other'])
})

test('a tenant\'s user renames inside its namespace; usage unchanged; others do not see it', async () => {
  const alice = await sb.identity('alice')
  await ok(['tenant', 'create', 'acme', '--quota-files', '1'])
  await ok(['user', 'grant', peerIdString(await readKeyFile(alice)), 'user', '--tenant', 'acme'])
  const bytes = await putNew('/p/f.bin', EXTENT + 1, alice)
  // any two paths of the tenant share its root: a rename between its top-level directories works,
  // also at its files quota (a rename adds nothing)
  assert.equal(await ok(['fs', 'mv', '/p/f.bin', '/q/g.bin'], 1, alice), { from: '/p/f.bin', to: '/q/g.bin' })
  assert.ok((await get('/q/g.bin', 2, alice)).equals(bytes))
  assert.is(await errorName(['fs', 'stat', '/p/f.bin'], 0, alice), 'NotFound')
  assert.is(await errorName(['fs', 'mv', '/', '/x'], 0, alice), 'InvalidArgument')
  assert.is(await errorName(['fs', 'stat', '/q/g.bin']), 'NotFound', 'the default namespace does not see it')
  assert.is((await ok(['fs', 'stat', '/q/g.bin', '--tenant', 'acme'])).size, EXTENT + 1)
  assert.equal(await ok(['fs', 'mv', '/q/g.bin', '/q/h.bin', '--tenant', 'acme']), { from: '/q/g.bin', to: '/q/h.bin' })
  const acme = (await ok(['tenant', 'list'])).tenants.find((t: any) => t.name === 'acme')
  assert.equal([acme.usedFiles, acme.usedBytes], [1, EXTENT + 1])
})

test('the audit log records each rename with both paths', async () => {
  // appended through Raft within a fraction of a second of each call
  const entries = await waitFor(async () => {
    const es = (await ok(['cluster', 'audit', '--limit', '1000'], 1)).entries
    return es.some((e: any) => e.operation === 'fs.mv' && e.resource === 'acme:/q/g.bin -> /q/h.bin') ? es : undefined
  }, 30_000, 'the last rename in the audit log')
  assert.ok(entries.some((e: any) => e.operation === 'fs.mv' && e.resource === '/docs/a.bin -> /docs/b.bin' && e.success))
  assert.ok(entries.some((e: any) => e.operation === 'fs.mv' && e.error === 'InvalidArgument' && !e.success))
})

test('after the release grace every node holds exactly the extents metadata gives it, none of the replaced ones', async () => {
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, lastReleaseAtMs + RELEASE_GRACE_MS + 1000 - Date.now())))
  const expected = new Map<string, number>(nodes.map((n) => [n.id, 0]))
  const walk = async (dir: string, tenant?: string): Promise<void> => {
    const t = tenant !== undefined ? ['--tenant', tenant] : []
    for (const e of (await ok(['fs', 'ls', dir, ...t])).entries) {
      if (e.type === 'dir') { await walk(e.path, tenant); continue }
      for (const x of (await ok(['fs', 'stat', e.path, ...t])).extents) for (const p of x.replicas) expected.set(p, (expected.get(p) ?? 0) + 1)
    }
  }
  await walk('/')
  await walk('/', 'acme')
  for (const n of nodes) await n.stop()
  for (const n of nodes) {
    const dir = join(n.dataDir, 'extents')
    assert.is(await countExtents(dir), expected.get(n.id), `extents on ${n.id}`)
    for (const id of replacedIds) assert.is(await readExtent(dir, id), undefined, `replaced extent ${id} is gone from ${n.id}`)
  }
})

test.run()
