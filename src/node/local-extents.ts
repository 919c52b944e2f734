import { logger } from '@libp2p/logger'
import {
  AbortedError, CorruptExtentError, UnavailableError, decodeExtent, extentChecksum,
  type CallOptions, type ExtentEncoding, type ExtentIdentity, type ExtentRecord, type ExtentReplicateResult, type ExtentStore, type PeerIdString
} from '@dfs/api'
import type { ExtentReader } from './extents.js'

const log = logger('dfs:node:local-extents')

/**
 * How long a delete here keeps a coordinator's late copy of the same extent out (see `putNew`): a
 * write that cut a copy off deletes it at once, and the copy's own call, on another connection or
 * queued for a slot, can still be on its way.
 */
export const DELETED_REMEMBER_MS = 60_000
/** Most deleted ids remembered at once (the oldest are forgotten first). */
export const DELETED_REMEMBER_MAX = 100_000

/** A local put's options: see `LocalExtents.put`. */
export interface PutOptions extends CallOptions {
  checksumTrusted?: boolean
}

export interface LocalExtentsInit {
  nodeId: PeerIdString
  store: ExtentStore
  /** Fetches copies from other nodes (RemoteExtents). */
  reader: ExtentReader
}

/**
 * This node's side of replication: storing a copy only once it is known to be the right bytes, and
 * pulling a good copy from other nodes. Both the `extent.*` write RPCs and `ExtentPeers` for this
 * node itself use it, so a copy is checked the same way whoever asks.
 */
export class LocalExtents {
  readonly #nodeId: PeerIdString
  readonly #store: ExtentStore
  readonly #reader: ExtentReader
  /** Ids deleted here lately, each with when it is forgotten (epoch ms), oldest first. */
  readonly #deleted = new Map<string, number>()
  /** New copies being received or stored (`putNew`), by id; a delete marks them. */
  readonly #incoming = new Map<string, Set<{ deleted: boolean }>>()

  constructor (init: LocalExtentsInit) {
    this.#nodeId = init.nodeId
    this.#store = init.store
    this.#reader = init.reader
  }

