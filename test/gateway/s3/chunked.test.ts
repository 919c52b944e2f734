import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createHash, createHmac } from 'node:crypto'
import { crc32 } from 'node:zlib'
import { createServer, request as httpRequest } from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { authenticate, type Authenticated, type PayloadMode, type SigningContext, type SigV4Request } from '../../../src/gateway/s3/sigv4.js'
import { bodyChecks, digestsOf, verifiedBody, type BodyChecks } from '../../../src/gateway/s3/chunked.js'
import { checksumBase64 } from '../../../src/gateway/s3/checksums.js'

const test = suite('gateway/s3/chunked')

const AKID = 'AKIAIOSFODNN7EXAMPLE'
const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'
const T0 = Date.UTC(2013, 4, 24, 0, 0, 0)
const EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
const AMZ_DATE = '20130524T000000Z'
const SCOPE = '20130524/us-east-1/s3/aws4_request'

/** kSigning computed here, independently of sigv4.ts. */
const SIGNING_KEY = ['20130524', 'us-east-1', 's3', 'aws4_request']
  .reduce<Buffer>((k, part) => createHmac('sha256', k).update(part).digest(), Buffer.from('AWS4' + SECRET))

const sha256 = (d: Uint8Array | string): string => createHash('sha256').update(d).digest('hex')
const sign = (s: string): string => createHmac('sha256', SIGNING_KEY).update(s).digest('hex')

function signing (seedSignature: string): SigningContext {
  return { signingKey: SIGNING_KEY, scope: SCOPE, amzDate: AMZ_DATE, seedSignature }
}

/** A seeded generator (mulberry32), so a failing split can be replayed. */
function rng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** `wire` in random slices of 1 byte to 70 KiB (many tiny ones too, to split every line). */
async function * sliced (wire: Uint8Array, seed: number): AsyncGenerator<Uint8Array> {
  const r = rng(seed)
  for (let at = 0; at < wire.length;) {
    const n = r() < 0.5 ? 1 + Math.floor(r() * 8) : 1 + Math.floor(r() * 70 * 1024)
    yield wire.subarray(at, at + n)
    at += n
  }
}

/** Runs a body; what came out before the end, and the S3 error code or 'none'. */
async function drain (gen: AsyncGenerator<Uint8Array>): Promise<{ out: Buffer, code: string }> {
  const parts: Uint8Array[] = []
  try {
    for await (const p of gen) parts.push(Buffer.from(p))
    return { out: Buffer.concat(parts), code: 'none' }
  } catch (err) {
    const e = err as { name?: string, code?: string }
    assert.is(e.name, 'S3Error', String(err))
    return { out: Buffer.concat(parts), code: e.code ?? '?' }
  }
}

function checks (payload: PayloadMode, seed: string, decodedLength: number | undefined, extra: Partial<BodyChecks> = {}): BodyChecks {
  return { payload, signing: signing(seed), decodedLength, checksumHeaders: [], trailerNames: [], ...extra }
}

/** aws-chunked with chunk signatures (and a signed trailer when `trailer` is given), built here. */
function signedWire (chunks: Uint8Array[], seed: string, trailer?: [string, string], corrupt: { sigOf?: number, trailerSig?: boolean } = {}): Buffer {
  const out: Buffer[] = []
  let prev = seed
  for (const [i, c] of [...chunks, new Uint8Array(0)].entries()) {
    let sig = sign(`AWS4-HMAC-SHA256-PAYLOAD\n${AMZ_DATE}\n${SCOPE}\n${prev}\n${EMPTY}\n${sha256(c)}`)
    prev = sig
    if (corrupt.sigOf === i) sig = sig.replace(/^./, (ch) => ch === '0' ? '1' : '0')
    out.push(Buffer.from(`${c.length.toString(16)};chunk-signature=${sig}\r\n`), Buffer.from(c))
    if (c.length > 0) out.push(Buffer.from('\r\n'))
  }
  if (trailer === undefined) {
    out.push(Buffer.from('\r\n'))
  } else {
    const [name, value] = trailer
    let sig = sign(`AWS4-HMAC-SHA256-TRAILER\n${AMZ_DATE}\n${SCOPE}\n${prev}\n${sha256(`${name}:${value}\n`)}`)
    if (corrupt.trailerSig === true) sig = sig.replace(/^./, (ch) => ch === '0' ? '1' : '0')
    out.push(Buffer.from(`${name}:${value}\r\nx-amz-trailer-signature:${sig}\r\n\r\n`))
  }
  return Buffer.concat(out)
}

