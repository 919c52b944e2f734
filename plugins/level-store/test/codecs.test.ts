import { randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { crc32 } from 'node:zlib'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { EXTENT_CODECS, encodeExtent } from '@dfs/api'
import type { ExtentCodec, Logger } from '@dfs/api'
import { flipByte, patternBytes, rejects, sha256 } from '@dfs/api/testing'
import { LevelExtentStore, extentKeys } from '../src/index.js'
import { LARGE_EXTENT_BYTES_MIN, largeDirOf, readStoredBytes, withClosedDb, writeStoredBytes } from '../src/level-extent-store.js'
import { logLikeText } from '../../../test/support/log-text.js'

const MiB = 1024 * 1024
const logger: Logger = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false })

async function openStore (dir: string): Promise<LevelExtentStore> {
  const store = new LevelExtentStore({ dir, logger })
  await store.open()
  return store
}

/** Opens the LevelDB under a (closed) store directly, as a disk-level tool would. */
const withRawDb = withClosedDb

async function headerOf (dir: string, id: string): Promise<Record<string, unknown>> {
  let header: Record<string, unknown> = {}
  await withRawDb(dir, async (db) => { header = JSON.parse(new TextDecoder().decode(await db.get(extentKeys.header(id)))) })
  return header
}

/** Flips one bit of the stored bytes of `id` in the (closed) store in `dir`. */
async function corruptStored (dir: string, id: string): Promise<void> {
  const stored = await readStoredBytes(dir, id)
  assert.ok(stored !== undefined)
  await writeStoredBytes(dir, id, flipByte(stored))
}

/** Byte equality without uvu's diff (which takes minutes on megabytes that differ). */
function sameBytes (actual: Uint8Array, expected: Uint8Array, message?: string): void {
  assert.ok(Buffer.compare(Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength), Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength)) === 0,
    message ?? `${actual.byteLength} bytes differ from the ${expected.byteLength} expected`)
}

const test = suite<{ dir: string }>('LevelExtentStore codecs', { dir: '' })
test.before.each(async (ctx) => { ctx.dir = await mkdtemp(join(tmpdir(), 'dfs-level-codecs-')) })
test.after.each(async (ctx) => { await rm(ctx.dir, { recursive: true, force: true }) })

test('encoded puts are kept encoded: get gives the logical bytes, getEncoded the stored ones, usage counts stored bytes', async (ctx) => {
  const dir = join(ctx.dir, 'extents')
  let store = await openStore(dir)
  assert.equal([...store.codecs], [...EXTENT_CODECS])
  const text = logLikeText(4 * MiB, 11)
  const ids = new Map<ExtentCodec, { id: string, encoded: Uint8Array }>()
  for (const codec of EXTENT_CODECS) {
    const id = randomUUID()
    const encoded = encodeExtent(codec, text)
    const info = await store.put(id, encoded, { codec, size: text.byteLength, checksum: sha256(text) })
    assert.equal(info, { id, size: text.byteLength, checksum: sha256(text), codec, storedSize: encoded.byteLength })
    ids.set(codec, { id, encoded })
  }
  const raw = randomUUID()
  await store.put(raw, patternBytes(5000, 2))
  const storedTotal = [...ids.values()].reduce((n, e) => n + e.encoded.byteLength, 0) + 5000
  for (let round = 0; round < 2; round++) {
    for (const [codec, { id, encoded }] of ids) {
      sameBytes(await store.get(id), text)
      const read = await store.getEncoded(id)
      sameBytes(read.bytes, encoded)
      assert.equal(read.info, { id, size: text.byteLength, checksum: sha256(text), codec, storedSize: encoded.byteLength })
      assert.equal(await store.stat(id), read.info)
    }
    assert.equal(await store.getEncoded(raw), { info: { id: raw, size: 5000, checksum: sha256(patternBytes(5000, 2)) }, bytes: patternBytes(5000, 2) })
    assert.equal(await store.usage(), { extents: 3, bytes: storedTotal })
    const listed = []
    for await (const info of store.list()) listed.push(info)
    assert.is(listed.filter((i) => i.codec !== undefined).length, 2)
    // usage is rebuilt from the headers on open
    await store.close()
    store = await openStore(dir)
  }
  const lz4 = ids.get('lz4') as { id: string, encoded: Uint8Array }
  assert.ok(lz4.encoded.byteLength >= LARGE_EXTENT_BYTES_MIN, 'the lz4 copy is large enough for a file of its own')
  await store.close()
  const header = await headerOf(dir, lz4.id)
  assert.equal(header, { seq: header.seq, size: text.byteLength, checksum: sha256(text), file: true, codec: 'lz4', stored: lz4.encoded.byteLength, crc: crc32(lz4.encoded) })
  store = await openStore(dir)
  for (const { id } of ids.values()) assert.is(await store.delete(id), true)
  assert.equal(await store.usage(), { extents: 1, bytes: 5000 })
  await store.close()
})

test('identity is the logical bytes: a raw re-put of an encoded extent is a no-op, other bytes are AlreadyExists', async (ctx) => {
  const store = await openStore(join(ctx.dir, 'extents'))
  const text = logLikeText(200_000, 12)
  const id = randomUUID()
  const encoded = encodeExtent('zstd', text)
  await store.put(id, encoded, { codec: 'zstd', size: text.byteLength })
  const again = await store.put(id, text)
  assert.is(again.codec, 'zstd', 'the copy here stays as it was stored')
  sameBytes((await store.getEncoded(id)).bytes, encoded)
  const other = logLikeText(200_000, 13)
  await rejects(store.put(id, encodeExtent('lz4', other), { codec: 'lz4', size: other.byteLength }), 'AlreadyExists')
  await rejects(store.put(id, other), 'AlreadyExists')
  await store.close()
})