  /**
   * Stores `bytes` as `extent` once they match its size and checksum (the store checks the checksum
   * before it writes anything, so bytes that do not match leave nothing behind). A copy of the same
   * bytes is success; a damaged copy is replaced; a good copy of other bytes under the same id is
   * AlreadyExists (extents are immutable, and a caller's claim does not outrank a good copy).
   * With `extent.codec`, `bytes` are encoded (`extent.storedSize` long): a store that keeps that codec
   * stores them as they are, any other gets them decoded.
   */
  /**
   * Stores `bytes` as `extent`; `checksumTrusted` as the store's put option (the caller computed
   * `extent.checksum` from these bytes, or received both from a member), otherwise the store hashes them.
   */
  async put (extent: ExtentIdentity & ExtentEncoding, bytes: Uint8Array, options: PutOptions = {}): Promise<void> {
    const length = extent.codec === undefined ? extent.size : extent.storedSize
    if (bytes.byteLength !== length) {
      throw new CorruptExtentError(extent.id, extent.checksum, 'unknown', {
        node: this.#nodeId, expectedSize: length ?? null, actualSize: bytes.byteLength, reason: 'the bytes are not the size announced'
      })
    }
    try {
      await this.#storeChecked(extent, bytes, options)
    } catch (err) {
      if ((err as Error)?.name !== 'AlreadyExists' || await this.#state(extent, options) !== 'corrupt') throw err
      log.error('extent %s: replacing a copy that does not verify', extent.id)
      await this.rewrite(extent, bytes, options)
    }
  }

  /**
   * Makes this node hold a good copy of `extent` as metadata records it: nothing to do if the local
   * copy verifies, else the bytes are fetched from `sources` (in order, never from this node) and
   * stored over whatever copy was here, since metadata's record is the truth about an extent.
   */
  async replicate (extent: ExtentRecord, sources: PeerIdString[], options: CallOptions = {}): Promise<ExtentReplicateResult> {
    const state = await this.#state(extent, options)
    if (state === 'good') return { copied: false }
    const order = [...new Set(sources)].filter((s) => s !== this.#nodeId)
    if (order.length === 0) {
      throw new UnavailableError(`extent ${extent.id} has no good copy here and no other source was given`, { extentId: extent.id, node: this.#nodeId, local: state })
    }
    // in the form the source stores it: an encoded copy is copied without decoding and encoding again
    const read = { signal: options.signal, order }
    const { encoding, bytes } = this.#reader.getEncoded === undefined
      ? { encoding: {}, bytes: await this.#reader.get(extent, read) }
      : await this.#reader.getEncoded(extent, read)
    const copy = { id: extent.id, size: extent.size, checksum: extent.checksum, ...encoding }
    if (state === 'missing') {
      await this.put(copy, bytes, options)
    } else {
      log.error('extent %s: replacing the local copy (%s) with one from the sources', extent.id, state)
      await this.rewrite(copy, bytes, options)
    }
    return { copied: true }
  }

  /**
   * Replaces the local copy with `bytes`, already verified against `extent` by the caller. Delete
   * then put: the store keeps ids immutable, and a crash in between loses only a copy that was bad.
   */
  async rewrite (extent: ExtentIdentity & ExtentEncoding, bytes: Uint8Array, options: PutOptions = {}): Promise<void> {
    await this.#store.delete(extent.id, options)
    await this.#storeChecked(extent, bytes, options)
  }

  /**
   * A coordinator's copy of a new extent (`extent.put`, or this node's own copy of a write): `run`
   * receives the bytes and stores them (with `put`). The write that sent it may have cut it off and
   * deleted it already, over another connection or while this call waited for a slot; so a copy
   * whose id was deleted here within DELETED_REMEMBER_MS is refused, and one a delete came for
   * while it ran is deleted once stored — either way Aborted, and nothing stays that no file
   * references. A copy fetched by `replicate` (repair, moves) is not held back by this.
   */
  async putNew<T> (id: string, run: () => Promise<T>): Promise<T> {
    if (this.#recentlyDeleted(id)) {
      throw new AbortedError(`extent ${id} was deleted here moments ago: a late copy of a write that cut it off is not stored`, { extentId: id, node: this.#nodeId })
    }
    const mark = { deleted: false }
    let marks = this.#incoming.get(id)
    if (marks === undefined) this.#incoming.set(id, marks = new Set())
    marks.add(mark)
    try {
      const result = await run()
      if (mark.deleted) {
        await this.#store.delete(id)
        throw new AbortedError(`extent ${id} was deleted while its copy was being stored here; the copy is gone`, { extentId: id, node: this.#nodeId })
      }
      return result
    } finally {
      marks.delete(mark)
      if (marks.size === 0 && this.#incoming.get(id) === marks) this.#incoming.delete(id)
    }
  }

  /** Deletes the local copy; a missing one is success. A coordinator's copy of it still on its way is kept out (see `putNew`). */
  async delete (id: string, options: CallOptions = {}): Promise<void> {
    for (const mark of this.#incoming.get(id) ?? []) mark.deleted = true
    this.#remember(id)
    await this.#store.delete(id, options)
  }

  #remember (id: string): void {
    const now = Date.now()
    this.#deleted.delete(id)
    this.#deleted.set(id, now + DELETED_REMEMBER_MS)
    for (const [old, until] of this.#deleted) {
      if (this.#deleted.size <= DELETED_REMEMBER_MAX && until > now) break
      this.#deleted.delete(old)
    }
  }

  #recentlyDeleted (id: string): boolean {
    const until = this.#deleted.get(id)
    return until !== undefined && until > Date.now()
  }

  async #storeChecked (extent: ExtentIdentity & ExtentEncoding, bytes: Uint8Array, options: PutOptions): Promise<void> {
    const { codec } = extent
    const given = { signal: options.signal, checksum: extent.checksum, checksumTrusted: options.checksumTrusted === true }
    const info = codec === undefined
      ? await this.#store.put(extent.id, bytes, given)
      : this.#store.codecs?.includes(codec) === true
        ? await this.#store.put(extent.id, bytes, { ...given, codec, size: extent.size })
        : await this.#store.put(extent.id, decodeExtent(extent, codec, bytes, { node: this.#nodeId }), given)
    // pair assertion with a store that may not honour `checksum`: what it computed must agree too
    if (info.size !== extent.size || info.checksum !== extent.checksum) {
      await this.#store.delete(extent.id)
      throw new CorruptExtentError(extent.id, extent.checksum, info.checksum, {
        node: this.#nodeId, expectedSize: extent.size, actualSize: info.size, reason: 'the stored bytes do not match the extent'
      })
    }
  }

  /** The local copy compared with `extent`: good, missing, corrupt (fails its own checksum) or different. */
  async #state (extent: ExtentIdentity, options: CallOptions): Promise<'good' | 'missing' | 'corrupt' | 'different'> {
    let bytes: Uint8Array
    try {
      bytes = await this.#store.get(extent.id, options)
    } catch (err) {
      if ((err as Error)?.name === 'NotFound') return 'missing'
      if ((err as Error)?.name === 'CorruptExtent') return 'corrupt'
      throw err
    }
    return bytes.byteLength === extent.size && extentChecksum(bytes) === extent.checksum ? 'good' : 'different'
  }
}
