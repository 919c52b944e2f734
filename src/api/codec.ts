import { createRequire } from 'node:module'
import { CorruptExtentError, InvalidArgumentError } from './errors.js'

/**
 * Extent codecs: how an extent's bytes may be stored and sent between nodes. An extent's identity —
 * its size and checksum, and so ETags, file checksums and ranges — is always that of its logical
 * (decoded) bytes; the codec only changes what a store keeps and what travels.
 *
 * - `lz4`: lz4-napi's block format, the logical size prepended (4 bytes, little endian).
 * - `zstd`: one or more zstd frames (zstd-napi, level ZSTD_LEVEL).
 *
 * Raw bytes have no codec (`undefined`), which is also what every record written before codecs
 * existed reads as.
 */
export type ExtentCodec = 'lz4' | 'zstd'

/** Every codec this build can decode. */
export const EXTENT_CODECS: readonly ExtentCodec[] = Object.freeze(['lz4', 'zstd'])

/** The cluster setting `compression`: the codec new extents are tried with, or `off`. */
export type CompressionSetting = ExtentCodec | 'off'

export const COMPRESSION_SETTINGS: readonly CompressionSetting[] = Object.freeze(['lz4', 'zstd', 'off'])

/**
 * Default of `compression`. zstd at level 1 compressed log-like text as fast as lz4 here and a third
 * smaller (0.21 of the logical bytes against lz4's 0.34), decoded it faster, and passed random bytes
 * 5–7× faster than lz4 (`npm run bench:codecs`, see the README).
 */
export const COMPRESSION_DEFAULT: CompressionSetting = 'zstd'

/** zstd's level: 1 is its fastest regular level; higher ones cost CPU a 2-core node spends on the data path. */
export const ZSTD_LEVEL = 1

/** Bytes of an extent compressed to decide whether the whole is worth compressing (its start). */
export const COMPRESSION_SAMPLE_BYTES = 64 * 1024

/** An extent is stored compressed only if its sample, and then the whole, shrink to at most this fraction. */
export const COMPRESSION_RATIO_MAX = 0.85

/** Extents smaller than this are stored raw: a few hundred bytes saved are not worth a codec. */
export const COMPRESSION_BYTES_MIN = 4 * 1024

export function isExtentCodec (value: unknown): value is ExtentCodec {
  return value === 'lz4' || value === 'zstd'
}

export function isCompressionSetting (value: unknown): value is CompressionSetting {
  return value === 'off' || isExtentCodec(value)
}

interface Lz4 {
  compressSync: (data: Buffer) => Buffer
  uncompressSync: (data: Uint8Array) => Buffer
}

interface ZstdBinding {
  CCtx: new () => { setParameter: (param: number, value: number) => void, compress2: (dst: Uint8Array, src: Uint8Array) => number }
  DCtx: new () => { decompress: (dst: Uint8Array, src: Uint8Array) => number }
  CParameter: { compressionLevel: number }
  compressBound: (size: number) => number
}

// The native modules load on first use, so a process that never codes an extent (a CLI command)
// never pays for them. One context each, reused: every call below is synchronous.
const require = createRequire(import.meta.url)
let lz4: Lz4 | undefined
let zstdCompress: ((src: Uint8Array) => Uint8Array) | undefined
let zstdDecompress: ((dst: Uint8Array, src: Uint8Array) => number) | undefined

function loadLz4 (): Lz4 {
  lz4 ??= require('lz4-napi') as Lz4
  return lz4
}

function loadZstd (): void {
  if (zstdCompress !== undefined && zstdDecompress !== undefined) return
  const binding = require('zstd-napi/binding') as ZstdBinding
  const cctx = new binding.CCtx()
  cctx.setParameter(binding.CParameter.compressionLevel, ZSTD_LEVEL)
  const dctx = new binding.DCtx()
  // compressed into one scratch buffer, kept (it grows to the bound of the largest extent, ~4 MiB):
  // a new one per call was that much more external memory for V8 to collect after every extent
  let scratch = new Uint8Array(0)
  zstdCompress = (src) => {
    const bound = binding.compressBound(src.byteLength)
    if (scratch.byteLength < bound) scratch = new Uint8Array(bound)
    const n = cctx.compress2(scratch, src)
    // a copy of the right size, of its own memory: the result is held while replicas are written
    return scratch.slice(0, n)
  }
  zstdDecompress = (dst, src) => dctx.decompress(dst, src)
}

