import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LocalMetadataService } from '@dfs/raft-metadata'
import { MemoryExtentStore } from '@dfs/api/testing'
import { FileService } from '../../src/node/files.js'
import { ExtentGc } from '../../src/node/extent-gc.js'
import { NoQuorumError, type CallOptions, type ExtentRecord, type ExtentStore, type MetadataService, type MetadataView } from '@dfs/api'

/** FileService over an in-memory extent store and the real (LevelDB) local metadata log. */
const test = suite('node/files')
const NODE = '12D3KooWRyh2zNmr7R2ixgMm9AXDBYUYPzfntKCELAq8HDtpAVMX'
const logger: any = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false })

interface Ctx { dir: string, store: MemoryExtentStore, metadata: LocalMetadataService, gc: ExtentGc, files: FileService }
let ctx: Ctx

async function make (store: ExtentStore = new MemoryExtentStore()): Promise<Ctx> {
  const dir = await mkdtemp(join(tmpdir(), 'dfs-files-'))
  const metadata = new LocalMetadataService({ dir, nodeId: NODE, logger })
  await metadata.start()
  await store.open()
  const gc = new ExtentGc(store)
  return { dir, store: store as MemoryExtentStore, metadata, gc, files: new FileService({ nodeId: NODE, store, metadata, gc, extentSize: 1000 }) }
}

async function * chunks (bytes: Uint8Array, sizes: number[]): AsyncGenerator<Uint8Array> {
  let offset = 0
  let i = 0
  while (offset < bytes.length) {
    const n = sizes[i++ % sizes.length]
    yield bytes.subarray(offset, offset + n)
    offset += n
  }
}

async function readAll (body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = []
  for await (const c of body) parts.push(c)
  return Buffer.concat(parts)
}

test.before.each(async () => { ctx = await make() })
test.after.each(async () => {
  await ctx.metadata.stop()
  await rm(ctx.dir, { recursive: true, force: true })
})

test('a put splits bytes into extents whatever the chunking, and open reads them back', async () => {
  const bytes = randomBytes(4321)
  const r = await ctx.files.put('/a/b.bin', chunks(bytes, [1, 999, 7, 3000]))
  assert.equal(r, { path: '/a/b.bin', size: 4321, extents: 5 })
  const st = await ctx.files.stat('/a/b.bin')
  assert.equal(st.extents.map((e) => e.size), [1000, 1000, 1000, 1000, 321])
  for (const e of st.extents) assert.match(e.checksum, /^sha256:[0-9a-f]{64}$/)
  const { body } = await ctx.files.open('/a/b.bin')
  assert.ok((await readAll(body)).equals(bytes))
})

test('extents larger than the first put buffer: it grows while the first extent fills, and every byte lands', async () => {
  const files = new FileService({ nodeId: NODE, store: ctx.store, metadata: ctx.metadata, gc: ctx.gc, extentSize: 300 * 1024 })
  // a small file: one extent in a buffer that grew from 64 KiB, never a whole extent's worth
  const small = randomBytes(100_001)
  assert.equal(await files.put('/g/small', chunks(small, [10_000, 7, 33_333])), { path: '/g/small', size: 100_001, extents: 1 })
  assert.ok((await readAll((await files.open('/g/small')).body)).equals(small))
  // a big one: the first extent grows its buffer, the later ones start full size; odd chunk sizes
  const big = randomBytes(700_000)
  assert.equal(await files.put('/g/big', chunks(big, [65_537, 1, 200_000, 4095])), { path: '/g/big', size: 700_000, extents: 3 })
  assert.equal((await files.stat('/g/big')).extents.map((e) => e.size), [307_200, 307_200, 85_600])
  assert.ok((await readAll((await files.open('/g/big')).body)).equals(big))
})

test('a put that outlasts its time limit fails with DeadlineExceeded and commits nothing', async () => {
  const files = new FileService({ nodeId: NODE, store: ctx.store, metadata: ctx.metadata, gc: ctx.gc, extentSize: 1000, putDurationMaxMs: 100 })
  async function * slow (): AsyncGenerator<Uint8Array> {
    yield randomBytes(1500)
    await new Promise((resolve) => setTimeout(resolve, 200))
    yield randomBytes(10)
  }
  try {
    await files.put('/slow', slow())
    assert.unreachable('the put should have run out of time')
  } catch (err) {
    assert.is((err as Error).name, 'DeadlineExceeded')
  }
  const stat = await files.stat('/slow').then(() => 'found', (e: Error) => e.name)
  assert.is(stat, 'NotFound')
  assert.is((await ctx.store.usage()).extents, 0, 'the extent it wrote is freed')
})

