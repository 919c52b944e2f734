import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { BadDigestError, CorruptExtentError, DirectoryNotEmptyError, NotFoundError, ServiceRegistry, errorFromWire, errorToWire, normalizePath } from '@dfs/api'

const test = suite('api')

test('typed errors survive the wire form with their name, message and evidence', () => {
  const e = errorFromWire(errorToWire(new CorruptExtentError('e1', 'sha256:aa', 'sha256:bb', { node: 'n1' })))
  assert.ok(e instanceof CorruptExtentError)
  assert.is(e.name, 'CorruptExtent')
  assert.match(e.message, /e1.*sha256:aa.*sha256:bb.*n1/)
  assert.equal(e.details, { extentId: 'e1', expected: 'sha256:aa', actual: 'sha256:bb', node: 'n1' })
  const nf = errorFromWire(errorToWire(new NotFoundError('gone', { path: '/x' })))
  assert.ok(nf instanceof NotFoundError)
  assert.equal(nf.details, { path: '/x' })
})

test('BadDigest and DirectoryNotEmpty cross the wire as their classes', () => {
  const bad = errorFromWire(errorToWire(new BadDigestError('digest', { expected: 'a', actual: 'b' })))
  assert.ok(bad instanceof BadDigestError)
  assert.equal([bad.name, bad.details], ['BadDigest', { expected: 'a', actual: 'b' }])
  const full = errorFromWire(errorToWire(new DirectoryNotEmptyError('full', { path: '/d', entries: 2 })))
  assert.ok(full instanceof DirectoryNotEmptyError)
  assert.equal([full.name, full.details], ['DirectoryNotEmpty', { path: '/d', entries: 2 }])
})

test('an unknown remote error keeps its name; a plain Error becomes InternalError', () => {
  assert.is(errorFromWire({ name: 'SomethingNew', message: 'm' }).name, 'SomethingNew')
  assert.is(errorToWire(new Error('boom')).name, 'InternalError')
  assert.is(errorFromWire({ name: '', message: 'm' }).name, 'InternalError')
})

test('paths are normalized or refused', () => {
  assert.is(normalizePath('docs/a.bin'), '/docs/a.bin')
  assert.is(normalizePath('/docs/'), '/docs')
  assert.is(normalizePath('/'), '/')
  for (const bad of ['', '/a//b', '/a/../b', '/./a', 'a\0b', 'x'.repeat(5000), 7]) {
    assert.throws(() => normalizePath(bad), (e: any) => e.name === 'InvalidArgument', JSON.stringify(bad))
  }
  // the canonical forms come back unchanged (the fast path), every other form as before
  for (const bad of ['/..', '/a/.', '/a/..', '//', `/${'x'.repeat(256)}`, `/a/${'x'.repeat(256)}/b`]) {
    assert.throws(() => normalizePath(bad), (e: any) => e.name === 'InvalidArgument', JSON.stringify(bad))
  }
  for (const ok of ['/...', '/.a', '/a..', `/${'x'.repeat(255)}`, '/a b/ü/%2F']) assert.is(normalizePath(ok), ok)
  assert.is(normalizePath('/a/b/'), '/a/b')
})

test('a canonical path is its own normal form, over random strings of the characters that matter', () => {
  // every string over {a, ., /} up to 7 characters: normalizing is idempotent and a normal form is
  // returned as it was given
  const alphabet = ['a', '.', '/']
  let strings = ['']
  for (let len = 1; len <= 7; len++) {
    strings = strings.flatMap((s) => alphabet.map((c) => s + c))
    for (const s of strings) {
      let once: string
      try {
        once = normalizePath(s)
      } catch (err) {
        assert.is((err as Error).name, 'InvalidArgument')
        continue
      }
      assert.is(normalizePath(once), once, JSON.stringify(s))
      assert.ok(once.startsWith('/') && (once === '/' || !once.endsWith('/')) && !once.includes('//'), JSON.stringify(s))
      assert.ok(!once.split('/').some((seg) => seg === '.' || seg === '..'), JSON.stringify(s))
    }
  }
})

test('the registry names what is installed when a service is missing', () => {
  const r = new ServiceRegistry()
  r.provide('extentStore', 'level', () => { throw new Error('unused') })
  assert.is(typeof r.get('extentStore', 'level'), 'function')
  assert.throws(() => r.get('extentStore', 'rocks'), (e: any) => e.name === 'UnknownService' && /installed: level/.test(e.message))
  assert.throws(() => { r.provide('extentStore', 'Bad Name', () => { throw new Error('unused') }) })
})

test.run()