/** aws-chunked as @aws-sdk/client-s3 streams it (STREAMING-UNSIGNED-PAYLOAD-TRAILER). */
function unsignedWire (chunks: Uint8Array[], trailer?: [string, string]): Buffer {
  const out: Buffer[] = []
  for (const c of chunks) out.push(Buffer.from(`${c.length.toString(16)}\r\n`), Buffer.from(c), Buffer.from('\r\n'))
  out.push(Buffer.from('0\r\n'))
  if (trailer !== undefined) out.push(Buffer.from(`${trailer[0]}:${trailer[1]}\r\n\r\n`))
  return Buffer.concat(out)
}

function pattern (n: number, seed: number): Buffer {
  const r = rng(seed)
  const b = Buffer.alloc(n)
  for (let i = 0; i < n; i++) b[i] = Math.floor(r() * 256)
  return b
}

/** Splits `data` into chunks of `size` (the last shorter). */
function chunksOf (data: Buffer, size: number): Buffer[] {
  const out: Buffer[] = []
  for (let i = 0; i < data.length; i += size) out.push(data.subarray(i, i + size))
  return out
}

const crc32b64 = (d: Uint8Array): string => Buffer.from((crc32(d) >>> 0).toString(16).padStart(8, '0'), 'hex').toString('base64')

// --- AWS's published example: 64 KiB + 1 KiB of 'a' in signed chunks ---

test('AWS example: the streaming PUT, its seed and chunk signatures, in random slices', async () => {
  const req: SigV4Request = {
    method: 'PUT',
    rawPath: '/examplebucket/chunkObject.txt',
    rawQuery: '',
    headers: {
      host: 's3.amazonaws.com',
      'x-amz-date': AMZ_DATE,
      'x-amz-storage-class': 'REDUCED_REDUNDANCY',
      'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
      'content-encoding': 'aws-chunked',
      'x-amz-decoded-content-length': '66560',
      'content-length': '66824',
      authorization: `AWS4-HMAC-SHA256 Credential=${AKID}/20130524/us-east-1/s3/aws4_request,` +
        'SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,' +
        'Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9'
    }
  }
  const auth = await authenticate(req, () => ({ secretAccessKey: SECRET, user: 'u' }), { nowMs: T0 })
  assert.equal(auth.payload, { kind: 'streaming-signed', trailer: false })
  const data = Buffer.alloc(66560, 'a')
  const published = ['ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648', '0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497', 'b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9']
  const wire = Buffer.concat([
    Buffer.from(`10000;chunk-signature=${published[0]}\r\n`), data.subarray(0, 65536), Buffer.from('\r\n'),
    Buffer.from(`400;chunk-signature=${published[1]}\r\n`), data.subarray(65536), Buffer.from('\r\n'),
    Buffer.from(`0;chunk-signature=${published[2]}\r\n\r\n`)
  ])
  assert.is(wire.length, 66824)
  // our own encoder produces the published signatures
  assert.ok(signedWire([data.subarray(0, 65536), data.subarray(65536)], auth.signing.seedSignature).equals(wire))
  for (let seed = 1; seed <= 5; seed++) {
    const gen = verifiedBody(sliced(wire, seed), bodyChecks(req, auth))
    const { out, code } = await drain(gen)
    assert.is(code, 'none')
    assert.ok(out.equals(data))
    assert.is(digestsOf(gen)?.md5Hex, createHash('md5').update(data).digest('hex'))
  }
  // the wrong seed (another request's signature) breaks the first chunk
  const bad: Authenticated = { ...auth, signing: { ...auth.signing, seedSignature: '0'.repeat(64) } }
  const r = await drain(verifiedBody(sliced(wire, 9), bodyChecks(req, bad)))
  assert.is(r.code, 'SignatureDoesNotMatch')
  assert.is(r.out.length, 0)
})

