import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createHash } from 'node:crypto'
import { encode } from 'cborg'
import { lpStream } from '@libp2p/utils'
import { peerIdFromString } from '@libp2p/peer-id'
import { MessageType } from '../../src/raft/index.js'
import type { Message } from '../../src/raft/index.js'
import {
  FRAME_BYTES_MAX, RAFT_PROTOCOL, RAFT_SNAPSHOT_PROTOCOL, RaftTransport, SNAPSHOT_BYTES_MAX, SNAPSHOT_DATA_BYTES_MAX,
  decodeFrame, snapshotChunkFrames
} from '../../src/transport/index.js'
import type { RaftTransportHandler } from '../../src/transport/index.js'
import { plain, startHost, stopQuietly, waitFor } from './libp2p-network.js'
import type { TestHost } from './libp2p-network.js'

interface Recorder extends RaftTransportHandler {
  received: Array<{ from: string, m: Message }>
  snapshots: Array<{ peer: string, ok: boolean }>
}

function recorder (): Recorder {
  const r: Recorder = {
    received: [],
    snapshots: [],
    receive: (from, ms) => { for (const m of ms) r.received.push({ from, m }) },
    reportUnreachable: () => {},
    reportSnapshot: (peer, ok) => { r.snapshots.push({ peer, ok }) }
  }
  return r
}

function msg (type: MessageType, from: string, to: string, extra: Partial<Message> = {}): Message {
  return { type, from, to, term: 3, index: 0, logTerm: 0, entries: [], commit: 0, reject: false, rejectHint: 0, ...extra }
}

/** Bytes that differ everywhere (a misplaced or lost chunk changes the digest). */
function pattern (n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n)
  const view = new DataView(out.buffer)
  let x = seed >>> 0
  let i = 0
  for (; i + 4 <= n; i += 4) { x = (Math.imul(x, 1664525) + 1013904223) >>> 0; view.setUint32(i, x) }
  for (; i < n; i++) out[i] = i & 0xff
  return out
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

function snapOf (from: string, to: string, data: Uint8Array, index = 10): Message {
  return msg(MessageType.Snap, from, to, { snapshot: { metadata: { index, term: 2, confState: { voters: [from, to], learners: [] } }, data } })
}

interface Ctx { hosts: TestHost[], transports: RaftTransport[] }
const test = suite<Ctx>('raft transport: snapshots over one frame, in chunks over libp2p', { hosts: [], transports: [] })

test.before.each((ctx) => { ctx.hosts = []; ctx.transports = [] })
test.after.each(async (ctx) => {
  for (const t of ctx.transports) await t.stop().catch(() => {})
  for (const h of ctx.hosts) await stopQuietly(h.node)
})

async function host (ctx: Ctx): Promise<TestHost> {
  const h = await startHost()
  for (const o of ctx.hosts) {
    await h.network.addAddresses(o.id, o.addrs)
    await o.network.addAddresses(h.id, h.addrs)
  }
  ctx.hosts.push(h)
  return h
}

async function transport (ctx: Ctx, h: TestHost): Promise<{ t: RaftTransport, r: Recorder }> {
  const t = new RaftTransport({ network: h.network, backoffMsMin: 20, backoffMsMax: 100, dialTimeoutMs: 1000 })
  ctx.transports.push(t)
  await t.start()
  const r = recorder()
  t.register(0, r)
  return { t, r }
}

test('a 40 MiB snapshot arrives whole, in chunks, while heartbeats keep flowing; it is reported sent', plain(async (ctx) => {
  const a = await host(ctx)
  const b = await host(ctx)
  const { t: ta, r: ra } = await transport(ctx, a)
  const { t: tb, r: rb } = await transport(ctx, b)
  const data = pattern(40 * 1024 * 1024, 7)
  assert.ok(data.byteLength > SNAPSHOT_DATA_BYTES_MAX, 'the snapshot is over the one-frame limit')
  const snap = snapOf(a.id, b.id, data)
  ta.send(0, [snap])
  let beats = 0
  await waitFor(() => {
    if (beats < 1000) ta.send(0, [msg(MessageType.Heartbeat, a.id, b.id, { commit: beats++ })])
    return rb.received.some((r) => r.m.type === MessageType.Snap)
  }, 15_000, 'the snapshot')
  const got = rb.received.filter((r) => r.m.type === MessageType.Snap)
  assert.is(got.length, 1)
  assert.is(got[0].from, a.id)
  const s = got[0].m.snapshot
  assert.ok(s !== undefined)
  assert.equal(s.metadata, snap.snapshot?.metadata)
  assert.is(s.data.byteLength, data.byteLength)
  assert.is(sha(s.data), sha(data))
  assert.equal({ ...got[0].m, snapshot: undefined }, { ...snap, snapshot: undefined })
  await waitFor(() => ra.snapshots.length === 1, 3000, 'the snapshot report')
  assert.equal(ra.snapshots, [{ peer: b.id, ok: true }])
  assert.is(ta.stats.snapshotChunksSent, 10)
  assert.is(tb.stats.snapshotsReassembled, 1)
  assert.is(tb.stats.snapshotChunksRefused, 0)
  assert.is(tb.snapshotBytesInReassembly, 0)
  // the heartbeats were not held up behind the snapshot's chunks (they have a stream of their own)
  assert.ok(rb.received.some((r) => r.m.type === MessageType.Heartbeat))
  // a small snapshot still goes in one frame of the Raft stream, as with every earlier version
  ta.send(0, [snapOf(a.id, b.id, pattern(1024, 8), 11)])
  await waitFor(() => rb.received.filter((r) => r.m.type === MessageType.Snap).length === 2, 3000, 'the small snapshot')
  assert.is(ta.stats.snapshotChunksSent, 10)
}))

