import { constants as O } from 'node:fs'
import { constants as osConstants } from 'node:os'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { NodeUnreachableError } from '@dfs/api'
import { MountOps, READ_AHEAD_BYTES, SMALL_COMMIT_BYTES_MAX } from '../../src/mount/ops.js'
import { errnoOf } from '../../src/mount/errno.js'
import type { RemoteFs } from '../../src/mount/remote.js'
import { MemoryRemote } from './memory-remote.js'

/**
 * MountOps over an in-memory cluster, as the kernel drives it: attribute and listing caches, the
 * spool and its single commit, read-ahead, renames of open files, EXDEV, EROFS, and errors as errno.
 */
const test = suite('mount/ops')
const E = osConstants.errno

interface Ctx { dir: string, remote: MemoryRemote, ops: MountOps, now: number }
let ctx: Ctx

test.before.each(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dfs-ops-'))
  const remote = new MemoryRemote()
  ctx = { dir, remote, ops: undefined as unknown as MountOps, now: 1_000_000 }
  ctx.ops = new MountOps({ remote, spoolDir: dir, now: () => ctx.now })
})
test.after.each(async () => {
  await ctx.ops.discardAll()
  await rm(ctx.dir, { recursive: true, force: true })
})

/** The errno `p` fails with (failing the test when it succeeds). */
async function errnoOfCall (p: Promise<unknown>): Promise<number> {
  try {
    await p
  } catch (err) {
    return errnoOf(err)
  }
  assert.unreachable('expected a failure')
  return 0
}

async function readAll (ops: MountOps, fd: number, size: number, chunk = 4096): Promise<Buffer> {
  const out = Buffer.alloc(size)
  let at = 0
  while (at < size) {
    const n = await ops.read(fd, out.subarray(at, Math.min(size, at + chunk)), at)
    if (n === 0) break
    at += n
  }
  return out.subarray(0, at)
}

test('utimens keeps a file\'s mtime, after committing what its handles wrote; a directory\'s is accepted; read-only refuses', async () => {
  const fd = await ctx.ops.create('/d/f')
  await ctx.ops.write(fd, new Uint8Array([1, 2, 3]), 0)
  await ctx.ops.utimens('/d/f', 1234567)
  assert.equal([ctx.remote.files.get('/d/f')?.bytes.length, ctx.remote.files.get('/d/f')?.mtimeMs], [3, 1234567], 'committed, then timed')
  await ctx.ops.release(fd)
  assert.is(ctx.remote.files.get('/d/f')?.mtimeMs, 1234567, 'the release had nothing left to commit')
  assert.is((await ctx.ops.getattr('/d/f')).mtimeMs, 1234567)
  await ctx.ops.utimens('/d', 5) // accepted, not kept
  assert.is(await errnoOfCall(ctx.ops.utimens('/d/none', 5)), -E.ENOENT)
  const ro = new MountOps({ remote: ctx.remote, spoolDir: ctx.dir, readOnly: true })
  assert.is(await errnoOfCall(ro.utimens('/d/f', 5)), -E.EROFS)
})

test('getattr: the root, a file, an implicit and an explicit directory, ENOENT remembered for the TTL', async () => {
  const { ops, remote } = ctx
  await remote.putDirect('/d/f.txt', Buffer.from('hello'))
  remote.dirs.add('/empty')
  assert.equal(await ops.getattr('/'), { type: 'dir', size: 0, mtimeMs: 0 })
  assert.is((await ops.getattr('/d/f.txt')).size, 5)
  assert.is((await ops.getattr('/d')).type, 'dir')
  assert.is((await ops.getattr('/empty')).type, 'dir')
  assert.is(await errnoOfCall(ops.getattr('/nope')), -E.ENOENT)
  const stats = remote.count('stat')
  // a file put elsewhere (dfs fs put) shows once the TTL passed
  await remote.putDirect('/nope', Buffer.from('now'))
  assert.is(await errnoOfCall(ops.getattr('/nope')), -E.ENOENT, 'the miss is cached')
  assert.is((await ops.getattr('/d/f.txt')).size, 5, 'the hit is cached')
  assert.is(remote.count('stat'), stats)
  ctx.now += 1000
  assert.is((await ops.getattr('/nope')).size, 3)
})

