import { test } from 'uvu'
import * as assert from 'uvu/assert'
import {
  CLUSTER_CONFIG_DEFAULTS, CorruptExtentError, NodeUnreachableError, extentChecksum
} from '@dfs/api'
import type {
  CallOptions, ClusterNode, ExtentIdentity, ExtentPeers, ExtentReadOptions, ExtentRecord, ExtentStore, MetadataService, MetadataView, PeerIdString,
  ReplicationEvent
} from '@dfs/api'
import { DefaultPlacement } from '../../src/policies/default-placement.js'
import { DefaultRebalance } from '../../src/policies/default-rebalance.js'
import { DefaultReplication, QUORUM_GRACE_MS_MIN } from '../../src/service/replication-service.js'
import type { ReplicationTuning } from '../../src/service/context.js'

/**
 * The replication service against in-memory doubles of the network and the cluster (the real
 * transport, stores and processes are exercised by test/e2e/replication.test.ts).
 */

const noop = (): void => {}
const silent = Object.assign(noop, { error: noop, trace: noop, enabled: false })

function node (id: string, region = 'r1', health: ClusterNode['health'] = 'healthy'): ClusterNode {
  return { id, region, health, usedBytes: 0, capacityBytes: 1 << 30, fillLimit: 0.9, failedForMs: 0 }
}

/** Peers whose copies live in maps; `down` peers refuse every call. */
class FakePeers implements ExtentPeers {
  readonly copies = new Map<PeerIdString, Map<string, Uint8Array>>()
  readonly down = new Set<PeerIdString>()
  /** Peers whose puts never answer (until their signal aborts them). */
  readonly hung = new Set<PeerIdString>()
  readonly aborted: PeerIdString[] = []
  readonly reads: PeerIdString[][] = []
  /** Peers in the order their puts were called. */
  readonly started: PeerIdString[] = []

  #check (peer: PeerIdString): void {
    if (this.down.has(peer)) throw new NodeUnreachableError(`${peer} is down`)
  }

  async put (peer: PeerIdString, extent: ExtentIdentity, bytes: Uint8Array, options?: CallOptions): Promise<void> {
    this.started.push(peer)
    this.#check(peer)
    if (this.hung.has(peer)) {
      await new Promise((resolve, reject) => {
        options?.signal?.addEventListener('abort', () => { this.aborted.push(peer); reject(options.signal?.reason as Error) }, { once: true })
      })
    }
    assert.is(extentChecksum(bytes), extent.checksum, 'the coordinator sends the checksum of the bytes')
    const m = this.copies.get(peer) ?? new Map()
    m.set(extent.id, bytes)
    this.copies.set(peer, m)
  }

  async replicate (peer: PeerIdString, extent: ExtentRecord, sources: PeerIdString[]): Promise<void> {
    this.#check(peer)
    for (const s of sources) {
      const b = this.copies.get(s)?.get(extent.id)
      if (b !== undefined && !this.down.has(s)) { await this.put(peer, extent, b); return }
    }
    throw new NodeUnreachableError('no source')
  }

  async delete (peer: PeerIdString, id: string): Promise<void> {
    this.#check(peer)
    this.copies.get(peer)?.delete(id)
  }

  async read (extent: ExtentRecord, options?: CallOptions & { order?: PeerIdString[] }): Promise<Uint8Array> {
    const order = options?.order ?? extent.replicas
    this.reads.push(order)
    for (const p of order) {
      const b = this.down.has(p) ? undefined : this.copies.get(p)?.get(extent.id)
      if (b !== undefined) return b
    }
    throw new NodeUnreachableError('no replica answered')
  }
}

