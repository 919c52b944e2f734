import { statfs } from 'node:fs/promises'
import { logger } from '@libp2p/logger'
import { HeartbeatService, heartbeatComponents, type NodeStats } from '../membership/heartbeat.js'
import type { NodeHost } from '../net/host.js'
import type { ClusterEventBody, ClusterNode, ClusterView, ExtentStore, MemberRecord, MetadataService } from '@dfs/api'

const log = logger('dfs:node:membership')

export type Health = 'healthy' | 'suspected' | 'failed'

/** The events membership reports (ClusterMembershipInit.onEvent). */
export type MembershipEvent = Extract<ClusterEventBody, { kind: 'node.health' | 'node.joined' | 'node.removed' }>

export interface ClusterMembershipInit {
  host: NodeHost
  nodeId: string
  clusterId: string
  metadata: MetadataService
  store: ExtentStore
  name?: string
  region?: string
  heartbeatMs?: number
  failureTimeoutMs?: number
  /**
   * A directory on the filesystem of the extent store (the node's data dir): the bytes available
   * there count into the capacity this node reports. Without it the node reports no capacity and
   * the other nodes never choose it for new copies.
   */
  dataDir?: string
  /** Fraction of its capacity past which a node takes no new copy, in (0, 1]; FILL_LIMIT_DEFAULT if absent. */
  fillLimit?: number
  /** Monotonic clock in ms of the failure detector (default `performance.now`); `failedForMs` is on it too. */
  clock?: () => number
  /**
   * Hears every health transition of a member, and members joining and leaving the member list
   * after the first look at it (the members there at start are not news). Must not throw.
   */
  onEvent?: (event: MembershipEvent) => void
}

/** Default fill limit of every node: room is kept for rebalancing and repair. */
export const FILL_LIMIT_DEFAULT = 0.9

/** The failure detector's health as events and the CLI spell it. */
function lower (h: 'Healthy' | 'Suspected' | 'Failed'): Health {
  return h === 'Healthy' ? 'healthy' : h === 'Suspected' ? 'suspected' : 'failed'
}

/** How often the set of watched members is brought in line with metadata. */
const MEMBER_SYNC_MS = 1000

/**
 * The node's view of the other members' health: heartbeats over gossip, judged by the failure
 * detector, for exactly the members metadata lists (this node counts itself healthy).
 */
export class ClusterMembership implements ClusterView {
  readonly #init: ClusterMembershipInit
  readonly #heartbeats: HeartbeatService
  readonly #clock: () => number
  readonly #fillLimit: number
  #members = new Set<string>()
  /** Whether #members has been filled once: later changes are joins and removals. */
  #synced = false
  #timer: ReturnType<typeof setInterval> | undefined
  /** This node's load and capacity as its last heartbeat reported them (none before the first). */
  #selfStats: NodeStats | undefined

