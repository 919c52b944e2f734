import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomBytes } from 'node:crypto'
import { extentRange, FileService, type ExtentRange } from '../../src/node/files.js'
import { fsMethods } from '../../src/node/handlers/fs.js'
import { openFileService, type FileServiceFixture } from '../support/file-service.js'
import type { RpcMethod } from '../../src/net/rpc/types.js'

/**
 * Range reads: the extent arithmetic (extentRange) against slicing the whole file, FileService.open
 * with a range over a real local metadata log (which extents it reads, and that it never touches the
 * others), and the checks of fs.get's range params.
 */
const test = suite('node/range-read')
const NODE = '12D3KooWRyh2zNmr7R2ixgMm9AXDBYUYPzfntKCELAq8HDtpAVMX'

/** A seeded generator (mulberry32), so a failing case can be replayed from the printed seed. */
function rng (seed: number): (n: number) => number {
  let a = seed >>> 0
  return (n) => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n)
  }
}

/** The bytes a plan serves, cut from the extents it names: what a node sends. */
function assemble (extents: Uint8Array[], r: ExtentRange): Buffer {
  const parts = extents.slice(r.first, r.end).map((e, i, all) =>
    e.subarray(i === 0 ? r.headSkip : 0, e.byteLength - (i === all.length - 1 ? r.tailDrop : 0)))
  return Buffer.concat(parts)
}

function errorOf (fn: () => unknown): any {
  try {
    fn()
  } catch (err) {
    return err
  }
  return undefined
}

test('extentRange serves the same bytes as slicing the whole file, for random extent sizes and ranges', () => {
  const seed = Date.now() % 1_000_000
  const rand = rng(seed)
  for (let round = 0; round < 300; round++) {
    const count = rand(8)
    const extents = Array.from({ length: count }, () => randomBytes(1 + rand(50)))
    const whole = Buffer.concat(extents)
    const sizes = extents.map((e) => e.byteLength)
    for (let k = 0; k < 20; k++) {
      const offset = rand(whole.length + 1)
      const length = rand(4) === 0 ? undefined : rand(whole.length + 10)
      const why = `seed ${seed} round ${round}: sizes ${JSON.stringify(sizes)} offset ${offset} length ${String(length)}`
      const r = extentRange(sizes, offset, length)
      const want = whole.subarray(offset, length === undefined ? whole.length : offset + length)
      assert.is(r.offset, offset, why)
      assert.is(r.length, want.length, why)
      assert.ok(assemble(extents, r).equals(want), why)
      // only the extents that hold a byte of the range are read
      let at = 0
      for (let i = 0; i < sizes.length; i++) {
        const overlaps = want.length > 0 && at < offset + want.length && at + sizes[i] > offset
        assert.is(i >= r.first && i < r.end, overlaps, `${why}: extent ${i}`)
        at += sizes[i]
      }
      if (r.end > r.first) {
        assert.ok(r.headSkip < sizes[r.first], why)
        assert.ok(r.tailDrop < sizes[r.end - 1], why)
        assert.is(sizes.slice(0, r.first).reduce((a, b) => a + b, 0), r.firstOffset, why)
      }
    }
  }
})

test('extentRange trims the first and last extent, and reads one extent for a range inside it', () => {
  const sizes = [100, 100, 100, 50]
  assert.equal(extentRange(sizes), { offset: 0, length: 350, first: 0, end: 4, firstOffset: 0, headSkip: 0, tailDrop: 0 })
  assert.equal(extentRange(sizes, 150, 100), { offset: 150, length: 100, first: 1, end: 3, firstOffset: 100, headSkip: 50, tailDrop: 50 })
  assert.equal(extentRange(sizes, 210, 20), { offset: 210, length: 20, first: 2, end: 3, firstOffset: 200, headSkip: 10, tailDrop: 70 })
  // exactly one extent, on its boundaries
  assert.equal(extentRange(sizes, 100, 100), { offset: 100, length: 100, first: 1, end: 2, firstOffset: 100, headSkip: 0, tailDrop: 0 })
  // the last byte
  assert.equal(extentRange(sizes, 349, 1), { offset: 349, length: 1, first: 3, end: 4, firstOffset: 300, headSkip: 49, tailDrop: 0 })
})

test('extentRange: empty at the end or with length 0, clipped past the end, InvalidRange past the end', () => {
  const sizes = [100, 100]
  for (const [offset, length] of [[200, undefined], [200, 10], [0, 0], [150, 0], [200, 0]] as const) {
    const r = extentRange(sizes, offset, length)
    assert.is(r.length, 0)
    assert.is(r.end - r.first, 0, 'an empty range reads no extent')
  }
  assert.equal(extentRange(sizes, 150, 1000), { offset: 150, length: 50, first: 1, end: 2, firstOffset: 100, headSkip: 50, tailDrop: 0 })
  assert.is(extentRange([], 0).length, 0, 'an empty file')
  assert.is(extentRange([0], 0).end, 0, 'an empty file stored as one empty extent reads nothing')
  const err = errorOf(() => extentRange(sizes, 201, 1))
  assert.is(err?.name, 'InvalidRange')
  assert.equal(err.details, { offset: 201, size: 200 })
  assert.is(errorOf(() => extentRange([], 1))?.name, 'InvalidRange')
  for (const [offset, length] of [[-1, 1], [1.5, 1], [0, -1], [0, 0.5], [NaN, 1], [0, Infinity], [2 ** 53, 1]]) {
    assert.is(errorOf(() => extentRange(sizes, offset, length))?.name, 'InvalidArgument', `${offset} ${length}`)
  }
})

