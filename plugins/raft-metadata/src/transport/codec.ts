/**
 * The wire codec of Raft messages (protocol `/dfs/raft/1.0.0`).
 *
 * A frame (the payload of one varint length prefix) is one CBOR value:
 *
 *   frame   = [group: uint, messages: [message, …]]                     (1..FRAME_MESSAGES_MAX)
 *   message = [type: uint, to: tstr, from: tstr, term: uint, index: uint, logTerm: uint,
 *              entries: [entry, …], commit: uint, reject: bool, rejectHint: uint,
 *              snapshot: snapshot / null, context: bstr / null (, quiet: true)]
 *   (the 13th item only on an App whose acknowledgement the leader does not need: Message.quiet)
 *   entry   = [term: uint, index: uint, type: uint, data: bstr]
 *   snapshot= [index: uint, term: uint, voters: [tstr, …], learners: [tstr, …], data: bstr]
 *
 * A snapshot too large for one frame (over SNAPSHOT_DATA_BYTES_MAX) travels as chunk frames, only on a
 * `/dfs/raft-snapshot/1.0.0` stream (older nodes do not speak that protocol, so never see one):
 *
 *   chunk   = [group: uint, id: uint, offset: uint, total: uint, data: bstr,
 *              head: bstr / null, sha256: bstr / null]
 *
 * `id` names one snapshot transfer of the sender; `total` (1..SNAPSHOT_BYTES_MAX) is the length of the
 * whole `Snapshot.data`, `data` (1..SNAPSHOT_CHUNK_BYTES_MAX bytes) its bytes from `offset`. The first
 * chunk (offset 0), and only it, carries `head`: the encoded Snap message with an empty `data`. The
 * last chunk (offset + |data| = total), and only it, carries the SHA-256 of the whole data. A chunk
 * frame is the only 7-item frame, a frame of messages the only 2-item one.
 *
 * Arrays (not maps) keep frames small and the layout fixed; the protocol id carries the version.
 * Messages are encoded one by one (so a sender can size its batch exactly) and a frame is the array
 * header followed by the encoded messages, which is exactly what cborg would write for the array.
 *
 * Decoding treats the bytes as hostile: strict CBOR (no indefinite lengths, bigints, NaN, undefined),
 * then every field is checked for its type, range and size. Local-only message types (Hup, Beat,
 * CheckQuorum, Unreachable, SnapStatus) are refused: a peer must not be able to inject them.
 * Failures are MalformedFrame (or FrameTooLarge) errors with the offending field in `details`.
 */
import { decode, encode } from 'cborg'
import { FrameTooLargeError, MalformedFrameError } from '@dfs/api'
import { EntryType, MessageType } from '../raft/index.js'
import type { Entry, Message, Snapshot } from '../raft/index.js'
import {
  CONTEXT_BYTES_MAX, FRAME_BYTES_MAX, FRAME_MESSAGES_MAX, GROUP_ID_MAX, MEMBERS_MAX, MESSAGE_ENTRIES_MAX,
  NODE_ID_LENGTH_MAX, SNAPSHOT_BYTES_MAX, SNAPSHOT_CHUNK_BYTES_MAX, SNAPSHOT_DATA_BYTES_MAX
} from './constants.js'
import { STRICT_CBOR_DECODE_OPTIONS } from '../raft/util.js'

/** Wire codes of the message types that may cross the network. Never renumber: it is the protocol. */
const TYPE_CODES: ReadonlyMap<MessageType, number> = new Map([
  [MessageType.App, 1],
  [MessageType.AppResp, 2],
  [MessageType.Vote, 3],
  [MessageType.VoteResp, 4],
  [MessageType.PreVote, 5],
  [MessageType.PreVoteResp, 6],
  [MessageType.Snap, 7],
  [MessageType.Heartbeat, 8],
  [MessageType.HeartbeatResp, 9],
  [MessageType.Prop, 10],
  [MessageType.TransferLeader, 11],
  [MessageType.TimeoutNow, 12],
  [MessageType.ReadIndex, 13],
  [MessageType.ReadIndexResp, 14]
])
const TYPES_BY_CODE: ReadonlyMap<number, MessageType> = new Map([...TYPE_CODES].map(([t, c]) => [c, t]))

const MESSAGE_FIELDS = 12
const ENTRY_FIELDS = 4
const SNAPSHOT_FIELDS = 5

const decodeOptions = STRICT_CBOR_DECODE_OPTIONS

/** Whether a message of this type may be sent to a peer. */
export function isWireType (type: MessageType): boolean {
  return TYPE_CODES.has(type)
}

/**
 * The CBOR bytes of one message (an element of a frame's message array). Throws a plain Error for a
 * local-only type: the core never hands those to the driver, so that is a bug.
 */