function service (nodes: ClusterNode[], peers: FakePeers, self = 'n1', draining: string[] = [], tuning: ReplicationTuning = {}): DefaultReplication {
  const members = nodes.map((n) => ({ id: n.id, name: n.id, region: n.region, addrs: [], ...(draining.includes(n.id) ? { draining: true } : {}) }))
  const view = { config: () => CLUSTER_CONFIG_DEFAULTS, members: () => members } as unknown as MetadataView
  const metadata = {
    staleRead: <T>(fn: (v: MetadataView) => T): T => fn(view),
    status: () => ({ leader: undefined, term: 0, commitIndex: 0, appliedIndex: 0 })
  } as unknown as MetadataService
  return new DefaultReplication({
    nodeId: self,
    logger: silent,
    store: undefined as never,
    metadata,
    cluster: { nodes: () => nodes },
    peers,
    placement: () => new DefaultPlacement(),
    rebalance: () => new DefaultRebalance(),
    ...tuning
  })
}

const ID = '00000000-0000-4000-8000-000000000001'

test('a write goes to RF nodes and records only the copies that acknowledged', async () => {
  const peers = new FakePeers()
  const nodes = ['n1', 'n2', 'n3', 'n4'].map((id) => node(id))
  const bytes = new TextEncoder().encode('hello')
  const w = await service(nodes, peers).write(ID, bytes)
  assert.is(w.extent.replicas.length, 3)
  assert.is(new Set(w.extent.replicas).size, 3)
  assert.equal(w.missing, [])
  assert.is(w.extent.checksum, extentChecksum(bytes))
  for (const r of w.extent.replicas) assert.ok(peers.copies.get(r)?.has(ID))

  // one placed node down: a majority (2 of 3) still acknowledges; the third is reported missing
  const peers2 = new FakePeers()
  const three = ['n1', 'n2', 'n3'].map((id) => node(id))
  peers2.down.add('n3')
  const w2 = await service(three, peers2).write(ID, bytes)
  assert.equal([...w2.extent.replicas].sort(), ['n1', 'n2'])
  assert.equal(w2.missing, ['n3'])
  // `sync: all` wants every copy
  try {
    await service(three, peers2).write(ID, bytes, { sync: 'all' })
    assert.unreachable('sync all with a node down')
  } catch (err) {
    assert.is((err as Error).name, 'NoQuorum')
  }
})

test('the coordinator starts its own copy before the remote ones, whatever order placement chose', async () => {
  const nodes = ['n1', 'n2', 'n3'].map((id) => node(id))
  const bytes = new TextEncoder().encode('local first')
  const orders: string[] = []
  for (const self of ['n1', 'n2', 'n3']) {
    const peers = new FakePeers()
    const w = await service(nodes, peers, self).write(ID, bytes)
    assert.ok(w.extent.replicas.includes(self))
    assert.is(peers.started[0], self, `coordinator ${self} started ${peers.started.join(',')}`)
    orders.push(peers.started.join(','))
  }
  // placement does not already put the coordinator first: the ordering is the service's doing
  const placed = new DefaultPlacement().place({ extent: { id: ID, size: bytes.byteLength, replicas: [] }, replicationFactor: 3, nodes: nodes.map((n) => ({ ...n })) })
  assert.ok(['n1', 'n2', 'n3'].some((self) => placed[0] !== self), `placement order ${placed.join(',')}`)
  assert.is(new Set(orders).size, 3)
})

test('a hung replica delays a write by the grace after the quorum, not the deadline; its copy counts as missing', async () => {
  const peers = new FakePeers()
  const nodes = ['n1', 'n2', 'n3'].map((id) => node(id))
  peers.hung.add('n3')
  const t = Date.now()
  const w = await service(nodes, peers).write(ID, new Uint8Array(10))
  const took = Date.now() - t
  assert.ok(took >= QUORUM_GRACE_MS_MIN - 2 && took < 3000, `decided after ${took} ms`)
  assert.equal([...w.extent.replicas].sort(), ['n1', 'n2'])
  assert.equal(w.missing, ['n3'])
  assert.equal(peers.aborted, ['n3'], 'the hung call is cut off')
  // one acknowledgement and a hung replica: the write waits for the hung one until the caller gives up
  const peers2 = new FakePeers()
  peers2.hung.add('n3')
  peers2.down.add('n2')
  const t2 = Date.now()
  try {
    const caller = new AbortController()
    setTimeout(() => { caller.abort(new Error('the caller gave up')) }, 300)
    await service(nodes, peers2).write(ID, new Uint8Array(10), { signal: caller.signal })
    assert.unreachable('one of three acknowledged')
  } catch (err) {
    assert.is((err as Error).message, 'the caller gave up')
    assert.ok(Date.now() - t2 >= 250)
  }
})

