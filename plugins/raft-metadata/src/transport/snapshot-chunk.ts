/**
 * Snapshots too large for one frame: the sender's side cuts a Snap message into chunk frames (see
 * codec.ts for the wire format), the receiver's side puts them together again and hands the Raft core
 * one Snap message, exactly the one that was sent, or nothing.
 *
 * The reassembler treats its input as hostile (the codec already checked each chunk on its own):
 *  - at most one snapshot per (group, sender) is in reassembly; a first chunk replaces an unfinished
 *    one from the same sender and group (the leader gave up on it and sent a newer one);
 *  - the chunks of a transfer must come in order, without gap or overlap, each declaring the same
 *    `total`; a chunk of the transfer that does not continue it ends it (the leader re-sends the
 *    snapshot once the follower stays behind: Raft tolerates the loss of a Snap message); a chunk of
 *    another transfer (another `id`) without a head is refused alone;
 *  - the declared totals of everything in reassembly are reserved against `bytesMax`, the number of
 *    transfers against `reassembliesMax`; a first chunk that does not fit is refused;
 *  - a transfer without a chunk for `stallMs` is dropped (`sweep`);
 *  - a snapshot is delivered only when its bytes are all there and their SHA-256 is the one the last
 *    chunk declares.
 */
import { createHash } from 'node:crypto'
import type { Hash } from 'node:crypto'
import type { Message, NodeId } from '../raft/index.js'
import { encodeSnapshotChunk } from './codec.js'
import type { SnapshotChunk } from './codec.js'
import { SNAPSHOT_BYTES_MAX, SNAPSHOT_CHUNK_BYTES_MAX, SNAPSHOT_REASSEMBLIES_MAX } from './constants.js'

/**
 * The chunk frames of Snap message `m` of `group`, made one at a time as they are taken (a transfer
 * never holds a second copy of the snapshot), the SHA-256 computed along the way. `chunkBytes` is the
 * payload per chunk. Throws a plain Error for a message that is not a Snap with 1..SNAPSHOT_BYTES_MAX
 * bytes of data (the caller checks the size first).
 */
export function * snapshotChunkFrames (group: number, id: number, m: Message, chunkBytes: number): Generator<Uint8Array> {
  const snap = m.snapshot
  if (snap === undefined) throw new Error('raft transport: a chunked snapshot needs a Snap message')
  const data = snap.data
  const total = data.byteLength
  if (total === 0 || total > SNAPSHOT_BYTES_MAX) throw new Error(`raft transport: snapshot of ${total} bytes cannot be chunked`)
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 1 || chunkBytes > SNAPSHOT_CHUNK_BYTES_MAX) {
    throw new Error(`raft transport: chunk size ${chunkBytes} is not in 1..${SNAPSHOT_CHUNK_BYTES_MAX}`)
  }
  const head: Message = { ...m, snapshot: { metadata: snap.metadata, data: new Uint8Array(0) } }
  const hash = createHash('sha256')
  for (let offset = 0; offset < total; offset += chunkBytes) {
    const part = data.subarray(offset, Math.min(total, offset + chunkBytes))
    hash.update(part)
    const last = offset + part.byteLength === total
    yield encodeSnapshotChunk({
      group,
      id,
      offset,
      total,
      data: part,
      ...(offset === 0 ? { head } : {}),
      ...(last ? { sha256: new Uint8Array(hash.digest()) } : {})
    })
  }
}

export interface SnapshotReassemblerInit {
  /** Most bytes (declared totals) in reassembly at once. */
  bytesMax: number
  /** A transfer without a chunk for this long is dropped by `sweep`. */
  stallMs: number
  /** Most transfers in reassembly at once (default SNAPSHOT_REASSEMBLIES_MAX). */
  reassembliesMax?: number
  /** Milliseconds (the transport's clock). */
  now: () => number
}

/** What became of one chunk. */
export type ChunkOutcome =
  | { kind: 'pending' }
  | { kind: 'complete', message: Message }
  /** The chunk was dropped, and with it the transfer it did not continue (if any). */
  | { kind: 'refused', reason: string }

interface Assembly {
  peer: NodeId
  group: number
  id: number
  total: number
  /** Bytes received so far: the offset the next chunk must have. received < total while in the map. */
  received: number
  parts: Uint8Array[]
  hash: Hash
  head: Message
  lastChunkMs: number
}

