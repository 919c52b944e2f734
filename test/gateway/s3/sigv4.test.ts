import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createHash, createHmac } from 'node:crypto'
import { SignatureV4 } from '@smithy/signature-v4'
import type { Checksum, SourceData } from '@smithy/types'
import {
  authenticate, canonicalUri, deriveSigningKey, type LookupKey, type SigV4Request
} from '../../../src/gateway/s3/sigv4.js'

const test = suite('gateway/s3/sigv4')

// AWS's documented example credentials and time
const AKID = 'AKIAIOSFODNN7EXAMPLE'
const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'
const T0 = Date.UTC(2013, 4, 24, 0, 0, 0)
const EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
const USER = '12D3KooWRyh2zNmr7R2ixgMm9AXDBYUYPzfntKCELAq8HDtpAVMX'

const lookup: LookupKey = (id) => id === AKID ? { secretAccessKey: SECRET, user: USER } : undefined

/** An error's S3 code, or 'none' when `p` resolved. */
async function codeOf (p: Promise<unknown>): Promise<string> {
  try {
    await p
    return 'none'
  } catch (err) {
    const e = err as { name?: string, code?: string }
    assert.is(e.name, 'S3Error', String(err))
    return e.code ?? '?'
  }
}

function auth (credentialDate: string, signedHeaders: string, signature: string, region = 'us-east-1', service = 's3'): string {
  return `AWS4-HMAC-SHA256 Credential=${AKID}/${credentialDate}/${region}/${service}/aws4_request,SignedHeaders=${signedHeaders},Signature=${signature}`
}

// --- AWS's published examples (Signature Calculations for the Authorization Header, single chunk) ---

function getObjectExample (): SigV4Request {
  return {
    method: 'GET',
    rawPath: '/test.txt',
    rawQuery: '',
    headers: {
      host: 'examplebucket.s3.amazonaws.com',
      range: 'bytes=0-9',
      'x-amz-content-sha256': EMPTY,
      'x-amz-date': '20130524T000000Z',
      authorization: auth('20130524', 'host;range;x-amz-content-sha256;x-amz-date', 'f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41')
    }
  }
}

test('AWS example: GET object with Range', async () => {
  const a = await authenticate(getObjectExample(), lookup, { nowMs: T0 })
  assert.is(a.accessKeyId, AKID)
  assert.is(a.user, USER)
  assert.is(a.region, 'us-east-1')
  assert.equal(a.payload, { kind: 'sha256', sha256Hex: EMPTY })
  assert.is(a.signing.scope, '20130524/us-east-1/s3/aws4_request')
  assert.is(a.signing.amzDate, '20130524T000000Z')
  assert.is(a.signing.seedSignature, 'f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41')
})

test('AWS example: PUT object, a path with $ and a Date header', async () => {
  const req: SigV4Request = {
    method: 'PUT',
    rawPath: '/test$file.text',
    rawQuery: '',
    headers: {
      host: 'examplebucket.s3.amazonaws.com',
      date: 'Fri, 24 May 2013 00:00:00 GMT',
      'x-amz-date': '20130524T000000Z',
      'x-amz-storage-class': 'REDUCED_REDUNDANCY',
      'x-amz-content-sha256': '44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072',
      authorization: auth('20130524', 'date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class', '98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd')
    }
  }
  const a = await authenticate(req, lookup, { nowMs: T0 })
  assert.equal(a.payload, { kind: 'sha256', sha256Hex: '44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072' })
  // the same path sent encoded is the same request
  assert.is((await authenticate({ ...req, rawPath: '/test%24file.text' }, lookup, { nowMs: T0 })).user, USER)
})

test('AWS examples: GET bucket lifecycle (?lifecycle) and list objects (?max-keys=2&prefix=J)', async () => {
  for (const [rawQuery, sig] of [
    ['lifecycle', 'fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543'],
    ['max-keys=2&prefix=J', '34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7'],
    // order of parameters as sent does not matter: they are sorted
    ['prefix=J&max-keys=2', '34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7']
  ]) {
    const req: SigV4Request = {
      method: 'GET',
      rawPath: '/',
      rawQuery,
      headers: {
        host: 'examplebucket.s3.amazonaws.com',
        'x-amz-content-sha256': EMPTY,
        'x-amz-date': '20130524T000000Z',
        authorization: auth('20130524', 'host;x-amz-content-sha256;x-amz-date', sig)
      }
    }
    assert.is((await authenticate(req, lookup, { nowMs: T0 })).user, USER, rawQuery)
  }
})