test('without a write quorum the write fails with NoQuorum and the copies it made are taken back', async () => {
  const peers = new FakePeers()
  const nodes = ['n1', 'n2', 'n3'].map((id) => node(id))
  peers.down.add('n2')
  peers.down.add('n3')
  try {
    await service(nodes, peers).write(ID, new Uint8Array(10))
    assert.unreachable('one of three is no quorum')
  } catch (err) {
    assert.is((err as Error).name, 'NoQuorum')
    assert.equal((err as any).details.acked, ['n1'])
  }
  await new Promise((resolve) => setTimeout(resolve, 10))
  assert.not.ok(peers.copies.get('n1')?.has(ID), 'the lone copy is deleted')
})

test('fewer members than RF: the write takes what there is (under-replicated, not failed)', async () => {
  const peers = new FakePeers()
  const w = await service([node('n1'), node('n2')], peers).write(ID, new Uint8Array(3))
  assert.equal([...w.extent.replicas].sort(), ['n1', 'n2'])
  const solo = await service([node('n1')], new FakePeers()).write(ID, new Uint8Array(3))
  assert.equal(solo.extent.replicas, ['n1'])
})

test('members that are merely unhealthy do not shrink the quorum: one copy of three is NoQuorum, no copy at all Unavailable', async () => {
  const nodes = [node('n1'), node('n2', 'r1', 'failed'), node('n3', 'r1', 'suspected')]
  try {
    await service(nodes, new FakePeers()).write(ID, new Uint8Array(3))
    assert.unreachable('a single copy in a three-node cluster')
  } catch (err) {
    assert.is((err as Error).name, 'NoQuorum')
  }
  try {
    await service([node('n1', 'r1', 'failed')], new FakePeers()).write(ID, new Uint8Array(3))
    assert.unreachable('nowhere to write')
  } catch (err) {
    assert.is((err as Error).name, 'Unavailable')
  }
})

test('a draining node gets no new copy', async () => {
  const peers = new FakePeers()
  const nodes = ['n1', 'n2', 'n3', 'n4'].map((id) => node(id))
  for (let i = 0; i < 20; i++) {
    const id = `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`
    const w = await service(nodes, peers, 'n1', ['n2']).write(id, new Uint8Array(4))
    assert.not.ok(w.extent.replicas.includes('n2'), `extent ${i} placed on the draining node`)
    assert.is(w.extent.replicas.length, 3)
  }
})

test('reads try the local copy, then healthy copies in this region, then others, failed last', async () => {
  const peers = new FakePeers()
  const nodes = [node('n1', 'eu'), node('n2', 'us'), node('n3', 'eu'), node('n4', 'eu', 'failed'), node('n5', 'eu', 'suspected')]
  const extent: ExtentRecord = { id: ID, size: 1, checksum: extentChecksum(new Uint8Array(1)), replicas: ['n4', 'n2', 'n5', 'n3', 'n1'] }
  for (const p of extent.replicas) await peers.put(p, extent, new Uint8Array(1))
  await service(nodes, peers).read(extent)
  assert.equal(peers.reads[0], ['n1', 'n3', 'n2', 'n5', 'n4'])
})


