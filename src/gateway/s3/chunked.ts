/**
 * A request body as verified bytes: the aws-chunked framing removed (signed chunks of
 * STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER], unsigned chunks of STREAMING-UNSIGNED-PAYLOAD-TRAILER),
 * and every promise the request made about its bytes checked: chunk and trailer signatures, the
 * payload SHA-256, Content-MD5, x-amz-checksum-* headers and trailers, the declared length.
 *
 * Bytes are yielded as they arrive, except that a signed chunk is held (≤ CHUNK_BYTES_MAX) until its
 * signature is verified, so no byte of a chunk with a bad signature is ever yielded. Checks that need
 * the whole body fail by throwing instead of returning: a caller commits only when the generator
 * returns normally.
 *
 * aws-chunked, as clients send it:
 *   signed:   `<hex size>;chunk-signature=<sig>\r\n<data>\r\n` … `0;chunk-signature=<sig>\r\n`
 *             then `\r\n` (no trailer) or trailer lines, `x-amz-trailer-signature:<sig>\r\n`, `\r\n`
 *   unsigned: `<hex size>\r\n<data>\r\n` … `0\r\n`, trailer lines `name:value\r\n`, `\r\n`
 * A chunk's signature is HMAC(kSigning, "AWS4-HMAC-SHA256-PAYLOAD\n" date "\n" scope "\n" previous
 * signature "\n" sha256("") "\n" sha256(data)), the first previous signature being the request's;
 * the trailer's is HMAC(kSigning, "AWS4-HMAC-SHA256-TRAILER\n" date "\n" scope "\n" final chunk's
 * signature "\n" sha256 of the trailer lines as `name:value\n`).
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { s3Error } from './errors.js'
import { EMPTY_SHA256_HEX, hmac, type Authenticated, type PayloadMode, type SigningContext, type SigV4Request } from './sigv4.js'
import { CHECKSUM_DIGEST_BYTES, checksumAlgorithmOf, checksumHeaderName, createHasher, type ChecksumAlgorithm, type Hasher } from './checksums.js'

export type { ChecksumAlgorithm } from './checksums.js'

/** Bytes of a chunk header line (size, extensions, signature) and of a trailer line. */
export const CHUNK_LINE_BYTES_MAX = 4 * 1024
/** Bytes of one chunk's data (clients send 64 KiB to 1 MiB; a signed chunk is held whole until verified). */
export const CHUNK_BYTES_MAX = 16 * 1024 * 1024
/** Trailer lines after the final chunk (the signature included). */
export const TRAILERS_MAX = 8

export interface BodyChecks {
  payload: PayloadMode
  signing: SigningContext
  /** x-amz-decoded-content-length for aws-chunked bodies, else Content-Length: the exact byte count expected. */
  decodedLength: number | undefined
  /** base64 from Content-MD5 → BadDigest on mismatch (InvalidDigest if malformed). */
  contentMd5?: string
  /** x-amz-checksum-* headers (at most one). */
  checksumHeaders: Array<{ algorithm: ChecksumAlgorithm, expectedBase64: string }>
  /** From x-amz-trailer (lower-case), e.g. ['x-amz-checksum-crc32']. */
  trailerNames: string[]
  /** x-amz-sdk-checksum-algorithm: computed (to echo back) even when no header or trailer carries it. */
  sdkAlgorithm?: ChecksumAlgorithm
}

/** What a body hashed to, once verifiedBody has returned. */
export interface BodyDigests {
  /** MD5 of the content, lower-case hex (the ETag of a single-part object). */
  md5Hex: string
  /** base64 of each checksum the request asked for (header, trailer or x-amz-sdk-checksum-algorithm). */
  checksums: Partial<Record<ChecksumAlgorithm, string>>
  /** Content bytes. */
  length: number
}

