import { execFileSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdir, mkdtemp, readFile, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { crc32 } from 'node:zlib'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { encodeExtent } from '@dfs/api'
import type { Logger } from '@dfs/api'
import { LevelExtentStore, extentKeys, mapLevelError } from '../src/index.js'
import { LARGE_EXTENT_BYTES_MIN, bytesKeyOf, extentFileOf, largeDirOf, readStoredBytes, withClosedDb, writeStoredBytes } from '../src/level-extent-store.js'
import { extentStoreSuite, flipByte, patternBytes, rejects, sha256 } from '@dfs/api/testing'
import type { ExtentStoreHarness } from '@dfs/api/testing'

const MiB = 1024 * 1024

async function collect<T> (iterable: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = []
  for await (const x of iterable) all.push(x)
  return all
}

/** A logger that keeps what the store reports as errors, so tests can look at it. */
function testLogger (): Logger & { errors: string[] } {
  const errors: string[] = []
  const log = Object.assign(() => {}, {
    error: (format: string, ...args: unknown[]) => { errors.push([format, ...args].join(' ')) },
    trace: () => {},
    enabled: false,
    errors
  })
  return log
}

async function tempDir (): Promise<string> {
  return await mkdtemp(join(tmpdir(), 'dfs-level-store-'))
}

async function openStore (dir: string, node?: string): Promise<LevelExtentStore> {
  const store = new LevelExtentStore({ dir, logger: testLogger(), node })
  await store.open()
  return store
}

/** Opens the LevelDB under a (closed) store directly, as a disk-level tool would. */
const withRawDb = withClosedDb

async function makeHarness (): Promise<ExtentStoreHarness> {
  const dir = await tempDir()
  const harness: ExtentStoreHarness = {
    store: await openStore(join(dir, 'extents')),
    reopen: async () => {
      await harness.store.close()
      harness.store = await openStore(join(dir, 'extents'))
      return harness.store
    },
    // Real corruption: close the store, flip one bit of the extent's stored bytes on disk (in
    // LevelDB or in its file; its header keeps the old checksum), and open the store again.
    corrupt: async (id) => {
      await harness.store.close()
      const stored = await readStoredBytes(join(dir, 'extents'), id)
      assert.ok(stored !== undefined, `extent ${id} has stored bytes`)
      await writeStoredBytes(join(dir, 'extents'), id, flipByte(stored))
      harness.store = await openStore(join(dir, 'extents'))
    },
    cleanup: async () => {
      await harness.store.close()
      await rm(dir, { recursive: true, force: true })
    }
  }
  return harness
}

extentStoreSuite('level', makeHarness)

// ---------------------------------------------------------------------------------------------
// What only a disk-backed store has to get right

const test = suite<{ dir: string }>('LevelExtentStore', { dir: '' })

test.before.each(async (ctx) => {
  ctx.dir = await tempDir()
})
test.after.each(async (ctx) => {
  await rm(ctx.dir, { recursive: true, force: true })
})

test('usage is rebuilt correctly after a restart, and kept right afterwards', async (ctx) => {
  const dir = join(ctx.dir, 'extents')
  let store = await openStore(dir)
  const ids = Array.from({ length: 40 }, () => randomUUID())
  let extents = 0
  let bytes = 0
  for (const [i, id] of ids.entries()) {
    const size = (i * 7919) % (256 * 1024)
    await store.put(id, patternBytes(size, i))
    extents += 1
    bytes += size
  }
  for (const [i, id] of ids.entries()) {
    if (i % 3 === 0) {
      await store.delete(id)
      extents -= 1
      bytes -= (i * 7919) % (256 * 1024)
    }
  }
  assert.equal(await store.usage(), { extents, bytes })
  await store.close()

  store = await openStore(dir)
  assert.equal(await store.usage(), { extents, bytes })
  await store.put(randomUUID(), patternBytes(1234, 1))
  await store.delete(ids[1])
  const after = { extents: extents + 1 - 1, bytes: bytes + 1234 - 7919 }
  assert.equal(await store.usage(), after)
  await store.close()

  store = await openStore(dir)
  assert.equal(await store.usage(), after)
  await store.close()
})

test('a directory held by another open store is DataDirLocked, naming the directory', async (ctx) => {
  const dir = join(ctx.dir, 'extents')
  const first = await openStore(dir)
  const id = randomUUID()
  await first.put(id, patternBytes(100, 1))
  const second = new LevelExtentStore({ dir, logger: testLogger() })
  const err = await rejects(second.open(), 'DataDirLocked')
  assert.is(err.details?.dir, dir)
  assert.ok(err.message.includes(dir), 'message names the directory')
  // the holder is unaffected, and a failed open can be retried once the lock is free
  assert.equal(await first.get(id), patternBytes(100, 1))
  await first.close()
  await second.open()
  assert.equal(await second.get(id), patternBytes(100, 1))
  await second.close()
})

test('header and bytes live under the documented keys, bytes unframed', async (ctx) => {
  const dir = join(ctx.dir, 'extents')
  const store = await openStore(dir)
  const id = randomUUID()
  const bytes = patternBytes(3000, 4)
  await store.put(id, bytes)
  await store.close()
  await withRawDb(dir, async (db) => {
    const header = JSON.parse(new TextDecoder().decode(await db.get(extentKeys.header(id))))
    assert.equal(header, { seq: 1, size: 3000, checksum: sha256(bytes), crc: crc32(bytes) })
    assert.is(extentKeys.bytes(1), 'b/0000000000000001')
    assert.equal(await bytesKeyOf(db, id), { key: 'b/0000000000000001', large: false })
    const stored = await db.get('b/0000000000000001')
    assert.equal(new Uint8Array(stored.buffer, stored.byteOffset, stored.byteLength), bytes)
    assert.equal(JSON.parse(new TextDecoder().decode(await db.get(extentKeys.format))), { format: 'dfs-level-store', version: 5 })
    assert.equal(await db.keys().all(), [extentKeys.bytes(1), extentKeys.header(id), extentKeys.format])
  })
})

/** The keys of the LevelDB in `dbDir` (of a closed store) that start with `prefix` (all if none), in key order. */
async function rawKeys (dbDir: string, prefix?: 'b/' | 'p/'): Promise<string[]> {
  let keys: string[] = []
  // '0' is the character after '/': [prefix, prefix with '0' for '/') is every key under it
  const range = prefix === undefined ? {} : { gt: prefix, lt: prefix.slice(0, -1) + '0' }
  await withRawDb(dbDir, async (db) => { keys = await db.keys(range).all() })
  return keys
}

/** Every `b/` key in the (closed) store's index LevelDB, in key order. */
async function bytesKeys (dir: string): Promise<string[]> {
  return await rawKeys(dir, 'b/')
}

test('later puts store their bytes under keys that sort after earlier puts, across reopens, never reusing a live seq', async (ctx) => {
  // This order is what lets LevelDB flush and move tables instead of rewriting them (see the key
  // layout in level-extent-store.ts): the ids are random, the bytes keys must not be.
  const dir = join(ctx.dir, 'extents')
  const order: string[] = []
  let store = await openStore(dir)
  for (let i = 0; i < 60; i++) {
    const id = randomUUID()
    await store.put(id, patternBytes(100 + i, i))
    order.push(id)
  }
  // some concurrently, too: each gets its own key, all after the sequential ones
  const concurrent = Array.from({ length: 20 }, () => randomUUID())
  await Promise.all(concurrent.map(async (id, i) => await store.put(id, patternBytes(50, 100 + i))))
  await store.close()

  const keyOf = async (ids: string[]): Promise<string[]> => {
    const keys: string[] = []
    await withRawDb(dir, async (db) => { for (const id of ids) keys.push((await bytesKeyOf(db, id))!.key) })
    return keys
  }
  const sequentialKeys = await keyOf(order)
  assert.equal(sequentialKeys, [...sequentialKeys].sort(), 'sequential puts have increasing bytes keys')
  assert.is(new Set(sequentialKeys).size, sequentialKeys.length)
  const concurrentKeys = await keyOf(concurrent)
  assert.is(new Set([...sequentialKeys, ...concurrentKeys]).size, 80, 'every extent has its own bytes key')
  assert.ok(concurrentKeys.every((k) => k > sequentialKeys[sequentialKeys.length - 1]))
  assert.equal(await bytesKeys(dir), [...sequentialKeys, ...concurrentKeys].sort(), 'no other bytes keys exist')

  // After a reopen, new puts continue after the largest key.
  store = await openStore(dir)
  const largest = [...concurrentKeys].sort().at(-1)!
  const afterReopen = randomUUID()
  await store.put(afterReopen, patternBytes(10, 1))
  await store.close()
  const [k1] = await keyOf([afterReopen])
  assert.ok(k1 > largest, `${k1} sorts after ${largest}`)

  // Deleting the extent with the largest seq and reopening may hand that seq out again: nothing
  // names it any more (header and bytes went in one batch), so it cannot alias a live extent.
  store = await openStore(dir)
  await store.delete(afterReopen)
  await store.close()
  store = await openStore(dir)
  const next = randomUUID()
  await store.put(next, patternBytes(20, 2))
  assert.equal(await store.get(next), patternBytes(20, 2))
  for (const [i, id] of order.entries()) assert.equal(await store.get(id), patternBytes(100 + i, i))
  await store.close()
  const [k2] = await keyOf([next])
  assert.ok(k2 > largest, `${k2} sorts after every live extent's key ${largest}`)
  assert.is((await bytesKeys(dir)).length, 81)

  // A header whose bytes are missing (damage) keeps its seq reserved even when it is the largest:
  // a new extent must not get it, or healing the damaged one would overwrite the new one.
  await withRawDb(dir, async (db) => { await db.del(k2, { sync: true }) })
  store = await openStore(dir)
  const other = randomUUID()
  await store.put(other, patternBytes(30, 3))
  await rejects(store.get(next), 'CorruptExtent')
  await store.put(next, patternBytes(20, 2)) // heals it
  assert.equal(await store.get(next), patternBytes(20, 2))
  assert.equal(await store.get(other), patternBytes(30, 3))
  await store.close()
  const [k3, k4] = await keyOf([other, next])
  assert.ok(k3 > k2 && k4 > k3, `${k2} < ${k3} < ${k4}`)
  assert.is((await bytesKeys(dir)).length, 82)
})

/**
 * `readers` reads of one id racing `rounds` puts and deletes of it: each must see the extent whole or
 * get NotFound, never other bytes or CorruptExtent.
 */
async function racingReads (dir: string, bytes: Uint8Array, rounds: number, readers: number): Promise<void> {
  const store = await openStore(dir)
  const id = randomUUID()
  let writing = true
  const writer = (async () => {
    for (let i = 0; i < rounds; i++) {
      await store.put(id, bytes)
      await store.delete(id)
    }
    writing = false
  })()
  const outcomes = { found: 0, notFound: 0 }
  await Promise.all(Array.from({ length: readers }, async () => {
    while (writing) {
      try {
        assert.equal(await store.get(id), bytes)
        outcomes.found++
      } catch (err) {
        assert.is((err as Error).name, 'NotFound', `a racing read failed with ${(err as Error).name}: ${(err as Error).message}`)
        outcomes.notFound++
      }
    }
  }))
  await writer
  assert.ok(outcomes.found + outcomes.notFound > 0)
  await store.close()
}

test('reads racing deletes and re-puts of the same id see the extent whole or not at all', async (ctx) => {
  await racingReads(join(ctx.dir, 'extents'), patternBytes(64 * 1024, 7), 100, 4)
})

test('an unreadable header is CorruptExtent on get and stat; list and usage still see the extent', async (ctx) => {
  const dir = join(ctx.dir, 'extents')
  let store = await openStore(dir)
  const id = randomUUID()
  const lost = randomUUID()
  await store.put(id, patternBytes(500, 1))
  await store.put(lost, patternBytes(600, 2))
  await store.close()
  await withRawDb(dir, async (db) => {
    // cut short after the seq (which the header writes first): the bytes can still be found
    const raw = new TextDecoder().decode(await db.get(extentKeys.header(id)))
    await db.put(extentKeys.header(id), new TextEncoder().encode(raw.slice(0, raw.indexOf('"checksum"'))), { sync: true })
    // no seq left at all: the bytes cannot be found
    await db.put(extentKeys.header(lost), new TextEncoder().encode('{"size":5'), { sync: true })
  })
  store = await openStore(dir)
  const err = await rejects(store.get(id), 'CorruptExtent')
  assert.is(err.details?.extentId, id)
  assert.is(err.details?.actual, sha256(patternBytes(500, 1)))
  const lostErr = await rejects(store.get(lost), 'CorruptExtent')
  assert.is(lostErr.details?.actual, 'unknown')
  await rejects(store.stat(id), 'CorruptExtent')
  const listed = []
  for await (const info of store.list()) listed.push(info.id)
  assert.equal(listed, [id, lost].sort())
  assert.equal(await store.usage(), { extents: 2, bytes: 0 })
  await rejects(store.put(id, patternBytes(500, 1)), 'AlreadyExists')
  assert.is(await store.delete(id), true)
  assert.is(await store.delete(lost), true)
  assert.equal(await store.usage(), { extents: 0, bytes: 0 })
  await store.close()
  // the bytes of the extent whose header still named its seq went with it
  assert.equal(await bytesKeys(dir), [extentKeys.bytes(2)])
})

test('a missing bytes value (header without bytes) is CorruptExtent, not empty bytes', async (ctx) => {
  const dir = join(ctx.dir, 'extents')
  let store = await openStore(dir)
  const id = randomUUID()
  const info = await store.put(id, patternBytes(10, 1))
  await store.close()
  await withRawDb(dir, async (db) => { await db.del((await bytesKeyOf(db, id))!.key, { sync: true }) })
  store = await openStore(dir)
  const err = await rejects(store.get(id), 'CorruptExtent')
  assert.is(err.details?.expected, info.checksum)
  assert.is(err.details?.actual, 'missing')
  // the right bytes heal it
  await store.put(id, patternBytes(10, 1))
  assert.equal(await store.get(id), patternBytes(10, 1))
  await store.close()
  assert.is((await bytesKeys(dir)).length, 1)
})

test('CorruptExtent names the node when the store knows it', async (ctx) => {
  const dir = join(ctx.dir, 'extents')
  let store = await openStore(dir, 'node-a')
  const id = randomUUID()
  await store.put(id, patternBytes(100, 1))
  await store.close()
  await withRawDb(dir, async (db) => {
    const { key } = (await bytesKeyOf(db, id))!
    await db.put(key, flipByte(await db.get(key)), { sync: true })
  })
  store = await openStore(dir, 'node-a')
  const err = await rejects(store.get(id), 'CorruptExtent')
  assert.is(err.details?.node, 'node-a')
  assert.ok(err.message.includes('node-a'))
  await store.close()
})

test('a LevelDB that is not an extent store, or of another format version, is ConfigError', async (ctx) => {
  const foreign = join(ctx.dir, 'foreign')
  await withRawDb(foreign, async (db) => { await db.put('something', new Uint8Array([1])) })
  await rejects(new LevelExtentStore({ dir: foreign, logger: testLogger() }).open(), 'ConfigError')

  for (const version of [1, 6]) {
    // 1 is the layout with bytes under `b/<id>`; 6 is a future one
    const other = join(ctx.dir, `version-${version}`)
    await (await openStore(other)).close()
    await withRawDb(other, async (db) => {
      await db.put(extentKeys.format, new TextEncoder().encode(`{"format":"dfs-level-store","version":${version}}`))
    })
    const err = await rejects(new LevelExtentStore({ dir: other, logger: testLogger() }).open(), 'ConfigError')
    assert.is(err.details?.dir, other)
    assert.is(err.details?.version, 5)
  }

  // a bytes key this build cannot read (the open must not guess the next seq past it)
  const odd = join(ctx.dir, 'odd')
  await (await openStore(odd)).close()
  await withRawDb(odd, async (db) => { await db.put('b/' + randomUUID(), new Uint8Array([1])) })
  await rejects(new LevelExtentStore({ dir: odd, logger: testLogger() }).open(), 'ConfigError')
})

/** Every key of the (closed) store's large database, in key order. */
async function largeKeys (dir: string): Promise<string[]> {
  return await rawKeys(largeDirOf(dir))
}

/** Every marker (`p/`) key of the (closed) store's index database. */
async function markerKeys (dir: string): Promise<string[]> {
  return await rawKeys(dir, 'p/')
}

/** The names of the extent files of the store in `dir`, sorted. */
async function fileNames (dir: string): Promise<string[]> {
  return (await readdir(join(dir, 'files'))).sort()
}

/** The file name of seq `seq`. */
function fileName (seq: number): string {
  return seq.toString(16).padStart(16, '0')
}

/** Writes a format-4 large extent (header "large", bytes in the large database) into the closed store in `dir`. */
async function writeFormat4Large (dir: string, id: string, seq: number, bytes: Uint8Array): Promise<void> {
  await withRawDb(dir, async (db) => {
    await db.put(extentKeys.header(id), new TextEncoder().encode(JSON.stringify({ seq, size: bytes.byteLength, checksum: sha256(bytes), large: true })), { sync: true })
  })
  await withRawDb(largeDirOf(dir), async (db) => { await db.put(extentKeys.bytes(seq), bytes, { sync: true }) })
}

test('extents of LARGE_EXTENT_BYTES_MIN and more keep their bytes in a file of their own, smaller ones in the index', async (ctx) => {
  const dir = join(ctx.dir, 'extents')
  const store = await openStore(dir)
  const small = randomUUID()
  const large = randomUUID()
  const odd = randomUUID()
  await store.put(small, patternBytes(LARGE_EXTENT_BYTES_MIN - 1, 1))
  await store.put(large, patternBytes(LARGE_EXTENT_BYTES_MIN, 2))
  // a length that is not a multiple of the direct-I/O alignment
  await store.put(odd, patternBytes(LARGE_EXTENT_BYTES_MIN + 12345, 3))
  assert.equal(await store.get(large), patternBytes(LARGE_EXTENT_BYTES_MIN, 2))
  assert.equal(await store.get(odd), patternBytes(LARGE_EXTENT_BYTES_MIN + 12345, 3))
  await store.close()
  await withRawDb(dir, async (db) => {
    assert.equal(await bytesKeyOf(db, small, dir), { key: extentKeys.bytes(1), large: false })
    assert.equal(await bytesKeyOf(db, large, dir), { key: extentKeys.bytes(2), large: false, file: extentFileOf(dir, 2), stored: LARGE_EXTENT_BYTES_MIN })
    const header = JSON.parse(new TextDecoder().decode(await db.get(extentKeys.header(large))))
    assert.equal(header, { seq: 2, size: LARGE_EXTENT_BYTES_MIN, checksum: sha256(patternBytes(LARGE_EXTENT_BYTES_MIN, 2)), file: true, crc: crc32(patternBytes(LARGE_EXTENT_BYTES_MIN, 2)) })
    assert.equal(await db.keys().all(), [extentKeys.bytes(1), extentKeys.header(large), extentKeys.header(odd), extentKeys.header(small), extentKeys.format].sort())
  })
  assert.equal(await fileNames(dir), [fileName(2), fileName(3)])
  assert.is(extentFileOf(dir, 2), join(dir, 'files', '0000000000000002'))
  // the file holds the stored bytes, then zeros to a multiple of 4 KiB
  const file = await readFile(extentFileOf(dir, 3))
  assert.is(file.byteLength, Math.ceil((LARGE_EXTENT_BYTES_MIN + 12345) / 4096) * 4096)
  assert.ok(file.subarray(LARGE_EXTENT_BYTES_MIN + 12345).every((b) => b === 0))
  assert.equal(await largeKeys(dir), [])
  // a delete takes header and file
  const again = await openStore(dir)
  assert.is(await again.delete(large), true)
  await rejects(again.get(large), 'NotFound')
  assert.equal(await again.usage(), { extents: 2, bytes: 2 * LARGE_EXTENT_BYTES_MIN - 1 + 12345 })
  await again.close()
  assert.equal(await fileNames(dir), [fileName(3)])
  assert.equal(await markerKeys(dir), [])
})

test('buffered extent files (a file system without direct I/O) hold the same bytes and read the same', async (ctx) => {
  const dir = join(ctx.dir, 'extents')
  const direct = await openStore(dir)
  const id = randomUUID()
  await direct.put(id, patternBytes(LARGE_EXTENT_BYTES_MIN + 100, 4))
  await direct.close()
  const buffered = new LevelExtentStore({ dir, logger: testLogger(), directIo: false })
  await buffered.open()
  assert.equal(await buffered.get(id), patternBytes(LARGE_EXTENT_BYTES_MIN + 100, 4))
  const other = randomUUID()
  await buffered.put(other, patternBytes(LARGE_EXTENT_BYTES_MIN + 100, 5))
  await buffered.close()
  const [a, b] = await Promise.all([readFile(extentFileOf(dir, 1)), readFile(extentFileOf(dir, 2))])
  assert.is(a.byteLength, b.byteLength)
  // both record the CRC of the bytes, whichever way they were written
  await withRawDb(dir, async (db) => {
    for (const [key, seed] of [[id, 4], [other, 5]] as const) {
      const header = JSON.parse(new TextDecoder().decode(await db.get(extentKeys.header(key))))
      assert.is(header.crc, crc32(patternBytes(LARGE_EXTENT_BYTES_MIN + 100, seed)))
    }
  })
  const again = await openStore(dir)
  assert.equal(await again.get(other), patternBytes(LARGE_EXTENT_BYTES_MIN + 100, 5))
  await again.close()
})

test('a file write or delete cut short by a crash leaves no file behind and loses nothing acknowledged', async (ctx) => {
  const dir = join(ctx.dir, 'extents')
  let store = await openStore(dir)
  const kept = randomUUID()
  const doomed = randomUUID()
  await store.put(kept, patternBytes(2 * MiB, 1))
  await store.put(doomed, patternBytes(2 * MiB, 2))
  await store.close()
  // what each crash leaves (the steps are in the layout comment of level-extent-store.ts): a put
  // after its file was written, before its header (seq 10, also a torn one at 11), and a delete of
  // `doomed` after its header went, before its file did
  await writeFile(extentFileOf(dir, 10), patternBytes(MiB, 3))
  await writeFile(extentFileOf(dir, 11), patternBytes(5000, 4))
  await withRawDb(dir, async (db) => { await db.del(extentKeys.header(doomed), { sync: true }) })
  // a name that is no extent file is left alone
  await writeFile(join(dir, 'files', 'notes.txt'), 'x')
  assert.equal(await fileNames(dir), [fileName(1), fileName(2), fileName(10), fileName(11), 'notes.txt'])

  const log = testLogger()
  store = new LevelExtentStore({ dir, logger: log })
  await store.open()
  assert.equal(await store.get(kept), patternBytes(2 * MiB, 1))
  await rejects(store.get(doomed), 'NotFound')
  assert.equal(await store.usage(), { extents: 1, bytes: 2 * MiB })
  assert.equal(await fileNames(dir), [fileName(1), 'notes.txt'])
  assert.ok(log.errors.some((e) => e.includes('notes.txt')), 'the stray name is logged')
  // the next write gets a seq past every file the crash left
  await store.put(randomUUID(), patternBytes(MiB, 5))
  await store.close()
  assert.equal(await fileNames(dir), [fileName(1), fileName(12), 'notes.txt'])
})

test('a format-4 large write or delete cut short by a crash leaves no bytes behind and loses nothing acknowledged', async (ctx) => {
  const dir = join(ctx.dir, 'extents')
  await (await openStore(dir)).close()
  const kept = randomUUID()
  const doomed = randomUUID()
  await writeFormat4Large(dir, kept, 1, patternBytes(2 * MiB, 1))
  await writeFormat4Large(dir, doomed, 2, patternBytes(2 * MiB, 2))
  // a put after its step 2 (marker and bytes durable, no header) at seq 10; one after step 1
  // (marker only) at seq 11; and a delete of `doomed` after its step 1 (header gone, marker, bytes still there)
  await withRawDb(dir, async (db) => {
    await db.batch([
      { type: 'put', key: extentKeys.marker(10), value: new Uint8Array(0) },
      { type: 'put', key: extentKeys.marker(11), value: new Uint8Array(0) },
      { type: 'del', key: extentKeys.header(doomed) },
      { type: 'put', key: extentKeys.marker(2), value: new Uint8Array(0) }
    ], { sync: true })
  })
  await withRawDb(largeDirOf(dir), async (db) => { await db.put(extentKeys.bytes(10), patternBytes(MiB, 3), { sync: true }) })
  assert.equal(await largeKeys(dir), [extentKeys.bytes(1), extentKeys.bytes(2), extentKeys.bytes(10)])

  const store = await openStore(dir)
  assert.equal(await store.get(kept), patternBytes(2 * MiB, 1))
  await rejects(store.get(doomed), 'NotFound')
  assert.equal(await store.usage(), { extents: 1, bytes: 2 * MiB })
  // the next write gets a seq past every marker the crash left
  await store.put(randomUUID(), patternBytes(MiB, 4))
  // a delete of a format-4 large extent goes through its marker
  assert.is(await store.delete(kept), true)
  await store.close()
  assert.equal(await markerKeys(dir), [])
  assert.equal(await largeKeys(dir), [])
  assert.equal(await fileNames(dir), [fileName(12)])
})

test('a corrupt file copy is CorruptExtent, and re-putting the right bytes heals it in a new file, removing the old one', async (ctx) => {
  const dir = join(ctx.dir, 'extents')
  let store = await openStore(dir)
  const id = randomUUID()
  const bytes = patternBytes(3 * MiB, 5)
  await store.put(id, bytes)
  await store.close()
  await writeStoredBytes(dir, id, flipByte((await readStoredBytes(dir, id))!))
  store = await openStore(dir)
  const err = await rejects(store.get(id), 'CorruptExtent')
  assert.is(err.details?.expected, sha256(bytes))
  await store.put(id, bytes)
  assert.equal(await store.get(id), bytes)
  assert.equal(await store.usage(), { extents: 1, bytes: 3 * MiB })
  await store.close()
  assert.equal(await fileNames(dir), [fileName(2)])
  // a file cut short is corrupt too, not a shorter extent
  await truncate(extentFileOf(dir, 2), MiB)
  store = await openStore(dir)
  const short = await rejects(store.get(id), 'CorruptExtent')
  assert.is(short.details?.actualSize, MiB)
  // and a missing one
  await rm(extentFileOf(dir, 2))
  const missing = await rejects(store.get(id), 'CorruptExtent')
  assert.is(missing.details?.actual, 'missing')
  await store.close()
})

test('a header claiming more than an extent can hold reads as CorruptExtent, without reading (or allocating) what it claims', async (ctx) => {
  const dir = join(ctx.dir, 'extents')
  let store = await openStore(dir)
  const id = randomUUID()
  const bytes = patternBytes(LARGE_EXTENT_BYTES_MIN, 6)
  await store.put(id, bytes)
  await store.close()
  await withRawDb(dir, async (db) => {
    const huge = { seq: 1, size: 2 ** 40, checksum: sha256(bytes), file: true }
    await db.put(extentKeys.header(id), new TextEncoder().encode(JSON.stringify(huge)), { sync: true })
  })
  store = await openStore(dir)
  const err = await rejects(store.get(id), 'CorruptExtent')
  assert.is(err.details?.actualSize, LARGE_EXTENT_BYTES_MIN)
  await store.close()
})

test('a corrupt format-4 large copy is healed into a file, freeing its large bytes', async (ctx) => {
  const dir = join(ctx.dir, 'extents')
  await (await openStore(dir)).close()
  const id = randomUUID()
  const bytes = patternBytes(3 * MiB, 6)
  await writeFormat4Large(dir, id, 1, bytes)
  await withRawDb(largeDirOf(dir), async (db) => { await db.put(extentKeys.bytes(1), flipByte(await db.get(extentKeys.bytes(1))), { sync: true }) })
  const store = await openStore(dir)
  await rejects(store.get(id), 'CorruptExtent')
  await store.put(id, bytes)
  assert.equal(await store.get(id), bytes)
  await store.close()
  assert.equal(await largeKeys(dir), [])
  assert.equal(await markerKeys(dir), [])
  assert.equal(await fileNames(dir), [fileName(2)])
})

test('reads racing deletes and re-puts of a file extent see it whole or not at all', async (ctx) => {
  await racingReads(join(ctx.dir, 'extents'), patternBytes(LARGE_EXTENT_BYTES_MIN, 9), 30, 3)
})

test('a store of format version 2 opens as it is, its extents read the same, and it is marked version 5', async (ctx) => {
  const dir = join(ctx.dir, 'extents')
  // version 2: one database, every extent's bytes in it (even large ones), headers without "large"
  const small = randomUUID()
  const large = randomUUID()
  const bigBytes = patternBytes(2 * MiB, 6)
  await withRawDb(dir, async (db) => {
    const enc = new TextEncoder()
    await db.batch([
      { type: 'put', key: extentKeys.format, value: enc.encode('{"format":"dfs-level-store","version":2}') },
      { type: 'put', key: extentKeys.header(small), value: enc.encode(JSON.stringify({ seq: 1, size: 100, checksum: sha256(patternBytes(100, 1)) })) },
      { type: 'put', key: extentKeys.bytes(1), value: patternBytes(100, 1) },
      { type: 'put', key: extentKeys.header(large), value: enc.encode(JSON.stringify({ seq: 2, size: bigBytes.byteLength, checksum: sha256(bigBytes) })) },
      { type: 'put', key: extentKeys.bytes(2), value: bigBytes }
    ], { sync: true })
  })
  const store = await openStore(dir)
  assert.equal(await store.get(small), patternBytes(100, 1))
  assert.equal(await store.get(large), bigBytes)
  assert.equal(await store.usage(), { extents: 2, bytes: 100 + bigBytes.byteLength })
  const fresh = randomUUID()
  await store.put(fresh, patternBytes(2 * MiB, 7))
  assert.is(await store.delete(large), true)
  await store.close()
  await withRawDb(dir, async (db) => {
    assert.equal(JSON.parse(new TextDecoder().decode(await db.get(extentKeys.format))), { format: 'dfs-level-store', version: 5 })
    assert.equal(await db.keys({ gt: 'b/', lt: 'b0' }).all(), [extentKeys.bytes(1)], 'the version-2 large bytes went with their header')
  })
  assert.equal(await largeKeys(dir), [])
  assert.equal(await fileNames(dir), [fileName(3)])
})

/** Rewrites the header of extent `id` in the (closed) store in `dir` through `edit`. */
async function editHeader (dir: string, id: string, edit: (header: Record<string, unknown>) => void): Promise<void> {
  await withRawDb(dir, async (db) => {
    const header = JSON.parse(new TextDecoder().decode(await db.get(extentKeys.header(id))))
    edit(header)
    await db.put(extentKeys.header(id), new TextEncoder().encode(JSON.stringify(header)))
  })
}

test('every put records the CRC-32 of the stored bytes, raw or encoded, in the index or in a file', async (ctx) => {
  const dir = join(ctx.dir, 'extents')
  const store = await openStore(dir)
  const text = new TextEncoder().encode('a line of log text that repeats\n'.repeat(40_000))
  const cases = [
    { id: randomUUID(), bytes: patternBytes(3000, 1) },
    { id: randomUUID(), bytes: patternBytes(3 * LARGE_EXTENT_BYTES_MIN + 7, 2) },
    { id: randomUUID(), bytes: text, codec: true }
  ]
  for (const c of cases) {
    if (c.codec === true) {
      await store.put(c.id, encodeExtent('zstd', c.bytes), { codec: 'zstd', size: c.bytes.byteLength })
    } else {
      await store.put(c.id, c.bytes)
    }
  }
  await store.close()
  for (const c of cases) {
    const stored = await readStoredBytes(dir, c.id)
    assert.ok(stored !== undefined)
    await withRawDb(dir, async (db) => {
      const header = JSON.parse(new TextDecoder().decode(await db.get(extentKeys.header(c.id))))
      assert.is(header.crc, crc32(stored), `crc of ${c.bytes.byteLength} bytes${c.codec === true ? ' (zstd)' : ''}`)
      assert.is(header.checksum, sha256(c.bytes))
    })
  }
})

test('a read trusts bytes with the recorded CRC-32; a deep read, one without a CRC and a CRC mismatch hash them', async (ctx) => {
  const dir = join(ctx.dir, 'extents')
  let store = await openStore(dir)
  const small = { id: randomUUID(), bytes: patternBytes(3000, 3) }
  const large = { id: randomUUID(), bytes: patternBytes(3 * LARGE_EXTENT_BYTES_MIN + 5, 4) }
  for (const e of [small, large]) await store.put(e.id, e.bytes)
  await store.close()
  const other = sha256(patternBytes(10, 9))
  for (const e of [small, large]) {
    // a header whose checksum says other bytes, with the bytes' CRC: only a hash can tell, and only
    // a deep read hashes (had the normal read hashed, it would be CorruptExtent)
    await editHeader(dir, e.id, (h) => { h.checksum = other })
    store = await openStore(dir)
    assert.ok(Buffer.from(await store.get(e.id)).equals(e.bytes), 'a read checks the CRC only')
    const deep = await rejects(store.get(e.id, { deep: true }), 'CorruptExtent')
    assert.is(deep.details?.expected, other)
    assert.is(deep.details?.actual, sha256(e.bytes))
    await store.close()
    // the same header without a CRC (an older build's): every read hashes
    await editHeader(dir, e.id, (h) => { delete h.crc })
    store = await openStore(dir)
    assert.is((await rejects(store.get(e.id), 'CorruptExtent')).details?.actual, sha256(e.bytes))
    await store.close()
    // the right checksum with a CRC that does not match: the hash decides, and the bytes are good
    await editHeader(dir, e.id, (h) => { h.checksum = sha256(e.bytes); h.crc = (crc32(e.bytes) + 1) % 2 ** 32 })
    store = await openStore(dir)
    assert.ok(Buffer.from(await store.get(e.id)).equals(e.bytes), 'a CRC mismatch falls back to the hash')
    await store.close()
    // a header with a CRC that is not one is unreadable
    await editHeader(dir, e.id, (h) => { h.crc = -1 })
    store = await openStore(dir)
    assert.is((await rejects(store.get(e.id), 'CorruptExtent')).details?.expected, 'unreadable-header')
    await store.close()
    await editHeader(dir, e.id, (h) => { h.crc = crc32(e.bytes) })
  }
  // flipped bits in stored bytes with a good header: the CRC differs, the hash names both checksums
  for (const e of [small, large]) {
    const stored = await readStoredBytes(dir, e.id)
    assert.ok(stored !== undefined)
    const damaged = flipByte(new Uint8Array(stored))
    await writeStoredBytes(dir, e.id, damaged)
    store = await openStore(dir)
    const err = await rejects(store.get(e.id), 'CorruptExtent')
    assert.is(err.details?.expected, sha256(e.bytes))
    assert.is(err.details?.actual, sha256(damaged))
    await store.close()
  }
})

test('checksumTrusted: bytes are stored under the checksum given, unhashed and undecoded; deep reads verify both', async (ctx) => {
  const store = await openStore(join(ctx.dir, 'extents'))
  const id = randomUUID()
  const bytes = patternBytes(LARGE_EXTENT_BYTES_MIN, 8)
  const wrong = sha256(patternBytes(10, 1))
  // the caller vouched for a checksum that is not the bytes': stored as given; a read checks that
  // the bytes are those it was given (their CRC), a deep one (the scrub's) finds the checksum wrong
  assert.equal(await store.put(id, bytes, { checksum: wrong, checksumTrusted: true }), { id, size: bytes.byteLength, checksum: wrong })
  assert.ok(Buffer.from(await store.get(id)).equals(bytes))
  const err = await rejects(store.get(id, { deep: true }), 'CorruptExtent')
  assert.is(err.details?.expected, wrong)
  assert.is(err.details?.actual, sha256(bytes))
  assert.is((await rejects(store.getEncoded(id, { deep: true }), 'CorruptExtent')).details?.expected, wrong)
  // without the checksum there is nothing to trust
  await rejects(store.put(randomUUID(), bytes, { checksumTrusted: true }), 'InvalidArgument')
  // a right one reads back
  const good = randomUUID()
  await store.put(good, bytes, { checksum: sha256(bytes), checksumTrusted: true })
  assert.equal(await store.get(good), bytes)
  // encoded bytes are not decoded either: undecodable ones are stored, and found out by the first read
  const garbled = randomUUID()
  await store.put(garbled, patternBytes(100, 2), { checksum: sha256(bytes), checksumTrusted: true, codec: 'zstd', size: bytes.byteLength })
  assert.is((await rejects(store.get(garbled), 'CorruptExtent')).details?.actual, 'undecodable')
  // untrusted, they are refused before anything is stored
  await rejects(store.put(randomUUID(), patternBytes(100, 2), { checksum: sha256(bytes), codec: 'zstd', size: bytes.byteLength }), 'CorruptExtent')
  await store.close()
})

test('durable: false puts wait in memory, are written together within the write delay, and sync moves them into a synced table file', async (ctx) => {
  const dir = join(ctx.dir, 'extents')
  const store = await openStore(dir)
  const tables = async (): Promise<string[]> => (await readdir(dir)).filter((f) => f.endsWith('.ldb'))
  const logBytes = async (): Promise<number> => {
    let n = 0
    for (const f of (await readdir(dir)).filter((x) => x.endsWith('.log'))) n += (await stat(join(dir, f))).size
    return n
  }
  try {
    const before = await tables()
    const ids = Array.from({ length: 20 }, () => randomUUID())
    for (const [i, id] of ids.entries()) await store.put(id, patternBytes(8192, i), { durable: false })
    for (const [i, id] of ids.entries()) assert.equal(await store.get(id), patternBytes(8192, i), 'read from memory at once')
    // written in a batch shortly after, without any sync: in LevelDB's log file, no table yet
    await new Promise((resolve) => setTimeout(resolve, 400))
    assert.equal(await tables(), before)
    assert.ok(await logBytes() >= 20 * 8192, 'the puts are in the log file')
    await store.sync()
    const after = await tables()
    assert.ok(after.length > before.length, `a table was written (${before.length} → ${after.length})`)
    // the log now holds none of them (a new, empty log file was started)
    assert.ok(await logBytes() < 8192, `${await logBytes()} bytes left in log files`)
    for (const [i, id] of ids.entries()) assert.equal(await store.get(id), patternBytes(8192, i))
  } finally {
    await store.close()
  }
})

test('a deferred put is read, stat\'d, listed and counted at once; one deleted before its batch is gone, after a reopen too', async (ctx) => {
  const dir = join(ctx.dir, 'extents')
  let store = await openStore(dir)
  const ids = Array.from({ length: 6 }, () => randomUUID()).sort()
  const bytes = ids.map((_, i) => patternBytes(3000 + i, i))
  const text = new TextEncoder().encode('log line 17 of many\n'.repeat(300))
  const encoded = encodeExtent('zstd', text)
  const textId = randomUUID()
  try {
    for (const [i, id] of ids.entries()) await store.put(id, bytes[i], { durable: false })
    await store.put(textId, encoded, { durable: false, codec: 'zstd', size: text.byteLength, checksum: sha256(text) })
    assert.equal(store.held(), { extents: 7, bytes: bytes.reduce((n, b) => n + b.byteLength, 0) + encoded.byteLength }, 'held, not written yet')
    assert.equal(await store.get(textId), text, 'an encoded one reads back decoded')
    assert.equal((await store.getEncoded(textId)).bytes, encoded)
    assert.equal(await store.stat(ids[1]), { id: ids[1], size: 3001, checksum: sha256(bytes[1]) })
    assert.ok(await store.has(ids[2]))
    // the copy read is the caller's: changing it changes nothing held
    const read = await store.get(ids[0])
    read.fill(0)
    assert.equal(await store.get(ids[0]), bytes[0])
    // a durable put of a held extent writes it at once (synced): it is still there, counted once
    assert.equal(await store.put(ids[4], bytes[4]), { id: ids[4], size: bytes[4].byteLength, checksum: sha256(bytes[4]) })
    await rejects(store.put(ids[4], bytes[5], { durable: false }), 'AlreadyExists')
    await rejects(store.put(ids[5], bytes[4], { durable: false }), 'AlreadyExists')
    assert.is(await store.delete(ids[3]), true, 'a held extent is deleted')
    assert.is(await store.delete(ids[3]), false)
    assert.not.ok(await store.has(ids[3]))
    await rejects(store.get(ids[3]), 'NotFound')
    const kept = ids.filter((_, i) => i !== 3)
    const usage = await store.usage()
    assert.equal(usage, { extents: 6, bytes: bytes.reduce((n, b, i) => i === 3 ? n : n + b.byteLength, 0) + encoded.byteLength })
    assert.equal((await collect(store.list())).map((x) => x.id), [...kept, textId].sort(), 'listed (written first)')
    assert.equal(store.held(), { extents: 0, bytes: 0 })
    await store.close()
    store = await openStore(dir)
    assert.equal(await store.usage(), usage, 'close wrote what waited')
    for (const [i, id] of ids.entries()) {
      if (i === 3) await rejects(store.get(id), 'NotFound')
      else assert.equal(await store.get(id), bytes[i])
    }
    assert.equal(await store.get(textId), text)
  } finally {
    await store.close()
  }
})

test('more durable: false puts than the store holds at once are written as they come; every one reads back', async (ctx) => {
  const dir = join(ctx.dir, 'extents')
  let store = await openStore(dir)
  try {
    // 4 × 2048 extents of 4 KiB (32 MiB) in flight together: past both limits many times over
    const ids = Array.from({ length: 4 * 2048 }, () => randomUUID())
    await Promise.all(ids.map(async (id, i) => await store.put(id, patternBytes(4096, i % 251), { durable: false })))
    assert.equal(await store.usage(), { extents: ids.length, bytes: ids.length * 4096 })
    for (const [i, id] of ids.entries()) {
      if (i % 97 === 0) assert.equal(await store.get(id), patternBytes(4096, i % 251))
    }
    await store.sync()
    await store.close()
    store = await openStore(dir)
    assert.equal(await store.usage(), { extents: ids.length, bytes: ids.length * 4096 })
    for (const [i, id] of ids.entries()) {
      if (i % 89 === 0) assert.equal(await store.get(id), patternBytes(4096, i % 251))
    }
  } finally {
    await store.close()
  }
})

test('overlapping syncs and puts all settle, and every put that resolved before a sync survives a reopen', async (ctx) => {
  const dir = join(ctx.dir, 'extents')
  let store = await openStore(dir)
  const ids = Array.from({ length: 12 }, () => randomUUID())
  const covered: Array<Promise<void>> = []
  for (const [i, id] of ids.entries()) {
    await store.put(id, patternBytes(4096, i), { durable: false })
    covered.push(store.sync())
  }
  await Promise.all(covered)
  await store.close()
  store = await openStore(dir)
  try {
    for (const [i, id] of ids.entries()) assert.equal(await store.get(id), patternBytes(4096, i))
  } finally {
    await store.close()
  }
})

test('calls before open and open after close are Unavailable', async (ctx) => {
  const store = new LevelExtentStore({ dir: join(ctx.dir, 'extents'), logger: testLogger() })
  await rejects(store.get(randomUUID()), 'Unavailable')
  await store.open()
  await store.open() // idempotent
  await store.close()
  await rejects(store.open(), 'Unavailable')
})

test('LevelDB\'s out-of-space error maps to StorageFull; other errors pass through', () => {
  // The shape classic-level gives a failed write on a full disk (LEVEL_IO_ERROR from env_posix).
  const enospc = Object.assign(new Error('IO error: /data/extents/000003.log: No space left on device'), { code: 'LEVEL_IO_ERROR' })
  const mapped = mapLevelError(enospc, { dir: '/data/extents', op: 'put' }) as Error & { details: Record<string, unknown> }
  assert.is(mapped.name, 'StorageFull')
  assert.is(mapped.details.dir, '/data/extents')
  const wrapped = new Error('write failed', { cause: Object.assign(new Error('disk'), { code: 'ENOSPC' }) })
  assert.is((mapLevelError(wrapped) as Error).name, 'StorageFull')
  const other = Object.assign(new Error('IO error: permission denied'), { code: 'LEVEL_IO_ERROR' })
  assert.is(mapLevelError(other), other)
})

test('a real full disk is StorageFull and does not change usage (needs root to mount a tmpfs)', async (ctx) => {
  const mnt = join(ctx.dir, 'small')
  await mkdir(mnt)
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', mnt], { stdio: 'ignore' })
  } catch {
    console.log('  (skipped the real ENOSPC check: cannot mount a tmpfs here)')
    return
  }
  try {
    const store = await openStore(join(mnt, 'extents'))
    await store.put(randomUUID(), patternBytes(2 * MiB, 1))
    const usage = await store.usage()
    const id = randomUUID()
    const err = await rejects(store.put(id, patternBytes(2 * MiB, 2)), 'StorageFull')
    assert.is(err.details?.id, id)
    assert.equal(await store.usage(), usage)
    await store.close()
  } finally {
    execFileSync('umount', ['-l', mnt], { stdio: 'ignore' })
  }
})

test.run()
