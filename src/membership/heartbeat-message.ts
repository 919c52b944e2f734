import { decode as cborDecode, encode as cborEncode } from 'cborg'
import { multiaddr } from '@multiformats/multiaddr'
import { DfsError, type ErrorDetails } from '@dfs/api'
import {
  HEARTBEAT_ADDR_CHARS_MAX, HEARTBEAT_ADDRS_MAX, HEARTBEAT_BYTES_MAX, HEARTBEAT_NAME_CHARS_MAX, PEER_ID_CHARS_MAX
} from './constants.js'

/**
 * What a node announces on its cluster's heartbeat topic, CBOR-encoded (a map with exactly these keys):
 *
 *   id           text   the sender's PeerId; must equal the gossipsub `from` that its signature proves
 *   incarnation  uint   the sender's wall clock (ms) when its heartbeat service started: a restart
 *                       starts a new incarnation, so its `seq` may start again from 1
 *   seq          uint   1, 2, 3 … within an incarnation; (incarnation, seq) only grows, and a
 *                       receiver accepts a heartbeat only above the last it accepted from that
 *                       sender (so a replayed one is dropped). Both are in the signed payload.
 *   name, region text   as configured (`--name`, `--region`); may be empty
 *   addrs        [text] the sender's listen multiaddrs
 *   load         { extents: uint, bytes: uint }
 *   capacity     { bytes: uint }
 *   sentAtMs     uint   the sender's wall clock; informative only (liveness uses the receiver's clock)
 */
export interface Heartbeat {
  id: string
  incarnation: number
  seq: number
  name: string
  region: string
  addrs: string[]
  load: { extents: number, bytes: number }
  capacity: { bytes: number }
  sentAtMs: number
}

/** Why a heartbeat was refused: the bytes are not a valid heartbeat. */
export class InvalidHeartbeatError extends DfsError {
  constructor (message: string, details: ErrorDetails = {}) {
    super(message, details)
    this.name = 'InvalidHeartbeat'
  }
}

const KEYS = ['id', 'incarnation', 'seq', 'name', 'region', 'addrs', 'load', 'capacity', 'sentAtMs'] as const

const DECODE_OPTIONS = {
  strict: true,
  rejectDuplicateMapKeys: true,
  allowUndefined: false,
  allowInfinity: false,
  allowNaN: false,
  allowBigInt: false,
  allowIndefinite: false,
  useMaps: false,
  tags: []
}

export function encodeHeartbeat (heartbeat: Heartbeat): Uint8Array {
  // our own heartbeat passing our own checks is an invariant: assert it, before peers refuse it
  const bytes = cborEncode({
    id: heartbeat.id,
    incarnation: heartbeat.incarnation,
    seq: heartbeat.seq,
    name: heartbeat.name,
    region: heartbeat.region,
    addrs: heartbeat.addrs,
    load: { extents: heartbeat.load.extents, bytes: heartbeat.load.bytes },
    capacity: { bytes: heartbeat.capacity.bytes },
    sentAtMs: heartbeat.sentAtMs
  })
  decodeHeartbeat(bytes)
  return bytes
}

/** Decodes and checks a heartbeat from the network; throws InvalidHeartbeat naming the first fault. */
export function decodeHeartbeat (bytes: Uint8Array): Heartbeat {
  if (!(bytes instanceof Uint8Array)) throw new InvalidHeartbeatError('a heartbeat must be bytes')
  if (bytes.byteLength > HEARTBEAT_BYTES_MAX) {
    throw new InvalidHeartbeatError(`a heartbeat is at most ${HEARTBEAT_BYTES_MAX} bytes, got ${bytes.byteLength}`,
      { bytes: bytes.byteLength, bytesMax: HEARTBEAT_BYTES_MAX })
  }
  let value: unknown
  try {
    value = cborDecode(bytes, DECODE_OPTIONS)
  } catch (err) {
    throw new InvalidHeartbeatError(`a heartbeat is not valid CBOR: ${String((err as Error)?.message ?? err)}`)
  }
  const root = record(value, 'heartbeat', KEYS)
  const heartbeat: Heartbeat = {
    id: text(root.id, 'id', PEER_ID_CHARS_MAX, 1),
    incarnation: uint(root.incarnation, 'incarnation'),
    seq: uint(root.seq, 'seq'),
    name: text(root.name, 'name', HEARTBEAT_NAME_CHARS_MAX, 0),
    region: text(root.region, 'region', HEARTBEAT_NAME_CHARS_MAX, 0),
    addrs: addrs(root.addrs),
    load: (() => {
      const load = record(root.load, 'load', ['extents', 'bytes'] as const)
      return { extents: uint(load.extents, 'load.extents'), bytes: uint(load.bytes, 'load.bytes') }
    })(),
    capacity: (() => {
      const capacity = record(root.capacity, 'capacity', ['bytes'] as const)
      return { bytes: uint(capacity.bytes, 'capacity.bytes') }
    })(),
    sentAtMs: uint(root.sentAtMs, 'sentAtMs')
  }
  if (heartbeat.seq < 1) throw new InvalidHeartbeatError('seq starts at 1', { field: 'seq' })
  return heartbeat
}

function record<K extends string> (value: unknown, field: string, keys: readonly K[]): Record<K, unknown> {
  if (value == null || typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array ||
    Object.getPrototypeOf(value) !== Object.prototype) {
    throw new InvalidHeartbeatError(`${field} must be a map`, { field })
  }
  const own = Object.keys(value)
  for (const key of own) {
    if (!(keys as readonly string[]).includes(key)) throw new InvalidHeartbeatError(`${field} has an unknown key ${JSON.stringify(key.slice(0, 64))}`, { field })
  }
  for (const key of keys) {
    if (!Object.hasOwn(value, key)) throw new InvalidHeartbeatError(`${field} lacks ${key}`, { field: `${field}.${key}` })
  }
  return value as Record<K, unknown>
}

function uint (value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new InvalidHeartbeatError(`${field} must be an unsigned integer`, { field })
  }
  return value
}

// control characters would garble logs and terminals
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/

function text (value: unknown, field: string, charsMax: number, charsMin: number): string {
  if (typeof value !== 'string') throw new InvalidHeartbeatError(`${field} must be text`, { field })
  if (value.length < charsMin || value.length > charsMax) {
    throw new InvalidHeartbeatError(`${field} must have ${charsMin} to ${charsMax} characters, has ${value.length}`, { field })
  }
  if (CONTROL.test(value)) throw new InvalidHeartbeatError(`${field} contains control characters`, { field })
  return value
}

function addrs (value: unknown): string[] {
  if (!Array.isArray(value)) throw new InvalidHeartbeatError('addrs must be an array', { field: 'addrs' })
  if (value.length > HEARTBEAT_ADDRS_MAX) {
    throw new InvalidHeartbeatError(`addrs holds at most ${HEARTBEAT_ADDRS_MAX} addresses, got ${value.length}`, { field: 'addrs' })
  }
  return value.map((a, i) => {
    const s = text(a, `addrs[${i}]`, HEARTBEAT_ADDR_CHARS_MAX, 1)
    try {
      multiaddr(s)
    } catch {
      throw new InvalidHeartbeatError(`addrs[${i}] is not a multiaddr`, { field: `addrs[${i}]` })
    }
    return s
  })
}
