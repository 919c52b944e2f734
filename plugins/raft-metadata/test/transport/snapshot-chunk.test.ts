import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createHash } from 'node:crypto'
import { encode } from 'cborg'
import { MessageType } from '../../src/raft/index.js'
import type { Message } from '../../src/raft/index.js'
import {
  SNAPSHOT_BYTES_MAX, SNAPSHOT_CHUNK_BYTES_MAX, SnapshotReassembler, decodeFrame, decodeSnapshotChunk, decodeWireFrame,
  encodeFrame, encodeMessage, encodeSnapshotChunk, snapshotChunkFrames
} from '../../src/transport/index.js'
import type { SnapshotChunk } from '../../src/transport/index.js'

const A = '12D3KooWNodeA'
const B = '12D3KooWNodeB'

function snapMessage (data: Uint8Array, index = 500): Message {
  return {
    type: MessageType.Snap,
    to: B,
    from: A,
    term: 7,
    index: 0,
    logTerm: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    snapshot: { metadata: { index, term: 6, confState: { voters: [A, B, 'c'], learners: ['d'] } }, data }
  }
}

function pattern (n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n)
  let x = seed
  for (let i = 0; i < n; i++) { x = (x * 1103515245 + 12345) >>> 0; out[i] = x >>> 24 }
  return out
}

function chunksOf (m: Message, chunkBytes: number, group = 3, id = 9): SnapshotChunk[] {
  return [...snapshotChunkFrames(group, id, m, chunkBytes)].map((f) => decodeSnapshotChunk(f))
}

function reassembler (over: { bytesMax?: number, stallMs?: number, reassembliesMax?: number } = {}): { r: SnapshotReassembler, clock: { ms: number } } {
  const clock = { ms: 1000 }
  const r = new SnapshotReassembler({ bytesMax: over.bytesMax ?? 1 << 30, stallMs: over.stallMs ?? 5000, reassembliesMax: over.reassembliesMax, now: () => clock.ms })
  return { r, clock }
}

/** Feeds chunks; returns the outcomes' kinds and the delivered message, if any. */
function feed (r: SnapshotReassembler, peer: string, chunks: SnapshotChunk[]): { kinds: string[], message?: Message } {
  const kinds: string[] = []
  let message: Message | undefined
  for (const c of chunks) {
    const out = r.add(peer, c)
    kinds.push(out.kind)
    if (out.kind === 'complete') message = out.message
  }
  return { kinds, message }
}

/** A raw chunk frame with any field values (a hostile peer's). */
function rawChunk (fields: unknown[]): Uint8Array {
  return encode(fields)
}

function malformed (frame: Uint8Array, field?: string): void {
  try {
    decodeWireFrame(frame)
  } catch (err) {
    assert.is((err as Error).name, 'MalformedFrame', (err as Error).message)
    if (field !== undefined) assert.is((err as Error & { details: { field: string } }).details.field, field)
    return
  }
  assert.unreachable(`decoded a bad frame${field === undefined ? '' : ` (${field})`}`)
}

test('a snapshot cut into chunks decodes and reassembles into the message that was sent', () => {
  const m = snapMessage(pattern(10_500))
  const frames = [...snapshotChunkFrames(3, 9, m, 1000)]
  assert.is(frames.length, 11)
  const chunks = frames.map((f) => {
    const w = decodeWireFrame(f)
    assert.is(w.kind, 'chunk')
    return (w as { kind: 'chunk', chunk: SnapshotChunk }).chunk
  })
  assert.ok(chunks[0].head !== undefined && chunks.slice(1).every((c) => c.head === undefined))
  assert.ok(chunks[10].sha256 !== undefined && chunks.slice(0, 10).every((c) => c.sha256 === undefined))
  assert.equal(chunks.map((c) => c.offset), Array.from({ length: 11 }, (_, i) => i * 1000))
  const { r } = reassembler()
  const { kinds, message } = feed(r, A, chunks)
  assert.equal(kinds, [...Array(10).fill('pending'), 'complete'])
  assert.equal(message, m)
  assert.is(r.size, 0)
  assert.is(r.bytesReserved, 0)
})

test('a snapshot of one chunk carries the head and the checksum in it', () => {
  const m = snapMessage(pattern(700))
  const chunks = chunksOf(m, 1000)
  assert.is(chunks.length, 1)
  assert.ok(chunks[0].head !== undefined && chunks[0].sha256 !== undefined)
  const { r } = reassembler()
  assert.equal(feed(r, A, chunks).message, m)
})

test('a frame of messages still decodes as one', () => {
  const frame = encodeFrame(2, [encodeMessage({ ...snapMessage(new Uint8Array(0)), type: MessageType.Heartbeat, snapshot: undefined })])
  const w = decodeWireFrame(frame)
  assert.is(w.kind, 'messages')
  assert.equal(w.kind === 'messages' ? w.frame : undefined, decodeFrame(frame))
})

