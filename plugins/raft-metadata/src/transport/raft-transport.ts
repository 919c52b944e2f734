/**
 * RaftTransport: Raft messages between nodes over libp2p (`/dfs/raft/1.0.0`), reached only through the
 * `PeerNetwork` of `@dfs/api` (`libp2pLink`). Everything above the streams — queues, coalescing,
 * chunking, back-off, what is reported dropped, inbound validation — is the same code in the seeded
 * simulator, which passes a simulated FrameLink and Clock instead.
 *
 * Outbound: ONE long-lived stream per peer, carrying varint-length-prefixed frames (see codec.ts), each
 * frame a batch of one group's messages. Sends are coalesced: everything queued for a peer in one
 * event-loop turn (every group, every Ready batch) or while the previous write was in flight leaves in
 * ONE stream write of one frame per group, so the muxer, Noise and the socket see one chunk, not one per
 * message or per group — at a few hundred bytes a message that per-chunk cost is what dominates. Messages
 * wait in a bounded per-peer queue (count and bytes); a message that does not fit, or that is sent while
 * the peer is in reconnect back-off, is dropped — Raft tolerates loss — and the group is told
 * `reportUnreachable(peer)` (and `reportSnapshot(peer, false)` for a dropped snapshot). A failed dial or
 * write drops the stream and whatever was queued, then reconnects after an exponential back-off. A
 * snapshot is reported `reportSnapshot(peer, true)` once its frame was written to the stream.
 * A snapshot whose data is over SNAPSHOT_DATA_BYTES_MAX (and at most SNAPSHOT_BYTES_MAX) does not go
 * in a frame of this stream: a SnapshotSender sends it in chunks on a stream of its own (see
 * snapshot-sender.ts), and the receiver reassembles it (snapshot-chunk.ts) before handing its group
 * the one Snap message that was sent.
 * Dropped Prop messages (proposals forwarded to the leader) are reported `reportDroppedProposals` only
 * when they certainly never left this node: refused when sent (queue full, back-off, too large), or
 * still queued, never taken into a write, when a dial or write failed. The Props of the write that
 * failed are not: its bytes were handed to the stream and may have reached the leader, so proposing
 * them again could append them twice; they are counted dropped and reported unreachable only.
 * The streams are one-way: each node writes on the stream it opened and reads the ones its peers opened.
 *
 * Inbound: each frame is decoded and validated (codec.ts) and its messages handed to the registered
 * group together with the PeerId that Noise proved. A message whose `from` is not that peer (a forged
 * sender), or whose `to` is not this node, is dropped and counted; a frame that does not decode resets
 * the stream. A snapshot chunk goes to the reassembler first (its Snap message is checked the same way,
 * on the first chunk). (A forwarded TransferLeader names the transferee in `from`, not the sender: it is
 * accepted only from a peer and for a transferee that the group itself vets; see RaftGroup.)
 */
import { AbortedError, LengthPrefixed, DeadlineExceededError, FrameTooLargeError, UnavailableError } from '@dfs/api'
import type { Logger, PeerIdString, PeerNetwork } from '@dfs/api'
import type { Stream } from '@libp2p/interface'
import { lazyDeadline, systemClock, timeoutSignal } from '../group/clock.js'
import type { Clock } from '../group/clock.js'
import { mutations } from '../mutations.js'
import { MessageType } from '../raft/index.js'
import type { Message, NodeId } from '../raft/index.js'
import { FRAME_HEADER_BYTES_MAX, decodeWireFrame, encodeFrame, encodeMessage } from './codec.js'
import type { SnapshotChunk } from './codec.js'
import {
  BACKOFF_MS_MAX_DEFAULT, BACKOFF_MS_MIN_DEFAULT, DIAL_TIMEOUT_MS_DEFAULT, FRAME_BYTES_MAX, FRAME_MESSAGES_MAX,
  INBOUND_SNAPSHOT_STREAMS_MAX, INBOUND_STREAMS_MAX, PEER_QUEUE_BYTES_MAX_DEFAULT, PEER_QUEUE_MESSAGES_MAX_DEFAULT,
  RAFT_PROTOCOL, RAFT_SNAPSHOT_PROTOCOL, SNAPSHOT_BYTES_MAX, SNAPSHOT_CHUNK_BYTES_DEFAULT, SNAPSHOT_CHUNK_BYTES_MAX,
  SNAPSHOT_DATA_BYTES_MAX, SNAPSHOT_REASSEMBLY_BYTES_MAX_DEFAULT, SNAPSHOT_STALL_MS_DEFAULT, WRITE_TIMEOUT_MS_DEFAULT
} from './constants.js'
import { SnapshotReassembler } from './snapshot-chunk.js'
import { SnapshotSender } from './snapshot-sender.js'

