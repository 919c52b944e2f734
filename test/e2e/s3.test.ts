import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createHash, randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import {
  S3Client, AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CopyObjectCommand, CreateBucketCommand, CreateMultipartUploadCommand,
  DeleteBucketCommand, DeleteObjectCommand, DeleteObjectsCommand, GetBucketLocationCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand,
  ListBucketsCommand, ListMultipartUploadsCommand, ListObjectsCommand, ListObjectsV2Command, ListPartsCommand, PutObjectCommand, UploadPartCommand,
  UploadPartCopyCommand
} from '@aws-sdk/client-s3'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import { peerIdString, readKeyFile } from '../../src/net/keys.js'
import { Sandbox, sha256Hex, waitFor, type NodeHandle } from './harness.js'

/**
 * The S3 API through @aws-sdk/client-s3 against a three-node cluster of real processes, each serving
 * S3 (`--s3-listen`): every operation the gateway implements, objects written through S3 read with
 * `dfs fs` and the other way round, through different nodes; Signature V4 in its header, presigned
 * and streamed (checksum trailer) forms; and refusals — a wrong secret, an expired presigned URL, a
 * read-only user's put, a revoked key on every node, a bad Content-MD5 that stores nothing.
 */
const test = suite('e2e: s3 (aws-sdk)')
const FAST = ['--heartbeat-ms', '200', '--failure-timeout-ms', '1500', '--extent-size', String(256 * 1024), '--s3-listen', '127.0.0.1:0']
const MiB = 1024 * 1024

let sb: Sandbox
const nodes: NodeHandle[] = []
/** The S3 endpoint of each node (http://host:port). */
const endpoints: string[] = []
let admin: { accessKeyId: string, secretAccessKey: string }
const clients: S3Client[] = []

test.before(async () => { sb = await Sandbox.create() })
test.after(async () => {
  for (const c of clients) c.destroy()
  for (const n of nodes) await n.stop()
  await sb.cleanup()
})

async function dfs (args: string[], via = 0, identityPath?: string): Promise<{ code: number | null, json: any, stderr: string }> {
  const env = identityPath !== undefined ? { DFS_IDENTITY: identityPath } : undefined
  return await sb.run([...args, '--json', '--node', nodes[via].addr], env !== undefined ? { env } : {})
}

async function ok (args: string[], via = 0, identityPath?: string): Promise<any> {
  const r = await dfs(args, via, identityPath)
  assert.is(r.code, 0, `${args.join(' ')}: ${r.stderr}`)
  return r.json
}

function s3 (via: number, key: { accessKeyId: string, secretAccessKey: string } = admin): S3Client {
  const c = new S3Client({ endpoint: endpoints[via], region: 'us-east-1', forcePathStyle: true, credentials: key, maxAttempts: 1 })
  clients.push(c)
  return c
}

/** The error an S3 call fails with: its code (`.name` of the SDK's exception) and HTTP status. */
async function failure (p: Promise<unknown>): Promise<{ name: string, status: number | undefined }> {
  try {
    await p
  } catch (err) {
    const e = err as { name: string, $metadata?: { httpStatusCode?: number } }
    return { name: e.name, status: e.$metadata?.httpStatusCode }
  }
  throw new Error('expected the S3 call to fail')
}

async function bodyBytes (body: unknown): Promise<Buffer> {
  const b = body as { transformToByteArray: () => Promise<Uint8Array> }
  return Buffer.from(await b.transformToByteArray())
}

const md5 = (b: Uint8Array): string => createHash('md5').update(b).digest('hex')

