/**
 * One peer's sender of snapshots too large for one frame: their chunk frames (snapshot-chunk.ts) go on
 * a stream of their own (`/dfs/raft-snapshot/1.0.0`, opened when first needed and kept), one transfer
 * after another, one chunk per write, so a write never holds more than one chunk and the heartbeats on
 * the Raft stream never wait behind a snapshot.
 *
 * Every snapshot handed to `enqueue` is reported exactly once to its group: `reportSnapshot(peer, true)`
 * once its last chunk was written to the stream (as a one-frame snapshot is, once its frame was),
 * `reportSnapshot(peer, false)` when it was refused (back-off, queue full), replaced by a newer one for
 * the same group before it was all written, or lost with a failed dial or write. The core then waits
 * for the follower's answer, or probes it again and sends a new snapshot if it still lags (Raft
 * re-sends; nothing here retries).
 *
 * A node of an older version does not handle the protocol: the dial fails at protocol negotiation,
 * the snapshot is reported failed and the sender backs off, just as that node's own transport refused
 * such a snapshot. It never receives a chunk frame, so its Raft stream is never reset by one.
 */
import { AbortedError, DeadlineExceededError, UnavailableError } from '@dfs/api'
import { timeoutSignal } from '../group/clock.js'
import type { Message, NodeId } from '../raft/index.js'
import type { FrameSink, RaftTransport } from './raft-transport.js'
import { snapshotChunkFrames } from './snapshot-chunk.js'
import { PEER_SNAPSHOTS_QUEUED_MAX } from './constants.js'

export class SnapshotSender {
  readonly peer: NodeId
  private readonly transport: RaftTransport
  /** Snapshots not yet started, by group (insertion order is sending order); at most PEER_SNAPSHOTS_QUEUED_MAX. */
  private readonly pending = new Map<number, Message>()
  private sink: FrameSink | undefined
  /** The pump runs (or is scheduled); it alone writes to `sink`. */
  private pumping = false
  /** Until when snapshots are refused (after a failed dial or write). */
  private backoffUntil = 0
  private backoffMs: number
  private stopped = false

  constructor (transport: RaftTransport, peer: NodeId) {
    this.transport = transport
    this.peer = peer
    this.backoffMs = transport.backoffMsMin
  }

  /** Queues snapshot `m` of `group` (its data is 1..SNAPSHOT_BYTES_MAX bytes: the caller checked). */
  enqueue (group: number, m: Message): void {
    const t = this.transport
    if (this.stopped) return
    if (t.clock.now() < this.backoffUntil) {
      t.log('raft snapshot of group %d to %s refused: the snapshot stream is backing off', group, this.peer)
      this.report(group, false)
      return
    }
    const replaced = this.pending.get(group)
    if (replaced !== undefined) {
      this.pending.delete(group)
      this.report(group, false)
    } else if (this.pending.size >= PEER_SNAPSHOTS_QUEUED_MAX) {
      t.log.error('raft snapshot of group %d to %s refused: %d snapshots are already waiting', group, this.peer, this.pending.size)
      this.report(group, false)
      return
    }
    this.pending.set(group, m)
    if (this.pumping) return
    this.pumping = true
    t.clock.defer(() => { void this.pump() })
  }

  private report (group: number, ok: boolean): void {
    if (!ok) {
      this.transport.stats.snapshotsDropped++
      this.transport.stats.messagesDropped++
    }
    this.transport.handlerOf(group)?.reportSnapshot(this.peer, ok)
  }

  private async pump (): Promise<void> {
    try {
      while (!this.stopped) {
        const next = this.pending.entries().next()
        if (next.done === true) return
        const [group, m] = next.value
        this.pending.delete(group)
        const ok = await this.transfer(group, m)
        if (!this.stopped) this.report(group, ok)
      }
    } finally {
      this.pumping = false
    }
  }

  /** Writes the chunks of one snapshot; false if it was not all written. */
  private async transfer (group: number, m: Message): Promise<boolean> {
    const t = this.transport
    if (this.sink === undefined || !this.sink.open) {
      try {
        await this.connect()
      } catch (err) {
        this.fail(err as Error)
        return false
      }
    }
    const id = t.nextSnapshotId()
    let chunks = 0
    for (const frame of snapshotChunkFrames(group, id, m, t.snapshotChunkBytes)) {
      const sink = this.sink
      if (this.stopped || sink === undefined) return false
      if (this.pending.has(group)) {
        // A newer snapshot of the group is waiting: this one is stale. Its first chunk replaces what
        // the receiver holds of this transfer.
        t.log('raft snapshot %d of group %d to %s replaced after %d chunks', id, group, this.peer, chunks)
        return false
      }
      const deadline = timeoutSignal(t.clock, t.writeTimeoutMs)
      try {
        await sink.write([frame], deadline)
      } catch (err) {
        this.fail(err as Error)
        return false
      } finally {
        deadline.clear()
      }
      chunks++
      t.stats.writes++
      t.stats.framesSent++
      t.stats.snapshotChunksSent++
    }
    t.stats.messagesSent++
    this.backoffMs = t.backoffMsMin
    t.log.trace('raft snapshot %d of group %d to %s: %d bytes in %d chunks', id, group, this.peer, m.snapshot?.data.byteLength, chunks)
    return true
  }

  private async connect (): Promise<void> {
    const t = this.transport
    const dial = timeoutSignal(t.clock, t.dialTimeoutMs)
    let sink: FrameSink
    try {
      sink = await t.link.open(this.peer, dial.signal, 'snapshot')
    } finally {
      dial.clear()
    }
    if (this.stopped) {
      sink.abort(new AbortedError('raft transport stopped'))
      throw new UnavailableError('raft transport stopped')
    }
    this.sink = sink
    t.stats.streamsOpened++
    sink.onClose(() => {
      if (this.sink === sink) this.sink = undefined
    })
  }

  /** A dial or write failed: reset the stream, refuse what waits, back off. */
  private fail (err: Error): void {
    const t = this.transport
    const sink = this.sink
    this.sink = undefined
    if (sink?.open === true) sink.abort(err)
    if (this.stopped) return
    this.backoffUntil = t.clock.now() + this.backoffMs
    t.log.error('raft snapshot stream to %s failed (%s): snapshots refused for %d ms', this.peer,
      err.name === 'TimeoutError' ? new DeadlineExceededError('write or dial timed out').message : err.message, this.backoffMs)
    this.backoffMs = Math.min(this.backoffMs * 2, t.backoffMsMax)
    const waiting = [...this.pending.keys()]
    this.pending.clear()
    for (const g of waiting) this.report(g, false)
  }

  stop (): void {
    this.stopped = true
    const sink = this.sink
    this.sink = undefined
    if (sink?.open === true) sink.abort(new AbortedError('raft transport stopped'))
    this.pending.clear()
  }
}