test('readdir pages through fs.ls and caches every entry\'s attributes (ls -l costs no stat)', async () => {
  const { ops, remote } = ctx
  for (const n of ['a', 'b', 'c', 'd', 'e']) await remote.putDirect(`/dir/${n}`, Buffer.alloc(n.charCodeAt(0)))
  remote.dirs.add('/dir/sub')
  const names = (await ops.readdir('/dir')).map((e) => e.name)
  assert.equal(names, ['a', 'b', 'c', 'd', 'e', 'sub'])
  assert.is(remote.count('list'), 3, 'three pages of two')
  assert.is((await ops.getattr('/dir/c')).size, 99)
  assert.is((await ops.getattr('/dir/sub')).type, 'dir')
  assert.is(remote.count('stat'), 0)
  await ops.readdir('/dir')
  assert.is(remote.count('list'), 3, 'the listing is cached')
})

test('the mount\'s own changes drop the caches at once', async () => {
  const { ops, remote } = ctx
  await remote.putDirect('/d/a', Buffer.from('1'))
  await ops.readdir('/d')
  assert.is(await errnoOfCall(ops.getattr('/d/new')), -E.ENOENT)
  const fd = await ops.create('/d/new')
  assert.equal((await ops.readdir('/d')).map((e) => e.name), ['a', 'new'])
  assert.is((await ops.getattr('/d/new')).size, 0)
  await ops.write(fd, Buffer.from('xyz'), 0)
  assert.is((await ops.getattr('/d/new')).size, 3, 'a file being written has its spool\'s size')
  await ops.release(fd)
  assert.is((await ops.getattr('/d/new')).size, 3)
  await ops.unlink('/d/a')
  assert.equal((await ops.readdir('/d')).map((e) => e.name), ['new'])
  assert.is(await errnoOfCall(ops.getattr('/d/a')), -E.ENOENT)
})

test('a miss lists its directory once: later misses there cost no stat, and creates, unlinks, renames, mkdir update the listing', async () => {
  const { ops, remote } = ctx
  remote.pageSize = 1000
  await remote.putDirect('/d/a', Buffer.from('1'))
  assert.is(await errnoOfCall(ops.getattr('/d/x')), -E.ENOENT)
  assert.is(remote.count('stat'), 1)
  assert.is(remote.count('list'), 1, 'the miss listed /d')
  // a loop of creates, as `cp -r` or a build makes them: one put each, nothing else
  for (let i = 0; i < 5; i++) {
    assert.is(await errnoOfCall(ops.getattr(`/d/f${i}`)), -E.ENOENT)
    const fd = await ops.create(`/d/f${i}`)
    await ops.write(fd, Buffer.from(`file ${i}`), 0)
    await ops.flush(fd)
    await ops.release(fd)
  }
  assert.is(remote.count('stat'), 1)
  assert.is(remote.count('list'), 1)
  assert.is(remote.count('put'), 5)
  assert.equal((await ops.readdir('/d')).map((e) => e.name), ['a', 'f0', 'f1', 'f2', 'f3', 'f4'], 'the commits are in the cached listing')
  assert.is((await ops.getattr('/d/f2')).size, 6, 'a file the mount committed: its attributes from one stat')
  assert.is(remote.count('stat'), 2)
  await ops.unlink('/d/f0')
  await ops.rename('/d/f1', '/d/g')
  await ops.mkdir('/d/sub')
  assert.equal((await ops.readdir('/d')).map((e) => e.name), ['a', 'f2', 'f3', 'f4', 'g', 'sub'])
  assert.is(await errnoOfCall(ops.getattr('/d/f0')), -E.ENOENT, 'unlinked')
  assert.is(await errnoOfCall(ops.getattr('/d/f1')), -E.ENOENT, 'renamed away')
  assert.is((await ops.getattr('/d/sub')).type, 'dir')
  assert.is(remote.count('stat'), 2)
  assert.is((await ops.getattr('/d/g')).size, 6, 'renamed here')
  assert.is(remote.count('list'), 1, 'the listing was updated, never dropped')
})