/** What a Raft group gives the transport: where inbound messages and send outcomes go. */
export interface RaftTransportHandler {
  /** Messages from `from` (proven by Noise) addressed to this node, in arrival order. */
  receive: (from: NodeId, messages: Message[]) => void
  /** Messages to `peer` were dropped (queue full, peer unreachable). */
  reportUnreachable: (peer: NodeId) => void
  /** A snapshot to `peer` was written to its stream (ok) or dropped (not ok). */
  reportSnapshot: (peer: NodeId, ok: boolean) => void
  /**
   * Forwarded proposals (Prop messages) to `peer` that were dropped without any attempt to write them
   * (refused by the queue, the back-off or the frame limit, or still queued when a dial or a write
   * failed): they certainly never reached the leader, so the group may propose them again. A Prop whose
   * write was attempted and failed is never reported here, only through reportUnreachable: it may have
   * been delivered and appended, so the group must treat its fate as unknown.
   */
  reportDroppedProposals?: (peer: NodeId, messages: Message[]) => void
}

/** The transport as a Raft group uses it (RaftTransport, or an in-memory one in tests). */
export interface GroupTransport {
  readonly self: NodeId
  register: (group: number, handler: RaftTransportHandler) => void
  unregister: (group: number) => void
  send: (group: number, messages: Message[]) => void
}

/** One outbound stream of frames to a peer. */
export interface FrameSink {
  /**
   * Writes frames after those of earlier writes. Rejects when the stream fails or `options.signal`
   * aborts; the frames may have been delivered all the same (they left with the bytes handed to the
   * stream). `options.signal` is read only when the write has to wait (see lazyDeadline).
   */
  write: (frames: Uint8Array[], options: { readonly signal: AbortSignal }) => Promise<void>
  /** Resets the stream. */
  abort: (err: Error) => void
  /** Whether the stream is still open. */
  readonly open: boolean
  /** Calls `fn` once when the stream closes (either end, or a reset). */
  onClose: (fn: () => void) => void
}

/** What a FrameLink hands inbound frames to. */
export interface FrameReceiver {
  /** One frame from `peer` (proven by the link); false: it did not decode, so the link resets its stream. */
  frame: (peer: NodeId, bytes: Uint8Array) => boolean
  /** A stream from `peer` failed otherwise than by ending (e.g. a frame over the size limit). */
  failed: (peer: NodeId, err: Error) => void
}

/**
 * Which stream: `raft` (RAFT_PROTOCOL) carries frames of messages, `snapshot` (RAFT_SNAPSHOT_PROTOCOL)
 * the chunk frames of large snapshots. A peer that does not take `snapshot` streams (an older
 * version) makes `open` reject.
 */
export type StreamKind = 'raft' | 'snapshot'

/** How the transport reaches its peers: libp2p streams on a node, simulated links in the simulator. */
export interface FrameLink {
  /** Opens a stream of `kind` (default raft) to `peer` (dialling it if needed); rejects when `signal` aborts first. */
  open: (peer: NodeId, signal: AbortSignal, kind?: StreamKind) => Promise<FrameSink>
  /** Starts taking the streams peers open, handing their frames to `receiver`. */
  listen: (receiver: FrameReceiver) => Promise<void>
  /** Stops taking streams and resets the inbound ones. */
  close: () => Promise<void>
}

