import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomBytes } from 'node:crypto'
import { toInternalPath, type RenameResult } from '@dfs/api'
import { fsMethods } from '../../src/node/handlers/fs.js'
import { openFileService, type FileServiceFixture } from '../support/file-service.js'
import type { RpcMethod, UnaryMethod } from '../../src/net/rpc/types.js'

/** FileService.rename and the `fs.mv` handler over an in-memory extent store and the real (LevelDB) local metadata log. */
const test = suite('node/rename')
const NODE = '12D3KooWRyh2zNmr7R2ixgMm9AXDBYUYPzfntKCELAq8HDtpAVMX'

let ctx: FileServiceFixture

test.before.each(async () => { ctx = await openFileService('dfs-rename-', NODE, { extentSize: 1000 }) })
test.after.each(async () => { await ctx.close() })

async function * once (bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes
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

async function applied (): Promise<number> {
  return await ctx.metadata.read((v) => v.appliedIndex())
}

test('a rename moves the file without its bytes: same extents, identical readback, old path NotFound', async () => {
  const bytes = randomBytes(3500)
  await ctx.files.put('/docs/a.bin', once(bytes))
  const before = await ctx.files.stat('/docs/a.bin')
  assert.equal(await ctx.files.rename('/docs/a.bin', 'docs/deep/er/b.bin'), { from: '/docs/a.bin', to: '/docs/deep/er/b.bin' })
  const after = await ctx.files.stat('/docs/deep/er/b.bin')
  assert.equal({ ...after, path: before.path }, before)
  assert.ok((await readBack('/docs/deep/er/b.bin')).equals(bytes))
  assert.is(await failure(ctx.files.stat('/docs/a.bin')), 'NotFound')
  assert.is(await failure(ctx.files.rename('/docs/a.bin', '/docs/c')), 'NotFound')
})

test('replace (an explicit choice here; the RPC defaults to it) frees the replaced file\'s extents; without it AlreadyExists', async () => {
  const keep = randomBytes(1200)
  await ctx.files.put('/d/src', once(keep))
  await ctx.files.put('/d/dst', once(randomBytes(2500)))
  const old = (await ctx.files.stat('/d/dst')).extents.map((e) => e.id)
  assert.is(await failure(ctx.files.rename('/d/src', '/d/dst')), 'AlreadyExists')
  assert.is(await failure(ctx.files.rename('/d/src', '/d/dst', { replace: false })), 'AlreadyExists')
  for (const id of old) assert.ok(await ctx.store.has(id), 'a refused rename frees nothing')
  await ctx.files.rename('/d/src', '/d/dst', { replace: true })
  for (const id of old) assert.not.ok(await ctx.store.has(id), `replaced extent ${id} freed`)
  assert.ok((await readBack('/d/dst')).equals(keep))
  assert.is((await ctx.files.stat('/d/dst')).version, 2, 'at least the replaced version + 1')
})

test('/ as either path: InvalidArgument before anything is proposed; one group renames across top-level directories', async () => {
  await ctx.files.put('/a/f', once(randomBytes(10)))
  const index = await applied()
  for (const [from, to] of [['/a/f', '/'], ['/', '/a/x']]) {
    assert.is(await failure(ctx.files.rename(from, to)), 'InvalidArgument', `${from} -> ${to}`)
  }
  assert.is(await applied(), index, 'nothing was logged')
  // this service has one group (no groupOf): one RenameFile, no transfer
  await ctx.files.rename('/a/f', '/b/f')
  assert.is(await applied(), index + 1)
  assert.ok((await ctx.files.stat('/b/f')).size === 10)
  await ctx.files.rename('/b/f', '/a/f')
})

test('a directory moves with its files', async () => {
  const a = randomBytes(1500)
  const b = randomBytes(10)
  await ctx.files.put('/p/dir/a', once(a))
  await ctx.files.put('/p/dir/sub/b', once(b))
  await ctx.files.rename('/p/dir', '/p/other')
  assert.ok((await readBack('/p/other/a')).equals(a))
  assert.ok((await readBack('/p/other/sub/b')).equals(b))
  assert.equal((await ctx.files.list('/p')).entries.map((e) => e.name), ['other'])
})

/** The handler as a node serves it, every caller in `tenant`'s namespace (or the default one). */
function mv (tenant: string | null): (params: unknown) => Promise<RenameResult> {
  const method = fsMethods(ctx.files, async () => tenant).find((m: RpcMethod) => m.name === 'fs.mv') as UnaryMethod<any, RenameResult>
  return async (raw) => await method.handle({ peer: 'p', params: method.params(raw), signal: AbortSignal.timeout(10_000) } as any)
}

test('fs.mv: params checked, replace by default, --no-clobber refuses', async () => {
  const method = fsMethods(ctx.files).find((m) => m.name === 'fs.mv') as RpcMethod
  assert.equal(method.params({ from: '/a/x', to: 'a/y/' }), { from: '/a/x', to: '/a/y', replace: true })
  for (const bad of [{ from: '/a' }, { to: '/a' }, { from: '/a', to: 1 }, { from: '/a\u0001', to: '/a/b' }, { from: '/a', to: '/a/b', replace: 'no' }]) {
    try {
      method.params(bad)
      assert.unreachable(JSON.stringify(bad))
    } catch (err) {
      assert.is((err as Error).name, 'InvalidArgument', JSON.stringify(bad))
    }
  }
  await ctx.files.put('/m/a', once(randomBytes(5)))
  await ctx.files.put('/m/b', once(randomBytes(6)))
  assert.is(await failure(mv(null)({ from: '/m/a', to: '/m/b', replace: false })), 'AlreadyExists')
  assert.equal(await mv(null)({ from: '/m/a', to: '/m/b' }), { from: '/m/a', to: '/m/b' })
  assert.is((await ctx.files.stat('/m/b')).size, 5)
})

test('fs.mv in a tenant\'s namespace: any two of its paths, client paths in answers and errors; its root refused', async () => {
  await ctx.metadata.propose({ type: 'PutTenant', tenant: { name: 'acme', quotaBytes: null, quotaFiles: 1, requestRate: null }, create: true })
  const bytes = randomBytes(700)
  await ctx.files.put(toInternalPath('acme', '/x/f'), once(bytes))
  // the tenant is at its files quota: a rename adds nothing, so it works
  assert.equal(await mv('acme')({ from: '/x/f', to: '/y/g' }), { from: '/x/f', to: '/y/g' })
  assert.ok((await readBack(toInternalPath('acme', '/y/g'))).equals(bytes))
  const usage = await ctx.metadata.read((v) => v.tenant('acme'))
  assert.equal([usage?.usedBytes, usage?.usedFiles], [700, 1])
  try {
    await mv('acme')({ from: '/x/f', to: '/z' })
    assert.unreachable()
  } catch (err) {
    assert.is((err as Error).name, 'NotFound')
    assert.not.ok((err as Error).message.includes('\u0001'), 'no internal path in the message')
  }
  for (const [from, to] of [['/', '/w'], ['/y/g', '/']]) {
    assert.is(await failure(mv('acme')({ from, to })), 'InvalidArgument', `${from} -> ${to}`)
  }
  // the default namespace cannot reach the tenant's files
  assert.is(await failure(mv(null)({ from: '/y/g', to: '/y/h' })), 'NotFound')
})

test.run()