test('a cached listing expires on the TTL it had from the cluster, however often the mount updated it: outside puts show', async () => {
  const { ops, remote } = ctx
  remote.dirs.add('/d')
  assert.is(await errnoOfCall(ops.getattr('/d/x')), -E.ENOENT)
  await remote.putDirect('/d/outside', Buffer.from('put elsewhere'))
  ctx.now += 500
  const fd = await ops.create('/d/mine')
  await ops.release(fd)
  ctx.now += 499
  assert.is(await errnoOfCall(ops.getattr('/d/outside')), -E.ENOENT, 'within the TTL: the listing says it is not there')
  assert.equal((await ops.readdir('/d')).map((e) => e.name), ['mine'])
  ctx.now += 1
  assert.is((await ops.getattr('/d/outside')).size, 13, 'the TTL passed')
  assert.equal((await ops.readdir('/d')).map((e) => e.name), ['mine', 'outside'])
})

test('a failed change drops the cached listing; a listing fetched while the mount changed its directory is not kept', async () => {
  const { ops, remote } = ctx
  remote.dirs.add('/d')
  assert.is(await errnoOfCall(ops.getattr('/d/x')), -E.ENOENT)
  remote.failNext('remove', new NodeUnreachableError('gone'))
  assert.is(await errnoOfCall(ops.unlink('/d/x')), -E.EIO)
  assert.is(await errnoOfCall(ops.getattr('/d/y')), -E.ENOENT)
  assert.is(remote.count('stat'), 2, 'the listing was dropped: the miss asked the cluster')
  // a readdir whose fs.ls answers before a commit and arrives after it
  const list = remote.list.bind(remote)
  let arrive = (): void => {}
  const gate = new Promise<void>((resolve) => { arrive = resolve })
  remote.list = async (path, after) => { const page = await list(path, after); await gate; return page }
  ctx.now += 1000
  const listing = ops.readdir('/d')
  const fd = await ops.create('/d/new')
  await ops.release(fd)
  arrive()
  assert.equal((await listing).map((e) => e.name), [], 'the answer predates the commit')
  assert.is((await ops.getattr('/d/new')).size, 0, 'and was not kept: the mount\'s own file shows')
  assert.equal((await ops.readdir('/d')).map((e) => e.name), ['new'])
})

test('a miss in a directory longer than one fs.ls page does not list it again for BIG_DIR_MEMORY_MS', async () => {
  const { ops, remote } = ctx
  for (const n of ['a', 'b', 'c']) await remote.putDirect(`/big/${n}`, Buffer.from(n))
  assert.is(await errnoOfCall(ops.getattr('/big/x')), -E.ENOENT)
  assert.is(remote.count('list'), 1, 'one page, not the whole directory')
  assert.is(await errnoOfCall(ops.getattr('/big/y')), -E.ENOENT)
  assert.is(remote.count('stat'), 2)
  assert.is(remote.count('list'), 1)
  assert.equal((await ops.readdir('/big')).map((e) => e.name), ['a', 'b', 'c'], 'readdir still lists every page')
})

test('a small spool is committed from memory, a larger one from its file', async () => {
  const { ops, remote } = ctx
  const small = await ops.create('/small')
  await ops.write(small, Buffer.alloc(SMALL_COMMIT_BYTES_MAX, 7), 0)
  await ops.release(small)
  const large = await ops.create('/large')
  await ops.write(large, Buffer.alloc(SMALL_COMMIT_BYTES_MAX + 1, 8), 0)
  await ops.release(large)
  assert.is(remote.count('putFromMemory'), 1)
  assert.is(remote.count('putFromFile'), 1)
  assert.equal(remote.files.get('/small')?.bytes, Buffer.alloc(SMALL_COMMIT_BYTES_MAX, 7))
  assert.equal(remote.files.get('/large')?.bytes, Buffer.alloc(SMALL_COMMIT_BYTES_MAX + 1, 8))
})

test('a written file is committed as one put on flush, and not again while nothing changed', async () => {
  const { ops, remote } = ctx
  await remote.putDirect('/f', Buffer.from('old'))
  const fd = await ops.open('/f', O.O_WRONLY | O.O_TRUNC)
  for (let i = 0; i < 10; i++) await ops.write(fd, Buffer.alloc(1000, i), i * 1000)
  assert.is(remote.files.get('/f')?.bytes.toString(), 'old', 'readers see the old version until the commit')
  await ops.flush(fd)
  assert.is(remote.count('put'), 1)
  assert.is(remote.files.get('/f')?.bytes.byteLength, 10_000)
  assert.is(remote.files.get('/f')?.bytes[9999], 9)
  await ops.flush(fd)
  await ops.fsync(fd)
  await ops.release(fd)
  assert.is(remote.count('put'), 1)
  assert.equal(await readdir(ctx.dir), [], 'the spool is gone')
})