/**
 * A repair coordinator (this node leads) over a metadata double holding `extents`; `nodes()` is
 * called on every look, so a test can change health as time passes. Records what it proposes.
 */
function coordinator (nodes: () => ClusterNode[], peers: FakePeers, extents: Map<string, ExtentRecord>, tuning: Record<string, number>,
  onEvent?: (event: ReplicationEvent) => void, store?: Partial<ExtentStore>): { svc: DefaultReplication, proposed: unknown[] } {
  const proposed: unknown[] = []
  const view = {
    config: () => CLUSTER_CONFIG_DEFAULTS,
    members: () => nodes().map((n) => ({ id: n.id, name: n.id, region: n.region, addrs: [] })),
    extentIds: () => extents.keys(),
    getExtent: (id: string) => extents.get(id)
  } as unknown as MetadataView
  const metadata = {
    staleRead: <T>(fn: (v: MetadataView) => T): T => fn(view),
    status: () => ({ leader: 'n1', term: 1, commitIndex: 0, appliedIndex: 0 }),
    propose: async (op: { type: string, id: string, replicas: PeerIdString[], from?: PeerIdString, to?: PeerIdString }) => {
      proposed.push(op)
      const e = extents.get(op.id)
      if (op.type === 'UpdateReplication' && e !== undefined) extents.set(op.id, { ...e, replicas: op.replicas })
      if ((op.type === 'MigrateExtent' || op.type === 'CancelMove') && e !== undefined) {
        const { move: _done, ...rest } = e
        extents.set(op.id, op.type === 'CancelMove' ? rest : { ...rest, replicas: e.replicas.map((r) => r === op.from ? op.to as string : r) })
      }
      return { ok: true, index: proposed.length }
    }
  } as unknown as MetadataService
  const svc = new DefaultReplication({
    nodeId: 'n1',
    logger: silent,
    store: store as ExtentStore,
    metadata,
    cluster: { nodes },
    peers,
    placement: () => new DefaultPlacement(),
    rebalance: () => new DefaultRebalance(),
    scrubEveryMs: 3_600_000,
    moveEveryMs: 3_600_000,
    ...tuning,
    onEvent
  })
  return { svc, proposed }
}

test('repair starts when a failed node\'s repair delay runs out, not at the next periodic pass after it', async () => {
  const peers = new FakePeers()
  const bytes = new TextEncoder().encode('on a node that dies')
  const extent: ExtentRecord = { id: ID, size: bytes.byteLength, checksum: extentChecksum(bytes), replicas: ['n1', 'n2', 'n3'] }
  for (const p of extent.replicas) peers.copies.set(p, new Map([[ID, bytes]]))
  peers.down.add('n3')
  // n3 fails just after the periodic pass at 2 s; its repair delay (1 s) runs out at 3.1 s, long
  // before the next periodic pass (4 s), and no periodic pass sees it failed before that
  const t0 = Date.now()
  const failsAt = t0 + 2100
  const nodes = (): ClusterNode[] => [node('n1'), node('n2'),
    Date.now() < failsAt ? node('n3') : { ...node('n3', 'r1', 'failed'), failedForMs: Date.now() - failsAt }, node('n4')]
  const { svc, proposed } = coordinator(nodes, peers, new Map([[ID, extent]]), { repairEveryMs: 2000, repairDelayMs: 1000 })
  await svc.start()
  try {
    await waitUntil(() => proposed.length > 0, 3800)
    const tookMs = Date.now() - t0
    assert.ok(tookMs >= 3100, `repaired after ${tookMs} ms, before the repair delay ran out`)
    assert.equal(proposed, [{ type: 'UpdateReplication', id: ID, replicas: ['n1', 'n2', 'n4'] }])
    assert.ok(peers.copies.get('n4')?.has(ID))
  } finally {
    await svc.stop()
  }
})

