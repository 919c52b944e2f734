/**
 * The checksums S3 clients send and expect back: CRC32, CRC32C, CRC64NVME, SHA-1, SHA-256 (the
 * `x-amz-checksum-*` headers and trailers, base64 of the digest bytes, CRCs big-endian) and MD5
 * (Content-MD5 in base64, the ETag in hex). Each is an incremental hasher, so a body is checked as
 * it streams and never held whole.
 */
import { createHash, type Hash } from 'node:crypto'
import { crc32 as zlibCrc32 } from 'node:zlib'

/** The algorithms of `x-amz-checksum-<lower-case name>` and `x-amz-sdk-checksum-algorithm`. */
export type ChecksumAlgorithm = 'CRC32' | 'CRC32C' | 'CRC64NVME' | 'SHA1' | 'SHA256'

export const CHECKSUM_ALGORITHMS: readonly ChecksumAlgorithm[] = ['CRC32', 'CRC32C', 'CRC64NVME', 'SHA1', 'SHA256']

/** Bytes of each algorithm's digest: a base64 value of another length is malformed. */
export const CHECKSUM_DIGEST_BYTES: Readonly<Record<ChecksumAlgorithm | 'MD5', number>> = {
  CRC32: 4, CRC32C: 4, CRC64NVME: 8, SHA1: 20, SHA256: 32, MD5: 16
}

/** An incremental digest. After a `digest*()` call the hasher is spent: `update` must not be called again. */
export interface Hasher {
  update: (data: Uint8Array) => void
  /** The digest bytes (CRCs big-endian, as S3 encodes them). */
  digest: () => Uint8Array
  /** base64 of the digest bytes: the value of `x-amz-checksum-*` and Content-MD5. */
  digestBase64: () => string
  /** lower-case hex of the digest bytes: how S3 writes an MD5 ETag and a payload SHA-256. */
  digestHex: () => string
}

/** The header (and trailer) name of an algorithm's checksum. */
export function checksumHeaderName (algorithm: ChecksumAlgorithm): string {
  return `x-amz-checksum-${algorithm.toLowerCase()}`
}

/** The algorithm named by `x-amz-checksum-<name>` or by a value of x-amz-sdk-checksum-algorithm (any case); undefined if none. */
export function checksumAlgorithmOf (name: string): ChecksumAlgorithm | undefined {
  const n = name.toLowerCase()
  const bare = n.startsWith('x-amz-checksum-') ? n.slice('x-amz-checksum-'.length) : n
  return CHECKSUM_ALGORITHMS.find((a) => a.toLowerCase() === bare)
}

/** A hasher of one algorithm. */
export function createHasher (algorithm: ChecksumAlgorithm | 'MD5'): Hasher {
  switch (algorithm) {
    case 'CRC32': return new Crc32Hasher()
    case 'CRC32C': return new Crc32cHasher()
    case 'CRC64NVME': return new Crc64NvmeHasher()
    case 'SHA1': return new NodeHasher(createHash('sha1'))
    case 'SHA256': return new NodeHasher(createHash('sha256'))
    case 'MD5': return new NodeHasher(createHash('md5'))
  }
}

/** One-shot digest of `data` in base64 (convenient for tests and small bodies). */
export function checksumBase64 (algorithm: ChecksumAlgorithm | 'MD5', data: Uint8Array): string {
  const h = createHasher(algorithm)
  h.update(data)
  return h.digestBase64()
}

abstract class BaseHasher implements Hasher {
  abstract update (data: Uint8Array): void
  abstract digest (): Uint8Array
  digestBase64 (): string { return Buffer.from(this.digest()).toString('base64') }
  digestHex (): string { return Buffer.from(this.digest()).toString('hex') }
}

