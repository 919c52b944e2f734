import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomBytes, randomUUID } from 'node:crypto'
import { mkdtemp, rm, statfs } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { createHost } from '../../src/net/host.js'
import { ClusterMembership } from '../../src/node/membership.js'
import { MemoryExtentStore } from '@dfs/api/testing'
import { Cleanup, waitFor } from '../membership/helpers.js'
import type { ClusterNode, MemberRecord, MetadataService, MetadataView } from '@dfs/api'

const test = suite('node/membership')

test('a member metadata lists is watched from the start: healthy during its grace, failed once silent too long', async () => {
  const host = await createHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], role: 'node' })
  const self = host.peerId.toString()
  const silent = '12D3KooWRyh2zNmr7R2ixgMm9AXDBYUYPzfntKCELAq8HDtpAVMX'
  const members: MemberRecord[] = [{ id: self, name: 'me', region: 'r', addrs: [] }]
  const metadata = { staleRead: <T>(fn: (view: MetadataView) => T): T => fn({ members: () => members } as unknown as MetadataView) } as unknown as MetadataService
  const store = new MemoryExtentStore()
  await store.open()
  const membership = new ClusterMembership({ host, nodeId: self, clusterId: 'c1', metadata, store, heartbeatMs: 100, failureTimeoutMs: 500 })
  membership.start()
  try {
    assert.is(membership.health(self), 'healthy')
    members.push({ id: silent, name: 'silent', region: 'r', addrs: [] })
    assert.is(membership.health(silent), 'healthy', 'a member that just joined has its grace period')
    const deadline = Date.now() + 5000
    while (membership.health(silent) !== 'failed' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    assert.is(membership.health(silent), 'failed', 'a member that never sends a heartbeat ends Failed')
  } finally {
    membership.stop()
    await host.stop()
  }
})

test('nodes(): every member with its region, health, failedForMs on the detector\'s clock, and fill from its heartbeats', async () => {
  const cleanup = new Cleanup()
  const dir = await mkdtemp(join(tmpdir(), 'dfs-membership-'))
  cleanup.add(async () => { await rm(dir, { recursive: true, force: true }) })
  try {
    const [hostA, hostB] = await Promise.all([0, 1].map(async () => await createHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], role: 'node' })))
    cleanup.add(async () => { await hostA.stop() })
    cleanup.add(async () => { await hostB.stop() })
    const a = hostA.peerId.toString()
    const b = hostB.peerId.toString()
    const silent = '12D3KooWRyh2zNmr7R2ixgMm9AXDBYUYPzfntKCELAq8HDtpAVMX'
    const members: MemberRecord[] = [
      { id: a, name: 'a', region: 'ra', addrs: [] },
      { id: b, name: 'b', region: 'rb', addrs: [] },
      { id: silent, name: 'x', region: 'rx', addrs: [] }
    ]
    const metadata = { staleRead: <T>(fn: (view: MetadataView) => T): T => fn({ members: () => members } as unknown as MetadataView) } as unknown as MetadataService
    // A's detector runs on a clock the test moves forward
    let skewMs = 0
    const clock = (): number => performance.now() + skewMs
    const stores = [new MemoryExtentStore(), new MemoryExtentStore()]
    for (const [i, store] of stores.entries()) {
      await store.open()
      await store.put(randomUUID(), randomBytes(1000 * (i + 1)))
    }
    const timing = { clusterId: 'c1', metadata, heartbeatMs: 100, failureTimeoutMs: 1000, dataDir: dir }
    const onA = new ClusterMembership({ ...timing, host: hostA, nodeId: a, store: stores[0], region: 'ra', clock, fillLimit: 0.8 })
    const onB = new ClusterMembership({ ...timing, host: hostB, nodeId: b, store: stores[1], region: 'rb' })
    onA.start()
    cleanup.add(() => { onA.stop() })
    onB.start()
    cleanup.add(() => { onB.stop() })
    await hostA.dial(hostB.getMultiaddrs()[0])

    const byId = (): Map<string, ClusterNode> => new Map(onA.nodes().map((n) => [n.id, n]))
    await waitFor('B\'s heartbeat with its capacity reaching A', () => (byId().get(b)?.capacityBytes ?? 0) > 2000 + 1, 15_000)
    const fs = await statfs(dir)
    const available = fs.bavail * fs.bsize
    const nodes = byId()
    assert.equal([...nodes.keys()].sort(), [a, b, silent].sort(), 'every member, this node included')
    const self = nodes.get(a) as ClusterNode
    assert.equal({ region: self.region, health: self.health, usedBytes: self.usedBytes, fillLimit: self.fillLimit, failedForMs: self.failedForMs },
      { region: 'ra', health: 'healthy', usedBytes: 1000, fillLimit: 0.8, failedForMs: 0 })
    // capacity = what the store holds + what the filesystem has left (which other processes move a little)
    for (const n of [self, nodes.get(b) as ClusterNode]) {
      assert.ok(Math.abs(n.capacityBytes - (n.usedBytes + available)) < 256 * 1024 * 1024, `capacity ${n.capacityBytes} of ${n.id} ≈ used + ${available} available`)
    }
    const peer = nodes.get(b) as ClusterNode
    assert.equal({ region: peer.region, health: peer.health, usedBytes: peer.usedBytes }, { region: 'rb', health: 'healthy', usedBytes: 2000 })
    // the silent member: known, healthy in its grace period, but with no room until it reports some
    assert.equal(nodes.get(silent), { id: silent, region: 'rx', health: 'healthy', usedBytes: 0, capacityBytes: 1, fillLimit: 0.8, failedForMs: 0 })

    // past the failure timeout on A's clock: Failed, and failedForMs counts on that clock
    skewMs += 5000
    await waitFor('the silent member Failed', () => byId().get(silent)?.health === 'failed', 5000)
    skewMs += 60_000
    const failedForMs = (byId().get(silent) as ClusterNode).failedForMs
    assert.ok(failedForMs >= 60_000 && failedForMs < 70_000, `failedForMs ${failedForMs}`)
    // B keeps its heartbeats: Healthy again on A whatever the jump did, and never counted as failed for long
    await waitFor('B healthy after the clock jump', () => byId().get(b)?.health === 'healthy', 5000)
    assert.is(byId().get(b)?.failedForMs, 0)
  } finally {
    await cleanup.run()
  }
})

test.run()
