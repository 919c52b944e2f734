import {
  COMPRESSION_DEFAULT, EXTENT_SIZE_MAX, compressForSending, pieceHeader,
  type CompressionSetting, type EncodedExtent
} from '@dfs/api'

/** Pieces being compressed ahead of the one being sent (each holds up to one extent's bytes). */
export const PIECES_AHEAD = 2

/** A piece whose stored bytes are smaller than this leaves as one chunk with its header (one DATA frame). */
const JOIN_HEADER_BYTES_MAX = 64 * 1024

export interface EncodePiecesOptions {
  /** The codec pieces are tried with (compressExtent decides per piece), or `off`: every piece raw. */
  compression?: CompressionSetting
  /** Logical bytes per piece (each becomes one extent; the last may be shorter). */
  pieceBytes?: number
}

/**
 * `body` as the pieces of an `fs.put.encoded` (extent-pieces.ts): cut into `pieceBytes`, each
 * compressed when it shrinks enough (on a codec worker when large, see compressForSending). Up to
 * PIECES_AHEAD pieces are compressed while the one before them is sent, so the client's core
 * compresses and encrypts at once; memory stays within PIECES_AHEAD + 2 pieces. The body's chunks
 * are given up: one that is exactly a piece may be detached (moved to a worker and back).
 */
export async function * encodePieces (body: AsyncIterable<Uint8Array>, options: EncodePiecesOptions = {}): AsyncGenerator<Uint8Array> {
  const setting = options.compression ?? COMPRESSION_DEFAULT
  const pieceBytes = options.pieceBytes ?? EXTENT_SIZE_MAX
  if (!(Number.isSafeInteger(pieceBytes) && pieceBytes >= 1 && pieceBytes <= EXTENT_SIZE_MAX)) throw new RangeError(`pieceBytes must be in 1..${EXTENT_SIZE_MAX}`)
  const queue: Array<{ size: number, encoding: Promise<EncodedExtent> }> = []
  let parts: Uint8Array[] = []
  let gathered = 0
  const cut = (): void => {
    const bytes = parts.length === 1 ? parts[0] : Buffer.concat(parts, gathered)
    parts = []
    gathered = 0
    // read before the bytes may move to a worker (and be detached here)
    const size = bytes.byteLength
    const encoding = compressForSending(setting, bytes)
    // rethrown when its turn comes; a piece never reached (the upload failed) must not be an unhandled rejection
    encoding.catch(() => {})
    queue.push({ size, encoding })
  }
  async function * send (piece: { size: number, encoding: Promise<EncodedExtent> }): AsyncGenerator<Uint8Array> {
    const { codec, bytes } = await piece.encoding
    const header = pieceHeader(codec, piece.size, bytes.byteLength)
    if (bytes.byteLength < JOIN_HEADER_BYTES_MAX) {
      yield Buffer.concat([header, bytes])
    } else {
      yield header
      yield bytes
    }
  }
  for await (const chunk of body) {
    let at = 0
    while (at < chunk.byteLength) {
      const n = Math.min(chunk.byteLength - at, pieceBytes - gathered)
      // a view: the body gives its chunks up once yielded (see RpcClient.upload); a chunk that is a
      // whole piece is the piece, and may move to a codec worker (its memory then detached here)
      parts.push(chunk.subarray(at, at + n))
      gathered += n
      at += n
      if (gathered === pieceBytes) cut()
    }
    while (queue.length > PIECES_AHEAD) yield * send(queue.shift() as (typeof queue)[number])
  }
  if (gathered > 0) cut()
  while (queue.length > 0) yield * send(queue.shift() as (typeof queue)[number])
}
