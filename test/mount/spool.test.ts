import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Spool } from '../../src/mount/spool.js'

async function withDir (fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'dfs-spool-'))
  try { await fn(dir) } finally { await rm(dir, { recursive: true, force: true }) }
}

/** The error `p` rejects with (failing the test when it resolves). */
async function failure (p: Promise<unknown>): Promise<NodeJS.ErrnoException> {
  try {
    await p
  } catch (err) {
    return err as NodeJS.ErrnoException
  }
  assert.unreachable('expected a rejection')
  throw new Error('unreachable')
}

test('writes at offsets, holes read as zeros, the file on disk is the spool (mode 0600)', async () => {
  await withDir(async (dir) => {
    const s = await Spool.open(join(dir, 's'))
    assert.is(await s.write(Buffer.from('world'), 6), 5)
    await s.write(Buffer.from('hello'), 0)
    assert.is(s.size, 11)
    const out = Buffer.alloc(20, 0xff)
    assert.is(await s.read(out, 0), 11)
    assert.equal(out.subarray(0, 11), Buffer.from('hello\0world'))
    assert.equal(await readFile(s.path), Buffer.from('hello\0world'))
    assert.is((await stat(s.path)).mode & 0o777, 0o600)
    assert.is(await s.read(out, 11), 0, 'at the end')
    assert.is(await s.read(out, 50), 0, 'past the end')
    await s.discard()
  })
})

test('truncate down and up: the size follows, the new tail reads as zeros', async () => {
  await withDir(async (dir) => {
    const s = await Spool.open(join(dir, 's'))
    await s.write(Buffer.from('abcdef'), 0)
    await s.truncate(2)
    assert.is(s.size, 2)
    await s.truncate(5)
    const out = Buffer.alloc(5, 0xff)
    assert.is(await s.read(out, 0), 5)
    assert.equal(out, Buffer.from('ab\0\0\0'))
    await s.discard()
  })
})

test('bytes reads the whole spool, holes and a truncated-up tail as zeros; a new spool over an old file starts empty', async () => {
  await withDir(async (dir) => {
    await writeFile(join(dir, 's'), 'left over')
    const s = await Spool.open(join(dir, 's'))
    assert.is(s.size, 0)
    assert.equal(await s.bytes(), Buffer.alloc(0))
    await s.write(Buffer.from('ab'), 2)
    await s.truncate(6)
    assert.equal(Buffer.from(await s.bytes()), Buffer.from('\0\0ab\0\0'))
    await s.discard()
  })
})

test('memoryBytesMax: a small spool lives in memory (no file), moves to its file whole when it outgrows it', async () => {
  await withDir(async (dir) => {
    const s = await Spool.open(join(dir, 's'), { memoryBytesMax: 16 })
    await s.write(Buffer.from('abcdef'), 0)
    await s.truncate(2)
    await s.write(Buffer.from('xy'), 4)
    await s.truncate(8)
    assert.ok(s.inMemory)
    assert.is((await failure(stat(s.path))).code, 'ENOENT', 'no file while it fits in memory')
    const out = Buffer.alloc(8, 0xff)
    assert.is(await s.read(out, 0), 8)
    assert.equal(out, Buffer.from('ab\0\0xy\0\0'), 'what truncate cut off and the holes read as zeros')
    await s.copyTo(join(dir, 'copy'))
    assert.equal(await readFile(join(dir, 'copy')), Buffer.from('ab\0\0xy\0\0'))
    await s.truncate(12)
    await s.write(Buffer.from('0123456789'), 10)
    assert.is(s.inMemory, false, 'past 16 bytes it is on disk')
    assert.is(s.size, 20)
    assert.equal(await readFile(s.path), Buffer.from('ab\0\0xy\0\0\0\0' + '0123456789'))
    assert.is((await stat(s.path)).mode & 0o777, 0o600)
    assert.equal(Buffer.from(await s.bytes()), await readFile(s.path))
    await s.discard()
    assert.is((await failure(stat(s.path))).code, 'ENOENT')
    const m = await Spool.open(join(dir, 'm'), { memoryBytesMax: 16 })
    await m.write(Buffer.from('x'), 0)
    await m.discard()
    await m.discard()
    assert.is((await failure(m.write(Buffer.from('y'), 0))).message.includes('after discard'), true)
  })
})

test('keep opens a file as it is (a downloaded copy); discard deletes it and is idempotent', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 's')
    await writeFile(path, 'existing')
    const s = await Spool.open(path, { keep: true })
    assert.is(s.size, 8)
    await s.write(Buffer.from('E'), 0)
    assert.equal(await readFile(path, 'utf8'), 'Existing')
    await s.discard()
    await s.discard()
    assert.is((await failure(stat(path))).code, 'ENOENT')
    assert.match((await failure(s.write(Buffer.from('x'), 0))).message, /after discard/)
  })
})

test.run()
