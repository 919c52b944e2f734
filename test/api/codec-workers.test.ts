import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import {
  CODEC_JOBS_PER_WORKER_MAX, CODEC_OFFLOAD_BYTES_MIN, EXTENT_CODECS, codecWorkerStats, compressExtent, compressForSending, decodeExtent, encodeForCopies,
  stopCodecWorkers
} from '@dfs/api'
import { logLikeText } from '../support/log-text.js'

const test = suite('codec workers (real worker threads)')
const MiB = 1024 * 1024

test.after(async () => { await stopCodecWorkers() })

/** Byte equality (Buffers and Uint8Arrays alike; a diff of megabytes is no use in a failure). */
function same (a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))
}

test('a large compressible extent is compressed on a worker thread, to what the event loop would have made', async () => {
  const text = logLikeText(4 * MiB, 11)
  for (const codec of EXTENT_CODECS) {
    const before = { ...codecWorkerStats }
    const out = await encodeForCopies('e1', codec, text)
    assert.is(codecWorkerStats.offloaded, before.offloaded + 1, `${codec}: done on a worker`)
    assert.is(codecWorkerStats.inline, before.inline, codec)
    assert.is(out.codec, codec)
    assert.is(out.refused, undefined)
    // the same codec, level and input: the same bytes as compressing here
    assert.ok(same(out.bytes, compressExtent(codec, text).bytes), codec)
    assert.ok(same(decodeExtent({ id: 'e1', size: text.byteLength }, codec, out.bytes), text), codec)
  }
})

test('incompressible, small and off extents never reach a worker and stay raw (the same buffer)', async () => {
  const before = { ...codecWorkerStats }
  const random = randomBytes(4 * MiB)
  const small = logLikeText(CODEC_OFFLOAD_BYTES_MIN - 1, 2)
  const r = await encodeForCopies('e2', 'zstd', random)
  assert.is(r.codec, undefined)
  assert.ok(r.bytes === random)
  const off = await encodeForCopies('e3', 'off', small)
  assert.ok(off.bytes === small && off.codec === undefined)
  // a small compressible one is compressed, on this thread
  const s = await encodeForCopies('e4', 'zstd', small)
  assert.is(s.codec, 'zstd')
  assert.ok(same(decodeExtent({ id: 'e4', size: small.byteLength }, 'zstd', s.bytes), small))
  assert.is(codecWorkerStats.offloaded, before.offloaded)
  assert.is(codecWorkerStats.inline, before.inline + 1)
})

test('many at once: each answer belongs to its own extent, and jobs past the queue are done on the event loop', async () => {
  const texts = Array.from({ length: 3 * CODEC_JOBS_PER_WORKER_MAX }, (_, i) => logLikeText(CODEC_OFFLOAD_BYTES_MIN + i * 4096, 100 + i))
  const before = { ...codecWorkerStats }
  const outs = await Promise.all(texts.map(async (t, i) => await encodeForCopies(`m${i}`, 'zstd', t)))
  outs.forEach((o, i) => {
    assert.is(o.codec, 'zstd')
    assert.ok(same(decodeExtent({ id: `m${i}`, size: texts[i].byteLength }, 'zstd', o.bytes), texts[i]), `extent ${i}`)
  })
  const offloaded = codecWorkerStats.offloaded - before.offloaded
  const inline = codecWorkerStats.inline - before.inline
  assert.is(offloaded + inline, texts.length)
  assert.ok(offloaded >= CODEC_JOBS_PER_WORKER_MAX && inline > 0, `${offloaded} on workers, ${inline} inline`)
  assert.is(codecWorkerStats.workerFailures, before.workerFailures)
})

test('a worker that dies mid-job: its jobs are done on the event loop, and the next job gets a new worker', async () => {
  const text = logLikeText(2 * MiB, 21)
  await encodeForCopies('w0', 'zstd', text) // a worker is up
  const failures: string[] = []
  const before = { ...codecWorkerStats }
  const pending = encodeForCopies('w1', 'zstd', text, (err) => { failures.push(err.message) })
  await stopCodecWorkers()
  const out = await pending
  assert.is(out.codec, 'zstd')
  assert.ok(same(decodeExtent({ id: 'w1', size: text.byteLength }, 'zstd', out.bytes), text))
  assert.is(failures.length, 1)
  assert.is(codecWorkerStats.inline, before.inline + 1)
  await encodeForCopies('w2', 'zstd', text)
  assert.is(codecWorkerStats.offloaded, before.offloaded + 1, 'a new worker took the next job')
})

test('a process whose last job went through a worker exits by itself, after the job', async () => {
  // a real process: a worker that stays referenced kept `dfs node start` from exiting on stop
  const child = fileURLToPath(new URL('../support/codec-job-child.ts', import.meta.url))
  const started = Date.now()
  const { stdout } = await promisify(execFile)(process.execPath, [...process.execArgv, child], { timeout: 20_000 })
  assert.equal(JSON.parse(stdout), { codec: 'zstd', offloaded: 1 })
  assert.ok(Date.now() - started < 15_000, `exited after ${Date.now() - started} ms`)
})

test('compressForSending moves bytes that own their memory to the worker and back: compressed, or given back raw', async () => {
  const text = Buffer.from(logLikeText(MiB, 61))
  const want = Buffer.from(text)
  const before = codecWorkerStats.offloaded
  const z = await compressForSending('zstd', text)
  assert.is(text.byteLength, 0, 'the caller\'s view is detached: its memory moved')
  assert.is(z.codec, 'zstd')
  assert.ok(Buffer.from(decodeExtent({ id: 'e', size: want.byteLength }, 'zstd', z.bytes)).equals(want))
  // random bytes whose sample shrinks (a compressible head) but whose whole does not: back raw
  const mixed = Buffer.concat([logLikeText(64 * 1024, 62), randomBytes(MiB)])
  const copy = Buffer.from(mixed)
  const raw = await compressForSending('zstd', mixed)
  assert.is(mixed.byteLength, 0)
  assert.is(raw.codec, undefined)
  assert.ok(Buffer.from(raw.bytes).equals(copy), 'the same bytes came back')
  assert.is(codecWorkerStats.offloaded - before, 2)
  // a view of part of a buffer is not moved: copied to the worker, the caller's bytes untouched
  const part = Buffer.from(logLikeText(2 * MiB, 63)).subarray(MiB)
  const out = await compressForSending('zstd', part)
  assert.is(part.byteLength, MiB)
  assert.is(out.codec, 'zstd')
})

test.run()
