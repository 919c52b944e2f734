import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { AbortedError, PermissionDeniedError, type ExtentRecord } from '@dfs/api'
import { LevelExtentStore } from '@dfs/level-store'
import { LocalMetadataService } from '@dfs/raft-metadata'
import { createHost, type Host } from '../../src/net/host.js'
import { RpcServer } from '../../src/net/rpc/server.js'
import { RpcClient } from '../../src/net/rpc/client.js'
import type { RpcMethod } from '../../src/net/rpc/types.js'
import { EXTENT_GET_METHOD, EXTENT_READ_ACTION, extentMethods } from '../../src/node/handlers/extent.js'
import { RemoteExtents } from '../../src/node/extents.js'
import { ExtentGc } from '../../src/node/extent-gc.js'
import { FileService } from '../../src/node/files.js'
import { corruptExtent } from '../e2e/extents-on-disk.js'

/**
 * Node-to-node extent reads through real libp2p hosts on loopback and real LevelDB extent stores:
 * A, B and C are members serving `extent.get`; D is a member that lies (wrong bytes under the right
 * id), H one that never answers, E one that is down; S is a stranger no member admits.
 */
const test = suite('node/extents over real libp2p')
const logger: any = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false })

interface Node { name: string, id: string, host: Host, addrs: string[], dir?: string, store?: LevelExtentStore, rpc?: RpcServer }
type LieMode = 'flip' | 'long' | 'short' | 'claims'

interface Ctx {
  root: string
  members: Set<string>
  addrBook: Map<string, string[]>
  a: Node, b: Node, c: Node, d: Node, h: Node, e: Node, s: Node
  /** What the liar D does to the bytes it sends, and how often it was asked. */
  liar: { mode: LieMode, calls: number }
  /** Authorizer decisions: `${action} ${node name}` for every call any member served. */
  authorized: string[]
  /** B's reader. */
  remote: RemoteExtents
  /** Extent records by name, and the bytes they stand for. */
  x: Record<string, ExtentRecord>
  bytes: Record<string, Uint8Array>
  cleanups: Array<() => Promise<void>>
}
const ctx = {} as Ctx

function sha256 (bytes: Uint8Array): string {
  return 'sha256:' + createHash('sha256').update(bytes).digest('hex')
}

function nameOf (peer: string): string {
  for (const n of [ctx.a, ctx.b, ctx.c, ctx.d, ctx.h, ctx.e, ctx.s]) if (n?.id === peer) return n.name
  return 'unknown'
}

function authorizer (self: string) {
  return async (peer: string, action: string): Promise<void> => {
    ctx.authorized.push(`${action} ${nameOf(peer)}→${self}`)
    if (!ctx.members.has(peer)) throw new PermissionDeniedError(`peer ${peer} is not a member`, { peer, action })
  }
}

async function makeHost (name: string, listen = true): Promise<Node> {
  const host = await createHost({ privateKey: await generateKeyPair('Ed25519'), listen: listen ? ['/ip4/127.0.0.1/tcp/0'] : [] })
  ctx.cleanups.push(async () => { await host.stop() })
  const node: Node = { name, id: host.peerId.toString(), host, addrs: host.getMultiaddrs().map(String) }
  ctx.addrBook.set(node.id, node.addrs)
  return node
}

async function openStore (node: Node): Promise<LevelExtentStore> {
  node.dir ??= join(ctx.root, node.name)
  const store = new LevelExtentStore({ dir: node.dir, logger, node: node.name })
  await store.open()
  node.store = store
  return store
}

async function serve (node: Node, methods: RpcMethod[]): Promise<void> {
  const rpc = new RpcServer({ host: node.host, authorize: authorizer(node.name) })
  rpc.register(...methods)
  await rpc.start()
  node.rpc = rpc
  ctx.cleanups.push(async () => { await rpc.stop() })
}

/** Stores `bytes` under a new id on each of `nodes`; the record lists `replicas` (node order matters). */
async function extent (name: string, bytes: Uint8Array, on: Node[], replicas: Node[]): Promise<void> {
  const id = randomUUID()
  for (const n of on) await (n.store as LevelExtentStore).put(id, bytes)
  ctx.x[name] = { id, size: bytes.byteLength, checksum: sha256(bytes), replicas: replicas.map((r) => r.id) }
  ctx.bytes[name] = bytes
}

function rec (name: string, replicas: Node[]): ExtentRecord {
  return { ...ctx.x[name], replicas: replicas.map((r) => r.id) }
}

async function failureOf (p: Promise<unknown>): Promise<any> {
  try {
    await p
  } catch (err) {
    return err
  }
  assert.unreachable('the read must fail')
}