test('a created file exists in the mount until its first commit puts it: one put, listed, renamed, unlinked locally', async () => {
  const { ops, remote } = ctx
  remote.dirs.add('/d')
  const fd = await ops.create('/d/new')
  assert.is(remote.count('put'), 0)
  assert.equal((await ops.readdir('/d')).map((e) => e.name), ['new'])
  assert.is((await ops.getattr('/d/new')).size, 0)
  await ops.write(fd, Buffer.from('abc'), 0)
  const reader = await ops.open('/d/new', O.O_RDONLY)
  const out = Buffer.alloc(3)
  assert.is(await ops.read(reader, out, 0), 3, 'a second open reads the creator\'s bytes')
  assert.is(out.toString(), 'abc')
  await ops.release(reader)
  await ops.rename('/d/new', '/d/renamed')
  await ops.release(fd)
  assert.is(remote.count('put'), 1)
  assert.is(remote.files.get('/d/renamed')?.bytes.toString(), 'abc')
  const empty = await ops.create('/d/empty')
  await ops.release(empty)
  assert.is(remote.files.get('/d/empty')?.bytes.byteLength, 0, 'an empty file is put at its close')
  const gone = await ops.create('/d/gone')
  await ops.write(gone, Buffer.from('x'), 0)
  await ops.unlink('/d/gone')
  assert.is(await errnoOfCall(ops.getattr('/d/gone')), -E.ENOENT)
  await ops.release(gone)
  assert.is(remote.files.has('/d/gone'), false, 'an unlinked file is never put')
  assert.is(remote.count('put'), 2)
})

test('opening an existing file for writing starts from its bytes; O_TRUNC does not download it', async () => {
  const { ops, remote } = ctx
  await remote.putDirect('/f', Buffer.from('hello world'))
  const fd = await ops.open('/f', O.O_RDWR)
  assert.is(remote.count('download'), 1)
  await ops.write(fd, Buffer.from('W'), 6)
  const out = Buffer.alloc(11)
  assert.is(await ops.read(fd, out, 0), 11)
  assert.is(out.toString(), 'hello World', 'a read-write handle reads its own writes')
  await ops.release(fd)
  assert.is(remote.files.get('/f')?.bytes.toString(), 'hello World')
  const t = await ops.open('/f', O.O_WRONLY | O.O_TRUNC)
  assert.is(remote.count('download'), 1)
  await ops.release(t)
  assert.is(remote.files.get('/f')?.bytes.byteLength, 0, 'the truncation is committed though nothing was written')
})

test('a failed commit fails the close (EIO), keeps the bytes and is retried by the next flush', async () => {
  const { ops, remote } = ctx
  const fd = await ops.create('/f')
  await ops.write(fd, Buffer.from('data'), 0)
  remote.failNext('put', new NodeUnreachableError('node gone'))
  assert.is(await errnoOfCall(ops.flush(fd)), -E.EIO)
  await ops.flush(fd)
  assert.is(remote.files.get('/f')?.bytes.toString(), 'data')
  await ops.release(fd)
})

test('truncate: of a closed file (put once), of an open writer (its spool, committed at close)', async () => {
  const { ops, remote } = ctx
  await remote.putDirect('/f', Buffer.from('abcdef'))
  await ops.truncate('/f', 3)
  assert.is(remote.files.get('/f')?.bytes.toString(), 'abc')
  await ops.truncate('/f', 0)
  assert.is(remote.files.get('/f')?.bytes.byteLength, 0)
  const fd = await ops.create('/g')
  await ops.write(fd, Buffer.from('123456'), 0)
  await ops.truncate('/g', 2)
  assert.is((await ops.getattr('/g')).size, 2)
  await ops.ftruncate(fd, 4)
  await ops.release(fd)
  assert.equal(remote.files.get('/g')?.bytes, Buffer.from('12\0\0'))
})

