import { randomUUID } from 'node:crypto'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { ExtentInfo } from '@dfs/api'
import { DeferredWrites, type Deferred } from '../src/deferred-writes.js'

/**
 * DeferredWrites against a batch writer double whose batches the test settles (the store's real
 * batches are exercised by level-extent-store.test.ts and the kill -9 test in crash.test.ts).
 */

interface Batch { ids: string[], resolve: () => void, reject: (err: Error) => void }

function writer (): { batches: Batch[], errors: number[], deferred: (limits?: { writeAfterMs?: number, bytesMax?: number, extentsMax?: number }) => DeferredWrites } {
  const batches: Batch[] = []
  const errors: number[] = []
  return {
    batches,
    errors,
    deferred: (limits = {}) => new DeferredWrites({
      ...limits,
      write: async (entries: readonly Deferred[]) => {
        await new Promise<void>((resolve, reject) => { batches.push({ ids: entries.map((e) => e.id), resolve, reject }) })
      },
      onError: (_err, n) => { errors.push(n) }
    })
  }
}

function extent (n: number): { id: string, info: ExtentInfo, bytes: Uint8Array } {
  const id = randomUUID()
  return { id, info: { id, size: n, checksum: `sha256:${'0'.repeat(64)}` }, bytes: new Uint8Array(n).fill(7) }
}

const tick = async (ms = 0): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

test('held extents are written in one batch after the delay, and held (and read) until that batch resolves', async () => {
  const w = writer()
  const d = w.deferred({ writeAfterMs: 30 })
  const xs = [extent(10), extent(20), extent(30)]
  for (const x of xs) assert.ok(d.add(x.id, x.info, x.bytes))
  xs[0].bytes.fill(1)
  assert.equal(d.get(xs[0].id)?.stored, new Uint8Array(10).fill(7), 'a copy is held: the caller\'s buffer is its own again')
  assert.is(w.batches.length, 0)
  await tick(80)
  assert.equal(w.batches.map((b) => b.ids), [xs.map((x) => x.id)], 'one batch, in the order they came')
  assert.is(d.size, 3, 'held while the batch is written')
  w.batches[0].resolve()
  await tick()
  assert.is(d.size, 0)
  assert.is(d.get(xs[1].id), undefined)
})

test('a batch starts as soon as the extents or bytes limit waits; beyond twice the limits add refuses', async () => {
  const w = writer()
  const d = w.deferred({ writeAfterMs: 60_000, extentsMax: 4, bytesMax: 1000 })
  const xs = Array.from({ length: 4 }, () => extent(10))
  for (const x of xs) assert.ok(d.add(x.id, x.info, x.bytes))
  assert.is(w.batches.length, 1, 'four extents waiting: written at once')
  const ys = Array.from({ length: 4 }, () => extent(10))
  for (const y of ys) assert.ok(d.add(y.id, y.info, y.bytes))
  assert.is(w.batches.length, 2)
  const z = extent(10)
  assert.not.ok(d.add(z.id, z.info, z.bytes), 'eight held (twice the limit): the caller writes it')
  w.batches[0].resolve()
  await tick()
  assert.ok(d.add(z.id, z.info, z.bytes), 'room again once a batch was written')
  const big = extent(1001)
  const w2 = writer()
  const d2 = w2.deferred({ writeAfterMs: 60_000, bytesMax: 1000 })
  assert.ok(d2.add(big.id, big.info, big.bytes))
  assert.is(w2.batches.length, 1, 'past the bytes limit: written at once')
  const big2 = extent(1000)
  assert.not.ok(d2.add(big2.id, big2.info, big2.bytes), 'past twice the bytes')
  w.batches[1].resolve()
  w2.batches[0].resolve()
  const settling = d.settle()
  assert.equal(w.batches[2].ids, [z.id])
  w.batches[2].resolve()
  await settling
  await d2.settle()
  assert.is(d.size + d2.size, 0)
})

test('remove drops a waiting extent (never written); one being written is waited for and left to the caller', async () => {
  const w = writer()
  const d = w.deferred({ writeAfterMs: 60_000 })
  const [a, b, c] = [extent(5), extent(6), extent(7)]
  d.add(a.id, a.info, a.bytes)
  assert.is(await d.remove(a.id), true)
  assert.is(await d.remove(a.id), false)
  d.add(b.id, b.info, b.bytes)
  d.add(c.id, c.info, c.bytes)
  const settling = d.settle()
  assert.equal(w.batches.map((x) => x.ids), [[b.id, c.id]], 'the dropped one is not in the batch')
  let removed: boolean | undefined
  const removing = d.remove(b.id).then((r) => { removed = r })
  await tick()
  assert.is(removed, undefined, 'waits for the batch')
  w.batches[0].resolve()
  await removing
  await settling
  assert.is(removed, false, 'written: the caller deletes it from the database')
  assert.is(d.size, 0)
})

test('a batch that fails leaves its extents waiting (settle rejects, the error is reported); the next batch writes them', async () => {
  const w = writer()
  const d = w.deferred({ writeAfterMs: 20 })
  const [a, b] = [extent(5), extent(6)]
  d.add(a.id, a.info, a.bytes)
  d.add(b.id, b.info, b.bytes)
  const settling = d.settle()
  w.batches[0].reject(Object.assign(new Error('disk full'), { code: 'LEVEL_IO_ERROR' }))
  await settling.then(() => assert.unreachable(), (err) => { assert.is(err.message, 'disk full') })
  assert.equal(w.errors, [2])
  assert.is(d.size, 2, 'still held, still read')
  assert.ok(d.get(a.id) !== undefined && d.get(a.id)?.writing === undefined)
  // removed while waiting again: not in the retry
  assert.is(await d.remove(a.id), true)
  await tick(60)
  assert.equal(w.batches.map((x) => x.ids), [[a.id, b.id], [b.id]], 'tried again after the delay')
  w.batches[1].resolve()
  await d.settle()
  assert.is(d.size, 0)
})

test('after stop nothing more is held and no timer writes; settle still writes what is held', async () => {
  const w = writer()
  const d = w.deferred({ writeAfterMs: 10 })
  const [a, b] = [extent(5), extent(6)]
  d.add(a.id, a.info, a.bytes)
  d.stop()
  assert.not.ok(d.add(b.id, b.info, b.bytes))
  await tick(40)
  assert.is(w.batches.length, 0)
  const settling = d.settle()
  assert.equal(w.batches.map((x) => x.ids), [[a.id]])
  w.batches[0].resolve()
  await settling
  assert.is(d.size, 0)
})

test.run()
