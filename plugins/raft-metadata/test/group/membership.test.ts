import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { ConfChangeType } from '../../src/raft/index.js'
import { plain, waitFor } from '../transport/libp2p-network.js'
import { Cluster } from './cluster.js'

interface Ctx { cluster: Cluster | undefined }
const test = suite<Ctx>('RaftGroup membership changes: 3 nodes over libp2p with LevelStorage', { cluster: undefined })

test.after.each(async (ctx) => {
  await ctx.cluster?.destroy()
  ctx.cluster = undefined
})

test('a stale AddLearner committed after the node\'s promotion leaves it a voter, and answers its proposer', plain(async (ctx) => {
  const c = ctx.cluster = await Cluster.start(3)
  const lead = await c.leader()
  const x = c.members[(lead + 1) % 3].id
  const g = c.group(lead)
  const sorted = (ids: string[]): string[] => [...ids].sort()
  // x leaves, comes back as a learner and is promoted: each change based on the role x had
  let cs = await g.proposeConfChange({ type: ConfChangeType.RemoveNode, node: x, basedOn: 'voter' })
  assert.not.ok(cs.voters.includes(x) || cs.learners.includes(x))
  cs = await g.proposeConfChange({ type: ConfChangeType.AddLearner, node: x, basedOn: 'absent' })
  assert.equal(cs.learners, [x])
  cs = await g.proposeConfChange({ type: ConfChangeType.AddVoter, node: x, basedOn: 'learner' })
  assert.equal(cs, { voters: sorted(c.ids), learners: [] })
  // an AddLearner built while x was absent (a retry of the first) commits now: it changes nothing
  cs = await g.proposeConfChange({ type: ConfChangeType.AddLearner, node: x, basedOn: 'absent' })
  assert.equal(cs, { voters: sorted(c.ids), learners: [] }, 'x is still a voter')
  await waitFor(() => c.running().every((i) => c.group(i).status().confState.voters.length === 3), 5000, 'every node to see three voters')
}))

test.run()
