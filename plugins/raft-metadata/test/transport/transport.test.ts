import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { lpStream } from '@libp2p/utils'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Stream } from '@libp2p/interface'
import type { PeerNetwork } from '@dfs/api'
import { EntryType, MessageType } from '../../src/raft/index.js'
import type { Message } from '../../src/raft/index.js'
import { RAFT_PROTOCOL, RaftTransport, decodeFrame, encodeFrame, encodeMessage } from '../../src/transport/index.js'
import type { DecodedFrame, RaftTransportHandler } from '../../src/transport/index.js'
import { plain, startHost, stopQuietly, waitFor } from './libp2p-network.js'
import type { TestHost } from './libp2p-network.js'

interface Recorder extends RaftTransportHandler {
  received: Array<{ from: string, m: Message }>
  unreachable: string[]
  snapshots: Array<{ peer: string, ok: boolean }>
  /** The Props of every reportDroppedProposals, in report order. */
  droppedProposals: Array<{ peer: string, m: Message }>
}

function recorder (): Recorder {
  const r: Recorder = {
    received: [],
    unreachable: [],
    snapshots: [],
    droppedProposals: [],
    receive: (from, ms) => { for (const m of ms) r.received.push({ from, m }) },
    reportUnreachable: (peer) => { r.unreachable.push(peer) },
    reportSnapshot: (peer, ok) => { r.snapshots.push({ peer, ok }) },
    reportDroppedProposals: (peer, ms) => { for (const m of ms) r.droppedProposals.push({ peer, m }) }
  }
  return r
}

function msg (type: MessageType, from: string, to: string, extra: Partial<Message> = {}): Message {
  return { type, from, to, term: 3, index: 0, logTerm: 0, entries: [], commit: 0, reject: false, rejectHint: 0, ...extra }
}

interface Ctx { hosts: TestHost[], transports: RaftTransport[] }
const test = suite<Ctx>('raft transport over libp2p', { hosts: [], transports: [] })

test.before.each((ctx) => { ctx.hosts = []; ctx.transports = [] })
test.after.each(async (ctx) => {
  for (const t of ctx.transports) await t.stop().catch(() => {})
  for (const h of ctx.hosts) await stopQuietly(h.node)
})

async function pair (ctx: Ctx): Promise<{ a: TestHost, b: TestHost, ta: RaftTransport, tb: RaftTransport, ra: Recorder, rb: Recorder }> {
  const a = await startHost()
  const b = await startHost()
  ctx.hosts.push(a, b)
  await a.network.addAddresses(b.id, b.addrs)
  await b.network.addAddresses(a.id, a.addrs)
  const ta = new RaftTransport({ network: a.network, backoffMsMin: 20, backoffMsMax: 100, dialTimeoutMs: 1000 })
  const tb = new RaftTransport({ network: b.network, backoffMsMin: 20, backoffMsMax: 100, dialTimeoutMs: 1000 })
  ctx.transports.push(ta, tb)
  await ta.start()
  await tb.start()
  const ra = recorder()
  const rb = recorder()
  ta.register(0, ra)
  tb.register(0, rb)
  return { a, b, ta, tb, ra, rb }
}

test('messages arrive in order, batched on one stream, with the proven sender', plain(async (ctx) => {
  const { a, b, ta, rb } = await pair(ctx)
  const sent: Message[] = []
  for (let i = 0; i < 500; i++) sent.push(msg(MessageType.Heartbeat, a.id, b.id, { commit: i }))
  for (const m of sent) ta.send(0, [m])
  await waitFor(() => rb.received.length === 500, 5000, '500 messages')
  assert.equal(rb.received.map((r) => r.m.commit), sent.map((m) => m.commit))
  assert.ok(rb.received.every((r) => r.from === a.id))
  assert.is(ta.stats.streamsOpened, 1)
  assert.ok(ta.stats.framesSent < 500, `frames ${ta.stats.framesSent} should batch 500 messages`)
}))

