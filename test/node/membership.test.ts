import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { createHost } from '../../src/net/host.js'
import { ClusterMembership } from '../../src/node/membership.js'
import { MemoryExtentStore } from '../support/memory-extent-store.js'
import type { MemberRecord, MetadataService, MetadataView } from '@dfs/api'

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

test.run()
