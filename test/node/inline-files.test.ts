import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { INLINE_FILE_BYTES_MAX, extentChecksum } from '@dfs/api'
import type {
  CallOptions, ExtentPutOptions, ExtentRecord, InlineExtent, MetadataOp, MetadataService, MetadataView, ReadOptions, ReplicatedWrite,
  ReplicatedWriteOptions, ReplicationService
} from '@dfs/api'
import { LocalMetadataService } from '@dfs/raft-metadata'
import { MemoryExtentStore } from '@dfs/api/testing'
import { FileService } from '../../src/node/files.js'
import { ExtentGc } from '../../src/node/extent-gc.js'
import { InlineExtents } from '../../src/node/inline-extents.js'

/**
 * FileService's small-file path: a file of at most INLINE_FILE_BYTES_MAX whose placement is exactly
 * the committing group's voters travels inside its PutFile. The metadata service here is the real
 * local log behind a carrier that does what the Raft service does on every member (hand the bytes
 * to onInlineExtents after apply, never log them into the state); the end-to-end test runs the real
 * thing on three processes.
 */
const test = suite('node/files: small files inside their commit')
const NODE = '12D3KooWRyh2zNmr7R2ixgMm9AXDBYUYPzfntKCELAq8HDtpAVMX'
const OTHER = ['12D3KooWA1', '12D3KooWA2']
const logger: any = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false })

/** The local log as a group whose voters are `voters`, carrying inline bytes to `sink`. */
class Carrier implements MetadataService {
  readonly proposed: MetadataOp[] = []
  constructor (readonly inner: LocalMetadataService, readonly voters: string[], readonly sink: (x: InlineExtent[]) => Promise<void>) {}
  async start (): Promise<void> { await this.inner.start() }
  async stop (): Promise<void> { await this.inner.stop() }
  async read<T> (fn: (view: MetadataView) => T, options?: ReadOptions): Promise<T> { return await this.inner.read(fn, options) }
  staleRead<T> (fn: (view: MetadataView) => T): T { return (this.inner.staleRead as (f: typeof fn) => T)(fn) }
  status (): ReturnType<MetadataService['status']> { return this.inner.status() }
  inlineVoters (): string[] { return this.voters }
  async propose (op: MetadataOp, options?: CallOptions): ReturnType<MetadataService['propose']> {
    this.proposed.push(op)
    if (op.type !== 'PutFile' || op.inline === undefined) return await this.inner.propose(op, options)
    const { inline, ...plain } = op
    const result = await this.inner.propose(plain, options)
    void this.sink(plain.extents.map((extent, i) => ({ extent, bytes: inline[i] })))
    return result
  }
}

/** Writes every copy to the local store; placeInline answers what the test sets. */
class FakeReplication implements Partial<ReplicationService> {
  writes = 0
  inline: string[] | undefined
  constructor (readonly store: MemoryExtentStore) {}
  async write (id: string, bytes: Uint8Array, options: ReplicatedWriteOptions = {}): Promise<ReplicatedWrite> {
    this.writes++
    const info = await this.store.put(id, bytes, options)
    return { extent: { id, size: info.size, checksum: info.checksum, replicas: [NODE] }, missing: [] }
  }

  placeInline (_id: string, _size: number, voters: string[]): string[] | undefined {
    return this.inline !== undefined && this.inline.every((n) => voters.includes(n)) ? this.inline : undefined
  }

  async read (extent: ExtentRecord): Promise<Uint8Array> { return await this.store.get(extent.id) }
  release (): void {}
}

interface Ctx { dir: string, store: MemoryExtentStore, metadata: Carrier, replication: FakeReplication, inline: InlineExtents, files: FileService, puts: string[] }
let ctx: Ctx

test.before.each(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dfs-inline-files-'))
  const store = new MemoryExtentStore()
  await store.open()
  const puts: string[] = []
  const put = store.put.bind(store)
  store.put = async (id, bytes, options) => { puts.push(id); return await put(id, bytes, options) }
  const inline = new InlineExtents({ nodeId: NODE, store })
  const metadata = new Carrier(new LocalMetadataService({ dir, nodeId: NODE, logger }), [NODE, ...OTHER], inline.sink)
  await metadata.start()
  const replication = new FakeReplication(store)
  replication.inline = [NODE, ...OTHER]
  const files = new FileService({ nodeId: NODE, store, metadata, gc: new ExtentGc(store), extentSize: 1000, replication: replication as unknown as ReplicationService, inline })
  ctx = { dir, store, metadata, replication, inline, files, puts }
})