test('everything queued for a peer in one turn leaves in one write, one frame per group', plain(async (ctx) => {
  const { a, b, ta, tb, rb } = await pair(ctx)
  const rb7 = recorder()
  tb.register(7, rb7)
  // open the stream first, so the measured sends do not wait for a dial
  ta.send(0, [msg(MessageType.Heartbeat, a.id, b.id)])
  await waitFor(() => rb.received.length === 1, 5000, 'the first message')
  const before = { ...ta.stats }
  // one turn: several Ready batches of two groups, interleaved
  for (let i = 0; i < 10; i++) {
    ta.send(0, [msg(MessageType.App, a.id, b.id, { index: i }), msg(MessageType.Heartbeat, a.id, b.id, { commit: i })])
    ta.send(7, [msg(MessageType.App, a.id, b.id, { index: 100 + i })])
  }
  await waitFor(() => rb.received.length === 21 && rb7.received.length === 10, 5000, 'the 30 messages')
  assert.is(ta.stats.writes - before.writes, 1, 'one stream write for the whole turn')
  assert.is(ta.stats.framesSent - before.framesSent, 2, 'one frame per group')
  assert.is(ta.stats.messagesSent - before.messagesSent, 30)
  assert.is(tb.stats.framesReceived, 3)
  // each group's messages in the order they were queued
  assert.equal(rb.received.slice(1).map((r) => r.m.type === MessageType.App ? `a${r.m.index}` : `h${r.m.commit}`),
    Array.from({ length: 10 }, (_, i) => [`a${i}`, `h${i}`]).flat())
  assert.equal(rb7.received.map((r) => r.m.index), Array.from({ length: 10 }, (_, i) => 100 + i))
}))

test('a snapshot is delivered and reported; a message to an unreachable peer is reported', plain(async (ctx) => {
  const { a, b, ta, ra, rb } = await pair(ctx)
  const snap = msg(MessageType.Snap, a.id, b.id, {
    snapshot: { metadata: { index: 10, term: 2, confState: { voters: [a.id, b.id], learners: [] } }, data: new Uint8Array(3 * 1024 * 1024).fill(7) }
  })
  ta.send(0, [snap])
  await waitFor(() => rb.received.length === 1, 5000, 'the snapshot')
  assert.equal(rb.received[0].m.snapshot, snap.snapshot)
  await waitFor(() => ra.snapshots.length === 1, 2000, 'the snapshot report')
  assert.equal(ra.snapshots, [{ peer: b.id, ok: true }])

  await ctx.hosts[1].node.stop()
  ta.send(0, [msg(MessageType.Snap, a.id, b.id, { snapshot: snap.snapshot })])
  ta.send(0, [msg(MessageType.App, a.id, b.id)])
  await waitFor(() => ra.unreachable.includes(b.id) && ra.snapshots.length === 2, 5000, 'unreachable reports')
  assert.equal(ra.snapshots[1], { peer: b.id, ok: false })
}))

test('a message whose from is not the proven peer is dropped; the stream goes on', plain(async (ctx) => {
  const { a, b, tb, rb } = await pair(ctx)
  // A raw stream from A that claims to carry messages of a third node.
  const stream = await a.node.dialProtocol(peerIdFromString(b.id), RAFT_PROTOCOL)
  const lp = lpStream(stream)
  const forged = msg(MessageType.App, '12D3KooWSomeoneElse', b.id)
  const wrongTo = msg(MessageType.App, a.id, 'not-b')
  const genuine = msg(MessageType.Heartbeat, a.id, b.id, { commit: 42 })
  await lp.write(encodeFrame(0, [encodeMessage(forged), encodeMessage(wrongTo), encodeMessage(genuine)]))
  await waitFor(() => rb.received.length === 1, 3000, 'the genuine message')
  assert.is(rb.received[0].m.commit, 42)
  assert.is(rb.received[0].from, a.id)
  assert.is(tb.stats.messagesRejected, 2)
  // A malformed frame resets the stream; the sender's transport opens a new one and is heard.
  await lp.write(Uint8Array.of(0xff, 0xfe, 0xfd))
  await waitFor(() => tb.stats.framesMalformed === 1, 3000, 'the malformed frame')
  await waitFor(() => stream.status !== 'open', 3000, 'the reset of the stream')
}))

test('a sender reconnects after the peer restarts', plain(async (ctx) => {
  const { a, b, ta, rb } = await pair(ctx)
  ta.send(0, [msg(MessageType.Heartbeat, a.id, b.id, { commit: 1 })])
  await waitFor(() => rb.received.length === 1, 3000, 'the first message')
  await ctx.transports[1].stop()
  await b.node.stop()
  const b2 = await startHost(b.privateKey, b.port)
  ctx.hosts.push(b2)
  const tb2 = new RaftTransport({ network: b2.network })
  ctx.transports.push(tb2)
  await tb2.start()
  const rb2 = recorder()
  tb2.register(0, rb2)
  // Keep sending (as heartbeats would) until one arrives on the new host.
  await waitFor(() => {
    ta.send(0, [msg(MessageType.Heartbeat, a.id, b.id, { commit: 2 })])
    return rb2.received.length > 0
  }, 5000, 'a message after the restart')
  assert.ok(ta.stats.streamsOpened >= 2)
}))

test.run()

/**
 * A stream that accepts every write and never drains: lpStream's write hands its bytes over (`send`
 * returns false, as a muxer does when its buffer is full) and then waits for a 'drain' that never
 * comes, so the transport's write times out after the bytes left it. `handed` is what was handed over.
 */