export interface RaftTransportInit {
  /** The libp2p network of this node (its PeerId is the transport's `self`). */
  network?: PeerNetwork
  /** Instead of `network`: a link and this node's id (the simulator). */
  link?: FrameLink
  self?: NodeId
  clock?: Clock
  logger?: Logger
  /** Most messages queued for one peer (default 4096). */
  queueMessagesMax?: number
  /** Most encoded bytes queued for one peer (default 64 MiB). */
  queueBytesMax?: number
  dialTimeoutMs?: number
  writeTimeoutMs?: number
  backoffMsMin?: number
  backoffMsMax?: number
  /** Payload bytes per chunk of a snapshot over SNAPSHOT_DATA_BYTES_MAX (default 4 MiB, at most 8 MiB). */
  snapshotChunkBytes?: number
  /** Most bytes of snapshots in reassembly at once, over all peers and groups (default 2 GiB). */
  snapshotReassemblyBytesMax?: number
  /** An unfinished reassembly without a chunk for this long is dropped (default 30 s). */
  snapshotStallMs?: number
}

export interface RaftTransportStats {
  /** Stream writes (each carries one or more frames: everything that was queued for the peer). */
  writes: number
  framesSent: number
  messagesSent: number
  /** Messages dropped on the sending side (queue full, back-off, failed write, too large). */
  messagesDropped: number
  framesReceived: number
  messagesReceived: number
  /** Inbound messages refused: forged `from`, wrong `to`, unknown group. */
  messagesRejected: number
  /** Inbound frames that did not decode (the stream was reset). */
  framesMalformed: number
  /** Streams opened to peers (the first and every reconnect; snapshot streams too). */
  streamsOpened: number
  /** Chunk frames of large snapshots written. */
  snapshotChunksSent: number
  /** Snapshots reported failed by the sending side (refused, replaced, lost with a failed write). */
  snapshotsDropped: number
  /** Chunk frames received (decoded). */
  snapshotChunksReceived: number
  /** Chunks dropped by the reassembler (out of order, over the budget, bad checksum …) or refused. */
  snapshotChunksRefused: number
  /** Chunked snapshots reassembled whole and handed to their group. */
  snapshotsReassembled: number
  /** Unfinished reassemblies dropped after SNAPSHOT_STALL_MS without a chunk. */
  snapshotsStalled: number
}

interface Queued {
  group: number
  bytes: Uint8Array
  /** Set for a Snap: its outcome is reported. */
  snapshot: boolean
  /** Set for a Prop: reported if it is dropped. */
  prop?: Message
}

const noop = (): void => {}
const silentLogger: Logger = Object.assign(noop, { error: noop, trace: noop, enabled: false })

function positive (value: number | undefined, fallback: number): number {
  return value !== undefined && Number.isFinite(value) && value > 0 ? value : fallback
}

/** One peer's outbound side: its queue, its stream and the loop that writes frames. */
class PeerSender {
  readonly peer: NodeId
  private readonly transport: RaftTransport
  private queue: Queued[] = []
  private queuedBytes = 0
  private sink: FrameSink | undefined
  /** A write is in flight, or one is scheduled for the end of this event-loop turn. */
  private pumping = false
  /** Until when new messages are dropped (reconnect back-off after a failure). */
  private backoffUntil = 0
  private backoffMs: number
  private stopped = false

  constructor (transport: RaftTransport, peer: NodeId) {
    this.transport = transport
    this.peer = peer
    this.backoffMs = transport.backoffMsMin
  }

