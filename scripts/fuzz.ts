/**
 * `npm run fuzz -- --frames N [--seed S] [--concurrency C] [--only I] [--protocols rpc,raft,meshsub,heartbeat]
 *                  [--identities stranger,member] [--keep-going] [--check-each]`
 *
 * Starts a live three-node cluster of real `dfs node start` processes, and a fourth node that joins
 * and is then stopped: the fuzzer holds that member's key. From two identities — a stranger (a fresh
 * key) and the member — it sends N frames, mutated from valid ones or random, on every protocol a
 * node serves to peers:
 *
 *   rpc        `/dfs/rpc/1.0.0` frames (calls of every method, the extent methods included: HEADER,
 *              DATA, END, CREDIT, and the server-to-client kinds a client must never send)
 *   raft       `/dfs/raft/1.0.0` frames (CBOR [group, [message …]] behind a varint length)
 *   meshsub    gossipsub's own `/meshsub/1.1.0` RPC frames (protobuf behind a varint length)
 *   heartbeat  messages published on the cluster's heartbeat topic, signed by the member's key (so
 *              they reach the nodes' heartbeat validator)
 *
 * Mutations: bit flips, truncation, length prefixes that lie, huge lengths, wrong CBOR types, deep
 * nesting, CBOR headers claiming huge arrays, spliced and random bytes, floods of one frame.
 * Meanwhile a writer puts and reads back files through the admin's client, and afterwards checks
 * that puts still succeed. Reports frames sent per protocol and identity, node crashes (a node
 * process exiting is a failure: its stderr tail is printed), each node's RSS over time, and the put
 * counts, and what each node serves at the end (a Raft group that failed shows there, not as a
 * crash). Exit code 0 only with no crash, every node serving, and every put after the fuzzing
 * succeeding.
 *
 * Deterministic by --seed: frame i of a seed is always the same bytes, sent on the same protocol by
 * the same identity to the same node (timing and the nodes' answers are not). A crash prints the
 * last frames sent before it (index, protocol, identity, node, mutation, hex) so that
 * `--seed S --only I` replays frame I alone against a fresh cluster. `--check-each` (one batch at a
 * time) puts a file after every batch and stops at the first batch after which the put fails: it
 * names the frames that broke the cluster without a crash.
 */
import { createHash } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { encode as cborEncode } from 'cborg'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { PrivateKey, Stream } from '@libp2p/interface'
import type { DfsClient } from '../src/client/index.js'
import { createHost, type NodeHost } from '../src/net/host.js'
import { readKeyFile } from '../src/net/keys.js'
import { heartbeatTopic } from '../src/membership/constants.js'
import { encodeFrame as encodeRaftFrame, encodeMessage } from '../plugins/raft-metadata/src/transport/codec.js'
import { EntryType, MessageType } from '../plugins/raft-metadata/src/raft/index.js'
import type { Message } from '../plugins/raft-metadata/src/raft/index.js'
import { benchNodes, type BenchProcess } from './bench-nodes.js'

// ---------------------------------------------------------------------------------------------
// options

const { values: args } = parseArgs({
  options: {
    frames: { type: 'string', default: '50000' },
    seed: { type: 'string', default: '1' },
    concurrency: { type: 'string', default: '8' },
    only: { type: 'string' },
    protocols: { type: 'string', default: 'rpc,raft,meshsub,heartbeat' },
    identities: { type: 'string', default: 'stranger,member' },
    'keep-going': { type: 'boolean', default: false },
    'check-each': { type: 'boolean', default: false }
  }
})
const FRAMES = positive(args.frames, 'frames')
const SEED = Number(args.seed) >>> 0
const CONCURRENCY = positive(args.concurrency, 'concurrency')
/** `--only I` or `--only I-J`: send only these frames (the rest are generated, not sent). */
const ONLY = args.only === undefined ? undefined : args.only.split('-').map(Number)
const ONLY_LAST = ONLY === undefined ? undefined : ONLY[ONLY.length - 1]
/** Batches of other protocols or identities are generated (so indices stay the same) but not sent. */
const SEND_PROTOCOLS = new Set((args.protocols ?? '').split(','))
const SEND_IDENTITIES = new Set((args.identities ?? '').split(','))

