import { createHash } from 'node:crypto'
import { setMaxListeners } from 'node:events'
import { logger } from '@libp2p/logger'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import {
  AbortedError, CorruptExtentError, DeadlineExceededError, DfsError, EXTENT_ID_PATTERN, EXTENT_SIZE_MAX,
  InvalidArgumentError, MalformedFrameError, NotFoundError, UnavailableError, decodeExtent, errorToWire, isExtentCodec,
  type CallOptions, type ExtentEncoding, type ExtentGetResult, type ExtentRecord, type ExtentStore, type PeerIdString
} from '@dfs/api'
import { CALL_TIMEOUT_MS_DEFAULT } from '../net/constants.js'
import { RpcClient } from '../net/rpc/client.js'
import { EXTENT_GET_METHOD } from './handlers/extent.js'
import type { Host } from '../net/host.js'
import type { PeerId } from '@libp2p/interface'

const log = logger('dfs:node:extents')

/**
 * Longest one replica may go without progress (connected, answered, sent more bytes) before the
 * next replica is tried. A progress deadline, not a total one: a big extent from a busy but working
 * peer is not abandoned, a silent peer is.
 */
export const REPLICA_IDLE_TIMEOUT_MS_DEFAULT = 5_000

/** Deadline of a whole `get`, over all the replicas it tries. */
export const EXTENT_READ_TIMEOUT_MS_DEFAULT = CALL_TIMEOUT_MS_DEFAULT

/** Dial deadline of a replica (capped at the replica idle timeout). */
export const REPLICA_DIAL_TIMEOUT_MS_DEFAULT = 5_000

/** RPC clients kept, one per peer; the least recently used is closed beyond this. */
export const PEER_CLIENTS_MAX = 64

/** The checksum algorithm this build verifies; a record naming another is refused, not skipped. */
const CHECKSUM_PATTERN = /^sha256:[0-9a-f]{64}$/

/** Reads an extent's bytes given its metadata record. What FileService needs; RemoteExtents is one. */
export interface ExtentReader {
  /** The logical bytes, verified. */
  get: (extent: ExtentRecord, options?: ExtentReadOptions) => Promise<Uint8Array>
  /**
   * A verified copy in the form the replica that served it stores it (encoded bytes and their codec,
   * or the logical bytes and no codec), to store again without decoding and encoding. Optional.
   */
  getEncoded?: (extent: ExtentRecord, options?: ExtentReadOptions) => Promise<EncodedCopy>
}

/** `getEncoded`: `bytes` are `encoding.codec`'s encoding of the extent, or its logical bytes without one. */
export interface EncodedCopy {
  encoding: ExtentEncoding
  bytes: Uint8Array
}

/**
 * One verified copy as a read found it: what was stored or sent, and the logical bytes (the same
 * buffer when raw); only a local copy read in its stored form leaves them out.
 */
interface Copy extends EncodedCopy {
  logical?: Uint8Array
}

export interface ExtentReadOptions extends CallOptions {
  /** Deadline of the whole read over every replica tried; EXTENT_READ_TIMEOUT_MS_DEFAULT if absent. */
  timeoutMs?: number
  /**
   * The nodes to try, in this order, instead of the local copy and then `extent.replicas` in the
   * configured order: a caller that knows better (a repair copying from chosen sources, a read
   * ordered by health and distance) says exactly where to look. This node is tried only if listed.
   */
  order?: PeerIdString[]
  /** Told of each failed attempt as it happens, also when a later one succeeds (e.g. to heal a bad local copy). */
  onFailure?: (failure: ReplicaFailure) => void
}

/** Most nodes one read may be told to try (`order`): far more than any replication factor. */
export const READ_ORDER_MAX = 32

