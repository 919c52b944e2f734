import { constants } from 'node:fs'
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { DIRECT_IO_ALIGN, alignUp, alignedMemory, refusesDirect, syncDir } from '@dfs/api'

/**
 * What the extent files and the Raft log share for direct I/O: the memory is aligned and zeroed, a
 * write from it with O_DIRECT reads back (or the file system refuses it the way refusesDirect
 * recognises), and syncDir fsyncs a real directory and fails on a missing one.
 */
const test = suite('direct io')

let dir = ''
test.before(async () => { dir = await mkdtemp(join(tmpdir(), 'dfs-direct-io-')) })
test.after(async () => { await rm(dir, { recursive: true, force: true }) })

test('alignUp rounds up to the alignment, or to the multiple asked for', () => {
  assert.is(alignUp(0), 0)
  assert.is(alignUp(1), DIRECT_IO_ALIGN)
  assert.is(alignUp(DIRECT_IO_ALIGN), DIRECT_IO_ALIGN)
  assert.is(alignUp(DIRECT_IO_ALIGN + 1), 2 * DIRECT_IO_ALIGN)
  assert.is(alignUp(13, 8), 16)
})

test('alignedMemory is at least as large as asked, whole pages, zero-filled', () => {
  for (const bytes of [0, 1, 65536, 65537, 3 * 1024 * 1024 + 5]) {
    const memory = alignedMemory(bytes)
    assert.ok(memory.byteLength >= Math.max(bytes, 1))
    assert.is(memory.byteLength % 65536, 0)
    assert.ok(new Uint8Array(memory).every((b) => b === 0))
  }
})

test('a write from alignedMemory with O_DIRECT reads back as written, or is refused as refusesDirect says', async () => {
  const buf = new Uint8Array(alignedMemory(2 * DIRECT_IO_ALIGN), 0, 2 * DIRECT_IO_ALIGN)
  for (let i = 0; i < buf.byteLength; i++) buf[i] = (i * 7) & 0xff
  const path = join(dir, 'direct')
  let file
  try {
    file = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_DIRECT, 0o644)
    await file.write(buf, 0, buf.byteLength, 0)
  } catch (err) {
    // a file system without O_DIRECT (tmpfs): the refusal is what the stores fall back on
    assert.ok(refusesDirect(err), `unexpected failure: ${String(err)}`)
    return
  } finally {
    await file?.close()
  }
  assert.equal(new Uint8Array(await readFile(path)), buf)
})

test('refusesDirect is EINVAL and nothing else', () => {
  assert.ok(refusesDirect(Object.assign(new Error('invalid'), { code: 'EINVAL' })))
  for (const code of ['ENOENT', 'EIO', 'ENOSPC', undefined]) assert.not.ok(refusesDirect(Object.assign(new Error('other'), { code })))
  assert.not.ok(refusesDirect(undefined))
})

test('syncDir fsyncs a directory; a missing one is ENOENT', async () => {
  await writeFile(join(dir, 'named'), 'x')
  await syncDir(dir)
  try {
    await syncDir(join(dir, 'missing'))
    assert.unreachable('a missing directory was synced')
  } catch (err) {
    assert.is((err as NodeJS.ErrnoException).code, 'ENOENT')
  }
})

test.run()
