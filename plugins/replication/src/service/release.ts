import type { ExtentRecord, PeerIdString } from '@dfs/api'
import { RELEASE_DELETE_TRIES_MAX, RELEASE_RETRIES_MAX, RELEASE_RETRY_MS_FIRST } from './constants.js'
import { scopedLogger } from './context.js'
import type { ReplicationContext } from './context.js'

/** Deletes of released copies in flight at once, over all peers. */
const RELEASE_DELETES_IN_FLIGHT_MAX = 16

/** One remote copy to delete: its node, its extent, and how many deletes of it failed so far. */
interface Copy { p: PeerIdString, id: string, failed: number }

/**
 * Release of dropped extents: the copies other nodes hold of extents metadata dropped are deleted
 * after `releaseGraceMs`, so a reader on another node that is still streaming the old version
 * finishes. This node's own copy is the caller's to free (the node frees it once its readers let
 * go). A delete that fails is tried again later (RELEASE_RETRY_MS_FIRST, growing, at most
 * RELEASE_DELETE_TRIES_MAX tries): a copy nothing references would otherwise hold its node's disk
 * until that node's orphan sweep, hours later.
 */
export class Release {
  readonly #ctx: ReplicationContext
  readonly #log
  /** Pending timers (grace or retry); stop clears them. */
  readonly #timers = new Set<ReturnType<typeof setTimeout>>()
  /** Copies whose delete failed and waits for its next try. */
  #retrying = 0

  constructor (ctx: ReplicationContext) {
    this.#ctx = ctx
    this.#log = scopedLogger(ctx.init.logger, 'release')
  }

  /** Deletes the remote copies of extents metadata dropped once the grace period has passed. */
  release (extents: ExtentRecord[]): void {
    const { init, tuning } = this.#ctx
    const remote = extents.flatMap((e) => e.replicas.filter((p) => p !== init.nodeId).map((p) => ({ p, id: e.id, failed: 0 })))
    if (remote.length === 0) return
    this.#after(tuning.releaseGraceMs, () => { this.#delete(remote) })
  }

  stop (): void {
    for (const t of this.#timers) clearTimeout(t)
    this.#timers.clear()
  }

  #after (ms: number, fn: () => void): void {
    if (this.#ctx.stopping.aborted) return
    const t = setTimeout(() => {
      this.#timers.delete(t)
      fn()
    }, ms)
    t.unref?.()
    this.#timers.add(t)
  }

  /**
   * Deletes `copies`, a bounded number at once: a big file frees tens of thousands of copies, and a
   * peer takes at most RPC_INBOUND_STREAMS_MAX streams of one connection. The ones that fail are
   * tried again together, after a wait that grows with their failures.
   */
  #delete (copies: Copy[]): void {
    const { init, stopping } = this.#ctx
    const failed: Copy[] = []
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < copies.length && !stopping.aborted) {
        const copy = copies[next++]
        await init.peers.delete(copy.p, copy.id, { signal: stopping }).catch((err) => {
          copy.failed += 1
          if (copy.failed < RELEASE_DELETE_TRIES_MAX && this.#retrying + failed.length < RELEASE_RETRIES_MAX) {
            failed.push(copy)
          } else {
            this.#log('extent %s: its copy on %s was not deleted (%s: %s); left to that node\'s orphan sweep',
              copy.id, copy.p, (err as Error)?.name, (err as Error)?.message)
          }
        })
      }
    }
    const workers = Array.from({ length: Math.min(RELEASE_DELETES_IN_FLIGHT_MAX, copies.length) }, worker)
    void Promise.all(workers).then(() => {
      if (failed.length === 0 || stopping.aborted) return
      // the copies of one pass have all failed as often (they were tried together each time)
      const ms = RELEASE_RETRY_MS_FIRST * 4 ** (failed[0].failed - 1)
      this.#log('%d released copies not deleted yet; trying again in %d ms', failed.length, ms)
      this.#retrying += failed.length
      this.#after(ms, () => {
        this.#retrying -= failed.length
        this.#delete(failed)
      })
    })
  }
}