  enqueue (group: number, m: Message): void {
    const t = this.transport
    const snapshot = m.type === MessageType.Snap
    if (this.stopped) return
    const snapBytes = m.snapshot?.data.byteLength ?? 0
    if (snapshot && snapBytes > SNAPSHOT_BYTES_MAX) {
      const err = new FrameTooLargeError(`raft snapshot of ${snapBytes} bytes exceeds the transport limit of ${SNAPSHOT_BYTES_MAX} bytes`,
        { bytes: snapBytes, bytesMax: SNAPSHOT_BYTES_MAX })
      t.log.error('raft snapshot of group %d to %s not sent: %s: %s', group, this.peer, err.name, err.message)
      this.drop(group, [{ group, bytes: new Uint8Array(0), snapshot }])
      return
    }
    if (snapshot && snapBytes > SNAPSHOT_DATA_BYTES_MAX) {
      // Too large for one frame: chunks on the snapshot stream, which reports its outcome.
      t.snapshotSenderOf(this.peer).enqueue(group, m)
      return
    }
    const bytes = encodeMessage(m)
    const item: Queued = { group, bytes, snapshot, ...(m.type === MessageType.Prop ? { prop: m } : {}) }
    if (bytes.byteLength + FRAME_HEADER_BYTES_MAX > FRAME_BYTES_MAX) {
      t.log.error('raft %s message to %s of %d bytes exceeds the frame limit: not sent', m.type, this.peer, bytes.byteLength)
      this.drop(group, [item])
      return
    }
    if (t.clock.now() < this.backoffUntil ||
        this.queue.length >= t.queueMessagesMax ||
        (this.queue.length > 0 && this.queuedBytes + bytes.byteLength > t.queueBytesMax)) {
      this.drop(group, [item])
      return
    }
    this.queue.push(item)
    this.queuedBytes += bytes.byteLength
    this.schedule()
  }

  /**
   * Starts the pump at the end of this event-loop turn (Clock.defer: setImmediate, which runs after the
   * I/O callbacks and microtasks of the turn), so every message queued until then shares one write.
   */
  private schedule (): void {
    if (this.pumping) return
    this.pumping = true
    this.transport.clock.defer(() => { void this.pump() })
  }

  /**
   * Drops messages and tells their groups: one Unreachable per group, one failed SnapStatus per
   * snapshot, and the Props among `unsent` as dropped proposals. `unsent` never left this node;
   * `inFlight` was handed to the stream by a write that then failed, so its Props may have been
   * delivered and are not reported (see RaftTransportHandler.reportDroppedProposals).
   */
  private drop (group: number | undefined, unsent: Queued[], inFlight: Queued[] = []): void {
    if (unsent.length === 0 && inFlight.length === 0) return
    const t = this.transport
    t.stats.messagesDropped += unsent.length + inFlight.length
    const groups = new Set<number>(group !== undefined ? [group] : [])
    const props = new Map<number, Message[]>()
    for (const it of [...inFlight, ...unsent]) {
      groups.add(it.group)
      if (it.snapshot) t.handlerOf(it.group)?.reportSnapshot(this.peer, false)
    }
    for (const it of unsent) if (it.prop !== undefined) props.set(it.group, [...(props.get(it.group) ?? []), it.prop])
    for (const g of groups) t.handlerOf(g)?.reportUnreachable(this.peer)
    for (const [g, ms] of props) t.handlerOf(g)?.reportDroppedProposals?.(this.peer, ms)
  }

  /** Writes everything queued (in chunks of at most FRAME_BYTES_MAX), then waits for the next turn. */
  private async pump (): Promise<void> {
    const t = this.transport
    try {
      while (!this.stopped && this.queue.length > 0) {
        if (this.sink === undefined) {
          try {
            await this.connect()
          } catch (err) {
            this.fail(err as Error, [])
            return
          }
          continue
        }
        const { items, frames } = this.takeChunk()
        const deadline = lazyDeadline(t.clock, t.writeTimeoutMs)
        try {
          await this.sink.write(frames, deadline)
        } catch (err) {
          this.fail(err as Error, items)
          return
        } finally {
          deadline.clear()
        }
        t.stats.writes++
        t.stats.framesSent += frames.length
        t.stats.messagesSent += items.length
        this.backoffMs = t.backoffMsMin
        for (const b of items) if (b.snapshot) t.handlerOf(b.group)?.reportSnapshot(this.peer, true)
      }
    } finally {
      this.pumping = false
    }
  }