function presignedExample (): SigV4Request {
  return {
    method: 'GET',
    rawPath: '/test.txt',
    rawQuery: 'X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request' +
      '&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host' +
      '&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404',
    headers: { host: 'examplebucket.s3.amazonaws.com' }
  }
}

test('AWS example: presigned GET, valid for 86400 s and no longer', async () => {
  const a = await authenticate(presignedExample(), lookup, { nowMs: T0 + 3_600_000 })
  assert.equal(a.payload, { kind: 'unsigned' })
  assert.is(a.user, USER)
  assert.is(await codeOf(authenticate(presignedExample(), lookup, { nowMs: T0 + 86_400_000 + 1000 })), 'AccessDenied')
  try {
    await authenticate(presignedExample(), lookup, { nowMs: T0 + 86_400_000 + 1000 })
  } catch (err) {
    assert.is((err as Error).message, 'Request has expired')
  }
  // not valid yet (beyond the allowed skew)
  assert.is(await codeOf(authenticate(presignedExample(), lookup, { nowMs: T0 - 3_600_000 })), 'AccessDenied')
  // the signature covers the query: another expiry breaks it
  const longer = { ...presignedExample(), rawQuery: presignedExample().rawQuery.replace('Expires=86400', 'Expires=86401') }
  assert.is(await codeOf(authenticate(longer, lookup, { nowMs: T0 })), 'SignatureDoesNotMatch')
  // an expiry past a week is refused before anything else
  const week = { ...presignedExample(), rawQuery: presignedExample().rawQuery.replace('Expires=86400', 'Expires=604801') }
  assert.is(await codeOf(authenticate(week, lookup, { nowMs: T0 })), 'InvalidArgument')
})

// --- refusals of the header form ---

test('refusals: anonymous, skewed clock, unknown key, bad signature, malformed header', async () => {
  const ok = getObjectExample()
  assert.is(await codeOf(authenticate({ ...ok, headers: { ...ok.headers, authorization: undefined } }, lookup, { nowMs: T0 })), 'AccessDenied')
  assert.is(await codeOf(authenticate(ok, lookup, { nowMs: T0 + 16 * 60_000 })), 'RequestTimeTooSkewed')
  assert.is(await codeOf(authenticate(ok, lookup, { nowMs: T0 - 16 * 60_000 })), 'RequestTimeTooSkewed')
  assert.is(await codeOf(authenticate(ok, lookup, { nowMs: T0 + 14 * 60_000 })), 'none')
  assert.is(await codeOf(authenticate(ok, () => undefined, { nowMs: T0 })), 'InvalidAccessKeyId')
  assert.is(await codeOf(authenticate(ok, async () => ({ secretAccessKey: SECRET + 'x', user: USER }), { nowMs: T0 })), 'SignatureDoesNotMatch')
  const h = ok.headers
  const withAuth = (authorization: string): SigV4Request => ({ ...ok, headers: { ...h, authorization } })
  const good = h.authorization as string
  assert.is(await codeOf(authenticate(withAuth(good.replace('Signature=f0', 'Signature=f1')), lookup, { nowMs: T0 })), 'SignatureDoesNotMatch')
  assert.is(await codeOf(authenticate(withAuth(good.replace('Signature=f0', 'Signature=')), lookup, { nowMs: T0 })), 'AuthorizationHeaderMalformed')
  assert.is(await codeOf(authenticate(withAuth(good.replace('/s3/', '/ec2/')), lookup, { nowMs: T0 })), 'AuthorizationHeaderMalformed')
  assert.is(await codeOf(authenticate(withAuth(good.replace('/20130524/', '/20130525/')), lookup, { nowMs: T0 })), 'AuthorizationHeaderMalformed')
  assert.is(await codeOf(authenticate(withAuth(good.replace('SignedHeaders=host;', 'SignedHeaders=')), lookup, { nowMs: T0 })), 'AuthorizationHeaderMalformed')
  assert.is(await codeOf(authenticate(withAuth(good.replace(/,SignedHeaders=[^,]*/, '')), lookup, { nowMs: T0 })), 'AuthorizationHeaderMalformed')
  assert.is(await codeOf(authenticate(withAuth('AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg='), lookup, { nowMs: T0 })), 'InvalidRequest')
  assert.is(await codeOf(authenticate(withAuth('Bearer x'), lookup, { nowMs: T0 })), 'AuthorizationHeaderMalformed')
  assert.is(await codeOf(authenticate(withAuth(good + ' '.repeat(9000)), lookup, { nowMs: T0 })), 'AuthorizationHeaderMalformed')
  const many = Array.from({ length: 65 }, (_, i) => `x-h${i}`).join(';')
  assert.is(await codeOf(authenticate(withAuth(good.replace('SignedHeaders=host;', `SignedHeaders=${many};host;`)), lookup, { nowMs: T0 })), 'AuthorizationHeaderMalformed')
  // header auth needs x-amz-content-sha256
  assert.is(await codeOf(authenticate({ ...ok, headers: { ...h, 'x-amz-content-sha256': undefined } }, lookup, { nowMs: T0 })), 'InvalidRequest')
  assert.is(await codeOf(authenticate({ ...ok, headers: { ...h, 'x-amz-content-sha256': 'nope' } }, lookup, { nowMs: T0 })), 'InvalidArgument')
  // no usable time
  assert.is(await codeOf(authenticate({ ...ok, headers: { ...h, 'x-amz-date': undefined } }, lookup, { nowMs: T0 })), 'AccessDenied')
  // an x-amz-* header that is not signed could have been added by anyone
  assert.is(await codeOf(authenticate({ ...ok, headers: { ...h, 'x-amz-meta-evil': '1' } }, lookup, { nowMs: T0 })), 'AccessDenied')
  // both mechanisms at once
  assert.is(await codeOf(authenticate({ ...ok, rawQuery: presignedExample().rawQuery }, lookup, { nowMs: T0 })), 'InvalidArgument')
  // a changed signed header, path or query
  assert.is(await codeOf(authenticate({ ...ok, headers: { ...h, range: 'bytes=0-10' } }, lookup, { nowMs: T0 })), 'SignatureDoesNotMatch')
  assert.is(await codeOf(authenticate({ ...ok, rawPath: '/test.txT' }, lookup, { nowMs: T0 })), 'SignatureDoesNotMatch')
  assert.is(await codeOf(authenticate({ ...ok, rawQuery: 'acl' }, lookup, { nowMs: T0 })), 'SignatureDoesNotMatch')
  assert.is(await codeOf(authenticate({ ...ok, rawQuery: 'x'.repeat(17 * 1024) }, lookup, { nowMs: T0 })), 'InvalidRequest')
})

