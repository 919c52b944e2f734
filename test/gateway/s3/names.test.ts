import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import {
  KEY_BYTES_MAX, UPLOADS_DIR, bucketPath, compareKeys, isBucketName, keyOf, objectPath, requireBucketName
} from '../../../src/gateway/s3/names.js'
import type { S3Error } from '../../../src/gateway/s3/errors.js'

const test = suite('gateway/s3/names')

/** The S3 error code `fn` throws (fails when it returns). */
function codeOf (fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    assert.is((err as Error).name, 'S3Error')
    return (err as S3Error).code
  }
  assert.unreachable('expected an S3Error')
  return ''
}

test('bucket names S3 accepts', () => {
  for (const name of ['abc', 'a1b', 'my-bucket', 'my.bucket', 'a-b.c-d', '123', '1.2.3', 'a'.repeat(63), 'x0-y', '0ab']) {
    assert.is(requireBucketName(name), name, name)
    assert.ok(isBucketName(name), name)
  }
})

test('bucket names S3 refuses: InvalidBucketName', () => {
  const refused = [
    '', 'ab', 'a'.repeat(64), 'Abc', 'aBc', 'a_b', 'a b', '-ab', 'ab-', '.ab', 'ab.', 'a..b', 'a.-b', 'a-.b',
    '192.168.1.1', '1.2.3.4', 'é12', 'abc/', 'ab\u0000'
  ]
  for (const name of refused) {
    assert.is(codeOf(() => requireBucketName(name)), 'InvalidBucketName', JSON.stringify(name))
    assert.not.ok(isBucketName(name), JSON.stringify(name))
  }
  try {
    requireBucketName('Bad')
  } catch (err) {
    assert.is((err as S3Error).status, 400)
    assert.equal((err as S3Error).fields, { BucketName: 'Bad' })
  }
})

test('objectPath maps keys to paths: spaces, unicode, nesting, folder markers', () => {
  assert.equal(objectPath('b', 'a.txt'), { path: '/b/a.txt', dir: false })
  assert.equal(objectPath('b', 'a b/c d.txt'), { path: '/b/a b/c d.txt', dir: false })
  assert.equal(objectPath('b', 'dir/sub/file'), { path: '/b/dir/sub/file', dir: false })
  assert.equal(objectPath('b', 'é/\u{1F600}/\uFF61'), { path: '/b/é/\u{1F600}/\uFF61', dir: false })
  assert.equal(objectPath('b', 'folder/'), { path: '/b/folder', dir: true })
  assert.equal(objectPath('b', 'a/folder/'), { path: '/b/a/folder', dir: true })
  // names that only look special
  assert.equal(objectPath('b', '.hidden'), { path: '/b/.hidden', dir: false })
  assert.equal(objectPath('b', '...'), { path: '/b/...', dir: false })
  assert.equal(objectPath('b', `${UPLOADS_DIR}x`), { path: `/b/${UPLOADS_DIR}x`, dir: false })
  assert.equal(objectPath('b', `a/${UPLOADS_DIR}/x`), { path: `/b/a/${UPLOADS_DIR}/x`, dir: false })
  // decomposed é is stored under its NFC form (paths are NFC)
  assert.equal(objectPath('b', 'e\u0301'), { path: '/b/\u00e9', dir: false })
})

test('objectPath refuses keys that are not paths: InvalidArgument', () => {
  const refused = ['', '/', '//', '/a', 'a//b', 'a//', './', '.', '..', '../x', 'a/./b', 'a/../b', 'a/..', 'a/.', 'a\u0000b', 'a\nb', 'a\u202eb']
  for (const key of refused) assert.is(codeOf(() => objectPath('b', key)), 'InvalidArgument', JSON.stringify(key))
})

test('objectPath refuses keys under the multipart uploads directory', () => {
  for (const key of [UPLOADS_DIR, `${UPLOADS_DIR}/`, `${UPLOADS_DIR}/u1/1`]) {
    assert.is(codeOf(() => objectPath('b', key)), 'InvalidArgument', key)
  }
})

test('objectPath limits: 1024 bytes a key, 255 bytes a segment (KeyTooLongError)', () => {
  const segment = 'x'.repeat(255)
  const key1024 = [segment, segment, segment, 'y'.repeat(254), 'z'].join('/')
  assert.is(Buffer.byteLength(key1024), KEY_BYTES_MAX)
  assert.is(objectPath('b', key1024).dir, false)
  assert.is(codeOf(() => objectPath('b', `${key1024}z`)), 'KeyTooLongError')
  // counted in UTF-8 bytes: 342 × 3 bytes is 1026
  assert.is(codeOf(() => objectPath('b', '\uFF61'.repeat(342))), 'KeyTooLongError')
  assert.is(codeOf(() => objectPath('b', `a/${'x'.repeat(256)}`)), 'KeyTooLongError')
  assert.is(codeOf(() => objectPath('b', `${'é'.repeat(128)}`)), 'KeyTooLongError')
  assert.is(objectPath('b', `a/${'x'.repeat(255)}/`).dir, true)
})

test('keyOf inverts objectPath for files; bucketPath', () => {
  for (const key of ['a', 'a/b c/\u{1F600}', 'x.y-z']) assert.is(keyOf('b', objectPath('b', key).path), key)
  assert.is(bucketPath('b'), '/b')
  assert.throws(() => keyOf('b', '/other/a'))
})

test('compareKeys orders by UTF-8 bytes, not UTF-16 code units', () => {
  // U+FF61 is EF BD A1 in UTF-8 and 0xFF61 in UTF-16; U+1F600 is F0 9F 98 80 and 0xD83D 0xDE00
  assert.ok(compareKeys('\uFF61', '\u{1F600}') < 0)
  assert.ok('\uFF61' > '\u{1F600}', 'the UTF-16 order is the other way')
  assert.ok(compareKeys('\uE000', '\u{10000}') < 0)
  assert.ok(compareKeys('a-b', 'a/b') < 0)
  assert.ok(compareKeys('a/b', 'a0') < 0)
  assert.ok(compareKeys('a', 'a-b') < 0)
  assert.ok(compareKeys('B', 'a') < 0)
  assert.is(compareKeys('same', 'same'), 0)
  assert.ok(compareKeys('', 'a') < 0)
  const keys = ['\u{1F600}', 'a/b', 'a', '\uFF61', 'a-b', 'a0', 'é', 'z']
  assert.equal([...keys].sort(compareKeys), ['a', 'a-b', 'a/b', 'a0', 'z', 'é', '\uFF61', '\u{1F600}'])
})

test.run()