export interface RemoteExtentsInit {
  /** The node's libp2p host: replicas are dialled by PeerId from it. */
  host: Host
  /** PeerId of this node: the replica served from `store`. */
  nodeId: PeerIdString
  /** This node's extent store. */
  store: ExtentStore
  /**
   * Multiaddrs at which `peer` can be dialled (e.g. its member record's addrs). They are merged
   * into the host's peer store before a replica the host is not connected to is dialled; without
   * the callback, the peer store must know the addresses already.
   */
  resolveAddrs?: (peer: PeerIdString) => string[] | Promise<string[]>
  /**
   * Asked when a replica this host was not connected to cannot be reached: finds its current
   * addresses (MemberLocator, through the DHT) and says whether one more attempt is worth it.
   */
  locate?: (peer: PeerIdString, options?: CallOptions) => Promise<boolean>
  /**
   * Orders the remote replicas to try (e.g. healthy and near first, failed ones dropped); the local
   * copy is always tried first. Default: metadata's order.
   */
  orderReplicas?: (replicas: PeerIdString[]) => PeerIdString[]
  /** Longest one replica may go without progress; REPLICA_IDLE_TIMEOUT_MS_DEFAULT if absent. */
  replicaIdleTimeoutMs?: number
  /** Dial deadline of a replica; REPLICA_DIAL_TIMEOUT_MS_DEFAULT if absent. */
  dialTimeoutMs?: number
}

/** Evidence of one failed attempt, as it appears in `details.replicas` of the error `get` throws. */
export interface ReplicaFailure {
  node: PeerIdString
  error: string
  message: string
}

/**
 * Reads extents wherever they are: from the local store when this node holds a replica, else (or
 * when the local copy fails) from the other replicas in turn over `extent.get`. Every copy, the local
 * one included, is verified against the size and checksum metadata recorded; a replica that fails in
 * any way (unreachable, silent, missing, corrupt, wrong bytes) is recorded and the next one is tried.
 * When none succeeds, the error carries each replica's error name and message:
 * NotFound if every replica said NotFound, CorruptExtent if every one was corrupt, else Unavailable;
 * DeadlineExceeded or Aborted if the read's own deadline or signal ended it first.
 *
 * Holds at most one RpcClient per peer (and at most PEER_CLIENTS_MAX); `stop` closes them.
 */
export class RemoteExtents implements ExtentReader {
  readonly #host: Host
  readonly #nodeId: PeerIdString
  readonly #store: ExtentStore
  readonly #resolveAddrs: RemoteExtentsInit['resolveAddrs']
  readonly #locate: RemoteExtentsInit['locate']
  readonly #orderReplicas: RemoteExtentsInit['orderReplicas']
  readonly #replicaIdleTimeoutMs: number
  readonly #dialTimeoutMs: number
  /** One client per peer, in least-recently-used order (Map iteration order). */
  readonly #clients = new Map<PeerIdString, RpcClient>()
  readonly #peerIds = new Map<PeerIdString, PeerId>()
  /** Aborts every read in flight when the component stops. */
  readonly #stopping = new AbortController()

