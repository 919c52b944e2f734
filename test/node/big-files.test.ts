import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LocalMetadataService } from '@dfs/raft-metadata'
import { MemoryExtentStore } from '@dfs/api/testing'
import { STAGE_BATCH_MAX, STAT_EXTENTS_MAX, type ExtentRecord, type MetadataOp, type ReplicationService } from '@dfs/api'
import { FileService } from '../../src/node/files.js'
import { ExtentGc } from '../../src/node/extent-gc.js'

/**
 * Files with more extents than one metadata operation or one stat answer holds: staged commits and
 * paged stat, with 64-byte extents so that thousands of extents are cheap.
 */
const test = suite('node/files: big files')
const NODE = '12D3KooWRyh2zNmr7R2ixgMm9AXDBYUYPzfntKCELAq8HDtpAVMX'
const EXTENT = 64
const logger: any = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false })

interface Ctx { dir: string, store: MemoryExtentStore, metadata: LocalMetadataService, gc: ExtentGc, files: FileService, ops: MetadataOp[] }
let ctx: Ctx

async function make (): Promise<Ctx> {
  const dir = await mkdtemp(join(tmpdir(), 'dfs-big-files-'))
  const metadata = new LocalMetadataService({ dir, nodeId: NODE, logger })
  await metadata.start()
  const store = new MemoryExtentStore()
  await store.open()
  const gc = new ExtentGc(store)
  // every operation proposed, in order (a spy: the real service applies them)
  const ops: MetadataOp[] = []
  const real = metadata.propose.bind(metadata)
  metadata.propose = async (op, options) => { ops.push(op); return await real(op, options) }
  return { dir, store, metadata, gc, files: new FileService({ nodeId: NODE, store, metadata, gc, extentSize: EXTENT }), ops }
}

async function * chunks (bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let offset = 0; offset < bytes.length; offset += size) yield bytes.subarray(offset, offset + size)
}