export function encodeMessage (m: Message): Uint8Array {
  const code = TYPE_CODES.get(m.type)
  if (code === undefined) throw new Error(`raft transport: message type ${m.type} is local and never sent`)
  const snap = m.snapshot
  const fields: unknown[] = [
    code, m.to, m.from, m.term, m.index, m.logTerm,
    m.entries.map((e) => [e.term, e.index, e.type, e.data]),
    m.commit, m.reject, m.rejectHint,
    snap === undefined
      ? null
      : [snap.metadata.index, snap.metadata.term, snap.metadata.confState.voters, snap.metadata.confState.learners, snap.data],
    m.context ?? null
  ]
  if (m.quiet === true) fields.push(true)
  return encode(fields)
}

/** A CBOR head (major type + argument) for lengths and small unsigned integers. */
function cborHead (major: number, n: number): Uint8Array {
  const m = major << 5
  if (n < 24) return Uint8Array.of(m | n)
  if (n < 0x100) return Uint8Array.of(m | 24, n)
  if (n < 0x1_0000) return Uint8Array.of(m | 25, n >> 8, n & 0xff)
  return Uint8Array.of(m | 26, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff)
}

/** Bytes a frame header adds at most to its encoded messages. */
export const FRAME_HEADER_BYTES_MAX = 1 + 5 + 5

/** A frame of already encoded messages (see encodeMessage) for `group`. */
export function encodeFrame (group: number, messages: Uint8Array[]): Uint8Array {
  if (!Number.isSafeInteger(group) || group < 0 || group > GROUP_ID_MAX) throw new Error(`raft transport: bad group id ${group}`)
  if (messages.length === 0 || messages.length > FRAME_MESSAGES_MAX) {
    throw new Error(`raft transport: a frame carries 1..${FRAME_MESSAGES_MAX} messages, not ${messages.length}`)
  }
  const parts = [Uint8Array.of(0x82), cborHead(0, group), cborHead(4, messages.length), ...messages]
  let size = 0
  for (const p of parts) size += p.byteLength
  if (size > FRAME_BYTES_MAX) throw new FrameTooLargeError(`raft frame of ${size} bytes exceeds ${FRAME_BYTES_MAX}`, { bytes: size, bytesMax: FRAME_BYTES_MAX })
  const out = new Uint8Array(size)
  let at = 0
  for (const p of parts) { out.set(p, at); at += p.byteLength }
  return out
}

export interface DecodedFrame {
  group: number
  messages: Message[]
}

function malformed (message: string, field: string, extra: Record<string, unknown> = {}): MalformedFrameError {
  return new MalformedFrameError(`malformed raft frame: ${message}`, { field, ...extra })
}

function uint (v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw malformed(`${field} is not a non-negative integer`, field)
  return v
}

function nodeId (v: unknown, field: string): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > NODE_ID_LENGTH_MAX) {
    throw malformed(`${field} is not a node id of 1..${NODE_ID_LENGTH_MAX} characters`, field)
  }
  return v
}

function bytes (v: unknown, field: string, max: number): Uint8Array {
  if (!(v instanceof Uint8Array)) throw malformed(`${field} is not a byte string`, field)
  if (v.byteLength > max) throw malformed(`${field} of ${v.byteLength} bytes exceeds ${max}`, field, { bytes: v.byteLength, bytesMax: max })
  return v
}

function list (v: unknown, field: string, max: number): unknown[] {
  if (!Array.isArray(v)) throw malformed(`${field} is not an array`, field)
  if (v.length > max) throw malformed(`${field} has ${v.length} items, more than ${max}`, field, { items: v.length, itemsMax: max })
  return v
}

function tuple (v: unknown, field: string, n: number): unknown[] {
  if (!Array.isArray(v) || v.length !== n) throw malformed(`${field} is not an array of ${n} items`, field)
  return v
}

function decodeEntry (v: unknown, field: string): Entry {
  const a = tuple(v, field, ENTRY_FIELDS)
  const typeNumber = uint(a[2], `${field}.type`)
  const type = typeNumber as EntryType
  if (type !== EntryType.Normal && type !== EntryType.ConfChange) throw malformed(`${field}.type ${typeNumber} is unknown`, `${field}.type`)
  return {
    term: uint(a[0], `${field}.term`),
    index: uint(a[1], `${field}.index`),
    type,
    data: bytes(a[3], `${field}.data`, FRAME_BYTES_MAX)
  }
}

