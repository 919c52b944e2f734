import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { MetadataService, ReplicationService, ReplicationStatus } from '@dfs/api'
import { clusterMethods, type ClusterMethodsInit } from '../../src/node/handlers/cluster.js'

/**
 * `cluster.replication` on any node reports the copies the repair coordinator (the system group's
 * leader) is making, which only the coordinator knows: it asks the coordinator's `node.replication`,
 * a members-only method (a member's key is not a client).
 */

const mine: ReplicationStatus = { replicationFactor: 3, extents: 10, underReplicated: 2, missing: 0, repairing: 0 }

function handler (init: Partial<ClusterMethodsInit> & { leader?: string }): (params: unknown) => Promise<ReplicationStatus> {
  const metadata = { status: () => ({ leader: init.leader, term: 1, commitIndex: 1, appliedIndex: 1 }) } as unknown as MetadataService
  const replication = { status: async () => ({ ...mine }) } as unknown as ReplicationService
  const method = clusterMethods({ nodeId: 'me', metadata, health: () => 'healthy', replication, ...init })
    .find((m) => m.name === 'cluster.replication')
  if (method == null || method.kind !== 'unary') throw new Error('no cluster.replication')
  return async (raw) => await method.handle({ peer: 'client', params: method.params(raw), signal: new AbortController().signal }) as ReplicationStatus
}

test('a node that is not the coordinator asks the coordinator for its repairing count', async () => {
  const asked: Array<{ peer: string, method: string, params: unknown }> = []
  const h = handler({
    leader: 'coord',
    askPeer: async <T>(peer: string, method: string, params: unknown): Promise<T> => {
      asked.push({ peer, method, params })
      return { ...mine, repairing: 4 } as T
    }
  })
  assert.equal(await h({}), { ...mine, repairing: 4 })
  assert.equal(asked, [{ peer: 'coord', method: 'node.replication', params: {} }])
})

test('asked with here (or on the coordinator itself) a node answers with its own figures; an unreachable coordinator leaves them', async () => {
  let asks = 0
  const ask = async <T>(): Promise<T> => { asks++; throw new Error('unreachable') }
  assert.equal(await handler({ leader: 'coord', askPeer: ask })({ here: true }), mine)
  assert.equal(await handler({ leader: 'me', askPeer: ask })({}), mine)
  assert.is(asks, 0)
  assert.equal(await handler({ leader: 'coord', askPeer: ask })({}), mine)
  assert.is(asks, 1)
  try {
    await handler({ leader: 'coord', askPeer: ask })({ here: 'yes' })
    assert.unreachable('here must be a boolean')
  } catch (err) {
    assert.is((err as Error).name, 'InvalidArgument')
  }
})

test.run()
