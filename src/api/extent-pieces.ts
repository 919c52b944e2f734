import { EXTENT_SIZE_MAX } from './extent-store.js'
import { MalformedFrameError } from './errors.js'
import type { ExtentCodec } from './codec.js'

/**
 * The body of `fs.put.encoded`: a file's bytes as a sequence of pieces, each one extent's bytes,
 * raw or compressed by the client. A client that compresses what it sends spares the node the
 * compression and the network the bytes; the node decodes each piece (which proves the encoding),
 * hashes the logical bytes and stores the encoded ones as they came.
 *
 * A piece is a 16-byte header, then `storedSize` bytes:
 *
 *   u8 version (1) · u8 codec (0 raw, 1 lz4, 2 zstd) · u16 0 · u32 size · u32 storedSize · u32 0
 *
 * little endian; `size` (the logical bytes, 1..EXTENT_SIZE_MAX) is what the piece decodes to. A raw
 * piece has `storedSize === size`, a compressed one `storedSize < size`. Pieces need not line up
 * with the body's chunks. Anything else — another version, an unknown codec, a nonzero reserved
 * field, sizes out of range, a body that ends inside a piece — is MalformedFrame.
 */
export const PIECE_HEADER_BYTES = 16

/** The piece format's version (the header's first byte). */
export const PIECE_VERSION = 1

const CODEC_BYTES: Record<ExtentCodec, number> = { lz4: 1, zstd: 2 }
const BYTE_CODECS: Array<ExtentCodec | undefined> = [undefined, 'lz4', 'zstd']

/** One piece as read from a body: `bytes` are `size` logical bytes encoded with `codec` (none: raw). */
export interface Piece {
  codec?: ExtentCodec
  size: number
  bytes: Uint8Array
}

/** The header of a piece of `size` logical bytes stored as `storedSize` bytes with `codec`. */
export function pieceHeader (codec: ExtentCodec | undefined, size: number, storedSize: number): Uint8Array {
  const header = new Uint8Array(PIECE_HEADER_BYTES)
  const view = new DataView(header.buffer)
  view.setUint8(0, PIECE_VERSION)
  view.setUint8(1, codec === undefined ? 0 : CODEC_BYTES[codec])
  view.setUint32(4, size, true)
  view.setUint32(8, storedSize, true)
  return header
}

/** The header's fields, checked (MalformedFrame when they break the format). */
export function parsePieceHeader (header: Uint8Array): { codec?: ExtentCodec, size: number, storedSize: number } {
  const view = new DataView(header.buffer, header.byteOffset, PIECE_HEADER_BYTES)
  const version = view.getUint8(0)
  if (version !== PIECE_VERSION) throw new MalformedFrameError(`a piece of version ${version}; this node reads version ${PIECE_VERSION}`, { version })
  const codecByte = view.getUint8(1)
  if (codecByte >= BYTE_CODECS.length) throw new MalformedFrameError(`a piece with unknown codec ${codecByte}`, { codec: codecByte })
  const codec = BYTE_CODECS[codecByte]
  if (view.getUint16(2, true) !== 0 || view.getUint32(12, true) !== 0) throw new MalformedFrameError('a piece header with nonzero reserved fields')
  const size = view.getUint32(4, true)
  const storedSize = view.getUint32(8, true)
  if (size < 1 || size > EXTENT_SIZE_MAX) throw new MalformedFrameError(`a piece of ${size} bytes (1..${EXTENT_SIZE_MAX})`, { size })
  if (codec === undefined ? storedSize !== size : !(storedSize >= 1 && storedSize < size)) {
    throw new MalformedFrameError(`a ${codec ?? 'raw'} piece of ${size} bytes stored as ${storedSize}`, { size, storedSize })
  }
  return { ...(codec !== undefined ? { codec } : {}), size, storedSize }
}

function pieceOf (header: { codec?: ExtentCodec, size: number }, bytes: Uint8Array): Piece {
  return { ...(header.codec !== undefined ? { codec: header.codec } : {}), size: header.size, bytes }
}

/**
 * The pieces of `body` (chunks of the byte stream), each whole. Memory stays within one piece (at
 * most EXTENT_SIZE_MAX bytes) beyond the chunk at hand: a piece inside one chunk is a view of it,
 * one across chunks is gathered into a buffer of its stored size.
 */
export async function * readPieces (body: AsyncIterable<Uint8Array>): AsyncGenerator<Piece> {
  const header = new Uint8Array(PIECE_HEADER_BYTES)
  let headerFilled = 0
  let current: { codec?: ExtentCodec, size: number, storedSize: number } | undefined
  let gathered: Uint8Array | undefined
  let filled = 0
  for await (const chunk of body) {
    let at = 0
    while (at < chunk.byteLength) {
      if (current === undefined) {
        const n = Math.min(PIECE_HEADER_BYTES - headerFilled, chunk.byteLength - at)
        header.set(chunk.subarray(at, at + n), headerFilled)
        headerFilled += n
        at += n
        if (headerFilled < PIECE_HEADER_BYTES) break
        headerFilled = 0
        current = parsePieceHeader(header)
        filled = 0
        gathered = undefined
      }
      const want = current.storedSize - filled
      if (gathered === undefined && chunk.byteLength - at >= want) {
        // the whole piece is in this chunk: a view, no copy
        const bytes = chunk.subarray(at, at + want)
        at += want
        const done = current
        current = undefined
        yield pieceOf(done, bytes)
        continue
      }
      gathered ??= new Uint8Array(current.storedSize)
      const n = Math.min(want, chunk.byteLength - at)
      gathered.set(chunk.subarray(at, at + n), filled)
      filled += n
      at += n
      if (filled === current.storedSize) {
        const done = current
        const bytes = gathered
        current = undefined
        gathered = undefined
        yield pieceOf(done, bytes)
      }
    }
  }
  if (current !== undefined || headerFilled > 0) {
    throw new MalformedFrameError('the body ended inside a piece', { storedSize: current?.storedSize, received: current !== undefined ? filled : headerFilled })
  }
}