test('sequential reads fetch aligned READ_AHEAD_BYTES windows, one range read each; random reads fetch what they ask', async () => {
  const { ops, remote } = ctx
  const size = 3 * READ_AHEAD_BYTES + 12344
  const bytes = Buffer.alloc(size)
  for (let i = 0; i < size; i += 4) bytes.writeUInt32LE(i, i)
  await remote.putDirect('/big', bytes)
  const fd = await ops.open('/big', O.O_RDONLY)
  const got = await readAll(ops, fd, size, 128 * 1024)
  assert.ok(got.equals(bytes), 'identical')
  assert.is(remote.count('read'), 4, 'one range read per window')
  const out = Buffer.alloc(100)
  assert.is(await ops.read(fd, out, 1_000_001), 100, 'from a window kept')
  assert.ok(out.equals(bytes.subarray(1_000_001, 1_000_101)))
  assert.is(remote.count('read'), 4)
  const other = await ops.open('/big', O.O_RDONLY)
  await ops.read(other, Buffer.alloc(10), 0)
  const before = remote.count('read')
  assert.is(await ops.read(other, out, 3 * READ_AHEAD_BYTES + 4), 100, 'a random read, past the windows ahead')
  assert.ok(out.equals(bytes.subarray(3 * READ_AHEAD_BYTES + 4, 3 * READ_AHEAD_BYTES + 104)))
  assert.is(remote.count('read'), before + 1)
  await ops.release(other)
  assert.is(await ops.read(fd, out, size), 0, 'at the end')
  assert.is(await ops.read(fd, out, size - 10), 10, 'short only at the end')
  await ops.release(fd)
  assert.is(ops.openHandles, 0)
})

test('window buffers are reused only when nothing reads them: many readers at once, reads out of order, never bytes of another window', async () => {
  const { ops, remote } = ctx
  // six readers × READ_WINDOWS_MAX windows: more than READ_BUFFERS_MAX, so some windows get buffers of their own
  const files = Array.from({ length: 6 }, (_, k) => {
    const size = 5 * READ_AHEAD_BYTES + 1000 * k + 7
    const bytes = Buffer.alloc(size)
    for (let i = 0; i + 4 <= size; i += 4) bytes.writeUInt32LE((i ^ (k * 0x9e3779b9)) >>> 0, i)
    return { path: `/r${k}`, bytes }
  })
  for (const f of files) await remote.putDirect(f.path, f.bytes)
  const fds = await Promise.all(files.map(async (f) => await ops.open(f.path, O.O_RDONLY)))
  const outs = files.map((f) => Buffer.alloc(f.bytes.byteLength))
  const CHUNK = 128 * 1024
  // as the kernel's read-ahead does: each reader keeps several 128 KiB reads in flight, answered in any order
  await Promise.all(files.map(async (f, k) => {
    const size = f.bytes.byteLength
    for (let at = 0; at < size; at += 4 * CHUNK) {
      const batch = [3, 0, 2, 1].map((j) => at + j * CHUNK).filter((o) => o < size)
      await Promise.all(batch.map(async (o) => {
        const n = await ops.read(fds[k], outs[k].subarray(o, Math.min(size, o + CHUNK)), o)
        assert.is(n, Math.min(CHUNK, size - o))
      }))
    }
  }))
  files.forEach((f, k) => { assert.ok(outs[k].equals(f.bytes), `reader ${k} read its own bytes`) })
  assert.ok(remote.intoReads > 0, 'windows were read into pooled buffers')
  assert.ok(remote.count('read') > remote.intoReads, 'and past the pool into buffers of their own')
  for (const fd of fds) await ops.release(fd)
  assert.is(ops.readBuffersInUse, 0, 'every buffer back once the readers are released')
})

