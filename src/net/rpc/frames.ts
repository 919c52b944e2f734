import { decode as cborDecode, encode as cborEncode } from 'cborg'
import { LengthPrefixed, MalformedFrameError, type WireError } from '@dfs/api'
import { DATA_CHUNK_BYTES_MAX, DATA_WINDOW_FRAMES, FRAME_BYTES_MAX } from '../constants.js'
import type { AbortOptions, Stream } from '@libp2p/interface'
import { Uint8ArrayList } from 'uint8arraylist'

/**
 * Wire format of `/dfs/rpc/1.0.0`.
 *
 *   frame   := varint(length) kind:u8 body           length = 1 + |body| ≤ FRAME_BYTES_MAX
 *   HEADER  (1) body = CBOR { method: text, params: any, timeoutMs: uint,      client → server, starts a call
 *                             idleTimeoutMs?: uint }
 *   DATA    (2) body = raw bytes, 0 < |body| ≤ DATA_CHUNK_BYTES_MAX          bulk bytes, never re-encoded
 *   END     (3) body = empty                                                 end of bulk bytes in one direction
 *   CREDIT  (4) body = CBOR uint n, 1 ≤ n ≤ DATA_WINDOW_FRAMES               receiver accepts n more DATA frames
 *   RESULT  (5) body = CBOR any                                              server → client, success
 *   ERROR   (6) body = CBOR { name, message, details? }                      server → client, typed failure
 *
 * A call on a stream:
 *   unary:    C: HEADER                      S: RESULT | ERROR
 *   upload:   C: HEADER DATA* END            S: CREDIT* then RESULT | ERROR   (C sends DATA only within credit)
 *   download: C: HEADER CREDIT* END          S: RESULT DATA* END | ERROR     (S sends DATA only within credit;
 *                                                                            C sends END after S's END)
 * Flow control: the sender of DATA starts with DATA_WINDOW_FRAMES credits (implicit, so small
 * transfers need no extra round trip); the receiver grants back the DATA frames it has consumed,
 * CREDIT_BATCH_FRAMES or more at a time (so a transfer within half a window sees no CREDIT).
 * Outstanding credit never exceeds the window, so a receiver buffers at most a window. A sender
 * sends END in the same write as its last DATA frame when it can, and the header with the first.
 * After a call that ended cleanly the stream may carry the next call. After any ERROR other than one
 * answering a unary call, or any protocol violation, the server closes the stream.
 */
export enum FrameKind {
  Header = 1,
  Data = 2,
  End = 3,
  Credit = 4,
  Result = 5,
  Error = 6
}

export interface CallHeader {
  method: string
  params: unknown
  /** The whole call's deadline (a streaming call's is long: it is bounded by progress instead). */
  timeoutMs: number
  /**
   * A streaming call: how long the caller waits without progress before it gives up. Once an upload
   * has ended the caller only waits for the answer, so the server has this long to give it.
   */
  idleTimeoutMs?: number
}

export type Frame =
  /** `bodyBytes`: the encoded header's size, set by `decodeFrame` (ignored when encoding). */
  | { kind: FrameKind.Header, header: CallHeader, bodyBytes?: number }
  | { kind: FrameKind.Data, bytes: Uint8ArrayList | Uint8Array }
  | { kind: FrameKind.End }
  | { kind: FrameKind.Credit, frames: number }
  | { kind: FrameKind.Result, value: unknown }
  | { kind: FrameKind.Error, error: WireError }

export const METHOD_NAME_PATTERN = /^[a-z][a-z0-9.-]{0,63}$/
export const CALL_TIMEOUT_MS_MAX = 24 * 3600 * 1000
const CBOR_DEPTH_MAX = 32

const KIND_BYTES = new Map<FrameKind, Uint8Array>(
  [FrameKind.Header, FrameKind.Data, FrameKind.End, FrameKind.Credit, FrameKind.Result, FrameKind.Error]
    .map((k) => [k, Uint8Array.of(k)])
)

function cbor (value: unknown): Uint8Array {
  return cborEncode(value)
}

/** Decodes untrusted CBOR and checks it holds only plain data (no prototype tricks, bounded depth). */
export function decodeCbor (bytes: Uint8Array): unknown {
  let value: unknown
  try {
    value = cborDecode(bytes, { rejectDuplicateMapKeys: true })
  } catch (err) {
    throw new MalformedFrameError(`frame body is not valid CBOR: ${(err as Error).message}`)
  }
  assertPlain(value, 0)
  return value
}

function assertPlain (value: unknown, depth: number): void {
  if (depth > CBOR_DEPTH_MAX) throw new MalformedFrameError(`frame body nests deeper than ${CBOR_DEPTH_MAX}`)
  if (value === null || typeof value !== 'object') return
  if (value instanceof Uint8Array) return
  if (Array.isArray(value)) {
    for (const v of value) assertPlain(v, depth + 1)
    return
  }
  if (Object.getPrototypeOf(value) !== Object.prototype) {
    throw new MalformedFrameError('frame body holds an object that is not plain data')
  }
  for (const key of Object.keys(value)) {
    if (key === '__proto__' || key === 'constructor' || key === 'prototype') {
      throw new MalformedFrameError(`frame body uses the reserved key ${JSON.stringify(key)}`)
    }
    assertPlain((value as Record<string, unknown>)[key], depth + 1)
  }
}