function positive (text: string | undefined, what: string): number {
  const n = Number(text)
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--${what} must be a positive integer, not ${text}`)
  return n
}

/** Most frames one stream carries (a batch): a stream opened per frame would measure dialling. */
const BATCH_FRAMES_MAX = 16
/** How long a batch waits for the node's answer after its last frame before it resets the stream. */
const ANSWER_WAIT_MS = 200
/** Deadline of opening a stream (a node refusing it is an outcome, not a failure). */
const OPEN_TIMEOUT_MS = 5_000
/** Frames remembered for a crash report. */
const RECENT_FRAMES = 64
/** Bytes of a frame printed in a crash report. */
const REPORT_HEX_BYTES = 256
/** Interval of RSS samples and progress lines. */
const SAMPLE_MS = 2_000
/** Puts that must succeed after the fuzzing ends. */
const PUTS_AFTER = 20
/** Deadline of the put after each batch with --check-each (a healthy cluster answers in milliseconds). */
const CHECK_TIMEOUT_MS = 5_000
/** Largest file the writer puts. */
const WRITE_BYTES_MAX = 64 * 1024
const RPC = '/dfs/rpc/1.0.0'
const RAFT = '/dfs/raft/1.0.0'
const MESHSUB = '/meshsub/1.1.0'

type Proto = 'rpc' | 'raft' | 'meshsub' | 'heartbeat'
type Who = 'stranger' | 'member'
const PROTOS: Proto[] = ['rpc', 'raft', 'meshsub', 'heartbeat']

// ---------------------------------------------------------------------------------------------
// seeded randomness

/** mulberry32: small, fast, and the same sequence for a seed on every machine. */
class Rng {
  #s: number
  constructor (seed: number) { this.#s = seed >>> 0 }
  next (): number {
    this.#s = (this.#s + 0x6d2b79f5) >>> 0
    let t = this.#s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }

  int (n: number): number { return Math.floor(this.next() * n) }
  range (lo: number, hi: number): number { return lo + this.int(hi - lo + 1) }
  chance (p: number): boolean { return this.next() < p }
  pick<T> (xs: readonly T[]): T { return xs[this.int(xs.length)] }
  bytes (n: number): Uint8Array {
    const out = new Uint8Array(n)
    for (let i = 0; i < n; i++) out[i] = this.int(256)
    return out
  }
}

// ---------------------------------------------------------------------------------------------
// valid frames

function varint (n: number): Uint8Array {
  const out: number[] = []
  let v = n
  while (v >= 0x80) { out.push((v % 0x80) | 0x80); v = Math.floor(v / 0x80) }
  out.push(v)
  return Uint8Array.from(out)
}

function concat (...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.byteLength, 0))
  let at = 0
  for (const p of parts) { out.set(p, at); at += p.byteLength }
  return out
}

function lengthPrefixed (body: Uint8Array): Uint8Array {
  return concat(varint(body.byteLength), body)
}

function uuid (rng: Rng): string {
  const h = Array.from(rng.bytes(16), (b) => b.toString(16).padStart(2, '0')).join('')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`
}

/** Context of the cluster the valid frames are made for. */
interface Target { ids: string[], clusterId: string, memberId: string, strangerId: string }

/**
 * A plausible call of every method a node serves: a fuzzed frame starts from what the server's
 * validation is written for. Methods that change state get ids and names no real object has.
 */
function rpcHeader (rng: Rng, t: Target): Record<string, unknown> {
  const path = rng.pick(['/', '/fuzz', `/fuzz/${rng.int(100)}`, '/../x', '', '/a\u202eb', '/a/' + 'x'.repeat(300)])
  const calls: Array<[string, unknown]> = [
    ['fs.put', { path: `/fuzz-rpc/${rng.int(1000)}` }],
    ['fs.get', { path }],
    ['fs.stat', { path }],
    ['fs.ls', { path, limit: rng.int(2000) }],
    ['fs.rm', { path: `/fuzz-rpc/${rng.int(1000)}` }],
    ['cluster.status', {}],
    ['cluster.nodes', {}],
    ['cluster.shards', {}],
    ['cluster.replication', { here: rng.chance(0.5) }],
    ['cluster.config', {}],
    ['cluster.config.set', { key: rng.pick(['replication-factor', 'fill-limit', 'nope']), value: String(rng.int(20)) }],
    ['cluster.policy.set', { kind: rng.pick(['placement', 'rebalance']), name: 'fuzz-policy' }],
    ['cluster.rebalance', { dryRun: true }],
    ['cluster.rebalance.progress', {}],
    ['cluster.drain', { node: t.strangerId }],
    ['cluster.undrain', { node: t.strangerId }],
    ['cluster.token.create', { ttlMs: rng.int(7200_000), uses: rng.int(5) }],
    ['cluster.token.list', {}],
    ['cluster.token.revoke', { id: '0123456789abcdef' }],
    ['cluster.identify', { challenge: rng.bytes(32) }],
    ['cluster.join', { token: rng.pick(['dfs-join.0123456789abcdef.' + 'a'.repeat(43), 'x', 'dfs-join..']), name: 'fuzz', region: 'r', addrs: ['/ip4/127.0.0.1/tcp/1'] }],
    ['cluster.nodes.remove', { node: t.strangerId }],
    ['cluster.audit', { limit: rng.int(100) }],
    ['node.info', {}],
    ['node.replication', {}],
    ['user.grant', { id: t.strangerId, role: rng.pick(['admin', 'user', 'readonly', 'root']) }],
    ['user.revoke', { id: t.strangerId }],
    ['user.list', {}],
    ['tenant.create', { name: `fuzz${rng.int(100)}` }],
    ['tenant.list', {}],
    ['extent.get', { id: uuid(rng) }],
    ['extent.put', { id: uuid(rng), size: rng.int(5000), checksum: 'sha256:' + '0'.repeat(64) }],
    ['extent.replicate', { id: uuid(rng), from: rng.pick(t.ids), size: 10, checksum: 'sha256:' + '1'.repeat(64) }],
    ['extent.delete', { id: uuid(rng) }],
    ['test.partition', { peers: [] }],
    ['no.such.method', {}]
  ]
  const [method, params] = rng.pick(calls)
  const header: Record<string, unknown> = { method, params, timeoutMs: rng.range(1, 30_000) }
  if (rng.chance(0.3)) header.idleTimeoutMs = rng.range(1, 30_000)
  return header
}

