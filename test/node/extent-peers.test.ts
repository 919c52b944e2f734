import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomBytes, randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { extentChecksum, EXTENT_SIZE_MAX, type ExtentRecord, type MemberRecord, type MetadataService, type MetadataView, type Role } from '@dfs/api'
import { LevelExtentStore } from '@dfs/level-store'
import { createHost, type Host } from '../../src/net/host.js'
import { RpcServer } from '../../src/net/rpc/server.js'
import { RpcClient } from '../../src/net/rpc/client.js'
import { Security } from '../../src/security/index.js'
import {
  EXTENT_DELETE_METHOD, EXTENT_PUT_METHOD, EXTENT_REPLICATE_METHOD, EXTENT_WRITE_ACTION, extentMethods, extentWriteMethods
} from '../../src/node/handlers/extent.js'
import { RemoteExtents } from '../../src/node/extents.js'
import { RpcExtentPeers } from '../../src/node/extent-peers.js'
import { corruptExtent } from '../e2e/extents-on-disk.js'

/**
 * ExtentPeers through real libp2p hosts on loopback, real LevelDB stores and the real Security
 * rules: A, B and C are members, each serving `extent.get` and the `extent.*` writes and holding its
 * own RpcExtentPeers; U is a user with the admin role (not a member), S a stranger.
 */
const test = suite('node/extent-peers over real libp2p')
const logger: any = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false })

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

const ctx = {} as { root: string, a: Node, b: Node, c: Node, u: Host, s: Host, addrBook: Map<string, string[]>, cleanups: Array<() => Promise<void>> }

/** The member list and roles as Raft would hold them; every node's Security reads them. */
const members: MemberRecord[] = []
const roles = new Map<string, Role>()
const metadata = {
  staleRead: <T>(fn: (view: MetadataView) => T): T => fn({
    members: () => members,
    role: (peer: string) => roles.get(peer),
    user: (peer: string) => { const role = roles.get(peer); return role === undefined ? undefined : { id: peer, role, tenant: null } }
  } as unknown as MetadataView)
} as unknown as MetadataService

async function startHost (): Promise<Host> {
  const host = await createHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] })
  ctx.cleanups.push(async () => { await host.stop() })
  return host
}

async function openStore (node: { name: string, dir: string }): Promise<LevelExtentStore> {
  const store = new LevelExtentStore({ dir: node.dir, logger, node: node.name })
  await store.open()
  return store
}

/** A real store whose puts wait at a gate while one is set (a slow disk, a busy node). */
class GatedStore extends LevelExtentStore {
  gate: Promise<void> | undefined
  /** Called when a put reaches the gate. */
  onGate: () => void = () => {}
  override async put (...args: Parameters<LevelExtentStore['put']>): ReturnType<LevelExtentStore['put']> {
    if (this.gate !== undefined) {
      this.onGate()
      await this.gate
    }
    return await super.put(...args)
  }
}

async function startNode (name: string, gated = false): Promise<Node> {
  const host = await startHost()
  const id = host.peerId.toString()
  const dir = join(ctx.root, name)
  const store = gated ? new GatedStore({ dir, logger, node: name }) : await openStore({ name, dir })
  if (gated) await store.open()
  const reader = new RemoteExtents({ host, nodeId: id, store, resolveAddrs: (p) => ctx.addrBook.get(p) ?? [], replicaIdleTimeoutMs: 3000 })
  const peers = new RpcExtentPeers({ nodeId: id, store, reader, callTimeoutMs: 20_000 })
  const security = new Security({ nodeId: id, metadata })
  const rpc = new RpcServer({ host, authorize: async (peer, action, options) => { await security.authorize(peer, action, options) } })
  rpc.register(...extentMethods(store), ...extentWriteMethods(peers.local))
  await rpc.start()
  ctx.addrBook.set(id, host.getMultiaddrs().map(String))
  members.push({ id, name, region: 'r1', addrs: ctx.addrBook.get(id) as string[] })
  return { name, id, host, dir, store, rpc, reader, peers }
}

