import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createHash, randomBytes } from 'node:crypto'
import { toInternalPath } from '@dfs/api'
import { type PutFileOptions } from '../../src/node/files.js'
import { fsMethods } from '../../src/node/handlers/fs.js'
import { openFileService, type FileServiceFixture } from '../support/file-service.js'
import type { RpcMethod } from '../../src/net/rpc/types.js'

/**
 * File metadata (put with content type, user metadata and MD5), explicit directories and compose,
 * through FileService and the fs.* handlers, over an in-memory extent store and the real (LevelDB)
 * local metadata log.
 */
const test = suite('node/dirs-compose')
const NODE = '12D3KooWRyh2zNmr7R2ixgMm9AXDBYUYPzfntKCELAq8HDtpAVMX'

let ctx: FileServiceFixture

test.before.each(async () => { ctx = await openFileService('dfs-dirs-compose-', NODE, { extentSize: 1000 }) })
test.after.each(async () => { await ctx.close() })

async function * chunks (bytes: Uint8Array, size = 700): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.byteLength; i += size) yield bytes.subarray(i, i + size)
}

async function readBack (path: string): Promise<Buffer> {
  const parts: Uint8Array[] = []
  for await (const c of (await ctx.files.open(path)).body) parts.push(c)
  return Buffer.concat(parts)
}

async function failure (p: Promise<unknown>): Promise<string> {
  try {
    await p
  } catch (err) {
    return (err as Error).name
  }
  return 'succeeded'
}

/** Every extent id the store holds. */
async function stored (): Promise<string[]> {
  const ids: string[] = []
  for await (const info of ctx.store.list()) ids.push(info.id)
  return ids.sort()
}

/** A unary or upload fs.* handler as a node serves it, every caller in `tenant`'s namespace (or the default one). */
function method (name: string, tenant: string | null = null): (params: unknown, body?: AsyncIterable<Uint8Array>) => Promise<any> {
  const m = fsMethods(ctx.files, async () => tenant).find((x: RpcMethod) => x.name === name) as any
  return async (raw, body) => await m.handle({ peer: 'p', params: m.params(raw), body, signal: AbortSignal.timeout(10_000) })
}

test('put with a content type, user metadata and md5: stat and open answer them; the etag is the hex MD5', async () => {
  const bytes = randomBytes(2500)
  const md5 = createHash('md5').update(bytes)
  const hex = md5.copy().digest('hex')
  const r = await ctx.files.put('/m/a.txt', chunks(bytes), { meta: { contentType: 'text/plain', user: { author: 'ann' } }, md5: md5.digest('base64') })
  assert.equal(r, { path: '/m/a.txt', size: 2500, extents: 3, etag: hex })
  const s = await ctx.files.stat('/m/a.txt')
  assert.equal([s.contentType, s.etag, s.meta], ['text/plain', hex, { author: 'ann' }])
  const open = await ctx.files.open('/m/a.txt', { offset: 10, length: 5 })
  assert.is(open.stat.etag, hex)
  for await (const _ of open.body) { /* drain */ }
  // md5 true: computed, nothing to check; a put without any: no metadata, none left from before
  assert.is((await ctx.files.put('/m/a.txt', chunks(bytes), { md5: true })).etag, hex)
  const plain = await ctx.files.put('/m/a.txt', chunks(bytes))
  assert.is(plain.etag, undefined)
  const again = await ctx.files.stat('/m/a.txt')
  assert.equal([again.contentType, again.etag, again.meta], [undefined, undefined, undefined])
  assert.not.ok('etag' in again)
})

