/**
 * AWS Signature Version 4 verification of S3 requests (server side): header auth
 * (`Authorization: AWS4-HMAC-SHA256 …`) and query auth (presigned URLs). The result names the key's
 * user and how the body must be verified (chunked.ts does that while it streams).
 *
 * The canonical request is rebuilt from the request exactly as received: S3 does not normalize the
 * path (no '.'/'..' removal, no merging of '//'), it only puts each segment's percent-encoding in
 * canonical form (RFC 3986 unreserved characters bare, every other byte %XX upper-case), which is
 * what every SDK signs (they encode the key that way, and sign the encoded path without encoding it
 * again).
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import { s3Error } from './errors.js'

export interface SigV4Request {
  method: string
  /** The request target's path exactly as received (percent-encoded), e.g. '/bkt/a%20b.txt'. */
  rawPath: string
  /** What follows '?', as received ('' when none). */
  rawQuery: string
  /** node's IncomingMessage.headers (lower-case names). */
  headers: Record<string, string | string[] | undefined>
}

export interface S3Credential {
  secretAccessKey: string
  /** The dfs PeerId the key acts as. */
  user: string
}

export type LookupKey = (accessKeyId: string) => S3Credential | undefined | Promise<S3Credential | undefined>

export type PayloadMode =
  /** The body must hash to this (lower-case hex); verified while streaming. */
  | { kind: 'sha256', sha256Hex: string }
  /** UNSIGNED-PAYLOAD (also every presigned URL). */
  | { kind: 'unsigned' }
  /** STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]: aws-chunked, each chunk signed. */
  | { kind: 'streaming-signed', trailer: boolean }
  /** STREAMING-UNSIGNED-PAYLOAD-TRAILER: aws-chunked without signatures, checksum in a trailer. */
  | { kind: 'streaming-unsigned-trailer' }

/** What chunk and trailer signatures are computed from (all fixed by the request's signature). */
export interface SigningContext {
  /** kSigning = HMAC chain of the secret over date, region, 's3', 'aws4_request'. Never log it. */
  signingKey: Buffer
  /** `YYYYMMDD/region/s3/aws4_request`. */
  scope: string
  /** The request timestamp, ISO 8601 basic (`YYYYMMDDTHHMMSSZ`), as it was signed. */
  amzDate: string
  /** The request's own signature (lower-case hex): the first chunk's "previous signature". */
  seedSignature: string
}

export interface Authenticated {
  accessKeyId: string
  user: string
  /** The region of the credential scope (any region is accepted). */
  region: string
  payload: PayloadMode
  /** What chunked.ts needs to verify chunk signatures (signing key, scope, seed signature, amz date). */
  signing: SigningContext
}

export interface AuthenticateOptions {
  /** The current time (tests). Default Date.now(). */
  nowMs?: number
  /** Largest difference between the request's time and now (header auth), and how early a presigned URL may be used. Default 15 min. */
  maxSkewMs?: number
}

export const SIGV4_ALGORITHM = 'AWS4-HMAC-SHA256'
export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD'
export const STREAMING_SIGNED = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD'
export const STREAMING_SIGNED_TRAILER = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER'
export const STREAMING_UNSIGNED_TRAILER = 'STREAMING-UNSIGNED-PAYLOAD-TRAILER'
/** SHA-256 of no bytes, lower-case hex. */
export const EMPTY_SHA256_HEX = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'

/** Default largest clock difference (AWS: 15 minutes). */
export const SIGV4_MAX_SKEW_MS = 15 * 60_000
/** Bytes of an Authorization header. */
export const SIGV4_AUTHORIZATION_BYTES_MAX = 8 * 1024
/** Names in SignedHeaders (X-Amz-SignedHeaders). */
export const SIGV4_SIGNED_HEADERS_MAX = 64
/** Bytes of the query string. */
export const SIGV4_QUERY_BYTES_MAX = 16 * 1024
/** Parameters in the query string. */
export const SIGV4_QUERY_PARAMS_MAX = 256
/** Bytes of the request path. */
export const SIGV4_PATH_BYTES_MAX = 8 * 1024
/** Longest validity of a presigned URL (7 days, as AWS). */
export const SIGV4_PRESIGNED_EXPIRES_MAX_S = 604_800
/** Derived signing keys kept (one per secret, day and region). */
export const SIGNING_KEY_CACHE_MAX = 1024

