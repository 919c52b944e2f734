import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createHash, randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { decodeExtent, extentChecksum, type ExtentRecord, type ReplicatedWrite, type ReplicatedWriteOptions, type ReplicationService, type RpcCallOutcome } from '@dfs/api'
import { join } from 'node:path'
import { encodeExtent, pieceHeader } from '@dfs/api'
import { FileService } from '../../src/node/files.js'
import { ExtentGc } from '../../src/node/extent-gc.js'
import { fsMethods } from '../../src/node/handlers/fs.js'
import { openFileService, type FileServiceFixture } from '../support/file-service.js'
import type { RpcMethod } from '../../src/net/rpc/types.js'
import { createHost } from '../../src/net/host.js'
import { RpcServer } from '../../src/net/rpc/server.js'
import { RpcClient } from '../../src/net/rpc/client.js'
import { putFile } from '../../src/client/files.js'
import type { DfsClient } from '../../src/client/index.js'
import { logLikeText } from '../support/log-text.js'

/**
 * `fs.put.encoded` on a node (FileService over an in-memory extent store and the real local
 * metadata log): each piece becomes an extent, a piece larger than the node's extents is cut as
 * a raw body would be, the MD5 is of the logical bytes, and a piece that does not decode to the
 * size it claims fails the put with MalformedFrame and leaves nothing stored. Then a client's
 * putFile over real libp2p: it sends compressible bytes compressed, and a node without the method
 * (an older build) gets the file as `fs.put`.
 */
const test = suite('node/put pieces')
const NODE = '12D3KooWRyh2zNmr7R2ixgMm9AXDBYUYPzfntKCELAq8HDtpAVMX'
const KiB = 1024
const EXTENT = 64 * KiB

let ctx: FileServiceFixture

test.before.each(async () => { ctx = await openFileService('dfs-put-pieces-', NODE, { extentSize: EXTENT }) })
test.after.each(async () => { await ctx.close() })

function piece (bytes: Uint8Array, compress: boolean): Buffer {
  if (!compress) return Buffer.concat([pieceHeader(undefined, bytes.byteLength, bytes.byteLength), bytes])
  const z = encodeExtent('zstd', bytes)
  return Buffer.concat([pieceHeader('zstd', bytes.byteLength, z.byteLength), z])
}

async function * chunks (bytes: Uint8Array, size = 5000): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.byteLength; i += size) yield bytes.subarray(i, i + size)
}

function putEncoded (): (params: unknown, body: AsyncIterable<Uint8Array>) => Promise<any> {
  const m = fsMethods(ctx.files, async () => null).find((x: RpcMethod) => x.name === 'fs.put.encoded') as any
  return async (raw, body) => await m.handle({ peer: 'p', params: m.params(raw), body, signal: AbortSignal.timeout(10_000) })
}

async function readBack (path: string): Promise<Buffer> {
  const parts: Uint8Array[] = []
  for await (const c of (await ctx.files.open(path)).body) parts.push(c)
  return Buffer.concat(parts)
}

async function stored (): Promise<string[]> {
  const ids: string[] = []
  for await (const info of ctx.store.list()) ids.push(info.id)
  return ids
}

test('each piece is an extent; one larger than the node\'s extents is cut; the etag is the MD5 of the logical bytes', async () => {
  const text = Buffer.from(logLikeText(40 * KiB, 51))
  const raw = randomBytes(10 * KiB)
  const big = Buffer.from(logLikeText(100 * KiB, 52))
  const file = Buffer.concat([text, raw, big])
  const body = Buffer.concat([piece(text, true), piece(raw, false), piece(big, true)])
  const r = await putEncoded()({ path: '/p/a.log', size: file.byteLength, md5: true }, chunks(body))
  assert.equal(r, { path: '/p/a.log', size: file.byteLength, extents: 4, etag: createHash('md5').update(file).digest('hex') })
  const st = await ctx.files.stat('/p/a.log')
  assert.equal(st.extents.map((e) => e.size), [40 * KiB, 10 * KiB, EXTENT, 100 * KiB - EXTENT])
  assert.ok((await readBack('/p/a.log')).equals(file))
  // a file sent as one small raw piece is stored as fs.put would store it
  const small = randomBytes(700)
  assert.is((await putEncoded()({ path: '/p/small' }, chunks(piece(small, false), 3))).size, 700)
  assert.ok((await readBack('/p/small')).equals(small))
  assert.is((await putEncoded()({ path: '/p/empty' }, chunks(Buffer.alloc(0)))).size, 0)
})

test('a piece that does not decode to its size, or a body cut inside a piece, fails the put with MalformedFrame and stores nothing', async () => {
  const text = Buffer.from(logLikeText(30 * KiB, 53))
  const good = piece(text, true)
  const z = encodeExtent('zstd', text)
  const bodies: Array<[string, Buffer]> = [
    // claims one byte more than the frames hold
    ['a wrong size', Buffer.concat([good, pieceHeader('zstd', text.byteLength + 1, z.byteLength), z])],
    ['garbage', Buffer.concat([good, pieceHeader('zstd', text.byteLength, z.byteLength), randomBytes(z.byteLength)])],
    ['cut short', Buffer.concat([good, good.subarray(0, good.byteLength - 5)])]
  ]
  for (const [name, body] of bodies) {
    let err: Error | undefined
    try {
      await putEncoded()({ path: `/p/${name}` }, chunks(body))
    } catch (e) {
      err = e as Error
    }
    assert.is(err?.name, 'MalformedFrame', `${name}: ${err?.message}`)
    assert.equal(await stored(), [], `${name}: the first piece's extent was taken back`)
    let missing: string | undefined
    await ctx.files.stat(`/p/${name}`).catch((e: Error) => { missing = e.name })
    assert.is(missing, 'NotFound')
  }
})