test('put with a wrong md5 fails with BadDigest and stores nothing; bad metadata or md5 is refused before any byte', async () => {
  const before = await stored()
  const bytes = randomBytes(3300)
  const wrong = createHash('md5').update('other').digest('base64')
  assert.is(await failure(ctx.files.put('/m/bad', chunks(bytes), { md5: wrong })), 'BadDigest')
  assert.is(await failure(ctx.files.stat('/m/bad')), 'NotFound')
  // a failed put's extents are deleted once the put lets go of them
  const deadline = Date.now() + 5000
  while (JSON.stringify(await stored()) !== JSON.stringify(before) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
  assert.equal(await stored(), before, 'the extents written were abandoned')
  let pulled = 0
  async function * counted (): AsyncGenerator<Uint8Array> { pulled++; yield bytes }
  const refused: PutFileOptions[] = [{ md5: 'not base64' }, { md5: 'AAAAAAAAAAAAAAAAAAAAAA==x' }, { meta: { contentType: 'a\nb' } }, { meta: { user: { 'Bad Key': 'v' } } }]
  for (const options of refused) {
    assert.is(await failure(ctx.files.put('/m/x', counted(), options)), 'InvalidArgument', JSON.stringify(options))
  }
  assert.is(pulled, 0)
})

test('fs.put, fs.stat and fs.get carry the metadata; params are checked', async () => {
  const bytes = randomBytes(100)
  const put = method('fs.put')
  const r = await put({ path: '/h/a', contentType: 'image/png', meta: { k: 'v' }, md5: true }, chunks(bytes))
  assert.is(r.etag, createHash('md5').update(bytes).digest('hex'))
  const s = await method('fs.stat')({ path: '/h/a' })
  assert.equal([s.contentType, s.etag, s.meta], ['image/png', r.etag, { k: 'v' }])
  const got = await method('fs.get')({ path: '/h/a' })
  assert.equal([got.result.contentType, got.result.etag, got.result.meta], ['image/png', r.etag, { k: 'v' }])
  for await (const _ of got.body) { /* drain */ }
  const m = fsMethods(ctx.files).find((x) => x.name === 'fs.put') as RpcMethod
  for (const bad of [{ contentType: 5 }, { contentType: '\u0001' }, { meta: { k: 1 } }, { meta: 'k=v' }, { md5: 5 }, { md5: false }]) {
    assert.throws(() => m.params({ path: '/x', ...bad }), (err: Error) => err.name === 'InvalidArgument', JSON.stringify(bad))
  }
})

test('mkdir and rmdir: an explicit directory lists empty, stays when emptied; rmdir refuses a non-empty one; stat says IsADirectory', async () => {
  assert.equal(await ctx.files.mkdir('/d/e'), { path: '/d/e' })
  assert.equal((await ctx.files.list('/d/e')).entries, [])
  assert.is(await failure(ctx.files.stat('/d/e')), 'IsADirectory')
  assert.is(await failure(ctx.files.put('/d/e', chunks(randomBytes(5)))), 'IsADirectory')
  await ctx.files.put('/d/e/f', chunks(randomBytes(5)))
  assert.is(await failure(ctx.files.rmdir('/d/e')), 'DirectoryNotEmpty')
  await ctx.files.remove('/d/e/f')
  assert.equal((await ctx.files.list('/d')).entries.map((e) => e.name), ['e'])
  assert.equal(await ctx.files.rmdir('/d/e'), { path: '/d/e' })
  assert.is(await failure(ctx.files.rmdir('/d/e')), 'NotFound')
  assert.is(await failure(ctx.files.list('/d')), 'NotFound', 'the implicit parent went too')
})

test('fs.mkdir and fs.rmdir in a tenant\'s namespace: client paths in answers and errors; / refused', async () => {
  await ctx.metadata.propose({ type: 'PutTenant', tenant: { name: 'acme', quotaBytes: null, quotaFiles: 0, requestRate: null }, create: true })
  const mkdir = method('fs.mkdir', 'acme')
  const rmdir = method('fs.rmdir', 'acme')
  assert.equal(await mkdir({ path: '/photos/2024' }), { path: '/photos/2024' })
  assert.ok(await ctx.metadata.read((v) => v.isDirectory(toInternalPath('acme', '/photos/2024'))))
  assert.equal((await method('fs.ls', 'acme')({ path: '/photos' })).entries, [{ path: '/photos/2024', name: '2024', type: 'dir', size: 0 }])
  try {
    await rmdir({ path: '/photos' })
    assert.unreachable()
  } catch (err: any) {
    assert.is(err.name, 'DirectoryNotEmpty')
    assert.not.ok(err.message.includes('\u0001'), 'the error names the client path')
    assert.is(err.details.path, '/photos')
  }
  for (const [m, p] of [[mkdir, '/'], [rmdir, '/']] as const) assert.is(await failure(m({ path: p })), 'InvalidArgument')
  await rmdir({ path: '/photos/2024' })
  assert.is(await failure(rmdir({ path: '/photos/2024' })), 'NotFound')
})

test('compose: the parts\' bytes in order under the new name, the parts gone, no byte copied, a replaced file freed', async () => {
  const parts = [randomBytes(2500), randomBytes(1), randomBytes(1000)]
  for (let i = 0; i < parts.length; i++) await ctx.files.put(`/up/.parts/${i}`, chunks(parts[i]))
  await ctx.files.put('/up/obj', chunks(randomBytes(1500)))
  const replaced = (await ctx.files.stat('/up/obj')).extents.map((e) => e.id)
  const extents = (await Promise.all(parts.map(async (_, i) => await ctx.files.stat(`/up/.parts/${i}`)))).flatMap((s) => s.extents.map((e) => e.id))
  assert.is(await failure(ctx.files.compose('/up/obj', ['/up/.parts/0'])), 'AlreadyExists', 'replace must be asked for here')
  const r = await ctx.files.compose('/up/obj', ['/up/.parts/0', '/up/.parts/1', '/up/.parts/2'], { replace: true, meta: { etag: 'abc-3', contentType: 'x/y' } })
  assert.equal(r, { path: '/up/obj', size: 3501, extents: 5, etag: 'abc-3' })
  assert.ok((await readBack('/up/obj')).equals(Buffer.concat(parts)))
  const s = await ctx.files.stat('/up/obj')
  assert.equal(s.extents.map((e) => e.id), extents, 'the same extents: nothing was copied')
  assert.equal([s.version, s.contentType, s.etag], [2, 'x/y', 'abc-3'])
  for (const id of replaced) assert.not.ok(await ctx.store.has(id), 'the replaced file\'s extents are freed')
  for (const id of extents) assert.ok(await ctx.store.has(id))
  assert.equal((await ctx.files.list('/up')).entries.map((e) => e.name), ['obj'])
  assert.is(await failure(ctx.files.compose('/up/x', ['/other/y'])), 'InvalidArgument')
  assert.is(await failure(ctx.files.compose('/up/x', [])), 'InvalidArgument')
})

test('fs.compose in a tenant\'s namespace: parts and target are client paths; replace by default; usage keeps its bytes', async () => {
  await ctx.metadata.propose({ type: 'PutTenant', tenant: { name: 'acme', quotaBytes: 10_000, quotaFiles: 3, requestRate: null }, create: true })
  const put = method('fs.put', 'acme')
  await put({ path: '/b/p1' }, chunks(Buffer.from('hello ')))
  await put({ path: '/b/p2' }, chunks(Buffer.from('world')))
  await put({ path: '/b/obj' }, chunks(Buffer.from('old')))
  const compose = method('fs.compose', 'acme')
  const r = await compose({ to: '/b/obj', parts: ['/b/p1', '/b/p2'], etag: 'ffff-2', meta: { a: 'b' } })
  assert.equal(r, { path: '/b/obj', size: 11, extents: 2, etag: 'ffff-2' })
  assert.ok((await readBack(toInternalPath('acme', '/b/obj'))).equals(Buffer.from('hello world')))
  assert.equal(await ctx.metadata.read((v) => { const t = v.tenant('acme'); return [t?.usedBytes, t?.usedFiles] }), [11, 1])
  const m = fsMethods(ctx.files).find((x) => x.name === 'fs.compose') as RpcMethod
  assert.equal(m.params({ to: 'b/x', parts: ['/b/y'] }), { path: '/b/x', parts: ['/b/y'], replace: true })
  for (const bad of [{ parts: [] }, { parts: '/b/y' }, { parts: [5] }, { parts: ['/b/\u202e'] }, { parts: ['/b/y'], etag: 'XYZ' }, { parts: ['/b/y'], replace: 'no' }]) {
    assert.throws(() => m.params({ to: '/b/x', ...bad }), (err: Error) => err.name === 'InvalidArgument', JSON.stringify(bad))
  }
  assert.is(await failure(compose({ to: '/b/x', parts: ['/b/none'] })), 'NotFound')
})

test.run()