async function stopNode (n: Node): Promise<void> {
  await n.reader.stop()
  await n.rpc.stop()
  await n.store.close()
}

/** Closes `node`'s store, flips a byte of extent `id` on disk, and reopens it (rebuilding what holds it). */
async function corrupt (key: 'a' | 'b' | 'c', id: string): Promise<void> {
  const n = ctx[key]
  await stopNode(n)
  await corruptExtent(n.dir, id, 3)
  const store = await openStore(n)
  const reader = new RemoteExtents({ host: n.host, nodeId: n.id, store, resolveAddrs: (p) => ctx.addrBook.get(p) ?? [], replicaIdleTimeoutMs: 3000 })
  const peers = new RpcExtentPeers({ nodeId: n.id, store, reader, callTimeoutMs: 20_000 })
  const security = new Security({ nodeId: n.id, metadata })
  const rpc = new RpcServer({ host: n.host, authorize: async (peer, action, options) => { await security.authorize(peer, action, options) } })
  rpc.register(...extentMethods(store), ...extentWriteMethods(peers.local))
  await rpc.start()
  ctx[key] = { ...n, store, reader, peers, rpc }
}

function newExtent (bytes: Uint8Array, replicas: Node[] = []): ExtentRecord {
  return { id: randomUUID(), size: bytes.byteLength, checksum: extentChecksum(bytes), replicas: replicas.map((r) => r.id) }
}

async function failureOf (p: Promise<unknown>): Promise<any> {
  try {
    await p
  } catch (err) {
    return err
  }
  assert.unreachable('the call must fail')
}

async function holds (n: Node, id: string): Promise<Uint8Array | undefined> {
  return await n.store.has(id) ? await n.store.get(id) : undefined
}

test.before(async () => {
  ctx.root = await mkdtemp(join(tmpdir(), 'dfs-extent-peers-'))
  ctx.addrBook = new Map()
  ctx.cleanups = []
  ctx.a = await startNode('A')
  ctx.b = await startNode('B')
  ctx.c = await startNode('C')
  ctx.u = await startHost()
  ctx.s = await startHost()
  roles.set(ctx.u.peerId.toString(), 'admin')
})

test.after(async () => {
  for (const n of [ctx.a, ctx.b, ctx.c]) if (n != null) await stopNode(n).catch(() => {})
  for (const step of ctx.cleanups.reverse()) await step().catch(() => {})
  await rm(ctx.root, { recursive: true, force: true })
})

test('B puts an extent on A; A read it back byte for byte; a second put is success and changes nothing', async () => {
  const bytes = randomBytes(1024 * 1024 + 17)
  const x = newExtent(bytes, [ctx.a])
  await ctx.b.peers.put(ctx.a.id, x, bytes)
  assert.ok(Buffer.from(await ctx.a.store.get(x.id)).equals(bytes))
  assert.equal(await ctx.a.store.stat(x.id), { id: x.id, size: x.size, checksum: x.checksum })
  const usage = await ctx.a.store.usage()
  await ctx.b.peers.put(ctx.a.id, x, bytes)
  assert.equal(await ctx.a.store.usage(), usage, 'an idempotent retry stores nothing more')
  assert.ok(Buffer.from(await ctx.b.peers.read(x)).equals(bytes), 'B reads it from A')
  // and an empty extent
  const empty = newExtent(new Uint8Array(0), [ctx.a])
  await ctx.b.peers.put(ctx.a.id, empty, new Uint8Array(0))
  assert.is((await ctx.a.store.get(empty.id)).byteLength, 0)
})