test('SignatureDoesNotMatch carries the StringToSign and CanonicalRequest, never the secret', async () => {
  const ok = getObjectExample()
  try {
    await authenticate({ ...ok, headers: { ...ok.headers, range: 'bytes=0-10' } }, lookup, { nowMs: T0 })
    assert.unreachable()
  } catch (err) {
    const e = err as { code: string, fields: Record<string, string> }
    assert.is(e.code, 'SignatureDoesNotMatch')
    assert.ok(e.fields.StringToSign.startsWith('AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n'))
    assert.ok(e.fields.CanonicalRequest.includes('range:bytes=0-10\n'))
    assert.not.ok(JSON.stringify(e.fields).includes(SECRET))
  }
})

test('canonical URI: each segment re-encoded per RFC 3986, nothing normalized', () => {
  assert.is(canonicalUri('/bkt/a%20b.txt'), '/bkt/a%20b.txt')
  assert.is(canonicalUri('/bkt/a b.txt'), '/bkt/a%20b.txt')
  assert.is(canonicalUri('/bkt/a+b'), '/bkt/a%2Bb')
  assert.is(canonicalUri('/bkt/a%2bb'), '/bkt/a%2Bb')
  assert.is(canonicalUri('/bkt/%7Euser/~x'), '/bkt/~user/~x')
  assert.is(canonicalUri('/bkt/%c3%a9'), '/bkt/%C3%A9')
  // node hands raw non-ASCII bytes over as latin1 chars
  assert.is(canonicalUri('/bkt/\u00c3\u00a9'), '/bkt/%C3%A9')
  assert.is(canonicalUri('/bkt/a%2Fb'), '/bkt/a%2Fb')
  // wider chars (not from node's parser) are UTF-8
  assert.is(canonicalUri('/bkt/é😀%20x'), '/bkt/%C3%A9%F0%9F%98%80%20x')
  assert.is(canonicalUri('/bkt//a/./b/../c/'), '/bkt//a/./b/../c/')
  assert.is(canonicalUri('/bkt/100%'), '/bkt/100%25')
  assert.is(canonicalUri('/bkt/!\'()*$&=,;:@'), '/bkt/%21%27%28%29%2A%24%26%3D%2C%3B%3A%40')
  assert.is(canonicalUri(''), '/')
})

