import { setMaxListeners } from 'node:events'
import { COMPRESSION_DEFAULT, NoQuorumError, UnavailableError, encodeForCopies, extentChecksumAsync, isCompressionSetting } from '@dfs/api'
import type {
  ClusterConfig, ClusterNode, Logger, PeerIdString, ProvenEncoding, ReplicatedWrite, ReplicatedWriteOptions
} from '@dfs/api'
import { MISSING_COPY_REPAIR_AFTER_MS, QUORUM_GRACE_FACTOR, QUORUM_GRACE_MS_MAX, QUORUM_GRACE_MS_MIN } from './constants.js'
import { clusterConfig, isCoordinator, policyNodes, scopedLogger } from './context.js'
import type { ReplicationContext } from './context.js'

/**
 * The write path (`dfs:replication:write`): the cluster's placement policy picks up to RF healthy
 * nodes with room, the bytes go to all of them in parallel (each fsyncs before it answers), and the
 * write succeeds when a quorum acknowledged (see #fanOut). Placement is decided here from this
 * node's view of the cluster, not by a Raft round.
 */
export class WritePath {
  readonly #ctx: ReplicationContext
  readonly #log: Logger
  /** Asks the repair coordinator for a pass `ms` from now (Repair.soon). */
  readonly #repairSoon: (ms: number) => void
  /** When a write last asked for an early pass for a copy it recorded missing (epoch ms). */
  #missingKickAt = 0

  constructor (ctx: ReplicationContext, repairSoon: (ms: number) => void) {
    this.#ctx = ctx
    this.#log = scopedLogger(ctx.init.logger, 'write')
    this.#repairSoon = repairSoon
  }