class StalledStream extends EventTarget {
  status: 'open' | 'aborted' = 'open'
  readonly handed: Uint8Array[] = []
  readonly log = Object.assign(() => {}, { error: () => {}, trace: () => {} })

  send (data: { subarray: () => Uint8Array }): boolean {
    if (this.status !== 'open') throw new Error('stalled stream: send after abort')
    this.handed.push(data.subarray())
    return false
  }

  push (): void {}

  abort (err: Error): void {
    if (this.status !== 'open') return
    this.status = 'aborted'
    this.dispatchEvent(Object.assign(new Event('close'), { error: err }))
  }
}

/** A PeerNetwork whose every stream is a StalledStream, or whose dials fail when `dial` says so. */
function stalledNetwork (self: string): PeerNetwork & { streams: StalledStream[], dial: 'stall' | 'fail' } {
  const net = {
    self,
    streams: [] as StalledStream[],
    dial: 'stall' as 'stall' | 'fail',
    handle: async () => {},
    unhandle: async () => {},
    addAddresses: async () => {},
    openStream: async (): Promise<Stream> => {
      if (net.dial === 'fail') throw Object.assign(new Error('connection refused'), { name: 'DialError' })
      const s = new StalledStream()
      net.streams.push(s)
      return s as unknown as Stream
    }
  }
  return net
}

/** The frames in bytes handed to a stream (each varint-length-prefixed). */
function framesOf (bytes: Uint8Array): DecodedFrame[] {
  const frames: DecodedFrame[] = []
  let at = 0
  while (at < bytes.byteLength) {
    let length = 0
    let shift = 0
    let b: number
    do {
      b = bytes[at++]
      length += (b & 0x7f) * 2 ** shift
      shift += 7
    } while ((b & 0x80) !== 0)
    frames.push(decodeFrame(bytes.subarray(at, at + length)))
    at += length
  }
  return frames
}

function prop (from: string, to: string, tag: number): Message {
  return msg(MessageType.Prop, from, to, { entries: [{ term: 0, index: 0, type: EntryType.Normal, data: Uint8Array.of(tag) }] })
}

const tagOf = (m: Message): number => m.entries[0].data[0]

interface FailCtx { transports: RaftTransport[] }
const failures = suite<FailCtx>('raft transport: failed sends', { transports: [] })

failures.before.each((ctx) => { ctx.transports = [] })
failures.after.each(async (ctx) => {
  for (const t of ctx.transports) await t.stop().catch(() => {})
})

failures('a Prop whose write failed is not reported as dropped; one queued behind it is', plain(async (ctx) => {
  const net = stalledNetwork('node-a')
  const t = new RaftTransport({ network: net, writeTimeoutMs: 50, backoffMsMin: 20, backoffMsMax: 100 })
  ctx.transports.push(t)
  await t.start()
  const r = recorder()
  t.register(0, r)

  t.send(0, [prop('node-a', 'node-b', 1)])
  await waitFor(() => net.streams[0]?.handed.length === 1, 2000, 'the write of Prop 1')
  // Prop 1 left this node: the peer may append it, whatever becomes of the write.
  const handed = framesOf(net.streams[0].handed[0])
  assert.equal(handed.map((f) => f.messages.map(tagOf)), [[1]])
  // Sent while that write is in flight, Prop 2 waits in the queue and never reaches the stream.
  t.send(0, [prop('node-a', 'node-b', 2)])
  await waitFor(() => r.unreachable.length > 0, 2000, 'the write timeout')

  assert.is(net.streams[0].status, 'aborted')
  assert.is(net.streams[0].handed.length, 1, 'nothing was written after Prop 1')
  assert.is(t.stats.messagesDropped, 2)
  assert.equal(r.unreachable, ['node-b'])
  assert.equal(r.droppedProposals.map((d) => [d.peer, tagOf(d.m)]), [['node-b', 2]],
    'only the Prop that never left may be proposed again')
}))

failures('a Prop that never left (dial failed, or sent in back-off) is reported as dropped', plain(async (ctx) => {
  const net = stalledNetwork('node-a')
  net.dial = 'fail'
  const t = new RaftTransport({ network: net, backoffMsMin: 10_000, backoffMsMax: 10_000 })
  ctx.transports.push(t)
  await t.start()
  const r = recorder()
  t.register(0, r)

  t.send(0, [prop('node-a', 'node-b', 1)])
  await waitFor(() => r.droppedProposals.length === 1, 2000, 'the failed dial')
  t.send(0, [prop('node-a', 'node-b', 2)])
  assert.equal(r.droppedProposals.map((d) => [d.peer, tagOf(d.m)]), [['node-b', 1], ['node-b', 2]])
  assert.is(t.stats.messagesDropped, 2)
}))

failures.run()
