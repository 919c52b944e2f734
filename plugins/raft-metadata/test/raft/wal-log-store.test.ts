import { spawn } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm, stat, writeFile, cp, truncate } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { levelLogStore, RaftLogDb, LevelStorage, WalLogStore } from '../../src/raft/index.js'
import type { BatchOp } from '../../src/raft/level-storage.js'
import { ent } from './helpers.js'

const dirs: string[] = []
async function tempDir (base = tmpdir()): Promise<string> {
  const d = await mkdtemp(join(base, 'dfs-wal-'))
  dirs.push(d)
  return d
}
test.after(async () => { for (const d of dirs) await rm(d, { recursive: true, force: true }) })

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)
const text = (b: Uint8Array | undefined): string | undefined => b === undefined ? undefined : new TextDecoder().decode(b)
async function all (w: WalLogStore): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for await (const [k, v] of w.range('', '\uffff')) out[k] = text(v) as string
  return out
}
async function segments (dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n.endsWith('.wal')).sort()
}
async function rejectsNamed (p: Promise<unknown>, name: string): Promise<void> {
  try {
    await p
  } catch (err) {
    assert.is((err as Error).name, name, (err as Error).message)
    return
  }
  assert.unreachable(`expected ${name}`)
}

test('batches survive a reopen: puts, overwrites and deletes, in key order', async () => {
  const dir = await tempDir()
  const w = await WalLogStore.open(dir)
  await w.batch([{ type: 'put', key: 'b', value: bytes('1') }, { type: 'put', key: 'a', value: bytes('2') }], { sync: true })
  await w.batch([{ type: 'put', key: 'b', value: bytes('3') }, { type: 'del', key: 'a' }, { type: 'put', key: 'c/é', value: new Uint8Array(0) }], { sync: true })
  // a record larger than the write buffer
  const big = new Uint8Array(3 * 1024 * 1024 + 17).fill(7)
  await w.batch([{ type: 'put', key: 'big', value: big }], { sync: true })
  await w.batch([{ type: 'put', key: 'd', value: bytes('4') }], { sync: true })
  assert.equal(Object.keys(await all(w)), ['b', 'big', 'c/é', 'd'])
  await w.close()
  await rejectsNamed(w.get('b'), 'Error')
  const again = await WalLogStore.open(dir)
  assert.is(text(await again.get('b')), '3')
  assert.is(await again.get('a'), undefined)
  assert.equal(await again.get('c/é'), new Uint8Array(0))
  assert.equal(await again.get('big'), big)
  assert.equal(Object.keys(await all(again)), ['b', 'big', 'c/é', 'd'])
  const ranged: string[] = []
  for await (const [k] of again.range('b', 'c')) ranged.push(k)
  assert.equal(ranged, ['b', 'big'])
  await again.close()
})

test('a segment is zero-filled ahead of its end, and stays readable across reopens', async () => {
  const dir = await tempDir()
  let w = await WalLogStore.open(dir)
  const seg = async (): Promise<number> => (await stat(join(dir, (await segments(dir))[0]))).size
  assert.is(await seg(), 1024 * 1024, 'a new segment starts zero-filled to 1 MiB')
  // ~1.5 MiB of records: the file grows ahead of them, in whole megabytes
  for (let i = 0; i < 300; i++) {
    await w.batch([{ type: 'put', key: `k${i}`, value: new Uint8Array(5000).fill(i % 251) }], { sync: true })
    if (i === 150) {
      await w.close()
      w = await WalLogStore.open(dir)
    }
  }
  await w.close()
  const size = await seg()
  assert.ok(size % (1024 * 1024) === 0 && size >= 2 * 1024 * 1024, `segment of ${size} bytes`)
  w = await WalLogStore.open(dir)
  for (const i of [0, 150, 151, 299]) assert.equal(await w.get(`k${i}`), new Uint8Array(5000).fill(i % 251))
  await w.close()
})

test('a value written after others were read reads back as written (the segment being appended is read again)', async () => {
  const dir = await tempDir()
  let w = await WalLogStore.open(dir)
  await w.batch([{ type: 'put', key: 'a', value: bytes('first') }], { sync: true })
  assert.is(text(await w.get('a')), 'first')
  await w.batch([{ type: 'put', key: 'b', value: bytes('second') }], { sync: true })
  assert.is(text(await w.get('b')), 'second')
  await w.close()
  // and after a reopen, whose replay read the segment whole
  w = await WalLogStore.open(dir)
  assert.is(text(await w.get('a')), 'first')
  await w.batch([{ type: 'put', key: 'c', value: bytes('third') }], { sync: true })
  assert.is(text(await w.get('c')), 'third')
  const ranged: string[] = []
  for await (const [k, v] of w.range('', '\uffff')) ranged.push(`${k}=${text(v)}`)
  assert.equal(ranged, ['a=first', 'b=second', 'c=third'])
  await w.close()
})