test('the signing key cache is bounded', () => {
  for (let i = 0; i < 1100; i++) deriveSigningKey(`secret-${i}`, '20130524', 'us-east-1')
  // still derives the documented key (an entry may have been evicted and recomputed)
  const kDate = createHmac('sha256', 'AWS4' + SECRET).update('20130524').digest()
  const k = createHmac('sha256', createHmac('sha256', createHmac('sha256', kDate).update('us-east-1').digest()).update('s3').digest()).update('aws4_request').digest()
  assert.ok(deriveSigningKey(SECRET, '20130524', 'us-east-1').equals(k))
})

// --- a real client's signer: @smithy/signature-v4, as @aws-sdk/client-s3 and the presigner use it ---

class NodeSha256 implements Checksum {
  readonly #h
  constructor (secret?: SourceData) {
    this.#h = secret === undefined ? createHash('sha256') : createHmac('sha256', toBytes(secret))
  }

  update (data: Uint8Array): void { this.#h.update(data) }
  async digest (): Promise<Uint8Array> { return this.#h.digest() }
  reset (): void {}
}

function toBytes (d: SourceData): Uint8Array {
  if (typeof d === 'string') return Buffer.from(d, 'utf8')
  if (d instanceof ArrayBuffer) return new Uint8Array(d)
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength)
}

const smithy = (secret = SECRET, region = 'eu-central-1'): SignatureV4 => new SignatureV4({
  credentials: { accessKeyId: AKID, secretAccessKey: secret },
  region,
  service: 's3',
  sha256: NodeSha256,
  // S3 clients encode the key themselves and sign that path as it is
  uriEscapePath: false
})

/** How the SDK puts a key in a path: each segment encodeURIComponent'd, and !'()* too. */
function sdkPath (bucket: string, key: string): string {
  const enc = (s: string): string => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
  return `/${enc(bucket)}/${key.split('/').map(enc).join('/')}`
}

function sdkQuery (query: Record<string, string | string[] | null> | undefined): string {
  const enc = (s: string): string => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
  const parts: string[] = []
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v === null) parts.push(enc(k))
    else for (const one of Array.isArray(v) ? v : [v]) parts.push(`${enc(k)}=${enc(one)}`)
  }
  return parts.join('&')
}

const lowerHeaders = (h: Record<string, string>): Record<string, string> => Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]))

const KEYS = ['plain.txt', 'a b.txt', 'a+b=c&d.txt', 'tilde~x', 'dir/sub/é ü 😀.bin', "q!'()*$@,;:.txt", '100%.txt', 'x//y']

test('@smithy/signature-v4 header auth: keys with spaces, +, ~, unicode, queries; any mutation fails', async () => {
  const now = Date.UTC(2026, 0, 2, 3, 4, 5)
  for (const key of KEYS) {
    const path = sdkPath('bkt', key)
    const signed = await smithy().sign({
      method: 'PUT',
      protocol: 'http:',
      hostname: '127.0.0.1',
      port: 9000,
      path,
      query: { 'x-id': 'PutObject', tagging: 'a b+c', empty: '' },
      headers: {
        host: '127.0.0.1:9000',
        'content-type': 'application/octet-stream',
        'x-amz-content-sha256': 'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
        'content-encoding': 'aws-chunked',
        'x-amz-decoded-content-length': '5',
        'x-amz-trailer': 'x-amz-checksum-crc32',
        'x-amz-sdk-checksum-algorithm': 'CRC32',
        'x-amz-meta-note': '  two   spaces  ',
        'user-agent': 'aws-sdk-js/3.1169'
      }
    }, { signingDate: new Date(now) })
    const req: SigV4Request = { method: 'PUT', rawPath: signed.path, rawQuery: sdkQuery(signed.query), headers: lowerHeaders(signed.headers) }
    const a = await authenticate(req, lookup, { nowMs: now })
    assert.is(a.region, 'eu-central-1', key)
    assert.equal(a.payload, { kind: 'streaming-unsigned-trailer' })
    // mutations
    const h = req.headers
    assert.is(await codeOf(authenticate({ ...req, rawPath: req.rawPath + 'x' }, lookup, { nowMs: now })), 'SignatureDoesNotMatch', key)
    assert.is(await codeOf(authenticate({ ...req, rawQuery: req.rawQuery.replace('PutObject', 'PutObjecT') }, lookup, { nowMs: now })), 'SignatureDoesNotMatch', key)
    assert.is(await codeOf(authenticate({ ...req, headers: { ...h, 'x-amz-meta-note': 'two spaces!' } }, lookup, { nowMs: now })), 'SignatureDoesNotMatch', key)
    assert.is(await codeOf(authenticate({ ...req, headers: { ...h, 'x-amz-decoded-content-length': '6' } }, lookup, { nowMs: now })), 'SignatureDoesNotMatch', key)
    assert.is(await codeOf(authenticate(req, () => ({ secretAccessKey: SECRET.replace('K', 'k'), user: USER }), { nowMs: now })), 'SignatureDoesNotMatch', key)
    // whitespace the signer collapses is the same request
    assert.is(await codeOf(authenticate({ ...req, headers: { ...h, 'x-amz-meta-note': 'two spaces' } }, lookup, { nowMs: now })), 'none', key)
  }
})