  /**
   * The longest prefix of the queue that fits one write, as one frame per group (each group's
   * messages in queue order; groups are independent, so their relative order does not matter).
   * A frame holds at most FRAME_MESSAGES_MAX messages and FRAME_BYTES_MAX bytes, and a write at most
   * FRAME_BYTES_MAX bytes of frames, except that a single message always goes (enqueue checked that
   * it fits a frame of its own).
   */
  private takeChunk (): { items: Queued[], frames: Uint8Array[] } {
    const byGroup = new Map<number, { parts: Uint8Array[], bytes: number }>()
    let total = 0
    let n = 0
    for (; n < this.queue.length; n++) {
      const q = this.queue[n]
      let f = byGroup.get(q.group)
      const added = q.bytes.byteLength + (f === undefined ? FRAME_HEADER_BYTES_MAX : 0)
      if (n > 0 && (total + added > FRAME_BYTES_MAX || (f !== undefined && f.parts.length >= FRAME_MESSAGES_MAX))) break
      if (f === undefined) {
        f = { parts: [], bytes: FRAME_HEADER_BYTES_MAX }
        byGroup.set(q.group, f)
      }
      f.parts.push(q.bytes)
      f.bytes += q.bytes.byteLength
      total += added
    }
    const items = this.queue.splice(0, n)
    for (const b of items) this.queuedBytes -= b.bytes.byteLength
    const frames = [...byGroup].map(([group, f]) => encodeFrame(group, f.parts))
    return { items, frames }
  }

  private async connect (): Promise<void> {
    const t = this.transport
    const dial = timeoutSignal(t.clock, t.dialTimeoutMs)
    let sink: FrameSink
    try {
      sink = await t.link.open(this.peer, dial.signal)
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
    t.log.trace('raft stream to %s opened', this.peer)
  }

  /**
   * A dial or write failed: reset the stream, drop `inFlight` (the failed write's messages, empty for a
   * dial) and everything queued, back off before reconnecting.
   */
  private fail (err: Error, inFlight: Queued[]): void {
    const t = this.transport
    const sink = this.sink
    this.sink = undefined
    if (sink?.open === true) sink.abort(err)
    const queued = this.queue
    this.queue = []
    this.queuedBytes = 0
    if (!this.stopped) {
      this.backoffUntil = t.clock.now() + this.backoffMs
      t.log('raft peer %s unreachable (%s): dropped %d messages, retrying in %d ms',
        this.peer, err.name === 'TimeoutError' ? new DeadlineExceededError('write or dial timed out').message : err.message,
        inFlight.length + queued.length, this.backoffMs)
      this.backoffMs = Math.min(this.backoffMs * 2, t.backoffMsMax)
    }
    if (mutations.inFlightReportedDropped) this.drop(undefined, [...inFlight, ...queued])
    else this.drop(undefined, queued, inFlight)
  }

  stop (): void {
    this.stopped = true
    const sink = this.sink
    this.sink = undefined
    if (sink?.open === true) sink.abort(new AbortedError('raft transport stopped'))
    this.queue = []
    this.queuedBytes = 0
  }
}

export class RaftTransport implements GroupTransport {
  readonly link: FrameLink
  readonly self: NodeId
  readonly clock: Clock
  readonly log: Logger
  readonly queueMessagesMax: number
  readonly queueBytesMax: number
  readonly dialTimeoutMs: number
  readonly writeTimeoutMs: number
  readonly backoffMsMin: number
  readonly backoffMsMax: number
  readonly snapshotChunkBytes: number
  readonly snapshotStallMs: number
  readonly stats: RaftTransportStats = {
    writes: 0, framesSent: 0, messagesSent: 0, messagesDropped: 0, framesReceived: 0, messagesReceived: 0,
    messagesRejected: 0, framesMalformed: 0, streamsOpened: 0, snapshotChunksSent: 0, snapshotsDropped: 0,
    snapshotChunksReceived: 0, snapshotChunksRefused: 0, snapshotsReassembled: 0, snapshotsStalled: 0
  }

