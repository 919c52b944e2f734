import { randomBytes } from 'node:crypto'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import {
  COMPRESSION_BYTES_MIN, COMPRESSION_RATIO_MAX, COMPRESSION_SAMPLE_BYTES, EXTENT_CODECS, compressExtent, decodeExtent, encodeExtent
} from '@dfs/api'
import { logLikeText } from '../support/log-text.js'

const test = suite('codec')
const MiB = 1024 * 1024

function thrown (fn: () => unknown): Error & { details?: Record<string, unknown> } {
  try {
    fn()
  } catch (err) {
    return err as Error & { details?: Record<string, unknown> }
  }
  throw new Error('expected a throw')
}

test('compressible extents are encoded with the setting\'s codec, to at most the ratio, and decode back', () => {
  const text = logLikeText(4 * MiB, 3)
  for (const codec of EXTENT_CODECS) {
    const out = compressExtent(codec, text)
    assert.is(out.codec, codec)
    assert.ok(out.bytes.byteLength <= COMPRESSION_RATIO_MAX * text.byteLength, `${codec}: ${out.bytes.byteLength} bytes`)
    assert.equal(decodeExtent({ id: 'e', size: text.byteLength }, codec, out.bytes), text)
  }
})

test('random bytes, tiny extents and `off` stay raw (the same buffer, no codec)', () => {
  const random = randomBytes(4 * MiB)
  const tiny = logLikeText(COMPRESSION_BYTES_MIN - 1, 4)
  const text = logLikeText(256 * 1024, 5)
  for (const codec of EXTENT_CODECS) {
    for (const bytes of [random, tiny]) {
      const out = compressExtent(codec, bytes)
      assert.is(out.codec, undefined)
      assert.ok(out.bytes === bytes)
    }
  }
  const off = compressExtent('off', text)
  assert.is(off.codec, undefined)
  assert.ok(off.bytes === text)
})

test('the sample decides: an incompressible start keeps an otherwise compressible extent raw', () => {
  const bytes = new Uint8Array(1 * MiB)
  bytes.set(randomBytes(COMPRESSION_SAMPLE_BYTES))
  bytes.set(logLikeText(bytes.byteLength - COMPRESSION_SAMPLE_BYTES, 6), COMPRESSION_SAMPLE_BYTES)
  assert.is(compressExtent('zstd', bytes).codec, undefined)
  // and a compressible start with an incompressible rest is checked on the whole
  const mixed = new Uint8Array(1 * MiB)
  mixed.set(logLikeText(COMPRESSION_SAMPLE_BYTES, 7))
  mixed.set(randomBytes(mixed.byteLength - COMPRESSION_SAMPLE_BYTES), COMPRESSION_SAMPLE_BYTES)
  assert.is(compressExtent('zstd', mixed).codec, undefined)
})

test('decoding damaged or lying bytes is CorruptExtent, never a larger buffer', () => {
  const text = logLikeText(100_000, 8)
  for (const codec of EXTENT_CODECS) {
    const encoded = encodeExtent(codec, text)
    // a size other than the one recorded
    assert.is(thrown(() => decodeExtent({ id: 'e1', size: text.byteLength - 1 }, codec, encoded)).name, 'CorruptExtent')
    assert.is(thrown(() => decodeExtent({ id: 'e1', size: text.byteLength + 1 }, codec, encoded)).name, 'CorruptExtent')
    // truncated
    const err = thrown(() => decodeExtent({ id: 'e1', size: text.byteLength }, codec, encoded.subarray(0, encoded.byteLength >> 1)))
    assert.is(err.name, 'CorruptExtent')
    assert.is(err.details?.extentId, 'e1')
    assert.is(err.details?.codec, codec)
    // garbage
    assert.is(thrown(() => decodeExtent({ id: 'e1', size: text.byteLength }, codec, randomBytes(1000))).name, 'CorruptExtent')
  }
  // an lz4 prefix claiming 4 GiB is refused before anything is allocated
  const lying = new Uint8Array(16)
  new DataView(lying.buffer).setUint32(0, 0xffffffff, true)
  assert.is(thrown(() => decodeExtent({ id: 'e2', size: 100 }, 'lz4', lying)).name, 'CorruptExtent')
})

test.run()
