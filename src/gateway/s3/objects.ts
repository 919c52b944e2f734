import { isError, type CopyResult } from '@dfs/api'
import { s3Error } from './errors.js'
import { etagOf, header, isoDate, objectHeaders, quoteEtag, sendEmpty, sendXml, toS3Error, userMetaOf } from './http.js'
import { objectPath, requireBucketName } from './names.js'
import { deleteKey, missingObject, requireBucket } from './buckets.js'
import { abortUpload, completeUpload, createUpload, listParts, uploadPart } from './multipart.js'
import { xmlDocument } from './xml.js'
import type { Route, S3Context } from './gateway.js'

/** The largest object one PutObject may store (S3's limit for a single PUT). */
export const PUT_OBJECT_BYTES_MAX = 5 * 1024 ** 3

const UNSUPPORTED_OBJECT_QUERIES = ['acl', 'tagging', 'retention', 'legal-hold', 'torrent', 'restore', 'select', 'attributes']

/** The route of a request to an object (a bucket and a key). */
export function objectRoutes (ctx: S3Context): Route {
  const { method, query } = ctx
  for (const q of UNSUPPORTED_OBJECT_QUERIES) {
    if (query.has(q)) throw s3Error('NotImplemented', `the ?${q} sub-resource is not implemented`)
  }
  if (query.has('versionId') && query.get('versionId') !== 'null') throw s3Error('NotImplemented', 'versioning is not implemented')
  switch (method) {
    case 'GET':
      return query.has('uploadId') ? listParts : getObject
    case 'HEAD': return headObject
    case 'PUT':
      if (query.has('uploadId') || query.has('partNumber')) return uploadPart
      return header(ctx.req, 'x-amz-copy-source') !== undefined ? copyObject : putObject
    case 'DELETE':
      return query.has('uploadId') ? abortUpload : deleteObject
    case 'POST':
      if (query.has('uploads')) return createUpload
      if (query.has('uploadId')) return completeUpload
      throw s3Error('NotImplemented', 'this POST on an object is not implemented')
    default:
      throw s3Error('MethodNotAllowed', `${method} is not allowed on an object`)
  }
}

/** The metadata a file answers with (fs.stat and fs.get both carry it). */
export interface FileInfo {
  size: number
  mtimeMs: number
  version: number
  etag?: string
  contentType?: string
  meta?: Record<string, string>
}

/**
 * Evaluates If-Match, If-None-Match, If-Modified-Since and If-Unmodified-Since (RFC 7232 order):
 * 412 PreconditionFailed, or 304 (answered here: returns true) for a GET or HEAD.
 */