/**
 * Decides whether a request is authentic. Throws an S3Error (AccessDenied, InvalidAccessKeyId,
 * SignatureDoesNotMatch, RequestTimeTooSkewed, AuthorizationHeaderMalformed, InvalidArgument,
 * InvalidRequest, NotImplemented) when it is not; never returns for an anonymous request.
 */
export async function authenticate (req: SigV4Request, lookup: LookupKey, options: AuthenticateOptions = {}): Promise<Authenticated> {
  const nowMs = options.nowMs ?? Date.now()
  const maxSkewMs = options.maxSkewMs ?? SIGV4_MAX_SKEW_MS
  if (req.rawQuery.length > SIGV4_QUERY_BYTES_MAX) throw s3Error('InvalidRequest', `the query string is longer than ${SIGV4_QUERY_BYTES_MAX} bytes`)
  if (req.rawPath.length > SIGV4_PATH_BYTES_MAX) throw s3Error('InvalidRequest', `the request path is longer than ${SIGV4_PATH_BYTES_MAX} bytes`)
  const query = parseQuery(req.rawQuery)
  const authorization = headerValue(req.headers, 'authorization')
  const presigned = query.some((p) => p.name === 'X-Amz-Algorithm' || p.name === 'X-Amz-Credential' || p.name === 'X-Amz-Signature')
  if (authorization !== undefined && presigned) {
    throw s3Error('InvalidArgument', 'Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the Authorization header should be specified')
  }
  if (authorization !== undefined) return await headerAuth(req, query, authorization, lookup, nowMs, maxSkewMs)
  if (presigned) return await queryAuth(req, query, lookup, nowMs, maxSkewMs)
  if (query.some((p) => p.name === 'Signature' || p.name === 'AWSAccessKeyId')) throw unsupportedMechanism()
  throw s3Error('AccessDenied', 'Access Denied: anonymous requests are not allowed')
}

// ---------------------------------------------------------------------------------------------
// header auth

interface ParsedCredential {
  accessKeyId: string
  date: string
  region: string
}

