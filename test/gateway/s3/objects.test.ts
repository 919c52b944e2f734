import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { parseRange } from '../../../src/gateway/s3/objects.js'
import type { S3Error } from '../../../src/gateway/s3/errors.js'

const test = suite('gateway/s3/objects parseRange')

function invalidRange (value: string, size: number): void {
  try {
    parseRange(value, size)
  } catch (err) {
    assert.is((err as Error).name, 'S3Error', value)
    assert.is((err as S3Error).code, 'InvalidRange', value)
    assert.is((err as S3Error).status, 416)
    assert.equal((err as S3Error).fields, { RangeRequested: value, ActualObjectSize: String(size) })
    return
  }
  assert.unreachable(`${value} of ${size} bytes was satisfiable`)
}

test('no Range header: the whole object', () => {
  assert.is(parseRange(undefined, 10), undefined)
})

test('first-last ranges', () => {
  assert.equal(parseRange('bytes=0-0', 10), { offset: 0, length: 1 })
  assert.equal(parseRange('bytes=0-9', 10), { offset: 0, length: 10 })
  assert.equal(parseRange('bytes=3-5', 10), { offset: 3, length: 3 })
  assert.equal(parseRange('bytes=9-9', 10), { offset: 9, length: 1 })
  assert.equal(parseRange(' bytes=2-4 ', 10), { offset: 2, length: 3 })
  // a last byte beyond the end is clipped to it
  assert.equal(parseRange('bytes=5-100', 10), { offset: 5, length: 5 })
  assert.equal(parseRange('bytes=0-999999999999999', 10), { offset: 0, length: 10 })
})

test('open ranges (first-)', () => {
  assert.equal(parseRange('bytes=5-', 10), { offset: 5, length: 5 })
  assert.equal(parseRange('bytes=0-', 10), { offset: 0, length: 10 })
  assert.equal(parseRange('bytes=9-', 10), { offset: 9, length: 1 })
})

test('suffix ranges (-n): the last n bytes, all of them when n is larger', () => {
  assert.equal(parseRange('bytes=-3', 10), { offset: 7, length: 3 })
  assert.equal(parseRange('bytes=-10', 10), { offset: 0, length: 10 })
  assert.equal(parseRange('bytes=-11', 10), { offset: 0, length: 10 })
  invalidRange('bytes=-0', 10)
})

test('a first byte at or past the end is InvalidRange (416)', () => {
  invalidRange('bytes=10-', 10)
  invalidRange('bytes=10-20', 10)
  invalidRange('bytes=0-0', 0)
  invalidRange('bytes=0-', 0)
})

test('an empty object: a suffix range is the whole (empty) object, never a range of -1 bytes', () => {
  assert.is(parseRange('bytes=-3', 0), undefined)
  invalidRange('bytes=-0', 0)
})

test('malformed, multiple or other-unit ranges and last < first are ignored: the whole object', () => {
  for (const value of ['', 'bytes', 'bytes=', 'bytes=-', 'bytes=a-b', 'bytes=1-2,4-5', 'bytes=0-0, -1', 'items=0-1', 'bytes=1--2',
    'bytes = 0-1', 'BYTES=0-1', 'bytes=0-1-2', 'bytes=1.5-2', 'bytes=0x1-2', 'bytes=1234567890123456-', 'bytes=5-3']) {
    assert.is(parseRange(value, 10), undefined, JSON.stringify(value))
  }
})

test.run()