test('a cluster of three nodes, each serving S3, and an access key for the admin', async () => {
  nodes.push(await sb.startNode({ args: ['--name', 'n1', ...FAST] }))
  const t = await ok(['cluster', 'token', 'create', '--uses', '2'])
  for (const name of ['n2', 'n3']) nodes.push(await sb.startNode({ args: ['--name', name, '--peers', nodes[0].addr, '--join-token', t.token, ...FAST] }))
  await waitFor(async () => {
    const ns = (await dfs(['cluster', 'nodes'])).json?.nodes ?? []
    return ns.length === 3 && ns.every((n: any) => n.voter && n.health === 'healthy') ? true : undefined
  }, 30_000, 'three healthy voters')
  for (const n of nodes) {
    const info = JSON.parse(await readFile(join(n.dataDir, 'node.json'), 'utf8'))
    assert.type(info.s3, 'string', 'node.json names the S3 address')
    endpoints.push(`http://${info.s3 as string}`)
  }
  const key = await ok(['s3', 'key', 'create'])
  assert.match(key.accessKeyId, /^[A-Z0-9]{16,}$/)
  assert.type(key.secretAccessKey, 'string')
  admin = { accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey }
  const list = await ok(['s3', 'key', 'list'])
  assert.ok(list.keys.some((k: any) => k.accessKeyId === key.accessKeyId), 'listed')
  assert.not.ok(JSON.stringify(list).includes(key.secretAccessKey), 'the secret is never listed')
  // every node knows the key once it applied it
  for (let i = 0; i < 3; i++) await waitFor(async () => await s3(i).send(new ListBucketsCommand({})).then(() => true, () => undefined), 10_000, `node ${i} knows the key`)
})

test('buckets: create, head, location, list; a second create is BucketAlreadyOwnedByYou; a bad name InvalidBucketName', async () => {
  const c = s3(0)
  await c.send(new CreateBucketCommand({ Bucket: 'photos' }))
  await s3(1).send(new HeadBucketCommand({ Bucket: 'photos' }))
  const loc = await c.send(new GetBucketLocationCommand({ Bucket: 'photos' }))
  assert.ok(loc.LocationConstraint === undefined || (loc.LocationConstraint as string) === '' || loc.LocationConstraint === null)
  const listed = await s3(2).send(new ListBucketsCommand({}))
  assert.ok(listed.Buckets?.some((b) => b.Name === 'photos'))
  assert.is((await failure(c.send(new CreateBucketCommand({ Bucket: 'photos' })))).name, 'BucketAlreadyOwnedByYou')
  assert.is((await failure(c.send(new HeadBucketCommand({ Bucket: 'nothere' })))).status, 404)
  assert.is((await failure(c.send(new CreateBucketCommand({ Bucket: 'Bad_Name' })))).status, 400)
  // the bucket is a directory for dfs fs
  assert.ok((await ok(['fs', 'ls', '/'])).entries.some((e: any) => e.name === 'photos' && e.type === 'dir'))
})

test('put and get: content type, user metadata and an MD5 ETag; read through another node and with dfs fs get', async () => {
  const bytes = randomBytes(700 * 1024 + 17)
  const put = await s3(0).send(new PutObjectCommand({ Bucket: 'photos', Key: 'trip/day 1/a+b.jpg', Body: bytes, ContentType: 'image/jpeg', Metadata: { camera: 'x100', place: 'Zürich' } }))
  assert.is(put.ETag, `"${md5(bytes)}"`)
  const got = await s3(1).send(new GetObjectCommand({ Bucket: 'photos', Key: 'trip/day 1/a+b.jpg' }))
  assert.ok((await bodyBytes(got.Body)).equals(bytes))
  assert.is(got.ContentType, 'image/jpeg')
  assert.is(got.ETag, `"${md5(bytes)}"`)
  assert.equal(got.Metadata, { camera: 'x100', place: 'Zürich' })
  const head = await s3(2).send(new HeadObjectCommand({ Bucket: 'photos', Key: 'trip/day 1/a+b.jpg' }))
  assert.is(head.ContentLength, bytes.byteLength)
  const local = join(sb.dir, 'from-s3')
  await ok(['fs', 'get', '/photos/trip/day 1/a+b.jpg', local], 2)
  assert.is(sha256Hex(await readFile(local)), sha256Hex(bytes))
  const stat = await ok(['fs', 'stat', '/photos/trip/day 1/a+b.jpg'])
  assert.is(stat.contentType, 'image/jpeg')
})

