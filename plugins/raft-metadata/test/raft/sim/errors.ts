/** The safety and liveness properties the simulator checks. */
export type Property =
  /** At most one leader per term (Raft §5.2). */
  | 'election-safety'
  /** Two logs with an entry of the same index and term are identical up to it (§5.3). */
  | 'log-matching'
  /** An entry committed in term T is in the log of every leader of a term > T (§5.4). */
  | 'leader-completeness'
  /** No two nodes apply (or commit) different entries at one index (§5.4.3). */
  | 'state-machine-safety'
  /** A node applies committed entries exactly once, in index order, with no gaps. */
  | 'apply-order'
  /** A write proposed again by its driver (its first proposal lost with its leader) is applied once. */
  | 'at-most-once'
  /** A node's persisted commit index never decreases and never passes its persisted log. */
  | 'commit-index'
  /** A ReadIndex read observes every write acknowledged before the read was issued (§6.4). */
  | 'read-linearizability'
  /** After faults stop and the network heals, a leader exists and accepted proposals get applied. */
  | 'liveness'
  /** The core threw where it must not (an unexpected exception is a bug, not a property violation). */
  | 'core-exception'
  /** A crashed node starts again on its disk, and no group of it stops itself (stack simulation). */
  | 'restart'
  /** Every acknowledged write is on every live member after the heal (stack simulation). */
  | 'durability'

/**
 * A violated property. Carries its evidence: the property, the seed that replays the run, the step at
 * which it was detected and the last lines of the run's trace.
 */
export class SimViolation extends Error {
  readonly property: Property
  readonly seed: number
  readonly step: number
  readonly detail: string
  readonly traceTail: string[]

  constructor (property: Property, seed: number, step: number, detail: string, traceTail: string[]) {
    super(`${property} violated (seed ${seed}, step ${step}): ${detail}\n  trace tail:\n    ${traceTail.join('\n    ')}`)
    this.name = 'SimViolation'
    this.property = property
    this.seed = seed
    this.step = step
    this.detail = detail
    this.traceTail = traceTail
  }
}
