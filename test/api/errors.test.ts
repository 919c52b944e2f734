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
})

test('the registry names what is installed when a service is missing', () => {
  const r = new ServiceRegistry()
  r.provide('extentStore', 'level', () => { throw new Error('unused') })
  assert.is(typeof r.get('extentStore', 'level'), 'function')
  assert.throws(() => r.get('extentStore', 'rocks'), (e: any) => e.name === 'UnknownService' && /installed: level/.test(e.message))
  assert.throws(() => { r.provide('extentStore', 'Bad Name', () => { throw new Error('unused') }) })
})

test.run()