/** One valid `/dfs/rpc/1.0.0` frame (length prefix included) and what kind it is. */
function rpcFrame (rng: Rng, t: Target): { bytes: Uint8Array, kind: string } {
  const kind = rng.pick(['header', 'header', 'header', 'data', 'end', 'credit', 'result', 'error'])
  let body: Uint8Array
  switch (kind) {
    case 'header': body = concat(Uint8Array.of(1), cborEncode(rpcHeader(rng, t))); break
    case 'data': body = concat(Uint8Array.of(2), rng.bytes(rng.range(1, 4096))); break
    case 'end': body = Uint8Array.of(3); break
    case 'credit': body = concat(Uint8Array.of(4), cborEncode(rng.range(1, 64))); break
    case 'result': body = concat(Uint8Array.of(5), cborEncode({ ok: true })); break
    default: body = concat(Uint8Array.of(6), cborEncode({ name: 'NotFound', message: 'fuzz' }))
  }
  return { bytes: lengthPrefixed(body), kind }
}

const WIRE_TYPES = [MessageType.App, MessageType.AppResp, MessageType.Vote, MessageType.VoteResp, MessageType.PreVote,
  MessageType.PreVoteResp, MessageType.Snap, MessageType.Heartbeat, MessageType.HeartbeatResp, MessageType.Prop,
  MessageType.TransferLeader, MessageType.TimeoutNow, MessageType.ReadIndex, MessageType.ReadIndexResp]

/**
 * One valid `/dfs/raft/1.0.0` frame. Terms and indices stay small, so an unmutated message is a
 * stale one that the groups must ignore; mutations reach every other value.
 */
function raftFrame (rng: Rng, t: Target, from: string, to: string): { bytes: Uint8Array, kind: string } {
  const count = rng.range(1, 4)
  const messages: Uint8Array[] = []
  let kind = ''
  for (let i = 0; i < count; i++) {
    const type = rng.pick(WIRE_TYPES)
    kind ||= type
    const m: Message = {
      type,
      to,
      from,
      term: rng.int(3),
      index: rng.int(5),
      logTerm: rng.int(3),
      entries: type === MessageType.App || type === MessageType.Prop
        ? Array.from({ length: rng.int(3) }, (_, k) => ({ term: rng.int(3), index: k + 1, type: rng.chance(0.9) ? EntryType.Normal : EntryType.ConfChange, data: rng.bytes(rng.int(64)) }))
        : [],
      commit: rng.int(5),
      reject: rng.chance(0.2),
      rejectHint: rng.int(5)
    }
    if (type === MessageType.Snap) {
      m.snapshot = { metadata: { index: rng.int(5), term: rng.int(3), confState: { voters: [...t.ids], learners: [] } }, data: rng.bytes(rng.int(256)) }
    }
    if (type === MessageType.ReadIndex || type === MessageType.Heartbeat) m.context = rng.bytes(16)
    messages.push(encodeMessage(m))
  }
  return { bytes: lengthPrefixed(encodeRaftFrame(rng.int(6), messages)), kind }
}

/** Protobuf helpers for gossipsub's RPC message (fields: 1 subscriptions, 2 publish, 3 control). */
function pbField (field: number, wire: number, value: Uint8Array | number): Uint8Array {
  const key = varint((field << 3) | wire)
  if (typeof value === 'number') return concat(key, varint(value))
  return concat(key, varint(value.byteLength), value)
}

function meshsubFrame (rng: Rng, t: Target): { bytes: Uint8Array, kind: string } {
  const topic = new TextEncoder().encode(rng.chance(0.7) ? heartbeatTopic(t.clusterId) : `/fuzz/${rng.int(10)}`)
  const parts: Uint8Array[] = []
  const kind = rng.pick(['subscribe', 'publish', 'graft', 'ihave', 'iwant'])
  if (kind === 'subscribe') {
    parts.push(pbField(1, 2, concat(pbField(1, 0, rng.int(2)), pbField(2, 2, topic))))
  } else if (kind === 'publish') {
    const msg = concat(pbField(1, 2, rng.bytes(rng.range(0, 40))), pbField(2, 2, rng.bytes(rng.range(0, 200))),
      pbField(3, 2, rng.bytes(8)), pbField(4, 2, topic), pbField(5, 2, rng.bytes(64)), pbField(6, 2, rng.bytes(36)))
    parts.push(pbField(2, 2, msg))
  } else {
    const field = kind === 'ihave' ? 1 : kind === 'iwant' ? 2 : 3
    const inner = kind === 'iwant' ? pbField(1, 2, rng.bytes(20)) : concat(pbField(1, 2, topic), pbField(2, 2, rng.bytes(20)))
    parts.push(pbField(3, 2, pbField(field, 2, inner)))
  }
  return { bytes: lengthPrefixed(concat(...parts)), kind }
}

