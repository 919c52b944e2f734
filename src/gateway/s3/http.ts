import { createHash, randomBytes } from 'node:crypto'
import { errorToWire } from '@dfs/api'
import { S3Error, s3Error } from './errors.js'
import { xmlDocument } from './xml.js'
import { bytesToString } from './sigv4.js'
import type { IncomingMessage, ServerResponse } from 'node:http'

/** A request id for `x-amz-request-id` and error bodies. */
export function newRequestId (): string {
  return randomBytes(8).toString('hex').toUpperCase()
}

/**
 * A dfs error (from a FileService call through the RPC contract) as the S3 error a client expects.
 * `notFound` chooses what a NotFound means where it happened (NoSuchKey, NoSuchBucket, NoSuchUpload).
 */
export function toS3Error (err: unknown, notFound: 'NoSuchKey' | 'NoSuchBucket' | 'NoSuchUpload' = 'NoSuchKey'): S3Error {
  if (err instanceof S3Error) return err
  const { name, message } = errorToWire(err)
  switch (name) {
    case 'NotFound': return s3Error(notFound, notFoundMessage[notFound])
    case 'IsADirectory': return s3Error('NoSuchKey', notFoundMessage.NoSuchKey)
    case 'NotADirectory': return s3Error('InvalidRequest', `keys are paths here, and a key cannot be both an object and a prefix of other keys: ${message}`)
    case 'AlreadyExists': return s3Error('InvalidRequest', message)
    case 'PermissionDenied': return s3Error('AccessDenied', 'Access Denied')
    case 'InvalidArgument': return s3Error('InvalidArgument', message)
    case 'InvalidRange': return s3Error('InvalidRange', 'The requested range is not satisfiable')
    case 'BadDigest': return s3Error('BadDigest', 'The Content-MD5 you specified did not match what we received.')
    case 'DirectoryNotEmpty': return s3Error('BucketNotEmpty', 'The bucket you tried to delete is not empty')
    case 'QuotaExceeded': return new S3Error('QuotaExceeded', 403, message)
    case 'RateLimited': return s3Error('SlowDown', 'Please reduce your request rate.')
    case 'StorageFull': return new S3Error('InsufficientStorage', 507, message)
    case 'NoQuorum':
    case 'Unavailable':
    case 'NotLeader':
    case 'NodeUnreachable':
    case 'DeadlineExceeded':
      return s3Error('ServiceUnavailable', `${name}: ${message}`)
    default:
      return s3Error('InternalError', `${name}: ${message}`)
  }
}

const notFoundMessage = {
  NoSuchKey: 'The specified key does not exist.',
  NoSuchBucket: 'The specified bucket does not exist',
  NoSuchUpload: 'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.'
} as const

/** Writes an S3 error: its status, and its XML body unless the request was a HEAD. */
export function sendError (req: IncomingMessage, res: ServerResponse, err: S3Error, requestId: string, resource: string): void {
  if (res.headersSent) {
    // the status line is gone: all a client can be told is that the body is cut short
    res.destroy(err)
    return
  }
  const body = req.method === 'HEAD'
    ? ''
    : xmlDocument('Error', [
      ['Code', err.code],
      ['Message', err.message],
      ...Object.entries(err.fields).map(([k, v]): [string, string] => [k, v]),
      ['Resource', resource],
      ['RequestId', requestId]
    ], { xmlns: false })
  res.writeHead(err.status, {
    'content-type': 'application/xml',
    'content-length': Buffer.byteLength(body),
    'x-amz-request-id': requestId,
    // an error may leave the request's body unread: do not reuse the connection for another request
    ...(req.complete ? {} : { connection: 'close' })
  })
  res.end(body)
}

/** Writes a 200 (or `status`) with an XML body. */
export function sendXml (res: ServerResponse, xml: string, headers: Record<string, string | number> = {}, status = 200): void {
  res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(xml), ...headers })
  res.end(xml)
}

/** Writes a status with no body. */
export function sendEmpty (res: ServerResponse, status: number, headers: Record<string, string | number> = {}): void {
  res.writeHead(status, { 'content-length': 0, ...headers })
  res.end()
}

/** An HTTP date (RFC 7231) of a millisecond time. */
export function httpDate (ms: number): string {
  return new Date(ms).toUTCString()
}

/** An ISO 8601 time with milliseconds, as S3's XML carries them. */
export function isoDate (ms: number): string {
  return new Date(ms).toISOString()
}

/** An ETag as S3 sends it: quoted. */
export function quoteEtag (etag: string): string {
  return `"${etag}"`
}

/** One header's value as a string (the first of several), or undefined. */
export function header (req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name]
  return Array.isArray(v) ? v[0] : v
}

/** `x-amz-meta-*` headers as a user metadata map (names lower-case, without the prefix). */
export function userMetaOf (req: IncomingMessage): Record<string, string> | undefined {
  const meta: Record<string, string> = {}
  let any = false
  for (const [name, value] of Object.entries(req.headers)) {
    if (!name.startsWith('x-amz-meta-') || value === undefined) continue
    meta[name.slice('x-amz-meta-'.length)] = headerText(Array.isArray(value) ? value.join(',') : value)
    any = true
  }
  return any ? meta : undefined
}

/**
 * A header value as text: node gives header bytes as latin1 chars; bytes that form UTF-8 (what most
 * clients send for non-ASCII) are read as UTF-8, anything else stays latin1.
 */
export function headerText (value: string): string {
  if (!/[\x80-\xff]/.test(value)) return value
  return bytesToString(Buffer.from(value, 'latin1'))
}

/** Text as a header value node can send: latin1 as it is, wider characters as their UTF-8 bytes. */
export function headerValueOf (text: string): string {
  // eslint-disable-next-line no-control-regex
  return /^[\x00-\xff]*$/.test(text) ? text : Buffer.from(text, 'utf8').toString('latin1')
}

/** Headers of an object's metadata for a GET or HEAD. */
export function objectHeaders (file: { size: number, mtimeMs: number, etag?: string, contentType?: string, meta?: Record<string, string> }): Record<string, string | number> {
  const h: Record<string, string | number> = {
    'last-modified': httpDate(file.mtimeMs),
    'accept-ranges': 'bytes',
    'content-type': file.contentType ?? 'application/octet-stream'
  }
  if (file.etag !== undefined) h.etag = quoteEtag(file.etag)
  for (const [k, v] of Object.entries(file.meta ?? {})) h[`x-amz-meta-${k}`] = headerValueOf(v)
  return h
}

/**
 * The ETag of a file: the MD5 of its bytes when it was written with one (through S3, or `fs put` with
 * an MD5), else one derived from its version, time and size — suffixed `-1` like a multipart ETag, so
 * no client takes it for an MD5 of the bytes.
 */
export function etagOf (file: { size: number, mtimeMs: number, version: number, etag?: string }): string {
  if (file.etag !== undefined) return file.etag
  return `${createHash('md5').update(`${file.version}:${file.mtimeMs}:${file.size}`).digest('hex')}-1`
}