test('bad encoded puts store nothing: wrong checksum, undecodable, wrong size, not smaller, no size, unknown codec', async (ctx) => {
  const store = await openStore(join(ctx.dir, 'extents'))
  const text = logLikeText(100_000, 14)
  const encoded = encodeExtent('zstd', text)
  const id = randomUUID()
  const err = await rejects(store.put(id, encoded, { codec: 'zstd', size: text.byteLength, checksum: sha256(patternBytes(10, 1)) }), 'CorruptExtent')
  assert.is(err.details?.actual, sha256(text))
  await rejects(store.put(id, encoded.subarray(0, 1000), { codec: 'zstd', size: text.byteLength }), 'CorruptExtent')
  await rejects(store.put(id, encoded, { codec: 'zstd', size: text.byteLength - 1 }), 'CorruptExtent')
  await rejects(store.put(id, text.subarray(0, 100), { codec: 'zstd', size: 100 }), 'InvalidArgument')
  await rejects(store.put(id, encoded, { codec: 'zstd' }), 'InvalidArgument')
  await rejects(store.put(id, encoded, { codec: 'brotli' as ExtentCodec, size: text.byteLength }), 'InvalidArgument')
  assert.is(await store.has(id), false)
  assert.equal(await store.usage(), { extents: 0, bytes: 0 })
  await store.close()
})

test('a corrupt encoded copy is CorruptExtent (get and getEncoded); a good put heals it', async (ctx) => {
  const dir = join(ctx.dir, 'extents')
  const text = logLikeText(4 * MiB, 15)
  for (const codec of EXTENT_CODECS) {
    let store = await openStore(dir)
    const id = randomUUID()
    const encoded = encodeExtent(codec, text)
    await store.put(id, encoded, { codec, size: text.byteLength })
    await store.close()
    await corruptStored(dir, id)
    store = await openStore(dir)
    const err = await rejects(store.get(id), 'CorruptExtent')
    assert.is(err.details?.expected, sha256(text))
    await rejects(store.getEncoded(id), 'CorruptExtent')
    const usage = await store.usage()
    // healed with a raw copy: the stored size (and the usage) follow the new form
    await store.put(id, text)
    sameBytes(await store.get(id), text)
    assert.is((await store.stat(id)).codec, undefined)
    assert.is((await store.usage()).bytes, usage.bytes - encoded.byteLength + text.byteLength)
    assert.is(await store.delete(id), true)
    await store.close()
  }
})

test('a header naming a codec this build does not know is unreadable (CorruptExtent), never read as raw', async (ctx) => {
  const dir = join(ctx.dir, 'extents')
  let store = await openStore(dir)
  const id = randomUUID()
  const bytes = patternBytes(3000, 3)
  await store.put(id, bytes)
  await store.close()
  await withRawDb(dir, async (db) => {
    const header = { seq: 1, size: 3000, checksum: sha256(bytes), codec: 'brotli', stored: 2000 }
    await db.put(extentKeys.header(id), new TextEncoder().encode(JSON.stringify(header)), { sync: true })
  })
  store = await openStore(dir)
  const err = await rejects(store.get(id), 'CorruptExtent')
  assert.is(err.details?.expected, 'unreadable-header')
  await store.close()
})

test('a store of format version 3 (headers without codec) reads as raw, takes encoded puts, and is marked version 5', async (ctx) => {
  const dir = join(ctx.dir, 'extents')
  const small = randomUUID()
  const large = randomUUID()
  const smallBytes = logLikeText(50_000, 16)
  const bigBytes = logLikeText(2 * MiB, 17)
  const enc = new TextEncoder()
  // exactly what a version-3 build wrote
  await withRawDb(dir, async (db) => {
    await db.batch([
      { type: 'put', key: extentKeys.format, value: enc.encode('{"format":"dfs-level-store","version":3}') },
      { type: 'put', key: extentKeys.header(small), value: enc.encode(JSON.stringify({ seq: 1, size: smallBytes.byteLength, checksum: sha256(smallBytes) })) },
      { type: 'put', key: extentKeys.bytes(1), value: smallBytes },
      { type: 'put', key: extentKeys.header(large), value: enc.encode(JSON.stringify({ seq: 2, size: bigBytes.byteLength, checksum: sha256(bigBytes), large: true })) }
    ], { sync: true })
  })
  await withRawDb(largeDirOf(dir), async (db) => { await db.put(extentKeys.bytes(2), bigBytes, { sync: true }) })
  const store = await openStore(dir)
  sameBytes(await store.get(small), smallBytes)
  sameBytes(await store.get(large), bigBytes)
  assert.equal(await store.stat(large), { id: large, size: bigBytes.byteLength, checksum: sha256(bigBytes) })
  assert.equal(await store.usage(), { extents: 2, bytes: smallBytes.byteLength + bigBytes.byteLength })
  const fresh = randomUUID()
  await store.put(fresh, encodeExtent('zstd', bigBytes), { codec: 'zstd', size: bigBytes.byteLength })
  sameBytes(await store.get(fresh), bigBytes)
  await store.close()
  await withRawDb(dir, async (db) => {
    assert.equal(JSON.parse(new TextDecoder().decode(await db.get(extentKeys.format))), { format: 'dfs-level-store', version: 5 })
  })
  assert.is((await headerOf(dir, fresh)).codec, 'zstd')
})

test.run()
