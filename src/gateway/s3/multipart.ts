import { createHash, randomBytes } from 'node:crypto'
import { isError } from '@dfs/api'
import { s3Error } from './errors.js'
import { header, isoDate, quoteEtag, sendEmpty, sendXml, toS3Error, userMetaOf } from './http.js'
import { UPLOADS_DIR, bucketPath, compareKeys, objectPath } from './names.js'
import { childText, childrenNamed, parseXml, xmlDocument, type XmlNode } from './xml.js'
import { dirEntries, requireBucket } from './buckets.js'
import { copyWhole, openCopySource } from './objects.js'
import type { S3Context } from './gateway.js'

/**
 * Multipart uploads. An upload is a directory `/<bucket>/.s3-multipart/<uploadId>` holding a small
 * `upload` file (the key, content type and user metadata, as JSON) and one file per part,
 * `part-00001` … `part-10000`, each stored like any file (extents, three copies, the MD5 as its
 * ETag). Completion is one metadata operation (fs.compose): the object becomes the parts' extents,
 * in order, and the part files disappear — no byte is read or copied. The upload's directory lives
 * in the bucket's top-level directory, so it is in the same metadata group as every key of the
 * bucket, which is what lets the composition be atomic.
 */

/** Part numbers, as S3: 1..10000. */
export const PART_NUMBER_MAX = 10_000
/** The smallest part but the last (S3's 5 MiB). */
export const PART_BYTES_MIN = 5 * 1024 * 1024
/** The largest part (S3's 5 GiB). */
export const PART_BYTES_MAX = 5 * 1024 ** 3
/** Bytes of a CompleteMultipartUpload body (10,000 parts of ~100 bytes of XML each). */
const COMPLETE_BODY_BYTES_MAX = 2 * 1024 * 1024
/** Bytes of an upload's `upload` file. */
const UPLOAD_INFO_BYTES_MAX = 16 * 1024
/** Stats one request runs at once (ListParts, CompleteMultipartUpload). */
const STATS_IN_FLIGHT = 16

const UPLOAD_ID = /^[0-9a-f]{32}$/
/** An etag that is the MD5 of the bytes (not a multipart one, `…-N`). */
const PLAIN_MD5 = /^[0-9a-f]{32}$/

interface UploadInfo {
  key: string
  contentType?: string
  meta?: Record<string, string>
}

function uploadDir (bucket: string, uploadId: string): string {
  return `${bucketPath(bucket)}/${UPLOADS_DIR}/${uploadId}`
}

function partName (n: number): string {
  return `part-${String(n).padStart(5, '0')}`
}

function noSuchUpload (): Error {
  return s3Error('NoSuchUpload', 'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.')
}

function uploadIdOf (ctx: S3Context): string {
  const id = ctx.query.get('uploadId') ?? ''
  if (!UPLOAD_ID.test(id)) throw noSuchUpload()
  return id
}

function partNumberOf (raw: string | null | undefined): number {
  if (raw == null || !/^\d{1,5}$/.test(raw) || Number(raw) < 1 || Number(raw) > PART_NUMBER_MAX) {
    throw s3Error('InvalidArgument', `Part number must be an integer between 1 and ${PART_NUMBER_MAX}, inclusive`)
  }
  return Number(raw)
}

async function readSmall (ctx: S3Context, path: string, bytesMax: number): Promise<Buffer> {
  const { result, body } = await ctx.rpc.download('fs.get', { path }, { signal: ctx.signal })
  const parts: Uint8Array[] = []
  try {
    if (result.length > bytesMax) throw s3Error('InternalError', `${path} is larger than ${bytesMax} bytes`)
    for await (const chunk of body) parts.push(chunk)
  } finally {
    await body.return(undefined).catch(() => {})
  }
  return Buffer.concat(parts)
}

/** An upload's info: NoSuchUpload when it is not (or no longer) there. */
async function uploadInfo (ctx: S3Context, uploadId: string): Promise<UploadInfo> {
  let bytes
  try {
    bytes = await readSmall(ctx, `${uploadDir(ctx.bucket as string, uploadId)}/upload`, UPLOAD_INFO_BYTES_MAX)
  } catch (err) {
    if (isError(err, 'NotFound') || isError(err, 'NotADirectory') || isError(err, 'IsADirectory')) throw noSuchUpload()
    throw err
  }
  const info = JSON.parse(bytes.toString('utf8')) as UploadInfo
  if (typeof info.key !== 'string') throw s3Error('InternalError', `upload ${uploadId} has no key`)
  return info
}

