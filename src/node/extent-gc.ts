import { logger } from '@libp2p/logger'
import { STAGE_AGE_MS_MAX, type ExtentStore, type MetadataService, type MetadataView } from '@dfs/api'

const log = logger('dfs:node:gc')

/** How often a running node looks for copies nothing references (the start-up sweep aside). */
export const ORPHAN_SWEEP_EVERY_MS_DEFAULT = 10 * 60_000
/**
 * How long a copy must have been unreferenced, seen so by two sweeps, before a running node frees
 * it. Longer than any put may take (PUT_DURATION_MAX_MS): another node's put writes its copies here
 * before its file commits, and until then nothing references them.
 */
export const ORPHAN_AGE_MS_DEFAULT = 7 * 3600_000

export interface OrphanSweepOptions {
  everyMs?: number
  ageMs?: number
  /** Age past which a stage of a put counts as abandoned (STAGE_AGE_MS_MAX). */
  stageAgeMs?: number
}

/** Stale stages one periodic pass drops at most (the next pass takes the rest). */
export const STALE_STAGES_PER_PASS_MAX = 64

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
  /** Copies a periodic sweep found unreferenced, with when it first did. */
  readonly #unreferencedSince = new Map<string, number>()
  #periodic: ReturnType<typeof setInterval> | undefined
  #sweeping = false

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
    const kept = await metadata.read((view) => new Set(candidates.filter((id) => this.#referencedHere(view, id))), { scope: { extents: true } })
    const orphans = candidates.filter((id) => !kept.has(id))
    await this.free(orphans)
    if (orphans.length > 0) log('swept %d unreferenced extents', orphans.length)
    return orphans.length
  }

  /**
   * Starts sweeping while the node runs: every `everyMs` the store is listed and each unpinned copy
   * metadata does not reference here (this node's applied state) is noted with the time; one still
   * unreferenced `ageMs` after it was first noted is checked once more against linearizable
   * metadata and freed. This catches what the start-up sweep cannot while the node keeps running:
   * the source copy of a move whose delete failed, a copy of a write that was cut off after its
   * quorum, the copies of a put whose coordinator died before committing. Each pass also drops
   * stages of puts that died (dropStaleStages).
   */
  startPeriodic (metadata: MetadataService, options: OrphanSweepOptions = {}): void {
    if (this.#periodic !== undefined) return
    const everyMs = options.everyMs ?? ORPHAN_SWEEP_EVERY_MS_DEFAULT
    const ageMs = options.ageMs ?? ORPHAN_AGE_MS_DEFAULT
    const stageAgeMs = options.stageAgeMs ?? STAGE_AGE_MS_MAX
    this.#periodic = setInterval(() => {
      this.sweepAged(metadata, ageMs).catch((err) => { log('periodic sweep: %s', (err as Error).message) })
      this.dropStaleStages(metadata, stageAgeMs).catch((err) => { log('stale stages: %s', (err as Error).message) })
    }, everyMs)
    this.#periodic.unref?.()
  }

  stopPeriodic (): void {
    if (this.#periodic !== undefined) clearInterval(this.#periodic)
    this.#periodic = undefined
  }

  /** One periodic pass (see startPeriodic); resolves with the number of copies freed. */
  async sweepAged (metadata: MetadataService, ageMs: number, now: () => number = Date.now): Promise<number> {
    if (this.#sweeping) return 0
    this.#sweeping = true
    try {
      const listed = (await this.list()).filter((id) => !this.#pins.has(id))
      const unreferenced = metadata.staleRead != null
        ? metadata.staleRead((view) => listed.filter((id) => !this.#referencedHere(view, id)))
        : await metadata.read((view) => listed.filter((id) => !this.#referencedHere(view, id)), { scope: { extents: true } })
      const t = now()
      // a copy that is gone, pinned or referenced again starts over
      const seen = new Set(unreferenced)
      for (const id of [...this.#unreferencedSince.keys()]) if (!seen.has(id)) this.#unreferencedSince.delete(id)
      const aged: string[] = []
      for (const id of unreferenced) {
        const since = this.#unreferencedSince.get(id)
        if (since === undefined) this.#unreferencedSince.set(id, t)
        else if (t - since >= ageMs) aged.push(id)
      }
      if (aged.length === 0) return 0
      // decided on linearizable metadata, and skipping anything pinned since the listing
      const orphans = await metadata.read((view) => aged.filter((id) => !this.#referencedHere(view, id) && !this.#pins.has(id)),
        { scope: { extents: true } })
      for (const id of orphans) this.#unreferencedSince.delete(id)
      await this.free(orphans)
      if (orphans.length > 0) log('freed %d copies unreferenced for %d ms or more', orphans.length, ageMs)
      return orphans.length
    } finally {
      this.#sweeping = false
    }
  }

  /**
   * Drops the stages (see STAGE_BATCH_MAX in @dfs/api) created more than `ageMs` ago, at most
   * STALE_STAGES_PER_PASS_MAX of them: no put runs that long (PUT_DURATION_MAX_MS), so their put
   * died with its node. Every node does this for every stage it sees; a stage another node dropped
   * first (or that committed meanwhile) is NotFound, which is fine. This node's copies of the freed
   * extents go now; other nodes' are unreferenced from then on and go with their periodic sweeps.
   * Resolves with the number of stages this node dropped.
   */
  async dropStaleStages (metadata: MetadataService, ageMs: number = STAGE_AGE_MS_MAX, now: () => number = Date.now): Promise<number> {
    const pick = (view: MetadataView): Array<{ stage: string, path: string }> => {
      const t = now()
      return (view.stages?.() ?? []).filter((s) => t - s.createdAtMs > ageMs).slice(0, STALE_STAGES_PER_PASS_MAX).map((s) => ({ stage: s.stage, path: s.path }))
    }
    const stale = metadata.staleRead != null ? metadata.staleRead(pick) : await metadata.read(pick, { scope: { paths: ['/'] } })
    let dropped = 0
    for (const { stage, path } of stale) {
      try {
        const result = await metadata.propose({ type: 'DropStage', stage, path })
        dropped++
        const freed = result.freed ?? []
        log('dropped stage %s of %s (a put that never finished): %d extents freed', stage, path, freed.length)
        await this.free(freed.map((e) => e.id))
      } catch (err) {
        if ((err as Error).name !== 'NotFound') log('could not drop stage %s of %s: %s', stage, path, (err as Error).message)
      }
    }
    return dropped
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

  /**
   * Whether metadata wants a copy of `id` here: it lists this node among the extent's replicas, or a
   * recorded move brings it here (without a node id: whether metadata knows the extent at all).
   */
  #referencedHere (view: MetadataView, id: string): boolean {
    const e = view.getExtent(id)
    const me = this.#nodeId
    return e !== undefined && (me === undefined || e.replicas.includes(me) || e.move?.to === me)
  }

  async #delete (id: string): Promise<void> {
    try {
      await this.#store.delete(id)
    } catch (err) {
      // a later sweep frees it; nothing acknowledged depends on these bytes
      log.error('could not delete extent %s: %s', id, (err as Error).message)
    }
  }
}