/** The body checks a request asks for, read from its headers. Throws an S3Error on a malformed header. */
export function bodyChecks (req: SigV4Request, auth: Authenticated): BodyChecks {
  const h = req.headers
  const streaming = auth.payload.kind === 'streaming-signed' || auth.payload.kind === 'streaming-unsigned-trailer'
  let decodedLength: number | undefined
  if (streaming) {
    const v = first(h['x-amz-decoded-content-length'])
    if (v === undefined) throw s3Error('MissingContentLength', 'You must provide the x-amz-decoded-content-length HTTP header with an aws-chunked body.')
    decodedLength = parseLength(v, 'x-amz-decoded-content-length')
  } else {
    const v = first(h['content-length'])
    if (v !== undefined) decodedLength = parseLength(v, 'Content-Length')
  }

  let contentMd5: string | undefined
  const md5 = first(h['content-md5'])
  if (md5 !== undefined) {
    contentMd5 = md5.trim()
    if (!/^[A-Za-z0-9+/]{22}==$/.test(contentMd5)) throw s3Error('InvalidDigest', 'The Content-MD5 you specified was invalid.')
  }

  const checksumHeaders: BodyChecks['checksumHeaders'] = []
  for (const name of Object.keys(h)) {
    const n = name.toLowerCase()
    if (!n.startsWith('x-amz-checksum-') || h[name] === undefined) continue
    // headers of the same family that are not a body's checksum
    if (n === 'x-amz-checksum-type' || n === 'x-amz-checksum-algorithm' || n === 'x-amz-checksum-mode') continue
    const algorithm = checksumAlgorithmOf(n)
    if (algorithm === undefined) throw s3Error('InvalidRequest', `The checksum algorithm of ${n} is not supported.`)
    const value = (first(h[name]) ?? '').trim()
    if (!isBase64Of(value, CHECKSUM_DIGEST_BYTES[algorithm])) throw s3Error('InvalidRequest', `Value for ${n} header is invalid.`)
    checksumHeaders.push({ algorithm, expectedBase64: value })
  }

  const trailerNames: string[] = []
  const trailerHeader = first(h['x-amz-trailer'])
  if (trailerHeader !== undefined) {
    for (const part of trailerHeader.split(',')) {
      const n = part.trim().toLowerCase()
      if (n === '') continue
      if (checksumAlgorithmOf(n) === undefined || !n.startsWith('x-amz-checksum-')) {
        throw s3Error('InvalidRequest', `The trailer ${n.slice(0, 64)} is not supported; only x-amz-checksum-* trailers are.`)
      }
      if (!trailerNames.includes(n)) trailerNames.push(n)
    }
    const trailerMode = auth.payload.kind === 'streaming-unsigned-trailer' || (auth.payload.kind === 'streaming-signed' && auth.payload.trailer)
    if (trailerNames.length > 0 && !trailerMode) {
      throw s3Error('InvalidRequest', 'x-amz-trailer needs x-amz-content-sha256 STREAMING-UNSIGNED-PAYLOAD-TRAILER or STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER.')
    }
  }
  if (checksumHeaders.length + trailerNames.length > 1) {
    throw s3Error('InvalidRequest', 'Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.')
  }

  let sdkAlgorithm: ChecksumAlgorithm | undefined
  const sdk = first(h['x-amz-sdk-checksum-algorithm'])
  if (sdk !== undefined) {
    sdkAlgorithm = checksumAlgorithmOf(sdk.trim())
    if (sdkAlgorithm === undefined) throw s3Error('InvalidRequest', `Checksum algorithm ${sdk.slice(0, 32)} is not supported.`)
    const declared = checksumHeaders[0]?.algorithm ?? (trailerNames[0] !== undefined ? checksumAlgorithmOf(trailerNames[0]) : undefined)
    if (declared !== undefined && declared !== sdkAlgorithm) {
      throw s3Error('InvalidRequest', `Value for x-amz-sdk-checksum-algorithm header is invalid: the request carries a ${declared} checksum.`)
    }
  }

  return {
    payload: auth.payload,
    signing: auth.signing,
    decodedLength,
    ...(contentMd5 !== undefined ? { contentMd5 } : {}),
    checksumHeaders,
    trailerNames,
    ...(sdkAlgorithm !== undefined ? { sdkAlgorithm } : {})
  }
}

/** Digests of bodies whose generator returned normally. */
const finished = new WeakMap<object, BodyDigests>()