function evidence (err: any): string[] {
  return (err.details.replicas as Array<{ node: string, error: string }>).map((r) => `${nameOf(r.node)}:${r.error}`)
}

test.before(async () => {
  ctx.root = await mkdtemp(join(tmpdir(), 'dfs-extents-'))
  ctx.members = new Set()
  ctx.addrBook = new Map()
  ctx.liar = { mode: 'flip', calls: 0 }
  ctx.authorized = []
  ctx.x = {}
  ctx.bytes = {}
  ctx.cleanups = []
  ;[ctx.a, ctx.b, ctx.c, ctx.d, ctx.h, ctx.e, ctx.s] = await Promise.all(
    ['A', 'B', 'C', 'D', 'H', 'E', 'S'].map(async (n) => await makeHost(n, n !== 'S'))
  )
  for (const n of [ctx.a, ctx.b, ctx.c, ctx.d, ctx.h, ctx.e]) ctx.members.add(n.id)
  // E is a member that is down: its addresses are known, nothing listens there
  await ctx.e.host.stop()

  for (const n of [ctx.a, ctx.b, ctx.c]) await openStore(n)
  await extent('big', randomBytes(3 * 1024 * 1024 + 5), [ctx.a], [ctx.a])
  await extent('medium', randomBytes(1024 * 1024 + 1), [ctx.a], [ctx.a])
  await extent('empty', new Uint8Array(0), [ctx.a], [ctx.a])
  await extent('corruptOnA', randomBytes(200_000), [ctx.a, ctx.c], [ctx.a, ctx.c])
  await extent('corruptEverywhere', randomBytes(5000), [ctx.a, ctx.c], [ctx.a, ctx.c])
  await extent('lost', randomBytes(5000), [], [ctx.a, ctx.c])
  // disks that flip a bit, as a node finds them when it restarts
  for (const n of [ctx.a, ctx.c]) await (n.store as LevelExtentStore).close()
  await corruptExtent(join(ctx.root, 'A'), ctx.x.corruptOnA.id, 77)
  await corruptExtent(join(ctx.root, 'A'), ctx.x.corruptEverywhere.id, 1)
  await corruptExtent(join(ctx.root, 'C'), ctx.x.corruptEverywhere.id, 2)
  for (const n of [ctx.a, ctx.c]) await openStore(n)
  for (const n of [ctx.a, ctx.b, ctx.c]) {
    const store = n.store as LevelExtentStore
    ctx.cleanups.push(async () => { await store.close() })
    await serve(n, extentMethods(store))
  }

  // D answers with the record's id, size and checksum but bytes of its own making
  await serve(ctx.d, [{
    name: EXTENT_GET_METHOD,
    action: EXTENT_READ_ACTION,
    kind: 'download',
    params: (raw) => raw as { id: string },
    handle: async ({ params }) => {
      ctx.liar.calls += 1
      const name = Object.keys(ctx.x).find((k) => ctx.x[k].id === params.id) as string
      const good = ctx.bytes[name]
      let bad: Uint8Array
      if (ctx.liar.mode === 'long') {
        bad = new Uint8Array(good.byteLength + 3)
        bad.set(good)
      } else if (ctx.liar.mode === 'short') {
        bad = good.subarray(0, good.byteLength - 1)
      } else {
        bad = good.slice()
        bad[9] ^= 0x80
      }
      // 'claims': the result admits its copy differs; B must not even take the bytes
      const claimed = ctx.liar.mode === 'claims' ? sha256(bad) : sha256(good)
      return { result: { id: params.id, size: good.byteLength, checksum: claimed }, body: (async function * () { yield bad })() }
    }
  }])
  // H accepts the call and never answers
  await serve(ctx.h, [{
    name: EXTENT_GET_METHOD,
    action: EXTENT_READ_ACTION,
    kind: 'download',
    params: (raw) => raw,
    handle: async ({ signal }) => {
      await new Promise((resolve) => { signal.addEventListener('abort', resolve, { once: true }) })
      throw new AbortedError('caller went away')
    }
  }])

  ctx.remote = new RemoteExtents({
    host: ctx.b.host,
    nodeId: ctx.b.id,
    store: ctx.b.store as LevelExtentStore,
    resolveAddrs: (peer) => ctx.addrBook.get(peer) ?? [],
    replicaIdleTimeoutMs: 1000,
    dialTimeoutMs: 1000
  })
  ctx.cleanups.push(async () => { await ctx.remote.stop() })
})

test.after(async () => {
  for (const step of ctx.cleanups.reverse()) await step().catch(() => {})
  await rm(ctx.root, { recursive: true, force: true })
})

