import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { encode } from 'cborg'
import { EntryType, MessageType } from '../../src/raft/index.js'
import type { Message } from '../../src/raft/index.js'
import {
  CONTEXT_BYTES_MAX, FRAME_MESSAGES_MAX, decodeFrame, encodeFrame, encodeMessage, isWireType
} from '../../src/transport/index.js'

const test = suite('raft wire codec')

const WIRE_TYPES = Object.values(MessageType).filter((t) => isWireType(t))

function full (type: MessageType, i: number): Message {
  const m: Message = {
    type,
    to: 'node-b',
    from: '12D3KooWNodeA',
    term: 7 + i,
    index: 2 ** 40 + i,
    logTerm: 6,
    entries: [
      { term: 6, index: 2 ** 40 + i + 1, type: EntryType.Normal, data: Uint8Array.of(1, 2, 3, i & 0xff) },
      { term: 7, index: 2 ** 40 + i + 2, type: EntryType.ConfChange, data: new Uint8Array(300).fill(9) },
      { term: 7, index: 2 ** 40 + i + 3, type: EntryType.Normal, data: new Uint8Array(0) }
    ],
    commit: 123456,
    reject: i % 2 === 0,
    rejectHint: 99,
    context: Uint8Array.of(0xde, 0xad, i & 0xff)
  }
  if (type === MessageType.Snap) {
    m.snapshot = {
      metadata: { index: 500, term: 6, confState: { voters: ['a', 'b', 'c'], learners: ['d'] } },
      data: new Uint8Array(100_000).map((_, j) => j & 0xff)
    }
  }
  return m
}

function rejects (bytes: Uint8Array, field?: string): void {
  try {
    decodeFrame(bytes)
  } catch (err) {
    assert.ok((err as Error).name === 'MalformedFrame' || (err as Error).name === 'FrameTooLarge', `unexpected ${(err as Error).name}: ${(err as Error).message}`)
    if (field !== undefined) assert.is((err as { details: { field: string } }).details.field, field)
    return
  }
  assert.unreachable('decodeFrame accepted bad input')
}

/** A raw message array with one field replaced. */
function raw (patch: Record<number, unknown> = {}): unknown[] {
  const a: unknown[] = [1, 'b', 'a', 1, 0, 0, [], 0, false, 0, null, null]
  for (const [k, v] of Object.entries(patch)) a[Number(k)] = v
  return a
}

test('every wire message type round-trips with every field', () => {
  const msgs = WIRE_TYPES.map((t, i) => full(t, i))
  assert.is(msgs.length, 14)
  const frame = encodeFrame(3, msgs.map(encodeMessage))
  const back = decodeFrame(frame)
  assert.is(back.group, 3)
  assert.equal(back.messages, msgs)
})

test('zero-valued messages round-trip (no snapshot, no context)', () => {
  const m: Message = { type: MessageType.Heartbeat, to: 'b', from: 'a', term: 1, index: 0, logTerm: 0, entries: [], commit: 0, reject: false, rejectHint: 0 }
  assert.equal(decodeFrame(encodeFrame(0, [encodeMessage(m)])).messages, [m])
})

test('quiet: an App without entries may carry it (a 13th item); anything else with it is refused', () => {
  const quiet: Message = { type: MessageType.App, to: 'b', from: 'a', term: 3, index: 9, logTerm: 3, entries: [], commit: 9, reject: false, rejectHint: 0, quiet: true }
  assert.equal(decodeFrame(encodeFrame(1, [encodeMessage(quiet)])).messages, [quiet])
  // wire type codes: 1 App, 2 AppResp
  rejects(encode([1, [[...raw({ 0: 2 }), true]]]), 'messages[0].quiet')
  rejects(encode([1, [[...raw(), false]]]), 'messages[0].quiet')
  rejects(encode([1, [[...raw({ 6: [[3, 10, 0, new Uint8Array(1)]] }), true]]]), 'messages[0].quiet')
  rejects(encode([1, [[...raw(), true, true]]]))
  assert.equal(decodeFrame(encode([1, [[...raw(), true]]])).messages[0].quiet, true)
})

test('local-only message types cannot be encoded', () => {
  for (const t of [MessageType.Hup, MessageType.Beat, MessageType.CheckQuorum, MessageType.Unreachable, MessageType.SnapStatus]) {
    assert.throws(() => encodeMessage({ ...full(MessageType.App, 0), type: t }))
  }
})

