import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Deadline, throwIfAborted } from '@dfs/api'

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

test('Deadline: fires after its time with a TimeoutError, as AbortSignal.timeout does', async () => {
  const d = new Deadline(20)
  assert.is(d.signal.aborted, false)
  await sleep(60)
  assert.is(d.signal.aborted, true)
  assert.is(d.expired, true)
  assert.is((d.signal.reason as Error).name, 'TimeoutError')
  assert.throws(() => { throwIfAborted(d.signal) }, (e: Error) => e.name === 'DeadlineExceeded')
})

test('Deadline: clear() cancels the timer; the signal never fires', async () => {
  const d = new Deadline(20)
  d.clear()
  await sleep(60)
  assert.is(d.signal.aborted, false)
})

test('Deadline: a parent signal ends it with its reason until clear(), after which it is let go', async () => {
  const parent = new AbortController()
  const d = new Deadline(10_000, parent.signal)
  parent.abort(new Error('stop'))
  assert.is(d.signal.aborted, true)
  assert.is(d.expired, false)
  assert.is((d.signal.reason as Error).message, 'stop')

  const p2 = new AbortController()
  const d2 = new Deadline(10_000, p2.signal)
  d2.clear()
  p2.abort(new Error('late'))
  assert.is(d2.signal.aborted, false, 'a cleared deadline no longer follows its parent')

  const gone = new AbortController()
  gone.abort(new Error('before'))
  const d3 = new Deadline(10_000, gone.signal)
  assert.is(d3.signal.aborted, true, 'an already aborted parent ends it at once')
})

test('Deadline: a parent that timed out ends it, but it did not expire itself', () => {
  const parent = new AbortController()
  const d = new Deadline(10_000, parent.signal)
  parent.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError'))
  assert.is((d.signal.reason as Error).name, 'TimeoutError')
  assert.is(d.expired, false)
})

test('Deadline: shorten(ms) brings it forward, never back, and not once cleared', async () => {
  const d = new Deadline(10_000)
  d.shorten(20)
  d.shorten(5_000)
  await sleep(80)
  assert.is(d.expired, true)
  const cleared = new Deadline(10_000)
  cleared.clear()
  cleared.shorten(1)
  await sleep(30)
  assert.is(cleared.signal.aborted, false)
})

test('Deadline: abort(reason) ends it now and stops the timer', async () => {
  const d = new Deadline(20)
  d.abort(new Error('closed'))
  assert.is((d.signal.reason as Error).message, 'closed')
  await sleep(60)
  assert.is((d.signal.reason as Error).message, 'closed')
  assert.is(d.expired, false)
})

test.run()
