import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { lpStream } from '@libp2p/utils'
import type { PrivateKey } from '@libp2p/interface'
import { LevelExtentStore } from '@dfs/level-store'
import type { ExtentRecord } from '@dfs/api'
import type { NodeHost } from '../../src/net/host.js'
import { peerNetwork } from '../../src/net/peer-network.js'
import { RpcServer } from '../../src/net/rpc/server.js'
import { MemberLocator } from '../../src/membership/locate.js'
import { BootstrapDialler } from '../../src/membership/discovery.js'
import { RemoteExtents } from '../../src/node/extents.js'
import { extentMethods } from '../../src/node/handlers/extent.js'
import { Cleanup, hostPort, startNodeHost, waitFor } from './helpers.js'

/**
 * A member restarted on another port is found again through the DHT. A restarts with the same key
 * on a new port and reconnects only to B; C knows only A's old address (as if its metadata had not
 * applied A's new member record yet) and reaches A through what B tells the DHT.
 */
const test = suite('membership/locate: a member that moved is found through the DHT (real hosts)')

const ECHO = '/dfs/test-echo/1.0.0'
const logger: any = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false })
const cleanup = new Cleanup()
let root: string

test.before(async () => { root = await mkdtemp(join(tmpdir(), 'dfs-locate-')) })
test.after(async () => {
  await cleanup.run()
  await rm(root, { recursive: true, force: true })
})

async function node (key?: PrivateKey): Promise<NodeHost> {
  const host = await startNodeHost(key)
  cleanup.add(async () => { await host.stop() })
  return host
}

async function serveEcho (host: NodeHost): Promise<void> {
  await peerNetwork(host).handle(ECHO, (stream) => {
    void (async () => {
      const lp = lpStream(stream)
      await lp.write(await lp.read())
      await stream.close()
    })().catch(() => {})
  })
}

async function echoOver (network: ReturnType<typeof peerNetwork>, peer: string): Promise<string> {
  const stream = await network.openStream(peer, ECHO, { signal: AbortSignal.timeout(10_000) })
  const lp = lpStream(stream)
  await lp.write(new TextEncoder().encode('found'))
  return new TextDecoder().decode((await lp.read({ signal: AbortSignal.timeout(10_000) })).subarray())
}

/** A, B, C; A restarted on a new port, connected to B only; C holds only A's old address. */
async function moved (): Promise<{ a: NodeHost, c: NodeHost, id: string }> {
  const keyA = await generateKeyPair('Ed25519')
  const b = await node()
  const old = await node(keyA)
  const oldAddrs = old.getMultiaddrs().map(String)
  await old.stop()
  const a = await node(keyA)
  assert.not.equal(a.getMultiaddrs().map(String), oldAddrs, 'a new port')
  const c = await node()
  for (const h of [a, c]) assert.is((await new BootstrapDialler(h, { peers: [hostPort(b)] }).dialAll())[0].peer, b.peerId.toString())
  const id = a.peerId.toString()
  await peerNetwork(c).addAddresses(id, oldAddrs)
  // B learns A's new address when A connects (identify); wait until B's DHT can tell it
  await waitFor('B to know A', () => b.getConnections(a.peerId).length > 0, 8000)
  return { a, c, id }
}

test('PeerNetwork: without the DHT the stale address fails; with it the member is found and dialled; lookups are rate-limited', async () => {
  const { a, c, id } = await moved()
  await serveEcho(a)
  try {
    await echoOver(peerNetwork(c), id)
    assert.unreachable('the old address must not reach A')
  } catch (e: any) {
    assert.not.equal(e.name, 'Assertion')
  }
  assert.is(c.getConnections(a.peerId).length, 0)

  const locator = new MemberLocator(c, { intervalMs: 60_000, timeoutMs: 8000 })
  const network = peerNetwork(c, { locate: async (peer, options) => await locator.locate(peer, options) })
  assert.is(await echoOver(network, id), 'found')
  assert.is(locator.lookups, 1)
  // another failure soon after does not ask the DHT again
  assert.is(await locator.locate(id), false)
  assert.is(locator.lookups, 1)
})

test('RemoteExtents: a replica whose recorded address is stale is read through the address the DHT tells', async () => {
  const { a, c, id } = await moved()
  const store = new LevelExtentStore({ dir: join(root, 'a'), logger, node: 'a' })
  await store.open()
  cleanup.add(async () => { await store.close() })
  const bytes = randomBytes(64 * 1024)
  const extentId = randomUUID()
  await store.put(extentId, bytes)
  const rpc = new RpcServer({ host: a, authorize: async () => {} })
  rpc.register(...extentMethods(store))
  await rpc.start()
  cleanup.add(async () => { await rpc.stop() })
  const record: ExtentRecord = { id: extentId, size: bytes.byteLength, checksum: 'sha256:' + createHash('sha256').update(bytes).digest('hex'), replicas: [id] }
  const stale = (await c.peerStore.get(a.peerId)).addresses.map((x) => x.multiaddr.toString())
  const cStore = new LevelExtentStore({ dir: join(root, 'c'), logger, node: 'c' })
  await cStore.open()
  cleanup.add(async () => { await cStore.close() })

  const blind = new RemoteExtents({ host: c, nodeId: c.peerId.toString(), store: cStore, resolveAddrs: () => stale })
  cleanup.add(async () => { await blind.stop() })
  try {
    await blind.get(record, { timeoutMs: 10_000 })
    assert.unreachable('the stale address must not reach A')
  } catch (e: any) {
    assert.is(e.name, 'Unavailable')
    assert.is(e.details.replicas[0].error, 'NodeUnreachable')
  }

  const locator = new MemberLocator(c, { timeoutMs: 8000 })
  const reader = new RemoteExtents({ host: c, nodeId: c.peerId.toString(), store: cStore, resolveAddrs: () => stale, locate: async (p, o) => await locator.locate(p, o) })
  cleanup.add(async () => { await reader.stop() })
  const got = await reader.get(record, { timeoutMs: 20_000 })
  assert.ok(Buffer.from(got).equals(bytes))
  assert.is(locator.lookups, 1)
})

test.run()
