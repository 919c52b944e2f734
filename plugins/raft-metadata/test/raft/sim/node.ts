/**
 * One simulated node: its disk (a MemoryStorage that survives crashes), its volatile RawNode and
 * state machine (lost on a crash), and the driver's bookkeeping.
 */
import { entryHash, StateMachine } from './state-machine.js'
import type { LogView } from './checker.js'
import type { ConfState, MemoryStorage, RawNode, ReadState } from './raft-api.js'
import type { Rng } from './rng.js'

export class SimNode {
  readonly id: string
  /** What survives a crash. Only the driver writes it, in the Ready order. */
  readonly disk: MemoryStorage
  /** null while crashed or after decommissioning. */
  raft: RawNode | null = null
  /** Incremented on every crash and restart; events of an older incarnation are ignored. */
  incarnation = 0
  sm = new StateMachine()
  /** Membership as of sm.appliedIndex (what a snapshot taken now must record). */
  confState: ConfState
  /** Term of the last hard state persisted: an upper bound used as "known committed by" term. */
  hsTerm = 0
  /** ReadStates handed out by the core that wait for sm.appliedIndex to reach their index. */
  pendingReads: ReadState[] = []
  /** Entries applied since the last local snapshot, and the threshold for the next one. */
  appliedSinceSnap = 0
  snapEvery = 30
  /** Last role and term seen (for the trace). */
  role = ''
  /** Removed from the group and shut down for good. */
  decommissioned = false
  /** Seeded source for this node's RaftConfig.rand (a new fork per incarnation). */
  readonly rng: Rng

  constructor (id: string, disk: MemoryStorage, confState: ConfState, rng: Rng) {
    this.id = id
    this.disk = disk
    this.confState = confState
    this.rng = rng
  }

  get up (): boolean {
    return this.raft !== null
  }

  /** The persisted log as the checker sees it. */
  logView (): LogView {
    const disk = this.disk
    return {
      firstIndex: () => disk.firstIndex(),
      lastIndex: () => disk.lastIndex(),
      entryAt: (i: number) => {
        if (i < disk.firstIndex() || i > disk.lastIndex()) return undefined
        const e = disk.entries(i, i + 1)[0]
        if (e === undefined) return undefined
        return { term: e.term, hash: entryHash(e) }
      }
    }
  }
}
