import { isError, type DirEntry } from '@dfs/api'
import { s3Error } from './errors.js'
import { etagOf, isoDate, quoteEtag, sendEmpty, sendXml, toS3Error } from './http.js'
import { listObjects, type ListedObject } from './list.js'
import { bucketPath, isBucketName, objectPath, UPLOADS_DIR } from './names.js'
import { S3_XMLNS, childText, childrenNamed, escapeXml, parseXml, xmlDocument, type XmlNode } from './xml.js'
import { listMultipartUploads } from './multipart.js'
import type { Route, S3Context } from './gateway.js'

/** Most keys one DeleteObjects request may name (S3's limit). */
export const DELETE_OBJECTS_MAX = 1000
/** Bytes of a DeleteObjects or CreateBucket body. */
const XML_BODY_BYTES_MAX = 1024 * 1024

/** Sub-resources of a bucket this gateway does not implement: answered NotImplemented. */
const UNSUPPORTED_BUCKET_QUERIES = [
  'acl', 'analytics', 'cors', 'encryption', 'intelligent-tiering', 'inventory', 'lifecycle', 'logging', 'metrics', 'notification',
  'object-lock', 'ownershipControls', 'policy', 'policyStatus', 'publicAccessBlock', 'replication', 'requestPayment', 'tagging',
  'versions', 'website', 'accelerate'
]

/** The route of a request to the service (no bucket) or to a bucket (no key). */
export function bucketRoutes (ctx: S3Context): Route {
  const { method, query } = ctx
  if (ctx.bucket === undefined) {
    if (method === 'GET') return listBuckets
    throw s3Error('MethodNotAllowed', `${method} is not allowed on the service`)
  }
  for (const q of UNSUPPORTED_BUCKET_QUERIES) {
    if (query.has(q)) throw s3Error('NotImplemented', `the ?${q} sub-resource is not implemented`)
  }
  switch (method) {
    case 'GET':
      if (query.has('location')) return getBucketLocation
      if (query.has('versioning')) return getBucketVersioning
      if (query.has('uploads')) return listMultipartUploads
      return query.get('list-type') === '2' ? listObjectsV2 : listObjectsV1
    case 'HEAD': return headBucket
    case 'PUT': return createBucket
    case 'DELETE': return deleteBucket
    case 'POST':
      if (query.has('delete')) return deleteObjects
      throw s3Error('NotImplemented', 'this POST on a bucket is not implemented')
    default:
      throw s3Error('MethodNotAllowed', `${method} is not allowed on a bucket`)
  }
}

/**
 * Throws NoSuchBucket unless the bucket's directory exists. This node's applied state answers first
 * (no quorum round: a PUT pays no extra read); only when it says the bucket is missing does a
 * linearizable read decide, so a bucket just created through another node is found.
 */
export async function requireBucket (ctx: S3Context, options: { linearizable?: boolean } = {}): Promise<void> {
  const path = bucketPath(ctx.bucket as string)
  const exists = async (consistency: 'stale' | 'linearizable'): Promise<boolean> => {
    try {
      await ctx.rpc.call('fs.ls', { path, limit: 1, consistency }, { signal: ctx.signal })
      return true
    } catch (err) {
      if (isError(err, 'NotFound') || isError(err, 'NotADirectory')) return false
      throw err
    }
  }
  if ((options.linearizable !== true && await exists('stale')) || await exists('linearizable')) return
  throw s3Error('NoSuchBucket', 'The specified bucket does not exist', { fields: { BucketName: ctx.bucket as string } })
}

/** A NotFound of an object call: NoSuchBucket when the bucket itself is missing, else NoSuchKey. */
export async function missingObject (ctx: S3Context, err: unknown): Promise<never> {
  if (isError(err, 'NotFound') || isError(err, 'IsADirectory') || isError(err, 'NotADirectory')) {
    await requireBucket(ctx)
    throw s3Error('NoSuchKey', 'The specified key does not exist.', { fields: { Key: ctx.key ?? '' } })
  }
  throw toS3Error(err)
}

/** Every entry of a directory, page by page through fs.ls (each page its own read). */
export async function * dirEntries (ctx: S3Context, path: string): AsyncGenerator<DirEntry> {
  let after: string | undefined
  while (true) {
    const page = await ctx.rpc.call('fs.ls', { path, ...(after !== undefined ? { after } : {}) }, { signal: ctx.signal })
    yield * page.entries
    if (!page.more || page.entries.length === 0) return
    after = page.entries[page.entries.length - 1].name
  }
}

async function listBuckets (ctx: S3Context): Promise<void> {
  const buckets: DirEntry[] = []
  for await (const e of dirEntries(ctx, '/')) if (e.type === 'dir' && isBucketName(e.name)) buckets.push(e)
  sendXml(ctx.res, xmlDocument('ListAllMyBucketsResult', [
    ['Owner', [['ID', ctx.auth.user], ['DisplayName', ctx.auth.user]]],
    ['Buckets', buckets.map((b): XmlNode => ['Bucket', [['Name', b.name], ['CreationDate', isoDate(ctx.createdAtMs)]]])]
  ]))
}