test.after.each(async () => {
  await ctx.metadata.stop()
  await rm(ctx.dir, { recursive: true, force: true })
})

async function * once (bytes: Uint8Array): AsyncGenerator<Uint8Array> { yield bytes }

function lastPut (): MetadataOp & { type: 'PutFile' } {
  const op = ctx.metadata.proposed.at(-1)
  if (op?.type !== 'PutFile') throw new Error('no PutFile proposed')
  return op
}

test('a small file placed on the voters travels in its PutFile; this node holds its copy when the put returns, stored once', async () => {
  const bytes = randomBytes(700)
  await ctx.files.put('/s/a', once(bytes))
  const op = lastPut()
  assert.equal(op.inline?.map((b) => Buffer.from(b)), [bytes])
  assert.is(op.extents.length, 1)
  const [record] = op.extents
  assert.equal(record.replicas, [NODE, ...OTHER])
  assert.is(record.checksum, extentChecksum(bytes))
  assert.is(ctx.replication.writes, 0, 'no copy round before the commit')
  assert.equal(Buffer.from(await ctx.store.get(record.id)), bytes)
  await new Promise((resolve) => setTimeout(resolve, 20))
  // the apply hook found this node's own write and did not store the extent a second time
  assert.equal(ctx.puts, [record.id])
  const opened = await ctx.files.open('/s/a')
  const parts: Uint8Array[] = []
  for await (const p of opened.body) parts.push(p)
  assert.equal(Buffer.concat(parts), bytes)
})

test('not inside the commit: over INLINE_FILE_BYTES_MAX, with --sync all, when placement is not the voters, and an empty file', async () => {
  const files = new FileService({
    nodeId: NODE, store: ctx.store, metadata: ctx.metadata, gc: new ExtentGc(ctx.store), extentSize: INLINE_FILE_BYTES_MAX * 2,
    replication: ctx.replication as unknown as ReplicationService, inline: ctx.inline
  })
  await files.put('/s/big', once(randomBytes(INLINE_FILE_BYTES_MAX + 1)))
  assert.is(lastPut().inline, undefined)
  await files.put('/s/all', once(randomBytes(10)), { sync: 'all' })
  assert.is(lastPut().inline, undefined)
  ctx.replication.inline = [NODE, OTHER[0], '12D3KooWNotAVoter']
  await files.put('/s/elsewhere', once(randomBytes(10)))
  assert.is(lastPut().inline, undefined)
  await files.put('/s/empty', once(new Uint8Array(0)))
  assert.equal(lastPut().extents, [])
  assert.is(lastPut().inline, undefined)
  assert.is(ctx.replication.writes, 3)
  ctx.replication.inline = [NODE, ...OTHER]
  await files.put('/s/max', once(randomBytes(INLINE_FILE_BYTES_MAX)))
  assert.is(lastPut().inline?.[0].byteLength, INLINE_FILE_BYTES_MAX)
})

test('the apply hook stores only copies listed on this node and still referenced, and stores again what the local write failed', async () => {
  const store = new MemoryExtentStore()
  await store.open()
  let referenced = true
  const sink = new InlineExtents({ nodeId: NODE, store, current: (id) => referenced ? { id, size: 3, checksum: extentChecksum(Buffer.from('abc')), replicas: [NODE] } : undefined })
  const record = (n: number, replicas: string[]): ExtentRecord => ({ id: `00000000-0000-4000-8000-00000000000${n}`, size: 3, checksum: extentChecksum(Buffer.from('abc')), replicas })
  await sink.sink([{ extent: record(1, OTHER), bytes: Buffer.from('abc') }, { extent: record(2, [NODE]), bytes: Buffer.from('abc') }])
  assert.is(await store.has(record(1, OTHER).id), false, 'not a replica here')
  assert.is(await store.has(record(2, [NODE]).id), true)
  referenced = false
  await sink.sink([{ extent: record(3, [NODE]), bytes: Buffer.from('abc') }])
  assert.is(await store.has(record(3, [NODE]).id), false, 'removed since it was applied')
  referenced = true
  // a local write that failed: the hook stores the copy itself
  const failing = { ...store, put: async () => { throw new Error('disk full') } } as unknown as MemoryExtentStore
  const flaky = new InlineExtents({ nodeId: NODE, store: failing })
  const mine = flaky.storeLocal(record(4, [NODE]), Buffer.from('abc'))
  await mine.written.catch(() => {})
  await flaky.sink([{ extent: record(4, [NODE]), bytes: Buffer.from('abc') }]).then(() => assert.unreachable('the retry hits the same full disk'), (err: Error) => { assert.match(err.message, /disk full/) })
  mine.release()
  // a checksum that does not match the bytes is refused by the store: the copy is not stored
  await sink.sink([{ extent: { ...record(5, [NODE]), checksum: extentChecksum(Buffer.from('xyz')) }, bytes: Buffer.from('abc') }])
    .then(() => assert.unreachable('stored bytes that do not match their checksum'), (err: Error) => { assert.is(err.name, 'CorruptExtent') })
})

