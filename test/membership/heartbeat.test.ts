import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { encode as cborEncode } from 'cborg'
import type { NodeHost } from '../../src/net/host.js'
import { BootstrapDialler } from '../../src/membership/discovery.js'
import type { Transition } from '../../src/membership/failure-detector.js'
import { encodeHeartbeat, type Heartbeat } from '../../src/membership/heartbeat-message.js'
import {
  heartbeatComponents, HeartbeatService, type HeartbeatInit, type HeartbeatReceived, type HeartbeatRefused
} from '../../src/membership/heartbeat.js'
import { heartbeatTopic } from '../../src/membership/constants.js'
import { Cleanup, hostPort, startNodeHost, waitFor } from './helpers.js'

const test = suite('membership/heartbeats over gossipsub (3 nodes on 127.0.0.1)')

const CLUSTER = 'test-cluster'
const TOPIC = heartbeatTopic(CLUSTER)
/** Short timings: suspect after 200 ms of silence, failed after 600 ms. */
const TIMING = { heartbeatMs: 100, failureTimeoutMs: 600 }
/** Deadline of each wait: generous against a loaded machine, far below the suite's budget. */
const WAIT_MS = 8000

interface Node {
  name: string
  key: PrivateKey
  id: string
  host: NodeHost
  hb: HeartbeatService
  transitions: Transition[]
  heard: HeartbeatReceived[]
  refused: HeartbeatRefused[]
  stop: () => Promise<void>
}

/** The cluster's member list, as Raft would hold it. */
const members = new Set<string>()
const nodes = new Map<string, Node>()
const cleanup = new Cleanup()

async function startNode (name: string, key: PrivateKey, init: Partial<HeartbeatInit> = {}, peers: string[] = []): Promise<Node> {
  const host = await startNodeHost(key)
  const hb = new HeartbeatService(heartbeatComponents(host), {
    clusterId: CLUSTER,
    isMember: (peer) => members.has(peer),
    name,
    region: 'test-region',
    stats: () => ({ load: { extents: name.length, bytes: 1000 * name.length }, capacity: { bytes: 1e12 } }),
    ...TIMING,
    ...init
  })
  const node: Node = {
    name, key, id: host.peerId.toString(), host, hb, transitions: [], heard: [], refused: [],
    stop: async () => {
      dialler?.stop()
      hb.stop()
      await host.stop()
    }
  }
  hb.addEventListener('transition', (e) => { node.transitions.push(e.detail) })
  hb.addEventListener('heartbeat', (e) => { node.heard.push(e.detail) })
  hb.addEventListener('refused', (e) => { node.refused.push(e.detail) })
  let dialler: BootstrapDialler | undefined
  if (peers.length > 0) {
    dialler = new BootstrapDialler(host, { peers, retryMs: 100 })
    dialler.start()
  }
  hb.start()
  cleanup.add(node.stop)
  return node
}

const get = (name: string): Node => {
  const n = nodes.get(name)
  if (n == null) throw new Error(`no node ${name}`)
  return n
}

test.before(async () => {
  for (const name of ['a', 'b', 'c']) {
    const key = await generateKeyPair('Ed25519')
    members.add(peerIdFromPrivateKey(key).toString())
    const peers = [...nodes.values()].map((n) => hostPort(n.host))
    nodes.set(name, await startNode(name, key, {}, peers))
  }
})

test.after(async () => {
  await cleanup.run()
})

test('heartbeats flow: every node sees the two others Healthy, with name, region, addresses, load and capacity', async () => {
  const all = [...nodes.values()]
  await waitFor('all nodes to see each other Healthy', () => all.every((n) =>
    all.every((m) => m === n || (n.hb.health(m.id) === 'Healthy' && n.hb.members().find((v) => v.member === m.id)?.heartbeat != null))), WAIT_MS)
  for (const n of all) {
    assert.equal(n.hb.counts(), { total: 2, healthy: 2, suspected: 0, failed: 0 }, n.name)
    assert.is(n.hb.health(n.id), undefined, 'a node does not watch itself')
    for (const m of all) {
      if (m === n) continue
      const view = n.hb.members().find((v) => v.member === m.id)?.heartbeat as Heartbeat
      assert.is(view.id, m.id)
      assert.is(view.name, m.name)
      assert.is(view.region, 'test-region')
      assert.equal(view.load, { extents: 1, bytes: 1000 })
      assert.equal(view.capacity, { bytes: 1e12 })
      assert.ok(view.addrs.includes(m.host.getMultiaddrs()[0].toString()), 'the sender\'s listen address')
      assert.ok(view.seq >= 1)
    }
    assert.equal(n.refused.filter((r) => r.verdict === 'reject'), [], 'nothing valid was rejected')
  }
})