export class SnapshotReassembler {
  readonly #bytesMax: number
  readonly #stallMs: number
  readonly #reassembliesMax: number
  readonly #now: () => number
  /** Transfers in reassembly by `group/peer`. Invariant: #reserved is the sum of their totals. */
  readonly #assemblies = new Map<string, Assembly>()
  #reserved = 0

  constructor (init: SnapshotReassemblerInit) {
    this.#bytesMax = init.bytesMax
    this.#stallMs = init.stallMs
    this.#reassembliesMax = init.reassembliesMax ?? SNAPSHOT_REASSEMBLIES_MAX
    this.#now = init.now
  }

  /** Bytes reserved by the transfers in reassembly (their declared totals). */
  get bytesReserved (): number {
    return this.#reserved
  }

  /** Transfers in reassembly. */
  get size (): number {
    return this.#assemblies.size
  }

  /**
   * Takes one chunk from `peer` (a chunk that decoded: codec.ts checked its own consistency; the
   * caller checked the head's sender and addressee). Never throws for anything the peer sent.
   */
  add (peer: NodeId, c: SnapshotChunk): ChunkOutcome {
    this.sweep()
    const key = `${c.group}/${peer}`
    let a = this.#assemblies.get(key)
    if (c.head !== undefined) {
      // A new transfer from this sender for this group replaces an unfinished one.
      if (a !== undefined) this.#delete(key, a)
      if (this.#assemblies.size >= this.#reassembliesMax) {
        return { kind: 'refused', reason: `${this.#assemblies.size} snapshots are already in reassembly, the most kept` }
      }
      if (this.#reserved + c.total > this.#bytesMax) {
        return { kind: 'refused', reason: `a snapshot of ${c.total} bytes does not fit: ${this.#reserved} of ${this.#bytesMax} bytes in reassembly` }
      }
      a = {
        peer, group: c.group, id: c.id, total: c.total, received: 0, parts: [], hash: createHash('sha256'), head: c.head, lastChunkMs: this.#now()
      }
      this.#assemblies.set(key, a)
      this.#reserved += a.total
    } else if (a === undefined || c.id !== a.id) {
      // A straggler of a transfer this sender gave up (or never began here): it cannot end the one
      // in progress, which a newer head started.
      return { kind: 'refused', reason: `chunk of transfer ${c.id} at ${c.offset}: that transfer is not in reassembly` }
    }
    if (c.total !== a.total || c.offset !== a.received) {
      this.#delete(key, a)
      return {
        kind: 'refused',
        reason: `chunk of transfer ${c.id} (${c.total} bytes) at ${c.offset} does not continue transfer ${a.id} (${a.total} bytes) at ${a.received}`
      }
    }
    // The codec guarantees offset + |data| <= total, so the transfer never holds more than it declared.
    a.parts.push(c.data)
    a.hash.update(c.data)
    a.received += c.data.byteLength
    a.lastChunkMs = this.#now()
    if (a.received < a.total) return { kind: 'pending' }
    this.#delete(key, a)
    const digest = a.hash.digest()
    if (c.sha256 === undefined || !digest.equals(c.sha256)) {
      return { kind: 'refused', reason: `snapshot of ${a.total} bytes from transfer ${a.id}: SHA-256 mismatch` }
    }
    const data = a.parts.length === 1 ? a.parts[0] : new Uint8Array(Buffer.concat(a.parts, a.total))
    const snap = a.head.snapshot
    if (snap === undefined) throw new Error('raft transport: a reassembly head without a snapshot') // the codec checked it
    return { kind: 'complete', message: { ...a.head, snapshot: { metadata: snap.metadata, data } } }
  }

  /** Drops the transfers that had no chunk for `stallMs`; returns how many. */
  sweep (): number {
    const now = this.#now()
    let dropped = 0
    for (const [key, a] of this.#assemblies) {
      if (now - a.lastChunkMs >= this.#stallMs) {
        this.#delete(key, a)
        dropped++
      }
    }
    return dropped
  }

  /** Drops every transfer (the transport stops). */
  clear (): void {
    this.#assemblies.clear()
    this.#reserved = 0
  }

  #delete (key: string, a: Assembly): void {
    if (this.#assemblies.get(key) !== a) return
    this.#assemblies.delete(key)
    this.#reserved -= a.total
  }
}