test('a window dropped while its range read is in flight keeps its buffer until the read settles (late bytes land nowhere else)', async () => {
  const { remote } = ctx
  const W = READ_AHEAD_BYTES
  const size = 8 * W
  const bytes = Buffer.alloc(size)
  for (let i = 0; i + 4 <= size; i += 4) bytes.writeUInt32LE(i, i)
  await remote.putDirect('/f', bytes)
  // range reads answered when the test says: the bytes land in the caller's buffer at that moment
  const pending = new Map<number, () => void>()
  const read: RemoteFs['read'] = async (path, offset, length, into) => await new Promise((resolve, reject) => {
    pending.set(offset, () => {
      remote.read(path, offset, length).then((r) => {
        if (into === undefined) { resolve(r); return }
        const view = into.subarray(0, r.bytes.byteLength)
        view.set(r.bytes)
        resolve({ bytes: view, version: r.version })
      }, reject)
    })
  })
  const held = new Proxy(remote, {
    get (target, key) {
      if (key === 'read') return read
      const v: unknown = Reflect.get(target, key)
      return typeof v === 'function' ? (v as (...args: unknown[]) => unknown).bind(target) : v
    }
  }) as RemoteFs
  const answer = async (offset: number): Promise<void> => {
    const go = pending.get(offset)
    assert.ok(go !== undefined, `a range read at window ${offset / W} is in flight`)
    pending.delete(offset)
    go()
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve))
  }
  const ops = new MountOps({ remote: held, spoolDir: ctx.dir })
  const fd = await ops.open('/f', O.O_RDONLY)
  const out = Buffer.alloc(128 * 1024)
  const at = async (offset: number): Promise<void> => {
    const p = ops.read(fd, out, offset)
    if (pending.has(offset - (offset % W))) await answer(offset - (offset % W))
    assert.is(await p, out.byteLength)
    assert.ok(out.equals(bytes.subarray(offset, offset + out.byteLength)), `bytes at ${offset}`)
  }
  await at(0) // window 0; windows 1 and 2 now fetched ahead, left in flight
  const p2 = ops.read(fd, out, 2 * W) // window 2
  await answer(2 * W)
  assert.is(await p2, out.byteLength)
  await answer(3 * W)
  await answer(4 * W)
  await at(4 * W) // windows 5 and 6 fetched ahead: windows 0, 1 (still in flight) and 2 dropped
  assert.ok(pending.has(W), 'window 1 is still in flight')
  await answer(5 * W)
  await answer(6 * W)
  await answer(W) // its late bytes must land in its own buffer, not in window 5's or 6's
  for (const offset of [5 * W, 6 * W + 1000, 7 * W - out.byteLength]) {
    assert.is(await ops.read(fd, out, offset), out.byteLength)
    assert.ok(out.equals(bytes.subarray(offset, offset + out.byteLength)), `window ${Math.floor(offset / W)} holds its own bytes`)
    const ahead = offset - (offset % W) + W
    if (pending.has(ahead)) await answer(ahead)
  }
  await ops.release(fd)
  for (const offset of [...pending.keys()]) await answer(offset)
  assert.is(ops.readBuffersInUse, 0)
  await ops.discardAll()
})

test('a reader reads the version it opened; the next open sees the new one (close-to-open)', async () => {
  const { ops, remote } = ctx
  await remote.putDirect('/f', Buffer.from('old!'))
  const fd = await ops.open('/f', O.O_RDONLY)
  const out = Buffer.alloc(10)
  assert.is(await ops.read(fd, out, 0), 4)
  await remote.putDirect('/f', Buffer.from('new version'))
  assert.is(await ops.read(fd, out, 0), 4)
  assert.is(out.subarray(0, 4).toString(), 'old!')
  await ops.release(fd)
  ctx.now += 1000
  const again = await ops.open('/f', O.O_RDONLY)
  assert.is(await ops.read(again, out, 0), 10)
  assert.is(out.toString(), 'new versio')
  await ops.release(again)
})

test('a file replaced under an open reader: ESTALE, never bytes of two versions', async () => {
  const { ops, remote } = ctx
  await remote.putDirect('/f', Buffer.alloc(4 * READ_AHEAD_BYTES, 1))
  const fd = await ops.open('/f', O.O_RDONLY)
  const out = Buffer.alloc(10)
  assert.is(await ops.read(fd, out, 0), 10)
  await remote.putDirect('/f', Buffer.alloc(4 * READ_AHEAD_BYTES, 2))
  assert.is(await ops.read(fd, out, READ_AHEAD_BYTES), 10, 'a window fetched ahead holds the version opened')
  assert.equal([...out], Array(10).fill(1))
  assert.is(await errnoOfCall(ops.read(fd, out, 3 * READ_AHEAD_BYTES + 5)), -E.ESTALE)
  await ops.release(fd)
})

