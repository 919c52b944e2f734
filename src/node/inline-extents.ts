import type { CallOptions, ExtentRecord, ExtentStore, InlineExtent } from '@dfs/api'
import { logger } from '@libp2p/logger'

const log = logger('dfs:node:inline')

export interface InlineExtentsInit {
  nodeId: string
  store: ExtentStore
  /**
   * The extent's record as this node's applied metadata holds it now (undefined: no longer
   * referenced); absent or throwing (metadata not running yet): every copy listed here is stored.
   */
  current?: (id: string) => ExtentRecord | undefined
}

/**
 * This node's copies of small files' extents, whose bytes travel inside their PutFile (see
 * FileService): `sink` is the metadata service's onInlineExtents, and `storeLocal` is how the node
 * that coordinates such a put stores its own copy while the commit runs.
 */
export class InlineExtents {
  readonly #init: InlineExtentsInit
  /** Copies the coordinating put stores itself: the sink waits for that write instead of repeating it. */
  readonly #local = new Map<string, Promise<unknown>>()

  constructor (init: InlineExtentsInit) {
    this.#init = init
  }

  /**
   * Stores the coordinator's own copy (fsync'd, checksum verified); until `release`, the sink
   * relies on this write for the extent (and makes it again only if it failed).
   */
  storeLocal (extent: ExtentRecord, bytes: Uint8Array, options: CallOptions = {}): { written: Promise<unknown>, release: () => void } {
    const written = this.#init.store.put(extent.id, bytes, { ...options, checksum: extent.checksum })
    written.catch(() => {})
    this.#local.set(extent.id, written)
    return { written, release: () => { if (this.#local.get(extent.id) === written) this.#local.delete(extent.id) } }
  }

  /**
   * MetadataServiceInit.onInlineExtents: stores each extent whose replicas list this node, with its
   * checksum verified by the store, fsync'd before the promise resolves. Waits one turn of the event
   * loop first and skips an extent the applied metadata no longer references by then (a restarted
   * node applying its log again would otherwise bring back copies of files removed since; the
   * start-up sweep would free them, but later). Storing an extent twice is harmless: the store
   * keeps the first copy.
   */
  readonly sink = async (extents: InlineExtent[]): Promise<void> => {
    const { nodeId, store, current } = this.#init
    const mine = extents.filter((x) => x.extent.replicas.includes(nodeId))
    if (mine.length === 0) return
    // looked up now: the put that registered its own write lets go of it as soon as the commit returns
    const locals = mine.map((x) => this.#local.get(x.extent.id))
    await new Promise((resolve) => setImmediate(resolve))
    await Promise.all(mine.map(async ({ extent, bytes }, i) => {
      const local = locals[i]
      if (local !== undefined && await local.then(() => true, () => false)) return
      let now: ExtentRecord | undefined = extent
      try {
        if (current !== undefined) now = current(extent.id)
      } catch {
        now = extent
      }
      if (now === undefined || !now.replicas.includes(nodeId)) {
        log('inline extent %s is no longer referenced here: not stored', extent.id)
        return
      }
      await store.put(extent.id, bytes, { checksum: extent.checksum })
      log('stored inline extent %s', extent.id)
    }))
  }
}