test('a second open of the same directory in one process is refused', async () => {
  const dir = await tempDir()
  const w = await WalLogStore.open(dir)
  try {
    await WalLogStore.open(dir).then(() => assert.unreachable('opened twice'), (err: Error & { code?: string }) => { assert.is(err.code, 'WAL_LOCKED') })
  } finally {
    await w.close()
  }
})

/** A log of `n` records (key k<i> = v<i>), closed; returns its directory and its one segment's path. */
async function written (n: number, base?: string): Promise<{ dir: string, path: string }> {
  const dir = await tempDir(base)
  const w = await WalLogStore.open(dir)
  for (let i = 0; i < n; i++) await w.batch([{ type: 'put', key: `k${i}`, value: bytes(`v${i}`.repeat(40)) }], { sync: true })
  await w.close()
  const [seg] = await segments(dir)
  return { dir, path: join(dir, seg) }
}

/** Offsets of the records in a segment (after its 16-byte header). */
function recordOffsets (buf: Uint8Array): number[] {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  const out: number[] = []
  for (let at = 16; at + 16 <= buf.byteLength;) {
    const len = view.getUint32(at, true)
    if (len === 0) break
    out.push(at)
    at = Math.ceil((at + 16 + len) / 8) * 8
  }
  return out
}

test('a torn last write is dropped, every earlier record kept, and appends go on after it', async () => {
  for (const tear of ['cut', 'zero-sector', 'zero-header'] as const) {
    const { dir, path } = await written(20)
    const buf = await readFile(path)
    const offs = recordOffsets(buf)
    const last = offs[offs.length - 1]
    const len = new DataView(buf.buffer, buf.byteOffset).getUint32(last, true)
    if (tear === 'cut') {
      await truncate(path, last + 20) // the file never grew as far as the record
    } else if (tear === 'zero-sector') {
      // the record's sectors after its first never reached the disk (records here are 400+ bytes)
      const from = Math.ceil((last + 1) / 512) * 512
      assert.ok(from < last + 16 + len, 'the record spans two sectors')
      buf.fill(0, from, Math.min(from + 512, last + 16 + len))
      await writeFile(path, buf)
    } else {
      buf.fill(0, last, last + 16)
      await writeFile(path, buf)
    }
    const w = await WalLogStore.open(dir)
    assert.is(text(await w.get('k18')), 'v18'.repeat(40), tear)
    assert.is(await w.get('k19'), undefined, tear)
    await w.batch([{ type: 'put', key: 'after', value: bytes('x') }], { sync: true })
    await w.close()
    const again = await WalLogStore.open(dir)
    assert.is(Object.keys(await all(again)).length, 20, tear)
    assert.is(text(await again.get('after')), 'x')
    await again.close()
  }
})

test('damage to a record written whole is CorruptLog, in the middle and at the end', async () => {
  for (const which of ['middle', 'last'] as const) {
    const { dir, path } = await written(10)
    const buf = await readFile(path)
    const offs = recordOffsets(buf)
    const at = which === 'middle' ? offs[4] : offs[offs.length - 1]
    buf[at + 30] ^= 0x40
    await writeFile(path, buf)
    await rejectsNamed(WalLogStore.open(dir), 'CorruptLog')
  }
  // and through the Raft log as a node opens it: the hard state changed on disk
  const dir = await tempDir()
  const l = await LevelStorage.open(dir)
  await l.saveReady({ entries: [], hardState: { term: 2, vote: '', commit: 0 } })
  await l.close()
  const [seg] = await segments(dir)
  const buf = await readFile(join(dir, seg))
  const offs = recordOffsets(buf)
  buf[offs[offs.length - 1] + 16 + 5 + 'm/hs'.length + 4 + 1] ^= 0xff
  await writeFile(join(dir, seg), buf)
  await rejectsNamed(LevelStorage.open(dir), 'CorruptLog')
})