test('a put whose size does not match is CorruptExtent and leaves nothing; the checksum is the member\'s, and a deep read verifies it', async () => {
  const bytes = randomBytes(5000)
  // a member vouches for the checksum (it computed it; Noise proved the bytes are the ones it sent):
  // the peer stores it as given; a read checks the bytes are those it stored (their CRC), the
  // scrub's deep read finds the mismatch, and so does a node that reads the copy from this one
  const wrongSum = { ...newExtent(bytes, [ctx.a]), checksum: extentChecksum(randomBytes(10)) }
  await ctx.b.peers.put(ctx.a.id, wrongSum, bytes)
  assert.ok(Buffer.from(await ctx.a.store.get(wrongSum.id)).equals(bytes))
  assert.is((await failureOf(ctx.a.store.get(wrongSum.id, { deep: true }))).name, 'CorruptExtent')
  assert.is((await failureOf(ctx.b.peers.read(wrongSum, { order: [ctx.a.id] }))).name, 'CorruptExtent')
  await ctx.a.store.delete(wrongSum.id)

  // a caller that lies about the size: short and long bodies, sent around RpcExtentPeers' own checks
  const client = new RpcClient({ host: ctx.b.host, target: ctx.a.host.peerId })
  try {
    const x = newExtent(bytes)
    const short = await failureOf(client.upload(EXTENT_PUT_METHOD, { id: x.id, size: x.size + 1, checksum: x.checksum }, (async function * () { yield bytes })()))
    assert.is(short.name, 'CorruptExtent')
    const long = await failureOf(client.upload(EXTENT_PUT_METHOD, { id: x.id, size: x.size - 1, checksum: x.checksum }, (async function * () { yield bytes })()))
    assert.is(long.name, 'FrameTooLarge')
    assert.is(await ctx.a.store.has(x.id), false)
    // the node still serves this client afterwards
    await client.upload(EXTENT_PUT_METHOD, { id: x.id, size: x.size, checksum: x.checksum }, (async function * () { yield bytes })())
    assert.ok(Buffer.from(await ctx.a.store.get(x.id)).equals(bytes))
  } finally {
    await client.close()
  }
})

test('an oversized extent is refused: announced (InvalidArgument) or streamed beyond the limit (FrameTooLarge); nothing stored', async () => {
  const client = new RpcClient({ host: ctx.b.host, target: ctx.a.host.peerId })
  const before = await ctx.a.store.usage()
  try {
    const id = randomUUID()
    const sum = extentChecksum(new Uint8Array(0))
    const announced = await failureOf(client.upload(EXTENT_PUT_METHOD, { id, size: EXTENT_SIZE_MAX + 1, checksum: sum }, (async function * () { yield new Uint8Array(10) })()))
    assert.is(announced.name, 'InvalidArgument')
    // 6 MiB in 64 KiB pieces against an announced 4 MiB: refused once past 4 MiB, the rest never read
    const piece = new Uint8Array(64 * 1024)
    const streamed = await failureOf(client.upload(EXTENT_PUT_METHOD, { id, size: EXTENT_SIZE_MAX, checksum: sum }, (async function * () {
      for (let i = 0; i < 96; i++) yield piece
    })()))
    assert.is(streamed.name, 'FrameTooLarge')
    assert.is(await ctx.a.store.has(id), false)
  } finally {
    await client.close()
  }
  assert.equal(await ctx.a.store.usage(), before)
  const local = await failureOf(ctx.b.peers.put(ctx.a.id, { id: randomUUID(), size: 0, checksum: extentChecksum(new Uint8Array(0)) }, new Uint8Array(EXTENT_SIZE_MAX + 1)))
  assert.is(local.name, 'InvalidArgument')
})

test('a put over a copy that does not verify replaces it', async () => {
  const bytes = randomBytes(70_000)
  const x = newExtent(bytes, [ctx.a])
  await ctx.b.peers.put(ctx.a.id, x, bytes)
  await corrupt('a', x.id)
  assert.is((await failureOf(ctx.a.store.get(x.id))).name, 'CorruptExtent')
  await ctx.b.peers.put(ctx.a.id, x, bytes)
  assert.ok(Buffer.from(await ctx.a.store.get(x.id)).equals(bytes))
})