test('AWS example with a trailer: seed, chunk and trailer signatures of the x-amz-checksum-crc32c example', async () => {
  const req: SigV4Request = {
    method: 'PUT',
    rawPath: '/examplebucket/chunkObject.txt',
    rawQuery: '',
    headers: {
      host: 's3.amazonaws.com',
      'x-amz-date': AMZ_DATE,
      'x-amz-storage-class': 'REDUCED_REDUNDANCY',
      'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER',
      'content-encoding': 'aws-chunked',
      'x-amz-decoded-content-length': '66560',
      'x-amz-trailer': 'x-amz-checksum-crc32c',
      'content-length': '66946',
      authorization: `AWS4-HMAC-SHA256 Credential=${AKID}/20130524/us-east-1/s3/aws4_request,` +
        'SignedHeaders=content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class;x-amz-trailer,' +
        'Signature=106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e'
    }
  }
  const auth = await authenticate(req, () => ({ secretAccessKey: SECRET, user: 'u' }), { nowMs: T0 })
  assert.equal(auth.payload, { kind: 'streaming-signed', trailer: true })
  const data = Buffer.alloc(66560, 'a')
  const wire = Buffer.concat([
    Buffer.from('10000;chunk-signature=b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2\r\n'), data.subarray(0, 65536), Buffer.from('\r\n'),
    Buffer.from('400;chunk-signature=1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7\r\n'), data.subarray(65536), Buffer.from('\r\n'),
    Buffer.from('0;chunk-signature=2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992\r\n'),
    Buffer.from('x-amz-checksum-crc32c:sOO8/Q==\r\n'),
    Buffer.from('x-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n\r\n')
  ])
  assert.is(wire.length, 66946)
  assert.ok(signedWire([data.subarray(0, 65536), data.subarray(65536)], auth.signing.seedSignature, ['x-amz-checksum-crc32c', 'sOO8/Q==']).equals(wire))
  for (let seed = 1; seed <= 3; seed++) {
    const gen = verifiedBody(sliced(wire, seed), bodyChecks(req, auth))
    const { out, code } = await drain(gen)
    assert.is(code, 'none')
    assert.ok(out.equals(data))
    assert.equal(digestsOf(gen)?.checksums, { CRC32C: 'sOO8/Q==' })
  }
})

// --- signed chunks, with and without trailer ---

test('signed chunks with a signed crc32 trailer stream through random slices', async () => {
  const data = pattern(300_000, 7)
  const seed = 'ab'.repeat(32)
  const wire = signedWire(chunksOf(data, 65536), seed, ['x-amz-checksum-crc32', crc32b64(data)])
  for (let s = 1; s <= 10; s++) {
    const c = checks({ kind: 'streaming-signed', trailer: true }, seed, data.length, { trailerNames: ['x-amz-checksum-crc32'] })
    const gen = verifiedBody(sliced(wire, s), c)
    const { out, code } = await drain(gen)
    assert.is(code, 'none', `seed ${s}`)
    assert.ok(out.equals(data))
    assert.equal(digestsOf(gen), { md5Hex: createHash('md5').update(data).digest('hex'), checksums: { CRC32: crc32b64(data) }, length: data.length })
  }
})