function decodeSnapshot (v: unknown, field: string): Snapshot {
  const a = tuple(v, field, SNAPSHOT_FIELDS)
  const voters = list(a[2], `${field}.voters`, MEMBERS_MAX).map((x, i) => nodeId(x, `${field}.voters[${i}]`))
  const learners = list(a[3], `${field}.learners`, MEMBERS_MAX).map((x, i) => nodeId(x, `${field}.learners[${i}]`))
  if (new Set([...voters, ...learners]).size !== voters.length + learners.length) {
    throw malformed(`${field} lists a member twice`, `${field}.voters`)
  }
  return {
    metadata: { index: uint(a[0], `${field}.index`), term: uint(a[1], `${field}.term`), confState: { voters, learners } },
    data: bytes(a[4], `${field}.data`, SNAPSHOT_DATA_BYTES_MAX)
  }
}

/** Validates one decoded message (the CBOR value of one element of a frame's message array). */
export function messageFromWire (v: unknown, field = 'message'): Message {
  const a = Array.isArray(v) && v.length === MESSAGE_FIELDS + 1 ? v : tuple(v, field, MESSAGE_FIELDS)
  const code = uint(a[0], `${field}.type`)
  const type = TYPES_BY_CODE.get(code)
  if (type === undefined) throw malformed(`${field}.type ${code} is not a wire message type`, `${field}.type`)
  const entries = list(a[6], `${field}.entries`, MESSAGE_ENTRIES_MAX).map((e, i) => decodeEntry(e, `${field}.entries[${i}]`))
  if (typeof a[8] !== 'boolean') throw malformed(`${field}.reject is not a boolean`, `${field}.reject`)
  const m: Message = {
    type,
    to: nodeId(a[1], `${field}.to`),
    from: nodeId(a[2], `${field}.from`),
    term: uint(a[3], `${field}.term`),
    index: uint(a[4], `${field}.index`),
    logTerm: uint(a[5], `${field}.logTerm`),
    entries,
    commit: uint(a[7], `${field}.commit`),
    reject: a[8],
    rejectHint: uint(a[9], `${field}.rejectHint`)
  }
  if (a[10] !== null) {
    if (type !== MessageType.Snap) throw malformed(`${field} of type ${type} carries a snapshot`, `${field}.snapshot`)
    m.snapshot = decodeSnapshot(a[10], `${field}.snapshot`)
  } else if (type === MessageType.Snap) {
    throw malformed(`${field} of type Snap carries no snapshot`, `${field}.snapshot`)
  }
  if (a[11] !== null) m.context = bytes(a[11], `${field}.context`, CONTEXT_BYTES_MAX)
  if (type === MessageType.Prop && entries.length === 0) {
    throw malformed(`${field} is a Prop without entries`, `${field}.entries`)
  }
  if (a.length > MESSAGE_FIELDS) {
    if (a[12] !== true || type !== MessageType.App || entries.length > 0) {
      throw malformed(`${field}.quiet is only true on an App without entries`, `${field}.quiet`)
    }
    m.quiet = true
  }
  return m
}

/** The strict CBOR value of a frame of at most FRAME_BYTES_MAX bytes. */
function frameValue (frame: Uint8Array): unknown {
  if (!(frame instanceof Uint8Array)) throw malformed('frame is not bytes', 'frame')
  if (frame.byteLength > FRAME_BYTES_MAX) {
    throw new FrameTooLargeError(`raft frame of ${frame.byteLength} bytes exceeds ${FRAME_BYTES_MAX}`, { bytes: frame.byteLength, bytesMax: FRAME_BYTES_MAX })
  }
  try {
    return decode(frame, decodeOptions)
  } catch (err) {
    throw malformed(`not CBOR: ${(err as Error).message}`, 'frame', { bytes: frame.byteLength })
  }
}

function messagesFromWire (value: unknown): DecodedFrame {
  const top = tuple(value, 'frame', 2)
  const group = uint(top[0], 'group')
  if (group > GROUP_ID_MAX) throw malformed(`group ${group} exceeds ${GROUP_ID_MAX}`, 'group')
  const raw = list(top[1], 'messages', FRAME_MESSAGES_MAX)
  if (raw.length === 0) throw malformed('a frame carries no messages', 'messages')
  return { group, messages: raw.map((m, i) => messageFromWire(m, `messages[${i}]`)) }
}

/** Decodes and validates one frame of messages. Throws FrameTooLarge / MalformedFrame. */
export function decodeFrame (frame: Uint8Array): DecodedFrame {
  return messagesFromWire(frameValue(frame))
}