test('replicate: C pulls a copy it lacks from the sources (past a source that lacks it too); a good copy is left alone', async () => {
  const bytes = randomBytes(300_000)
  const x = newExtent(bytes, [ctx.a])
  await ctx.a.store.put(x.id, bytes)
  // B asks C to copy from B (has none) then A
  await ctx.b.peers.replicate(ctx.c.id, x, [ctx.b.id, ctx.a.id])
  assert.ok(Buffer.from(await ctx.c.store.get(x.id)).equals(bytes))
  // good already: nothing fetched even when the only source cannot serve
  await ctx.b.peers.replicate(ctx.c.id, x, [ctx.b.id])
  // no source has it and C has none: the typed evidence comes back
  const y = newExtent(randomBytes(100), [ctx.a])
  const err = await failureOf(ctx.b.peers.replicate(ctx.c.id, y, [ctx.a.id, ctx.b.id]))
  assert.is(err.name, 'NotFound')
  assert.is(await ctx.c.store.has(y.id), false)
  // to itself: the local store, through the same rules
  await ctx.b.peers.replicate(ctx.b.id, x, [ctx.b.id, ctx.c.id])
  assert.ok(Buffer.from(await ctx.b.store.get(x.id)).equals(bytes))
})

test('replicate over a corrupt local copy re-fetches it; a source whose copy is bad is passed over', async () => {
  const bytes = randomBytes(200_000)
  const x = newExtent(bytes, [ctx.a, ctx.b, ctx.c])
  for (const n of [ctx.a, ctx.b, ctx.c]) await n.store.put(x.id, bytes)
  await corrupt('c', x.id)
  await corrupt('a', x.id)
  await ctx.b.peers.replicate(ctx.c.id, x, [ctx.a.id, ctx.b.id])
  assert.ok(Buffer.from(await ctx.c.store.get(x.id)).equals(bytes), 'C healed from B after A failed')
  assert.is((await failureOf(ctx.a.store.get(x.id))).name, 'CorruptExtent', 'A was only read, not changed')
  // a malformed request changes nothing
  const client = new RpcClient({ host: ctx.b.host, target: ctx.c.host.peerId })
  try {
    for (const params of [
      { extent: { ...x, size: -1 }, sources: [ctx.a.id] },
      { extent: { ...x, checksum: 'md5:00' }, sources: [ctx.a.id] },
      { extent: { ...x, extra: 1 }, sources: [ctx.a.id] },
      { extent: x, sources: ['not-a-peer'] },
      { extent: x, sources: Array.from({ length: 17 }, () => ctx.a.id) },
      { extent: x, sources: [ctx.a.id, ctx.a.id] }
    ]) {
      const err = await failureOf(client.call(EXTENT_REPLICATE_METHOD, params, { timeoutMs: 5000 }))
      assert.is(err.name, 'InvalidArgument', JSON.stringify(params).slice(0, 120))
    }
  } finally {
    await client.close()
  }
})

test('delete removes a peer\'s copy; a missing one is success', async () => {
  const bytes = randomBytes(1000)
  const x = newExtent(bytes, [ctx.a])
  await ctx.b.peers.put(ctx.a.id, x, bytes)
  await ctx.b.peers.delete(ctx.a.id, x.id)
  assert.is(await ctx.a.store.has(x.id), false)
  await ctx.b.peers.delete(ctx.a.id, x.id)
  await ctx.b.store.put(x.id, bytes)
  await ctx.b.peers.delete(ctx.b.id, x.id)
  assert.is(await ctx.b.store.has(x.id), false)
})