  private readonly handlers = new Map<number, RaftTransportHandler>()
  private readonly senders = new Map<NodeId, PeerSender>()
  private readonly snapshotSenders = new Map<NodeId, SnapshotSender>()
  private readonly reassembler: SnapshotReassembler
  /** The sweep of stalled reassemblies, armed only while one is in progress. */
  private sweepTimer: unknown
  /** Numbers the chunked snapshot transfers this transport sends (chunk.id). */
  private snapshotIds = 0
  private started = false

  constructor (init: RaftTransportInit) {
    this.log = init.logger ?? silentLogger
    if (init.link !== undefined) {
      if (typeof init.self !== 'string' || init.self.length === 0) throw new Error('raft transport: a link needs `self`')
      this.link = init.link
      this.self = init.self
    } else {
      if (init.network === undefined) throw new Error('raft transport: give a network or a link')
      this.link = libp2pLink(init.network, this.log)
      this.self = init.network.self
    }
    this.clock = init.clock ?? systemClock
    this.queueMessagesMax = positive(init.queueMessagesMax, PEER_QUEUE_MESSAGES_MAX_DEFAULT)
    this.queueBytesMax = positive(init.queueBytesMax, PEER_QUEUE_BYTES_MAX_DEFAULT)
    this.dialTimeoutMs = positive(init.dialTimeoutMs, DIAL_TIMEOUT_MS_DEFAULT)
    this.writeTimeoutMs = positive(init.writeTimeoutMs, WRITE_TIMEOUT_MS_DEFAULT)
    this.backoffMsMin = positive(init.backoffMsMin, BACKOFF_MS_MIN_DEFAULT)
    this.backoffMsMax = Math.max(this.backoffMsMin, positive(init.backoffMsMax, BACKOFF_MS_MAX_DEFAULT))
    this.snapshotChunkBytes = Math.min(Math.floor(positive(init.snapshotChunkBytes, SNAPSHOT_CHUNK_BYTES_DEFAULT)), SNAPSHOT_CHUNK_BYTES_MAX)
    this.snapshotStallMs = positive(init.snapshotStallMs, SNAPSHOT_STALL_MS_DEFAULT)
    this.reassembler = new SnapshotReassembler({
      bytesMax: positive(init.snapshotReassemblyBytesMax, SNAPSHOT_REASSEMBLY_BYTES_MAX_DEFAULT),
      stallMs: this.snapshotStallMs,
      now: () => this.clock.now()
    })
  }

  /** Bytes reserved by snapshots in reassembly (their declared totals). */
  get snapshotBytesInReassembly (): number {
    return this.reassembler.bytesReserved
  }

  /** The sender of `peer`'s chunked snapshots (made on first use). */
  snapshotSenderOf (peer: NodeId): SnapshotSender {
    let s = this.snapshotSenders.get(peer)
    if (s === undefined) {
      s = new SnapshotSender(this, peer)
      this.snapshotSenders.set(peer, s)
    }
    return s
  }

  /** A new chunk.id for a chunked snapshot transfer. */
  nextSnapshotId (): number {
    this.snapshotIds = this.snapshotIds >= Number.MAX_SAFE_INTEGER ? 1 : this.snapshotIds + 1
    return this.snapshotIds
  }