async function getBucketLocation (ctx: S3Context): Promise<void> {
  await requireBucket(ctx, { linearizable: true })
  // us-east-1 is answered as an empty constraint, as S3 does
  const region = ctx.region === 'us-east-1' ? '' : escapeXml(ctx.region)
  sendXml(ctx.res, `<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint xmlns="${S3_XMLNS}">${region}</LocationConstraint>`)
}

async function getBucketVersioning (ctx: S3Context): Promise<void> {
  await requireBucket(ctx)
  // never enabled: the empty configuration
  sendXml(ctx.res, xmlDocument('VersioningConfiguration', []))
}

async function headBucket (ctx: S3Context): Promise<void> {
  await requireBucket(ctx, { linearizable: true })
  sendEmpty(ctx.res, 200, { 'x-amz-bucket-region': ctx.region })
}

async function createBucket (ctx: S3Context): Promise<void> {
  const bucket = ctx.bucket as string
  // the optional CreateBucketConfiguration: any location constraint is accepted (one cluster, one region)
  const body = await ctx.smallBody(XML_BODY_BYTES_MAX)
  if (body.byteLength > 0) {
    const doc = parseXml(body.toString('utf8'))
    if (doc.name !== 'CreateBucketConfiguration') throw s3Error('MalformedXML', `expected <CreateBucketConfiguration>, got <${doc.name}>`)
  }
  let exists: boolean
  try {
    await ctx.rpc.call('fs.stat', { path: bucketPath(bucket) }, { signal: ctx.signal })
    // a file at the top of the namespace with the bucket's name
    throw s3Error('BucketAlreadyExists', 'The requested bucket name is not available.', { fields: { BucketName: bucket } })
  } catch (err) {
    if (isError(err, 'IsADirectory')) exists = true
    else if (isError(err, 'NotFound')) exists = false
    else throw err
  }
  if (exists) throw s3Error('BucketAlreadyOwnedByYou', 'Your previous request to create the named bucket succeeded and you already own it.', { fields: { BucketName: bucket } })
  await ctx.rpc.call('fs.mkdir', { path: bucketPath(bucket) }, { signal: ctx.signal })
  sendEmpty(ctx.res, 200, { location: `/${bucket}` })
}

async function deleteBucket (ctx: S3Context): Promise<void> {
  try {
    await ctx.rpc.call('fs.rmdir', { path: bucketPath(ctx.bucket as string) }, { signal: ctx.signal })
  } catch (err) {
    if (isError(err, 'NotFound') || isError(err, 'NotADirectory')) throw s3Error('NoSuchBucket', 'The specified bucket does not exist', { fields: { BucketName: ctx.bucket as string } })
    throw err
  }
  sendEmpty(ctx.res, 204)
}

/** max-keys: 1000 at most (and by default), as S3. */
function maxKeysOf (ctx: S3Context, name = 'max-keys'): number {
  const raw = ctx.query.get(name)
  if (raw === null) return 1000
  if (!/^\d{1,9}$/.test(raw)) throw s3Error('InvalidArgument', `${name} must be a non-negative integer`)
  return Math.min(Number(raw), 1000)
}

/** The page of objects for the listing params (the bucket must exist). */
async function listPage (ctx: S3Context, after: string, maxKeys: number): Promise<{ objects: ListedObject[], prefixes: string[], truncated: boolean, last: string | undefined, prefix: string, delimiter: string }> {
  const prefix = ctx.query.get('prefix') ?? ''
  const delimiter = ctx.query.get('delimiter') ?? ''
  await requireBucket(ctx)
  const page = await listObjects(async (path, from) => await ctx.rpc.call('fs.ls', { path, ...(from !== undefined ? { after: from } : {}) }, { signal: ctx.signal }),
    { bucket: ctx.bucket as string, prefix, delimiter, after, maxKeys })
  return { ...page, prefix, delimiter }
}

function contents (ctx: S3Context, objects: ListedObject[], encode: (s: string) => string, owner: boolean): XmlNode[] {
  return objects.map((o): XmlNode => {
    const e = o.entry
    const mtimeMs = e.mtimeMs ?? ctx.createdAtMs
    const fields: XmlNode[] = [
      ['Key', encode(o.key)],
      ['LastModified', isoDate(mtimeMs)],
      ['ETag', quoteEtag(etagOf({ size: e.size, mtimeMs, version: e.version ?? 0, etag: e.etag }))],
      ['Size', e.type === 'file' ? e.size : 0],
      ['StorageClass', 'STANDARD']
    ]
    if (owner) fields.push(['Owner', [['ID', ctx.auth.user], ['DisplayName', ctx.auth.user]]])
    return ['Contents', fields]
  })
}

/** `encoding-type=url`: keys and prefixes percent-encoded in the answer. */
function encoderOf (ctx: S3Context): (s: string) => string {
  const t = ctx.query.get('encoding-type')
  if (t === null) return (s) => s
  if (t !== 'url') throw s3Error('InvalidArgument', 'encoding-type must be url')
  return (s) => encodeURIComponent(s).replace(/%2F/g, '/')
}