test('the codec refuses chunks that lie about their lengths, offsets, head or checksum', () => {
  const head = encodeMessage({ ...snapMessage(new Uint8Array(0)) })
  const sha = new Uint8Array(32)
  const data = new Uint8Array(10)
  // well-formed baselines
  decodeSnapshotChunk(rawChunk([0, 1, 0, 20, data, head, null]))
  decodeSnapshotChunk(rawChunk([0, 1, 10, 20, data, null, sha]))
  malformed(rawChunk([0, 1, 0, 0, new Uint8Array(0), head, sha]), 'chunk.total')
  malformed(rawChunk([0, 1, 0, SNAPSHOT_BYTES_MAX + 1, data, head, null]), 'chunk.total')
  malformed(rawChunk([0, 1, 0, 20, new Uint8Array(0), head, null]), 'chunk.data')
  malformed(rawChunk([0, 1, 15, 20, data, null, sha]), 'chunk.offset') // more bytes than declared
  malformed(rawChunk([0, 1, 20, 20, data, null, sha]), 'chunk.offset')
  malformed(rawChunk([0, 1, -1, 20, data, null, sha]), 'chunk.offset')
  malformed(rawChunk([0, 1, 0, 5, data, head, sha]), 'chunk.offset')
  malformed(rawChunk([0, 1, 0, 20, data, null, null]), 'chunk.head') // first chunk without its head
  malformed(rawChunk([0, 1, 10, 20, data, head, sha]), 'chunk.head') // a head past the start
  malformed(rawChunk([0, 1, 10, 20, data, null, null]), 'chunk.sha256') // last chunk without checksum
  malformed(rawChunk([0, 1, 0, 20, data, head, sha]), 'chunk.sha256') // checksum before the end
  malformed(rawChunk([0, 1, 10, 20, data, null, new Uint8Array(31)]), 'chunk.sha256')
  malformed(rawChunk([0, 1, 10, 20, data, null, new Uint8Array(33)]), 'chunk.sha256')
  malformed(rawChunk([0, 1, 10, 20, 'x'.repeat(10), null, sha]), 'chunk.data')
  malformed(rawChunk([2 ** 32, 1, 0, 20, data, head, null]), 'chunk.group')
  malformed(rawChunk([0, 1.5, 0, 20, data, head, null]), 'chunk.id')
  malformed(rawChunk([0, 1, 0, SNAPSHOT_CHUNK_BYTES_MAX + 2, new Uint8Array(SNAPSHOT_CHUNK_BYTES_MAX + 1), head, null]), 'chunk.data')
  // heads that are not an empty Snap message
  const heartbeat = encodeMessage({ ...snapMessage(new Uint8Array(0)), type: MessageType.Heartbeat, snapshot: undefined })
  malformed(rawChunk([0, 1, 0, 20, data, heartbeat, null]), 'chunk.head')
  malformed(rawChunk([0, 1, 0, 20, data, encodeMessage(snapMessage(Uint8Array.of(1))), null]), 'chunk.head')
  malformed(rawChunk([0, 1, 0, 20, data, Uint8Array.of(0xff, 0x00), null]), 'chunk.head')
  malformed(rawChunk([0, 1, 0, 20, data, 'not bytes', null]), 'chunk.head')
  // neither a chunk nor a frame of messages
  malformed(rawChunk([0, 1, 0, 20, data, head]))
  malformed(rawChunk([0, 1, 0, 20, data, head, null, null]))
})

test('a chunk with no transfer in progress is refused and delivers nothing', () => {
  const chunks = chunksOf(snapMessage(pattern(5000)), 1000)
  const { r } = reassembler()
  const { kinds, message } = feed(r, A, chunks.slice(1))
  assert.equal(kinds, Array(4).fill('refused'))
  assert.is(message, undefined)
  assert.is(r.size, 0)
})

test('a gap, a repeat, another id or another total ends the transfer; nothing is delivered', () => {
  const m = snapMessage(pattern(5000))
  const chunks = chunksOf(m, 1000)
  const cases: Array<[string, SnapshotChunk[]]> = [
    ['gap', [chunks[0], chunks[2], chunks[3], chunks[4]]],
    ['repeat', [chunks[0], chunks[1], chunks[1], chunks[2], chunks[3], chunks[4]]],
    ['reordered', [chunks[0], chunks[2], chunks[1], chunks[3], chunks[4]]],
    ['other total', [chunks[0], { ...chunks[1], total: 6000 }, chunks[2], chunks[3], chunks[4]]]
  ]
  for (const [name, seq] of cases) {
    const { r } = reassembler()
    const { kinds, message } = feed(r, A, seq)
    assert.is(message, undefined, name)
    assert.is(kinds[0], 'pending', name)
    assert.ok(kinds.slice(1).includes('refused'), name)
    assert.is(r.size, 0, name)
    assert.is(r.bytesReserved, 0, name)
  }
})

