import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createHash, randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { DfsClient } from '../../src/client/index.js'
import { peerIdString, readKeyFile } from '../../src/net/keys.js'
import { Sandbox, sha256Hex, waitFor, type NodeHandle } from './harness.js'

/**
 * Explicit directories, file metadata, compose and S3 access keys through a three-node cluster of
 * real processes (64 KiB extents): `fs mkdir` / `fs rmdir` (an explicit directory outlives its
 * files; DirectoryNotEmpty), `fs put --content-type --meta --md5` shown by `fs stat`, `fs.compose`
 * through an RPC client (the bytes of the parts read back identical through another node, the parts
 * gone, no extent copied), and `s3 key create / list / revoke` (the secret shown once, never listed).
 */
const test = suite('e2e: directories, metadata, compose, S3 keys')
const EXTENT = 64 * 1024
const FAST = ['--heartbeat-ms', '200', '--failure-timeout-ms', '1500', '--extent-size', String(EXTENT)]

let sb: Sandbox
const nodes: NodeHandle[] = []
const clients: DfsClient[] = []

test.before(async () => { sb = await Sandbox.create() })
test.after(async () => {
  for (const c of clients) await c.close().catch(() => {})
  for (const n of nodes) await n.stop()
  await sb.cleanup()
})

/** `dfs ARGS --json` through node `via` (as the sandbox's admin unless `identityPath`). */
async function dfs (args: string[], via = 0, identityPath?: string): Promise<{ code: number | null, json: any, stderr: string, stdout: string }> {
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

async function putNew (remote: string, size: number, extra: string[] = []): Promise<{ bytes: Buffer, result: any }> {
  const bytes = randomBytes(size)
  const local = join(sb.dir, `in-${randomBytes(4).toString('hex')}`)
  await writeFile(local, bytes)
  return { bytes, result: await ok(['fs', 'put', local, remote, ...extra]) }
}

async function get (remote: string, via: number): Promise<Buffer> {
  const local = join(sb.dir, `out-${randomBytes(4).toString('hex')}`)
  await ok(['fs', 'get', remote, local], via)
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

test('fs mkdir and rmdir: an explicit directory lists empty and outlives its files; DirectoryNotEmpty; NotFound', async () => {
  assert.equal(await ok(['fs', 'mkdir', '/dirs/a/b']), { path: '/dirs/a/b' })
  assert.equal(await ok(['fs', 'mkdir', '/dirs/a/b'], 1), { path: '/dirs/a/b' }, 'idempotent')
  assert.equal((await ok(['fs', 'ls', '/dirs/a'], 2)).entries, [{ path: '/dirs/a/b', name: 'b', type: 'dir', size: 0 }])
  assert.equal((await ok(['fs', 'ls', '/dirs/a/b'], 1)).entries, [])
  await putNew('/dirs/a/b/f', 10)
  assert.is(await errorName(['fs', 'rmdir', '/dirs/a/b']), 'DirectoryNotEmpty')
  assert.is(await errorName(['fs', 'mkdir', '/dirs/a/b/f']), 'AlreadyExists')
  assert.is(await errorName(['fs', 'mkdir', '/dirs/a/b/f/g']), 'NotADirectory')
  await ok(['fs', 'rm', '/dirs/a/b/f'])
  assert.equal((await ok(['fs', 'ls', '/dirs/a/b'], 2)).entries, [], 'still there once emptied')
  assert.equal(await ok(['fs', 'rmdir', '/dirs/a/b'], 1), { path: '/dirs/a/b' })
  assert.is(await errorName(['fs', 'rmdir', '/dirs/a/b']), 'NotFound')
  assert.is(await errorName(['fs', 'ls', '/dirs']), 'NotFound', 'its implicit parents went with it')
  // human output
  const human = await sb.run(['fs', 'mkdir', '/dirs/h', '--node', nodes[0].addr])
  assert.is(human.code, 0, human.stderr)
  assert.match(human.stdout, /made \/dirs\/h/)
})

test('fs ls --limit pages with a continuation token through another node, and every name comes once', async () => {
  for (let i = 0; i < 7; i++) await ok(['fs', 'mkdir', `/paged/d${i}`])
  const seen: string[] = []
  let token: string | undefined
  for (let pages = 0; pages < 10; pages++) {
    const page = await ok(['fs', 'ls', '/paged', '--limit', '3', ...(token !== undefined ? ['--token', token] : [])], pages % 3)
    assert.ok(page.entries.length <= 3)
    seen.push(...page.entries.map((e: any) => e.name))
    token = page.next
    if (token === undefined) break
  }
  assert.equal(seen, ['d0', 'd1', 'd2', 'd3', 'd4', 'd5', 'd6'])
  assert.is(await errorName(['fs', 'ls', '/paged', '--limit', '3', '--token', 'bogus']), 'InvalidArgument')
  assert.is((await ok(['fs', 'ls', '/paged'])).next, undefined, 'no token without --limit')
})

test('fs put --content-type --meta --md5: fs stat and fs get show them; a bad key is refused', async () => {
  const { bytes, result } = await putNew('/meta/a.txt', 2 * EXTENT + 3, ['--content-type', 'text/plain', '--meta', 'author=ann', '--meta', 'rev=3', '--md5'])
  const md5 = createHash('md5').update(bytes).digest('hex')
  assert.is(result.etag, md5)
  const s = await ok(['fs', 'stat', '/meta/a.txt'], 1)
  assert.equal([s.contentType, s.etag, s.meta], ['text/plain', md5, { author: 'ann', rev: '3' }])
  const human = await sb.run(['fs', 'stat', '/meta/a.txt', '--node', nodes[2].addr])
  assert.is(human.code, 0, human.stderr)
  assert.match(human.stdout, /type +text\/plain/)
  assert.match(human.stdout, /meta +author=ann/)
  assert.ok((await get('/meta/a.txt', 2)).equals(bytes))
  const local = join(sb.dir, 'small')
  await writeFile(local, 'x')
  assert.is(await errorName(['fs', 'put', local, '/meta/b', '--meta', 'Bad Key=v']), 'InvalidArgument')
  assert.is(await errorName(['fs', 'put', local, '/meta/b', '--meta', 'novalue']), 'InvalidArgument')
  assert.is(await errorName(['fs', 'stat', '/meta/b']), 'NotFound')
})

test('fs.compose through an RPC client: the parts\' bytes in order through another node, the parts gone, no extent copied', async () => {
  const c = await sb.client(nodes[0], 20_000)
  clients.push(c)
  const parts = [await putNew('/obj/.up/1', 2 * EXTENT), await putNew('/obj/.up/2', EXTENT + 17), await putNew('/obj/.up/3', 5)]
  const ids: string[] = []
  for (let i = 1; i <= 3; i++) ids.push(...(await ok(['fs', 'stat', `/obj/.up/${i}`])).extents.map((e: any) => e.id))
  const r = await c.call('fs.compose', { to: '/obj/big.bin', parts: ['/obj/.up/1', '/obj/.up/2', '/obj/.up/3'], contentType: 'application/octet-stream', etag: 'abcdef-3' })
  assert.equal(r, { path: '/obj/big.bin', size: 3 * EXTENT + 22, extents: ids.length, etag: 'abcdef-3' })
  const whole = Buffer.concat(parts.map((p) => p.bytes))
  assert.is(sha256Hex(await get('/obj/big.bin', 1)), sha256Hex(whole))
  const s = await ok(['fs', 'stat', '/obj/big.bin'], 2)
  assert.equal(s.extents.map((e: any) => e.id), ids, 'the parts\' extents, not copies')
  assert.equal([s.contentType, s.etag], ['application/octet-stream', 'abcdef-3'])
  for (let i = 1; i <= 3; i++) assert.is(await errorName(['fs', 'stat', `/obj/.up/${i}`], 1), 'NotFound')
  assert.equal((await ok(['fs', 'ls', '/obj'])).entries.map((e: any) => e.name), ['big.bin'])
  // refusals: a part elsewhere, a missing part; nothing changes
  await putNew('/elsewhere/p', 3)
  for (const parts of [['/elsewhere/p'], ['/obj/none']]) {
    try {
      await c.call('fs.compose', { to: '/obj/x', parts })
      assert.unreachable()
    } catch (err: any) {
      assert.ok(['InvalidArgument', 'NotFound'].includes(err.name), err.name)
    }
  }
  assert.is((await ok(['fs', 'stat', '/elsewhere/p'])).size, 3)
})

test('s3 key create, list and revoke: the secret shown once and never listed; a tenant admin sees its tenant\'s keys only', async () => {
  const created = await ok(['s3', 'key', 'create'])
  assert.match(created.accessKeyId, /^DFS[0-9A-Z]{17}$/)
  assert.match(created.secretAccessKey, /^[A-Za-z0-9+/]{40}$/)
  const human = await sb.run(['s3', 'key', 'create', '--node', nodes[1].addr])
  assert.is(human.code, 0, human.stderr)
  const secret = /secret access key +(\S+)/.exec(human.stdout)?.[1]
  assert.ok(secret !== undefined && secret.length === 40, human.stdout)
  const bob = await sb.identity('bob')
  const bobId = peerIdString(await readKeyFile(bob))
  assert.is(await errorName(['s3', 'key', 'create', '--user', bobId]), 'NotFound', 'bob has no role yet')
  await ok(['tenant', 'create', 'acme'])
  await ok(['user', 'grant', bobId, 'admin', '--tenant', 'acme'])
  const bobs = await ok(['s3', 'key', 'create'], 0, bob)
  assert.is(bobs.user, bobId)
  const list = await waitFor(async () => {
    const l = await ok(['s3', 'key', 'list'], 2)
    return l.keys.length === 3 ? l : undefined
  }, 10_000, 'three keys listed')
  const listed = JSON.stringify(list)
  for (const s of [created.secretAccessKey, secret, bobs.secretAccessKey]) assert.not.ok(listed.includes(s as string), 'no secret is listed')
  assert.equal((await ok(['s3', 'key', 'list'], 0, bob)).keys.map((k: any) => k.accessKeyId), [bobs.accessKeyId])
  assert.is(await errorName(['s3', 'key', 'revoke', created.accessKeyId], 0, bob), 'NotFound', 'another tenant\'s key is not bob\'s to see')
  assert.equal(await ok(['s3', 'key', 'revoke', created.accessKeyId], 1), { accessKeyId: created.accessKeyId })
  assert.is(await errorName(['s3', 'key', 'revoke', created.accessKeyId]), 'NotFound')
  assert.equal((await ok(['s3', 'key', 'list'])).keys.map((k: any) => k.accessKeyId).includes(created.accessKeyId), false)
  // the audit log records the key calls and never a secret
  const entries = await waitFor(async () => {
    const es = (await ok(['cluster', 'audit', '--limit', '1000'])).entries
    return es.some((e: any) => e.operation === 's3.key.revoke') ? es : undefined
  }, 30_000, 'the key calls in the audit log')
  const audit = JSON.stringify(entries)
  for (const s of [created.secretAccessKey, secret, bobs.secretAccessKey]) assert.not.ok(audit.includes(s as string), 'no secret is audited')
})

test.run()
