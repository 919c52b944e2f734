import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import {
  compressExtent, extentChecksum, type ExtentRecord, type MemberRecord, type MetadataService, type MetadataView, type Role
} from '@dfs/api'
import { LevelExtentStore } from '@dfs/level-store'
import { createHost, type Host } from '../../src/net/host.js'
import { RpcServer } from '../../src/net/rpc/server.js'
import { RpcClient } from '../../src/net/rpc/client.js'
import { Security } from '../../src/security/index.js'
import { EXTENT_PUT_METHOD, extentMethods, extentWriteMethods } from '../../src/node/handlers/extent.js'
import { RemoteExtents } from '../../src/node/extents.js'
import { RpcExtentPeers } from '../../src/node/extent-peers.js'
import { corruptExtent } from '../e2e/extents-on-disk.js'
import { logLikeText } from '../support/log-text.js'

/**
 * Encoded extents between real nodes (libp2p hosts on loopback, LevelDB stores, the `extent.*`
 * RPCs): puts carry the codec and the encoded bytes, copies keep their form, reads give the logical
 * bytes, and a corrupt encoded copy is found and replaced from a good one.
 */
const test = suite('node/extent codecs over real libp2p')
const logger: any = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false })
const MiB = 1024 * 1024

interface Node {
  name: string
  id: string
  host: Host
  dir: string
  store: LevelExtentStore
  rpc: RpcServer
  reader: RemoteExtents
  peers: RpcExtentPeers
}

const ctx = {} as { root: string, a: Node, b: Node, c: Node, addrBook: Map<string, string[]>, cleanups: Array<() => Promise<void>> }
const members: MemberRecord[] = []
const roles = new Map<string, Role>()
const metadata = {
  staleRead: <T>(fn: (view: MetadataView) => T): T => fn({
    members: () => members,
    role: (peer: string) => roles.get(peer),
    user: (peer: string) => { const role = roles.get(peer); return role === undefined ? undefined : { id: peer, role, tenant: null } }
  } as unknown as MetadataView)
} as unknown as MetadataService

async function serve (name: string, host: Host, dir: string): Promise<Node> {
  const id = host.peerId.toString()
  const store = new LevelExtentStore({ dir, logger, node: name })
  await store.open()
  const reader = new RemoteExtents({ host, nodeId: id, store, resolveAddrs: (p) => ctx.addrBook.get(p) ?? [], replicaIdleTimeoutMs: 3000 })
  const peers = new RpcExtentPeers({ nodeId: id, store, reader, callTimeoutMs: 20_000 })
  const security = new Security({ nodeId: id, metadata })
  const rpc = new RpcServer({ host, authorize: async (peer, action, options) => { await security.authorize(peer, action, options) } })
  rpc.register(...extentMethods(store), ...extentWriteMethods(peers.local))
  await rpc.start()
  return { name, id, host, dir, store, rpc, reader, peers }
}

async function startNode (name: string): Promise<Node> {
  const host = await createHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] })
  ctx.cleanups.push(async () => { await host.stop() })
  const id = host.peerId.toString()
  ctx.addrBook.set(id, host.getMultiaddrs().map(String))
  members.push({ id, name, region: 'r1', addrs: ctx.addrBook.get(id) as string[] })
  return await serve(name, host, join(ctx.root, name))
}

async function stopNode (n: Node): Promise<void> {
  await n.reader.stop()
  await n.rpc.stop()
  await n.store.close()
}

/** Stops `key`'s services, flips a byte of extent `id`'s stored bytes on disk, and serves again. */
async function corrupt (key: 'a' | 'b' | 'c', id: string): Promise<void> {
  const n = ctx[key]
  await stopNode(n)
  await corruptExtent(n.dir, id, 3)
  ctx[key] = await serve(n.name, n.host, n.dir)
}

async function failureOf (p: Promise<unknown>): Promise<any> {
  try {
    await p
  } catch (err) {
    return err
  }
  assert.unreachable('the call must fail')
}

function same (a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))
}

/** A compressible extent, its record on `replicas`, and its zstd encoding as a put sends it. */
function compressible (seed: number, replicas: Node[]): { bytes: Uint8Array, record: ExtentRecord, encoded: Uint8Array, put: ExtentRecord & { codec: 'zstd', storedSize: number } } {
  const bytes = logLikeText(2 * MiB, seed)
  const record = { id: randomUUID(), size: bytes.byteLength, checksum: extentChecksum(bytes), replicas: replicas.map((r) => r.id) }
  const out = compressExtent('zstd', bytes)
  assert.is(out.codec, 'zstd')
  return { bytes, record, encoded: out.bytes, put: { ...record, codec: 'zstd', storedSize: out.bytes.byteLength } }
}

test.before(async () => {
  ctx.root = await mkdtemp(join(tmpdir(), 'dfs-extent-codecs-'))
  ctx.addrBook = new Map()
  ctx.cleanups = []
  ctx.a = await startNode('A')
  ctx.b = await startNode('B')
  ctx.c = await startNode('C')
})

test.after(async () => {
  for (const n of [ctx.a, ctx.b, ctx.c]) if (n != null) await stopNode(n).catch(() => {})
  for (const step of ctx.cleanups.reverse()) await step().catch(() => {})
  await rm(ctx.root, { recursive: true, force: true })
})