async function headerAuth (req: SigV4Request, query: QueryParam[], authorization: string, lookup: LookupKey, nowMs: number, maxSkewMs: number): Promise<Authenticated> {
  if (authorization.length > SIGV4_AUTHORIZATION_BYTES_MAX) {
    throw s3Error('AuthorizationHeaderMalformed', `The authorization header is longer than ${SIGV4_AUTHORIZATION_BYTES_MAX} bytes`)
  }
  const space = authorization.indexOf(' ')
  const algorithm = space < 0 ? authorization : authorization.slice(0, space)
  if (algorithm !== SIGV4_ALGORITHM) {
    if (algorithm === 'AWS' || algorithm.startsWith('AWS4-')) throw unsupportedMechanism()
    throw s3Error('AuthorizationHeaderMalformed', 'The authorization header is malformed; the authorization mechanism is not AWS4-HMAC-SHA256')
  }
  const fields = new Map<string, string>()
  for (const part of authorization.slice(space + 1).split(',')) {
    const p = part.trim()
    if (p === '') continue
    const eq = p.indexOf('=')
    if (eq <= 0) throw malformedHeader(`the component '${p.slice(0, 40)}' is not name=value`)
    const name = p.slice(0, eq)
    if (fields.has(name)) throw malformedHeader(`${name} appears twice`)
    fields.set(name, p.slice(eq + 1))
  }
  const credentialField = fields.get('Credential')
  const signedHeadersField = fields.get('SignedHeaders')
  const signature = fields.get('Signature')
  if (credentialField === undefined) throw malformedHeader('the Credential component is missing')
  if (signedHeadersField === undefined) throw malformedHeader('the SignedHeaders component is missing')
  if (signature === undefined) throw malformedHeader('the Signature component is missing')
  const credential = parseCredential(credentialField, (m) => malformedHeader(m))
  const signedHeaders = parseSignedHeaders(signedHeadersField, (m) => malformedHeader(m))
  if (!isHex64(signature)) throw malformedHeader('the Signature is not 64 hex digits')

  const amzDate = requestTimestamp(req.headers)
  if (amzDate.slice(0, 8) !== credential.date) {
    throw s3Error('AuthorizationHeaderMalformed', `The authorization header is malformed; Invalid credential date "${credential.date}". This date is not the same as X-Amz-Date: "${amzDate.slice(0, 8)}".`)
  }
  const requestMs = parseAmzDate(amzDate)
  if (requestMs === undefined) throw s3Error('AccessDenied', 'AWS authentication requires a valid Date or x-amz-date header')
  if (Math.abs(requestMs - nowMs) > maxSkewMs) {
    throw s3Error('RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.', {
      fields: { RequestTime: amzDate, ServerTime: formatAmzDate(nowMs), MaxAllowedSkewMilliseconds: String(maxSkewMs) }
    })
  }

  const contentSha = headerValue(req.headers, 'x-amz-content-sha256')
  if (contentSha === undefined) throw s3Error('InvalidRequest', 'Missing required header for this request: x-amz-content-sha256')
  const payload = payloadModeOf(contentSha.trim())
  if (!signedHeaders.includes('x-amz-content-sha256')) throw s3Error('AccessDenied', 'x-amz-content-sha256 must be a signed header')
  checkSignedHeaders(req.headers, signedHeaders)

  const canonicalRequest = buildCanonicalRequest(req.method, req.rawPath, canonicalQuery(query, false), req.headers, signedHeaders, contentSha.trim())
  return await verify(lookup, credential, amzDate, signature, canonicalRequest, payload)
}

/** The request time of header auth: x-amz-date if present, else the Date header, as ISO 8601 basic. */
function requestTimestamp (headers: SigV4Request['headers']): string {
  const amz = headerValue(headers, 'x-amz-date')
  if (amz !== undefined) {
    if (parseAmzDate(amz.trim()) === undefined) throw s3Error('AccessDenied', 'AWS authentication requires a valid Date or x-amz-date header')
    return amz.trim()
  }
  const date = headerValue(headers, 'date')
  const ms = date === undefined ? NaN : Date.parse(date)
  if (!Number.isFinite(ms)) throw s3Error('AccessDenied', 'AWS authentication requires a valid Date or x-amz-date header')
  return formatAmzDate(ms)
}

// ---------------------------------------------------------------------------------------------
// query auth (presigned URLs)