  constructor (init: ClusterMembershipInit) {
    this.#init = init
    this.#clock = init.clock ?? (() => performance.now())
    this.#fillLimit = init.fillLimit ?? FILL_LIMIT_DEFAULT
    if (!(this.#fillLimit > 0 && this.#fillLimit <= 1)) throw new Error(`fillLimit must be in (0, 1], got ${this.#fillLimit}`)
    this.#heartbeats = new HeartbeatService(heartbeatComponents(init.host), {
      clusterId: init.clusterId,
      isMember: (peer) => this.#members.has(peer),
      name: init.name,
      region: init.region,
      heartbeatMs: init.heartbeatMs,
      failureTimeoutMs: init.failureTimeoutMs,
      clock: this.#clock,
      stats: async ({ signal }) => {
        this.#selfStats = await this.#stats(signal)
        return this.#selfStats
      }
    })
    this.#heartbeats.addEventListener('transition', (evt) => {
      const t = evt.detail
      log('member %s: %s -> %s', t.member, t.from, t.to)
      this.#report({ kind: 'node.health', node: t.member, from: lower(t.from), to: lower(t.to) })
    })
  }

  start (): void {
    this.#sync()
    this.#heartbeats.start()
    this.#timer = setInterval(() => { this.#sync() }, MEMBER_SYNC_MS)
    this.#timer.unref?.()
  }

  stop (): void {
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#heartbeats.stop()
  }

  health (id: string): Health {
    if (id === this.#init.nodeId) return 'healthy'
    // a member that joined since the last sync starts being watched now (with the detector's grace)
    if (!this.#members.has(id)) this.#sync()
    const h = this.#heartbeats.health(id)
    return h === 'Healthy' ? 'healthy' : h === 'Suspected' ? 'suspected' : 'failed'
  }

  /**
   * Every member metadata lists, this node included, as replication sees it. A member that has sent
   * no heartbeat yet (or reported no capacity) gets `capacityBytes = usedBytes + 1`: a valid node
   * that is full, so it is counted (its copies, its health) but never chosen for a new copy until
   * it says how much room it has.
   */
  nodes (): ClusterNode[] {
    const members = this.#listMembers()
    const latest = new Map(this.#heartbeats.members().map((m) => [m.member, m]))
    const now = this.#clock()
    return members.map((m) => {
      const self = m.id === this.#init.nodeId
      const health = this.health(m.id)
      const view = self ? undefined : latest.get(m.id)
      const stats = self ? this.#selfStats : view?.heartbeat
      const usedBytes = stats?.load.bytes ?? 0
      const capacityBytes = stats != null && stats.capacity.bytes > 0 ? stats.capacity.bytes : usedBytes + 1
      const failedForMs = health === 'failed' && view != null ? Math.max(0, now - view.sinceMs) : 0
      return { id: m.id, region: m.region, health, usedBytes, capacityBytes, fillLimit: this.#fillLimit, failedForMs }
    })
  }

  /** A member's stored bytes and capacity as last reported (its heartbeat; this node's own measure); capacity null before any. */
  usage (id: string): { usedBytes: number, capacityBytes: number | null } {
    const stats = id === this.#init.nodeId ? this.#selfStats : this.#heartbeats.members().find((m) => m.member === id)?.heartbeat
    return { usedBytes: stats?.load.bytes ?? 0, capacityBytes: stats != null && stats.capacity.bytes > 0 ? stats.capacity.bytes : null }
  }

  /** Measures this node's load and capacity now (before serving: a put placed at once needs them). */
  async refreshSelf (signal: AbortSignal = AbortSignal.timeout(10_000)): Promise<void> {
    this.#selfStats = await this.#stats(signal)
  }

  /** Load from the store; capacity = what the store holds + what this process may still write there. */
  async #stats (signal: AbortSignal): Promise<NodeStats> {
    const usage = await this.#init.store.usage({ signal })
    let capacity = 0
    if (this.#init.dataDir != null) {
      const fs = await statfs(this.#init.dataDir)
      capacity = Math.min(Number.MAX_SAFE_INTEGER, usage.bytes + fs.bavail * fs.bsize)
    }
    return { load: { extents: usage.extents, bytes: usage.bytes }, capacity: { bytes: capacity } }
  }

  #listMembers (): MemberRecord[] {
    const m = this.#init.metadata
    return m.staleRead != null ? m.staleRead((view) => view.members()) : []
  }

  #sync (): void {
    let members: MemberRecord[]
    try {
      members = this.#listMembers()
    } catch {
      return
    }
    const next = new Set(members.map((m) => m.id).filter((id) => id !== this.#init.nodeId))
    const added = [...next].filter((id) => !this.#members.has(id))
    const removed = [...this.#members].filter((id) => !next.has(id))
    // the service asks isMember() before it watches, so the new set goes in first
    this.#members = next
    for (const id of added) this.#heartbeats.watch(id)
    // an empty first look (metadata not applied yet) is not the members' starting set
    if (this.#synced) {
      for (const node of added) this.#report({ kind: 'node.joined', node })
      for (const node of removed) this.#report({ kind: 'node.removed', node })
    }
    if (members.length > 0) this.#synced = true
  }

  #report (event: MembershipEvent): void {
    try {
      this.#init.onEvent?.(event)
    } catch (err) {
      log.error('reporting %s: %s', event.kind, (err as Error).message)
    }
  }
}