/**
 * The request body's content bytes, decoded and verified (see the file comment). Throws an S3Error
 * instead of returning when anything fails: SignatureDoesNotMatch (a chunk or the trailer),
 * XAmzContentSHA256Mismatch, BadDigest (Content-MD5, a checksum header or trailer), IncompleteBody
 * (truncated, or not the declared length), InvalidRequest (malformed framing, bytes after the end).
 *
 * When it throws or is stopped early it calls `return()` on `raw`'s iterator, as `for await` does.
 * For a node IncomingMessage that destroys the socket unless the iterable is
 * `req.iterator({ destroyOnReturn: false })`, which leaves the rest for the caller to drain.
 */
export function verifiedBody (raw: AsyncIterable<Uint8Array>, checks: BodyChecks): AsyncGenerator<Uint8Array> {
  const gen: AsyncGenerator<Uint8Array> = run(raw, checks, (d) => { finished.set(gen, d) })
  return gen
}

/** After verifiedBody's generator returned normally: the digests it computed; undefined before, or after a failure. */
export function digestsOf (gen: AsyncGenerator<Uint8Array>): BodyDigests | undefined {
  return finished.get(gen)
}

async function * run (raw: AsyncIterable<Uint8Array>, checks: BodyChecks, done: (d: BodyDigests) => void): AsyncGenerator<Uint8Array> {
  const digests = new Digests(checks)
  const reader = new ByteReader(raw[Symbol.asyncIterator]())
  try {
    let trailers: Map<string, string> | undefined
    if (checks.payload.kind === 'sha256' || checks.payload.kind === 'unsigned') {
      for (;;) {
        const piece = await reader.next()
        if (piece === undefined) break
        digests.add(piece.byteLength)
        digests.update(piece)
        yield piece
      }
    } else {
      const signed = checks.payload.kind === 'streaming-signed'
      const withTrailer = checks.payload.kind === 'streaming-unsigned-trailer' || (checks.payload.kind === 'streaming-signed' && checks.payload.trailer)
      let previous = checks.signing.seedSignature
      for (;;) {
        const line = await reader.line(CHUNK_LINE_BYTES_MAX, 'a chunk header')
        if (line === undefined) throw s3Error('IncompleteBody', 'The body ended before its final chunk.')
        const { size, signature } = parseChunkHeader(line, signed)
        digests.add(size)
        if (signature !== undefined) {
          // held until verified: nothing of a chunk with a bad signature is yielded
          const parts: Buffer[] = []
          const sha = createHash('sha256')
          for (let left = size; left > 0;) {
            const p = await reader.some(left)
            parts.push(p)
            sha.update(p)
            left -= p.byteLength
          }
          const stringToSign = `AWS4-HMAC-SHA256-PAYLOAD\n${checks.signing.amzDate}\n${checks.signing.scope}\n${previous}\n${EMPTY_SHA256_HEX}\n${sha.digest('hex')}`
          checkSignature(checks.signing, stringToSign, signature, 'chunk')
          previous = signature
          for (const p of parts) {
            digests.update(p)
            yield p
          }
        } else {
          for (let left = size; left > 0;) {
            const p = await reader.some(left)
            left -= p.byteLength
            digests.update(p)
            yield p
          }
        }
        if (size === 0) break
        const end = await reader.line(2, 'the end of a chunk')
        if (end !== '') throw s3Error('InvalidRequest', 'A chunk\'s data is not followed by CRLF (its size does not match).')
      }
      if (withTrailer) {
        trailers = await readTrailers(reader, checks, signed, previous)
      } else {
        // the final chunk's CRLF; a body that ends right after the final chunk line is accepted
        const end = await reader.line(2, 'the end of the body')
        if (end !== undefined && end !== '') throw s3Error('InvalidRequest', 'Unexpected bytes after the final chunk.')
      }
      if (!await reader.atEnd()) throw s3Error('InvalidRequest', 'Unexpected bytes after the final chunk.')
    }
    done(digests.finish(checks, trailers))
  } finally {
    reader.close()
  }
}

