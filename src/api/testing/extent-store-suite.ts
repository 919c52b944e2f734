/**
 * The conformance suite of the ExtentStore contract (../extent-store.ts). Every implementation
 * runs it: `extentStoreSuite('level', makeHarness)`. Errors are matched on `.name` only.
 */
import { createHash, randomUUID } from 'node:crypto'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { EXTENT_SIZE_MAX } from '../index.js'
import type { ExtentInfo, ExtentStore } from '../index.js'

/**
 * One store under test, fresh for every test.
 *
 * - `store` is opened and empty. `corrupt` and `reopen` may replace it (a disk-backed store must be
 *   closed to damage its files): the suite reads `harness.store` again after calling either.
 * - `reopen` closes the current store and opens a new instance over the same data (a restart),
 *   sets `store` to it and returns it. Omit it for a store that keeps nothing.
 * - `corrupt(id)` damages the stored bytes of `id` the way bit rot would, leaving its checksum.
 * - `cleanup` closes whatever is open and removes what the harness created; it must tolerate being
 *   called after a failed test.
 */
export interface ExtentStoreHarness {
  store: ExtentStore
  reopen?: () => Promise<ExtentStore>
  corrupt: (id: string) => Promise<void>
  cleanup: () => Promise<void>
}

const MiB = 1024 * 1024

export function sha256 (bytes: Uint8Array): string {
  return 'sha256:' + createHash('sha256').update(bytes).digest('hex')
}

/** Deterministic, non-repeating-looking bytes (a repeated pattern would hide offset bugs). */
export function patternBytes (size: number, seed = 1): Uint8Array {
  const out = new Uint8Array(size)
  let x = (seed * 2654435761) >>> 0 || 1
  for (let i = 0; i < size; i++) {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    out[i] = x & 0xff
  }
  return out
}

/** Resolves to the error `promise` rejected with, after checking its name. */
export async function rejects (promise: Promise<unknown> | (() => Promise<unknown>), name: string): Promise<Error & { details?: Record<string, unknown> }> {
  let value: unknown
  try {
    value = await (typeof promise === 'function' ? promise() : promise)
  } catch (err) {
    assert.instance(err, Error)
    assert.is((err as Error).name, name, `expected ${name}, got ${(err as Error).name}: ${(err as Error).message}`)
    return err as Error & { details?: Record<string, unknown> }
  }
  assert.unreachable(`expected ${name}, but the call resolved to ${String(value)}`)
  throw new Error('unreachable')
}

async function collect (iterable: AsyncIterable<ExtentInfo>): Promise<ExtentInfo[]> {
  const out: ExtentInfo[] = []
  for await (const info of iterable) out.push(info)
  return out
}

/** `count` valid ids, sorted. */
function sortedIds (count: number): string[] {
  return Array.from({ length: count }, () => randomUUID()).sort()
}

