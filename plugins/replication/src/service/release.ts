import type { ExtentRecord } from '@dfs/api'
import type { ReplicationContext } from './context.js'

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
      void Promise.allSettled(remote.map(async ({ p, id }) => { await init.peers.delete(p, id, { signal: stopping }) }))
    }, tuning.releaseGraceMs)
    t.unref?.()
    this.#timers.add(t)
  }

  stop (): void {
    for (const t of this.#timers) clearTimeout(t)
    this.#timers.clear()
  }
}