test('a frame carries 1..FRAME_MESSAGES_MAX messages', () => {
  const one = encodeMessage(full(MessageType.Heartbeat, 0))
  assert.throws(() => encodeFrame(0, []))
  assert.throws(() => encodeFrame(0, new Array(FRAME_MESSAGES_MAX + 1).fill(one)))
  const many = decodeFrame(encodeFrame(0, new Array(300).fill(one)))
  assert.is(many.messages.length, 300)
  rejects(encode([0, []]), 'messages')
  rejects(encode([0, new Array(FRAME_MESSAGES_MAX + 1).fill(raw())]), 'messages')
})

test('garbage and wrong shapes are refused with typed errors', () => {
  rejects(new Uint8Array(0))
  rejects(Uint8Array.of(0xff, 0x00, 0x13))
  rejects(encode('hello'), 'frame')
  rejects(encode([0]), 'frame')
  rejects(encode([-1, [raw()]]), 'group')
  rejects(encode([0, 'x']), 'messages')
  rejects(encode([0, [raw({ 0: 99 })]]), 'messages[0].type')
  rejects(encode([0, [raw({ 0: 0 })]]), 'messages[0].type')
  rejects(encode([0, [raw({ 1: '' })]]), 'messages[0].to')
  rejects(encode([0, [raw({ 2: 'x'.repeat(300) })]]), 'messages[0].from')
  rejects(encode([0, [raw({ 3: -5 })]]), 'messages[0].term')
  rejects(encode([0, [raw({ 3: 1.5 })]]), 'messages[0].term')
  rejects(encode([0, [raw({ 4: '7' })]]), 'messages[0].index')
  rejects(encode([0, [raw({ 6: [[1, 2, 7, new Uint8Array(1)]] })]]), 'messages[0].entries[0].type')
  rejects(encode([0, [raw({ 6: [[1, 2, 0, 'not bytes']] })]]), 'messages[0].entries[0].data')
  rejects(encode([0, [raw({ 6: [[1, 2, 0]] })]]), 'messages[0].entries[0]')
  rejects(encode([0, [raw({ 8: 1 })]]), 'messages[0].reject')
  rejects(encode([0, [raw({ 10: [1, 1, ['a'], [], new Uint8Array(0)] })]]), 'messages[0].snapshot')
  rejects(encode([0, [raw({ 0: 7 })]]), 'messages[0].snapshot')
  rejects(encode([0, [raw({ 0: 7, 10: [1, 1, ['a'], ['a'], new Uint8Array(0)] })]]), 'messages[0].snapshot.voters')
  rejects(encode([0, [raw({ 11: new Uint8Array(CONTEXT_BYTES_MAX + 1) })]]), 'messages[0].context')
  rejects(encode([0, [raw().slice(0, 11)]]), 'messages[0]')
  // a Prop proposes something (the fuzzer's frame: group 1, a Prop from "m" with no entries)
  rejects(encode([1, [raw({ 0: 10, 6: [] })]]), 'messages[0].entries')
  // Indefinite-length arrays and trailing bytes are not accepted.
  rejects(Uint8Array.of(0x9f, 0x00, 0xff))
  const good = encodeFrame(0, [encodeMessage(full(MessageType.App, 1))])
  rejects(Uint8Array.of(...good, 0x00))
})

test('random mutations of a valid frame decode to valid messages or fail with a typed error', () => {
  const good = encodeFrame(1, WIRE_TYPES.map((t, i) => encodeMessage(full(t, i))).slice(0, 6))
  let seed = 12345
  const rand = (): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed / 0x80000000 }
  for (let round = 0; round < 2000; round++) {
    const b = Uint8Array.from(good)
    const flips = 1 + Math.floor(rand() * 4)
    for (let f = 0; f < flips; f++) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256)
    const cut = rand() < 0.2 ? b.subarray(0, Math.floor(rand() * b.length)) : b
    try {
      const out = decodeFrame(cut)
      for (const m of out.messages) assert.ok(isWireType(m.type))
    } catch (err) {
      assert.ok(['MalformedFrame', 'FrameTooLarge'].includes((err as Error).name), `round ${round}: ${(err as Error).name} ${(err as Error).message}`)
    }
  }
})

test.run()