async function queryAuth (req: SigV4Request, query: QueryParam[], lookup: LookupKey, nowMs: number, maxSkewMs: number): Promise<Authenticated> {
  const one = (name: string): string => {
    const found = query.filter((p) => p.name === name)
    if (found.length === 0) throw malformedQuery(`the query parameter ${name} is missing`)
    if (found.length > 1) throw malformedQuery(`the query parameter ${name} appears more than once`)
    return found[0].value
  }
  const algorithm = one('X-Amz-Algorithm')
  if (algorithm !== SIGV4_ALGORITHM) throw malformedQuery('X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"')
  const credential = parseCredential(one('X-Amz-Credential'), (m) => malformedQuery(m))
  const amzDate = one('X-Amz-Date')
  const requestMs = parseAmzDate(amzDate)
  if (requestMs === undefined) throw malformedQuery('X-Amz-Date must be in the ISO8601 Long Format "yyyyMMdd\'T\'HHmmss\'Z\'"')
  const expiresText = one('X-Amz-Expires')
  if (!/^[0-9]{1,7}$/.test(expiresText)) throw malformedQuery('X-Amz-Expires must be a number of seconds')
  const expiresS = Number(expiresText)
  if (expiresS < 1) throw malformedQuery('X-Amz-Expires must be non-negative')
  if (expiresS > SIGV4_PRESIGNED_EXPIRES_MAX_S) throw malformedQuery('X-Amz-Expires must be less than a week (in seconds) that is 604800')
  const signedHeaders = parseSignedHeaders(one('X-Amz-SignedHeaders'), (m) => malformedQuery(m))
  const signature = one('X-Amz-Signature')
  if (!isHex64(signature)) throw malformedQuery('X-Amz-Signature is not 64 hex digits')
  if (amzDate.slice(0, 8) !== credential.date) {
    throw malformedQuery(`Invalid credential date "${credential.date}". This date is not the same as X-Amz-Date: "${amzDate.slice(0, 8)}".`)
  }
  if (requestMs - nowMs > maxSkewMs) throw s3Error('AccessDenied', 'Request is not valid yet')
  if (nowMs > requestMs + expiresS * 1000) {
    throw s3Error('AccessDenied', 'Request has expired', {
      fields: { 'X-Amz-Expires': expiresText, Expires: new Date(requestMs + expiresS * 1000).toISOString(), ServerTime: new Date(nowMs).toISOString() }
    })
  }
  checkSignedHeaders(req.headers, signedHeaders, true)

  // A presigned URL's payload is unsigned unless the signer put a hash in the query.
  const shaParam = query.find((p) => p.name.toLowerCase() === 'x-amz-content-sha256')?.value
  const payloadLine = shaParam ?? UNSIGNED_PAYLOAD
  const payload = payloadModeOf(payloadLine)
  if (payload.kind !== 'unsigned' && payload.kind !== 'sha256') throw malformedQuery('a presigned URL cannot use a streaming payload')
  const canonicalRequest = buildCanonicalRequest(req.method, req.rawPath, canonicalQuery(query, true), req.headers, signedHeaders, payloadLine)
  return await verify(lookup, credential, amzDate, signature, canonicalRequest, payload)
}

// ---------------------------------------------------------------------------------------------
// shared

async function verify (
  lookup: LookupKey, credential: ParsedCredential, amzDate: string, signature: string, canonicalRequest: string, payload: PayloadMode
): Promise<Authenticated> {
  const key = await lookup(credential.accessKeyId)
  if (key === undefined) {
    throw s3Error('InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.', { fields: { AWSAccessKeyId: credential.accessKeyId } })
  }
  const scope = `${credential.date}/${credential.region}/s3/aws4_request`
  const stringToSign = buildStringToSign(amzDate, scope, canonicalRequest)
  const signingKey = deriveSigningKey(key.secretAccessKey, credential.date, credential.region)
  const provided = Buffer.from(signature, 'hex')
  // Header values arrive as bytes (node gives them as latin1). A client that sent a non-ASCII value
  // (x-amz-meta-place: Zürich) as latin1 bytes signed its UTF-8 form: node's http client writes header
  // strings as latin1 when the body is a Buffer, as UTF-8 when it is a string. The bytes as received
  // are tried first; a request with chars 0x80-0xFF in its canonical form is tried as their UTF-8 too.
  const matches = (sts: string): boolean => timingSafeEqual(hmac(signingKey, sts), provided)
   
  const utf8Form = /[\x80-\xff]/.test(canonicalRequest)
    ? `${SIGV4_ALGORITHM}\n${amzDate}\n${scope}\n${createHash('sha256').update(canonicalRequest, 'utf8').digest('hex')}`
    : undefined
  if (!matches(stringToSign) && (utf8Form === undefined || !matches(utf8Form))) {
    throw s3Error('SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.', {
      fields: {
        AWSAccessKeyId: credential.accessKeyId,
        StringToSign: stringToSign,
        SignatureProvided: signature,
        CanonicalRequest: canonicalRequest
      }
    })
  }
  return {
    accessKeyId: credential.accessKeyId,
    user: key.user,
    region: credential.region,
    payload,
    signing: { signingKey, scope, amzDate, seedSignature: signature.toLowerCase() }
  }
}