test('signed chunks: nothing of a chunk with a bad signature is yielded', async () => {
  const data = pattern(200_000, 8)
  const seed = 'cd'.repeat(32)
  const chunks = chunksOf(data, 65536)
  const c = checks({ kind: 'streaming-signed', trailer: false }, seed, data.length)
  // a wrong signature on the third chunk: the first two come out, nothing more
  let r = await drain(verifiedBody(sliced(signedWire(chunks, seed, undefined, { sigOf: 2 }), 3), c))
  assert.is(r.code, 'SignatureDoesNotMatch')
  assert.is(r.out.length, 2 * 65536)
  // a corrupted byte in the second chunk's data
  const wire = signedWire(chunks, seed)
  // header lines are 88 bytes ('10000;chunk-signature=' + 64 + CRLF): the second chunk's data starts at 88 + 65536 + 2 + 88
  const at = 88 + 65536 + 2 + 88 + 183
  const corrupted = Buffer.from(wire)
  corrupted[at] ^= 1
  r = await drain(verifiedBody(sliced(corrupted, 4), c))
  assert.is(r.code, 'SignatureDoesNotMatch')
  assert.is(r.out.length, 65536)
  // a wrong final (empty) chunk signature
  r = await drain(verifiedBody(sliced(signedWire(chunks, seed, undefined, { sigOf: chunks.length }), 5), c))
  assert.is(r.code, 'SignatureDoesNotMatch')
  // a wrong trailer signature, and a missing one
  const ct = checks({ kind: 'streaming-signed', trailer: true }, seed, data.length, { trailerNames: ['x-amz-checksum-crc32'] })
  r = await drain(verifiedBody(sliced(signedWire(chunks, seed, ['x-amz-checksum-crc32', crc32b64(data)], { trailerSig: true }), 6), ct))
  assert.is(r.code, 'SignatureDoesNotMatch')
  const noSig = signedWire(chunks, seed, ['x-amz-checksum-crc32', crc32b64(data)]).toString('latin1').replace(/x-amz-trailer-signature:[0-9a-f]+\r\n/, '')
  r = await drain(verifiedBody(sliced(Buffer.from(noSig, 'latin1'), 6), ct))
  assert.is(r.code, 'InvalidRequest')
  // a correctly signed trailer whose checksum is wrong
  r = await drain(verifiedBody(sliced(signedWire(chunks, seed, ['x-amz-checksum-crc32', 'AAAAAA==']), 6), ct))
  assert.is(r.code, 'BadDigest')
  // the missing chunk signature
  r = await drain(verifiedBody(sliced(unsignedWire(chunks), 7), c))
  assert.is(r.code, 'InvalidRequest')
})

// --- unsigned chunks with a trailer (@aws-sdk/client-s3's default for streamed PutObject) ---

test('STREAMING-UNSIGNED-PAYLOAD-TRAILER with crc32 and crc64nvme trailers, random slices', async () => {
  const data = pattern(250_000, 9)
  for (const [alg, name] of [['CRC32', 'x-amz-checksum-crc32'], ['CRC64NVME', 'x-amz-checksum-crc64nvme']] as const) {
    const value = checksumBase64(alg, data)
    const wire = unsignedWire(chunksOf(data, 65536), [name, value])
    for (let s = 1; s <= 6; s++) {
      const gen = verifiedBody(sliced(wire, s), checks({ kind: 'streaming-unsigned-trailer' }, 'x', data.length, { trailerNames: [name] }))
      const { out, code } = await drain(gen)
      assert.is(code, 'none', `${alg} seed ${s}`)
      assert.ok(out.equals(data))
      assert.is(digestsOf(gen)?.checksums[alg], value)
    }
    // wrong trailer value
    const wrong = unsignedWire(chunksOf(data, 65536), [name, checksumBase64(alg, Buffer.from('other'))])
    const gen = verifiedBody(sliced(wrong, 1), checks({ kind: 'streaming-unsigned-trailer' }, 'x', data.length, { trailerNames: [name] }))
    const r = await drain(gen)
    assert.is(r.code, 'BadDigest')
    assert.is(digestsOf(gen), undefined)
  }
})