/** A heartbeat payload as a member publishes it (CBOR map with the keys heartbeat-message.ts reads). */
function heartbeatPayload (rng: Rng, t: Target, seq: number): { bytes: Uint8Array, kind: string } {
  const value = {
    id: t.memberId,
    incarnation: SEED + 1,
    seq,
    name: 'fuzz',
    region: 'default',
    addrs: rng.chance(0.5) ? [] : ['/ip4/127.0.0.1/tcp/1'],
    load: { extents: rng.int(1000), bytes: rng.int(1e9) },
    capacity: { bytes: rng.int(1e12) },
    sentAtMs: 1_700_000_000_000 + seq
  }
  return { bytes: cborEncode(value), kind: 'heartbeat' }
}

// ---------------------------------------------------------------------------------------------
// mutations

/** A CBOR value of a random type, nested a little. */
function randomCborValue (rng: Rng, depth = 0): unknown {
  switch (rng.int(depth > 3 ? 6 : 9)) {
    case 0: return rng.int(2 ** 31) * (rng.chance(0.3) ? -1 : 1)
    case 1: return rng.next() * 1e300
    case 2: return 'x'.repeat(rng.int(100))
    case 3: return rng.bytes(rng.int(64))
    case 4: return rng.chance(0.5)
    case 5: return null
    case 6: return Array.from({ length: rng.int(5) }, () => randomCborValue(rng, depth + 1))
    case 7: return Object.fromEntries(Array.from({ length: rng.int(5) }, (_, i) => [rng.pick(['method', 'params', 'timeoutMs', 'id', 'seq', `k${i}`]), randomCborValue(rng, depth + 1)]))
    default: return new Map([[rng.int(10), randomCborValue(rng, depth + 1)]])
  }
}

/** CBOR of an array nested `depth` deep: `[[[…]]]` (written by hand, so any depth is possible). */
function deepCbor (depth: number): Uint8Array {
  const out = new Uint8Array(depth + 1).fill(0x81)
  out[depth] = 0xf6 // null at the bottom
  return out
}

/** What a stream-protocol frame is turned into. The length prefix is part of what may be mutated. */
const STREAM_MUTATIONS = ['none', 'bitflip', 'truncate', 'length-lie', 'huge-length', 'wrong-cbor', 'kind-byte', 'splice',
  'flood', 'random', 'random-prefixed', 'deep-nesting', 'huge-claim', 'empty'] as const
type Mutation = typeof STREAM_MUTATIONS[number] | 'heartbeat-valid' | 'heartbeat-bitflip' | 'heartbeat-wrong-cbor' | 'heartbeat-random' | 'heartbeat-replay'

function bodyOf (frame: Uint8Array): { prefix: number, body: Uint8Array } {
  let i = 0
  while (i < frame.length && (frame[i] & 0x80) !== 0) i++
  return { prefix: i + 1, body: frame.subarray(i + 1) }
}