/** `AKID/YYYYMMDD/region/s3/aws4_request`. */
function parseCredential (text: string, fail: (message: string) => Error): ParsedCredential {
  const parts = text.split('/')
  if (parts.length !== 5) throw fail(`the Credential '${text.slice(0, 128)}' is not AKID/date/region/service/aws4_request`)
  const [accessKeyId, date, region, service, terminal] = parts
  if (!/^[\x21-\x7e]{1,128}$/.test(accessKeyId)) throw fail('the access key id is malformed')
  if (!/^[0-9]{8}$/.test(date)) throw fail(`the credential date '${date.slice(0, 16)}' is not YYYYMMDD`)
  if (!/^[A-Za-z0-9-]{1,64}$/.test(region)) throw fail(`the region '${region.slice(0, 64)}' is wrong`)
  if (service !== 's3') throw fail(`the service '${service.slice(0, 32)}' is wrong; expecting 's3'`)
  if (terminal !== 'aws4_request') throw fail('the credential scope does not end with aws4_request')
  return { accessKeyId, date, region }
}

/** `name;name;…`: lower-case, at most SIGV4_SIGNED_HEADERS_MAX, `host` among them. Order as given (it is signed). */
function parseSignedHeaders (text: string, fail: (message: string) => Error): string[] {
  const names = text.split(';')
  if (names.length > SIGV4_SIGNED_HEADERS_MAX) throw fail(`more than ${SIGV4_SIGNED_HEADERS_MAX} signed headers`)
  const seen = new Set<string>()
  for (const n of names) {
    if (!/^[a-z0-9!#$%&'*+.^_`|~-]{1,128}$/.test(n)) throw fail(`the signed header name '${n.slice(0, 64)}' is not a lower-case header name`)
    if (seen.has(n)) throw fail(`the signed header ${n} appears twice`)
    seen.add(n)
  }
  if (!seen.has('host')) throw fail('the host header must be signed')
  return names
}

/**
 * Every x-amz-* header the request carries must be signed (an unsigned one could be added or changed
 * by anyone on the path: x-amz-copy-source, x-amz-meta-*, x-amz-acl …). Presigned URLs may carry an
 * unsigned x-amz-content-sha256 (its value is not used for them).
 */
function checkSignedHeaders (headers: SigV4Request['headers'], signed: string[], presigned = false): void {
  const set = new Set(signed)
  for (const name of Object.keys(headers)) {
    if (headers[name] === undefined) continue
    const n = name.toLowerCase()
    if (!n.startsWith('x-amz-') || set.has(n)) continue
    if (presigned && n === 'x-amz-content-sha256') continue
    throw s3Error('AccessDenied', 'There were headers present in the request which were not signed', { fields: { HeadersNotSigned: n } })
  }
}

function payloadModeOf (value: string): PayloadMode {
  if (isHex64(value)) return { kind: 'sha256', sha256Hex: value.toLowerCase() }
  switch (value) {
    case UNSIGNED_PAYLOAD: return { kind: 'unsigned' }
    case STREAMING_SIGNED: return { kind: 'streaming-signed', trailer: false }
    case STREAMING_SIGNED_TRAILER: return { kind: 'streaming-signed', trailer: true }
    case STREAMING_UNSIGNED_TRAILER: return { kind: 'streaming-unsigned-trailer' }
    case 'STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD':
    case 'STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER':
      throw s3Error('NotImplemented', 'SigV4a (ECDSA) streaming signatures are not supported')
  }
  throw s3Error('InvalidArgument', 'x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-… or a valid sha256 value.', { fields: { ArgumentName: 'x-amz-content-sha256', ArgumentValue: value.slice(0, 128) } })
}

/** The canonical request of SigV4, lines joined by '\n'. */
export function buildCanonicalRequest (
  method: string, rawPath: string, canonicalQueryString: string, headers: SigV4Request['headers'], signedHeaders: string[], payloadLine: string
): string {
  let canonicalHeaders = ''
  for (const name of signedHeaders) canonicalHeaders += `${name}:${canonicalHeaderValue(headers[name])}\n`
  return [method, canonicalUri(rawPath), canonicalQueryString, canonicalHeaders, signedHeaders.join(';'), payloadLine].join('\n')
}

/** `AWS4-HMAC-SHA256\n<amz date>\n<scope>\n<hex sha256 of the canonical request>`. */
export function buildStringToSign (amzDate: string, scope: string, canonicalRequest: string): string {
  return `${SIGV4_ALGORITHM}\n${amzDate}\n${scope}\n${sha256Hex(textBytes(canonicalRequest))}`
}

/**
 * A header's canonical value: each value trimmed, runs of spaces and tabs collapsed to one space,
 * several values joined with ','. A signed header that is absent has the empty value.
 */
function canonicalHeaderValue (value: string | string[] | undefined): string {
  if (value === undefined) return ''
  const values = Array.isArray(value) ? value : [value]
  return values.map((v) => v.trim().replace(/[ \t]+/g, ' ')).join(',')
}

/** The raw path with each segment's percent-encoding made canonical; '/' kept, nothing else normalized. */
export function canonicalUri (rawPath: string): string {
  if (rawPath === '') return '/'
  return rawPath.split('/').map((segment) => uriEncode(percentDecode(segment))).join('/')
}

/** A query parameter: decoded (to look it up) and canonically encoded (to sign it). */
interface QueryParam { name: string, value: string, encodedName: string, encodedValue: string }

/** The query's parameters, decoded ('+' stays '+': SigV4 signers encode a space as %20). */
function parseQuery (rawQuery: string): QueryParam[] {
  if (rawQuery === '') return []
  const params: QueryParam[] = []
  for (const piece of rawQuery.split('&')) {
    if (piece === '') continue
    if (params.length >= SIGV4_QUERY_PARAMS_MAX) throw s3Error('InvalidRequest', `the query string has more than ${SIGV4_QUERY_PARAMS_MAX} parameters`)
    const eq = piece.indexOf('=')
    const name = eq < 0 ? piece : piece.slice(0, eq)
    const value = eq < 0 ? '' : piece.slice(eq + 1)
    const nameBytes = percentDecode(name)
    const valueBytes = percentDecode(value)
    params.push({ name: bytesToString(nameBytes), value: bytesToString(valueBytes), encodedName: uriEncode(nameBytes), encodedValue: uriEncode(valueBytes) })
  }
  return params
}

/** Parameters sorted by encoded name then encoded value, `name=value` joined by '&'; X-Amz-Signature left out of presigned ones. */
function canonicalQuery (params: QueryParam[], presigned: boolean): string {
  const encoded: Array<[string, string]> = []
  for (const p of params) {
    if (presigned && p.name === 'X-Amz-Signature') continue
    encoded.push([p.encodedName, p.encodedValue])
  }
  encoded.sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0)
  return encoded.map(([n, v]) => `${n}=${v}`).join('&')
}

const HEX = '0123456789ABCDEF'

/** RFC 3986 encoding: unreserved bytes (A-Z a-z 0-9 - . _ ~) bare, every other byte %XX upper-case. */
function uriEncode (bytes: Uint8Array): string {
  let out = ''
  for (const b of bytes) {
    if ((b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39) || b === 0x2d || b === 0x2e || b === 0x5f || b === 0x7e) {
      out += String.fromCharCode(b)
    } else {
      out += '%' + HEX[b >> 4] + HEX[b & 15]
    }
  }
  return out
}

/**
 * The bytes a percent-encoded string stands for. A '%' not followed by two hex digits stands for
 * itself. The other characters are taken as textBytes takes the whole string.
 */
function percentDecode (text: string): Uint8Array {
  if (!text.includes('%')) return textBytes(text)
  const encoding = isLatin1(text) ? 'latin1' : 'utf8'
  const parts: Buffer[] = []
  let last = 0
  for (const m of text.matchAll(/%[0-9A-Fa-f]{2}/g)) {
    if (m.index > last) parts.push(Buffer.from(text.slice(last, m.index), encoding))
    parts.push(Buffer.from([parseInt(m[0].slice(1), 16)]))
    last = m.index + 3
  }
  if (last < text.length) parts.push(Buffer.from(text.slice(last), encoding))
  return Buffer.concat(parts)
}

/**
 * The bytes of a string from the request line or a header. node hands those over as latin1 (one
 * char per byte), so a string whose chars are all ≤ 0xFF is taken byte for byte; a string with
 * wider chars (not from node's parser) is taken as UTF-8.
 */
function textBytes (text: string): Buffer {
  return Buffer.from(text, isLatin1(text) ? 'latin1' : 'utf8')
}

function isLatin1 (text: string): boolean {
  // eslint-disable-next-line no-control-regex
  return /^[\x00-\xff]*$/.test(text)
}

/** Bytes as text: UTF-8 when they are valid UTF-8, else latin1 (so no byte is lost). */
export function bytesToString (bytes: Uint8Array): string {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  // UTF-8 when it is valid UTF-8 (the usual case), else latin1 so no byte is lost
  const utf8 = b.toString('utf8')
  return Buffer.from(utf8, 'utf8').equals(b) ? utf8 : b.toString('latin1')
}

function isHex64 (s: string): boolean {
  return /^[0-9a-fA-F]{64}$/.test(s)
}

/** The first value of a header (node joins most repeated headers itself). */
function headerValue (headers: SigV4Request['headers'], name: string): string | undefined {
  const v = headers[name]
  return Array.isArray(v) ? v[0] : v
}

/** ms since the epoch of `YYYYMMDDTHHMMSSZ`, undefined if it is not one. */
export function parseAmzDate (text: string): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(text)
  if (m === null) return undefined
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number)
  const ms = Date.UTC(y, mo - 1, d, h, mi, s)
  const back = new Date(ms)
  if (back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d || h > 23 || mi > 59 || s > 59) return undefined
  return ms
}

