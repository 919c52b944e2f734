import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { ConfChangeType, applyToConfState } from '../../src/raft/index.js'
import type { ConfChange, ConfState } from '../../src/raft/index.js'
import { changeMembership, isMember } from '../../src/replicated/change-membership.js'
import type { MembershipGroup } from '../../src/replicated/change-membership.js'

type Proposal = Omit<ConfChange, 'context'>

/**
 * A group whose log the test writes: `commit` applies a change to the membership as every replica
 * would (applyToConfState), and each proposal is answered as the test's `onPropose` decides.
 */
class ScriptedGroup implements MembershipGroup {
  proposed: Proposal[] = []

  constructor (public cs: ConfState, private readonly onPropose: (cc: Proposal, n: number, signal?: AbortSignal) => Promise<ConfState>) {}

  status (): { confState: ConfState } {
    return { confState: this.cs }
  }

  commit (cc: Proposal): ConfState {
    this.cs = applyToConfState(this.cs, cc)
    return this.cs
  }

  async proposeConfChange (cc: Proposal, options?: { signal?: AbortSignal }): Promise<ConfState> {
    this.proposed.push(cc)
    return await this.onPropose(cc, this.proposed.length, options?.signal)
  }
}

/** Never answered: rejects once the attempt's signal fires (the entry may still commit later). */
async function unanswered (signal?: AbortSignal): Promise<never> {
  // AbortSignal.timeout does not keep the process alive: this does, until the attempt ends
  const alive = setInterval(() => {}, 1000)
  return await new Promise<never>((_resolve, reject) => {
    signal?.addEventListener('abort', () => { reject(signal.reason as Error) }, { once: true })
  }).finally(() => { clearInterval(alive) })
}

test('an AddLearner proposed again after a timeout cannot demote the voter its node became meanwhile', async () => {
  const g: ScriptedGroup = new ScriptedGroup({ voters: ['a'], learners: [] }, async (cc, n, signal) => {
    // the first attempt times out and commits late, after the retry was proposed
    if (n === 1) return await unanswered(signal)
    g.commit(g.proposed[0])
    // the leader promotes the new learner before the retry commits
    g.commit({ type: ConfChangeType.AddVoter, node: 'x', basedOn: 'learner' })
    return g.commit(cc)
  })
  await changeMembership(g, { type: ConfChangeType.AddLearner, node: 'x' }, (cs) => isMember(cs, 'x'), { attemptMs: 20 })
  assert.equal(g.cs, { voters: ['a', 'x'], learners: [] }, 'x is still a voter')
  assert.equal(g.proposed.map((cc) => cc.basedOn), ['absent', 'absent'], 'each attempt says what it was based on')
})

test('a change that applied as a no-op is proposed again from the membership it finds', async () => {
  const g: ScriptedGroup = new ScriptedGroup({ voters: ['a'], learners: ['x'] }, async (cc, n) => {
    // x is promoted between the first removal's proposal and its commit
    if (n === 1) g.commit({ type: ConfChangeType.AddVoter, node: 'x', basedOn: 'learner' })
    return g.commit(cc)
  })
  await changeMembership(g, { type: ConfChangeType.RemoveNode, node: 'x' }, (cs) => !isMember(cs, 'x'), { attemptMs: 1000 })
  assert.equal(g.cs, { voters: ['a'], learners: [] }, 'x is out')
  assert.equal(g.proposed.map((cc) => cc.basedOn), ['learner', 'voter'])
})

test('a change already in place is not proposed; an aborted one stops', async () => {
  const g = new ScriptedGroup({ voters: ['a', 'x'], learners: [] }, async (_cc, _n, signal) => await unanswered(signal))
  await changeMembership(g, { type: ConfChangeType.AddLearner, node: 'x' }, (cs) => isMember(cs, 'x'))
  assert.is(g.proposed.length, 0)
  const ac = new AbortController()
  const p = changeMembership(g, { type: ConfChangeType.RemoveNode, node: 'x' }, (cs) => !isMember(cs, 'x'), { signal: ac.signal, attemptMs: 1000 })
  ac.abort()
  try {
    await p
    assert.unreachable('an aborted change must reject')
  } catch (err) {
    assert.is((err as Error).name, 'AbortError')
  }
})

test.run()