test('a snapshot over SNAPSHOT_BYTES_MAX is refused and reported failed', plain(async (ctx) => {
  const a = await host(ctx)
  const b = await host(ctx)
  const { t: ta, r: ra } = await transport(ctx, a)
  await transport(ctx, b)
  // Only its length is looked at before it is refused: no need to allocate a GiB.
  const huge = { byteLength: SNAPSHOT_BYTES_MAX + 1 } as unknown as Uint8Array
  ta.send(0, [snapOf(a.id, b.id, huge)])
  assert.equal(ra.snapshots, [{ peer: b.id, ok: false }])
  assert.is(ta.stats.snapshotChunksSent, 0)
}))

test('a peer of an older version (no snapshot protocol) gets no chunk: the snapshot is reported failed, its Raft stream goes on', plain(async (ctx) => {
  const a = await host(ctx)
  const old = await host(ctx)
  const { t: ta, r: ra } = await transport(ctx, a)
  // The old node: the Raft protocol only, decoding frames as a 1.0.0 node does (decodeFrame, which
  // resets the stream on anything else).
  const oldReceived: Message[] = []
  let oldStreamFailed = false
  await old.node.handle(RAFT_PROTOCOL, (stream) => {
    const lp = lpStream(stream, { maxDataLength: FRAME_BYTES_MAX })
    void (async () => {
      try {
        for (;;) oldReceived.push(...decodeFrame((await lp.read()).subarray()).messages)
      } catch (err) {
        if ((err as Error).name === 'MalformedFrame') oldStreamFailed = true
      }
    })()
  })
  ta.send(0, [snapOf(a.id, old.id, pattern(SNAPSHOT_DATA_BYTES_MAX + 1, 3))])
  await waitFor(() => ra.snapshots.length === 1, 5000, 'the snapshot report')
  assert.equal(ra.snapshots, [{ peer: old.id, ok: false }])
  // The snapshot stream backs off; the Raft stream is unaffected.
  ta.send(0, [msg(MessageType.Heartbeat, a.id, old.id, { commit: 5 })])
  await waitFor(() => oldReceived.length === 1, 3000, 'a heartbeat on the old node')
  assert.is(oldReceived[0].commit, 5)
  assert.not.ok(oldStreamFailed)
  assert.is(ta.stats.snapshotChunksSent, 0)
}))

test('chunks from a hostile peer: out of order, lying or forged ones deliver nothing; a good transfer still does', plain(async (ctx) => {
  const evil = await host(ctx)
  const b = await host(ctx)
  const { t: tb, r: rb } = await transport(ctx, b)
  const data = pattern(5000, 11)
  const frames = [...snapshotChunkFrames(0, 1, snapOf(evil.id, b.id, data), 1000)]
  const open = async (): Promise<{ lp: ReturnType<typeof lpStream>, stream: Awaited<ReturnType<typeof evil.node.dialProtocol>> }> => {
    const stream = await evil.node.dialProtocol(peerIdFromString(b.id), RAFT_SNAPSHOT_PROTOCOL)
    return { lp: lpStream(stream, { maxDataLength: FRAME_BYTES_MAX }), stream }
  }
  let { lp, stream } = await open()
  // out of order: the transfer ends, nothing is delivered, the stream stays open
  for (const f of [frames[0], frames[2], frames[1], frames[3], frames[4]]) await lp.write(f)
  // a snapshot that claims to come from another node
  const forged = [...snapshotChunkFrames(0, 2, snapOf('12D3KooWSomeoneElse', b.id, data), 1000)]
  for (const f of forged) await lp.write(f)
  // a chunk for a group that is not registered here
  for (const f of snapshotChunkFrames(9, 3, snapOf(evil.id, b.id, data), 1000)) await lp.write(f)
  await waitFor(() => tb.stats.snapshotChunksReceived === 15, 3000, 'the chunks')
  assert.is(rb.received.length, 0)
  assert.is(tb.stats.snapshotsReassembled, 0)
  assert.ok(tb.stats.snapshotChunksRefused >= 4 + 5 + 5, `refused ${tb.stats.snapshotChunksRefused}`)
  assert.is(tb.snapshotBytesInReassembly, 0)
  assert.is(stream.status, 'open')
  // a chunk that lies about its length: the frame is malformed and the stream reset
  for (const f of frames.slice(0, 2)) await lp.write(f)
  await lp.write(encode([0, 1, 2000, 2500, new Uint8Array(1000), null, new Uint8Array(32)])) // 1000 bytes at 2000 of 2500
  await waitFor(() => tb.stats.framesMalformed === 1, 3000, 'the malformed frame')
  await waitFor(() => stream.status !== 'open', 3000, 'the reset')
  // the whole, in order, on a new stream: delivered (the unfinished transfer was replaced)
  ;({ lp, stream } = await open())
  for (const f of frames) await lp.write(f)
  await waitFor(() => rb.received.length === 1, 3000, 'the snapshot')
  assert.is(sha(rb.received[0].m.snapshot?.data ?? new Uint8Array(0)), sha(data))
  assert.is(tb.snapshotBytesInReassembly, 0)
}))

test.run()