test('unsigned trailer: corruption, truncation, extra bytes, wrong lengths, bad framing', async () => {
  const data = pattern(100_000, 10)
  const crc = crc32b64(data)
  const c = (len = data.length): BodyChecks => checks({ kind: 'streaming-unsigned-trailer' }, 'x', len, { trailerNames: ['x-amz-checksum-crc32'] })
  const wire = unsignedWire(chunksOf(data, 65536), ['x-amz-checksum-crc32', crc])
  const run = async (w: Uint8Array, k = c()): Promise<string> => (await drain(verifiedBody(sliced(w, 11), k))).code
  const corrupted = Buffer.from(wire)
  corrupted[50_000] ^= 0x40
  assert.is(await run(corrupted), 'BadDigest')
  assert.is(await run(wire.subarray(0, 70_000)), 'IncompleteBody')
  assert.is(await run(wire.subarray(0, wire.length - 2)), 'IncompleteBody')
  assert.is(await run(Buffer.concat([wire, Buffer.from('junk')])), 'InvalidRequest')
  assert.is(await run(wire, c(data.length + 1)), 'IncompleteBody')
  assert.is(await run(wire, c(data.length - 1)), 'IncompleteBody')
  // a chunk whose data is longer than its size says
  assert.is(await run(Buffer.from('3\r\nabcd\r\n0\r\n\r\n'), c(3)), 'InvalidRequest')
  assert.is(await run(Buffer.from('zz\r\nab\r\n0\r\n\r\n'), c(2)), 'InvalidRequest')
  assert.is(await run(Buffer.from(`${'1'.repeat(5000)}\r\n`), c(2)), 'InvalidRequest')
  assert.is(await run(Buffer.from('2000000\r\n'), c(0x2000000)), 'InvalidRequest')
  // a trailer that was not declared, and a declared one that is missing
  assert.is(await run(unsignedWire([data], ['x-amz-checksum-crc32c', checksumBase64('CRC32C', data)])), 'InvalidRequest')
  assert.is(await run(unsignedWire([data])), 'InvalidRequest')
  // without a declared trailer the SDK ends right after the final chunk line
  assert.is(await run(unsignedWire([data]), checks({ kind: 'streaming-unsigned-trailer' }, 'x', data.length)), 'none')
})

// --- plain bodies ---

test('plain bodies: payload sha256, Content-MD5, checksum headers, length', async () => {
  const data = pattern(150_000, 12)
  const sha = sha256(data)
  const md5 = createHash('md5').update(data).digest('base64')
  const run = async (k: BodyChecks, body: Uint8Array = data): Promise<string> => (await drain(verifiedBody(sliced(body, 13), k))).code
  const base = (extra: Partial<BodyChecks> = {}): BodyChecks => checks({ kind: 'sha256', sha256Hex: sha }, 'x', data.length, extra)
  assert.is(await run(base({ contentMd5: md5, checksumHeaders: [{ algorithm: 'SHA256', expectedBase64: checksumBase64('SHA256', data) }] })), 'none')
  const other = Buffer.from(data)
  other[7] ^= 1
  assert.is(await run(base(), other), 'XAmzContentSHA256Mismatch')
  assert.is(await run(checks({ kind: 'unsigned' }, 'x', data.length, { contentMd5: md5 }), other), 'BadDigest')
  assert.is(await run(checks({ kind: 'unsigned' }, 'x', data.length, { checksumHeaders: [{ algorithm: 'CRC32C', expectedBase64: checksumBase64('CRC32C', data) }] }), other), 'BadDigest')
  assert.is(await run(checks({ kind: 'unsigned' }, 'x', data.length), data.subarray(1)), 'IncompleteBody')
  const gen = verifiedBody(sliced(data, 1), checks({ kind: 'unsigned' }, 'x', undefined, { sdkAlgorithm: 'CRC32C' }))
  assert.is((await drain(gen)).code, 'none')
  assert.equal(digestsOf(gen)?.checksums, { CRC32C: checksumBase64('CRC32C', data) })
})