/** `<hex size>[;chunk-signature=<sig>][;other extensions]`; a signed body needs the signature. */
function parseChunkHeader (line: string, signed: boolean): { size: number, signature: string | undefined } {
  const parts = line.split(';')
  const sizeText = parts[0].trim()
  if (!/^[0-9a-fA-F]{1,8}$/.test(sizeText)) throw s3Error('InvalidRequest', `Malformed chunk header: the size '${sizeText.slice(0, 16)}' is not hex.`)
  const size = parseInt(sizeText, 16)
  if (size > CHUNK_BYTES_MAX) throw s3Error('InvalidRequest', `A chunk is larger than ${CHUNK_BYTES_MAX} bytes.`)
  if (!signed) return { size, signature: undefined }
  const ext = parts.slice(1).map((p) => p.trim()).find((p) => p.startsWith('chunk-signature='))
  const signature = ext?.slice('chunk-signature='.length)
  if (signature === undefined || !/^[0-9a-fA-F]{64}$/.test(signature)) {
    throw s3Error('InvalidRequest', 'Malformed chunk header: the chunk-signature is missing or not 64 hex digits.')
  }
  return { size, signature: signature.toLowerCase() }
}

/** Reads the trailer lines up to the empty line; verifies the trailer signature of a signed body. */
async function readTrailers (reader: ByteReader, checks: BodyChecks, signed: boolean, previous: string): Promise<Map<string, string>> {
  const trailers = new Map<string, string>()
  let signature: string | undefined
  for (let n = 0; ; n++) {
    const line = await reader.line(CHUNK_LINE_BYTES_MAX, 'a trailer')
    // a body that ends right after the final chunk line carries no trailer (the SDK sends that when it
    // computes no checksum); once a trailer came, the empty line must too
    if (line === undefined && n > 0) throw s3Error('IncompleteBody', 'The body ended inside its trailer.')
    if (line === undefined || line === '') break
    if (n >= TRAILERS_MAX) throw s3Error('InvalidRequest', `More than ${TRAILERS_MAX} trailer lines.`)
    if (signature !== undefined) throw s3Error('InvalidRequest', 'A trailer follows x-amz-trailer-signature.')
    const colon = line.indexOf(':')
    if (colon <= 0) throw s3Error('InvalidRequest', 'Malformed trailer: a line is not name:value.')
    const name = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    if (name === 'x-amz-trailer-signature') {
      if (!signed) throw s3Error('InvalidRequest', 'An unsigned body carries x-amz-trailer-signature.')
      if (!/^[0-9a-fA-F]{64}$/.test(value)) throw s3Error('InvalidRequest', 'Malformed trailer: x-amz-trailer-signature is not 64 hex digits.')
      signature = value.toLowerCase()
      continue
    }
    if (!checks.trailerNames.includes(name)) throw s3Error('InvalidRequest', `The trailer ${name.slice(0, 64)} was not declared in x-amz-trailer.`)
    if (trailers.has(name)) throw s3Error('InvalidRequest', `The trailer ${name} appears twice.`)
    trailers.set(name, value)
  }
  for (const name of checks.trailerNames) {
    if (!trailers.has(name)) throw s3Error('InvalidRequest', `The trailer ${name} declared in x-amz-trailer is missing.`)
  }
  if (signed) {
    if (signature === undefined) {
      if (trailers.size > 0) throw s3Error('InvalidRequest', 'The trailer has no x-amz-trailer-signature.')
    } else {
      const canonical = [...trailers.keys()].sort().map((k) => `${k}:${trailers.get(k) ?? ''}\n`).join('')
      const hash = createHash('sha256').update(canonical, 'latin1').digest('hex')
      checkSignature(checks.signing, `AWS4-HMAC-SHA256-TRAILER\n${checks.signing.amzDate}\n${checks.signing.scope}\n${previous}\n${hash}`, signature, 'trailer')
    }
  }
  return trailers
}