function mutate (rng: Rng, frame: Uint8Array, proto: Proto, mutation: typeof STREAM_MUTATIONS[number]): Uint8Array {
  const { prefix, body } = bodyOf(frame)
  // the kind byte of an rpc frame is kept where the mutation is about the CBOR inside it
  const kindBytes = proto === 'rpc' ? 1 : 0
  switch (mutation) {
    case 'none': return frame
    case 'bitflip': {
      const out = Uint8Array.from(frame)
      for (let n = rng.range(1, 8); n > 0; n--) { const i = rng.int(out.length); out[i] ^= 1 << rng.int(8) }
      return out
    }
    case 'truncate': return frame.subarray(0, rng.int(frame.length))
    case 'length-lie': {
      const claimed = Math.max(0, body.length + rng.pick([-1000, -10, -1, 1, 2, 100, 10_000]))
      return concat(varint(claimed), body)
    }
    case 'huge-length': {
      const prefixBytes = rng.pick([varint(2 ** 31 - 1), varint(2 ** 32 + 5), varint(Number.MAX_SAFE_INTEGER), new Uint8Array(10).fill(0xff), varint(900 * 1024), varint(17 * 1024 * 1024)])
      return concat(prefixBytes, body.subarray(0, rng.int(body.length + 1)))
    }
    case 'wrong-cbor': return lengthPrefixed(concat(body.subarray(0, kindBytes), cborEncode(randomCborValue(rng))))
    case 'kind-byte': {
      const out = Uint8Array.from(frame)
      if (out.length > prefix) out[prefix] = rng.int(256)
      return out
    }
    case 'splice': {
      const at = rng.int(body.length + 1)
      return lengthPrefixed(concat(body.subarray(0, at), rng.bytes(rng.range(1, 64)), body.subarray(at)))
    }
    case 'flood': return concat(...Array.from({ length: rng.range(2, 50) }, () => frame))
    case 'random': return rng.bytes(rng.int(2048))
    case 'random-prefixed': return lengthPrefixed(rng.bytes(rng.int(4096)))
    case 'deep-nesting': return lengthPrefixed(concat(body.subarray(0, kindBytes), deepCbor(rng.pick([33, 100, 1000, 20_000, 200_000]))))
    case 'huge-claim': {
      // an array, map, byte or text string head claiming 2^32-1 or 2^64-1 items, with a few behind it
      const major = rng.pick([0x80, 0xa0, 0x40, 0x60])
      const head = rng.chance(0.5) ? Uint8Array.of(major | 26, 0xff, 0xff, 0xff, 0xff) : Uint8Array.of(major | 27, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
      return lengthPrefixed(concat(body.subarray(0, kindBytes), head, rng.bytes(rng.int(32))))
    }
    case 'empty': return varint(0)
  }
}

// ---------------------------------------------------------------------------------------------
// the frame plan: batch by batch, from one seeded generator

interface Planned {
  /** Index of the batch's first frame. */
  first: number
  proto: Proto
  who: Who
  /** Index of the target node (0..2). */
  node: number
  frames: Array<{ index: number, bytes: Uint8Array, kind: string, mutation: Mutation }>
}

function * plan (seed: number, total: number, t: Target): Generator<Planned> {
  const rng = new Rng(seed)
  let index = 0
  let heartbeatSeq = 0
  const sent: Uint8Array[] = []
  while (index < total) {
    const proto = rng.pick(PROTOS)
    const who: Who = proto === 'heartbeat' ? 'member' : rng.pick(['stranger', 'member'] as const)
    const node = rng.int(3)
    const count = Math.min(total - index, rng.range(1, BATCH_FRAMES_MAX))
    const batch: Planned = { first: index, proto, who, node, frames: [] }
    for (let k = 0; k < count; k++, index++) {
      if (proto === 'heartbeat') {
        heartbeatSeq++
        const valid = heartbeatPayload(rng, t, heartbeatSeq)
        const mutation = rng.pick(['heartbeat-valid', 'heartbeat-bitflip', 'heartbeat-wrong-cbor', 'heartbeat-random', 'heartbeat-replay'] as const)
        let bytes = valid.bytes
        if (mutation === 'heartbeat-bitflip') bytes = mutate(rng, lengthPrefixed(bytes), 'heartbeat', 'bitflip').subarray(1)
        else if (mutation === 'heartbeat-wrong-cbor') bytes = cborEncode(randomCborValue(rng))
        else if (mutation === 'heartbeat-random') bytes = rng.bytes(rng.int(1024))
        else if (mutation === 'heartbeat-replay' && sent.length > 0) bytes = rng.pick(sent)
        if (mutation === 'heartbeat-valid' && sent.length < 64) sent.push(bytes)
        batch.frames.push({ index, bytes, kind: valid.kind, mutation })
        continue
      }
      const from = who === 'member' ? t.memberId : t.strangerId
      const valid = proto === 'rpc' ? rpcFrame(rng, t) : proto === 'raft' ? raftFrame(rng, t, from, t.ids[node]) : meshsubFrame(rng, t)
      // a third of the frames are sent as they are (the stream then reaches the deeper states)
      const mutation = rng.chance(0.33) ? 'none' : rng.pick(STREAM_MUTATIONS)
      batch.frames.push({ index, bytes: mutate(rng, valid.bytes, proto, mutation), kind: valid.kind, mutation })
    }
    yield batch
  }
}

// ---------------------------------------------------------------------------------------------
// sending

/**
 * What became of a batch: `refused` (no stream: the dial or the protocol was refused), `reset` (the
 * node reset the stream: a protocol violation or an identity that may not open it), `answered` (the
 * node sent something back and closed cleanly), `sent` (neither).
 */
type Outcome = 'sent' | 'refused' | 'reset' | 'answered'

interface Counts { frames: number, bytes: number, batches: number, refused: number, answered: number, reset: number }

function newCounts (): Counts { return { frames: 0, bytes: 0, batches: 0, refused: 0, answered: 0, reset: 0 } }

class Sender {
  readonly counts = new Map<string, Counts>()
  readonly recent: Array<{ index: number, proto: Proto, who: Who, node: string, kind: string, mutation: Mutation, hex: string, at: number }> = []

  constructor (private readonly hosts: Record<Who, NodeHost>, private readonly nodes: BenchProcess[], private readonly topic: string) {}

  #count (proto: Proto, who: Who): Counts {
    const key = `${proto}/${who}`
    let c = this.counts.get(key)
    if (c === undefined) { c = newCounts(); this.counts.set(key, c) }
    return c
  }

  #remember (b: Planned, f: Planned['frames'][number]): void {
    this.recent.push({ index: f.index, proto: b.proto, who: b.who, node: this.nodes[b.node].name, kind: f.kind, mutation: f.mutation, hex: Buffer.from(f.bytes.subarray(0, REPORT_HEX_BYTES)).toString('hex'), at: Date.now() })
    if (this.recent.length > RECENT_FRAMES) this.recent.shift()
  }

  async send (b: Planned): Promise<void> {
    const c = this.#count(b.proto, b.who)
    c.batches++
    if (b.proto === 'heartbeat') {
      for (const f of b.frames) {
        this.#remember(b, f)
        c.frames++
        c.bytes += f.bytes.byteLength
        try {
          await this.hosts.member.services.pubsub.publish(this.topic, f.bytes)
        } catch {
          c.refused++
        }
      }
      return
    }
    const outcome = await this.#sendStream(b, c)
    if (outcome === 'refused') c.refused++
    else if (outcome === 'answered') c.answered++
    else if (outcome === 'reset') c.reset++
  }

  async #sendStream (b: Planned, c: Counts): Promise<Outcome> {
    const node = this.nodes[b.node]
    const protocol = b.proto === 'rpc' ? RPC : b.proto === 'raft' ? RAFT : MESHSUB
    let stream: Stream
    try {
      stream = await this.hosts[b.who].dialProtocol(multiaddr(node.addr), protocol, { signal: AbortSignal.timeout(OPEN_TIMEOUT_MS) })
    } catch {
      for (const f of b.frames) { this.#remember(b, f); c.frames++ } // planned and counted: the node refused them
      return 'refused'
    }
    let answered = false
    let resetByNode = false
    const reading = (async () => {
      try {
        for await (const _ of stream) answered = true
      } catch {
        resetByNode = true
      }
    })()
    let outcome: Outcome = 'sent'
    try {
      for (const f of b.frames) {
        this.#remember(b, f)
        c.frames++
        c.bytes += f.bytes.byteLength
        if (f.bytes.byteLength === 0) continue
        if (!stream.send(f.bytes)) await stream.onDrain({ signal: AbortSignal.timeout(OPEN_TIMEOUT_MS) })
      }
      await stream.close({ signal: AbortSignal.timeout(ANSWER_WAIT_MS) }).catch(() => {})
    } catch {
      outcome = 'reset'
    }
    await Promise.race([reading, new Promise((resolve) => setTimeout(resolve, ANSWER_WAIT_MS))])
    if (stream.status === 'open') stream.abort(new Error('fuzz batch done'))
    if (resetByNode) return 'reset'
    return answered && outcome === 'sent' ? 'answered' : outcome
  }
}