  async start (): Promise<void> {
    if (this.started) return
    await this.link.listen({
      frame: (peer, bytes) => this.receiveFrame(peer, bytes),
      failed: (peer, err) => {
        this.stats.framesMalformed++
        this.log.error('raft stream from %s failed: %s', peer, err.message)
      }
    })
    this.started = true
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    for (const s of this.senders.values()) s.stop()
    this.senders.clear()
    for (const s of this.snapshotSenders.values()) s.stop()
    this.snapshotSenders.clear()
    if (this.sweepTimer !== undefined) this.clock.clearTimeout(this.sweepTimer)
    this.sweepTimer = undefined
    this.reassembler.clear()
    await this.link.close().catch(() => {})
  }

  register (group: number, handler: RaftTransportHandler): void {
    if (this.handlers.has(group)) throw new Error(`raft transport: group ${group} is registered twice`)
    this.handlers.set(group, handler)
  }

  unregister (group: number): void {
    this.handlers.delete(group)
  }

  handlerOf (group: number): RaftTransportHandler | undefined {
    return this.handlers.get(group)
  }

  /** Queues messages (each to its `to`); never blocks and never throws for a network condition. */
  send (group: number, messages: Message[]): void {
    for (const m of messages) {
      if (m.to === this.self || m.to === '') throw new Error(`raft transport: message ${m.type} addressed to ${m.to === '' ? 'nobody' : 'self'}`)
      if (!this.started) {
        this.stats.messagesDropped++
        continue
      }
      let s = this.senders.get(m.to)
      if (s === undefined) {
        s = new PeerSender(this, m.to)
        this.senders.set(m.to, s)
      }
      s.enqueue(group, m)
    }
  }

  /**
   * One frame from `peer` (proven by the link): decoded, validated and handed to its group. False when
   * it does not decode (the link resets the stream); messages with a forged `from` or a wrong `to`
   * are dropped and counted.
   */
  private receiveFrame (peer: NodeId, bytes: Uint8Array): boolean {
    if (!this.started) return true
    this.stats.framesReceived++
    let wire
    try {
      wire = decodeWireFrame(bytes)
    } catch (err) {
      this.stats.framesMalformed++
      this.log.error('raft frame from %s refused, resetting its stream: %s', peer, (err as Error).message)
      return false
    }
    if (wire.kind === 'chunk') {
      this.receiveChunk(peer, wire.chunk)
      return true
    }
    const frame = wire.frame
    const handler = this.handlers.get(frame.group)
    const accepted: Message[] = []
    for (const m of frame.messages) {
      if (handler === undefined || m.to !== this.self || (m.from !== peer && m.type !== MessageType.TransferLeader)) {
        this.stats.messagesRejected++
        this.log('raft message %s from %s refused: from %s, to %s, group %d', m.type, peer, m.from, m.to, frame.group)
        continue
      }
      accepted.push(m)
    }
    this.stats.messagesReceived += accepted.length
    if (accepted.length > 0) handler?.receive(peer, accepted)
    return true
  }

  /**
   * One chunk of a large snapshot from `peer`: refused for a group not registered here, or when its
   * Snap message (on the first chunk) is not from `peer` to this node; else reassembled, and the whole
   * Snap message handed to the group once its last chunk arrived and its checksum holds.
   */
  private receiveChunk (peer: NodeId, c: SnapshotChunk): void {
    this.stats.snapshotChunksReceived++
    const handler = this.handlers.get(c.group)
    if (handler === undefined || (c.head !== undefined && (c.head.to !== this.self || c.head.from !== peer))) {
      this.stats.snapshotChunksRefused++
      this.log('raft snapshot chunk from %s refused: group %d, from %s, to %s', peer, c.group, c.head?.from, c.head?.to)
      return
    }
    const out = this.reassembler.add(peer, c)
    this.armSweep()
    if (out.kind === 'refused') {
      this.stats.snapshotChunksRefused++
      this.log.error('raft snapshot chunk from %s for group %d refused: %s', peer, c.group, out.reason)
      return
    }
    if (out.kind === 'pending') return
    this.stats.snapshotsReassembled++
    this.stats.messagesReceived++
    handler.receive(peer, [out.message])
  }