test('B reads an extent stored only on A (dialled by PeerId from the addresses it resolves), byte for byte', async () => {
  const got = await ctx.remote.get(ctx.x.big, { timeoutMs: 5000 })
  assert.ok(Buffer.from(got).equals(ctx.bytes.big))
  // B listed first but without the bytes: the local NotFound is passed over, A serves
  assert.ok(Buffer.from(await ctx.remote.get(rec('big', [ctx.b, ctx.a]))).equals(ctx.bytes.big))
  assert.is((await ctx.remote.get(ctx.x.empty)).byteLength, 0)
  assert.ok(ctx.authorized.includes(`${EXTENT_READ_ACTION} B→A`), 'the call was authorized as extent.read')
})

test('the copy on A is corrupt and the one on C good: A says CorruptExtent (typed), B gets the good bytes from C', async () => {
  const direct = new RpcClient({ host: ctx.b.host, target: ctx.a.host.peerId })
  try {
    const err = await failureOf(direct.download(EXTENT_GET_METHOD, { id: ctx.x.corruptOnA.id }, { timeoutMs: 5000 }))
    assert.is(err.name, 'CorruptExtent')
    assert.is(err.details.extentId, ctx.x.corruptOnA.id)
    assert.is(err.details.expected, ctx.x.corruptOnA.checksum)
    assert.is(err.details.node, 'A')
    const missing = await failureOf(direct.download(EXTENT_GET_METHOD, { id: ctx.x.lost.id }, { timeoutMs: 5000 }))
    assert.is(missing.name, 'NotFound')
    const bad = await failureOf(direct.download(EXTENT_GET_METHOD, { id: '../etc/passwd' }, { timeoutMs: 5000 }))
    assert.is(bad.name, 'InvalidArgument')
  } finally {
    await direct.close()
  }
  const got = await ctx.remote.get(ctx.x.corruptOnA, { timeoutMs: 5000 })
  assert.ok(Buffer.from(got).equals(ctx.bytes.corruptOnA))
})

test('every replica down, silent, corrupt or missing: Unavailable with each one\'s evidence, within the deadline', async () => {
  const started = Date.now()
  const err = await failureOf(ctx.remote.get(rec('corruptEverywhere', [ctx.e, ctx.h, ctx.a, ctx.s]), { timeoutMs: 8000 }))
  const elapsedMs = Date.now() - started
  assert.is(err.name, 'Unavailable')
  assert.is(err.details.extentId, ctx.x.corruptEverywhere.id)
  // S listens nowhere: no address is known for it
  assert.equal(evidence(err), ['E:NodeUnreachable', 'H:DeadlineExceeded', 'A:CorruptExtent', 'S:NodeUnreachable'])
  for (const r of err.details.replicas) assert.ok(r.message.length > 0)
  assert.ok(elapsedMs < 5000, `gave up after ${elapsedMs} ms`)
})

test('all replicas corrupt is CorruptExtent, all missing is NotFound, each with the evidence', async () => {
  const corrupt = await failureOf(ctx.remote.get(ctx.x.corruptEverywhere))
  assert.is(corrupt.name, 'CorruptExtent')
  assert.is(corrupt.details.extentId, ctx.x.corruptEverywhere.id)
  assert.equal(evidence(corrupt), ['A:CorruptExtent', 'C:CorruptExtent'])
  const lost = await failureOf(ctx.remote.get(rec('lost', [ctx.b, ctx.a, ctx.c])))
  assert.is(lost.name, 'NotFound')
  assert.equal(evidence(lost), ['B:NotFound', 'A:NotFound', 'C:NotFound'])
})

test('a peer that sends wrong bytes under the right id is caught by B\'s own check, and the next replica serves', async () => {
  for (const mode of ['flip', 'long', 'short', 'claims'] as LieMode[]) {
    ctx.liar.mode = mode
    const before = ctx.liar.calls
    const alone = await failureOf(ctx.remote.get(rec('big', [ctx.d]), { timeoutMs: 5000 }))
    assert.is(alone.name, 'CorruptExtent', mode)
    assert.equal(evidence(alone), ['D:CorruptExtent'], mode)
    const got = await ctx.remote.get(rec('big', [ctx.d, ctx.a]), { timeoutMs: 5000 })
    assert.ok(Buffer.from(got).equals(ctx.bytes.big), mode)
    assert.is(ctx.liar.calls, before + 2, `${mode}: D was asked both times`)
  }
})

