import { setMaxListeners } from 'node:events'
import { logger } from '@libp2p/logger'
import {
  Deadline, DeadlineExceededError, EXTENT_SIZE_MAX, InvalidArgumentError,
  type CallOptions, type ExtentEncoding, type ExtentIdentity, type ExtentPeers, type ExtentRecord, type ExtentStore, type PeerIdString
} from '@dfs/api'
import { CALL_TIMEOUT_MS_DEFAULT } from '../net/constants.js'
import { EXTENT_DELETE_METHOD, EXTENT_PUT_METHOD, EXTENT_REPLICATE_METHOD } from './handlers/extent.js'
import { LocalExtents } from './local-extents.js'
import type { RemoteExtents } from './extents.js'
import type { RpcClient } from '../net/rpc/client.js'

const log = logger('dfs:node:extent-peers')

/** Deadline of one put, replicate or delete when the caller's signal sets none. */
export const EXTENT_PEER_CALL_TIMEOUT_MS_DEFAULT = CALL_TIMEOUT_MS_DEFAULT

export interface RpcExtentPeersInit {
  nodeId: PeerIdString
  store: ExtentStore
  /**
   * Reads copies and holds this node's RPC client of every peer (its addresses and DHT fallback
   * come from how it was built), so reads and writes to one peer share one client.
   */
  reader: RemoteExtents
  /** Deadline of each put, replicate and delete; EXTENT_PEER_CALL_TIMEOUT_MS_DEFAULT if absent. */
  callTimeoutMs?: number
}

/**
 * ExtentPeers over the `extent.*` RPCs of other nodes; calls for this node itself go to the local
 * store through the same checks the RPC handlers apply, without a round trip to itself.
 */
export class RpcExtentPeers implements ExtentPeers {
  readonly #nodeId: PeerIdString
  readonly #reader: RemoteExtents
  readonly #local: LocalExtents
  readonly #callTimeoutMs: number

  constructor (init: RpcExtentPeersInit) {
    this.#nodeId = init.nodeId
    this.#reader = init.reader
    this.#local = new LocalExtents({ nodeId: init.nodeId, store: init.store, reader: init.reader })
    this.#callTimeoutMs = init.callTimeoutMs ?? EXTENT_PEER_CALL_TIMEOUT_MS_DEFAULT
    if (!(this.#callTimeoutMs > 0)) throw new Error(`callTimeoutMs must be positive, got ${this.#callTimeoutMs}`)
  }

  /** This node's side, to serve the `extent.*` write RPCs with (`extentWriteMethods`). */
  get local (): LocalExtents {
    return this.#local
  }

  async put (peer: PeerIdString, extent: ExtentIdentity & ExtentEncoding, bytes: Uint8Array, options: CallOptions = {}): Promise<void> {
    if (!(bytes instanceof Uint8Array) || bytes.byteLength > EXTENT_SIZE_MAX) {
      throw new InvalidArgumentError(`extent ${extent.id} must be at most ${EXTENT_SIZE_MAX} bytes`, { extentId: extent.id, size: bytes?.byteLength, sizeMax: EXTENT_SIZE_MAX })
    }
    // the caller computed the checksum from these bytes (see ExtentPeers.put)
    if (peer === this.#nodeId) {
      return await this.#local.putNew(extent.id, async () => { await this.#local.put(extent, bytes, { ...options, checksumTrusted: true }) })
    }
    // the codec travels only with encoded bytes: a node built before codecs refuses the key
    const params = extent.codec === undefined
      ? { id: extent.id, size: extent.size, checksum: extent.checksum }
      : { id: extent.id, size: extent.size, checksum: extent.checksum, codec: extent.codec, storedSize: extent.storedSize }
    await this.#call(peer, EXTENT_PUT_METHOD, options, async (client, signal) => {
      await client.upload(EXTENT_PUT_METHOD, params, once(bytes), { signal })
    })
  }

  async replicate (peer: PeerIdString, extent: ExtentRecord, sources: PeerIdString[], options: CallOptions = {}): Promise<void> {
    if (peer === this.#nodeId) {
      await this.#local.replicate(extent, sources, options)
      return
    }
    const params = { extent: { id: extent.id, size: extent.size, checksum: extent.checksum, replicas: extent.replicas }, sources }
    await this.#call(peer, EXTENT_REPLICATE_METHOD, options, async (client, signal) => {
      // the peer stops a little before this deadline, so its own error (which source failed how) arrives
      await client.call(EXTENT_REPLICATE_METHOD, params, { signal, timeoutMs: this.#callTimeoutMs })
    })
  }

  async delete (peer: PeerIdString, id: string, options: CallOptions = {}): Promise<void> {
    if (peer === this.#nodeId) return await this.#local.delete(id, options)
    await this.#call(peer, EXTENT_DELETE_METHOD, options, async (client, signal) => {
      await client.call(EXTENT_DELETE_METHOD, { id }, { signal, timeoutMs: this.#callTimeoutMs })
    })
  }

  /**
   * Reads a verified copy from `order` (default: this node, then the extent's replicas). When this
   * node's copy was corrupt and another node's was good, the local copy is rewritten from the good
   * bytes; a failure to do so is logged, not thrown (the read itself succeeded).
   */
  async read (extent: ExtentRecord, options: CallOptions & { order?: PeerIdString[] } = {}): Promise<Uint8Array> {
    const order = options.order ?? [this.#nodeId, ...extent.replicas]
    let localCorrupt = false
    const bytes = await this.#reader.get(extent, {
      signal: options.signal,
      order,
      onFailure: (f) => { if (f.node === this.#nodeId && f.error === 'CorruptExtent') localCorrupt = true }
    })
    if (localCorrupt) {
      try {
        await this.#local.rewrite(extent, bytes, { signal: options.signal })
        log('extent %s: rewrote the corrupt local copy from a good one', extent.id)
      } catch (err) {
        log.error('extent %s: rewriting the corrupt local copy failed: %s: %s', extent.id, (err as Error)?.name, (err as Error)?.message)
      }
    }
    return bytes
  }

  /** One call to `peer` under the caller's signal and this component's deadline. */
  async #call (peer: PeerIdString, method: string, options: CallOptions, run: (client: RpcClient, signal: AbortSignal) => Promise<void>): Promise<void> {
    const timeoutMs = this.#callTimeoutMs
    const deadline = new Deadline(timeoutMs, options.signal)
    setMaxListeners(Infinity, deadline.signal)
    try {
      await this.#reader.withPeer(peer, deadline.signal, async (client) => { await run(client, deadline.signal) })
    } catch (err) {
      // our own deadline ended it: say so, whatever the layer below made of the abort
      if (deadline.expired) throw new DeadlineExceededError(`${method} on ${peer} did not finish within ${timeoutMs} ms`, { node: peer, method, timeoutMs })
      throw err
    } finally {
      deadline.clear()
    }
  }
}

async function * once (bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  if (bytes.byteLength > 0) yield bytes
}
