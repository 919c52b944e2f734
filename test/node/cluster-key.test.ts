import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { AlreadyExistsError, type MetadataOp, type MetadataService, type MetadataView } from '@dfs/api'
import { MetadataStateMachine } from '@dfs/raft-metadata'
import { ensureClusterKey } from '../../src/node/cluster-key.js'

const test = suite('node/ensureClusterKey')

const ME = '12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp'

/** A metadata service over a real state machine, led by `leader()`. */
function service (leader: () => string | undefined, options: { racing?: boolean } = {}): { metadata: MetadataService, sm: MetadataStateMachine, proposed: MetadataOp[] } {
  const sm = new MetadataStateMachine()
  assert.ok(sm.apply({ type: 'InitCluster', clusterId: 'c1', createdAtMs: 1, admin: ME, member: { id: ME, name: 'n1', region: 'r', addrs: [] } }, 1).ok)
  const proposed: MetadataOp[] = []
  let index = 2
  const metadata = {
    staleRead: <T>(fn: (view: MetadataView) => T): T => fn(sm.view),
    status: () => ({ leader: leader(), term: 1 }),
    propose: async (op: MetadataOp) => {
      proposed.push(op)
      // another leader's key committed first
      if (options.racing === true) throw new AlreadyExistsError('the cluster already has a key')
      const r = sm.apply(op, index++)
      if (!r.ok) throw new Error('refused')
      return r
    }
  } as unknown as MetadataService
  return { metadata, sm, proposed }
}

test('the system group leader gives a cluster without a key its key, once', async () => {
  const { metadata, sm, proposed } = service(() => ME)
  await ensureClusterKey(metadata, ME, AbortSignal.timeout(5000))
  assert.is(proposed.length, 1)
  assert.is(proposed[0].type, 'SetClusterKey')
  assert.ok(sm.view.cluster()?.publicKey)
  await ensureClusterKey(metadata, ME, AbortSignal.timeout(5000))
  assert.is(proposed.length, 1, 'a cluster with a key is left alone')
})

test('AlreadyExists (another leader was first) ends it; a follower waits for the key or its stop', async () => {
  const racing = service(() => ME, { racing: true })
  await ensureClusterKey(racing.metadata, ME, AbortSignal.timeout(5000))
  assert.is(racing.proposed.length, 1)
  const follower = service(() => 'someone-else')
  const stop = new AbortController()
  const done = ensureClusterKey(follower.metadata, ME, stop.signal)
  await new Promise((resolve) => setTimeout(resolve, 50))
  stop.abort()
  await done
  assert.is(follower.proposed.length, 0, 'only the leader proposes')
})

test.run()