  /** The placement of a new extent, if it is exactly `voters` and this node is one of them; else undefined. */
  placeInline (id: string, size: number, voters: PeerIdString[]): PeerIdString[] | undefined {
    if (!voters.includes(this.#ctx.init.nodeId)) return undefined
    const { targets } = this.#place(id, size)
    return targets.length === voters.length && targets.every((t) => voters.includes(t)) ? targets : undefined
  }

  #place (id: string, size: number): { targets: PeerIdString[], nodes: ClusterNode[], config: ClusterConfig } {
    const { init } = this.#ctx
    const config = clusterConfig(init)
    const nodes = policyNodes(init, config)
    const targets = init.placement(config.placementPolicy).place({
      extent: { id, size, replicas: [] },
      replicationFactor: config.replicationFactor,
      nodes
    })
    return { targets, nodes, config }
  }

  /**
   * Stores `bytes` on the nodes placement picks; succeeds when a majority of the copies the cluster
   * can hold (`sync: 'all'`: every one) acknowledged, else throws NoQuorum. Only acknowledged copies
   * are recorded; the rest are returned as `missing`, for repair to complete.
   */
  async write (id: string, bytes: Uint8Array, options: ReplicatedWriteOptions = {}): Promise<ReplicatedWrite> {
    const { init } = this.#ctx
    const { targets, nodes, config } = this.#place(id, bytes.byteLength)
    if (targets.length === 0) {
      throw new UnavailableError('no healthy node has room for a copy of the extent', { extent: id, nodes: nodes.length })
    }

    // The quorum is a majority of the copies the cluster can hold (RF, or every member when there
    // are fewer), not of the nodes placement found healthy: a node that is merely suspected must not
    // shrink it, or a loaded cluster would acknowledge writes that exist once.
    const want = Math.min(config.replicationFactor, nodes.length)
    const quorum = options.sync === 'all' ? want : Math.floor(want / 2) + 1
    // hashed in the thread pool while this thread compresses
    const hashing = extentChecksumAsync(bytes)
    hashing.catch(() => {})
    // Compression is decided once per extent, here, where the client's bytes were cut: every copy
    // travels and is stored in this one form. The identity stays that of the logical bytes. Copy
    // holders store what they are sent without decoding or hashing it (see ExtentPeers.put), so the
    // encoding is proven here, once: it must decode to exactly the bytes the checksum is of. Large
    // extents are compressed and proven on a worker thread (see encodeForCopies).
    // A client's encoding in the setting's codec is taken as it came (the caller decoded it to `bytes`).
    const setting = isCompressionSetting(config.compression) ? config.compression : COMPRESSION_DEFAULT
    // With `encoded`, `bytes` are not read once this write settles (encodedWritesReleaseBytes): a copy
    // cut off after that sends the encoding or a copy of its own, never `bytes` themselves.
    const given = options.encoded
    const lent = given !== undefined
    let encoded: ProvenEncoding = given?.codec !== undefined && given.codec === setting && given.bytes.byteLength < bytes.byteLength
      ? { codec: given.codec, bytes: given.bytes }
      : await encodeForCopies(id, setting, bytes, (err) => {
        this.#log('extent %s: a codec worker failed (%s); compressing on the event loop', id, err.message)
      })
    if (lent && encoded.bytes === bytes) encoded = { ...encoded, bytes: bytes.slice() }
    if (encoded.refused !== undefined) {
      this.#log.error('extent %s: its %s encoding does not decode to its bytes; sending them raw', id, encoded.refused)
    }
    const checksum = await hashing
    const identity = { id, size: bytes.byteLength, checksum }
    const sent = encoded.codec === undefined ? identity : { ...identity, codec: encoded.codec, storedSize: encoded.bytes.byteLength }
    const outcome = await this.#fanOut(targets, quorum, options.signal, async (peer, signal) => {
      try {
        await init.peers.put(peer, sent, encoded.bytes, { signal })
      } catch (err) {
        // a node built before codecs refuses the codec (strict params): it gets the logical bytes
        if (encoded.codec === undefined || (err as Error)?.name !== 'InvalidArgument' || signal.aborted) throw err
        this.#log('extent %s: %s refused %s bytes (%s); sending them raw', id, peer, encoded.codec, (err as Error).message)
        await init.peers.put(peer, identity, lent ? bytes.slice() : bytes, { signal })
      }
    })
    const acked = targets.filter((_, i) => outcome[i] === 'acked')
    const missing = targets.filter((_, i) => outcome[i] !== 'acked')
    if (acked.length < quorum) {
      // nothing will reference these copies: take them back (the start-up sweep catches any left)
      void Promise.allSettled(targets.map(async (peer) => { await init.peers.delete(peer, id) }))
      const failures = missing.map((peer) => {
        const r = outcome[targets.indexOf(peer)]
        const err = r instanceof Error ? r : undefined
        return { node: peer, error: err?.name ?? 'Unanswered', message: err?.message ?? 'no answer before the write gave up' }
      })
      options.signal?.throwIfAborted()
      throw new NoQuorumError(`only ${acked.length} of ${targets.length} replicas stored extent ${id}; ${quorum} needed`,
        { extent: id, acked, quorum, failures })
    }
    if (missing.length > 0) {
      this.#log('extent %s: copies on %o missing, left to repair', id, missing)
      // on the repair coordinator, a pass once the file has had time to commit (a pass before the
      // commit finds no reference to the extent yet); elsewhere the coordinator's next pass does it
      const now = Date.now()
      if (isCoordinator(init) && now - this.#missingKickAt >= this.#ctx.tuning.repairEveryMs) {
        this.#missingKickAt = now
        this.#repairSoon(MISSING_COPY_REPAIR_AFTER_MS)
      }
      // a copy that was cut off or failed late may still land: nothing lists it, so take it back
      void Promise.allSettled(missing.map(async (peer) => { await init.peers.delete(peer, id) }))
    }
    return { extent: { id, size: bytes.byteLength, checksum, replicas: acked }, missing }
  }

  /**
   * Runs `put` on every target in parallel and settles once the write is decided: every target
   * answered, or a quorum acknowledged and the others had their grace (QUORUM_GRACE_FACTOR times as
   * long as the quorum took, at least QUORUM_GRACE_MS_MIN, at most QUORUM_GRACE_MS_MAX), or a quorum can no longer be
   * reached. A target still running then is cut off (its call aborted): a hung or overloaded replica
   * delays a write by the grace, not by the call's whole deadline, and its copy counts as missing.
   * Each outcome: 'acked', the error, or 'cut'.
   */
  async #fanOut (targets: PeerIdString[], quorum: number, signal: AbortSignal | undefined,
    put: (peer: PeerIdString, signal: AbortSignal) => Promise<void>): Promise<Array<'acked' | 'cut' | Error>> {
    const outcome: Array<'acked' | 'cut' | Error | undefined> = targets.map(() => undefined)
    const cut = new AbortController()
    setMaxListeners(Infinity, cut.signal)
    const onAbort = (): void => { cut.abort(signal?.reason) }
    signal?.addEventListener('abort', onAbort, { once: true })
    const started = Date.now()
    let grace: ReturnType<typeof setTimeout> | undefined
    try {
      await new Promise<void>((resolve) => {
        let acked = 0
        let failed = 0
        const settle = (i: number, r: 'acked' | Error): void => {
          if (outcome[i] !== undefined) return
          outcome[i] = r
          if (r === 'acked') acked++
          else failed++
          if (acked + failed === targets.length || targets.length - failed < quorum) {
            resolve()
          } else if (acked >= quorum && grace === undefined) {
            const ms = Math.min(QUORUM_GRACE_MS_MAX, Math.max(QUORUM_GRACE_MS_MIN, QUORUM_GRACE_FACTOR * (Date.now() - started)))
            grace = setTimeout(resolve, ms)
          }
        }
        const start = (peer: PeerIdString, i: number): void => {
          put(peer, cut.signal).then(() => { settle(i, 'acked') }, (err) => { settle(i, err instanceof Error ? err : new Error(String(err))) })
        }
        // this node's own copy first: its write (and fsync) then runs in the store's threads while
        // this thread encrypts and sends the remote copies, instead of after them
        const me = this.#ctx.init.nodeId
        targets.forEach((peer, i) => { if (peer === me) start(peer, i) })
        targets.forEach((peer, i) => { if (peer !== me) start(peer, i) })
      })
    } finally {
      if (grace !== undefined) clearTimeout(grace)
      signal?.removeEventListener('abort', onAbort)
    }
    const result = outcome.map((r) => r ?? 'cut')
    if (result.includes('cut')) cut.abort(new UnavailableError('the write was decided without this copy'))
    return result
  }
}