// ---------------------------------------------------------------------------------------------
// the writer

/** `errors`: count by error name; `first`: the first message of each. */
interface WriterStats { ok: number, failed: number, errors: Map<string, number>, first: Map<string, string> }

async function putAndCheck (client: DfsClient, path: string, bytes: Uint8Array, timeoutMs = 30_000): Promise<void> {
  async function * body (): AsyncGenerator<Uint8Array> { yield bytes }
  await client.rpc.upload('fs.put', { path }, body(), { timeoutMs })
  const { body: got } = await client.rpc.download('fs.get', { path }, { timeoutMs })
  const hash = createHash('sha256')
  for await (const chunk of got) hash.update(chunk)
  if (hash.digest('hex') !== createHash('sha256').update(bytes).digest('hex')) throw new Error(`read back different bytes of ${path}`)
}

/** Consecutive failed puts after which the check after the fuzzing gives up (the cluster is broken). */
const FAILED_PUTS_AFTER_MAX = 3

async function writeLoop (client: DfsClient, stats: WriterStats, prefix: string, until: () => boolean, rng: Rng, limit = Infinity): Promise<void> {
  for (let i = 0; !until() && i < limit; i++) {
    if (limit !== Infinity && stats.failed >= FAILED_PUTS_AFTER_MAX && stats.ok === 0) return
    const bytes = rng.bytes(rng.range(1, WRITE_BYTES_MAX))
    try {
      await putAndCheck(client, `${prefix}/${i % 50}`, bytes)
      stats.ok++
    } catch (err) {
      stats.failed++
      const name = (err as Error).name ?? 'Error'
      stats.errors.set(name, (stats.errors.get(name) ?? 0) + 1)
      if (!stats.first.has(name)) stats.first.set(name, (err as Error).message)
    }
  }
}

// ---------------------------------------------------------------------------------------------
// main

/** Deadline of each step of forming the cluster. */
const SETUP_STEP_TIMEOUT_MS = 60_000