test('rename: within a top-level directory through fs.mv, open writers follow; across them EXDEV', async () => {
  const { ops, remote } = ctx
  const fd = await ops.create('/d/a')
  await ops.write(fd, Buffer.from('moved'), 0)
  await ops.rename('/d/a', '/d/sub/b')
  await ops.release(fd)
  assert.is(remote.files.get('/d/sub/b')?.bytes.toString(), 'moved', 'the commit went to the new path')
  assert.is(remote.files.has('/d/a'), false)
  assert.is(await errnoOfCall(ops.rename('/d/sub/b', '/e/b')), -E.EXDEV)
  assert.is(await errnoOfCall(ops.rename('/d/sub/b', '/top')), -E.EXDEV)
  assert.is(remote.count('rename'), 0, 'the created file moved in the mount only')
  await ops.rename('/d/sub', '/d/sub2')
  assert.is((await ops.getattr('/d/sub2/b')).size, 5)
  assert.is(await errnoOfCall(ops.getattr('/d/sub/b')), -E.ENOENT)
})

test('mkdir, rmdir and their errors as errno', async () => {
  const { ops, remote } = ctx
  await ops.mkdir('/a')
  await ops.mkdir('/a/b')
  assert.is((await ops.getattr('/a/b')).type, 'dir')
  assert.is(await errnoOfCall(ops.rmdir('/a')), -E.ENOTEMPTY)
  await ops.rmdir('/a/b')
  await ops.rmdir('/a')
  assert.is(await errnoOfCall(ops.getattr('/a')), -E.ENOENT)
  await remote.putDirect('/file', Buffer.from('x'))
  assert.is(await errnoOfCall(ops.mkdir('/file/sub')), -E.ENOTDIR)
  assert.is(await errnoOfCall(ops.unlink('/nope')), -E.ENOENT)
  await ops.mkdir('/dir')
  assert.is(await errnoOfCall(ops.unlink('/dir')), -E.EISDIR)
  assert.is(await errnoOfCall(ops.open('/dir', O.O_WRONLY)), -E.EISDIR)
  assert.is(await errnoOfCall(ops.read(12345, Buffer.alloc(1), 0)), -E.EBADF)
})

test('a read-only mount refuses every change with EROFS and still reads', async () => {
  const { remote } = ctx
  await remote.putDirect('/f', Buffer.from('x'))
  const ro = new MountOps({ remote, spoolDir: ctx.dir, readOnly: true })
  const changes = [() => ro.create('/g'), () => ro.open('/f', O.O_WRONLY), () => ro.open('/f', O.O_RDWR), () => ro.unlink('/f'),
    () => ro.mkdir('/m'), () => ro.rmdir('/m'), () => ro.rename('/f', '/g'), () => ro.truncate('/f', 0), () => ro.setattr('/f')]
  for (const change of changes) assert.is(await errnoOfCall(change()), -E.EROFS)
  const fd = await ro.open('/f', O.O_RDONLY)
  assert.is(await ro.read(fd, Buffer.alloc(1), 0), 1)
  await ro.release(fd)
  assert.is(remote.count('put') + remote.count('remove') + remote.count('mkdir') + remote.count('rename'), 0)
})

test('statfs from the cluster\'s capacity, cached; chmod/chown/utimens accepted on existing paths', async () => {
  const { ops, remote } = ctx
  await remote.putDirect('/f', Buffer.alloc(1000))
  assert.equal(await ops.statfs(), { usedBytes: 1000, capacityBytes: 1 << 30 })
  await ops.statfs()
  assert.is(remote.count('capacity'), 1)
  await ops.setattr('/f')
  assert.is(await errnoOfCall(ops.setattr('/none')), -E.ENOENT)
})

test('commitAll at unmount commits open writers and counts failures', async () => {
  const { ops, remote } = ctx
  const a = await ops.create('/a')
  const b = await ops.create('/b')
  await ops.write(a, Buffer.from('A'), 0)
  await ops.write(b, Buffer.from('B'), 0)
  remote.failNext('put', new NodeUnreachableError('gone'))
  assert.is(await ops.commitAll(), 1)
  assert.is(remote.files.get('/b')?.bytes.toString(), 'B')
  assert.is(await ops.commitAll(), 0, 'the failed one is committed by the next try')
  assert.is(remote.files.get('/a')?.bytes.toString(), 'A')
  await ops.discardAll()
  assert.is(ops.openHandles, 0)
})

test.run()