/** One chunk of a snapshot too large for one frame (see the chunk frame above). */
export interface SnapshotChunk {
  group: number
  /** The sender's number for this transfer. */
  id: number
  /** Where `data` starts in the whole snapshot data; 0 exactly for the first chunk. */
  offset: number
  /** Bytes of the whole snapshot data, 1..SNAPSHOT_BYTES_MAX; offset + data.byteLength <= total. */
  total: number
  /** 1..SNAPSHOT_CHUNK_BYTES_MAX bytes. */
  data: Uint8Array
  /** On the first chunk only: the Snap message, its snapshot's data empty. */
  head?: Message
  /** On the last chunk only (offset + data.byteLength === total): SHA-256 of the whole data. */
  sha256?: Uint8Array
}

const CHUNK_FIELDS = 7
export const SHA256_BYTES = 32

/** The frame of one chunk (checked as a receiver would; a bad chunk is a bug of the sender). */
export function encodeSnapshotChunk (c: SnapshotChunk): Uint8Array {
  const head = c.head === undefined ? null : encodeMessage(c.head)
  const frame = encode([c.group, c.id, c.offset, c.total, c.data, head, c.sha256 ?? null])
  if (frame.byteLength > FRAME_BYTES_MAX) throw new FrameTooLargeError(`raft snapshot chunk frame of ${frame.byteLength} bytes exceeds ${FRAME_BYTES_MAX}`, { bytes: frame.byteLength, bytesMax: FRAME_BYTES_MAX })
  return frame
}

function chunkFromWire (value: unknown): SnapshotChunk {
  const a = tuple(value, 'chunk', CHUNK_FIELDS)
  const group = uint(a[0], 'chunk.group')
  if (group > GROUP_ID_MAX) throw malformed(`chunk.group ${group} exceeds ${GROUP_ID_MAX}`, 'chunk.group')
  const id = uint(a[1], 'chunk.id')
  const offset = uint(a[2], 'chunk.offset')
  const total = uint(a[3], 'chunk.total')
  if (total === 0 || total > SNAPSHOT_BYTES_MAX) {
    throw malformed(`chunk.total ${total} is not in 1..${SNAPSHOT_BYTES_MAX}`, 'chunk.total', { total, bytesMax: SNAPSHOT_BYTES_MAX })
  }
  const data = bytes(a[4], 'chunk.data', SNAPSHOT_CHUNK_BYTES_MAX)
  if (data.byteLength === 0) throw malformed('chunk.data is empty', 'chunk.data')
  if (offset >= total || data.byteLength > total - offset) {
    throw malformed(`chunk of ${data.byteLength} bytes at ${offset} overruns the declared total ${total}`, 'chunk.offset', { offset, bytes: data.byteLength, total })
  }
  const c: SnapshotChunk = { group, id, offset, total, data }
  if ((a[5] !== null) !== (offset === 0)) throw malformed('chunk.head is on the first chunk and only there', 'chunk.head')
  if (a[5] !== null) {
    let v: unknown
    try {
      v = decode(bytes(a[5], 'chunk.head', FRAME_BYTES_MAX), decodeOptions)
    } catch (err) {
      if ((err as Error).name === 'MalformedFrame') throw err
      throw malformed(`chunk.head is not CBOR: ${(err as Error).message}`, 'chunk.head')
    }
    const head = messageFromWire(v, 'chunk.head')
    if (head.type !== MessageType.Snap || head.snapshot === undefined || head.snapshot.data.byteLength !== 0) {
      throw malformed('chunk.head is not a Snap message with empty data', 'chunk.head')
    }
    c.head = head
  }
  const last = offset + data.byteLength === total
  if ((a[6] !== null) !== last) throw malformed('chunk.sha256 is on the last chunk and only there', 'chunk.sha256')
  if (a[6] !== null) {
    const sha256 = bytes(a[6], 'chunk.sha256', SHA256_BYTES)
    if (sha256.byteLength !== SHA256_BYTES) throw malformed(`chunk.sha256 is not ${SHA256_BYTES} bytes`, 'chunk.sha256')
    c.sha256 = sha256
  }
  return c
}

/** Decodes and validates one snapshot chunk frame. Throws FrameTooLarge / MalformedFrame. */
export function decodeSnapshotChunk (frame: Uint8Array): SnapshotChunk {
  return chunkFromWire(frameValue(frame))
}

/** A frame of either kind, as a receiver takes it. */
export type WireFrame = { kind: 'messages', frame: DecodedFrame } | { kind: 'chunk', chunk: SnapshotChunk }

/** Decodes and validates a frame of messages or a snapshot chunk. Throws FrameTooLarge / MalformedFrame. */
export function decodeWireFrame (frame: Uint8Array): WireFrame {
  const value = frameValue(frame)
  if (Array.isArray(value) && value.length === CHUNK_FIELDS) return { kind: 'chunk', chunk: chunkFromWire(value) }
  return { kind: 'messages', frame: messagesFromWire(value) }
}