export async function createUpload (ctx: S3Context): Promise<void> {
  const bucket = ctx.bucket as string
  const key = ctx.key as string
  const { dir } = objectPath(bucket, key)
  if (dir) throw s3Error('InvalidArgument', 'an object whose key ends in "/" is a directory here: it cannot be uploaded in parts')
  await ctx.smallBody(0)
  const uploadId = randomBytes(16).toString('hex')
  const contentType = header(ctx.req, 'content-type')
  const meta = userMetaOf(ctx.req)
  const info: UploadInfo = { key, ...(contentType !== undefined ? { contentType } : {}), ...(meta !== undefined ? { meta } : {}) }
  const bytes = Buffer.from(JSON.stringify(info), 'utf8')
  if (bytes.byteLength > UPLOAD_INFO_BYTES_MAX) throw s3Error('MetadataTooLarge', 'the upload\'s metadata is too large')
  try {
    await ctx.rpc.upload('fs.put', { path: `${uploadDir(bucket, uploadId)}/upload`, size: bytes.byteLength }, (async function * () { yield bytes })(), { signal: ctx.signal })
  } catch (err) {
    if (isError(err, 'NotFound') || isError(err, 'NotADirectory')) throw s3Error('NoSuchBucket', 'The specified bucket does not exist', { fields: { BucketName: bucket } })
    throw toS3Error(err)
  }
  sendXml(ctx.res, xmlDocument('InitiateMultipartUploadResult', [['Bucket', bucket], ['Key', key], ['UploadId', uploadId]]))
}

export async function uploadPart (ctx: S3Context): Promise<void> {
  const uploadId = uploadIdOf(ctx)
  const n = partNumberOf(ctx.query.get('partNumber'))
  const info = await uploadInfo(ctx, uploadId)
  if (info.key !== ctx.key) throw noSuchUpload()
  const path = `${uploadDir(ctx.bucket as string, uploadId)}/${partName(n)}`
  const copySource = header(ctx.req, 'x-amz-copy-source')
  if (copySource !== undefined) return await uploadPartCopy(ctx, path)
  const raw = header(ctx.req, 'x-amz-decoded-content-length') ?? header(ctx.req, 'content-length')
  const size = raw !== undefined && /^\d{1,16}$/.test(raw) ? Number(raw) : undefined
  if (size !== undefined && size > PART_BYTES_MAX) throw s3Error('EntityTooLarge', `a part may be at most ${PART_BYTES_MAX} bytes`)
  const put = await ctx.rpc.upload('fs.put', { path, md5: true, ...(size !== undefined ? { size } : {}) }, ctx.body(), { signal: ctx.signal })
    .catch((err) => { throw toS3Error(err) })
  sendEmpty(ctx.res, 200, { etag: quoteEtag(put.etag ?? '') })
}

async function uploadPartCopy (ctx: S3Context, path: string): Promise<void> {
  await ctx.smallBody(0)
  const rangeHeader = header(ctx.req, 'x-amz-copy-source-range')
  let range: { offset: number, length: number } | undefined
  if (rangeHeader !== undefined) {
    const m = /^bytes=(\d{1,15})-(\d{1,15})$/.exec(rangeHeader)
    if (m === null || Number(m[2]) < Number(m[1])) throw s3Error('InvalidArgument', 'x-amz-copy-source-range must be bytes=first-last')
    range = { offset: Number(m[1]), length: Number(m[2]) - Number(m[1]) + 1 }
  }
  // a whole source whose etag is its bytes' MD5 (the completion's ETag needs each part's) becomes
  // the part by sharing its extents; a range, or a multipart-made source, is read and put
  if (range === undefined) {
    const copied = await copyWhole(ctx, path, undefined, (source) => source.etag !== undefined && PLAIN_MD5.test(source.etag))
    if (copied !== undefined) {
      sendXml(ctx.res, xmlDocument('CopyPartResult', [['LastModified', isoDate(copied.mtimeMs)], ['ETag', quoteEtag(copied.etag ?? '')]]))
      return
    }
  }
  const { info, body } = await openCopySource(ctx, range)
  if (range !== undefined && range.offset + range.length > info.size) {
    await body.return(undefined).catch(() => {})
    throw s3Error('InvalidRange', 'The requested range is not satisfiable')
  }
  let put
  try {
    put = await ctx.rpc.upload('fs.put', { path, md5: true, size: range?.length ?? info.size }, body, { signal: ctx.signal })
  } finally {
    await body.return(undefined).catch(() => {})
  }
  sendXml(ctx.res, xmlDocument('CopyPartResult', [['LastModified', isoDate(Date.now())], ['ETag', quoteEtag(put.etag ?? '')]]))
}

/** Runs `fn` over `items`, at most STATS_IN_FLIGHT at once, keeping order. */
async function mapLimited<T, R> (items: T[], fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++
      out[i] = await fn(items[i])
    }
  }
  await Promise.all(Array.from({ length: Math.min(STATS_IN_FLIGHT, items.length) }, worker))
  return out
}