function checkSignature (signing: SigningContext, stringToSign: string, provided: string, what: 'chunk' | 'trailer'): void {
  const expected = hmac(signing.signingKey, stringToSign)
  if (!timingSafeEqual(expected, Buffer.from(provided, 'hex'))) {
    throw s3Error('SignatureDoesNotMatch', `The ${what} signature we calculated does not match the signature you provided.`, {
      fields: { StringToSign: stringToSign, SignatureProvided: provided }
    })
  }
}

/** The running digests of a body and its length. */
class Digests {
  readonly #md5 = createHasher('MD5')
  readonly #sha256: Hasher | undefined
  readonly #checksums = new Map<ChecksumAlgorithm, Hasher>()
  readonly #decodedLength: number | undefined
  #length = 0

  constructor (checks: BodyChecks) {
    this.#sha256 = checks.payload.kind === 'sha256' ? createHasher('SHA256') : undefined
    this.#decodedLength = checks.decodedLength
    const wanted: ChecksumAlgorithm[] = checks.checksumHeaders.map((c) => c.algorithm)
    for (const t of checks.trailerNames) {
      const a = checksumAlgorithmOf(t)
      if (a !== undefined) wanted.push(a)
    }
    if (checks.sdkAlgorithm !== undefined) wanted.push(checks.sdkAlgorithm)
    for (const a of wanted) if (!this.#checksums.has(a)) this.#checksums.set(a, createHasher(a))
  }

  /** Counts `n` more content bytes before they are read: past the declared length is refused at once. */
  add (n: number): void {
    this.#length += n
    if (this.#decodedLength !== undefined && this.#length > this.#decodedLength) {
      throw s3Error('IncompleteBody', `The body is longer than the ${this.#decodedLength} bytes declared.`)
    }
  }

  update (data: Uint8Array): void {
    this.#md5.update(data)
    this.#sha256?.update(data)
    for (const h of this.#checksums.values()) h.update(data)
  }

  /** The final checks; throws on the first that fails. */
  finish (checks: BodyChecks, trailers: Map<string, string> | undefined): BodyDigests {
    if (checks.decodedLength !== undefined && this.#length !== checks.decodedLength) {
      throw s3Error('IncompleteBody', `You did not provide the number of bytes specified: ${checks.decodedLength} declared, ${this.#length} sent.`)
    }
    if (checks.payload.kind === 'sha256' && this.#sha256 !== undefined) {
      const got = this.#sha256.digestHex()
      if (got !== checks.payload.sha256Hex) {
        throw s3Error('XAmzContentSHA256Mismatch', 'The provided \'x-amz-content-sha256\' header does not match what was computed.', {
          fields: { ClientComputedContentSHA256: checks.payload.sha256Hex, S3ComputedContentSHA256: got }
        })
      }
    }
    const md5 = this.#md5.digest()
    if (checks.contentMd5 !== undefined) {
      const got = Buffer.from(md5).toString('base64')
      if (got !== checks.contentMd5) {
        throw s3Error('BadDigest', 'The Content-MD5 you specified did not match what we received.', {
          fields: { ExpectedDigest: checks.contentMd5, CalculatedDigest: got }
        })
      }
    }
    const checksums: Partial<Record<ChecksumAlgorithm, string>> = {}
    for (const [a, h] of this.#checksums) checksums[a] = h.digestBase64()
    const expect = (algorithm: ChecksumAlgorithm, expected: string): void => {
      if (checksums[algorithm] !== expected) {
        throw s3Error('BadDigest', `The ${algorithm} you specified did not match the calculated checksum.`, {
          fields: { Algorithm: algorithm, ExpectedChecksum: expected, CalculatedChecksum: checksums[algorithm] ?? '' }
        })
      }
    }
    for (const c of checks.checksumHeaders) expect(c.algorithm, c.expectedBase64)
    for (const [name, value] of trailers ?? []) {
      const algorithm = checksumAlgorithmOf(name)
      if (algorithm === undefined) continue
      if (!isBase64Of(value, CHECKSUM_DIGEST_BYTES[algorithm])) throw s3Error('InvalidRequest', `Value for ${checksumHeaderName(algorithm)} trailer is invalid.`)
      expect(algorithm, value)
    }
    return { md5Hex: Buffer.from(md5).toString('hex'), checksums, length: this.#length }
  }
}

/**
 * Pull-based reading of an async byte stream: lines (header and trailer lines) and runs of data.
 * Data is handed out as views of the pieces received, never copied; only a line split across pieces
 * is joined.
 */
class ByteReader {
  readonly #it: AsyncIterator<Uint8Array>
  /** Unread bytes are #buf[#pos..]. */
  #buf: Buffer = Buffer.alloc(0)
  #pos = 0
  #ended = false

  constructor (it: AsyncIterator<Uint8Array>) {
    this.#it = it
  }

  /** Pulls one more piece; false at the end of the stream. Unread bytes are kept in front of it. */
  async #fill (): Promise<boolean> {
    if (this.#ended) return false
    for (;;) {
      const r = await this.#it.next()
      if (r.done === true) {
        this.#ended = true
        return false
      }
      if (r.value.byteLength === 0) continue
      const piece = Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength)
      this.#buf = this.#pos < this.#buf.length ? Buffer.concat([this.#buf.subarray(this.#pos), piece]) : piece
      this.#pos = 0
      return true
    }
  }

  /** The next bytes available, however many; undefined at the end. */
  async next (): Promise<Buffer | undefined> {
    if (this.#pos >= this.#buf.length && !await this.#fill()) return undefined
    const out = this.#buf.subarray(this.#pos)
    this.#pos = this.#buf.length
    return out
  }

  /** 1 to `n` (> 0) bytes; IncompleteBody if the stream ends first. */
  async some (n: number): Promise<Buffer> {
    if (this.#pos >= this.#buf.length && !await this.#fill()) throw s3Error('IncompleteBody', 'The body ended inside a chunk.')
    const take = Math.min(n, this.#buf.length - this.#pos)
    const out = this.#buf.subarray(this.#pos, this.#pos + take)
    this.#pos += take
    return out
  }

  /**
   * A line without its terminator (CRLF, or a bare LF), at most `bytesMax` bytes, as latin1;
   * undefined if the stream ends before any byte of it; IncompleteBody if it ends inside it.
   */
  async line (bytesMax: number, what: string): Promise<string | undefined> {
    let from = this.#pos
    for (;;) {
      const nl = this.#buf.indexOf(0x0a, from)
      if (nl >= 0) {
        const end = nl > this.#pos && this.#buf[nl - 1] === 0x0d ? nl - 1 : nl
        if (end - this.#pos > bytesMax) throw s3Error('InvalidRequest', `Malformed body: ${what} is longer than ${bytesMax} bytes.`)
        const text = this.#buf.toString('latin1', this.#pos, end)
        this.#pos = nl + 1
        return text
      }
      const pending = this.#buf.length - this.#pos
      // bytesMax + CR + LF: a longer line cannot end well
      if (pending > bytesMax + 1) throw s3Error('InvalidRequest', `Malformed body: ${what} is longer than ${bytesMax} bytes.`)
      if (!await this.#fill()) {
        if (pending === 0) return undefined
        throw s3Error('IncompleteBody', `The body ended inside ${what}.`)
      }
      from = this.#pos + pending
    }
  }

  /** True when no byte is left (pulls to find out). */
  async atEnd (): Promise<boolean> {
    return this.#pos >= this.#buf.length && !await this.#fill()
  }

  /** Ends the source early (return()) unless it was read to its end. */
  close (): void {
    if (this.#ended) return
    this.#ended = true
    void this.#it.return?.()?.catch(() => {})
  }
}

function first (v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v
}

function parseLength (v: string, name: string): number {
  const t = v.trim()
  if (!/^[0-9]{1,16}$/.test(t) || Number(t) > Number.MAX_SAFE_INTEGER) throw s3Error('InvalidArgument', `${name} must be a number of bytes.`)
  return Number(t)
}

/** Canonical base64 (with padding) of exactly `bytes` bytes. */
function isBase64Of (value: string, bytes: number): boolean {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(value) || value.length % 4 !== 0) return false
  const decoded = Buffer.from(value, 'base64')
  return decoded.byteLength === bytes && decoded.toString('base64') === value
}