test('segments rotate; a checkpoint written meanwhile retires the older ones; replay is the same at every step', async () => {
  const dir = await tempDir()
  const w = await WalLogStore.open(dir, { segmentBytes: 64 * 1024 })
  const expect: Record<string, string> = {}
  for (let i = 0; i < 600; i++) {
    const ops: BatchOp[] = [{ type: 'put', key: `k${i % 50}`, value: bytes(`${i}`.repeat(100)) }]
    expect[`k${i % 50}`] = `${i}`.repeat(100)
    if (i % 7 === 0) {
      ops.push({ type: 'del', key: `k${(i + 3) % 50}` })
      delete expect[`k${(i + 3) % 50}`]
    }
    await w.batch(ops, { sync: true })
  }
  await w.settled()
  assert.ok(w.stats.checkpoints >= 2, `${w.stats.checkpoints} checkpoints`)
  const names = (await readdir(dir)).sort()
  assert.is(names.length, 2, names.join())
  assert.is(names[0].slice(0, 16), names[1].slice(0, 16), 'checkpoint K and segment K')
  assert.ok(names[0].endsWith('.ckpt') && names[1].endsWith('.wal'), names.join())
  assert.equal(await all(w), expect)
  await w.close()
  const saved = await tempDir()
  await cp(dir, saved, { recursive: true })

  // a crash after a checkpoint was named, before the older segment went: put an older one back
  const older = await tempDir()
  const w2 = await WalLogStore.open(older, { segmentBytes: 1 << 30 })
  await w2.batch([{ type: 'put', key: 'k1', value: bytes('stale') }, { type: 'put', key: 'gone', value: bytes('stale') }], { sync: true })
  await w2.close()
  const [oldSeg] = await segments(older)
  assert.ok(oldSeg < names[1])
  await cp(join(older, oldSeg), join(dir, oldSeg))
  const again = await WalLogStore.open(dir)
  assert.equal(await all(again), expect)
  await again.close()
  assert.equal((await readdir(dir)).sort(), names, 'the superseded segment was removed')

  // a checkpoint lost from the disk: the log does not silently start from a later segment
  await rm(join(saved, names[0]))
  await rejectsNamed(WalLogStore.open(saved), 'CorruptLog')
})

test('a checkpoint does not hold up appends, and a crash while it is written replays from the older one', async () => {
  const dir = await tempDir()
  let release = (): void => {}
  const held = new Promise<void>((resolve) => { release = resolve })
  let holding = false
  const w = await WalLogStore.open(dir, { segmentBytes: 4096, beforeCheckpointNamed: async () => { holding = true; await held } })
  // 8 MiB of records, 8 MiB live: the eighth write rotates, and its checkpoint is held before its rename
  for (let i = 0; i < 8; i++) await w.batch([{ type: 'put', key: `big${i}`, value: new Uint8Array(1024 * 1024).fill(i) }], { sync: true })
  for (let i = 0; i < 200 && !holding; i++) await new Promise((resolve) => setTimeout(resolve, 5))
  assert.ok(holding, 'a checkpoint is being written')
  for (let i = 0; i < 50; i++) await w.batch([{ type: 'put', key: `s${i}`, value: bytes(String(i)) }], { sync: true })
  // a key the checkpoint holds, written again meanwhile: the newer value wins once the checkpoint lands
  await w.batch([{ type: 'put', key: 'big0', value: bytes('newer') }, { type: 'del', key: 'big1' }], { sync: true })
  // the disk as a crash now would leave it: the checkpoint still under its temporary name
  const crash = await tempDir()
  await cp(dir, crash, { recursive: true })
  assert.ok((await readdir(crash)).some((n) => n.endsWith('.ckpt.tmp')), (await readdir(crash)).join())
  release()
  await w.settled()
  assert.is(text(await w.get('big0')), 'newer')
  assert.is(await w.get('big1'), undefined)
  assert.equal(await w.get('big2'), new Uint8Array(1024 * 1024).fill(2), 'read from the checkpoint')
  await w.close()
  for (const d of [dir, crash]) {
    const again = await WalLogStore.open(d)
    assert.equal(await again.get('big7'), new Uint8Array(1024 * 1024).fill(7), d)
    assert.is(text(await again.get('s49')), '49', d)
    assert.is(text(await again.get('big0')), 'newer', d)
    assert.is(await again.get('big1'), undefined, d)
    await again.close()
    assert.not.ok((await readdir(d)).some((n) => n.endsWith('.tmp')), 'no unfinished checkpoint is left')
  }
})

