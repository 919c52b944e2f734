import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { TtlCache } from '../../src/mount/cache.js'

test('an entry lives for the TTL and not a millisecond more', () => {
  let now = 1000
  const c = new TtlCache<string, number>({ ttlMs: 1000, entriesMax: 10, now: () => now })
  c.set('a', 1)
  now = 1999
  assert.is(c.get('a'), 1)
  now = 2000
  assert.is(c.get('a'), undefined)
  assert.is(c.size, 0, 'the expired entry is dropped')
})

test('a set renews the entry; null is a value (a remembered miss)', () => {
  let now = 0
  const c = new TtlCache<string, number | null>({ ttlMs: 100, entriesMax: 10, now: () => now })
  c.set('a', null)
  now = 90
  c.set('a', 2)
  now = 150
  assert.is(c.get('a'), 2)
  c.set('b', null)
  assert.is(c.get('b'), null)
})

test('bounded: the oldest entries go first', () => {
  const c = new TtlCache<number, number>({ ttlMs: 1_000_000, entriesMax: 3 })
  for (let i = 0; i < 5; i++) c.set(i, i)
  assert.is(c.size, 3)
  assert.is(c.get(0), undefined)
  assert.is(c.get(1), undefined)
  assert.equal([c.get(2), c.get(3), c.get(4)], [2, 3, 4])
})

test('delete and deleteWhere drop what a change touched', () => {
  const c = new TtlCache<string, number>({ ttlMs: 1000, entriesMax: 10 })
  for (const k of ['/a', '/a/b', '/a/b/c', '/ab']) c.set(k, 1)
  c.deleteWhere((k) => k === '/a' || k.startsWith('/a/'))
  assert.equal([c.get('/a'), c.get('/a/b'), c.get('/a/b/c'), c.get('/ab')], [undefined, undefined, undefined, 1])
  c.delete('/ab')
  assert.is(c.size, 0)
})

test('a zero TTL caches nothing; bad bounds are refused', () => {
  const c = new TtlCache<string, number>({ ttlMs: 0, entriesMax: 1 })
  c.set('a', 1)
  assert.is(c.get('a'), undefined)
  assert.throws(() => new TtlCache({ ttlMs: 1, entriesMax: 0 }))
  assert.throws(() => new TtlCache({ ttlMs: -1, entriesMax: 1 }))
})

test.run()
