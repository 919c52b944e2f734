/**
 * No exception per received chunk in length-prefixed decoding.
 *
 * @libp2p/utils' LengthPrefixedDecoder (which @chainsafe/libp2p-noise uses to split the TCP byte
 * stream into Noise messages) learns that its buffer holds no further frame by calling its length
 * decoder and catching the RangeError it throws. After every chunk that ends on a frame boundary —
 * nearly all of them — the buffer is empty, so every chunk a connection received cost an Error with a
 * captured stack: a few percent of a busy node's CPU. Here an empty buffer decodes as length 0
 * instead; the frame that would need (at least) its length prefix is then longer than the empty
 * buffer, so the decoder stops exactly where the exception stopped it, consuming nothing. Any other
 * case still goes to the original length decoder.
 */
import { LengthPrefixedDecoder } from '@libp2p/utils'
import type { Uint8ArrayList } from 'uint8arraylist'

const guarded = Symbol('dfs.guardedLengthDecoder')
let installed = false

interface DecoderState {
  lengthDecoder: (data: Uint8ArrayList | Uint8Array) => number
  encodingLength: (length: number) => number
  [guarded]?: true
}

/** Patches LengthPrefixedDecoder once per process; throws if the library no longer has the shape relied on. */
export function installQuietLengthPrefixedDecoder (): void {
  if (installed) return
  const proto = LengthPrefixedDecoder.prototype as unknown as { decode: (this: DecoderState, buf: Uint8Array | Uint8ArrayList) => Generator<Uint8ArrayList> }
  const decode = proto.decode
  if (typeof decode !== 'function') throw new Error('@libp2p/utils changed: LengthPrefixedDecoder.decode is missing')
  proto.decode = function (this: DecoderState, buf: Uint8Array | Uint8ArrayList): Generator<Uint8ArrayList> {
    if (this[guarded] !== true) {
      this[guarded] = true
      const lengthDecoder = this.lengthDecoder
      // only where a frame of length 0 still has a prefix of at least one byte (varint, uint16 …)
      if (typeof lengthDecoder === 'function' && typeof this.encodingLength === 'function' && this.encodingLength(0) >= 1) {
        this.lengthDecoder = (data) => data.byteLength === 0 ? 0 : lengthDecoder(data)
      }
    }
    return decode.call(this, buf)
  }
  installed = true
}