class NodeHasher extends BaseHasher {
  readonly #hash: Hash
  constructor (hash: Hash) { super(); this.#hash = hash }
  update (data: Uint8Array): void { this.#hash.update(data) }
  digest (): Uint8Array { return this.#hash.digest() }
}

function be32 (v: number): Uint8Array {
  const out = new Uint8Array(4)
  new DataView(out.buffer).setUint32(0, v >>> 0)
  return out
}

/** CRC-32 (ISO-HDLC, zlib's): node's zlib.crc32 carries the running value. */
class Crc32Hasher extends BaseHasher {
  #crc = 0
  update (data: Uint8Array): void { this.#crc = zlibCrc32(data, this.#crc) }
  digest (): Uint8Array { return be32(this.#crc) }
}

/**
 * CRC-32C (Castagnoli): reflected polynomial 0x82F63B78, init and xorout 0xFFFFFFFF; check value of
 * "123456789" is 0xE3069283. Slicing-by-4 tables: T[0] is the byte-wise table, T[k][i] advances
 * T[k-1][i] by one more zero byte.
 */
const CRC32C_TABLES: Uint32Array[] = (() => {
  const t0 = new Uint32Array(256)
  for (let i = 0; i < 256; i++) {
    let c = i
    for (let k = 0; k < 8; k++) c = (c & 1) !== 0 ? (c >>> 1) ^ 0x82F63B78 : c >>> 1
    t0[i] = c >>> 0
  }
  const tables = [t0]
  for (let k = 1; k < 4; k++) {
    const prev = tables[k - 1]
    const t = new Uint32Array(256)
    for (let i = 0; i < 256; i++) t[i] = ((prev[i] >>> 8) ^ t0[prev[i] & 0xff]) >>> 0
    tables.push(t)
  }
  return tables
})()

class Crc32cHasher extends BaseHasher {
  /** The running register, already inverted (init 0xFFFFFFFF); digest() applies xorout. */
  #crc = 0xFFFFFFFF
  update (data: Uint8Array): void {
    const [t0, t1, t2, t3] = CRC32C_TABLES
    let c = this.#crc
    let i = 0
    const end4 = data.length - (data.length % 4)
    for (; i < end4; i += 4) {
      c ^= data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
      c = t3[c & 0xff] ^ t2[(c >>> 8) & 0xff] ^ t1[(c >>> 16) & 0xff] ^ t0[c >>> 24]
    }
    for (; i < data.length; i++) c = (c >>> 8) ^ t0[(c ^ data[i]) & 0xff]
    this.#crc = c >>> 0
  }

  digest (): Uint8Array { return be32(this.#crc ^ 0xFFFFFFFF) }
}

/**
 * CRC-64/NVME: reflected polynomial 0x9A6C9329AC4BC9B5, init and xorout all ones; check value of
 * "123456789" is 0xAE8B14860A799888. The 64-bit register is kept as two 32-bit halves (no BigInt in
 * the loop); the byte-wise table likewise.
 */
const CRC64_LO = new Uint32Array(256)
const CRC64_HI = new Uint32Array(256)
{
  const polyLo = 0xAC4BC9B5
  const polyHi = 0x9A6C9329
  for (let i = 0; i < 256; i++) {
    let lo = i
    let hi = 0
    for (let k = 0; k < 8; k++) {
      const odd = (lo & 1) !== 0
      lo = ((lo >>> 1) | ((hi & 1) << 31)) >>> 0
      hi = hi >>> 1
      if (odd) { lo = (lo ^ polyLo) >>> 0; hi = (hi ^ polyHi) >>> 0 }
    }
    CRC64_LO[i] = lo
    CRC64_HI[i] = hi
  }
}

class Crc64NvmeHasher extends BaseHasher {
  #lo = 0xFFFFFFFF
  #hi = 0xFFFFFFFF
  update (data: Uint8Array): void {
    let lo = this.#lo
    let hi = this.#hi
    for (let i = 0; i < data.length; i++) {
      const idx = (lo ^ data[i]) & 0xff
      lo = ((lo >>> 8) | (hi << 24)) ^ CRC64_LO[idx]
      hi = (hi >>> 8) ^ CRC64_HI[idx]
    }
    this.#lo = lo >>> 0
    this.#hi = hi >>> 0
  }

  digest (): Uint8Array {
    const out = new Uint8Array(8)
    const v = new DataView(out.buffer)
    v.setUint32(0, (this.#hi ^ 0xFFFFFFFF) >>> 0)
    v.setUint32(4, (this.#lo ^ 0xFFFFFFFF) >>> 0)
    return out
  }
}
