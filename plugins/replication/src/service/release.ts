import type { ExtentRecord } from '@dfs/api'
import type { ReplicationContext } from './context.js'

/** Deletes of released copies in flight at once, over all peers. */
const RELEASE_DELETES_IN_FLIGHT_MAX = 16

/**
 * Release of dropped extents: the copies other nodes hold of extents metadata dropped are deleted
 * after `releaseGraceMs`, so a reader on another node that is still streaming the old version
 * finishes. This node's own copy is the caller's to free (the node frees it once its readers let
 * go). Logs nothing of its own.
 */
export class Release {
  readonly #ctx: ReplicationContext
  /** Pending grace timers, one per release call with remote copies; stop clears them. */
  readonly #timers = new Set<ReturnType<typeof setTimeout>>()

  constructor (ctx: ReplicationContext) {
    this.#ctx = ctx
  }

  /** Deletes the remote copies of extents metadata dropped once the grace period has passed. */
  release (extents: ExtentRecord[]): void {
    const { init, tuning, stopping } = this.#ctx
    const remote = extents.flatMap((e) => e.replicas.filter((p) => p !== init.nodeId).map((p) => ({ p, id: e.id })))
    if (remote.length === 0) return
    const t = setTimeout(() => {
      this.#timers.delete(t)
      // a bounded number at once: a big file frees tens of thousands of copies, and a peer takes
      // at most RPC_INBOUND_STREAMS_MAX streams of one connection (the rest would fail and wait
      // for its orphan sweep, hours later)
      let next = 0
      const worker = async (): Promise<void> => {
        while (next < remote.length && !stopping.aborted) {
          const { p, id } = remote[next++]
          await init.peers.delete(p, id, { signal: stopping }).catch(() => {})
        }
      }
      for (let i = 0; i < Math.min(RELEASE_DELETES_IN_FLIGHT_MAX, remote.length); i++) void worker()
    }, tuning.releaseGraceMs)
    t.unref?.()
    this.#timers.add(t)
  }

  stop (): void {
    for (const t of this.#timers) clearTimeout(t)
    this.#timers.clear()
  }
}