test('a stopped node turns Suspected, then Failed; restarted with its key on another port it is Healthy again', async () => {
  const a = get('a')
  const b = get('b')
  const c = get('c')
  const oldAddr = a.host.getMultiaddrs()[0].toString()
  const lastIncarnation = b.hb.members().find((v) => v.member === a.id)?.heartbeat?.incarnation as number
  const seenBefore = new Map([b, c].map((o) => [o, o.transitions.length]))
  /** What `o` saw happen to a since it was stopped. */
  const since = (o: Node): Transition[] => o.transitions.slice(seenBefore.get(o)).filter((t) => t.member === a.id)
  const edges = (o: Node): string[] => since(o).map((t) => `${t.from}>${t.to}`)
  await a.stop()
  for (const o of [b, c]) {
    await waitFor(`${o.name} to see a Failed`, () => o.hb.health(a.id) === 'Failed', WAIT_MS)
    assert.equal(edges(o), ['Healthy>Suspected', 'Suspected>Failed'], o.name)
    assert.equal(o.hb.counts(), { total: 2, healthy: 1, suspected: 0, failed: 1 })
    const [suspected, failed] = since(o)
    assert.ok((suspected.lastSeenMs as number) <= suspected.atMs && suspected.atMs <= failed.atMs)
  }

  // same key, a new port; it finds the cluster through --peers (host:port of b and c)
  const a2 = await startNode('a', a.key, {}, [hostPort(b.host), hostPort(c.host)])
  nodes.set('a', a2)
  assert.is.not(a2.host.getMultiaddrs()[0].toString(), oldAddr)
  for (const o of [b, c]) {
    await waitFor(`${o.name} to see a Healthy again`, () => o.hb.health(a.id) === 'Healthy', WAIT_MS)
    assert.equal(edges(o).slice(0, 3), ['Healthy>Suspected', 'Suspected>Failed', 'Failed>Healthy'], o.name)
    const hb = o.hb.members().find((v) => v.member === a.id)?.heartbeat as Heartbeat
    assert.ok(hb.incarnation > lastIncarnation, 'a new incarnation (its seq starts again)')
    assert.ok(hb.addrs.includes(a2.host.getMultiaddrs()[0].toString()), 'its new address')
  }
  await waitFor('the restarted node to see b and c Healthy', () => a2.hb.counts().healthy === 2, WAIT_MS)
})

/** A member that publishes hand-made messages on the topic (no heartbeat service of its own). */
async function startRogue (): Promise<{ host: NodeHost, id: string, publish: (bytes: Uint8Array) => Promise<void> }> {
  const host = await startNodeHost()
  cleanup.add(async () => { await host.stop() })
  const b = get('b')
  await host.dial(b.host.getMultiaddrs()[0])
  await waitFor('the rogue to know b subscribes to the topic', () =>
    host.services.pubsub.getSubscribers(TOPIC).some((p) => p.equals(b.host.peerId)), WAIT_MS)
  return {
    host,
    id: host.peerId.toString(),
    publish: async (bytes) => { await host.services.pubsub.publish(TOPIC, bytes) }
  }
}

function heartbeatOf (id: string, fields: Partial<Heartbeat> = {}): Heartbeat {
  return {
    id, incarnation: 1, seq: 1, name: 'rogue', region: '', addrs: [], load: { extents: 0, bytes: 0 }, capacity: { bytes: 0 }, sentAtMs: Date.now(), ...fields
  }
}