test('an empty file has no extents and reads back empty', async () => {
  assert.equal(await ctx.files.put('/empty', chunks(new Uint8Array(0), [1])), { path: '/empty', size: 0, extents: 0 })
  const { body, stat } = await ctx.files.open('/empty')
  assert.is(stat.size, 0)
  assert.is((await readAll(body)).length, 0)
})

test('a put whose caller gives up during the commit fails with the commit\'s own error, not the put time limit', async () => {
  // a commit in a minority: it waits for a leader until the caller's deadline, then says why it failed
  const leaderless = {
    staleRead: ctx.metadata.staleRead.bind(ctx.metadata),
    propose: async (_op: unknown, options: CallOptions = {}) => await new Promise((_resolve, reject) => {
      const signal = options.signal as AbortSignal
      signal.addEventListener('abort', () => {
        reject((signal.reason as Error).name === 'TimeoutError' ? new NoQuorumError('no leader is elected') : signal.reason as Error)
      }, { once: true })
    })
  } as unknown as MetadataService
  const files = new FileService({ nodeId: NODE, store: ctx.store, metadata: leaderless, gc: ctx.gc, extentSize: 1000 })
  // the caller's deadline, as the RPC server's fires (AbortSignal.timeout's timer would not keep the test alive)
  const caller = new AbortController()
  setTimeout(() => { caller.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError')) }, 100)
  const err = await files.put('/q', chunks(randomBytes(10), [10]), { signal: caller.signal }).then(() => undefined, (e: Error) => e)
  assert.is(err?.name, 'NoQuorum', String(err))
})

test('a put that fails part-way commits nothing and frees the extents it wrote', async () => {
  await ctx.files.put('/keep', chunks(randomBytes(10), [10]))
  const before = (await ctx.store.usage()).extents
  async function * failing (): AsyncGenerator<Uint8Array> {
    yield randomBytes(2500)
    throw new Error('client went away')
  }
  try {
    await ctx.files.put('/broken', failing())
    assert.unreachable()
  } catch (err: any) {
    assert.is(err.message, 'client went away')
  }
  assert.is((await ctx.store.usage()).extents, before)
  try {
    await ctx.files.stat('/broken')
    assert.unreachable()
  } catch (err: any) {
    assert.is(err.name, 'NotFound')
  }
})

test('replacing a file while it is read: the reader gets the whole old version; its extents are freed after', async () => {
  const v1 = randomBytes(3000)
  const v2 = randomBytes(2000)
  await ctx.files.put('/f', chunks(v1, [3000]))
  const old = await ctx.files.open('/f')
  const first = await old.body.next()
  await ctx.files.put('/f', chunks(v2, [2000]))
  assert.is((await ctx.store.usage()).extents, 5, 'old extents stay while pinned')
  const rest = await readAll(old.body)
  assert.ok(Buffer.concat([first.value as Uint8Array, rest]).equals(v1))
  assert.is((await ctx.store.usage()).extents, 2, 'old extents freed once the reader is done')
  assert.ok((await readAll((await ctx.files.open('/f')).body)).equals(v2))
  assert.is((await ctx.files.stat('/f')).version, 2)
})

test('a put whose commit was rejected frees its bytes; one whose outcome is unknown keeps them for the sweep', async () => {
  await ctx.files.put('/dir/f', chunks(randomBytes(10), [10]))
  // rejected by apply (a file cannot replace a directory): certain, so the bytes go
  const usage = (await ctx.store.usage()).extents
  const real = ctx.metadata.propose.bind(ctx.metadata)
  ;(ctx.metadata as any).propose = async (op: any, options: any) => await real({ ...op, path: '/dir' }, options)
  try {
    await ctx.files.put('/elsewhere', chunks(randomBytes(2500), [2500]))
    assert.unreachable()
  } catch (err: any) {
    assert.is(err.name, 'IsADirectory')
  }
  assert.is((await ctx.store.usage()).extents, usage, 'rejected: freed')
  // a deadline: the proposal may still commit, so nothing is freed yet
  ;(ctx.metadata as any).propose = async () => { throw Object.assign(new Error('the proposal was not applied in time'), { name: 'DeadlineExceeded' }) }
  try {
    await ctx.files.put('/slow', chunks(randomBytes(2500), [2500]))
    assert.unreachable()
  } catch (err: any) {
    assert.is(err.name, 'DeadlineExceeded')
  }
  assert.is((await ctx.store.usage()).extents, usage + 3, 'unknown outcome: kept')
  ;(ctx.metadata as any).propose = real
  assert.is(await ctx.gc.sweep(ctx.metadata), 3, 'the sweep frees them once metadata shows they never committed')
})

test('a sweep running beside a put leaves the put\'s extents alone', async () => {
  let release!: () => void
  const gate = new Promise<void>((resolve) => { release = resolve })
  const real = ctx.metadata.propose.bind(ctx.metadata)
  ;(ctx.metadata as any).propose = async (op: any, options: any) => { await gate; return await real(op, options) }
  const bytes = randomBytes(2500)
  const put = ctx.files.put('/racing', chunks(bytes, [2500]))
  while ((await ctx.store.usage()).extents < 3) await new Promise((resolve) => setTimeout(resolve, 5))
  assert.is(await ctx.gc.sweep(ctx.metadata), 0, 'extents of a put not yet committed are not orphans')
  release()
  await put
  ;(ctx.metadata as any).propose = real
  assert.ok((await readAll((await ctx.files.open('/racing')).body)).equals(bytes))
})

test('rm frees the extents; the sweep at start-up frees orphans', async () => {
  await ctx.files.put('/x', chunks(randomBytes(2500), [2500]))
  assert.equal(await ctx.files.remove('/x'), { path: '/x', freed: 3 })
  assert.is((await ctx.store.usage()).extents, 0)
  await ctx.store.put('11111111-2222-4333-8444-555555555555', randomBytes(10))
  await ctx.files.put('/y', chunks(randomBytes(10), [10]))
  assert.is(await ctx.gc.sweep(ctx.metadata), 1)
  assert.is((await ctx.store.usage()).extents, 1)
})

test('a sweep that knows the node frees copies listed only elsewhere, and keeps a copy a move brings here', async () => {
  const OTHER = '12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp'
  const gc = new ExtentGc(ctx.store, { nodeId: NODE })
  const checksum = 'sha256:' + '0'.repeat(64)
  const ids = ['11111111-2222-4333-8444-000000000001', '11111111-2222-4333-8444-000000000002', '11111111-2222-4333-8444-000000000003']
  for (const id of ids) await ctx.store.put(id, randomBytes(10))
  await ctx.metadata.propose({ type: 'CreateExtent', extent: { id: ids[0], size: 10, checksum, replicas: [OTHER] } })
  await ctx.metadata.propose({ type: 'CreateExtent', extent: { id: ids[1], size: 10, checksum, replicas: [OTHER] } })
  await ctx.metadata.propose({ type: 'StartMove', id: ids[1], from: OTHER, to: NODE })
  await ctx.metadata.propose({ type: 'CreateExtent', extent: { id: ids[2], size: 10, checksum, replicas: [NODE] } })
  assert.is(await gc.sweep(ctx.metadata, ids), 1)
  assert.equal([await ctx.store.has(ids[0]), await ctx.store.has(ids[1]), await ctx.store.has(ids[2])], [false, true, true])
})

test('ls pages through a directory in name order', async () => {
  for (let i = 0; i < 25; i++) await ctx.files.put(`/d/f${String(i).padStart(2, '0')}`, chunks(randomBytes(1), [1]))
  const p1 = await ctx.files.list('/d', { limit: 10 })
  assert.is(p1.entries.length, 10)
  assert.ok(p1.more)
  const p3 = await ctx.files.list('/d', { after: 'f19', limit: 10 })
  assert.equal(p3.entries.map((e) => e.name), ['f20', 'f21', 'f22', 'f23', 'f24'])
  assert.not.ok(p3.more)
  const f03 = await ctx.files.stat('/d/f03')
  assert.equal((await ctx.files.list('/d/f03')).entries, [{ path: '/d/f03', name: 'f03', type: 'file', size: 1, mtimeMs: f03.mtimeMs, version: f03.version }])
})

test('a stale read answers from the applied state with no quorum reachable and says so; a linearizable one fails', async () => {
  const bytes = randomBytes(2500)
  await ctx.files.put('/p/a.bin', chunks(bytes, [2500]))
  assert.is((await ctx.files.stat('/p/a.bin')).consistency, 'linearizable')
  // this node is cut off from a majority: every quorum round fails, as a Raft group's does in a minority
  const noQuorum = async (): Promise<never> => { throw new NoQuorumError('no leader is elected') }
  const cutOff = {
    read: noQuorum,
    propose: noQuorum,
    staleRead: <T>(fn: (view: MetadataView) => T): T => ctx.metadata.staleRead(fn)
  } as unknown as MetadataService
  const files = new FileService({ nodeId: NODE, store: ctx.store, metadata: cutOff, gc: ctx.gc, extentSize: 1000 })

  const st = await files.stat('/p/a.bin', { consistency: 'stale' })
  assert.is(st.consistency, 'stale')
  assert.is(st.size, 2500)
  assert.equal(st.extents.map((e) => e.size), [1000, 1000, 500])
  const ls = await files.list('/p', {}, { consistency: 'stale' })
  assert.equal(ls, { entries: [{ path: '/p/a.bin', name: 'a.bin', type: 'file', size: 2500, mtimeMs: st.mtimeMs, version: 1 }], more: false, consistency: 'stale' })
  const opened = await files.open('/p/a.bin', { consistency: 'stale' })
  assert.is(opened.stat.consistency, 'stale')
  assert.ok((await readAll(opened.body)).equals(bytes))
  const missing = await files.stat('/p/none', { consistency: 'stale' }).then(() => 'found', (e: Error) => e.name)
  assert.is(missing, 'NotFound', 'a stale read keeps the typed errors of a linearizable one')

  for (const consistency of [undefined, 'linearizable'] as const) {
    const name = (p: Promise<unknown>): Promise<string> => p.then(() => 'answered', (e: Error) => e.name)
    assert.is(await name(files.stat('/p/a.bin', { consistency })), 'NoQuorum')
    assert.is(await name(files.list('/p', {}, { consistency })), 'NoQuorum')
    assert.is(await name(files.open('/p/a.bin', { consistency })), 'NoQuorum')
  }

  // a metadata service that cannot read stale serves the read linearizably, and says that instead
  const strict = { read: ctx.metadata.read.bind(ctx.metadata) } as unknown as MetadataService
  const plain = new FileService({ nodeId: NODE, store: ctx.store, metadata: strict, gc: ctx.gc, extentSize: 1000 })
  assert.is((await plain.stat('/p/a.bin', { consistency: 'stale' })).consistency, 'linearizable')
})

test('a corrupt extent fails the read with CorruptExtent naming it', async () => {
  const backing = new Map()
  await ctx.metadata.stop()
  await rm(ctx.dir, { recursive: true, force: true })
  ctx = await make(new MemoryExtentStore(backing))
  await ctx.files.put('/c', chunks(randomBytes(2000), [2000]))
  const victim = (await ctx.files.stat('/c')).extents[1].id
  backing.get(victim).bytes[5] ^= 1
  const { body } = await ctx.files.open('/c')
  try {
    await readAll(body)
    assert.unreachable()
  } catch (err: any) {
    assert.is(err.name, 'CorruptExtent')
    assert.is(err.details.extentId, victim)
  }
})

test('with an extent reader, open reads through it two extents ahead, and pins still hold the local bytes', async () => {
  const calls: string[] = []
  const signals: AbortSignal[] = []
  const reader = {
    get: async (extent: ExtentRecord, options?: CallOptions): Promise<Uint8Array> => {
      calls.push(extent.id)
      if (options?.signal != null) signals.push(options.signal)
      return await ctx.store.get(extent.id)
    }
  }
  const files = new FileService({ nodeId: NODE, store: ctx.store, metadata: ctx.metadata, gc: ctx.gc, extentSize: 1000, extents: reader })
  const v1 = randomBytes(4000)
  await files.put('/f', chunks(v1, [4000]))
  const ids = (await files.stat('/f')).extents.map((e) => e.id)
  const old = await files.open('/f')
  const first = await old.body.next()
  assert.equal(calls, ids.slice(0, 3), 'the next two extents are fetched while the first is consumed')
  await files.put('/f', chunks(randomBytes(1500), [1500]))
  assert.is((await ctx.store.usage()).extents, 6, 'old extents stay while pinned')
  const rest = await readAll(old.body)
  assert.ok(Buffer.concat([first.value as Uint8Array, rest]).equals(v1))
  assert.equal(calls, ids)
  assert.is((await ctx.store.usage()).extents, 2, 'old extents freed once the reader is done')

  // a reader that leaves early aborts the prefetch and lets go of the pins
  const left = await files.open('/f')
  await left.body.next()
  await left.body.return(undefined)
  assert.ok(signals[signals.length - 1].aborted, 'the prefetch was told to stop')
  await files.put('/f', chunks(randomBytes(10), [10]))
  assert.is((await ctx.store.usage()).extents, 1, 'nothing pinned after the reader left')
})

test.run()