test('a copy the coordinator\'s own write recorded missing is repaired within seconds, not at the next periodic pass', async () => {
  const peers = new FakePeers()
  const extents = new Map<string, ExtentRecord>()
  const { svc, proposed } = coordinator(() => ['n1', 'n2', 'n3'].map((id) => node(id)), peers, extents, { repairEveryMs: 3_600_000 })
  await svc.start()
  try {
    peers.hung.add('n3')
    const w = await svc.write(ID, new Uint8Array(10))
    assert.equal(w.missing, ['n3'])
    peers.hung.delete('n3')
    // the file commits with the copies that acknowledged (what files.put proposes)
    extents.set(ID, w.extent)
    await waitUntil(() => proposed.length > 0, 3000)
    assert.equal(proposed, [{ type: 'UpdateReplication', id: ID, replicas: [...w.extent.replicas, 'n3'] }])
  } finally {
    await svc.stop()
  }
})

test('repair reports each copy it makes, and each it fails to make, to onEvent', async () => {
  const peers = new FakePeers()
  const bytes = new TextEncoder().encode('two copies left')
  const extent: ExtentRecord = { id: ID, size: bytes.byteLength, checksum: extentChecksum(bytes), replicas: ['n1', 'n2', 'n3'] }
  for (const p of extent.replicas) peers.copies.set(p, new Map([[ID, bytes]]))
  peers.down.add('n3')
  const nodes = (): ClusterNode[] => [node('n1'), node('n2'), { ...node('n3', 'r1', 'failed'), failedForMs: 60_000 }, node('n4')]
  const events: ReplicationEvent[] = []
  // n4 refuses first: the copy fails, then it is made on a later pass
  peers.down.add('n4')
  const { svc } = coordinator(nodes, peers, new Map([[ID, extent]]), { repairEveryMs: 50, repairDelayMs: 1000 }, (e) => { events.push(e) })
  await svc.start()
  try {
    await waitUntil(() => events.some((e) => e.kind === 'repair.failed'), 3000)
    peers.down.delete('n4')
    await waitUntil(() => events.some((e) => e.kind === 'repair.finished'), 3000)
  } finally {
    await svc.stop()
  }
  const failed = events.find((e) => e.kind === 'repair.failed')
  assert.equal(failed, { kind: 'repair.failed', extent: ID, bytes: bytes.byteLength, target: 'n4', error: 'NodeUnreachable', message: 'n4 is down' })
  const last = events.slice(-2)
  assert.equal(last, [
    { kind: 'repair.started', extent: ID, bytes: bytes.byteLength, target: 'n4' },
    { kind: 'repair.finished', extent: ID, bytes: bytes.byteLength, target: 'n4' }
  ])
})

test('the scrub reads its copies deep: a copy stored under a checksum its bytes do not have is fetched again', async () => {
  const peers = new FakePeers()
  const bytes = new TextEncoder().encode('stored under another checksum here')
  const extent: ExtentRecord = { id: ID, size: bytes.byteLength, checksum: extentChecksum(bytes), replicas: ['n1', 'n2', 'n3'] }
  for (const p of ['n2', 'n3']) peers.copies.set(p, new Map([[ID, bytes]]))
  // what a store with a cheaper check at rest does with a copy a member vouched for wrongly: a read
  // returns the bytes it stored, only a deep read hashes them
  const deep: Array<boolean | undefined> = []
  const store: Partial<ExtentStore> = {
    has: async () => true,
    get: async (_id: string, options?: ExtentReadOptions) => {
      deep.push(options?.deep)
      if (options?.deep === true) throw new CorruptExtentError(ID, extent.checksum, extentChecksum(new Uint8Array(3)), {})
      return new Uint8Array(3)
    }
  }
  const events: ReplicationEvent[] = []
  const nodes = (): ClusterNode[] => [node('n1'), node('n2'), node('n3')]
  const { svc } = coordinator(nodes, peers, new Map([[ID, extent]]), { scrubEveryMs: 50, repairEveryMs: 3_600_000 }, (e) => { events.push(e) }, store)
  await svc.start()
  try {
    await waitUntil(() => events.some((e) => e.kind === 'scrub.error'), 3000)
  } finally {
    await svc.stop()
  }
  assert.equal(events.find((e) => e.kind === 'scrub.error'), { kind: 'scrub.error', extent: ID, error: 'CorruptExtent', repaired: true })
  assert.ok(deep.length > 0 && deep.every((d) => d === true), `the scrub's reads were deep: ${JSON.stringify(deep)}`)
  assert.ok(peers.copies.get('n1')?.get(ID) === bytes, 'fetched again from another replica')
})