export function extentStoreSuite (name: string, make: () => Promise<ExtentStoreHarness>): void {
  const test = suite<{ h?: ExtentStoreHarness }>(`ExtentStore contract: ${name}`, {})

  test.before.each(async (ctx) => {
    ctx.h = await make()
  })
  test.after.each(async (ctx) => {
    const h = ctx.h
    ctx.h = undefined
    await h?.cleanup()
  })

  const H = (ctx: { h?: ExtentStoreHarness }): ExtentStoreHarness => {
    assert.ok(ctx.h, 'harness was made')
    return ctx.h
  }

  test('put then get returns the same bytes and info with a sha256 checksum', async (ctx) => {
    const { store } = H(ctx)
    const id = randomUUID()
    const bytes = patternBytes(10_000)
    const info = await store.put(id, bytes)
    assert.equal(info, { id, size: 10_000, checksum: sha256(bytes) })
    assert.equal(await store.get(id), bytes)
    assert.equal(await store.stat(id), info)
    assert.is(await store.has(id), true)
  })

  test('put keeps nothing of the caller\'s buffer: reusing it afterwards changes no stored extent', async (ctx) => {
    const { store } = H(ctx)
    const id = randomUUID()
    const buffer = patternBytes(EXTENT_SIZE_MAX, 3)
    const want = buffer.slice(0, 300_000)
    await store.put(id, buffer.subarray(0, 300_000))
    buffer.fill(0xee)
    const got = await store.get(id)
    assert.ok(Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(want), 'the stored bytes are those given')
  })

  test('a 0-byte extent round-trips', async (ctx) => {
    const { store } = H(ctx)
    const id = randomUUID()
    const info = await store.put(id, new Uint8Array(0))
    assert.equal(info, { id, size: 0, checksum: sha256(new Uint8Array(0)) })
    const got = await store.get(id)
    assert.is(got.byteLength, 0)
    assert.equal(await store.stat(id), info)
    assert.equal(await store.usage(), { extents: 1, bytes: 0 })
  })

  test('a 4 MiB extent (the maximum) round-trips', async (ctx) => {
    const { store } = H(ctx)
    assert.is(EXTENT_SIZE_MAX, 4 * MiB)
    const id = randomUUID()
    const bytes = patternBytes(EXTENT_SIZE_MAX, 7)
    const info = await store.put(id, bytes)
    assert.is(info.size, EXTENT_SIZE_MAX)
    const got = await store.get(id)
    assert.is(got.byteLength, EXTENT_SIZE_MAX)
    assert.ok(Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(bytes), 'bytes equal')
  })

  test('an extent larger than the maximum is InvalidArgument and stores nothing', async (ctx) => {
    const { store } = H(ctx)
    const id = randomUUID()
    const err = await rejects(store.put(id, new Uint8Array(EXTENT_SIZE_MAX + 1)), 'InvalidArgument')
    assert.is(err.details?.size, EXTENT_SIZE_MAX + 1)
    assert.is(await store.has(id), false)
    assert.equal(await store.usage(), { extents: 0, bytes: 0 })
  })

  test('bytes that are not a Uint8Array are InvalidArgument', async (ctx) => {
    const { store } = H(ctx)
    await rejects(store.put(randomUUID(), 'text' as unknown as Uint8Array), 'InvalidArgument')
    await rejects(store.put(randomUUID(), [1, 2, 3] as unknown as Uint8Array), 'InvalidArgument')
  })

  test('malformed ids are InvalidArgument for every call', async (ctx) => {
    const { store } = H(ctx)
    const uuid = randomUUID()
    const bad = ['', 'abc', uuid.toUpperCase(), uuid + '0', ' ' + uuid, uuid.replace(/-/g, ''),
      '../../etc/passwd', 'h/' + uuid, uuid.slice(0, -1) + 'g', 42 as unknown as string]
    for (const id of bad) {
      await rejects(store.put(id, new Uint8Array(1)), 'InvalidArgument')
      await rejects(store.get(id), 'InvalidArgument')
      await rejects(store.has(id), 'InvalidArgument')
      await rejects(store.stat(id), 'InvalidArgument')
      await rejects(store.delete(id), 'InvalidArgument')
    }
    assert.equal(await store.usage(), { extents: 0, bytes: 0 })
    assert.equal(await collect(store.list()), [])
  })

  test('a missing extent is NotFound for get and stat, false for has and delete', async (ctx) => {
    const { store } = H(ctx)
    const id = randomUUID()
    const err = await rejects(store.get(id), 'NotFound')
    assert.is(err.details?.id, id)
    await rejects(store.stat(id), 'NotFound')
    assert.is(await store.has(id), false)
    assert.is(await store.delete(id), false)
  })

  test('delete removes the extent, is idempotent, and frees the id', async (ctx) => {
    const { store } = H(ctx)
    const id = randomUUID()
    const keep = randomUUID()
    await store.put(id, patternBytes(100, 1))
    await store.put(keep, patternBytes(50, 2))
    assert.is(await store.delete(id), true)
    assert.is(await store.delete(id), false)
    assert.is(await store.has(id), false)
    await rejects(store.get(id), 'NotFound')
    await rejects(store.stat(id), 'NotFound')
    assert.equal(await store.get(keep), patternBytes(50, 2))
    // Immutability is per life of an id: after a delete, other bytes may take it.
    const info = await store.put(id, patternBytes(30, 3))
    assert.is(info.size, 30)
    assert.equal(await store.get(id), patternBytes(30, 3))
  })

  test('putting identical bytes again is a no-op returning the same info', async (ctx) => {
    const { store } = H(ctx)
    const id = randomUUID()
    const bytes = patternBytes(4096, 5)
    const first = await store.put(id, bytes)
    const second = await store.put(id, bytes.slice())
    assert.equal(second, first)
    assert.equal(await store.usage(), { extents: 1, bytes: 4096 })
    assert.equal(await store.get(id), bytes)
  })

  test('putting different bytes under an existing id is AlreadyExists and keeps the original', async (ctx) => {
    const { store } = H(ctx)
    const id = randomUUID()
    const original = patternBytes(4096, 5)
    await store.put(id, original)
    await rejects(store.put(id, patternBytes(4096, 6)), 'AlreadyExists')
    await rejects(store.put(id, patternBytes(10, 6)), 'AlreadyExists')
    await rejects(store.put(id, new Uint8Array(0)), 'AlreadyExists')
    assert.equal(await store.get(id), original)
    assert.equal(await store.usage(), { extents: 1, bytes: 4096 })
  })

  test('a matching checksum option is accepted', async (ctx) => {
    const { store } = H(ctx)
    const id = randomUUID()
    const bytes = patternBytes(2000, 9)
    const info = await store.put(id, bytes, { checksum: sha256(bytes) })
    assert.is(info.checksum, sha256(bytes))
    assert.equal(await store.get(id), bytes)
  })

  test('a checksum option that does not match the bytes is CorruptExtent and stores nothing', async (ctx) => {
    const { store } = H(ctx)
    const id = randomUUID()
    const bytes = patternBytes(2000, 9)
    const claimed = sha256(patternBytes(2000, 10))
    const err = await rejects(store.put(id, bytes, { checksum: claimed }), 'CorruptExtent')
    assert.is(err.details?.extentId, id)
    assert.is(err.details?.expected, claimed)
    assert.is(err.details?.actual, sha256(bytes))
    assert.is(await store.has(id), false)
    await rejects(store.get(id), 'NotFound')
    assert.equal(await store.usage(), { extents: 0, bytes: 0 })
  })

  test('a malformed or unknown-algorithm checksum option is InvalidArgument and stores nothing', async (ctx) => {
    const { store } = H(ctx)
    const id = randomUUID()
    const bytes = patternBytes(100, 9)
    const hex = sha256(bytes).slice('sha256:'.length)
    for (const checksum of [hex, 'md5:' + hex.slice(0, 32), 'sha256:' + hex.toUpperCase(), 'sha256:' + hex.slice(1), 'sha256:', '']) {
      await rejects(store.put(id, bytes, { checksum }), 'InvalidArgument')
    }
    assert.is(await store.has(id), false)
  })

  test('list returns every extent in id order, with size and checksum', async (ctx) => {
    const { store } = H(ctx)
    assert.equal(await collect(store.list()), [])
    const ids = sortedIds(12)
    const shuffled = [...ids].sort(() => Math.random() - 0.5)
    const infos = new Map<string, ExtentInfo>()
    for (const [i, id] of shuffled.entries()) infos.set(id, await store.put(id, patternBytes(10 + i, i)))
    const listed = await collect(store.list())
    assert.equal(listed.map((i) => i.id), ids)
    for (const info of listed) assert.equal(info, infos.get(info.id))
  })

  test('list honours after and limit, and pages through everything', async (ctx) => {
    const { store } = H(ctx)
    const ids = sortedIds(10)
    for (const id of ids) await store.put(id, patternBytes(8, 1))
    assert.equal((await collect(store.list({ after: ids[3] }))).map((i) => i.id), ids.slice(4))
    assert.equal((await collect(store.list({ limit: 3 }))).map((i) => i.id), ids.slice(0, 3))
    assert.equal((await collect(store.list({ after: ids[5], limit: 2 }))).map((i) => i.id), ids.slice(6, 8))
    assert.equal(await collect(store.list({ limit: 0 })), [])
    assert.equal(await collect(store.list({ after: ids[9] })), [])
    // `after` need not exist: it is a position in id order
    assert.equal((await collect(store.list({ after: '0' }))).map((i) => i.id), ids.filter((id) => id > '0'))
    const paged: string[] = []
    let after: string | undefined
    while (true) {
      const page = await collect(store.list({ after, limit: 3 }))
      if (page.length === 0) break
      paged.push(...page.map((i) => i.id))
      after = page[page.length - 1].id
    }
    assert.equal(paged, ids)
  })

  test('list leaves out deleted extents; a bad limit is InvalidArgument', async (ctx) => {
    const { store } = H(ctx)
    const ids = sortedIds(4)
    for (const id of ids) await store.put(id, patternBytes(8, 1))
    await store.delete(ids[1])
    assert.equal((await collect(store.list())).map((i) => i.id), [ids[0], ids[2], ids[3]])
    for (const limit of [-1, 1.5, Number.NaN]) {
      await rejects(async () => await collect(store.list({ limit })), 'InvalidArgument')
    }
  })

  test('list can be abandoned part way', async (ctx) => {
    const { store } = H(ctx)
    const ids = sortedIds(5)
    for (const id of ids) await store.put(id, patternBytes(8, 1))
    const seen: string[] = []
    for await (const info of store.list()) {
      seen.push(info.id)
      if (seen.length === 2) break
    }
    assert.equal(seen, ids.slice(0, 2))
    assert.is((await collect(store.list())).length, 5)
  })

  test('a corrupt extent is CorruptExtent naming the extent and both checksums, never wrong bytes', async (ctx) => {
    const h = H(ctx)
    const id = randomUUID()
    const other = randomUUID()
    const bytes = patternBytes(64 * 1024, 3)
    const info = await h.store.put(id, bytes)
    await h.store.put(other, patternBytes(100, 4))
    await h.corrupt(id)
    const err = await rejects(h.store.get(id), 'CorruptExtent')
    assert.is(err.details?.extentId, id)
    assert.is(err.details?.expected, info.checksum)
    assert.type(err.details?.actual, 'string')
    assert.match(String(err.details?.actual), /^sha256:[0-9a-f]{64}$/)
    assert.is.not(err.details?.actual, info.checksum)
    assert.ok(err.message.includes(id), 'message names the extent')
    // the damage is local: other extents read, and the extent is still known
    assert.equal(await h.store.get(other), patternBytes(100, 4))
    assert.is(await h.store.has(id), true)
    assert.equal(await h.store.stat(id), info)
  })

  test('a corrupt 0-byte extent is detected too', async (ctx) => {
    const h = H(ctx)
    const id = randomUUID()
    await h.store.put(id, new Uint8Array(0))
    await h.corrupt(id)
    const err = await rejects(h.store.get(id), 'CorruptExtent')
    assert.is(err.details?.expected, sha256(new Uint8Array(0)))
  })

  test('re-putting the right bytes heals a corrupt extent; different bytes are still refused', async (ctx) => {
    const h = H(ctx)
    const id = randomUUID()
    const bytes = patternBytes(5000, 3)
    await h.store.put(id, bytes)
    await h.corrupt(id)
    await rejects(h.store.get(id), 'CorruptExtent')
    await rejects(h.store.put(id, patternBytes(5000, 4)), 'AlreadyExists')
    await h.store.put(id, bytes)
    assert.equal(await h.store.get(id), bytes)
    assert.equal(await h.store.usage(), { extents: 1, bytes: 5000 })
  })

  test('a corrupt extent can be deleted', async (ctx) => {
    const h = H(ctx)
    const id = randomUUID()
    await h.store.put(id, patternBytes(300, 3))
    await h.corrupt(id)
    assert.is(await h.store.delete(id), true)
    assert.is(await h.store.has(id), false)
    assert.equal(await h.store.usage(), { extents: 0, bytes: 0 })
  })

  test('usage counts extents and bytes across puts, re-puts, refused puts and deletes', async (ctx) => {
    const { store } = H(ctx)
    assert.equal(await store.usage(), { extents: 0, bytes: 0 })
    const [a, b, c] = sortedIds(3)
    await store.put(a, patternBytes(1000, 1))
    await store.put(b, patternBytes(2000, 2))
    await store.put(c, new Uint8Array(0))
    assert.equal(await store.usage(), { extents: 3, bytes: 3000 })
    await store.put(a, patternBytes(1000, 1))
    await rejects(store.put(b, patternBytes(5, 9)), 'AlreadyExists')
    await rejects(store.put(randomUUID(), new Uint8Array(EXTENT_SIZE_MAX + 1)), 'InvalidArgument')
    assert.equal(await store.usage(), { extents: 3, bytes: 3000 })
    await store.delete(b)
    await store.delete(b)
    assert.equal(await store.usage(), { extents: 2, bytes: 1000 })
  })

  test('stored bytes are independent of the caller\'s buffers', async (ctx) => {
    const { store } = H(ctx)
    const id = randomUUID()
    const bytes = patternBytes(256, 1)
    await store.put(id, bytes)
    bytes[0] ^= 0xff
    const got = await store.get(id)
    assert.equal(got, patternBytes(256, 1))
    got[1] ^= 0xff
    assert.equal(await store.get(id), patternBytes(256, 1))
  })

  test('puts of different ids run concurrently and all land', async (ctx) => {
    const { store } = H(ctx)
    const ids = sortedIds(32)
    const infos = await Promise.all(ids.map(async (id, i) => await store.put(id, patternBytes(16 * 1024 + i, i))))
    assert.equal(infos.map((i) => i.id), ids)
    for (const [i, id] of ids.entries()) assert.equal(await store.get(id), patternBytes(16 * 1024 + i, i))
    const bytes = ids.reduce((sum, _, i) => sum + 16 * 1024 + i, 0)
    assert.equal(await store.usage(), { extents: 32, bytes })
    assert.equal((await collect(store.list())).map((i) => i.id), ids)
  })

  test('concurrent puts of one id: identical bytes all succeed once, different bytes have one winner', async (ctx) => {
    const { store } = H(ctx)
    const same = randomUUID()
    const bytes = patternBytes(8192, 1)
    const infos = await Promise.all(Array.from({ length: 8 }, async () => await store.put(same, bytes)))
    for (const info of infos) assert.equal(info, { id: same, size: 8192, checksum: sha256(bytes) })

    const contested = randomUUID()
    const results = await Promise.allSettled(Array.from({ length: 8 }, async (_, i) => await store.put(contested, patternBytes(8192, 100 + i))))
    const won = results.flatMap((r, i) => r.status === 'fulfilled' ? [i] : [])
    assert.is(won.length, 1, 'exactly one put wins')
    for (const r of results) {
      if (r.status === 'rejected') assert.is((r.reason as Error).name, 'AlreadyExists')
    }
    assert.equal(await store.get(contested), patternBytes(8192, 100 + won[0]))
    assert.equal(await store.usage(), { extents: 2, bytes: 2 * 8192 })
  })

  test('concurrent puts and deletes of one id leave a consistent store', async (ctx) => {
    const { store } = H(ctx)
    const id = randomUUID()
    const bytes = patternBytes(4096, 1)
    const ops: Array<Promise<unknown>> = []
    for (let i = 0; i < 10; i++) ops.push(i % 2 === 0 ? store.put(id, bytes) : store.delete(id))
    await Promise.all(ops)
    const present = await store.has(id)
    assert.equal(await store.usage(), present ? { extents: 1, bytes: 4096 } : { extents: 0, bytes: 0 })
    if (present) assert.equal(await store.get(id), bytes)
    else await rejects(store.get(id), 'NotFound')
  })

  test('every call after close is Unavailable; close is idempotent', async (ctx) => {
    const { store } = H(ctx)
    const id = randomUUID()
    await store.put(id, patternBytes(10, 1))
    await store.close()
    await store.close()
    await rejects(store.put(randomUUID(), new Uint8Array(1)), 'Unavailable')
    await rejects(store.get(id), 'Unavailable')
    await rejects(store.has(id), 'Unavailable')
    await rejects(store.stat(id), 'Unavailable')
    await rejects(store.delete(id), 'Unavailable')
    await rejects(store.usage(), 'Unavailable')
    await rejects(async () => await collect(store.list()), 'Unavailable')
  })

  test('a close while calls are in flight lets them finish or fail with Unavailable', async (ctx) => {
    const { store } = H(ctx)
    const ids = sortedIds(8)
    const puts = ids.map(async (id, i) => await store.put(id, patternBytes(32 * 1024, i)))
    const closed = store.close()
    const results = await Promise.allSettled(puts)
    await closed
    for (const r of results) {
      if (r.status === 'rejected') assert.is((r.reason as Error).name, 'Unavailable')
    }
    await rejects(store.get(ids[0]), 'Unavailable')
  })

  test('an aborted signal fails every call with Aborted before it starts', async (ctx) => {
    const { store } = H(ctx)
    const id = randomUUID()
    await store.put(id, patternBytes(10, 1))
    const controller = new AbortController()
    controller.abort()
    const signal = controller.signal
    const fresh = randomUUID()
    await rejects(store.put(fresh, new Uint8Array(1), { signal }), 'Aborted')
    await rejects(store.get(id, { signal }), 'Aborted')
    await rejects(store.has(id, { signal }), 'Aborted')
    await rejects(store.stat(id, { signal }), 'Aborted')
    await rejects(store.delete(id, { signal }), 'Aborted')
    await rejects(store.usage({ signal }), 'Aborted')
    await rejects(async () => await collect(store.list({ signal })), 'Aborted')
    // nothing changed
    assert.is(await store.has(fresh), false)
    assert.is(await store.has(id), true)
    assert.equal(await store.usage(), { extents: 1, bytes: 10 })
  })

  test('a signal aborted by a timeout is DeadlineExceeded', async (ctx) => {
    const { store } = H(ctx)
    const signal = AbortSignal.abort(new DOMException('deadline', 'TimeoutError'))
    await rejects(store.put(randomUUID(), new Uint8Array(1), { signal }), 'DeadlineExceeded')
    await rejects(store.get(randomUUID(), { signal }), 'DeadlineExceeded')
  })

  test('a put with durable: false is read at once like any other; after sync it survives a reopen', async (ctx) => {
    const h = H(ctx)
    const ids = sortedIds(3)
    const infos: ExtentInfo[] = []
    for (const [i, id] of ids.entries()) infos.push(await h.store.put(id, patternBytes(4096, i), { durable: false }))
    for (const [i, id] of ids.entries()) assert.equal(await h.store.get(id), patternBytes(4096, i))
    assert.equal(await collect(h.store.list()), infos)
    // identity rules are the same: different bytes under the id are still refused
    await rejects(h.store.put(ids[0], patternBytes(4096, 9), { durable: false }), 'AlreadyExists')
    if (h.store.sync !== undefined) {
      await h.store.sync()
      await rejects(h.store.sync({ signal: AbortSignal.abort() }), 'Aborted')
    }
    if (h.reopen == null) return
    const store = await h.reopen()
    assert.equal(await collect(store.list()), infos)
    for (const [i, id] of ids.entries()) assert.equal(await store.get(id), patternBytes(4096, i))
  })

  test('extents, deletes and usage survive a reopen', async (ctx) => {
    const h = H(ctx)
    if (h.reopen == null) return // a store that keeps nothing has nothing to check here
    const ids = sortedIds(6)
    const infos: ExtentInfo[] = []
    for (const [i, id] of ids.entries()) infos.push(await h.store.put(id, patternBytes(1000 * (i + 1), i)))
    await h.store.delete(ids[2])
    const before = await h.store.usage()
    const store = await h.reopen()
    assert.is(h.store, store, 'reopen updates the harness')
    assert.equal(await store.usage(), before)
    assert.equal(before, { extents: 5, bytes: 18_000 })
    assert.equal(await collect(store.list()), infos.filter((_, i) => i !== 2))
    for (const [i, id] of ids.entries()) {
      if (i === 2) await rejects(store.get(id), 'NotFound')
      else assert.equal(await store.get(id), patternBytes(1000 * (i + 1), i))
    }
    // still immutable after the restart
    await rejects(store.put(ids[0], patternBytes(1000, 99)), 'AlreadyExists')
  })

  test.run()
}