test('a copy cut off and deleted before its store wrote it is deleted once written; a late one is refused; replicate is not held back', async () => {
  const d = await startNode('D', true)
  const store = d.store as GatedStore
  try {
    const bytes = randomBytes(5000)
    const x = newExtent(bytes, [d])
    // B's copy for D is received, but D's store is slow: the write that sent it gives up on it
    // and deletes it (delete finds nothing yet); then the store writes it
    let open!: () => void
    store.gate = new Promise((resolve) => { open = resolve })
    const reached = new Promise<void>((resolve) => { store.onGate = resolve })
    const cut = new AbortController()
    const putting = ctx.b.peers.put(d.id, x, bytes, { signal: cut.signal })
    await reached
    await ctx.b.peers.delete(d.id, x.id)
    assert.is(await d.store.has(x.id), false)
    store.gate = undefined
    open()
    cut.abort()
    await failureOf(putting)
    // the copy D's store wrote after the delete is deleted again (the put's handler saw the delete)
    const { waitFor } = await import('../e2e/harness.js')
    await waitFor(async () => (await d.store.has(x.id)) ? undefined : true, 5000, 'the late copy to be deleted')
    await new Promise((resolve) => setTimeout(resolve, 200))
    assert.is(await d.store.has(x.id), false, 'no copy stays that no file references')
    // a copy of it arriving after the delete (another connection, a queue) is refused
    assert.is((await failureOf(ctx.b.peers.put(d.id, x, bytes))).name, 'Aborted')
    assert.is(await d.store.has(x.id), false)
    // repair's pull is not held back: metadata lists D as a replica, B has a good copy
    await ctx.b.store.put(x.id, bytes)
    await ctx.a.peers.replicate(d.id, x, [ctx.b.id])
    assert.ok(Buffer.from(await d.store.get(x.id)).equals(bytes))
  } finally {
    await stopNode(d)
  }
})

test('read falls back past a corrupt local copy and rewrites it from the good bytes', async () => {
  const bytes = randomBytes(150_000)
  const x = newExtent(bytes, [ctx.b, ctx.a])
  for (const n of [ctx.a, ctx.b]) await n.store.put(x.id, bytes)
  await corrupt('b', x.id)
  assert.is((await failureOf(ctx.b.store.get(x.id))).name, 'CorruptExtent')
  assert.ok(Buffer.from(await ctx.b.peers.read(x)).equals(bytes))
  assert.ok(Buffer.from(await holds(ctx.b, x.id) as Uint8Array).equals(bytes), 'the local copy was rewritten')
  // an explicit order is followed: C (none) then A
  assert.ok(Buffer.from(await ctx.b.peers.read(x, { order: [ctx.c.id, ctx.a.id] })).equals(bytes))
  const err = await failureOf(ctx.b.peers.read(x, { order: [ctx.c.id] }))
  assert.is(err.name, 'NotFound')
})

test('a user with a role (not a member) and a stranger get PermissionDenied on put, replicate and delete; nothing changes', async () => {
  const bytes = randomBytes(1000)
  const x = newExtent(bytes, [ctx.a])
  await ctx.a.store.put(x.id, bytes)
  for (const host of [ctx.u, ctx.s]) {
    const client = new RpcClient({ host, target: ctx.a.host.getMultiaddrs()[0] })
    try {
      const y = newExtent(bytes)
      const calls = [
        async () => await client.upload(EXTENT_PUT_METHOD, { id: y.id, size: y.size, checksum: y.checksum }, (async function * () { yield bytes })(), { timeoutMs: 5000 }),
        async () => await client.call(EXTENT_REPLICATE_METHOD, { extent: y, sources: [ctx.b.id] }, { timeoutMs: 5000 }),
        async () => await client.call(EXTENT_DELETE_METHOD, { id: x.id }, { timeoutMs: 5000 })
      ]
      for (const call of calls) {
        const err = await failureOf(call())
        assert.is(err.name, 'PermissionDenied')
        assert.is(err.details.action, EXTENT_WRITE_ACTION)
      }
      assert.is(await ctx.a.store.has(y.id), false)
    } finally {
      await client.close()
    }
  }
  assert.ok(await ctx.a.store.has(x.id))
})

test.run()
