import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { createHost } from '../../src/net/host.js'
import { ClusterMembership, type MembershipEvent } from '../../src/node/membership.js'
import { MemoryExtentStore } from '@dfs/api/testing'
import type { MemberRecord, MetadataService, MetadataView } from '@dfs/api'

/** ClusterMembership's onEvent (the node's event log): health transitions, joins and removals. */

test('a silent member is reported suspected, then failed; members joining and leaving the list are reported, those at start are not', async () => {
  const host = await createHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], role: 'node' })
  const self = host.peerId.toString()
  const silent = '12D3KooWRyh2zNmr7R2ixgMm9AXDBYUYPzfntKCELAq8HDtpAVMX'
  const later = '12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq'
  const members: MemberRecord[] = [{ id: self, name: 'me', region: 'r', addrs: [] }, { id: silent, name: 'silent', region: 'r', addrs: [] }]
  const metadata = { staleRead: <T>(fn: (view: MetadataView) => T): T => fn({ members: () => members } as unknown as MetadataView) } as unknown as MetadataService
  const store = new MemoryExtentStore()
  await store.open()
  const events: MembershipEvent[] = []
  const membership = new ClusterMembership({ host, nodeId: self, clusterId: 'c1', metadata, store, heartbeatMs: 100, failureTimeoutMs: 500, onEvent: (e) => { events.push(e) } })
  membership.start()
  try {
    const deadline = Date.now() + 5000
    while (membership.health(silent) !== 'failed' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    assert.equal(events, [
      { kind: 'node.health', node: silent, from: 'healthy', to: 'suspected' },
      { kind: 'node.health', node: silent, from: 'suspected', to: 'failed' }
    ])
    events.length = 0
    members.push({ id: later, name: 'later', region: 'r', addrs: [] })
    membership.health(later) // a member not watched yet is looked up at once
    assert.equal(events, [{ kind: 'node.joined', node: later }])
    members.splice(1, 1)
    while (!events.some((e) => e.kind === 'node.removed') && Date.now() < deadline + 3000) await new Promise((r) => setTimeout(r, 50))
    assert.equal(events.filter((e) => e.kind !== 'node.health'), [{ kind: 'node.joined', node: later }, { kind: 'node.removed', node: silent }])
  } finally {
    membership.stop()
    await host.stop()
  }
})

test.run()