test('putFile over real libp2p: compressible bytes travel compressed; a node without fs.put.encoded gets fs.put', async () => {
  const cleanups: Array<() => Promise<void>> = []
  try {
    const file = Buffer.concat([Buffer.from(logLikeText(200 * KiB, 54)), randomBytes(3 * KiB)])
    const local = join(ctx.dir, 'local.log')
    await writeFile(local, file)
    for (const old of [false, true]) {
      const node = await createHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] })
      cleanups.push(async () => { await node.stop() })
      const calls: Array<[string, RpcCallOutcome]> = []
      const rpc = new RpcServer({ host: node, authorize: async () => {}, interceptors: [{ name: 'record', after: (call, outcome) => { calls.push([call.method, outcome]) } }] })
      rpc.register(...fsMethods(ctx.files, async () => null).filter((m) => !old || m.name !== 'fs.put.encoded'))
      await rpc.start()
      cleanups.push(async () => { await rpc.stop() })
      const caller = await createHost({ privateKey: await generateKeyPair('Ed25519'), listen: [] })
      cleanups.push(async () => { await caller.stop() })
      const client = { rpc: new RpcClient({ host: caller, target: node.getMultiaddrs()[0] }), timeoutMs: 10_000 } as unknown as DfsClient
      cleanups.push(async () => { await client.rpc.close() })
      let progress = 0
      const r = await putFile(client, local, `/rpc/${String(old)}`, (n) => { progress += n })
      assert.is(r.size, file.byteLength)
      assert.is(progress, file.byteLength, 'each byte counted once')
      assert.ok((await readBack(`/rpc/${String(old)}`)).equals(file))
      const put = calls.filter(([m]) => m.startsWith('fs.put'))
      if (old) {
        // (an unknown method reaches no interceptor: the node answered it UnknownMethod)
        assert.equal(put.map(([m, o]) => [m, o.ok]), [['fs.put', true]])
        assert.ok(put[0][1].bytesIn > file.byteLength)
      } else {
        assert.equal(put.map(([m, o]) => [m, o.ok]), [['fs.put.encoded', true]])
        assert.ok(put[0][1].bytesIn < 0.5 * file.byteLength, `${put[0][1].bytesIn} bytes received for ${file.byteLength}`)
        // pieces of 4 MiB, text compressed on a worker (the bytes moved there and back) and random raw: every byte in place
        const big = Buffer.concat([Buffer.from(logLikeText(13 * 1024 * KiB, 55)), randomBytes(4 * 1024 * KiB + 3), Buffer.from(logLikeText(9 * 1024 * KiB, 56))])
        const bigLocal = join(ctx.dir, 'big.log')
        await writeFile(bigLocal, big)
        const b = await putFile(client, bigLocal, '/rpc/big')
        assert.is(b.size, big.byteLength)
        assert.ok((await readBack('/rpc/big')).equals(big))
        const last = calls[calls.length - 1][1]
        assert.ok(last.bytesIn < 0.6 * big.byteLength, `${last.bytesIn} bytes received for ${big.byteLength}`)
      }
    }
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => {})
  }
})

/**
 * A replication service that keeps what each write was given, answers after a while (so several
 * are in flight, as PUT_EXTENTS_IN_FLIGHT_MAX allows) and checks at that moment that the bytes it
 * was lent did not change under it; it stores the encoded bytes, as the real one sends them.
 */
class SlowReplication implements Partial<ReplicationService> {
  readonly encodedWritesReleaseBytes = true
  readonly lent = new Set<ArrayBufferLike>()
  readonly reused: string[] = []
  readonly changed: string[] = []
  readonly stored = new Map<string, Uint8Array>()
  async write (id: string, bytes: Uint8Array, options: ReplicatedWriteOptions = {}): Promise<ReplicatedWrite> {
    const copy = Buffer.from(bytes)
    if (this.lent.has(bytes.buffer)) this.reused.push(id)
    this.lent.add(bytes.buffer)
    await new Promise((resolve) => setTimeout(resolve, 5 + Math.floor(Math.random() * 20)))
    if (!copy.equals(bytes)) this.changed.push(id)
    const enc = options.encoded
    this.stored.set(id, enc?.codec !== undefined ? decodeExtent({ id, size: bytes.byteLength }, enc.codec, enc.bytes) : copy)
    return { extent: { id, size: bytes.byteLength, checksum: extentChecksum(copy), replicas: [NODE] }, missing: [] }
  }

  async read (extent: ExtentRecord): Promise<Uint8Array> { return this.stored.get(extent.id) as Uint8Array }
  release (): void {}
}

test('decode buffers go back to the node once their extent\'s write settled, and are never filled while a write holds them', async () => {
  const replication = new SlowReplication()
  const files = new FileService({ nodeId: NODE, store: ctx.store, metadata: ctx.metadata, gc: new ExtentGc(ctx.store), replication: replication as unknown as ReplicationService })
  const MiB = 1024 * KiB
  const file = Buffer.from(logLikeText(41 * MiB + 77, 57))
  const pieces: Buffer[] = []
  for (let at = 0; at < file.byteLength; at += 4 * MiB) pieces.push(piece(file.subarray(at, at + 4 * MiB), true))
  const r = await files.put('/p/reuse.log', chunks(Buffer.concat(pieces), 1024 * KiB), { pieces: true })
  assert.is(r.extents, 11)
  assert.equal(replication.changed, [], 'no bytes changed while a write held them')
  assert.ok(replication.reused.length > 0, 'decode buffers were used again')
  const parts: Uint8Array[] = []
  for await (const c of (await files.open('/p/reuse.log')).body) parts.push(c)
  assert.ok(Buffer.concat(parts).equals(file))
})

test.run()
