import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createServer } from 'node:net'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { createHost, DHT_PROTOCOL, type NodeHost } from '../../src/net/host.js'
import { BootstrapDialler, findMember } from '../../src/membership/discovery.js'
import { Cleanup, hostPort, startNodeHost, waitFor } from './helpers.js'

const test = suite('membership/discovery: kad-dht and bootstrap peers (3 nodes on 127.0.0.1)')

const WAIT_MS = 8000
const cleanup = new Cleanup()

async function node (key?: PrivateKey): Promise<NodeHost> {
  const host = await startNodeHost(key)
  cleanup.add(async () => { await host.stop() })
  return host
}

/** A TCP port on 127.0.0.1 where nothing listens (bound, then closed). */
async function closedPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise<void>((resolve) => server.close(() => { resolve() }))
  return port
}

/** Same address, ignoring a trailing `/p2p/<id>` (the DHT answers with bare transport addresses). */
function sameTransport (x: Multiaddr, y: Multiaddr): boolean {
  const bare = (ma: Multiaddr): string => ma.toString().replace(/\/p2p\/[^/]+$/, '')
  return bare(x) === bare(y)
}

test.after(async () => {
  await cleanup.run()
})

test('roles: a node host runs gossipsub and the DHT under /dfs; a client host stays minimal', async () => {
  const n = await node()
  assert.ok(n.services.pubsub != null)
  assert.ok(n.services.dht != null)
  const protocols = n.getProtocols()
  assert.ok(protocols.includes(DHT_PROTOCOL), protocols.join(' '))
  assert.is(DHT_PROTOCOL, '/dfs/kad/1.0.0')
  assert.not.ok(protocols.some((p) => p.startsWith('/ipfs/kad')), 'never the public IPFS DHT')
  const client = await createHost({ privateKey: await generateKeyPair('Ed25519') })
  cleanup.add(async () => { await client.stop() })
  assert.equal(Object.keys(client.services).sort(), ['identify', 'ping'])
  assert.equal(client.getMultiaddrs(), [], 'a client does not listen')
  assert.not.ok(client.getProtocols().includes(DHT_PROTOCOL))
})

test('bootstrap: host:port and multiaddr peers are dialled, the PeerId learned; self, bad and unreachable addresses handled', async () => {
  const self = await node()
  const x = await node()
  const y = await node()
  const deadPort = await closedPort()
  const dialler = new BootstrapDialler(self, {
    peers: [
      hostPort(x),
      y.getMultiaddrs()[0].toString(), // with /p2p/<id>
      hostPort(self), // a --peers list shared by every node names the node itself
      `localhost:${deadPort}`,
      hostPort(x) // duplicates are dialled once
    ],
    dialTimeoutMs: 2000,
    retryMs: 50
  })
  assert.is(dialler.addresses.length, 4)
  const results = await dialler.dialAll()
  assert.equal(results.map((r) => r.peer), [x.peerId.toString(), y.peerId.toString(), self.peerId.toString(), undefined])
  assert.ok(results[3].error != null, 'the closed port fails with its reason')
  assert.equal(dialler.connectedPeers().sort(), [x.peerId.toString(), y.peerId.toString()].sort())

  // the background loop re-dials a bootstrap peer whose connection closed
  dialler.start()
  cleanup.add(() => { dialler.stop() })
  await self.hangUp(x.peerId)
  await waitFor('the dialler to reconnect to x', () => self.getConnections(x.peerId).length > 0, WAIT_MS)
  dialler.stop()

  for (const peers of [['nonsense'], ['host:99999'], ['/ip4/1.2.3.4/udp/5'], Array.from({ length: 65 }, (_, i) => `127.0.0.1:${i + 1}`)]) {
    assert.throws(() => new BootstrapDialler(self, { peers }), (e: any) => e.name === 'InvalidArgument', peers[0])
  }
  assert.throws(() => new BootstrapDialler(self, { peers: [], dialTimeoutMs: 0 }), (e: any) => e.name === 'InvalidArgument')
})

test('DHT: C finds A\'s new address through B after A restarts on another port with the same key', async () => {
  const keyA = await generateKeyPair('Ed25519')
  const b = await node()
  let a = await node(keyA)
  const c = await node()
  // A and C only know B
  const toB = [hostPort(b)]
  for (const h of [a, c]) {
    const results = await new BootstrapDialler(h, { peers: toB }).dialAll()
    assert.is(results[0].peer, b.peerId.toString())
  }
  const oldAddr = a.getMultiaddrs()[0]
  await waitFor('C to find A through B', async () =>
    (await findMember(c, a.peerId, { timeoutMs: 1000 })).addrs.some((ma) => sameTransport(ma, oldAddr)), WAIT_MS)

  await a.stop()
  a = await node(keyA)
  const newAddr = a.getMultiaddrs()[0]
  assert.not.ok(newAddr.equals(oldAddr), 'a new port')
  const results = await new BootstrapDialler(a, { peers: toB }).dialAll()
  assert.is(results[0].peer, b.peerId.toString())

  await waitFor('C to find A\'s new address through B', async () =>
    (await findMember(c, keyA.publicKey.toString(), { timeoutMs: 1000 })).addrs.some((ma) => sameTransport(ma, newAddr)), WAIT_MS)
  // the address found is the live one: C reaches A there, and Noise proves it is A
  await c.hangUp(a.peerId) // the lookup itself may have reached A: dial afresh, by the address found
  const connection = await c.dial(newAddr, { signal: AbortSignal.timeout(5000) })
  assert.ok(connection.remotePeer.equals(a.peerId))
})

test('DHT: an unknown PeerId is NotFound within its deadline; a bad one is InvalidArgument; abort is Aborted', async () => {
  const b = await node()
  const c = await node()
  await c.dial(b.getMultiaddrs()[0])
  const unknown = (await generateKeyPair('Ed25519')).publicKey.toString()
  const started = performance.now()
  try {
    await findMember(c, unknown, { timeoutMs: 400 })
    assert.unreachable()
  } catch (e: any) {
    assert.is(e.name, 'NotFound')
    assert.is(e.details.member, unknown)
    assert.ok(e.details.attempts >= 1)
  }
  assert.ok(performance.now() - started < 5000, 'the deadline holds')
  try { await findMember(c, 'not-a-peer-id'); assert.unreachable() } catch (e: any) { assert.is(e.name, 'InvalidArgument') }
  try { await findMember(c, unknown, { timeoutMs: 0 }); assert.unreachable() } catch (e: any) { assert.is(e.name, 'InvalidArgument') }
  const controller = new AbortController()
  const pending = findMember(c, unknown, { timeoutMs: 5000, signal: controller.signal })
  controller.abort()
  try { await pending; assert.unreachable() } catch (e: any) { assert.is(e.name, 'Aborted') }
  assert.equal((await findMember(c, c.peerId)).addrs, c.getMultiaddrs(), 'itself: its own addresses')
})

test.run()
