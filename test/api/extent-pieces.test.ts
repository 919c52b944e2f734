import { randomBytes } from 'node:crypto'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import {
  EXTENT_SIZE_MAX, PIECE_HEADER_BYTES, decodeExtent, encodeExtent, parsePieceHeader, pieceHeader, readPieces, stopCodecWorkers,
  type Piece
} from '@dfs/api'
import { encodePieces } from '../../src/client/pieces.js'
import { logLikeText } from '../support/log-text.js'

/**
 * The body of `fs.put.encoded`: what a client's encodePieces produces reads back through readPieces
 * however the stream is cut, compressible pieces are compressed and the rest raw, and every
 * malformed header or a body that ends inside a piece is MalformedFrame.
 */
const test = suite('extent pieces')
const KiB = 1024

test.after(async () => { await stopCodecWorkers() })

async function * source (parts: Uint8Array[]): AsyncGenerator<Uint8Array> { for (const p of parts) yield p }

async function collect<T> (it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const x of it) out.push(x)
  return out
}

/** `bytes` cut into chunks of `size` (the last shorter). */
function cut (bytes: Uint8Array, size: number): Uint8Array[] {
  const out: Uint8Array[] = []
  for (let i = 0; i < bytes.byteLength; i += size) out.push(bytes.subarray(i, i + size))
  return out
}

function logical (p: Piece): Buffer {
  const b = p.codec === undefined ? p.bytes : decodeExtent({ id: 'p', size: p.size }, p.codec, p.bytes)
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength)
}

async function failure (p: Promise<unknown>): Promise<string> {
  try {
    await p
  } catch (err) {
    return `${(err as Error).name}: ${(err as Error).message}`
  }
  return 'succeeded'
}

test('encodePieces then readPieces gives the bytes back, piece by piece, whatever the chunks', async () => {
  const text = Buffer.from(logLikeText(700 * KiB + 13, 41))
  const random = randomBytes(300 * KiB)
  const file = Buffer.concat([text, random])
  const body = Buffer.concat(await collect(encodePieces(source(cut(file, 64 * KiB + 7)), { pieceBytes: 256 * KiB })))
  for (const chunk of [1, 15, 16, 17, 4093, 64 * KiB, body.byteLength]) {
    const pieces = await collect(readPieces(source(cut(body, chunk))))
    assert.equal(pieces.map((p) => p.size), [256 * KiB, 256 * KiB, 256 * KiB, file.byteLength - 3 * 256 * KiB], `chunks of ${chunk}`)
    assert.ok(Buffer.concat(pieces.map(logical)).equals(file), `chunks of ${chunk}`)
    // the first two are text, compressed; the last is random, raw (the third is mixed)
    assert.equal([pieces[0].codec, pieces[1].codec, pieces[3].codec], ['zstd', 'zstd', undefined])
    assert.ok(pieces[0].bytes.byteLength < 0.5 * 256 * KiB)
  }
  assert.ok(body.byteLength < file.byteLength * 0.8, `${body.byteLength} bytes sent for ${file.byteLength}`)
})

test('large pieces are compressed on codec workers, in order; small, random and `off` pieces go raw', async () => {
  const text = Buffer.from(logLikeText(9 * 1024 * KiB, 42))
  const pieces = await collect(readPieces(encodePieces(source(cut(text, 1024 * KiB)))))
  assert.equal(pieces.map((p) => [p.size, p.codec]), [[EXTENT_SIZE_MAX, 'zstd'], [EXTENT_SIZE_MAX, 'zstd'], [text.byteLength - 2 * EXTENT_SIZE_MAX, 'zstd']])
  assert.ok(Buffer.concat(pieces.map(logical)).equals(text))
  const small = Buffer.from(logLikeText(3 * KiB, 43))
  for (const [bytes, compression] of [[small, undefined], [randomBytes(100 * KiB), undefined], [text.subarray(0, 100 * KiB), 'off']] as const) {
    const got = await collect(readPieces(encodePieces(source([bytes]), { compression })))
    assert.is(got.length, 1)
    assert.is(got[0].codec, undefined)
    assert.ok(Buffer.from(got[0].bytes).equals(bytes))
  }
  assert.equal(await collect(encodePieces(source([]))), [], 'an empty file is no piece')
  assert.equal(await collect(readPieces(source([]))), [])
})

test('a malformed piece header or a body cut inside a piece is MalformedFrame', async () => {
  const good = Buffer.from(logLikeText(64 * KiB, 44))
  const zstd = encodeExtent('zstd', good)
  const header = (fields: { version?: number, codec?: number, reserved?: number, size?: number, stored?: number, tail?: number }): Buffer => {
    const h = Buffer.from(pieceHeader('zstd', good.byteLength, zstd.byteLength))
    if (fields.version !== undefined) h.writeUInt8(fields.version, 0)
    if (fields.codec !== undefined) h.writeUInt8(fields.codec, 1)
    if (fields.reserved !== undefined) h.writeUInt16LE(fields.reserved, 2)
    if (fields.size !== undefined) h.writeUInt32LE(fields.size, 4)
    if (fields.stored !== undefined) h.writeUInt32LE(fields.stored, 8)
    if (fields.tail !== undefined) h.writeUInt32LE(fields.tail, 12)
    return h
  }
  const cases: Array<[string, Buffer, RegExp]> = [
    ['version 2', header({ version: 2 }), /version 2/],
    ['codec 3', header({ codec: 3 }), /unknown codec 3/],
    ['reserved u16', header({ reserved: 1 }), /reserved/],
    ['reserved u32', header({ tail: 9 }), /reserved/],
    ['size 0', header({ size: 0, stored: 0 }), /of 0 bytes/],
    ['size past an extent', header({ size: EXTENT_SIZE_MAX + 1 }), /bytes \(1\.\./],
    ['compressed no smaller', header({ stored: good.byteLength }), /stored as/],
    ['compressed empty', header({ stored: 0 }), /stored as/],
    ['raw of another size', header({ codec: 0, stored: good.byteLength - 1 }), /raw piece/]
  ]
  for (const [name, h, why] of cases) {
    const err = await failure(collect(readPieces(source([h, zstd]))))
    assert.match(err, /^MalformedFrame: /, name)
    assert.match(err, why, `${name}: ${err}`)
  }
  const whole = Buffer.concat([header({}), zstd])
  assert.match(await failure(collect(readPieces(source([whole.subarray(0, 10)])))), /^MalformedFrame: the body ended inside a piece/)
  assert.match(await failure(collect(readPieces(source([whole.subarray(0, whole.byteLength - 1)])))), /^MalformedFrame: the body ended inside a piece/)
  const fine = await collect(readPieces(source([whole])))
  assert.is(fine.length, 1)
  assert.ok(logical(fine[0]).equals(good))
  assert.equal(parsePieceHeader(whole.subarray(0, PIECE_HEADER_BYTES)), { codec: 'zstd', size: good.byteLength, storedSize: zstd.byteLength })
})

test.run()