test('an encoded put is stored encoded on the peer and on this node; every read gives the logical bytes', async () => {
  const x = compressible(1, [ctx.a, ctx.b])
  await ctx.b.peers.put(ctx.a.id, x.put, x.encoded)
  await ctx.b.peers.put(ctx.b.id, x.put, x.encoded)
  for (const n of [ctx.a, ctx.b]) {
    const info = await n.store.stat(x.record.id)
    assert.equal(info, { id: x.record.id, size: x.bytes.byteLength, checksum: x.record.checksum, codec: 'zstd', storedSize: x.encoded.byteLength })
    assert.ok(same(await n.store.get(x.record.id), x.bytes))
  }
  // C has no copy: it reads A's encoded copy over the wire and decodes it
  assert.ok(same(await ctx.c.reader.get(x.record), x.bytes))
  const copy = await ctx.c.reader.getEncoded(x.record)
  assert.equal(copy.encoding, { codec: 'zstd', storedSize: x.encoded.byteLength })
  assert.ok(same(copy.bytes, x.encoded))
})

test('a member vouches for its encoding: bytes that do not decode to the checksum are stored as sent; a deep read finds them out, an undecodable body every read', async () => {
  const x = compressible(2, [ctx.a])
  const other = compressible(3, [])
  await ctx.b.peers.put(ctx.a.id, { ...x.put, storedSize: other.encoded.byteLength }, other.encoded)
  // a read checks that the stored bytes are those the member sent (their CRC) and decode; that they
  // decode to other bytes than the checksum says takes a hash: the scrub's deep read (and the client,
  // which checks every extent it reads)
  assert.ok(same(await ctx.a.store.get(x.record.id), other.bytes))
  assert.is((await failureOf(ctx.a.store.get(x.record.id, { deep: true }))).name, 'CorruptExtent')
  await ctx.a.store.delete(x.record.id)
  await ctx.b.peers.put(ctx.a.id, { ...x.put, storedSize: 100 }, x.encoded.subarray(0, 100))
  assert.is((await failureOf(ctx.a.store.get(x.record.id))).name, 'CorruptExtent')
  await ctx.a.store.delete(x.record.id)
  // a body of another length than announced is refused before anything is stored
  const client = new RpcClient({ host: ctx.b.host, target: ctx.a.host.peerId })
  try {
    const params = { id: x.record.id, size: x.record.size, checksum: x.record.checksum, codec: 'zstd', storedSize: x.encoded.byteLength + 1 }
    assert.is((await failureOf(client.upload(EXTENT_PUT_METHOD, params as never, (async function * () { yield x.encoded })(), {}))).name, 'CorruptExtent')
  } finally {
    await client.close()
  }
  assert.is(await ctx.a.store.has(x.record.id), false)
})

test('a node that does not know a put\'s keys refuses the put (strict params): how an older node refuses a codec', async () => {
  // the same mechanism an older build applies to `codec`, shown with a key this build does not know
  const x = compressible(4, [ctx.a])
  const client = new RpcClient({ host: ctx.b.host, target: ctx.a.host.peerId })
  try {
    const params = { id: x.record.id, size: x.record.size, checksum: x.record.checksum, codec: 'zstd', storedSize: x.encoded.byteLength, dictionary: 7 }
    const err = await failureOf(client.upload(EXTENT_PUT_METHOD, params as never, (async function * () { yield x.encoded })(), {}))
    assert.is(err.name, 'InvalidArgument')
    const unknown = await failureOf(client.upload(EXTENT_PUT_METHOD, { ...params, dictionary: undefined, codec: 'brotli' } as never, (async function * () { yield x.encoded })(), {}))
    assert.is(unknown.name, 'InvalidArgument')
  } finally {
    await client.close()
  }
  assert.is(await ctx.a.store.has(x.record.id), false)
})

test('replicate copies an encoded copy as it is stored', async () => {
  const x = compressible(5, [ctx.a, ctx.c])
  await ctx.a.peers.put(ctx.a.id, x.put, x.encoded)
  await ctx.a.peers.replicate(ctx.c.id, x.record, [ctx.a.id])
  assert.equal((await ctx.c.store.stat(x.record.id)).codec, 'zstd')
  assert.ok(same((await ctx.c.store.getEncoded(x.record.id)).bytes, x.encoded))
})

test('a corrupt encoded copy is CorruptExtent; replicate repairs it encoded from a good copy; a read falls back and rewrites it', async () => {
  const x = compressible(6, [ctx.a, ctx.b])
  for (const n of [ctx.a, ctx.b]) await ctx.a.peers.put(n.id, x.put, x.encoded)

  // repair (what scrub asks for): the corrupt copy is replaced by the good one, still encoded
  await corrupt('a', x.record.id)
  const err = await failureOf(ctx.a.store.get(x.record.id))
  assert.is(err.name, 'CorruptExtent')
  assert.is(err.details?.expected, x.record.checksum)
  await ctx.c.peers.replicate(ctx.a.id, x.record, [ctx.b.id])
  assert.ok(same(await ctx.a.store.get(x.record.id), x.bytes))
  assert.equal((await ctx.a.store.stat(x.record.id)).codec, 'zstd')

  // B's own read: its copy fails, A's is good, and B's copy is rewritten (with the logical bytes)
  await corrupt('b', x.record.id)
  assert.is((await failureOf(ctx.b.store.get(x.record.id))).name, 'CorruptExtent')
  assert.ok(same(await ctx.b.peers.read(x.record), x.bytes))
  assert.ok(same(await ctx.b.store.get(x.record.id), x.bytes), 'the local copy was rewritten')
})

test.run()
