import { setMaxListeners } from 'node:events'
import { peerIdFromString } from '@libp2p/peer-id'
import {
  AbortedError, CorruptExtentError, EXTENT_CODECS, EXTENT_ID_PATTERN, EXTENT_SIZE_MAX, FrameTooLargeError, InvalidArgumentError,
  REPLICATION_FACTOR_MAX, isExtentCodec, type ExtentEncoding, type ExtentGetResult, type ExtentIdentity, type ExtentRecord,
  type ExtentReplicateParams, type ExtentStore, type PeerIdString
} from '@dfs/api'
import { integer, record, text } from './params.js'
import { defineMethod } from '../../net/rpc/define-method.js'
import type { LocalExtents } from '../local-extents.js'
import type { RpcMethod } from '../../net/rpc/types.js'

/**
 * The action `extent.get` is authorized as. Only cluster members may hold it: extent bytes are read
 * node to node, under the tenant checks the serving node already applied to the file request.
 */
export const EXTENT_READ_ACTION = 'extent.read'

/** Name of the node-to-node extent read. */
export const EXTENT_GET_METHOD = 'extent.get'

/**
 * The action `extent.put`, `extent.replicate` and `extent.delete` are authorized as: members only,
 * like reads. Users never write extents directly; a node writes them for the files it serves.
 */
export const EXTENT_WRITE_ACTION = 'extent.write'

/** Stores one copy (upload): params ExtentIdentity, body the bytes. */
export const EXTENT_PUT_METHOD = 'extent.put'

/** Makes the node hold a good copy, pulled from sources (unary): params ExtentReplicateParams. */
export const EXTENT_REPLICATE_METHOD = 'extent.replicate'

/** Deletes the node's copy (unary): params `{ id }`. */
export const EXTENT_DELETE_METHOD = 'extent.delete'

/** Most sources one `extent.replicate` may name. */
export const REPLICATE_SOURCES_MAX = 16

/**
 * Extent puts and replications one node serves at once (each holds up to EXTENT_SIZE_MAX bytes in
 * memory until stored); further calls wait for a slot, under their own deadline.
 */
export const EXTENT_WRITES_IN_FLIGHT_MAX = 8

const CHECKSUM_PATTERN = /^sha256:[0-9a-f]{64}$/
/** Longest PeerId text accepted (Ed25519 ids are 52 characters, RSA ones longer). */
const PEER_ID_CHARS_MAX = 128

/**
 * Extent reads one node serves at once (each holds up to EXTENT_SIZE_MAX bytes in memory until its
 * body is sent); further calls wait for a slot, under their own deadline.
 */
export const EXTENT_READS_IN_FLIGHT_MAX = 16

/**
 * `extent.get` (download): params `{ id[, encoded] }`, result `{ id, size, checksum[, codec,
 * storedSize] }` as the local store records them, body the extent's bytes: the logical bytes, or
 * with `encoded: true` the bytes as stored (`storedSize` bytes of `codec` when the result names one).
 * The store verifies the bytes against their checksum before they leave (a damaged copy is
 * CorruptExtent, a missing one NotFound, both typed on the wire); the caller still verifies them
 * against metadata's checksum, because it never trusts a peer.
 */
export function extentMethods (store: ExtentStore, init: { readsInFlightMax?: number } = {}): RpcMethod[] {
  const slots = new Slots(init.readsInFlightMax ?? EXTENT_READS_IN_FLIGHT_MAX)
  return [
    defineMethod(EXTENT_GET_METHOD, {
      action: EXTENT_READ_ACTION,
      kind: 'download',
      params: (raw) => {
        const p = record(raw, EXTENT_GET_METHOD)
        // a key this version does not know is ignored here (unlike the writes): an older node asked
        // for something newer still answers with the logical bytes, which every reader takes
        if (p.encoded !== undefined && typeof p.encoded !== 'boolean') throw new InvalidArgumentError('parameter encoded must be a boolean', { key: 'encoded' })
        return { id: extentId(p), encoded: p.encoded === true }
      },
      handle: async ({ params, signal }) => {
        const release = await slots.acquire(signal)
        // The slot is held until the body has been sent, or the call ends some other way (its signal
        // fires when the stream closes); `release` is idempotent.
        signal.addEventListener('abort', release, { once: true })
        try {
          if (params.encoded && store.getEncoded !== undefined) {
            const { info, bytes } = await store.getEncoded(params.id, { signal })
            const result: ExtentGetResult = info.codec === undefined
              ? { id: params.id, size: info.size, checksum: info.checksum }
              : { id: params.id, size: info.size, checksum: info.checksum, codec: info.codec, storedSize: info.storedSize }
            return { result, body: once(bytes, release) }
          }
          const bytes = await store.get(params.id, { signal })
          const info = await store.stat(params.id, { signal })
          // get verified the bytes against the header stat read; ids are immutable, so they agree
          if (info.size !== bytes.byteLength) {
            throw new Error(`store invariant broken: extent ${params.id} read ${bytes.byteLength} bytes, header says ${info.size}`)
          }
          const result: ExtentGetResult = { id: params.id, size: info.size, checksum: info.checksum }
          return { result, body: once(bytes, release) }
        } catch (err) {
          release()
          throw err
        }
      }
    })
  ]
}