test('a file put with dfs fs is an object; an empty object and a unicode key round-trip', async () => {
  const bytes = randomBytes(5000)
  const local = join(sb.dir, 'to-s3')
  await writeFile(local, bytes)
  await ok(['fs', 'put', local, '/photos/from-cli.bin'], 1)
  const got = await s3(2).send(new GetObjectCommand({ Bucket: 'photos', Key: 'from-cli.bin' }))
  assert.ok((await bodyBytes(got.Body)).equals(bytes))
  assert.match(got.ETag ?? '', /^"[0-9a-f]{32}-1"$/, 'not an MD5: marked like a multipart ETag')
  await s3(0).send(new PutObjectCommand({ Bucket: 'photos', Key: 'empty', Body: Buffer.alloc(0) }))
  assert.is((await bodyBytes((await s3(1).send(new GetObjectCommand({ Bucket: 'photos', Key: 'empty' }))).Body)).byteLength, 0)
  await s3(0).send(new PutObjectCommand({ Bucket: 'photos', Key: 'ünï/cödé ~!$&\'()*,;=@.txt', Body: 'x' }))
  assert.is((await bodyBytes((await s3(2).send(new GetObjectCommand({ Bucket: 'photos', Key: 'ünï/cödé ~!$&\'()*,;=@.txt' }))).Body)).toString(), 'x')
})

test('a streamed upload of unknown length (aws-chunked with a checksum trailer) stores exactly its bytes', async () => {
  const bytes = randomBytes(3 * MiB + 5)
  const body = Readable.from((function * () { for (let i = 0; i < bytes.byteLength; i += 100_000) yield bytes.subarray(i, i + 100_000) })())
  const put = await s3(1).send(new PutObjectCommand({ Bucket: 'photos', Key: 'streamed.bin', Body: body, ContentLength: bytes.byteLength, ChecksumAlgorithm: 'CRC32' }))
  assert.is(put.ETag, `"${md5(bytes)}"`)
  assert.ok((await bodyBytes((await s3(0).send(new GetObjectCommand({ Bucket: 'photos', Key: 'streamed.bin' }))).Body)).equals(bytes))
})

test('ranges: bytes=a-b, a suffix, an open end; past the end is InvalidRange (416)', async () => {
  const bytes = randomBytes(600 * 1024)
  await s3(0).send(new PutObjectCommand({ Bucket: 'photos', Key: 'ranged.bin', Body: bytes }))
  const c = s3(2)
  const part = async (range: string): Promise<{ bytes: Buffer, contentRange: string | undefined }> => {
    const r = await c.send(new GetObjectCommand({ Bucket: 'photos', Key: 'ranged.bin', Range: range }))
    return { bytes: await bodyBytes(r.Body), contentRange: r.ContentRange }
  }
  const mid = await part('bytes=300000-300099')
  assert.ok(mid.bytes.equals(bytes.subarray(300000, 300100)))
  assert.is(mid.contentRange, `bytes 300000-300099/${bytes.byteLength}`)
  assert.ok((await part('bytes=-10')).bytes.equals(bytes.subarray(bytes.byteLength - 10)))
  assert.ok((await part('bytes=614000-')).bytes.equals(bytes.subarray(614000)))
  const e = await failure(c.send(new GetObjectCommand({ Bucket: 'photos', Key: 'ranged.bin', Range: `bytes=${bytes.byteLength}-` })))
  assert.equal([e.name, e.status], ['InvalidRange', 416])
})

test('conditional gets: If-None-Match answers 304, a wrong If-Match 412', async () => {
  const head = await s3(0).send(new HeadObjectCommand({ Bucket: 'photos', Key: 'ranged.bin' }))
  assert.is((await failure(s3(1).send(new GetObjectCommand({ Bucket: 'photos', Key: 'ranged.bin', IfNoneMatch: head.ETag })))).status, 304)
  assert.is((await failure(s3(1).send(new GetObjectCommand({ Bucket: 'photos', Key: 'ranged.bin', IfMatch: '"0123"' })))).status, 412)
  const got = await s3(1).send(new GetObjectCommand({ Bucket: 'photos', Key: 'ranged.bin', IfMatch: head.ETag }))
  assert.is((await bodyBytes(got.Body)).byteLength, 600 * 1024)
})