test('40 concurrent reads from one peer (more than it serves at once) all get the right bytes', async () => {
  // a progress deadline generous enough for a loaded test machine: this is about correctness
  const busy = new RemoteExtents({ host: ctx.b.host, nodeId: ctx.b.id, store: ctx.b.store as LevelExtentStore, resolveAddrs: (p) => ctx.addrBook.get(p) ?? [], replicaIdleTimeoutMs: 10_000 })
  try {
    const reads = Array.from({ length: 40 }, async () => await busy.get(ctx.x.medium, { timeoutMs: 20_000 }))
    for (const got of await Promise.all(reads)) assert.ok(Buffer.from(got).equals(ctx.bytes.medium))
  } finally {
    await busy.stop()
  }
})

test('the whole read has a deadline, and the caller can abort it; both keep the evidence so far', async () => {
  const patient = new RemoteExtents({ host: ctx.b.host, nodeId: ctx.b.id, store: ctx.b.store as LevelExtentStore, resolveAddrs: (p) => ctx.addrBook.get(p) ?? [], replicaIdleTimeoutMs: 10_000 })
  try {
    let started = Date.now()
    const late = await failureOf(patient.get(rec('big', [ctx.h, ctx.a]), { timeoutMs: 500 }))
    assert.ok(Date.now() - started < 3000)
    assert.is(late.name, 'DeadlineExceeded')
    assert.equal(evidence(late), ['H:DeadlineExceeded'])
    assert.equal(late.details.untried, [ctx.a.id])

    const controller = new AbortController()
    setTimeout(() => { controller.abort() }, 300)
    started = Date.now()
    const aborted = await failureOf(patient.get(rec('big', [ctx.h, ctx.a]), { signal: controller.signal }))
    assert.ok(Date.now() - started < 3000)
    assert.is(aborted.name, 'Aborted')
    assert.equal(evidence(aborted), ['H:Aborted'])
  } finally {
    await patient.stop()
  }
  const stopped = await failureOf(patient.get(ctx.x.big))
  assert.is(stopped.name, 'Unavailable')
})

test('a stranger is refused with PermissionDenied', async () => {
  const c = new RpcClient({ host: ctx.s.host, target: ctx.a.host.getMultiaddrs()[0] })
  try {
    const err = await failureOf(c.download(EXTENT_GET_METHOD, { id: ctx.x.big.id }, { timeoutMs: 5000 }))
    assert.is(err.name, 'PermissionDenied')
    assert.is(err.details.action, EXTENT_READ_ACTION)
  } finally {
    await c.close()
  }
  const reader = new RemoteExtents({ host: ctx.s.host, nodeId: ctx.s.id, store: ctx.b.store as LevelExtentStore, resolveAddrs: (p) => ctx.addrBook.get(p) ?? [] })
  try {
    const err = await failureOf(reader.get(ctx.x.big, { timeoutMs: 5000 }))
    assert.is(err.name, 'Unavailable')
    assert.equal(evidence(err), ['A:PermissionDenied'])
  } finally {
    await reader.stop()
  }
})

test('FileService on B reads a file whose extents were put through A, through RemoteExtents', async () => {
  const dir = await mkdtemp(join(ctx.root, 'meta-'))
  // one metadata log both services read, standing in for the replicated one
  const metadata = new LocalMetadataService({ dir, nodeId: ctx.a.id, logger })
  await metadata.start()
  try {
    const storeA = ctx.a.store as LevelExtentStore
    const storeB = ctx.b.store as LevelExtentStore
    const onA = new FileService({ nodeId: ctx.a.id, store: storeA, metadata, gc: new ExtentGc(storeA), extentSize: 64 * 1024 })
    const bytes = randomBytes(5 * 64 * 1024 + 999)
    await onA.put('/docs/a.bin', (async function * () { yield bytes })())
    const onB = new FileService({ nodeId: ctx.b.id, store: storeB, metadata, gc: new ExtentGc(storeB), extentSize: 64 * 1024, extents: ctx.remote })
    const { stat, body } = await onB.open('/docs/a.bin')
    assert.is(stat.extents.length, 6)
    for (const e of stat.extents) assert.equal(e.replicas, [ctx.a.id])
    const parts: Uint8Array[] = []
    for await (const chunk of body) parts.push(chunk)
    assert.ok(Buffer.concat(parts).equals(bytes))
    // without a reader, B can only read what it stores itself: exactly the behaviour before
    const localOnly = new FileService({ nodeId: ctx.b.id, store: storeB, metadata, gc: new ExtentGc(storeB), extentSize: 64 * 1024 })
    const err = await failureOf((async () => { for await (const _ of (await localOnly.open('/docs/a.bin')).body) { /* drain */ } })())
    assert.is(err.name, 'NotFound')
  } finally {
    await metadata.stop()
  }
})

test.run()