let ctx: FileServiceFixture

test.before.each(async () => { ctx = await openFileService('dfs-range-', NODE) })
test.after.each(async () => { await ctx.close() })

async function readAll (body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = []
  for await (const c of body) parts.push(c)
  return Buffer.concat(parts)
}

async function * once (bytes: Uint8Array): AsyncGenerator<Uint8Array> { yield bytes }

/** Both read paths of open: straight from the store, and through an ExtentReader (as with replication). */
function services (): Array<{ name: string, files: FileService, reads: string[] }> {
  const direct = { name: 'store', reads: [] as string[], files: undefined as unknown as FileService }
  const store = ctx.store
  const get = store.get.bind(store)
  store.get = async (id, options) => { direct.reads.push(id); return await get(id, options) }
  direct.files = new FileService({ nodeId: NODE, store, metadata: ctx.metadata, gc: ctx.gc, extentSize: 1000 })
  const reader = { name: 'reader', reads: [] as string[], files: undefined as unknown as FileService }
  reader.files = new FileService({
    nodeId: NODE,
    store,
    metadata: ctx.metadata,
    gc: ctx.gc,
    extentSize: 1000,
    extents: { get: async (e, o) => { reader.reads.push(e.id); return await get(e.id, o) } }
  })
  return [direct, reader]
}

test('open with a range reads only the extents it needs and serves exactly the range, on both read paths', async () => {
  const [direct, reader] = services()
  const bytes = randomBytes(4500)
  await direct.files.put('/r/f.bin', once(bytes))
  const ids = (await direct.files.stat('/r/f.bin')).extents.map((e) => e.id)
  assert.is(ids.length, 5)
  for (const s of [direct, reader]) {
    const cases: Array<[number, number | undefined, number[]]> = [
      [0, undefined, [0, 1, 2, 3, 4]], [1500, 1000, [1, 2]], [2100, 10, [2]], [4499, 5, [4]], [4500, undefined, []], [10, 0, []], [999, 2, [0, 1]]
    ]
    for (const [offset, length, extents] of cases) {
      s.reads.length = 0
      const { stat, range, body } = await s.files.open('/r/f.bin', { offset, length })
      const got = await readAll(body)
      const why = `${s.name} ${offset}+${String(length)}`
      assert.ok(got.equals(bytes.subarray(offset, length === undefined ? undefined : offset + length)), why)
      assert.is(range.length, got.length, why)
      assert.is(stat.size, 4500, why)
      assert.equal(s.reads, extents.map((i) => ids[i]), why)
    }
  }
})

test('a range read succeeds while an extent outside it is corrupt; a read that needs that extent fails', async () => {
  const [direct, reader] = services()
  const bytes = randomBytes(3000)
  await direct.files.put('/c/f.bin', once(bytes))
  const ids = (await direct.files.stat('/c/f.bin')).extents.map((e) => e.id)
  const stored = ctx.store.backing.get(ids[2]) as { bytes: Uint8Array }
  stored.bytes[7] ^= 0x01
  for (const s of [direct, reader]) {
    assert.ok((await readAll((await s.files.open('/c/f.bin', { offset: 100, length: 1900 })).body)).equals(bytes.subarray(100, 2000)), s.name)
    // the range needs 1 byte of the corrupt extent: it is read and checked whole, so the read fails
    const partial = await s.files.open('/c/f.bin', { offset: 1999, length: 2 })
    assert.is((await readAll(partial.body).catch((err: Error) => err) as Error).name, 'CorruptExtent', s.name)
  }
})

test('open refuses a range past the end with InvalidRange, and pins nothing', async () => {
  const [direct] = services()
  await direct.files.put('/p/f.bin', once(randomBytes(1500)))
  const err = await direct.files.open('/p/f.bin', { offset: 1501 }).catch((e: Error) => e) as any
  assert.is(err.name, 'InvalidRange')
  assert.equal(err.details, { offset: 1501, size: 1500 })
  // nothing stays pinned: removing the file frees its extents at once
  const r = await direct.files.remove('/p/f.bin')
  assert.is(r.freed, 2)
  assert.is(ctx.store.backing.size, 0)
})

const methods = new Map<string, RpcMethod>(fsMethods({} as unknown as FileService).map((m) => [m.name, m]))
const params = (raw: unknown): any => (methods.get('fs.get') as RpcMethod).params(raw)

test('fs.get takes offset and length as integers >= 0; anything else is InvalidArgument', () => {
  assert.equal(params({ path: '/a' }), { path: '/a', consistency: 'linearizable' })
  assert.equal(params({ path: '/a', offset: 0, length: 0 }), { path: '/a', consistency: 'linearizable', offset: 0, length: 0 })
  assert.equal(params({ path: '/a', offset: 5 }), { path: '/a', consistency: 'linearizable', offset: 5 })
  for (const bad of [-1, 1.5, '3', NaN, Infinity, 2 ** 53, true, [1], { n: 1 }]) {
    for (const key of ['offset', 'length']) {
      assert.is(errorOf(() => params({ path: '/a', [key]: bad }))?.name, 'InvalidArgument', `${key} ${JSON.stringify(bad)}`)
    }
  }
})

test.run()