/**
 * The node-to-node extent writes, served by `local` (this node's store and its reader of other nodes):
 * - `extent.put` (upload): params `{ id, size, checksum[, codec, storedSize] }`, body the bytes: the
 *   logical ones, or with `codec` the `storedSize` bytes of their encoding. Stored and fsync'd only if
 *   the body is as long as announced (CorruptExtent otherwise, nothing stored); the bytes are not
 *   decoded nor hashed again: the checksum is the coordinator's, which also checked its encoding
 *   (see the handler; every read verifies both); a body longer
 *   than the announced length is refused as FrameTooLarge as soon as it passes it, so no call makes
 *   the node hold more than EXTENT_SIZE_MAX. Result `{}`. The params are a strict map: a node built
 *   before codecs refuses `codec` as an unknown key (InvalidArgument) and so never stores encoded
 *   bytes as if they were the logical ones.
 * - `extent.replicate` (unary): result ExtentReplicateResult, `{ copied: false }` if the copy here was good.
 * - `extent.delete` (unary): result `{}`, also when there was no copy.
 */
export function extentWriteMethods (local: LocalExtents, init: { writesInFlightMax?: number } = {}): RpcMethod[] {
  const slots = new Slots(init.writesInFlightMax ?? EXTENT_WRITES_IN_FLIGHT_MAX)
  return [
    defineMethod(EXTENT_PUT_METHOD, {
      action: EXTENT_WRITE_ACTION,
      kind: 'upload',
      params: (raw) => encodedIdentity(record(raw, EXTENT_PUT_METHOD)),
      handle: async ({ params, body, signal }) => {
        const extent = params
        // from the moment the call is here, a delete of the id wins over it (see LocalExtents.putNew)
        return await local.putNew(extent.id, async () => {
          const release = await slots.acquire(signal)
          try {
            // Only members may call extent.put (NODE_ACTIONS; no role grants extent.write), and Noise
            // proved which one: the coordinator computed the checksum from these bytes (and checked
            // that an encoding decodes to them), and the AEAD proves they are the bytes it sent, so
            // they are not decoded nor hashed again here (reads verify)
            await local.put(extent, await receive(extent, body), { signal, checksumTrusted: true })
            return {}
          } finally {
            release()
          }
        })
      }
    }),
    defineMethod(EXTENT_REPLICATE_METHOD, {
      action: EXTENT_WRITE_ACTION,
      kind: 'unary',
      params: (raw): ExtentReplicateParams => {
        const p = record(raw, EXTENT_REPLICATE_METHOD)
        onlyKeys(p, ['extent', 'sources'], EXTENT_REPLICATE_METHOD)
        return { extent: extentRecord(p.extent), sources: peerIds(p.sources, 'sources', REPLICATE_SOURCES_MAX) }
      },
      handle: async ({ params, signal }) => {
        const { extent, sources } = params
        const release = await slots.acquire(signal)
        try {
          return await local.replicate(extent, sources, { signal })
        } finally {
          release()
        }
      }
    }),
    defineMethod(EXTENT_DELETE_METHOD, {
      action: EXTENT_WRITE_ACTION,
      kind: 'unary',
      params: (raw) => {
        const p = record(raw, EXTENT_DELETE_METHOD)
        onlyKeys(p, ['id'], EXTENT_DELETE_METHOD)
        return { id: extentId(p) }
      },
      handle: async ({ params, signal }) => {
        await local.delete(params.id, { signal })
        return {}
      }
    })
  ]
}

/**
 * Collects an upload's bytes, never more than announced (the encoded length with a codec, else the
 * size); a short body is CorruptExtent.
 */
async function receive (extent: ExtentIdentity & ExtentEncoding, body: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const length = extent.codec === undefined ? extent.size : extent.storedSize as number
  const bytes = new Uint8Array(length)
  let received = 0
  for await (const chunk of body) {
    if (received + chunk.byteLength > length) {
      throw new FrameTooLargeError(`the body of extent ${extent.id} is longer than the ${length} bytes announced`, {
        extentId: extent.id, size: length, sizeMax: EXTENT_SIZE_MAX
      })
    }
    bytes.set(chunk, received)
    received += chunk.byteLength
  }
  if (received !== length) {
    throw new CorruptExtentError(extent.id, extent.checksum, 'unknown', {
      expectedSize: length, actualSize: received, reason: 'the body is shorter than the size announced'
    })
  }
  return bytes
}