  constructor (init: RemoteExtentsInit) {
    this.#host = init.host
    this.#nodeId = init.nodeId
    this.#store = init.store
    this.#resolveAddrs = init.resolveAddrs
    this.#locate = init.locate
    this.#orderReplicas = init.orderReplicas
    this.#replicaIdleTimeoutMs = init.replicaIdleTimeoutMs ?? REPLICA_IDLE_TIMEOUT_MS_DEFAULT
    this.#dialTimeoutMs = init.dialTimeoutMs ?? REPLICA_DIAL_TIMEOUT_MS_DEFAULT
    if (!(this.#replicaIdleTimeoutMs > 0)) throw new Error(`replicaIdleTimeoutMs must be positive, got ${this.#replicaIdleTimeoutMs}`)
    if (!(this.#dialTimeoutMs > 0)) throw new Error(`dialTimeoutMs must be positive, got ${this.#dialTimeoutMs}`)
    setMaxListeners(Infinity, this.#stopping.signal)
  }

  /** Aborts reads in flight and closes every client. Further reads fail with Unavailable. */
  async stop (): Promise<void> {
    this.#stopping.abort(new UnavailableError('extent reads are stopping'))
    const clients = [...this.#clients.values()]
    this.#clients.clear()
    await Promise.all(clients.map(async (c) => { await c.close().catch(() => {}) }))
  }

  async get (extent: ExtentRecord, options: ExtentReadOptions = {}): Promise<Uint8Array> {
    const { logical } = await this.#get(extent, options, false)
    if (logical === undefined) throw new Error(`extent read invariant broken: no logical bytes of ${extent.id}`)
    return logical
  }

  async getEncoded (extent: ExtentRecord, options: ExtentReadOptions = {}): Promise<EncodedCopy> {
    const { encoding, bytes } = await this.#get(extent, options, true)
    return { encoding, bytes }
  }

  /**
   * Both reads. Remote replicas are always asked for their stored form (encoded bytes are fewer to
   * send, and the reader decodes them); `encoded` only says whether the local copy is read as stored.
   */
  async #get (extent: ExtentRecord, options: ExtentReadOptions, encoded: boolean): Promise<Copy> {
    checkRecord(extent)
    if (this.#stopping.signal.aborted) throw new UnavailableError('extent reads are stopped', { extentId: extent.id })
    const timeoutMs = options.timeoutMs ?? EXTENT_READ_TIMEOUT_MS_DEFAULT
    const deadline = new AbortController()
    const timer = setTimeout(() => {
      deadline.abort(new DeadlineExceededError(`reading extent ${extent.id} did not finish within ${timeoutMs} ms`, { extentId: extent.id, timeoutMs }))
    }, timeoutMs)
    const signals = [deadline.signal, this.#stopping.signal]
    if (options.signal != null) signals.push(options.signal)
    const signal = AbortSignal.any(signals)
    setMaxListeners(Infinity, signal)

    const failures: ReplicaFailure[] = []
    const order = options.order == null ? this.#order(extent.replicas) : explicitOrder(options.order, extent.id)
    try {
      for (const node of order) {
        if (signal.aborted) break
        try {
          const copy = node === this.#nodeId
            ? await this.#readLocal(extent, signal, encoded)
            : await this.#readRemote(node, extent, signal)
          if (failures.length > 0) log('extent %s read from %s after %d failed replicas', extent.id, node, failures.length)
          return copy
        } catch (err) {
          const wire = errorToWire(err)
          const failure = { node, error: wire.name, message: wire.message }
          failures.push(failure)
          log('extent %s: replica %s failed: %s: %s', extent.id, node, wire.name, wire.message)
          options.onFailure?.(failure)
        }
      }
      const untried = order.slice(failures.length)
      throw this.#failure(extent, failures, untried, { deadline: deadline.signal, caller: options.signal })
    } finally {
      clearTimeout(timer)
    }
  }

  /** The local replica first (when there is one), then the others in the configured order. */
  #order (replicas: PeerIdString[]): PeerIdString[] {
    const unique = [...new Set(replicas)]
    const remote = unique.filter((r) => r !== this.#nodeId)
    // a policy may reorder and drop replicas, never add one metadata does not list
    const ordered = this.#orderReplicas == null ? remote : [...new Set(this.#orderReplicas(remote))].filter((r) => remote.includes(r))
    return unique.includes(this.#nodeId) ? [this.#nodeId, ...ordered] : ordered
  }

  async #readLocal (extent: ExtentRecord, signal: AbortSignal, encoded: boolean): Promise<Copy> {
    if (encoded && this.#store.getEncoded !== undefined) {
      // the store decoded and verified the bytes against its header; check the header against metadata
      const { info, bytes } = await this.#store.getEncoded(extent.id, { signal })
      if (info.size !== extent.size || info.checksum !== extent.checksum) {
        throw new CorruptExtentError(extent.id, extent.checksum, info.checksum, {
          node: this.#nodeId, expectedSize: extent.size, actualSize: info.size, reason: 'the local copy does not match metadata'
        })
      }
      const encoding = info.codec === undefined ? {} : { codec: info.codec, storedSize: info.storedSize }
      return { encoding, bytes }
    }
    const bytes = await this.#store.get(extent.id, { signal })
    // The store verified the bytes against its own header; check that header against metadata (an
    // id's header never changes its size or checksum: extents are immutable), not the bytes again:
    // hashing them a second time cost a node serving a 256 MiB get ~1 ms of its main thread per MiB.
    const info = await this.#store.stat(extent.id, { signal })
    if (bytes.byteLength !== extent.size || info.size !== extent.size || info.checksum !== extent.checksum) {
      throw new CorruptExtentError(extent.id, extent.checksum, info.checksum, {
        node: this.#nodeId, expectedSize: extent.size, actualSize: bytes.byteLength, reason: 'the local copy does not match metadata'
      })
    }
    return { encoding: {}, bytes, logical: bytes }
  }

  /** One replica; if it was unreachable where it was thought to be, once more where the DHT says it is. */
  async #readRemote (node: PeerIdString, extent: ExtentRecord, outer: AbortSignal): Promise<Copy> {
    return await this.withPeer(node, outer, async (client) => await this.#readRemoteOnce(client, node, extent, outer))
  }

  /**
   * Runs `attempt` against `node` with this component's client of it (one client per peer, shared by
   * every extent RPC of this node); if the node was unreachable where it was thought to be, runs it
   * once more at the addresses `locate` finds. `attempt` must be safe to repeat.
   */
  async withPeer<T> (node: PeerIdString, signal: AbortSignal, attempt: (client: RpcClient) => Promise<T>): Promise<T> {
    const connected = this.#host.getConnections(this.#peerId(node)).length > 0
    try {
      return await attempt(await this.#client(node, signal))
    } catch (err) {
      if (connected || this.#locate == null || (err as Error)?.name !== 'NodeUnreachable' || signal.aborted) throw err
      if (!(await this.#locate(node, { signal }))) throw err
      log('node %s was unreachable (%s); trying the addresses the DHT told', node, (err as Error).message)
      return await attempt(await this.#client(node, signal))
    }
  }

  async #readRemoteOnce (client: RpcClient, node: PeerIdString, extent: ExtentRecord, outer: AbortSignal): Promise<Copy> {
    const attempt = new AbortController()
    const idleMs = this.#replicaIdleTimeoutMs
    const timer = setTimeout(() => {
      attempt.abort(new DeadlineExceededError(`replica ${node} made no progress sending extent ${extent.id} for ${idleMs} ms`, {
        extentId: extent.id, node, idleMs
      }))
    }, idleMs)
    const signal = AbortSignal.any([outer, attempt.signal])
    setMaxListeners(Infinity, signal)
    try {
      const { result, body } = await client.download(EXTENT_GET_METHOD, { id: extent.id, encoded: true }, { signal, timeoutMs: idleMs })
      timer.refresh()
      const checked = checkResult(result, extent, node)
      if (checked instanceof DfsError) {
        await abandon(body)
        throw checked
      }
      const encoding = checked
      // never trust a peer: count what arrives, never hold more than announced (at most the extent's
      // size), and hash the logical bytes (as they arrive when they are sent raw)
      const length = encoding.codec === undefined ? extent.size : encoding.storedSize as number
      const bytes = new Uint8Array(length)
      const hash = encoding.codec === undefined ? createHash('sha256') : undefined
      let received = 0
      for await (const chunk of body) {
        if (received + chunk.byteLength > length) {
          // leaving the loop abandons the download (its stream is aborted)
          throw new CorruptExtentError(extent.id, extent.checksum, 'unknown', {
            node, expectedSize: length, actualSize: `more than ${length}`, reason: 'the replica sent more bytes than the extent has'
          })
        }
        bytes.set(chunk, received)
        hash?.update(chunk)
        received += chunk.byteLength
        timer.refresh()
      }
      if (received !== length) {
        throw new CorruptExtentError(extent.id, extent.checksum, 'unknown', {
          node, expectedSize: length, actualSize: received, reason: 'the replica sent fewer bytes than announced'
        })
      }
      const logical = encoding.codec === undefined ? bytes : decodeExtent(extent, encoding.codec, bytes, { node })
      const actual = hash !== undefined ? 'sha256:' + hash.digest('hex') : sha256(logical)
      if (actual !== extent.checksum) {
        throw new CorruptExtentError(extent.id, extent.checksum, actual, {
          node, expectedSize: extent.size, actualSize: logical.byteLength, reason: 'the bytes the replica sent do not match metadata'
        })
      }
      return { encoding, bytes, logical }
    } catch (err) {
      // the attempt's own progress deadline passed: say so, whatever the layer below made of the abort
      if (attempt.signal.aborted && !outer.aborted) throw attempt.signal.reason
      throw err
    } finally {
      clearTimeout(timer)
    }
  }

  /** The client of `node`, created on first use; its addresses are merged while not connected. */
  /** The PeerId `node` names (parsed once per peer: every extent call needs it). */
  #peerId (node: PeerIdString): PeerId {
    let peerId = this.#peerIds.get(node)
    if (peerId !== undefined) return peerId
    try {
      peerId = peerIdFromString(node)
    } catch {
      throw new InvalidArgumentError(`replica ${JSON.stringify(node)} is not a PeerId`, { node })
    }
    // bounded like the clients: a node talks to the members of its cluster
    if (this.#peerIds.size >= PEER_CLIENTS_MAX) this.#peerIds.clear()
    this.#peerIds.set(node, peerId)
    return peerId
  }

  async #client (node: PeerIdString, signal: AbortSignal): Promise<RpcClient> {
    const peerId = this.#peerId(node)
    if (this.#resolveAddrs != null && this.#host.getConnections(peerId).length === 0) {
      const addrs = await this.#addrsOf(node)
      if (signal.aborted) throw signal.reason
      if (addrs.length > 0) await this.#host.peerStore.merge(peerId, { multiaddrs: addrs })
    }
    let client = this.#clients.get(node)
    if (client != null) {
      // most recently used last
      this.#clients.delete(node)
      this.#clients.set(node, client)
      return client
    }
    if (this.#stopping.signal.aborted) throw this.#stopping.signal.reason
    client = new RpcClient({ host: this.#host, target: peerId, dialTimeoutMs: Math.min(this.#dialTimeoutMs, this.#replicaIdleTimeoutMs) })
    this.#clients.set(node, client)
    while (this.#clients.size > PEER_CLIENTS_MAX) {
      const [oldest, evicted] = this.#clients.entries().next().value as [PeerIdString, RpcClient]
      this.#clients.delete(oldest)
      void evicted.close().catch(() => {})
    }
    return client
  }

  async #addrsOf (node: PeerIdString): Promise<Multiaddr[]> {
    let raw: string[]
    try {
      raw = await (this.#resolveAddrs as NonNullable<RemoteExtentsInit['resolveAddrs']>)(node)
    } catch (err) {
      // the peer store may still know where the node is: dial anyway
      log.error('could not resolve the addresses of %s: %s', node, (err as Error)?.message)
      return []
    }
    const out: Multiaddr[] = []
    for (const a of raw) {
      try {
        out.push(multiaddr(a))
      } catch {
        log.error('ignoring the invalid address %s of %s', a, node)
      }
    }
    return out
  }

  /** The error a read that found no good copy throws, with each replica's evidence. */
  #failure (extent: ExtentRecord, failures: ReplicaFailure[], untried: PeerIdString[], signals: { deadline: AbortSignal, caller?: AbortSignal }): DfsError {
    const details = { extentId: extent.id, replicas: failures, untried }
    const summary = failures.map((f) => `${f.node}: ${f.error}: ${f.message}`).join('; ')
    // the read itself was ended (not one replica): say which way, with what was learnt so far
    if (signals.caller?.aborted === true) return new AbortedError(`reading extent ${extent.id} was aborted`, details)
    if (this.#stopping.signal.aborted) return new UnavailableError(`reading extent ${extent.id} stopped: the node is stopping`, details)
    if (signals.deadline.aborted) {
      const reason = signals.deadline.reason as DeadlineExceededError
      return new DeadlineExceededError(`${reason.message} (${summary === '' ? 'no replica answered' : summary})`, { ...reason.details, ...details })
    }
    if (failures.length > 0 && failures.every((f) => f.error === 'NotFound')) {
      return new NotFoundError(`extent ${extent.id} is on none of its ${failures.length} replicas`, details)
    }
    if (failures.length > 0 && failures.every((f) => f.error === 'CorruptExtent')) {
      return new CorruptExtentError(extent.id, extent.checksum, `a bad copy on each of its ${failures.length} replicas`, { ...details, reason: `every replica is corrupt: ${summary}` })
    }
    return new UnavailableError(`extent ${extent.id} could not be read from any of its ${failures.length} replicas` +
      (summary === '' ? '' : `: ${summary}`), details)
  }
}

/** A caller's replica order: PeerId-shaped strings, each once, at most READ_ORDER_MAX. */
function explicitOrder (order: PeerIdString[], extentId: string): PeerIdString[] {
  if (!Array.isArray(order) || order.length > READ_ORDER_MAX || !order.every((n) => typeof n === 'string')) {
    throw new InvalidArgumentError(`the replica order of extent ${extentId} must be at most ${READ_ORDER_MAX} PeerIds`, { extentId })
  }
  return [...new Set(order)]
}

/** Metadata records are trusted but checked: a reader refuses a checksum it cannot verify. */
function checkRecord (extent: ExtentRecord): void {
  if (typeof extent?.id !== 'string' || !EXTENT_ID_PATTERN.test(extent.id)) {
    throw new InvalidArgumentError(`${JSON.stringify(extent?.id)} is not an extent id`, { extentId: extent?.id })
  }
  if (!Number.isInteger(extent.size) || extent.size < 0 || extent.size > EXTENT_SIZE_MAX) {
    throw new InvalidArgumentError(`extent ${extent.id} has the invalid size ${extent.size}`, { extentId: extent.id, size: extent.size })
  }
  if (typeof extent.checksum !== 'string' || !CHECKSUM_PATTERN.test(extent.checksum)) {
    throw new InvalidArgumentError(`extent ${extent.id} has a checksum this node cannot verify: ${JSON.stringify(extent.checksum)}`, {
      extentId: extent.id, checksum: extent.checksum
    })
  }
  if (!Array.isArray(extent.replicas)) throw new InvalidArgumentError(`extent ${extent.id} has no replica list`, { extentId: extent.id })
}

/**
 * Checks a replica's `extent.get` result against metadata before any bytes are received, and says
 * in which form the body comes. It takes the result as unknown: the RPC contract says what a
 * well-behaved replica sends, not what this one did.
 */
function checkResult (result: unknown, extent: ExtentRecord, node: PeerIdString): DfsError | ExtentEncoding {
  if (result == null || typeof result !== 'object' || Array.isArray(result)) {
    return new MalformedFrameError(`replica ${node} answered ${EXTENT_GET_METHOD} with a result that is not a map`, { node, extentId: extent.id })
  }
  const r = result as Partial<ExtentGetResult>
  if (r.id !== extent.id) {
    return new MalformedFrameError(`replica ${node} answered for extent ${String(r.id)} instead of ${extent.id}`, { node, extentId: extent.id })
  }
  if (r.size !== extent.size || r.checksum !== extent.checksum) {
    return new CorruptExtentError(extent.id, extent.checksum, String(r.checksum), {
      node, expectedSize: extent.size, actualSize: typeof r.size === 'number' ? r.size : null, reason: 'the replica holds a different copy than metadata records'
    })
  }
  if (r.codec === undefined && r.storedSize === undefined) return {}
  // encoded only when smaller, so a body never exceeds the extent's size
  if (!isExtentCodec(r.codec) || typeof r.storedSize !== 'number' || !Number.isInteger(r.storedSize) || r.storedSize < 0 || r.storedSize >= extent.size) {
    return new MalformedFrameError(`replica ${node} answered for extent ${extent.id} with an encoding this node cannot read`, {
      node, extentId: extent.id, codec: String(r.codec).slice(0, 16), storedSize: typeof r.storedSize === 'number' ? r.storedSize : null
    })
  }
  return { codec: r.codec, storedSize: r.storedSize }
}

/**
 * Gives up a download whose bytes are not wanted. The client aborts the stream when its body is
 * left after it started; a body that was never started would leave the stream mid-call.
 */
async function abandon (body: AsyncGenerator<Uint8Array>): Promise<void> {
  try {
    for await (const _ of body) break
  } catch {}
}

function sha256 (bytes: Uint8Array): string {
  return 'sha256:' + createHash('sha256').update(bytes).digest('hex')
}