export async function completeUpload (ctx: S3Context): Promise<void> {
  const bucket = ctx.bucket as string
  const uploadId = uploadIdOf(ctx)
  const doc = parseXml((await ctx.smallBody(COMPLETE_BODY_BYTES_MAX)).toString('utf8'))
  if (doc.name !== 'CompleteMultipartUpload') throw s3Error('MalformedXML', `expected <CompleteMultipartUpload>, got <${doc.name}>`)
  const wanted = childrenNamed(doc, 'Part').map((p) => ({
    n: partNumberOf(childText(p, 'PartNumber')),
    etag: (childText(p, 'ETag') ?? '').trim().replace(/^"|"$/g, '')
  }))
  if (wanted.length === 0) throw s3Error('MalformedXML', 'a CompleteMultipartUpload names at least one part')
  for (let i = 1; i < wanted.length; i++) {
    if (wanted[i].n <= wanted[i - 1].n) throw s3Error('InvalidPartOrder', 'The list of parts was not in ascending order. Parts must be ordered by part number.')
  }
  const info = await uploadInfo(ctx, uploadId)
  if (info.key !== ctx.key) throw noSuchUpload()
  const { path } = objectPath(bucket, info.key)
  const dir = uploadDir(bucket, uploadId)
  const stats = await mapLimited(wanted, async (w) => {
    try {
      return await ctx.rpc.call('fs.stat', { path: `${dir}/${partName(w.n)}` }, { signal: ctx.signal })
    } catch (err) {
      if (isError(err, 'NotFound')) throw s3Error('InvalidPart', `part ${w.n} was not uploaded`, { fields: { PartNumber: String(w.n) } })
      throw err
    }
  })
  const md5s: Buffer[] = []
  for (let i = 0; i < wanted.length; i++) {
    const s = stats[i]
    if (s.etag === undefined || s.etag !== wanted[i].etag) {
      throw s3Error('InvalidPart', `part ${wanted[i].n}'s ETag does not match`, { fields: { PartNumber: String(wanted[i].n), ETag: wanted[i].etag } })
    }
    if (i < wanted.length - 1 && s.size < PART_BYTES_MIN) {
      throw s3Error('EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed object size.', { fields: { PartNumber: String(wanted[i].n), ProposedSize: String(s.size), MinSizeAllowed: String(PART_BYTES_MIN) } })
    }
    md5s.push(Buffer.from(s.etag, 'hex'))
  }
  const etag = `${createHash('md5').update(Buffer.concat(md5s)).digest('hex')}-${wanted.length}`
  await ctx.rpc.call('fs.compose', {
    to: path,
    parts: wanted.map((w) => `${dir}/${partName(w.n)}`),
    etag,
    ...(info.contentType !== undefined ? { contentType: info.contentType } : {}),
    ...(info.meta !== undefined ? { meta: info.meta } : {})
  }, { signal: ctx.signal }).catch((err) => {
    if (isError(err, 'NotFound')) throw s3Error('InvalidPart', 'a part is gone: the upload was completed or aborted meanwhile')
    throw toS3Error(err)
  })
  // parts not named and the upload's own file: the upload is over
  await removeUpload(ctx, dir).catch((err) => { void err })
  sendXml(ctx.res, xmlDocument('CompleteMultipartUploadResult', [
    ['Location', `/${bucket}/${encodeURIComponent(info.key).replace(/%2F/g, '/')}`],
    ['Bucket', bucket],
    ['Key', info.key],
    ['ETag', quoteEtag(etag)]
  ]))
}

/** Removes every file of an upload's directory (the directory then goes with its last entry). */
async function removeUpload (ctx: S3Context, dir: string): Promise<void> {
  while (true) {
    let page
    try {
      page = await ctx.rpc.call('fs.ls', { path: dir }, { signal: ctx.signal })
    } catch (err) {
      if (isError(err, 'NotFound')) return
      throw err
    }
    const files = page.entries.filter((e) => e.type === 'file')
    await mapLimited(files, async (e) => {
      await ctx.rpc.call('fs.rm', { path: e.path }, { signal: ctx.signal }).catch((err) => { if (!isError(err, 'NotFound')) throw err })
    })
    if (!page.more) return
  }
}

export async function abortUpload (ctx: S3Context): Promise<void> {
  const uploadId = uploadIdOf(ctx)
  const info = await uploadInfo(ctx, uploadId)
  if (info.key !== ctx.key) throw noSuchUpload()
  await ctx.smallBody(0)
  await removeUpload(ctx, uploadDir(ctx.bucket as string, uploadId))
  sendEmpty(ctx.res, 204)
}

