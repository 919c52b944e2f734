/**
 * The leader's queue of linearizable read requests (thesis §6.4 ReadIndex): each waits for a quorum of
 * heartbeat acknowledgements carrying its context, which proves the leader was still the leader when it
 * recorded the commit index.
 */
import { bytesKey } from './util.js'
import type { NodeId } from './types.js'

export interface ReadIndexStatus {
  /** The leader's commit index when the request arrived (the read index). */
  index: number
  /** Who asked: the leader itself ('' or its id) or a follower that forwarded the request. */
  from: NodeId
  context: Uint8Array
  /** Voters (and learners, ignored by the quorum count) that acknowledged a heartbeat with this context. */
  acks: Set<NodeId>
}

export class ReadOnly {
  /** Pending requests by context; exactly the keys in `queue`. */
  private readonly pending = new Map<string, ReadIndexStatus>()
  /** Keys in arrival order: confirming one request confirms every earlier one (their index is <=). */
  private queue: string[] = []
  /** Bound on pending.size. */
  readonly maxPending: number

  constructor (maxPending: number) {
    this.maxPending = maxPending
  }

  /** Queues a request; false if its context is already pending or the queue is full (dropped). */
  add (index: number, from: NodeId, context: Uint8Array): boolean {
    const key = bytesKey(context)
    if (this.pending.has(key) || this.pending.size >= this.maxPending) return false
    this.pending.set(key, { index, from, context, acks: new Set() })
    this.queue.push(key)
    return true
  }

  recvAck (from: NodeId, context: Uint8Array): Set<NodeId> | undefined {
    const rs = this.pending.get(bytesKey(context))
    if (rs === undefined) return undefined
    rs.acks.add(from)
    return rs.acks
  }

  /** Removes and returns the request with this context and every request queued before it. */
  advance (context: Uint8Array): ReadIndexStatus[] {
    const key = bytesKey(context)
    const at = this.queue.indexOf(key)
    if (at < 0) return []
    const done = this.queue.slice(0, at + 1)
    this.queue = this.queue.slice(at + 1)
    const out: ReadIndexStatus[] = []
    for (const k of done) {
      const rs = this.pending.get(k)
      if (rs !== undefined) out.push(rs)
      this.pending.delete(k)
    }
    return out
  }

  /** The newest pending context (sent with every heartbeat, so a lost round is retried). */
  lastPendingContext (): Uint8Array | undefined {
    const k = this.queue[this.queue.length - 1]
    return k === undefined ? undefined : this.pending.get(k)?.context
  }

  size (): number {
    return this.pending.size
  }

  reset (): void {
    this.pending.clear()
    this.queue = []
  }
}