  /** Keeps one timer to drop stalled reassemblies while any is in progress (none otherwise). */
  private armSweep (): void {
    if (this.sweepTimer !== undefined || this.reassembler.size === 0 || !this.started) return
    this.sweepTimer = this.clock.setTimeout(() => {
      this.sweepTimer = undefined
      const stalled = this.reassembler.sweep()
      if (stalled > 0) {
        this.stats.snapshotsStalled += stalled
        this.log.error('raft: dropped %d snapshot reassemblies that had no chunk for %d ms', stalled, this.snapshotStallMs)
      }
      this.armSweep()
    }, Math.max(1, Math.ceil(this.snapshotStallMs / 2)))
  }
}

/**
 * The FrameLink of a node: one libp2p stream per peer and direction on `/dfs/raft/1.0.0`, frames
 * varint-length-prefixed (at most FRAME_BYTES_MAX), the remote PeerId proven by Noise.
 */
export function libp2pLink (network: PeerNetwork, log: Logger): FrameLink {
  const inbound = new Set<Stream>()
  let listening = false

  const serve = async (stream: Stream, peer: PeerIdString, receiver: FrameReceiver): Promise<void> => {
    if (!listening) {
      stream.abort(new UnavailableError('raft transport stopped'))
      return
    }
    inbound.add(stream)
    const lp = new LengthPrefixed(stream, { maxDataLength: FRAME_BYTES_MAX, maxBufferSize: FRAME_BYTES_MAX + 64 * 1024 })
    try {
      for (;;) {
        let bytes: Uint8Array
        try {
          const frame = await lp.read()
          if (frame === null) {
            // the end of the stream: the peer closed it or went away
            if (stream.status === 'open') stream.abort(new AbortedError('the peer ended its raft stream'))
            return
          }
          bytes = frame.subarray()
        } catch (err) {
          // a frame over the size limit, or the stream failed
          const name = (err as Error).name
          if (name !== 'StreamResetError' && name !== 'StreamAbortedError' && name !== 'AbortError') {
            receiver.failed(peer, err as Error)
          }
          if (stream.status === 'open') stream.abort(err as Error)
          return
        }
        if (!receiver.frame(peer, bytes)) {
          stream.abort(new Error('malformed raft frame'))
          return
        }
      }
    } finally {
      inbound.delete(stream)
    }
  }

  return {
    open: async (peer, signal, kind = 'raft') => {
      const stream = await network.openStream(peer, kind === 'snapshot' ? RAFT_SNAPSHOT_PROTOCOL : RAFT_PROTOCOL, { signal })
      const lp = new LengthPrefixed(stream, { maxDataLength: FRAME_BYTES_MAX })
      return {
        write: async (frames, options) => { await lp.writeV(frames, options) },
        abort: (err) => { stream.abort(err) },
        get open () { return stream.status === 'open' },
        onClose: (fn) => { stream.addEventListener('close', fn, { once: true }) }
      }
    },
    listen: async (receiver) => {
      listening = true
      await network.handle(RAFT_PROTOCOL, (stream, peer) => { void serve(stream, peer, receiver) },
        { maxInboundStreams: INBOUND_STREAMS_MAX })
      // Chunk frames of large snapshots; every frame stays within FRAME_BYTES_MAX here too.
      await network.handle(RAFT_SNAPSHOT_PROTOCOL, (stream, peer) => { void serve(stream, peer, receiver) },
        { maxInboundStreams: INBOUND_SNAPSHOT_STREAMS_MAX })
    },
    close: async () => {
      listening = false
      await network.unhandle(RAFT_PROTOCOL).catch((err: Error) => { log('raft: unhandle failed: %s', err.message) })
      await network.unhandle(RAFT_SNAPSHOT_PROTOCOL).catch((err: Error) => { log('raft: unhandle failed: %s', err.message) })
      for (const s of inbound) if (s.status === 'open') s.abort(new AbortedError('raft transport stopped'))
      inbound.clear()
    }
  }
}