/** `extent.put` params: an identity, and the codec and encoded length of the body if it is encoded. */
function encodedIdentity (p: Record<string, unknown>): ExtentIdentity & ExtentEncoding {
  onlyKeys(p, ['id', 'size', 'checksum', 'codec', 'storedSize'], 'an extent')
  const extent = identity({ id: p.id, size: p.size, checksum: p.checksum })
  if (p.codec === undefined && p.storedSize === undefined) return extent
  if (!isExtentCodec(p.codec)) {
    throw new InvalidArgumentError(`codec ${JSON.stringify(p.codec)} is not one of ${EXTENT_CODECS.join(', ')}`, { key: 'codec' })
  }
  // encoded only when smaller: the body never exceeds the logical size
  const storedSize = integer(p, 'storedSize', { min: 0, max: Math.max(0, extent.size - 1) }) as number
  return { ...extent, codec: p.codec, storedSize }
}

function extentId (p: Record<string, unknown>): string {
  const id = text(p, 'id', { max: 36 })
  if (!EXTENT_ID_PATTERN.test(id)) throw new InvalidArgumentError(`${JSON.stringify(id)} is not an extent id`, { key: 'id' })
  return id
}

function identity (p: Record<string, unknown>): ExtentIdentity {
  onlyKeys(p, ['id', 'size', 'checksum'], 'an extent')
  const id = extentId(p)
  const size = integer(p, 'size', { min: 0, max: EXTENT_SIZE_MAX }) as number
  const checksum = text(p, 'checksum', { max: 71 })
  if (!CHECKSUM_PATTERN.test(checksum)) throw new InvalidArgumentError(`checksum ${JSON.stringify(checksum)} is not sha256:<64 lower-case hex digits>`, { key: 'checksum' })
  return { id, size, checksum }
}

function extentRecord (raw: unknown): ExtentRecord {
  const p = record(raw, 'extent')
  onlyKeys(p, ['id', 'size', 'checksum', 'replicas'], 'an extent record')
  return { ...identity({ id: p.id, size: p.size, checksum: p.checksum }), replicas: peerIds(p.replicas, 'replicas', REPLICATION_FACTOR_MAX) }
}

/** A list of distinct PeerIds of at most `max` entries. */
function peerIds (raw: unknown, key: string, max: number): PeerIdString[] {
  if (!Array.isArray(raw) || raw.length > max) throw new InvalidArgumentError(`parameter ${key} must be a list of at most ${max} PeerIds`, { key })
  for (const peer of raw) {
    if (typeof peer !== 'string' || peer.length > PEER_ID_CHARS_MAX || !isPeerId(peer)) {
      throw new InvalidArgumentError(`parameter ${key} holds ${JSON.stringify(String(peer).slice(0, PEER_ID_CHARS_MAX))}, which is not a PeerId`, { key })
    }
  }
  if (new Set(raw).size !== raw.length) throw new InvalidArgumentError(`parameter ${key} lists a PeerId twice`, { key })
  return raw as PeerIdString[]
}

function isPeerId (text: string): boolean {
  try {
    peerIdFromString(text)
    return true
  } catch {
    return false
  }
}

/** Strict maps: a key this version does not know is refused, not ignored. */
function onlyKeys (p: Record<string, unknown>, keys: string[], what: string): void {
  for (const key of Object.keys(p)) {
    if (!keys.includes(key)) throw new InvalidArgumentError(`${what} has an unknown key ${JSON.stringify(key.slice(0, 64))}`, { key: key.slice(0, 64) })
  }
}

async function * once (bytes: Uint8Array, done: () => void): AsyncGenerator<Uint8Array> {
  try {
    if (bytes.byteLength > 0) yield bytes
  } finally {
    done()
  }
}

/** A counting semaphore whose waiters give up when their signal fires. */
class Slots {
  readonly #max: number
  #used = 0
  readonly #waiters: Array<() => void> = []

  constructor (max: number) {
    if (!(Number.isInteger(max) && max > 0)) throw new Error(`calls in flight must be a positive integer, got ${max}`)
    this.#max = max
  }

  async acquire (signal: AbortSignal): Promise<() => void> {
    if (signal.aborted) throw new AbortedError('extent call aborted before it started')
    if (this.#used < this.#max) {
      this.#used += 1
      return this.#releaser()
    }
    setMaxListeners(Infinity, signal)
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        const i = this.#waiters.indexOf(wake)
        if (i >= 0) this.#waiters.splice(i, 1)
        reject(new AbortedError('extent call aborted while waiting for a slot'))
      }
      const wake = (): void => {
        signal.removeEventListener('abort', onAbort)
        resolve()
      }
      this.#waiters.push(wake)
      signal.addEventListener('abort', onAbort, { once: true })
    })
    // the slot was handed over by the releaser: `#used` already counts it
    return this.#releaser()
  }

  #releaser (): () => void {
    let released = false
    return () => {
      if (released) return
      released = true
      const next = this.#waiters.shift()
      if (next != null) next()
      else this.#used -= 1
    }
  }
}