test('copies are stored without their own fsync, and settle (before a snapshot) and a snapshot restore make them durable', async () => {
  const inner = new MemoryExtentStore()
  await inner.open()
  const calls: string[] = []
  // the memory store recording what the node asks of it (a store with sync: ExtentStore.sync)
  const store = Object.assign(Object.create(inner) as MemoryExtentStore, {
    put: async (id: string, bytes: Uint8Array, options?: ExtentPutOptions) => {
      calls.push(`put ${id.slice(-1)} durable=${String(options?.durable ?? true)}`)
      return await inner.put(id, bytes, options)
    },
    has: async (id: string) => { calls.push(`has ${id.slice(-1)}`); return await inner.has(id) },
    sync: async () => { calls.push('sync') }
  })
  const inline = new InlineExtents({ nodeId: NODE, store })
  const record = (n: number): ExtentRecord => ({ id: `00000000-0000-4000-8000-00000000020${n}`, size: 3, checksum: extentChecksum(Buffer.from('abc')), replicas: [NODE] })
  const mine = inline.storeLocal(record(1), Buffer.from('abc'))
  await mine.written
  mine.release()
  await inline.sink([{ extent: record(2), bytes: Buffer.from('abc') }])
  // the Raft log entry that carried them keeps the bytes durable until the snapshot
  assert.equal(calls, ['put 1 durable=false', 'put 2 durable=false'])
  await inline.settle()
  assert.equal(calls.slice(2), ['sync'])
  // a leader's snapshot replaced the log: what was stored so far is made durable before anything else
  inline.attachFetcher(async () => Buffer.from('abc'))
  await inline.restored([record(2)], {})
  assert.equal(calls.slice(3), ['sync', 'has 2'])
})

test('after a snapshot restore, the copies listed here that the store lacks are fetched, verified and stored', async () => {
  const store = new MemoryExtentStore()
  await store.open()
  const inline = new InlineExtents({ nodeId: NODE, store })
  const bytesOf = (n: number): Buffer => Buffer.from(`copy ${n}`)
  const record = (n: number, replicas: string[]): ExtentRecord => ({ id: `00000000-0000-4000-8000-00000000010${n}`, size: bytesOf(n).byteLength, checksum: extentChecksum(bytesOf(n)), replicas })
  await store.put(record(1, [NODE]).id, bytesOf(1))
  const fetched: string[] = []
  // the hook waits for the replication service to be attached (it starts after metadata)
  const restoring = inline.restored([record(1, [NODE]), record(2, [NODE, ...OTHER]), record(3, OTHER)], {})
  await new Promise((resolve) => setTimeout(resolve, 20))
  assert.is(await store.has(record(2, [NODE]).id), false, 'nothing fetched before a fetcher is attached')
  inline.attachFetcher(async (x) => { fetched.push(x.id); return bytesOf(Number(x.id.slice(-1))) })
  await restoring
  assert.equal(fetched, [record(2, [NODE]).id], 'only the copy listed here and missing')
  assert.ok(Buffer.from(await store.get(record(2, [NODE]).id)).equals(bytesOf(2)))
  assert.is(await store.has(record(3, OTHER).id), false, 'not a replica here')
  // a fetch that fails, or bytes that do not match the checksum, fail the call (the scrub retries later)
  const bad = new InlineExtents({ nodeId: NODE, store })
  bad.attachFetcher(async () => Buffer.from('wrong bytes'))
  await bad.restored([record(4, [NODE])], {}).then(() => assert.unreachable('stored bytes that do not match'), (err: Error) => { assert.is(err.name, 'Unavailable') })
  assert.is(await store.has(record(4, [NODE]).id), false)
})

test.run()