async function waitUntil (probe: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + SETUP_STEP_TIMEOUT_MS
  while (!(await probe().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

function rssKiB (pid: number | undefined): Promise<number | undefined> {
  if (pid === undefined) return Promise.resolve(undefined)
  return readFile(`/proc/${pid}/status`, 'utf8').then((s) => Number(/VmRSS:\s+(\d+)/.exec(s)?.[1]), () => undefined)
}

async function main (): Promise<void> {
  const bench = await benchNodes('dfs-fuzz-', process.env.FUZZ_DEBUG ?? '')
  const stderrTail = new Map<string, string>()
  const crashes: Array<{ node: string, code: unknown, at: number, stderr: string }> = []
  let fuzzing = true
  const started: BenchProcess[] = []
  const startNode = async (name: string, extra: string[]): Promise<BenchProcess> => {
    const p = await bench.start(name, join(bench.dir, name), extra, {
      onStderr: (chunk) => { stderrTail.set(name, ((stderrTail.get(name) ?? '') + chunk).slice(-8000)) }
    })
    started.push(p)
    void p.exited.then((code) => {
      if (name !== 'member' && fuzzing) crashes.push({ node: name, code, at: Date.now(), stderr: stderrTail.get(name) ?? '' })
    })
    return p
  }
  const hosts: NodeHost[] = []
  try {
    console.log(`fuzz: seed ${SEED}, ${FRAMES} frames${ONLY !== undefined ? ` (only frames ${String(args.only)})` : ''}, concurrency ${CONCURRENCY}`)
    const n1 = await startNode('n1', [])
    const admin = await bench.open(n1)
    const { token } = await admin.call('cluster.token.create', { ttlMs: 3600_000, uses: 3 })
    const joined = await Promise.all(['n2', 'n3'].map(async (name) => await startNode(name, ['--peers', n1.addr, '--join-token', token])))
    const nodes = [n1, ...joined]
    const { clusterId } = await admin.call('cluster.status', {})
    // the three are the voters of every group before the fourth joins: it stays a learner, so
    // stopping it takes no quorum away
    const ids = new Set(nodes.map((n) => n.id))
    const votersAre = async (want: Set<string>): Promise<boolean> => {
      const { groups } = await admin.call('cluster.shards', {})
      return groups.every((g) => g.voters.length === want.size && g.voters.every((v) => want.has(v)))
    }
    await waitUntil(async () => await votersAre(ids), 'the three nodes to be the voters of every group')
    const member = await startNode('member', ['--peers', n1.addr, '--join-token', token])
    await waitUntil(async () => (await admin.call('cluster.nodes', {})).nodes.length === 4, 'the fourth node to be a member')
    if (!(await votersAre(ids))) throw new Error('the fourth node became a voter: stopping it would take a quorum away')
    member.proc.kill('SIGTERM')
    await member.exited
    // the fuzzing starts once the nodes have noticed the member is gone (the writer's copies then go
    // to the three); only heartbeats the fuzzer sends with its key can make it look alive again
    await waitUntil(async () => (await admin.call('cluster.nodes', {})).nodes.find((n) => n.id === member.id)?.health === 'failed', 'the stopped member to be failed')
    const memberKey = await readKeyFile(join(member.dataDir, 'node.key'))
    const strangerKey: PrivateKey = await generateKeyPair('Ed25519')
    const target: Target = { ids: nodes.map((n) => n.id), clusterId, memberId: member.id, strangerId: peerIdFromPrivateKey(strangerKey).toString() }
    for (const key of [strangerKey, memberKey]) hosts.push(await createHost({ privateKey: key, role: 'node' }))
    const [stranger, memberHost] = hosts
    const topic = heartbeatTopic(clusterId)
    memberHost.services.pubsub.subscribe(topic)
    for (const n of nodes) {
      await memberHost.dial(multiaddr(n.addr)).catch(() => {})
      await stranger.dial(multiaddr(n.addr)).catch(() => {})
    }
    console.log(`cluster ${clusterId}: ${nodes.map((n) => `${n.name} ${n.id.slice(-8)} pid ${n.proc.pid}`).join(', ')}; member key ${member.id.slice(-8)}; stranger ${target.strangerId.slice(-8)}`)

    const sender = new Sender({ stranger, member: memberHost }, nodes, topic)
    const rss = new Map<string, number[]>(nodes.map((n) => [n.name, []]))
    const writer: WriterStats = { ok: 0, failed: 0, errors: new Map(), first: new Map() }
    const t0 = Date.now()
    let planned = 0
    const sample = async (): Promise<void> => {
      for (const n of nodes) {
        const kib = await rssKiB(n.proc.exitCode === null ? n.proc.pid : undefined)
        if (kib !== undefined) rss.get(n.name)?.push(kib)
      }
    }
    await sample()
    const sampler = setInterval(() => {
      void sample().then(() => {
        const sent = [...sender.counts.values()].reduce((s, c) => s + c.frames, 0)
        const mem = nodes.map((n) => `${n.name} ${Math.round((rss.get(n.name)?.at(-1) ?? 0) / 1024)} MiB`).join(', ')
        console.log(`  ${((Date.now() - t0) / 1000).toFixed(0)} s: ${sent} frames, puts ${writer.ok} ok ${writer.failed} failed, RSS ${mem}, crashes ${crashes.length}`)
      })
    }, SAMPLE_MS)

    // the writer runs through its own client on n1 for the whole fuzzing
    const writerRng = new Rng(SEED ^ 0x5eed)
    const writing = writeLoop(admin, writer, '/fuzz-writer', () => !fuzzing, writerRng)

    let broken: { batch: Planned, error: string } | undefined
    const batches = plan(SEED, ONLY_LAST !== undefined ? ONLY_LAST + 1 : FRAMES, target)
    const worker = async (): Promise<void> => {
      for (;;) {
        if (crashes.length > 0 && args['keep-going'] !== true) return
        const next = batches.next()
        if (next.done === true) return
        let b = next.value
        if (!SEND_PROTOCOLS.has(b.proto) || !SEND_IDENTITIES.has(b.who)) continue
        if (ONLY !== undefined) {
          const only = b.frames.filter((f) => f.index >= ONLY[0] && f.index <= (ONLY_LAST ?? ONLY[0]))
          if (only.length === 0) continue
          b = { ...b, frames: only }
        }
        planned += b.frames.length
        await sender.send(b)
        if (args['check-each'] === true && broken === undefined) {
          try {
            await putAndCheck(admin, '/fuzz-check', writerRng.bytes(100), CHECK_TIMEOUT_MS)
          } catch (err) {
            broken = { batch: b, error: `${(err as Error).name}: ${(err as Error).message}` }
            return
          }
        }
      }
    }
    await Promise.all(Array.from({ length: args['check-each'] === true ? 1 : CONCURRENCY }, worker))
    const fuzzMs = Date.now() - t0
    // a crash may show a moment after its frame: give the nodes a few seconds before judging
    await new Promise((resolve) => setTimeout(resolve, 3000))
    fuzzing = false
    await writing
    const during = { ...writer, errors: new Map(writer.errors), first: new Map(writer.first) }
    const after: WriterStats = { ok: 0, failed: 0, errors: new Map(), first: new Map() }
    if (crashes.length === 0) await writeLoop(admin, after, '/fuzz-after', () => false, writerRng, PUTS_AFTER)
    await sample()
    clearInterval(sampler)
    // what each node serves now: a group that failed or has no leader shows here, not as a crash
    const health: string[] = []
    for (const n of nodes) {
      if (n.proc.exitCode !== null) { health.push(`${n.name}: exited`); continue }
      const c = await bench.open(n, 10_000).catch((err: Error) => err)
      if (c instanceof Error) { health.push(`${n.name}: cannot connect (${c.name}: ${c.message})`); continue }
      try {
        const { groups } = await c.call('cluster.shards', {})
        const leaderless = groups.filter((g) => g.leader === null).map((g) => g.group)
        await c.call('fs.ls', { path: '/' })
        health.push(`${n.name}: serves; groups without a leader: ${leaderless.length === 0 ? 'none' : leaderless.join(', ')}`)
      } catch (err) {
        health.push(`${n.name}: ${(err as Error).name}: ${(err as Error).message}`)
      } finally {
        await bench.close(c)
      }
    }

    // report
    console.log(`\nfuzz report (seed ${SEED}): ${planned} frames in ${(fuzzMs / 1000).toFixed(1)} s`)
    console.log('protocol/identity      frames     bytes  streams  refused  answered  reset')
    for (const [key, c] of [...sender.counts].sort()) {
      console.log(`${key.padEnd(20)} ${String(c.frames).padStart(8)} ${String(c.bytes).padStart(9)} ${String(c.batches).padStart(8)} ${String(c.refused).padStart(8)} ${String(c.answered).padStart(9)} ${String(c.reset).padStart(6)}`)
    }
    console.log('\nRSS per node (MiB): first, max, last over ' + (rss.get('n1')?.length ?? 0) + ' samples')
    for (const [name, xs] of rss) {
      console.log(`  ${name}: ${(xs[0] / 1024).toFixed(0)}, ${(Math.max(...xs) / 1024).toFixed(0)}, ${((xs.at(-1) ?? 0) / 1024).toFixed(0)}`)
    }
    const errs = (s: WriterStats): string => s.errors.size === 0 ? '' : ` (${[...s.errors].map(([k, v]) => `${k} ${v}, first: ${s.first.get(k) ?? ''}`).join('; ')})`
    console.log(`\nputs during the fuzzing: ${during.ok} ok, ${during.failed} failed${errs(during)}`)
    console.log(`puts after the fuzzing:  ${after.ok} ok, ${after.failed} failed${errs(after)}`)
    console.log(`node crashes: ${crashes.length}`)
    console.log(`nodes after the fuzzing:\n${health.map((h) => '  ' + h).join('\n')}`)
    for (const c of crashes) {
      console.log(`\n${c.node} exited (${String(c.code)}); the frames sent before it:`)
      const before = sender.recent.filter((f) => f.at <= c.at)
      for (const f of before.slice(-20)) console.log(`  #${f.index} ${f.proto}/${f.who} → ${f.node} ${f.kind} ${f.mutation} ${f.hex}`)
      console.log(`  replay one: npm run fuzz -- --seed ${SEED} --frames ${FRAMES} --only INDEX (or --only FIRST-LAST)`)
      console.log(`  stderr tail of ${c.node}:\n${c.stderr.split('\n').slice(-30).map((l) => '    ' + l).join('\n')}`)
    }
    if (broken !== undefined) {
      console.log(`\nthe put after batch #${broken.batch.first} (${broken.batch.proto}/${broken.batch.who} → ${nodes[broken.batch.node].name}) failed: ${broken.error}`)
      for (const f of broken.batch.frames) console.log(`  #${f.index} ${f.kind} ${f.mutation} ${Buffer.from(f.bytes).toString('hex')}`)
      for (const n of nodes) console.log(`  stderr tail of ${n.name} (FUZZ_DEBUG=${process.env.FUZZ_DEBUG ?? ''}):\n${(stderrTail.get(n.name) ?? '').split('\n').slice(-40).map((l) => '    ' + l).join('\n')}`)
    }
    if (crashes.length > 0) {
      const file = join(process.cwd(), `fuzz-crash-seed${SEED}.json`)
      await writeFile(file, JSON.stringify({ seed: SEED, frames: FRAMES, crashes, recent: sender.recent }, null, 2))
      console.log(`\nthe last ${sender.recent.length} frames: ${file}`)
    }
    const serving = health.every((h) => h.includes(': serves;'))
    process.exitCode = crashes.length === 0 && after.failed === 0 && broken === undefined && serving ? 0 : 1
  } finally {
    fuzzing = false
    for (const h of hosts) await Promise.resolve(h.stop()).catch(() => {})
    await bench.shutdown()
  }
}

await main()