test('bodyChecks reads and checks the headers', () => {
  const auth = (payload: PayloadMode): Authenticated => ({ accessKeyId: AKID, user: 'u', region: 'us-east-1', payload, signing: signing('x') })
  const req = (headers: SigV4Request['headers']): SigV4Request => ({ method: 'PUT', rawPath: '/b/k', rawQuery: '', headers })
  const codeOf = (f: () => unknown): string => {
    try {
      f()
      return 'none'
    } catch (err) {
      return (err as { code: string }).code
    }
  }
  const streaming = auth({ kind: 'streaming-unsigned-trailer' })
  const c = bodyChecks(req({
    'content-length': '999',
    'x-amz-decoded-content-length': '5',
    'x-amz-trailer': 'x-amz-checksum-crc32',
    'x-amz-sdk-checksum-algorithm': 'CRC32',
    'content-md5': 'XUFAKrxLKna5cZ2REBfFkg=='
  }), streaming)
  assert.is(c.decodedLength, 5)
  assert.equal(c.trailerNames, ['x-amz-checksum-crc32'])
  assert.is(c.sdkAlgorithm, 'CRC32')
  assert.is(c.contentMd5, 'XUFAKrxLKna5cZ2REBfFkg==')
  assert.is(bodyChecks(req({ 'content-length': '12' }), auth({ kind: 'unsigned' })).decodedLength, 12)
  assert.equal(bodyChecks(req({ 'x-amz-checksum-crc64nvme': 'rosUhgp5mIg=', 'x-amz-checksum-type': 'FULL_OBJECT' }), auth({ kind: 'unsigned' })).checksumHeaders, [{ algorithm: 'CRC64NVME', expectedBase64: 'rosUhgp5mIg=' }])
  assert.is(codeOf(() => bodyChecks(req({}), streaming)), 'MissingContentLength')
  assert.is(codeOf(() => bodyChecks(req({ 'x-amz-decoded-content-length': '-1' }), streaming)), 'InvalidArgument')
  assert.is(codeOf(() => bodyChecks(req({ 'content-md5': 'nope' }), auth({ kind: 'unsigned' }))), 'InvalidDigest')
  assert.is(codeOf(() => bodyChecks(req({ 'x-amz-checksum-crc32': 'AAAA' }), auth({ kind: 'unsigned' }))), 'InvalidRequest')
  assert.is(codeOf(() => bodyChecks(req({ 'x-amz-checksum-crc32': 'AAAAAA==', 'x-amz-checksum-crc32c': 'AAAAAA==' }), auth({ kind: 'unsigned' }))), 'InvalidRequest')
  assert.is(codeOf(() => bodyChecks(req({ 'x-amz-checksum-xxhash': 'AAAAAA==' }), auth({ kind: 'unsigned' }))), 'InvalidRequest')
  assert.is(codeOf(() => bodyChecks(req({ 'x-amz-trailer': 'x-amz-checksum-crc32' }), auth({ kind: 'unsigned' }))), 'InvalidRequest')
  assert.is(codeOf(() => bodyChecks(req({ 'x-amz-decoded-content-length': '1', 'x-amz-trailer': 'x-amz-meta-a' }), streaming)), 'InvalidRequest')
  assert.is(codeOf(() => bodyChecks(req({ 'x-amz-checksum-crc32': 'AAAAAA==', 'x-amz-sdk-checksum-algorithm': 'SHA256' }), auth({ kind: 'unsigned' }))), 'InvalidRequest')
})

test('over real HTTP: a chunk signature failure mid-body still gets its error to the client', async () => {
  const data = pattern(600_000, 14)
  const seed = 'ef'.repeat(32)
  const c = checks({ kind: 'streaming-signed', trailer: false }, seed, data.length)
  const wire = signedWire(chunksOf(data, 65536), seed, undefined, { sigOf: 1 })
  let yielded = 0
  const server = createServer((req, res) => {
    void (async () => {
      try {
        // destroyOnReturn: false, so ending the iteration early leaves the socket to answer on
        for await (const p of verifiedBody(req.iterator({ destroyOnReturn: false }), c)) yielded += p.byteLength
        res.writeHead(200).end('ok')
      } catch (err) {
        req.resume()
        res.writeHead(403).end((err as { code: string }).code)
      }
    })()
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  try {
    const { port } = server.address() as AddressInfo
    const answer = await new Promise<{ status: number, body: string }>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, method: 'PUT', path: '/b/k', headers: { 'content-length': String(wire.length) } }, (res) => {
        const parts: Buffer[] = []
        res.on('data', (d: Buffer) => parts.push(d))
        res.on('end', () => { resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString() }) })
      })
      req.on('error', reject)
      req.end(wire)
    })
    assert.equal(answer, { status: 403, body: 'SignatureDoesNotMatch' })
    assert.is(yielded, 65536)
  } finally {
    server.closeAllConnections()
    server.close()
  }
})

test.run()