test('@smithy/signature-v4 hex payload and UNSIGNED-PAYLOAD (rclone, s3cmd style)', async () => {
  const now = Date.UTC(2026, 0, 2, 3, 4, 5)
  const body = Buffer.from('hello')
  const sha = createHash('sha256').update(body).digest('hex')
  for (const [payload, want] of [[sha, { kind: 'sha256', sha256Hex: sha }], ['UNSIGNED-PAYLOAD', { kind: 'unsigned' }], ['STREAMING-AWS4-HMAC-SHA256-PAYLOAD', { kind: 'streaming-signed', trailer: false }]] as const) {
    const signed = await smithy(SECRET, 'us-east-1').sign({
      method: 'PUT',
      protocol: 'http:',
      hostname: 'localhost',
      path: sdkPath('bkt', 'k'),
      query: {},
      headers: { host: 'localhost', 'x-amz-content-sha256': payload, 'content-md5': createHash('md5').update(body).digest('base64') }
    }, { signingDate: new Date(now) })
    const req: SigV4Request = { method: 'PUT', rawPath: signed.path, rawQuery: '', headers: lowerHeaders(signed.headers) }
    const a = await authenticate(req, lookup, { nowMs: now })
    assert.equal(a.payload, want)
    assert.is(a.signing.seedSignature, /Signature=([0-9a-f]{64})/.exec(signed.headers.authorization)?.[1])
    assert.is(await codeOf(authenticate({ ...req, headers: { ...req.headers, 'content-md5': 'AAAAAAAAAAAAAAAAAAAAAA==' } }, lookup, { nowMs: now })), 'SignatureDoesNotMatch')
  }
})

test('@smithy/signature-v4 presigned URLs (as @aws-sdk/s3-request-presigner makes them)', async () => {
  const now = Date.UTC(2026, 0, 2, 3, 4, 5)
  for (const key of KEYS) {
    const presigned = await smithy().presign({
      method: 'GET',
      protocol: 'https:',
      hostname: 'bkt.s3.example.com',
      path: sdkPath('bkt', key),
      query: { 'x-id': 'GetObject', 'response-content-disposition': 'attachment; filename="a b.txt"' },
      // the presigner asks for an unsigned payload this way; the signer hoists it to the query
      headers: { host: 'bkt.s3.example.com', 'X-Amz-Content-Sha256': 'UNSIGNED-PAYLOAD' }
    }, { signingDate: new Date(now), expiresIn: 900 })
    const req: SigV4Request = { method: 'GET', rawPath: presigned.path, rawQuery: sdkQuery(presigned.query), headers: { host: 'bkt.s3.example.com', 'user-agent': 'curl/8' } }
    const a = await authenticate(req, lookup, { nowMs: now + 60_000 })
    assert.equal(a.payload, { kind: 'unsigned' }, key)
    assert.is(await codeOf(authenticate(req, lookup, { nowMs: now + 901_000 })), 'AccessDenied', key)
    assert.is(await codeOf(authenticate({ ...req, rawPath: req.rawPath.replace('/bkt/', '/bkt2/') }, lookup, { nowMs: now })), 'SignatureDoesNotMatch', key)
    assert.is(await codeOf(authenticate({ ...req, rawQuery: req.rawQuery.replace('GetObject', 'PutObject') }, lookup, { nowMs: now })), 'SignatureDoesNotMatch', key)
    assert.is(await codeOf(authenticate({ ...req, headers: { host: 'other.example.com' } }, lookup, { nowMs: now })), 'SignatureDoesNotMatch', key)
    assert.is(await codeOf(authenticate({ ...req, rawQuery: req.rawQuery.replace(AKID, 'AKIAOTHER') }, lookup, { nowMs: now })), 'InvalidAccessKeyId', key)
  }
})

test.run()
