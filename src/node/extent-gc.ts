import { logger } from '@libp2p/logger'
import type { ExtentStore, MetadataService } from '@dfs/api'

const log = logger('dfs:node:gc')

/**
 * Frees extent bytes that metadata no longer references. A reader pins the extents of the file
 * version it reads, so replacing or removing a file while it is being read never pulls bytes from
 * under the reader: the version's extents are deleted when the last reader lets go.
 */
export class ExtentGc {
  readonly #store: ExtentStore
  /** This node's PeerId: when known, a sweep also frees copies metadata places on other nodes only. */
  readonly #nodeId: string | undefined
  readonly #pins = new Map<string, number>()
  readonly #doomed = new Set<string>()

  constructor (store: ExtentStore, options: { nodeId?: string } = {}) {
    this.#store = store
    this.#nodeId = options.nodeId
  }

  pin (ids: Iterable<string>): () => void {
    const list = [...ids]
    for (const id of list) this.#pins.set(id, (this.#pins.get(id) ?? 0) + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      for (const id of list) {
        const n = (this.#pins.get(id) ?? 1) - 1
        if (n > 0) {
          this.#pins.set(id, n)
          continue
        }
        this.#pins.delete(id)
        if (this.#doomed.delete(id)) void this.#delete(id)
      }
    }
  }

  /** Deletes the bytes of extents metadata dropped, now or when their last reader finishes. */
  async free (ids: Iterable<string>): Promise<void> {
    const now: Array<Promise<void>> = []
    for (const id of ids) {
      if (this.#pins.has(id)) this.#doomed.add(id)
      else now.push(this.#delete(id))
    }
    await Promise.all(now)
  }

  /**
   * Deletes stored extents that metadata does not reference: the leftovers of puts that failed or
   * of a crash between writing bytes and committing the file. Safe while puts run: a put pins its
   * extents before writing them and until its commit, so the store is listed first (skipping pinned
   * extents) and metadata read after — any extent listed unpinned was either committed before the
   * read, and is referenced, or is an orphan.
   *
   * With the node's id it also frees copies of extents whose replica set does not list this node:
   * the source of a move that switched while this node was down, or a copy repair replaced. A copy
   * that a recorded move is bringing here (`move.to`) is kept: the move's switch will list it.
   */
  async sweep (metadata: MetadataService, listed?: string[]): Promise<number> {
    const candidates: string[] = []
    for (const id of listed ?? await this.list()) {
      if (!this.#pins.has(id)) candidates.push(id)
    }
    const me = this.#nodeId
    const kept = await metadata.read((view) => new Set(candidates.filter((id) => {
      const e = view.getExtent(id)
      return e !== undefined && (me === undefined || e.replicas.includes(me) || e.move?.to === me)
    })), { scope: { extents: true } })
    const orphans = candidates.filter((id) => !kept.has(id))
    await this.free(orphans)
    if (orphans.length > 0) log('swept %d unreferenced extents', orphans.length)
    return orphans.length
  }

  /**
   * The ids in the store now. A node that holds copies for other nodes' puts lists them before it
   * serves anyone, and sweeps only those: a copy another node writes here later belongs to a put
   * that has not committed yet, which this node cannot see or pin.
   */
  async list (): Promise<string[]> {
    const ids: string[] = []
    for await (const info of this.#store.list()) ids.push(info.id)
    return ids
  }

  async #delete (id: string): Promise<void> {
    try {
      await this.#store.delete(id)
    } catch (err: any) {
      // a later sweep frees it; nothing acknowledged depends on these bytes
      log.error('could not delete extent %s: %s', id, err.message)
    }
  }
}