test('a forged heartbeat (id ≠ signed sender) and garbage are rejected; stale and duplicate seq are ignored', async () => {
  const a = get('a')
  const b = get('b')
  const rogue = await startRogue()
  members.add(rogue.id) // a member: what it is refused for is the content, not who it is
  const refusedFromRogue = (reason: string): HeartbeatRefused[] => b.refused.filter((r) => r.from === rogue.id && r.reason === reason)

  await rogue.publish(encodeHeartbeat(heartbeatOf(a.id, { name: 'forged', incarnation: Date.now() + 1e9, seq: 1e9 })))
  await waitFor('b to reject the forged heartbeat', () => refusedFromRogue('forged').length === 1, WAIT_MS)
  assert.is(refusedFromRogue('forged')[0].verdict, 'reject')
  assert.is(refusedFromRogue('forged')[0].detail, `claims to be ${a.id}`)

  await rogue.publish(Uint8Array.of(0xde, 0xad, 0xbe, 0xef))
  await rogue.publish(cborEncode({ ...heartbeatOf(rogue.id), seq: -1 }))
  await rogue.publish(cborEncode({ ...heartbeatOf(rogue.id), name: 'x'.repeat(8000) }))
  await rogue.publish(new Uint8Array(0))
  await waitFor('b to reject four invalid payloads', () => refusedFromRogue('invalid').length === 4, WAIT_MS)
  assert.ok(refusedFromRogue('invalid').every((r) => r.verdict === 'reject'))
  assert.ok(b.heard.every((h) => h.heartbeat.name !== 'forged' && h.from !== rogue.id), 'nothing of it was accepted')
  assert.is(b.hb.health(rogue.id), undefined, 'invalid payloads do not make a member known')
  assert.not.ok(b.hb.members().some((v) => v.heartbeat?.name === 'forged'))
  await waitFor('a to be Healthy on b, unaffected', () => b.hb.health(a.id) === 'Healthy', WAIT_MS)

  // a valid heartbeat of its own is accepted; then an older seq and the same seq again are ignored
  await rogue.publish(encodeHeartbeat(heartbeatOf(rogue.id, { incarnation: 10, seq: 5 })))
  await waitFor('b to accept seq 5', () => b.heard.some((h) => h.from === rogue.id && h.heartbeat.seq === 5), WAIT_MS)
  assert.is(b.hb.health(rogue.id), 'Healthy')
  await rogue.publish(encodeHeartbeat(heartbeatOf(rogue.id, { incarnation: 10, seq: 3 })))
  await rogue.publish(encodeHeartbeat(heartbeatOf(rogue.id, { incarnation: 10, seq: 5 })))
  await rogue.publish(encodeHeartbeat(heartbeatOf(rogue.id, { incarnation: 9, seq: 99 })))
  await waitFor('b to ignore three stale heartbeats', () => refusedFromRogue('stale').length === 3, WAIT_MS)
  assert.ok(refusedFromRogue('stale').every((r) => r.verdict === 'ignore'))
  await rogue.publish(encodeHeartbeat(heartbeatOf(rogue.id, { incarnation: 10, seq: 6 })))
  await waitFor('b to accept seq 6', () => b.heard.some((h) => h.from === rogue.id && h.heartbeat.seq === 6), WAIT_MS)
  assert.is(b.heard.filter((h) => h.from === rogue.id).length, 2, 'only seq 5 and 6 were accepted')

  // removed from the member list, the rogue is forgotten
  members.delete(rogue.id)
  await waitFor('b to forget the removed member', () => b.hb.health(rogue.id) === undefined, WAIT_MS)
  assert.equal(b.hb.counts(), { total: 2, healthy: 2, suspected: 0, failed: 0 })
})

test('a non-member\'s heartbeats are ignored (not fed to the detector, not forwarded)', async () => {
  const b = get('b')
  const c = get('c')
  // a node running the real service, but not in the cluster's member list
  const stranger = await startNode('stranger', await generateKeyPair('Ed25519'), { isMember: () => true }, [hostPort(b.host)])
  await waitFor('b to ignore three heartbeats of the stranger', () =>
    b.refused.filter((r) => r.from === stranger.id && r.reason === 'not-member').length >= 3, WAIT_MS)
  assert.ok(b.refused.filter((r) => r.from === stranger.id).every((r) => r.verdict === 'ignore' && r.reason === 'not-member'))
  assert.is(b.hb.health(stranger.id), undefined)
  assert.is(c.hb.health(stranger.id), undefined)
  assert.equal(b.hb.counts(), { total: 2, healthy: 2, suspected: 0, failed: 0 })
  assert.not.ok(c.refused.some((r) => r.from === stranger.id && r.via === b.id), 'b did not forward them to c')
  // the stranger itself hears the cluster (its own isMember accepts everyone)
  await waitFor('the stranger to hear b', () => stranger.hb.health(b.id) === 'Healthy', WAIT_MS)
})