function asBuffer (bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/** `bytes` encoded with `codec` (a new buffer; `bytes` is not kept). */
export function encodeExtent (codec: ExtentCodec, bytes: Uint8Array): Uint8Array {
  if (codec === 'lz4') return loadLz4().compressSync(asBuffer(bytes))
  if (codec === 'zstd') {
    loadZstd()
    return (zstdCompress as (src: Uint8Array) => Uint8Array)(bytes)
  }
  throw new InvalidArgumentError(`unknown extent codec ${JSON.stringify(codec)}`, { codec })
}

/**
 * The logical bytes of `extent`, stored as `stored` with `codec`, which must decode to exactly
 * `extent.size` bytes. Never allocates more than that whatever `stored` claims (the input may come
 * from a damaged disk or a peer): undecodable bytes, or another length, are CorruptExtent (naming
 * `extent.checksum` as expected when given, and `details`). It checks lengths, not checksums: the
 * caller verifies the decoded bytes against the extent's checksum. `into`: memory of at least
 * `size` bytes zstd decodes into (its start is the answer) instead of a new buffer.
 */
export function decodeExtent (extent: { id: string, size: number, checksum?: string }, codec: ExtentCodec, stored: Uint8Array, details: Record<string, unknown> = {},
  into?: Uint8Array): Uint8Array {
  const { id, size } = extent
  const corrupt = (reason: string): CorruptExtentError =>
    new CorruptExtentError(id, extent.checksum ?? `${size} bytes of ${codec}`, 'undecodable', { ...details, codec, storedSize: stored.byteLength, reason })
  if (codec === 'lz4') {
    // lz4-napi allocates what the 4-byte prefix says: check it against the size first
    if (stored.byteLength < 4) throw corrupt('the lz4 bytes are shorter than their size prefix')
    const claimed = new DataView(stored.buffer, stored.byteOffset, 4).getUint32(0, true)
    if (claimed !== size) throw corrupt(`the lz4 bytes claim ${claimed} decoded bytes`)
    let out: Buffer
    try {
      out = loadLz4().uncompressSync(stored)
    } catch (err) {
      throw corrupt(`lz4: ${(err as Error)?.message}`)
    }
    if (out.byteLength !== size) throw corrupt(`lz4 decoded ${out.byteLength} bytes`)
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
  }
  if (codec === 'zstd') {
    loadZstd()
    // not zero-filled: every byte is written, or the call fails and `out` is dropped
    const out = into !== undefined && into.byteLength >= size ? into.subarray(0, size) : new Uint8Array(Buffer.allocUnsafeSlow(size).buffer, 0, size)
    let n: number
    try {
      // fails rather than write past `out` when the frames hold more
      n = (zstdDecompress as (dst: Uint8Array, src: Uint8Array) => number)(out, stored)
    } catch (err) {
      throw corrupt(`zstd: ${(err as Error)?.message}`)
    }
    if (n !== size) throw corrupt(`zstd decoded ${n} bytes`)
    return out
  }
  throw corrupt('unknown codec')
}

/** How a copy of an extent travels or is stored: absent codec means the logical bytes themselves. */
export interface ExtentEncoding {
  codec?: ExtentCodec
  /** Length of the encoded bytes; present exactly when `codec` is. */
  storedSize?: number
}

/** What `compressExtent` decided: the bytes to store and send, and their codec (none: raw). */
export interface EncodedExtent {
  codec?: ExtentCodec
  /** The encoded bytes, or the logical bytes themselves (the same buffer) when raw. */
  bytes: Uint8Array
}

/**
 * The form extent bytes are stored and sent in under `setting`: raw when compression is off, the
 * extent is smaller than COMPRESSION_BYTES_MIN, its first COMPRESSION_SAMPLE_BYTES do not shrink to
 * COMPRESSION_RATIO_MAX, or (rarely, when the start was not typical) the whole does not; else
 * encoded with the setting's codec. Incompressible extents cost one sample (about 0.1 ms), not a
 * whole compression.
 */
export function compressExtent (setting: CompressionSetting, bytes: Uint8Array): EncodedExtent {
  const codec = compressionCandidate(setting, bytes)
  return codec === undefined ? { bytes } : compressWhole(codec, bytes)
}

/**
 * The codec `bytes` should be tried with whole under `setting`, or undefined when they stay raw
 * (compression off, too small, or their first COMPRESSION_SAMPLE_BYTES do not shrink enough).
 */
export function compressionCandidate (setting: CompressionSetting, bytes: Uint8Array): ExtentCodec | undefined {
  if (setting === 'off' || bytes.byteLength < COMPRESSION_BYTES_MIN) return undefined
  if (bytes.byteLength > COMPRESSION_SAMPLE_BYTES) {
    const sample = bytes.subarray(0, COMPRESSION_SAMPLE_BYTES)
    if (encodeExtent(setting, sample).byteLength > COMPRESSION_RATIO_MAX * sample.byteLength) return undefined
  }
  return setting
}

/** `bytes` compressed whole with `codec`, or raw (the same buffer) when they do not shrink to COMPRESSION_RATIO_MAX. */
export function compressWhole (codec: ExtentCodec, bytes: Uint8Array): EncodedExtent {
  const encoded = encodeExtent(codec, bytes)
  if (encoded.byteLength > COMPRESSION_RATIO_MAX * bytes.byteLength) return { bytes }
  return { codec, bytes: encoded }
}

/** Whether `encoded` (with `codec`) decodes to exactly `bytes`. */
export function decodesTo (id: string, codec: ExtentCodec, encoded: Uint8Array, bytes: Uint8Array): boolean {
  try {
    const back = decodeExtent({ id, size: bytes.byteLength }, codec, encoded)
    return Buffer.from(back.buffer, back.byteOffset, back.byteLength).equals(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))
  } catch {
    return false
  }
}

/** What `proveEncoding` decided: as EncodedExtent, and the codec whose output was refused, if one was. */
export interface ProvenEncoding extends EncodedExtent {
  /** The codec compressed `bytes` to something that does not decode back to them (so they stay raw). */
  refused?: ExtentCodec
}

/**
 * Compresses `bytes` whole with `codec` (compressionCandidate chose it) and proves the result: it
 * must decode to exactly `bytes`, else they stay raw (`refused` says which codec failed). Copy
 * holders store what the coordinator sends without decoding it, so this is where an encoding is
 * checked, once.
 */
export function proveEncoding (id: string, codec: ExtentCodec, bytes: Uint8Array): ProvenEncoding {
  const out = compressWhole(codec, bytes)
  if (out.codec === undefined || decodesTo(id, out.codec, out.bytes, bytes)) return out
  return { bytes, refused: out.codec }
}