test('release deletes the other nodes\' copies after the grace, and tries again a delete that failed', async () => {
  const peers = new FakePeers()
  const nodes = ['n1', 'n2', 'n3'].map((id) => node(id))
  const svc = service(nodes, peers, 'n1', [], { releaseGraceMs: 50 })
  const w = await svc.write(ID, new TextEncoder().encode('released'))
  assert.is(w.extent.replicas.length, 3)
  peers.down.add('n3')
  svc.release([w.extent])
  assert.ok(peers.copies.get('n2')?.has(ID), 'nothing before the grace')
  await new Promise((resolve) => setTimeout(resolve, 300))
  assert.not.ok(peers.copies.get('n2')?.has(ID), 'n2\'s copy deleted after the grace')
  assert.ok(peers.copies.get('n1')?.has(ID), 'this node\'s own copy is the caller\'s to free')
  assert.ok(peers.copies.get('n3')?.has(ID), 'n3 was down')
  peers.down.delete('n3')
  await new Promise((resolve) => setTimeout(resolve, 1200))
  assert.not.ok(peers.copies.get('n3')?.has(ID), 'n3\'s copy deleted by the next try')
  await svc.stop()
})

test('a move reports its start and its end; one whose target is gone reports it cancelled', async () => {
  const peers = new FakePeers()
  const bytes = new TextEncoder().encode('moving')
  const base = { size: bytes.byteLength, checksum: extentChecksum(bytes), replicas: ['n1', 'n2', 'n3'] }
  const ID2 = '00000000-0000-4000-8000-000000000002'
  const extents = new Map<string, ExtentRecord>([
    [ID, { id: ID, ...base, move: { from: 'n3', to: 'n4' } }],
    [ID2, { id: ID2, ...base, move: { from: 'n3', to: 'gone' } }]
  ])
  for (const p of base.replicas) peers.copies.set(p, new Map([[ID, bytes], [ID2, bytes]]))
  const events: ReplicationEvent[] = []
  const nodes = (): ClusterNode[] => ['n1', 'n2', 'n3', 'n4'].map((id) => node(id))
  const { svc } = coordinator(nodes, peers, extents, { moveEveryMs: 50, repairEveryMs: 3_600_000 }, (e) => { events.push(e) })
  await svc.start()
  try {
    await waitUntil(() => events.some((e) => e.kind === 'move.finished') && events.some((e) => e.kind === 'move.cancelled'), 3000)
  } finally {
    await svc.stop()
  }
  const moved = { extent: ID, bytes: bytes.byteLength, from: 'n3', to: 'n4' }
  assert.equal(events.filter((e) => e.extent === ID), [{ kind: 'move.started', ...moved }, { kind: 'move.finished', ...moved }])
  assert.equal(events.filter((e) => e.extent === ID2), [
    { kind: 'move.cancelled', extent: ID2, bytes: bytes.byteLength, from: 'n3', to: 'gone', reason: 'the target is not a member' }
  ])
  assert.ok(peers.copies.get('n4')?.has(ID), 'the copy is on the target')
})

async function waitUntil (cond: () => boolean, ms: number): Promise<void> {
  const until = Date.now() + ms
  while (!cond()) {
    if (Date.now() > until) throw new Error(`not within ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

test.run()