test('listing: V2 with prefix, delimiter and CommonPrefixes, pages by continuation token and start-after; V1 with markers', async () => {
  await s3(0).send(new CreateBucketCommand({ Bucket: 'list' }))
  const keys = ['a.txt', 'a/b/c.txt', 'a/b/d.txt', 'a/e.txt', 'a-b.txt', 'b/x', 'b/y/z', 'c']
  for (const k of keys) await s3(0).send(new PutObjectCommand({ Bucket: 'list', Key: k, Body: k }))
  const c = s3(1)
  const all = await c.send(new ListObjectsV2Command({ Bucket: 'list' }))
  // S3's order: by UTF-8 bytes of the whole key ('-' < '.' < '/')
  assert.equal(all.Contents?.map((o) => o.Key), [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))))
  assert.is(all.KeyCount, keys.length)
  assert.is(all.Contents?.find((o) => o.Key === 'a/e.txt')?.Size, 'a/e.txt'.length)
  const top = await c.send(new ListObjectsV2Command({ Bucket: 'list', Delimiter: '/' }))
  assert.equal(top.Contents?.map((o) => o.Key), ['a-b.txt', 'a.txt', 'c'])
  assert.equal(top.CommonPrefixes?.map((p) => p.Prefix), ['a/', 'b/'])
  const inA = await c.send(new ListObjectsV2Command({ Bucket: 'list', Delimiter: '/', Prefix: 'a/' }))
  assert.equal(inA.Contents?.map((o) => o.Key), ['a/e.txt'])
  assert.equal(inA.CommonPrefixes?.map((p) => p.Prefix), ['a/b/'])
  const partial = await c.send(new ListObjectsV2Command({ Bucket: 'list', Prefix: 'a/b/' }))
  assert.equal(partial.Contents?.map((o) => o.Key), ['a/b/c.txt', 'a/b/d.txt'])
  // pages of 3
  const paged: string[] = []
  let token: string | undefined
  for (let i = 0; i < 10; i++) {
    const page = await c.send(new ListObjectsV2Command({ Bucket: 'list', MaxKeys: 3, ContinuationToken: token }))
    paged.push(...(page.Contents ?? []).map((o) => o.Key as string))
    if (page.IsTruncated !== true) break
    token = page.NextContinuationToken
  }
  assert.equal(paged, all.Contents?.map((o) => o.Key))
  const after = await c.send(new ListObjectsV2Command({ Bucket: 'list', StartAfter: 'a/b/c.txt' }))
  assert.equal(after.Contents?.[0]?.Key, 'a/b/d.txt')
  const v1 = await c.send(new ListObjectsCommand({ Bucket: 'list', Marker: 'a/e.txt', MaxKeys: 2 }))
  assert.equal(v1.Contents?.map((o) => o.Key), ['b/x', 'b/y/z'])
  assert.is(v1.IsTruncated, true)
})

test('copy, delete, delete many; NoSuchKey, NoSuchBucket, BucketNotEmpty', async () => {
  const c = s3(2)
  const cp = await c.send(new CopyObjectCommand({ Bucket: 'list', Key: 'copy-of-c', CopySource: 'list/c' }))
  assert.is(cp.CopyObjectResult?.ETag, `"${md5(Buffer.from('c'))}"`)
  assert.is((await bodyBytes((await c.send(new GetObjectCommand({ Bucket: 'list', Key: 'copy-of-c' }))).Body)).toString(), 'c')
  // within a bucket (one metadata group) the copy shares the source's extents: no byte moved
  const ids = async (p: string): Promise<string[]> => (await ok(['fs', 'stat', p])).extents.map((e: any) => e.id)
  assert.equal(await ids('/list/copy-of-c'), await ids('/list/c'))
  // REPLACE: the request's metadata; to another bucket: the bytes are copied (whichever group it is in)
  await c.send(new CopyObjectCommand({ Bucket: 'photos', Key: 'c-copy', CopySource: 'list/c', MetadataDirective: 'REPLACE', ContentType: 'text/x-c', Metadata: { k: 'v' } }))
  const other = await c.send(new GetObjectCommand({ Bucket: 'photos', Key: 'c-copy' }))
  assert.equal([other.ContentType, other.Metadata, other.ETag], ['text/x-c', { k: 'v' }, `"${md5(Buffer.from('c'))}"`])
  assert.is((await bodyBytes(other.Body)).toString(), 'c')
  await c.send(new DeleteObjectCommand({ Bucket: 'photos', Key: 'c-copy' }))
  await c.send(new DeleteObjectCommand({ Bucket: 'list', Key: 'copy-of-c' }))
  assert.is((await failure(c.send(new GetObjectCommand({ Bucket: 'list', Key: 'copy-of-c' })))).name, 'NoSuchKey')
  assert.is((await failure(c.send(new GetObjectCommand({ Bucket: 'nobucket', Key: 'x' })))).name, 'NoSuchBucket')
  // deleting a missing key is no error
  await c.send(new DeleteObjectCommand({ Bucket: 'list', Key: 'never-was' }))
  assert.is((await failure(c.send(new DeleteBucketCommand({ Bucket: 'list' })))).name, 'BucketNotEmpty')
  const keys = (await c.send(new ListObjectsV2Command({ Bucket: 'list' }))).Contents?.map((o) => ({ Key: o.Key as string })) ?? []
  const del = await c.send(new DeleteObjectsCommand({ Bucket: 'list', Delete: { Objects: keys } }))
  assert.is(del.Deleted?.length, keys.length)
  assert.is(del.Errors, undefined)
  assert.is((await c.send(new ListObjectsV2Command({ Bucket: 'list' }))).KeyCount, 0)
  await c.send(new DeleteBucketCommand({ Bucket: 'list' }))
  assert.is((await failure(c.send(new HeadBucketCommand({ Bucket: 'list' })))).status, 404)
})