export async function listParts (ctx: S3Context): Promise<void> {
  const uploadId = uploadIdOf(ctx)
  const info = await uploadInfo(ctx, uploadId)
  if (info.key !== ctx.key) throw noSuchUpload()
  const marker = ctx.query.has('part-number-marker') ? Number(ctx.query.get('part-number-marker')) : 0
  const maxParts = Math.min(Number(ctx.query.get('max-parts') ?? 1000) || 1000, 1000)
  const dir = uploadDir(ctx.bucket as string, uploadId)
  const numbers: number[] = []
  for await (const e of dirEntries(ctx, dir)) {
    const m = /^part-(\d{5})$/.exec(e.name)
    if (m !== null && Number(m[1]) > marker) numbers.push(Number(m[1]))
  }
  numbers.sort((a, b) => a - b)
  const shown = numbers.slice(0, maxParts)
  const stats = await mapLimited(shown, async (n) => await ctx.rpc.call('fs.stat', { path: `${dir}/${partName(n)}` }, { signal: ctx.signal }))
  const truncated = numbers.length > shown.length
  sendXml(ctx.res, xmlDocument('ListPartsResult', [
    ['Bucket', ctx.bucket],
    ['Key', info.key],
    ['UploadId', uploadId],
    ['PartNumberMarker', marker],
    ['NextPartNumberMarker', truncated ? shown[shown.length - 1] : undefined],
    ['MaxParts', maxParts],
    ['IsTruncated', truncated],
    ['StorageClass', 'STANDARD'],
    ...shown.map((n, i): XmlNode => ['Part', [
      ['PartNumber', n],
      ['LastModified', isoDate(stats[i].mtimeMs)],
      ['ETag', quoteEtag(stats[i].etag ?? '')],
      ['Size', stats[i].size]
    ]])
  ]))
}

/** Uploads one ListMultipartUploads answers at most. */
const UPLOADS_LISTED_MAX = 1000

export async function listMultipartUploads (ctx: S3Context): Promise<void> {
  const bucket = ctx.bucket as string
  const prefix = ctx.query.get('prefix') ?? ''
  const keyMarker = ctx.query.get('key-marker') ?? ''
  const idMarker = ctx.query.get('upload-id-marker') ?? ''
  const maxUploads = Math.min(Number(ctx.query.get('max-uploads') ?? UPLOADS_LISTED_MAX) || UPLOADS_LISTED_MAX, UPLOADS_LISTED_MAX)
  await requireBucket(ctx)
  const ids: string[] = []
  try {
    for await (const e of dirEntries(ctx, `${bucketPath(bucket)}/${UPLOADS_DIR}`)) {
      if (e.type === 'dir' && UPLOAD_ID.test(e.name)) ids.push(e.name)
      if (ids.length >= 10 * UPLOADS_LISTED_MAX) break
    }
  } catch (err) {
    if (!isError(err, 'NotFound')) throw err
  }
  const uploads = (await mapLimited(ids, async (id) => {
    try {
      const info = await uploadInfo(ctx, id)
      const st = await ctx.rpc.call('fs.stat', { path: `${uploadDir(bucket, id)}/upload` }, { signal: ctx.signal })
      return { id, key: info.key, initiatedMs: st.mtimeMs }
    } catch {
      return undefined // completed or aborted meanwhile
    }
  })).filter((u): u is { id: string, key: string, initiatedMs: number } => u !== undefined)
    .filter((u) => u.key.startsWith(prefix))
    .filter((u) => compareKeys(u.key, keyMarker) > 0 || (u.key === keyMarker && idMarker !== '' && u.id > idMarker))
    .sort((a, b) => compareKeys(a.key, b.key) || a.initiatedMs - b.initiatedMs || (a.id < b.id ? -1 : 1))
  const shown = uploads.slice(0, maxUploads)
  const truncated = uploads.length > shown.length
  const lastShown = shown[shown.length - 1]
  sendXml(ctx.res, xmlDocument('ListMultipartUploadsResult', [
    ['Bucket', bucket],
    ['KeyMarker', keyMarker],
    ['UploadIdMarker', idMarker],
    ['NextKeyMarker', truncated ? lastShown.key : undefined],
    ['NextUploadIdMarker', truncated ? lastShown.id : undefined],
    ['Prefix', prefix],
    ['MaxUploads', maxUploads],
    ['IsTruncated', truncated],
    ...shown.map((u): XmlNode => ['Upload', [
      ['Key', u.key],
      ['UploadId', u.id],
      ['Initiator', [['ID', ctx.auth.user], ['DisplayName', ctx.auth.user]]],
      ['Owner', [['ID', ctx.auth.user], ['DisplayName', ctx.auth.user]]],
      ['StorageClass', 'STANDARD'],
      ['Initiated', isoDate(u.initiatedMs)]
    ]])
  ]))
}
