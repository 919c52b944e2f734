/**
 * A follower that restores its leader's snapshot acknowledges it — and so counts as caught up — only
 * once its state machine has what the snapshot refers to (GroupStateMachine.restored): three
 * RaftGroups over an in-memory transport.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { RaftGroup } from '../../src/group/index.js'
import { MemoryStorage, MessageType, StateType } from '../../src/raft/index.js'
import { waitFor } from '../transport/libp2p-network.js'
import { ListMachine, enc } from './cluster.js'
import type { Result } from './cluster.js'
import { Hub, gated } from './hub.js'

const test = suite('RaftGroup: a restored snapshot is acknowledged once the state machine has what it refers to')
const groups: Array<RaftGroup<Result>> = []
test.after.each(async () => {
  for (const g of groups.splice(0)) await g.stop()
})

test('the follower holds its acknowledgement while restored() runs, and sends it after', async () => {
  const hub = new Hub()
  const ids = ['node-a', 'node-b', 'node-c']
  const sms = new Map<string, ListMachine>()
  for (const id of ids) {
    const sm = new ListMachine()
    sms.set(id, sm)
    const gate = gated(new MemoryStorage({ confState: { voters: ids, learners: [] } }))
    groups.push(new RaftGroup<Result>({
      id, storage: gate.storage, transport: hub.transport(id), stateMachine: sm, tickMs: 20, electionTick: 20, snapshotEvery: 5, snapshotKeepEntries: 0
    }))
  }
  const [a] = groups
  a.start()
  groups[1].start()
  groups[2].start()
  await waitFor(() => groups.some((g) => g.status().state === StateType.Leader), 10_000, 'a leader')
  const leader = groups.find((g) => g.status().state === StateType.Leader) as RaftGroup<Result>
  const lagging = ids.find((id) => id !== leader.id) as string
  // the lagging follower hears nothing while the others commit and compact 20 entries
  hub.dropIf = (m) => m.to === lagging || m.from === lagging
  for (let i = 0; i < 20; i++) await leader.propose(enc(`e${i}`))
  await waitFor(() => leader.stats.snapshotsCreated > 0, 5000, 'a snapshot on the leader')
  let release: () => void = () => {}
  const sm = sms.get(lagging) as ListMachine
  sm.restoredWith = async () => { await new Promise<void>((resolve) => { release = resolve }) }
  hub.dropIf = undefined
  await waitFor(() => sm.restoredCalls.length > 0, 10_000, 'the snapshot restored on the lagging follower')
  const snapIndex = sm.restoredCalls[0]
  assert.ok(sm.items.includes('e0'), 'the state was restored')
  await new Promise((resolve) => setTimeout(resolve, 200))
  const acks = (): number => hub.sent.filter((m) => m.from === lagging && m.type === MessageType.AppResp && !m.reject && m.index >= snapIndex).length
  assert.is(acks(), 0, 'no acknowledgement of the snapshot while restored() runs')
  assert.ok((leader.progress()?.[lagging]?.match ?? 0) < snapIndex, 'the leader does not count it as caught up')
  release()
  await waitFor(() => acks() > 0, 5000, 'the acknowledgement after restored()')
  await waitFor(() => (leader.progress()?.[lagging]?.match ?? 0) >= leader.status().commit, 5000, 'caught up')
})

test.run()