test('multipart: three parts, listed, completed without moving a byte; an aborted upload is gone; a part copied from an object', async () => {
  const c = s3(0)
  const parts = [randomBytes(5 * MiB), randomBytes(5 * MiB), randomBytes(MiB + 3)]
  const { UploadId } = await c.send(new CreateMultipartUploadCommand({ Bucket: 'photos', Key: 'big/video.mp4', ContentType: 'video/mp4', Metadata: { take: '3' } }))
  assert.type(UploadId, 'string')
  const etags: string[] = []
  for (let i = 0; i < parts.length; i++) {
    // each part through a different node
    const r = await s3(i).send(new UploadPartCommand({ Bucket: 'photos', Key: 'big/video.mp4', UploadId, PartNumber: i + 1, Body: parts[i] }))
    assert.is(r.ETag, `"${md5(parts[i])}"`)
    etags.push(r.ETag as string)
  }
  const listedParts = await s3(1).send(new ListPartsCommand({ Bucket: 'photos', Key: 'big/video.mp4', UploadId }))
  assert.equal(listedParts.Parts?.map((p) => [p.PartNumber, p.Size, p.ETag]), parts.map((p, i) => [i + 1, p.byteLength, etags[i]]))
  const uploads = await s3(2).send(new ListMultipartUploadsCommand({ Bucket: 'photos' }))
  assert.ok(uploads.Uploads?.some((u) => u.UploadId === UploadId && u.Key === 'big/video.mp4'))
  const partExtents = (await ok(['fs', 'ls', `/photos/.s3-multipart/${UploadId as string}`])).entries.filter((e: any) => e.name.startsWith('part-')).length
  assert.is(partExtents, 3)
  const idsBefore: string[] = []
  for (let i = 1; i <= 3; i++) idsBefore.push(...(await ok(['fs', 'stat', `/photos/.s3-multipart/${UploadId as string}/part-0000${i}`])).extents.map((e: any) => e.id))
  const done = await s3(2).send(new CompleteMultipartUploadCommand({
    Bucket: 'photos', Key: 'big/video.mp4', UploadId, MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) }
  }))
  const whole = Buffer.concat(parts)
  const expected = `"${createHash('md5').update(Buffer.concat(parts.map((p) => createHash('md5').update(p).digest()))).digest('hex')}-3"`
  assert.is(done.ETag, expected)
  const got = await s3(1).send(new GetObjectCommand({ Bucket: 'photos', Key: 'big/video.mp4' }))
  assert.is(got.ETag, expected)
  assert.is(got.ContentType, 'video/mp4')
  assert.equal(got.Metadata, { take: '3' })
  assert.ok((await bodyBytes(got.Body)).equals(whole))
  const stat = await ok(['fs', 'stat', '/photos/big/video.mp4'])
  assert.equal(stat.extents.map((e: any) => e.id), idsBefore, 'the object is the parts\' extents: no byte moved')
  assert.is((await dfs(['fs', 'stat', '/photos/.s3-multipart'])).json?.error?.name, 'NotFound', 'the upload left nothing behind')
  // ranged read across the parts' boundary
  const r = await c.send(new GetObjectCommand({ Bucket: 'photos', Key: 'big/video.mp4', Range: `bytes=${5 * MiB - 10}-${5 * MiB + 9}` }))
  assert.ok((await bodyBytes(r.Body)).equals(whole.subarray(5 * MiB - 10, 5 * MiB + 10)))

  const aborted = await c.send(new CreateMultipartUploadCommand({ Bucket: 'photos', Key: 'never.bin' }))
  await c.send(new UploadPartCommand({ Bucket: 'photos', Key: 'never.bin', UploadId: aborted.UploadId, PartNumber: 1, Body: randomBytes(1000) }))
  await c.send(new AbortMultipartUploadCommand({ Bucket: 'photos', Key: 'never.bin', UploadId: aborted.UploadId }))
  assert.is((await failure(c.send(new ListPartsCommand({ Bucket: 'photos', Key: 'never.bin', UploadId: aborted.UploadId })))).name, 'NoSuchUpload')

  const copied = await c.send(new CreateMultipartUploadCommand({ Bucket: 'photos', Key: 'copied.bin' }))
  const pc = await c.send(new UploadPartCopyCommand({ Bucket: 'photos', Key: 'copied.bin', UploadId: copied.UploadId, PartNumber: 1, CopySource: 'photos/big/video.mp4', CopySourceRange: 'bytes=0-99' }))
  await c.send(new CompleteMultipartUploadCommand({ Bucket: 'photos', Key: 'copied.bin', UploadId: copied.UploadId, MultipartUpload: { Parts: [{ ETag: pc.CopyPartResult?.ETag, PartNumber: 1 }] } }))
  assert.ok((await bodyBytes((await c.send(new GetObjectCommand({ Bucket: 'photos', Key: 'copied.bin' }))).Body)).equals(whole.subarray(0, 100)))
  // a whole object as a part, in its bucket: the part shares its extents, and so does the result
  const plain = randomBytes(5 * MiB + 1)
  await c.send(new PutObjectCommand({ Bucket: 'photos', Key: 'plain.bin', Body: plain }))
  const shared = await c.send(new CreateMultipartUploadCommand({ Bucket: 'photos', Key: 'shared.bin' }))
  const sp = await c.send(new UploadPartCopyCommand({ Bucket: 'photos', Key: 'shared.bin', UploadId: shared.UploadId, PartNumber: 1, CopySource: 'photos/plain.bin' }))
  assert.is(sp.CopyPartResult?.ETag, `"${md5(plain)}"`)
  await c.send(new CompleteMultipartUploadCommand({ Bucket: 'photos', Key: 'shared.bin', UploadId: shared.UploadId, MultipartUpload: { Parts: [{ ETag: sp.CopyPartResult?.ETag, PartNumber: 1 }] } }))
  assert.ok((await bodyBytes((await c.send(new GetObjectCommand({ Bucket: 'photos', Key: 'shared.bin' }))).Body)).equals(plain))
  const extentIds = async (p: string): Promise<string[]> => (await ok(['fs', 'stat', p])).extents.map((e: any) => e.id)
  assert.equal(await extentIds('/photos/shared.bin'), await extentIds('/photos/plain.bin'), 'no byte moved')
  // a part smaller than 5 MiB before the last is refused
  const small = await c.send(new CreateMultipartUploadCommand({ Bucket: 'photos', Key: 'small.bin' }))
  const p1 = await c.send(new UploadPartCommand({ Bucket: 'photos', Key: 'small.bin', UploadId: small.UploadId, PartNumber: 1, Body: randomBytes(100) }))
  const p2 = await c.send(new UploadPartCommand({ Bucket: 'photos', Key: 'small.bin', UploadId: small.UploadId, PartNumber: 2, Body: randomBytes(100) }))
  assert.is((await failure(c.send(new CompleteMultipartUploadCommand({
    Bucket: 'photos', Key: 'small.bin', UploadId: small.UploadId, MultipartUpload: { Parts: [{ ETag: p1.ETag, PartNumber: 1 }, { ETag: p2.ETag, PartNumber: 2 }] }
  })))).name, 'EntityTooSmall')
  await c.send(new AbortMultipartUploadCommand({ Bucket: 'photos', Key: 'small.bin', UploadId: small.UploadId }))
})

