import { DfsError } from '@dfs/api'
import type { Logger } from '@dfs/api'
import { allExtents, report, scopedLogger } from './context.js'
import type { ReplicationContext } from './context.js'
import type { ReadPath } from './read-path.js'

/**
 * The scrub (`dfs:replication:scrub`): every node re-reads its own copies at `scrubBytesPerSecond`,
 * verifying checksums, and re-fetches a copy that is corrupt, or that metadata says it holds but
 * it lacks, from the other replicas. One pass at a time.
 */
export class Scrub {
  readonly #ctx: ReplicationContext
  readonly #log: Logger
  readonly #reads: ReadPath
  #scrubbing = false

  constructor (ctx: ReplicationContext, reads: ReadPath) {
    this.#ctx = ctx
    this.#log = scopedLogger(ctx.init.logger, 'scrub')
    this.#reads = reads
  }

  get log (): Logger {
    return this.#log
  }

  /**
   * Re-verifies this node's copies at a throttled rate; a corrupt copy, or one metadata lists here
   * but the store lacks, is fetched again from the other replicas.
   */
  async pass (): Promise<void> {
    const { init, tuning, stopping } = this.#ctx
    const { metadata, store, nodeId } = init
    if (this.#scrubbing || metadata.staleRead === undefined) return
    this.#scrubbing = true
    try {
      const mine = metadata.staleRead((v) => allExtents(v).filter((e) => e.replicas.includes(nodeId)))
      const started = Date.now()
      let bytes = 0
      for (const extent of mine) {
        if (stopping.aborted) return
        /** Why this node's copy is bad (the error's name), undefined while it is good. */
        let bad: string | undefined
        try {
          if (!(await store.has(extent.id))) bad = 'NotFound'
          else bytes += (await store.get(extent.id, { signal: stopping, deep: true })).byteLength
        } catch (err) {
          if (stopping.aborted) return
          if (err instanceof DfsError && (err.name === 'CorruptExtent' || err.name === 'NotFound')) bad = err.name
          else this.#log('scrub of %s: %s', extent.id, (err as Error).message)
        }
        if (bad !== undefined) {
          const sources = this.#reads.order(extent.replicas.filter((p) => p !== nodeId))
          let repaired = false
          try {
            await init.peers.replicate(nodeId, extent, sources, { signal: stopping })
            repaired = true
            this.#log('scrub: re-fetched copy of %s', extent.id)
          } catch (err) {
            this.#log('scrub: re-fetching %s failed: %s', extent.id, (err as Error).message)
          }
          report(this.#ctx, { kind: 'scrub.error', extent: extent.id, error: bad, repaired }, this.#log)
        }
        // throttle: never faster than scrubBytesPerSecond on average
        const due = started + (bytes / Math.max(1, tuning.scrubBytesPerSecond)) * 1000
        const wait = due - Date.now()
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait).unref?.())
      }
    } finally {
      this.#scrubbing = false
    }
  }
}