function notModified (ctx: S3Context, file: FileInfo, prefix = 'if-'): boolean {
  const etag = etagOf(file)
  const matches = (list: string): boolean => list.split(',').map((s) => s.trim()).some((t) => t === '*' || t.replace(/^W\//, '').replace(/^"|"$/g, '') === etag)
  const date = (name: string): number | undefined => {
    const v = header(ctx.req, name)
    if (v === undefined) return undefined
    const ms = Date.parse(v)
    return Number.isNaN(ms) ? undefined : ms
  }
  const seconds = Math.floor(file.mtimeMs / 1000) * 1000
  const ifMatch = header(ctx.req, `${prefix}match`)
  const ifNoneMatch = header(ctx.req, `${prefix}none-match`)
  const since = date(`${prefix}modified-since`)
  const unmodifiedSince = date(`${prefix}unmodified-since`)
  if (ifMatch !== undefined) {
    if (!matches(ifMatch)) throw s3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', { fields: { Condition: 'If-Match' } })
  } else if (unmodifiedSince !== undefined && seconds > unmodifiedSince) {
    throw s3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', { fields: { Condition: 'If-Unmodified-Since' } })
  }
  const readOnly = ctx.method === 'GET' || ctx.method === 'HEAD'
  if (ifNoneMatch !== undefined) {
    if (matches(ifNoneMatch)) {
      if (readOnly && prefix === 'if-') return true
      throw s3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', { fields: { Condition: 'If-None-Match' } })
    }
  } else if (since !== undefined && seconds <= since && readOnly && prefix === 'if-') {
    return true
  }
  return false
}

/** A Range header (`bytes=a-b`, `bytes=a-`, `bytes=-n`) as offset and length for a file of `size` bytes; undefined: the whole file. */
export function parseRange (value: string | undefined, size: number): { offset: number, length: number } | undefined {
  if (value === undefined) return undefined
  const m = /^bytes=(\d{0,15})-(\d{0,15})$/.exec(value.trim())
  // a Range S3 cannot parse (several ranges, other units) is ignored, as HTTP allows
  if (m === null || (m[1] === '' && m[2] === '')) return undefined
  if (m[1] === '') {
    const n = Number(m[2])
    if (n === 0) throw s3Error('InvalidRange', 'The requested range is not satisfiable', { fields: { RangeRequested: value, ActualObjectSize: String(size) } })
    // an empty object has no last bytes to name (its Content-Range would read `bytes 0--1/0`): all of it
    if (size === 0) return undefined
    const length = Math.min(n, size)
    return { offset: size - length, length }
  }
  const first = Number(m[1])
  if (first >= size) throw s3Error('InvalidRange', 'The requested range is not satisfiable', { fields: { RangeRequested: value, ActualObjectSize: String(size) } })
  const last = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1)
  if (last < first) return undefined
  return { offset: first, length: last - first + 1 }
}

async function getObject (ctx: S3Context): Promise<void> {
  const { path, dir } = objectPath(ctx.bucket as string, ctx.key as string)
  if (dir) return await getFolder(ctx, path)
  const rangeHeader = header(ctx.req, 'range')
  let partNumber: number | undefined
  if (ctx.query.has('partNumber')) {
    partNumber = Number(ctx.query.get('partNumber'))
    if (partNumber !== 1) throw s3Error('InvalidArgument', 'partNumber of a GET may only be 1 here: objects are not kept in parts')
  }
  // the range needs the size: a ranged GET reads the metadata first (a suffix range `-n` especially)
  let range: { offset: number, length: number } | undefined
  if (rangeHeader !== undefined) {
    let stat
    try {
      stat = await ctx.rpc.call('fs.stat', { path }, { signal: ctx.signal })
    } catch (err) {
      return await missingObject(ctx, err)
    }
    if (notModified(ctx, stat)) return sendEmpty(ctx.res, 304, { etag: quoteEtag(etagOf(stat)), 'last-modified': new Date(stat.mtimeMs).toUTCString() })
    range = parseRange(rangeHeader, stat.size)
  }
  let got
  try {
    got = await ctx.rpc.download('fs.get', { path, ...(range !== undefined ? { offset: range.offset, length: range.length } : {}) }, { signal: ctx.signal })
  } catch (err) {
    return await missingObject(ctx, err)
  }
  const { result, body } = got
  let started = false
  try {
    const first = await body.next()
    started = true
    if (range === undefined && notModified(ctx, result)) {
      await body.return(undefined)
      return sendEmpty(ctx.res, 304, { etag: quoteEtag(etagOf(result)), 'last-modified': new Date(result.mtimeMs).toUTCString() })
    }
    const headers: Record<string, string | number> = { ...objectHeaders({ ...result, etag: etagOf(result) }), 'content-length': result.length }
    overrideHeaders(ctx, headers)
    if (range !== undefined) headers['content-range'] = `bytes ${result.offset}-${result.offset + result.length - 1}/${result.size}`
    ctx.res.writeHead(range !== undefined ? 206 : 200, headers)
    if (first.done !== true) await write(ctx, first.value)
    for await (const chunk of body) await write(ctx, chunk)
    ctx.res.end()
  } finally {
    if (!started) {
      // a generator only cleans up once started: start it, then leave it
      await body.next().catch(() => {})
    }
    await body.return(undefined).catch(() => {})
  }
}

/** `response-content-type` and friends of a (presigned) GET: they set the answer's headers. */
function overrideHeaders (ctx: S3Context, headers: Record<string, string | number>): void {
  const names: Record<string, string> = {
    'response-content-type': 'content-type',
    'response-content-language': 'content-language',
    'response-expires': 'expires',
    'response-cache-control': 'cache-control',
    'response-content-disposition': 'content-disposition',
    'response-content-encoding': 'content-encoding'
  }
  for (const [q, h] of Object.entries(names)) {
    const v = ctx.query.get(q)
    if (v !== null && !/[\r\n]/.test(v)) headers[h] = v
  }
}

/** Writes a chunk, waiting while the client reads slower than the file arrives. */
async function write (ctx: S3Context, chunk: Uint8Array): Promise<void> {
  if (ctx.res.write(chunk)) return
  await new Promise<void>((resolve, reject) => {
    const done = (): void => { ctx.res.off('drain', done); ctx.res.off('close', closed); resolve() }
    const closed = (): void => { ctx.res.off('drain', done); reject(s3Error('IncompleteBody', 'the client went away')) }
    ctx.res.once('drain', done)
    ctx.res.once('close', closed)
  })
}

/** GET of a key ending in `/`: an empty "folder" object when that directory exists. */
async function getFolder (ctx: S3Context, path: string): Promise<void> {
  try {
    await ctx.rpc.call('fs.ls', { path, limit: 1 }, { signal: ctx.signal })
  } catch (err) {
    return await missingObject(ctx, err)
  }
  sendEmpty(ctx.res, 200, { 'content-type': 'application/x-directory', etag: quoteEtag('d41d8cd98f00b204e9800998ecf8427e') })
}

async function headObject (ctx: S3Context): Promise<void> {
  const { path, dir } = objectPath(ctx.bucket as string, ctx.key as string)
  if (dir) return await getFolder(ctx, path)
  let stat
  try {
    stat = await ctx.rpc.call('fs.stat', { path }, { signal: ctx.signal })
  } catch (err) {
    return await missingObject(ctx, err)
  }
  if (notModified(ctx, stat)) return sendEmpty(ctx.res, 304, { etag: quoteEtag(etagOf(stat)) })
  const headers: Record<string, string | number> = { ...objectHeaders({ ...stat, etag: etagOf(stat) }), 'content-length': stat.size }
  overrideHeaders(ctx, headers)
  const range = parseRange(header(ctx.req, 'range'), stat.size)
  if (range !== undefined) {
    headers['content-length'] = range.length
    headers['content-range'] = `bytes ${range.offset}-${range.offset + range.length - 1}/${stat.size}`
  }
  ctx.res.writeHead(range !== undefined ? 206 : 200, headers)
  ctx.res.end()
}

/** The declared size of a PUT's content (x-amz-decoded-content-length for aws-chunked, else Content-Length). */
function declaredLength (ctx: S3Context): number | undefined {
  const raw = header(ctx.req, 'x-amz-decoded-content-length') ?? header(ctx.req, 'content-length')
  if (raw === undefined) return undefined
  if (!/^\d{1,16}$/.test(raw)) throw s3Error('InvalidArgument', 'Content-Length must be a non-negative integer')
  return Number(raw)
}

async function putObject (ctx: S3Context): Promise<void> {
  const { path, dir } = objectPath(ctx.bucket as string, ctx.key as string)
  const size = declaredLength(ctx)
  if (size === undefined && header(ctx.req, 'transfer-encoding') === undefined) throw s3Error('MissingContentLength', 'You must provide the Content-Length HTTP header.')
  if (size !== undefined && size > PUT_OBJECT_BYTES_MAX) throw s3Error('EntityTooLarge', `a single PUT may store at most ${PUT_OBJECT_BYTES_MAX} bytes: use a multipart upload`)
  if (dir) {
    // a "folder" marker: an explicit directory, which holds no bytes
    const body = await ctx.smallBody(0)
    if (body.byteLength !== 0) throw s3Error('InvalidArgument', 'an object whose key ends in "/" must be empty here (it is a directory)')
    await requireBucket(ctx)
    await ctx.rpc.call('fs.mkdir', { path }, { signal: ctx.signal })
    return sendEmpty(ctx.res, 200, { etag: quoteEtag('d41d8cd98f00b204e9800998ecf8427e') })
  }
  await requireBucket(ctx)
  const contentType = header(ctx.req, 'content-type')
  const meta = userMetaOf(ctx.req)
  let put
  try {
    put = await ctx.rpc.upload('fs.put', {
      path,
      md5: true,
      ...(size !== undefined ? { size } : {}),
      ...(contentType !== undefined ? { contentType } : {}),
      ...(meta !== undefined ? { meta } : {})
    }, ctx.body(), { signal: ctx.signal })
  } catch (err) {
    if (isError(err, 'InvalidArgument') && /meta/i.test((err as Error).message)) throw s3Error('MetadataTooLarge', (err as Error).message)
    throw toS3Error(err)
  }
  sendEmpty(ctx.res, 200, { etag: quoteEtag(put.etag ?? '') })
}

async function deleteObject (ctx: S3Context): Promise<void> {
  await requireBucket(ctx)
  await deleteKey(ctx, ctx.key as string)
  sendEmpty(ctx.res, 204)
}

/** The request's `x-amz-meta-*` as fs.cp's `meta` (absent when there is none). */
function userMetaField (ctx: S3Context): { meta?: Record<string, string> } {
  const meta = userMetaOf(ctx.req)
  return meta !== undefined ? { meta } : {}
}

/** `x-amz-copy-source`: `[/]bucket/key[?versionId=…]`, URL-encoded. */
export function copySourceOf (ctx: S3Context): { bucket: string, key: string, path: string } {
  let raw = header(ctx.req, 'x-amz-copy-source') as string
  const q = raw.indexOf('?')
  if (q >= 0) {
    const version = new URLSearchParams(raw.slice(q + 1)).get('versionId')
    if (version !== null && version !== 'null') throw s3Error('NotImplemented', 'versioning is not implemented')
    raw = raw.slice(0, q)
  }
  let decoded: string
  try {
    decoded = decodeURIComponent(raw)
  } catch {
    throw s3Error('InvalidArgument', 'x-amz-copy-source is not valid percent-encoded UTF-8')
  }
  if (decoded.startsWith('/')) decoded = decoded.slice(1)
  const slash = decoded.indexOf('/')
  if (slash <= 0 || slash === decoded.length - 1) throw s3Error('InvalidArgument', 'x-amz-copy-source must be bucket/key')
  const bucket = requireBucketName(decoded.slice(0, slash))
  const key = decoded.slice(slash + 1)
  const { path, dir } = objectPath(bucket, key)
  if (dir) throw s3Error('InvalidArgument', 'a "folder" cannot be copied')
  return { bucket, key, path }
}

/**
 * Copies the whole copy source to `path` with `fs.cp` after checking its x-amz-copy-source-if-*
 * conditions on its metadata: within one metadata group the copy shares the source's extents and no
 * byte moves; across groups the node copies the bytes. `meta` given replaces the source's content
 * type and user metadata. Undefined (nothing copied) when `accept` refuses the source's metadata.
 * (The source is checked, then copied: a put over it in between is what is copied.)
 */
export async function copyWhole (ctx: S3Context, path: string, meta?: { contentType?: string, meta?: Record<string, string> },
  accept: (source: FileInfo) => boolean = () => true): Promise<CopyResult | undefined> {
  const src = copySourceOf(ctx)
  let stat
  try {
    stat = await ctx.rpc.call('fs.stat', { path: src.path }, { signal: ctx.signal })
  } catch (err) {
    if (isError(err, 'NotFound') || isError(err, 'IsADirectory') || isError(err, 'NotADirectory')) throw s3Error('NoSuchKey', 'The specified key does not exist.', { fields: { Key: src.key } })
    throw toS3Error(err)
  }
  notModified(ctx, stat, 'x-amz-copy-source-if-')
  if (!accept(stat)) return undefined
  return await ctx.rpc.call('fs.cp', { from: src.path, to: path, replace: true, ...(meta !== undefined ? { ...meta, replaceMeta: true } : {}) }, { signal: ctx.signal })
    .catch((err) => { throw toS3Error(err) })
}

/** Reads a copy source (whole, or `range`) and checks its x-amz-copy-source-if-* conditions; the bytes travel through this node. */
export async function openCopySource (ctx: S3Context, range?: { offset: number, length: number }): Promise<{ info: FileInfo, body: AsyncGenerator<Uint8Array> }> {
  const src = copySourceOf(ctx)
  let got
  try {
    got = await ctx.rpc.download('fs.get', { path: src.path, ...(range ?? {}) }, { signal: ctx.signal })
  } catch (err) {
    if (isError(err, 'NotFound') || isError(err, 'IsADirectory') || isError(err, 'NotADirectory')) throw s3Error('NoSuchKey', 'The specified key does not exist.', { fields: { Key: src.key } })
    throw toS3Error(err)
  }
  try {
    notModified(ctx, got.result, 'x-amz-copy-source-if-')
  } catch (err) {
    await got.body.next().catch(() => {})
    await got.body.return(undefined).catch(() => {})
    throw err
  }
  return { info: got.result, body: got.body }
}

async function copyObject (ctx: S3Context): Promise<void> {
  const { path, dir } = objectPath(ctx.bucket as string, ctx.key as string)
  if (dir) throw s3Error('InvalidArgument', 'a "folder" cannot be a copy target')
  await requireBucket(ctx)
  const directive = header(ctx.req, 'x-amz-metadata-directive') ?? 'COPY'
  if (directive !== 'COPY' && directive !== 'REPLACE') throw s3Error('InvalidArgument', 'x-amz-metadata-directive must be COPY or REPLACE')
  // the request's own body (empty) is read to its end first: its signature is checked before anything changes
  await ctx.smallBody(0)
  const src = copySourceOf(ctx)
  if (src.path === path && directive === 'COPY') {
    throw s3Error('InvalidRequest', 'This copy request is illegal because it is trying to copy an object to itself without changing the object\'s metadata, storage class, website redirect location or encryption attributes.')
  }
  const contentType = header(ctx.req, 'content-type')
  const copied = await copyWhole(ctx, path, directive === 'REPLACE' ? { ...(contentType !== undefined ? { contentType } : {}), ...userMetaField(ctx) } : undefined)
  sendXml(ctx.res, xmlDocument('CopyObjectResult', [
    ['LastModified', isoDate(copied?.mtimeMs ?? Date.now())],
    ['ETag', quoteEtag(copied?.etag ?? '')]
  ]))
}