test('a LevelDB Raft log of an older build moves into the log, crash-safely', async () => {
  const dir = await tempDir()
  const level = await levelLogStore(dir)
  await level.batch([{ type: 'put', key: 'g0/m/hs', value: bytes('hs') }, { type: 'put', key: 'g1/e/01', value: bytes('e1') }], { sync: true })
  await level.close()
  // a move that crashed before its segment was named: only a temporary file
  await writeFile(join(dir, '0000000000000001.wal.tmp'), new Uint8Array(4096).fill(9))
  const log = await RaftLogDb.open(dir)
  assert.is(text(await log.store.get('g0/m/hs')), 'hs')
  assert.is(text(await log.store.get('g1/e/01')), 'e1')
  await log.write([{ type: 'put', key: 'g1/e/02', value: bytes('e2') }], true)
  await log.close()
  assert.equal((await readdir(dir)).sort(), ['0000000000000001.ckpt', '0000000000000001.wal'], 'no LevelDB file and no temporary file is left')
  const again = await RaftLogDb.open(dir)
  assert.is(text(await again.store.get('g1/e/02')), 'e2')
  await again.close()
})

test('without O_DIRECT (a file system that refuses it) the same log goes through the page cache', async () => {
  // tmpfs refused O_DIRECT before Linux 6.6; where it still does, the store says so once
  const shm = await stat('/dev/shm').then(() => '/dev/shm', () => undefined)
  const dir = await tempDir(shm)
  const reasons: string[] = []
  const w = await WalLogStore.open(dir, { onBuffered: (r) => reasons.push(r) })
  await w.batch([{ type: 'put', key: 'a', value: bytes('1') }], { sync: true })
  await w.close()
  assert.ok(reasons.length <= 1, reasons.join())
  const buffered = await WalLogStore.open(dir, { direct: false, segmentBytes: 8192 })
  assert.is(text(await buffered.get('a')), '1')
  for (let i = 0; i < 100; i++) await buffered.batch([{ type: 'put', key: `b${i % 10}`, value: bytes(`${i}`.repeat(50)) }], { sync: true })
  assert.ok(buffered.stats.checkpoints > 0)
  await buffered.close()
  const direct = await WalLogStore.open(dir)
  assert.is(text(await direct.get('b9')), '99'.repeat(50))
  assert.is(text(await direct.get('a')), '1')
  await direct.close()
})

test('LevelStorage on the log: entries, a snapshot and a compaction survive a reopen', async () => {
  const dir = await tempDir()
  const CS = { voters: ['a'], learners: [] }
  const l = await LevelStorage.open(dir, { confState: CS })
  await l.saveReady({ entries: [ent(2, 1), ent(3, 1), ent(4, 1)], hardState: { term: 1, vote: 'a', commit: 4 } })
  await l.createSnapshot(3, CS, bytes('state@3'))
  await l.compact(3)
  await l.close()
  const again = await LevelStorage.open(dir)
  assert.is(again.firstIndex(), 4)
  assert.is(again.lastIndex(), 4)
  assert.equal(again.snapshot().data, bytes('state@3'))
  await again.close()
})

test('kill -9 while writing: every write the log acknowledged is there after the restart', async () => {
  const dir = await tempDir()
  const child = fileURLToPath(new URL('./wal-writer.ts', import.meta.url))
  for (let round = 0; round < 3; round++) {
    const proc = spawn(process.execPath, ['--import', 'tsx', '--conditions=dfs-source', child, dir], { stdio: ['ignore', 'pipe', 'inherit'] })
    let acked = -1
    let out = ''
    proc.stdout.setEncoding('utf8')
    proc.stdout.on('data', (d: string) => {
      out += d
      const lines = out.split('\n')
      out = lines.pop() as string
      for (const l of lines) if (l !== '') acked = Number(l)
    })
    // kill it mid-stream, at a different point each round
    await new Promise<void>((resolve) => {
      const check = (): void => { if (acked >= 200 + round * 150) resolve(); else setTimeout(check, 5) }
      check()
    })
    proc.kill('SIGKILL')
    await new Promise((resolve) => proc.on('close', resolve))
    const w = await WalLogStore.open(dir, { segmentBytes: 256 * 1024 })
    const last = Number(text(await w.get('last')))
    assert.ok(last >= acked, `acknowledged ${acked}, found ${last}`)
    for (let i = Math.max(0, acked - 50); i <= acked; i++) assert.is(text(await w.get(`k${i}`)), `${i}`.repeat(1 + (i % 300)), `k${i}`)
    await w.close()
  }
})

test.run()