export function encodeFrame (frame: Frame): Array<Uint8Array | Uint8ArrayList> {
  const kind = KIND_BYTES.get(frame.kind)
  if (kind == null) throw new Error(`unknown frame kind ${String(frame.kind)}`)
  switch (frame.kind) {
    case FrameKind.Header: return [kind, cbor(frame.header)]
    case FrameKind.Data: return [kind, frame.bytes]
    case FrameKind.End: return [kind]
    case FrameKind.Credit: return [kind, cbor(frame.frames)]
    case FrameKind.Result: return [kind, cbor(frame.value === undefined ? null : frame.value)]
    case FrameKind.Error: return [kind, cbor(frame.error)]
  }
}

export function decodeFrame (payload: Uint8ArrayList): Frame {
  if (payload.byteLength < 1) throw new MalformedFrameError('empty frame')
  const kindByte = payload.get(0)
  const kind = kindByte as FrameKind
  const body = payload.sublist(1)
  switch (kind) {
    case FrameKind.Header: {
      const h = decodeCbor(body.subarray()) as Record<string, unknown>
      if (h == null || typeof h !== 'object' || Array.isArray(h)) throw new MalformedFrameError('call header is not a map')
      if (typeof h.method !== 'string' || !METHOD_NAME_PATTERN.test(h.method)) {
        throw new MalformedFrameError('call header has no valid method name')
      }
      const ms = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0 && v <= CALL_TIMEOUT_MS_MAX
      if (!ms(h.timeoutMs)) throw new MalformedFrameError(`call header timeoutMs must be an integer in 1..${CALL_TIMEOUT_MS_MAX}`)
      if (h.idleTimeoutMs != null && !ms(h.idleTimeoutMs)) {
        throw new MalformedFrameError(`call header idleTimeoutMs must be an integer in 1..${CALL_TIMEOUT_MS_MAX}`)
      }
      const header: CallHeader = { method: h.method, params: h.params ?? null, timeoutMs: h.timeoutMs }
      if (h.idleTimeoutMs != null) header.idleTimeoutMs = h.idleTimeoutMs
      return { kind, header, bodyBytes: body.byteLength }
    }
    case FrameKind.Data:
      if (body.byteLength === 0 || body.byteLength > DATA_CHUNK_BYTES_MAX) {
        throw new MalformedFrameError(`DATA frame of ${body.byteLength} bytes (allowed 1..${DATA_CHUNK_BYTES_MAX})`)
      }
      return { kind, bytes: body }
    case FrameKind.End:
      if (body.byteLength !== 0) throw new MalformedFrameError('END frame with a body')
      return { kind }
    case FrameKind.Credit: {
      const n = decodeCbor(body.subarray())
      if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > DATA_WINDOW_FRAMES) {
        throw new MalformedFrameError(`CREDIT frame must grant 1..${DATA_WINDOW_FRAMES} frames`)
      }
      return { kind, frames: n }
    }
    case FrameKind.Result:
      return { kind, value: decodeCbor(body.subarray()) }
    case FrameKind.Error: {
      const e = decodeCbor(body.subarray()) as Record<string, unknown>
      if (e == null || typeof e !== 'object' || typeof e.name !== 'string' || typeof e.message !== 'string') {
        throw new MalformedFrameError('ERROR frame without a name and message')
      }
      const details = e.details != null && typeof e.details === 'object' && !Array.isArray(e.details) ? e.details as Record<string, unknown> : undefined
      return { kind, error: { name: e.name, message: e.message, details } }
    }
    default:
      throw new MalformedFrameError(`unknown frame kind ${kindByte}`)
  }
}

/** A stream of frames: length-prefixed, size-limited, typed. */
export class FramedStream {
  readonly stream: Stream
  readonly #lp: LengthPrefixed

  constructor (stream: Stream) {
    this.stream = stream
    this.#lp = new LengthPrefixed(stream, {
      maxDataLength: FRAME_BYTES_MAX,
      // room for a full flow-control window of DATA frames plus control frames
      maxBufferSize: (DATA_WINDOW_FRAMES + 2) * FRAME_BYTES_MAX
    })
  }

  /**
   * The next frame, or null when the stream ended (the remote closed its side; a frame cut off by
   * the end is dropped). A frame over FRAME_BYTES_MAX is FrameTooLarge.
   */
  async read (options?: AbortOptions): Promise<Frame | null> {
    const payload = await this.#lp.read(options)
    return payload === null ? null : decodeFrame(payload)
  }

  /** Resolves to the size of the frame's body (without the length prefix and kind byte). */
  async write (frame: Frame, options?: AbortOptions): Promise<number> {
    // one length-prefixed message whose parts are not copied together
    const message = new Uint8ArrayList(...encodeFrame(frame))
    await this.#lp.write(message, options)
    return message.byteLength - 1
  }

  /** Several frames in one stream write: one muxer frame for the node to read, not one each. */
  async writeMany (frames: Frame[], options?: AbortOptions): Promise<void> {
    await this.#lp.writeV(frames.map((f) => new Uint8ArrayList(...encodeFrame(f))), options)
  }

  /** True while both directions are open, so the stream can carry another call. */
  reusable (): boolean {
    const s = this.stream
    return s.status === 'open' && s.writeStatus === 'writable' && s.readStatus === 'readable' && s.remoteWriteStatus === 'writable'
  }
}