test('watch(): a member that never sends a heartbeat turns Suspected, then Failed; non-members are not watched', async () => {
  const b = get('b')
  const ghost = (await generateKeyPair('Ed25519')).publicKey.toString()
  b.hb.watch(ghost)
  assert.is(b.hb.health(ghost), undefined, 'not a member (yet): not watched')
  members.add(ghost)
  b.hb.watch(ghost)
  b.hb.watch(b.id)
  assert.is(b.hb.health(b.id), undefined, 'never itself')
  assert.is(b.hb.health(ghost), 'Healthy', 'watched, within its grace period')
  await waitFor('b to see the ghost Failed', () => b.hb.health(ghost) === 'Failed', WAIT_MS)
  assert.equal(b.transitions.filter((t) => t.member === ghost).map((t) => `${t.from}>${t.to}:${String(t.lastSeenMs)}`),
    ['Healthy>Suspected:undefined', 'Suspected>Failed:undefined'])
  members.delete(ghost)
  await waitFor('b to forget the ghost', () => b.hb.health(ghost) === undefined, WAIT_MS)
})

test('a failing, invalid or hanging load reading does not stop the heartbeats: the last good one is sent', async () => {
  const b = get('b')
  const key = await generateKeyPair('Ed25519')
  members.add(peerIdFromPrivateKey(key).toString())
  let calls = 0
  const d = await startNode('d', key, {
    stats: async ({ signal }) => {
      calls++
      if (calls === 1) return { load: { extents: 3, bytes: 4 }, capacity: { bytes: 5 } }
      if (calls === 2) throw new Error('disk on fire')
      if (calls === 3) return { load: { extents: -1, bytes: Number.NaN }, capacity: { bytes: 5 } }
      // hangs until the service's deadline (one heartbeat interval) aborts it
      return await new Promise((_resolve, reject) => { signal.addEventListener('abort', () => { reject(signal.reason as Error) }) })
    }
  }, [hostPort(b.host)])
  await waitFor('b to hear d after several bad readings', () => calls >= 5 && b.heard.filter((h) => h.from === d.id).length >= 3, WAIT_MS)
  for (const h of b.heard.filter((h) => h.from === d.id)) {
    assert.equal({ load: h.heartbeat.load, capacity: h.heartbeat.capacity }, { load: { extents: 3, bytes: 4 }, capacity: { bytes: 5 } })
  }
  await d.stop()
  members.delete(d.id)
  await waitFor('b to forget d', () => b.hb.health(d.id) === undefined, WAIT_MS)
})

test('the service validates its options and stops on its AbortSignal', async () => {
  const b = get('b')
  const components = heartbeatComponents(b.host)
  const base = { clusterId: CLUSTER, isMember: () => true }
  for (const init of [
    { ...base, clusterId: 'has space' },
    { ...base, clusterId: '' },
    { ...base, heartbeatMs: 1000, failureTimeoutMs: 1000 },
    { ...base, name: 'n'.repeat(65) },
    { ...base, heartbeatMs: 100, failureTimeoutMs: 600, checkIntervalMs: 0 }
  ]) {
    assert.throws(() => new HeartbeatService(components, init), (e: any) => e.name === 'InvalidArgument', JSON.stringify(init))
  }
  // b's service owns the topic's validator: a second one on the same host is refused
  const twin = new HeartbeatService(components, { ...base, ...TIMING })
  assert.throws(() => { twin.start() }, (e: any) => e.name === 'Unavailable')

  const controller = new AbortController()
  const host = await startNodeHost()
  cleanup.add(async () => { await host.stop() })
  const svc = new HeartbeatService(heartbeatComponents(host), { ...base, ...TIMING, signal: controller.signal })
  svc.start()
  assert.ok(svc.isStarted())
  assert.ok(host.services.pubsub.getTopics().includes(TOPIC))
  controller.abort()
  assert.not.ok(svc.isStarted())
  assert.not.ok(host.services.pubsub.getTopics().includes(TOPIC))
  assert.not.ok(host.services.pubsub.topicValidators.has(TOPIC))
  assert.throws(() => { svc.start() }, (e: any) => e.name === 'Unavailable', 'an aborted service does not start again')
})

test.run()
