/**
 * Membership changes of one Raft group as the metadata service makes them: proposed until the
 * applied membership is the one asked for.
 */
import type { GroupCallOptions } from '../group/index.js'
import { roleOf } from '../raft/index.js'
import type { ConfChange, ConfState, NodeId } from '../raft/index.js'

/** One attempt of a membership change: a leader may drop it (another change pending, a transfer). */
export const CONF_CHANGE_ATTEMPT_MS = 3_000

/** What changeMembership needs of a group (a RaftGroup). */
export interface MembershipGroup {
  status: () => { confState: ConfState }
  proposeConfChange: (cc: Omit<ConfChange, 'context'>, options?: GroupCallOptions) => Promise<ConfState>
}

export interface ChangeMembershipOptions {
  signal?: AbortSignal
  /** Deadline of one attempt (default CONF_CHANGE_ATTEMPT_MS). */
  attemptMs?: number
}

/**
 * Proposes a membership change until `done` holds for the applied membership. A change forwarded to
 * a leader that drops it (a change already pending, a leadership transfer) is never answered, so each
 * attempt has a short deadline and the change is proposed again. An attempt that timed out may still
 * commit later, after changes made meanwhile (a promotion of the node added): each attempt is
 * therefore based on the role the node has in the membership it was built from (ConfChange.basedOn),
 * and applies as a no-op wherever that role changed since. Whether it applied or not, the membership
 * is looked at again once it is answered.
 */
export async function changeMembership (group: MembershipGroup, cc: Pick<ConfChange, 'type' | 'node'>, done: (cs: ConfState) => boolean, options: ChangeMembershipOptions = {}): Promise<void> {
  const { signal } = options
  for (;;) {
    const cs = group.status().confState
    if (done(cs)) return
    signal?.throwIfAborted()
    const attempt = AbortSignal.timeout(options.attemptMs ?? CONF_CHANGE_ATTEMPT_MS)
    try {
      await group.proposeConfChange({ type: cc.type, node: cc.node, basedOn: roleOf(cs, cc.node) },
        { signal: signal === undefined ? attempt : AbortSignal.any([signal, attempt]) })
    } catch (err) {
      if (signal?.aborted === true || !attempt.aborted) throw err
    }
  }
}

export function isMember (cs: ConfState, id: NodeId): boolean {
  return cs.voters.includes(id) || cs.learners.includes(id)
}