test('presigned GET with plain fetch; an expired presigned URL is refused', async () => {
  const url = await getSignedUrl(s3(1), new GetObjectCommand({ Bucket: 'photos', Key: 'ranged.bin' }), { expiresIn: 60 })
  const r = await fetch(url)
  assert.is(r.status, 200)
  assert.is(Buffer.from(await r.arrayBuffer()).byteLength, 600 * 1024)
  const short = await getSignedUrl(s3(1), new GetObjectCommand({ Bucket: 'photos', Key: 'ranged.bin' }), { expiresIn: 1 })
  await new Promise((resolve) => setTimeout(resolve, 2100))
  const late = await fetch(short)
  assert.is(late.status, 403)
  assert.match(await late.text(), /<Code>AccessDenied<\/Code>/)
  // a tampered signature
  const bad = await fetch(url.replace(/X-Amz-Signature=([0-9a-f])/, (_m, c: string) => `X-Amz-Signature=${c === '0' ? '1' : '0'}`))
  assert.is(bad.status, 403)
  assert.match(await bad.text(), /<Code>SignatureDoesNotMatch<\/Code>/)
})

test('refusals: a wrong secret, an unknown key, a read-only user\'s put, a bad Content-MD5 (nothing stored)', async () => {
  const wrong = await failure(s3(0, { accessKeyId: admin.accessKeyId, secretAccessKey: 'x'.repeat(40) }).send(new ListBucketsCommand({})))
  assert.equal([wrong.name, wrong.status], ['SignatureDoesNotMatch', 403])
  const unknown = await failure(s3(0, { accessKeyId: 'AKIAUNKNOWNUNKNOWN00', secretAccessKey: 'x'.repeat(40) }).send(new ListBucketsCommand({})))
  assert.equal([unknown.name, unknown.status], ['InvalidAccessKeyId', 403])
  const readerKey = await sb.identity('reader')
  const reader = peerIdString(await readKeyFile(readerKey))
  await ok(['user', 'grant', reader, 'readonly'])
  const rk = await ok(['s3', 'key', 'create', '--user', reader])
  assert.is(rk.user, reader)
  const rc = s3(1, rk)
  await waitFor(async () => await rc.send(new HeadObjectCommand({ Bucket: 'photos', Key: 'ranged.bin' })).then(() => true, () => undefined), 10_000, 'the reader\'s key works')
  const denied = await failure(rc.send(new PutObjectCommand({ Bucket: 'photos', Key: 'by-reader', Body: 'no' })))
  assert.equal([denied.name, denied.status], ['AccessDenied', 403])
  assert.is((await failure(s3(0).send(new HeadObjectCommand({ Bucket: 'photos', Key: 'by-reader' })))).status, 404)
  const bad = await failure(s3(2).send(new PutObjectCommand({ Bucket: 'photos', Key: 'bad-md5', Body: 'hello', ContentMD5: createHash('md5').update('other').digest('base64') })))
  assert.equal([bad.name, bad.status], ['BadDigest', 400])
  assert.is((await failure(s3(0).send(new HeadObjectCommand({ Bucket: 'photos', Key: 'bad-md5' })))).status, 404, 'nothing stored')
})

test('a revoked key is refused by every node within a second', async () => {
  const k = await ok(['s3', 'key', 'create'])
  for (let i = 0; i < 3; i++) await waitFor(async () => await s3(i, k).send(new ListBucketsCommand({})).then(() => true, () => undefined), 10_000, 'the new key works')
  await ok(['s3', 'key', 'revoke', k.accessKeyId])
  const revokedAt = Date.now()
  for (let i = 0; i < 3; i++) {
    await waitFor(async () => (await failure(s3(i, k).send(new ListBucketsCommand({})))).name === 'InvalidAccessKeyId' ? true : undefined, 5_000, `node ${i} refuses the revoked key`)
  }
  assert.ok(Date.now() - revokedAt < 3_000, `refused everywhere ${Date.now() - revokedAt} ms after the revocation`)
  assert.not.ok((await ok(['s3', 'key', 'list'])).keys.some((x: any) => x.accessKeyId === k.accessKeyId))
})

test.run()