async function listObjectsV2 (ctx: S3Context): Promise<void> {
  const token = ctx.query.get('continuation-token')
  const startAfter = ctx.query.get('start-after') ?? ''
  let after = startAfter
  if (token !== null) {
    const decoded = Buffer.from(token, 'base64url').toString('utf8')
    if (!decoded.startsWith('k:')) throw s3Error('InvalidArgument', 'The continuation token provided is incorrect')
    after = decoded.slice(2)
  }
  const maxKeys = maxKeysOf(ctx)
  const encode = encoderOf(ctx)
  const page = await listPage(ctx, after, maxKeys)
  const next = page.truncated && page.last !== undefined ? Buffer.from(`k:${page.last}`, 'utf8').toString('base64url') : undefined
  sendXml(ctx.res, xmlDocument('ListBucketResult', [
    ['Name', ctx.bucket],
    ['Prefix', encode(page.prefix)],
    page.delimiter !== '' ? ['Delimiter', encode(page.delimiter)] : ['Delimiter', undefined],
    ['MaxKeys', maxKeys],
    ['KeyCount', page.objects.length + page.prefixes.length],
    ['IsTruncated', page.truncated],
    ['ContinuationToken', token ?? undefined],
    ['NextContinuationToken', next],
    ['StartAfter', startAfter !== '' ? encode(startAfter) : undefined],
    ['EncodingType', ctx.query.get('encoding-type') ?? undefined],
    ...contents(ctx, page.objects, encode, ctx.query.get('fetch-owner') === 'true'),
    ...page.prefixes.map((p): XmlNode => ['CommonPrefixes', [['Prefix', encode(p)]]])
  ]))
}

async function listObjectsV1 (ctx: S3Context): Promise<void> {
  const marker = ctx.query.get('marker') ?? ''
  const maxKeys = maxKeysOf(ctx)
  const encode = encoderOf(ctx)
  const page = await listPage(ctx, marker, maxKeys)
  sendXml(ctx.res, xmlDocument('ListBucketResult', [
    ['Name', ctx.bucket],
    ['Prefix', encode(page.prefix)],
    ['Marker', encode(marker)],
    page.delimiter !== '' ? ['Delimiter', encode(page.delimiter)] : ['Delimiter', undefined],
    ['MaxKeys', maxKeys],
    ['IsTruncated', page.truncated],
    // with a delimiter S3 gives NextMarker; clients without one use the last key
    ['NextMarker', page.truncated && page.delimiter !== '' && page.last !== undefined ? encode(page.last) : undefined],
    ['EncodingType', ctx.query.get('encoding-type') ?? undefined],
    ...contents(ctx, page.objects, encode, true),
    ...page.prefixes.map((p): XmlNode => ['CommonPrefixes', [['Prefix', encode(p)]]])
  ]))
}

async function deleteObjects (ctx: S3Context): Promise<void> {
  const body = await ctx.smallBody(XML_BODY_BYTES_MAX)
  const doc = parseXml(body.toString('utf8'))
  if (doc.name !== 'Delete') throw s3Error('MalformedXML', `expected <Delete>, got <${doc.name}>`)
  const quiet = childText(doc, 'Quiet') === 'true'
  const objects = childrenNamed(doc, 'Object')
  if (objects.length === 0 || objects.length > DELETE_OBJECTS_MAX) throw s3Error('MalformedXML', `a Delete names 1 to ${DELETE_OBJECTS_MAX} objects`)
  await requireBucket(ctx)
  const deleted: XmlNode[] = []
  const errors: XmlNode[] = []
  for (const o of objects) {
    const key = childText(o, 'Key')
    if (key === undefined) throw s3Error('MalformedXML', 'an <Object> without <Key>')
    try {
      await deleteKey(ctx, key)
      if (!quiet) deleted.push(['Deleted', [['Key', key]]])
    } catch (err) {
      const e = toS3Error(err)
      errors.push(['Error', [['Key', key], ['Code', e.code], ['Message', e.message]]])
    }
  }
  sendXml(ctx.res, xmlDocument('DeleteResult', [...deleted, ...errors]))
}

/** Deletes one key: a missing one is no error (S3 answers 204 for it too). */
export async function deleteKey (ctx: S3Context, key: string): Promise<void> {
  const { path, dir } = objectPath(ctx.bucket as string, key)
  if (key === UPLOADS_DIR) throw s3Error('InvalidArgument', 'reserved key')
  try {
    if (dir) await ctx.rpc.call('fs.rmdir', { path }, { signal: ctx.signal })
    else await ctx.rpc.call('fs.rm', { path }, { signal: ctx.signal })
  } catch (err) {
    // a missing key, a "folder" that still holds keys, a file where a folder was named: nothing to delete
    if (isError(err, 'NotFound') || isError(err, 'DirectoryNotEmpty') || isError(err, 'IsADirectory') || isError(err, 'NotADirectory')) return
    throw err
  }
}