async function readAll (body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = []
  for await (const c of body) parts.push(c)
  return Buffer.concat(parts)
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

test.before.each(async () => { ctx = await make() })
test.after.each(async () => {
  await ctx.metadata.stop()
  await rm(ctx.dir, { recursive: true, force: true })
})

test('a put of more than 3 batches of extents commits through stages, reads back identical, and paged stat lists every extent once', async () => {
  const count = 3 * STAGE_BATCH_MAX + 300
  const bytes = randomBytes(count * EXTENT - 17)
  const r = await ctx.files.put('/big/f', chunks(bytes, 1000))
  assert.equal(r, { path: '/big/f', size: bytes.length, extents: count })
  const types = ctx.ops.map((o) => o.type)
  assert.equal(types, ['StageExtents', 'StageExtents', 'StageExtents', 'PutFile'])
  const commit = ctx.ops[3] as Extract<MetadataOp, { type: 'PutFile' }>
  assert.is(commit.extents.length, 300, 'the commit carries only what came after the last batch')
  assert.ok(commit.stage !== undefined)
  assert.equal(await ctx.metadata.read((v) => v.stages?.()), [], 'the commit ended the stage')
  assert.is(sha(await readAll((await ctx.files.open('/big/f')).body)), sha(bytes))
  // a range near the end
  const tail = await ctx.files.open('/big/f', { offset: bytes.length - 200, length: 150 })
  assert.ok((await readAll(tail.body)).equals(bytes.subarray(bytes.length - 200, bytes.length - 50)))

  // paged stat: pages of at most STAT_EXTENTS_MAX of one version, each extent once, in order
  const first = await ctx.files.stat('/big/f')
  assert.is(first.extentsTotal, count)
  assert.is(first.extents.length, STAT_EXTENTS_MAX)
  const ids = first.extents.map((e) => e.id)
  while (ids.length < first.extentsTotal) {
    const page = await ctx.files.stat('/big/f', { extentsFrom: ids.length, version: first.version })
    assert.ok(page.extents.length > 0 && page.extents.length <= STAT_EXTENTS_MAX)
    ids.push(...page.extents.map((e) => e.id))
  }
  assert.is(new Set(ids).size, count)
  assert.equal(ids, await ctx.metadata.read((v) => v.getFile('/big/f')?.extents))
  const empty = await ctx.files.stat('/big/f', { extentsFrom: count })
  assert.equal(empty.extents, [])
  await ctx.files.stat('/big/f', { extentsFrom: count + 1 }).then(() => assert.unreachable(), (err) => { assert.is(err.name, 'InvalidArgument') })
  await ctx.files.stat('/big/f', { version: 2 }).then(() => assert.unreachable(), (err) => { assert.is(err.name, 'FailedPrecondition') })

  // rm frees every extent
  assert.equal(await ctx.files.remove('/big/f'), { path: '/big/f', freed: count })
  assert.is((await ctx.store.usage()).extents, 0)
})

test('a small put (up to one batch of extents) is one PutFile without a stage, as before', async () => {
  const bytes = randomBytes(STAGE_BATCH_MAX * EXTENT)
  await ctx.files.put('/small', chunks(bytes, 4096))
  assert.equal(ctx.ops.map((o) => o.type), ['PutFile'])
  assert.is((ctx.ops[0] as Extract<MetadataOp, { type: 'PutFile' }>).stage, undefined)
  assert.is((ctx.ops[0] as Extract<MetadataOp, { type: 'PutFile' }>).extents.length, STAGE_BATCH_MAX)
  // one extent more: one batch staged, one extent in the commit
  ctx.ops.length = 0
  await ctx.files.put('/small', chunks(randomBytes(STAGE_BATCH_MAX * EXTENT + 1), 4096))
  assert.equal(ctx.ops.map((o) => o.type), ['StageExtents', 'PutFile'])
})

test('a body that throws after two stages leaves no stage and frees every extent it wrote', async () => {
  await ctx.files.put('/keep', chunks(randomBytes(10), 10))
  const before = (await ctx.store.usage()).extents
  async function * failing (): AsyncGenerator<Uint8Array> {
    yield * chunks(randomBytes((2 * STAGE_BATCH_MAX + 100) * EXTENT), 4096)
    throw new Error('client went away')
  }
  await ctx.files.put('/big/broken', failing()).then(() => assert.unreachable(), (err) => { assert.is(err.message, 'client went away') })
  assert.equal(ctx.ops.map((o) => o.type), ['PutFile', 'StageExtents', 'StageExtents', 'DropStage'])
  assert.equal(await ctx.metadata.read((v) => [v.stages?.(), v.getFile('/big/broken')]), [[], undefined])
  assert.is((await ctx.store.usage()).extents, before, 'every copy of the failed put is gone')
  assert.is(await ctx.gc.sweep(ctx.metadata), 0, 'nothing was left for the sweep')
})

test('a put cancelled after staging drops its stage and frees its extents at once', async () => {
  const abort = new AbortController()
  async function * slow (): AsyncGenerator<Uint8Array> {
    yield * chunks(randomBytes((STAGE_BATCH_MAX + 10) * EXTENT), 4096)
    abort.abort()
    yield randomBytes(EXTENT)
  }
  await ctx.files.put('/big/cancelled', slow(), { signal: abort.signal }).then(() => assert.unreachable(), () => {})
  assert.equal(ctx.ops.map((o) => o.type), ['StageExtents', 'DropStage'])
  assert.equal(await ctx.metadata.read((v) => v.stages?.()), [])
  assert.is((await ctx.store.usage()).extents, 0)
})

for (const cutAt of [1, 2]) {
  test(`a put cut off while batch ${cutAt} was being staged (never applied) frees that batch too once its stage is dropped (or found never made)`, async () => {
    const abort = new AbortController()
    const real = ctx.metadata.propose.bind(ctx.metadata)
    let stages = 0
    ctx.metadata.propose = async (op, options) => {
      if (op.type === 'StageExtents' && ++stages === cutAt) {
        // the caller goes away while the proposal waits for its commit, which never comes: an
        // outcome the put cannot know (no log index in the error)
        ctx.ops.push(op)
        abort.abort(new Error('client went away'))
        throw Object.assign(new Error('the proposal was abandoned'), { name: 'Aborted' })
      }
      return await real(op, options)
    }
    async function * body (): AsyncGenerator<Uint8Array> {
      yield * chunks(randomBytes((2 * STAGE_BATCH_MAX + 100) * EXTENT), 4096)
    }
    await ctx.files.put('/big/cut', body(), { signal: abort.signal }).then(() => assert.unreachable(), () => {})
    assert.equal(ctx.ops.map((o) => o.type), [...Array(cutAt).fill('StageExtents'), 'DropStage'])
    assert.equal(await ctx.metadata.read((v) => v.stages?.()), [])
    assert.is((await ctx.store.usage()).extents, 0, 'the batch of unknown outcome is freed with the rest')
  })
}

test('copies on other nodes an abandoned put could not delete are handed to release, which tries them again', async () => {
  const OTHER = '12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq'
  const released: ExtentRecord[] = []
  const replication = {
    encodedWritesReleaseBytes: false,
    write: async (id: string, bytes: Uint8Array) => {
      const info = await ctx.store.put(id, bytes)
      return { extent: { id, size: info.size, checksum: info.checksum, replicas: [NODE, OTHER] }, missing: [] }
    },
    release: (extents: ExtentRecord[]) => { released.push(...extents) }
  } as unknown as ReplicationService
  let deletes = 0
  const peers = { delete: async () => { if (++deletes % 2 === 0) throw Object.assign(new Error('overloaded'), { name: 'Unavailable' }) } }
  const files = new FileService({ nodeId: NODE, store: ctx.store, metadata: ctx.metadata, gc: ctx.gc, extentSize: EXTENT, replication, peers })
  async function * failing (): AsyncGenerator<Uint8Array> {
    yield * chunks(randomBytes((STAGE_BATCH_MAX + 100) * EXTENT), 4096)
    throw new Error('client went away')
  }
  await files.put('/big/abandoned', failing()).then(() => assert.unreachable(), () => {})
  assert.is(deletes, STAGE_BATCH_MAX + 100, 'one delete per copy on the other node')
  assert.is(released.length, (STAGE_BATCH_MAX + 100) / 2, 'the failed ones go to release')
  assert.ok(released.every((e) => e.replicas.length === 1 && e.replicas[0] === OTHER))
  assert.is((await ctx.store.usage()).extents, 0, 'this node\'s copies are freed here')
})

test('a commit refused after staging (a directory took the path) drops the stage and frees everything', async () => {
  const real = ctx.metadata.propose.bind(ctx.metadata)
  ctx.metadata.propose = async (op, options) => {
    if (op.type === 'PutFile') await real({ type: 'MakeDir', path: '/big/taken' })
    return await real(op, options)
  }
  await ctx.files.put('/big/taken', chunks(randomBytes((STAGE_BATCH_MAX + 5) * EXTENT), 4096))
    .then(() => assert.unreachable(), (err) => { assert.is(err.name, 'IsADirectory') })
  assert.equal(await ctx.metadata.read((v) => v.stages?.()), [])
  assert.is((await ctx.store.usage()).extents, 0)
})

test('the periodic check drops a stage older than the longest put, and only such a one', async () => {
  const extents = Array.from({ length: 3 }, (_, i) => ({ id: `00000000-0000-4000-8000-00000000000${i}`, size: 1, checksum: 'sha256:' + 'a'.repeat(64), replicas: [NODE] }))
  for (const e of extents) await ctx.store.put(e.id, new Uint8Array([1]))
  await ctx.metadata.propose({ type: 'StageExtents', stage: '00000000-0000-4000-8000-0000000000aa', path: '/dead', node: NODE, extents: extents.slice(0, 2), createdAtMs: 1000 })
  await ctx.metadata.propose({ type: 'StageExtents', stage: '00000000-0000-4000-8000-0000000000bb', path: '/live', node: NODE, extents: extents.slice(2), createdAtMs: 5000 })
  assert.is(await ctx.gc.sweep(ctx.metadata), 0, 'staged extents are referenced')
  assert.is(await ctx.gc.dropStaleStages(ctx.metadata, 3000, () => 5000), 1)
  assert.equal(await ctx.metadata.read((v) => v.stages?.().map((s) => s.path)), ['/live'])
  assert.is((await ctx.store.usage()).extents, 1, 'the dead put\'s copies here are freed')
})

test.run()