/** `YYYYMMDDTHHMMSSZ` of a time. */
export function formatAmzDate (ms: number): string {
  return new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '')
}

function sha256Hex (data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex')
}

/** HMAC-SHA256 of a string (UTF-8) or bytes. */
export function hmac (key: Uint8Array, data: string | Uint8Array): Buffer {
  return createHmac('sha256', key).update(data).digest()
}

/** Derived signing keys by (hash of the secret, date, region); oldest dropped first past SIGNING_KEY_CACHE_MAX. */
const signingKeys = new Map<string, Buffer>()

/** kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), "s3"), "aws4_request"), cached. */
export function deriveSigningKey (secretAccessKey: string, date: string, region: string): Buffer {
  // the cache key holds a digest of the secret, not the secret
  const cacheKey = `${createHash('sha256').update(secretAccessKey).digest('base64')}/${date}/${region}`
  const hit = signingKeys.get(cacheKey)
  if (hit !== undefined) return hit
  const kDate = hmac(Buffer.from('AWS4' + secretAccessKey, 'utf8'), date)
  const kRegion = hmac(kDate, region)
  const kService = hmac(kRegion, 's3')
  const kSigning = hmac(kService, 'aws4_request')
  if (signingKeys.size >= SIGNING_KEY_CACHE_MAX) {
    const oldest = signingKeys.keys().next()
    if (oldest.done !== true) signingKeys.delete(oldest.value)
  }
  signingKeys.set(cacheKey, kSigning)
  return kSigning
}

function malformedHeader (message: string): Error {
  return s3Error('AuthorizationHeaderMalformed', `The authorization header is malformed; ${message}`)
}

/** AWS answers AuthorizationQueryParametersError (400), which errors.ts lacks: InvalidArgument is the nearest. */
function malformedQuery (message: string): Error {
  return s3Error('InvalidArgument', `Error parsing the X-Amz-Credential parameter or another query authentication parameter; ${message}`)
}

function unsupportedMechanism (): Error {
  return s3Error('InvalidRequest', 'The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.')
}