test('a checksum that does not match the bytes delivers nothing', () => {
  const chunks = chunksOf(snapMessage(pattern(3000)), 1000)
  const { r } = reassembler()
  const flipped = new Uint8Array(chunks[1].data)
  flipped[5] ^= 1
  const { kinds, message } = feed(r, A, [chunks[0], { ...chunks[1], data: flipped }, chunks[2]])
  assert.equal(kinds, ['pending', 'pending', 'refused'])
  assert.is(message, undefined)
  assert.is(r.bytesReserved, 0)
  // the right bytes with a wrong declared checksum
  const badSum = createHash('sha256').update('something else').digest()
  assert.is(feed(r, A, [chunks[0], chunks[1], { ...chunks[2], sha256: new Uint8Array(badSum) }]).message, undefined)
})

test('a new snapshot from the same sender and group replaces an unfinished one', () => {
  const old = snapMessage(pattern(5000, 1), 100)
  const newer = snapMessage(pattern(4000, 2), 200)
  const oldChunks = chunksOf(old, 1000, 3, 1)
  const newChunks = chunksOf(newer, 1000, 3, 2)
  const { r } = reassembler()
  feed(r, A, oldChunks.slice(0, 3))
  assert.is(r.bytesReserved, 5000)
  // A straggler of the old transfer is refused alone; the newer one goes on and is delivered.
  const { kinds, message } = feed(r, A, [newChunks[0], oldChunks[3], ...newChunks.slice(1)])
  assert.equal(kinds, ['pending', 'refused', 'pending', 'pending', 'complete'])
  assert.equal(message, newer)
  assert.is(r.size, 0)
  assert.is(r.bytesReserved, 0)
})

test('transfers of different senders or groups are kept apart', () => {
  const ma = snapMessage(pattern(3000, 1))
  const mb = { ...snapMessage(pattern(2000, 2)), from: 'c' }
  const ca = chunksOf(ma, 1000, 0, 1)
  const cb = chunksOf(mb, 1000, 0, 1)
  const cg = chunksOf(ma, 1000, 1, 1)
  const { r } = reassembler()
  const outs = [
    r.add(A, ca[0]), r.add('c', cb[0]), r.add(A, cg[0]), r.add(A, ca[1]), r.add('c', cb[1]), r.add(A, cg[1]), r.add(A, ca[2]), r.add(A, cg[2])
  ]
  assert.equal(outs.map((o) => o.kind), ['pending', 'pending', 'pending', 'pending', 'complete', 'pending', 'complete', 'complete'])
  assert.equal(outs[4].kind === 'complete' ? outs[4].message : undefined, mb)
  assert.equal(outs[6].kind === 'complete' ? outs[6].message : undefined, ma)
})

test('the bytes and the number of transfers in reassembly are bounded', () => {
  const big = chunksOf(snapMessage(pattern(4000, 1)), 1000, 0, 1)
  const other = chunksOf(snapMessage(pattern(2000, 2)), 1000, 0, 1)
  const { r } = reassembler({ bytesMax: 5000 })
  assert.is(r.add(A, big[0]).kind, 'pending')
  assert.is(r.add('c', other[0]).kind, 'refused') // 4000 + 2000 > 5000
  assert.is(r.bytesReserved, 4000)
  feed(r, A, big.slice(1))
  assert.is(r.bytesReserved, 0)
  assert.equal(feed(r, 'c', other).kinds, ['pending', 'complete'])

  const { r: few } = reassembler({ reassembliesMax: 2 })
  assert.is(few.add('p1', other[0]).kind, 'pending')
  assert.is(few.add('p2', other[0]).kind, 'pending')
  assert.is(few.add('p3', other[0]).kind, 'refused')
  assert.is(few.size, 2)
  // a sender replacing its own transfer is not refused by the count
  assert.is(few.add('p1', other[0]).kind, 'pending')
})

test('a stalled transfer is dropped after stallMs; its later chunks are refused', () => {
  const chunks = chunksOf(snapMessage(pattern(3000)), 1000)
  const { r, clock } = reassembler({ stallMs: 5000 })
  feed(r, A, chunks.slice(0, 2))
  clock.ms += 4999
  assert.is(r.sweep(), 0)
  clock.ms += 1
  assert.is(r.sweep(), 1)
  assert.is(r.size, 0)
  assert.is(r.bytesReserved, 0)
  assert.equal(r.add(A, chunks[2]).kind, 'refused')
})

test('the sender refuses what it cannot chunk (a bug of its caller, not a peer\'s input)', () => {
  assert.throws(() => [...snapshotChunkFrames(0, 1, snapMessage(new Uint8Array(0)), 1000)])
  assert.throws(() => [...snapshotChunkFrames(0, 1, snapMessage(new Uint8Array(10)), 0)])
  assert.throws(() => [...snapshotChunkFrames(0, 1, snapMessage(new Uint8Array(10)), SNAPSHOT_CHUNK_BYTES_MAX + 1)])
  assert.throws(() => encodeSnapshotChunk({ group: 0, id: 1, offset: 0, total: 1, data: new Uint8Array(17 * 1024 * 1024) }), (err: Error) => err.name === 'FrameTooLarge')
})

test.run()
